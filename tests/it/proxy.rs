//! `keygate proxy` with real clients: Composer, git and curl through it to
//! the token-protected test server, tunnelling for everything else, and
//! the CA's name constraints checked by OpenSSL.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Guard, World, ok, text};
use crate::proxy_support::{curl, logged_in_world, start_proxy};

#[test]
fn curl_without_the_password_gets_407_and_with_it_the_token_is_added() {
    let world = logged_in_world(600);
    let proxy = start_proxy(&world);
    let echo = format!("{}/echo-auth", world.git_url);

    let refused = curl(
        &world,
        &proxy.bare_url,
        &proxy.ca,
        &echo,
        &["-w", "%{http_connect}"],
    );
    assert!(!refused.status.success());
    assert_eq!(text(&refused.stdout), "407");

    // The client's own Authorization is replaced, never sent alongside.
    let answer = curl(
        &world,
        &proxy.url,
        &proxy.ca,
        &echo,
        &["-H", "Authorization: Bearer bogus"],
    );
    ok(&answer);
    let seen: serde_json::Value = serde_json::from_slice(&answer.stdout).unwrap();
    assert_eq!(seen["authorization_count"], 1, "{seen}");
    assert_eq!(seen["auth"], "basic");
    assert_eq!(seen["basic_user"], "oauth2");
    assert_eq!(
        seen["proxy_authorization"], false,
        "the proxy password stays with the proxy"
    );
    assert_eq!(
        world.token_requests("refresh_token"),
        0,
        "served from the stored token"
    );

    // For services: the URL in a file only its owner can read.
    let url_file = world.home.join(".local/share/keygate/proxy/url");
    assert_eq!(
        std::fs::read_to_string(&url_file).unwrap().trim(),
        proxy.url
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&url_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_half_gigabyte_download_streams_through_in_bounded_memory() {
    let world = logged_in_world(600);
    let proxy = start_proxy(&world);
    const SIZE: u64 = 512 * 1024 * 1024;
    let answer = curl(
        &world,
        &proxy.url,
        &proxy.ca,
        &format!("{}/big/{SIZE}", world.git_url),
        &["-o", "/dev/null", "-w", "%{http_code} %{size_download}"],
    );
    ok(&answer);
    assert_eq!(text(&answer.stdout), format!("200 {SIZE}"));
    let pid = proxy.process.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    // Buffering the body would take 512 MiB; streaming takes a few.
    assert!(peak_kib < 64 * 1024, "peak resident memory {peak_kib} KiB");
}

#[test]
fn git_clones_through_the_proxy_with_no_credential_helper() {
    let world = logged_in_world(600);
    let proxy = start_proxy(&world);
    // As the announcement advises: ~/.gitconfig names the 0600 file the
    // proxy rewrites on each start, and holds no secret itself.
    let include = proxy.ca.parent().unwrap().join("gitconfig");
    world.write_gitconfig(&format!("[include]\n\tpath = {}\n", include.display()));
    assert!(
        !std::fs::read_to_string(world.gitconfig_path())
            .unwrap()
            .contains(&proxy.password)
    );
    let output = world
        .command("git")
        .args(["-c", "credential.helper="])
        .args(["clone", "-q", &world.repo_url(), "through-proxy"])
        .env_remove("GIT_SSL_CAINFO")
        .output()
        .unwrap();
    ok(&output);
    assert!(world.dir.path().join("through-proxy/README.md").exists());
}

#[test]
fn composer_requires_a_private_package_with_no_token_in_the_project() {
    let world = logged_in_world(600);
    let proxy = start_proxy(&world);
    let project = world.dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let composer_json = serde_json::json!({
        "name": "keygate/proxy-test",
        "repositories": [
            {"packagist.org": false},
            {"type": "composer", "url": format!("{}/composer", world.git_url)},
        ],
    });
    std::fs::write(project.join("composer.json"), composer_json.to_string()).unwrap();
    let output = world
        .command("composer")
        .args([
            "require",
            "--no-interaction",
            "--no-progress",
            "acme/private-lib:^1.0",
        ])
        .current_dir(&project)
        .env("HTTPS_PROXY", &proxy.url)
        .env("https_proxy", &proxy.url)
        // Only the proxy's CA: the repository is reached through it alone.
        .env("COMPOSER_CAFILE", &proxy.ca)
        .env("COMPOSER_HOME", world.dir.path().join("composer-home"))
        .env(
            "COMPOSER_CACHE_DIR",
            world.dir.path().join("composer-cache"),
        )
        .env("COMPOSER_ALLOW_SUPERUSER", "1")
        .env("COMPOSER_NO_INTERACTION", "1")
        .output()
        .expect("composer (install the composer and php-cli packages)");
    ok(&output);
    let greet = world
        .command("php")
        .args([
            "-r",
            "require 'vendor/autoload.php'; echo Acme\\PrivateLib\\Hello::greet();",
        ])
        .current_dir(&project)
        .output()
        .unwrap();
    ok(&greet);
    assert!(
        text(&greet.stdout).starts_with("hello from private-lib 1."),
        "{}",
        text(&greet.stdout)
    );

    let token = world.stored_account()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stack = vec![project.clone(), world.dir.path().join("composer-home")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(&token),
                    "token in {}",
                    path.display()
                );
            }
        }
    }
    assert!(!project.join("auth.json").exists());
}

#[test]
fn unconfigured_hosts_are_tunnelled_untouched() {
    let world = logged_in_world(600);
    let proxy = start_proxy(&world);
    // The OAuth server: same IP, another port, so not a configured origin.
    let url = format!("{}/.well-known/openid-configuration", world.issuer());
    let own_cert = curl(
        &world,
        &proxy.url,
        &world.ca(),
        &url,
        &["-o", "/dev/null", "-w", "%{http_code}"],
    );
    ok(&own_cert);
    assert_eq!(text(&own_cert.stdout), "200");
    let proxy_cert = curl(&world, &proxy.url, &proxy.ca, &url, &["-o", "/dev/null"]);
    assert!(
        !proxy_cert.status.success(),
        "the tunnel must not present the proxy's certificate"
    );
}

/// A server presenting `cert`, for as long as the guard lives.
fn tls_server(world: &World, cert: &std::path::Path, key: &std::path::Path) -> (Guard, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = world
        .command("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Guard::new(child), port)
}

#[test]
fn the_proxy_ca_cannot_vouch_for_hosts_outside_its_name_constraints() {
    let world = logged_in_world(600);
    let proxy = start_proxy(&world);
    drop(proxy.process);
    // A thief's view: the CA key, as the file store keeps it.
    let stored: serde_json::Value =
        serde_json::from_str(world.token_file()["secrets"]["proxy-ca"].as_str().unwrap()).unwrap();
    let dir = world.dir.path();
    std::fs::write(
        dir.join("stolen-ca.pem"),
        stored["cert_pem"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("stolen-ca.key"),
        stored["key_pem"].as_str().unwrap(),
    )
    .unwrap();

    let forge_with = |name: &str, san: &str, eku: &str| -> (PathBuf, PathBuf) {
        let key = dir.join(format!("{name}.key"));
        let csr = dir.join(format!("{name}.csr"));
        let cert = dir.join(format!("{name}.pem"));
        let ext = dir.join(format!("{name}.ext"));
        std::fs::write(
            &ext,
            format!("subjectAltName={san}\nextendedKeyUsage={eku}\n"),
        )
        .unwrap();
        let run = |args: &[&str]| {
            ok(&world
                .command("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap())
        };
        run(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            "stolen-ca.pem",
            "-CAkey",
            "stolen-ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        (cert, key)
    };
    let forge = |name: &str, san: &str| forge_with(name, san, "serverAuth");
    let check = |host: &str, port: u16| {
        world
            .command("curl")
            .args(["-sS", "-o", "/dev/null", "--max-time", "10", "--cacert"])
            .arg(&proxy.ca)
            .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
            .arg(format!("https://{host}:{port}/"))
            .output()
            .unwrap()
    };

    // Control: a host the CA is allowed to vouch for is accepted.
    let (cert, key) = forge("inside", "IP:127.0.0.1");
    let (_server, port) = tls_server(&world, &cert, &key);
    ok(&check("127.0.0.1", port));

    let (cert, key) = forge("outside", "DNS:bank.example.com");
    let (_server, port) = tls_server(&world, &cert, &key);
    let refused = check("bank.example.com", port);
    assert!(!refused.status.success());
    let said = text(&refused.stderr);
    assert!(
        said.contains("certificate") || said.contains("SSL"),
        "{said}"
    );

    // Nor for anything but a TLS server: mail, other URIs, clients
    // (OpenSSL chains the CA's serverAuth-only EKU; its 3.0 has no
    // code-signing purpose, so for that the CA's EKU itself is checked).
    let verify = |cert: &std::path::Path, purpose: &str| {
        world
            .command("openssl")
            .args(["verify", "-CAfile", "stolen-ca.pem", "-purpose", purpose])
            .arg(cert)
            .current_dir(dir)
            .output()
            .unwrap()
    };
    let (cert, _) = forge("server", "IP:127.0.0.1");
    ok(&verify(&cert, "sslserver"));
    for (name, san, eku, purpose) in [
        (
            "mail",
            "email:ceo@bank.example.com",
            "emailProtection",
            "smimesign",
        ),
        (
            "mail-in-server",
            "IP:127.0.0.1,email:ceo@bank.example.com",
            "serverAuth",
            "sslserver",
        ),
        (
            "uri",
            "IP:127.0.0.1,URI:https://bank.example.com/",
            "serverAuth",
            "sslserver",
        ),
        ("client", "IP:127.0.0.1", "clientAuth", "sslclient"),
    ] {
        let (cert, _) = forge_with(name, san, eku);
        let refused = verify(&cert, purpose);
        assert!(
            !refused.status.success(),
            "{name} verified: {}",
            text(&refused.stdout)
        );
    }
    let eku = world
        .command("openssl")
        .args([
            "x509",
            "-noout",
            "-ext",
            "extendedKeyUsage",
            "-in",
            "stolen-ca.pem",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    ok(&eku);
    let eku = text(&eku.stdout);
    assert!(eku.contains("TLS Web Server Authentication"), "{eku}");
    assert!(!eku.contains("Code Signing") && !eku.contains(","), "{eku}");
}

#[test]
fn tokens_are_refreshed_during_a_long_transfer_and_a_failed_refresh_is_a_clear_502() {
    // 4-second tokens go stale a second before they expire.
    let world = logged_in_world(4);
    let proxy = start_proxy(&world);
    let echo = format!("{}/echo-auth", world.git_url);
    // A slow download that outlives two tokens, with requests beside it.
    let slow = world
        .command("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            "--max-time",
            "60",
        ])
        .args(["--proxy", &proxy.url, "--cacert"])
        .arg(&proxy.ca)
        .arg(format!("{}/big/9000000?rate=1000000", world.git_url))
        .env_remove("CURL_CA_BUNDLE")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(9) {
        let answer = curl(&world, &proxy.url, &proxy.ca, &echo, &["-f"]);
        ok(&answer);
        std::thread::sleep(Duration::from_millis(500));
    }
    let slow = slow.wait_with_output().unwrap();
    ok(&slow);
    assert_eq!(text(&slow.stdout), "200 9000000");
    let refreshes = world.token_requests("refresh_token");
    assert!(refreshes >= 2, "refreshed ahead of expiry: {refreshes}");
    let failed = world
        .events()
        .iter()
        .filter(|e| e["grant_type"] == "refresh_token" && e["status"] != 200)
        .count();
    assert_eq!(failed, 0);

    // With the grant revoked, requests get a 502 saying why, not a 401 loop.
    world.post_admin("/__test/revoke-all");
    std::thread::sleep(Duration::from_secs(4));
    let answer = curl(
        &world,
        &proxy.url,
        &proxy.ca,
        &echo,
        &["-w", "\n%{http_code}"],
    );
    let said = text(&answer.stdout);
    assert!(said.ends_with("502"), "{said}");
    assert!(said.contains("invalid_grant"), "{said}");
}

#[test]
fn plain_http_is_forwarded_and_sigterm_stops_the_proxy() {
    let world = logged_in_world(600);
    let mut proxy = start_proxy(&world);
    // A plain HTTP server on loopback: the request goes through as it is.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let n = stream.read(&mut request).unwrap();
        let request = String::from_utf8_lossy(&request[..n]).into_owned();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain")
            .unwrap();
        request
    });
    let answer = world
        .command("curl")
        .args(["-sS", "--max-time", "10", "--proxy", &proxy.url])
        .arg(format!("http://127.0.0.1:{port}/hello"))
        .output()
        .unwrap();
    ok(&answer);
    assert_eq!(text(&answer.stdout), "plain");
    let seen = server.join().unwrap();
    assert!(seen.starts_with("GET /hello HTTP/1.1"), "{seen}");
    assert!(!seen.to_ascii_lowercase().contains("proxy-authorization"));
    assert!(
        !seen.to_ascii_lowercase().contains("\nauthorization"),
        "no token on plain http"
    );

    let child = proxy.process.take();
    let pid = child.id().to_string();
    ok(&Command::new("kill").args(["-TERM", &pid]).output().unwrap());
    let stopped = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    assert!(stopped.elapsed() < Duration::from_secs(12));
    let _ = &mut proxy;
}

#[test]
fn refuses_a_non_loopback_address() {
    let world = logged_in_world(600);
    let output = world.keygate(&["proxy", "--listen", "0.0.0.0:0"]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("not a loopback address"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_failed_refresh_is_retried_later_not_for_every_request() {
    let world = logged_in_world(600);
    // The token turns stale (inside the refresh margin) but stays valid
    // at the server for minutes; the token endpoint is down.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let down = common::FakeTokenServer::start(
        common::response("503 Service Unavailable", "text/plain", "down"),
        Duration::ZERO,
    );
    let path = world.home.join(".local/share/keygate/tokens.json");
    let mut file = world.token_file();
    for account in file["accounts"].as_array_mut().unwrap() {
        account["obtained_at"] = serde_json::Value::from(now - 540);
        account["expires_at"] = serde_json::Value::from(now + 60);
        // As if that endpoint had issued it (it has moved, say).
        account["issuer"]["token_url"] = serde_json::Value::from(down.url.clone());
    }
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\ttokenUrl = {}\n",
        world.git_url, down.url
    ));
    let proxy = start_proxy(&world);
    let echo = format!("{}/echo-auth", world.git_url);
    for _ in 0..5 {
        let answer = curl(&world, &proxy.url, &proxy.ca, &echo, &["-f"]);
        ok(&answer);
    }
    // One attempt, then the still-valid token is served until the retry
    // time (10 s); without that, every request and the background loop
    // would each try again at once.
    let attempts = down.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=2).contains(&attempts), "{attempts} refresh attempts");
    drop(proxy);
}
