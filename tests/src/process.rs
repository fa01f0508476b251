//! A `kmsd` process inside a network namespace, killed on drop.

use std::{
    fs::File,
    os::unix::process::{CommandExt as _, ExitStatusExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::netns::{Netns, enter};

/// Path of the kmsd binary under test: `KMSD_BIN` (set by `cargo xtask test`)
/// or the debug build.
pub fn kmsd_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("KMSD_BIN") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/kmsd");
    assert!(
        path.exists(),
        "kmsd is not built: run the tests with `cargo xtask test`, or set KMSD_BIN"
    );
    path
}

/// A `kmsd` command that runs inside `ns` (network namespace only: the
/// filesystem, bpffs included, stays the test's).
pub fn kmsd_in(ns: &Netns) -> anyhow::Result<Command> {
    let file = ns.open()?;
    let mut cmd = Command::new(kmsd_bin());
    // SAFETY: setns is async-signal-safe; `file` outlives the fork.
    unsafe {
        cmd.pre_exec(move || enter(&file));
    }
    Ok(cmd)
}

pub struct Kmsd {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Kmsd {
    /// Starts `kmsd serve ARGS` in `ns`, logging to `log`.
    pub fn serve(ns: &Netns, args: &[&str], log: PathBuf) -> anyhow::Result<Self> {
        let out = File::create(&log)?;
        let child = kmsd_in(ns)?
            .arg("--log-level")
            .arg("kms_userspace=debug,info")
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting kmsd")?;
        Ok(Kmsd {
            child: Some(child),
            log,
        })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) until the log contains `needle`; fails early if kmsd exits.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        self.wait_for_log_count(needle, 1, timeout)
    }

    /// Waits (bounded) until the log contains `needle` at least `count` times.
    pub fn wait_for_log_count(
        &mut self,
        needle: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_text().matches(needle).count() >= count {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "kmsd exited ({status}) before logging {needle:?}:\n{}",
                    self.log_text()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "kmsd did not log {needle:?} within {timeout:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn stop(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let child = self.child.as_mut().context("kmsd already stopped")?;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        self.wait_exit(timeout)
    }

    /// SIGKILL: the daemon gets no chance to clean up.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("kmsd already stopped")?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Waits (bounded) for kmsd to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let child = self.child.as_mut().context("kmsd already stopped")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("kmsd did not exit within {timeout:?}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Kmsd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- kmsd log ({}) ---\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// Whether the process ended by itself with status 0.
pub fn exited_cleanly(status: ExitStatus) -> bool {
    status.success() && status.signal().is_none()
}
