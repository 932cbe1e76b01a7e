//! The authorization redirect's query (`parse_redirect`), reached through
//! its public entry point: the scheme-redirect handoff. `parse_redirect`
//! lives in the private `oauth::loopback` module; the only public way to
//! it is a login registered with `handoff::Waiting::register(dir, state)`
//! receiving a URL that `handoff::deliver(dir, url)` (what
//! `keygate callback URL` runs) sends it over the local channel.
//!
//! Input: a flag byte, the flow's state, 0xFF, the redirect URL's query.
//! With flag bit 0 set, `state=<the flow's state>&` is put in front of the
//! query, so the callback reaches the waiting flow (the channel is named
//! after the first `state` in the URL) while the rest of the query is the
//! fuzzer's.
//!
//! Checks: nothing panics; the flow accepts a code only when the query
//! (as the flow receives it) carries a `state` equal to the flow's, no
//! `error`, and a non-empty `code`, and the code it returns is one of the
//! query's `code` values; a query with exactly one `state`, equal to the
//! flow's, no `error` and exactly one non-empty `code` is accepted;
//! `deliver` reports success exactly when the flow accepted.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use keygate::oauth::handoff::{self, HandoffError, Waiting};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use url::Url;

mod scratch;

struct Env {
    dir: PathBuf,
    runtime: Runtime,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = scratch::scratch_dir("redirect");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Env { dir, runtime }
    })
}

/// What the flow's side will see: the first line `deliver` writes, parsed
/// as a URL (both sides' URL parsing drops tabs and newlines, but the
/// channel is line-framed, so only the first line arrives).
fn received_query(url: &str) -> Option<Vec<(String, String)>> {
    let line = url.split('\n').next().unwrap_or_default();
    let parsed = Url::parse(line.trim_end()).ok()?;
    Some(
        url::form_urlencoded::parse(parsed.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(2, |&b| b == 0xff);
    let state = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let mut url = String::from("com.example.keygate:/callback?");
    if flags & 1 != 0 {
        url.push_str("state=");
        url.extend(url::form_urlencoded::byte_serialize(state.as_bytes()));
        url.push('&');
    }
    url.push_str(&query);

    let (accepted, delivered) = env.runtime.block_on(async {
        let _guard = env.runtime.enter();
        let waiting = match Waiting::register(&env.dir, &state) {
            Ok(waiting) => waiting,
            // A state too long for a socket path, say: nothing to test.
            Err(_) => return (None, None),
        };
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let (dir, sent) = (env.dir.clone(), url.clone());
        let sender = std::thread::spawn(move || {
            let _ = tx.send(handoff::deliver(&dir, &sent));
        });
        let wait = waiting.wait(Duration::from_secs(10));
        tokio::pin!(wait);
        let result = tokio::select! {
            biased;
            outcome = &mut wait => (Some(outcome), Some((&mut rx).await.unwrap())),
            delivered = &mut rx => {
                let delivered = delivered.unwrap();
                let reached = !matches!(
                    delivered,
                    Err(HandoffError::BadUrl(_) | HandoffError::NoState | HandoffError::NoFlowWaiting)
                );
                // The flow answers before `deliver` can return, so if the
                // callback reached it, its outcome is ready (or it kept
                // waiting: a callback that sent no whole line).
                let outcome = if reached {
                    tokio::time::timeout(Duration::from_millis(200), wait).await.ok()
                } else {
                    None
                };
                (outcome, Some(delivered))
            }
        };
        // Joined, so no thread outlives the input (LeakSanitizer would
        // count its thread-local storage as a leak).
        sender.join().unwrap();
        result
    });
    let (Some(accepted), Some(delivered)) = (accepted, delivered) else {
        return;
    };

    let pairs = received_query(&url);
    let values = |key: &str| -> Vec<&str> {
        pairs
            .iter()
            .flatten()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let (states, codes, errors) = (values("state"), values("code"), values("error"));
    match &accepted {
        Ok(code) => {
            assert!(
                states.contains(&state.as_str()),
                "accepted a redirect without the flow's state {state:?}: {url:?}"
            );
            assert!(
                errors.is_empty(),
                "accepted a redirect carrying an error: {url:?}"
            );
            assert!(!code.expose().is_empty(), "accepted an empty code: {url:?}");
            assert!(
                codes.contains(&code.expose()),
                "the code returned is not one the redirect carried: {url:?}"
            );
        }
        Err(error) => {
            let clean = states == [state.as_str()]
                && errors.is_empty()
                && codes.len() == 1
                && !codes[0].is_empty();
            assert!(!clean, "refused a valid redirect ({error}): {url:?}");
        }
    }
    assert_eq!(
        delivered.is_ok(),
        accepted.is_ok(),
        "deliver said {delivered:?} but the flow {} for {url:?}",
        if accepted.is_ok() {
            "accepted"
        } else {
            "refused"
        }
    );
});
