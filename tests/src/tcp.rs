//! TCP helpers for enforcement tests: connections from a chosen source
//! address inside a namespace, checks for "reset or closed" versus "still
//! open", and raw SYNs that never complete a handshake.

use std::{
    io::{ErrorKind, Read as _},
    net::{IpAddr, SocketAddr, TcpStream},
    time::Duration,
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::{Netns, in_netns, packet};

/// How a connection attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Connect {
    Established,
    /// Nothing answered: what a SYN dropped by XDP looks like.
    TimedOut,
    /// A RST answered (nothing listening).
    Refused,
    /// The handshake completed and the server reset the connection before
    /// the connect call returned.
    Reset,
}

fn connect_socket(
    src: Option<IpAddr>,
    dst: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(dst), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(src) = src {
        socket.bind(&SockAddr::from(SocketAddr::new(src, 0)))?;
    }
    socket.connect_timeout(&SockAddr::from(dst), timeout)?;
    Ok(socket.into())
}

/// Opens `n` connections from `src` (or the default source) to `dst` inside
/// `ns`, each within `timeout`; returns the established ones and how the
/// others failed.
pub fn open(
    ns: &Netns,
    src: Option<IpAddr>,
    dst: SocketAddr,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<(Vec<TcpStream>, Vec<Connect>)> {
    in_netns(ns, move || {
        let mut open = Vec::new();
        let mut failed = Vec::new();
        for _ in 0..n {
            match connect_socket(src, dst, timeout) {
                Ok(stream) => open.push(stream),
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => failed.push(Connect::Refused),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => failed.push(Connect::Reset),
                Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
                    failed.push(Connect::TimedOut)
                }
                Err(e) => panic!("connect {dst}: {e}"),
            }
        }
        (open, failed)
    })
}

/// One connection attempt.
pub fn attempt(
    ns: &Netns,
    src: Option<IpAddr>,
    dst: SocketAddr,
    timeout: Duration,
) -> anyhow::Result<Connect> {
    let (open, failed) = open(ns, src, dst, 1, timeout)?;
    Ok(match failed.into_iter().next() {
        Some(how) => how,
        None => {
            drop(open);
            Connect::Established
        }
    })
}

/// A plain listener bound inside `ns` (another service on the edge node).
/// Connections wait in its accept queue, established, until it is dropped.
pub fn listen(ns: &Netns, addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    Ok(in_netns(ns, move || std::net::TcpListener::bind(addr))??)
}

/// Opens one connection that the server is expected to reset (the one that
/// trips a limit); true if it was reset (at connect or within `wait`).
pub fn reset_within(
    ns: &Netns,
    src: Option<IpAddr>,
    dst: SocketAddr,
    wait: Duration,
) -> anyhow::Result<bool> {
    let (mut open, failed) = open(ns, src, dst, 1, wait)?;
    Ok(match open.first_mut() {
        Some(stream) => closed_within(stream, wait),
        None => failed == [Connect::Reset],
    })
}

/// Whether the peer closed or reset `stream` within `wait` (false: it is
/// still open and silent).
pub fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).expect("set timeout");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// Sends `count` bare TCP SYNs from each of `sources` to `dst` through a raw
/// socket in `ns`: handshakes that are never completed.
pub fn raw_syns(
    ns: &Netns,
    sources: Vec<std::net::Ipv4Addr>,
    dst: std::net::SocketAddrV4,
    count: u16,
) -> anyhow::Result<()> {
    in_netns(ns, move || -> anyhow::Result<()> {
        let socket = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )?;
        for src in &sources {
            for i in 0..count {
                let seq = u32::from(i) * 7919;
                let packet =
                    packet::ipv4_tcp(*src, *dst.ip(), 40000 + i, dst.port(), packet::SYN, seq);
                socket.send_to(&packet, &SockAddr::from(SocketAddr::V4(dst)))?;
            }
        }
        Ok(())
    })?
}

/// An Ethernet frame carrying a TCP SYN from `src` to `dst`, tagged with
/// each of `vlans` in turn (802.1ad outer tag first when there are two).
pub fn tagged_syn(
    vlans: &[u16],
    src: std::net::Ipv4Addr,
    dst: std::net::SocketAddrV4,
    seq: u32,
) -> Vec<u8> {
    let ip = packet::ipv4_tcp(src, *dst.ip(), 41000, dst.port(), packet::SYN, seq);
    packet::ethernet(packet::BROADCAST, vlans, 0x0800, &ip)
}

/// Sends raw Ethernet frames out of `iface` in `ns` (AF_PACKET).
pub fn send_frames(ns: &Netns, iface: &str, frames: Vec<Vec<u8>>) -> anyhow::Result<()> {
    let iface = std::ffi::CString::new(iface)?;
    in_netns(ns, move || -> anyhow::Result<()> {
        // SAFETY: plain socket/bind/send calls with valid, initialised arguments.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            anyhow::ensure!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = libc::if_nametoindex(iface.as_ptr()) as i32;
            let bound = libc::bind(
                fd,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            );
            let mut result = Ok(());
            if bound != 0 {
                result = Err(anyhow::anyhow!(
                    "bind AF_PACKET: {}",
                    std::io::Error::last_os_error()
                ));
            }
            for frame in &frames {
                if result.is_err() {
                    break;
                }
                if libc::send(fd, frame.as_ptr().cast(), frame.len(), 0) < 0 {
                    result = Err(anyhow::anyhow!("send: {}", std::io::Error::last_os_error()));
                }
            }
            libc::close(fd);
            result
        }
    })?
}
