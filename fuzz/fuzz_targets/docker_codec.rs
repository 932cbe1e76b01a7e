//! Docker's credential-helper codec (`keygate::docker_credential`): the
//! server URL of `get`/`erase` (`server_url`, `registry_url`,
//! `registry_host`), `store`'s JSON (`StoreRequest::parse`), and the
//! answers of `get` (`Credentials::write`) and `list` (`write_list`).
//!
//! Input: `request` 0xFF `username` 0xFF `secret`. Checks: nothing panics;
//! a server URL is trimmed and not empty; a registry URL is http(s) with a
//! host and no user, password, query or fragment, and for https its host
//! reads back to itself; a refused URL with a user name in it is not
//! echoed; a store request has a server URL and a user name, and its
//! secret never shows in its `Debug`; answers are one line of JSON that
//! reads back to what was written.
#![no_main]

use std::collections::BTreeMap;

use keygate::docker_credential::{
    Credentials, StoreRequest, registry_host, registry_url, server_url, write_list,
};
use keygate::secret::Secret;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn one_line(out: &[u8]) -> Value {
    assert_eq!(out.last(), Some(&b'\n'), "an answer ends its line");
    assert_eq!(
        out.iter().filter(|&&b| b == b'\n').count(),
        1,
        "an answer is one line: {:?}",
        String::from_utf8_lossy(out)
    );
    serde_json::from_slice(out).expect("an answer is JSON")
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0xFF);
    let request = parts.next().unwrap_or_default();
    let username = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let secret = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();

    if let Ok(server) = server_url(request) {
        assert!(!server.is_empty() && server.trim() == server, "{server:?}");
        match registry_url(&server) {
            Ok(url) => {
                assert!(matches!(url.scheme(), "https" | "http"), "{url}");
                assert!(url.host_str().is_some_and(|h| !h.is_empty()), "{url}");
                assert!(
                    url.username().is_empty() && url.password().is_none(),
                    "{url}"
                );
                assert!(url.query().is_none() && url.fragment().is_none(), "{url}");
                let host = registry_host(&url);
                if url.scheme() == "https" {
                    let again = registry_url(&host).expect("a registry host reads back");
                    assert_eq!(registry_host(&again), host, "{url}");
                }
            }
            Err(error) => {
                if server.contains('@') {
                    assert!(!error.to_string().contains(&server), "{error}");
                }
            }
        }
    }

    if let Ok(store) = StoreRequest::parse(request) {
        assert!(!store.server_url.is_empty() && !store.username.is_empty());
        let blank = StoreRequest {
            server_url: store.server_url.clone(),
            username: store.username.clone(),
            secret: Secret::new(""),
        };
        assert_eq!(
            format!("{store:?}"),
            format!("{blank:?}"),
            "the secret shows"
        );
    }

    let server = String::from_utf8_lossy(request).into_owned();
    let mut out = Vec::new();
    Credentials {
        server_url: server.clone(),
        username: username.clone(),
        secret: Secret::new(secret.clone()),
    }
    .write(&mut out)
    .expect("writing to memory cannot fail");
    let answer = one_line(&out);
    assert_eq!(answer["ServerURL"].as_str(), Some(server.as_str()));
    assert_eq!(answer["Username"].as_str(), Some(username.as_str()));
    assert_eq!(answer["Secret"].as_str(), Some(secret.as_str()));

    let entries = BTreeMap::from([(server, username)]);
    let mut out = Vec::new();
    write_list(&entries, &mut out).expect("writing to memory cannot fail");
    let listed: BTreeMap<String, String> =
        serde_json::from_value(one_line(&out)).expect("a list is a map of strings");
    assert_eq!(listed, entries);
});
