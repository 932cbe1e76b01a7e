//! git's configuration, read in-process the way git reads it, because a
//! `git config` child costs more than all the rest of a cached `get`.
//!
//! The files are git's own, in git's order: system, global (XDG, then
//! `~/.gitconfig`, or `GIT_CONFIG_GLOBAL`), the repository's (`GIT_DIR`, or
//! found upward from the working directory), then `GIT_CONFIG_COUNT` and
//! `git -c` (`GIT_CONFIG_PARAMETERS`). Whatever this reader does not model
//! exactly — `include`/`includeIf`, per-worktree config, a repository
//! owned by another user (`safe.directory`), a bare repository found by
//! discovery (`safe.bareRepository`), a line it cannot parse — makes it
//! hand the whole job to `git config` instead, so the answer is always
//! git's: a repository git refuses to use adds nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The sections keygate reads; everything else is skipped while parsing.
const SECTIONS: [&str; 3] = ["keygate", "credential", "http"];

#[derive(Debug, thiserror::Error)]
pub enum GitConfigError {
    #[error("could not run `git config`: {0}; is git installed and on PATH?")]
    Spawn(std::io::Error),
    #[error("`git config` failed: {0}; fix the configuration it names")]
    Failed(String),
}

/// Every `keygate.*`, `credential.*` and `http.*` entry, in git's order,
/// keys spelled as `git config --list` spells them (section and variable
/// lower-case, subsection as written).
#[derive(Debug, Default, Clone)]
pub struct GitConfig {
    pub(crate) entries: Vec<(String, String)>,
}

/// Why the in-process reader defers to git.
#[derive(Debug)]
enum Defer {
    Include,
    WorktreeConfig,
    ForeignRepository,
    BareRepository,
    UnusualRepository,
    Syntax {
        #[allow(dead_code, reason = "shown in the debug log line")]
        path: PathBuf,
        #[allow(dead_code, reason = "shown in the debug log line")]
        line: usize,
    },
    BadParameters,
}

impl GitConfig {
    /// Reads the configuration, in-process when possible.
    pub fn load() -> Result<Self, GitConfigError> {
        match read_in_process() {
            Ok(config) => Ok(config),
            Err(reason) => {
                tracing::debug!(?reason, "reading git config through `git config`");
                Self::load_with_git()
            }
        }
    }

    /// One `git config` call for everything keygate may need.
    pub fn load_with_git() -> Result<Self, GitConfigError> {
        let output = Command::new("git")
            .args([
                "config",
                "-z",
                "--get-regexp",
                r"^(keygate|credential|http)\.",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(GitConfigError::Spawn)?;
        match output.status.code() {
            Some(0) => Ok(Self::parse_z(&output.stdout)),
            // 1: no matching key at all.
            Some(1) => Ok(Self::default()),
            // git's first line names the file and line at fault.
            _ => Err(GitConfigError::Failed(
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .next()
                    .unwrap_or("no message")
                    .trim()
                    .to_owned(),
            )),
        }
    }

    /// Parses `git config -z` output: `key\nvalue\0` per entry, or `key\0`
    /// for a key with no `=` (a boolean true).
    pub fn parse_z(raw: &[u8]) -> Self {
        let entries = raw
            .split(|&b| b == 0)
            .filter(|record| !record.is_empty())
            .map(|record| {
                let record = String::from_utf8_lossy(record);
                match record.split_once('\n') {
                    Some((key, value)) => (key.to_owned(), value.to_owned()),
                    None => (record.into_owned(), "true".to_owned()),
                }
            })
            .collect();
        Self { entries }
    }

    /// The value of `section.variable` with no subsection (last one wins).
    pub fn plain(&self, section: &str, variable: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(key, _)| {
                split_key(key).is_some_and(|(s, sub, v)| {
                    s.eq_ignore_ascii_case(section)
                        && sub.is_none()
                        && v.eq_ignore_ascii_case(variable)
                })
            })
            .map(|(_, value)| value.as_str())
    }
}

/// `section.sub.section.variable` → (section, Some(sub.section), variable).
pub(crate) fn split_key(key: &str) -> Option<(&str, Option<&str>, &str)> {
    let (section, rest) = key.split_once('.')?;
    match rest.rsplit_once('.') {
        Some((subsection, variable)) => Some((section, Some(subsection), variable)),
        None => Some((section, None, rest)),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_true(name: &str) -> bool {
    env(name)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

fn read_in_process() -> Result<GitConfig, Defer> {
    let mut entries = Vec::new();
    for path in config_files()? {
        let Ok(text) = std::fs::read(&path) else {
            // Missing files are normal; unreadable ones git would report.
            continue;
        };
        parse_file(&String::from_utf8_lossy(&text), &path, &mut entries)?;
    }
    command_line_entries(&mut entries)?;
    if entries.iter().any(|(key, value)| {
        key.eq_ignore_ascii_case("extensions.worktreeconfig") && value != "false"
    }) {
        return Err(Defer::WorktreeConfig);
    }
    entries.retain(|(key, _)| {
        let section = key.split('.').next().unwrap_or_default();
        SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(section))
    });
    Ok(GitConfig { entries })
}

/// git's configuration files, lowest priority first.
fn config_files() -> Result<Vec<PathBuf>, Defer> {
    let mut files = Vec::new();
    if !env_true("GIT_CONFIG_NOSYSTEM") {
        match env("GIT_CONFIG_SYSTEM") {
            Some(path) => files.push(PathBuf::from(path)),
            None => files.extend(crate::sys::git::system_files()),
        }
    }
    match std::env::var_os("GIT_CONFIG_GLOBAL") {
        Some(path) if !path.is_empty() => files.push(PathBuf::from(path)),
        _ => {
            let home = crate::sys::git::home_dir();
            let xdg = env("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".config")));
            files.extend(xdg.map(|x| x.join("git/config")));
            files.extend(home.map(|h| h.join(".gitconfig")));
        }
    }
    if let Some(repository) = repository_config()? {
        files.push(repository);
    }
    Ok(files)
}

/// The repository's `config`, from `GIT_DIR` or found upward from the
/// working directory, as git finds it.
fn repository_config() -> Result<Option<PathBuf>, Defer> {
    let git_dir = match std::env::var_os("GIT_DIR").filter(|v| !v.is_empty()) {
        // Named explicitly: git checks neither owner nor bareness.
        Some(dir) => Some(PathBuf::from(dir)),
        None => match std::env::current_dir() {
            Ok(cwd) => discover(&cwd)?,
            Err(_) => None,
        },
    };
    let Some(git_dir) = git_dir else {
        return Ok(None);
    };
    // A linked worktree keeps its config in the common directory.
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(relative) => git_dir.join(relative.trim_end()),
        Err(_) => git_dir,
    };
    Ok(Some(common.join("config")))
}

/// git's discovery, for the plain case only: a working tree whose `.git`
/// (a directory, or a file pointing at one) is a valid git directory and
/// which, with that `.git`, belongs to the user. What git would judge by
/// settings from protected configuration — a bare repository
/// (`safe.bareRepository`), another user's repository (`safe.directory`)
/// — or by rules this does not model is left to git.
fn discover(start: &Path) -> Result<Option<PathBuf>, Defer> {
    let ceilings: Vec<PathBuf> = std::env::var_os("GIT_CEILING_DIRECTORIES")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    let one_filesystem = !env_true("GIT_DISCOVERY_ACROSS_FILESYSTEM");
    let start_device = crate::sys::device(start);
    for dir in start.ancestors() {
        // git stops at a mount point: no repository.
        if one_filesystem && dir != start && crate::sys::device(dir) != start_device {
            return Ok(None);
        }
        let dot_git = dir.join(".git");
        match std::fs::metadata(&dot_git) {
            Ok(meta) if meta.is_dir() => {
                if git_directory(&dot_git)? {
                    owned_by_me(&[dir, &dot_git])?;
                    return Ok(Some(dot_git));
                }
                // git walks on past a `.git` that is no repository.
                return Err(Defer::UnusualRepository);
            }
            Ok(meta) if meta.is_file() => {
                let target = gitfile_target(dir, &dot_git).ok_or(Defer::UnusualRepository)?;
                if !git_directory(&target)? {
                    return Err(Defer::UnusualRepository);
                }
                owned_by_me(&[&dot_git, dir, &target])?;
                return Ok(Some(target));
            }
            Ok(_) => return Err(Defer::UnusualRepository),
            Err(_) => {}
        }
        if git_directory(dir)? {
            return Err(Defer::BareRepository);
        }
        if ceilings.iter().any(|c| dir.parent() == Some(c.as_path())) {
            return Ok(None);
        }
    }
    Ok(None)
}

/// Whether `dir` is a git directory as git's `is_git_directory` decides:
/// a valid `HEAD`, `objects` and `refs` (in the common directory). Ok(false)
/// only when there is no `HEAD` at all; anything in between is git's call.
fn git_directory(dir: &Path) -> Result<bool, Defer> {
    let head = dir.join("HEAD");
    let meta = match std::fs::symlink_metadata(&head) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(_) => return Err(Defer::UnusualRepository),
    };
    let valid_head = meta.is_file()
        && std::fs::read_to_string(&head).is_ok_and(|text| {
            let text = text.trim_end();
            text.starts_with("ref: refs/")
                || (matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit()))
        });
    let common = match std::fs::read_to_string(dir.join("commondir")) {
        Ok(relative) => dir.join(relative.trim_end()),
        Err(_) => dir.to_owned(),
    };
    let objects = env("GIT_OBJECT_DIRECTORY").map_or_else(|| common.join("objects"), PathBuf::from);
    if valid_head && objects.is_dir() && common.join("refs").is_dir() {
        Ok(true)
    } else {
        Err(Defer::UnusualRepository)
    }
}

/// `gitdir: PATH` in a `.git` file, relative to its directory.
fn gitfile_target(dir: &Path, gitfile: &Path) -> Option<PathBuf> {
    let pointer = std::fs::read_to_string(gitfile).ok()?;
    let target = pointer
        .strip_prefix("gitdir: ")?
        .trim_end_matches(['\n', '\r']);
    (!target.is_empty()).then(|| dir.join(target))
}

/// git trusts a discovered repository only when the `.git` file, the
/// working tree and the git directory are the user's (`lstat`; on Windows
/// the owner SIDs), or listed in `safe.directory`: that list, and root's
/// `SUDO_UID`, are git's to judge.
fn owned_by_me(paths: &[&Path]) -> Result<(), Defer> {
    if paths.iter().all(|path| crate::sys::owned_by_me(path)) {
        Ok(())
    } else {
        Err(Defer::ForeignRepository)
    }
}

/// `GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n`, then `git -c` settings, which git
/// passes to the processes it starts in `GIT_CONFIG_PARAMETERS`.
fn command_line_entries(entries: &mut Vec<(String, String)>) -> Result<(), Defer> {
    if let Some(count) = env("GIT_CONFIG_COUNT") {
        let count: usize = count.parse().map_err(|_| Defer::BadParameters)?;
        for i in 0..count {
            let key = env(&format!("GIT_CONFIG_KEY_{i}")).ok_or(Defer::BadParameters)?;
            let value = std::env::var(format!("GIT_CONFIG_VALUE_{i}")).unwrap_or_default();
            entries.push((canonical_key(&key).ok_or(Defer::BadParameters)?, value));
        }
    }
    if let Some(parameters) = env("GIT_CONFIG_PARAMETERS") {
        for (key, value) in parse_parameters(&parameters).ok_or(Defer::BadParameters)? {
            entries.push((canonical_key(&key).ok_or(Defer::BadParameters)?, value));
        }
    }
    if entries.iter().any(|(k, _)| is_include(k)) {
        return Err(Defer::Include);
    }
    Ok(())
}

fn is_include(key: &str) -> bool {
    let section = key.split('.').next().unwrap_or_default();
    section.eq_ignore_ascii_case("include") || section.eq_ignore_ascii_case("includeif")
}

/// `section.Sub.Section.Variable` → section and variable lower-case.
fn canonical_key(key: &str) -> Option<String> {
    let (section, subsection, variable) = split_key(key)?;
    let mut canonical = section.to_ascii_lowercase();
    if let Some(subsection) = subsection {
        canonical.push('.');
        canonical.push_str(subsection);
    }
    canonical.push('.');
    canonical.push_str(&variable.to_ascii_lowercase());
    Some(canonical)
}

/// `GIT_CONFIG_PARAMETERS`: shell-single-quoted items separated by spaces,
/// each `'key'='value'`, `'key'` (no value) or the older `'key=value'`.
fn parse_parameters(raw: &str) -> Option<Vec<(String, String)>> {
    let mut items = Vec::new();
    let mut rest = raw.trim_start();
    while !rest.is_empty() {
        let (first, after) = single_quoted(rest)?;
        let (key, value, after) = match after.strip_prefix('=') {
            Some(after_equals) => {
                let (value, after) = single_quoted(after_equals)?;
                (first, value, after)
            }
            None => match first.split_once('=') {
                Some((key, value)) => (key.to_owned(), value.to_owned(), after),
                None => (first, "true".to_owned(), after),
            },
        };
        items.push((key, value));
        rest = after.trim_start();
    }
    Some(items)
}

/// One `'...'` word, where `'\''` stands for a quote inside it.
fn single_quoted(input: &str) -> Option<(String, &str)> {
    let mut rest = input.strip_prefix('\'')?;
    let mut word = String::new();
    loop {
        let end = rest.find('\'')?;
        word.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        match rest.strip_prefix("\\''") {
            Some(after) => {
                word.push('\'');
                rest = after;
            }
            None => return Some((word, rest)),
        }
    }
}

/// Whitespace as git's `isspace` has it: not Unicode's, not form feed.
const GIT_SPACE: [char; 3] = [' ', '\t', '\r'];

/// The lines of a config file, each without its `\n`, and a CR before
/// that `\n` dropped, as git's reader drops it; a CR without a `\n` after
/// it (at the very end) stays and counts as a character.
fn config_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    let last = lines.len() - 1;
    for line in &mut lines[..last] {
        *line = line.strip_suffix('\r').unwrap_or(line);
    }
    lines
}

/// Parses one config file's text into `entries`, as git's parser does.
fn parse_file(text: &str, path: &Path, entries: &mut Vec<(String, String)>) -> Result<(), Defer> {
    let syntax = |line: usize| Defer::Syntax {
        path: path.to_owned(),
        line,
    };
    // git's C strings end at a NUL: let git itself say what it makes of one.
    if text.contains('\0') {
        return Err(syntax(1));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut section: Option<String> = None;
    let lines = config_lines(text);
    let mut index = 0;
    while index < lines.len() {
        let line_number = index + 1;
        let mut line = lines[index].trim_start_matches(GIT_SPACE);
        index += 1;
        if line.starts_with('[') {
            let (header, rest) = parse_header(line).ok_or_else(|| syntax(line_number))?;
            if is_include(&format!("{header}.x")) {
                return Err(Defer::Include);
            }
            section = Some(header);
            line = rest.trim_start_matches(GIT_SPACE);
        }
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(line.len());
        let name = &line[..name_end];
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(syntax(line_number));
        }
        let current = section.as_ref().ok_or_else(|| syntax(line_number))?;
        let after = line[name_end..].trim_start_matches([' ', '\t']);
        let value = if let Some(raw) = after.strip_prefix('=') {
            let mut continuation = lines[index..].iter().copied();
            let (value, lines_used) =
                parse_value(raw, &mut continuation).ok_or_else(|| syntax(line_number))?;
            index += lines_used;
            value
        } else if after.is_empty() {
            // A bare name is a boolean true; anything after it, even a
            // comment, is an error to git.
            "true".to_owned()
        } else {
            return Err(syntax(line_number));
        };
        let key = format!("{current}.{}", name.to_ascii_lowercase());
        if is_include(&key) {
            return Err(Defer::Include);
        }
        entries.push((key, value));
    }
    Ok(())
}

/// `[section]`, `[section "sub section"]` or the old `[section.sub]`;
/// returns the canonical prefix and what follows the `]`.
fn parse_header(line: &str) -> Option<(String, &str)> {
    let inner = line.strip_prefix('[')?;
    let name_end = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))?;
    let name = &inner[..name_end];
    if name.is_empty() {
        return None;
    }
    let rest = &inner[name_end..];
    if let Some(after) = rest.strip_prefix(']') {
        // `[section.sub]`: the old form, subsection lower-cased.
        return Some((name.to_ascii_lowercase(), after));
    }
    // git wants at least one blank between the name and the quote.
    let spaced = rest.trim_start_matches([' ', '\t']);
    if spaced.len() == rest.len() {
        return None;
    }
    let quoted = spaced.strip_prefix('"')?;
    let mut subsection = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => subsection.push(chars.next()?.1),
            '"' => {
                let after = quoted[i + 1..].strip_prefix(']')?;
                return Some((format!("{}.{subsection}", name.to_ascii_lowercase()), after));
            }
            _ => subsection.push(c),
        }
    }
    None
}

/// A value as git (2.47) reads it, from `first` (the rest of the line
/// after `=`) and, after a `\` that ends a line, the lines that follow:
/// quotes group, `#`/`;` outside quotes start a comment that runs to the
/// end of the line (a `\` in it continues nothing), whitespace between
/// words is kept verbatim and dropped at either end, and escapes are
/// `\n \t \b \" \\`. Returns the value and how many more lines it took.
fn parse_value<'a>(
    first: &'a str,
    next_lines: &mut impl Iterator<Item = &'a str>,
) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut quoted = false;
    let mut pending_space = String::new();
    let mut lines_used = 0;
    let mut line = first;
    'lines: loop {
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if !quoted && GIT_SPACE.contains(&c) {
                if !value.is_empty() {
                    pending_space.push(c);
                }
                continue;
            }
            if !quoted && (c == '#' || c == ';') {
                break;
            }
            // Anything else keeps the blanks before it, even a `\` that
            // only joins lines.
            value.push_str(&pending_space);
            pending_space.clear();
            match c {
                '"' => quoted = !quoted,
                '\\' => match chars.next() {
                    None => match next_lines.next() {
                        Some(next) => {
                            lines_used += 1;
                            line = next;
                            continue 'lines;
                        }
                        // A `\` at the very end of the file ends the value.
                        None => break,
                    },
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some('b') => value.push('\u{8}'),
                    Some(escaped @ ('"' | '\\')) => value.push(escaped),
                    Some(_) => return None,
                },
                other => value.push(other),
            }
        }
        break;
    }
    if quoted {
        return None;
    }
    Some((value, lines_used))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, String)>, Defer> {
        let mut entries = Vec::new();
        parse_file(text, Path::new("test"), &mut entries)?;
        Ok(entries)
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sections_subsections_and_values() {
        let text = "# comment\n[Keygate \"https://Git.example.com\"]\n\tClientId = abc ; trailing\n\
                    \tscopes = \"read  write\"  repo\n\tflag\n[http]sslCAInfo=/tmp/ca.pem\n\
                    [old.Style]\n\tkey = v\n";
        assert_eq!(
            parse(text).unwrap(),
            pairs(&[
                ("keygate.https://Git.example.com.clientid", "abc"),
                (
                    "keygate.https://Git.example.com.scopes",
                    "read  write  repo"
                ),
                ("keygate.https://Git.example.com.flag", "true"),
                ("http.sslcainfo", "/tmp/ca.pem"),
                ("old.style.key", "v"),
            ])
        );
    }

    #[test]
    fn escapes_continuations_and_crlf() {
        let text = "[a]\r\n\tx = one\\\n two\r\n\ty = \"q\\\"uote\\\\\" \\t#c\n";
        assert_eq!(
            parse(text).unwrap(),
            pairs(&[("a.x", "one two"), ("a.y", "q\"uote\\ \t")])
        );
    }

    #[test]
    fn includes_and_bad_syntax_defer_to_git() {
        assert!(matches!(
            parse("[include]\n\tpath = x\n"),
            Err(Defer::Include)
        ));
        assert!(matches!(
            parse("[includeIf \"gitdir:~/w/\"]\n\tpath = x\n"),
            Err(Defer::Include)
        ));
        assert!(matches!(
            parse("[a]\n\tx = \"open\n"),
            Err(Defer::Syntax { line: 2, .. })
        ));
        assert!(matches!(
            parse("x = 1\n"),
            Err(Defer::Syntax { line: 1, .. })
        ));
        assert!(matches!(
            parse("[a]\n\tx = bad\\q\n"),
            Err(Defer::Syntax { .. })
        ));
    }

    #[test]
    fn git_config_parameters_in_both_forms() {
        let parsed = parse_parameters(
            "'credential.interactive'='false' 'keygate.https://h.x.clientid=it'\\''s' 'core.flag'",
        )
        .unwrap();
        assert_eq!(
            parsed,
            pairs(&[
                ("credential.interactive", "false"),
                ("keygate.https://h.x.clientid", "it's"),
                ("core.flag", "true"),
            ])
        );
        assert!(parse_parameters("'unterminated").is_none());
    }

    /// git itself is the oracle: every file here must parse to exactly
    /// what `git config --list` prints for it.
    #[test]
    fn agrees_with_git_on_tricky_files() {
        let files = [
            "[keygate \"https://Git.Example.com:8443/org\"]\n\tclientId = a b\t c # note\n",
            "[keygate \"https://h.example\"] scopes = \"x  y\" z ; c\n\tempty =\n\tbare\n",
            "[http \"https://h.example/\"]\r\n  sslCAInfo = /p/with\\\\backslash\r\n",
            "[credential]\n\tinteractive = never\n[Credential \"https://x\"]\n\tUserName = u\n",
            "[keygate]\n\tstore = file\n\tlong = one \\\n  two\n[a.B]\n\tc = \"q\\\"\\t\"\n",
            "\u{feff}[keygate \"sub \\\" quote\"]\n\tx = 1\n",
            // Found by fuzz/gitconfig_vs_git:
            "[keygate \"https://h.example\"]\n\ta = x ; note \\\n\tclientid = abc\n",
            "[keygate \"https://h.example\"]\n\tclientid = abc \\\n\n",
            "[k]\n\tx = \"q\" \\\n  y\r\n\tz = a\rb\r",
        ];
        for (i, text) in files.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format!("config{i}"));
            std::fs::write(&path, text).unwrap();
            let output = Command::new("git")
                .args(["config", "-z", "--list", "-f"])
                .arg(&path)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
                .unwrap();
            assert!(output.status.success(), "git rejects fixture {i}");
            let expected = GitConfig::parse_z(&output.stdout).entries;
            assert_eq!(parse(text).unwrap(), expected, "fixture {i}: {text:?}");
        }
    }

    /// Files git refuses (or reads through C strings): keygate leaves
    /// them to git rather than guess. Found by fuzz/gitconfig_vs_git.
    #[test]
    fn what_git_refuses_is_left_to_git() {
        for text in [
            "[keygate \"https://h.example\"]\n\tflag # c\n",
            "[k]\n\tflag\r",
            "[keygate\"https://h.example\"]\n\tclientid = x\n",
            "\u{a0}[keygate \"https://h.example\"]\n\tclientid = x\n",
            "[keygate \"https://h.example\"]\n\tx = a\0b\n",
            "\u{c}\n",
        ] {
            assert!(
                matches!(parse(text), Err(Defer::Syntax { .. })),
                "{text:?} parsed as {:?}",
                parse(text)
            );
        }
    }

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn discovery_reads_a_plain_repository_and_a_gitfile() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        git(&root, &["init", "-q", "repo"]);
        std::fs::create_dir(root.join("repo/sub")).unwrap();
        let found = discover(&root.join("repo/sub")).unwrap();
        assert_eq!(found, Some(root.join("repo/.git")));
        // Under Wine the Linux git that writes the `.git` file writes a
        // Unix path into it, which no Windows git would.
        if cfg!(windows) {
            return;
        }
        git(
            &root,
            &["init", "-q", "--separate-git-dir=separate", "work"],
        );
        let found = discover(&root.join("work")).unwrap().unwrap();
        assert_eq!(found.canonicalize().unwrap(), root.join("separate"));
    }

    /// `safe.bareRepository=explicit` is git's to apply (from protected
    /// configuration only): a bare repository found by discovery, even one
    /// inside a plain repository, is never read in-process.
    #[test]
    fn a_discovered_bare_repository_is_left_to_git() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        git(&root, &["init", "-q", "outer"]);
        git(&root, &["init", "-q", "--bare", "outer/embedded.git"]);
        for start in [
            "outer/embedded.git",
            "outer/embedded.git/refs",
            "outer/.git",
        ] {
            assert!(
                matches!(discover(&root.join(start)), Err(Defer::BareRepository)),
                "{start}"
            );
        }
        // Not a repository (no valid HEAD) is not git's call to skip:
        // git walks on, so keygate lets git say where to.
        std::fs::create_dir_all(root.join("outer/fake/.git")).unwrap();
        assert!(matches!(
            discover(&root.join("outer/fake")),
            Err(Defer::UnusualRepository)
        ));
    }

    #[test]
    fn canonical_keys_keep_the_subsection_case() {
        assert_eq!(
            canonical_key("Keygate.https://Host.ClientId").as_deref(),
            Some("keygate.https://Host.clientid")
        );
    }
}
