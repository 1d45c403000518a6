//! Supervision of PID 1's children: who runs, when a dead one is started again, and when a
//! service that keeps dying is reported as a crash loop. Pure logic: time comes in as arguments.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::sys::process::Exit;

/// How a service is restarted.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Delay before the first restart after a failure.
    pub initial_delay: Duration,
    /// The delay doubles with each failure in a row, up to this.
    pub max_delay: Duration,
    /// A run at least this long ends a series of failures.
    pub stable_after: Duration,
    /// This many exits within `loop_window` is a crash loop.
    pub loop_exits: usize,
    pub loop_window: Duration,
    /// A clean exit (status 0) is normal for this service (a shell the operator left).
    pub clean_exit_is_normal: bool,
}

impl Policy {
    /// For the control-plane daemon: back quickly once, slower when it keeps failing.
    pub fn daemon() -> Policy {
        Policy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            stable_after: Duration::from_secs(10),
            loop_exits: 5,
            loop_window: Duration::from_secs(60),
            clean_exit_is_normal: false,
        }
    }

    /// For the console shell.
    pub fn console() -> Policy {
        Policy {
            clean_exit_is_normal: true,
            ..Policy::daemon()
        }
    }
}

/// What a service is and how to start it; the supervisor only keeps the name and policy.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: &'static str,
    pub policy: Policy,
    /// What asks it to stop at shutdown (an interactive shell ignores SIGTERM: it gets SIGHUP).
    pub stop_signal: Signal,
}

#[derive(Debug)]
struct Slot {
    service: Service,
    pid: Option<u32>,
    started_at: Option<Instant>,
    start_due: Option<Instant>,
    failures_in_a_row: u32,
    recent_exits: VecDeque<Instant>,
}

/// What the supervisor says about an exit, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitReport {
    pub name: &'static str,
    pub pid: u32,
    pub exit: Exit,
    pub ran_for: Duration,
    /// `None` while shutting down.
    pub restart_in: Option<Duration>,
    /// Exits within the crash-loop window (and the window), when that makes a crash loop.
    pub crash_loop: Option<(usize, Duration)>,
}

/// The set of supervised services.
#[derive(Debug, Default)]
pub struct Supervisor {
    slots: Vec<Slot>,
    stopping: bool,
}

impl Supervisor {
    /// Adds a service, due to start at `now`; returns its index.
    pub fn add(&mut self, service: Service, now: Instant) -> usize {
        self.slots.push(Slot {
            service,
            pid: None,
            started_at: None,
            start_due: Some(now),
            failures_in_a_row: 0,
            recent_exits: VecDeque::new(),
        });
        self.slots.len() - 1
    }

    pub fn name(&self, index: usize) -> &'static str {
        self.slots.get(index).map_or("?", |s| s.service.name)
    }

    /// Services due to start at `now`.
    pub fn due(&self, now: Instant) -> Vec<usize> {
        if self.stopping {
            return Vec::new();
        }
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.pid.is_none() && s.start_due.is_some_and(|t| t <= now))
            .map(|(i, _)| i)
            .collect()
    }

    /// The earliest time a start is due, to bound how long the main loop sleeps.
    pub fn next_due(&self) -> Option<Instant> {
        if self.stopping {
            return None;
        }
        self.slots
            .iter()
            .filter(|s| s.pid.is_none())
            .filter_map(|s| s.start_due)
            .min()
    }

    /// Records that service `index` runs as `pid` since `now`.
    pub fn started(&mut self, index: usize, pid: u32, now: Instant) {
        if let Some(slot) = self.slots.get_mut(index) {
            slot.pid = Some(pid);
            slot.started_at = Some(now);
            slot.start_due = None;
        }
    }

    /// Records that starting service `index` failed at `now` (as if it exited at once).
    pub fn start_failed(&mut self, index: usize, now: Instant) -> Option<Duration> {
        let slot = self.slots.get_mut(index)?;
        let delay = Self::schedule_after_failure(slot, now);
        if self.stopping {
            slot.start_due = None;
            return None;
        }
        Some(delay)
    }

    /// Handles the end of `pid`; `None` when it was not a supervised service (an orphan).
    pub fn exited(&mut self, pid: u32, exit: Exit, now: Instant) -> Option<ExitReport> {
        let stopping = self.stopping;
        let slot = self.slots.iter_mut().find(|s| s.pid == Some(pid))?;
        let ran_for = slot
            .started_at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        slot.pid = None;
        slot.started_at = None;
        if stopping {
            slot.start_due = None;
            return Some(ExitReport {
                name: slot.service.name,
                pid,
                exit,
                ran_for,
                restart_in: None,
                crash_loop: None,
            });
        }
        let policy = &slot.service.policy;
        let normal = exit.is_clean() && policy.clean_exit_is_normal;
        if ran_for >= policy.stable_after || normal {
            slot.failures_in_a_row = 0;
        }
        let delay = if normal {
            slot.start_due = Some(now + policy.initial_delay);
            policy.initial_delay
        } else {
            Self::schedule_after_failure(slot, now)
        };
        let policy = &slot.service.policy;
        let crash_loop = if normal {
            None
        } else {
            Some((slot.recent_exits.len(), policy.loop_window))
                .filter(|&(n, _)| n >= policy.loop_exits)
        };
        Some(ExitReport {
            name: slot.service.name,
            pid,
            exit,
            ran_for,
            restart_in: Some(delay),
            crash_loop,
        })
    }

    fn schedule_after_failure(slot: &mut Slot, now: Instant) -> Duration {
        let policy = &slot.service.policy;
        slot.recent_exits.push_back(now);
        while slot
            .recent_exits
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) > policy.loop_window)
        {
            slot.recent_exits.pop_front();
        }
        let delay = backoff(policy, slot.failures_in_a_row);
        slot.failures_in_a_row = slot.failures_in_a_row.saturating_add(1);
        slot.start_due = Some(now + delay);
        delay
    }

    /// From now on nothing is started again.
    pub fn stop(&mut self) {
        self.stopping = true;
        for slot in &mut self.slots {
            slot.start_due = None;
        }
    }

    /// Running services, in the order they were added.
    pub fn running(&self) -> Vec<(&Service, u32)> {
        self.slots
            .iter()
            .filter_map(|s| s.pid.map(|pid| (&s.service, pid)))
            .collect()
    }
}

/// The delay after `failures` failures in a row: initial * 2^failures, capped.
pub fn backoff(policy: &Policy, failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.min(16)).unwrap_or(u32::MAX);
    policy
        .initial_delay
        .checked_mul(factor)
        .map_or(policy.max_delay, |d| d.min(policy.max_delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KILLED: Exit = Exit::Signal(Signal::SIGKILL, false);

    fn daemon() -> Service {
        Service {
            name: "daemon",
            policy: Policy::daemon(),
            stop_signal: Signal::SIGTERM,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_everything_at_once_then_nothing() {
        let t0 = Instant::now();
        let mut sup = Supervisor::default();
        let d = sup.add(daemon(), t0);
        assert_eq!(sup.due(t0), vec![d]);
        sup.started(d, 42, t0);
        assert!(sup.due(t0 + ms(5000)).is_empty());
        assert_eq!(sup.next_due(), None);
        let running = sup.running();
        assert_eq!(running.len(), 1);
        assert_eq!((running[0].0.name, running[0].1), ("daemon", 42));
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_cap() {
        let t0 = Instant::now();
        let mut sup = Supervisor::default();
        let d = sup.add(daemon(), t0);
        let mut now = t0;
        let mut delays = Vec::new();
        for pid in 1..=12 {
            sup.started(d, pid, now);
            let report = sup.exited(pid, KILLED, now + ms(10)).unwrap();
            let delay = report.restart_in.unwrap();
            delays.push(delay);
            now += ms(10) + delay;
            assert_eq!(sup.next_due(), Some(now));
            assert!(sup.due(now - ms(1)).is_empty());
            assert_eq!(sup.due(now), vec![d]);
        }
        assert_eq!(&delays[..4], &[ms(100), ms(200), ms(400), ms(800)]);
        assert_eq!(*delays.last().unwrap(), Duration::from_secs(30));
    }

    #[test]
    fn a_stable_run_resets_the_backoff() {
        let t0 = Instant::now();
        let mut sup = Supervisor::default();
        let d = sup.add(daemon(), t0);
        sup.started(d, 1, t0);
        sup.exited(1, KILLED, t0 + ms(10));
        sup.started(d, 2, t0 + ms(110));
        let second = sup.exited(2, KILLED, t0 + ms(120)).unwrap();
        assert_eq!(second.restart_in, Some(ms(200)));
        sup.started(d, 3, t0 + ms(320));
        let after_stable = sup.exited(3, KILLED, t0 + ms(320) + ms(20_000)).unwrap();
        assert_eq!(after_stable.restart_in, Some(ms(100)));
        assert_eq!(after_stable.ran_for, ms(20_000));
    }

    #[test]
    fn many_exits_within_the_window_are_a_crash_loop() {
        let t0 = Instant::now();
        let mut sup = Supervisor::default();
        let d = sup.add(daemon(), t0);
        let mut now = t0;
        let mut loops = Vec::new();
        for pid in 1..=6 {
            sup.started(d, pid, now);
            let report = sup.exited(pid, KILLED, now).unwrap();
            loops.push(report.crash_loop);
            now += report.restart_in.unwrap();
        }
        let window = Duration::from_secs(60);
        assert_eq!(
            loops,
            vec![None, None, None, None, Some((5, window)), Some((6, window))]
        );
    }

    #[test]
    fn exits_spread_out_are_not_a_loop() {
        let t0 = Instant::now();
        let mut sup = Supervisor::default();
        let d = sup.add(daemon(), t0);
        for pid in 1..=8u32 {
            let at = t0 + Duration::from_secs(30 * u64::from(pid));
            sup.started(d, pid, at - Duration::from_secs(29));
            assert_eq!(sup.exited(pid, KILLED, at).unwrap().crash_loop, None);
        }
    }

    #[test]
    fn a_console_logout_is_normal() {
        let t0 = Instant::now();
        let mut sup = Supervisor::default();
        let c = sup.add(
            Service {
                name: "console",
                policy: Policy::console(),
                stop_signal: Signal::SIGHUP,
            },
            t0,
        );
        for pid in 1..=10 {
            sup.started(c, pid, t0);
            let report = sup.exited(pid, Exit::Code(0), t0 + ms(1)).unwrap();
            assert_eq!(report.restart_in, Some(ms(100)));
            assert_eq!(report.crash_loop, None);
        }
    }

    #[test]
    fn orphans_are_not_services_and_nothing_restarts_when_stopping() {
        let t0 = Instant::now();
        let mut sup = Supervisor::default();
        let d = sup.add(daemon(), t0);
        sup.started(d, 7, t0);
        assert_eq!(sup.exited(99, KILLED, t0), None);
        sup.stop();
        let report = sup.exited(7, Exit::Code(0), t0 + ms(5)).unwrap();
        assert_eq!(report.restart_in, None);
        assert!(sup.due(t0 + Duration::from_secs(100)).is_empty());
        assert_eq!(sup.next_due(), None);
    }

    #[test]
    fn a_failed_start_backs_off_like_a_crash() {
        let t0 = Instant::now();
        let mut sup = Supervisor::default();
        let d = sup.add(daemon(), t0);
        assert_eq!(sup.start_failed(d, t0), Some(ms(100)));
        assert_eq!(sup.start_failed(d, t0 + ms(100)), Some(ms(200)));
        assert_eq!(sup.next_due(), Some(t0 + ms(300)));
    }
}
