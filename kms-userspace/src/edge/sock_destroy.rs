//! pf's `flush` for the sockets the daemon does not hold: the kernel's
//! `SOCK_DESTROY` (sock_diag netlink, CONFIG_INET_DIAG_DESTROY) aborts TCP
//! sockets by id, as `ss -K` does. Used for connections of a blocked source
//! to other services (`flush global`) and for connections still waiting in
//! the accept queue.

use std::{io, mem::size_of, net::IpAddr};

use ipnet::IpNet;

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const SOCK_DESTROY: u16 = 21;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_LISTEN: u32 = 10;
/// Every TCP state but LISTEN: a listener is never the source's.
const STATES: u32 = !(1 << TCP_LISTEN);

/// `struct inet_diag_sockid`: ports and addresses in network order.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SockId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u8; 16],
    dst: [u8; 16],
    interface: u32,
    cookie: [u32; 2],
}

/// `struct inet_diag_req_v2`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Request {
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: SockId,
}

/// The head of `struct inet_diag_msg`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Reply {
    family: u8,
    state: u8,
    timer: u8,
    retrans: u8,
    id: SockId,
}

/// Which sockets to abort.
pub struct Selector<'a> {
    pub source: IpNet,
    /// Only sockets on these local ports; `None`: every port.
    pub local_ports: Option<&'a [u16]>,
}

impl Selector<'_> {
    fn matches(&self, family: u8, id: &SockId) -> bool {
        let remote = match i32::from(family) {
            libc::AF_INET => IpAddr::from([id.dst[0], id.dst[1], id.dst[2], id.dst[3]]),
            _ => crate::edge::tables::canonical(IpAddr::from(id.dst)),
        };
        let port = u16::from_be_bytes(id.sport);
        self.source.contains(&remote) && self.local_ports.is_none_or(|ports| ports.contains(&port))
    }
}

/// Aborts every TCP socket `selector` picks in this network namespace;
/// returns how many.
pub fn destroy(selector: &Selector<'_>) -> io::Result<usize> {
    let socket = NetlinkSocket::open()?;
    let mut destroyed = 0;
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        let victims: Vec<SockId> = socket
            .dump(family)?
            .into_iter()
            .filter(|id| selector.matches(family, id))
            .collect();
        for id in victims {
            // A socket that closed since the dump is not an error.
            if socket.destroy(family, id).is_ok() {
                destroyed += 1;
            }
        }
    }
    Ok(destroyed)
}

struct NetlinkSocket(std::os::fd::OwnedFd);

fn message(kind: u16, flags: u16, request: &Request) -> Vec<u8> {
    let len = size_of::<libc::nlmsghdr>() + size_of::<Request>();
    let header = libc::nlmsghdr {
        nlmsg_len: len as u32,
        nlmsg_type: kind,
        nlmsg_flags: flags,
        nlmsg_seq: 1,
        nlmsg_pid: 0,
    };
    let mut out = Vec::with_capacity(len);
    // SAFETY: both are plain #[repr(C)] structs without padding holes.
    unsafe {
        out.extend_from_slice(std::slice::from_raw_parts(
            (&raw const header).cast::<u8>(),
            size_of::<libc::nlmsghdr>(),
        ));
        out.extend_from_slice(std::slice::from_raw_parts(
            (request as *const Request).cast::<u8>(),
            size_of::<Request>(),
        ));
    }
    out
}

/// Reads a plain struct from the front of `bytes`, if it is long enough.
fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    // SAFETY: length checked; T is plain data valid for any bits here.
    (bytes.len() >= size_of::<T>())
        .then(|| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

impl NetlinkSocket {
    fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the descriptor is owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(NetlinkSocket(unsafe {
            std::os::fd::FromRawFd::from_raw_fd(fd)
        }))
    }

    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        use std::os::fd::AsRawFd as _;
        // SAFETY: a valid buffer of the given length.
        let sent = unsafe { libc::send(self.0.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::fd::AsRawFd as _;
        // SAFETY: a valid, writable buffer of the given length.
        let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Every non-listening TCP socket of `family`.
    fn dump(&self, family: u8) -> io::Result<Vec<SockId>> {
        let request = Request {
            family,
            protocol: libc::IPPROTO_TCP as u8,
            states: STATES,
            ..Default::default()
        };
        self.send(&message(
            SOCK_DIAG_BY_FAMILY,
            (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
            &request,
        ))?;
        let mut found = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.recv(&mut buf)?;
            let mut rest = &buf[..n];
            while let Some(header) = read::<libc::nlmsghdr>(rest) {
                let len = header.nlmsg_len as usize;
                if len < size_of::<libc::nlmsghdr>() || len > rest.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated netlink message",
                    ));
                }
                let body = &rest[size_of::<libc::nlmsghdr>()..len];
                match header.nlmsg_type {
                    NLMSG_DONE => return Ok(found),
                    NLMSG_ERROR => return Err(netlink_error(body)),
                    _ => {
                        if let Some(reply) = read::<Reply>(body) {
                            found.push(reply.id);
                        }
                    }
                }
                // Messages are 4-byte aligned.
                let advance = (len + 3) & !3;
                rest = rest.get(advance..).unwrap_or_default();
            }
        }
    }

    fn destroy(&self, family: u8, id: SockId) -> io::Result<()> {
        let request = Request {
            family,
            protocol: libc::IPPROTO_TCP as u8,
            states: STATES,
            id,
            ..Default::default()
        };
        self.send(&message(
            SOCK_DESTROY,
            (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
            &request,
        ))?;
        let mut buf = [0u8; 512];
        let n = self.recv(&mut buf)?;
        match read::<libc::nlmsghdr>(&buf[..n]) {
            Some(h) if h.nlmsg_type == NLMSG_ERROR => {
                let err = netlink_error(&buf[size_of::<libc::nlmsghdr>()..n]);
                if err.raw_os_error() == Some(0) {
                    Ok(())
                } else {
                    Err(err)
                }
            }
            _ => Ok(()),
        }
    }
}

/// The errno an NLMSG_ERROR carries (0 is an acknowledgement).
fn netlink_error(body: &[u8]) -> io::Error {
    let code = read::<i32>(body).unwrap_or(-libc::EIO);
    io::Error::from_raw_os_error(-code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_has_the_kernels_layout() {
        assert_eq!(size_of::<SockId>(), 48);
        assert_eq!(size_of::<Request>(), 56);
        assert_eq!(message(SOCK_DESTROY, 5, &Request::default()).len(), 72);
    }

    #[test]
    fn selectors_match_by_remote_prefix_and_local_port() {
        let mut id = SockId {
            sport: 1688u16.to_be_bytes(),
            ..Default::default()
        };
        id.dst[..4].copy_from_slice(&[198, 18, 0, 2]);
        let any_port = Selector {
            source: "198.18.0.2/32".parse().unwrap(),
            local_ports: None,
        };
        assert!(any_port.matches(libc::AF_INET as u8, &id));
        let ports = [22u16];
        let other_port = Selector {
            local_ports: Some(&ports),
            ..any_port
        };
        assert!(!other_port.matches(libc::AF_INET as u8, &id));
        // An IPv4 peer of a dual-stack socket appears IPv4-mapped.
        let mapped = SockId {
            dst: "::ffff:198.18.0.2"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
            ..Default::default()
        };
        assert!(
            other_port
                .source
                .contains(&crate::edge::tables::canonical(IpAddr::from(mapped.dst)))
        );
    }
}
