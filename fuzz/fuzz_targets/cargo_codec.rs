//! cargo's credential-provider codec (`keygate::cargo_credential`):
//! `Request::read` on cargo's request lines, `write_answer` and
//! `write_hello` for what keygate (and its front program) answer.
//!
//! Input: `request` 0xFF `token` 0xFF `message` [0xFF `expiration`, big
//! endian]. Checks: reading never panics, and what reads is of a version
//! keygate speaks and reads the same with the newline the provider's loop
//! leaves on it; an answer is exactly one line of JSON whatever its token
//! holds, and gives cargo the token and expiry it was made of; a refusal's
//! message reaches cargo's terminal without a control character.
#![no_main]

use keygate::cargo_credential::{
    Answer, Cache, Refusal, Request, VERSIONS, write_answer, write_hello,
};
use keygate::secret::Secret;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The one line `answer` is sent as, parsed.
fn sent(answer: &Result<Answer, Refusal>) -> Value {
    let mut out = Vec::new();
    write_answer(&mut out, answer).expect("writing to memory cannot fail");
    assert_eq!(out.last(), Some(&b'\n'), "an answer ends its line");
    assert_eq!(
        out.iter().filter(|&&b| b == b'\n').count(),
        1,
        "an answer is one line: {:?}",
        String::from_utf8_lossy(&out)
    );
    serde_json::from_slice(&out).expect("an answer is JSON")
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0xFF);
    let request = parts.next().unwrap_or_default();
    let token = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let message = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let expiration = parts.next().map(|bytes| {
        bytes
            .iter()
            .fold(0u64, |n, &b| n.wrapping_shl(8) | u64::from(b))
    });

    if let Ok(line) = std::str::from_utf8(request) {
        let read = Request::read(line);
        if let Ok(request) = &read {
            assert!(
                VERSIONS.contains(&request.v),
                "read a version keygate does not speak"
            );
        }
        let with_newline = Request::read(&format!("{line}\n"));
        assert_eq!(
            read.ok(),
            with_newline.ok(),
            "the newline changed the request"
        );
    }

    let cache = match expiration {
        Some(expiration) => Cache::Expires { expiration },
        None => Cache::Session,
    };
    let get = sent(&Ok(Answer::Get {
        token: Secret::new(token.clone()),
        cache,
        operation_independent: true,
    }));
    assert_eq!(get["Ok"]["kind"], "get");
    assert_eq!(
        get["Ok"]["token"].as_str(),
        Some(token.as_str()),
        "the token changed"
    );
    match cache {
        Cache::Expires { expiration } => {
            assert_eq!(get["Ok"]["cache"], "expires");
            assert_eq!(get["Ok"]["expiration"].as_u64(), Some(expiration));
        }
        Cache::Session => {
            assert_eq!(get["Ok"]["cache"], "session");
            assert!(get["Ok"].get("expiration").is_none());
        }
    }

    let refused = sent(&Err(Refusal::other(&message)));
    assert_eq!(refused["Err"]["kind"], "other");
    let shown = refused["Err"]["message"].as_str().expect("a message");
    assert!(
        !shown.chars().any(char::is_control),
        "a control character reaches cargo's terminal: {shown:?}"
    );

    let mut hello = Vec::new();
    write_hello(&mut hello).expect("writing to memory cannot fail");
    assert_eq!(hello, b"{\"v\":[1]}\n");
});
