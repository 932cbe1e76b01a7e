//! Container registries: `docker-credential-keygate` run by a real client
//! (Debian's `skopeo`, which reads `credHelpers`) against Debian's
//! `docker-registry` (distribution 2.8) in token-authentication mode,
//! whose token server (tests/support/registry_token_server.py) takes
//! HTTP Basic `oauth2:<access token>` only when the OAuth test server
//! calls the token active. The registry shares the git server's login
//! (`tokensFrom`), so git and skopeo use one session.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// The program clients run for `credHelpers` value `keygate`: what
/// install.sh installs (`.ci/run` sets `KEYGATE_DOCKER_HELPER_BIN`), else
/// the front program under Docker's name, as install.sh installs it.
const DOCKER_HELPER: &str = match option_env!("KEYGATE_DOCKER_HELPER_BIN") {
    Some(bin) => bin,
    None => HELPER,
};

const NOT_FOUND: &str = "credentials not found in native keychain\n";

/// The registry and its token server, stopped on drop.
pub(crate) struct Registry {
    /// `127.0.0.1:PORT`: the key in `credHelpers`, the host in image names.
    pub(crate) host: String,
    events: PathBuf,
    log: PathBuf,
    token_server_log: PathBuf,
    _servers: Vec<Guard>,
}

impl Registry {
    fn start(world: &World) -> Registry {
        let introspect = world.oidc["introspection_endpoint"].as_str().unwrap();
        let mut token_cmd = Command::new("python3");
        token_cmd
            .arg(support("registry_token_server.py"))
            .arg("--dir")
            .arg(&world.certs)
            .arg("--introspect")
            .arg(introspect);
        let token_server_log = world.dir.path().join("registry-token-server.log");
        let (token_guard, token) =
            start_server(token_cmd, "registry token server", &token_server_log);

        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let host = format!("127.0.0.1:{port}");
        let storage = world.dir.path().join("registry-storage");
        std::fs::create_dir_all(&storage).unwrap();
        let config = world.dir.path().join("registry.yml");
        let certs = world.certs.display();
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: info\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {storage}\n\
                 http:\n  addr: {host}\n  secret: keygate-test-registry\n  \
                 tls:\n    certificate: {certs}/server.pem\n    key: {certs}/server-key.pem\n\
                 auth:\n  token:\n    realm: {realm}\n    service: {service}\n    \
                 issuer: {issuer}\n    rootcertbundle: {bundle}\n",
                storage = storage.display(),
                realm = token["realm"].as_str().unwrap(),
                service = token["service"].as_str().unwrap(),
                issuer = token["issuer"].as_str().unwrap(),
                bundle = token["rootcertbundle"].as_str().unwrap(),
            ),
        )
        .unwrap();
        let log = world.dir.path().join("registry.log");
        let mut registry = Command::new("docker-registry")
            .args(["serve"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(world.dir.path().join("registry.err")).unwrap())
            .spawn()
            .expect("docker-registry (Debian package docker-registry; test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&host).is_err() {
            if let Ok(Some(status)) = registry.try_wait() {
                let err = std::fs::read_to_string(world.dir.path().join("registry.err"));
                panic!("docker-registry exited ({status}): {err:?}");
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry never listened on {host}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            host,
            events: world.certs.join("registry-tokens.jsonl"),
            log,
            token_server_log,
            // Dropped in order: the registry, then its token server.
            _servers: vec![Guard::new(registry), token_guard],
        }
    }

    pub(crate) fn image(&self, name: &str) -> String {
        format!("docker://{}/{name}", self.host)
    }

    /// Every token request the token server answered or refused.
    pub(crate) fn token_requests(&self) -> Vec<Value> {
        read_jsonl(&self.events)
    }
}

/// A started world whose registry shares the git server's login, with
/// `docker-credential-keygate` on PATH and a private runtime directory.
pub(crate) fn world_with_registry(options: Options) -> (World, Registry) {
    let mut world = World::start(options);
    std::os::unix::fs::symlink(DOCKER_HELPER, world.bin.join("docker-credential-keygate")).unwrap();
    let run = world.dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    world.set_env("XDG_RUNTIME_DIR", run.to_str().unwrap());
    let registry = Registry::start(&world);
    configure_registry(&world, &registry);
    (world, registry)
}

/// `[keygate "https://REGISTRY"] tokensFrom = GIT SERVER, username = oauth2`.
fn configure_registry(world: &World, registry: &Registry) {
    world.write_gitconfig(&format!(
        "[keygate \"https://{}\"]\n\ttokensFrom = {}\n\tusername = oauth2\n",
        registry.host, world.git_url
    ));
}

pub(crate) fn skopeo(world: &World, args: &[&str]) -> Output {
    world
        .command("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo (Debian package skopeo; test.sh installs it)")
}

/// A tiny OCI image, made locally: `oci:DIR:latest`.
fn local_image(world: &World) -> String {
    let dir = world.dir.path().join("image");
    let made = Command::new(support("make_oci_image.sh"))
        .arg(&dir)
        .output()
        .unwrap();
    ok(&made);
    format!("oci:{}:latest", dir.display())
}

pub(crate) fn push(world: &World, registry: &Registry, name: &str) -> Output {
    let source = local_image(world);
    skopeo(world, &["copy", &source, &registry.image(name)])
}

/// `docker-credential-keygate VERB` with `input`, as a client runs it.
fn helper(world: &World, verb: &str, input: &str) -> Output {
    let mut command = world.command(world.bin.join("docker-credential-keygate"));
    command.arg(verb);
    run_with_input(command, input.as_bytes())
}

fn stored_tokens(world: &World) -> (String, String) {
    let account = world.stored_account();
    (
        account["access_token"].as_str().unwrap().to_owned(),
        account["refresh_token"].as_str().unwrap().to_owned(),
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn skopeo_pushes_and_inspects_with_keygates_token_and_refreshes_once_after_expiry() {
    let (world, registry) = world_with_registry(Options::default());
    let setup = world.keygate(&["setup", "docker", &registry.host]);
    ok(&setup);
    let report = text(&setup.stdout);
    assert!(report.contains("sharing the login of"), "{report}");
    for file in [".docker/config.json", ".config/containers/auth.json"] {
        let written: Value =
            serde_json::from_str(&read(&world.home.join(file))).expect("an auth file");
        assert_eq!(written["credHelpers"][&registry.host], "keygate", "{file}");
    }

    // The first push logs in through the (scripted) browser.
    let pushed = push(&world, &registry, "private/hello:1");
    ok(&pushed);
    assert_eq!(world.authorization_requests(), 1, "one login");
    let inspected = skopeo(&world, &["inspect", &registry.image("private/hello:1")]);
    ok(&inspected);
    let manifest: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(
        manifest["Name"],
        format!("{}/private/hello", registry.host).as_str()
    );
    let (access_token, refresh_token) = stored_tokens(&world);
    let mut secrets = vec![access_token.clone(), refresh_token];

    // What skopeo was given: the stored token with a real user name.
    let answer = helper(&world, "get", &registry.host);
    ok(&answer);
    let answer: Value = serde_json::from_slice(&answer.stdout).unwrap();
    assert_eq!(answer["ServerURL"], registry.host.as_str());
    assert_eq!(answer["Username"], "oauth2");
    assert_eq!(answer["Secret"], access_token.as_str());

    let authenticated: Vec<Value> = registry
        .token_requests()
        .into_iter()
        .filter(|r| r["credentials"] == true)
        .collect();
    assert!(!authenticated.is_empty());
    assert!(
        authenticated
            .iter()
            .all(|r| r["user"] == "oauth2" && r["active"] == true && r["status"] == 200),
        "{authenticated:?}"
    );
    let first_token = authenticated[0]["token_sha256"].clone();

    // The access token runs out between two inspects: the second one
    // refreshes, once, and the registry sees the new token.
    world.expire_stored_token();
    let before = registry.token_requests().len();
    let again = skopeo(&world, &["inspect", &registry.image("private/hello:1")]);
    ok(&again);
    assert_eq!(world.token_requests("refresh_token"), 1, "one refresh");
    assert_eq!(world.authorization_requests(), 1, "no second login");
    let (access_token, refresh_token) = stored_tokens(&world);
    secrets.extend([access_token, refresh_token]);
    let later = &registry.token_requests()[before..];
    assert!(!later.is_empty());
    assert!(
        later
            .iter()
            .all(|r| r["active"] == true && r["token_sha256"] != first_token),
        "{later:?}"
    );

    // No secret in what skopeo printed (keygate's stderr included, with
    // its logging on through a refresh) or in the servers' logs.
    world.expire_stored_token();
    let mut logged = world.command("skopeo");
    logged.env("KEYGATE_LOG", "trace").args([
        "--insecure-policy",
        "--debug",
        "inspect",
        &registry.image("private/hello:1"),
    ]);
    let logged = logged.output().unwrap();
    ok(&logged);
    let (access_token, refresh_token) = stored_tokens(&world);
    secrets.extend([access_token, refresh_token]);
    let mut seen = vec![
        ("push stderr", text(&pushed.stderr)),
        ("inspect stderr", text(&inspected.stderr)),
        ("second inspect stderr", text(&again.stderr)),
        ("logged inspect stderr", text(&logged.stderr)),
        ("registry log", read(&registry.log)),
        ("token server log", read(&registry.token_server_log)),
        ("token server events", read(&registry.events)),
    ];
    seen.push(("keygate setup", report));
    assert_eq!(world.token_requests("refresh_token"), 2);
    assert!(
        text(&logged.stderr).contains(" DEBUG "),
        "keygate's log reached skopeo's stderr"
    );
    for (what, content) in &seen {
        for secret in &secrets {
            assert!(!content.contains(secret.as_str()), "a token in the {what}");
        }
    }
}

#[test]
fn an_unconfigured_registry_is_not_found_and_skopeo_goes_on_anonymously() {
    let (world, registry) = world_with_registry(Options::default());
    ok(&world.keygate(&["setup", "docker", &registry.host]));
    ok(&push(&world, &registry, "public/hello:1"));

    // keygate no longer knows the registry; credHelpers still names it.
    world.write_gitconfig("");
    let answer = helper(&world, "get", &registry.host);
    assert_eq!(answer.status.code(), Some(1));
    assert_eq!(text(&answer.stdout), NOT_FOUND);
    // The same answer from keygate itself (a link under Docker's name).
    let link = world.dir.path().join("link");
    std::fs::create_dir_all(&link).unwrap();
    std::os::unix::fs::symlink(KEYGATE, link.join("docker-credential-keygate")).unwrap();
    let mut itself = world.command(link.join("docker-credential-keygate"));
    itself.arg("get");
    let answer = run_with_input(itself, registry.host.as_bytes());
    assert_eq!(answer.status.code(), Some(1));
    assert_eq!(text(&answer.stdout), NOT_FOUND);

    let before = registry.token_requests().len();
    let public = skopeo(
        &world,
        &["--debug", "inspect", &registry.image("public/hello:1")],
    );
    ok(&public);
    assert!(
        text(&public.stderr).contains("Not logged in to"),
        "skopeo took the answer for \"not found\": {}",
        text(&public.stderr)
    );
    let anonymous = &registry.token_requests()[before..];
    assert!(
        !anonymous.is_empty() && anonymous.iter().all(|r| r["credentials"] == false),
        "{anonymous:?}"
    );
    // Anonymous, a private repository stays closed: refused by the
    // registry, not by a helper error.
    let private = skopeo(&world, &["inspect", &registry.image("private/nothing:1")]);
    assert!(!private.status.success());
    let stderr = text(&private.stderr);
    assert!(!stderr.contains("error getting credentials"), "{stderr}");
    assert!(
        stderr.contains("denied") || stderr.contains("unauthorized"),
        "{stderr}"
    );
}

#[test]
fn ci_never_opens_a_browser_for_a_registry() {
    let (mut world, registry) = world_with_registry(Options::default());
    ok(&world.keygate(&["setup", "docker", &registry.host]));
    world.set_env("CI", "true");

    let answer = helper(&world, "get", &registry.host);
    assert_eq!(answer.status.code(), Some(1));
    let said = text(&answer.stdout);
    assert!(said.starts_with("keygate: no token for"), "{said}");
    assert!(said.contains("CI is set"), "{said}");

    let inspected = skopeo(&world, &["inspect", &registry.image("private/hello:1")]);
    assert!(!inspected.status.success());
    assert!(
        text(&inspected.stderr).contains("CI is set"),
        "skopeo shows keygate's reason: {}",
        text(&inspected.stderr)
    );
    assert!(world.browser_launches().is_empty(), "no browser");
    assert_eq!(world.authorization_requests(), 0);
    assert_eq!(world.device_requests(), 0);
}

#[test]
fn sixteen_callers_across_git_and_skopeo_at_expiry_refresh_once() {
    let (world, registry) = world_with_registry(Options::default());
    ok(&world.keygate(&["setup", "docker", &registry.host]));
    ok(&world.keygate(&["login", &world.repo_url()]));
    ok(&push(&world, &registry, "private/hello:1"));
    world.expire_stored_token();

    let image = registry.image("private/hello:1");
    let children: Vec<_> = (0..16)
        .map(|i| {
            let mut command = if i % 2 == 0 {
                let mut command = world.command("skopeo");
                command.args(["--insecure-policy", "inspect", &image]);
                command
            } else {
                let mut command = world.command("git");
                command.args(["ls-remote", &world.repo_url()]);
                command
            };
            command
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        ok(&child.wait_with_output().unwrap());
    }
    assert_eq!(
        world.token_requests("refresh_token"),
        1,
        "one refresh for git and skopeo together"
    );
    assert_eq!(world.authorization_requests(), 1, "the one login");
}

#[test]
fn store_keeps_no_password_erase_logs_out_and_list_names_the_registry() {
    let (world, registry) = world_with_registry(Options::default());
    ok(&world.keygate(&["setup", "docker", &registry.host]));
    ok(&world.keygate(&["login", &world.repo_url()]));

    let listed = helper(&world, "list", "");
    ok(&listed);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        listed,
        serde_json::json!({ registry.host.clone(): "oauth2" })
    );

    // `docker login` with a pasted token: accepted, not kept.
    let pasted = "glpat-pasted-by-hand-0123456789";
    let stored = helper(
        &world,
        "store",
        &format!(
            r#"{{"ServerURL":"{}","Username":"alice","Secret":"{pasted}"}}"#,
            registry.host
        ),
    );
    ok(&stored);
    assert!(
        text(&stored.stderr).contains("was not kept"),
        "{}",
        text(&stored.stderr)
    );
    for (path, bytes) in world.files_under_home() {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(pasted),
            "the pasted token landed in {}",
            path.display()
        );
    }
    // What keygate's own `get` answered is taken back without a word.
    let (access_token, _) = stored_tokens(&world);
    let restored = helper(
        &world,
        "store",
        &format!(
            r#"{{"ServerURL":"{}","Username":"oauth2","Secret":"{access_token}"}}"#,
            registry.host
        ),
    );
    ok(&restored);
    assert_eq!(text(&restored.stderr), "");

    // A registry keygate does not serve: refused, in the helpers' way.
    let refused = helper(
        &world,
        "store",
        r#"{"ServerURL":"elsewhere.example","Username":"alice","Secret":"x"}"#,
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stdout).starts_with("keygate: keygate keeps no passwords"),
        "{}",
        text(&refused.stdout)
    );

    // `docker logout`: keygate's logout of the login the registry shares.
    let erased = helper(&world, "erase", &registry.host);
    ok(&erased);
    let accounts = world.token_file()["accounts"].as_array().unwrap().len();
    assert_eq!(accounts, 0, "logged out");
    let listed = helper(&world, "list", "");
    ok(&listed);
    assert_eq!(text(&listed.stdout), "{}\n");
    let erased = helper(&world, "erase", "elsewhere.example");
    assert_eq!(erased.status.code(), Some(1));
    assert_eq!(text(&erased.stdout), NOT_FOUND);
}

#[test]
fn setup_keeps_every_other_entry_and_names_what_is_left() {
    let world = World::offline();
    let docker = world.home.join(".docker/config.json");
    std::fs::create_dir_all(docker.parent().unwrap()).unwrap();
    let before = serde_json::json!({
        "auths": {"registry.example.com": {"auth": "dXNlcjpwYXNz"}},
        "credHelpers": {"gcr.io": "gcloud"},
        "credsStore": "secretservice",
        "currentContext": "default",
    });
    std::fs::write(&docker, serde_json::to_vec_pretty(&before).unwrap()).unwrap();

    let setup = world.keygate(&["setup", "docker", "registry.example.com"]);
    assert_eq!(setup.status.code(), Some(3), "steps are left");
    let report = text(&setup.stdout);
    assert!(report.contains("tokensFrom"), "{report}");
    assert!(report.contains("still holds a saved password"), "{report}");
    assert!(
        report.contains("docker-credential-keygate on PATH"),
        "{report}"
    );
    let after: Value = serde_json::from_str(&read(&docker)).unwrap();
    let mut expected = before.clone();
    expected["credHelpers"]["registry.example.com"] = "keygate".into();
    assert_eq!(after, expected);

    let dry = world.keygate(&["setup", "docker", "--dry-run", "ghcr.io"]);
    assert_eq!(dry.status.code(), Some(3));
    assert!(
        text(&dry.stdout).contains("would set"),
        "{}",
        text(&dry.stdout)
    );
    let unchanged: Value = serde_json::from_str(&read(&docker)).unwrap();
    assert_eq!(unchanged, expected, "a dry run writes nothing");

    // The same report for scripts; the second run finds it done.
    let again = world.keygate(&["setup", "docker", "--json", "registry.example.com"]);
    assert_eq!(again.status.code(), Some(3));
    let json: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(json["registry"], "registry.example.com", "{json}");
    let docker_file = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["readers"] == "Docker")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(docker_file["state"], "unchanged", "{json}");
    assert_eq!(docker_file["saved_login"], true, "{json}");
    assert!(json["configured"].is_null(), "{json}");
    let steps = json["next_steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s.as_str().unwrap().contains("tokensFrom")),
        "{json}"
    );
}
