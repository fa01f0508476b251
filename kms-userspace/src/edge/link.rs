//! The two BPF link syscalls aya keeps private: opening a pinned link by path
//! and swapping the program inside a link (`BPF_LINK_UPDATE`), which is how a
//! restarted daemon replaces its sock_ops program without a moment in which
//! connections go uncounted (or are counted twice).

use std::{
    ffi::CString,
    io,
    os::fd::{AsFd, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    path::Path,
};

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_UPDATE: libc::c_long = 29;

fn bpf(cmd: libc::c_long, attr: &[u8]) -> io::Result<i64> {
    // SAFETY: `attr` is a valid, initialised buffer of the given size for the
    // command; the kernel reads at most that many bytes.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), attr.len() as u32) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Opens the BPF object (here: a link) pinned at `path`.
pub fn open_pinned(path: &Path) -> io::Result<OwnedFd> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // union bpf_attr for BPF_OBJ_GET: pathname (u64), bpf_fd (u32), file_flags (u32).
    let mut attr = [0u8; 16];
    attr[..8].copy_from_slice(&(c_path.as_ptr() as u64).to_ne_bytes());
    let fd = bpf(BPF_OBJ_GET, &attr)?;
    // SAFETY: the kernel returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Makes `link` run `program` from now on, atomically.
pub fn update(link: BorrowedFd<'_>, program: BorrowedFd<'_>) -> io::Result<()> {
    // link_update: link_fd, new_prog_fd, flags, old_prog_fd (all u32).
    let mut attr = [0u8; 16];
    attr[..4].copy_from_slice(&(link.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(program.as_raw_fd() as u32).to_ne_bytes());
    bpf(BPF_LINK_UPDATE, &attr).map(drop)
}

/// Swaps `program` into the link pinned at `path`.
pub fn update_pinned(path: &Path, program: &impl AsFd) -> io::Result<()> {
    let link = open_pinned(path)?;
    update(link.as_fd(), program.as_fd())
}
