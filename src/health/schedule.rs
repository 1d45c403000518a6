//! The scheduler: one task runs every check of every real server, each starting at a random
//! offset within its interval (so that thousands do not fire together) and then every
//! interval: a queue per interval holds the checks in the order they are due (a check due
//! again an interval after it was keeps that order, so no heap is needed). A TCP check is a
//! SYN of the half-open prober (`syn`), whose answers come back in batches; any other check
//! in flight is a small spawned task that records its result and ends; at most
//! `MAX_IN_FLIGHT` of those run at once. The state lives behind one mutex,
//! shared with the daemon's reads (IPVS overrides, sorry servers, snapshots for `ctl`).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::time::Instant;

use super::checker::{half_open_result, CheckResult, Checker};
use super::rules::{sorry_needed, Change, Event, Rules, ServerHealth};
use super::syn::{Finished, Probe, Prober, Tag};
use super::HealthError;
use crate::config::model::{Check, Config, RealServer, VirtualServer};
use crate::ipvs::{Override, Overrides};

/// Checks start together, at most this often: a check starts up to this late.
const START_TICK: Duration = Duration::from_millis(10);

/// The most checks in flight at once; more wait for a free place.
pub const MAX_IN_FLIGHT: usize = 1024;

/// The daemon's handle on the health checks: cheap to clone.
#[derive(Clone)]
pub struct Health {
    shared: Arc<Shared>,
}

/// Drives the checks; spawn `run()` on the daemon's runtime. It ends when the receiver of
/// events is dropped.
pub struct Runner {
    shared: Arc<Shared>,
    generation: u64,
    queues: Vec<Queue>,
    random: Random,
    permits: Arc<Semaphore>,
    due: Vec<Due>,
    starts: Vec<Start>,
    probes: Vec<Probe>,
    /// The half-open prober of the TCP checks, opened with the first of them; None where
    /// raw sockets are not allowed (TCP checks then connect).
    prober: Option<Prober>,
    prober_tried: bool,
    /// When checks were last started.
    last_start: Instant,
}

struct Shared {
    /// Time zero of the rules' clock.
    epoch: Instant,
    table: Mutex<Table>,
    /// Tells the runner that the table changed.
    changed: Notify,
    events: mpsc::UnboundedSender<Event>,
}

#[derive(Default)]
struct Table {
    /// Raised by every configuration: results of checks started before are dropped.
    generation: u64,
    services: Vec<Service>,
    by_name: HashMap<Arc<str>, usize>,
}

struct Service {
    name: Arc<str>,
    /// The check as configured: a real server keeps its state across a configuration change
    /// only while this and its address stay the same.
    check: Option<Check>,
    /// `None`: not checked (no check, or one that cannot run: see `problem`).
    plan: Option<Plan>,
    problem: Option<String>,
    sorry: Option<SocketAddr>,
    sorry_active: bool,
    servers: Vec<Server>,
    by_name: HashMap<Arc<str>, usize>,
}

struct Plan {
    checker: Arc<Checker>,
    rules: Rules,
    interval: Duration,
    timeout: Duration,
}

struct Server {
    name: Arc<str>,
    /// Where the check goes: the real server's address with the check's port.
    target: SocketAddr,
    enabled: bool,
    health: ServerHealth,
    /// A check of it is in flight.
    running: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Due {
    at: Instant,
    service: u32,
    server: u32,
}

/// The checks of one interval, in the order they are due.
struct Queue {
    interval: Duration,
    due: VecDeque<Due>,
}

impl Queue {
    /// The checks due at `now` (into `due`), each due again an interval later: after the
    /// last in the queue, which keeps it in order. A check a whole interval late is due again
    /// an interval from now, after the others.
    fn take_due(&mut self, now: Instant, due: &mut Vec<Due>) {
        let first = due.len();
        let mut late = 0;
        while let Some(&check) = self.due.front() {
            if check.at > now {
                break;
            }
            self.due.pop_front();
            due.push(check);
            let next = later(check.at, self.interval);
            if next > now {
                self.due.push_back(Due { at: next, ..check });
            } else {
                late += 1;
            }
        }
        if late > 0 {
            let next = later(now, self.interval);
            for check in &due[first..] {
                if later(check.at, self.interval) <= now {
                    self.due.push_back(Due { at: next, ..*check });
                }
            }
        }
    }
}

/// What the prober hands back with an answer: the configuration and the real server.
fn tag(generation: u64, service: u32, server: u32) -> Tag {
    (Tag::from(generation) << 64) | (Tag::from(service) << 32) | Tag::from(server)
}

fn untag(tag: Tag) -> (u64, u32, u32) {
    ((tag >> 64) as u64, (tag >> 32) as u32, tag as u32)
}

struct Start {
    checker: Arc<Checker>,
    target: SocketAddr,
    timeout: Duration,
    service: u32,
    server: u32,
}

/// Every virtual server's health, for display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The time of the snapshot on the clock of the states' times (since the health checks
    /// started): `now - since` is how long a state has lasted.
    #[serde(with = "super::millis")]
    pub now: Duration,
    pub services: Vec<ServiceSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    pub name: String,
    /// Whether its real servers are checked.
    pub checked: bool,
    /// Why its check cannot run, when it cannot.
    pub problem: Option<String>,
    pub sorry_server: Option<SocketAddr>,
    pub sorry_active: bool,
    pub servers: Vec<ServerSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSnapshot {
    pub name: String,
    pub target: SocketAddr,
    pub enabled: bool,
    pub health: ServerHealth,
}

impl Health {
    /// No checks yet (`update` gives them), the runner to spawn, and the events: each change
    /// of a real server (down, up, weight) and of a sorry server, already logged here.
    pub fn new() -> (Health, Runner, mpsc::UnboundedReceiver<Event>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            epoch: Instant::now(),
            table: Mutex::new(Table::default()),
            changed: Notify::new(),
            events,
        });
        let runner = Runner {
            shared: shared.clone(),
            generation: 0,
            queues: Vec::new(),
            random: Random::seeded(),
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            due: Vec::new(),
            starts: Vec::new(),
            probes: Vec::new(),
            prober: None,
            prober_tried: false,
            last_start: Instant::now(),
        };
        (Health { shared }, runner, receiver)
    }

    /// Checks what `config` asks for. A real server whose virtual server, name, address,
    /// checked port and check are unchanged keeps its state; the others start unknown. The
    /// checks that cannot run are returned (and logged); their real servers stay in service.
    pub fn update(&self, config: &Config) -> Vec<HealthError> {
        let now = self.shared.now();
        let mut problems = Vec::new();
        let mut table = self.shared.lock();
        let mut old: HashMap<Arc<str>, Service> = table
            .services
            .drain(..)
            .map(|service| (service.name.clone(), service))
            .collect();
        let mut services = Vec::new();
        let mut events = Vec::new();
        for vs in config.virtual_servers.iter().filter(|vs| vs.enabled) {
            let previous = old.remove(vs.name.as_str());
            let service = build(vs, previous, now, &mut problems, &mut events);
            services.push(service);
        }
        table.by_name = services
            .iter()
            .enumerate()
            .map(|(i, service)| (service.name.clone(), i))
            .collect();
        table.services = services;
        self.taken_in(table, events);
        problems
    }

    /// `update` for a configuration that differs from the one given last only in the
    /// virtual servers at `changed` (positions in both): those alone are rebuilt, so that a
    /// change to one of thousands holds the table (which IPVS rounds read) for a moment only.
    /// When the enabled virtual servers are not the same ones any more, the whole table is.
    pub fn update_some(&self, config: &Config, changed: &[usize]) -> Vec<HealthError> {
        let now = self.shared.now();
        let mut problems = Vec::new();
        let mut events = Vec::new();
        let mut table = self.shared.lock();
        let mut slots = Vec::with_capacity(changed.len());
        for &i in changed {
            let Some(vs) = config.virtual_servers.get(i) else {
                drop(table);
                return self.update(config);
            };
            match table.by_name.get(vs.name.as_str()) {
                Some(&slot) if vs.enabled => slots.push((slot, vs)),
                // Enabled or disabled now, or renamed: the list itself changes.
                _ => {
                    drop(table);
                    return self.update(config);
                }
            }
        }
        for (slot, vs) in slots {
            let Some(service) = table.services.get_mut(slot) else {
                continue;
            };
            let previous = std::mem::replace(service, empty_service(vs));
            *service = build(vs, Some(previous), now, &mut problems, &mut events);
        }
        self.taken_in(table, events);
        problems
    }

    /// The end of an update: results of checks started before are dropped from now on, the
    /// events of the change go out, and the runner looks at the new table.
    fn taken_in(&self, mut table: MutexGuard<'_, Table>, events: Vec<Event>) {
        table.generation += 1;
        for event in events {
            self.shared.emit(event);
        }
        drop(table);
        self.shared.changed.notify_one();
    }

    /// The virtual servers whose sorry server is in service now: (name, sorry server).
    pub fn sorry_servers(&self) -> Vec<(String, SocketAddr)> {
        self.shared
            .lock()
            .services
            .iter()
            .filter(|service| service.sorry_active)
            .filter_map(|service| Some((service.name.to_string(), service.sorry?)))
            .collect()
    }

    /// The health of one real server.
    pub fn server(&self, virtual_server: &str, real_server: &str) -> Option<ServerHealth> {
        let table = self.shared.lock();
        table
            .server(virtual_server, real_server)
            .map(|server| server.health.clone())
    }

    /// Everything, for display.
    pub fn snapshot(&self) -> Snapshot {
        let now = self.shared.now();
        let table = self.shared.lock();
        Snapshot {
            now,
            services: table
                .services
                .iter()
                .map(|service| ServiceSnapshot {
                    name: service.name.to_string(),
                    checked: service.plan.is_some(),
                    problem: service.problem.clone(),
                    sorry_server: service.sorry,
                    sorry_active: service.sorry_active,
                    servers: service
                        .servers
                        .iter()
                        .map(|server| ServerSnapshot {
                            name: server.name.to_string(),
                            target: server.target,
                            enabled: server.enabled,
                            health: server.health.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// What the checks say of each real server, for `ipvs::desired_with`. A real server the
/// health checks do not know (another configuration, another address) is as configured.
impl Overrides for Health {
    fn real_server(&self, vs: &VirtualServer, rs: &RealServer) -> Option<Override> {
        let table = self.shared.lock();
        let server = table.server(&vs.name, &rs.name)?;
        if server.target.ip() != rs.address {
            return None;
        }
        server.health.ipvs_override()
    }

    fn sorry(&self, vs: &VirtualServer) -> bool {
        let table = self.shared.lock();
        table
            .by_name
            .get(vs.name.as_str())
            .and_then(|&i| table.services.get(i))
            .is_some_and(|service| {
                service.sorry_active && service.sorry.is_some() && service.sorry == vs.sorry_server
            })
    }
}

/// The daemon shares the handle between its tasks and the blocking IPVS rounds.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Health>();
};

/// The service of `vs`, with what can be kept of `previous`.
fn build(
    vs: &VirtualServer,
    previous: Option<Service>,
    now: Duration,
    problems: &mut Vec<HealthError>,
    events: &mut Vec<Event>,
) -> Service {
    let name: Arc<str> = vs.name.as_str().into();
    let same_check = previous.as_ref().is_some_and(|p| p.check == vs.check);
    let (plan, problem) = match &vs.check {
        None => (None, None),
        Some(check) => {
            let kept = previous
                .as_ref()
                .filter(|_| same_check)
                .and_then(|p| p.plan.as_ref())
                .map(|plan| plan.checker.clone());
            let checker = match kept {
                Some(checker) => Ok(checker),
                None => Checker::new(check).map(Arc::new),
            };
            match checker {
                Ok(checker) => (
                    Some(Plan {
                        checker,
                        rules: Rules::of(vs, check),
                        interval: Duration::from_millis(check.interval.as_millis().max(1)),
                        timeout: Duration::from_millis(check.timeout.as_millis().max(1)),
                    }),
                    None,
                ),
                Err(e) => {
                    let text = e.to_string();
                    log::error!(
                        "health: the check of {} cannot run, its real servers stay in service: {text}",
                        vs.name
                    );
                    problems.push(e);
                    (None, Some(text))
                }
            }
        }
    };
    let mut old_servers: HashMap<Arc<str>, Server> = match previous.as_ref() {
        Some(p) if same_check => p
            .servers
            .iter()
            .map(|s| (s.name.clone(), clone_server(s)))
            .collect(),
        _ => HashMap::new(),
    };
    let check_port = vs.check.as_ref().and_then(|c| c.port);
    let servers: Vec<Server> = vs
        .real_servers
        .iter()
        .map(|rs| {
            let port = check_port.or(rs.port).or(vs.port).unwrap_or(0);
            let target = SocketAddr::new(rs.address, port);
            let health = old_servers
                .remove(rs.name.as_str())
                .filter(|old| old.target == target)
                .map_or_else(|| ServerHealth::new(now), |old| old.health);
            Server {
                name: rs.name.as_str().into(),
                target,
                enabled: rs.enabled,
                health,
                running: false,
            }
        })
        .collect();
    let by_name = servers
        .iter()
        .enumerate()
        .map(|(j, server)| (server.name.clone(), j))
        .collect();
    let was_active = previous
        .as_ref()
        .is_some_and(|p| p.sorry_active && p.sorry == vs.sorry_server);
    let mut service = Service {
        name,
        check: vs.check.clone(),
        plan,
        problem,
        sorry: vs.sorry_server,
        sorry_active: was_active,
        servers,
        by_name,
    };
    if let Some(event) = service.update_sorry() {
        events.push(event);
    }
    service
}

/// A placeholder while a service is rebuilt in its slot: nothing checked, nothing in it.
fn empty_service(vs: &VirtualServer) -> Service {
    Service {
        name: vs.name.as_str().into(),
        check: None,
        plan: None,
        problem: None,
        sorry: None,
        sorry_active: false,
        servers: Vec::new(),
        by_name: HashMap::new(),
    }
}

fn clone_server(server: &Server) -> Server {
    Server {
        name: server.name.clone(),
        target: server.target,
        enabled: server.enabled,
        health: server.health.clone(),
        // A check in flight belongs to the old configuration: its result is dropped.
        running: false,
    }
}

impl Service {
    /// Puts the sorry server in or takes it out as the real servers require; the event when
    /// that changed.
    fn update_sorry(&mut self) -> Option<Event> {
        let sorry = self.sorry?;
        let needed = sorry_needed(self.servers.iter().map(|s| (s.enabled, &s.health)));
        if needed == self.sorry_active {
            return None;
        }
        self.sorry_active = needed;
        Some(Event::Sorry {
            virtual_server: self.name.clone(),
            server: sorry,
            active: needed,
        })
    }
}

impl Table {
    fn server(&self, virtual_server: &str, real_server: &str) -> Option<&Server> {
        let service = self.services.get(*self.by_name.get(virtual_server)?)?;
        service.servers.get(*service.by_name.get(real_server)?)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent between statements: a panic elsewhere does not make it
        // unusable.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.epoch)
    }

    fn emit(&self, event: Event) {
        let serious = matches!(
            event,
            Event::Server {
                change: Change::Down { .. },
                ..
            } | Event::Sorry { active: true, .. }
        );
        if serious {
            log::warn!("health: {event}");
        } else {
            log::info!("health: {event}");
        }
        // Nobody listening: the daemon is going away; the runner ends by itself.
        let _ = self.events.send(event);
    }

    /// Takes in the result of a check started in configuration `generation`.
    fn record(&self, generation: u64, service: u32, server: u32, result: CheckResult) {
        let now = self.now();
        let mut table = self.lock();
        self.record_in(&mut table, now, generation, service, server, result);
    }

    /// Takes in the answers of half-open TCP checks.
    fn record_half_open(&self, finished: Vec<Finished>) {
        let now = self.now();
        let mut table = self.lock();
        for check in finished {
            let (generation, service, server) = untag(check.tag);
            let result =
                half_open_result(check.answer, check.server, check.timeout, check.duration);
            self.record_in(&mut table, now, generation, service, server, result);
        }
    }

    /// `record` with the table locked, at `now` on the rules' clock.
    fn record_in(
        &self,
        table: &mut Table,
        now: Duration,
        generation: u64,
        service: u32,
        server: u32,
        result: CheckResult,
    ) {
        if table.generation != generation {
            return;
        }
        let Some(service) = table.services.get_mut(service as usize) else {
            return;
        };
        let Some(plan) = &service.plan else {
            return;
        };
        let rules = plan.rules;
        let Some(entry) = service.servers.get_mut(server as usize) else {
            return;
        };
        entry.running = false;
        let Some(change) = entry.health.record(&rules, result, now) else {
            return;
        };
        let event = Event::Server {
            virtual_server: service.name.clone(),
            real_server: entry.name.clone(),
            target: entry.target,
            change,
            last: entry
                .health
                .last
                .as_ref()
                .map(|last| last.message.clone())
                .unwrap_or_default(),
        };
        self.emit(event);
        if !matches!(change, Change::Weight { .. }) {
            if let Some(event) = service.update_sorry() {
                self.emit(event);
            }
        }
    }
}

impl Runner {
    /// Runs the checks until the receiver of events is dropped.
    pub async fn run(mut self) {
        loop {
            self.follow_configuration();
            // Checks due within a tick of the last start wait for the next: one wake-up
            // starts them all (and their answers arrive together), instead of one per
            // check.
            let next = self
                .queues
                .iter()
                .filter_map(|queue| queue.due.front().map(|due| due.at))
                .min()
                .map(|at| at.max(later(self.last_start, START_TICK)));
            tokio::select! {
                _ = self.shared.events.closed() => return,
                _ = self.shared.changed.notified() => continue,
                _ = sleep_until(next) => {}
            }
            if !self.start_due().await {
                return;
            }
        }
    }

    /// After a configuration change, every check is due again at a random offset within its
    /// interval.
    fn follow_configuration(&mut self) {
        let shared = self.shared.clone();
        let table = shared.lock();
        if table.generation == self.generation {
            return;
        }
        self.generation = table.generation;
        self.queues.clear();
        let now = Instant::now();
        for (i, service) in table.services.iter().enumerate() {
            let Some(plan) = &service.plan else {
                continue;
            };
            let queue = match self.queues.iter().position(|q| q.interval == plan.interval) {
                Some(q) => q,
                None => {
                    self.queues.push(Queue {
                        interval: plan.interval,
                        due: VecDeque::new(),
                    });
                    self.queues.len() - 1
                }
            };
            for j in 0..service.servers.len() {
                let (Ok(service), Ok(server)) = (u32::try_from(i), u32::try_from(j)) else {
                    continue;
                };
                let at = later(now, self.random.below(plan.interval));
                self.queues[queue].due.push_back(Due {
                    at,
                    service,
                    server,
                });
            }
        }
        for queue in &mut self.queues {
            queue
                .due
                .make_contiguous()
                .sort_unstable_by_key(|due| due.at);
        }
    }

    /// Starts the checks that are due and schedules their next; false when the runner
    /// must stop.
    async fn start_due(&mut self) -> bool {
        let now = Instant::now();
        self.last_start = now;
        self.due.clear();
        for queue in &mut self.queues {
            queue.take_due(now, &mut self.due);
        }
        self.starts.clear();
        {
            let shared = self.shared.clone();
            let mut table = shared.lock();
            if table.generation != self.generation {
                return true;
            }
            for due in &self.due {
                let Some(service) = table.services.get_mut(due.service as usize) else {
                    continue;
                };
                let Some(plan) = &service.plan else {
                    continue;
                };
                let Some(server) = service.servers.get_mut(due.server as usize) else {
                    continue;
                };
                if server.running {
                    continue;
                }
                server.running = true;
                self.starts.push(Start {
                    checker: plan.checker.clone(),
                    target: server.target,
                    timeout: plan.timeout,
                    service: due.service,
                    server: due.server,
                });
            }
        }
        if !self.prober_tried
            && self
                .starts
                .iter()
                .any(|s| matches!(*s.checker, Checker::Tcp))
        {
            self.prober_tried = true;
            let shared = self.shared.clone();
            let handler = Box::new(move |finished| shared.record_half_open(finished));
            self.prober = match Prober::open(Some(handler)) {
                Ok(prober) => {
                    log::info!(
                        "health: TCP checks are half-open: SYNs from a raw socket, source ports {:?}",
                        prober.ports()
                    );
                    Some(prober)
                }
                Err(e) => {
                    log::warn!("health: TCP checks make full connections: no raw socket ({e})");
                    None
                }
            };
        }
        // A half-open TCP check is a SYN and an entry in the prober's table: no task, no
        // socket, no permit (a server has one check in flight at most).
        if let Some(prober) = &self.prober {
            let generation = self.generation;
            self.probes.clear();
            self.probes.extend(
                self.starts
                    .iter()
                    .filter(|start| matches!(*start.checker, Checker::Tcp))
                    .map(|start| Probe {
                        server: start.target,
                        timeout: start.timeout,
                        tag: tag(generation, start.service, start.server),
                    }),
            );
            if !self.probes.is_empty() {
                let tcp = self
                    .starts
                    .iter()
                    .find(|start| matches!(*start.checker, Checker::Tcp))
                    .map(|start| start.checker.clone());
                prober.start(&mut self.probes);
                self.starts
                    .retain(|start| !matches!(*start.checker, Checker::Tcp));
                // What the prober declined (no IPv6 raw socket, every source port in use
                // for the server) connects.
                if let Some(tcp) = tcp {
                    for probe in self.probes.drain(..) {
                        let (_, service, server) = untag(probe.tag);
                        self.starts.push(Start {
                            checker: tcp.clone(),
                            target: probe.server,
                            timeout: probe.timeout,
                            service,
                            server,
                        });
                    }
                }
            }
        }
        for start in self.starts.drain(..) {
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                return false;
            };
            let shared = self.shared.clone();
            let generation = self.generation;
            tokio::spawn(async move {
                let result = start.checker.run(start.target, start.timeout).await;
                shared.record(generation, start.service, start.server, result);
                drop(permit);
            });
        }
        true
    }
}

/// `at + span`; an interval so long that the clock cannot hold it is a year.
fn later(at: Instant, span: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 86_400);
    at.checked_add(span.min(YEAR)).unwrap_or(at)
}

/// Sleeps until `at`, or for ever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// xorshift64*: enough to spread start times, seeded from the system's random source.
struct Random(u64);

impl Random {
    fn seeded() -> Random {
        let mut seed = [0u8; 8];
        let provider = super::http::provider();
        if provider.secure_random.fill(&mut seed).is_err() {
            // Only the spread of start times suffers.
            seed = u64::from(std::process::id()).to_le_bytes();
        }
        Random(u64::from_le_bytes(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random time in `0..span`.
    fn below(&mut self, span: Duration) -> Duration {
        let nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX).max(1);
        Duration::from_nanos(self.next() % nanos)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::config::from_toml;
    use crate::health::State;
    use crate::ipvs::desired_with;

    const CONFIG: &str = r#"
[[virtual_servers]]
name = "web"
vip = "192.0.2.100"
port = 80
sorry_server = "192.0.2.200:80"
check = { interval = "2s", timeout = "1s", fall = 1, tcp = {} }
real_servers = [
  { name = "a", address = "192.0.2.21", weight = 5 },
  { name = "b", address = "192.0.2.22", weight = 5 },
]

[[virtual_servers]]
name = "dns"
vip = "192.0.2.101"
port = 53
protocol = "udp"
real_servers = [ { name = "ns", address = "192.0.2.31" } ]
"#;

    fn config(text: &str) -> Config {
        from_toml(text).expect("a configuration")
    }

    fn result(healthy: bool) -> CheckResult {
        CheckResult {
            healthy,
            weight: None,
            duration: Duration::from_millis(1),
            message: Cow::Borrowed(if healthy { "connected" } else { "refused" }),
        }
    }

    /// Records a result as a finished check would.
    fn record(health: &Health, service: u32, server: u32, healthy: bool) {
        let generation = health.shared.lock().generation;
        health
            .shared
            .record(generation, service, server, result(healthy));
    }

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    #[test]
    fn a_queue_keeps_its_checks_in_order_of_due_time() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let interval = ms(100);
        let mut queue = Queue {
            interval,
            due: [0, 10, 50, 90]
                .iter()
                .enumerate()
                .map(|(i, &at)| Due {
                    at: start + ms(at),
                    service: 0,
                    server: i as u32,
                })
                .collect(),
        };
        let mut due = Vec::new();
        // On time: 0 and 10 are due again at 100 and 110, after 50 and 90.
        queue.take_due(start + ms(20), &mut due);
        assert_eq!(due.iter().map(|d| d.server).collect::<Vec<_>>(), [0, 1]);
        let times = |queue: &Queue| -> Vec<u64> {
            queue
                .due
                .iter()
                .map(|d| (d.at - start).as_millis() as u64)
                .collect()
        };
        assert_eq!(times(&queue), [50, 90, 100, 110]);
        // 150 ms late: 50 is a whole interval late (due again at 270, from now), 90, 100 and
        // 110 are not (190, 200, 210); the order holds.
        due.clear();
        queue.take_due(start + ms(170), &mut due);
        assert_eq!(due.len(), 4);
        assert_eq!(times(&queue), [190, 200, 210, 270]);
        assert!(queue
            .due
            .iter()
            .zip(queue.due.iter().skip(1))
            .all(|(a, b)| a.at <= b.at));
        // Nothing due.
        due.clear();
        queue.take_due(start + ms(180), &mut due);
        assert!(due.is_empty());
    }

    #[test]
    fn a_tag_gives_back_its_check() {
        for (generation, service, server) in [(0, 0, 0), (7, 3, 9), (u64::MAX, u32::MAX, 1)] {
            assert_eq!(
                untag(tag(generation, service, server)),
                (generation, service, server)
            );
        }
    }

    #[test]
    fn results_reach_the_ipvs_table_and_the_sorry_server() {
        block_on(async {
            let (health, _runner, mut events) = Health::new();
            let cfg = config(CONFIG);
            assert!(health.update(&cfg).is_empty());
            // Everything unknown: as configured.
            assert_eq!(desired_with(&cfg, &health), crate::ipvs::desired(&cfg));
            record(&health, 0, 0, false);
            let event = events.try_recv().expect("an event");
            assert_eq!(event.to_string(), "a 192.0.2.21:80 of web is DOWN: refused");
            let table = desired_with(&cfg, &health);
            assert_eq!(table.services[0].destinations.len(), 1);
            assert!(health.sorry_servers().is_empty());
            record(&health, 0, 1, false);
            events.try_recv().expect("b down");
            assert_eq!(
                events.try_recv().expect("sorry in"),
                Event::Sorry {
                    virtual_server: "web".into(),
                    server: "192.0.2.200:80".parse().expect("an address"),
                    active: true
                }
            );
            assert_eq!(
                health.sorry_servers(),
                [(
                    "web".to_string(),
                    "192.0.2.200:80".parse().expect("an address")
                )]
            );
            record(&health, 0, 1, true);
            events.try_recv().expect("b up");
            assert!(matches!(
                events.try_recv(),
                Ok(Event::Sorry { active: false, .. })
            ));
            assert!(events.try_recv().is_err());
            let snapshot = health.snapshot();
            assert_eq!(snapshot.services.len(), 2);
            assert!(snapshot.services[0].checked && !snapshot.services[1].checked);
            assert_eq!(snapshot.services[0].servers[0].health.state, State::Down);
            assert_eq!(snapshot.services[0].servers[1].health.counts.checks, 2);
        });
    }

    #[test]
    fn a_configuration_change_keeps_the_state_of_unchanged_checks() {
        block_on(async {
            let (health, _runner, _events) = Health::new();
            let cfg = config(CONFIG);
            health.update(&cfg);
            record(&health, 0, 0, false);
            record(&health, 0, 1, true);
            // The same again, and a change elsewhere (weights, another service): kept.
            let mut same = cfg.clone();
            same.virtual_servers[0].real_servers[1].weight = 9;
            same.virtual_servers[1].scheduler = crate::config::model::Scheduler::Rr;
            health.update(&same);
            assert_eq!(
                health.server("web", "a").map(|s| s.state),
                Some(State::Down)
            );
            assert_eq!(health.server("web", "b").map(|s| s.state), Some(State::Up));
            // A real server moved: it starts again; its neighbour keeps its state.
            let mut moved = same.clone();
            moved.virtual_servers[0].real_servers[0].address =
                "192.0.2.23".parse().expect("an address");
            health.update(&moved);
            assert_eq!(
                health.server("web", "a").map(|s| s.state),
                Some(State::Unknown)
            );
            assert_eq!(health.server("web", "b").map(|s| s.state), Some(State::Up));
            // Another check: everything starts again.
            let mut other = moved.clone();
            if let Some(check) = other.virtual_servers[0].check.as_mut() {
                check.fall = 2;
            }
            health.update(&other);
            assert_eq!(
                health.server("web", "b").map(|s| s.state),
                Some(State::Unknown)
            );
            // Results of checks started before a change are dropped.
            let old_generation = health.shared.lock().generation;
            health.update(&other);
            health.shared.record(old_generation, 0, 0, result(false));
            assert_eq!(
                health.server("web", "a").map(|s| s.state),
                Some(State::Unknown)
            );
        });
    }

    #[test]
    fn a_change_to_some_virtual_servers_rebuilds_those_alone() {
        block_on(async {
            let (health, _runner, _events) = Health::new();
            let cfg = config(CONFIG);
            health.update(&cfg);
            record(&health, 0, 0, false);
            record(&health, 0, 1, true);
            // A weight of web: rebuilt, its states kept (same check, same addresses).
            let mut weight = cfg.clone();
            weight.virtual_servers[0].real_servers[1].weight = 9;
            assert!(health.update_some(&weight, &[0]).is_empty());
            assert_eq!(
                health.server("web", "a").map(|s| s.state),
                Some(State::Down)
            );
            assert_eq!(health.server("web", "b").map(|s| s.state), Some(State::Up));
            // web's check changes: it starts again; dns is untouched.
            let mut check = weight.clone();
            if let Some(c) = check.virtual_servers[0].check.as_mut() {
                c.fall = 3;
            }
            health.update_some(&check, &[0]);
            assert_eq!(
                health.server("web", "a").map(|s| s.state),
                Some(State::Unknown)
            );
            assert_eq!(
                desired_with(&check, &health),
                crate::ipvs::desired(&check),
                "all as configured again"
            );
            // dns disabled: the list changes, and the whole table is rebuilt without it.
            let mut disabled = check.clone();
            disabled.virtual_servers[1].enabled = false;
            health.update_some(&disabled, &[1]);
            assert!(health.server("dns", "ns").is_none());
            assert_eq!(health.snapshot().services.len(), 1);
        });
    }

    #[test]
    fn a_check_that_cannot_run_leaves_its_servers_in_service() {
        block_on(async {
            let (health, _runner, _events) = Health::new();
            let text = CONFIG.replace(
                "tcp = {}",
                "http = { tls = true, verify = true, ca = \"/nonexistent/ca.pem\" }",
            );
            let problems = health.update(&config(&text));
            assert_eq!(problems.len(), 1);
            let snapshot = health.snapshot();
            assert!(!snapshot.services[0].checked);
            assert!(snapshot.services[0]
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("/nonexistent/ca.pem")));
        });
    }

    #[test]
    fn the_runner_checks_on_its_own_and_reports_changes() {
        // Program checks need no network: /bin/false fails, /bin/true passes (in time even on
        // a loaded machine: a timeout would be an event).
        let text = r#"
[[virtual_servers]]
name = "app"
vip = "192.0.2.100"
port = 80
check = { interval = "200ms", timeout = "190ms", fall = 1, program = { path = "/bin/false" } }
real_servers = [ { name = "a", address = "192.0.2.21" } ]
"#;
        block_on(async {
            let (health, runner, mut events) = Health::new();
            tokio::spawn(runner.run());
            health.update(&config(text));
            let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .expect("an event in time")
                .expect("an event");
            assert_eq!(
                event.to_string(),
                "a 192.0.2.21:80 of app is DOWN: program /bin/false exited 1"
            );
            health.update(&config(&text.replace("/bin/false", "/bin/true")));
            // A new check: the server starts unknown, and its first success is no event.
            let quiet = tokio::time::timeout(Duration::from_millis(700), events.recv()).await;
            assert!(quiet.is_err(), "no event: {quiet:?}");
            let server = health.server("app", "a").expect("the server");
            assert_eq!(server.state, State::Up);
            assert!(server.counts.checks >= 2, "{server:?}");
        });
    }

    #[test]
    fn start_offsets_spread_over_the_interval() {
        let mut random = Random(0x1234_5678);
        let interval = Duration::from_secs(2);
        let offsets: Vec<Duration> = (0..1000).map(|_| random.below(interval)).collect();
        assert!(offsets.iter().all(|o| *o < interval));
        let early = offsets
            .iter()
            .filter(|o| **o < Duration::from_secs(1))
            .count();
        assert!(
            (400..600).contains(&early),
            "{early} of 1000 in the first half"
        );
    }
}
