//! Server metadata discovery, dynamic client registration and
//! `keygate setup`, against the real oidc-provider (discovery always on,
//! registration when the test asks for it) and the test git server.

use std::time::Duration;

use crate::common::{self, FakeTokenServer, Options, World, credential_field, ok, response, text};

/// The global git config with keygate as the helper and `section` as the
/// keygate settings of the git server.
fn write_config(world: &World, section: &str) {
    let config = format!(
        "[user]\n\tname = Test\n\temail = test@example.com\n\
         [init]\n\tdefaultBranch = main\n\
         [credential]\n\thelper = keygate\n\
         [keygate \"{git}\"]\n{section}\tloginTimeout = 20\n\
         [http]\n\tsslCAInfo = {ca}\n",
        git = world.git_url,
        ca = world.ca().display(),
    );
    std::fs::write(world.gitconfig_path(), config).unwrap();
}

fn discovery_fetches(world: &World) -> usize {
    world
        .events()
        .iter()
        .filter(|e| e["endpoint"] == "discovery" && e["status"] == 200)
        .count()
}

fn metadata_cache_dir(world: &World) -> std::path::PathBuf {
    world.home.join(".local/share/keygate/metadata")
}

fn clone(world: &World, dest: &str) -> std::process::Output {
    world.git(&["clone", "-q", &world.repo_url(), dest])
}

fn push_a_change(world: &World, repo: &str) {
    let repo = world.dir.path().join(repo);
    std::fs::write(repo.join("change.txt"), "pushed through keygate\n").unwrap();
    let repo = repo.to_str().unwrap();
    ok(&world.git(&["-C", repo, "add", "change.txt"]));
    ok(&world.git(&["-C", repo, "commit", "-q", "-m", "change"]));
    ok(&world.git(&["-C", repo, "push", "-q", "origin", "main"]));
}

#[test]
fn an_issuer_alone_names_the_endpoints_and_its_metadata_is_cached() {
    let world = World::start(Options::default());
    write_config(
        &world,
        &format!(
            "\tissuer = {}\n\tclientId = keygate-test\n\tscopes = git\n",
            world.issuer()
        ),
    );

    ok(&clone(&world, "repo"));
    push_a_change(&world, "repo");
    assert_eq!(world.browser_launches().len(), 1);
    assert_eq!(world.token_requests("authorization_code"), 1);
    assert_eq!(discovery_fetches(&world), 1, "{:?}", world.events());
    let account = world.stored_account();
    assert_eq!(
        account["issuer"],
        serde_json::json!({"kind": "discovered", "issuer": world.issuer(), "client_id": "keygate-test"})
    );

    let cached: Vec<_> = std::fs::read_dir(metadata_cache_dir(&world))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cached[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A refresh takes its endpoint from the cache, not from the server.
    world.expire_stored_token();
    let repo = world.dir.path().join("repo");
    ok(&world.git(&["-C", repo.to_str().unwrap(), "fetch", "-q"]));
    assert_eq!(world.token_requests("refresh_token"), 1);
    assert_eq!(discovery_fetches(&world), 1, "metadata came from the cache");
}

#[test]
fn a_fresh_get_needs_neither_the_metadata_nor_the_server() {
    let mut world = World::start(Options::default());
    write_config(
        &world,
        &format!("\tissuer = {}\n\tclientId = keygate-test\n", world.issuer()),
    );
    ok(&world.keygate(&["login", &world.repo_url()]));
    std::fs::remove_dir_all(metadata_cache_dir(&world)).unwrap();
    world.stop_oauth_server();

    let fill = world.credential_fill();
    ok(&fill);
    assert!(credential_field(&fill, "password").is_some_and(|p| !p.is_empty()));

    // Without a fresh token the server is needed: the check above is real.
    world.expire_stored_token();
    let fill = world.credential_fill();
    assert!(!fill.status.success(), "{}", text(&fill.stdout));
}

#[test]
fn explicit_keys_win_over_discovered_ones() {
    let world = World::start(Options::default());
    let token_endpoint = FakeTokenServer::start(
        response(
            "200 OK",
            "application/json",
            r#"{"access_token":"from-the-configured-endpoint","token_type":"bearer","expires_in":600}"#,
        ),
        Duration::ZERO,
    );
    write_config(
        &world,
        &format!(
            "\tissuer = {}\n\tclientId = keygate-test\n\ttokenUrl = {}\n",
            world.issuer(),
            token_endpoint.url
        ),
    );
    ok(&world.keygate(&["login", &world.repo_url()]));
    // The code came from the discovered authorization endpoint, the token
    // from the configured token endpoint.
    assert_eq!(world.authorization_requests(), 1);
    assert_eq!(
        token_endpoint
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert_eq!(world.token_requests("authorization_code"), 0);
    let fill = world.credential_fill();
    ok(&fill);
    assert_eq!(
        credential_field(&fill, "password").as_deref(),
        Some("from-the-configured-endpoint")
    );
}

#[test]
fn an_issuer_the_metadata_does_not_name_is_refused() {
    let world = World::start(Options::default());
    // The same server under another name: its metadata says 127.0.0.1.
    let impostor = world.issuer().replace("127.0.0.1", "localhost");
    write_config(
        &world,
        &format!("\tissuer = {impostor}\n\tclientId = keygate-test\n"),
    );
    let login = world.keygate(&["login", &world.repo_url()]);
    assert!(!login.status.success());
    let said = text(&login.stderr);
    assert!(said.contains("names the issuer"), "{said}");
    assert_eq!(world.authorization_requests(), 0);
    assert!(world.browser_launches().is_empty());
    assert!(!clone(&world, "repo").status.success());
    assert!(!metadata_cache_dir(&world).exists());
}

#[test]
fn metadata_that_is_not_json_is_refused() {
    let world = World::offline();
    let server = FakeTokenServer::start(
        response("200 OK", "text/html", "<html>welcome</html>"),
        Duration::ZERO,
    );
    let issuer = server.url.trim_end_matches("/token").to_owned();
    std::fs::write(
        world.gitconfig_path(),
        format!("[keygate \"https://git.example.com\"]\n\tissuer = {issuer}\n"),
    )
    .unwrap();
    let login = world.keygate(&["login", "https://git.example.com/r.git"]);
    assert!(!login.status.success());
    let said = text(&login.stderr);
    assert!(said.contains("is not OAuth server metadata JSON"), "{said}");
    assert!(!metadata_cache_dir(&world).exists());
}

fn registration_world() -> World {
    World::start_with_oidc_env(Options::default(), &[("REGISTRATION", "open")])
}

/// The client keygate registered, as kept in the file store.
fn stored_client(world: &World) -> Option<serde_json::Value> {
    let file = world.token_file();
    let secrets = file["secrets"].as_object()?;
    let (_, value) = secrets
        .iter()
        .find(|(name, _)| name.starts_with("registered-client "))?;
    let value = value.as_str()?;
    (!value.is_empty()).then(|| serde_json::from_str(value).unwrap())
}

fn events_at(world: &World, endpoint: &str, method: &str) -> Vec<serde_json::Value> {
    world
        .events()
        .into_iter()
        .filter(|e| e["endpoint"] == endpoint && e["method"] == method)
        .collect()
}

/// What the token endpoint says to `client_id` presenting a made-up
/// refresh token: `invalid_grant` from a client it knows.
fn token_endpoint_verdict(world: &World, client_id: &str) -> String {
    let output = std::process::Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(world.ca())
        .arg("-d")
        .arg(format!(
            "grant_type=refresh_token&refresh_token=made-up&client_id={client_id}"
        ))
        .arg(world.oidc["token_endpoint"].as_str().unwrap())
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .expect("curl");
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    answer["error"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn without_a_client_id_keygate_registers_once_and_forget_client_deletes_it() {
    let world = registration_world();
    write_config(&world, &format!("\tissuer = {}\n", world.issuer()));

    ok(&clone(&world, "repo"));
    push_a_change(&world, "repo");
    let registrations = events_at(&world, "registration", "POST");
    assert_eq!(registrations.len(), 1, "{registrations:?}");
    assert_eq!(registrations[0]["status"], 201);
    let client = stored_client(&world).expect("a registered client in the store");
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    assert!(client["registration_access_token"].is_string());
    let config = std::fs::read_to_string(world.gitconfig_path()).unwrap();
    assert!(
        !config.contains(&client_id),
        "nothing written to ~/.gitconfig"
    );

    // The registered client is reused: by a refresh, and by a new login.
    world.expire_stored_token();
    ok(&clone(&world, "again"));
    assert_eq!(world.token_requests("refresh_token"), 1);
    ok(&world.keygate(&["login", &world.repo_url()]));
    assert_eq!(events_at(&world, "registration", "POST").len(), 1);
    assert_eq!(token_endpoint_verdict(&world, &client_id), "invalid_grant");

    let logout = world.keygate(&["logout", &world.repo_url(), "--forget-client"]);
    ok(&logout);
    assert!(
        text(&logout.stderr).contains("deleted the client"),
        "{}",
        text(&logout.stderr)
    );
    let deletions = events_at(&world, "registration", "DELETE");
    assert_eq!(deletions.len(), 1, "{deletions:?}");
    assert_eq!(deletions[0]["status"], 204);
    assert!(stored_client(&world).is_none());
    assert!(
        world.token_file()["accounts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The server no longer knows the client.
    assert_eq!(token_endpoint_verdict(&world, &client_id), "invalid_client");
}

#[test]
fn a_registration_endpoint_that_wants_a_token_says_how_to_give_one() {
    let world = World::start_with_oidc_env(
        Options::default(),
        &[
            ("REGISTRATION", "open"),
            ("REGISTRATION_TOKEN", "initial-token"),
        ],
    );
    write_config(&world, &format!("\tissuer = {}\n", world.issuer()));
    let login = world.keygate(&["login", &world.repo_url()]);
    assert!(!login.status.success());
    let said = text(&login.stderr);
    assert!(said.contains("--registration-token"), "{said}");
    assert!(world.browser_launches().is_empty());
}

#[test]
fn without_registration_or_client_id_keygate_says_what_to_create() {
    let world = World::start(Options::default());
    write_config(&world, &format!("\tissuer = {}\n", world.issuer()));
    let login = world.keygate(&["login", &world.repo_url()]);
    assert!(!login.status.success());
    let said = text(&login.stderr);
    assert!(said.contains("offers no dynamic registration"), "{said}");
    assert!(said.contains(".clientId <id>"), "{said}");
    assert!(world.browser_launches().is_empty());
}

/// A global git config that knows nothing of keygate.
fn write_bare_config(world: &World) {
    let config = format!(
        "[user]\n\tname = Test\n\temail = test@example.com\n\
         [init]\n\tdefaultBranch = main\n\
         [http]\n\tsslCAInfo = {}\n",
        world.ca().display()
    );
    std::fs::write(world.gitconfig_path(), config).unwrap();
}

fn gitconfig(world: &World) -> String {
    std::fs::read_to_string(world.gitconfig_path()).unwrap()
}

fn json_of(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} / {}", text(&output.stdout), text(&output.stderr)))
}

/// Where setup finds the front program: beside the keygate that runs.
fn front_beside_keygate() -> String {
    let keygate = std::fs::canonicalize(common::KEYGATE).unwrap();
    keygate
        .with_file_name("git-credential-keygate")
        .display()
        .to_string()
}

#[test]
fn setup_goes_from_nothing_to_clone_and_push_and_changes_nothing_the_second_time() {
    let world = registration_world();
    write_bare_config(&world);
    let setup = world.keygate(&["setup", &world.repo_url(), "--issuer", world.issuer()]);
    ok(&setup);
    let said = text(&setup.stdout);
    assert!(
        said.contains(&format!("keygate.{}.issuer", world.git_url)),
        "{said}"
    );
    assert!(said.contains("registered at the server just now"), "{said}");
    assert_eq!(events_at(&world, "registration", "POST").len(), 1);
    assert_eq!(world.browser_launches().len(), 1, "setup logged in");
    let config = gitconfig(&world);
    assert!(config.contains(world.issuer()), "{config}");
    // The front program beside keygate, by absolute path, as install.sh
    // registers it.
    assert!(
        config.contains(&format!("helper = {}", front_beside_keygate())),
        "{config}"
    );
    let client_id = stored_client(&world).unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !config.contains(&client_id),
        "the client stays in the store"
    );

    ok(&clone(&world, "repo"));
    push_a_change(&world, "repo");
    assert_eq!(world.browser_launches().len(), 1, "no second login");

    let again = world.keygate(&[
        "setup",
        &world.repo_url(),
        "--issuer",
        world.issuer(),
        "--json",
    ]);
    ok(&again);
    let report = json_of(&again);
    assert_eq!(report["status"], "done");
    assert_eq!(report["client"], "stored");
    assert_eq!(report["helper"], "present");
    assert_eq!(report["settings"][0]["state"], "present");
    assert_eq!(gitconfig(&world), config, "nothing rewritten");
    assert_eq!(events_at(&world, "registration", "POST").len(), 1);
    assert_eq!(world.browser_launches().len(), 1);
}

/// Replaces the stored record's `issuer` and makes its token stale.
fn rewrite_issuer(world: &World, issuer: serde_json::Value) {
    world.expire_stored_token();
    let path = world.home.join(".local/share/keygate/tokens.json");
    let mut file = world.token_file();
    for account in file["accounts"].as_array_mut().unwrap() {
        account["issuer"] = issuer.clone();
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
}

/// Issue 19: the tokens of a client setup registered were recorded with
/// the issuer URL as token endpoint and no client id. Now the client is
/// recorded and a refresh goes out with it; a record from before still
/// refreshes (and is rewritten), and one naming another client is never
/// presented.
#[test]
fn the_client_setup_registers_is_recorded_with_its_tokens() {
    let world = registration_world();
    write_bare_config(&world);
    ok(&world.keygate(&["setup", &world.repo_url(), "--issuer", world.issuer()]));
    let client_id = stored_client(&world).unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let recorded = serde_json::json!({
        "kind": "discovered",
        "issuer": world.issuer(),
        "client_id": client_id,
    });
    assert_eq!(world.stored_account()["issuer"], recorded);
    // status says where the client id came from, and doctor that one
    // is registered, not missing.
    let status = world.keygate(&["status", "--json"]);
    let accounts: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(accounts[0]["client_id_from"], "registered", "{accounts}");
    let doctor = world.keygate(&["doctor", &world.repo_url()]);
    let out = text(&doctor.stdout);
    let configuration = out.lines().find(|l| l.contains("configuration:")).unwrap();
    assert!(configuration.starts_with("ok  "), "{out}");
    assert!(
        configuration.contains("registers one at the issuer"),
        "{out}"
    );

    world.expire_stored_token();
    ok(&world.keygate(&["token", &world.repo_url()]));
    assert_eq!(world.token_requests("refresh_token"), 1);
    assert_eq!(world.stored_account()["issuer"], recorded);

    // As today's keygate wrote it: the issuer's tokens, client unnamed.
    rewrite_issuer(
        &world,
        serde_json::json!({"token_url": world.issuer(), "client_id": ""}),
    );
    ok(&world.keygate(&["token", &world.repo_url()]));
    assert_eq!(world.token_requests("refresh_token"), 2);
    assert_eq!(world.stored_account()["issuer"], recorded);

    // Issued to a client that is not the one registered here now.
    let mut elsewhere = recorded.clone();
    elsewhere["client_id"] = serde_json::Value::from("another-client");
    rewrite_issuer(&world, elsewhere);
    let token = world
        .command(common::KEYGATE)
        .args(["token", &world.repo_url()])
        .env("KEYGATE_INTERACTIVE", "never")
        .output()
        .unwrap();
    assert!(!token.status.success(), "{}", text(&token.stdout));
    assert!(
        text(&token.stderr).contains("keygate login"),
        "{}",
        text(&token.stderr)
    );
    assert_eq!(world.token_requests("refresh_token"), 2, "not presented");
    assert_eq!(world.browser_launches().len(), 1, "setup's login only");
}

#[test]
fn setup_dry_run_writes_registers_and_logs_in_nothing() {
    let world = registration_world();
    write_bare_config(&world);
    let before = gitconfig(&world);
    // Typed with a trailing slash: the server's own spelling is kept.
    let setup = world.keygate(&[
        "setup",
        &world.repo_url(),
        "--issuer",
        &format!("{}/", world.issuer()),
        "--dry-run",
        "--json",
    ]);
    ok(&setup);
    let report = json_of(&setup);
    assert_eq!(report["status"], "dry-run");
    assert_eq!(report["client"], "would-register");
    assert_eq!(report["helper"], "would-add");
    assert_eq!(report["settings"][0]["value"], world.issuer());
    assert_eq!(report["settings"][0]["state"], "would-write");
    assert_eq!(gitconfig(&world), before);
    assert!(events_at(&world, "registration", "POST").is_empty());
    assert!(world.browser_launches().is_empty());
}

#[test]
fn setup_says_what_to_do_where_it_cannot_finish() {
    let world = World::start(Options::default());
    write_bare_config(&world);
    let before = gitconfig(&world);

    // The git server's origin publishes no metadata.
    let setup = world.keygate(&["setup", &world.repo_url(), "--json"]);
    assert_eq!(setup.status.code(), Some(3), "{}", text(&setup.stderr));
    let report = json_of(&setup);
    assert_eq!(report["status"], "incomplete");
    let steps = report["next_steps"].to_string();
    assert!(steps.contains("--issuer"), "{steps}");
    assert!(steps.contains(".tokenUrl"), "{steps}");
    assert!(
        steps.contains(&format!("credential.helper {}", front_beside_keygate())),
        "{steps}"
    );

    // Discovery but no registration: the client must be made by hand.
    let setup = world.keygate(&["setup", &world.repo_url(), "--issuer", world.issuer()]);
    assert_eq!(setup.status.code(), Some(3), "{}", text(&setup.stderr));
    let said = text(&setup.stdout);
    assert!(
        said.contains("offers no dynamic client registration"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "git config --global keygate.{}.issuer {}",
            world.git_url,
            world.issuer()
        )),
        "{said}"
    );
    assert!(said.contains(".clientId <id>"), "{said}");
    assert_eq!(gitconfig(&world), before, "nothing written");
    assert!(world.browser_launches().is_empty());
}

#[test]
fn setup_refuses_an_issuer_the_metadata_does_not_name() {
    let world = registration_world();
    write_bare_config(&world);
    let before = gitconfig(&world);
    let impostor = world.issuer().replace("127.0.0.1", "localhost");
    let setup = world.keygate(&["setup", &world.repo_url(), "--issuer", &impostor]);
    assert_eq!(setup.status.code(), Some(1));
    assert!(
        text(&setup.stderr).contains("names the issuer"),
        "{}",
        text(&setup.stderr)
    );
    assert_eq!(gitconfig(&world), before);
    assert!(events_at(&world, "registration", "POST").is_empty());
}

#[test]
fn setup_for_a_forge_that_needs_a_hand_made_app_says_where_to_make_it() {
    let world = World::offline();
    let setup = world.keygate(&["setup", "https://github.com/org/repo.git", "--json"]);
    assert_eq!(setup.status.code(), Some(3), "{}", text(&setup.stderr));
    let report = json_of(&setup);
    assert_eq!(report["endpoints"], "preset");
    let steps = report["next_steps"].to_string();
    assert!(
        steps.contains("https://github.com/settings/applications/new"),
        "{steps}"
    );
    assert!(
        steps.contains("git config --global keygate.https://github.com.clientId"),
        "{steps}"
    );
    assert_eq!(gitconfig(&world), "", "nothing written");
}

/// A loopback OAuth server made up for answers the real one never gives:
/// `routes` maps a path to a status and a body (JSON unless it starts with
/// `<`); `{base}` in a body is replaced by the server's own
/// `http://127.0.0.1:PORT`.
fn fake_server(routes: Vec<(&'static str, &'static str, String)>) -> String {
    use std::io::{BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let routes: Vec<(&'static str, String)> = routes
        .into_iter()
        .map(|(path, status, body)| {
            let body = body.replace("{base}", &base);
            let kind = if body.starts_with('<') {
                "text/html"
            } else {
                "application/json"
            };
            (path, response(status, kind, &body))
        })
        .collect();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (request_line, _body) = common::read_request(&mut reader);
            let path = request_line.split_whitespace().nth(1).unwrap_or_default();
            let answer = routes
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, r)| r.clone())
                .unwrap_or_else(|| response("404 Not Found", "text/plain", "no"));
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    base
}

fn metadata_body(extra: &str) -> String {
    format!(
        r#"{{"issuer":"{{base}}","authorization_endpoint":"{{base}}/auth","token_endpoint":"{{base}}/token","registration_endpoint":"{{base}}/reg"{extra}}}"#
    )
}

#[test]
fn setup_refuses_bad_metadata_and_registrations_and_changes_nothing() {
    let world = World::offline();
    let run_setup = |issuer: &str| {
        world.keygate(&["setup", "https://git.example.com/r.git", "--issuer", issuer])
    };

    let no_client_id = fake_server(vec![
        (
            "/.well-known/oauth-authorization-server",
            "200 OK",
            metadata_body(""),
        ),
        (
            "/reg",
            "201 Created",
            r#"{"client_name":"keygate"}"#.to_owned(),
        ),
    ]);
    let setup = run_setup(&no_client_id);
    assert_eq!(setup.status.code(), Some(1), "{}", text(&setup.stdout));
    assert!(
        text(&setup.stderr).contains("without a client_id"),
        "{}",
        text(&setup.stderr)
    );

    let insecure = fake_server(vec![(
        "/.well-known/openid-configuration",
        "200 OK",
        metadata_body(r#","revocation_endpoint":"http://auth.example.com/revoke""#),
    )]);
    let setup = run_setup(&insecure);
    assert_eq!(setup.status.code(), Some(1));
    let said = text(&setup.stderr);
    assert!(
        said.contains("revocation_endpoint") && said.contains("not an https URL"),
        "{said}"
    );

    let not_json = fake_server(vec![(
        "/.well-known/oauth-authorization-server",
        "200 OK",
        "<html>sign in</html>".to_owned(),
    )]);
    let setup = run_setup(&not_json);
    assert_eq!(setup.status.code(), Some(1));
    assert!(text(&setup.stderr).contains("not OAuth server metadata JSON"));

    assert_eq!(gitconfig(&world), "", "nothing written");
    let tokens = world.home.join(".local/share/keygate/tokens.json");
    assert!(
        !tokens.exists()
            || !std::fs::read_to_string(&tokens)
                .unwrap()
                .contains("registered-client")
    );
}

#[test]
fn setup_passes_an_initial_access_token_from_stdin() {
    let world = World::start_with_oidc_env(
        Options::default(),
        &[
            ("REGISTRATION", "open"),
            ("REGISTRATION_TOKEN", "initial-token"),
        ],
    );
    write_bare_config(&world);
    let setup_with = |token: &str| {
        let mut command = world.command(common::KEYGATE);
        command.env("KEYGATE_LOG", "trace");
        command.args([
            "setup",
            &world.repo_url(),
            "--issuer",
            world.issuer(),
            "--registration-token",
            "-",
            "--json",
        ]);
        common::run_with_input(command, format!("{token}\n").as_bytes())
    };

    // A token in argv is refused before anything is written or sent:
    // other local users can read a command line.
    let before = gitconfig(&world);
    let in_argv = world.keygate(&[
        "setup",
        &world.repo_url(),
        "--issuer",
        world.issuer(),
        "--registration-token",
        "initial-token",
    ]);
    assert_eq!(in_argv.status.code(), Some(2));
    let said = text(&in_argv.stderr);
    assert!(said.contains("--registration-token -"), "{said}");
    assert!(!said.contains("initial-token"), "{said}");
    assert_eq!(gitconfig(&world), before);
    assert!(events_at(&world, "registration", "POST").is_empty());

    let refused = setup_with("wrong-token");
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused.stderr));
    assert!(
        json_of(&refused)["next_steps"]
            .to_string()
            .contains("refused the initial access token")
    );

    let setup = setup_with("initial-token");
    ok(&setup);
    assert_eq!(json_of(&setup)["client"], "registered");
    let client = stored_client(&world).unwrap();
    ok(&clone(&world, "repo"));

    // Neither token reaches a log line, the report or ~/.gitconfig.
    let management = client["registration_access_token"].as_str().unwrap();
    let logout = {
        let mut command = world.command(common::KEYGATE);
        command
            .env("KEYGATE_LOG", "trace")
            .args(["logout", &world.repo_url(), "--forget-client"]);
        command.output().unwrap()
    };
    ok(&logout);
    assert!(text(&logout.stderr).contains("deleted the client"));
    for output in [&refused, &setup, &logout] {
        let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(!all.contains("initial-token") && !all.contains("wrong-token"));
        assert!(!all.contains(management));
    }
    assert!(!gitconfig(&world).contains(management));
}

#[test]
fn metadata_whose_endpoint_moved_is_fetched_again() {
    let world = World::start(Options::default());
    write_config(
        &world,
        &format!("\tissuer = {}\n\tclientId = keygate-test\n", world.issuer()),
    );
    ok(&clone(&world, "repo"));
    assert_eq!(discovery_fetches(&world), 1);

    // The cached metadata now names a token endpoint nobody listens on.
    let cached = std::fs::read_dir(metadata_cache_dir(&world))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/token", dead.local_addr().unwrap());
    drop(dead);
    let mut document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cached).unwrap()).unwrap();
    document["metadata"]["token_endpoint"] = serde_json::Value::from(dead_url);
    std::fs::write(&cached, serde_json::to_vec(&document).unwrap()).unwrap();

    // The refresh tries the cached endpoint, finds nobody, fetches the
    // metadata again and refreshes at the endpoint it names now.
    world.expire_stored_token();
    let repo = world.dir.path().join("repo");
    ok(&world.git(&["-C", repo.to_str().unwrap(), "fetch", "-q"]));
    assert_eq!(discovery_fetches(&world), 2);
    assert_eq!(world.token_requests("refresh_token"), 1);
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cached).unwrap()).unwrap();
    assert_eq!(
        document["metadata"]["token_endpoint"], world.oidc["token_endpoint"],
        "the cache holds the metadata as it is now"
    );
}

/// Hosts a URL may carry that run `touch pwned` when pasted into bash
/// unquoted: `%24` is `$`, braces expand, backticks and `$(…)` substitute,
/// `;` and `&` end a command, a quote ends a quoted word. (The URL parser
/// lower-cases hosts, so the payload has no capitals.)
const HOSTILE_URLS: [&str; 5] = [
    "https://git%24(%7Btouch,pwned%7D)x.example.org/org/repo.git",
    "https://a`{touch,pwned}`.example/r.git",
    "https://a;{touch,pwned};b.example/r.git",
    "https://a&{touch,pwned}&b.example/r.git",
    "https://x'$({touch,pwned})'.example/r.git",
];

/// The `git config` commands `output` tells a person to run, blanks filled
/// in as a person would: the rest of each line from `git config`, up to
/// the backtick that closes it in an error, or the `(state)` after it in
/// setup's report.
fn suggested_git_config_commands(output: &std::process::Output) -> Vec<String> {
    let all = format!("{}\n{}", text(&output.stdout), text(&output.stderr));
    let mut commands = Vec::new();
    for line in all.lines() {
        let Some(at) = line.find("git config --global ") else {
            continue;
        };
        let mut command = line[at..].to_owned();
        if line[..at].ends_with('`') {
            let end = command.rfind('`').expect("a closing backtick");
            command.truncate(end);
        } else if let Some(end) = command.rfind("   (") {
            command.truncate(end);
        }
        let filled = command
            .replace("<id>", "client-from-advice")
            .replace("<url>", "https://127.0.0.1:9/endpoint");
        commands.push(filled);
    }
    commands
}

/// Runs `command` in bash as a person would paste it, in an empty
/// directory, and says whether anything appeared there.
fn paste_into_bash(world: &World, command: &str) -> std::process::Output {
    let cwd = world.dir.path().join("pasted-here");
    std::fs::create_dir_all(&cwd).unwrap();
    let output = world
        .command("bash")
        .arg("-c")
        .arg(command)
        .current_dir(&cwd)
        .output()
        .expect("bash");
    let appeared: Vec<_> = std::fs::read_dir(&cwd).unwrap().flatten().collect();
    assert!(
        appeared.is_empty(),
        "pasting {command:?} ran something: {appeared:?}"
    );
    output
}

#[test]
fn git_config_advice_for_a_hostile_url_runs_as_written_in_bash() {
    for url in HOSTILE_URLS {
        let mut world = World::offline();
        world.set_env("KEYGATE_INTERACTIVE", "never");
        let first = world.keygate(&["login", url]);
        assert!(!first.status.success());
        let commands = suggested_git_config_commands(&first);
        assert_eq!(commands.len(), 1, "{url}: {}", text(&first.stderr));
        ok(&paste_into_bash(&world, &commands[0]));

        // keygate reads the key the pasted line wrote: it asks for no
        // setting now, only for a login, and that advice pastes safely too.
        let second = world.keygate(&["login", url]);
        assert!(!second.status.success());
        let said = text(&second.stderr);
        assert!(suggested_git_config_commands(&second).is_empty(), "{said}");
        assert!(said.contains("forbids interaction"), "{said}");
        // The host may hold backticks itself: the advice ends at the last.
        let login = said
            .find("`keygate login ")
            .zip(said.rfind('`'))
            .map(|(start, end)| &said[start + 1..end])
            .unwrap_or_else(|| panic!("{url}: no login advice: {said}"));
        let pasted = paste_into_bash(&world, login);
        assert!(
            text(&pasted.stderr).contains("forbids interaction"),
            "{url}: the pasted login went elsewhere: {}",
            text(&pasted.stderr)
        );
    }
}

#[test]
fn setup_advice_for_a_hostile_url_runs_as_written_in_bash() {
    let issuer = fake_server(vec![(
        "/.well-known/oauth-authorization-server",
        "200 OK",
        r#"{"issuer":"{base}","authorization_endpoint":"{base}/auth","token_endpoint":"{base}/token"}"#
            .to_owned(),
    )]);
    for url in HOSTILE_URLS {
        let world = World::offline();
        let setup = world.keygate(&["setup", url, "--issuer", &issuer]);
        assert_eq!(setup.status.code(), Some(3), "{}", text(&setup.stderr));
        let commands = suggested_git_config_commands(&setup);
        assert_eq!(commands.len(), 3, "issuer, client id, helper: {commands:?}");
        for command in &commands {
            ok(&paste_into_bash(&world, command));
        }
        // keygate reads back what was pasted: the issuer and the client id
        // under its key for this server, and itself as the helper.
        let again = world.keygate(&["setup", url, "--issuer", &issuer, "--dry-run", "--json"]);
        ok(&again);
        let report = json_of(&again);
        assert_eq!(report["client"], "configured", "{url}: {report}");
        assert_eq!(report["settings"][0]["state"], "present", "{url}: {report}");
        assert_eq!(report["helper"], "present", "{url}: {report}");
    }
}

/// The name a remote-looking issuer goes by: not loopback by its URL, as
/// keygate judges a URL, yet resolved to 127.0.0.1 for keygate alone.
const REMOTE_NAME: &str = "issuer.keygate-test.example";

/// A plain-http service on the user's loopback that trusts whoever
/// reaches it (an admin API, a database's HTTP port): it records every
/// request line it is sent.
struct LoopbackVictim {
    url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl LoopbackVictim {
    fn start() -> Self {
        use std::io::{BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (line, _) = common::read_request(&mut reader);
                seen.lock().unwrap().push(line.trim().to_owned());
                let _ = stream.write_all(response("200 OK", "application/json", "{}").as_bytes());
            }
        });
        Self { url, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// `hostile_issuer.py` for `world`, with `args`; its issuer URL.
fn start_hostile_issuer(world: &World, args: &[&str]) -> (common::Guard, String) {
    let mut command = std::process::Command::new("python3");
    command
        .arg(common::support("hostile_issuer.py"))
        .arg("--dir")
        .arg(&world.certs)
        .args(["--name", REMOTE_NAME])
        .args(args);
    let (guard, info) = common::start_server(
        command,
        "hostile issuer",
        &world.dir.path().join("hostile-issuer.log"),
    );
    (guard, info["issuer"].as_str().unwrap().to_owned())
}

/// keygate with `args`, seeing an /etc/hosts of its own in which
/// [`REMOTE_NAME`] is 127.0.0.1: a mount namespace of its own, so the
/// machine's /etc/hosts is never touched and parallel tests cannot trip
/// over each other (tests run as root).
fn keygate_seeing_remote_name(world: &World, args: &[&str]) -> std::process::Output {
    let hosts = world.dir.path().join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n127.0.0.1 {REMOTE_NAME}\n"),
    )
    .unwrap();
    let output = world
        .command("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            r#"mount --bind "$1" /etc/hosts && shift && exec "$@""#,
            "sh",
        ])
        .arg(&hosts)
        .arg(common::KEYGATE)
        .args(args)
        .output()
        .expect("unshare (util-linux)");
    let said = text(&output.stderr);
    assert!(
        !said.contains("unshare:") && !said.starts_with("mount:"),
        "cannot give keygate a private /etc/hosts (tests run as root): {said}"
    );
    output
}

fn git_config_for_remote_issuer(world: &World, issuer: &str, extra: &str) {
    std::fs::write(
        world.gitconfig_path(),
        format!("[keygate \"https://git.example.com\"]\n\tissuer = {issuer}\n{extra}"),
    )
    .unwrap();
}

const REMOTE_REPO: &str = "https://git.example.com/org/repo.git";

#[test]
fn a_remote_issuer_cannot_aim_keygate_at_loopback_endpoints() {
    let mut world = World::offline();
    world.set_env("KEYGATE_INTERACTIVE", "never");
    let victim = LoopbackVictim::start();
    let token = format!("{}/token", victim.url);
    let revoke = format!("{}/revoke", victim.url);
    let (_issuer_guard, issuer) = start_hostile_issuer(
        &world,
        &["--token-endpoint", &token, "--revocation-endpoint", &revoke],
    );

    // A CI client: the token endpoint gets its secret at once.
    git_config_for_remote_issuer(
        &world,
        &issuer,
        "\tclientId = ci\n\tclientSecret = ci-secret-for-the-real-server\n\tgrant = client_credentials\n",
    );
    let token_run = keygate_seeing_remote_name(&world, &["token", REMOTE_REPO]);
    assert!(!token_run.status.success(), "{}", text(&token_run.stdout));
    let said = text(&token_run.stderr);
    assert!(
        said.contains("token_endpoint") && said.contains("not an https URL"),
        "{said}"
    );

    // setup takes nothing from such metadata either.
    std::fs::write(world.gitconfig_path(), "").unwrap();
    let setup = keygate_seeing_remote_name(&world, &["setup", REMOTE_REPO, "--issuer", &issuer]);
    assert_eq!(setup.status.code(), Some(1), "{}", text(&setup.stdout));
    assert!(
        text(&setup.stderr).contains("not an https URL"),
        "{}",
        text(&setup.stderr)
    );
    assert_eq!(gitconfig(&world), "", "nothing written");
    assert_eq!(victim.requests(), Vec::<String>::new());
}

#[test]
fn a_registration_cannot_aim_forget_client_at_a_loopback_service() {
    let mut world = World::offline();
    world.set_env("KEYGATE_INTERACTIVE", "never");
    let victim = LoopbackVictim::start();
    let client_uri = format!("{}/customers-index", victim.url);
    let (_issuer_guard, issuer) = start_hostile_issuer(&world, &["--client-uri", &client_uri]);

    // Registration is refused, naming the value; nothing is kept.
    let setup = keygate_seeing_remote_name(&world, &["setup", REMOTE_REPO, "--issuer", &issuer]);
    assert!(!setup.status.success(), "{}", text(&setup.stdout));
    let said = text(&setup.stderr);
    assert!(
        said.contains("registration_client_uri") && said.contains(&client_uri),
        "{said}"
    );
    git_config_for_remote_issuer(&world, &issuer, "");
    let logout = keygate_seeing_remote_name(&world, &["logout", REMOTE_REPO, "--forget-client"]);
    ok(&logout);
    assert_eq!(victim.requests(), Vec::<String>::new());

    // A client an older keygate registered and kept, bad URI and all: the
    // DELETE is not sent, and the client is forgotten here all the same.
    let stored = serde_json::json!({
        "client_id": "hostile-client",
        "registration_access_token": "bearer-the-server-chose",
        "registration_client_uri": client_uri,
    });
    let dir = world.home.join(".local/share/keygate");
    std::fs::create_dir_all(&dir).unwrap();
    let document = serde_json::json!({
        "version": 1,
        "accounts": [],
        "secrets": {
            format!("registered-client https://git.example.com {issuer}"): stored.to_string(),
        },
    });
    let tokens = dir.join("tokens.json");
    std::fs::write(&tokens, serde_json::to_vec(&document).unwrap()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert!(stored_client(&world).is_some());
    let logout = keygate_seeing_remote_name(&world, &["logout", REMOTE_REPO, "--forget-client"]);
    ok(&logout);
    let said = text(&logout.stderr);
    assert!(
        said.contains("did not ask the server to delete it") && said.contains(&client_uri),
        "{said}"
    );
    assert!(!said.contains("bearer-the-server-chose"), "{said}");
    assert!(stored_client(&world).is_none(), "forgotten here");
    assert_eq!(victim.requests(), Vec::<String>::new());
}
