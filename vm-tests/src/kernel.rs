//! Debian kernels for the guests: chosen from the private apt lists,
//! downloaded and unpacked once, the uncompressed vmlinux extracted for a
//! direct (PVH) boot (decompressing a bzImage under TCG costs seconds), and
//! the virtio network modules decompressed (busybox insmod reads plain .ko).

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use crate::apt::{Apt, version_key};

/// The virtio network stack, in load order, then the socket-diagnostics
/// modules kmsd's flush uses (a full system loads those on demand); kernels
/// that build some of them in simply lack those files.
pub const MODULES: [&str; 10] = [
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
    "inet_diag",
    "tcp_diag",
];

/// Which kernel: a series (`6.1`, `6.12`, `7.3`) or `newest` (the newest
/// trixie-backports kernel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    Series(String),
    Newest,
}

impl Spec {
    pub fn parse(text: &str) -> Spec {
        match text.trim() {
            "newest" | "backports" => Spec::Newest,
            other => Spec::Series(other.to_string()),
        }
    }

    /// The defaults: Debian 12's 6.1 and 6.12, and the newest backport.
    pub fn defaults() -> Vec<Spec> {
        vec![
            Spec::Series("6.1".into()),
            Spec::Series("6.12".into()),
            Spec::Newest,
        ]
    }
}

pub struct Kernel {
    /// `uname -r`, e.g. `6.1.0-57-amd64`.
    pub release: String,
    pub vmlinux: PathBuf,
    /// (module name, decompressed .ko) for the modules this kernel ships.
    pub modules: Vec<(String, PathBuf)>,
}

/// The image package and kernel release `spec` names in the apt lists.
pub fn choose(apt: &Apt, spec: &Spec) -> anyhow::Result<(String, String)> {
    let mut releases: Vec<String> = apt
        .names("linux-image-")?
        .into_iter()
        .filter_map(|n| n.strip_prefix("linux-image-").map(str::to_string))
        .filter(|r| r.ends_with("-amd64") && r.starts_with(|c: char| c.is_ascii_digit()))
        .filter(|r| {
            !["cloud", "-rt-", "dbg", "unsigned"]
                .iter()
                .any(|x| r.contains(x))
        })
        .filter(|r| match spec {
            Spec::Series(s) => r.starts_with(&format!("{s}.")),
            Spec::Newest => r.contains("+deb13"),
        })
        .collect();
    releases.sort_by_key(|r| version_key(r));
    let release = releases
        .pop()
        .with_context(|| format!("no Debian kernel package matches {spec:?} in bookworm, bookworm-security or trixie-backports"))?;
    Ok((format!("linux-image-{release}"), release))
}

/// Downloads (or finds in the cache) the kernel `spec` names.
pub fn fetch(apt: &Apt, cache: &Path, spec: &Spec) -> anyhow::Result<Kernel> {
    let (package, release) = choose(apt, spec)?;
    let dir = cache.join("kernels").join(&release);
    let vmlinux = dir.join("vmlinux");
    let modules_dir = dir.join("modules");
    let done = dir.join("complete");
    if !done.exists() {
        let unpacked = dir.join("unpacked");
        let _ = std::fs::remove_dir_all(&unpacked);
        apt.fetch_and_unpack(&package, &unpacked)?;
        // Newer packaging splits the kernel (linux-binary-*) and its modules
        // (linux-modules-*) out of the linux-image-* metapackage.
        for dep in apt.depends(&package)?.split(',') {
            let name = dep.split_whitespace().next().unwrap_or_default();
            if name.starts_with("linux-binary-") || name.starts_with("linux-modules-") {
                apt.fetch_and_unpack(name, &unpacked)?;
            }
        }
        // Older packages ship /boot/vmlinuz-<release>; newer ones keep the
        // image next to the modules.
        let vmlinuz = [
            format!("boot/vmlinuz-{release}"),
            format!("usr/lib/modules/{release}/vmlinuz"),
            format!("lib/modules/{release}/vmlinuz"),
        ]
        .iter()
        .map(|p| unpacked.join(p))
        .find(|p| p.exists())
        .with_context(|| format!("{package} has no vmlinuz-{release}"))?;
        std::fs::write(&vmlinux, extract_vmlinux(&std::fs::read(&vmlinuz)?)?)?;
        std::fs::create_dir_all(&modules_dir)?;
        let tree = ["lib/modules", "usr/lib/modules"]
            .iter()
            .map(|d| unpacked.join(d).join(&release))
            .find(|p| p.exists())
            .with_context(|| format!("{package} has no modules for {release}"))?;
        for module in MODULES {
            if let Some(found) = find_module(&tree, module)? {
                std::fs::write(
                    modules_dir.join(format!("{module}.ko")),
                    decompress_module(&found)?,
                )?;
            }
        }
        std::fs::remove_dir_all(&unpacked)?;
        std::fs::write(&done, &package)?;
    }
    let modules = MODULES
        .iter()
        .map(|m| (m.to_string(), modules_dir.join(format!("{m}.ko"))))
        .filter(|(_, p)| p.exists())
        .collect();
    Ok(Kernel {
        release,
        vmlinux,
        modules,
    })
}

fn find_module(dir: &Path, name: &str) -> anyhow::Result<Option<PathBuf>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if let Some(found) = find_module(&path, name)? {
                return Ok(Some(found));
            }
        } else if let Some(file) = path.file_name().and_then(|f| f.to_str())
            && [".ko", ".ko.xz", ".ko.zst"]
                .iter()
                .any(|ext| file == format!("{name}{ext}"))
        {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Pipes `input` through `tool -dc`; whatever it produced, even if it then
/// complained about trailing data.
fn decompress(tool: &str, input: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new(tool)
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {tool} (install xz-utils and zstd)"))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output()?;
    let _ = writer.join();
    Ok(out.stdout)
}

fn decompress_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path)?;
    let name = path.to_string_lossy();
    if name.ends_with(".xz") {
        decompress("xz", &bytes)
    } else if name.ends_with(".zst") {
        decompress("zstd", &bytes)
    } else {
        Ok(bytes)
    }
}

/// The kernel tree's scripts/extract-vmlinux, in Rust: find a compressed
/// stream's magic in the bzImage and decompress from there until the result
/// is an ELF file.
pub fn extract_vmlinux(image: &[u8]) -> anyhow::Result<Vec<u8>> {
    const CANDIDATES: [(&[u8], &str); 2] = [
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
    ];
    for (magic, tool) in CANDIDATES {
        let offsets = image
            .windows(magic.len())
            .enumerate()
            .filter(|(_, w)| w == &magic)
            .map(|(i, _)| i)
            .take(4);
        for offset in offsets {
            let out = decompress(tool, &image[offset..])?;
            if out.starts_with(b"\x7fELF") {
                return Ok(out);
            }
        }
    }
    bail!("no xz or zstd stream in the kernel image decompresses to an ELF vmlinux")
}
