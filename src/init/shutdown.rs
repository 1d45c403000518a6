//! The ordered end of the system: stop the services, then every other process, sync, unmount
//! (or remount read-only), and reboot(2).

use std::path::Path;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use super::supervisor::Supervisor;
use crate::sys::mount;
use crate::sys::power::{self, Action};
use crate::sys::process;
use crate::sys::signals::SignalReader;

/// How long services and then every other process get after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Filesystems that are the kernel's own and need no unmounting.
const KEEP: &[&str] = &["/", "/proc", "/sys", "/dev"];

/// Shuts down and ends the kernel with `action`; never returns.
pub fn run(action: Action, supervisor: &mut Supervisor, signals: &mut SignalReader) -> ! {
    info!("shutting down for {}", action.name());
    supervisor.stop();

    for (service, pid) in supervisor.running() {
        info!("stopping {} (pid {pid})", service.name);
        if let Err(e) = process::signal(pid, service.stop_signal) {
            warn!(
                "{} to {} (pid {pid}): {e}",
                service.stop_signal, service.name
            );
        }
    }
    for signal in [Signal::SIGTERM, Signal::SIGCONT] {
        if let Err(e) = process::signal_all(signal) {
            warn!("{signal} to all processes: {e}");
        }
    }
    if !wait_for_children(supervisor, signals, TERM_GRACE) {
        warn!(
            "processes still running {} s after SIGTERM: sending SIGKILL",
            TERM_GRACE.as_secs()
        );
        if let Err(e) = process::signal_all(Signal::SIGKILL) {
            error!("SIGKILL to all processes: {e}");
        }
        if !wait_for_children(supervisor, signals, KILL_GRACE) {
            error!("processes survived SIGKILL; going on");
        }
    }

    power::sync();
    unmount_all();
    power::sync();
    info!("{}", action.name());
    log::logger().flush();
    let err = power::end_kernel(action);
    error!("reboot(2) for {} failed: {err}", action.name());
    // PID 1 must not exit: wait here for a hardware reset.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Reaps until no child is left (true) or `grace` has passed (false).
fn wait_for_children(
    supervisor: &mut Supervisor,
    signals: &mut SignalReader,
    grace: Duration,
) -> bool {
    let deadline = Instant::now() + grace;
    loop {
        let reaped = process::reap();
        for (pid, exit) in reaped.ended {
            if let Some(report) = supervisor.exited(pid, exit, Instant::now()) {
                info!("{} (pid {pid}) stopped: {exit}", report.name);
            }
        }
        if reaped.none_left {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let millis = u16::try_from(left.as_millis().min(1000)).unwrap_or(1000);
        let mut fds = [PollFd::new(signals.fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(millis));
        // Drain: during shutdown only SIGCHLD matters; a second request is already being met.
        while let Ok(Some(_)) = signals.pending() {}
    }
}

fn unmount_all() {
    let table = match mount::read_table(Path::new("/proc/mounts")) {
        Ok(table) => table,
        Err(e) => {
            error!("{e}");
            return;
        }
    };
    for entry in table.iter().rev() {
        let target = entry.target.as_path();
        if KEEP.iter().any(|k| Path::new(k) == target) {
            continue;
        }
        let on_disk = entry.source.starts_with("/dev/");
        match mount::unmount(target) {
            Ok(()) if on_disk => info!("unmounted {} ({})", target.display(), entry.source),
            Ok(()) => {}
            Err(e) => {
                warn!("{e}");
                match mount::remount_read_only(target) {
                    Ok(()) => info!("remounted {} read-only", target.display()),
                    Err(e) => error!("{e}"),
                }
            }
        }
    }
}
