//! The guest's initramfs: busybox (Debian's busybox-static), the static kmsd
//! under test, the kernel's virtio network modules and `init.sh` as /init.

use std::{path::Path, process::Command};

use anyhow::{Context as _, ensure};

use crate::{apt::Apt, cpio::Cpio, kernel::Kernel};

/// Fetches busybox-static once; returns the binary's path.
pub fn busybox(apt: &Apt, cache: &Path) -> anyhow::Result<std::path::PathBuf> {
    let dir = cache.join("busybox");
    let binary = dir.join("bin/busybox");
    if !binary.exists() {
        apt.fetch_and_unpack("busybox-static", &dir)?;
    }
    ensure!(binary.exists(), "busybox-static has no bin/busybox");
    Ok(binary)
}

pub fn build(kernel: &Kernel, busybox: &Path, kmsd: &Path, out: &Path) -> anyhow::Result<()> {
    let mut cpio = Cpio::new();
    for dir in [
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "var",
        "etc",
        "lib",
        "lib/modules",
    ] {
        cpio.dir(dir);
    }
    // The kernel opens /dev/console for /init before anything is mounted.
    cpio.char_device("dev/console", 5, 1);
    let init = Path::new(env!("CARGO_MANIFEST_DIR")).join("init.sh");
    cpio.file("init", 0o755, &std::fs::read(&init)?);
    cpio.file("bin/busybox", 0o755, &std::fs::read(busybox)?);
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .context("running busybox --list")?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        // A link named busybox would point at itself (ELOOP at /init).
        if !applet.is_empty() && applet != "busybox" {
            cpio.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    cpio.file(
        "bin/kmsd",
        0o755,
        &std::fs::read(kmsd).with_context(|| format!("reading {}", kmsd.display()))?,
    );
    for (name, path) in &kernel.modules {
        cpio.file(
            &format!("lib/modules/{name}.ko"),
            0o644,
            &std::fs::read(path)?,
        );
    }
    std::fs::write(out, cpio.finish())?;
    Ok(())
}
