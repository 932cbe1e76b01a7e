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
//!
//! Both list sockets whose process has closed them too, with UID 0 (issue
//! 18): only a socket a process still holds names its owner, and a
//! connection whose owner cannot be named is refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[cfg(target_os = "linux")]
pub mod sock_diag;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot read the kernel's socket table: {0}")]
    Table(std::io::Error),
    #[error("no process owns the connection from {0} (it closed, or is not on this machine)")]
    NotFound(SocketAddr),
    #[error(
        "the connection from {0} is closed or closing, and the kernel no longer names its owner"
    )]
    Unowned(SocketAddr),
    #[error("the kernel lists the connection from {0} more than once, with different owners")]
    Ambiguous(SocketAddr),
    #[error("this platform cannot tell which user a local connection comes from")]
    Unsupported,
}

/// What the kernel lists for one socket with the client's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// `TCP_ESTABLISHED` (1) and so on, as in `include/net/tcp_states.h`.
    pub state: u8,
    pub uid: u32,
    /// The socket's inode; 0 when no file holds the socket any more.
    pub inode: u64,
}

impl Entry {
    /// Whether `uid` is the owner's. A socket its process has closed
    /// lingers (in TIME_WAIT, or orphaned in FIN_WAIT) and is listed with
    /// UID 0 and inode 0; a TIME_WAIT entry even shows the state it came
    /// from (FIN_WAIT2), so the state alone cannot tell. A socket a file
    /// still holds, in a state a client of ours can be in, can.
    #[cfg_attr(
        not(target_os = "linux"),
        allow(dead_code, reason = "the table is Linux's")
    )]
    fn names_owner(self) -> bool {
        const ESTABLISHED: u8 = 1;
        // The client has sent its FIN (shut down writing) but still holds
        // the socket: a client that sends its request, then half-closes.
        const FIN_WAIT1: u8 = 4;
        const FIN_WAIT2: u8 = 5;
        // Our end closed first; the client still holds its socket.
        const CLOSE_WAIT: u8 = 8;
        self.inode != 0 && matches!(self.state, ESTABLISHED | FIN_WAIT1 | FIN_WAIT2 | CLOSE_WAIT)
    }
}

/// The owner `entries` name for the connection from `peer`: only when
/// every entry is a live socket and they all agree. Fails closed: an entry
/// whose owner the kernel no longer knows, or two that disagree, refuse
/// the connection.
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "the table is Linux's")
)]
fn decide(peer: SocketAddr, entries: &[Entry]) -> Result<u32, PeerError> {
    let (first, rest) = entries.split_first().ok_or(PeerError::NotFound(peer))?;
    if !entries.iter().all(|entry| entry.names_owner()) {
        return Err(PeerError::Unowned(peer));
    }
    if rest.iter().any(|entry| entry.uid != first.uid) {
        return Err(PeerError::Ambiguous(peer));
    }
    Ok(first.uid)
}

/// The UID owning the socket at `peer` that is connected to `local`.
///
/// # Security
///
/// A UID comes back only for a socket that a process still holds: the
/// kernel lists a closed connection's lingering socket with UID 0, which
/// to a keygate run as root would look like its own.
#[cfg(target_os = "linux")]
pub fn owner(local: SocketAddr, peer: SocketAddr) -> Result<u32, PeerError> {
    diagnosed_owner(local, peer).unwrap_or_else(|| table_owner(local, peer))
}

#[cfg(not(target_os = "linux"))]
pub fn owner(_local: SocketAddr, _peer: SocketAddr) -> Result<u32, PeerError> {
    Err(PeerError::Unsupported)
}

/// [`owner`] asked of the kernel by exact address, which costs the same
/// however many sockets there are; `None` where the kernel cannot answer
/// that way, and only the tables ([`table_owner`]) can.
#[cfg(target_os = "linux")]
pub fn diagnosed_owner(local: SocketAddr, peer: SocketAddr) -> Option<Result<u32, PeerError>> {
    match sock_diag::entry(local, peer) {
        Ok(Some(entry)) => Some(decide(peer, &[entry])),
        Ok(None) => Some(Err(PeerError::NotFound(peer))),
        Err(_) => None,
    }
}

/// [`owner`] read from `/proc/net/tcp` and `/proc/net/tcp6`: slow with
/// many sockets open, so the proxy runs it off its worker.
#[cfg(target_os = "linux")]
pub fn table_owner(local: SocketAddr, peer: SocketAddr) -> Result<u32, PeerError> {
    // A v4 peer may show up in tcp6 as a mapped address when it connected
    // from a dual-stack socket, so both tables are read, and every entry
    // counts: the tables are read a page at a time while sockets come and
    // go, so one connection may be listed twice.
    let mut entries = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match std::fs::read_to_string(table) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(PeerError::Table(e)),
        };
        entries.extend(find_entries(&text, peer, local));
    }
    decide(peer, &entries)
}

/// Whether the connection from `peer` to our `local` address comes from
/// a process of this user. Where the platform cannot tell, it is allowed:
/// the caller's other checks (a secret, a state) still apply.
pub fn is_same_user(local: SocketAddr, peer: SocketAddr) -> Result<bool, PeerError> {
    #[cfg(target_os = "linux")]
    {
        owner(local, peer).map(|uid| uid == super::effective_uid())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (local, peer);
        Ok(true)
    }
}

/// [`is_same_user`] asked of the kernel by exact address
/// ([`diagnosed_owner`]), cheap enough to run on an async worker; `None`
/// where only the tables ([`table_same_user`]) can answer.
pub fn diagnosed_same_user(local: SocketAddr, peer: SocketAddr) -> Option<Result<bool, PeerError>> {
    #[cfg(target_os = "linux")]
    {
        diagnosed_owner(local, peer).map(|found| found.map(|uid| uid == super::effective_uid()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (local, peer);
        None
    }
}

/// [`is_same_user`] read from the tables ([`table_owner`]): it blocks,
/// for longer the more sockets the machine has open.
pub fn table_same_user(local: SocketAddr, peer: SocketAddr) -> Result<bool, PeerError> {
    #[cfg(target_os = "linux")]
    {
        table_owner(local, peer).map(|uid| uid == super::effective_uid())
    }
    #[cfg(not(target_os = "linux"))]
    {
        is_same_user(local, peer)
    }
}

/// Every entry, in one `/proc/net/tcp{,6}` table, for a socket whose
/// local end is `socket_local` and remote end is `socket_remote`. A line
/// with those addresses whose other fields do not parse is kept as an
/// entry that names no owner, so it refuses rather than vanishes.
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "the table is Linux's")
)]
fn find_entries(table: &str, socket_local: SocketAddr, socket_remote: SocketAddr) -> Vec<Entry> {
    // Header: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = parse_endpoint(fields.nth(1)?)?;
            let remote = parse_endpoint(fields.next()?)?;
            if !(same_endpoint(local, socket_local) && same_endpoint(remote, socket_remote)) {
                return None;
            }
            let state = fields.next().and_then(|st| u8::from_str_radix(st, 16).ok());
            let uid = fields.nth(3).and_then(|uid| uid.parse().ok());
            let inode = fields.nth(1).and_then(|inode| inode.parse().ok());
            Some(Entry {
                state: state.unwrap_or(0),
                uid: uid.unwrap_or(u32::MAX),
                inode: inode.unwrap_or(0),
            })
        })
        .collect()
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

    fn owner_in(table: &str, socket_local: SocketAddr, socket_remote: SocketAddr) -> Option<u32> {
        decide(
            socket_local,
            &find_entries(table, socket_local, socket_remote),
        )
        .ok()
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn finds_the_peer_socket_not_our_own_end() {
        // We listen on 8080 (0x1F90); the peer connected from 50000 (0xC350).
        let ours = addr("127.0.0.1:8080");
        let peer = addr("127.0.0.1:50000");
        assert_eq!(owner_in(TABLE4, peer, ours), Some(1001));
        assert_eq!(owner_in(TABLE4, ours, peer), Some(0));
        assert!(matches!(
            decide(peer, &find_entries(TABLE4, addr("127.0.0.1:50001"), ours)),
            Err(PeerError::NotFound(_))
        ));
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn reads_v6_and_v4_mapped_entries() {
        assert_eq!(
            owner_in(TABLE6, addr("[::1]:54321"), addr("[::1]:80")),
            Some(1002)
        );
        // A v4 client of a dual-stack listener appears as ::ffff:127.0.0.1.
        assert_eq!(
            owner_in(TABLE6, addr("127.0.0.1:54322"), addr("127.0.0.1:80")),
            Some(1003)
        );
    }

    /// Rows as this kernel printed them (6.18): a listener of ours on
    /// 53751 (0xD1F7); uid 1001 connected from 39964 (0x9C1C), sent a
    /// request and closed, leaving its end in TIME_WAIT (uid 0, inode 0,
    /// timer 3, shown in the state it came from, FIN_WAIT2); our accepted
    /// end of it, still open; uid 1001 again, connected from 39980 (0x9C2C)
    /// and still holding its socket.
    const ISSUE_18: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   4: 0100007F:D1F7 0100007F:9C1C 08 00000000:00000013 00:00000000 00000000     0        0 26829 1 000000003b17edd8 20 4 26 10 -1
   5: 0100007F:9C1C 0100007F:D1F7 05 00000000:00000000 03:00001760 00000000     0        0 0 3 000000003f52dfca
   6: 0100007F:9C2C 0100007F:D1F7 01 00000000:00000000 00:00000000 00000000  1001        0 26377 2 0000000075a9d14c 20 0 0 10 -1
";

    #[cfg(target_endian = "little")]
    #[test]
    fn issue_18_a_closed_connection_in_time_wait_is_nobodys() {
        let ours = addr("127.0.0.1:53751");
        let closed = addr("127.0.0.1:39964");
        let entries = find_entries(ISSUE_18, closed, ours);
        assert_eq!(
            entries,
            [Entry {
                state: 5,
                uid: 0,
                inode: 0
            }]
        );
        // UID 0 would be root's: refused, not taken for root's own.
        assert!(matches!(
            decide(closed, &entries),
            Err(PeerError::Unowned(_))
        ));
        assert_eq!(
            owner_in(ISSUE_18, addr("127.0.0.1:39980"), ours),
            Some(1001)
        );
    }

    #[test]
    fn only_a_held_socket_in_a_clients_state_names_its_owner() {
        let peer = addr("127.0.0.1:40000");
        let live = |state| Entry {
            state,
            uid: 1001,
            inode: 77,
        };
        // ESTABLISHED; FIN_WAIT1, FIN_WAIT2: half-closed, still held; CLOSE_WAIT.
        for state in [1, 4, 5, 8] {
            assert_eq!(decide(peer, &[live(state)]).unwrap(), 1001, "state {state}");
        }
        // SYN_SENT, SYN_RECV, TIME_WAIT, CLOSE, LAST_ACK, LISTEN, CLOSING,
        // and a state the line did not say.
        for state in [2, 3, 6, 7, 9, 10, 11, 0] {
            assert!(
                matches!(decide(peer, &[live(state)]), Err(PeerError::Unowned(_))),
                "state {state}"
            );
        }
        // Held by no file: a TIME_WAIT entry in its FIN_WAIT2 guise, or an
        // orphan, whatever UID it shows.
        for uid in [0, 1001] {
            let orphan = Entry {
                state: 5,
                uid,
                inode: 0,
            };
            assert!(matches!(
                decide(peer, &[orphan]),
                Err(PeerError::Unowned(_))
            ));
        }
        assert!(matches!(decide(peer, &[]), Err(PeerError::NotFound(_))));
    }

    #[test]
    fn a_connection_listed_twice_names_an_owner_only_if_both_agree() {
        let peer = addr("127.0.0.1:40000");
        let entry = |state, uid, inode| Entry { state, uid, inode };
        assert_eq!(
            decide(peer, &[entry(1, 1001, 77), entry(1, 1001, 77)]).unwrap(),
            1001
        );
        assert!(matches!(
            decide(peer, &[entry(1, 1001, 77), entry(1, 0, 78)]),
            Err(PeerError::Ambiguous(_))
        ));
        // A live socket and a closed one's lingering entry, either order.
        for pair in [
            [entry(1, 0, 77), entry(5, 0, 0)],
            [entry(6, 0, 0), entry(1, 0, 77)],
        ] {
            assert!(matches!(decide(peer, &pair), Err(PeerError::Unowned(_))));
        }
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn a_line_with_our_addresses_but_garbled_fields_refuses() {
        let table = "header
   0: 0100007F:C350 0100007F:1F90 zz 00000000:00000000 00:00000000 00000000  1001        0 5 1
   1: 0100007F:C351 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1001
";
        let ours = addr("127.0.0.1:8080");
        for peer in [addr("127.0.0.1:50000"), addr("127.0.0.1:50001")] {
            assert!(matches!(
                decide(peer, &find_entries(table, peer, ours)),
                Err(PeerError::Unowned(_))
            ));
        }
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let table = "header\nnot a line\n 0: zz:zz 00:00 01 0 0 0 x\n";
        assert!(find_entries(table, addr("127.0.0.1:1"), addr("127.0.0.1:2")).is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_real_connection_of_ours_is_ours() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let local = server_side.local_addr().unwrap();
        assert_eq!(owner(local, peer).unwrap(), crate::sys::effective_uid());
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
