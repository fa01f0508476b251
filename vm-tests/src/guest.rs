//! A guest: qemu inside a network namespace of its own, its virtio NIC on a
//! tap device there (the host side of the tests), its serial console on
//! qemu's stdio. The host types shell commands; `init.sh` frames each one's
//! output. qemu is killed by PID and the namespace removed on every exit path.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::Ipv4Addr,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tests::{Netns, netns::enter, unique_name};

use crate::kernel::Kernel;

/// How qemu runs the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Pure emulation: slow, works everywhere (this machine kind's KVM cannot
    /// run stock kernels).
    Tcg,
    /// Hardware virtualisation, for runners with VMX/SVM.
    Kvm,
}

impl Accel {
    pub fn parse(text: &str) -> anyhow::Result<Accel> {
        match text {
            "tcg" => Ok(Accel::Tcg),
            "kvm" => Ok(Accel::Kvm),
            other => bail!("accel {other:?}: expected tcg or kvm"),
        }
    }
}

/// Boot bound under TCG (measured 3-4 s; slow CI machines get headroom).
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Guest {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    next: u32,
    pub log: PathBuf,
    pub host_addr: Ipv4Addr,
    pub guest_addr: Ipv4Addr,
    pub boot_time: Duration,
    // Dropped after qemu is killed (field order).
    pub netns: Netns,
}

impl Guest {
    /// Boots `kernel` with `initramfs`, the guest at 198.18.`subnet`.2 and the
    /// host side (a tap in a fresh namespace) at .1; waits for /init.
    pub fn boot(
        kernel: &Kernel,
        initramfs: &Path,
        accel: Accel,
        subnet: u8,
        log: &Path,
    ) -> anyhow::Result<Guest> {
        let id = unique_name("");
        let netns = Netns::new(format!("kms-edge-vm-{id}"))?;
        let tap = format!("kv{id}");
        let host_addr = Ipv4Addr::new(198, 18, subnet, 1);
        let guest_addr = Ipv4Addr::new(198, 18, subnet, 2);
        netns.exec(&["tuntap", "add", "dev", &tap, "mode", "tap"])?;
        netns.exec(&["addr", "add", &format!("{host_addr}/24"), "dev", &tap])?;
        netns.exec(&["link", "set", &tap, "up"])?;
        netns.exec(&["link", "set", "lo", "up"])?;

        let mut cmd = Command::new("qemu-system-x86_64");
        match accel {
            Accel::Tcg => cmd.args(["-accel", "tcg", "-cpu", "max"]),
            Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        };
        cmd.args(["-m", "512", "-smp", "1", "-nodefaults", "-no-reboot"])
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
            .arg("-kernel")
            .arg(&kernel.vmlinux)
            .arg("-initrd")
            .arg(initramfs)
            .arg("-append")
            .arg(format!(
                "console=ttyS0 quiet panic=-1 kms.addr={guest_addr}/24"
            ))
            .arg("-netdev")
            .arg(format!("tap,id=n0,ifname={tap},script=no,downscript=no"))
            .args(["-device", "virtio-net-pci,netdev=n0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let file = netns.open()?;
        // SAFETY: setns is async-signal-safe; `file` outlives the fork.
        unsafe {
            cmd.pre_exec(move || enter(&file));
        }
        let mut child = cmd.spawn().context("starting qemu-system-x86_64")?;
        let stdin = child.stdin.take().context("qemu stdin")?;
        let stdout = child.stdout.take().context("qemu stdout")?;
        let stderr = child.stderr.take().context("qemu stderr")?;
        let (tx, lines) = mpsc::channel();
        let mut log_file = std::fs::File::create(log)?;
        let mut err_log = log_file.try_clone()?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let line = line.trim_end_matches('\r').to_string();
                let _ = writeln!(log_file, "{line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(err_log, "qemu: {line}");
            }
        });
        let mut guest = Guest {
            child,
            stdin,
            lines,
            next: 0,
            log: log.to_path_buf(),
            host_addr,
            guest_addr,
            boot_time: Duration::ZERO,
            netns,
        };
        let started = Instant::now();
        guest
            .wait_line(|l| l.starts_with("@@READY"), BOOT_TIMEOUT)
            .with_context(|| format!("{} did not reach /init", kernel.release))?;
        guest.boot_time = started.elapsed();
        Ok(guest)
    }

    fn wait_line(
        &mut self,
        mut want: impl FnMut(&str) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return Ok(line),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("timed out after {timeout:?}\n{}", self.tail(30))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("qemu exited\n{}", self.tail(30))
                }
            }
        }
    }

    /// Runs a shell command in the guest; its exit status and output.
    pub fn run(&mut self, command: &str, timeout: Duration) -> anyhow::Result<(i32, String)> {
        self.next += 1;
        let n = self.next;
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        let begin = format!("@@BEGIN {n}");
        self.wait_line(|l| l == begin, timeout)
            .with_context(|| format!("guest command {command:?} did not start"))?;
        let end = format!("@@END {n} ");
        let mut output = String::new();
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).map_err(|_| {
                anyhow::anyhow!(
                    "guest command {command:?} did not finish within {timeout:?}\n{}",
                    self.tail(30)
                )
            })?;
            if let Some(status) = line.strip_prefix(&end) {
                return Ok((status.trim().parse().unwrap_or(-1), output));
            }
            output.push_str(&line);
            output.push('\n');
        }
    }

    /// [`Self::run`], failing unless the command exits 0.
    pub fn ok(&mut self, command: &str, timeout: Duration) -> anyhow::Result<String> {
        let (status, output) = self.run(command, timeout)?;
        if status != 0 {
            bail!("guest command {command:?} exited {status}:\n{output}");
        }
        Ok(output)
    }

    /// The last `n` lines of the serial log.
    pub fn tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Powers the guest off and waits (bounded) for qemu to exit.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = writeln!(self.stdin, "poweroff -f");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("qemu did not exit after poweroff")
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
