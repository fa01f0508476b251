//! Network namespaces and bpffs mounts as guards.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

use crate::ip;

/// A named network namespace (`ip netns add`), deleted on drop along with
/// every interface inside it.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> anyhow::Result<Self> {
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.exec(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs `ip ARGS` inside this namespace.
    pub fn exec(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    pub fn open(&self) -> anyhow::Result<File> {
        File::open(self.path()).with_context(|| format!("opening netns {}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Switches the calling thread into `ns`. Sockets created afterwards belong
/// to `ns` for their whole life, whichever thread later uses them.
pub fn enter(ns: &File) -> std::io::Result<()> {
    // SAFETY: setns on a valid namespace fd only changes this thread's netns.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a fresh thread inside `ns` and returns its result.
pub fn in_netns<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let file = ns.open()?;
    std::thread::spawn(move || {
        enter(&file).expect("setns");
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("thread inside netns panicked"))
}

/// A private bpffs mount for one test's pins, unmounted on drop (which also
/// drops every pin in it).
pub struct Bpffs {
    pub dir: PathBuf,
}

impl Bpffs {
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("kms-edge-test-{name}"));
        std::fs::create_dir_all(&dir)?;
        let out = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir)
            .output()?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            bail!(
                "mount bpffs at {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Bpffs { dir })
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A cgroup v2 of its own for one test's kmsd (the connection counter
/// watches it), removed on drop once its processes are gone.
pub struct TestCgroup {
    pub path: PathBuf,
}

impl TestCgroup {
    /// A path for a fresh cgroup under the cgroup2 mount; kmsd creates it
    /// (`--cgroup`) and moves itself in.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let info = std::fs::read_to_string("/proc/self/mountinfo")?;
        let mount = info
            .lines()
            .find_map(|line| {
                let (left, right) = line.split_once(" - ")?;
                (right.split_whitespace().next()? == "cgroup2")
                    .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
            })
            // kmsd mounts one here when the host has none.
            .unwrap_or_else(|| PathBuf::from("/run/kms-edge/cgroup2"));
        Ok(TestCgroup {
            path: mount.join(format!("kms-edge-test-{name}")),
        })
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // The last process leaves a moment after it is reaped.
        for _ in 0..50 {
            if !self.path.exists() || std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
