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

/// Replaces xtask with `kmsd serve ARGS`, so Ctrl-C and SIGTERM reach kmsd.
pub fn exec_serve(kmsd: &PathBuf, args: &[String]) -> Result<()> {
    let mut cmd = std::process::Command::new(kmsd);
    cmd.arg("serve").args(args);
    eprintln!("+ {}", workspace::describe(&cmd));
    Err(cmd.exec().into())
}
