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

/// The KMS port clients use.
pub const KMS_PORT: u16 = 1688;
/// Where the BPF maps and links are pinned unless `--pin-dir` says otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/kms-edge/v1";

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

    /// How often the XDP counters are logged at debug level, in seconds [default: 10].
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_interval: Option<u64>,
}

impl ServeOptions {
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
    merged.extend(flags);
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
}

#[derive(Debug, Clone)]
pub struct XdpSettings {
    /// Empty means "the interface holding the default route", looked up at start.
    pub interfaces: Vec<String>,
    pub mode: XdpModeChoice,
    pub pin_dir: PathBuf,
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
        });
        let stats_interval = Duration::from_secs(o.stats_interval.unwrap_or(10).max(1));
        Ok(Settings {
            listen,
            xdp,
            stats_interval,
        })
    }
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
