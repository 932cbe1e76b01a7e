//! git, cargo and a container client together: the promise that
//! every caller of one account shares one session. Real clients against
//! the servers of tests/it/containers.rs (Debian's registry and its token
//! server) and tests/it/cargo.rs (the sparse registry on the git server),
//! all three sharing the git server's login.

use std::process::Stdio;

use crate::cargo::{Cargo, fingerprint, project, registry_requests};
use crate::common::{Options, ok, text};
use crate::containers::{push, world_with_registry};

/// At one stale instant: `git ls-remote`, `cargo fetch` (each in a cargo
/// home of its own, as cargo processes sharing one wait for each other's
/// package cache lock) and `skopeo inspect`, 16 in all, started together.
/// The OAuth server sees one refresh.
#[test]
fn sixteen_callers_across_git_cargo_and_skopeo_at_expiry_refresh_once() {
    let (world, registry) = world_with_registry(Options::default());
    ok(&world.keygate(&["setup", "docker", &registry.host]));
    ok(&world.keygate(&["login", &world.repo_url()]));
    ok(&push(&world, &registry, "private/hello:1"));
    let image = registry.image("private/hello:1");
    // cargo as install.sh and `keygate setup cargo` set it up: through
    // the front program, which hands a stale token's request to keygate.
    let cargos: Vec<_> = (0..5)
        .map(|i| {
            let cargo = Cargo::in_home(&world, &format!("cargo-home-{i}"));
            cargo.through_front(&world);
            let app = project(&world, &format!("app{i}"), &[("keygate-hello", "kg")]);
            (cargo, app)
        })
        .collect();
    world.expire_stored_token();
    let refreshes = world.token_requests("refresh_token");
    let registry_tokens = registry.token_requests().len();

    let mut children = Vec::new();
    for i in 0..16 {
        let (what, mut command) = match i % 3 {
            0 => {
                let mut command = world.command("git");
                command.args(["ls-remote", &world.repo_url()]);
                ("git ls-remote", command)
            }
            1 => {
                let (cargo, app) = &cargos[i / 3];
                ("cargo fetch", cargo.command(&world, app, &["fetch"]))
            }
            _ => {
                let mut command = world.command("skopeo");
                command.args(["--insecure-policy", "inspect", &image]);
                ("skopeo inspect", command)
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        children.push((what, child));
    }
    let mut ran = Vec::new();
    for (what, child) in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{what} failed: {}",
            text(&output.stderr)
        );
        ran.push(what);
    }
    for what in ["git ls-remote", "cargo fetch", "skopeo inspect"] {
        assert!(ran.iter().filter(|r| **r == what).count() >= 5, "{ran:?}");
    }
    assert_eq!(
        world.token_requests("refresh_token") - refreshes,
        1,
        "one refresh for git, cargo and skopeo together"
    );
    assert_eq!(world.authorization_requests(), 1, "the one login");

    // And each client carried the refreshed token.
    let token = world.stored_account()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let downloads: Vec<_> = registry_requests(&world)
        .into_iter()
        .filter(|r| r["path"] == "/cargo/dl/keygate-hello/0.1.0/download")
        .collect();
    assert_eq!(downloads.len(), 5, "{downloads:?}");
    assert!(
        downloads
            .iter()
            .all(|r| r["status"] == 200 && r["token_sha256"] == fingerprint(&token).as_str()),
        "{downloads:?}"
    );
    let skopeo_tokens = &registry.token_requests()[registry_tokens..];
    assert!(
        !skopeo_tokens.is_empty()
            && skopeo_tokens.iter().all(|r| r["active"] == true
                && r["token_sha256"] == registry_fingerprint(&token).as_str()),
        "{skopeo_tokens:?}"
    );
}

/// How the registry's token server logs a token: 16 hex digits of its
/// SHA-256 (the git server logs 12: [`fingerprint`]).
fn registry_fingerprint(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.as_bytes());
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..16]
        .to_owned()
}
