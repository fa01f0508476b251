//! The enforcer's limits as operators write them (pf.conf's words), and their
//! translation to the `Config` the kernel reads.

use std::{fmt, str::FromStr};

use anyhow::bail;
use clap::{Args, ValueEnum};
use kms_common::enforce::{CONFIG_MAGIC, Config, MAX_PORTS, drop_scope, flush_scope};
use serde::{Deserialize, Serialize};

use crate::config::KMS_PORT;

/// pf's `max-src-conn-rate N/S`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub conns: u32,
    pub seconds: u32,
}

/// Longest rate window: the kernel's arithmetic is exact up to an hour.
pub const MAX_RATE_SECONDS: u32 = 3600;

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (n, s) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?}: expected N/SECONDS, e.g. 10/60"))?;
        let conns: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: {n:?} is not a number"))?;
        let seconds: u32 = s
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: {s:?} is not a number of seconds"))?;
        if conns == 0 {
            return Err(format!(
                "{text:?}: N must be at least 1 (use `off` to turn the check off)"
            ));
        }
        if !(1..=MAX_RATE_SECONDS).contains(&seconds) {
            return Err(format!("{text:?}: SECONDS must be 1-{MAX_RATE_SECONDS}"));
        }
        Ok(Rate { conns, seconds })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.conns, self.seconds)
    }
}

/// `N/S` or `off`, as the command line and the config file spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RateSetting(pub Option<Rate>);

impl FromStr for RateSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "off" | "0" => Ok(RateSetting(None)),
            other => other.parse().map(|r| RateSetting(Some(r))),
        }
    }
}

impl TryFrom<String> for RateSetting {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<RateSetting> for String {
    fn from(r: RateSetting) -> String {
        r.0.map_or_else(|| "off".to_string(), |r| r.to_string())
    }
}

/// What XDP drops from a blocked source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropScope {
    /// Every packet (pf: `block drop in quick from <virusprot>`).
    All,
    /// Only TCP to a service port.
    Service,
}

/// Which connections an overload kills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlushScope {
    /// Every TCP connection from the source (pf: `overload <t> flush global`).
    Global,
    /// Only connections to a service port (pf: `overload <t> flush`).
    Service,
}

/// The effective limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Limits {
    /// 0: off.
    pub max_src_conn: u32,
    #[serde(serialize_with = "serialize_rate")]
    pub max_src_conn_rate: Option<Rate>,
    pub service_ports: Vec<u16>,
    pub drop_scope: DropScope,
    pub flush_scope: FlushScope,
    pub ipv6_prefix: u8,
    /// Seconds; 0 keeps blocks until removed.
    pub block_lifetime: u32,
    pub monitor: bool,
}

fn serialize_rate<S: serde::Serializer>(rate: &Option<Rate>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from(RateSetting(*rate)))
}

impl Default for Limits {
    /// The seed's pfSense rule: `max-src-conn 50, max-src-conn-rate 10/60,
    /// overload <virusprot> flush global`, blocks expired after an hour.
    fn default() -> Self {
        Limits {
            max_src_conn: 50,
            max_src_conn_rate: Some(Rate {
                conns: 10,
                seconds: 60,
            }),
            service_ports: vec![KMS_PORT],
            drop_scope: DropScope::All,
            flush_scope: FlushScope::Global,
            ipv6_prefix: 64,
            block_lifetime: 3600,
            monitor: false,
        }
    }
}

impl Limits {
    pub fn to_config(&self) -> Config {
        let mut ports = [0u16; MAX_PORTS];
        for (slot, port) in ports.iter_mut().zip(&self.service_ports) {
            *slot = *port;
        }
        Config {
            magic: CONFIG_MAGIC,
            max_src_conn: self.max_src_conn,
            rate_conns: self.max_src_conn_rate.map_or(0, |r| r.conns),
            rate_seconds: self.max_src_conn_rate.map_or(0, |r| r.seconds),
            lifetime_seconds: self.block_lifetime,
            ports,
            drop_scope: match self.drop_scope {
                DropScope::All => drop_scope::ALL,
                DropScope::Service => drop_scope::SERVICE,
            },
            flush_scope: match self.flush_scope {
                FlushScope::Global => flush_scope::GLOBAL,
                FlushScope::Service => flush_scope::SERVICE,
            },
            monitor: self.monitor as u8,
            ipv6_prefix: self.ipv6_prefix,
        }
    }

    /// The limits a configuration map holds; `None` if no daemon wrote it.
    pub fn from_config(config: &Config) -> Option<Limits> {
        if config.magic != CONFIG_MAGIC {
            return None;
        }
        Some(Limits {
            max_src_conn: config.max_src_conn,
            max_src_conn_rate: (config.rate_conns != 0).then_some(Rate {
                conns: config.rate_conns,
                seconds: config.rate_seconds,
            }),
            service_ports: config.ports.iter().copied().filter(|&p| p != 0).collect(),
            drop_scope: if config.drop_scope == drop_scope::SERVICE {
                DropScope::Service
            } else {
                DropScope::All
            },
            flush_scope: if config.flush_scope == flush_scope::SERVICE {
                FlushScope::Service
            } else {
                FlushScope::Global
            },
            ipv6_prefix: config.ipv6_prefix,
            block_lifetime: config.lifetime_seconds,
            monitor: config.monitor != 0,
        })
    }

    /// One line for logs and `kmsd limits show`.
    pub fn summary(&self) -> String {
        let ports: Vec<String> = self.service_ports.iter().map(u16::to_string).collect();
        format!(
            "max-src-conn {} max-src-conn-rate {} service-ports {} drop-scope {} flush-scope {} ipv6-prefix /{} block-lifetime {}s monitor {}",
            if self.max_src_conn == 0 {
                "off".to_string()
            } else {
                self.max_src_conn.to_string()
            },
            String::from(RateSetting(self.max_src_conn_rate)),
            ports.join(","),
            scope_name(self.drop_scope),
            scope_name(self.flush_scope),
            self.ipv6_prefix,
            self.block_lifetime,
            if self.monitor { "on" } else { "off" },
        )
    }
}

fn scope_name<T: ValueEnum>(value: T) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

/// Limit settings given on a command line or in the config file's `[limits]`
/// table; what is not given keeps its current value.
#[derive(Args, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LimitOptions {
    /// Most simultaneous established connections per source; 0 turns the
    /// check off [default: 50].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_src_conn: Option<u32>,

    /// Most new connections per source per window, `N/SECONDS`, or `off`
    /// [default: 10/60].
    #[arg(long, value_name = "N/SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_src_conn_rate: Option<RateSetting>,

    /// TCP port whose connections are counted; repeat for several (up to 8)
    /// [default: 1688].
    #[arg(long = "service-port", value_name = "PORT")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_ports: Vec<u16>,

    /// What XDP drops from a blocked source [default: all].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_scope: Option<DropScope>,

    /// Which connections an overload kills [default: global].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_scope: Option<FlushScope>,

    /// IPv6 sources are counted and blocked per prefix of this length [default: 64].
    #[arg(long, value_name = "LEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_prefix: Option<u8>,

    /// Seconds after which a block expires; 0 keeps blocks until removed
    /// [default: 3600].
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_lifetime: Option<u32>,

    /// Count would-be drops and overloads but drop and close nothing.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor: Option<bool>,
}

impl LimitOptions {
    pub fn is_empty(&self) -> bool {
        self == &LimitOptions::default()
    }

    /// `base` with every given setting applied, validated.
    pub fn apply(&self, base: &Limits) -> anyhow::Result<Limits> {
        let mut limits = base.clone();
        if let Some(n) = self.max_src_conn {
            limits.max_src_conn = n;
        }
        if let Some(rate) = self.max_src_conn_rate {
            limits.max_src_conn_rate = rate.0;
        }
        if !self.service_ports.is_empty() {
            if self.service_ports.len() > MAX_PORTS {
                bail!("--service-port: at most {MAX_PORTS} ports");
            }
            if self.service_ports.contains(&0) {
                bail!("--service-port: 0 is not a port");
            }
            limits.service_ports = self.service_ports.clone();
        }
        if let Some(scope) = self.drop_scope {
            limits.drop_scope = scope;
        }
        if let Some(scope) = self.flush_scope {
            limits.flush_scope = scope;
        }
        if let Some(len) = self.ipv6_prefix {
            if !(1..=128).contains(&len) {
                bail!("--ipv6-prefix {len}: expected 1-128");
            }
            limits.ipv6_prefix = len;
        }
        if let Some(secs) = self.block_lifetime {
            limits.block_lifetime = secs;
        }
        if let Some(monitor) = self.monitor {
            limits.monitor = monitor;
        }
        Ok(limits)
    }
}

/// Parses `N/S` for clap.
impl clap::builder::ValueParserFactory for RateSetting {
    type Parser = clap::builder::ValueParser;
    fn value_parser() -> Self::Parser {
        clap::builder::ValueParser::new(|s: &str| s.parse::<RateSetting>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_like_pf_conf() {
        assert_eq!(
            "10/60".parse::<RateSetting>().unwrap(),
            RateSetting(Some(Rate {
                conns: 10,
                seconds: 60
            }))
        );
        assert_eq!("off".parse::<RateSetting>().unwrap(), RateSetting(None));
        for bad in ["10", "a/60", "10/0", "0/60", "10/3601", "10/x"] {
            assert!(bad.parse::<RateSetting>().is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_round_trip_through_the_kernel_config() {
        let limits = LimitOptions {
            max_src_conn: Some(5),
            max_src_conn_rate: Some("3/2".parse().unwrap()),
            service_ports: vec![1688, 1689],
            drop_scope: Some(DropScope::Service),
            flush_scope: Some(FlushScope::Service),
            ipv6_prefix: Some(56),
            block_lifetime: Some(0),
            monitor: Some(true),
        }
        .apply(&Limits::default())
        .unwrap();
        assert_eq!(Limits::from_config(&limits.to_config()), Some(limits));
        assert_eq!(Limits::from_config(&Config::default()), None);
    }

    #[test]
    fn only_given_settings_change() {
        let base = Limits::default();
        let changed = LimitOptions {
            max_src_conn: Some(7),
            ..Default::default()
        }
        .apply(&base)
        .unwrap();
        assert_eq!(changed.max_src_conn, 7);
        assert_eq!(changed.max_src_conn_rate, base.max_src_conn_rate);
        assert!(
            LimitOptions {
                ipv6_prefix: Some(0),
                ..Default::default()
            }
            .apply(&base)
            .is_err()
        );
    }
}
