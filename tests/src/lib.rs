//! A harness for integration tests that need a network: every test gets its
//! own server and client network namespaces joined by a veth pair, its own
//! bpffs mount for pins, and a `kmsd` process inside the server namespace.
//! Everything is torn down by guards, so a failing or panicking test leaves
//! nothing behind, and unique names let tests run in parallel.

pub mod http;
pub mod netns;
pub mod packet;
pub mod process;
pub mod tcp;
pub mod testbed;

pub use netns::{Bpffs, Netns, TestCgroup, in_netns};
pub use process::Kmsd;
pub use testbed::{CLIENT_V4, CLIENT_V6, SERVER_V4, SERVER_V6, Testbed};

use std::sync::atomic::{AtomicU32, Ordering};

/// A short name unique across the tests of this run and concurrent runs:
/// `<prefix><pid base36><counter>`, kept short because interface names have 15
/// characters at most.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}{n}", base36(std::process::id()))
}

fn base36(mut n: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new("ip").args(args).output()?;
    if !out.status.success() {
        anyhow::bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
