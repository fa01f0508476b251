//! The pin directory: a bpffs folder holding the maps (pinned by name) and one
//! link per attached interface, named `xdp-<mode>-<iface>` so an operator (and
//! a restarted daemon) can see what is attached where without asking netlink.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

/// `statfs(2)` magic of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// The mode an XDP link was attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    Native,
    Skb,
}

impl AttachMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Skb => "skb",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "native" => Some(AttachMode::Native),
            "skb" => Some(AttachMode::Skb),
            _ => None,
        }
    }
}

/// A pinned XDP link found in the pin directory.
#[derive(Debug, Clone)]
pub struct LinkPin {
    pub iface: String,
    pub mode: AttachMode,
    pub path: PathBuf,
}

pub fn link_pin_path(dir: &Path, iface: &str, mode: AttachMode) -> PathBuf {
    dir.join(format!("xdp-{}-{iface}", mode.as_str()))
}

pub fn sock_ops_pin_path(dir: &Path, cgroup_id: u64) -> PathBuf {
    dir.join(format!("sockops-{cgroup_id}"))
}

/// Every pinned sock_ops link in `dir`.
pub fn sock_ops_pins(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut pins = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("sockops-") {
            pins.push(entry.path());
        }
    }
    pins.sort();
    Ok(pins)
}

/// Every pinned XDP link in `dir`.
pub fn link_pins(dir: &Path) -> io::Result<Vec<LinkPin>> {
    let mut pins = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("xdp-") else {
            continue;
        };
        let Some((mode, iface)) = rest.split_once('-') else {
            continue;
        };
        if let Some(mode) = AttachMode::parse(mode) {
            pins.push(LinkPin {
                iface: iface.to_string(),
                mode,
                path: entry.path(),
            });
        }
    }
    pins.sort_by(|a, b| a.iface.cmp(&b.iface));
    Ok(pins)
}

/// Makes sure `dir` exists on a bpffs. Mounts bpffs at /sys/fs/bpf when the
/// directory is under it and nothing is mounted there yet (as systemd would).
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    if dir.starts_with(BPFFS_ROOT) && !is_bpffs(Path::new(BPFFS_ROOT)) {
        mount_bpffs(Path::new(BPFFS_ROOT))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating pin directory {}", dir.display()))?;
    if !is_bpffs(dir) {
        bail!(
            "pin directory {} is not on a bpffs; mount one (`mount -t bpf bpf {}`) or pick a directory under {BPFFS_ROOT}",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// The pin directory of a daemon that has run, for commands that only read.
pub fn existing(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        bail!(
            "no kms-edge state at {}: the daemon has not run with this --pin-dir (or `kmsd xdp detach` removed it)",
            dir.display()
        );
    }
    Ok(())
}

pub fn is_bpffs(path: &Path) -> bool {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated and stat is a valid out-pointer.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut stat) };
    rc == 0 && stat.f_type as i64 == BPF_FS_MAGIC
}

fn mount_bpffs(at: &Path) -> anyhow::Result<()> {
    let target = std::ffi::CString::new(at.as_os_str().as_encoded_bytes())?;
    // SAFETY: all pointers are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        bail!(
            "bpffs is not mounted at {} and mounting it failed: {err} (needs root / CAP_SYS_ADMIN)",
            at.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_pin_names_round_trip_including_dashed_interfaces() {
        let dir = std::env::temp_dir().join(format!("kmsd-pins-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for (iface, mode) in [("eth0", AttachMode::Native), ("veth-a-b", AttachMode::Skb)] {
            fs::write(link_pin_path(&dir, iface, mode), b"").unwrap();
        }
        fs::write(dir.join("KMS_STATS"), b"").unwrap();
        let pins = link_pins(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let found: Vec<(&str, AttachMode)> =
            pins.iter().map(|p| (p.iface.as_str(), p.mode)).collect();
        assert_eq!(
            found,
            vec![("eth0", AttachMode::Native), ("veth-a-b", AttachMode::Skb)]
        );
    }
}
