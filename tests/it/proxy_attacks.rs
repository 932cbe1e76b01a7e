//! `keygate proxy` under attack: another local user holding the password,
//! a flood of slow connections without it, requests naming another host,
//! and the HTTP edge cases an attacker would try. Each test drives the
//! real binary with raw sockets or curl.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{LocalUser, ok, text};
use crate::proxy_support::{RunningProxy, curl, logged_in_world, start_proxy, start_proxy_with};

/// A plain HTTP server on loopback that answers `ok` and keeps every
/// request head it gets.
struct Backend {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Backend {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    seen.lock().unwrap().push(text(&head));
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                });
            }
        });
        Self { port, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// Writes `request` on one connection to the proxy and reads until the
/// proxy closes it.
fn exchange(proxy: &RunningProxy, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(&proxy.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    text(&answer)
}

/// The status codes of every response in `answer` (bodies may run into
/// the next status line: they end without a newline).
fn statuses(answer: &str) -> Vec<&str> {
    answer
        .match_indices("HTTP/1.")
        .filter_map(|(at, _)| answer.get(at + 9..at + 12))
        .collect()
}

#[test]
fn http_edge_cases_never_get_past_the_password_or_reach_the_server_mangled() {
    let world = logged_in_world(600);
    let proxy = start_proxy(&world);
    let backend = Backend::start();
    let good = proxy.authorization();
    let target = format!("http://127.0.0.1:{}/x", backend.port);
    let get = |auth: &str, extra: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{extra}\r\n")
    };
    let with = format!("Proxy-Authorization: {good}\r\n");
    let wrong = "Proxy-Authorization: Basic a2V5Z2F0ZTp3cm9uZw==\r\n"; // keygate:wrong

    // No password, a wrong one, two of them: 407, and the connection closes.
    for auth in [String::new(), wrong.to_owned(), format!("{with}{with}")] {
        let answer = exchange(&proxy, get(&auth, "").as_bytes());
        assert_eq!(statuses(&answer), ["407"], "{answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"));
    }
    // HTTP/1.0 the same way.
    let old = |auth: &str| format!("GET {target} HTTP/1.0\r\n{auth}\r\n");
    assert_eq!(statuses(&exchange(&proxy, old("").as_bytes())), ["407"]);
    let answer = exchange(&proxy, old(&with).as_bytes());
    assert_eq!(statuses(&answer), ["200"], "{answer}");
    assert_eq!(backend.heads().len(), 1);

    // Pipelined: each request is checked on its own; after a refusal
    // nothing more is read.
    let answer = exchange(
        &proxy,
        format!("{}{}", get(&with, ""), get("", "")).as_bytes(),
    );
    assert_eq!(statuses(&answer), ["200", "407"], "{answer}");
    let answer = exchange(
        &proxy,
        format!("{}{}", get("", ""), get(&with, "")).as_bytes(),
    );
    assert_eq!(statuses(&answer), ["407"], "{answer}");
    assert_eq!(
        backend.heads().len(),
        2,
        "the refused pipeline sent nothing"
    );

    // Hop-by-hop headers (and the password) stay with the proxy.
    let answer = exchange(
        &proxy,
        get(
            &with,
            "Connection: close, x-hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-End: 1\r\n",
        )
        .as_bytes(),
    );
    assert_eq!(statuses(&answer), ["200"], "{answer}");
    let head = backend.heads().last().unwrap().to_ascii_lowercase();
    assert!(head.contains("x-end: 1"), "{head}");
    for gone in ["x-hop", "keep-alive", "\nte:", "proxy-authorization"] {
        assert!(!head.contains(gone), "{gone} forwarded: {head}");
    }

    // Content-Length and Transfer-Encoding together (request smuggling):
    // the chunked body counts (RFC 9112 §6.3), the length is not passed
    // on, and the connection closes, so what hides behind is never read.
    let before = backend.heads().len();
    let smuggle = format!(
        "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{with}Content-Length: 4\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n{with}\r\n"
    );
    let answer = exchange(&proxy, smuggle.as_bytes());
    assert_eq!(statuses(&answer), ["200"], "{answer}");
    std::thread::sleep(Duration::from_millis(500));
    let heads = backend.heads();
    assert_eq!(heads.len(), before + 1, "{heads:?}");
    let forwarded = heads.last().unwrap().to_ascii_lowercase();
    assert!(!forwarded.contains("content-length: 4"), "{forwarded}");
    assert!(!heads.iter().any(|h| h.contains("smuggled")), "{heads:?}");

    // A huge head: 431 before the password is even looked at.
    let huge = format!(
        "CONNECT 127.0.0.1:9 HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let answer = exchange(&proxy, huge.as_bytes());
    assert_eq!(statuses(&answer), ["431"], "{answer}");
}

#[test]
fn a_request_naming_another_host_never_leaves_the_tunnel() {
    let world = logged_in_world(600);
    let proxy = start_proxy(&world);
    let echo = format!("{}/echo-auth", world.git_url);
    let authority = world.git_url.trim_start_matches("https://").to_owned();
    let status_of = |extra: &[&str]| {
        let mut args = vec!["-w", "\n%{http_code}"];
        args.extend_from_slice(extra);
        let answer = curl(&world, &proxy.url, &proxy.ca, &echo, &args);
        let said = text(&answer.stdout);
        let (body, status) = said.rsplit_once('\n').unwrap();
        (status.to_owned(), body.to_owned())
    };

    // A name-routing front end would hand the token to another tenant.
    let (status, body) = status_of(&["-H", "Host: other-tenant.example"]);
    assert_eq!(status, "421", "{body}");
    let (status, body) = status_of(&["--request-target", "https://other-tenant.example/echo-auth"]);
    assert_eq!(status, "421", "{body}");
    let (status, body) = status_of(&["--request-target", &format!("http://{authority}/echo-auth")]);
    assert_eq!(status, "421", "plain http scheme inside TLS: {body}");

    // The origin's own name, in any case or form, goes out as the origin's.
    for host in [authority.clone(), authority.to_ascii_uppercase()] {
        let (status, body) = status_of(&["-H", &format!("Host: {host}")]);
        assert_eq!(status, "200", "{body}");
        let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(seen["host"], authority.as_str());
        assert_eq!(seen["host_count"], 1);
    }
    let (status, body) = status_of(&[
        "--request-target",
        &format!("https://{authority}/echo-auth"),
    ]);
    assert_eq!(status, "200", "{body}");
}

#[test]
fn the_password_is_new_on_every_start_and_never_suggested_for_a_shared_file() {
    let mut world = logged_in_world(600);
    let first = start_proxy(&world);
    let dir = first.ca.parent().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let printed = loop {
        let printed = first.stdout.lock().unwrap().join("\n");
        if printed.contains("composer config") {
            break printed;
        }
        assert!(Instant::now() < deadline, "announcement: {printed}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        printed.matches(&first.password).count(),
        1,
        "only the first line carries the password: {printed}"
    );
    assert!(!printed.contains("http.proxy"), "{printed}");
    assert!(printed.contains(&format!("include.path {}", dir.join("gitconfig").display())));
    for (name, wanted) in [
        ("url", first.url.clone()),
        ("gitconfig", format!("proxy = \"{}\"", first.url)),
    ] {
        let path = dir.join(name);
        assert!(
            std::fs::read_to_string(&path).unwrap().contains(&wanted),
            "{name}"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    let old_url = first.url.clone();
    let old_password = first.password.clone();
    drop(first);

    // Restarted the way its advice leaves the shell: SSL_CERT_FILE at its
    // own bundle.
    let bundle = dir.join("ca-bundle.pem");
    world.set_env("SSL_CERT_FILE", bundle.to_str().unwrap());
    let second = start_proxy(&world);
    assert_ne!(second.password, old_password);
    let stale = format!("http://keygate:{old_password}@{}", second.addr);
    let echo = format!("{}/echo-auth", world.git_url);
    let refused = curl(
        &world,
        &stale,
        &second.ca,
        &echo,
        &["-w", "%{http_connect}"],
    );
    assert_eq!(text(&refused.stdout), "407", "{old_url} still works");
    ok(&curl(&world, &second.url, &second.ca, &echo, &["-f"]));

    // The bundle holds the CA once, plus the system's, however often it
    // is started.
    drop(second);
    let third = start_proxy(&world);
    let ca = std::fs::read_to_string(&third.ca).unwrap();
    let bundle_text = std::fs::read_to_string(&bundle).unwrap();
    assert_eq!(bundle_text.matches(ca.trim()).count(), 1);
    assert!(bundle_text.starts_with(&ca));
    let world_ca = std::fs::read_to_string(world.ca()).unwrap();
    assert!(
        !bundle_text.contains(world_ca.trim()),
        "its own bundle was read back"
    );
}

#[test]
fn another_local_user_holding_the_password_is_refused() {
    let world = logged_in_world(600);
    let proxy = start_proxy(&world);
    let backend = Backend::start();
    let plain = format!("http://127.0.0.1:{}/stolen", backend.port);
    let echo = format!("{}/echo-auth", world.git_url);
    let attacker = LocalUser::create("kgpx");

    // With the right password (stolen, say from a world-readable file).
    let via_plain = attacker
        .command("curl")
        .args([
            "-q",
            "-sS",
            "--max-time",
            "20",
            "-w",
            "%{http_code}",
            "--proxy",
            &proxy.url,
            &plain,
        ])
        .output()
        .unwrap();
    assert!(!via_plain.status.success(), "{}", text(&via_plain.stdout));
    assert_eq!(text(&via_plain.stdout), "000");
    let via_tunnel = attacker
        .command("curl")
        .args([
            "-q",
            "-sS",
            "-k",
            "--max-time",
            "20",
            "-w",
            "%{http_connect}",
        ])
        .args(["--proxy", &proxy.url, &echo])
        .output()
        .unwrap();
    assert!(!via_tunnel.status.success());
    assert_eq!(
        text(&via_tunnel.stdout),
        "000",
        "no answer at all, not even 407"
    );
    assert!(backend.heads().is_empty(), "{:?}", backend.heads());

    // The owner, meanwhile, is served.
    ok(&curl(&world, &proxy.url, &proxy.ca, &echo, &["-f"]));
    let own = world
        .command("curl")
        .args(["-sS", "--max-time", "20", "--proxy", &proxy.url, &plain])
        .output()
        .unwrap();
    ok(&own);
    assert_eq!(text(&own.stdout), "ok");
    drop(attacker);
}

/// Issue 18: a connection whose process has closed it lingers as a
/// TIME_WAIT entry that the kernel lists with UID 0 and no inode (in state
/// FIN_WAIT2 when the closer sent its FIN first). To a proxy or login run
/// as root, another user's request that arrived before its sender closed
/// looked like its own. The race is forced here: the connection is looked
/// up only after the sender has exited, as a stopped or busy keygate would.
// The kernel's socket tables, and so the lookup, are Linux's.
#[cfg(target_os = "linux")]
#[test]
fn another_users_closed_connection_is_never_taken_for_ours() {
    let attacker = LocalUser::create("kgpx");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let sent = attacker
        .command("bash")
        .arg("-c")
        .arg(r#"exec 3<>"/dev/tcp/127.0.0.1/$0" && printf 'GET / HTTP/1.1\r\n\r\n' >&3"#)
        .arg(&port)
        .output()
        .unwrap();
    ok(&sent);
    // The closer's FIN is acknowledged by the kernel, not by us.
    std::thread::sleep(Duration::from_millis(300));
    let (stream, peer) = listener.accept().unwrap();
    let local = stream.local_addr().unwrap();
    let refused = |found: Result<u32, keygate::sys::peer::PeerError>| {
        assert!(
            matches!(found, Err(keygate::sys::peer::PeerError::Unowned(_))),
            "{found:?}"
        );
    };
    refused(keygate::sys::peer::owner(local, peer));
    refused(keygate::sys::peer::table_owner(local, peer));
    assert!(keygate::sys::peer::is_same_user(local, peer).is_err());

    // The same user's connection, still open, is named, and is not ours.
    let mut held = attacker
        .command("bash")
        .arg("-c")
        .arg(r#"exec 3<>"/dev/tcp/127.0.0.1/$0" && read -r -t 30 <&3"#)
        .arg(&port)
        .spawn()
        .unwrap();
    let (stream, peer) = listener.accept().unwrap();
    let local = stream.local_addr().unwrap();
    assert_eq!(
        keygate::sys::peer::owner(local, peer).unwrap(),
        attacker.uid
    );
    assert_eq!(
        keygate::sys::peer::table_owner(local, peer).unwrap(),
        attacker.uid
    );
    assert!(!keygate::sys::peer::is_same_user(local, peer).unwrap());
    drop(stream);
    let _ = held.wait();
    drop(attacker);
}

/// Raises this process's open-file limit as far as allowed; returns it.
/// The whole test process's: what any test starts from then on inherits
/// it. None depends on a lower one; those that need one set it on their
/// own child (the proxy below, `browser`'s waiting login).
fn raise_open_file_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[derive(Debug, Default)]
struct Flood {
    opened: usize,
    /// Connections the proxy closed (timed out, evicted, 431).
    shed: usize,
    most_open: usize,
}

/// Keeps up to `width` connections to `addr` sending a request head a
/// kilobyte at a time, never finishing it, reopening those the proxy
/// closes, for `duration` (and at most 60,000 connections in all).
fn flood(addr: SocketAddr, width: usize, duration: Duration, stop: &AtomicBool) -> Flood {
    let started = Instant::now();
    let mut stats = Flood::default();
    let mut open: Vec<TcpStream> = Vec::new();
    let filler = "a".repeat(1000);
    let mut round = 0;
    while started.elapsed() < duration && !stop.load(Ordering::Relaxed) && stats.opened < 60_000 {
        while open.len() < width && started.elapsed() < duration {
            let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
                break;
            };
            stream.set_nonblocking(true).unwrap();
            let _ = (&stream).write(b"CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n");
            open.push(stream);
            stats.opened += 1;
        }
        stats.most_open = stats.most_open.max(open.len());
        let line = format!("X-Slow-{round}: {filler}\r\n");
        let before = open.len();
        open.retain(|stream| {
            let mut buf = [0u8; 512];
            // Any answer (a 431, a 408) or the end: the proxy let go.
            let closed = (&*stream).read(&mut buf).is_ok();
            let failed = match (&*stream).write(line.as_bytes()) {
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                Ok(_) => false,
            };
            !(closed || failed)
        });
        stats.shed += before - open.len();
        round += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    stats
}

#[test]
fn a_slow_connection_flood_without_the_password_does_not_starve_the_owner() {
    let limit = raise_open_file_limit();
    let width = 3000.min(limit.saturating_sub(500) as usize);
    assert!(
        width >= 2000,
        "the flood needs ~3,000 descriptors; the hard limit is {limit} (raise `ulimit -Hn`)"
    );
    let world = logged_in_world(600);
    // With the soft limit a login shell usually gives (1,024 descriptors,
    // which 1,100 connections once exhausted): the proxy raises its own.
    let proxy = start_proxy_with(&world, |command| {
        use std::os::unix::process::CommandExt;
        // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
        unsafe {
            command.pre_exec(|| {
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
                limit.rlim_cur = limit.rlim_max.min(1024);
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                Ok(())
            })
        };
    });
    let pid = proxy.process.id();
    let idle_kib = status_kib(pid, "VmRSS:");
    let echo = format!("{}/echo-auth", world.git_url);
    let addr: SocketAddr = proxy.addr.parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = {
        let stop = stop.clone();
        std::thread::spawn(move || flood(addr, width, Duration::from_secs(25), &stop))
    };

    // Served all along, with a fresh connection each time.
    let mut answers = 0;
    let mut most_kib = idle_kib;
    while !flooding.is_finished() {
        let answer = curl(
            &world,
            &proxy.url,
            &proxy.ca,
            &echo,
            &["-f", "-o", "/dev/null"],
        );
        ok(&answer);
        answers += 1;
        most_kib = most_kib.max(status_kib(pid, "VmRSS:"));
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    let stats = flooding.join().unwrap();
    let peak_kib = status_kib(pid, "VmHWM:");
    eprintln!(
        "flood: {stats:?}; {answers} answers; RSS idle {idle_kib} KiB, most seen {most_kib} KiB, peak {peak_kib} KiB"
    );
    assert!(stats.opened >= width, "{stats:?}");
    assert!(
        stats.shed > 0,
        "the proxy never shed a connection: {stats:?}"
    );
    assert!(answers >= 5, "{answers}");
    // 3,000 slow heads once took 1.3 GB; capped and bounded, a few MiB.
    assert!(peak_kib < 96 * 1024, "peak resident memory {peak_kib} KiB");
    ok(&curl(&world, &proxy.url, &proxy.ca, &echo, &["-f"]));
}
