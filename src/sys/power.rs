//! sync(2) and reboot(2).

use nix::sys::reboot::{reboot, set_cad_enabled, RebootMode};

/// What the machine does at the end of a shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    PowerOff,
    Reboot,
    Halt,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::PowerOff => "poweroff",
            Action::Reboot => "reboot",
            Action::Halt => "halt",
        }
    }
}

/// Flushes every filesystem's dirty data to disk.
pub fn sync() {
    nix::unistd::sync();
}

/// Ends the running kernel. Returns only on failure.
pub fn end_kernel(action: Action) -> nix::Error {
    let mode = match action {
        Action::PowerOff => RebootMode::RB_POWER_OFF,
        Action::Reboot => RebootMode::RB_AUTOBOOT,
        Action::Halt => RebootMode::RB_HALT_SYSTEM,
    };
    match reboot(mode) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// Makes ctrl-alt-del send SIGINT to PID 1 instead of rebooting at once.
pub fn route_ctrl_alt_del_to_init() -> nix::Result<()> {
    set_cad_enabled(false)
}
