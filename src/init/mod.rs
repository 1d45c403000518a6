//! PID 1: mounts the kernel filesystems, loads the image's modules, prepares /data, starts and
//! supervises the daemon and the console, reaps every process, and shuts the box down in order
//! when asked (busybox init's signals: SIGTERM and SIGINT reboot, SIGUSR1 halt, SIGUSR2
//! poweroff). After start-up nothing is fatal: problems are logged and PID 1 goes on.

mod cmdline;
mod modules;
mod provision;
mod shutdown;
mod storage;
mod supervisor;

pub use storage::FACTORY_RESET_MARK;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn, LevelFilter};
use nix::mount::MsFlags;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use crate::logging;
use crate::sys::kmod::KernelModules;
use crate::sys::power::{self, Action};
use crate::sys::signals::SignalReader;
use crate::sys::{clock, mount, process, tty};
use cmdline::BootOptions;
use supervisor::{Policy, Service, Supervisor};

/// The module lists PID 1 loads at boot: the board's (its overlay: NICs, disks), then the
/// shared one.
const MODULE_LISTS: &[&str] = &["/etc/director/board/modules", "/etc/director/modules"];
/// The lists loaded once the services are started, the board's first: its hardware watchdog
/// must register before the shared list's softdog, so that it is /dev/watchdog.
const LATE_MODULE_LISTS: &[&str] = &[
    "/etc/director/board/modules-late",
    "/etc/director/modules-late",
];
/// Exists while PID 1 loads the late modules; the daemon waits for it to go before it touches
/// IPVS.
pub const MODULES_LOADING: &str = "/run/director/modules-loading";
const HOSTNAME_FILE: &str = "/etc/hostname";
const SHELL: &str = "/bin/sh";
const PATH: &str = "/sbin:/usr/sbin:/bin:/usr/bin";

/// The signals PID 1 handles; all arrive through the signalfd.
const HANDLED: &[Signal] = &[
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGPWR,
];

/// Kernel filesystems, in mount order.
const EARLY_MOUNTS: &[(&str, &str, &str, Option<&str>)] = &[
    ("proc", "/proc", "proc", None),
    ("sysfs", "/sys", "sysfs", None),
    ("devtmpfs", "/dev", "devtmpfs", Some("mode=0755")),
    (
        "devpts",
        "/dev/pts",
        "devpts",
        Some("mode=0620,ptmxmode=0666,gid=5"),
    ),
    ("tmpfs", "/dev/shm", "tmpfs", Some("mode=1777")),
    ("tmpfs", "/run", "tmpfs", Some("mode=0755")),
    ("tmpfs", "/tmp", "tmpfs", Some("mode=1777")),
];

pub fn run() -> ExitCode {
    if std::process::id() != 1 {
        eprintln!("director init: must run as PID 1 (the daemon alone is `director daemon`)");
        return ExitCode::from(2);
    }
    let started = clock::since_boot();
    ensure_console_fds();
    let _ = logging::install(LevelFilter::Info, 0);
    info!(
        "director {} starting as PID 1 ({:.3} s after boot)",
        env!("CARGO_PKG_VERSION"),
        started.as_secs_f64()
    );
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));

    let mut signals = match SignalReader::block(HANDLED) {
        Ok(reader) => Some(reader),
        Err(e) => {
            error!("cannot set up the signalfd: {e}; signals will be polled");
            None
        }
    };
    if let Err(e) = power::route_ctrl_alt_del_to_init() {
        warn!("ctrl-alt-del stays a hard reboot: {e}");
    }
    mount_kernel_filesystems();
    ensure_console_fds();

    let options = BootOptions::parse(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default());
    if let Some(text) = &options.log_level {
        match logging::parse_level(text) {
            Some(level) => log::set_max_level(level),
            None => warn!("director.log={text} is not a log level; keeping info"),
        }
    }
    set_hostname();
    load_modules();
    storage::prepare(options.data_device.as_deref());
    storage::factory_reset_if_asked();
    provision::mount_if_present(options.data_device.as_deref());

    let mut services = Services::new(&options);
    let mut late_modules = Some(LATE_MODULE_LISTS);
    mark_modules_loading();
    info!(
        "init ready in {:.3} s",
        (clock::since_boot().saturating_sub(started)).as_secs_f64()
    );
    loop {
        services.start_due();
        if let Some(list) = late_modules.take() {
            load_late_modules(list);
        }
        let Some(reader) = signals.as_mut() else {
            // Without a signalfd, PID 1 still reaps and restarts, just by polling.
            std::thread::sleep(Duration::from_millis(200));
            services.reap();
            continue;
        };
        let timeout = services.sleep_limit();
        let mut fds = [PollFd::new(reader.fd(), PollFlags::POLLIN)];
        if let Err(e) = poll(&mut fds, timeout) {
            if e != nix::errno::Errno::EINTR {
                error!("poll: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        loop {
            match reader.pending() {
                Ok(Some(signal)) => {
                    if let Some(action) = shutdown_action(signal) {
                        info!("{signal} received");
                        shutdown::run(action, &mut services.supervisor, reader);
                    }
                    match signal {
                        Signal::SIGCHLD => services.reap(),
                        other => debug!("{other} ignored"),
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error!("reading signals: {e}");
                    break;
                }
            }
        }
    }
}

/// The shutdown a signal asks for, as busybox init reads them.
fn shutdown_action(signal: Signal) -> Option<Action> {
    match signal {
        Signal::SIGTERM | Signal::SIGINT => Some(Action::Reboot),
        Signal::SIGUSR1 => Some(Action::Halt),
        Signal::SIGUSR2 | Signal::SIGPWR => Some(Action::PowerOff),
        _ => None,
    }
}

/// The kernel may start init without fds 0-2 (no /dev/console in the initramfs); give it the
/// console once /dev exists.
fn ensure_console_fds() {
    if nix::fcntl::fcntl(unsafe_borrow(2), nix::fcntl::FcntlArg::F_GETFD).is_ok() {
        return;
    }
    let Ok(console) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
    else {
        return;
    };
    let fd: OwnedFd = console.into();
    for target in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors, which this process does not otherwise
        // hold (the check above found fd 2 closed).
        unsafe {
            libc::dup2(fd.as_raw_fd(), target);
        }
    }
}

fn unsafe_borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used for F_GETFD, which fails cleanly with EBADF on a closed descriptor.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

fn mount_kernel_filesystems() {
    let mounted: Vec<PathBuf> = mount::read_table(Path::new("/proc/mounts"))
        .map(|t| t.into_iter().map(|e| e.target).collect())
        .unwrap_or_default();
    for &(source, target, fstype, data) in EARLY_MOUNTS {
        if mounted.iter().any(|m| m == Path::new(target)) {
            continue;
        }
        let mut flags = MsFlags::MS_NOSUID;
        if fstype != "devtmpfs" {
            flags |= MsFlags::MS_NODEV;
        }
        if fstype != "devtmpfs" && fstype != "tmpfs" {
            flags |= MsFlags::MS_NOEXEC;
        }
        if let Err(e) = mount::mount(source, Path::new(target), fstype, flags, data) {
            error!("{e}");
        }
    }
}

fn set_hostname() {
    let name = std::fs::read_to_string(HOSTNAME_FILE).unwrap_or_default();
    let name = name.trim();
    let name = if name.is_empty() { "director" } else { name };
    match nix::unistd::sethostname(name) {
        Ok(()) => info!("hostname {name}"),
        Err(e) => error!("set hostname {name}: {e}"),
    }
}

fn load_modules() {
    load_module_lists(MODULE_LISTS);
}

/// Says that modules are still loading, before the daemon can look.
fn mark_modules_loading() {
    let marker = Path::new(MODULES_LOADING);
    let made = marker
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(marker, b""));
    if let Err(e) = made {
        warn!("{MODULES_LOADING}: {e}; the daemon will not wait for the late modules");
    }
}

/// Loads the modules the daemon's start does not need on a thread of PID 1 at idle priority
/// (SCHED_IDLE: it runs when nothing else wants the CPU), then removes the marker. Signals
/// stay blocked on the thread (the mask is inherited), so the signalfd still gets them all.
fn load_late_modules(lists: &'static [&'static str]) {
    let spawned = std::thread::Builder::new()
        .name("modules".into())
        .spawn(move || {
            // SAFETY: an all-zero sched_param is valid (priority 0, which SCHED_IDLE needs).
            let idle: libc::sched_param = unsafe { std::mem::zeroed() };
            // The system call itself: musl's wrapper refuses (ENOSYS) because the kernel's
            // call works per thread, which is what is wanted here (0 = the calling thread).
            // SAFETY: the parameter outlives the call, which only reads it.
            let set = unsafe {
                libc::syscall(
                    libc::SYS_sched_setscheduler,
                    0,
                    libc::SCHED_IDLE,
                    &idle as *const libc::sched_param,
                )
            };
            if set != 0 {
                debug!(
                    "late modules at normal priority: {}",
                    std::io::Error::last_os_error()
                );
            }
            load_module_lists(lists);
            clear_modules_loading();
        });
    if let Err(e) = spawned {
        warn!("cannot start a thread for the late modules ({e}); loading them now");
        load_module_lists(lists);
        clear_modules_loading();
    }
}

fn clear_modules_loading() {
    match std::fs::remove_file(MODULES_LOADING) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => error!("{MODULES_LOADING}: {e}; the daemon waits for it in vain"),
    }
}

/// Loads the modules the list files name, in the order of the files, with their dependencies,
/// and reports once. A board's list (under /etc/director/board/) may be absent.
pub(crate) fn load_module_lists(paths: &[&str]) {
    let start = Instant::now();
    let mut list = Vec::new();
    for path in paths {
        match std::fs::read_to_string(path) {
            Ok(text) => list.extend(modules::parse_list(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.contains("/board/") => {
                debug!("{path}: none for this board");
            }
            Err(e) => warn!("{path}: {e}; its modules are not loaded"),
        }
    }
    if list.is_empty() {
        return;
    }
    let list_path = paths.join(", ");
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = Path::new("/lib/modules").join(&release);
    let index = match modules::Index::read(&dir) {
        Ok(index) => index,
        Err(e) => {
            error!("{}/modules.dep: {e}; no modules loaded", dir.display());
            return;
        }
    };
    let report = index.load(&dir, &list, &mut KernelModules);
    for problem in &report.problems {
        error!("module {problem}");
    }
    for skipped in &report.skipped {
        info!("optional module {skipped}");
    }
    info!(
        "modules ({list_path}): {} loaded, {} already there, {} built in, {} problems ({} ms)",
        report.loaded.len(),
        report.already.len(),
        report.builtin.len(),
        report.problems.len(),
        start.elapsed().as_millis()
    );
    debug!("modules loaded: {}", report.loaded.join(" "));
}

/// The supervised children and how to start them.
struct Services {
    supervisor: Supervisor,
    specs: Vec<(PathBuf, Vec<String>, Option<PathBuf>)>,
    env: Vec<(String, String)>,
}

impl Services {
    fn new(options: &BootOptions) -> Services {
        let now = Instant::now();
        let mut supervisor = Supervisor::default();
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/sbin/director"));
        let console = PathBuf::from("/dev").join(&options.console);
        match tty::baud_rate(options.baud) {
            Some(baud) => {
                if let Err(e) = tty::configure_serial(&console, baud) {
                    warn!("console {}: {e}", console.display());
                }
            }
            None => warn!("console baud rate {} is not supported", options.baud),
        }
        let mut env = vec![
            ("PATH".to_string(), PATH.to_string()),
            ("HOME".to_string(), "/root".to_string()),
            ("TERM".to_string(), "vt100".to_string()),
        ];
        if let Some(level) = &options.log_level {
            env.push(("DIRECTOR_LOG".to_string(), level.clone()));
        }
        if let Some(idle) = options.console_idle {
            env.push(("DIRECTOR_CONSOLE_IDLE".to_string(), idle.to_string()));
        }
        supervisor.add(
            Service {
                name: "daemon",
                policy: Policy::daemon(),
                stop_signal: Signal::SIGTERM,
            },
            now,
        );
        supervisor.add(
            Service {
                name: "console",
                policy: Policy::console(),
                stop_signal: Signal::SIGHUP,
            },
            now,
        );
        // The operator's console (setup dialogue, login, CLI), or a plain root shell when the
        // command line asks for one (director.console=shell, the test lab's way in).
        let console_program = if options.console_shell {
            (PathBuf::from(SHELL), vec!["-l".to_string()], Some(console))
        } else {
            (exe.clone(), vec!["console".to_string()], Some(console))
        };
        let specs = vec![(exe, vec!["daemon".to_string()], None), console_program];
        Services {
            supervisor,
            specs,
            env,
        }
    }

    fn start_due(&mut self) {
        let now = Instant::now();
        for index in self.supervisor.due(now) {
            let Some((program, args, terminal)) = self.specs.get(index) else {
                continue;
            };
            let name = self.supervisor.name(index);
            let spawned = process::spawn(&process::Spawn {
                program,
                args,
                env: &self.env,
                terminal: terminal.as_deref(),
            });
            match spawned {
                Ok(pid) => {
                    debug!("started {name} (pid {pid})");
                    self.supervisor.started(index, pid, now);
                }
                Err(e) => {
                    let delay = self.supervisor.start_failed(index, now);
                    error!(
                        "cannot start {name} ({}): {e}; next try in {:.1} s",
                        program.display(),
                        delay.unwrap_or_default().as_secs_f64()
                    );
                }
            }
        }
    }

    fn reap(&mut self) {
        for (pid, exit) in process::reap().ended {
            match self.supervisor.exited(pid, exit, Instant::now()) {
                Some(report) => {
                    let restart = report.restart_in.unwrap_or_default().as_secs_f64();
                    match report.crash_loop {
                        Some((count, window)) => error!(
                            "{} (pid {pid}) {exit} after {:.1} s: crash loop ({count} exits in {} s); restarting in {restart:.1} s",
                            report.name,
                            report.ran_for.as_secs_f64(),
                            window.as_secs()
                        ),
                        None if exit.is_clean() => info!(
                            "{} (pid {pid}) {exit}; restarting in {restart:.1} s",
                            report.name
                        ),
                        None => warn!(
                            "{} (pid {pid}) {exit} after {:.1} s; restarting in {restart:.1} s",
                            report.name,
                            report.ran_for.as_secs_f64()
                        ),
                    }
                }
                None => debug!("reaped orphan pid {pid}: {exit}"),
            }
        }
    }

    /// How long the main loop may sleep before a restart is due.
    fn sleep_limit(&self) -> PollTimeout {
        match self.supervisor.next_due() {
            None => PollTimeout::NONE,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                let millis = u16::try_from(left.as_millis().saturating_add(1)).unwrap_or(u16::MAX);
                PollTimeout::from(millis)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_to_busybox_init_actions() {
        assert_eq!(shutdown_action(Signal::SIGTERM), Some(Action::Reboot));
        assert_eq!(shutdown_action(Signal::SIGINT), Some(Action::Reboot));
        assert_eq!(shutdown_action(Signal::SIGUSR1), Some(Action::Halt));
        assert_eq!(shutdown_action(Signal::SIGUSR2), Some(Action::PowerOff));
        assert_eq!(shutdown_action(Signal::SIGCHLD), None);
        assert_eq!(shutdown_action(Signal::SIGHUP), None);
    }
}
