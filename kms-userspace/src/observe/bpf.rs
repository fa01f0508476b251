//! The kernel's state as Prometheus metrics, read from the pinned maps at
//! each scrape. Counters are exported as the maps hold them, so they keep
//! counting across daemon restarts (the maps outlive the daemon).

use std::sync::Mutex;

use kms_common::{
    Stat,
    enforce::{ALLOWED_CAPACITY, BLOCKED_CAPACITY, Reason, SOURCES_CAPACITY},
};
use prometheus::{
    IntCounter, IntCounterVec, IntGaugeVec, Opts,
    core::{Collector, Desc},
    proto::MetricFamily,
};
use tracing::warn;

use crate::edge::{stats::StatsReader, tables::Tables};

/// Where each kernel counter goes: metric name and label value (if any).
fn destination(stat: Stat) -> (&'static str, Option<&'static str>) {
    match stat {
        Stat::Passed => ("kms_xdp_packets_total", Some("pass")),
        Stat::Dropped => ("kms_xdp_packets_total", Some("drop")),
        Stat::DroppedMaxSrcConn => ("kms_xdp_dropped_packets_total", Some("max-src-conn")),
        Stat::DroppedMaxSrcConnRate => ("kms_xdp_dropped_packets_total", Some("max-src-conn-rate")),
        Stat::DroppedManual => ("kms_xdp_dropped_packets_total", Some("manual")),
        Stat::NotIp => ("kms_xdp_packet_classes_total", Some("not_ip")),
        Stat::Malformed => ("kms_xdp_packet_classes_total", Some("malformed")),
        Stat::Ipv4 => ("kms_xdp_packet_classes_total", Some("ipv4")),
        Stat::Ipv6 => ("kms_xdp_packet_classes_total", Some("ipv6")),
        Stat::TcpSyn => ("kms_xdp_packet_classes_total", Some("tcp_syn")),
        Stat::AllowListed => ("kms_xdp_packet_classes_total", Some("allow_listed")),
        Stat::WouldDrop => ("kms_xdp_would_drop_packets_total", None),
        Stat::Established => ("kms_counted_connections_total", Some("established")),
        Stat::Closed => ("kms_counted_connections_total", Some("closed")),
        Stat::OverloadMaxSrcConn => ("kms_overloads_total", Some("max-src-conn")),
        Stat::OverloadMaxSrcConnRate => ("kms_overloads_total", Some("max-src-conn-rate")),
        Stat::WouldOverload => ("kms_would_overloads_total", None),
        Stat::Expired => ("kms_block_expiries_total", None),
        Stat::EventsLost => ("kms_bpf_errors_total", Some("events_lost")),
        Stat::SourcesFull => ("kms_bpf_errors_total", Some("sources_full")),
        Stat::BlockedFull => ("kms_bpf_errors_total", Some("blocked_full")),
    }
}

struct Families {
    labelled: Vec<(IntCounterVec, &'static str)>,
    single: Vec<IntCounter>,
    blocked: IntGaugeVec,
    entries: IntGaugeVec,
    capacity: IntGaugeVec,
    top: IntGaugeVec,
}

pub struct BpfCollector {
    maps: Mutex<(StatsReader, Tables)>,
    families: Families,
    descs: Vec<Desc>,
    top_n: usize,
}

fn help(name: &str) -> &'static str {
    match name {
        "kms_xdp_packets_total" => "Packets seen by the XDP program, by verdict.",
        "kms_xdp_dropped_packets_total" => {
            "Packets dropped at XDP, by the reason their source is blocked."
        }
        "kms_xdp_packet_classes_total" => {
            "Packets seen by the XDP program, by class (classes overlap)."
        }
        "kms_xdp_would_drop_packets_total" => "Monitor mode: packets that would have been dropped.",
        "kms_counted_connections_total" => {
            "Established connections to a service port counted by the kernel, and their closes."
        }
        "kms_overloads_total" => "Sources that tripped a limit and were blocked, by reason.",
        "kms_would_overloads_total" => "Monitor mode: trips that would have blocked a source.",
        "kms_block_expiries_total" => "Block entries removed by expiry.",
        _ => "Kernel-side failures: overload events lost, tables full.",
    }
}

impl BpfCollector {
    pub fn new(stats: StatsReader, tables: Tables, top_n: usize) -> Self {
        let mut labelled: Vec<(IntCounterVec, &'static str)> = Vec::new();
        let mut single: Vec<IntCounter> = Vec::new();
        for stat in Stat::ALL {
            let (name, label) = destination(stat);
            match label {
                Some(_) if !labelled.iter().any(|(_, n)| *n == name) => {
                    let label_name = match name {
                        "kms_xdp_packets_total" => "verdict",
                        "kms_xdp_packet_classes_total" => "class",
                        "kms_counted_connections_total" => "event",
                        "kms_bpf_errors_total" => "kind",
                        _ => "reason",
                    };
                    let vec = IntCounterVec::new(Opts::new(name, help(name)), &[label_name])
                        .expect("valid metric");
                    labelled.push((vec, name));
                }
                None => single.push(IntCounter::new(name, help(name)).expect("valid metric")),
                _ => {}
            }
        }
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let families = Families {
            labelled,
            single,
            blocked: gauge(
                "kms_blocked_sources",
                "Entries in the block table, by reason.",
                &["reason"],
            ),
            entries: gauge(
                "kms_bpf_map_entries",
                "Entries in each enforcer map.",
                &["map"],
            ),
            capacity: gauge(
                "kms_bpf_map_capacity",
                "Capacity of each enforcer map.",
                &["map"],
            ),
            top: gauge(
                "kms_blocked_source_dropped_packets",
                "Packets dropped per blocked source, for the sources with the most drops.",
                &["source", "reason"],
            ),
        };
        let mut descs = Vec::new();
        for (vec, _) in &families.labelled {
            descs.extend(vec.desc().into_iter().cloned());
        }
        for counter in &families.single {
            descs.extend(counter.desc().into_iter().cloned());
        }
        for g in [
            &families.blocked,
            &families.entries,
            &families.capacity,
            &families.top,
        ] {
            descs.extend(g.desc().into_iter().cloned());
        }
        BpfCollector {
            maps: Mutex::new((stats, tables)),
            families,
            descs,
            top_n,
        }
    }

    fn refresh(&self) -> anyhow::Result<()> {
        let maps = self.maps.lock().unwrap_or_else(|e| e.into_inner());
        let (stats, tables) = &*maps;
        let f = &self.families;
        for (vec, _) in &f.labelled {
            vec.reset();
        }
        for (stat, value) in stats.read()? {
            let (name, label) = destination(stat);
            match label {
                Some(label) => {
                    if let Some((vec, _)) = f.labelled.iter().find(|(_, n)| *n == name) {
                        vec.with_label_values(&[label]).inc_by(value);
                    }
                }
                None => {
                    if let Some(counter) = f.single.iter().find(|c| c.desc()[0].fq_name == name) {
                        counter.reset();
                        counter.inc_by(value);
                    }
                }
            }
        }

        let blocked = tables.blocked()?;
        f.blocked.reset();
        for reason in Reason::ALL {
            f.blocked.with_label_values(&[reason.name()]).set(0);
        }
        for (_, entry) in &blocked {
            let reason = Reason::from_u32(entry.reason).map_or("unknown", Reason::name);
            f.blocked.with_label_values(&[reason]).inc();
        }
        let allowed = tables.allowed()?;
        let v4 = |n: &ipnet::IpNet| n.addr().is_ipv4();
        let fill = [
            (
                "blocked_v4",
                blocked.iter().filter(|(n, _)| v4(n)).count(),
                BLOCKED_CAPACITY,
            ),
            (
                "blocked_v6",
                blocked.iter().filter(|(n, _)| !v4(n)).count(),
                BLOCKED_CAPACITY,
            ),
            (
                "allowed_v4",
                allowed.iter().filter(|n| v4(n)).count(),
                ALLOWED_CAPACITY,
            ),
            (
                "allowed_v6",
                allowed.iter().filter(|n| !v4(n)).count(),
                ALLOWED_CAPACITY,
            ),
            ("sources", tables.sources()?.len(), SOURCES_CAPACITY),
        ];
        for (map, used, capacity) in fill {
            f.entries.with_label_values(&[map]).set(used as i64);
            f.capacity
                .with_label_values(&[map])
                .set(i64::from(capacity));
        }

        // Bounded cardinality: only the top N sources by packets dropped.
        let mut ranked: Vec<_> = blocked.iter().filter(|(_, e)| e.packets > 0).collect();
        ranked.sort_by_key(|(_, e)| std::cmp::Reverse(e.packets));
        f.top.reset();
        for (net, entry) in ranked.into_iter().take(self.top_n) {
            let reason = Reason::from_u32(entry.reason).map_or("unknown", Reason::name);
            f.top
                .with_label_values(&[&net.to_string(), reason])
                .set(entry.packets as i64);
        }
        Ok(())
    }
}

impl Collector for BpfCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Err(e) = self.refresh() {
            // A scrape without kernel metrics beats a failed scrape; the
            // gap shows in the graphs and the log says why.
            warn!(error = %format!("{e:#}"), "reading the BPF maps for /metrics failed");
            return Vec::new();
        }
        let f = &self.families;
        let mut out = Vec::new();
        for (vec, _) in &f.labelled {
            out.extend(vec.collect());
        }
        for counter in &f.single {
            out.extend(counter.collect());
        }
        for g in [&f.blocked, &f.entries, &f.capacity, &f.top] {
            out.extend(g.collect());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_a_metric_and_labelled_families_agree_on_labels() {
        for stat in Stat::ALL {
            let (name, label) = destination(stat);
            assert!(
                name.starts_with("kms_") && name.ends_with("_total"),
                "{name}"
            );
            // A family is either labelled or not, never both.
            for other in Stat::ALL {
                let (other_name, other_label) = destination(other);
                if other_name == name {
                    assert_eq!(label.is_some(), other_label.is_some(), "{name}");
                }
            }
        }
    }
}
