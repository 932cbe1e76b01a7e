//! Who is on the other end of a loopback TCP connection.
//!
//! Other local users are adversaries: the proxy and the login listener
//! must serve only the user's own processes. On Linux the kernel tells a
//! socket's owner by exact address through `NETLINK_SOCK_DIAG`
//! ([`sock_diag`]), and lists every TCP socket with its owner's UID in
//! `/proc/net/tcp` and `/proc/net/tcp6`, the fallback: the peer of a
//! connection we accepted is the socket whose local address is the peer's
//! address and whose remote address is ours. Elsewhere there is no such
//! table, and [`owner`] says so.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[cfg(target_os = "linux")]
pub mod sock_diag;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot read the kernel's socket table: {0}")]
    Table(std::io::Error),
    #[error("no process owns the connection from {0} (it closed, or is not on this machine)")]
    NotFound(SocketAddr),
    #[error("this platform cannot tell which user a local connection comes from")]
    Unsupported,
}

/// The UID of this process.
#[cfg(unix)]
pub fn my_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The UID owning the socket at `peer` that is connected to `local`.
#[cfg(target_os = "linux")]
pub fn owner(local: SocketAddr, peer: SocketAddr) -> Result<u32, PeerError> {
    match sock_diag::owner(local, peer) {
        Ok(uid) => return Ok(uid),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(PeerError::NotFound(peer)),
        // No socket diagnostics in this kernel: the /proc tables.
        Err(_) => {}
    }
    // A v4 peer may show up in tcp6 as a mapped address when we listen on
    // a dual-stack socket, so both tables are read.
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match std::fs::read_to_string(table) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(PeerError::Table(e)),
        };
        if let Some(uid) = find_owner(&text, peer, local) {
            return Ok(uid);
        }
    }
    Err(PeerError::NotFound(peer))
}

#[cfg(not(target_os = "linux"))]
pub fn owner(_local: SocketAddr, _peer: SocketAddr) -> Result<u32, PeerError> {
    Err(PeerError::Unsupported)
}

/// Whether the connection from `peer` to our `local` address comes from
/// a process of this user. Where the platform cannot tell, it is allowed:
/// the caller's other checks (a secret, a state) still apply.
pub fn is_same_user(local: SocketAddr, peer: SocketAddr) -> Result<bool, PeerError> {
    #[cfg(target_os = "linux")]
    {
        owner(local, peer).map(|uid| uid == my_uid())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (local, peer);
        Ok(true)
    }
}

/// Finds, in one `/proc/net/tcp{,6}` table, the UID of the socket whose
/// local end is `socket_local` and remote end is `socket_remote`.
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "the table is Linux's")
)]
fn find_owner(table: &str, socket_local: SocketAddr, socket_remote: SocketAddr) -> Option<u32> {
    // Header: sl local_address rem_address st tx:rx tr:when retrnsmt uid ...
    table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace();
        let local = parse_endpoint(fields.nth(1)?)?;
        let remote = parse_endpoint(fields.next()?)?;
        let uid = fields.nth(4)?.parse().ok()?;
        (same_endpoint(local, socket_local) && same_endpoint(remote, socket_remote)).then_some(uid)
    })
}

/// Compares socket addresses, treating `::ffff:a.b.c.d` as `a.b.c.d`.
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "the table is Linux's")
)]
fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    a.port() == b.port() && canonical(a.ip()) == canonical(b.ip())
}

/// `0100007F:1F90` (v4) or 32 hex digits `:PORT` (v6). The kernel prints
/// each 32-bit word of the address as the host reads it from memory
/// (so its bytes come back with `to_ne_bytes`), the port as a number.
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "the table is Linux's")
)]
fn parse_endpoint(field: &str) -> Option<SocketAddr> {
    let (address, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word_bytes = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match address.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word_bytes(address)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word_bytes(address.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE4: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1001        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
";

    const TABLE6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:D431 00000000000000000000000001000000:0050 01 00000000:00000000 00:00000000 00000000  1002        0 9 1 0000000000000000 20 4 30 10 -1
   1: 0000000000000000FFFF00000100007F:D432 0000000000000000FFFF00000100007F:0050 01 00000000:00000000 00:00000000 00000000  1003        0 9 1 0000000000000000 20 4 30 10 -1
";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn finds_the_peer_socket_not_our_own_end() {
        // We listen on 8080 (0x1F90); the peer connected from 50000 (0xC350).
        let ours = addr("127.0.0.1:8080");
        let peer = addr("127.0.0.1:50000");
        assert_eq!(find_owner(TABLE4, peer, ours), Some(1001));
        assert_eq!(find_owner(TABLE4, ours, peer), Some(0));
        assert_eq!(find_owner(TABLE4, addr("127.0.0.1:50001"), ours), None);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn reads_v6_and_v4_mapped_entries() {
        assert_eq!(
            find_owner(TABLE6, addr("[::1]:54321"), addr("[::1]:80")),
            Some(1002)
        );
        // A v4 client of a dual-stack listener appears as ::ffff:127.0.0.1.
        assert_eq!(
            find_owner(TABLE6, addr("127.0.0.1:54322"), addr("127.0.0.1:80")),
            Some(1003)
        );
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let table = "header\nnot a line\n 0: zz:zz 00:00 01 0 0 0 x\n";
        assert_eq!(
            find_owner(table, addr("127.0.0.1:1"), addr("127.0.0.1:2")),
            None
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_real_connection_of_ours_is_ours() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let local = server_side.local_addr().unwrap();
        assert_eq!(owner(local, peer).unwrap(), my_uid());
        assert!(is_same_user(local, peer).unwrap());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_closed_peer_is_not_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        assert!(matches!(
            owner(local, addr("127.0.0.1:9")),
            Err(PeerError::NotFound(_))
        ));
    }
}
