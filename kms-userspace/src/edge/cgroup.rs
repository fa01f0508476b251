//! The cgroup v2 the connection counter is attached to. sock_ops programs see
//! the sockets of processes in their cgroup (and below it), and an accepted
//! socket belongs to its listener's cgroup; so attaching to the daemon's own
//! cgroup counts exactly the connections the daemon accepts.

use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

/// Where a cgroup2 hierarchy is mounted when the host has none (cgroup v1
/// hosts; systemd's hybrid layout already has one at /sys/fs/cgroup/unified).
const OWN_MOUNT: &str = "/run/kms-edge/cgroup2";

/// The cgroup2 mount point, mounting one if there is none.
pub fn mount_point() -> anyhow::Result<PathBuf> {
    let info =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    if let Some(found) = info.lines().find_map(cgroup2_in_line) {
        return Ok(found);
    }
    let dir = Path::new(OWN_MOUNT);
    fs::create_dir_all(dir).with_context(|| format!("creating {OWN_MOUNT}"))?;
    let target = std::ffi::CString::new(OWN_MOUNT)?;
    // SAFETY: NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            c"cgroup2".as_ptr(),
            target.as_ptr(),
            c"cgroup2".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        bail!(
            "no cgroup2 hierarchy is mounted and mounting one at {OWN_MOUNT} failed: {} (needs root)",
            std::io::Error::last_os_error()
        );
    }
    Ok(dir.to_path_buf())
}

/// The mount point in one /proc/self/mountinfo line, if it is a cgroup2 mount.
fn cgroup2_in_line(line: &str) -> Option<PathBuf> {
    let (left, right) = line.split_once(" - ")?;
    if right.split_whitespace().next()? != "cgroup2" {
        return None;
    }
    left.split_whitespace().nth(4).map(PathBuf::from)
}

/// This process's cgroup in the v2 hierarchy mounted at `mount`.
fn own(mount: &Path) -> anyhow::Result<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/");
    Ok(mount.join(path.trim_start_matches('/')))
}

/// The cgroup to attach to: `requested` (a path under the cgroup2 mount, or
/// relative to it), created if missing, with this process moved into it so
/// the listeners bound afterwards belong to it; or, by default, the cgroup
/// the daemon already runs in.
pub fn resolve(requested: Option<&Path>) -> anyhow::Result<PathBuf> {
    let mount = mount_point()?;
    let Some(requested) = requested else {
        return own(&mount);
    };
    let path = if requested.is_absolute() {
        requested.to_path_buf()
    } else {
        mount.join(requested)
    };
    if !path.starts_with(&mount) {
        bail!(
            "--cgroup {}: not under the cgroup2 mount {}",
            requested.display(),
            mount.display()
        );
    }
    fs::create_dir_all(&path).with_context(|| format!("creating cgroup {}", path.display()))?;
    fs::write(path.join("cgroup.procs"), std::process::id().to_string())
        .with_context(|| format!("moving kmsd into cgroup {}", path.display()))?;
    Ok(path)
}

/// The cgroup's id (its inode number in cgroup2), to name its link pin.
pub fn id(path: &Path) -> anyhow::Result<u64> {
    Ok(fs::metadata(path)
        .with_context(|| format!("reading cgroup {}", path.display()))?
        .ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_mounts_in_mountinfo() {
        let line = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";
        assert_eq!(
            cgroup2_in_line(line),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let v1 = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu";
        assert_eq!(cgroup2_in_line(v1), None);
    }
}
