//! `cargo xtask test`: exactly what CI runs.

use anyhow::Result;
use clap::Args;

use crate::{build, workspace};

/// Userspace packages; kms-ebpf is linted separately with the BPF toolchain.
const HOST_PACKAGES: [&str; 5] = ["kms-common", "kms-userspace", "xtask", "tests", "vm-tests"];

#[derive(Args)]
pub struct TestArgs {
    /// Skip the fmt and clippy checks (for quick local iterations).
    #[arg(long)]
    no_lint: bool,
    /// Passed to the test binaries (a name filter, `--nocapture`, ...).
    #[arg(last = true)]
    test_args: Vec<String>,
}

pub fn run(args: &TestArgs) -> Result<()> {
    if !args.no_lint {
        lint()?;
    }
    let kmsd = build::kmsd(false)?;
    let guest_kmsd = build::kmsd_static()?;
    let mut cmd = workspace::cargo();
    cmd.arg("test");
    for package in HOST_PACKAGES {
        cmd.args(["--package", package]);
    }
    cmd.env("KMSD_BIN", &kmsd).env("KMS_VM_KMSD", &guest_kmsd);
    if !args.test_args.is_empty() {
        cmd.arg("--").args(&args.test_args);
    }
    let _ = std::fs::remove_file(vm_report());
    let result = workspace::run(&mut cmd);
    if let Ok(report) = std::fs::read_to_string(vm_report()) {
        eprint!("{report}");
    }
    result
}

/// The VM tests' per-kernel timings, written by the test.
fn vm_report() -> std::path::PathBuf {
    workspace::root().join("vm-tests/cache/last-run.txt")
}

fn lint() -> Result<()> {
    workspace::run(workspace::cargo().args(["fmt", "--all", "--", "--check"]))?;
    let mut clippy = workspace::cargo();
    clippy.args(["clippy", "--all-targets"]);
    for package in HOST_PACKAGES {
        clippy.args(["--package", package]);
    }
    workspace::run(clippy.args(["--", "-D", "warnings"]))?;

    let toolchain = workspace::bpf_toolchain()?;
    let target_dir = workspace::root().join("target/bpf");
    workspace::run(
        workspace::bpf_cargo(&toolchain)
            .args([
                "clippy",
                "--package",
                "kms-ebpf",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .args(["--", "-D", "warnings"]),
    )
}

/// `cargo xtask vm-test`: only the VM tests, for the kernels and accelerator given.
pub fn vm(kernels: &[String], accel: &str) -> Result<()> {
    let kmsd = build::kmsd(false)?;
    let guest_kmsd = build::kmsd_static()?;
    let mut cmd = workspace::cargo();
    cmd.args(["test", "--package", "vm-tests", "--test", "kernels"])
        .env("KMSD_BIN", &kmsd)
        .env("KMS_VM_KMSD", &guest_kmsd)
        .env("KMS_VM_ACCEL", accel)
        .args(["--", "--nocapture"]);
    if !kernels.is_empty() {
        cmd.env("KMS_VM_KERNELS", kernels.join(","));
    }
    workspace::run(&mut cmd)
}
