//! The edge enforcer's contract: its live configuration, the per-source
//! connection state, the block (overload) and allow tables, and the overload
//! event the kernel sends the daemon.
//!
//! Addresses are kept in network byte order. IPv4 sources are tracked as
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) in [`SourceKey`] so one map
//! serves both families; the LPM tries keep one key width per family so a v4
//! lookup walks 32 bits, not 128.

/// Most service ports the enforcer can watch.
pub const MAX_PORTS: usize = 8;

/// Capacity of the per-source connection table (an LRU: the least recently
/// seen source is forgotten first).
pub const SOURCES_CAPACITY: u32 = 65_536;
/// Capacity of each block table (v4 and v6).
pub const BLOCKED_CAPACITY: u32 = 65_536;
/// Capacity of each allow table (v4 and v6).
pub const ALLOWED_CAPACITY: u32 = 4_096;
/// Size of the overload event ring buffer in bytes (a power of two pages).
pub const EVENTS_BYTES: u32 = 256 * 1024;

/// `Config::magic` once a daemon has written the configuration; an all-zero
/// map (freshly created) means "not configured yet".
pub const CONFIG_MAGIC: u32 = 0x4b4d_5345; // "KMSE"

/// What XDP drops from a blocked source.
pub mod drop_scope {
    /// Every packet, like pf's `block drop in quick from <virusprot>` on the WAN.
    pub const ALL: u8 = 0;
    /// Only TCP to a service port (non-first fragments, which carry no port, pass).
    pub const SERVICE: u8 = 1;
}

/// Which connections are killed when a source trips a limit.
pub mod flush_scope {
    /// Every TCP connection from the source, like pf's `flush global`.
    pub const GLOBAL: u8 = 0;
    /// Only connections to a service port, like pf's `flush`.
    pub const SERVICE: u8 = 1;
}

/// The live configuration, one element in the `KMS_CONFIG` array. The
/// daemon writes it; `kmsd limits set` changes it while everything runs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// [`CONFIG_MAGIC`] when written by a daemon.
    pub magic: u32,
    /// pf `max-src-conn`: most simultaneous established connections per
    /// source; 0 turns the check off.
    pub max_src_conn: u32,
    /// pf `max-src-conn-rate N/S`: N; 0 turns the check off.
    pub rate_conns: u32,
    /// pf `max-src-conn-rate N/S`: S, in seconds.
    pub rate_seconds: u32,
    /// Block entries older than this many seconds are expired by the daemon;
    /// 0 keeps them until removed.
    pub lifetime_seconds: u32,
    /// TCP ports whose connections are counted; 0 marks an unused slot.
    pub ports: [u16; MAX_PORTS],
    /// One of [`drop_scope`].
    pub drop_scope: u8,
    /// One of [`flush_scope`].
    pub flush_scope: u8,
    /// Non-zero: count would-be drops and overloads, drop and close nothing.
    pub monitor: u8,
    /// IPv6 sources are counted and blocked per prefix of this length (1-128).
    pub ipv6_prefix: u8,
}

impl Config {
    pub fn is_service_port(&self, port: u16) -> bool {
        let mut i = 0;
        while i < MAX_PORTS {
            if self.ports[i] != 0 && self.ports[i] == port {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// Key of the per-source connection table: the source address (IPv4 mapped
/// into IPv6), already masked to the configured IPv6 prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SourceKey {
    pub addr: [u8; 16],
}

/// What the kernel knows about one source, kept by the sock_ops program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SourceState {
    /// A spin lock taken with compare-and-swap around the rate update, so two
    /// CPUs accepting from one source at once both count.
    pub lock: u32,
    /// Established connections from this source open now.
    pub conns: u32,
    /// pf's rate estimator: connections in the window, scaled by 1000.
    pub rate_count: u64,
    /// Monotonic time of the last counted connection, in nanoseconds.
    pub rate_last_ns: u64,
    /// Established connections counted since the entry was created.
    pub total: u64,
}

/// Why a source is in the block table.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// It held more than `max-src-conn` established connections.
    MaxSrcConn = 1,
    /// It opened connections faster than `max-src-conn-rate`.
    MaxSrcConnRate = 2,
    /// An operator added it.
    Manual = 3,
}

impl Reason {
    pub const ALL: [Reason; 3] = [Reason::MaxSrcConn, Reason::MaxSrcConnRate, Reason::Manual];

    pub const fn from_u32(value: u32) -> Option<Reason> {
        match value {
            1 => Some(Reason::MaxSrcConn),
            2 => Some(Reason::MaxSrcConnRate),
            3 => Some(Reason::Manual),
            _ => None,
        }
    }

    /// Stable kebab-case name, as pf.conf spells the limits.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::MaxSrcConn => "max-src-conn",
            Reason::MaxSrcConnRate => "max-src-conn-rate",
            Reason::Manual => "manual",
        }
    }
}

/// A block table entry. The XDP program adds to the counters with atomic
/// instructions; everything else is written once when the entry is created.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blocked {
    /// When the source was added, CLOCK_TAI nanoseconds (wall-clock based, so
    /// it means the same after a reboot).
    pub added_tai_ns: u64,
    /// Packets dropped (or, in monitor mode, that would have been) since.
    pub packets: u64,
    /// Bytes of those packets.
    pub bytes: u64,
    /// A [`Reason`] as `u32`.
    pub reason: u32,
    /// Established connections from the source when it tripped.
    pub conns: u32,
    /// The rate estimator (×1000) when it tripped.
    pub rate_count: u64,
}

/// Sent on the `KMS_EVENTS` ring buffer each time a source enters the block
/// table (never for a source already in it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverloadEvent {
    /// The blocked address, IPv4 mapped into IPv6, masked to `prefix_len`.
    pub addr: [u8; 16],
    /// Prefix length in IPv6 terms (128 for an IPv4 source).
    pub prefix_len: u32,
    /// A [`Reason`] as `u32`.
    pub reason: u32,
    /// Established connections at the trip.
    pub conns: u32,
    /// Non-zero when the configuration was in monitor mode: nothing is dropped.
    pub monitor: u32,
    /// The rate estimator (×1000) at the trip.
    pub rate_count: u64,
    /// CLOCK_TAI nanoseconds of the trip.
    pub tai_ns: u64,
}

/// The IPv4-mapped IPv6 form of an IPv4 address given in network order.
pub const fn mapped_v4(octets: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, octets[0], octets[1], octets[2], octets[3],
    ]
}

/// True for an IPv4-mapped IPv6 address.
pub const fn is_mapped_v4(addr: &[u8; 16]) -> bool {
    let mut i = 0;
    while i < 10 {
        if addr[i] != 0 {
            return false;
        }
        i += 1;
    }
    addr[10] == 0xff && addr[11] == 0xff
}

/// `addr` with every bit after the first `prefix_len` cleared.
#[inline(always)]
pub fn mask_v6(addr: [u8; 16], prefix_len: u8) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        let bits = (prefix_len as i32 - (i as i32) * 8).clamp(0, 8) as u32;
        let mask = if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
        out[i] = addr[i] & mask;
        i += 1;
    }
    out
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are #[repr(C)] plain data with no padding holes
    // that matter to the kernel and every bit pattern is valid.
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for SourceKey {}
    unsafe impl aya::Pod for SourceState {}
    unsafe impl aya::Pod for Blocked {}
    unsafe impl aya::Pod for OverloadEvent {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_what_the_kernel_side_expects() {
        assert_eq!(core::mem::size_of::<Config>(), 40);
        assert_eq!(core::mem::size_of::<SourceState>(), 32);
        assert_eq!(core::mem::size_of::<Blocked>(), 40);
        assert_eq!(core::mem::size_of::<OverloadEvent>(), 48);
    }

    #[test]
    fn masking_keeps_exactly_the_prefix() {
        let addr = [0xffu8; 16];
        assert_eq!(mask_v6(addr, 128), addr);
        assert_eq!(mask_v6(addr, 0), [0; 16]);
        let m = mask_v6(addr, 61);
        assert_eq!(&m[..7], &[0xff; 7]);
        assert_eq!(m[7], 0b1111_1000);
        assert_eq!(&m[8..], &[0; 8]);
    }

    #[test]
    fn mapped_v4_round_trips() {
        let m = mapped_v4([198, 18, 0, 2]);
        assert!(is_mapped_v4(&m));
        assert_eq!(&m[12..], &[198, 18, 0, 2]);
        assert!(!is_mapped_v4(&[
            0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
        ]));
    }

    #[test]
    fn reasons_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_u32(r as u32), Some(r));
        }
        assert_eq!(Reason::from_u32(0), None);
    }
}
