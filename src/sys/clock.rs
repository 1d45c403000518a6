//! Clocks: the time since boot (what the kernel stamps its messages with).

use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

/// Time since boot, suspend included; zero if the clock cannot be read.
pub fn since_boot() -> Duration {
    match clock_gettime(ClockId::CLOCK_BOOTTIME) {
        Ok(ts) => Duration::new(
            u64::try_from(ts.tv_sec()).unwrap_or(0),
            u32::try_from(ts.tv_nsec()).unwrap_or(0),
        ),
        Err(_) => Duration::ZERO,
    }
}
