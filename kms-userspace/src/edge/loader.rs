//! Loading the BPF object and attaching (or adopting) the XDP program.
//!
//! Maps are pinned by name in the pin directory and links as `xdp-<mode>-<iface>`.
//! A daemon that finds a pinned link for its interface swaps its freshly loaded
//! program into that link atomically (`bpf_link_update`), so enforcement never
//! lapses across restarts and the pinned maps keep their contents. The daemon
//! never detaches on its own: `kmsd xdp detach` does. The sock_ops link is
//! pinned as `sockops-<cgroup id>` and adopted the same way.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    programs::{
        CgroupAttachMode, SockOps, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
    },
};
use kms_common::names;
use tracing::{error, info, warn};

use std::{sync::Arc, time::Duration};

use crate::{observe::ready::Readiness, shutdown::Shutdown};

use super::{
    BPF_OBJECT, cgroup,
    limits::Limits,
    link,
    pins::{self, AttachMode, LinkPin},
    state,
    tables::Tables,
};
use crate::config::{XdpModeChoice, XdpSettings};

/// The loaded object and what it is attached to.
pub struct Edge {
    pub ebpf: Ebpf,
    pub tables: Tables,
    pub limits: Limits,
    pub pin_dir: PathBuf,
    pub cgroup: PathBuf,
    pub attachments: Vec<Attachment>,
    /// Interfaces that refused the program; [`keep_attached`] retries them.
    pub pending: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub iface: String,
    pub mode: AttachMode,
    /// True when an existing pinned link was taken over.
    pub adopted: bool,
}

/// Loads the object with its maps pinned in `settings.pin_dir`, writes the
/// limits, restores the state file, attaches the connection counter to
/// `cgroup` and the XDP program to every configured interface. An interface
/// that refuses the program is reported in `readiness` and left in
/// [`Edge::pending`]; a program the kernel rejects fails the start.
pub fn start(
    settings: &XdpSettings,
    cgroup: &Path,
    interfaces: &[String],
    readiness: &Readiness,
) -> anyhow::Result<Edge> {
    pins::prepare(&settings.pin_dir)?;
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(&settings.pin_dir)
        .load(BPF_OBJECT)
        .context("loading the BPF object")?;

    // Configuration first: a restarted daemon's programs must see the limits
    // from their first packet on.
    let mut tables = Tables::from_loaded(&mut ebpf)?;
    let limits = configure(&mut tables, settings)?;

    let sock_ops: &mut SockOps = ebpf
        .program_mut(names::SOCK_OPS_PROGRAM)
        .ok_or_else(|| anyhow!("the BPF object has no program {}", names::SOCK_OPS_PROGRAM))?
        .try_into()?;
    sock_ops
        .load()
        .context("the kernel rejected the sock_ops program")?;
    attach_sock_ops(sock_ops, &settings.pin_dir, cgroup)?;

    let program: &mut Xdp = ebpf
        .program_mut(names::XDP_PROGRAM)
        .ok_or_else(|| anyhow!("the BPF object has no program {}", names::XDP_PROGRAM))?
        .try_into()?;
    // The verifier's log is part of the error, so a rejection explains itself.
    program
        .load()
        .context("the kernel rejected the XDP program")?;

    let mut attachments = Vec::new();
    let mut pending = Vec::new();
    for iface in interfaces {
        match attach_with_pins(program, settings, iface) {
            Ok(attachment) => {
                readiness.interface(iface, Ok(attachment.mode.as_str().to_string()));
                attachments.push(attachment);
            }
            Err(e) => {
                let error = format!("{e:#}");
                error!(
                    iface,
                    error,
                    "XDP not attached; retrying every {} s",
                    ATTACH_RETRY.as_secs()
                );
                readiness.interface(iface, Err(error));
                pending.push(iface.clone());
            }
        }
    }
    if pending.is_empty() {
        log_ready(&attachments, &settings.pin_dir);
    }
    Ok(Edge {
        ebpf,
        tables,
        limits,
        pin_dir: settings.pin_dir.clone(),
        cgroup: cgroup.to_path_buf(),
        attachments,
        pending,
    })
}

/// How often an interface that refused the program is tried again.
const ATTACH_RETRY: Duration = Duration::from_secs(5);

fn log_ready(attachments: &[Attachment], pin_dir: &Path) {
    info!(
        interfaces = %attachments.iter().map(|a| format!("{}:{}", a.iface, a.mode.as_str())).collect::<Vec<_>>().join(","),
        pin_dir = %pin_dir.display(),
        "edge enforcer ready"
    );
}

fn attach_with_pins(
    program: &mut Xdp,
    settings: &XdpSettings,
    iface: &str,
) -> anyhow::Result<Attachment> {
    let existing = pins::link_pins(&settings.pin_dir).context("listing pinned links")?;
    let pinned = existing.iter().find(|p| p.iface == iface);
    attach_one(program, &settings.pin_dir, iface, settings.mode, pinned)
}

/// Holds the loaded object until shutdown (its programs stay referenced by
/// the pinned links either way) and retries the interfaces that refused the
/// program: an interface may appear or come up after the daemon starts.
pub async fn keep_attached(
    mut ebpf: Ebpf,
    settings: XdpSettings,
    mut pending: Vec<String>,
    readiness: Arc<Readiness>,
    mut shutdown: Shutdown,
) {
    let mut attachments = Vec::new();
    let mut last_errors: Vec<(String, String)> = Vec::new();
    while !pending.is_empty() {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(ATTACH_RETRY) => {}
        }
        let Some(program) = ebpf
            .program_mut(names::XDP_PROGRAM)
            .and_then(|p| <&mut Xdp>::try_from(p).ok())
        else {
            return;
        };
        let mut still = Vec::new();
        for iface in pending {
            match attach_with_pins(program, &settings, &iface) {
                Ok(attachment) => {
                    readiness.interface(&iface, Ok(attachment.mode.as_str().to_string()));
                    attachments.push(attachment);
                }
                Err(e) => {
                    let error = format!("{e:#}");
                    // Say it again only when it changes, not every 5 s.
                    if !last_errors
                        .iter()
                        .any(|(i, old)| i == &iface && old == &error)
                    {
                        error!(iface, error, "XDP still not attached");
                        last_errors.retain(|(i, _)| i != &iface);
                        last_errors.push((iface.clone(), error.clone()));
                    }
                    readiness.interface(&iface, Err(error));
                    still.push(iface);
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            log_ready(&attachments, &settings.pin_dir);
        }
    }
    shutdown.wait().await;
    drop(ebpf);
}

/// Writes the effective limits (the pinned ones, with whatever the daemon's
/// options set on top), the allow list, and restores the state file.
fn configure(tables: &mut Tables, settings: &XdpSettings) -> anyhow::Result<Limits> {
    let pinned = Limits::from_config(&tables.config()?);
    let base = pinned.clone().unwrap_or_default();
    let limits = settings.limits.apply(&base)?;
    if pinned.as_ref() != Some(&limits) {
        tables.set_config(&limits.to_config())?;
    }
    if let Some(old) = &pinned
        && old.ipv6_prefix != limits.ipv6_prefix
    {
        let forgotten = tables.clear_sources()?;
        info!(forgotten, "IPv6 prefix changed: per-source counts restart");
    }
    info!(limits = %limits.summary(), kept = pinned.is_some(), "enforcer limits");
    for net in &settings.allow {
        tables.allow(*net)?;
    }
    if let Some(path) = &settings.state_file
        && let Some(saved) = state::load(path)?
    {
        let restored = state::restore(tables, &saved, limits.block_lifetime)?;
        info!(restored, file = %path.display(), "block table restored from the state file");
    }
    Ok(limits)
}

/// Attaches the connection counter to `cgroup`, or swaps the new program into
/// the link a previous daemon pinned for the same cgroup.
fn attach_sock_ops(program: &mut SockOps, pin_dir: &Path, cgroup: &Path) -> anyhow::Result<()> {
    let cgroup_id = cgroup::id(cgroup)?;
    let path = pins::sock_ops_pin_path(pin_dir, cgroup_id);
    for stale in pins::sock_ops_pins(pin_dir)? {
        if stale != path {
            info!(pin = %stale.display(), "removing the connection counter of another cgroup");
            std::fs::remove_file(&stale)
                .with_context(|| format!("removing {}", stale.display()))?;
        }
    }
    if path.exists() {
        match link::update_pinned(&path, program.fd()?) {
            Ok(()) => {
                info!(cgroup = %cgroup.display(), "adopted the pinned sock_ops link");
                return Ok(());
            }
            Err(e) => {
                warn!(error = %e, "pinned sock_ops link is stale; attaching afresh");
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    let file = std::fs::File::open(cgroup)
        .with_context(|| format!("opening cgroup {}", cgroup.display()))?;
    // A cgroup bpf_link takes no flags (the kernel refuses them) and always
    // coexists with other programs on the cgroup.
    let id = program
        .attach(file, CgroupAttachMode::Single)
        .with_context(|| format!("attaching sock_ops to cgroup {}", cgroup.display()))?;
    let link = FdLink::try_from(program.take_link(id)?)
        .map_err(|_| anyhow!("the kernel has no bpf_link for cgroups (needs 5.7+)"))?;
    link.pin(&path)
        .with_context(|| format!("pinning the sock_ops link at {}", path.display()))?;
    info!(cgroup = %cgroup.display(), "connection counter attached");
    Ok(())
}

fn attach_one(
    program: &mut Xdp,
    pin_dir: &Path,
    iface: &str,
    choice: XdpModeChoice,
    pinned: Option<&LinkPin>,
) -> anyhow::Result<Attachment> {
    if let Some(pin) = pinned {
        let wanted = match choice {
            XdpModeChoice::Auto => true,
            XdpModeChoice::Native => pin.mode == AttachMode::Native,
            XdpModeChoice::Skb => pin.mode == AttachMode::Skb,
        };
        if wanted {
            match adopt(program, pin) {
                Ok(()) => {
                    info!(
                        iface,
                        mode = pin.mode.as_str(),
                        "adopted the pinned XDP link; the new program replaced the old one atomically"
                    );
                    return Ok(Attachment {
                        iface: iface.to_string(),
                        mode: pin.mode,
                        adopted: true,
                    });
                }
                Err(e) => {
                    warn!(iface, error = %format!("{e:#}"), "pinned XDP link is stale; attaching afresh")
                }
            }
        } else {
            info!(iface, pinned = pin.mode.as_str(), wanted = ?choice, "pinned XDP link has another mode; replacing it");
        }
        std::fs::remove_file(&pin.path)
            .with_context(|| format!("removing stale pin {}", pin.path.display()))?;
    }

    let mode = match choice {
        XdpModeChoice::Native => attach_mode(program, pin_dir, iface, AttachMode::Native)?,
        XdpModeChoice::Skb => attach_mode(program, pin_dir, iface, AttachMode::Skb)?,
        XdpModeChoice::Auto => {
            match attach_mode(program, pin_dir, iface, AttachMode::Native) {
                Ok(mode) => mode,
                Err(native) => {
                    warn!(iface, error = %format!("{native:#}"), "native XDP refused; falling back to SKB mode");
                    attach_mode(program, pin_dir, iface, AttachMode::Skb).map_err(|skb| {
                    anyhow!("cannot attach XDP to {iface}: native mode: {native:#}; SKB mode: {skb:#}")
                })?
                }
            }
        }
    };
    info!(iface, mode = mode.as_str(), "XDP attached");
    Ok(Attachment {
        iface: iface.to_string(),
        mode,
        adopted: false,
    })
}

/// Attaches in one mode and pins the resulting link.
fn attach_mode(
    program: &mut Xdp,
    pin_dir: &Path,
    iface: &str,
    mode: AttachMode,
) -> anyhow::Result<AttachMode> {
    let flags = match mode {
        AttachMode::Native => XdpMode::Driver,
        AttachMode::Skb => XdpMode::Skb,
    };
    let id = program
        .attach(iface, flags)
        .with_context(|| format!("attaching XDP to {iface} in {} mode", mode.as_str()))?;
    let link = program.take_link(id)?;
    let fd_link = FdLink::try_from(link)
        .map_err(|_| anyhow!("the kernel attached XDP to {iface} through netlink (no bpf_link support); it cannot be pinned"))?;
    let path = pins::link_pin_path(pin_dir, iface, mode);
    fd_link
        .pin(&path)
        .with_context(|| format!("pinning the XDP link at {}", path.display()))?;
    Ok(mode)
}

fn adopt(program: &mut Xdp, pin: &LinkPin) -> anyhow::Result<()> {
    let pinned = PinnedLink::from_pin(&pin.path)?;
    let link = XdpLink::try_from(FdLink::from(pinned))?;
    let id = program.attach_to_link(link)?;
    // The pin keeps the link alive: taking it out of the program's managed
    // set means dropping our copy only closes a descriptor, never detaches.
    drop(program.take_link(id)?);
    Ok(())
}
