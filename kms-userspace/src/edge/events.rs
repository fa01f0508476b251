//! Overload events from the kernel: each one names a source that just entered
//! the block table. The daemon closes every connection it holds from that
//! source (pf's `flush`) and has the state file saved.

use std::{net::IpAddr, sync::Arc};

use aya::maps::{MapData, RingBuf};
use ipnet::IpNet;
use kms_common::enforce::{OverloadEvent, Reason, is_mapped_v4};
use tokio::{io::unix::AsyncFd, sync::Notify};
use tracing::{info, warn};

use super::{
    limits::{FlushScope, Limits},
    sock_destroy::{self, Selector},
    tables::Tables,
};
use crate::{observe::notify::Notifier, shutdown::Shutdown, tracker::Tracker};

/// Reads events until shutdown.
pub async fn run(
    ring: RingBuf<MapData>,
    tables: Tables,
    tracker: Arc<Tracker>,
    notifier: Option<Arc<Notifier>>,
    changed: Arc<Notify>,
    mut shutdown: Shutdown,
) {
    // SAFETY: the ring buffer owns its descriptor and lives inside the
    // AsyncFd until it is dropped, so the registered fd stays valid.
    let mut ring = match unsafe { AsyncFd::register(ring) } {
        Ok(ring) => ring,
        Err(e) => {
            return warn!(error = %e, "cannot poll the overload event ring; connections will not be flushed");
        }
    };
    loop {
        let mut ready = tokio::select! {
            _ = shutdown.wait() => return,
            ready = ring.readable_mut() => match ready {
                Ok(ready) => ready,
                Err(e) => return warn!(error = %e, "polling the overload event ring failed"),
            },
        };
        let events = ready.get_inner_mut();
        while let Some(item) = events.next() {
            match decode(&item) {
                Some(event) => handle(&event, &tables, &tracker, notifier.as_deref()),
                None => warn!(len = item.len(), "malformed overload event ignored"),
            }
        }
        ready.clear_ready();
        changed.notify_one();
    }
}

fn decode(bytes: &[u8]) -> Option<OverloadEvent> {
    if bytes.len() < size_of::<OverloadEvent>() {
        return None;
    }
    // SAFETY: length checked; OverloadEvent is plain data valid for any bits.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<OverloadEvent>()) })
}

/// The blocked prefix an event names.
pub fn event_net(event: &OverloadEvent) -> Option<IpNet> {
    if is_mapped_v4(&event.addr) {
        let a = &event.addr[12..];
        let addr = IpAddr::from([a[0], a[1], a[2], a[3]]);
        IpNet::new(addr, 32).ok()
    } else {
        IpNet::new(IpAddr::from(event.addr), event.prefix_len.min(128) as u8).ok()
    }
}

fn handle(event: &OverloadEvent, tables: &Tables, tracker: &Tracker, notifier: Option<&Notifier>) {
    let Some(net) = event_net(event) else {
        return warn!("overload event with a bad prefix ignored");
    };
    let reason = Reason::from_u32(event.reason).map_or("unknown", Reason::name);
    let rate = event.rate_count as f64 / 1000.0;
    if event.monitor != 0 {
        info!(source = %net, reason, conns = event.conns, rate, "would block (monitor mode): nothing dropped or closed");
        return;
    }
    let closed = tracker.flush(net);
    // The daemon's own connections are reset above; the kernel aborts the
    // rest: those still in the accept queue and, with `flush global`, the
    // source's connections to any other service on this host.
    let limits = tables.config().ok().and_then(|c| Limits::from_config(&c));
    let ports = limits.as_ref().map(|l| l.service_ports.clone());
    let local_ports = match limits.as_ref().map(|l| l.flush_scope) {
        Some(FlushScope::Service) => ports.as_deref(),
        _ => None,
    };
    let aborted = match sock_destroy::destroy(&Selector {
        source: net,
        local_ports,
    }) {
        Ok(n) => n,
        Err(e) => {
            warn!(error = %e, "aborting the source's other sockets failed (tcp_diag not loaded, or a kernel without CONFIG_INET_DIAG_DESTROY?)");
            0
        }
    };
    warn!(source = %net, reason, conns = event.conns, rate, closed, aborted, "source blocked; its connections were reset");
    if let Some(notifier) = notifier {
        notifier.block(net, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_common::enforce::mapped_v4;

    #[test]
    fn events_decode_to_the_blocked_prefix() {
        let mut event = OverloadEvent {
            addr: mapped_v4([198, 18, 0, 2]),
            prefix_len: 128,
            ..Default::default()
        };
        assert_eq!(event_net(&event), Some("198.18.0.2/32".parse().unwrap()));
        event.addr = "2001:db8:0:1::"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        event.prefix_len = 64;
        assert_eq!(
            event_net(&event),
            Some("2001:db8:0:1::/64".parse().unwrap())
        );
        let bytes = unsafe {
            std::slice::from_raw_parts((&raw const event).cast::<u8>(), size_of::<OverloadEvent>())
        };
        assert_eq!(decode(bytes), Some(event));
        assert_eq!(decode(&bytes[..10]), None);
    }
}
