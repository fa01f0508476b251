//! Log set-up: text or JSON lines on stderr, levels from `--log-level`, the
//! serve config file's `log-level`, or `RUST_LOG`.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct LogOptions {
    /// Log line format [default: text; `kmsd serve` also reads `log-format`
    /// from its config file].
    #[arg(long, global = true, value_enum, env = "KMSD_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter (tracing syntax, e.g. `info` or `kms_userspace=debug`); when
    /// absent, `log-level` from `kmsd serve`'s config file, then RUST_LOG.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
}

pub fn init(options: &LogOptions) -> anyhow::Result<()> {
    let filter = match &options.log_level {
        Some(level) => {
            EnvFilter::try_new(level).with_context(|| format!("bad --log-level {level:?}"))?
        }
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match options.log_format.unwrap_or_default() {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}
