//! Volume-configuration workers (STATE.md §9.3): the connections a node
//! keeps to the `span:<host>` copies a HAMMER2 mount announces with
//! `LNK_VOLCONF`.
//!
//! Enabled per node with [`Node::enable_volconf`]. The hub validates every
//! `LNK_VOLCONF` (a bad index or path is refused with an error and changes
//! nothing) and reports the good ones as [`HubEvent::Volconf`]; the workers
//! take it from there.
//!
//! # Threads
//!
//! One thread per **active** slot, keyed by (`mediaid`, index) as the hub
//! groups `LNK_CONN`s: a copy of the C library's `h2span_conf` thread. A
//! `HubEvent::Volconf` stores the pending copy in its slot and wakes the
//! slot's thread, starting one if the slot has none. The thread ends when
//! the slot has nothing to connect to (copy cleared, or its path is not a
//! `span:`), when its media group goes away ([`HubEvent::MediaGone`]), or
//! on [`Node::stop_volconf`] / [`Node::shutdown`]. A connection is served
//! on the node with [`Node::serve`] (the master service, a thread of its
//! own); the worker shuts it down and joins it before it takes another
//! copy or ends, so nothing outlives its slot.
//!
//! # Slot states
//!
//! ```text
//!                new copy: copyid != 0, path "span:<host>"
//!   ┌─────────┐ ────────── connect ok ──────────► ┌─────────┐
//!   │ STOPPED │                                   │ RUNNING │
//!   └─────────┘ ◄──── stop / another copy ─────── └─────────┘
//!     │    ▲                                        │     ▲
//!     │    │                          service ended │     │ retry:
//!     │    │ stop / another copy   (stream lost)    ▼     │ connect ok
//!     │    └──────────────────────────────────── ┌─────────┐
//!     └────────── connect failed ──────────────► │ CONNECT │ ◄─┐ retry:
//!                                                └─────────┘ ──┘ connect
//!                                                  (after backoff) failed
//! ```
//!
//! - *update* with a copy equal (bytewise) to the running one does nothing;
//!   any other copy stops the current connection (STOPPED), then connects
//!   if the new copy has `copyid != 0` and a `span:` path.
//! - a failed connect, and (unlike the C code, which never retries a lost
//!   stream) a RUNNING connection whose service ended, go to CONNECT and
//!   retry after an exponential backoff: [`VolconfConfig::backoff_initial`]
//!   doubling up to [`VolconfConfig::backoff_max`], plus up to
//!   [`VolconfConfig::jitter_percent`] % from a seeded generator. The
//!   backoff starts over with every new copy and after a connection that
//!   stayed up at least `backoff_max`.
//! - *stop* (slot cleared or changed, media gone, node shutdown): the
//!   running service is shut down and joined, the state is STOPPED.
//!
//! A connect takes the slot's thread for up to
//! [`VolconfConfig::connect_timeout`] per address (as `dmsg_connect` does);
//! a stop asked meanwhile ends it within about 20 ms (resolving the host
//! name is not interrupted).

use super::{lock, Inner, Node, ServeOptions, ServiceEvent, ServiceHandle};
use crate::crypto::{OsRandom, RandomSource};
use crate::lnk::{HubEvent, LinkId};
use crate::wire::{Uuid, VolData};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The state of a volconf slot (`H2MC_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SlotState {
    /// No connection and none wanted (`H2MC_STOPPED`).
    Stopped,
    /// A connection is wanted; the last attempt failed or the last
    /// connection was lost, and a retry is scheduled (`H2MC_CONNECT`).
    Connect,
    /// Connected; the master service runs on it (`H2MC_RUNNING`).
    Running,
}

impl fmt::Display for SlotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SlotState::Stopped => "STOPPED",
            SlotState::Connect => "CONNECT",
            SlotState::Running => "RUNNING",
        })
    }
}

/// What [`Node::volconf_slots`] reports of one slot with a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    /// The media group.
    pub mediaid: Uuid,
    /// The slot index, 0..256.
    pub index: u16,
    /// Its state.
    pub state: SlotState,
    /// The host it connects to (the path after `span:`), if any.
    pub peer: Option<String>,
    /// The node link of the running connection.
    pub link: Option<LinkId>,
    /// Copies the worker has taken so far (equal ones included).
    pub updates: u64,
    /// Connections made so far.
    pub connects: u64,
    /// Connect attempts that failed so far.
    pub failures: u64,
    /// The last connect error.
    pub last_error: Option<String>,
}

impl fmt::Display for SlotInfo {
    /// One line for a shell or a log: media, slot, state, peer, link and
    /// counters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "media {} slot {} {}",
            self.mediaid, self.index, self.state
        )?;
        if let Some(p) = &self.peer {
            write!(f, " span:{p}")?;
        }
        if let Some(l) = self.link {
            write!(f, " link {}", l.0)?;
        }
        write!(f, " connects={} failures={}", self.connects, self.failures)?;
        if let Some(e) = &self.last_error {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

/// Makes the [`ServeOptions`] of a volconf connection to a host.
pub type VolconfServe = Arc<dyn Fn(&str) -> ServeOptions + Send + Sync>;

/// Settings of the volconf workers.
#[derive(Clone)]
pub struct VolconfConfig {
    /// First retry delay (default 100 ms).
    pub backoff_initial: Duration,
    /// Longest retry delay before jitter (default 5 s, the C code's fixed
    /// retry period).
    pub backoff_max: Duration,
    /// Up to this many percent of a delay are added at random (default
    /// 10).
    pub jitter_percent: u32,
    /// Seed of the jitter (default: random). Each slot mixes in its own
    /// key, so slots of one node do not retry in lockstep.
    pub seed: u64,
    /// Connect timeout per address (default 5 s).
    pub connect_timeout: Duration,
    /// The options a connection is served with (default: the master
    /// service's defaults, labelled `volconf <host>`).
    pub serve: Option<VolconfServe>,
}

impl fmt::Debug for VolconfConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VolconfConfig")
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("jitter_percent", &self.jitter_percent)
            .field("seed", &self.seed)
            .field("connect_timeout", &self.connect_timeout)
            .field("serve", &self.serve.is_some())
            .finish()
    }
}

impl Default for VolconfConfig {
    fn default() -> Self {
        let mut b = [0u8; 8];
        let seed = if OsRandom.fill(&mut b).is_ok() {
            u64::from_le_bytes(b)
        } else {
            u64::from(std::process::id())
        };
        VolconfConfig {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            jitter_percent: 10,
            seed,
            connect_timeout: Duration::from_secs(5),
            serve: None,
        }
    }
}

/// The host of a copy that wants a connection: `copyid != 0` and a path
/// `span:<host>` with a non-empty host.
pub fn span_target(copy: &VolData) -> Option<String> {
    if copy.copyid == 0 {
        return None;
    }
    let rest = copy.path.as_bytes().strip_prefix(b"span:")?;
    let host = std::str::from_utf8(rest).ok()?;
    (!host.is_empty()).then(|| host.to_owned())
}

/// Exponential backoff with seeded jitter (splitmix64).
#[derive(Debug)]
struct Backoff {
    next: Duration,
    initial: Duration,
    max: Duration,
    jitter: u32,
    rng: u64,
}

impl Backoff {
    fn new(cfg: &VolconfConfig, seed: u64) -> Backoff {
        let initial = cfg.backoff_initial.max(Duration::from_millis(1));
        Backoff {
            next: initial,
            initial,
            max: cfg.backoff_max.max(initial),
            jitter: cfg.jitter_percent.min(100),
            rng: seed,
        }
    }

    fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }

    /// The delay before the next attempt; doubles the following one.
    fn delay(&mut self) -> Duration {
        let base = self.next;
        self.next = base.saturating_mul(2).min(self.max);
        let pct = u32::try_from(self.random() % (u64::from(self.jitter) + 1)).unwrap_or(0);
        base + base * pct / 100
    }
}

/// What a slot's thread shares with the rest of the node.
#[derive(Debug)]
struct Shared {
    pending: VolData,
    update: bool,
    stop: bool,
    /// The thread has decided to end: a new copy needs a new thread.
    exited: bool,
    /// The generation of a service that ended.
    dead: Option<u64>,
    state: SlotState,
    peer: Option<String>,
    link: Option<LinkId>,
    updates: u64,
    connects: u64,
    failures: u64,
    last_error: Option<String>,
}

#[derive(Debug)]
struct Slot {
    mediaid: Uuid,
    index: u16,
    st: Mutex<Shared>,
    cv: Condvar,
}

impl Slot {
    fn info(&self) -> SlotInfo {
        let g = lock(&self.st);
        SlotInfo {
            mediaid: self.mediaid,
            index: self.index,
            state: g.state,
            peer: g.peer.clone(),
            link: g.link,
            updates: g.updates,
            connects: g.connects,
            failures: g.failures,
            last_error: g.last_error.clone(),
        }
    }

    fn set(&self, f: impl FnOnce(&mut Shared)) {
        f(&mut lock(&self.st));
    }

    fn stop(&self) {
        lock(&self.st).stop = true;
        self.cv.notify_all();
    }
}

#[derive(Debug)]
struct Worker {
    slot: Arc<Slot>,
    thread: Option<JoinHandle<()>>,
}

/// The volconf workers of one node.
pub(super) struct Volconf {
    node: Weak<Inner>,
    cfg: VolconfConfig,
    slots: Mutex<BTreeMap<(Uuid, u16), Worker>>,
    /// Threads of replaced slots, still ending.
    retired: Mutex<Vec<JoinHandle<()>>>,
    live: Arc<AtomicUsize>,
}

impl fmt::Debug for Volconf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Volconf")
            .field("cfg", &self.cfg)
            .field("threads", &self.live.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

/// Counts a worker thread while it lives.
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Volconf {
    fn new(node: Weak<Inner>, cfg: VolconfConfig) -> Volconf {
        Volconf {
            node,
            cfg,
            slots: Mutex::new(BTreeMap::new()),
            retired: Mutex::new(Vec::new()),
            live: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn on_event(self: &Arc<Self>, ev: &ServiceEvent) {
        match ev {
            ServiceEvent::Hub(HubEvent::Volconf {
                mediaid,
                index,
                copy,
                ..
            }) => self.update(*mediaid, *index, *copy),
            ServiceEvent::Hub(HubEvent::MediaGone(m)) => self.media_gone(m),
            _ => {}
        }
    }

    /// Stores `copy` as the slot's pending copy and wakes (or starts) its
    /// thread.
    fn update(self: &Arc<Self>, mediaid: Uuid, index: u16, copy: VolData) {
        let key = (mediaid, index);
        let mut slots = lock(&self.slots);
        if let Some(w) = slots.get(&key) {
            let mut g = lock(&w.slot.st);
            if !g.exited && !g.stop {
                g.pending = copy;
                g.update = true;
                drop(g);
                w.slot.cv.notify_all();
                return;
            }
        }
        let slot = Arc::new(Slot {
            mediaid,
            index,
            st: Mutex::new(Shared {
                pending: copy,
                update: true,
                stop: false,
                exited: false,
                dead: None,
                state: SlotState::Stopped,
                peer: None,
                link: None,
                updates: 0,
                connects: 0,
                failures: 0,
                last_error: None,
            }),
            cv: Condvar::new(),
        });
        let seed = self.cfg.seed
            ^ u64::from(index).rotate_left(48)
            ^ mediaid
                .0
                .iter()
                .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(*b));
        self.live.fetch_add(1, Ordering::AcqRel);
        let guard = LiveGuard(Arc::clone(&self.live));
        let (me, s2) = (Arc::clone(self), Arc::clone(&slot));
        let thread = std::thread::Builder::new()
            .name(format!("dmsg-volconf-{index}"))
            .spawn(move || {
                let _guard = guard;
                me.run(&s2, seed);
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                // No thread: the slot stays STOPPED and says why.
                slot.set(|g| {
                    g.exited = true;
                    g.last_error = Some(format!("cannot start worker: {e}"));
                });
                None
            }
        };
        if let Some(old) = slots.insert(key, Worker { slot, thread }) {
            if let Some(t) = old.thread {
                let mut retired = lock(&self.retired);
                retired.retain(|t| !t.is_finished());
                retired.push(t);
            }
        }
    }

    /// Stops every slot of a media group (no wait: the threads end on their
    /// own and take themselves off the table).
    fn media_gone(&self, mediaid: &Uuid) {
        let slots = lock(&self.slots);
        for ((m, _), w) in slots.iter() {
            if m == mediaid {
                w.slot.stop();
            }
        }
    }

    /// Stops every slot and waits for every worker thread.
    pub(super) fn stop_all(&self) {
        let workers: Vec<Worker> = std::mem::take(&mut *lock(&self.slots))
            .into_values()
            .collect();
        let retired = std::mem::take(&mut *lock(&self.retired));
        for w in &workers {
            w.slot.stop();
        }
        for t in workers.into_iter().filter_map(|w| w.thread).chain(retired) {
            let _ = t.join();
        }
    }

    fn slots(&self) -> Vec<SlotInfo> {
        lock(&self.slots).values().map(|w| w.slot.info()).collect()
    }

    fn node(&self) -> Option<Node> {
        self.node.upgrade().map(|inner| Node { inner })
    }

    /// The thread of one slot.
    fn run(&self, slot: &Arc<Slot>, seed: u64) {
        let mut w = Run {
            vc: self,
            slot,
            copy: None,
            target: None,
            svc: None,
            gen: 0,
            backoff: Backoff::new(&self.cfg, seed),
            retry_at: None,
        };
        w.main();
        // Off the table, unless a newer worker has taken the slot.
        let mut slots = lock(&self.slots);
        let key = (slot.mediaid, slot.index);
        if slots.get(&key).is_some_and(|o| Arc::ptr_eq(&o.slot, slot)) {
            slots.remove(&key);
        }
    }
}

/// What woke a slot's thread.
enum Step {
    Stop,
    Update(VolData),
    Dead,
    Retry,
}

/// The running state of one slot's thread (`copy_run` and the service).
struct Run<'a> {
    vc: &'a Volconf,
    slot: &'a Arc<Slot>,
    copy: Option<VolData>,
    target: Option<String>,
    svc: Option<(ServiceHandle, u64, Instant)>,
    gen: u64,
    backoff: Backoff,
    retry_at: Option<Instant>,
}

impl Run<'_> {
    fn main(&mut self) {
        loop {
            match self.next_step() {
                Step::Stop => break,
                Step::Update(copy) => {
                    if self.copy == Some(copy) {
                        self.slot.set(|g| g.updates += 1);
                        continue;
                    }
                    self.disconnect();
                    self.copy = Some(copy);
                    self.target = span_target(&copy);
                    self.backoff.reset();
                    self.retry_at = None;
                    self.slot.set(|g| g.updates += 1);
                    if self.target.is_none() {
                        // Nothing to connect to: the thread ends, unless
                        // another copy came meanwhile.
                        let mut g = lock(&self.slot.st);
                        if g.update || g.stop {
                            continue;
                        }
                        g.exited = true;
                        return;
                    }
                    self.start();
                }
                Step::Dead => {
                    let lived = self.svc.as_ref().map(|(_, _, t)| t.elapsed());
                    self.disconnect();
                    if lived.is_some_and(|d| d >= self.backoff.max) {
                        self.backoff.reset();
                    }
                    self.schedule_retry();
                }
                Step::Retry => {
                    self.retry_at = None;
                    self.start();
                }
            }
        }
        self.disconnect();
        self.slot.set(|g| g.exited = true);
    }

    /// Waits for something to do.
    fn next_step(&mut self) -> Step {
        let mut g = lock(&self.slot.st);
        loop {
            if g.stop {
                return Step::Stop;
            }
            if g.update {
                g.update = false;
                return Step::Update(g.pending);
            }
            if let Some((_, gen, _)) = &self.svc {
                if g.dead == Some(*gen) {
                    return Step::Dead;
                }
            }
            match self.retry_at {
                Some(t) => {
                    let now = Instant::now();
                    if now >= t {
                        return Step::Retry;
                    }
                    g = self
                        .slot
                        .cv
                        .wait_timeout(g, t - now)
                        .map_or_else(|p| p.into_inner().0, |r| r.0);
                }
                None => {
                    g = self
                        .slot
                        .cv
                        .wait(g)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
        }
    }

    fn schedule_retry(&mut self) {
        let delay = self.backoff.delay();
        self.retry_at = Some(Instant::now() + delay);
        self.slot.set(|g| g.state = SlotState::Connect);
    }

    /// Connects to the target and serves the connection (STOPPED/CONNECT
    /// → RUNNING, or CONNECT on failure).
    fn start(&mut self) {
        let Some(host) = self.target.clone() else {
            return;
        };
        self.slot.set(|g| {
            g.peer = Some(host.clone());
            g.link = None;
        });
        let Some(node) = self.vc.node() else {
            // The node is gone: nothing to serve on.
            self.slot.set(|g| g.stop = true);
            return;
        };
        let stopping = || lock(&self.slot.st).stop;
        let served = super::net::connect_unless(&host, self.vc.cfg.connect_timeout, stopping)
            .and_then(|s| {
                self.gen += 1;
                let gen = self.gen;
                let opts = match &self.vc.cfg.serve {
                    Some(f) => f(&host),
                    None => ServeOptions::new(format!("volconf {host}")),
                };
                let slot = Arc::clone(self.slot);
                let opts = opts.on_exit(move |_| {
                    slot.set(|g| g.dead = Some(gen));
                    slot.cv.notify_all();
                });
                node.serve(s, opts).map(|h| (h, gen))
            });
        match served {
            Ok((h, gen)) => {
                let link = h.link();
                self.svc = Some((h, gen, Instant::now()));
                self.slot.set(|g| {
                    g.state = SlotState::Running;
                    g.link = Some(link);
                    g.connects += 1;
                });
            }
            // Stopped while connecting: not a failure; the loop stops.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted && stopping() => {}
            Err(e) => {
                self.slot.set(|g| {
                    g.failures += 1;
                    g.last_error = Some(e.to_string());
                });
                self.schedule_retry();
            }
        }
    }

    /// Shuts the running service down and joins it (→ STOPPED).
    fn disconnect(&mut self) {
        if let Some((h, _, _)) = self.svc.take() {
            h.shutdown();
            let _ = h.join();
        }
        self.retry_at = None;
        self.slot.set(|g| {
            g.state = SlotState::Stopped;
            g.link = None;
        });
    }
}

impl Node {
    /// Starts handling `LNK_VOLCONF` on this node (see the [module
    /// documentation](self)): from now on every valid volconf starts or
    /// updates its slot's worker. False if it was already enabled (the
    /// first settings stay).
    pub fn enable_volconf(&self, cfg: VolconfConfig) -> bool {
        let vc = {
            let mut slot = lock(&self.inner.volconf);
            if slot.is_some() {
                return false;
            }
            let vc = Arc::new(Volconf::new(Arc::downgrade(&self.inner), cfg));
            *slot = Some(Arc::clone(&vc));
            vc
        };
        let weak = Arc::downgrade(&vc);
        self.on_event(move |ev| {
            if let Some(vc) = weak.upgrade() {
                vc.on_event(ev);
            }
        });
        true
    }

    /// The slots that have a worker, in (mediaid, index) order.
    pub fn volconf_slots(&self) -> Vec<SlotInfo> {
        self.volconf().map_or_else(Vec::new, |v| v.slots())
    }

    /// Worker threads alive (slots being stopped included).
    pub fn volconf_threads(&self) -> usize {
        self.volconf().map_or(0, |v| v.live.load(Ordering::Acquire))
    }

    /// Stops every volconf slot and waits for the workers (their
    /// connections are shut down and joined). A later `LNK_VOLCONF`
    /// starts its slot again.
    pub fn stop_volconf(&self) {
        if let Some(v) = self.volconf() {
            v.stop_all();
        }
    }

    fn volconf(&self) -> Option<Arc<Volconf>> {
        lock(&self.inner.volconf).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Label;

    fn cfg(seed: u64, jitter: u32) -> VolconfConfig {
        VolconfConfig {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            jitter_percent: jitter,
            seed,
            ..VolconfConfig::default()
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let mut b = Backoff::new(&cfg(1, 0), 1);
        let ms: Vec<u128> = (0..9).map(|_| b.delay().as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        b.reset();
        assert_eq!(b.delay(), Duration::from_millis(100));
    }

    #[test]
    fn backoff_jitter_is_bounded_and_seeded() {
        let run = |seed| {
            let mut b = Backoff::new(&cfg(seed, 10), seed);
            (0..20).map(|_| b.delay()).collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7), "same seed, same delays");
        assert_ne!(a, run(8), "another seed, other delays");
        let mut base = Duration::from_millis(100);
        for d in a {
            assert!(d >= base && d <= base + base / 10, "{d:?} vs {base:?}");
            base = (base * 2).min(Duration::from_secs(5));
        }
    }

    #[test]
    fn span_targets() {
        let copy = |id, p: &str| VolData {
            copyid: id,
            path: Label::new(p).unwrap_or_default(),
            ..VolData::default()
        };
        assert_eq!(span_target(&copy(1, "span:h:99")).as_deref(), Some("h:99"));
        assert_eq!(span_target(&copy(0, "span:h")), None);
        assert_eq!(span_target(&copy(1, "span:")), None);
        assert_eq!(span_target(&copy(1, "/dev/ad0s1")), None);
    }
}
