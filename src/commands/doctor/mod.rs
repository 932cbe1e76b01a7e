//! `keygate doctor [URL]`: why git would still ask for a password. Each
//! check is a small function returning a [`Check`] with a verdict and,
//! when something is wrong, the fix. It changes nothing (no store is
//! chosen, no token refreshed, no config written), prints no secret (only
//! whether a token or password is there), and bounds every network call.
//!
//! The checks live by family, one module each, in the order they run:
//! the helpers git runs and their settings (`helper_chain`), the program
//! git finds (`helper_program`), the `keygate.<url>` section
//! (`configuration`), the store (`token_store`), the servers (`servers`),
//! the package managers (`packages`) and the proxy (`proxy`).

use std::io::Write;

use serde::Serialize;
use url::Url;

mod configuration;
mod helper_chain;
mod helper_program;
mod packages;
mod proxy;
mod servers;
mod token_store;

use super::{CommandError, Outcome};
use crate::config::{self, GitConfig};
use crate::text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// One line of the diagnosis.
#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Runs every check for `raw_url` (or those that need no URL), writes
/// them as lines or `--json`, and returns [`Outcome::Unwell`] when one
/// failed so the exit code says so.
pub fn doctor(
    config: &GitConfig,
    raw_url: Option<&str>,
    json: bool,
    mut output: impl Write,
) -> Result<Outcome, CommandError> {
    let url = raw_url.map(super::parse_url).transpose()?;
    let checks = run_checks(config, url.as_ref());
    if json {
        serde_json::to_writer_pretty(&mut output, &checks)?;
        writeln!(output)?;
    } else {
        for check in &checks {
            let mark = match check.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
            };
            // Details hold hosts, paths and server text: nothing of them
            // may drive the terminal.
            writeln!(
                output,
                "{mark}  {}: {}",
                check.name,
                text::escape(&check.detail)
            )?;
            if let Some(fix) = &check.fix {
                writeln!(output, "      fix: {}", text::escape(fix))?;
            }
        }
    }
    if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        Ok(Outcome::Unwell)
    } else {
        Ok(Outcome::Done)
    }
}

fn run_checks(config: &GitConfig, url: Option<&Url>) -> Vec<Check> {
    let mut checks = helper_chain::checks(config, url);
    checks.push(helper_program::check(config, url));
    let provider = match url {
        Some(url) => {
            let (check, provider) = configuration::check(config, url);
            checks.push(check);
            provider
        }
        None => None,
    };
    checks.push(token_store::check(config, url, provider.as_ref()));
    if let Some(url) = url {
        checks.extend(servers::checks(config, url, provider.as_ref()));
        checks.extend(packages::checks(config, url));
    }
    checks.extend(proxy::check());
    checks
}

fn origin_text(url: &Url) -> String {
    config::origin_of(url)
        .as_str()
        .trim_end_matches('/')
        .to_owned()
}
