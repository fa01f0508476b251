//! A private apt configuration under the cache: its own sources (bookworm,
//! bookworm-security, trixie-backports), lists and archives, so the host's
//! sources and package state are never touched.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

const SOURCES: &str = "\
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
";

pub struct Apt {
    root: PathBuf,
}

impl Apt {
    /// Writes the configuration and runs `apt-get update` against it.
    pub fn update(root: &Path) -> anyhow::Result<Self> {
        for dir in ["etc", "lists/partial", "archives/partial"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        std::fs::write(root.join("etc/sources.list"), SOURCES)?;
        let apt = Apt {
            root: root.to_path_buf(),
        };
        apt.run("apt-get", &["-q", "update"]).context(
            "apt-get update with the private configuration (is deb.debian.org reachable?)",
        )?;
        Ok(apt)
    }

    fn options(&self) -> Vec<String> {
        let r = self.root.display();
        vec![
            format!("-oDir::Etc::SourceList={r}/etc/sources.list"),
            "-oDir::Etc::SourceParts=/dev/null".into(),
            format!("-oDir::State::Lists={r}/lists"),
            format!("-oDir::Cache::Archives={r}/archives"),
            "-oDir::State::Status=/dev/null".into(),
            "-oAPT::Architecture=amd64".into(),
        ]
    }

    fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(tool)
            .args(self.options())
            .args(args)
            .output()
            .with_context(|| format!("running {tool}"))?;
        if !out.status.success() {
            bail!(
                "{tool} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Every package name starting with `prefix`.
    pub fn names(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .run("apt-cache", &["pkgnames", prefix])?
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// The `Depends:` line of a package.
    pub fn depends(&self, package: &str) -> anyhow::Result<String> {
        Ok(self
            .run("apt-cache", &["show", "--no-all-versions", package])?
            .lines()
            .find_map(|l| l.strip_prefix("Depends: "))
            .unwrap_or_default()
            .to_string())
    }

    /// Downloads `package` into `dir` and unpacks it there (`dpkg -x`).
    pub fn fetch_and_unpack(&self, package: &str, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let out = Command::new("apt-get")
            .args(self.options())
            .args(["-q", "download", package])
            .current_dir(dir)
            .output()?;
        if !out.status.success() {
            bail!(
                "apt-get download {package}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let deb = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
            })
            .with_context(|| format!("{package}: no .deb after download"))?;
        let status = Command::new("dpkg").arg("-x").arg(&deb).arg(dir).status()?;
        if !status.success() {
            bail!("dpkg -x {}", deb.display());
        }
        std::fs::remove_file(deb)?;
        Ok(())
    }
}

/// Sorts version strings the way `sort -V` does, closely enough for kernel
/// package names: digit runs compare as numbers.
pub fn version_key(text: &str) -> Vec<(u64, String)> {
    let mut key = Vec::new();
    let mut digits = String::new();
    let mut other = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !other.is_empty() {
                key.push((0, std::mem::take(&mut other)));
            }
            digits.push(c);
        } else {
            if !digits.is_empty() {
                key.push((digits.parse().unwrap_or(0), String::new()));
                digits.clear();
            }
            other.push(c);
        }
    }
    if !digits.is_empty() {
        key.push((digits.parse().unwrap_or(0), String::new()));
    }
    if !other.is_empty() {
        key.push((0, other));
    }
    key
}
