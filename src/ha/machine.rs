//! The pair's state machine, pure: `Machine::step(input, now)` takes what happened (a beat
//! heard, time passing, a change of this node's fitness, an operator's command) and returns
//! what to do (send a beat, take over, release, log), in order. It reads no clock and touches
//! nothing: the executor feeds it and performs its actions, and the tests drive it with a
//! simulated clock.
//!
//! The rules:
//! - The peer is alive while any channel has brought a beat within `deadtime`; one silent
//!   channel is a warning, never a failover.
//! - After boot a node waits in `Init` for `initdead` unless it hears its peer first.
//! - With the peer alive, exactly one node is active. An active node stays active (a takeover
//!   costs the clients a moment) unless there is a reason to move: the peer claims the role
//!   (`ctl takeover` there) or this node yields it (`ctl release` here); the peer reaches more
//!   ping nodes; or `auto_failback` and the peer is the primary. Then the active node
//!   releases first and says so, and the peer takes over at once. When neither is active,
//!   the better ranked takes over: intent, ping nodes reached, preference, priority, node id.
//!   Two active nodes (a healed split) keep the better ranked.
//! - With the peer dead (every channel silent for `deadtime`, or it said it was leaving),
//!   this node takes over, unless the isolation rule says otherwise: with `ping_nodes_decide`
//!   a node that reaches none of its ping nodes does not; with `higher_priority_stays` a node
//!   whose peer ranks higher (preference, priority) does not, since it cannot tell a dead
//!   peer from a cut link. A peer that said it was leaving is always taken over from.
//! - A node whose own links are down is in `Fault`: it holds nothing.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::config::model::{Isolation, Pair, RolePreference};
use crate::config::replica::Stamp;

/// Transitions kept for `ctl status`.
pub const HISTORY: usize = 32;

/// How long a node that shut down and handed over goes on once its peer says it is active:
/// what the clients sent here before the peer's announcement reached them is still forwarded
/// to the peer (the kernel holds it while the VIP's neighbour entry resolves) instead of dying
/// with this box.
pub const LINGER: Duration = Duration::from_millis(250);
/// The longest a leaving node waits for its peer to say it is active (its release, which may
/// take a while on a big table, included).
pub const LEAVE_WAIT: Duration = Duration::from_secs(1);

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Just started: waits for the peer, at most `initdead`.
    Init,
    Standby,
    Active,
    /// Its own links are down: it holds nothing and waits for them.
    Fault,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Init => "init",
            Role::Standby => "standby",
            Role::Active => "active",
            Role::Fault => "fault",
        }
    }

    pub fn from_code(code: u8) -> Option<Role> {
        Some(match code {
            0 => Role::Init,
            1 => Role::Standby,
            2 => Role::Active,
            3 => Role::Fault,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        match self {
            Role::Init => 0,
            Role::Standby => 1,
            Role::Active => 2,
            Role::Fault => 3,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A heartbeat channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Udp,
    Serial,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Udp, Channel::Serial];

    fn index(self) -> usize {
        match self {
            Channel::Udp => 0,
            Channel::Serial => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Channel::Udp => "udp",
            Channel::Serial => "serial",
        }
    }
}

/// What an operator asked of a node; it lasts until the opposite request, or until the peer
/// dies (then the node takes over whatever it was asked).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Intent {
    #[default]
    None,
    /// `ctl takeover`: be active while alive and fit.
    Claim,
    /// `ctl release`: be standby while the peer can be active.
    Yield,
}

impl Intent {
    pub fn code(self) -> u8 {
        match self {
            Intent::Yield => 0,
            Intent::None => 1,
            Intent::Claim => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Intent> {
        Some(match code {
            0 => Intent::Yield,
            1 => Intent::None,
            2 => Intent::Claim,
            _ => return None,
        })
    }
}

/// How well a node can serve: its links, and the ping nodes it reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fitness {
    pub links_up: bool,
    pub pings: u8,
}

/// What a node says of itself in every heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Beat {
    pub node: u64,
    pub role: Role,
    pub preference: RolePreference,
    pub priority: u8,
    pub fitness: Fitness,
    pub intent: Intent,
    /// Raised by every operator's request on either node: of two intents the later (higher)
    /// holds and the other is dropped.
    pub intent_epoch: u64,
    /// It is shutting down: take over now.
    pub leaving: bool,
    /// It has heard its peer and ranks it above itself: when neither is active, a node takes
    /// over only if it ranks higher and its peer agrees (views that disagree, one of them
    /// stale, or a peer that has not heard it yet, wait for the next beats).
    pub defers: bool,
    /// The configuration revision it runs.
    pub revision: u64,
    /// The stamp of the configuration's part the pair shares.
    pub shared: Stamp,
}

#[cfg(test)]
impl Beat {
    /// A standby backup at priority 100 that reaches its links and one ping node, for tests
    /// to change what they are about with `..Beat::sample(node)`.
    pub fn sample(node: u64) -> Beat {
        Beat {
            node,
            role: Role::Standby,
            preference: RolePreference::Backup,
            priority: 100,
            fitness: Fitness {
                links_up: true,
                pings: 1,
            },
            intent: Intent::None,
            intent_epoch: 0,
            leaving: false,
            defers: false,
            revision: 1,
            shared: Stamp::default(),
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Time passed (the executor calls at `next_wakeup` at the latest).
    Tick,
    /// An authenticated, fresh beat of the peer.
    Heard { channel: Channel, beat: Beat },
    /// This node's links or ping nodes changed.
    Fitness(Fitness),
    /// The configuration revision this node runs, and its shared part's stamp.
    Config { revision: u64, shared: Stamp },
    /// `ctl takeover`.
    Takeover,
    /// `ctl release`.
    Release,
    /// A clean stop: hand over to the peer.
    Shutdown,
}

/// What to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this node's beat (`Machine::beat`) on every channel now.
    Send,
    /// VIPs up, announcements, the sync daemon as master: become the active director.
    TakeOver,
    /// The reverse, before the beat that tells the peer.
    Release,
    Warn(String),
    Info(String),
}

/// A change of role and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub at: Duration,
    pub from: Role,
    pub to: Role,
    pub reason: String,
}

/// The pair's timing and rules, from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub node: u64,
    pub preference: RolePreference,
    pub priority: u8,
    pub keepalive: Duration,
    pub deadtime: Duration,
    pub warntime: Option<Duration>,
    pub initdead: Duration,
    pub auto_failback: bool,
    pub ping_nodes: usize,
    pub isolation: Isolation,
    /// The channels configured (the others are never expected).
    pub channels: Vec<Channel>,
}

impl Settings {
    /// The settings of `pair` for node `node` with preference `preference`.
    pub fn new(pair: &Pair, node: u64, preference: RolePreference) -> Settings {
        let deadtime = pair.deadtime.as_duration();
        let mut channels = Vec::new();
        if pair.udp.is_some() {
            channels.push(Channel::Udp);
        }
        if pair.serial.is_some() {
            channels.push(Channel::Serial);
        }
        Settings {
            node,
            preference,
            priority: pair.priority,
            keepalive: pair.keepalive.as_duration(),
            deadtime,
            warntime: pair.warntime.map(|w| w.as_duration()),
            // heartbeat's advice: at least twice the deadtime (a booting link is slow).
            initdead: pair.initdead.map_or(deadtime * 2, |i| i.as_duration()),
            auto_failback: pair.auto_failback,
            ping_nodes: pair.ping_nodes.len(),
            isolation: pair.when_isolated,
            channels,
        }
    }
}

/// What this node knows of a channel.
#[derive(Clone, Copy, Debug, Default)]
struct Line {
    heard: Option<Duration>,
    /// It has been reported silent (while the peer is heard elsewhere).
    silent: bool,
    /// It has been reported late (`warntime`).
    late: bool,
}

/// The state machine of one node of the pair.
#[derive(Clone, Debug)]
pub struct Machine {
    settings: Settings,
    role: Role,
    since: Duration,
    started: Duration,
    fitness: Fitness,
    intent: Intent,
    intent_epoch: u64,
    /// Shutting down (`Input::Shutdown`).
    leaving: Option<Leaving>,
    revision: u64,
    shared: Stamp,
    /// Its own fitness has been measured (the first ping round): before, it leaves `Init`
    /// only after `initdead`.
    fitness_known: bool,
    /// The reason given when this node last decided to keep its role without a live peer
    /// (logged once).
    held: String,
    peer: Option<Beat>,
    /// The peer was alive at the last step.
    peer_alive: bool,
    /// Since when it has been alive.
    alive_since: Option<Duration>,
    /// The time of the last step.
    last_step: Duration,
    lines: [Line; 2],
    next_send: Duration,
    history: VecDeque<Transition>,
}

impl Machine {
    /// A node starting at `now`, in `Init`.
    pub fn new(settings: Settings, now: Duration) -> Machine {
        Machine {
            fitness_known: settings.ping_nodes == 0,
            settings,
            role: Role::Init,
            since: now,
            started: now,
            fitness: Fitness {
                links_up: true,
                pings: 0,
            },
            intent: Intent::None,
            intent_epoch: 0,
            leaving: None,
            revision: 0,
            shared: Stamp::default(),
            held: String::new(),
            peer: None,
            peer_alive: false,
            alive_since: None,
            last_step: now,
            lines: [Line::default(); 2],
            next_send: now,
            history: VecDeque::with_capacity(HISTORY),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Since when the role holds.
    pub fn since(&self) -> Duration {
        self.since
    }

    pub fn intent(&self) -> Intent {
        self.intent
    }

    pub fn peer(&self) -> Option<&Beat> {
        self.peer.as_ref()
    }

    pub fn peer_alive(&self) -> bool {
        self.peer_alive
    }

    /// When `channel` last brought a beat.
    pub fn heard(&self, channel: Channel) -> Option<Duration> {
        self.lines[channel.index()].heard
    }

    pub fn history(&self) -> impl Iterator<Item = &Transition> {
        self.history.iter()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// This node's beat as it stands.
    pub fn beat(&self) -> Beat {
        let mut beat = self.plain_beat();
        // Before its first ping round a node's rank means nothing yet: it defers to nobody.
        let known = self.fitness_known || self.last_step >= self.started + self.settings.initdead;
        beat.defers = known
            && self
                .peer
                .is_some_and(|peer| self.peer_alive && rank(&peer) > rank(&beat));
        beat
    }

    /// The beat without `defers`.
    fn plain_beat(&self) -> Beat {
        Beat {
            node: self.settings.node,
            role: self.role,
            preference: self.settings.preference,
            priority: self.settings.priority,
            fitness: self.fitness,
            intent: self.intent,
            intent_epoch: self.intent_epoch,
            leaving: self.leaving.is_some(),
            revision: self.revision,
            shared: self.shared,
            defers: false,
        }
    }

    /// Whether a node that shut down may stop now: it was not active, or its peer has said it
    /// is active for `LINGER`, or it waited `LEAVE_WAIT` in vain.
    /// False while it has not been asked to shut down.
    pub fn left(&self, now: Duration) -> bool {
        self.leaving.is_some_and(|l| now >= l.ends())
    }

    /// When the machine must be stepped again (with `Tick`) at the latest.
    pub fn next_wakeup(&self) -> Duration {
        if let Some(leaving) = &self.leaving {
            return if leaving.handing_over() {
                leaving.ends().min(self.next_send)
            } else {
                leaving.ends()
            };
        }
        let mut next = self.next_send;
        if self.role == Role::Init {
            next = next.min(self.started + self.settings.initdead);
        }
        // The times a channel falls silent or late: those still ahead.
        let mut lines = Vec::with_capacity(4);
        for channel in &self.settings.channels {
            let line = &self.lines[channel.index()];
            match line.heard {
                Some(heard) => {
                    lines.push(heard + self.settings.deadtime);
                    if let Some(warn) = self.settings.warntime {
                        lines.push(heard + warn);
                    }
                }
                None => lines.extend(self.alive_since.map(|a| a + self.settings.deadtime)),
            }
        }
        lines
            .into_iter()
            .filter(|t| *t > self.last_step)
            .fold(next, Duration::min)
    }

    /// Takes in `input` at `now`: what to do, in order.
    pub fn step(&mut self, input: Input, now: Duration) -> Vec<Action> {
        self.last_step = now;
        let mut actions = Vec::new();
        let mut send = false;
        match input {
            Input::Tick => {}
            Input::Heard { channel, beat } => {
                if beat.node == self.settings.node {
                    actions.push(Action::Warn(format!(
                        "heartbeat: a beat on {} carries this node's own id {:x}: a looped cable, or both nodes share an id",
                        channel.name(),
                        beat.node
                    )));
                    return actions;
                }
                let line = &mut self.lines[channel.index()];
                if line.silent {
                    actions.push(Action::Info(format!(
                        "heartbeat: {} works again",
                        channel.name()
                    )));
                }
                line.heard = Some(now);
                line.silent = false;
                line.late = false;
                // The peer's later request supersedes this node's.
                let later =
                    (beat.intent_epoch, beat.node) > (self.intent_epoch, self.settings.node);
                if beat.intent != Intent::None && later && self.intent != Intent::None {
                    actions.push(Action::Info(format!(
                        "pair: the peer's {} request replaces this node's",
                        if beat.intent == Intent::Claim {
                            "takeover"
                        } else {
                            "release"
                        }
                    )));
                    self.intent = Intent::None;
                    send = true;
                }
                self.intent_epoch = self.intent_epoch.max(beat.intent_epoch);
                let first = self.peer.is_none();
                let changed = self.peer.is_some_and(|p| {
                    p.role != beat.role || p.intent != beat.intent || p.fitness != beat.fitness
                });
                self.peer = Some(beat);
                // A peer that just appeared or changed learns of this node at once.
                send |= first || changed || !self.peer_alive;
            }
            Input::Fitness(fitness) => {
                self.fitness_known = true;
                if fitness != self.fitness {
                    self.fitness = fitness;
                    send = true;
                }
            }
            Input::Config { revision, shared } => {
                // A new shared part goes to the peer at once: it may want to take it.
                send = shared != self.shared;
                self.revision = revision;
                self.shared = shared;
            }
            Input::Takeover | Input::Release => {
                let (intent, what) = if input == Input::Takeover {
                    (Intent::Claim, "takeover")
                } else {
                    (Intent::Yield, "release")
                };
                if self.intent != intent {
                    self.intent = intent;
                    self.intent_epoch = self.later_epoch();
                    actions.push(Action::Info(format!("pair: {what} asked")));
                    send = true;
                }
            }
            Input::Shutdown => {
                if self.leaving.is_some() {
                    return actions;
                }
                let hand_over = self.role == Role::Active && self.peer_alive;
                self.leaving = Some(Leaving {
                    at: now,
                    wait: if hand_over {
                        LEAVE_WAIT
                    } else {
                        Duration::ZERO
                    },
                    peer_active: None,
                });
                if self.role == Role::Active {
                    self.enter(Role::Standby, now, "shutting down".into(), &mut actions);
                } else {
                    actions.push(Action::Send);
                }
                self.next_send = now + self.settings.keepalive;
                return actions;
            }
        }
        if let Some(leaving) = &mut self.leaving {
            // Until it stops, it says it is leaving every keepalive (a lost beat must not leave
            // the peer waiting for a deadtime) and watches for the peer to become active.
            if leaving.handing_over() && self.peer.is_some_and(|p| p.role == Role::Active) {
                leaving.peer_active = Some(now);
            }
            if leaving.handing_over() && now >= self.next_send {
                actions.push(Action::Send);
                self.next_send = now + self.settings.keepalive;
            }
            return actions;
        }
        self.watch_lines(now, &mut actions);
        let before = actions.len();
        self.decide(now, &mut actions);
        let moved = actions.len() > before;
        if send && !moved || now >= self.next_send {
            actions.push(Action::Send);
        }
        if actions.contains(&Action::Send) {
            self.next_send = now + self.settings.keepalive;
        }
        actions
    }

    /// Whether the peer is alive, and warnings about channels that fell silent or are late.
    fn watch_lines(&mut self, now: Duration, actions: &mut Vec<Action>) {
        let deadtime = self.settings.deadtime;
        let alive_on: Vec<Channel> = self
            .settings
            .channels
            .iter()
            .copied()
            .filter(|c| {
                self.lines[c.index()]
                    .heard
                    .is_some_and(|h| now.saturating_sub(h) < deadtime)
            })
            .collect();
        let alive = !alive_on.is_empty() && !self.peer.is_some_and(|p| p.leaving);
        for &channel in &self.settings.channels {
            let line = &mut self.lines[channel.index()];
            let quiet = line.heard.map(|h| now.saturating_sub(h));
            if let (Some(warn), Some(quiet)) = (self.settings.warntime, quiet) {
                if quiet >= warn && !line.late && quiet < deadtime {
                    line.late = true;
                    actions.push(Action::Warn(format!(
                        "heartbeat: no beat on {} for {} ms (warntime {} ms)",
                        channel.name(),
                        quiet.as_millis(),
                        warn.as_millis()
                    )));
                }
            }
            // A channel never heard is silent once the peer has been heard elsewhere for
            // a deadtime.
            let silent = !alive_on.contains(&channel)
                && (line.heard.is_some()
                    || self
                        .alive_since
                        .is_some_and(|since| now.saturating_sub(since) >= deadtime));
            if silent && alive && !line.silent {
                line.silent = true;
                let since = match quiet {
                    Some(quiet) => format!("for {} ms", quiet.as_millis()),
                    None => "since start".into(),
                };
                actions.push(Action::Warn(format!(
                    "heartbeat: no beat on {} {since}; the peer is heard on {}: no failover",
                    channel.name(),
                    alive_on
                        .iter()
                        .map(|c| c.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        if self.peer_alive && !alive {
            let why = if self.peer.is_some_and(|p| p.leaving) {
                "the peer is shutting down".to_string()
            } else {
                format!("no beat on any channel for {} ms", deadtime.as_millis())
            };
            actions.push(Action::Warn(format!("heartbeat: peer lost: {why}")));
            for line in &mut self.lines {
                line.silent = false;
            }
            self.alive_since = None;
        }
        if alive && !self.peer_alive {
            self.alive_since = Some(now);
        }
        self.peer_alive = alive;
    }

    /// An epoch later than any this node has seen.
    fn later_epoch(&self) -> u64 {
        self.intent_epoch
            .max(self.peer.map_or(0, |p| p.intent_epoch))
            .saturating_add(1)
    }

    /// Moves to the role the rules ask for.
    fn decide(&mut self, now: Duration, actions: &mut Vec<Action>) {
        let (role, reason) = self.wanted(now);
        if role == self.role {
            // Without a live peer, why this node does not take over is worth a line, once.
            if !self.peer_alive && role != Role::Active && !reason.is_empty() && reason != self.held
            {
                actions.push(Action::Warn(format!("pair: stays {role}: {reason}")));
                self.held = reason;
            }
            return;
        }
        self.held.clear();
        {
            // A node that takes over because its peer died forgets a request to yield.
            if role == Role::Active && !self.peer_alive && self.intent == Intent::Yield {
                self.intent = Intent::None;
            }
            self.enter(role, now, reason, actions);
        }
    }

    /// The role this node should have now, and why (when it changes).
    fn wanted(&self, now: Duration) -> (Role, String) {
        if !self.fitness.links_up {
            return (Role::Fault, "this node's links are down".into());
        }
        let waiting = now < self.started + self.settings.initdead;
        if self.role == Role::Init && !self.fitness_known && waiting {
            return (Role::Init, String::new());
        }
        let peer = match (&self.peer, self.peer_alive) {
            (Some(peer), true) => *peer,
            (peer, _) => {
                if self.role == Role::Init && peer.is_none() && waiting {
                    return (Role::Init, String::new());
                }
                return self.alone(peer.as_ref());
            }
        };
        let me = self.plain_beat();
        if !peer.fitness.links_up || peer.role == Role::Fault {
            return (
                Role::Active,
                "the peer is in fault (its links are down)".into(),
            );
        }
        let mine = rank(&me);
        let theirs = rank(&peer);
        match (self.role, peer.role) {
            (Role::Active, Role::Active) => {
                if mine > theirs {
                    (Role::Active, String::new())
                } else {
                    (
                        Role::Standby,
                        "both nodes active (a healed split): the peer ranks higher".into(),
                    )
                }
            }
            (Role::Active, Role::Standby) => match self.hand_over_to(&peer) {
                Some(why) => (Role::Standby, why),
                None => (Role::Active, String::new()),
            },
            (Role::Active, _) => (Role::Active, String::new()),
            (_, Role::Active) => (Role::Standby, "the peer is active".into()),
            _ => {
                if mine > theirs && !peer.defers {
                    // The peer has not heard this node yet, or sees things otherwise (a
                    // stale beat): the next beats settle it.
                    let role = if self.role == Role::Init {
                        Role::Standby
                    } else {
                        self.role
                    };
                    (
                        role,
                        "this node ranks higher: waiting for the peer to agree".into(),
                    )
                } else if mine > theirs {
                    (
                        Role::Active,
                        format!(
                            "neither node active: this node ranks higher ({})",
                            why_rank(&me, &peer)
                        ),
                    )
                } else {
                    (Role::Standby, "the peer ranks higher and takes over".into())
                }
            }
        }
    }

    /// Why the active node should hand over to its live, standby peer, if it should.
    fn hand_over_to(&self, peer: &Beat) -> Option<String> {
        let me = self.plain_beat();
        if me.intent == Intent::Yield && peer.intent != Intent::Yield {
            return Some("release asked".into());
        }
        if peer.intent == Intent::Claim && me.intent != Intent::Claim {
            return Some("the peer asked to take over".into());
        }
        if me.intent != peer.intent {
            return None;
        }
        if peer.fitness.pings > me.fitness.pings {
            return Some(format!(
                "the peer reaches more ping nodes ({} against {})",
                peer.fitness.pings, me.fitness.pings
            ));
        }
        if peer.fitness.pings < me.fitness.pings {
            return None;
        }
        if self.settings.auto_failback
            && peer.preference == RolePreference::Primary
            && me.preference != RolePreference::Primary
        {
            return Some("auto_failback: the primary is back".into());
        }
        None
    }

    /// The role without a live peer (`peer`: what it last said, if anything).
    fn alone(&self, peer: Option<&Beat>) -> (Role, String) {
        let left = peer.is_some_and(|p| p.leaving);
        if left {
            return (Role::Active, "the peer shut down and handed over".into());
        }
        let lost = match peer {
            Some(_) => format!(
                "the peer is silent on every channel for {} ms",
                self.settings.deadtime.as_millis()
            ),
            None => format!(
                "no peer heard within initdead ({} ms)",
                self.settings.initdead.as_millis()
            ),
        };
        match self.settings.isolation {
            Isolation::PingNodesDecide => {
                if self.settings.ping_nodes > 0 && self.fitness.pings == 0 {
                    (
                        Role::Standby,
                        format!("{lost}, and no ping node answers: not taking over (isolated)"),
                    )
                } else {
                    (Role::Active, lost)
                }
            }
            Isolation::HigherPriorityStays => match peer {
                Some(peer) if order(peer) > order(&self.plain_beat()) => (
                    Role::Standby,
                    format!(
                        "{lost}; the peer has the higher priority and stays active: this node does not take over (when_isolated = higher_priority_stays)"
                    ),
                ),
                _ => (Role::Active, lost),
            },
        }
    }

    fn enter(&mut self, role: Role, now: Duration, reason: String, actions: &mut Vec<Action>) {
        let from = self.role;
        if from == Role::Active {
            actions.push(Action::Release);
        }
        if role == Role::Active {
            actions.push(Action::TakeOver);
        }
        self.role = role;
        self.since = now;
        // The peer learns at once; after a release only once it is done.
        actions.push(Action::Send);
        actions.push(Action::Info(format!("pair: {from} -> {role}: {reason}")));
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(Transition {
            at: now,
            from,
            to: role,
            reason,
        });
    }
}

/// A node shutting down.
#[derive(Clone, Copy, Debug)]
struct Leaving {
    /// Since when.
    at: Duration,
    /// How long it waits for the peer to say it is active (zero: it had nothing to hand over).
    wait: Duration,
    /// When the peer first said it is active since.
    peer_active: Option<Duration>,
}

impl Leaving {
    /// When it may stop.
    fn ends(&self) -> Duration {
        match self.peer_active {
            Some(active) => active + LINGER,
            None => self.at + self.wait,
        }
    }

    /// Still waiting for the peer to take over.
    fn handing_over(&self) -> bool {
        self.wait > Duration::ZERO && self.peer_active.is_none()
    }
}

/// The order of nodes when neither is active, best last.
type Rank = (u8, u8, u8, u8, u64);

fn rank(beat: &Beat) -> Rank {
    let (preference, priority, node) = order(beat);
    (
        beat.intent.code(),
        beat.fitness.pings,
        preference,
        priority,
        node,
    )
}

/// The configured order: preference, priority, node id.
fn order(beat: &Beat) -> (u8, u8, u64) {
    let preference = match beat.preference {
        RolePreference::Backup => 0,
        RolePreference::Equal => 1,
        RolePreference::Primary => 2,
    };
    (preference, beat.priority, beat.node)
}

/// What decides between two nodes.
fn why_rank(me: &Beat, peer: &Beat) -> &'static str {
    if me.intent != peer.intent {
        "takeover asked"
    } else if me.fitness.pings != peer.fitness.pings {
        "more ping nodes reached"
    } else if me.preference != peer.preference {
        "preferred role"
    } else if me.priority != peer.priority {
        "higher priority"
    } else {
        "node id"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn settings(node: u64, preference: RolePreference) -> Settings {
        Settings {
            node,
            preference,
            priority: 100,
            keepalive: 20 * MS,
            deadtime: 100 * MS,
            warntime: None,
            initdead: 300 * MS,
            auto_failback: false,
            ping_nodes: 0,
            isolation: Isolation::PingNodesDecide,
            channels: vec![Channel::Udp, Channel::Serial],
        }
    }

    /// Two nodes joined by two channels, on a simulated clock stepped by 1 ms; beats arrive
    /// at once on every channel not cut.
    struct Lab {
        nodes: Vec<Machine>,
        running: [bool; 2],
        cut: [bool; 2],
        now: Duration,
        /// (time, node, action) of every TakeOver, Release and log line.
        events: Vec<(Duration, usize, Action)>,
    }

    impl Lab {
        fn new(a: Settings, b: Settings) -> Lab {
            Lab {
                nodes: vec![
                    Machine::new(a, Duration::ZERO),
                    Machine::new(b, Duration::ZERO),
                ],
                running: [true; 2],
                cut: [false; 2],
                now: Duration::ZERO,
                events: Vec::new(),
            }
        }

        fn step(&mut self, node: usize, input: Input) {
            let actions = self.nodes[node].step(input, self.now);
            let mut sends = 0;
            for action in actions {
                match action {
                    Action::Send => sends += 1,
                    other => self.events.push((self.now, node, other)),
                }
            }
            let other = 1 - node;
            for _ in 0..sends {
                let beat = self.nodes[node].beat();
                for channel in Channel::ALL {
                    if !self.cut[channel.index()] && self.running[other] {
                        self.step(other, Input::Heard { channel, beat });
                    }
                }
            }
        }

        fn run_for(&mut self, span: Duration) {
            let end = self.now + span;
            while self.now < end {
                self.now += MS;
                for node in 0..2 {
                    if self.running[node] && self.nodes[node].next_wakeup() <= self.now {
                        self.step(node, Input::Tick);
                    }
                }
            }
        }

        fn roles(&self) -> (Role, Role) {
            (self.nodes[0].role(), self.nodes[1].role())
        }

        /// When `node` last took over.
        fn took_over(&self, node: usize) -> Option<Duration> {
            self.events
                .iter()
                .rev()
                .find(|(_, n, a)| *n == node && *a == Action::TakeOver)
                .map(|(at, ..)| *at)
        }

        fn warned(&self, node: usize, text: &str) -> bool {
            self.events
                .iter()
                .any(|(_, n, a)| *n == node && matches!(a, Action::Warn(w) if w.contains(text)))
        }

        fn count(&self, action: &Action) -> usize {
            self.events.iter().filter(|(_, _, a)| a == action).count()
        }
    }

    fn pair() -> Lab {
        let mut lab = Lab::new(
            settings(1, RolePreference::Primary),
            settings(2, RolePreference::Backup),
        );
        lab.run_for(50 * MS);
        lab
    }

    fn fit(pings: u8) -> Input {
        Input::Fitness(Fitness {
            links_up: true,
            pings,
        })
    }

    /// A primary active and a backup, with `count` ping nodes that both reach.
    fn pair_with_ping_nodes(count: u8) -> Lab {
        let mut a = settings(1, RolePreference::Primary);
        let mut b = settings(2, RolePreference::Backup);
        a.ping_nodes = count.into();
        b.ping_nodes = count.into();
        let mut lab = Lab::new(a, b);
        lab.step(0, fit(count));
        lab.step(1, fit(count));
        lab.run_for(50 * MS);
        assert_eq!(lab.roles(), (Role::Active, Role::Standby));
        lab
    }

    #[test]
    fn a_lone_node_waits_initdead_then_takes_over() {
        let mut machine = Machine::new(settings(1, RolePreference::Equal), Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut took_over = None;
        while now < Duration::from_secs(1) {
            if machine.next_wakeup() <= now {
                let actions = machine.step(Input::Tick, now);
                if actions.contains(&Action::TakeOver) {
                    took_over = Some(now);
                }
            }
            now += MS;
        }
        assert_eq!(took_over, Some(300 * MS));
        assert_eq!(machine.role(), Role::Active);
        let last = machine.history().last().expect("a transition");
        assert_eq!(last.reason, "no peer heard within initdead (300 ms)");
    }

    #[test]
    fn two_nodes_agree_on_one_active_the_primary() {
        let lab = pair();

        assert_eq!(lab.roles(), (Role::Active, Role::Standby));
        assert_eq!(lab.count(&Action::TakeOver), 1);
        // Decided on the first beats, not after initdead.
        assert!(lab.took_over(0).expect("took over") < 5 * MS);
    }

    #[test]
    fn the_standby_takes_over_a_deadtime_after_the_active_dies() {
        let mut lab = pair();
        lab.running[0] = false;
        let died = lab.now;
        lab.run_for(500 * MS);
        assert_eq!(lab.nodes[1].role(), Role::Active);
        let after = lab.took_over(1).expect("took over") - died;
        // The last beat came up to a keepalive before the death.
        assert!(after <= 100 * MS && after >= 80 * MS, "{after:?}");
        assert!(lab.warned(1, "peer lost: no beat on any channel for 100 ms"));
    }

    #[test]
    fn one_cut_channel_is_a_warning_not_a_failover() {
        for channel in Channel::ALL {
            let mut lab = pair();
            lab.cut[channel.index()] = true;
            lab.run_for(Duration::from_secs(2));
            assert_eq!(lab.roles(), (Role::Active, Role::Standby), "{channel:?}");
            assert_eq!(lab.count(&Action::TakeOver), 1);
            let text = format!("no beat on {}", channel.name());
            assert!(lab.warned(1, &text), "{channel:?}: {:?}", lab.events);
            assert!(lab.warned(0, &text));
            // Mended: said once.
            lab.cut[channel.index()] = false;
            lab.run_for(100 * MS);
            let back = Action::Info(format!("heartbeat: {} works again", channel.name()));
            assert_eq!(lab.count(&back), 2, "{:?}", lab.events);
        }
    }

    #[test]
    fn both_cut_with_ping_nodes_the_node_that_reaches_none_stays_standby() {
        let mut lab = pair_with_ping_nodes(1);
        // The standby is the one cut off from the world: it loses the ping node too.
        lab.step(1, fit(0));
        lab.cut = [true, true];
        lab.run_for(Duration::from_secs(1));
        assert_eq!(lab.roles(), (Role::Active, Role::Standby));
        assert!(
            lab.warned(1, "stays standby: the peer is silent on every channel for 100 ms, and no ping node answers: not taking over (isolated)"),
            "{:?}",
            lab.events
        );
    }

    #[test]
    fn both_cut_without_ping_nodes_both_take_over_and_heal_to_one() {
        let mut lab = pair();
        lab.cut = [true, true];
        lab.run_for(Duration::from_secs(1));
        // `ping_nodes_decide` without ping nodes (validation refuses it, for this reason):
        // a split, healed when the link returns.
        assert_eq!(lab.roles(), (Role::Active, Role::Active));
        lab.cut = [false, false];
        lab.run_for(100 * MS);
        assert_eq!(lab.roles(), (Role::Active, Role::Standby));
        let last = lab.nodes[1]
            .history()
            .last()
            .expect("a transition")
            .reason
            .clone();
        assert_eq!(
            last,
            "both nodes active (a healed split): the peer ranks higher"
        );
    }

    #[test]
    fn both_cut_with_higher_priority_stays_only_the_higher_is_active() {
        let mut a = settings(1, RolePreference::Backup);
        let mut b = settings(2, RolePreference::Primary);
        a.isolation = Isolation::HigherPriorityStays;
        b.isolation = Isolation::HigherPriorityStays;
        // The backup is active (it started first, and there is no failback).
        let mut lab = Lab::new(a, b);
        lab.running[1] = false;
        lab.run_for(400 * MS);
        lab.running[1] = true;
        lab.nodes[1] = Machine::new(lab.nodes[1].settings().clone(), lab.now);
        lab.run_for(100 * MS);
        assert_eq!(lab.roles(), (Role::Active, Role::Standby));
        lab.cut = [true, true];
        lab.run_for(Duration::from_secs(1));
        assert_eq!(lab.roles(), (Role::Standby, Role::Active));
        assert!(lab.nodes[0]
            .history()
            .last()
            .is_some_and(|t| t.reason.contains("higher_priority_stays")));
    }

    #[test]
    fn a_clean_shutdown_hands_over_at_once() {
        let mut lab = pair();
        let at = lab.now;
        lab.step(0, Input::Shutdown);
        assert_eq!(lab.roles(), (Role::Standby, Role::Active));
        assert_eq!(lab.took_over(1), Some(at));
        // The release came before the beat that told the peer.
        let release = lab
            .events
            .iter()
            .position(|(_, n, a)| *n == 0 && *a == Action::Release);
        let takeover = lab
            .events
            .iter()
            .rposition(|(_, n, a)| *n == 1 && *a == Action::TakeOver);
        assert!(release < takeover);
        // It goes on (forwarding what clients still send it to the new active) for LINGER
        // after the peer said it is active, then may stop.
        assert!(!lab.nodes[0].left(at));
        assert_eq!(lab.nodes[0].next_wakeup(), at + LINGER);
        assert!(!lab.nodes[0].left(at + LINGER - MS));
        assert!(lab.nodes[0].left(at + LINGER));
    }

    #[test]
    fn a_leaving_node_waits_for_its_peer_bounded() {
        // The leaving beats are lost: it says so again every keepalive, and stops after
        // LEAVE_WAIT without an answer.
        let mut lab = pair();
        let at = lab.now;
        lab.cut = [true; 2];
        lab.step(0, Input::Shutdown);
        assert!(!lab.nodes[0].left(at));
        let keepalive = lab.nodes[0].settings().keepalive;
        assert_eq!(lab.nodes[0].next_wakeup(), at + keepalive);
        let actions = lab.nodes[0].step(Input::Tick, at + keepalive);
        assert_eq!(actions, vec![Action::Send]);
        assert!(lab.nodes[0].beat().leaving);
        assert!(!lab.nodes[0].left(at + LEAVE_WAIT - MS));
        assert!(lab.nodes[0].left(at + LEAVE_WAIT));
        // Once the peer hears it, it takes over, and the leaving node lingers from then on.
        lab.cut = [false; 2];
        lab.now = at + 2 * keepalive;
        lab.step(0, Input::Tick);
        assert_eq!(lab.roles(), (Role::Standby, Role::Active));
        assert!(!lab.nodes[0].left(lab.now + LINGER - MS));
        assert!(lab.nodes[0].left(lab.now + LINGER));
        // A standby (or a node without a live peer) has nothing to hand over: it stops at once.
        let mut lab = pair();
        lab.step(1, Input::Shutdown);
        assert!(lab.nodes[1].left(lab.now));
        assert_eq!(lab.nodes[0].role(), Role::Active);
    }

    #[test]
    fn takeover_and_release_switch_roles_and_last() {
        let mut lab = pair();
        lab.step(1, Input::Takeover);
        assert_eq!(lab.roles(), (Role::Standby, Role::Active));
        lab.run_for(Duration::from_secs(1));
        assert_eq!(lab.roles(), (Role::Standby, Role::Active));
        lab.step(1, Input::Release);
        assert_eq!(lab.roles(), (Role::Active, Role::Standby));
        lab.run_for(Duration::from_secs(1));
        assert_eq!(lab.roles(), (Role::Active, Role::Standby));
        // A node asked to release still takes over when its peer dies.
        lab.step(0, Input::Release);
        assert_eq!(lab.roles(), (Role::Standby, Role::Active));
        lab.running[1] = false;
        lab.run_for(200 * MS);
        assert_eq!(lab.nodes[0].role(), Role::Active);
        assert_eq!(lab.nodes[0].intent(), Intent::None);
    }

    #[test]
    fn auto_failback_returns_the_role_to_the_primary() {
        for failback in [false, true] {
            let mut a = settings(1, RolePreference::Primary);
            a.auto_failback = failback;
            let mut b = settings(2, RolePreference::Backup);
            b.auto_failback = failback;
            let mut lab = Lab::new(a, b);
            lab.run_for(50 * MS);
            // The primary dies; the backup takes over; the primary comes back.
            lab.running[0] = false;
            lab.run_for(300 * MS);
            assert_eq!(lab.nodes[1].role(), Role::Active);
            lab.running[0] = true;
            lab.nodes[0] = Machine::new(lab.nodes[0].settings().clone(), lab.now);
            lab.run_for(Duration::from_secs(1));
            let expected = if failback {
                (Role::Active, Role::Standby)
            } else {
                (Role::Standby, Role::Active)
            };
            assert_eq!(lab.roles(), expected, "auto_failback = {failback}");
        }
    }

    #[test]
    fn the_node_that_reaches_more_ping_nodes_is_active() {
        let mut lab = pair_with_ping_nodes(2);
        lab.step(0, fit(1));
        assert_eq!(lab.roles(), (Role::Standby, Role::Active));
        let reason = &lab.nodes[0].history().last().expect("a transition").reason;
        assert_eq!(reason, "the peer reaches more ping nodes (2 against 1)");
    }

    #[test]
    fn a_node_whose_links_fail_goes_to_fault_and_the_peer_takes_over() {
        let mut lab = pair();
        lab.step(
            0,
            Input::Fitness(Fitness {
                links_up: false,
                pings: 0,
            }),
        );
        assert_eq!(lab.roles(), (Role::Fault, Role::Active));
        lab.step(
            0,
            Input::Fitness(Fitness {
                links_up: true,
                pings: 0,
            }),
        );
        lab.run_for(100 * MS);
        assert_eq!(lab.roles(), (Role::Standby, Role::Active));
    }

    #[test]
    fn a_beat_with_its_own_id_is_refused() {
        let mut machine = Machine::new(settings(1, RolePreference::Equal), Duration::ZERO);
        let beat = machine.beat();
        let actions = machine.step(
            Input::Heard {
                channel: Channel::Udp,
                beat,
            },
            MS,
        );
        assert!(matches!(&actions[..], [Action::Warn(w)] if w.contains("own id")));
        assert!(machine.peer().is_none());
    }

    #[test]
    fn warntime_warns_once_per_silence() {
        let mut a = settings(1, RolePreference::Primary);
        a.warntime = Some(50 * MS);
        let mut lab = Lab::new(a, settings(2, RolePreference::Backup));
        lab.run_for(50 * MS);
        lab.cut = [true, true];
        lab.run_for(80 * MS);
        let late = |lab: &Lab| {
            lab.events
                .iter()
                .filter(|(_, n, a)| {
                    *n == 0 && matches!(a, Action::Warn(w) if w.contains("warntime"))
                })
                .count()
        };
        assert_eq!(late(&lab), 2, "one per channel: {:?}", lab.events);
        lab.run_for(Duration::from_secs(1));
        assert_eq!(late(&lab), 2);
    }

    #[test]
    fn with_a_channel_up_there_is_exactly_one_active_node_whatever_happens() {
        // Random cuts, deaths, restarts, clean stops, requests and ping changes; whenever
        // both nodes have run and a channel has joined them for a while (initdead and a
        // deadtime), exactly one of them is active.
        let mut random = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            random % n
        };
        let settle = 450 * MS;
        for run in 0..60 {
            let preference = |n| match n {
                0 => RolePreference::Primary,
                1 => RolePreference::Backup,
                _ => RolePreference::Equal,
            };
            let mut a = settings(1, preference(next(3)));
            let mut b = settings(2, preference(next(3)));
            a.auto_failback = next(2) == 0;
            b.auto_failback = a.auto_failback;
            let mut lab = Lab::new(a, b);
            // Since when the condition for the invariant has held.
            let mut calm_since = Duration::ZERO;
            for _ in 0..(10_000 / 50) {
                if next(10) == 0 {
                    let event = next(8);
                    let node = next(2) as usize;
                    match event {
                        0 | 1 => lab.cut[event as usize] = !lab.cut[event as usize],
                        2 => lab.running[node] = false,
                        3 => {
                            lab.step(node, Input::Shutdown);
                            lab.running[node] = false;
                        }
                        4 => lab.step(node, Input::Takeover),
                        5 => lab.step(node, Input::Release),
                        6 => {
                            let pings = next(3) as u8;
                            lab.step(
                                node,
                                Input::Fitness(Fitness {
                                    links_up: true,
                                    pings,
                                }),
                            );
                        }
                        _ => {}
                    }
                    for n in 0..2 {
                        if !lab.running[n] && next(2) == 0 {
                            lab.running[n] = true;
                            lab.nodes[n] = Machine::new(lab.nodes[n].settings().clone(), lab.now);
                        }
                    }
                    calm_since = lab.now;
                }
                for _ in 0..50 {
                    lab.run_for(MS);
                    let calm = lab.running == [true, true] && lab.cut != [true, true];
                    if !calm {
                        calm_since = lab.now;
                    }
                    if calm && lab.now - calm_since >= settle {
                        let active = lab
                            .nodes
                            .iter()
                            .filter(|n| n.role() == Role::Active)
                            .count();
                        assert_eq!(
                            active,
                            1,
                            "run {run} at {:?}: {:?}; last events {:?}",
                            lab.now,
                            lab.roles(),
                            &lab.events[lab.events.len().saturating_sub(8)..]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn two_views_that_disagree_wait_instead_of_both_taking_over() {
        // Each node sees the other with no ping node reached (a beat from before its first
        // ping round) and itself with one: each ranks itself higher.
        let mut a = settings(1, RolePreference::Primary);
        let mut b = settings(2, RolePreference::Backup);
        a.ping_nodes = 1;
        b.ping_nodes = 1;
        let mut a = Machine::new(a, Duration::ZERO);
        let mut b = Machine::new(b, Duration::ZERO);
        let stale_a = a.beat();
        let stale_b = b.beat();
        a.step(fit(1), MS);
        b.step(fit(1), MS);
        let heard = |beat| Input::Heard {
            channel: Channel::Udp,
            beat,
        };
        let mut took = Vec::new();
        let mut exchange = |a: &mut Machine, b: &mut Machine, beat_a, beat_b, at| {
            let actions_a = a.step(heard(beat_b), at);
            let actions_b = b.step(heard(beat_a), at);
            took.push((
                actions_a.contains(&Action::TakeOver),
                actions_b.contains(&Action::TakeOver),
            ));
        };
        // The first beats (sent before either heard the other) and the next (each from its
        // stale view) move nobody; the third carry fresh views: the primary alone takes over.
        exchange(&mut a, &mut b, stale_a, stale_b, 2 * MS);
        let (beat_a, beat_b) = (a.beat(), b.beat());
        assert!(!beat_a.defers && !beat_b.defers);
        exchange(&mut a, &mut b, beat_a, beat_b, 3 * MS);
        let (beat_a, beat_b) = (a.beat(), b.beat());
        assert!(!beat_a.defers && beat_b.defers);
        exchange(&mut a, &mut b, beat_a, beat_b, 4 * MS);
        assert_eq!(took, [(false, false), (false, false), (true, false)]);
    }

    #[test]
    fn with_ping_nodes_a_node_leaves_init_only_once_it_has_asked_them() {
        let mut s = settings(1, RolePreference::Primary);
        s.ping_nodes = 1;
        let mut a = Machine::new(s, Duration::ZERO);
        let peer = Machine::new(settings(2, RolePreference::Backup), Duration::ZERO).beat();
        a.step(
            Input::Heard {
                channel: Channel::Udp,
                beat: peer,
            },
            MS,
        );
        assert_eq!(a.role(), Role::Init);
        a.step(fit(1), 2 * MS);
        assert_eq!(a.role(), Role::Standby);
        // The peer, having heard this node, agrees that it ranks higher.
        let mut peer = Machine::new(settings(2, RolePreference::Backup), Duration::ZERO);
        peer.step(
            Input::Heard {
                channel: Channel::Udp,
                beat: a.beat(),
            },
            2 * MS,
        );
        assert!(peer.beat().defers);
        let actions = a.step(
            Input::Heard {
                channel: Channel::Udp,
                beat: peer.beat(),
            },
            3 * MS,
        );
        assert!(actions.contains(&Action::TakeOver), "{actions:?}");
    }

    #[test]
    fn a_node_that_has_not_asked_its_ping_nodes_yet_defers_to_nobody() {
        // The lab's boot: B has asked its ping node, A not yet; A must not let B take over on
        // a rank that A's missing count decides.
        let mut a = settings(1, RolePreference::Primary);
        a.ping_nodes = 1;
        let mut a = Machine::new(a, Duration::ZERO);
        let mut b = settings(2, RolePreference::Backup);
        b.ping_nodes = 1;
        let mut b = Machine::new(b, Duration::ZERO);
        b.step(fit(1), MS);
        let heard = |beat| Input::Heard {
            channel: Channel::Udp,
            beat,
        };
        a.step(heard(b.beat()), 2 * MS);
        assert!(!a.beat().defers);
        let actions = b.step(heard(a.beat()), 3 * MS);
        assert!(!actions.contains(&Action::TakeOver), "{actions:?}");
        // Once A knows, the primary is the one.
        a.step(fit(1), 4 * MS);
        b.step(heard(a.beat()), 5 * MS);
        assert!(b.beat().defers);
        let actions = a.step(heard(b.beat()), 6 * MS);
        assert!(actions.contains(&Action::TakeOver), "{actions:?}");
        // After initdead a node that never learnt its count ranks with none.
        let mut c = settings(3, RolePreference::Backup);
        c.ping_nodes = 1;
        let mut c = Machine::new(c, Duration::ZERO);
        c.step(heard(a.beat()), 400 * MS);
        assert!(c.beat().defers);
    }
}
