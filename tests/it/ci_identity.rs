//! CI jobs with no stored secret: keygate trades the job's own OpenID
//! Connect id token for an access token, through real git, against the
//! real oidc-provider with the token-exchange and jwt-bearer grants
//! registered (`tests/support/oidc/ci.mjs`, `CI_IDENTITY=on`): a throwaway
//! CI issuer with its own key and JWKS, a GitHub-Actions-style token
//! request endpoint, and an Entra-like federated-credential endpoint.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, Options, World, ok, text};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const AZURE_DEVOPS_SCOPE: &str = "499b84ac-1321-427f-aa17-267ca6975798/.default";

/// A world whose OAuth server takes CI id tokens, in a CI job (`CI=true`).
fn ci_world(access_token_ttl: u64) -> World {
    let mut world =
        World::start_with_oidc_env(Options { access_token_ttl }, &[("CI_IDENTITY", "on")]);
    world.set_env("CI", "true");
    world
}

fn info<'a>(world: &'a World, key: &str) -> &'a str {
    world.oidc[key].as_str().unwrap()
}

/// A CI job in GitHub Actions with `permissions: id-token: write`: what
/// Actions gives it, with the test server's endpoint named by
/// `request_endpoint` (`ci_actions_url`, or `ci_hang_url` that never
/// answers) as its token request URL.
fn github_actions_world(request_endpoint: &str) -> World {
    let mut world = ci_world(600);
    let request_url = info(&world, request_endpoint).to_owned();
    let token = info(&world, "ci_request_token").to_owned();
    world.set_env("GITHUB_ACTIONS", "true");
    world.set_env("ACTIONS_ID_TOKEN_REQUEST_URL", &request_url);
    world.set_env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", &token);
    world
}

/// The global git config: keygate the only helper, `[keygate "GIT"]` with
/// the test server's token endpoint and `lines`.
fn configure(world: &World, lines: &str) {
    configure_with_token_url(world, info(world, "token_endpoint"), lines);
}

fn configure_with_token_url(world: &World, token_url: &str, lines: &str) {
    let config = format!(
        "[user]\n\tname = CI\n\temail = ci@example.com\n\
         [init]\n\tdefaultBranch = main\n\
         [credential]\n\thelper = keygate\n\
         [keygate \"{git}\"]\n\ttokenUrl = {token_url}\n\ttimeout = 5\n{lines}\
         [http]\n\tsslCAInfo = {ca}\n",
        git = world.git_url,
        ca = world.ca().display(),
    );
    std::fs::write(world.gitconfig_path(), config).unwrap();
}

/// An id token the CI issuer mints to order (`aud`, `sub`, `ttl`, `key`,
/// `iss`), as a CI would put in a variable or a file.
fn mint(world: &World, query: &str) -> String {
    let output = Command::new("curl")
        .args(["-sf", "-X", "POST", "--cacert"])
        .arg(world.ca())
        .arg(format!("{}?{query}", info(world, "ci_mint")))
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .unwrap();
    ok(&output);
    text(&output.stdout)
}

/// Every id token the CI issuer minted so far.
fn minted(world: &World) -> Vec<String> {
    std::fs::read_to_string(world.certs.join("ci-minted.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn events(world: &World, endpoint: &str) -> Vec<Value> {
    world
        .events()
        .into_iter()
        .filter(|e| e["endpoint"] == endpoint)
        .collect()
}

/// Token-endpoint requests of `grant_type`, each with the jti of the id
/// token it presented.
fn exchanges(world: &World, grant_type: &str) -> Vec<Value> {
    events(world, "token")
        .into_iter()
        .filter(|e| e["grant_type"] == grant_type)
        .collect()
}

/// No id token the CI issuer minted is in any file under HOME or in
/// anything keygate or git printed.
#[track_caller]
fn assert_no_id_token_anywhere(world: &World, outputs: &[&Output]) {
    let tokens = minted(world);
    assert!(!tokens.is_empty(), "the CI issuer minted nothing");
    let files = world.files_under_home();
    assert!(!files.is_empty());
    for token in &tokens {
        // The signature alone would do; the whole token is what leaks.
        for (path, bytes) in &files {
            assert!(
                !String::from_utf8_lossy(bytes).contains(token.as_str()),
                "an id token in {}",
                path.display()
            );
        }
        for output in outputs {
            for stream in [&output.stdout, &output.stderr] {
                assert!(
                    !text(stream).contains(token.as_str()),
                    "an id token printed"
                );
            }
        }
    }
}

/// keygate's own lines on stderr (git adds its `fatal:` ones).
fn keygate_lines(output: &Output) -> Vec<String> {
    text(&output.stderr)
        .lines()
        .filter(|l| l.starts_with("keygate:"))
        .map(str::to_owned)
        .collect()
}

fn clone_and_push(world: &World, dest: &str) -> Vec<Output> {
    let clone = world.git(&["clone", "-q", &world.repo_url(), dest]);
    ok(&clone);
    let repo = world.dir.path().join(dest);
    let repo = repo.to_str().unwrap();
    ok(&world.git(&["-C", repo, "commit", "-q", "--allow-empty", "-m", "from CI"]));
    let push = world.git(&["-C", repo, "push", "-q", "origin", "main"]);
    ok(&push);
    vec![clone, push]
}

/// Runs `command`, failing the test (not hanging it) should it outlive
/// a minute: what "bounded" means to a test that must not time anything.
fn run_bounded(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after a minute: the timeout did not bound it");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn token_exchange_from_github_actions_clones_and_pushes_and_keeps_no_id_token() {
    let mut world = github_actions_world("ci_actions_url");
    configure(
        &world,
        "\tclientId = keygate-ci-exchange\n\tgrant = token_exchange\n\tscopes = git\n",
    );
    let before = world.keygate(&["status"]);
    ok(&before);
    assert!(
        text(&before.stdout).contains("grant=token_exchange  no token yet  id token: GitHub/Forgejo Actions (ACTIONS_ID_TOKEN_REQUEST_URL)"),
        "{}",
        text(&before.stdout)
    );

    world.set_env("KEYGATE_LOG", "trace");
    let mut outputs = clone_and_push(&world, "repo");
    world.set_env("KEYGATE_LOG", "");
    assert!(
        text(&outputs[0].stderr).contains("GitHub/Forgejo Actions"),
        "KEYGATE_LOG names the source"
    );
    // One id token, asked for the server's origin; one exchange; the
    // exchanged token cached for the push.
    let asked = events(&world, "ci_actions");
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["audience"], world.issuer());
    let exchanged = exchanges(&world, TOKEN_EXCHANGE);
    assert_eq!(exchanged.len(), 1);
    assert_eq!(exchanged[0]["status"], 200);
    assert_eq!(exchanged[0]["id_token_jti"], asked[0]["jti"]);
    assert_eq!(world.authorization_requests(), 0);
    assert!(world.browser_launches().is_empty());
    let account = world.stored_account();
    assert_eq!(account["grant"], "token_exchange");

    // keygate token and env serve the cached exchanged token.
    let token = world.keygate(&["token", &world.repo_url()]);
    ok(&token);
    assert_eq!(text(&token.stdout).trim(), account["access_token"]);
    let env = world.keygate(&["env", "composer", &world.repo_url()]);
    ok(&env);
    assert!(text(&env.stdout).contains(account["access_token"].as_str().unwrap()));
    assert_eq!(exchanges(&world, TOKEN_EXCHANGE).len(), 1);

    let status = world.keygate(&["status", "--json"]);
    ok(&status);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["grant"], "token_exchange");
    assert_eq!(
        status[0]["id_token_source"],
        "GitHub/Forgejo Actions (ACTIONS_ID_TOKEN_REQUEST_URL)"
    );
    outputs.extend([token, env]);
    assert_no_id_token_anywhere(&world, &outputs.iter().collect::<Vec<_>>());
    // Nor the request token that asks GitHub for one.
    let request_token = info(&world, "ci_request_token");
    for (path, bytes) in world.files_under_home() {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(request_token),
            "{}",
            path.display()
        );
    }
    for output in &outputs {
        assert!(!text(&output.stderr).contains(request_token));
    }
}

#[test]
fn jwt_bearer_with_a_gitlab_id_tokens_variable_clones_and_pushes() {
    let mut world = ci_world(600);
    // GitLab: `id_tokens: { KEYGATE_ID_TOKEN: { aud: ISSUER } }`.
    let id_token = mint(&world, "");
    world.set_env("GITLAB_CI", "true");
    world.set_env("KEYGATE_ID_TOKEN", &id_token);
    configure(
        &world,
        "\tclientId = keygate-ci-exchange\n\tgrant = jwt_bearer\n\tscopes = git\n",
    );
    let outputs = clone_and_push(&world, "repo");
    let exchanged = exchanges(&world, JWT_BEARER);
    assert_eq!(exchanged.len(), 1);
    assert_eq!(exchanged[0]["status"], 200);
    assert_eq!(world.stored_account()["grant"], "jwt_bearer");
    let status = world.keygate(&["status"]);
    assert!(
        text(&status.stdout).contains("id token: GitLab CI ($KEYGATE_ID_TOKEN)"),
        "{}",
        text(&status.stdout)
    );
    let doctor = world.keygate(&["doctor", &world.repo_url()]);
    assert!(
        text(&doctor.stdout)
            .contains("grant jwt_bearer, client id from git config, CI id token from GitLab CI ($KEYGATE_ID_TOKEN)"),
        "{}",
        text(&doctor.stdout)
    );
    // The variable is the CI's; keygate keeps no copy of its own.
    assert_no_id_token_anywhere(&world, &[&outputs[0], &outputs[1], &doctor]);
    // Without it, doctor says what is missing.
    world.set_env("KEYGATE_ID_TOKEN", "");
    let doctor = world.keygate(&["doctor", &world.repo_url()]);
    assert!(!doctor.status.success());
    assert!(
        text(&doctor.stdout).contains("this is GitLab CI: add `id_tokens:"),
        "{}",
        text(&doctor.stdout)
    );
}

#[test]
fn a_client_assertion_to_an_entra_like_federated_credential_clones_and_pushes() {
    let world = github_actions_world("ci_actions_url");
    let entra = info(&world, "entra_token_endpoint").to_owned();
    configure_with_token_url(
        &world,
        &entra,
        &format!(
            "\tclientId = keygate-entra\n\tclientAssertion = id_token\n\tidToken = github\n\
             \tidTokenAudience = api://AzureADTokenExchange\n\tscopes = {AZURE_DEVOPS_SCOPE}\n"
        ),
    );
    let outputs = clone_and_push(&world, "repo");
    let asked = events(&world, "ci_actions");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["audience"], "api://AzureADTokenExchange");
    let entra_requests = events(&world, "entra_token");
    assert_eq!(entra_requests.len(), 1, "{entra_requests:?}");
    assert_eq!(entra_requests[0]["status"], 200);
    assert_eq!(entra_requests[0]["id_token_jti"], asked[0]["jti"]);
    assert_eq!(world.stored_account()["grant"], "client_credentials");
    assert_no_id_token_anywhere(&world, &outputs.iter().collect::<Vec<_>>());

    // A federated credential for another subject: Entra's refusal, in
    // one line that shows the subject to fix.
    let other = mint(
        &world,
        "aud=api://AzureADTokenExchange&sub=repo:acme/demo:pull_request",
    );
    let token_file = world.dir.path().join("pr-token");
    std::fs::write(&token_file, &other).unwrap();
    configure_with_token_url(
        &world,
        &entra,
        &format!(
            "\tclientId = keygate-entra\n\tclientAssertion = id_token\n\tidToken = file:{}\n\
             \tscopes = {AZURE_DEVOPS_SCOPE}\n",
            token_file.display()
        ),
    );
    world.expire_stored_token();
    let refused = world.git(&["ls-remote", &world.repo_url()]);
    assert!(!refused.status.success());
    let lines = keygate_lines(&refused);
    assert_eq!(lines.len(), 1, "{}", text(&refused.stderr));
    for part in [
        entra.as_str(),
        "client assertion (RFC 7523, client_credentials)",
        "invalid_client",
        "AADSTS700213",
        "sub=repo:acme/demo:pull_request",
        "federated credential",
    ] {
        assert!(lines[0].contains(part), "{part:?} missing: {}", lines[0]);
    }
    assert_no_id_token_anywhere(&world, &[&refused]);
}

#[test]
fn a_stale_token_is_exchanged_again_with_a_fresh_id_token_each_time() {
    let world = github_actions_world("ci_actions_url");
    configure(
        &world,
        "\tclientId = keygate-ci-exchange\n\tgrant = token_exchange\n\tidToken = github\n",
    );
    ok(&world.git(&["clone", "-q", &world.repo_url(), "repo"]));
    let first = world.stored_account()["access_token"].clone();
    world.expire_stored_token();
    let repo = world.dir.path().join("repo");
    ok(&world.git(&["-C", repo.to_str().unwrap(), "fetch", "-q"]));
    let asked = events(&world, "ci_actions");
    assert_eq!(asked.len(), 2, "a new id token for the second exchange");
    assert_ne!(asked[0]["jti"], asked[1]["jti"]);
    let exchanged = exchanges(&world, TOKEN_EXCHANGE);
    assert_eq!(exchanged.len(), 2);
    assert_eq!(exchanged[1]["id_token_jti"], asked[1]["jti"]);
    assert_ne!(world.stored_account()["access_token"], first);
    let tokens = minted(&world);
    assert_ne!(tokens[0], tokens[1]);

    // A file is read afresh for each exchange (a projected token that
    // the kubelet rotates).
    let file = world.dir.path().join("projected-token");
    std::fs::write(&file, mint(&world, "")).unwrap();
    configure(
        &world,
        &format!(
            "\tclientId = keygate-ci-exchange\n\tgrant = token_exchange\n\tidToken = file:{}\n",
            file.display()
        ),
    );
    world.expire_stored_token();
    ok(&world.git(&["-C", repo.to_str().unwrap(), "fetch", "-q"]));
    let rotated = mint(&world, "");
    std::fs::write(&file, &rotated).unwrap();
    world.expire_stored_token();
    ok(&world.git(&["-C", repo.to_str().unwrap(), "fetch", "-q"]));
    let jtis: Vec<Value> = exchanges(&world, TOKEN_EXCHANGE)
        .iter()
        .map(|e| e["id_token_jti"].clone())
        .collect();
    let minted_jtis: Vec<Value> = events(&world, "ci_mint")
        .iter()
        .map(|e| e["jti"].clone())
        .collect();
    assert_eq!(jtis.len(), 4);
    assert_eq!(
        jtis[2..],
        minted_jtis[..],
        "each exchange read the file anew"
    );
}

#[test]
fn refused_id_tokens_fail_once_in_one_line_naming_server_grant_source_and_fix() {
    let mut world = github_actions_world("ci_actions_url");
    let token_url = info(&world, "token_endpoint").to_owned();
    let expired = mint(&world, "ttl=-120");
    let foreign = mint(
        &world,
        "key=untrusted&iss=https://ci.untrusted.example&sub=repo:acme/demo:ref:refs/heads/main",
    );
    world.set_env("EXPIRED_ID_TOKEN", &expired);
    world.set_env("FOREIGN_ID_TOKEN", &foreign);
    let cases = [
        (
            "\tidToken = github\n\tidTokenAudience = https://wrong.example\n",
            vec![
                "GitHub/Forgejo Actions (ACTIONS_ID_TOKEN_REQUEST_URL)",
                "aud=https://wrong.example",
                "idTokenAudience",
            ],
        ),
        (
            "\tidToken = env:EXPIRED_ID_TOKEN\n",
            vec!["($EXPIRED_ID_TOKEN)", "expired"],
        ),
        (
            "\tidToken = env:FOREIGN_ID_TOKEN\n",
            vec![
                "($FOREIGN_ID_TOKEN)",
                "iss=https://ci.untrusted.example",
                "trusts that issuer",
            ],
        ),
    ];
    let mut outputs = Vec::new();
    for (i, (lines, expected)) in cases.iter().enumerate() {
        configure(
            &world,
            &format!("\tclientId = keygate-ci-exchange\n\tgrant = token_exchange\n{lines}"),
        );
        let output = world.git(&["clone", "-q", &world.repo_url(), &format!("repo-{i}")]);
        assert!(!output.status.success());
        let said = keygate_lines(&output);
        assert_eq!(said.len(), 1, "{}", text(&output.stderr));
        for part in [
            token_url.as_str(),
            "token exchange (RFC 8693)",
            "invalid_grant",
        ]
        .iter()
        .chain(expected)
        {
            assert!(said[0].contains(part), "{part:?} missing: {}", said[0]);
        }
        // Not retried: one exchange per attempt, none stored.
        assert_eq!(exchanges(&world, TOKEN_EXCHANGE).len(), i + 1);
        assert!(!world.home.join(".local/share/keygate/tokens.json").exists());
        outputs.push(output);
    }
    assert_no_id_token_anywhere(&world, &outputs.iter().collect::<Vec<_>>());
}

#[test]
fn a_ci_that_does_not_answer_is_bounded_by_the_timeout() {
    let world = github_actions_world("ci_hang_url");
    configure(
        &world,
        "\tclientId = keygate-ci-exchange\n\tgrant = token_exchange\n\ttimeout = 2\n",
    );
    let mut clone = world.command("git");
    clone.args(["clone", "-q", &world.repo_url(), "repo"]);
    let output = run_bounded(clone);
    assert!(!output.status.success());
    let said = keygate_lines(&output);
    assert_eq!(said.len(), 1, "{}", text(&output.stderr));
    for part in [
        "cannot get the CI id token from GitHub/Forgejo Actions",
        "token exchange (RFC 8693)",
        "timed out",
    ] {
        assert!(said[0].contains(part), "{part:?} missing: {}", said[0]);
    }
    assert_eq!(events(&world, "ci_hang").len(), 1);
    assert!(exchanges(&world, TOKEN_EXCHANGE).is_empty());

    // buildkite-agent that never answers, then one that does.
    let agent = world.bin.join("buildkite-agent");
    write_script(&agent, "#!/bin/sh\nexec sleep 300\n");
    configure(
        &world,
        "\tgrant = jwt_bearer\n\tclientId = keygate-ci-exchange\n\tidToken = buildkite\n\ttimeout = 2\n",
    );
    let mut token = world.command(common::KEYGATE);
    token.args(["token", &world.repo_url()]);
    let output = run_bounded(token);
    assert!(!output.status.success());
    let said = keygate_lines(&output);
    assert_eq!(said.len(), 1, "{}", text(&output.stderr));
    assert!(
        said[0].contains("Buildkite (buildkite-agent)") && said[0].contains("did not answer"),
        "{}",
        said[0]
    );
    write_script(
        &agent,
        &format!(
            "#!/bin/sh\n[ \"$1 $2 $3 $4\" = \"oidc request-token --audience {issuer}\" ] || exit 3\n\
             exec curl -sf -X POST --cacert {ca} '{mint}?aud={issuer}'\n",
            issuer = world.issuer(),
            ca = world.ca().display(),
            mint = info(&world, "ci_mint"),
        ),
    );
    let output = world.keygate(&["token", &world.repo_url()]);
    ok(&output);
    assert_eq!(exchanges(&world, JWT_BEARER).len(), 1);
    assert_no_id_token_anywhere(&world, &[&output]);
}

/// Written by a child process: a write handle of ours, inherited by a
/// child another test thread forks meanwhile, would make running the
/// script fail with "text file busy".
fn write_script(path: &std::path::Path, body: &str) {
    let mut write = Command::new("sh");
    write.args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"]);
    write.arg(path);
    ok(&common::run_with_input(write, body.as_bytes()));
}

#[test]
fn thirty_two_parallel_fetches_at_expiry_cause_one_exchange() {
    let world = github_actions_world("ci_actions_url");
    configure(
        &world,
        "\tclientId = keygate-ci-exchange\n\tgrant = token_exchange\n",
    );
    ok(&world.keygate(&["token", &world.repo_url()]));
    world.expire_stored_token();

    let passwords = world.parallel_passwords(32);
    assert_eq!(
        exchanges(&world, TOKEN_EXCHANGE).len(),
        2,
        "the first, then exactly one for all 32"
    );
    assert_eq!(events(&world, "ci_actions").len(), 2);
    assert!(passwords.iter().all(|p| *p == passwords[0]));
    assert_eq!(passwords[0], world.stored_account()["access_token"]);
    ok(&world.git(&["ls-remote", &world.repo_url()]));
}

#[test]
fn the_proxy_injects_an_exchanged_token() {
    let world = github_actions_world("ci_actions_url");
    configure(
        &world,
        "\tclientId = keygate-ci-exchange\n\tgrant = token_exchange\n",
    );
    let proxy = crate::proxy_support::start_proxy(&world);
    let echo = format!("{}/echo-auth", world.git_url);
    let answer = crate::proxy_support::curl(&world, &proxy.url, &proxy.ca, &echo, &[]);
    ok(&answer);
    let seen: Value = serde_json::from_slice(&answer.stdout).unwrap();
    assert_eq!(seen["client_id"], "keygate-ci-exchange", "{seen}");
    assert_eq!(seen["sub"], "repo:acme/demo:ref:refs/heads/main");
    assert_eq!(exchanges(&world, TOKEN_EXCHANGE).len(), 1);
}

#[test]
fn setup_in_ci_writes_the_exchange_grant_the_server_lists() {
    let world = github_actions_world("ci_actions_url");
    std::fs::write(
        world.gitconfig_path(),
        format!(
            "[keygate \"{}\"]\n\tclientId = keygate-ci-exchange\n[http]\n\tsslCAInfo = {}\n",
            world.git_url,
            world.ca().display()
        ),
    )
    .unwrap();
    let output = world.keygate(&[
        "setup",
        &world.repo_url(),
        "--issuer",
        world.issuer(),
        "--json",
    ]);
    ok(&output);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["status"], "done", "{report}");
    assert_eq!(report["logged_in"], true);
    let written: Vec<(String, String)> = report["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["key"].as_str().unwrap().to_owned(),
                s["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        written.contains(&(
            format!("keygate.{}.grant", world.git_url),
            "token_exchange".into()
        )),
        "{written:?}"
    );
    assert_eq!(exchanges(&world, TOKEN_EXCHANGE).len(), 1);
    ok(&world.git(&["clone", "-q", &world.repo_url(), "repo"]));
    assert_eq!(exchanges(&world, TOKEN_EXCHANGE).len(), 1, "cached");
    assert_eq!(world.authorization_requests(), 0);
    assert_no_id_token_anywhere(&world, &[&output]);
}

#[test]
fn parallel_fetches_that_wait_on_a_failing_exchange_do_not_try_again() {
    let world = github_actions_world("ci_hang_url");
    configure(
        &world,
        "\tclientId = keygate-ci-exchange\n\tgrant = token_exchange\n\ttimeout = 2\n",
    );
    // The first holds the lock for the two seconds the CI takes not to
    // answer; the others start meanwhile and wait for it.
    let outputs = world.parallel_fills(8);
    assert!(outputs.iter().all(|o| !o.status.success()));
    assert_eq!(events(&world, "ci_hang").len(), 1, "asked the CI once");
    let said: Vec<String> = outputs.iter().flat_map(keygate_lines).collect();
    assert_eq!(said.len(), 8, "{said:#?}");
    assert!(
        said.iter().all(|line| line.contains("timed out")),
        "{said:#?}"
    );
    assert_eq!(
        said.iter()
            .filter(|line| line.contains("met by another keygate process"))
            .count(),
        7,
        "{said:#?}"
    );
    // A later command tries again: the CI may have recovered.
    let output = world.keygate(&["token", &world.repo_url()]);
    assert!(!output.status.success());
    assert_eq!(events(&world, "ci_hang").len(), 2);
}
