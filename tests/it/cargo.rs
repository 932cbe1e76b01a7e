//! keygate as cargo's credential provider, end to end: real cargo (the
//! toolchain's) with its home in the test's temp dir, against the sparse
//! registries tests/support/cargo_registry.py serves on the git server's
//! origin, where every request needs a token the OAuth server says is
//! active. crates.io is replaced by an empty directory source, so nothing
//! reaches the internet.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{HELPER, KEYGATE, Options, World, credential_field, ok, read_jsonl, text};

/// The cargo and rustc of the toolchain running these tests: the rustup
/// proxies would look for their toolchains under the test's HOME.
fn toolchain() -> (PathBuf, PathBuf) {
    let cargo = PathBuf::from(std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned()));
    let rustc = cargo.with_file_name("rustc");
    assert!(
        rustc.is_file(),
        "no rustc beside {} (run the tests with cargo)",
        cargo.display()
    );
    (cargo, rustc)
}

/// The registry keygate serves: on the git server, whose keygate section
/// (and account) it shares.
pub(crate) fn index(world: &World) -> String {
    format!("sparse+{}/cargo/index/", world.git_url)
}

/// The registry keygate has no configuration for: the same server by
/// another name, taking only a fixed token.
fn static_index(world: &World) -> String {
    let port = world.git_url.rsplit(':').next().unwrap();
    format!("sparse+https://localhost:{port}/static/index/")
}

const STATIC_TOKEN: &str = "static-registry-token";

pub(crate) struct Cargo {
    home: PathBuf,
    cargo: PathBuf,
    rustc: PathBuf,
    ca: PathBuf,
}

impl Cargo {
    /// A cargo home whose config has crates.io replaced by an empty
    /// directory, and `keygate setup cargo` run for the registry as `kg`.
    pub(crate) fn new(world: &World) -> Self {
        Self::in_home(world, "cargo-home")
    }

    /// [`Cargo::new`] with its home in the directory `name`: cargo
    /// processes sharing a home wait for each other's package cache lock.
    pub(crate) fn in_home(world: &World, name: &str) -> Self {
        let (cargo, rustc) = toolchain();
        let home = world.dir.path().join(name);
        let nowhere = world.dir.path().join("no-crates-io");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&nowhere).unwrap();
        std::fs::write(
            home.join("config.toml"),
            format!(
                "# the test's: nothing from crates.io\n[source.crates-io]\nreplace-with = \"nowhere\"\n\n\
                 [source.nowhere]\ndirectory = \"{}\"\n\n[term]\ncolor = \"never\"\n",
                nowhere.display()
            ),
        )
        .unwrap();
        let cargo = Self {
            home,
            cargo,
            rustc,
            ca: world.ca(),
        };
        let setup = cargo
            .env(world.command(KEYGATE))
            .args(["setup", "cargo", &index(world), "--name", "kg"])
            .output()
            .unwrap();
        ok(&setup);
        cargo
    }

    fn env(&self, mut command: Command) -> Command {
        command
            .env("CARGO_HOME", &self.home)
            .env("RUSTC", &self.rustc)
            .env("CARGO_HTTP_CAINFO", &self.ca)
            .env("CARGO_TERM_COLOR", "never")
            .env("CARGO_INCREMENTAL", "0");
        command
    }

    pub(crate) fn command(&self, world: &World, project: &Path, args: &[&str]) -> Command {
        let mut command = self.env(world.command(&self.cargo));
        command.args(args).current_dir(project);
        command
    }

    fn run(&self, world: &World, project: &Path, args: &[&str]) -> Output {
        self.command(world, project, args)
            .output()
            .expect("run cargo")
    }

    fn config(&self) -> String {
        std::fs::read_to_string(self.home.join("config.toml")).unwrap()
    }

    /// The registry's provider made `cargo-credential-keygate` on PATH, a
    /// link to the front program, as install.sh installs it and `keygate
    /// setup cargo` then names it.
    pub(crate) fn through_front(&self, world: &World) {
        let conventional = front_on_path(world);
        let config = self.config().replace(
            &provider_line(&configured_provider()),
            &provider_line(&conventional),
        );
        assert!(config.contains(&provider_line(&conventional)), "{config}");
        std::fs::write(self.home.join("config.toml"), config).unwrap();
    }
}

/// `cargo-credential-keygate` in the world's PATH: a link to the front
/// program, as install.sh links it.
fn front_on_path(world: &World) -> PathBuf {
    let conventional = world.bin.join("cargo-credential-keygate");
    if !conventional.exists() {
        std::os::unix::fs::symlink(HELPER, &conventional).unwrap();
    }
    conventional
}

/// The program `keygate setup cargo` names: the `cargo-credential-keygate`
/// install.sh links beside keygate (under `.ci/run`), else keygate.
fn configured_provider() -> PathBuf {
    let keygate = std::fs::canonicalize(KEYGATE).unwrap();
    let beside = keygate.with_file_name("cargo-credential-keygate");
    if beside.is_file() { beside } else { keygate }
}

fn provider_line(program: &Path) -> String {
    format!(
        "credential-provider = [\"{}\", \"cargo\"]\n",
        program.display()
    )
}

/// A binary crate printing what its registry dependencies say: `deps` are
/// `(crate, registry)`.
pub(crate) fn project(world: &World, name: &str, deps: &[(&str, &str)]) -> PathBuf {
    let dir = world.dir.path().join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let mut manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         description = \"keygate test\"\nlicense = \"MIT\"\npublish = [\"kg\"]\n\n[dependencies]\n"
    );
    let mut main = String::from("fn main() {\n");
    for (dep, registry) in deps {
        manifest += &format!("{dep} = {{ version = \"0.1\", registry = \"{registry}\" }}\n");
        main += &format!(
            "    println!(\"{{}}\", {}::greet());\n",
            dep.replace('-', "_")
        );
    }
    main += "}\n";
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/main.rs"), main).unwrap();
    dir
}

/// The git server's request log, cargo's registries only.
pub(crate) fn registry_requests(world: &World) -> Vec<Value> {
    read_jsonl(&world.certs.join("git-requests.jsonl"))
        .into_iter()
        .filter(|r| r["registry"].is_string() || r["path"].as_str().is_some_and(is_registry_path))
        .collect()
}

fn is_registry_path(path: &str) -> bool {
    path.starts_with("/cargo/") || path.starts_with("/static/")
}

pub(crate) fn fingerprint(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.as_bytes());
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..12]
        .to_owned()
}

fn stored_tokens(world: &World) -> Vec<String> {
    let account = world.stored_account();
    ["access_token", "refresh_token"]
        .iter()
        .filter_map(|k| account[k].as_str().map(str::to_owned))
        .collect()
}

#[track_caller]
fn assert_no_secret(output: &Output, secrets: &[String], what: &str) {
    let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
    for secret in secrets {
        assert!(
            !all.contains(secret.as_str()),
            "{what} shows a token:\n{all}"
        );
    }
}

/// One request as cargo sends it, answered by `program --cargo-plugin`.
fn provider(world: &World, program: &Path, request: &Value) -> Output {
    let mut child = world
        .command(program)
        .arg("--cargo-plugin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = serde_json::to_vec(request).unwrap();
    line.push(b'\n');
    child.stdin.take().unwrap().write_all(&line).unwrap();
    child.wait_with_output().unwrap()
}

fn read_request(index: &str) -> Value {
    serde_json::json!({
        "v": 1,
        "registry": {"index-url": index, "name": "kg"},
        "kind": "get",
        "operation": "read",
        "args": ["cargo"],
    })
}

/// The answer line after the hello.
fn answer(output: &Output) -> Value {
    ok(output);
    let out = text(&output.stdout);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(r#"{"v":[1]}"#), "{out}");
    let answer = serde_json::from_str(lines.next().expect("an answer")).unwrap();
    assert_eq!(lines.next(), None, "{out}");
    answer
}

/// With a 40-second token cargo keeps none in memory (it wants a minute
/// left), so each of its requests, the publish too, asks keygate.
#[test]
fn cargo_builds_and_publishes_with_the_token_git_uses() {
    let mut world = World::start(Options {
        access_token_ttl: 40,
    });
    let cargo = Cargo::new(&world);
    assert!(
        cargo.config().starts_with("# the test's"),
        "{}",
        cargo.config()
    );
    assert!(
        cargo.config().contains(&format!(
            "[registries.kg]\nindex = \"{}\"\n{}",
            index(&world),
            provider_line(&configured_provider())
        )),
        "{}",
        cargo.config()
    );
    // Again, for a script: nothing left to write.
    let again = cargo
        .env(world.command(KEYGATE))
        .args(["setup", "cargo", &index(&world), "--name", "kg", "--json"])
        .output()
        .unwrap();
    ok(&again);
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["state"], "present", "{report}");
    assert_eq!(report["registry"], "kg", "{report}");
    assert_eq!(report["next_steps"], serde_json::json!([]), "{report}");
    world.set_env("KEYGATE_LOG", "keygate=trace");
    let app = project(&world, "app", &[("keygate-hello", "kg")]);

    // cargo's first request logs in, as git's would.
    let run = cargo.run(&world, &app, &["run", "-q"]);
    ok(&run);
    assert_eq!(text(&run.stdout), "hello from the keygate registry\n");
    assert_eq!(world.browser_launches().len(), 1);
    // The test may outlive a 40-second token: every token it saw.
    let mut secrets = stored_tokens(&world);
    let requests = registry_requests(&world);
    assert!(
        requests
            .iter()
            .any(|r| r["status"] == 401 && r["auth"] == "none"),
        "cargo first asked without a token: {requests:?}"
    );
    let served: Vec<_> = requests.iter().filter(|r| r["status"] == 200).collect();
    for path in [
        "/cargo/index/config.json",
        "/cargo/index/ke/yg/keygate-hello",
        "/cargo/dl/keygate-hello/0.1.0/download",
    ] {
        assert!(
            served.iter().any(|r| r["path"] == path),
            "{path} not served: {requests:?}"
        );
    }
    // As the proxy presents it: Basic with the default user name.
    assert!(served.iter().all(|r| r["auth"] == "basic"), "{served:?}");

    // git shares the account: no second login.
    ok(&world.git(&["clone", "-q", &world.repo_url(), "repo"]));
    assert_eq!(world.browser_launches().len(), 1, "git used cargo's login");

    // A crate depending on the registry's is published to it: cargo asks
    // keygate for a publish token.
    let greeter = project(&world, "keygate-greeter", &[("keygate-hello", "kg")]);
    let publish = cargo.run(
        &world,
        &greeter,
        &["publish", "--registry", "kg", "--no-verify"],
    );
    ok(&publish);
    assert!(
        text(&publish.stderr).contains(r#"operation="publish""#),
        "keygate answered a publish request: {}",
        text(&publish.stderr)
    );
    let published = registry_requests(&world)
        .into_iter()
        .filter(|r| r["published"] == "keygate-greeter-0.1.0")
        .count();
    assert_eq!(published, 1);
    // And is a dependency like any other.
    let user = project(&world, "user", &[("keygate-greeter", "kg")]);
    std::fs::write(
        user.join("src/main.rs"),
        "fn main() { println!(\"built\"); }\n",
    )
    .unwrap();
    ok(&cargo.run(&world, &user, &["build", "-q"]));

    assert_eq!(world.token_requests("authorization_code"), 1);
    secrets.extend(stored_tokens(&world));
    for (output, what) in [(&run, "cargo run"), (&publish, "cargo publish")] {
        assert_no_secret(output, &secrets, what);
    }
    for (path, bytes) in world.files_under_home() {
        if path.starts_with(&cargo.home) {
            let content = String::from_utf8_lossy(&bytes);
            for secret in &secrets {
                assert!(
                    !content.contains(secret.as_str()),
                    "{} holds a token",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn a_registry_keygate_does_not_serve_goes_to_cargos_next_provider() {
    let mut world = World::start(Options::default());
    let cargo = Cargo::new(&world);
    ok(&world.keygate(&["login", &world.repo_url()]));

    // The answer cargo falls through on, and exit 0, from keygate and
    // from the front program alike.
    let front = front_on_path(&world);
    for program in [Path::new(KEYGATE), &front] {
        let output = provider(&world, program, &read_request(&static_index(&world)));
        assert_eq!(
            answer(&output),
            serde_json::json!({"Err": {"kind": "url-not-supported"}})
        );
        assert_eq!(text(&output.stderr), "");
    }

    // Both registries through the global providers, keygate's front
    // first (cargo tries the last listed first); the static one gets
    // cargo's own token, the other keygate's, both answered by the front.
    let mut config = cargo
        .config()
        .replace(&provider_line(&configured_provider()), "");
    config += &format!(
        "\n[registries.static]\nindex = \"{}\"\n\n[registry]\nglobal-credential-providers = [\"cargo:token\", \"{} cargo\"]\n",
        static_index(&world),
        front.display()
    );
    std::fs::write(cargo.home.join("config.toml"), config).unwrap();
    world.set_env("CARGO_REGISTRIES_STATIC_TOKEN", STATIC_TOKEN);
    let app = project(
        &world,
        "app",
        &[("keygate-hello", "kg"), ("static-hello", "static")],
    );
    let run = cargo.run(&world, &app, &["run", "-q"]);
    ok(&run);
    assert_eq!(
        text(&run.stdout),
        "hello from the keygate registry\nhello from the static registry\n"
    );
    let requests = registry_requests(&world);
    assert!(
        requests
            .iter()
            .any(|r| r["path"] == "/static/dl/static-hello/0.1.0/download" && r["status"] == 200),
        "{requests:?}"
    );
    assert_eq!(world.browser_launches().len(), 1, "only the login");
}

/// A manifest cargo reads (the project's, or a git or path dependency's)
/// can name an index by URL (`registry-index`): one put on the forge's
/// own origin by anybody (GitLab serves a repository's files under
/// `/-/raw/`), whose config.json says `auth-required` and sends downloads
/// to its author's host. cargo asks the global providers for it, naming
/// no registry, and sends what it gets to those downloads too: keygate
/// must not hand it the forge's token for the origin's sake. `cargo
/// metadata` is enough, no build script runs.
#[test]
fn an_index_a_manifest_names_on_the_forges_origin_gets_no_token() {
    let world = World::start(Options::default());
    let cargo = Cargo::new(&world);
    ok(&world.keygate(&["login", &world.repo_url()]));
    let secrets = stored_tokens(&world);
    let mut config = cargo.config();
    config = config.replace(
        &format!(
            "credential-provider = [\"{}\", \"cargo\"]\n",
            std::fs::canonicalize(KEYGATE).unwrap().display()
        ),
        "",
    );
    config += &format!(
        "\n[registry]\nglobal-credential-providers = [\"cargo:token\", \"{KEYGATE} cargo\"]\n"
    );
    std::fs::write(cargo.home.join("config.toml"), config).unwrap();

    let dir = world.dir.path().join("victim");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"victim\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nuploads-hello = {{ version = \"0.1\", registry-index = \"sparse+{}/uploads/index/\" }}\n",
            world.git_url
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    let metadata = cargo.run(&world, &dir, &["metadata", "--format-version", "1"]);

    let requests = registry_requests(&world);
    let uploads: Vec<_> = requests
        .iter()
        .filter(|r| r["registry"] == "uploads")
        .collect();
    assert!(
        uploads
            .iter()
            .any(|r| r["path"] == "/uploads/index/config.json"),
        "cargo read the index: {requests:?}\n{}",
        text(&metadata.stderr)
    );
    let fingerprints: Vec<String> = secrets.iter().map(|s| fingerprint(s)).collect();
    for request in &uploads {
        assert!(
            !request["token_sha256"]
                .as_str()
                .is_some_and(|t| fingerprints.iter().any(|f| f == t)),
            "keygate's token went to somebody's index: {request}"
        );
    }
    assert_no_secret(&metadata, &secrets, "cargo metadata");
}

/// cargo names no registry for an index a manifest names by URL: keygate
/// and its front program alike refuse it, a fresh stored token or not.
#[test]
fn an_unnamed_registry_gets_no_token_from_keygate_or_the_front() {
    let world = World::start(Options::default());
    let _cargo = Cargo::new(&world);
    ok(&world.keygate(&["login", &world.repo_url()]));
    let secrets = stored_tokens(&world);
    let mut request = read_request(&index(&world));
    request["registry"].as_object_mut().unwrap().remove("name");

    let front = front_on_path(&world);
    for program in [Path::new(KEYGATE), &front] {
        let output = provider(&world, program, &request);
        assert_eq!(
            answer(&output),
            serde_json::json!({"Err": {"kind": "url-not-supported"}}),
            "{}",
            program.display()
        );
        assert_no_secret(&output, &secrets, "an unnamed registry's answer");
    }
}

/// cargo keeps a token in memory only while more than a minute is left,
/// so with a 40-second token it starts keygate for every request: the
/// one after the stored token went stale gets a refreshed one.
#[test]
fn a_token_going_stale_in_the_middle_of_a_fetch_is_refreshed_once() {
    stale_in_the_middle_of_a_fetch(false);
}

/// As install.sh installs it: the front program answers the requests
/// while the stored token is fresh and hands the stale one to keygate,
/// which must not say hello a second time (cargo would fail on it).
#[test]
fn through_the_front_program_a_token_going_stale_mid_fetch_is_refreshed_once() {
    stale_in_the_middle_of_a_fetch(true);
}

fn stale_in_the_middle_of_a_fetch(through_front: bool) {
    let world = World::start(Options {
        access_token_ttl: 40,
    });
    let cargo = Cargo::new(&world);
    if through_front {
        cargo.through_front(&world);
    }
    ok(&world.keygate(&["login", &world.repo_url()]));
    let first = world.stored_account()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let app = project(&world, "app", &[("keygate-hello", "kg")]);

    // The index file's answer waits until the stored token is stale.
    std::fs::write(world.certs.join("cargo-hold"), "index/ke/").unwrap();
    let fetch = cargo
        .command(&world, &app, &["fetch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !registry_requests(&world)
        .iter()
        .any(|r| r["held"].is_string())
    {
        assert!(
            Instant::now() < deadline,
            "cargo never asked for the index file"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    world.expire_stored_token();
    std::fs::write(world.certs.join("cargo-release"), "").unwrap();
    let fetch = fetch.wait_with_output().unwrap();
    ok(&fetch);

    assert_eq!(world.token_requests("refresh_token"), 1, "one refresh");
    let second = world.stored_account()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
    let requests = registry_requests(&world);
    let carried = |path: &str| {
        requests
            .iter()
            .find(|r| r["path"] == path && r["status"] == 200)
            .map(|r| r["token_sha256"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        carried("/cargo/index/ke/yg/keygate-hello"),
        Some(fingerprint(&first))
    );
    assert_eq!(
        carried("/cargo/dl/keygate-hello/0.1.0/download"),
        Some(fingerprint(&second)),
        "the download after the stale instant carried the refreshed token"
    );
    assert_no_secret(&fetch, &[first, second], "cargo fetch");
}

#[test]
fn in_ci_cargo_gets_an_error_and_no_browser_opens() {
    let mut world = World::start(Options::default());
    let cargo = Cargo::new(&world);
    world.set_env("CI", "true");
    let app = project(&world, "app", &[("keygate-hello", "kg")]);
    let fetch = cargo.run(&world, &app, &["fetch"]);
    assert!(!fetch.status.success());
    let stderr = text(&fetch.stderr);
    assert!(stderr.contains("CI is set"), "{stderr}");
    assert!(
        stderr.contains("keygate login"),
        "says what to do: {stderr}"
    );
    assert!(world.browser_launches().is_empty());
    assert_eq!(world.authorization_requests(), 0);
}

#[test]
fn cargo_login_and_logout_are_keygates() {
    let world = World::start(Options::default());
    let cargo = Cargo::new(&world);
    let app = project(&world, "app", &[]);
    let login = cargo.run(&world, &app, &["login", "--registry", "kg"]);
    ok(&login);
    assert_eq!(world.browser_launches().len(), 1);
    assert!(
        text(&login.stderr).contains("keygate: logged in to"),
        "{}",
        text(&login.stderr)
    );
    let secrets = stored_tokens(&world);
    assert_no_secret(&login, &secrets, "cargo login");

    // A token handed to `cargo login` is refused: keygate keeps none.
    let pasted = cargo.run(&world, &app, &["login", "--registry", "kg", "pasted-token"]);
    assert!(!pasted.status.success());
    assert!(
        text(&pasted.stderr).contains("keeps none given to it"),
        "{}",
        text(&pasted.stderr)
    );

    let logout = cargo.run(&world, &app, &["logout", "--registry", "kg"]);
    ok(&logout);
    assert!(
        text(&logout.stderr).contains("the tokens for"),
        "{}",
        text(&logout.stderr)
    );
    let file = world.token_file();
    assert_eq!(file["accounts"].as_array().map(Vec::len), Some(0), "{file}");
}

/// git's `get` and cargo's at the same stale instant (keygate itself and
/// the front program as `cargo-credential-keygate`): one refresh, one
/// token for all of them, and one hello to each cargo.
#[test]
fn sixteen_callers_across_git_and_cargo_at_expiry_refresh_once() {
    let world = World::start(Options::default());
    let _cargo = Cargo::new(&world);
    ok(&world.keygate(&["login", &world.repo_url()]));
    world.expire_stored_token();

    // cargo's conventional name on PATH, as install.sh links it: the
    // front program, which hands the stale token's request to keygate.
    let conventional = front_on_path(&world);
    let git_input = format!("url={}\n\n", world.repo_url());
    let mut cargo_line = serde_json::to_vec(&read_request(&index(&world))).unwrap();
    cargo_line.push(b'\n');
    let callers: Vec<(bool, std::process::Child)> = (0..16)
        .map(|i| {
            let git = i % 2 == 0;
            let mut command = if git {
                let mut git = world.command("git");
                git.args(["credential", "fill"]);
                git
            } else {
                let program = if i % 4 == 1 {
                    conventional.as_path()
                } else {
                    Path::new(KEYGATE)
                };
                let mut keygate = world.command(program);
                keygate.arg("--cargo-plugin");
                keygate
            };
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let input = if git {
                git_input.as_bytes()
            } else {
                &cargo_line[..]
            };
            child.stdin.take().unwrap().write_all(input).unwrap();
            (git, child)
        })
        .collect();
    let tokens: Vec<String> = callers
        .into_iter()
        .map(|(git, child)| {
            let output = child.wait_with_output().unwrap();
            if git {
                ok(&output);
                credential_field(&output, "password").expect("a password")
            } else {
                let answer = answer(&output);
                let ok = &answer["Ok"];
                assert_eq!(ok["kind"], "get", "{answer}");
                assert_eq!(ok["cache"], "expires");
                assert_eq!(ok["operation_independent"], true);
                assert!(ok["expiration"].as_u64().unwrap() > crate::common::now());
                let header = ok["token"].as_str().unwrap();
                let basic = header.strip_prefix("Basic ").expect("a Basic header");
                use base64::Engine;
                let pair = base64::engine::general_purpose::STANDARD
                    .decode(basic)
                    .unwrap();
                let pair = String::from_utf8(pair).unwrap();
                pair.strip_prefix("oauth2:")
                    .expect("oauth2:TOKEN")
                    .to_owned()
            }
        })
        .collect();
    assert_eq!(
        world.token_requests("refresh_token"),
        1,
        "exactly one refresh"
    );
    let stored = world.stored_account()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        tokens.iter().all(|t| *t == stored),
        "all got the refreshed token"
    );
}
