//! The manual pages `keygate man` writes (and install.sh installs): each
//! renders cleanly with man-db, and keygate-config(5) documents exactly
//! the keys the code reads.

use std::path::Path;
use std::process::Command;

use keygate::config::Key;

use crate::common::{self, ok, text};

/// Writes the pages into a fresh directory with the binary under test.
fn write_pages(dir: &Path) -> Vec<String> {
    let output = Command::new(common::KEYGATE)
        .arg("man")
        .arg(dir)
        .output()
        .unwrap();
    ok(&output);
    text(&output.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn every_man_page_renders_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_pages(dir.path());
    let names: Vec<String> = written
        .iter()
        .map(|p| {
            Path::new(p)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // keygate(1), one page for each command with options, keygate-config(5).
    for page in [
        "keygate.1",
        "keygate-login.1",
        "keygate-logout.1",
        "keygate-status.1",
        "keygate-setup.1",
        "keygate-proxy.1",
        "keygate-completions.1",
        "keygate-config.5",
    ] {
        assert!(names.iter().any(|n| n == page), "{page} not in {names:?}");
    }
    // The hidden command that writes them has no page of its own.
    assert!(!names.iter().any(|n| n == "keygate-man.1"), "{names:?}");
    for page in &written {
        let output = Command::new("man")
            .args(["--warnings", "-l", page])
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        ok(&output);
        assert_eq!(text(&output.stderr), "", "{page} renders with warnings");
        assert!(text(&output.stdout).contains("NAME"), "{page}");
    }
    let keygate = man_text(&dir.path().join("keygate.1"));
    for command in ["keygate-login(1)", "keygate-proxy(1)", "keygate-config(5)"] {
        assert!(keygate.contains(command), "keygate(1) names {command}");
    }
    let logout = man_text(&dir.path().join("keygate-logout.1"));
    assert!(logout.contains("--forget-client"), "{logout}");
}

/// keygate-config(5)'s KEYS section lists every key the code reads
/// (`Key::ALL`, which every read goes through: see
/// `config::keys::tests::keygate_keys_are_read_only_through_key`) and no other,
/// each with its meaning and, where it has one, its default.
#[test]
fn config_page_lists_exactly_the_keys_the_code_reads() {
    let dir = tempfile::tempdir().unwrap();
    write_pages(dir.path());
    let page = man_text(&dir.path().join("keygate-config.5"));
    let keys_section = page
        .split_once("\nKEYS\n")
        .and_then(|(_, rest)| rest.split_once("\nSEE ALSO\n"))
        .map(|(keys, _)| keys)
        .unwrap_or_else(|| panic!("no KEYS section in {page}"));
    // Each key is a heading indented by seven columns (`.TP`).
    let documented: Vec<&str> = keys_section
        .lines()
        .filter_map(|line| line.strip_prefix("       "))
        .filter(|line| line.starts_with("keygate."))
        .collect();
    let read: Vec<String> = Key::ALL.iter().map(|k| k.full_name()).collect();
    assert_eq!(documented, read, "the page's keys against Key::ALL");
    // Justified text: runs of spaces count as one.
    let keys_section = keys_section
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for key in Key::ALL {
        let first_words: String = key
            .meaning()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(keys_section.contains(&first_words), "{key:?}'s meaning");
        if !key.default().is_empty() {
            let start: String = key
                .default()
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                keys_section.contains(&format!("Default: {start}")),
                "{key:?}'s default"
            );
        }
    }
}

/// The page as a person reads it, wide enough that no line breaks inside a
/// key's name.
fn man_text(page: &Path) -> String {
    let output = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "200")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    ok(&output);
    text(&output.stdout)
}
