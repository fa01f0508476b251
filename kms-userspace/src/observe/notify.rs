//! The webhook notifier (Slack incoming-webhook JSON): one post per
//! successful activation, deduplicated per (source address, product) within a
//! window that survives restarts, and one per new block. Delivery runs on its
//! own task behind a bounded queue with timeouts and retries; when the queue
//! is full the post is dropped and counted, so an activation is never delayed
//! or failed by the notifier. The URL is a secret: never logged or printed.

use std::{
    collections::HashMap,
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::metrics::Metrics;
use crate::shutdown::Shutdown;

const QUEUE: usize = 256;
const ATTEMPTS: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Dedup entries kept at most; beyond that the oldest go first.
const MAX_SEEN: usize = 100_000;

/// A webhook URL; its Debug and Display never show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("http://") || s.starts_with("https://") {
            Ok(Secret(s.to_string()))
        } else {
            Err("the webhook URL must start with http:// or https://".into())
        }
    }
}

#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub url: Secret,
    pub window: Duration,
    pub state_file: Option<PathBuf>,
}

#[derive(Default, Serialize, Deserialize)]
struct DedupFile {
    /// "source|product" → Unix seconds of the last post.
    seen: HashMap<String, u64>,
}

pub struct Notifier {
    queue: mpsc::Sender<String>,
    seen: Mutex<DedupFile>,
    dirty: std::sync::atomic::AtomicBool,
    window: Duration,
    metrics: Arc<Metrics>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Slack's three control characters, escaped; client-chosen text is cut short.
fn escape(text: &str) -> String {
    text.chars()
        .take(64)
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn load(path: &Path, window: Duration) -> DedupFile {
    let mut file: DedupFile = std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let horizon = now_secs().saturating_sub(window.as_secs());
    file.seen.retain(|_, at| *at > horizon);
    file
}

impl Notifier {
    /// The notifier and its delivery task (to be spawned).
    pub fn start(
        settings: NotifySettings,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> (Arc<Notifier>, impl std::future::Future<Output = ()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let seen = settings
            .state_file
            .as_deref()
            .map(|p| load(p, settings.window))
            .unwrap_or_default();
        let notifier = Arc::new(Notifier {
            queue: tx,
            seen: Mutex::new(seen),
            dirty: false.into(),
            window: settings.window,
            metrics,
        });
        let task = deliver(notifier.clone(), settings, rx, shutdown);
        (notifier, task)
    }

    /// A successful activation; posted unless this source and product were
    /// posted within the window.
    pub fn activation(&self, source: IpAddr, product: &str, protocol: &str, workstation: &str) {
        let key = format!("{source}|{product}");
        let now = now_secs();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(at) = seen.seen.get(&key)
                && now.saturating_sub(*at) < self.window.as_secs()
            {
                self.metrics.notification("deduplicated");
                return;
            }
            if seen.seen.len() >= MAX_SEEN
                && let Some(oldest) = seen
                    .seen
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| k.clone())
            {
                seen.seen.remove(&oldest);
            }
            seen.seen.insert(key, now);
        }
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
        self.enqueue(format!(
            "KMS activation: {} from {source} (protocol v{protocol}, workstation {})",
            escape(product),
            escape(workstation)
        ));
    }

    /// A source entered the block table.
    pub fn block(&self, source: IpNet, reason: &str) {
        self.enqueue(format!("KMS edge blocked {source}: {reason}"));
    }

    fn enqueue(&self, text: String) {
        if self.queue.try_send(text).is_err() {
            self.metrics.notification("dropped");
        }
    }

    fn save(&self, path: &Path) {
        if !self.dirty.swap(false, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let body = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let horizon = now_secs().saturating_sub(self.window.as_secs());
            seen.seen.retain(|_, at| *at > horizon);
            serde_json::to_vec(&*seen)
        };
        let result = body
            .map_err(anyhow::Error::from)
            .and_then(|b| crate::edge::state::write_atomically(path, &b));
        if let Err(e) = result {
            warn!(error = %format!("{e:#}"), file = %path.display(), "saving the notification dedup state failed");
        }
    }
}

async fn deliver(
    notifier: Arc<Notifier>,
    settings: NotifySettings,
    mut queue: mpsc::Receiver<String>,
    mut shutdown: Shutdown,
) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            return warn!(error = %e, "cannot build the webhook client; notifications are off");
        }
    };
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = ticker.tick() => {
                if let Some(path) = &settings.state_file {
                    notifier.save(path);
                }
            }
            Some(text) = queue.recv() => {
                let result = post(&client, &settings.url, &text, &mut shutdown).await;
                debug!(result, "notification");
                notifier.metrics.notification(result);
            }
        }
    }
    if let Some(path) = &settings.state_file {
        notifier.save(path);
    }
}

/// Posts with retries and backoff; "sent" or "failed".
async fn post(
    client: &reqwest::Client,
    url: &Secret,
    text: &str,
    shutdown: &mut Shutdown,
) -> &'static str {
    let body = serde_json::json!({ "text": text });
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        match client.post(&url.0).json(&body).send().await {
            Ok(response) if response.status().is_success() => return "sent",
            // Neither error form includes the URL: reqwest's errors would.
            Ok(response) => {
                warn!(status = %response.status(), attempt, "webhook refused the notification")
            }
            Err(e) => warn!(
                timeout = e.is_timeout(),
                connect = e.is_connect(),
                attempt,
                "webhook unreachable"
            ),
        }
        if attempt < ATTEMPTS {
            tokio::select! {
                _ = shutdown.wait() => return "failed",
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff *= 2;
        }
    }
    "failed"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s: Secret = "https://hooks.example.invalid/T000/B000/XXXX"
            .parse()
            .unwrap();
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert!("ftp://x".parse::<Secret>().is_err());
    }

    #[test]
    fn client_text_is_escaped_and_cut() {
        assert_eq!(escape("<a&b>"), "&lt;a&amp;b&gt;");
        assert_eq!(escape(&"x".repeat(500)).len(), 64);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let metrics = Arc::new(Metrics::new());
        let (queue, _rx) = mpsc::channel(1);
        let n = Notifier {
            queue,
            seen: Mutex::new(DedupFile::default()),
            dirty: false.into(),
            window: Duration::from_secs(60),
            metrics: metrics.clone(),
        };
        for i in 0..3 {
            n.block(format!("198.18.0.{i}/32").parse().unwrap(), "max-src-conn");
        }
        let text = {
            use prometheus::Encoder as _;
            let mut out = Vec::new();
            prometheus::TextEncoder::new()
                .encode(&metrics.registry.gather(), &mut out)
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        assert!(
            text.contains("kms_notifications_total{result=\"dropped\"} 2"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn dedup_posts_once_per_source_and_product_within_the_window() {
        let (_trigger, shutdown) = crate::shutdown::channel();
        let metrics = Arc::new(Metrics::new());
        let settings = NotifySettings {
            url: Secret("http://127.0.0.1:9".into()),
            window: Duration::from_secs(3600),
            state_file: None,
        };
        let (n, _task) = Notifier::start(settings, metrics.clone(), shutdown);
        let a: IpAddr = "198.18.0.2".parse().unwrap();
        n.activation(a, "Windows 10 Professional", "6", "ws");
        n.activation(a, "Windows 10 Professional", "6", "ws");
        n.activation(a, "Office Professional Plus 2019", "6", "ws");
        n.activation(
            "198.18.0.3".parse().unwrap(),
            "Windows 10 Professional",
            "6",
            "ws",
        );
        assert_eq!(n.queue.max_capacity() - n.queue.capacity(), 3);
        let families = metrics.registry.gather();
        let dedup = families
            .iter()
            .find(|f| f.name() == "kms_notifications_total")
            .unwrap();
        let count = |result: &str| {
            dedup
                .get_metric()
                .iter()
                .find(|m| m.get_label().iter().any(|l| l.value() == result))
                .map(|m| m.get_counter().get_value())
        };
        assert_eq!(count("deduplicated"), Some(1.0));
        assert_eq!(count("dropped"), Some(0.0));
    }
}
