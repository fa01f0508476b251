//! Per-CPU counters kept by the BPF programs.

/// Index of a counter in the per-CPU `KMS_STATS` array.
///
/// The verdict counters (`Passed`, `Dropped`) add up to every packet the XDP
/// program saw, and the `Dropped*` reasons add up to `Dropped`; the class
/// counters overlap with the verdicts. The connection counters come from the
/// sock_ops program.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stat {
    /// Packets the program returned `XDP_PASS` for.
    Passed = 0,
    /// Packets the program returned `XDP_DROP` for.
    Dropped = 1,
    /// Frames that carry neither IPv4 nor IPv6 (ARP, LLDP, ...).
    NotIp = 2,
    /// IP packets whose headers are cut short or inconsistent; passed, so the
    /// kernel's own checks decide about them.
    Malformed = 3,
    /// IPv4 packets.
    Ipv4 = 4,
    /// IPv6 packets.
    Ipv6 = 5,
    /// TCP segments with SYN set and ACK clear: connection attempts.
    TcpSyn = 6,
    /// Packets from an allow-listed source (never counted or blocked).
    AllowListed = 7,
    /// Drops of packets from sources blocked for `max-src-conn`.
    DroppedMaxSrcConn = 8,
    /// Drops of packets from sources blocked for `max-src-conn-rate`.
    DroppedMaxSrcConnRate = 9,
    /// Drops of packets from sources an operator blocked.
    DroppedManual = 10,
    /// Monitor mode: packets that would have been dropped.
    WouldDrop = 11,
    /// Established connections to a service port that were counted.
    Established = 12,
    /// Counted connections that closed.
    Closed = 13,
    /// Sources that tripped `max-src-conn`.
    OverloadMaxSrcConn = 14,
    /// Sources that tripped `max-src-conn-rate`.
    OverloadMaxSrcConnRate = 15,
    /// Monitor mode: trips that would have blocked a source.
    WouldOverload = 16,
    /// Overload events lost because the ring buffer was full.
    EventsLost = 17,
    /// Connections not counted because the source table was full.
    SourcesFull = 18,
    /// Trips not recorded because the block table was full.
    BlockedFull = 19,
    /// Block entries removed by expiry (written by the daemon and by
    /// `kmsd blocked expire`, not by a BPF program).
    Expired = 20,
}

impl Stat {
    /// Number of slots in the counter array; room is left for counters added
    /// later without changing the map's size.
    pub const SLOTS: u32 = 32;

    /// Every counter, in index order.
    pub const ALL: [Stat; 21] = [
        Stat::Passed,
        Stat::Dropped,
        Stat::NotIp,
        Stat::Malformed,
        Stat::Ipv4,
        Stat::Ipv6,
        Stat::TcpSyn,
        Stat::AllowListed,
        Stat::DroppedMaxSrcConn,
        Stat::DroppedMaxSrcConnRate,
        Stat::DroppedManual,
        Stat::WouldDrop,
        Stat::Established,
        Stat::Closed,
        Stat::OverloadMaxSrcConn,
        Stat::OverloadMaxSrcConnRate,
        Stat::WouldOverload,
        Stat::EventsLost,
        Stat::SourcesFull,
        Stat::BlockedFull,
        Stat::Expired,
    ];

    /// Stable snake_case name, used in logs, metrics and `kmsd status`.
    pub const fn name(self) -> &'static str {
        match self {
            Stat::Passed => "passed",
            Stat::Dropped => "dropped",
            Stat::NotIp => "not_ip",
            Stat::Malformed => "malformed",
            Stat::Ipv4 => "ipv4",
            Stat::Ipv6 => "ipv6",
            Stat::TcpSyn => "tcp_syn",
            Stat::AllowListed => "allow_listed",
            Stat::DroppedMaxSrcConn => "dropped_max_src_conn",
            Stat::DroppedMaxSrcConnRate => "dropped_max_src_conn_rate",
            Stat::DroppedManual => "dropped_manual",
            Stat::WouldDrop => "would_drop",
            Stat::Established => "established",
            Stat::Closed => "closed",
            Stat::OverloadMaxSrcConn => "overload_max_src_conn",
            Stat::OverloadMaxSrcConnRate => "overload_max_src_conn_rate",
            Stat::WouldOverload => "would_overload",
            Stat::EventsLost => "events_lost",
            Stat::SourcesFull => "sources_full",
            Stat::BlockedFull => "blocked_full",
            Stat::Expired => "expired",
        }
    }

    pub const fn index(self) -> u32 {
        self as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_counter_once_in_index_order() {
        for (i, stat) in Stat::ALL.iter().enumerate() {
            assert_eq!(stat.index() as usize, i);
        }
        assert!(Stat::ALL.len() as u32 <= Stat::SLOTS);
    }
}
