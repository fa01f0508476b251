//! Building and running kmsd. The BPF object is built by kms-userspace's build
//! script, so building kmsd always rebuilds a stale object.

use std::{os::unix::process::CommandExt as _, path::PathBuf};

use anyhow::Result;

use crate::workspace;

pub fn kmsd(release: bool) -> Result<PathBuf> {
    let mut cmd = workspace::cargo();
    cmd.args(["build", "--package", "kms-userspace", "--bin", "kmsd"]);
    if release {
        cmd.arg("--release");
    }
    workspace::run(&mut cmd)?;
    let profile = if release { "release" } else { "debug" };
    Ok(workspace::root().join("target").join(profile).join("kmsd"))
}

/// The target of the static kmsd that VM test guests run.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";

/// A static (musl) kmsd for the VM tests' guests, in the `vm` profile
/// (release code without LTO, stripped). ring's C and assembly build with
/// the host's `cc`: it needs no libc headers, so musl-gcc is not required.
pub fn kmsd_static() -> Result<PathBuf> {
    workspace::run(
        workspace::cargo()
            .args(["build", "--package", "kms-userspace", "--bin", "kmsd"])
            .args(["--profile", "vm", "--target", STATIC_TARGET])
            .env("CC_x86_64_unknown_linux_musl", "cc"),
    )?;
    Ok(workspace::root()
        .join("target")
        .join(STATIC_TARGET)
        .join("vm/kmsd"))
}

/// Replaces xtask with `kmsd serve ARGS`, so Ctrl-C and SIGTERM reach kmsd.
pub fn exec_serve(kmsd: &PathBuf, args: &[String]) -> Result<()> {
    let mut cmd = std::process::Command::new(kmsd);
    cmd.arg("serve").args(args);
    eprintln!("+ {}", workspace::describe(&cmd));
    Err(cmd.exec().into())
}
