//! README.md and docs/: every relative link and anchor resolves
//! (`.ci/check-links`, which .ci/run also runs on its own), and the check
//! itself fails on a page or heading that is not there.

use std::path::Path;
use std::process::Command;

use crate::common::text;

fn check_links(dir: &Path, pages: &[&str]) -> std::process::Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/check-links"))
        .args(pages)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn every_link_in_readme_and_docs_resolves() {
    let output = check_links(Path::new(env!("CARGO_MANIFEST_DIR")), &[]);
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    // The pages the check read: README and every page in docs/.
    let said = text(&output.stdout);
    assert!(said.contains("README.md, docs/"), "{said}");
}

#[test]
fn the_link_check_fails_on_a_missing_page_or_heading() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("docs")).unwrap();
    std::fs::write(
        dir.path().join("docs/page.md"),
        "# A page\n\n## `keygate doctor`: why\n\nback to [the start](../README.md#start)\n",
    )
    .unwrap();
    let readme = "# Start\n\n\
        [fine](docs/page.md#keygate-doctor-why) [missing](docs/gone.md) \
        [no heading](docs/page.md#nowhere) [here](#start) [away](https://example.com/x.md)\n\n\
        ```sh\n[not a link](docs/in-code.md)\n```\n";
    std::fs::write(dir.path().join("README.md"), readme).unwrap();
    let output = check_links(dir.path(), &[]);
    let said = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("docs/gone.md: no file"), "{said}");
    assert!(said.contains("#nowhere"), "{said}");
    assert!(said.contains("2 broken link(s)"), "{said}");

    // The same pages with the two fixed pass.
    std::fs::write(
        dir.path().join("README.md"),
        "# Start\n\n[fine](docs/page.md#keygate-doctor-why)\n",
    )
    .unwrap();
    let output = check_links(dir.path(), &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// `keygate --help` and `keygate setup --help` send people to pages by
/// name; each must be a page in docs/.
#[test]
fn the_pages_help_names_are_in_docs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut named = Vec::new();
    for args in [&["--help"][..], &["setup", "--help"]] {
        let output = Command::new(crate::common::KEYGATE)
            .args(args)
            .output()
            .unwrap();
        let help = text(&output.stdout);
        // "in the Debian package): configuration, forges, …, troubleshooting."
        if let Some((_, list)) = help.split_once("in the Debian package):") {
            let list = list.split('.').next().unwrap_or_default();
            named.extend(
                list.split(',')
                    .map(|page| format!("docs/{}.md", page.trim())),
            );
        }
        // "… docs/configuration.md; …"
        named.extend(
            help.split_whitespace()
                .map(|word| word.trim_end_matches([';', ',']))
                .filter(|word| word.starts_with("docs/") && word.ends_with(".md"))
                .map(str::to_owned),
        );
    }
    assert!(named.len() > 10, "{named:?}");
    for page in &named {
        assert!(
            root.join(page).is_file(),
            "help names {page}, which is not a page"
        );
    }
}
