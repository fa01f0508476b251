//! kms-edge's kernel half. The data path starts here: every packet arriving on
//! an edge interface goes through [`xdp::kms_xdp`] before the network stack
//! sees it.
#![no_std]
#![no_main]
// The atomic intrinsics: see `atomic`.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod atomic;
mod baseline;
mod conn_track;
mod maps;
mod parse;
mod xdp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach this.
    loop {}
}

/// The kernel refuses programs without a GPL-compatible licence string when
/// they call GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
