//! The world an end-to-end test runs in: a temp HOME, a throwaway CA, the
//! real `oidc-provider` OAuth server, a git smart-HTTP server that accepts
//! only valid tokens, and optionally gnome-keyring on a private D-Bus. All
//! processes are killed when the world is dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test: `KEYGATE_BIN` when set at build time (`.ci/run`
/// points it at the one `install.sh` installed), else cargo's own build.
pub const KEYGATE: &str = match option_env!("KEYGATE_BIN") {
    Some(bin) => bin,
    None => env!("CARGO_BIN_EXE_keygate"),
};

/// The program git runs for `credential.helper=keygate`: its quick path,
/// which hands what it cannot answer to the `keygate` beside it (`.ci/run`
/// sets `KEYGATE_HELPER_BIN` to the one `install.sh` installed beside
/// `KEYGATE_BIN`).
pub const HELPER: &str = match option_env!("KEYGATE_HELPER_BIN") {
    Some(bin) => bin,
    None => env!("CARGO_BIN_EXE_git-credential-keygate"),
};

pub fn support(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(path)
}

/// A child process killed (and reaped) on drop, unless waited for.
pub struct Guard(Option<Child>);

impl Guard {
    pub fn new(child: Child) -> Self {
        Self(Some(child))
    }

    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// Takes the process out of the guard: the caller now owns it.
    pub fn take(&mut self) -> Child {
        self.0.take().expect("a guarded child")
    }

    /// Lets the process finish and collects what it printed.
    pub fn wait_with_output(mut self) -> Output {
        let child = self.0.take().expect("a guarded child");
        child.wait_with_output().expect("wait for child")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub struct Options {
    pub access_token_ttl: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            access_token_ttl: 600,
        }
    }
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub certs: PathBuf,
    pub bin: PathBuf,
    pub oidc: Value,
    pub git_url: String,
    pub dbus_address: Option<String>,
    /// Extra environment for every command this world runs.
    pub env: Vec<(String, String)>,
    // Dropped in reverse order of start: git server, OAuth server, keyring.
    servers: Vec<Guard>,
}

/// A temp dir with a HOME, the test CA and a bin dir with `keygate` and
/// `git-credential-keygate`.
fn layout() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    let certs = dir.path().join("certs");
    let bin = dir.path().join("bin");
    for d in [&home, &certs, &bin] {
        std::fs::create_dir_all(d).unwrap();
    }
    // The name git runs for `credential.helper=keygate`.
    std::os::unix::fs::symlink(HELPER, bin.join("git-credential-keygate")).unwrap();
    std::os::unix::fs::symlink(KEYGATE, bin.join("keygate")).unwrap();
    let status = Command::new(support("mkcerts.sh"))
        .arg(&certs)
        .stdout(Stdio::null())
        .status()
        .expect("mkcerts.sh");
    assert!(status.success(), "mkcerts.sh failed");
    (dir, home, certs, bin)
}

/// A copy of `git-credential-keygate` beside a stand-in `keygate` that
/// records each call (arguments, then stdin) and answers
/// `password=from-keygate`, exiting with `$FAKE_KEYGATE_EXIT`: what the
/// quick path answers alone, and what it hands on and how.
pub struct QuickPathAlone {
    pub dir: PathBuf,
}

impl QuickPathAlone {
    pub fn new(world: &World) -> Self {
        let dir = world.dir.path().join("quick-path-alone");
        std::fs::create_dir_all(&dir).unwrap();
        // Written by child processes: a write handle of ours, inherited by
        // a child another test thread forks meanwhile, would make running
        // these files fail with "text file busy".
        let program = dir.join("git-credential-keygate");
        // A copy: the program looks for keygate beside its real path.
        let copied = Command::new("cp").arg(HELPER).arg(&program).status();
        assert!(copied.unwrap().success(), "cp {HELPER}");
        let mut write_fake = Command::new("sh");
        write_fake.args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"]);
        write_fake.arg(dir.join("keygate"));
        let fake = "#!/bin/sh\n\
                    dir=$(dirname \"$0\")\n\
                    n=$(ls \"$dir\" | grep -c '^call\\.')\n\
                    { printf '%s\\n' \"$*\"; printf '%s' \"${KEYGATE_CARGO_READ-}\"; cat; } > \"$dir/call.$n\"\n\
                    echo password=from-keygate\n\
                    exit \"${FAKE_KEYGATE_EXIT:-0}\"\n";
        ok(&run_with_input(write_fake, fake.as_bytes()));
        Self { dir }
    }

    pub fn command(&self, world: &World, args: &[&str]) -> Command {
        let mut command = world.command(self.dir.join("git-credential-keygate"));
        command.args(args);
        command
    }

    pub fn run(&self, world: &World, args: &[&str], input: &str) -> Output {
        run_with_input(self.command(world, args), input.as_bytes())
    }

    /// Each call of the stand-in keygate: its arguments, a newline, its
    /// input (what the front handed over in `KEYGATE_CARGO_READ`, then stdin).
    pub fn keygate_calls(&self) -> Vec<String> {
        let mut calls = Vec::new();
        while let Ok(call) = std::fs::read_to_string(self.dir.join(format!("call.{}", calls.len())))
        {
            calls.push(call);
        }
        calls
    }
}

/// Runs `command` with `input` on its stdin and collects its output.
pub fn run_with_input(command: Command, input: &[u8]) -> Output {
    spawn_with_input(command, input)
        .wait_with_output()
        .expect("wait")
}

/// Starts `command` with `input` as all of its stdin (closed after it),
/// stdout and stderr piped: for callers that must all be running at once.
pub fn spawn_with_input(mut command: Command, input: &[u8]) -> std::process::Child {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input)
        .expect("write stdin");
    child
}

/// Starts `command` and waits for the one JSON line it prints when ready.
pub fn start_server(mut command: Command, what: &str, log: &Path) -> (Guard, Value) {
    let log = std::fs::File::create(log).expect("server log file");
    command
        .stdout(Stdio::piped())
        .stderr(log)
        .stdin(Stdio::null());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read server line");
    let guard = Guard::new(child);
    let info: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("{what} did not print its JSON line ({e}): {line:?}"));
    (guard, info)
}

impl World {
    pub fn start(options: Options) -> World {
        Self::start_with_oidc_env(options, &[])
    }

    /// A world whose OAuth server gets `oidc_env` (e.g. `REGISTRATION=open`).
    pub fn start_with_oidc_env(options: Options, oidc_env: &[(&str, &str)]) -> World {
        Self::start_on(options, oidc_env, 0)
    }

    /// A world whose git server listens on `git_port` (0: a free one), for
    /// a URL fixed before the test starts (a client baked into a build).
    pub fn start_on(options: Options, oidc_env: &[(&str, &str)], git_port: u16) -> World {
        let (dir, home, certs, bin) = layout();
        let mut oidc_cmd = Command::new("node");
        oidc_cmd
            .arg(support("oidc/server.mjs"))
            .arg("--dir")
            .arg(&certs)
            .env("ACCESS_TOKEN_TTL", options.access_token_ttl.to_string())
            .envs(oidc_env.iter().copied());
        let (oidc_guard, oidc) =
            start_server(oidc_cmd, "oidc-provider", &dir.path().join("oidc.log"));

        let repos = dir.path().join("repos");
        let status = Command::new(support("make_repo.sh"))
            .arg(&repos)
            .arg("demo")
            .stdout(Stdio::null())
            .status()
            .expect("make_repo.sh");
        assert!(status.success(), "make_repo.sh failed");
        let mut git_cmd = Command::new("python3");
        git_cmd
            .arg(support("git_server.py"))
            .arg("--root")
            .arg(&repos)
            .arg("--dir")
            .arg(&certs)
            .arg("--introspect")
            .arg(oidc["introspection_endpoint"].as_str().unwrap())
            .arg("--port")
            .arg(git_port.to_string());
        let (git_guard, git) =
            start_server(git_cmd, "git server", &dir.path().join("git-server.log"));
        let git_url = git["url"].as_str().unwrap().to_owned();

        let world = World {
            home,
            certs,
            bin,
            oidc,
            git_url,
            dbus_address: None,
            env: Vec::new(),
            servers: vec![oidc_guard, git_guard],
            dir,
        };
        world.write_gitconfig("");
        world
    }

    /// A world with no servers: for tests that bring their own fake one.
    pub fn offline() -> World {
        let (dir, home, certs, bin) = layout();
        std::fs::write(home.join(".gitconfig"), "").unwrap();
        World {
            home,
            certs,
            bin,
            oidc: Value::Null,
            git_url: String::new(),
            dbus_address: None,
            env: Vec::new(),
            servers: Vec::new(),
            dir,
        }
    }

    /// The offline world in which a refresh is due: `[keygate
    /// "OFFLINE_SERVER"]` configured with `client_id`, the token endpoint
    /// `token_url` (nothing else of the server is ever reached) and a
    /// 2-second timeout, and one stored account whose access token
    /// (`stale-access-token`) went stale long ago and whose refresh token
    /// is `refresh-token-to-keep`.
    pub fn offline_with_stale_account(client_id: &str, token_url: &str) -> World {
        let world = World::offline();
        std::fs::write(
            world.gitconfig_path(),
            format!(
                "[keygate \"{OFFLINE_SERVER}\"]\n\tclientId = {client_id}\n\tauthUrl = https://auth.example.test/auth\n\
                 \ttokenUrl = {token_url}\n\ttimeout = 2\n"
            ),
        )
        .unwrap();
        world.seed_token_file(
            Record::new(OFFLINE_SERVER, "stale-access-token")
                .refresh_token("refresh-token-to-keep"),
        );
        world
    }

    /// Writes a token file with one record, as a previous login would have.
    pub fn seed_token_file(&self, record: impl Into<Value>) {
        let dir = self.home.join(".local/share/keygate");
        std::fs::create_dir_all(&dir).unwrap();
        let document = serde_json::json!({"version": 1, "accounts": [record.into()]});
        std::fs::write(
            dir.join("tokens.json"),
            serde_json::to_vec(&document).unwrap(),
        )
        .unwrap();
        // keygate reads only a token file no one else can.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("tokens.json"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }

    pub fn issuer(&self) -> &str {
        self.oidc["issuer"].as_str().unwrap()
    }

    pub fn ca(&self) -> PathBuf {
        self.certs.join("ca.pem")
    }

    pub fn repo_url(&self) -> String {
        format!("{}/demo.git", self.git_url)
    }

    pub fn gitconfig_path(&self) -> PathBuf {
        self.home.join(".gitconfig")
    }

    /// The global git config: keygate as the only helper, configured for
    /// the git server with the test OAuth server's endpoints, plus `extra`.
    pub fn write_gitconfig(&self, extra: &str) {
        let config = format!(
            "[user]\n\tname = Test\n\temail = test@example.com\n\
             [init]\n\tdefaultBranch = main\n\
             [credential]\n\thelper = keygate\n\
             [keygate \"{git}\"]\n\tclientId = keygate-test\n\tauthUrl = {auth}\n\ttokenUrl = {token}\n\
             \tscopes = git\n\tloginTimeout = 20\n\
             [http]\n\tsslCAInfo = {ca}\n{extra}",
            git = self.git_url,
            auth = self.oidc["authorization_endpoint"].as_str().unwrap(),
            token = self.oidc["token_endpoint"].as_str().unwrap(),
            ca = self.ca().display(),
        );
        std::fs::write(self.gitconfig_path(), config).unwrap();
    }

    pub fn browser_log(&self) -> PathBuf {
        self.dir.path().join("browser.jsonl")
    }

    /// A command with a clean environment: nothing of the machine's
    /// (CI, RUST_BACKTRACE, SSL_CERT_FILE...) leaks in.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        command
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.home)
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.gitconfig_path())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("SSL_CERT_FILE", self.ca())
            .env("GIT_SSL_CAINFO", self.ca())
            .env("CURL_CA_BUNDLE", self.ca())
            .env("KEYGATE_STORE", "file")
            .env("BROWSER", support("browser.py"))
            .env("KEYGATE_TEST_CA", self.ca())
            .env("KEYGATE_TEST_BROWSER_LOG", self.browser_log())
            .env("KEYGATE_TEST_SCHEME_HANDLER", format!("{KEYGATE} callback"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        if let Some(address) = &self.dbus_address {
            command.env("DBUS_SESSION_BUS_ADDRESS", address);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    pub fn git(&self, args: &[&str]) -> Output {
        self.command("git").args(args).output().expect("run git")
    }

    pub fn keygate(&self, args: &[&str]) -> Output {
        self.command(KEYGATE)
            .args(args)
            .output()
            .expect("run keygate")
    }

    /// Runs `git credential fill` for the test repo and returns its stdout.
    pub fn credential_fill(&self) -> Output {
        self.credential("fill", &format!("url={}\n\n", self.repo_url()))
    }

    /// `count` `git credential fill`s for the test repo, all started
    /// before the first is waited for; their outputs in order.
    pub fn parallel_fills(&self, count: usize) -> Vec<Output> {
        let input = format!("url={}\n\n", self.repo_url());
        let children: Vec<_> = (0..count)
            .map(|_| {
                let mut command = self.command("git");
                command.args(["credential", "fill"]);
                spawn_with_input(command, input.as_bytes())
            })
            .collect();
        children
            .into_iter()
            .map(|child| child.wait_with_output().expect("wait"))
            .collect()
    }

    /// [`World::parallel_fills`] that must all succeed: the password each
    /// was given.
    pub fn parallel_passwords(&self, count: usize) -> Vec<String> {
        self.parallel_fills(count)
            .iter()
            .map(|output| {
                ok(output);
                credential_field(output, "password").expect("a password")
            })
            .collect()
    }

    pub fn credential(&self, action: &str, input: &str) -> Output {
        let mut command = self.command("git");
        command.args(["credential", action]);
        run_with_input(command, input.as_bytes())
    }

    pub fn events(&self) -> Vec<Value> {
        read_jsonl(&self.certs.join("events.jsonl"))
    }

    /// Token-endpoint requests with this grant type.
    pub fn token_requests(&self, grant_type: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e["endpoint"] == "token" && e["grant_type"] == grant_type)
            .count()
    }

    pub fn authorization_requests(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| e["endpoint"] == "authorization")
            .count()
    }

    pub fn device_requests(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| e["endpoint"] == "device_authorization")
            .count()
    }

    pub fn browser_launches(&self) -> Vec<Value> {
        read_jsonl(&self.browser_log())
    }

    /// The file store's document.
    pub fn token_file(&self) -> Value {
        let path = self.home.join(".local/share/keygate/tokens.json");
        serde_json::from_slice(&std::fs::read(&path).expect("token file")).expect("token JSON")
    }

    pub fn stored_account(&self) -> Value {
        let file = self.token_file();
        let accounts = file["accounts"].as_array().expect("accounts");
        assert_eq!(accounts.len(), 1, "exactly one account: {file}");
        accounts[0].clone()
    }

    /// Rewrites the stored record so its access token is already stale.
    pub fn expire_stored_token(&self) {
        let path = self.home.join(".local/share/keygate/tokens.json");
        let mut file = self.token_file();
        for account in file["accounts"].as_array_mut().unwrap() {
            account["obtained_at"] = Value::from(1000);
            account["expires_at"] = Value::from(2000);
        }
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    }

    pub fn post_admin(&self, path: &str) {
        let status = Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "-X", "POST", "--cacert"])
            .arg(self.ca())
            .arg(format!("{}{path}", self.issuer()))
            .env_remove("CURL_CA_BUNDLE")
            .status()
            .expect("curl");
        assert!(status.success(), "POST {path} failed");
    }

    /// Starts a private D-Bus session with gnome-keyring unlocked in it;
    /// every later command of this world talks to it.
    pub fn start_keyring(&mut self) {
        let mut dbus = Command::new("dbus-daemon");
        dbus.args(["--session", "--nofork", "--print-address=1"])
            .env("HOME", &self.home)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = dbus
            .spawn()
            .expect("dbus-daemon (install the dbus package)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.servers.push(Guard::new(child));
        let address = line.trim().to_owned();
        assert!(!address.is_empty(), "dbus-daemon printed no address");
        self.dbus_address = Some(address);

        let mut keyring = self
            .command("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon (install the gnome-keyring package)");
        {
            use std::io::Write;
            let mut stdin = keyring.stdin.take().unwrap();
            stdin.write_all(b"test-keyring-password").unwrap();
        }
        let stdout = keyring.stdout.take().unwrap();
        self.servers.push(Guard::new(keyring));
        // It prints its environment once it is ready on the bus.
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        self.wait_for_secret_service();
    }

    /// Locks gnome-keyring's default collection through the Secret
    /// Service's own `Lock` call, as the desktop does on screen lock.
    pub fn lock_keychain(&self) {
        let dbus = |args: &[&str]| {
            let output = self
                .command("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.secrets",
                ])
                .args(["/org/freedesktop/secrets"])
                .args(args)
                .output()
                .expect("dbus-send");
            ok(&output);
            text(&output.stdout)
        };
        let alias = dbus(&["org.freedesktop.Secret.Service.ReadAlias", "string:default"]);
        let collection = alias
            .split('"')
            .nth(1)
            .expect("the default collection's path");
        dbus(&[
            "org.freedesktop.Secret.Service.Lock",
            &format!("array:objpath:{collection}"),
        ]);
    }

    fn wait_for_secret_service(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.secret_service_owned() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gnome-keyring never owned org.freedesktop.secrets"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every regular file under HOME, with its bytes.
    pub fn files_under_home(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut found = Vec::new();
        let mut stack = vec![self.home.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file()
                    && let Ok(bytes) = std::fs::read(&path)
                {
                    found.push((path, bytes));
                }
            }
        }
        found
    }
}

/// The server the offline worlds configure: nothing answers there.
pub const OFFLINE_SERVER: &str = "https://git.example.test";

/// Seconds since the Unix epoch: the clock stored records count in.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One account of the file store, as a login keygate did would have left
/// it (`World::seed_token_file` writes it). Unless told otherwise: the
/// account without a user name, a bearer token obtained at 1000 and
/// expired at 2000 (long stale), no refresh token, scope `git`, the code
/// grant.
#[derive(Clone, Debug)]
pub struct Record(Value);

impl Record {
    pub fn new(server: &str, access_token: &str) -> Self {
        Self(serde_json::json!({
            "server": server,
            "account": "",
            "access_token": access_token,
            "token_type": "bearer",
            "expires_at": 2000,
            "obtained_at": 1000,
            "scopes": ["git"],
            "grant": "code",
        }))
    }

    fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0[key] = value.into();
        self
    }

    pub fn refresh_token(self, token: &str) -> Self {
        self.with("refresh_token", token)
    }

    /// When the access token was obtained and when it expires (Unix seconds).
    pub fn times(self, obtained_at: u64, expires_at: u64) -> Self {
        self.with("obtained_at", obtained_at)
            .with("expires_at", expires_at)
    }

    pub fn refresh_token_expires_at(self, at: u64) -> Self {
        self.with("refresh_token_expires_at", at)
    }

    pub fn scopes(self, scopes: &[&str]) -> Self {
        self.with("scopes", scopes)
    }

    pub fn grant(self, grant: &str) -> Self {
        self.with("grant", grant)
    }
}

impl From<Record> for Value {
    fn from(record: Record) -> Value {
        record.0
    }
}

/// A one-route HTTP server on loopback answering every request with
/// `response`, after `delay`. Counts the requests it got.
pub struct FakeTokenServer {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
}

impl FakeTokenServer {
    pub fn start(response: String, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                let response = response.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    read_request(&mut reader);
                    std::thread::sleep(delay);
                    let _ = stream.write_all(response.as_bytes());
                });
            }
        });
        Self { url, requests }
    }
}

pub fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the command succeeded, showing its output if not.
#[track_caller]
pub fn ok(output: &Output) {
    assert!(
        output.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// `key=value` lines of a credential answer.
pub fn credential_field(output: &Output, key: &str) -> Option<String> {
    text(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

impl World {
    /// Stops the OAuth server: anything that still works needs no network.
    pub fn stop_oauth_server(&mut self) {
        // The OAuth server is the first server a started world runs.
        let oauth = self.servers.remove(0);
        drop(oauth);
    }

    /// Whether something (gnome-keyring, started by `start_keyring`) still
    /// owns `org.freedesktop.secrets` on this world's private bus.
    pub fn secret_service_owned(&self) -> bool {
        let output = self
            .command("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ])
            .output()
            .expect("dbus-send");
        String::from_utf8_lossy(&output.stdout).contains("boolean true")
    }
}

/// Reads one HTTP/1.1 request from a test server's connection: its request
/// line, and its body by `Content-Length` (headers are skipped).
pub fn read_request(reader: &mut impl BufRead) -> (String, Vec<u8>) {
    let mut request_line = String::new();
    let _ = reader.read_line(&mut request_line);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    (request_line, body)
}

/// A throwaway local user for the cross-user attacks, removed on drop
/// (also when the test fails). The tests run as root, as in CI.
pub struct LocalUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl LocalUser {
    /// A new user whose name starts with `prefix` (at most 4 characters).
    pub fn create(prefix: &str) -> Self {
        // SAFETY: geteuid cannot fail.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "cross-user tests create a local user: run them as root (CI does)"
        );
        // Tests run in parallel threads of one process: each its own user.
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{prefix}{}x{}",
            std::process::id() % 100_000,
            COUNT.fetch_add(1, Ordering::SeqCst)
        );
        let _ = Command::new("userdel").arg(&name).output();
        let made = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", &name])
            .output()
            .expect("useradd (the cross-user tests run as root, as in CI)");
        ok(&made);
        // From here on, Drop removes it.
        let mut user = Self {
            name,
            uid: u32::MAX,
            gid: u32::MAX,
        };
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, &user.name])
                .output()
                .unwrap();
            ok(&out);
            text(&out.stdout).trim().parse().unwrap()
        };
        (user.uid, user.gid) = (id("-u"), id("-g"));
        assert_ne!(user.uid, 0);
        user
    }

    /// `program` run as this user, nothing of ours in its environment;
    /// `setpriv` execs it, so the child's pid is the user's process itself.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .args(["--clear-groups", "--", program])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir("/");
        command
    }

    /// `program` with `args` run as this user; it must succeed.
    pub fn run(&self, program: &str, args: &[&str]) {
        ok(&self.command(program).args(args).output().unwrap());
    }

    /// `script` run by `sh` as this user through `su` from a shell that
    /// first joins a new session keyring linked to the caller's `@u`:
    /// what happens when someone logged in with `pam_keyinit` (Debian's
    /// `login` and `su -l`) drops to another user with `su OTHER -c …`
    /// (Debian's `/etc/pam.d/su` has no `pam_keyinit`), so every process
    /// of the other user possesses the caller's user keyring.
    pub fn su_sharing_session_keyring(&self, script: &str) -> Output {
        Command::new("keyctl")
            .args(["session", "-", "sh", "-c"])
            .arg(r#"keyctl link @u @s >/dev/null && exec su -s /bin/sh "$0" -c "$1""#)
            .arg(&self.name)
            .arg(script)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .stdin(Stdio::null())
            .output()
            .expect("keyctl (install the keyutils package)")
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}
