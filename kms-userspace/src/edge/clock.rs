//! Block entries carry CLOCK_TAI timestamps (what `bpf_ktime_get_tai_ns`
//! reads): wall-clock based, so an add time still means the same after a
//! reboot, unlike the monotonic clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; both clocks exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_TAI now, in nanoseconds.
pub fn tai_now_ns() -> u64 {
    now(libc::CLOCK_TAI)
}

/// TAI minus UTC right now (0 on hosts whose time daemon never set it).
fn tai_offset_ns() -> i128 {
    now(libc::CLOCK_TAI) as i128 - now(libc::CLOCK_REALTIME) as i128
}

/// The wall-clock time of a TAI timestamp.
pub fn to_system_time(tai_ns: u64) -> SystemTime {
    let unix_ns = (tai_ns as i128 - tai_offset_ns()).max(0) as u64;
    UNIX_EPOCH + Duration::from_nanos(unix_ns)
}

/// The TAI timestamp of a wall-clock time.
pub fn from_system_time(time: SystemTime) -> u64 {
    let unix_ns = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    (unix_ns + tai_offset_ns()).max(0) as u64
}

/// Seconds since a TAI timestamp (0 for one in the future).
pub fn age_seconds(tai_ns: u64) -> u64 {
    tai_now_ns().saturating_sub(tai_ns) / 1_000_000_000
}

/// RFC 3339 in UTC, for people and state files.
pub fn rfc3339(time: SystemTime) -> String {
    time::OffsetDateTime::from(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "?".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tai_and_wall_clock_convert_both_ways() {
        let t = SystemTime::now();
        let back = to_system_time(from_system_time(t));
        let diff = back.duration_since(t).unwrap_or_else(|e| e.duration());
        assert!(diff < Duration::from_millis(5), "{diff:?}");
        assert!(age_seconds(tai_now_ns() - 3_000_000_000) >= 3);
    }
}
