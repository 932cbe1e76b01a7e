//! `keygate doctor` against real set-ups: each asserts the verdicts, that
//! nothing secret is printed, and that the exit code says whether a check
//! failed.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::common::{FakeTokenServer, Options, Record, World, now, response, text};

const ACCESS: &str = "doctor-access-token-secret";
const REFRESH: &str = "doctor-refresh-token-secret";

fn doctor(world: &World, args: &[&str]) -> Output {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    world.keygate(&all)
}

/// The line of `name`'s check, panicking with the whole output if none.
#[track_caller]
fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| {
            l.get(6..)
                .is_some_and(|rest| rest.starts_with(&format!("{name}:")))
        })
        .unwrap_or_else(|| panic!("no {name} line in:\n{out}"))
}

#[track_caller]
fn assert_no_secret(output: &Output, secrets: &[&str]) {
    let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
    for secret in secrets {
        assert!(!all.contains(secret), "{secret} printed:\n{all}");
    }
}

/// An offline world whose git config makes keygate the helper for
/// `server` (plain http on loopback), with `server` as token endpoint too.
fn offline_for(server: &str) -> World {
    let world = World::offline();
    std::fs::write(
        world.gitconfig_path(),
        format!(
            "[credential]\n\thelper = keygate\n\
             [keygate \"{server}\"]\n\tclientId = doctor-test\n\
             \tauthUrl = {server}/auth\n\ttokenUrl = {server}/token\n"
        ),
    )
    .unwrap();
    world
}

fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[test]
fn a_healthy_setup_is_all_ok() {
    let world = World::start(Options::default());
    world.seed_token_file(
        Record::new(&world.git_url, ACCESS)
            .refresh_token(REFRESH)
            .times(now(), now() + 600),
    );
    let output = doctor(&world, &[&world.repo_url()]);
    let out = text(&output.stdout);
    assert!(output.status.success(), "{out}\n{}", text(&output.stderr));
    for name in [
        "helper chain",
        "helper program",
        "configuration",
        "token store",
        "git server",
        "oauth server",
    ] {
        assert!(line(&out, name).starts_with("ok  "), "{name}:\n{out}");
    }
    assert!(
        line(&out, "token store").contains("refresh token present"),
        "{out}"
    );
    assert!(line(&out, "git server").contains("clocks agree"), "{out}");
    assert!(line(&out, "git server").contains("ca.pem"), "{out}");
    assert!(!out.contains("FAIL") && !out.contains("WARN"), "{out}");
    assert_no_secret(&output, &[ACCESS, REFRESH]);

    let output = doctor(&world, &[&world.repo_url(), "--json"]);
    assert!(output.status.success());
    let checks: Value = serde_json::from_slice(&output.stdout).unwrap();
    let checks = checks.as_array().unwrap();
    assert!(checks.len() >= 6, "{checks:?}");
    assert!(checks.iter().all(|c| c["verdict"] == "ok"), "{checks:?}");
    assert_no_secret(&output, &[ACCESS, REFRESH]);
}

#[test]
fn a_store_helper_before_keygate_with_an_old_password_fails() {
    let world = World::start(Options::default());
    let config = std::fs::read_to_string(world.gitconfig_path()).unwrap();
    let config = config.replacen(
        "[credential]\n\thelper = keygate\n",
        "[credential]\n\thelper = store\n\thelper = keygate\n",
        1,
    );
    std::fs::write(world.gitconfig_path(), config).unwrap();
    let password = "old-password-from-2019";
    std::fs::write(
        world.home.join(".git-credentials"),
        format!(
            "https://alice:{password}@{}\n",
            world.git_url.trim_start_matches("https://")
        ),
    )
    .unwrap();
    let output = doctor(&world, &[&world.repo_url()]);
    let out = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let before = line(&out, "helper before keygate");
    assert!(before.starts_with("FAIL"), "{out}");
    assert!(before.contains(".git-credentials"), "{out}");
    assert!(out.contains("fix: remove the 127.0.0.1 line"), "{out}");
    assert_no_secret(&output, &[password]);
}

#[test]
fn no_config_for_the_url_fails_with_the_key_to_set() {
    let world = World::offline();
    std::fs::write(world.gitconfig_path(), "[credential]\n\thelper = keygate\n").unwrap();
    let url = format!("{}/org/repo.git", closed_port_url());
    let output = doctor(&world, &[&url]);
    let out = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(line(&out, "helper chain").starts_with("ok  "), "{out}");
    assert!(line(&out, "configuration").starts_with("FAIL"), "{out}");
    assert!(out.contains(".clientId"), "{out}");
}

#[test]
fn an_unreachable_server_fails_in_bounded_time() {
    // Accepts the connection and never answers: only the timeout ends it.
    let server = FakeTokenServer::start(
        response("200 OK", "text/plain", ""),
        Duration::from_secs(120),
    );
    let origin = server.url.trim_end_matches("/token").to_owned();
    let world = offline_for(&origin);
    let started = Instant::now();
    let output = doctor(&world, &[&format!("{origin}/org/repo.git")]);
    let elapsed = started.elapsed();
    let out = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    let server_line = line(&out, "git server");
    assert!(server_line.starts_with("FAIL"), "{out}");
    assert!(server_line.contains("unreachable"), "{out}");

    // A closed port fails at once.
    let closed = closed_port_url();
    let world = offline_for(&closed);
    let output = doctor(&world, &[&format!("{closed}/org/repo.git")]);
    let out = text(&output.stdout);
    assert!(line(&out, "git server").starts_with("FAIL"), "{out}");
}

#[test]
fn a_server_clock_ten_minutes_off_fails() {
    let date = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(600));
    let answer = format!(
        "HTTP/1.1 404 Not Found\r\nDate: {date}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let server = FakeTokenServer::start(answer, Duration::ZERO);
    let origin = server.url.trim_end_matches("/token").to_owned();
    let world = offline_for(&origin);
    world.seed_token_file(
        Record::new(&origin, ACCESS)
            .refresh_token(REFRESH)
            .times(now(), now() + 600),
    );
    let output = doctor(&world, &[&format!("{origin}/org/repo.git"), "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let checks: Value = serde_json::from_slice(&output.stdout).unwrap();
    let server_check = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "git server")
        .unwrap();
    assert_eq!(server_check["verdict"], "fail", "{checks:#}");
    let detail = server_check["detail"].as_str().unwrap();
    assert!(detail.contains("ahead of the server"), "{detail}");
    assert!(server_check["fix"].as_str().unwrap().contains("clock"));
    assert_no_secret(&output, &[ACCESS, REFRESH]);
}

#[test]
fn a_running_proxy_is_checked_against_https_proxy() {
    let mut world = World::start(Options::default());
    let proxy = crate::proxy_support::start_proxy(&world);
    let output = doctor(&world, &[]);
    let out = text(&output.stdout);
    let proxy_line = line(&out, "proxy");
    assert!(proxy_line.starts_with("WARN"), "{out}");
    assert!(proxy_line.contains("unset"), "{out}");
    assert_no_secret(&output, &[&proxy.password]);

    world.set_env("HTTPS_PROXY", &proxy.url);
    let output = doctor(&world, &[]);
    let out = text(&output.stdout);
    let proxy_line = line(&out, "proxy");
    assert!(proxy_line.starts_with("ok  "), "{out}");
    assert!(proxy_line.contains(&proxy.addr), "{out}");
    assert!(proxy_line.contains("ca-bundle.pem"), "{out}");
    assert_no_secret(&output, &[&proxy.password]);
}

/// The global config with keygate configured for the git server by
/// `issuer` alone (and the test client).
fn issuer_config(world: &World, issuer: &str) {
    std::fs::write(
        world.gitconfig_path(),
        format!(
            "[credential]\n\thelper = keygate\n\
             [keygate \"{git}\"]\n\tissuer = {issuer}\n\tclientId = keygate-test\n\
             [http]\n\tsslCAInfo = {ca}\n",
            git = world.git_url,
            ca = world.ca().display(),
        ),
    )
    .unwrap();
}

#[test]
fn an_issuers_metadata_is_fetched_and_checked_but_not_cached() {
    let world = World::start(Options::default());
    issuer_config(&world, world.issuer());
    let output = doctor(&world, &[&world.repo_url()]);
    let out = text(&output.stdout);
    assert!(output.status.success(), "{out}");
    let metadata = line(&out, "issuer metadata");
    assert!(metadata.starts_with("ok  "), "{out}");
    assert!(metadata.contains("token, authorization"), "{out}");
    // A login would have cached it; doctor changes nothing.
    assert!(
        !world.home.join(".local/share/keygate/metadata").exists(),
        "doctor wrote the metadata cache"
    );

    // The git server publishes no OAuth metadata.
    issuer_config(&world, &world.git_url);
    let output = doctor(&world, &[&world.repo_url()]);
    let out = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let metadata = line(&out, "issuer metadata");
    assert!(metadata.starts_with("FAIL"), "{out}");
    assert!(
        metadata.contains("publishes no OAuth server metadata"),
        "{out}"
    );
    assert!(out.contains("fix: check keygate.<url>.issuer"), "{out}");
}

#[test]
fn a_helper_program_that_hangs_is_given_up_on() {
    let world = World::offline();
    let bin = world.dir.path().join("hanging");
    std::fs::create_dir(&bin).unwrap();
    // `exec`, so the kill reaches the sleep itself and nothing outlives
    // the test.
    for name in ["git-credential-keygate", "keygate"] {
        let program = bin.join(name);
        std::fs::write(&program, "#!/bin/sh\nexec sleep 60\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(
        world.gitconfig_path(),
        format!(
            "[credential]\n\thelper = {}\n",
            bin.join("git-credential-keygate").display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let output = doctor(&world, &[]);
    let elapsed = started.elapsed();
    let out = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let program = line(&out, "helper program");
    assert!(program.starts_with("FAIL"), "{out}");
    assert!(
        program.contains("did not answer --version within 5s"),
        "{out}"
    );
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");

    // A git whose `--exec-path` hangs: doctor gives up on it and finds
    // the helper on PATH.
    let hanging_git = world.dir.path().join("hanging-git");
    std::fs::create_dir(&hanging_git).unwrap();
    let git = hanging_git.join("git");
    std::fs::write(
        &git,
        "#!/bin/sh\n[ \"$1\" = --exec-path ] && exec sleep 60\nexec /usr/bin/git \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&git, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(world.gitconfig_path(), "[credential]\n\thelper = keygate\n").unwrap();
    let path = format!(
        "{}:{}:{}",
        hanging_git.display(),
        world.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = Instant::now();
    let output = world
        .command(crate::common::KEYGATE)
        .arg("doctor")
        .env("PATH", path)
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let out = text(&output.stdout);
    let program = line(&out, "helper program");
    assert!(program.starts_with("ok  "), "{out}");
    let found = world.bin.join("git-credential-keygate");
    assert!(program.contains(&found.display().to_string()), "{out}");
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}

/// A registry's URL: a line for the container clients' `credHelpers`
/// entry and one per cargo registry on that server, none for what is
/// elsewhere.
#[test]
fn a_registry_url_gets_lines_for_container_clients_and_cargo() {
    let server = closed_port_url();
    let world = offline_for(&server);
    let host = server.trim_start_matches("http://").to_owned();
    let docker = world.home.join(".docker/config.json");
    std::fs::create_dir_all(docker.parent().unwrap()).unwrap();
    let write_helper = |helper: &str| {
        std::fs::write(
            &docker,
            serde_json::json!({"credHelpers": {host.clone(): helper, "elsewhere.test": "keygate"}})
                .to_string(),
        )
        .unwrap();
    };
    write_helper("keygate");
    std::os::unix::fs::symlink(
        crate::common::HELPER,
        world.bin.join("docker-credential-keygate"),
    )
    .unwrap();
    let cargo_home = world.home.join(".cargo");
    std::fs::create_dir_all(&cargo_home).unwrap();
    std::fs::write(
        cargo_home.join("config.toml"),
        format!(
            "[registries.kg]\nindex = \"sparse+{server}/cargo/index/\"\ncredential-provider = [\"{}\", \"cargo\"]\n\n\
             [registries.gone]\nindex = \"sparse+{server}/gone/index/\"\ncredential-provider = \"/nowhere/keygate cargo\"\n\n\
             [registries.token]\nindex = \"sparse+{server}/token/index/\"\ncredential-provider = \"cargo:token\"\n\n\
             [registries.bare]\nindex = \"sparse+{server}/bare/index/\"\n\n\
             [registries.other]\nindex = \"sparse+https://elsewhere.test/index/\"\ncredential-provider = \"cargo:token\"\n",
            crate::common::KEYGATE
        ),
    )
    .unwrap();

    let verdicts = |output: &Output| -> Vec<(String, String, String)> {
        let checks: Value = serde_json::from_slice(&output.stdout).unwrap();
        checks
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == "docker" || c["name"] == "cargo")
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["verdict"].as_str().unwrap().to_owned(),
                    c["detail"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let checked = verdicts(&doctor(&world, &["--json", &server]));
    let names: Vec<_> = checked
        .iter()
        .map(|(name, verdict, _)| format!("{name} {verdict}"))
        .collect();
    assert_eq!(
        names,
        [
            "docker ok",
            "cargo ok",
            "cargo fail",
            "cargo warn",
            "cargo warn"
        ],
        "{checked:#?}"
    );
    assert!(
        checked[0]
            .2
            .contains(&format!("credHelpers[{host}] is keygate"))
    );
    assert!(checked[1].2.starts_with("registry kg "), "{checked:#?}");
    assert!(
        checked[2]
            .2
            .contains("/nowhere/keygate, which is not there")
    );
    assert!(
        checked[3]
            .2
            .contains("\"cargo:token\": cargo never asks keygate")
    );
    assert!(checked[4].2.contains("registry bare"), "{checked:#?}");

    // Another helper for the registry: podman and skopeo never ask keygate.
    write_helper("gcloud");
    let output = doctor(&world, &[&server]);
    let said = text(&output.stdout);
    let docker_line = line(&said, "docker");
    assert!(docker_line.starts_with("WARN"), "{said}");
    assert!(docker_line.contains("docker-credential-gcloud"), "{said}");
    assert!(
        said.contains(&format!("fix: keygate setup docker {host}")),
        "{said}"
    );

    // A git host with neither: no such lines.
    std::fs::remove_file(&docker).unwrap();
    std::fs::remove_dir_all(&cargo_home).unwrap();
    assert_eq!(verdicts(&doctor(&world, &["--json", &server])), []);
}
