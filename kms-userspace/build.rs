//! Builds the BPF object (kms-ebpf) with the pinned nightly and hands it to the
//! daemon through `OUT_DIR`, so `kmsd` can never embed a stale or missing
//! object: every userspace build runs the BPF build, and cargo's own
//! incremental check decides whether anything is recompiled.
//!
//! `KMS_EBPF_OBJECT=/path/to/object` embeds a prebuilt object instead (for
//! cross builds); the build fails if the file does not exist.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use sha2::{Digest, Sha256};

const BPF_TARGET: &str = "bpfel-unknown-none";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest_dir
        .parent()
        .expect("kms-userspace is in the workspace");
    let ebpf_dir = workspace.join("kms-ebpf");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));

    println!("cargo::rerun-if-env-changed=KMS_EBPF_OBJECT");
    let built = match env::var_os("KMS_EBPF_OBJECT") {
        Some(prebuilt) => PathBuf::from(prebuilt),
        None => {
            for input in [
                ebpf_dir.join("src"),
                ebpf_dir.join("Cargo.toml"),
                ebpf_dir.join("rust-toolchain.toml"),
                workspace.join("kms-common/src"),
                workspace.join("kms-common/Cargo.toml"),
                workspace.join("Cargo.lock"),
            ] {
                println!("cargo::rerun-if-changed={}", input.display());
            }
            build_ebpf(workspace, &ebpf_dir)
        }
    };
    let object = fs::read(&built).unwrap_or_else(|e| {
        fail(&format!(
            "cannot read the BPF object {}: {e}",
            built.display()
        ))
    });
    fs::write(out_dir.join("kms-ebpf.o"), &object).expect("OUT_DIR is writable");
    let sha = Sha256::digest(&object);
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo::rustc-env=KMS_EBPF_SHA256={hex}");
}

/// Runs `cargo build` for the BPF crate with the toolchain pinned in its
/// rust-toolchain.toml and returns the path of the object it produced.
fn build_ebpf(workspace: &Path, ebpf_dir: &Path) -> PathBuf {
    let toolchain = pinned_toolchain(&ebpf_dir.join("rust-toolchain.toml"));
    let tools_bin = workspace.join(".tools/bin");
    let path = env::join_paths(
        std::iter::once(tools_bin.clone())
            .chain(env::split_paths(&env::var_os("PATH").unwrap_or_default())),
    )
    .expect("PATH entries are valid");
    let has_linker = env::split_paths(&path).any(|dir| dir.join("bpf-linker").is_file());
    if !has_linker {
        fail("bpf-linker is not installed: run `cargo xtask setup` (it builds it into .tools/bin)");
    }

    let target_dir = workspace.join("target/bpf");
    let mut cmd = Command::new("rustup");
    cmd.args([
        "run",
        &toolchain,
        "cargo",
        "build",
        "--package",
        "kms-ebpf",
        "--release",
    ]);
    cmd.args([
        "--target",
        BPF_TARGET,
        "-Z",
        "build-std=core",
        "--target-dir",
    ]);
    cmd.arg(&target_dir)
        .current_dir(ebpf_dir)
        .env("PATH", &path);
    // The outer cargo's settings (stable rustc, clippy's wrapper, host flags)
    // must not leak into the nested nightly build.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_")
            || key.starts_with("RUSTC")
            || key.starts_with("RUSTUP_TOOLCHAIN")
            || key == "RUSTFLAGS"
            || key == "RUSTDOCFLAGS"
            || key == "CARGO"
        {
            cmd.env_remove(&key);
        }
    }
    // BTF lets the kernel (and bpftool) show the maps' types; cpu v3 has the
    // atomic fetch-add and compare-exchange instructions (kernel 5.12+).
    cmd.env(
        "CARGO_ENCODED_RUSTFLAGS",
        "-Cdebuginfo=2\u{1f}-Clink-arg=--btf\u{1f}-Ctarget-cpu=v3",
    );
    let status = cmd
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run rustup: {e}")));
    if !status.success() {
        fail(&format!(
            "building kms-ebpf with {toolchain} failed ({status}); if the toolchain or rust-src is missing, run `cargo xtask setup`"
        ));
    }
    target_dir.join(BPF_TARGET).join("release/kms-ebpf")
}

fn pinned_toolchain(file: &Path) -> String {
    let text = fs::read_to_string(file)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", file.display())));
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|value| value.trim().trim_matches('"').to_string())
        .next()
        .unwrap_or_else(|| fail(&format!("{} has no channel", file.display())))
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    panic!("{message}");
}
