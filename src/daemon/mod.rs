//! `director daemon`: the control plane, and its wiring. It logs, keeps the configuration
//! (store, provisioning, the revision in force), answers on its control socket, says when it is
//! ready, and stops cleanly on SIGTERM; the network, IPVS, health checks, the pair and the
//! admin endpoint join it in their own modules, each subscribing to the configuration.
//!
//! Health checks: `Health` is made at start and follows each configuration in force; its
//! runner is a task of its own. Its events (a real server down, up, a new weight, a sorry
//! server in or out) go to the IPVS task, which runs a round over the virtual servers they
//! concern; every IPVS round plans with the health checks' say, so that a configuration
//! change does not put a failed real server back.

pub mod admin;
pub mod balancer;
pub mod boot;
pub mod configuration;
pub mod network;
pub mod pair;
pub mod replication;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{debug, error, info, warn, LevelFilter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Notify};

use crate::control::{self, Request};
use crate::ctl::health::render_status;
use crate::ctl::ipvs::View;
use crate::health::{Event, Health};
use crate::logging::{self, ConsoleLogger};
use crate::sys::clock;
use crate::sys::rtnl::{KernelRtnl, LinkMonitor};
use crate::sys::sysctl::ProcSys;
use balancer::Balancer;
use configuration::Configuration;
use network::Network;

/// Where the persistent disk is mounted; the store lives in `config/` under it.
const DATA_DIR: &str = "/data";
/// Where PID 1 mounts a DIRCONFIG provisioning disk.
const PROVISION_DIR: &str = "/run/dirconfig";

/// Recent log lines kept for `director ctl log`.
const LOG_RING: usize = 1000;

struct Options {
    socket: PathBuf,
    level: LevelFilter,
    data: PathBuf,
    provision: PathBuf,
    /// The record of addresses and routes the director added.
    managed: PathBuf,
    /// The record of the IPVS services the director created.
    ipvs_record: PathBuf,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut socket = None;
    let mut level = std::env::var("DIRECTOR_LOG").ok();
    let mut data = PathBuf::from(DATA_DIR);
    let mut provision = PathBuf::from(PROVISION_DIR);
    let mut managed = PathBuf::from(network::MANAGED_FILE);
    let mut ipvs_record = PathBuf::from(balancer::RECORD_FILE);
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--socket" => socket = Some(words.next().ok_or("--socket needs a path")?.clone()),
            "--data" => data = PathBuf::from(words.next().ok_or("--data needs a directory")?),
            "--provision" => {
                provision = PathBuf::from(words.next().ok_or("--provision needs a directory")?)
            }
            "--network-record" => {
                managed = PathBuf::from(words.next().ok_or("--network-record needs a file")?)
            }
            "--ipvs-record" => {
                ipvs_record = PathBuf::from(words.next().ok_or("--ipvs-record needs a file")?)
            }
            "--log" => level = Some(words.next().ok_or("--log needs a level")?.clone()),
            other => return Err(format!("unexpected argument '{other}'")),
        }
    }
    let level = match level {
        None => LevelFilter::Info,
        Some(text) => logging::parse_level(&text).ok_or_else(|| {
            format!("log level '{text}' is not one of off error warn info debug trace")
        })?,
    };
    Ok(Options {
        socket: control::socket_path(socket.as_deref()),
        level,
        data,
        provision,
        managed,
        ipvs_record,
    })
}

pub fn run(args: &[String]) -> ExitCode {
    let options = match parse_args(args) {
        Ok(options) => options,
        Err(why) => {
            eprintln!("director daemon: {why}");
            return ExitCode::from(2);
        }
    };
    let Some(logger) = logging::install(options.level, LOG_RING) else {
        eprintln!("director daemon: logger already installed");
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(&options, logger)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            error!("{why}");
            ExitCode::FAILURE
        }
    }
}

/// What the tasks answering on the control socket share.
struct Shared {
    logger: &'static ConsoleLogger,
    started: Instant,
    configuration: Arc<Mutex<Configuration>>,
    /// `None` when rtnetlink could not be opened (logged at start).
    network: Option<Arc<Mutex<Network>>>,
    balancer: Arc<Mutex<Balancer>>,
    health: Health,
    /// The pair, once started (a configuration with a pair, after the network's first apply).
    pair: Arc<Mutex<Option<crate::ha::run::Handle>>>,
    /// What configuration replication is doing, when the pair replicates.
    replication: Option<replication::Report>,
    /// The HTTPS admin endpoint, once started.
    admin: std::sync::OnceLock<admin::Service>,
    /// `restart` on the control socket: the daemon stops as on SIGTERM and PID 1 starts it
    /// again (what a changed [pair] section needs).
    restart: Arc<Notify>,
}

async fn serve(options: &Options, logger: &'static ConsoleLogger) -> Result<(), String> {
    let started = Instant::now();
    let socket = options.socket.as_path();
    info!(
        "director daemon {} starting (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    let configuration = Configuration::start(&options.data.join("config"), &options.provision);
    tokio::spawn(report_changes(configuration.subscribe()));
    tokio::spawn(boot::keep_console(configuration.subscribe()));
    let network = open_network(&options.managed);
    // Each link's state (up with carrier) as link events report it, for the pair.
    let (carriers, links) = tokio::sync::watch::channel(Carriers::new());
    // Checks made before the box has its addresses would find every real server down.
    let (network_applied, first_network) = tokio::sync::watch::channel(network.is_none());
    if let Some(network) = &network {
        let reapply = Arc::new(Notify::new());
        tokio::spawn(keep_network(
            configuration.subscribe(),
            configuration.deltas(),
            network.clone(),
            reapply.clone(),
            network_applied,
        ));
        match LinkMonitor::open() {
            Ok(monitor) => watch_links(monitor, reapply, carriers),
            Err(e) => error!("network: link events unavailable: {e}"),
        }
    }
    let (health, runner, events) = Health::new();
    tokio::spawn(runner.run());
    tokio::spawn(keep_health(
        configuration.subscribe(),
        configuration.deltas(),
        health.clone(),
        first_network.clone(),
    ));
    let balancer = Arc::new(Mutex::new(Balancer::new(&options.ipvs_record)));
    tokio::spawn(keep_ipvs(
        configuration.subscribe(),
        configuration.deltas(),
        balancer.clone(),
        health.clone(),
        events,
        first_network.clone(),
    ));
    let first_pair = first_network;
    let pair = Arc::new(Mutex::new(None));
    let (node, incarnation) = if configuration.in_force().pair.is_some() {
        configuration.pair_identity()
    } else {
        (0, 0)
    };
    tokio::spawn(keep_pair(
        configuration.subscribe(),
        pair.clone(),
        (node, incarnation),
        first_pair,
        links,
    ));
    let paired = configuration.in_force().pair.clone();
    let configuration = Arc::new(Mutex::new(configuration));
    let replication =
        paired.and_then(|p| replication::start(&p, node, configuration.clone(), pair.clone()));
    let shared = Arc::new(Shared {
        logger,
        started,
        configuration,
        replication,
        network,
        balancer,
        health,
        pair,
        admin: std::sync::OnceLock::new(),
        restart: Arc::new(Notify::new()),
    });
    if let Some(service) = admin::start(&shared) {
        let _ = shared.admin.set(service);
    }
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    let listener = bind(socket)?;
    info!(
        "ready: control socket {} ({} ms after start)",
        socket.display(),
        started.elapsed().as_millis()
    );
    let why = loop {
        tokio::select! {
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            _ = shared.restart.notified() => break "a restart asked for on the control socket",
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream, shared.clone()));
                }
                Err(e) => warn!("control socket accept: {e}"),
            },
        }
    };
    info!("stopping on {why}");
    // An active node hands over before it goes: the peer takes over at once.
    if let Some(pair) = pair_of(&shared) {
        pair.shut_down().await;
    }
    let _ = std::fs::remove_file(socket);
    Ok(())
}

/// Says on the console what each configuration taken into force holds. The network, IPVS and
/// the pair subscribe the same way to apply it.
async fn report_changes(mut changes: tokio::sync::watch::Receiver<Arc<crate::config::Config>>) {
    loop {
        {
            let config = changes.borrow_and_update();
            let reals: usize = config
                .virtual_servers
                .iter()
                .map(|vs| vs.real_servers.len())
                .sum();
            info!(
                "configuration in force: host {}, {} interface(s), {} virtual server(s) with {} real server(s), {}",
                config.node.hostname,
                config.network.interfaces.len(),
                config.virtual_servers.len(),
                reals,
                if config.pair.is_some() { "paired" } else { "no pair" }
            );
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Starts the pair when the configuration in force at start has one, once the network has
/// been applied (the heartbeat link needs its address), and tells it when a link its VIPs live
/// on loses its carrier or comes back. A later change to the pair section takes effect at the
/// next start (said once).
async fn keep_pair(
    mut changes: tokio::sync::watch::Receiver<Arc<crate::config::Config>>,
    slot: Arc<Mutex<Option<crate::ha::run::Handle>>>,
    (node, incarnation): (u64, u64),
    mut network: tokio::sync::watch::Receiver<bool>,
    mut links: tokio::sync::watch::Receiver<Carriers>,
) {
    let _ = network.wait_for(|applied| *applied).await;
    let first = changes.borrow_and_update().clone();
    if first.pair.is_some() {
        let handle = pair::start(&first, node, incarnation);
        if let Ok(mut slot) = slot.lock() {
            *slot = handle;
        }
    }
    // The links the VIPs live on: the pair is fit while all of them are up (a link not
    // reported yet counts as up).
    let vip_links: Vec<String> = crate::net::vips(&first)
        .into_iter()
        .map(|(_, device)| device.split(':').next().unwrap_or(&device).to_string())
        .collect();
    let mut links_up = true;
    let mut said = false;
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                let config = changes.borrow_and_update().clone();
                if config.pair != first.pair && !said {
                    said = true;
                    warn!("pair: the pair section changed; it takes effect when the daemon restarts");
                }
            }
            changed = links.changed() => {
                if changed.is_err() {
                    return;
                }
                let up = {
                    let carriers = links.borrow_and_update();
                    vip_links
                        .iter()
                        .all(|link| carriers.get(link).copied().unwrap_or(true))
                };
                if up != links_up {
                    links_up = up;
                    let pair = slot.lock().ok().and_then(|p| p.clone());
                    if let Some(pair) = pair {
                        pair.send(crate::ha::run::Command::LinksUp(up));
                    }
                }
            }
        }
    }
}

fn open_network(managed: &Path) -> Option<Arc<Mutex<Network>>> {
    match KernelRtnl::open() {
        Ok(rtnl) => Some(Arc::new(Mutex::new(Network::new(
            Box::new(rtnl),
            Box::new(ProcSys::new(Path::new("/proc/sys"))),
            managed,
        )))),
        Err(e) => {
            error!("network: rtnetlink unavailable, the network is not managed: {e}");
            None
        }
    }
}

/// The delays between applies that could not read the kernel's state: the first, doubled up to
/// the longest.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_LONGEST: Duration = Duration::from_secs(5);

/// Applies the network part of every configuration taken into force, and again when a link
/// comes up (a NIC that appears late, a cable plugged in), and again after a while when the
/// kernel's state could not be read. `applied` turns true after the first apply.
async fn keep_network(
    mut changes: tokio::sync::watch::Receiver<Arc<crate::config::Config>>,
    deltas: tokio::sync::watch::Receiver<crate::config::delta::Delta>,
    network: Arc<Mutex<Network>>,
    reapply: Arc<Notify>,
    applied: tokio::sync::watch::Sender<bool>,
) {
    wait_for_modules().await;
    let mut last: Option<Arc<crate::config::Config>> = None;
    let mut link_came_up = false;
    // After an apply that could not read the kernel's state: the next try's delay.
    let mut retry = RETRY_FIRST;
    loop {
        let config = changes.borrow_and_update().clone();
        // A change to real servers alone (a weight, say) leaves the network as it is: no
        // apply, which in a large table would compete with the IPVS round for the CPU.
        let delta = deltas.borrow().clone();
        let untouched = match (&last, link_came_up) {
            (Some(last), false) => delta
                .virtual_servers_between(last, &config)
                .is_some_and(|changed| !crate::net::concerns_network(last, &config, changed)),
            _ => false,
        };
        last = Some(config.clone());
        let mut again = false;
        if !untouched {
            let network = network.clone();
            let result = tokio::task::spawn_blocking(move || match network.lock() {
                Ok(mut network) => {
                    network.apply(&config);
                    network.needs_retry()
                }
                Err(_) => {
                    error!("network: an earlier apply failed inside; restart the daemon");
                    false
                }
            })
            .await;
            match result {
                Ok(needs_retry) => again = needs_retry,
                Err(e) => error!("network: apply failed: {e}"),
            }
        }
        if !again {
            retry = RETRY_FIRST;
        }
        applied.send_replace(true);
        let wait = if again { retry } else { Duration::MAX };
        retry = (retry * 2).min(RETRY_LONGEST);
        link_came_up = tokio::select! {
            changed = changes.changed() => if changed.is_err() { return } else { false },
            _ = reapply.notified() => true,
            // Applied again as if a link had come up: the whole plan, read afresh.
            _ = tokio::time::sleep(wait), if again => true,
        };
    }
}

/// Checks the real servers each configuration taken into force asks for; nothing is checked
/// before the first, nor before the network has been applied once (`network`). A check that
/// cannot run is logged by `Health::update`, naming its virtual server; its real servers stay
/// in service.
async fn keep_health(
    mut changes: tokio::sync::watch::Receiver<Arc<crate::config::Config>>,
    deltas: tokio::sync::watch::Receiver<crate::config::delta::Delta>,
    health: Health,
    mut network: tokio::sync::watch::Receiver<bool>,
) {
    // An error: the network task is gone; check all the same.
    let _ = network.wait_for(|applied| *applied).await;
    let mut last: Option<Arc<crate::config::Config>> = None;
    loop {
        let config = changes.borrow_and_update().clone();
        // Sent before its configuration: this one's, or a later one's (then unused).
        let delta = deltas.borrow().clone();
        let changed = last
            .as_ref()
            .and_then(|last| delta.virtual_servers_between(last, &config));
        let problems = match changed {
            Some(changed) => health.update_some(&config, changed),
            None => health.update(&config),
        };
        last = Some(config);
        if !problems.is_empty() {
            warn!(
                "health: {} check(s) cannot run; their real servers stay in service",
                problems.len()
            );
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// What the IPVS task does next.
enum Next {
    /// A round for the configuration in force: full, or for its change.
    Configuration { full: bool },
    /// A round over the virtual servers whose health changed.
    Health(BTreeSet<Arc<str>>),
}

/// Health events that come this close together make one IPVS round.
const HEALTH_GATHER: Duration = Duration::from_millis(20);

/// Keeps the kernel's IPVS table equal to the configuration in force and what the health
/// checks say: a full round first, an incremental one for each change of the configuration,
/// one over the virtual servers concerned for each burst of health events, a full one again
/// after a failure (with back-off from 1 s to 30 s) and every `balancer::FULL_EVERY` (or 100
/// times the last round's duration, if longer). The first round waits for the network's first
/// apply (`network`): until the box has an address the kernel refuses every IPv4 real server
/// (EINVAL: with no local routing table it cannot tell a unicast address).
async fn keep_ipvs(
    mut changes: tokio::sync::watch::Receiver<Arc<crate::config::Config>>,
    deltas: tokio::sync::watch::Receiver<crate::config::delta::Delta>,
    balancer: Arc<Mutex<Balancer>>,
    health: Health,
    mut events: mpsc::UnboundedReceiver<Event>,
    mut network: tokio::sync::watch::Receiver<bool>,
) {
    const RETRY_FIRST: Duration = Duration::from_secs(1);
    const RETRY_MAX: Duration = Duration::from_secs(30);
    wait_for_modules().await;
    // An error: the network task is gone; program all the same.
    let _ = network.wait_for(|applied| *applied).await;
    let mut next = Next::Configuration { full: true };
    let mut retry_delay = RETRY_FIRST;
    let mut next_full = Instant::now();
    let mut health_open = true;
    loop {
        let shared = balancer.clone();
        let overrides = health.clone();
        let started = Instant::now();
        let mut ran_full = false;
        let round = match next {
            Next::Configuration { full } => {
                let config = changes.borrow_and_update().clone();
                // Sent before its configuration: this one's, or a later one's (then unused).
                let delta = deltas.borrow().clone();
                ran_full = full;
                tokio::task::spawn_blocking(move || match shared.lock() {
                    Ok(mut balancer) => balancer
                        .round(&config, full, Some(&delta), &overrides)
                        .map(|o| o.retry),
                    Err(_) => {
                        Err("the IPVS service failed earlier; restart the daemon".to_string())
                    }
                })
                .await
            }
            Next::Health(names) => {
                // Not marked seen: a new configuration still gets its own round (which then
                // finds little to do, this one having planned from it).
                let config = changes.borrow().clone();
                tokio::task::spawn_blocking(move || match shared.lock() {
                    Ok(mut balancer) => {
                        let names: Vec<&str> = names.iter().map(|name| &**name).collect();
                        balancer
                            .health_round(&config, &overrides, &names)
                            .map(|o| o.retry)
                    }
                    Err(_) => {
                        Err("the IPVS service failed earlier; restart the daemon".to_string())
                    }
                })
                .await
            }
        };
        let retry = match round {
            Ok(Ok(retry)) => retry,
            Ok(Err(_)) => true,
            Err(e) => {
                error!("ipvs: round failed: {e}");
                true
            }
        };
        let now = Instant::now();
        let wait = if retry {
            let wait = retry_delay;
            retry_delay = (retry_delay * 2).min(RETRY_MAX);
            wait
        } else {
            retry_delay = RETRY_FIRST;
            if ran_full {
                next_full = now + balancer::FULL_EVERY;
            }
            // At most about 1% of the time on rounds: after a long one (a large table on a
            // slow box) the next full round waits longer.
            next_full = next_full.max(now + started.elapsed() * 100);
            next_full.saturating_duration_since(now)
        };
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        next = loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break Next::Configuration { full: false };
                }
                // After a failure the full round due soon covers the health changes too.
                event = events.recv(), if health_open && !retry => match event {
                    Some(event) => break Next::Health(gather(event, &mut events).await),
                    // Only when the daemon is going away: the timer and the configuration
                    // remain.
                    None => health_open = false,
                },
                _ = &mut sleep => break Next::Configuration { full: true },
            }
        };
    }
}

/// The virtual servers that `first` and the events arriving with it (within
/// `HEALTH_GATHER`) concern.
async fn gather(first: Event, events: &mut mpsc::UnboundedReceiver<Event>) -> BTreeSet<Arc<str>> {
    let mut names = BTreeSet::new();
    names.insert(concerned(&first));
    tokio::time::sleep(HEALTH_GATHER).await;
    while let Ok(event) = events.try_recv() {
        names.insert(concerned(&event));
    }
    names
}

fn concerned(event: &Event) -> Arc<str> {
    match event {
        Event::Server { virtual_server, .. } | Event::Sorry { virtual_server, .. } => {
            virtual_server.clone()
        }
    }
}

/// PID 1 loads IPVS and the watchdogs after starting the daemon; the net.ipv4.vs settings and
/// the IPVS table wait until they are in (at most `MODULES_WAIT`, then they go on and report
/// what is missing).
async fn wait_for_modules() {
    const MODULES_WAIT: Duration = Duration::from_secs(30);
    let marker = std::path::Path::new(crate::init::MODULES_LOADING);
    let start = std::time::Instant::now();
    while marker.exists() {
        if start.elapsed() >= MODULES_WAIT {
            warn!(
                "PID 1 is still loading kernel modules after {} s; going on without them",
                MODULES_WAIT.as_secs()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    debug!("kernel modules in after {} ms", start.elapsed().as_millis());
}

/// Reports carrier and link changes, and asks for a new apply when a link comes up. The
/// monitor blocks, so it runs on a thread of its own.
/// Links by name: up with carrier, or not.
type Carriers = std::collections::BTreeMap<String, bool>;

fn watch_links(
    mut monitor: LinkMonitor,
    reapply: Arc<Notify>,
    carriers: tokio::sync::watch::Sender<Carriers>,
) {
    let spawned = std::thread::Builder::new()
        .name("links".into())
        .spawn(move || {
            // The kernel announces a link for many reasons; only changes of state matter.
            let mut known: std::collections::HashMap<u32, (bool, bool)> = Default::default();
            loop {
                match monitor.next(Duration::from_secs(3600)) {
                    Ok(None) => {}
                    Ok(Some(event)) => {
                        if event.removed {
                            known.remove(&event.index);
                            carriers.send_modify(|c| {
                                c.remove(&event.name);
                            });
                            warn!("network: {} is gone", event.name);
                            continue;
                        }
                        let state = (event.up, event.carrier);
                        if known.insert(event.index, state) == Some(state) {
                            continue;
                        }
                        carriers.send_modify(|c| {
                            c.insert(event.name.clone(), event.up && event.carrier);
                        });
                        if event.name != "lo" {
                            info!(
                                "network: {} is {}, {}",
                                event.name,
                                if event.up { "up" } else { "down" },
                                if event.carrier {
                                    "carrier"
                                } else {
                                    "no carrier"
                                }
                            );
                        }
                        if event.up && event.carrier {
                            reapply.notify_one();
                        }
                    }
                    Err(e) => {
                        error!("network: link events stopped: {e}");
                        return;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        error!("network: cannot watch link events: {e}");
    }
}

/// The pair, when it runs.
fn pair_of(shared: &Shared) -> Option<crate::ha::run::Handle> {
    shared.pair.lock().ok().and_then(|pair| pair.clone())
}

fn bind(socket: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    // A socket file left by a crashed daemon would make bind fail with EADDRINUSE.
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("remove stale {}: {e}", socket.display())),
    }
    UnixListener::bind(socket).map_err(|e| format!("bind {}: {e}", socket.display()))
}

async fn answer(stream: UnixStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut bytes = Vec::new();
    let limit = control::MAX_REQUEST as u64 + 1;
    let result = match read.take(limit).read_to_end(&mut bytes).await {
        Ok(n) if n > control::MAX_REQUEST => Err(format!(
            "request longer than {} bytes",
            control::MAX_REQUEST
        )),
        Ok(_) => match String::from_utf8(bytes) {
            Ok(text) => match Request::decode(&text) {
                // The store's commits wait for the disk: off the runtime's thread, so that
                // the tasks sharing it (the heartbeat among them) never wait behind a fsync.
                Ok(request) => tokio::task::spawn_blocking(move || execute(&request, &shared))
                    .await
                    .unwrap_or_else(|e| Err(format!("the request failed inside the daemon: {e}"))),
                Err(why) => Err(why),
            },
            Err(_) => Err("the request is not UTF-8 text".into()),
        },
        Err(e) => Err(format!("reading the request: {e}")),
    };
    let _ = write
        .write_all(control::encode_reply(&result).as_bytes())
        .await;
    let _ = write.shutdown().await;
}

fn execute(request: &Request, shared: &Shared) -> Result<String, String> {
    let words: Vec<&str> = request.words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["status"] => {
            let config = in_force(shared)?;
            let health = shared.health.snapshot();
            let boot = clock::since_boot();
            let pair = match pair_of(shared) {
                Some(pair) => tokio::runtime::Handle::current()
                    .block_on(pair.status())
                    .map_or_else(
                        || "pair: stopped\n".to_string(),
                        |s| crate::ctl::pair::render(&s),
                    ),
                None if config.pair.is_some() => "pair: not running (see the log)\n".to_string(),
                None => String::new(),
            };
            let revision = shared
                .configuration
                .lock()
                .ok()
                .and_then(|c| c.revision())
                .map_or_else(
                    || "the built-in default".to_string(),
                    |n| format!("revision {n}"),
                );
            let pair = match shared.replication.as_ref().and_then(|r| r.lock().ok()) {
                Some(report) => format!("{pair}  configuration: {revision}, {}\n", *report),
                None => pair,
            };
            Ok(format!(
                "daemon pid {}\nversion {}\nuptime {} s\n{pair}{}",
                std::process::id(),
                env!("CARGO_PKG_VERSION"),
                shared.started.elapsed().as_secs(),
                render_status(&config, &health, boot, None)
            ))
        }
        [word @ ("takeover" | "release")] => {
            let pair = pair_of(shared).ok_or("no pair is running on this box")?;
            let command = if *word == "takeover" {
                crate::ha::run::Command::Takeover
            } else {
                crate::ha::run::Command::Release
            };
            if !pair.send(command) {
                return Err("the pair has stopped".into());
            }
            // The machine acts at once; its status shows the outcome.
            let status = tokio::runtime::Handle::current()
                .block_on(pair.status())
                .ok_or("the pair has stopped")?;
            Ok(format!(
                "{word} asked\n{}",
                crate::ctl::pair::render(&status)
            ))
        }
        ["log"] => Ok(lines(&shared.logger.recent(), usize::MAX)),
        ["log", count] => {
            let count: usize = count
                .parse()
                .map_err(|_| format!("log: '{count}' is not a number of lines"))?;
            Ok(lines(&shared.logger.recent(), count))
        }
        ["net"] | ["net", "apply"] => {
            let network = shared
                .network
                .as_ref()
                .ok_or("the network is not managed (rtnetlink unavailable; see the log)")?;
            let config = match shared.configuration.lock() {
                Ok(configuration) => configuration.in_force(),
                Err(_) => return Err("the configuration service failed earlier".into()),
            };
            let mut network = network
                .lock()
                .map_err(|_| "the network service failed earlier; restart the daemon")?;
            if words.len() == 1 {
                network.describe(&config)
            } else {
                let report = network.apply(&config);
                let mut out = String::new();
                for line in &report.done {
                    out.push_str(&format!("done: {line}\n"));
                }
                for line in &report.failed {
                    out.push_str(&format!("failed: {line}\n"));
                }
                for line in &report.problems {
                    out.push_str(&format!("not applied: {line}\n"));
                }
                if out.is_empty() {
                    out.push_str("nothing to do: the network matches the configuration\n");
                }
                Ok(out)
            }
        }
        ["ipvs", rest @ ..] => {
            let config = in_force(shared)?;
            let mut balancer = shared
                .balancer
                .lock()
                .map_err(|_| "the IPVS service failed earlier; restart the daemon")?;
            // With the health checks' view: the snapshot and the boot clock of its times.
            let health = || (shared.health.snapshot(), clock::since_boot());
            match rest {
                [] => balancer.show(View::Plain),
                ["--stats"] => balancer.show(View::Stats),
                ["--rate"] => balancer.show(View::Rate),
                ["--json"] => {
                    let (snapshot, boot) = health();
                    balancer.show_health(None, &config, &snapshot, boot)
                }
                ["--health", view @ ..] | [view @ .., "--health"] if view.len() <= 1 => {
                    let view = match view {
                        [] => View::Plain,
                        ["--stats"] => View::Stats,
                        ["--rate"] => View::Rate,
                        other => {
                            return Err(format!(
                                "ipvs --health: unknown option '{}' (--stats or --rate)",
                                other.join(" ")
                            ))
                        }
                    };
                    let (snapshot, boot) = health();
                    balancer.show_health(Some(view), &config, &snapshot, boot)
                }
                ["apply"] => balancer
                    .round(&config, true, None, &shared.health)
                    .map(|outcome| balancer::describe(&outcome)),
                other => Err(format!(
                    "ipvs: unknown option '{}' (ipvs [--stats|--rate|--json] | ipvs --health [--stats|--rate] | ipvs apply)",
                    other.join(" ")
                )),
            }
        }
        ["admin", ..] => shared
            .admin
            .get()
            .ok_or("the admin endpoint is not running (see the log)")?
            .handle(request),
        ["restart"] => {
            shared.restart.notify_one();
            Ok("the daemon stops now; PID 1 starts it again\n".into())
        }
        ["console", "note", words @ ..] => {
            // The operator's console: logins, the emergency shell, a factory reset (the text
            // as the body, or as words: `director ctl console note TEXT`).
            let text = if request.body.trim().is_empty() {
                words.join(" ")
            } else {
                request.body.trim().to_string()
            };
            if text.is_empty() {
                return Err("console note: no text".into());
            }
            warn!("console: {text}");
            Ok(String::new())
        }
        ["config", ..] => match shared.configuration.lock() {
            Ok(mut configuration) => configuration.handle(request),
            Err(_) => Err("the configuration service failed earlier; restart the daemon".into()),
        },
        [] => Err("empty request".into()),
        [other, ..] => Err(format!("unknown command '{other}'")),
    }
}

fn in_force(shared: &Shared) -> Result<Arc<crate::config::Config>, String> {
    match shared.configuration.lock() {
        Ok(configuration) => Ok(configuration.in_force()),
        Err(_) => Err("the configuration service failed earlier; restart the daemon".into()),
    }
}

fn lines(all: &[String], count: usize) -> String {
    let skip = all.len().saturating_sub(count);
    all[skip..].iter().map(|l| format!("{l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_takes_the_newest() {
        let all = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(lines(&all, 2), "b\nc\n");
        assert_eq!(lines(&all, 10), "a\nb\nc\n");
    }

    #[test]
    fn args_are_checked() {
        assert!(parse_args(&["--socket".into()]).is_err());
        assert!(parse_args(&["--log".into(), "chatty".into()]).is_err());
        let options = parse_args(&["--socket".into(), "/tmp/x.sock".into()]).unwrap();
        assert_eq!(options.socket, PathBuf::from("/tmp/x.sock"));
    }
}
