//! keygate's manual pages: keygate(1) and a page for each command (every
//! visible one, so that keygate(1)'s list of commands names no missing
//! page), rendered from the clap definition the command line parses; and
//! keygate-config(5), rendered from [`Key`], the table every config read
//! goes through. Neither can drift from the code.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::commands::CommandError;
use crate::config::Key;

/// The config page's name, as `man 5 keygate-config` finds it.
pub const CONFIG_PAGE: &str = "keygate-config";

/// Writes every page into `dir` (created if need be) and names each file
/// written on `out`, one a line.
///
/// # Errors
///
/// [`CommandError::WritePage`] names the file that could not be written.
pub fn write_pages(
    command: clap::Command,
    dir: &Path,
    mut out: impl Write,
) -> Result<(), CommandError> {
    std::fs::create_dir_all(dir).map_err(|source| CommandError::WritePage {
        path: dir.to_owned(),
        source,
    })?;
    let mut command = command.disable_help_subcommand(true);
    // Sets each subcommand's display name (`keygate-login`), which names
    // its page.
    command.build();
    let commands: Vec<clap::Command> = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .cloned()
        .collect();
    let page_names: Vec<String> = commands.iter().map(page_name).collect();

    let version = command.get_version().unwrap_or_default().to_owned();
    let mut pages: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut see_also: Vec<(String, &str)> = page_names.iter().map(|n| (n.clone(), "1")).collect();
    see_also.push((CONFIG_PAGE.to_owned(), "5"));
    see_also.push(("git-credential".to_owned(), "1"));
    pages.push((
        dir.join(format!("{}.1", page_name(&command))),
        render_command(&command, &version, &see_also)?,
    ));
    let back = [(page_name(&command), "1"), (CONFIG_PAGE.to_owned(), "5")];
    for sub in &commands {
        pages.push((
            dir.join(format!("{}.1", page_name(sub))),
            render_command(sub, &version, &back)?,
        ));
    }
    pages.push((
        dir.join(format!("{CONFIG_PAGE}.5")),
        config_page(&version).into_bytes(),
    ));
    for program in &PROGRAMS {
        pages.push((
            dir.join(format!("{}.1", program.name)),
            program_page(program, &version).into_bytes(),
        ));
    }

    for (path, page) in pages {
        std::fs::write(&path, page).map_err(|source| CommandError::WritePage {
            path: path.clone(),
            source,
        })?;
        writeln!(out, "{}", path.display())?;
    }
    Ok(())
}

/// keygate-config(5): every key in [`Key::ALL`], its meaning and default.
pub fn config_page(version: &str) -> String {
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            "KEYGATE-CONFIG",
            "5",
            "",
            &format!("keygate {version}"),
            "keygate manual",
        ],
    )
    .control("SH", ["NAME"])
    .text([roman(format!(
        "{CONFIG_PAGE} - the git config keys keygate reads"
    ))])
    .control("SH", ["SYNOPSIS"])
    .text([
        bold("git config --global keygate."),
        italic("<url>"),
        bold("."),
        italic("<key>"),
        roman(" "),
        italic("<value>"),
    ])
    .control("SH", ["DESCRIPTION"])
    .text([roman(
        "keygate's settings are git config. A keygate.<url>.<key> entry is matched against \
         the repository URL the way git matches http.<url>.* entries: \
         [keygate \"https://git.example.com\"] applies to every repository on that host, \
         a longer URL wins, and the port counts. Key names are case-insensitive. \
         keygate setup writes the keys a server needs; keygate has built-in presets \
         for GitHub, GitLab and Bitbucket Cloud.",
    )])
    .control("SH", ["KEYS"]);
    for key in Key::ALL {
        roff.control("TP", [])
            .text([bold(key.full_name())])
            .text([roman(key.meaning())]);
        if !key.default().is_empty() {
            roff.control("br", [])
                .text([roman(format!("Default: {}.", key.default()))]);
        }
    }
    roff.control("SH", ["SEE ALSO"]).text([roman(
        "keygate(1), keygate-setup(1), git-config(1), gitcredentials(7)",
    )]);
    roff.to_roff()
}

/// A name keygate answers under for another program's protocol: each
/// gets a page, so `man` finds every program the package installs.
struct Program {
    name: &'static str,
    summary: &'static str,
    synopsis: &'static str,
    description: &'static str,
    see_also: &'static str,
}

const PROGRAMS: [Program; 3] = [
    Program {
        name: "git-credential-keygate",
        summary: "the credential helper git runs for keygate",
        synopsis: "get | store | erase",
        description: "git runs it for credential.helper = keygate (or its absolute path, which keygate setup \
             and install.sh register) with a request on stdin, as gitcredentials(7) describes. \
             A small program: it answers a fresh token cached for the request's host itself \
             and hands everything else (a stale token, a login, store, erase) to the keygate \
             installed beside it, which answers exactly as keygate get, store and erase do.",
        see_also: "keygate(1), keygate-get(1), gitcredentials(7), keygate-config(5)",
    },
    Program {
        name: "docker-credential-keygate",
        summary: "Docker's credential helper protocol, answered with keygate's tokens",
        synopsis: "get | store | erase | list | version",
        description: "Docker, podman, skopeo, buildah and crane run it for the registries whose credHelpers \
             entry is keygate (keygate setup docker REGISTRY writes it). get reads the registry on \
             stdin and answers ServerURL, Username and Secret as JSON, with the token git would get \
             for that host (keygate.<url>.tokensFrom shares a forge's login); a registry keygate has \
             no settings for is answered \"credentials not found in native keychain\", so the client \
             goes on without. store keeps nothing; erase logs out; list names the registries set up \
             for keygate that have a login.",
        see_also: "keygate(1), keygate-setup(1), keygate-config(5)",
    },
    Program {
        name: "cargo-credential-keygate",
        summary: "cargo's credential provider, answered with keygate's tokens",
        synopsis: "--cargo-plugin",
        description: "cargo runs it, or keygate itself, for a registry whose credential-provider names it \
             (keygate setup cargo INDEX-URL writes that), and speaks cargo's credential-provider \
             protocol on stdin and stdout. A get is answered with the token git would get for the \
             index URL's server, kept by cargo until it turns stale; login and logout are keygate's; \
             a registry keygate has no settings for is answered url-not-supported, so cargo asks its \
             next provider.",
        see_also: "keygate(1), keygate-setup(1), keygate-config(5), cargo-login(1)",
    },
];

/// The page of one of [`PROGRAMS`].
fn program_page(program: &Program, version: &str) -> String {
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            program.name.to_ascii_uppercase().as_str(),
            "1",
            "",
            &format!("keygate {version}"),
            "keygate manual",
        ],
    )
    .control("SH", ["NAME"])
    .text([roman(format!("{} - {}", program.name, program.summary))])
    .control("SH", ["SYNOPSIS"])
    .text([bold(program.name), roman(" "), italic(program.synopsis)])
    .control("SH", ["DESCRIPTION"])
    .text([roman(program.description)])
    .control("SH", ["SEE ALSO"])
    .text([roman(program.see_also)]);
    roff.to_roff()
}

fn render_command(
    command: &clap::Command,
    version: &str,
    see_also: &[(String, &str)],
) -> Result<Vec<u8>, CommandError> {
    let man = Man::new(command.clone())
        .date("")
        .source(format!("keygate {version}"))
        .manual("keygate manual");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if command.get_arguments().any(|arg| !arg.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    if command.get_subcommands().any(|sub| !sub.is_hide_set()) {
        man.render_subcommands_section(&mut page)?;
    }
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    let references: Vec<String> = see_also
        .iter()
        .map(|(name, section)| format!("{name}({section})"))
        .collect();
    roff.text([roman(references.join(", "))]);
    roff.to_writer(&mut page)?;
    if command.get_version().is_some() {
        man.render_version_section(&mut page)?;
    }
    Ok(page)
}

fn page_name(command: &clap::Command) -> String {
    command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_page_lists_every_key_with_its_default() {
        let page = config_page("0.0.0");
        for key in Key::ALL {
            let name = key.full_name().replace('-', "\\-");
            assert!(page.contains(&name), "{name} missing from the page");
            if !key.default().is_empty() {
                assert!(page.contains("Default: "), "no default for {name}");
            }
        }
    }
}
