//! The UID owning the client end of an accepted loopback connection, asked
//! of the kernel by exact address (`NETLINK_SOCK_DIAG`, as `ss` does).
//!
//! `/proc/net/tcp` lists every socket on the machine: with 3,000
//! connections open reading it takes 15 ms (measured here), so a flood of
//! connections would make the check itself the denial of service. This
//! lookup costs the same with one socket or a hundred thousand. Where the
//! kernel lacks it (no `inet_diag`), `super::owner` falls back to the table.
//!
//! The kernel answers for whatever socket holds the addresses, closed ones
//! included: what the answer is worth is `super`'s to judge.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{Entry, same_endpoint};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
/// nlmsghdr (16) + inet_diag_req_v2 (56).
const REQUEST_LEN: usize = 72;
/// A reply: nlmsghdr (16), then inet_diag_msg: family, state, timer,
/// retrans (one byte each), the socket id (ports at 20 and 22, source at
/// 24, destination at 40, 16 bytes each, then interface and cookie),
/// expires, rqueue, wqueue, then uid and inode.
const FAMILY_OFFSET: usize = 16;
const STATE_OFFSET: usize = 17;
const PORTS_OFFSET: usize = 20;
const SOURCE_OFFSET: usize = 24;
const DESTINATION_OFFSET: usize = 40;
const UID_OFFSET: usize = 80;
const INODE_OFFSET: usize = 84;

/// The kernel's entry for the socket at `peer` connected to our `local`;
/// `None` when it has none.
///
/// # Errors
///
/// Any error but "no such socket" means the kernel cannot answer this way
/// (no `inet_diag`, say): the caller reads the `/proc` tables instead.
pub fn entry(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<Entry>> {
    let request = request(local, peer)?;
    // SAFETY: plain socket(2); the result is checked before use and owned
    // (closed on drop) from here on.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_nl is valid (pid 0: the kernel).
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: the buffer and the address are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            (&raw const kernel).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent != request.len() as isize {
        return Err(io::Error::last_os_error());
    }
    let mut reply = [0u8; 1024];
    // The kernel answers within sendto, so the reply is already queued:
    // never wait for it.
    // SAFETY: the buffer is valid for its length.
    let got = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            reply.as_mut_ptr().cast(),
            reply.len(),
            libc::MSG_DONTWAIT,
        )
    };
    let got = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
    match parse_reply(reply.get(..got).unwrap_or_default(), local, peer) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        other => other,
    }
}

fn request(local: SocketAddr, peer: SocketAddr) -> io::Result<Vec<u8>> {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let words = |ip: IpAddr| -> [u8; 16] {
        let mut bytes = [0u8; 16];
        match ip {
            IpAddr::V4(v4) => bytes[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => bytes = v6.octets(),
        }
        bytes
    };
    // The client's socket: its source is the peer, its destination us.
    let (source, destination) = (canonical(peer.ip()), canonical(local.ip()));
    let family = match (source, destination) {
        (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6,
        _ => return Err(io::ErrorKind::InvalidInput.into()),
    };
    let mut request = Vec::with_capacity(REQUEST_LEN);
    request.extend((REQUEST_LEN as u32).to_ne_bytes());
    request.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    request.extend(NLM_F_REQUEST.to_ne_bytes());
    request.extend(1u32.to_ne_bytes()); // sequence
    request.extend(0u32.to_ne_bytes()); // port id: the kernel fills it
    request.extend([family as u8, libc::IPPROTO_TCP as u8, 0, 0]);
    // A lookup by address ignores the state filter; the reply says.
    request.extend(u32::MAX.to_ne_bytes());
    request.extend(peer.port().to_be_bytes());
    request.extend(local.port().to_be_bytes());
    request.extend(words(source));
    request.extend(words(destination));
    request.extend(0u32.to_ne_bytes()); // any interface
    request.extend([0xff; 8]); // INET_DIAG_NOCOOKIE
    debug_assert_eq!(request.len(), REQUEST_LEN);
    Ok(request)
}

/// The entry a reply describes. A lookup by exact address that finds no
/// connected socket falls back, in the kernel, to a listener on the
/// peer's address: such a reply is about another socket and counts as
/// none.
fn parse_reply(reply: &[u8], local: SocketAddr, peer: SocketAddr) -> io::Result<Option<Entry>> {
    let field = |at: usize, len: usize| reply.get(at..at + len);
    let half = |at| {
        field(at, 2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_ne_bytes)
    };
    let word = |at| {
        field(at, 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
    };
    match half(4) {
        Some(SOCK_DIAG_BY_FAMILY) => {}
        Some(NLMSG_ERROR) => {
            let code = word(16).ok_or_else(short)? as i32;
            return Err(io::Error::from_raw_os_error(code.saturating_neg()));
        }
        _ => return Err(short()),
    }
    let byte = |at| field(at, 1).and_then(|b| b.first().copied());
    let port = |at| {
        field(at, 2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_be_bytes)
    };
    let address = |at| -> Option<IpAddr> {
        match i32::from(byte(FAMILY_OFFSET)?) {
            libc::AF_INET => {
                let bytes: [u8; 4] = field(at, 4)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(bytes)))
            }
            libc::AF_INET6 => {
                let bytes: [u8; 16] = field(at, 16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(bytes)))
            }
            _ => None,
        }
    };
    let source = SocketAddr::new(
        address(SOURCE_OFFSET).ok_or_else(short)?,
        port(PORTS_OFFSET).ok_or_else(short)?,
    );
    let destination = SocketAddr::new(
        address(DESTINATION_OFFSET).ok_or_else(short)?,
        port(PORTS_OFFSET + 2).ok_or_else(short)?,
    );
    if !(same_endpoint(source, peer) && same_endpoint(destination, local)) {
        return Ok(None);
    }
    Ok(Some(Entry {
        state: byte(STATE_OFFSET).ok_or_else(short)?,
        uid: word(UID_OFFSET).ok_or_else(short)?,
        inode: word(INODE_OFFSET).ok_or_else(short)?.into(),
    }))
}

fn short() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "unexpected sock_diag reply")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Replies as this kernel sent them (6.18, little-endian): a listener
    /// of ours on 53751; uid 1001 connected from 39964, sent a request and
    /// closed; uid 1001 again, from 39980, still holding its socket.
    const CLOSED: &str = "600000001400000001000000196b0000020503009c1cd1f77f0000010000000000000000000000007f000001000000000000000000000000000000000410000000000000c4e900000000000000000000000000000000000008000f0000000000";
    const HELD: &str = "7c0000001400000001000000196b0000020100009c2cd1f77f0000010000000000000000000000007f000001000000000000000000000000000000000510000000000000000000000000000000000000e903000009670000050008000000000008000f00000000000c00150001000000000000000600160052000000";

    #[cfg(target_endian = "little")]
    #[test]
    fn issue_18_the_kernel_lists_a_closed_connection_with_uid_0_and_no_inode() {
        let ours = addr("127.0.0.1:53751");
        let closed = parse_reply(&hex(CLOSED), ours, addr("127.0.0.1:39964")).unwrap();
        // TIME_WAIT, shown as the FIN_WAIT2 it came from: only the inode
        // tells it from a live socket.
        assert_eq!(
            closed,
            Some(Entry {
                state: 5,
                uid: 0,
                inode: 0
            })
        );
        assert!(matches!(
            crate::sys::peer::decide(addr("127.0.0.1:39964"), &[closed.unwrap()]),
            Err(crate::sys::peer::PeerError::Unowned(_))
        ));
        let held = parse_reply(&hex(HELD), ours, addr("127.0.0.1:39980")).unwrap();
        assert_eq!(
            held,
            Some(Entry {
                state: 1,
                uid: 1001,
                inode: 26377
            })
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn a_reply_about_another_socket_is_none() {
        // What the kernel's fallback to a listener on the peer's address
        // looks like: not the addresses asked about.
        let ours = addr("127.0.0.1:53751");
        assert_eq!(
            parse_reply(&hex(HELD), ours, addr("127.0.0.1:39964")).unwrap(),
            None
        );
        assert_eq!(
            parse_reply(&hex(HELD), addr("127.0.0.1:53752"), addr("127.0.0.1:39980")).unwrap(),
            None
        );
        // Cut short: an error, so the caller reads the tables instead.
        assert!(parse_reply(&hex(&HELD[..160]), ours, addr("127.0.0.1:39980")).is_err());
    }

    #[test]
    fn a_real_connection_is_ours_and_agrees_with_the_proc_table() {
        for host in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(listener) = std::net::TcpListener::bind(host) else {
                continue; // no IPv6 loopback here
            };
            let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server_side, peer) = listener.accept().unwrap();
            let local = server_side.local_addr().unwrap();
            let found = entry(local, peer).unwrap().unwrap();
            assert_eq!(found.uid, crate::sys::effective_uid());
            assert_eq!(found.state, 1);
            assert_ne!(found.inode, 0);
            assert_eq!(
                found.uid,
                crate::sys::peer::table_owner(local, peer).unwrap()
            );
        }
    }

    #[test]
    fn no_such_connection_is_none() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(entry(local, addr("127.0.0.1:9")).unwrap(), None);
    }

    #[test]
    fn a_closed_connection_of_ours_names_no_owner() {
        // Our own client sends and closes before we look: its end lingers
        // in TIME_WAIT, which must not count even when the UID would match.
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (server_side, peer) = listener.accept().unwrap();
        let local = server_side.local_addr().unwrap();
        let found = entry(local, peer).unwrap().unwrap();
        assert_eq!(found.inode, 0, "{found:?}");
        assert!(matches!(
            crate::sys::peer::owner(local, peer),
            Err(crate::sys::peer::PeerError::Unowned(_))
        ));
        assert!(matches!(
            crate::sys::peer::table_owner(local, peer),
            Err(crate::sys::peer::PeerError::Unowned(_))
        ));
    }
}
