//! Paths and the pinned BPF toolchain, read from the one place it is pinned.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

/// Project-local tools (bpf-linker), ignored by git.
pub fn tools_dir() -> PathBuf {
    root().join(".tools")
}

/// The nightly channel pinned in kms-ebpf/rust-toolchain.toml.
pub fn bpf_toolchain() -> Result<String> {
    let path = root().join("kms-ebpf/rust-toolchain.toml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    match doc
        .get("toolchain")
        .and_then(|t| t.get("channel"))
        .and_then(|c| c.as_str())
    {
        Some(channel) => Ok(channel.to_string()),
        None => bail!("{} has no [toolchain] channel", path.display()),
    }
}

/// Runs a command, echoing it, and fails with its status.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `cargo` of the toolchain running xtask (stable for the userspace half).
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// `cargo` of the pinned nightly, run in kms-ebpf so its rust-toolchain.toml applies.
pub fn bpf_cargo(toolchain: &str) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", toolchain, "cargo"])
        .current_dir(root().join("kms-ebpf"));
    // Set by the rustup proxy that started xtask; it would override the pin.
    cmd.env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC");
    cmd
}
