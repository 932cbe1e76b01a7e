//! What sits in keygate's files and directories, and in the repository
//! around it, when someone else put it there: another local user who
//! pre-created keygate's runtime directory, a repository git itself
//! refuses to use, a symbolic link, a FIFO or a giant in the token store.
//! Cross-user tests run the attacker as a throwaway user (CI runs as root).

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{KEYGATE, LocalUser, World, ok, run_with_input, text};

/// A process killed on drop, by its own pid.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The offline world with a stale account, its token endpoint a port
/// nothing listens on.
fn world_with_account() -> World {
    World::offline_with_stale_account("files-test", "https://127.0.0.1:9/token")
}

fn data_dir(world: &World) -> PathBuf {
    world.home.join(".local/share/keygate")
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `command` to its end, or kills it and fails the test if it is
/// still running after a limit far beyond any busy machine's slowness:
/// a hang detector, not a timing assertion.
fn run_or_hang(mut command: Command, input: &[u8], what: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

const GET: &[u8] = b"protocol=https\nhost=git.example.test\n\n";

#[test]
fn a_fifo_as_the_token_file_is_refused_at_once() {
    let mut world = world_with_account();
    world.set_env("KEYGATE_INTERACTIVE", "never");
    let path = data_dir(&world).join("tokens.json");
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path);
    let mut command = world.command(KEYGATE);
    command.arg("get");
    let output = run_or_hang(command, GET, "`keygate get` on a FIFO token file");
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("a FIFO, not a regular file"), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert_eq!(text(&output.stdout), "");
}

#[test]
fn an_oversized_token_file_is_refused_not_read() {
    let world = world_with_account();
    let path = data_dir(&world).join("tokens.json");
    // Sparse: 17 MiB that cost no disk.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(17 << 20)
        .unwrap();
    let status = run_or_hang(
        {
            let mut c = world.command(KEYGATE);
            c.arg("status");
            c
        },
        b"",
        "`keygate status` on a 17 MiB token file",
    );
    assert!(!status.status.success());
    let stderr = text(&status.stderr);
    assert!(stderr.contains("larger than 16 MiB"), "{stderr}");
}

#[test]
fn a_token_file_others_can_read_or_a_link_is_refused() {
    let world = world_with_account();
    let path = data_dir(&world).join("tokens.json");
    chmod(&path, 0o644);
    let status = world.keygate(&["status"]);
    assert!(!status.status.success());
    let stderr = text(&status.stderr);
    assert!(stderr.contains("can be read by other users"), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");

    chmod(&path, 0o600);
    let moved = world.dir.path().join("elsewhere.json");
    std::fs::rename(&path, &moved).unwrap();
    symlink(&moved, &path).unwrap();
    let status = world.keygate(&["status"]);
    assert!(!status.status.success());
    assert!(text(&status.stderr).contains("symbolic link"));
}

/// The temp file used to be `.tokens.json.<pid>.tmp`, opened following
/// links: links planted at the next pids received the tokens.
#[test]
fn links_planted_at_predictable_temp_names_receive_nothing() {
    let world = world_with_account();
    let dir = data_dir(&world);
    let stolen = world.dir.path().join("stolen");
    std::fs::write(&stolen, b"").unwrap();
    chmod(&stolen, 0o644);
    let mut probe = Command::new("true").spawn().unwrap();
    let next_pid = probe.id() + 1;
    probe.wait().unwrap();
    for pid in next_pid..next_pid + 4000 {
        symlink(&stolen, dir.join(format!(".tokens.json.{pid}.tmp"))).unwrap();
    }

    // `erase` with the token we handed out rewrites the store.
    let mut command = world.command(KEYGATE);
    command.arg("erase");
    let output = run_with_input(
        command,
        b"protocol=https\nhost=git.example.test\npassword=stale-access-token\n\n",
    );
    ok(&output);

    assert_eq!(
        std::fs::read(&stolen).unwrap(),
        b"",
        "tokens written through a planted link"
    );
    let path = dir.join("tokens.json");
    assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir), 0o700);
    let account = world.stored_account();
    assert!(account["access_token"].is_null(), "{account}");
    assert_eq!(account["refresh_token"], "refresh-token-to-keep");
}

/// Another user pre-created `keygate/` in a world-writable (sticky)
/// `XDG_RUNTIME_DIR` and put a `callbacks/` directory of their own in it,
/// with a socket where the victim's scheme redirect would be handed over.
#[test]
fn a_runtime_dir_another_user_prepared_is_refused() {
    let attacker = LocalUser::create("kgfs");
    let mut world = world_with_account();
    chmod(world.dir.path(), 0o755);
    let runtime = world.dir.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    chmod(&runtime, 0o1777);
    let theirs = runtime.join("keygate");
    let callbacks = theirs.join("callbacks");
    attacker.run("mkdir", &["-m", "777", theirs.to_str().unwrap()]);
    attacker.run("mkdir", &["-m", "777", callbacks.to_str().unwrap()]);

    // Where `keygate callback` hands the redirect for this state.
    let state = "victim-state-2f9c";
    let digest = <sha2::Sha256 as sha2::Digest>::digest(state.as_bytes());
    let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let socket = callbacks.join(format!("{name}.sock"));
    let received = theirs.join("received");
    let listener = Running(
        attacker
            .command("python3")
            .args([
                "-c",
                "import socket, sys\n\
                 s = socket.socket(socket.AF_UNIX)\n\
                 s.bind(sys.argv[1]); s.listen(1); s.settimeout(300)\n\
                 c, _ = s.accept()\n\
                 open(sys.argv[2], 'wb').write(c.recv(4096))\n\
                 c.sendall(b'ok\\n')\n",
            ])
            .arg(&socket)
            .arg(&received)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "the attacker's socket never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    world.set_env("XDG_RUNTIME_DIR", runtime.to_str().unwrap());
    let url = format!("com.example.app:/callback?code=victim-code&state={state}");
    let handed = world.keygate(&["callback", &url]);
    assert!(!handed.status.success(), "the redirect was handed over");
    let stderr = text(&handed.stderr);
    assert!(stderr.contains(&theirs.display().to_string()), "{stderr}");
    assert!(stderr.contains("belongs to another user"), "{stderr}");
    assert!(!stderr.contains("victim-code"), "{stderr}");
    assert!(!received.exists(), "the attacker received the redirect");
    drop(listener);

    // The same directory as the data directory: refused, not used.
    world.set_env("XDG_DATA_HOME", runtime.to_str().unwrap());
    let status = world.keygate(&["status"]);
    assert!(!status.status.success());
    let stderr = text(&status.stderr);
    assert!(stderr.contains("belongs to another user"), "{stderr}");
    assert_eq!(mode(&callbacks), 0o777, "nothing of theirs was touched");
}

/// A world-writable runtime directory without the sticky bit: anyone can
/// rename the victim's own `keygate/` away and put theirs in its place.
#[test]
fn a_runtime_dir_others_can_swap_is_refused() {
    let mut world = world_with_account();
    let runtime = world.dir.path().join("run");
    std::fs::create_dir_all(runtime.join("keygate/callbacks")).unwrap();
    chmod(&runtime, 0o777);
    world.set_env("XDG_RUNTIME_DIR", runtime.to_str().unwrap());
    let handed = world.keygate(&["callback", "com.example.app:/callback?code=c&state=s"]);
    assert!(!handed.status.success());
    let stderr = text(&handed.stderr);
    assert!(stderr.contains(&runtime.display().to_string()), "{stderr}");
    assert!(stderr.contains("can be changed by other users"), "{stderr}");
}

/// git and keygate, run in `cwd`: what git's own config reader makes of
/// `keygate.<url>.tokenEnv` there, and whether `keygate get` answers with
/// the variable's value.
fn token_env_seen(world: &World, cwd: &Path, git_dir: Option<&Path>) -> (String, String) {
    let with = |mut command: Command| {
        command
            .current_dir(cwd)
            .env("KG_STOLEN", "env-secret-value");
        if let Some(git_dir) = git_dir {
            command.env("GIT_DIR", git_dir);
        }
        command
    };
    let mut git = with(world.command("git"));
    git.args([
        "config",
        "--get-urlmatch",
        "keygate.tokenenv",
        "https://evil.example.test/",
    ]);
    let git = git.output().unwrap();
    let mut get = with(world.command(KEYGATE));
    get.arg("get").env("KEYGATE_INTERACTIVE", "never");
    let get = run_with_input(get, b"protocol=https\nhost=evil.example.test\n\n");
    (text(&git.stdout).trim().to_owned(), text(&get.stdout))
}

fn git(world: &World, cwd: &Path, args: &[&str]) {
    let mut command = world.command("git");
    command.current_dir(cwd).args(args);
    ok(&command.output().unwrap());
}

/// With `safe.bareRepository=explicit`, git refuses a bare repository it
/// finds by discovery (one embedded in another repository, say): its
/// config must not name the environment variable keygate sends.
#[test]
fn config_of_a_bare_repository_git_refuses_is_not_applied() {
    let world = World::offline();
    let root = world.dir.path().canonicalize().unwrap();
    git(&world, &root, &["init", "-q", "outer"]);
    git(
        &world,
        &root,
        &["init", "-q", "--bare", "outer/embedded.git"],
    );
    let bare = root.join("outer/embedded.git");
    git(
        &world,
        &root,
        &[
            "--git-dir=outer/embedded.git",
            "config",
            "keygate.https://evil.example.test.tokenEnv",
            "KG_STOLEN",
        ],
    );

    // By default git uses it, and so does keygate.
    let (by_git, by_keygate) = token_env_seen(&world, &bare, None);
    assert_eq!(by_git, "KG_STOLEN");
    assert!(
        by_keygate.contains("password=env-secret-value"),
        "{by_keygate}"
    );

    std::fs::write(
        world.gitconfig_path(),
        "[safe]\n\tbareRepository = explicit\n",
    )
    .unwrap();
    for cwd in [bare.clone(), bare.join("refs")] {
        let (by_git, by_keygate) = token_env_seen(&world, &cwd, None);
        assert_eq!(
            by_git,
            "",
            "git ignores the repository in {}",
            cwd.display()
        );
        assert!(!by_keygate.contains("env-secret-value"), "{by_keygate}");
    }
    // Named explicitly, git uses it: so does keygate.
    let (by_git, by_keygate) = token_env_seen(&world, &root, Some(&bare));
    assert_eq!(by_git, "KG_STOLEN");
    assert!(
        by_keygate.contains("password=env-secret-value"),
        "{by_keygate}"
    );
}

/// A repository another user owns counts for git only when
/// `safe.directory` (in protected configuration) lists it.
#[test]
fn config_of_another_users_repository_is_applied_only_where_git_trusts_it() {
    let attacker = LocalUser::create("kgfs");
    let world = World::offline();
    chmod(world.dir.path(), 0o755);
    let root = world.dir.path().canonicalize().unwrap();
    git(&world, &root, &["init", "-q", "theirs"]);
    let repo = root.join("theirs");
    git(
        &world,
        &repo,
        &[
            "config",
            "keygate.https://evil.example.test.tokenEnv",
            "KG_STOLEN",
        ],
    );
    let chown = |args: &[&str]| {
        let owner = format!("{}:{}", attacker.uid, attacker.gid);
        let status = Command::new("chown")
            .args(args)
            .arg(&owner)
            .arg(&repo)
            .status()
            .unwrap();
        assert!(status.success());
    };
    // git checks the working tree's owner too, not only `.git`'s.
    chown(&[]);
    let (by_git, by_keygate) = token_env_seen(&world, &repo, None);
    assert_eq!(by_git, "", "git ignores a working tree of another user's");
    assert!(!by_keygate.contains("env-secret-value"), "{by_keygate}");

    chown(&["-R"]);
    for cwd in [repo.clone(), repo.join(".git/refs")] {
        let (by_git, by_keygate) = token_env_seen(&world, &cwd, None);
        assert_eq!(
            by_git,
            "",
            "git ignores the repository in {}",
            cwd.display()
        );
        assert!(!by_keygate.contains("env-secret-value"), "{by_keygate}");
    }

    // The repository config itself cannot vouch for itself.
    let config = repo.join(".git/config");
    let mut text_of = std::fs::read_to_string(&config).unwrap();
    text_of.push_str(&format!("[safe]\n\tdirectory = {}\n", repo.display()));
    std::fs::write(&config, text_of).unwrap();
    let (by_git, by_keygate) = token_env_seen(&world, &repo, None);
    assert_eq!(by_git, "");
    assert!(!by_keygate.contains("env-secret-value"), "{by_keygate}");

    // Listed in the user's own (global) configuration, it counts.
    std::fs::write(
        world.gitconfig_path(),
        format!("[safe]\n\tdirectory = {}\n", repo.display()),
    )
    .unwrap();
    let (by_git, by_keygate) = token_env_seen(&world, &repo, None);
    assert_eq!(by_git, "KG_STOLEN");
    assert!(
        by_keygate.contains("password=env-secret-value"),
        "{by_keygate}"
    );
}
