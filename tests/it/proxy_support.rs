//! Starting `keygate proxy` in a test world and talking to it, for
//! `proxy` and `proxy_attacks`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use crate::common::{self, Guard, Options, World, ok};

/// A running `keygate proxy` and what it printed.
pub struct RunningProxy {
    pub url: String,
    /// `http://127.0.0.1:PORT`, without the password.
    pub bare_url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub password: String,
    pub ca: PathBuf,
    /// Everything it printed on stdout so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub process: Guard,
}

pub fn start_proxy(world: &World) -> RunningProxy {
    start_proxy_with(world, |_| {})
}

/// `start_proxy`, with `adjust` applied to its command first.
pub fn start_proxy_with(world: &World, adjust: impl FnOnce(&mut Command)) -> RunningProxy {
    let mut command = world.command(common::KEYGATE);
    command.arg("proxy");
    adjust(&mut command);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let process = Guard::new(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
    let first = next();
    let url = first
        .strip_prefix("proxy: ")
        .unwrap_or_else(|| panic!("proxy did not start: {first:?}"))
        .to_owned();
    let second = next();
    let ca = PathBuf::from(second.strip_prefix("ca: ").expect("the CA path line"));
    assert!(ca.is_absolute() && ca.exists(), "{}", ca.display());
    let printed = Arc::new(Mutex::new(vec![first, second]));
    let sink = printed.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut BufReader::new(stderr), &mut sink);
    });
    let (credentials, addr) = url.rsplit_once('@').unwrap();
    let password = credentials.rsplit_once(':').unwrap().1.to_owned();
    RunningProxy {
        bare_url: format!("http://{addr}"),
        addr: addr.to_owned(),
        password,
        url,
        ca,
        stdout: printed,
        process,
    }
}

impl RunningProxy {
    /// `Proxy-Authorization` for this proxy's password.
    pub fn authorization(&self) -> String {
        use base64::Engine;
        let pair = format!("keygate:{}", self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

pub fn logged_in_world(ttl: u64) -> World {
    let world = World::start(Options {
        access_token_ttl: ttl,
    });
    ok(&world.keygate(&["login", &world.repo_url()]));
    world
}

/// curl through the proxy, trusting only `ca`.
pub fn curl(world: &World, proxy: &str, ca: &Path, url: &str, extra: &[&str]) -> Output {
    world
        .command("curl")
        .args(["-sS", "--max-time", "30", "--proxy", proxy, "--cacert"])
        .arg(ca)
        .args(extra)
        .arg(url)
        .env_remove("CURL_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .output()
        .unwrap()
}
