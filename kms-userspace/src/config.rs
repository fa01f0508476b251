//! `kmsd serve` options. Every flag has a config-file key of the same name
//! (kebab-case, TOML); a flag given on the command line wins over the file,
//! and [`Settings`] fills in the defaults.

use std::{
    fs,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use ipnet::IpNet;

use crate::edge::limits::{LimitOptions, Limits};
use crate::logging::LogFormat;
use crate::observe::{
    notify::{NotifySettings, Secret},
    probes::SourceClasses,
};
use crate::policy::{
    DEFAULT_HWID, PolicySettings, Whitelist,
    clients::ListStart,
    epid::{EpidOptions, Randomization},
    interval::parse_minutes,
};

/// The KMS port clients use.
pub const KMS_PORT: u16 = 1688;
/// Where the BPF maps and links are pinned unless `--pin-dir` says otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/kms-edge/v1";
/// Where the notifier's dedup state is kept unless `--notify-state-file` says otherwise.
pub const DEFAULT_NOTIFY_STATE_FILE: &str = "/var/lib/kms-edge/notify.json";
/// Where the block and allow tables are saved unless `--state-file` says otherwise.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/kms-edge/state.json";

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum XdpModeChoice {
    /// Native (driver) mode, falling back to SKB mode when the driver refuses.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic SKB mode only.
    Skb,
}

#[derive(Args, Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServeOptions {
    /// TOML file with any of these options as keys (`listen = ["0.0.0.0:1688"]`).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address to serve KMS on; repeat for several [default: 0.0.0.0:1688 and [::]:1688].
    #[arg(long, value_name = "ADDR:PORT")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<SocketAddr>,

    /// Interface to attach the XDP program to; repeat for several
    /// [default: the interface holding the default route].
    #[arg(long, value_name = "IFACE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xdp_iface: Vec<String>,

    /// Do not load or attach any BPF program (hosts without BPF, tests).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_xdp: Option<bool>,

    /// XDP attach mode [default: auto].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xdp_mode: Option<XdpModeChoice>,

    /// bpffs directory holding the pinned maps and links [default: /sys/fs/bpf/kms-edge/v1].
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin_dir: Option<PathBuf>,

    /// cgroup v2 whose sockets the connection counter watches: a path under
    /// the cgroup2 mount (or relative to it), created if missing, with kmsd
    /// moved into it [default: kmsd's own cgroup].
    #[arg(long, value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,

    /// Where the block and allow tables are saved, so blocks survive a reboot;
    /// `none` turns saving off [default: /var/lib/kms-edge/state.json].
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_file: Option<PathBuf>,

    /// Source prefix that is never counted or blocked (the allow list);
    /// repeat for several.
    #[arg(long, value_name = "CIDR")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<IpNet>,

    /// Address of the HTTP endpoint (/metrics /healthz /readyz /keys.json)
    /// [default: 127.0.0.1:9101].
    #[arg(long, value_name = "ADDR:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SocketAddr>,

    /// No HTTP endpoint at all.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_metrics: Option<bool>,

    /// Do not serve /keys.json.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_keys_json: Option<bool>,

    /// Blocked sources exported one by one (by packets dropped) [default: 20].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_top_sources: Option<usize>,

    /// A source class for the probe counter, `NAME=CIDR[,CIDR...]`; repeat for
    /// several [default: internal_pod=10.10.0.0/16, cluster_node=10.0.20.0/24;
    /// everything else is `external`].
    #[arg(long, value_name = "NAME=CIDRS")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probe_class: Vec<String>,

    /// Slack-compatible webhook for activations and new blocks [env: KMS_NOTIFY_URL].
    #[arg(
        long,
        env = "KMS_NOTIFY_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<Secret>,

    /// Post an activation once per source and product within this many seconds [default: 3600].
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_window: Option<u64>,

    /// Where the notification dedup state is kept across restarts; `none`:
    /// memory only [default: /var/lib/kms-edge/notify.json].
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_state_file: Option<PathBuf>,

    /// Config file only (the flags are global): the log filter.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,

    /// Config file only (the flags are global): `text` or `json`.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,

    /// The enforcer's limits (config file: a `[limits]` table).
    #[command(flatten)]
    #[serde(default, skip_serializing_if = "LimitOptions::is_empty")]
    pub limits: LimitOptions,

    /// How often the XDP counters are logged at debug level, in seconds [default: 10].
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_interval: Option<u64>,

    /// Close a connection after this many seconds without a byte [default: 30].
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,

    /// Most simultaneous clients; more are closed at once [default: unlimited].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_clients: Option<usize>,

    /// Close the connection after each response (vlmcsd -d).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect_after_response: Option<bool>,

    /// ePID randomization: 0 fixed, 1 random at start, 2 random per request [default: 1].
    #[arg(long, value_name = "LEVEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epid_randomization: Option<u8>,

    /// LCID for random ePIDs [default: random].
    #[arg(long, value_name = "LCID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lcid: Option<u32>,

    /// Host build for random ePIDs, e.g. 17763 [default: random].
    #[arg(long, value_name = "BUILD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_build: Option<u32>,

    /// Fixed ePID for a CSVLK: `Windows=03612-...`, `Office2019=...`; repeatable.
    #[arg(long, value_name = "CSVLK=EPID")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub epid: Vec<String>,

    /// HwId of v6 responses, 16 hex digits in wire order [default: 3A1C049600B60076].
    #[arg(long, value_name = "HEX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hwid: Option<String>,

    /// Retry interval for clients that failed, with s/m/h/d/w suffix [default: 2h].
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation_interval: Option<String>,

    /// Renewal interval for activated clients, with s/m/h/d/w suffix [default: 7d].
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_interval: Option<String>,

    /// Count policy: `off` reports 2×N (vlmcsd -M0); `prefilled` or `empty`
    /// keeps a client list per application like a genuine host (-M1 -E0/-E1) [default: off].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_list: Option<ClientListChoice>,

    /// Whitelisting level 0-3 (vlmcsd -K) [default: 0].
    #[arg(long, value_name = "LEVEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whitelist: Option<u8>,

    /// Refuse clients whose clock is more than 4 hours off (vlmcsd -c1).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_client_time: Option<bool>,

    /// Offer NDR64 [default: decided by the ePID's host build, as vlmcsd].
    #[arg(long, value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ndr64: Option<bool>,

    /// Acknowledge Bind Time Feature Negotiation [default: true].
    #[arg(long, value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub btfn: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientListChoice {
    Off,
    Prefilled,
    Empty,
}

impl ServeOptions {
    /// The config file's `log-level` and `log-format`, for flags that did not
    /// set them (logging starts before the rest of the file is read).
    pub fn file_logging(&self) -> anyhow::Result<(Option<String>, Option<LogFormat>)> {
        let Some(path) = &self.config else {
            return Ok((None, None));
        };
        let file = ServeOptions::deserialize(toml::Value::Table(read_file(path)?))?;
        Ok((file.log_level, file.log_format))
    }

    /// Merges the config file (if any) under the command-line flags.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let merged = match &self.config {
            Some(path) => merge(&read_file(path)?, &self)?,
            None => self,
        };
        Settings::from_options(merged)
    }
}

fn read_file(path: &Path) -> anyhow::Result<toml::Table> {
    let text =
        fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
    // Validate the file on its own so an unknown key names the file.
    ServeOptions::deserialize(toml::Value::Table(table.clone()))
        .with_context(|| format!("in config {}", path.display()))?;
    Ok(table)
}

/// Flags set on the command line replace the file's value for the same key.
fn merge(file: &toml::Table, cli: &ServeOptions) -> anyhow::Result<ServeOptions> {
    let mut merged = file.clone();
    let toml::Value::Table(flags) = toml::Value::try_from(cli)? else {
        bail!("options do not serialize to a table");
    };
    for (key, value) in flags {
        // Tables (`[limits]`) merge key by key, so one flag does not drop
        // the rest of the file's table.
        match (merged.get_mut(&key), value) {
            (Some(toml::Value::Table(file_table)), toml::Value::Table(flag_table)) => {
                file_table.extend(flag_table)
            }
            (_, value) => {
                merged.insert(key, value);
            }
        }
    }
    let mut options = ServeOptions::deserialize(toml::Value::Table(merged))?;
    options.config = cli.config.clone();
    Ok(options)
}

/// The effective serve configuration, defaults applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: Vec<SocketAddr>,
    /// `None` when XDP is off.
    pub xdp: Option<XdpSettings>,
    pub stats_interval: Duration,
    pub timeout: Duration,
    pub max_clients: Option<usize>,
    pub disconnect_after_response: bool,
    pub policy: PolicySettings,
    pub btfn: bool,
    pub observe: ObserveSettings,
}

#[derive(Debug, Clone)]
pub struct ObserveSettings {
    /// `None`: no HTTP endpoint.
    pub metrics: Option<SocketAddr>,
    pub keys_json: bool,
    pub top_sources: usize,
    pub probe_classes: SourceClasses,
    pub notify: Option<NotifySettings>,
}

#[derive(Debug, Clone)]
pub struct XdpSettings {
    /// Empty means "the interface holding the default route", looked up at start.
    pub interfaces: Vec<String>,
    pub mode: XdpModeChoice,
    pub pin_dir: PathBuf,
    /// `None`: the daemon's own cgroup.
    pub cgroup: Option<PathBuf>,
    /// `None`: not saved.
    pub state_file: Option<PathBuf>,
    pub allow: Vec<IpNet>,
    pub limits: LimitOptions,
}

impl Settings {
    fn from_options(o: ServeOptions) -> anyhow::Result<Self> {
        let listen = if o.listen.is_empty() {
            vec![
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, KMS_PORT)),
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, KMS_PORT)),
            ]
        } else {
            o.listen
        };
        let xdp = (!o.no_xdp.unwrap_or(false)).then(|| XdpSettings {
            interfaces: o.xdp_iface,
            mode: o.xdp_mode.unwrap_or_default(),
            pin_dir: o.pin_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_PIN_DIR)),
            cgroup: o.cgroup,
            state_file: state_file(o.state_file),
            allow: o.allow,
            limits: o.limits,
        });
        if let Some(xdp) = &xdp {
            // Validate now, so a bad limit fails the start before anything loads.
            xdp.limits.apply(&Limits::default())?;
        }
        let stats_interval = Duration::from_secs(o.stats_interval.unwrap_or(10).max(1));
        let policy = PolicySettings {
            epid: EpidOptions {
                randomization: match o.epid_randomization.unwrap_or(1) {
                    0 => Randomization::Fixed,
                    1 => Randomization::PerStart,
                    2 => Randomization::PerRequest,
                    other => bail!("--epid-randomization {other}: expected 0, 1 or 2"),
                },
                lcid: o.lcid,
                host_build: o.host_build,
                ndr64: o.ndr64,
                overrides: o
                    .epid
                    .iter()
                    .map(|e| parse_epid_override(e))
                    .collect::<anyhow::Result<_>>()?,
            },
            hwid: match &o.hwid {
                None => DEFAULT_HWID,
                Some(text) => parse_hwid(text)?,
            },
            activation_interval: parse_minutes(o.activation_interval.as_deref().unwrap_or("2h"))
                .map_err(|e| anyhow::anyhow!("--activation-interval: {e}"))?,
            renewal_interval: parse_minutes(o.renewal_interval.as_deref().unwrap_or("7d"))
                .map_err(|e| anyhow::anyhow!("--renewal-interval: {e}"))?,
            client_list: match o.client_list.unwrap_or(ClientListChoice::Off) {
                ClientListChoice::Off => None,
                ClientListChoice::Prefilled => Some(ListStart::Prefilled),
                ClientListChoice::Empty => Some(ListStart::Empty),
            },
            whitelist: match o.whitelist.unwrap_or(0) {
                level @ 0..=3 => Whitelist(level),
                other => bail!("--whitelist {other}: expected 0, 1, 2 or 3"),
            },
            check_client_time: o.check_client_time.unwrap_or(false),
        };
        let observe = ObserveSettings {
            metrics: (!o.no_metrics.unwrap_or(false)).then(|| {
                o.metrics
                    .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 9101)))
            }),
            keys_json: !o.no_keys_json.unwrap_or(false),
            top_sources: o.metrics_top_sources.unwrap_or(20),
            probe_classes: if o.probe_class.is_empty() {
                SourceClasses::seed_default()
            } else {
                SourceClasses::parse(&o.probe_class).map_err(anyhow::Error::msg)?
            },
            notify: o.notify_url.map(|url| NotifySettings {
                url,
                window: Duration::from_secs(o.notify_window.unwrap_or(3600)),
                state_file: match o.notify_state_file {
                    Some(path) if path.as_os_str() == "none" => None,
                    Some(path) => Some(path),
                    None => Some(PathBuf::from(DEFAULT_NOTIFY_STATE_FILE)),
                },
            }),
        };
        Ok(Settings {
            observe,
            listen,
            xdp,
            stats_interval,
            timeout: Duration::from_secs(o.timeout.unwrap_or(30).max(1)),
            max_clients: o.max_clients,
            disconnect_after_response: o.disconnect_after_response.unwrap_or(false),
            policy,
            btfn: o.btfn.unwrap_or(true),
        })
    }
}

/// `none` turns the state file off.
pub fn state_file(option: Option<PathBuf>) -> Option<PathBuf> {
    match option {
        Some(path) if path.as_os_str() == "none" => None,
        Some(path) => Some(path),
        None => Some(PathBuf::from(DEFAULT_STATE_FILE)),
    }
}

/// `Windows=03612-...`: a CSVLK by its ini name (or index) and an ePID.
fn parse_epid_override(text: &str) -> anyhow::Result<(usize, String)> {
    let Some((name, epid)) = text.split_once('=') else {
        bail!(
            "--epid {text:?}: expected CSVLK=EPID, e.g. Windows=03612-00206-556-123727-03-1033-17763.0000-2972018"
        );
    };
    let catalog = crate::catalog::catalog();
    let index = match name.trim().parse::<usize>() {
        Ok(index) if index < catalog.csvlks.len() => index,
        _ => match catalog.csvlk_by_name(name.trim()) {
            Some(csvlk) => csvlk.index,
            None => {
                let names: Vec<&str> = catalog.csvlks.iter().map(|c| c.ini_name.as_str()).collect();
                bail!(
                    "--epid {text:?}: unknown CSVLK {name:?} (one of {})",
                    names.join(", ")
                );
            }
        },
    };
    crate::policy::epid::validate(epid.trim()).map_err(anyhow::Error::msg)?;
    Ok((index, epid.trim().to_string()))
}

fn parse_hwid(text: &str) -> anyhow::Result<[u8; 8]> {
    let bytes = hex::decode(text.trim()).map_err(|e| anyhow::anyhow!("--hwid {text:?}: {e}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("--hwid {text:?}: expected 16 hex digits"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeOptions,
    }

    fn parse(args: &[&str]) -> ServeOptions {
        Cli::parse_from(std::iter::once("kmsd").chain(args.iter().copied())).serve
    }

    #[test]
    fn the_config_file_carries_logging_limits_and_observability() {
        let path = std::env::temp_dir().join(format!("kmsd-config-{}.toml", std::process::id()));
        fs::write(
            &path,
            "log-level = \"warn\"\nlog-format = \"json\"\nprobe-class = [\"lab=198.18.0.0/24\"]\nnotify-window = 60\n[limits]\nmax-src-conn = 7\nmax-src-conn-rate = \"3/60\"\n",
        )
        .unwrap();
        let options = parse(&[
            "--config",
            path.to_str().unwrap(),
            "--max-src-conn-rate",
            "off",
        ]);
        assert_eq!(
            options.file_logging().unwrap(),
            (Some("warn".to_string()), Some(LogFormat::Json))
        );
        let settings = options.resolve().unwrap();
        fs::remove_file(&path).unwrap();
        let limits = settings
            .xdp
            .unwrap()
            .limits
            .apply(&Limits::default())
            .unwrap();
        assert_eq!(limits.max_src_conn, 7, "the file's [limits] table");
        assert_eq!(
            limits.max_src_conn_rate, None,
            "a flag wins over the same key"
        );
        assert_eq!(
            settings
                .observe
                .probe_classes
                .classify("198.18.0.9".parse().unwrap()),
            "lab"
        );
        assert_eq!(
            settings.observe.metrics,
            Some("127.0.0.1:9101".parse().unwrap())
        );
    }

    #[test]
    fn defaults_listen_on_both_families_and_attach_xdp() {
        let s = parse(&[]).resolve().unwrap();
        assert_eq!(s.listen.len(), 2);
        assert!(s.listen.iter().all(|a| a.port() == KMS_PORT));
        let xdp = s.xdp.unwrap();
        assert_eq!(xdp.pin_dir, PathBuf::from(DEFAULT_PIN_DIR));
        assert_eq!(xdp.mode, XdpModeChoice::Auto);
        assert!(xdp.interfaces.is_empty());
    }

    #[test]
    fn flags_win_over_the_file_and_file_fills_the_rest() {
        let file: toml::Table = toml::from_str(
            "listen = [\"127.0.0.1:1\"]\nxdp-iface = [\"eth9\"]\nxdp-mode = \"skb\"\npin-dir = \"/x\"\n",
        )
        .unwrap();
        let cli = parse(&[
            "--listen",
            "127.0.0.1:2",
            "--listen",
            "[::1]:3",
            "--xdp-mode",
            "native",
        ]);
        let s = Settings::from_options(merge(&file, &cli).unwrap()).unwrap();
        assert_eq!(
            s.listen,
            vec!["127.0.0.1:2".parse().unwrap(), "[::1]:3".parse().unwrap()]
        );
        let xdp = s.xdp.unwrap();
        assert_eq!(xdp.interfaces, vec!["eth9".to_string()]);
        assert_eq!(xdp.mode, XdpModeChoice::Native);
        assert_eq!(xdp.pin_dir, PathBuf::from("/x"));
    }

    #[test]
    fn no_xdp_from_the_file_can_be_overridden_by_a_flag() {
        let file: toml::Table = toml::from_str("no-xdp = true").unwrap();
        assert!(
            Settings::from_options(merge(&file, &parse(&[])).unwrap())
                .unwrap()
                .xdp
                .is_none()
        );
        let cli = parse(&["--no-xdp", "false"]);
        assert!(
            Settings::from_options(merge(&file, &cli).unwrap())
                .unwrap()
                .xdp
                .is_some()
        );
    }

    #[test]
    fn policy_flags_resolve_with_vlmcsd_defaults_and_reject_bad_values() {
        let s = parse(&[]).resolve().unwrap();
        assert_eq!(
            (s.policy.activation_interval, s.policy.renewal_interval),
            (120, 10080)
        );
        assert_eq!(s.policy.hwid, DEFAULT_HWID);
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert!(s.btfn && s.max_clients.is_none() && !s.disconnect_after_response);
        let s = parse(&[
            "--epid",
            "Office2019=1-2-3",
            "--hwid",
            "0102030405060708",
            "--renewal-interval",
            "1d",
        ])
        .resolve()
        .unwrap();
        assert_eq!(s.policy.epid.overrides, vec![(5, "1-2-3".to_string())]);
        assert_eq!(s.policy.hwid, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(s.policy.renewal_interval, 1440);
        for bad in [
            &["--epid", "Nope=1"][..],
            &["--hwid", "123"],
            &["--whitelist", "4"],
            &["--epid-randomization", "3"],
            &["--activation-interval", "2y"],
        ] {
            assert!(parse(bad).resolve().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("kmsd-config-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        fs::write(&path, "lisen = [\"0.0.0.0:1688\"]\n").unwrap();
        let err = read_file(&path).unwrap_err();
        let message = format!("{err:#}");
        fs::remove_dir_all(&dir).unwrap();
        assert!(
            message.contains("bad.toml") && message.contains("lisen"),
            "{message}"
        );
    }
}
