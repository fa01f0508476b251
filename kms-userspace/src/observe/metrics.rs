//! The daemon's own metrics (activations, requests, connections, probes,
//! notifications, build info), registered in one Prometheus registry that
//! `/metrics` serves together with the kernel's counters (see `bpf.rs`).

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::edge::BPF_OBJECT_SHA256;

pub struct Metrics {
    pub registry: Registry,
    activations: IntCounterVec,
    requests: IntCounterVec,
    request_duration: Histogram,
    connections_open: IntGauge,
    connections: IntCounter,
    probes: IntCounterVec,
    notifications: IntCounterVec,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let activations = counter_vec(
            &registry,
            "kms_activations_total",
            "Decoded activation requests by product and status (ok or the HRESULT name).",
            &["product", "status"],
        );
        let requests = counter_vec(
            &registry,
            "kms_requests_total",
            "KMS requests by protocol version (unknown if undecodable) and result.",
            &["protocol", "result"],
        );
        let request_duration = Histogram::with_opts(
            HistogramOpts::new(
                "kms_request_duration_seconds",
                "Time from a complete request PDU to its response, in seconds.",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1,
            ]),
        )
        .expect("valid histogram");
        registry
            .register(Box::new(request_duration.clone()))
            .expect("registered once");
        let connections_open =
            IntGauge::new("kms_connections_open", "KMS connections open now.").expect("valid");
        registry
            .register(Box::new(connections_open.clone()))
            .expect("registered once");
        let connections =
            IntCounter::new("kms_connections_total", "KMS connections accepted.").expect("valid");
        registry
            .register(Box::new(connections.clone()))
            .expect("registered once");
        let probes = counter_vec(
            &registry,
            "kms_connection_probes_total",
            "Connections closed without a single RPC request (uptime checks, scans), by source class.",
            &["source"],
        );
        let notifications = counter_vec(
            &registry,
            "kms_notifications_total",
            "Webhook notifications by result: sent, failed, dropped (queue full), deduplicated.",
            &["result"],
        );
        // Zero series exist from the start, so rate() and alerts see them.
        for result in ["sent", "failed", "dropped", "deduplicated"] {
            notifications.with_label_values(&[result]);
        }
        let build = IntGaugeVec::new(
            Opts::new(
                "kms_build_info",
                "The running kmsd: version and BPF object SHA-256.",
            ),
            &["version", "bpf_object_sha"],
        )
        .expect("valid");
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), BPF_OBJECT_SHA256])
            .set(1);
        registry.register(Box::new(build)).expect("registered once");
        Metrics {
            registry,
            activations,
            requests,
            request_duration,
            connections_open,
            connections,
            probes,
            notifications,
        }
    }

    /// One decoded activation. `product` must come from the catalogue (or be
    /// "unknown"): label values never come from client-chosen strings.
    pub fn activation(&self, product: &str, status: &str) {
        self.activations.with_label_values(&[product, status]).inc();
    }

    pub fn request(&self, protocol: &str, result: &str, seconds: f64) {
        self.requests.with_label_values(&[protocol, result]).inc();
        self.request_duration.observe(seconds);
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
        self.connections_open.inc();
    }

    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    pub fn probe(&self, class: &str) {
        self.probes.with_label_values(&[class]).inc();
    }

    pub fn notification(&self, result: &str) {
        self.notifications.with_label_values(&[result]).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder as _, TextEncoder};

    #[test]
    fn text_output_has_every_family() {
        let m = Metrics::new();
        m.activation("Windows 10 Professional", "ok");
        m.request("6", "ok", 0.0002);
        m.connection_opened();
        m.probe("external");
        m.notification("sent");
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        for name in [
            "kms_activations_total{product=\"Windows 10 Professional\",status=\"ok\"} 1",
            "kms_requests_total{protocol=\"6\",result=\"ok\"} 1",
            "kms_request_duration_seconds_count 1",
            "kms_connections_open 1",
            "kms_connections_total 1",
            "kms_connection_probes_total{source=\"external\"} 1",
            "kms_notifications_total{result=\"sent\"} 1",
            "kms_build_info{",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
    }
}
