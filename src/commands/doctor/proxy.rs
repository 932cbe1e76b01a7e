//! The local proxy, when one has run: whether it still runs, its CA
//! bundle, and whether this shell's `HTTPS_PROXY` points at it.

use std::time::Duration;

use url::Url;

use super::Check;
use crate::store;

/// The proxy, if one is running: its URL file, its CA bundle, and whether
/// `HTTPS_PROXY` in this shell points at it. The URL file holds the
/// proxy's password: only its host and port are ever shown.
pub(super) fn check() -> Option<Check> {
    const NAME: &str = "proxy";
    let dir = store::data_dir().ok()?.join("proxy");
    let url_file = dir.join("url");
    let raw = std::fs::read_to_string(&url_file).ok()?;
    let Ok(proxy_url) = Url::parse(raw.trim()) else {
        return Some(Check::warn(
            NAME,
            format!("{} holds no URL", url_file.display()),
            "start the proxy again: `keygate proxy`",
        ));
    };
    let address = format!(
        "{}:{}",
        proxy_url.host_str().unwrap_or_default(),
        proxy_url.port_or_known_default().unwrap_or_default()
    );
    let env_proxy = ["HTTPS_PROXY", "https_proxy"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .and_then(|v| Url::parse(&v).ok());
    let points_here = env_proxy.as_ref().is_some_and(|p| {
        p.host_str() == proxy_url.host_str()
            && p.port_or_known_default() == proxy_url.port_or_known_default()
    });
    // The URL file outlives the proxy: a connection says whether it runs.
    let running = std::net::ToSocketAddrs::to_socket_addrs(&address.as_str())
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        });
    let export = format!("export HTTPS_PROXY=\"$(cat {})\"", url_file.display());
    if !running {
        return Some(if points_here {
            Check::fail(
                NAME,
                format!("HTTPS_PROXY points at the proxy on {address}, which is not running"),
                "start it (`keygate proxy`) or `unset HTTPS_PROXY https_proxy`",
            )
        } else {
            Check::ok(NAME, "not running")
        });
    }
    let bundle = dir.join("ca-bundle.pem");
    if !bundle.is_file() {
        return Some(Check::warn(
            NAME,
            format!("running on {address}, but {} is missing", bundle.display()),
            "restart it: `keygate proxy` writes the bundle",
        ));
    }
    Some(match env_proxy {
        _ if points_here => Check::ok(
            NAME,
            format!(
                "running on {address}, HTTPS_PROXY points at it, CA bundle {}",
                bundle.display()
            ),
        ),
        Some(other) => Check::warn(
            NAME,
            format!(
                "running on {address}, but HTTPS_PROXY points at {}:{}",
                other.host_str().unwrap_or_default(),
                other.port_or_known_default().unwrap_or_default()
            ),
            export,
        ),
        None => Check::warn(
            NAME,
            format!("running on {address}, but HTTPS_PROXY in this shell is unset"),
            export,
        ),
    })
}
