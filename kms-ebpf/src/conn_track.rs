//! The sock_ops program: pf's `max-src-conn` and `max-src-conn-rate`.
//!
//! It runs for sockets of processes in the cgroup it is attached to (the
//! daemon's). A connection is counted when the kernel reports it passively
//! established (the three-way handshake completed, so a spoofed SYN never
//! counts), and uncounted when that socket reaches TCP_CLOSE. A source that
//! trips a limit is inserted into the block table, where XDP drops it, and
//! one event tells the daemon to flush its connections.

use aya_ebpf::{
    bindings::{
        BPF_NOEXIST, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, BPF_SOCK_OPS_STATE_CB,
        BPF_SOCK_OPS_STATE_CB_FLAG, BPF_TCP_CLOSE,
    },
    helpers::{bpf_ktime_get_ns, bpf_ktime_get_tai_ns},
    macros::sock_ops,
    maps::lpm_trie::Key,
    programs::SockOpsContext,
};
use kms_common::{
    Stat,
    enforce::{
        Blocked, Config, OverloadEvent, Reason, SourceKey, SourceState, is_mapped_v4, mapped_v4,
        mask_v6,
    },
};

use crate::{
    atomic,
    maps::{
        KMS_ALLOWED_V4, KMS_ALLOWED_V6, KMS_BLOCKED_V4, KMS_BLOCKED_V6, KMS_EVENTS, KMS_SOURCES,
        config, count,
    },
};

const AF_INET: u32 = 2;
/// What map updates return (negated) when BPF_NOEXIST finds the key.
const EEXIST: i32 = -17;
const AF_INET6: u32 = 10;
/// pf's PF_THRESHOLD_MULT: the rate estimator counts in thousandths.
const THRESHOLD_MULT: u64 = 1000;
/// Attempts at the per-source lock before updating without it; the holder
/// runs a handful of instructions with preemption off, so this never runs out
/// in practice.
const LOCK_SPINS: u32 = 64;

#[sock_ops]
pub fn kms_sock_ops(ctx: SockOpsContext) -> u32 {
    match ctx.op() {
        BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB => on_established(&ctx),
        BPF_SOCK_OPS_STATE_CB if ctx.arg(1) == BPF_TCP_CLOSE => on_closed(&ctx),
        _ => {}
    }
    1
}

/// A connection's source: its address as the kernel reports it, IPv4
/// recognised also when it arrives on a dual-stack IPv6 socket.
#[derive(Clone, Copy)]
enum Peer {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl Peer {
    #[inline(always)]
    fn of(ctx: &SockOpsContext) -> Option<Peer> {
        match ctx.family() {
            // The kernel hands the address over in network byte order.
            AF_INET => Some(Peer::V4(ctx.remote_ip4().to_ne_bytes())),
            AF_INET6 => {
                let words = ctx.remote_ip6();
                let mut addr = [0u8; 16];
                let mut i = 0;
                while i < 4 {
                    let bytes = words[i].to_ne_bytes();
                    addr[i * 4] = bytes[0];
                    addr[i * 4 + 1] = bytes[1];
                    addr[i * 4 + 2] = bytes[2];
                    addr[i * 4 + 3] = bytes[3];
                    i += 1;
                }
                if is_mapped_v4(&addr) {
                    Some(Peer::V4([addr[12], addr[13], addr[14], addr[15]]))
                } else {
                    Some(Peer::V6(addr))
                }
            }
            _ => None,
        }
    }

    #[inline(always)]
    fn allowed(self) -> bool {
        match self {
            Peer::V4(addr) => KMS_ALLOWED_V4.get(&Key::new(32, addr)).is_some(),
            Peer::V6(addr) => KMS_ALLOWED_V6.get(&Key::new(128, addr)).is_some(),
        }
    }

    /// The key this peer is counted (and blocked) under.
    #[inline(always)]
    fn key(self, config: &Config) -> SourceKey {
        SourceKey {
            addr: match self {
                Peer::V4(addr) => mapped_v4(addr),
                Peer::V6(addr) => mask_v6(addr, config.ipv6_prefix),
            },
        }
    }
}

#[inline(always)]
fn on_established(ctx: &SockOpsContext) {
    let Some(config) = config() else { return };
    if !config.is_service_port(ctx.local_port() as u16) {
        return;
    }
    let Some(peer) = Peer::of(ctx) else { return };
    if peer.allowed() {
        return;
    }
    let key = peer.key(config);
    let Some(state) = source_state(&key) else {
        count(Stat::SourcesFull);
        return;
    };
    // Without the close callback the count could never go down again, so a
    // socket that cannot get one is not counted at all.
    if ctx
        .set_cb_flags((ctx.cb_flags() | BPF_SOCK_OPS_STATE_CB_FLAG) as i32)
        .is_err()
    {
        return;
    }
    count(Stat::Established);

    let now = unsafe { bpf_ktime_get_ns() };
    let locked = lock(state);
    // SAFETY: `state` points into the map value; the lock (or, if it could
    // not be had, the rarity of a second CPU here) keeps the update whole.
    let (conns, rate_count) = unsafe {
        let s = &mut *state;
        s.conns = s.conns.saturating_add(1);
        s.total = s.total.wrapping_add(1);
        s.rate_count = add_threshold(s.rate_count, s.rate_last_ns, now, config.rate_seconds);
        s.rate_last_ns = now;
        (s.conns, s.rate_count)
    };
    if locked {
        unlock(state);
    }

    let reason = if config.max_src_conn != 0 && conns > config.max_src_conn {
        Reason::MaxSrcConn
    } else if config.rate_conns != 0 && rate_count > config.rate_conns as u64 * THRESHOLD_MULT {
        Reason::MaxSrcConnRate
    } else {
        return;
    };
    overload(config, key, reason, conns, rate_count);
}

#[inline(always)]
fn on_closed(ctx: &SockOpsContext) {
    // Only sockets counted by `on_established` asked for this callback.
    let Some(config) = config() else { return };
    let Some(peer) = Peer::of(ctx) else { return };
    let key = peer.key(config);
    let Some(state) = KMS_SOURCES.get_ptr_mut(&key) else {
        return;
    };
    count(Stat::Closed);
    let locked = lock(state);
    // SAFETY: as in `on_established`.
    unsafe {
        (*state).conns = (*state).conns.saturating_sub(1);
    }
    if locked {
        unlock(state);
    }
}

/// The state of `key`, created empty if the source is new.
#[inline(always)]
fn source_state(key: &SourceKey) -> Option<*mut SourceState> {
    if let Some(state) = KMS_SOURCES.get_ptr_mut(key) {
        return Some(state);
    }
    // Another CPU may create it first; either way it exists afterwards.
    let _ = KMS_SOURCES.insert(key, &SourceState::default(), BPF_NOEXIST as u64);
    KMS_SOURCES.get_ptr_mut(key)
}

/// pf's `pf_add_threshold`, in nanoseconds: the count decays linearly over
/// the window, is reset by a gap of a whole window, and gains one connection.
#[inline(always)]
fn add_threshold(count: u64, last_ns: u64, now_ns: u64, window_seconds: u32) -> u64 {
    let window_ns = window_seconds as u64 * 1_000_000_000;
    let diff = now_ns.saturating_sub(last_ns);
    let decayed = if window_ns == 0 || diff >= window_ns {
        0
    } else {
        // Both factors in 1.024 µs units: with the count capped at u32::MAX
        // and windows of at most an hour the product fits in 64 bits.
        count - count * (diff >> 10) / ((window_ns >> 10) | 1)
    };
    (decayed + THRESHOLD_MULT).min(u32::MAX as u64)
}

/// Records a trip: inserts the source into the block table unless it is
/// already there, and sends the daemon one event.
#[inline(always)]
fn overload(config: &Config, key: SourceKey, reason: Reason, conns: u32, rate_count: u64) {
    let tai_ns = unsafe { bpf_ktime_get_tai_ns() };
    let entry = Blocked {
        added_tai_ns: tai_ns,
        packets: 0,
        bytes: 0,
        reason: reason as u32,
        conns,
        rate_count,
    };
    let (inserted, prefix_len) = if is_mapped_v4(&key.addr) {
        let addr = [key.addr[12], key.addr[13], key.addr[14], key.addr[15]];
        let result = KMS_BLOCKED_V4.insert(&Key::new(32, addr), &entry, BPF_NOEXIST as u64);
        (result, 128)
    } else {
        let prefix = config.ipv6_prefix as u32;
        let result = KMS_BLOCKED_V6.insert(&Key::new(prefix, key.addr), &entry, BPF_NOEXIST as u64);
        (result, prefix)
    };
    match inserted {
        Ok(()) => {}
        // Already blocked: connections still in flight when it tripped.
        Err(EEXIST) => return,
        Err(_) => {
            count(Stat::BlockedFull);
            return;
        }
    }
    count(if config.monitor != 0 {
        Stat::WouldOverload
    } else if reason == Reason::MaxSrcConn {
        Stat::OverloadMaxSrcConn
    } else {
        Stat::OverloadMaxSrcConnRate
    });
    let event = OverloadEvent {
        addr: key.addr,
        prefix_len,
        reason: reason as u32,
        conns,
        monitor: config.monitor as u32,
        rate_count,
        tai_ns,
    };
    if KMS_EVENTS.output(&event, 0).is_err() {
        count(Stat::EventsLost);
    }
}

#[inline(always)]
fn lock(state: *mut SourceState) -> bool {
    let mut i = 0;
    while i < LOCK_SPINS {
        // SAFETY: `state` points into a map value that outlives this run.
        if unsafe { atomic::compare_exchange(&raw mut (*state).lock, 0, 1) } {
            return true;
        }
        i += 1;
    }
    false
}

#[inline(always)]
fn unlock(state: *mut SourceState) {
    // SAFETY: as in `lock`.
    unsafe { atomic::exchange(&raw mut (*state).lock, 0) };
}
