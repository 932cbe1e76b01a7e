//! Differential: the in-process git config reader against git itself.
//!
//! keygate reads git's config files in-process and promises that whatever
//! it does not model exactly makes it defer to `git config`, "so the
//! answer is always git's". This target writes the input as the global
//! config file, loads it with `PATH` pointing at no git (so a deferral
//! shows up as a spawn error instead of silently asking git), and, when the
//! in-process reader answered, asks the real `git config` through
//! `GitConfig::load_with_git()` and requires the same entries, in the same
//! order. It needs `git` on the real `PATH`; it is slow (one git process
//! per input), so run it for minutes, not hours.
//!
//! Input: the config file's text (must be UTF-8: keygate and git both
//! replace invalid bytes, but not at the same granularity).
//!
//! `KEYGATE_FUZZ_SKIP_KNOWN=1` skips inputs that hit divergences already
//! found (see fuzz/README.md), so a run can look for new ones:
//! whitespace other than space, tab, CR and LF anywhere, a CR that does
//! not end a line, NUL anywhere, and a section header with a quote right
//! after the section name (`[name"sub"]`), and a `#` or `;` after a
//! variable name with no `=` (`flag # comment`), and a line with a `#` or
//! `;` that ends in a backslash (`x = 1 ; comment \`), and whitespace
//! before a line-continuation backslash (`x = a \`).
#![no_main]

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use keygate::gitconfig::GitConfig;
use libfuzzer_sys::fuzz_target;

mod scratch;

struct Env {
    config_file: PathBuf,
    no_git: PathBuf,
    real_path: OsString,
    skip_known: bool,
}

/// Inputs that reach a divergence already reported.
fn hits_known_divergence(text: &str) -> bool {
    // keygate trims Unicode whitespace (`str::trim_start`) at the start
    // of a line; git skips only space, tab, CR and LF there.
    text.contains('\0')
        // git reads a NUL as the end of the name or value it is in;
        // keygate keeps it and what follows.
        || text.chars().any(|c| c.is_whitespace() && !matches!(c, ' ' | '\t' | '\n' | '\r'))
        // keygate takes `name<CR>anything` as a boolean; git wants the CR
        // to end the line.
        || text.replace("\r\n", "").contains('\r')
        // keygate takes `flag # comment` as a boolean; git wants the line
        // to end after a variable with no `=`.
        || text.split('\n').any(|line| {
            let before = line.split(['#', ';']).next().unwrap_or_default();
            before.len() < line.len() && !before.contains('=')
        })
        // keygate continues a comment onto the next line after a trailing
        // backslash; git ends the comment at the newline.
        || text.split('\n').any(|line| {
            line.contains(['#', ';']) && line.trim_end_matches('\r').ends_with('\\')
        })
        // git keeps whitespace before a line-continuation backslash even at
        // the end of the value; keygate drops it.
        || [" \\\n", "\t\\\n", " \\\r\n", "\t\\\r\n"]
            .iter()
            .any(|p| text.contains(p))
        // keygate takes `[name"sub"]`; git wants a space before the quote.
        || text.split('\n').any(|line| {
            line.trim_start_matches([' ', '\t', '\u{feff}'])
                .strip_prefix('[')
                .is_some_and(|inner| {
                    inner
                        .trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                        .starts_with('"')
                })
        })
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let root = scratch::scratch_dir("gitconfig-vs-git");
        let work = root.join("work");
        let no_git = root.join("empty-path");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&no_git).unwrap();
        let real_path = std::env::var_os("PATH").expect("PATH must name the real git");
        // Outside any repository, so both readers see the global file only.
        std::env::set_current_dir(&work).unwrap();
        let config_file = root.join("global-config");
        // SAFETY: set before anything else runs; the fuzzer is single-threaded.
        unsafe {
            std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
            std::env::set_var("GIT_CONFIG_GLOBAL", &config_file);
            std::env::set_var("GIT_CEILING_DIRECTORIES", &root);
            for name in [
                "GIT_DIR",
                "GIT_CONFIG_COUNT",
                "GIT_CONFIG_PARAMETERS",
                "GIT_CONFIG",
                "GIT_CONFIG_SYSTEM",
            ] {
                std::env::remove_var(name);
            }
        }
        Env {
            config_file,
            no_git,
            real_path,
            skip_known: std::env::var_os("KEYGATE_FUZZ_SKIP_KNOWN").is_some_and(|v| v == "1"),
        }
    })
}

fn set_path(path: &std::ffi::OsStr) {
    // SAFETY: the fuzzer is single-threaded.
    unsafe { std::env::set_var("PATH", path) };
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if env.skip_known && hits_known_divergence(text) {
        return;
    }
    std::fs::write(&env.config_file, text).unwrap();

    set_path(env.no_git.as_os_str());
    let in_process = GitConfig::load();
    set_path(&env.real_path);
    let Ok(in_process) = in_process else {
        // Deferred to git (include, a line it cannot parse, ...): nothing
        // of keygate's own to compare.
        return;
    };
    match GitConfig::load_with_git() {
        Ok(git) => assert_eq!(
            format!("{in_process:?}"),
            format!("{git:?}"),
            "in-process reader and git disagree on {text:?}"
        ),
        Err(error) => panic!(
            "in-process reader accepted a file git rejects ({error}): {text:?} -> {in_process:?}"
        ),
    }
});
