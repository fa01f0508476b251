//! Per-CPU packet counters kept by the XDP program.

/// Index of a counter in the per-CPU `KMS_STATS` array.
///
/// Verdict counters (`Passed`, `Dropped`) add up to every packet the program
/// saw; the others classify packets and overlap with the verdicts.
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
}

impl Stat {
    /// Number of slots in the counter array; room is left for counters added
    /// later without changing the map's size.
    pub const SLOTS: u32 = 32;

    /// Every counter, in index order.
    pub const ALL: [Stat; 7] = [
        Stat::Passed,
        Stat::Dropped,
        Stat::NotIp,
        Stat::Malformed,
        Stat::Ipv4,
        Stat::Ipv6,
        Stat::TcpSyn,
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
