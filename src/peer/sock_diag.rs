//! The UID owning the client end of an accepted loopback connection, asked
//! of the kernel by exact address (`NETLINK_SOCK_DIAG`, as `ss` does).
//!
//! `/proc/net/tcp` lists every socket on the machine: with 3,000
//! connections open reading it takes 15 ms (measured here), so a flood of
//! connections would make the check itself the denial of service. This
//! lookup costs the same with one socket or a hundred thousand. Where the
//! kernel lacks it (no `inet_diag`), `super::owner` falls back to the table.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
/// nlmsghdr (16) + inet_diag_req_v2 (56).
const REQUEST_LEN: usize = 72;
/// Where `idiag_uid` sits in a reply: nlmsghdr (16), then in
/// inet_diag_msg four bytes of family/state/timer/retrans, the 48-byte
/// socket id, and expires, rqueue, wqueue.
const UID_OFFSET: usize = 16 + 4 + 48 + 12;

/// The UID of the socket at `peer` connected to our `local`.
pub fn owner(local: SocketAddr, peer: SocketAddr) -> io::Result<u32> {
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
    parse_reply(reply.get(..got).unwrap_or_default())
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
    request.extend(u32::MAX.to_ne_bytes()); // any state
    request.extend(peer.port().to_be_bytes());
    request.extend(local.port().to_be_bytes());
    request.extend(words(source));
    request.extend(words(destination));
    request.extend(0u32.to_ne_bytes()); // any interface
    request.extend([0xff; 8]); // INET_DIAG_NOCOOKIE
    debug_assert_eq!(request.len(), REQUEST_LEN);
    Ok(request)
}

fn parse_reply(reply: &[u8]) -> io::Result<u32> {
    let field = |at: usize, len: usize| reply.get(at..at + len);
    let kind = field(4, 2)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_ne_bytes);
    let word = |at| {
        field(at, 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
    };
    match kind {
        Some(SOCK_DIAG_BY_FAMILY) => word(UID_OFFSET).ok_or_else(short),
        Some(NLMSG_ERROR) => {
            let code = word(16).ok_or_else(short)? as i32;
            Err(io::Error::from_raw_os_error(code.saturating_neg()))
        }
        _ => Err(short()),
    }
}

fn short() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "unexpected sock_diag reply")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_connection_is_ours_and_agrees_with_the_proc_table() {
        for host in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(listener) = std::net::TcpListener::bind(host) else {
                continue; // no IPv6 loopback here
            };
            let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server_side, peer) = listener.accept().unwrap();
            let local = server_side.local_addr().unwrap();
            let uid = owner(local, peer).unwrap();
            assert_eq!(uid, crate::peer::my_uid());
            assert_eq!(uid, crate::peer::owner(local, peer).unwrap());
        }
    }

    #[test]
    fn no_such_connection_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let error = owner(local, "127.0.0.1:9".parse().unwrap()).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOENT), "{error}");
    }
}
