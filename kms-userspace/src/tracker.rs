//! The daemon's open connections by source, so an overload can close every
//! connection of the source that tripped (pf's `flush`), and a connection
//! from a source that is already blocked is refused at accept.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

use crate::edge::{limits::Limits, tables::Tables};

pub struct Tracker {
    open: Mutex<HashMap<u64, (IpAddr, CancellationToken)>>,
    next: AtomicU64,
    /// A handle on the block tables for the accept check; `None` without XDP.
    guard: Option<Mutex<Tables>>,
}

/// An admitted connection; dropping it forgets the connection.
pub struct Admission {
    tracker: Arc<Tracker>,
    id: u64,
    /// Cancelled when the connection's source is flushed.
    pub kill: CancellationToken,
}

impl Drop for Admission {
    fn drop(&mut self) {
        lock(&self.tracker.open).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not stop the daemon from tracking connections.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tracker {
    pub fn new(guard: Option<Tables>) -> Self {
        Tracker {
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            guard: guard.map(Mutex::new),
        }
    }

    /// Registers an accepted connection, or `None` if its source is blocked.
    ///
    /// The kernel counts a connection (and may block its source) before the
    /// daemon can accept it, so the connection that tripped a limit is
    /// refused here; connections accepted earlier are closed by [`Self::flush`].
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admission> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let kill = CancellationToken::new();
        lock(&self.open).insert(id, (peer, kill.clone()));
        let admission = Admission {
            tracker: self.clone(),
            id,
            kill,
        };
        if let Some(guard) = &self.guard {
            let tables = lock(guard);
            if tables.blocking(peer).is_some() && !monitoring(&tables) {
                return None;
            }
        }
        Some(admission)
    }

    /// Closes every open connection from `net`; returns how many.
    pub fn flush(&self, net: IpNet) -> usize {
        let open = lock(&self.open);
        let mut closed = 0;
        for (peer, kill) in open.values() {
            if net.contains(&crate::edge::tables::canonical(*peer)) {
                kill.cancel();
                closed += 1;
            }
        }
        closed
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        lock(&self.open).len()
    }
}

fn monitoring(tables: &Tables) -> bool {
    tables
        .config()
        .ok()
        .and_then(|c| Limits::from_config(&c))
        .is_some_and(|l| l.monitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_closes_exactly_the_connections_inside_the_prefix() {
        let tracker = Arc::new(Tracker::new(None));
        let a = tracker.admit("198.18.0.2".parse().unwrap()).unwrap();
        let b = tracker.admit("198.18.0.3".parse().unwrap()).unwrap();
        let c = tracker.admit("2001:db8::2".parse().unwrap()).unwrap();
        let d = tracker.admit("::ffff:198.18.0.2".parse().unwrap()).unwrap();
        assert_eq!(tracker.flush("198.18.0.2/32".parse().unwrap()), 2);
        assert!(a.kill.is_cancelled() && d.kill.is_cancelled());
        assert!(!b.kill.is_cancelled() && !c.kill.is_cancelled());
        assert_eq!(tracker.flush("2001:db8::/64".parse().unwrap()), 1);
        assert!(c.kill.is_cancelled());
        drop((a, b));
        assert_eq!(tracker.open(), 2);
    }
}
