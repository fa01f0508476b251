//! `cargo xtask setup`: installs what the BPF build needs and checks the host.
//! Idempotent; the other commands call [`ensure`], which only does the work
//! that is missing.

use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::workspace::{self, bpf_toolchain, tools_dir};

/// bpf-linker is built from crates.io against the nightly's own LLVM.
const BPF_LINKER_VERSION: &str = "0.13.0";
const COMPONENTS: [&str; 2] = ["rust-src", "clippy"];

pub fn run() -> Result<()> {
    let toolchain = bpf_toolchain()?;
    install_toolchain(&toolchain)?;
    install_bpf_linker(&toolchain)?;
    check_host()?;
    install_packages(&missing_packages())?;
    install_static_target()?;
    eprintln!(
        "setup complete: {toolchain} with {}, bpf-linker {BPF_LINKER_VERSION}, host ready",
        COMPONENTS.join(" + ")
    );
    Ok(())
}

/// Does whatever part of the set-up is missing.
pub fn ensure() -> Result<()> {
    let toolchain = bpf_toolchain()?;
    if !toolchain_ready(&toolchain) {
        install_toolchain(&toolchain)?;
    }
    if !linker_ready(&toolchain) {
        install_bpf_linker(&toolchain)?;
    }
    check_host()?;
    install_packages(&missing_packages())?;
    install_static_target()
}

/// The musl target of the host toolchain, for the VM guests' static kmsd.
fn install_static_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == crate::build::STATIC_TARGET)
    {
        return Ok(());
    }
    workspace::run(Command::new("rustup").args(["target", "add", crate::build::STATIC_TARGET]))
}

/// Debian packages the tests run, keyed by a command each provides.
const PACKAGES: [(&str, &str); 5] = [
    // promtool lints a scrape; a real Prometheus scrapes kmsd.
    ("promtool", "prometheus"),
    ("prometheus", "prometheus"),
    // The VM tests: qemu, and the decompressors for kernels and modules.
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("xz", "xz-utils"),
    ("zstd", "zstd"),
];

fn missing_packages() -> Vec<&'static str> {
    let mut missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(command, _)| {
            !Command::new(command)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|(_, package)| *package)
        .collect();
    missing.dedup();
    missing
}

fn install_packages(packages: &[&str]) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    eprintln!("installing {} with apt-get", packages.join(" "));
    let install = || {
        workspace::run(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(packages)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    if install().is_err() {
        // A fresh machine may have no package lists yet.
        workspace::run(Command::new("apt-get").args(["update", "-q"]))?;
        install().with_context(|| format!("installing {}", packages.join(" ")))?;
    }
    Ok(())
}

fn sysroot(toolchain: &str) -> Option<String> {
    let out = Command::new("rustup")
        .args(["run", toolchain, "rustc", "--print", "sysroot"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn toolchain_ready(toolchain: &str) -> bool {
    let Some(sysroot) = sysroot(toolchain) else {
        return false;
    };
    let has_src = Path::new(&sysroot)
        .join("lib/rustlib/src/rust/library/core")
        .is_dir();
    let has_clippy = Command::new("rustup")
        .args(["run", toolchain, "cargo-clippy", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    has_src && has_clippy
}

fn install_toolchain(toolchain: &str) -> Result<()> {
    // RUSTUP_AUTO_INSTALL=0 is the norm on our machines: install explicitly.
    let mut cmd = Command::new("rustup");
    cmd.args([
        "toolchain",
        "install",
        toolchain,
        "--profile",
        "minimal",
        "--no-self-update",
    ]);
    for component in COMPONENTS {
        cmd.args(["--component", component]);
    }
    workspace::run(&mut cmd)
        .context("installing the pinned BPF toolchain (is the rustup dist server reachable?)")?;
    workspace::run(
        Command::new("rustup")
            .args(["component", "add", "--toolchain", toolchain])
            .args(COMPONENTS),
    )
}

fn linker_path() -> std::path::PathBuf {
    tools_dir().join("bin/bpf-linker")
}

/// The stamp names the toolchain bpf-linker was built against: a new pin
/// means a new LLVM, so the linker is rebuilt.
fn stamp_path() -> std::path::PathBuf {
    tools_dir().join("bpf-linker.toolchain")
}

fn linker_ready(toolchain: &str) -> bool {
    let stamp_ok = fs::read_to_string(stamp_path()).is_ok_and(|s| s.trim() == toolchain);
    stamp_ok
        && Command::new(linker_path())
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

fn install_bpf_linker(toolchain: &str) -> Result<()> {
    let sysroot =
        sysroot(toolchain).with_context(|| format!("toolchain {toolchain} is not installed"))?;
    let lib_dir = Path::new(&sysroot).join("lib");
    // The nightly ships its LLVM as libLLVM.so.<major>.<minor>-rust-<version>.
    let llvm = fs::read_dir(&lib_dir)
        .with_context(|| format!("reading {}", lib_dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with("libLLVM.so."))
        .with_context(|| format!("{toolchain} ships no libLLVM.so.* in {}", lib_dir.display()))?;
    let major: String = llvm["libLLVM.so.".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    if major.is_empty() {
        bail!("cannot read the LLVM version from {llvm}");
    }

    let prefix = tools_dir().join("llvm");
    fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(lib_dir.join(&llvm), &link).context("linking libLLVM.so")?;

    let mut cmd = Command::new("rustup");
    cmd.args([
        "run",
        toolchain,
        "cargo",
        "install",
        "bpf-linker",
        "--version",
        BPF_LINKER_VERSION,
        "--locked",
    ])
    .args([
        "--no-default-features",
        "--features",
        &format!("llvm-{major}"),
        "--force",
        "--root",
    ])
    .arg(tools_dir())
    .env("LLVM_PREFIX", &prefix)
    .env(
        "RUSTFLAGS",
        format!("-C link-arg=-Wl,-rpath,{}", lib_dir.display()),
    )
    .env_remove("RUSTUP_TOOLCHAIN")
    .env_remove("CARGO");
    workspace::run(&mut cmd).context("building bpf-linker")?;
    fs::write(stamp_path(), toolchain)?;
    Ok(())
}

/// The host facts the daemon and the tests rely on; each failure says how to fix it.
fn check_host() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "not root: loading BPF programs and creating network namespaces needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN); rerun with sudo"
        );
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!(
            "the kernel has no BTF (/sys/kernel/btf/vmlinux missing): use a kernel built with CONFIG_DEBUG_INFO_BTF=y"
        );
    }
    let mounts = fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    let bpffs = mounts.lines().any(|l| {
        l.split_whitespace().nth(1) == Some("/sys/fs/bpf")
            && l.split_whitespace().nth(2) == Some("bpf")
    });
    if !bpffs {
        eprintln!("bpffs is not mounted at /sys/fs/bpf: mounting it");
        workspace::run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))
            .context("mounting bpffs at /sys/fs/bpf")?;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        bail!(
            "`ip` (iproute2) is missing: the integration tests need it; install it with `apt-get install iproute2`"
        );
    }
    Ok(())
}
