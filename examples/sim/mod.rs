//! A deterministic simulation of a producer and its downstream, in virtual
//! time, for comparing limiters: static `[count, bytes]` limits, count-only
//! adaptive limits, and the joint (count and bytes) controller.
//!
//! Shared by the `adaptive_sim` example (the figures) and the
//! `adaptive_sim` test (correctness and determinism). Nothing here reads
//! the wall clock: every time is a virtual nanosecond count, handed to the
//! controller as a fixed base `Instant` plus that count, so a seed fixes
//! every figure.
//!
//! # The model, and why
//!
//! * **Client.** A producer with an endless backlog (it always has more to
//!   send), in first-come first-served order: the head message is admitted
//!   with `try_acquire([1, size])` the moment it fits, as a blocking
//!   producer's FIFO acquire would be, and waits otherwise. A saturated
//!   producer is the case a limiter exists for; without a backlog every
//!   limit above the offered load looks the same.
//! * **Network.** A fixed one-way delay each way.
//! * **Downstream** (a broker): `workers` threads, each taking one request
//!   at a time from a FIFO queue of at most `queue` requests (a request that
//!   finds it full is refused at once, like a broker's "busy"). The README's
//!   scenario leaves the queue unbounded, so that overload shows as it
//!   usually does first, as latency and then timeouts; a small bounded queue
//!   answers overload with refusals that return in one round trip, and a
//!   client without a limiter then resends at once, which turns the run into
//!   a refusal storm that measures the client's retry policy rather than its
//!   limits. A worker
//!   first spends a fixed `overhead` on the request (parsing, bookkeeping,
//!   the per-request part of an fsync), then moves its bytes over a link of
//!   `bandwidth` bytes per second, **shared equally among the requests
//!   transferring** (processor sharing: what TCP flows sharing a link, or
//!   writes sharing a disk, approximate); the worker is held until its
//!   transfer ends. So the downstream has two bottlenecks: `workers /
//!   overhead` requests per second, and `bandwidth` bytes per second. Which
//!   one binds depends on the sizes: that is the point of the simulation.
//! * **Timeout.** The client gives up on a request after `timeout`: it
//!   counts as dropped, its permit goes back, and the downstream, which does
//!   not know, still does its work if a worker has it (wasted work, as in
//!   life); a request still queued when its client has given up is
//!   discarded when a worker reaches it.
//! * **Phases.** The downstream changes between phases (a deploy that
//!   halves the fleet halves both its workers and its bandwidth).
//!
//! Latencies are measured from the grant to the reply (what a limiter
//! controls); time spent in the client's backlog is not a latency, since
//! the backlog is endless by construction.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use multisem::MultiSemaphore;
use multisem::OwnedPermit;
use multisem::adaptive::{
    Aimd, Controller, ControllerBuilder, Gradient2, Min, Outcome, TrackedPermit, preset,
};

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
const NS: u64 = 1_000_000_000;

/// The downstream during one phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Downstream {
    pub workers: usize,
    /// Bytes per second the link moves, shared by the requests transferring.
    pub bandwidth: f64,
    pub overhead: Duration,
    /// Requests that may wait for a worker; more are refused at once (the
    /// README's scenario leaves it unbounded: see the module docs).
    pub queue: usize,
}

impl Downstream {
    /// The README's broker: 16 workers, a 64 MiB/s link, 5 ms of overhead
    /// per request, an unbounded queue.
    pub const README: Downstream = Downstream {
        workers: 16,
        bandwidth: (64 * MIB) as f64,
        overhead: Duration::from_millis(5),
        queue: usize::MAX,
    };

    /// Half the workers and half the bandwidth: a fleet halved.
    pub fn halved(self) -> Self {
        Downstream {
            workers: (self.workers / 2).max(1),
            bandwidth: self.bandwidth / 2.0,
            ..self
        }
    }
}

/// Message sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Traffic {
    /// `large_per_mille` of the messages are `large` bytes, the rest `small`.
    Mixed {
        small: u64,
        large: u64,
        large_per_mille: u64,
    },
    /// Every message is this size: the control.
    Single(u64),
}

impl Traffic {
    /// 90% 1 KiB, 10% 1 MiB.
    pub const MIXED: Traffic = Traffic::Mixed {
        small: KIB,
        large: MIB,
        large_per_mille: 100,
    };

    pub fn largest(self) -> u64 {
        match self {
            Traffic::Mixed { small, large, .. } => small.max(large),
            Traffic::Single(size) => size,
        }
    }

    fn draw(self, rng: &mut Rng) -> u64 {
        match self {
            Traffic::Mixed {
                small,
                large,
                large_per_mille,
            } => {
                if rng.next() % 1000 < large_per_mille {
                    large
                } else {
                    small
                }
            }
            Traffic::Single(size) => size,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: &'static str,
    pub duration: Duration,
    pub downstream: Downstream,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Run before the first phase on its downstream, not measured: the
    /// first phase is the steady state, not the start-up.
    pub warmup: Duration,
    pub phases: Vec<Phase>,
    pub traffic: Traffic,
    pub timeout: Duration,
    /// One-way network delay.
    pub network: Duration,
    pub seed: u64,
    /// Width of the timeline's buckets (the CSV's rows).
    pub bucket: Duration,
}

impl Scenario {
    /// The scenario of the README's table: steady, capacity halved,
    /// recovered, `phase` long each, after `warmup`.
    pub fn three_phases(traffic: Traffic, warmup: Duration, phase: Duration, seed: u64) -> Self {
        Self::three_phases_on(
            Downstream::README,
            Duration::from_micros(500),
            traffic,
            warmup,
            phase,
            seed,
        )
    }

    /// Steady, capacity halved, recovered, on `full` with a one-way
    /// `network` delay: the README's three phases on another downstream.
    pub fn three_phases_on(
        full: Downstream,
        network: Duration,
        traffic: Traffic,
        warmup: Duration,
        phase: Duration,
        seed: u64,
    ) -> Self {
        Scenario {
            warmup,
            phases: vec![
                Phase {
                    name: "steady",
                    duration: phase,
                    downstream: full,
                },
                Phase {
                    name: "halved",
                    duration: phase,
                    downstream: full.halved(),
                },
                Phase {
                    name: "recovered",
                    duration: phase,
                    downstream: full,
                },
            ],
            traffic,
            timeout: Duration::from_secs(1),
            network,
            seed,
            bucket: Duration::from_millis(100),
        }
    }

    /// One phase alone (after the same warm-up): what a static limit is
    /// tried on in the oracle's grid search.
    pub fn single(&self, phase: usize) -> Scenario {
        Scenario {
            phases: vec![self.phases[phase].clone()],
            ..self.clone()
        }
    }
}

/// How the client limits what it has in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limiter {
    /// Fixed `[count, bytes]`.
    Static([u64; 2]),
    /// AIMD and Gradient2 on the count; bytes unbounded: what the existing
    /// adaptive limiters do.
    CountOnly,
    /// The count by Little's law (and `Aimd`), the bytes by the bandwidth-delay
    /// product: see [`joint_controller`].
    Joint,
    /// The joint controller's count algorithm (Little's law and `Aimd`) and
    /// windows; bytes unbounded: see [`joint_count_only_controller`].
    JointCountOnly,
    /// The joint controller with room for this many tenths of a whole
    /// (byte-weighted mean) request beyond the bandwidth-delay product,
    /// instead of the preset's 2: how the preset's room trades p99 for
    /// link use (see [`joint_controller_with_room`]).
    JointRoom(u32),
    /// The joint controller with the count's upper bound at this many
    /// requests instead of [`COUNT_BOUNDS`]'s: a user who knows the size of
    /// the pool behind the broker (see [`joint_controller_with_count_max`]).
    JointCountMax(u64),
}

/// Bounds the adaptive limiters may move in.
pub const COUNT_BOUNDS: (u64, u64) = (1, 4096);
/// The byte bounds' upper end; the lower end is the largest message.
pub const BYTES_MAX: u64 = 4 << 30;

impl Limiter {
    pub fn name(self) -> String {
        match self {
            Limiter::Static([c, b]) => format!("static [{c}, {}]", fmt_bytes(b)),
            Limiter::CountOnly => "count-only".into(),
            Limiter::Joint => "joint".into(),
            Limiter::JointCountOnly => "joint's count only".into(),
            Limiter::JointRoom(tenths) => format!("joint, room {:.1}", f64::from(tenths) / 10.0),
            Limiter::JointCountMax(max) => format!("joint, count at most {max}"),
        }
    }
}

pub fn fmt_bytes(b: u64) -> String {
    if b >= BYTES_MAX {
        "∞".into()
    } else if b >= MIB {
        format!("{:.1} MiB", b as f64 / MIB as f64)
    } else {
        format!("{} KiB", b / KIB)
    }
}

/// What one phase measured.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseReport {
    pub name: &'static str,
    /// Bytes completed within the timeout, per second.
    pub goodput: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Drops over drops and successes.
    pub drop_rate: f64,
    pub successes: u64,
    pub drops: u64,
    /// Mean limits over the phase.
    pub mean_limits: [f64; 2],
    /// The fraction of the phase during which the link carried at least
    /// one transfer. Processor sharing moves `bandwidth` bytes per second
    /// whenever it is busy, so this is the share of the phase's capacity a
    /// limiter used; goodput differs from it by the bytes in flight at the
    /// phase's edges (counted when their request completes) and the bytes
    /// of dropped requests.
    pub link_busy: f64,
}

/// One bucket of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// End of the bucket, from the start of the first measured phase.
    pub end: Duration,
    pub phase: usize,
    pub goodput: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub successes: u64,
    pub drops: u64,
    pub limits: [u64; 2],
    pub in_flight: [u64; 2],
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub limiter: Limiter,
    pub phases: Vec<PhaseReport>,
    pub timeline: Vec<Bucket>,
    /// Every request's (completion time from the measured start, latency,
    /// bytes, success), for the convergence measure.
    pub completions: Vec<(u64, u64, u64, bool)>,
    /// `available() == capacity()` once everything drained.
    pub balanced: bool,
}

/// A seeded xorshift64*: no dependency, the same figures on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The joint controller: the library's preset
/// ([`ControllerBuilder::count_and_bytes`](multisem::adaptive::ControllerBuilder::count_and_bytes)),
/// the count by Little's law under `Aimd`'s back-off, the bytes by the
/// bandwidth-delay product, 25 ms windows.
pub fn joint_controller(sem: Arc<MultiSemaphore<2>>, largest: u64) -> Arc<Controller<2>> {
    joint_controller_with_count_max(sem, largest, COUNT_BOUNDS.1)
}

/// The joint controller with room for `requests` whole requests beyond the
/// bandwidth-delay product on the bytes, instead of the preset's 2.
pub fn joint_controller_with_room(
    sem: Arc<MultiSemaphore<2>>,
    largest: u64,
    requests: f64,
) -> Arc<Controller<2>> {
    joint_builder(sem, largest, COUNT_BOUNDS.1)
        .limit(1, largest..=BYTES_MAX, preset::bytes().requests(requests))
        .build()
}

/// The joint controller with the count bounded by `COUNT_BOUNDS.0..=max`
/// (the preset's, [`joint_controller`], at `max = COUNT_BOUNDS.1`).
pub fn joint_controller_with_count_max(
    sem: Arc<MultiSemaphore<2>>,
    largest: u64,
    max: u64,
) -> Arc<Controller<2>> {
    joint_builder(sem, largest, max).build()
}

/// The preset on the simulation's two dimensions: the count within
/// `COUNT_BOUNDS.0..=count_max`, the bytes from the largest message up.
fn joint_builder(
    sem: Arc<MultiSemaphore<2>>,
    largest: u64,
    count_max: u64,
) -> ControllerBuilder<2> {
    Controller::builder(sem).count_and_bytes(0, COUNT_BOUNDS.0..=count_max, 1, largest..=BYTES_MAX)
}

/// The joint controller's own count algorithm and windows, bytes left
/// alone: how much of the joint controller's gain the byte dimension makes.
pub fn joint_count_only_controller(sem: Arc<MultiSemaphore<2>>) -> Arc<Controller<2>> {
    Controller::builder(sem)
        .limit(0, COUNT_BOUNDS.0..=COUNT_BOUNDS.1, preset::count())
        .window(preset::WINDOW, preset::MIN_SAMPLES)
        .build()
}

/// The count-only controller: `Aimd` and `Gradient2` on the count, as the
/// existing adaptive limiters do, bytes left alone. It keeps the default 100 ms windows: at 25 ms its `Aimd` and `Gradient2`
/// climb four times as fast, and its p99 about doubles, so the comparison
/// would flatter the joint controller.
pub fn count_only_controller(sem: Arc<MultiSemaphore<2>>) -> Arc<Controller<2>> {
    Controller::builder(sem)
        .limit(0, COUNT_BOUNDS.0..=COUNT_BOUNDS.1, count_algorithm())
        .build()
}

fn count_algorithm() -> Min<Aimd, Gradient2> {
    Min(Aimd::default(), Gradient2::default())
}

enum Held {
    Plain(OwnedPermit<2>),
    Tracked(TrackedPermit<2>),
}

struct Request {
    size: u64,
    granted: u64,
    /// Still held by the client: no reply or timeout yet.
    permit: Option<Held>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The request reaches the downstream.
    Arrive(u64),
    /// A worker finished the request's overhead; its transfer starts.
    OverheadDone(u64),
    /// The reply reaches the client (`true`: a success, `false`: refused).
    Reply(u64, bool),
    /// The client gives up.
    Timeout(u64),
    /// The next phase's downstream takes over.
    PhaseChange(usize),
    /// A timeline bucket ends.
    Tick,
}

/// Requests transferring, sharing the link equally: each has a finish tag
/// in "bytes served per transfer", which grows at `bandwidth / k`.
struct Link {
    served: f64,
    last: u64,
    tags: BinaryHeap<Reverse<(u64, u64)>>, // (tag in milli-bytes, id), an integer so it orders
}

impl Link {
    fn advance(&mut self, now: u64, bandwidth: f64) {
        let k = self.tags.len();
        if k > 0 {
            self.served += (now - self.last) as f64 / NS as f64 * bandwidth / k as f64;
        }
        self.last = now;
    }

    /// When the first transfer ends, if nothing changes meanwhile.
    fn next_done(&self, bandwidth: f64) -> Option<u64> {
        let Reverse((tag, _)) = *self.tags.peek()?;
        let left = (tag as f64 / 1000.0 - self.served).max(0.0);
        let k = self.tags.len() as f64;
        Some(self.last + (left * k / bandwidth * NS as f64).ceil() as u64)
    }
}

struct Sim<'a> {
    scenario: &'a Scenario,
    limiter: Limiter,
    sem: Arc<MultiSemaphore<2>>,
    controller: Option<Arc<Controller<2>>>,
    base: Instant,
    now: u64,
    seq: u64,
    events: BinaryHeap<Reverse<(u64, u64, Event)>>,
    rng: Rng,
    next_id: u64,
    head_size: u64,
    requests: HashMap<u64, Request>,
    downstream: Downstream,
    queue: VecDeque<u64>,
    busy: usize,
    link: Link,
    measured_from: u64,
    completions: Vec<(u64, u64, u64, bool)>,
    timeline: Vec<Bucket>,
    bucket_start: usize,
    limit_sums: Vec<([f64; 2], u64)>,
    /// Per phase, the nanoseconds the link carried at least one transfer.
    link_busy: Vec<u64>,
    phase: usize,
}

/// Runs `limiter` through `scenario`.
pub fn run(scenario: &Scenario, limiter: Limiter) -> RunReport {
    let largest = scenario.traffic.largest();
    let (sem, controller) = match limiter {
        Limiter::Static(limits) => (Arc::new(MultiSemaphore::new(limits)), None),
        Limiter::CountOnly
        | Limiter::Joint
        | Limiter::JointCountOnly
        | Limiter::JointRoom(_)
        | Limiter::JointCountMax(_) => {
            // Start where a user would: a modest guess, within the bounds.
            let count = match limiter {
                Limiter::JointCountMax(max) => max.clamp(COUNT_BOUNDS.0, 16),
                _ => 16,
            };
            let sem = Arc::new(
                MultiSemaphore::builder([count, 8 * largest])
                    .max_capacity([COUNT_BOUNDS.1, BYTES_MAX])
                    .build(),
            );
            let ctl = match limiter {
                Limiter::Joint => joint_controller(Arc::clone(&sem), largest),
                Limiter::JointRoom(tenths) => {
                    joint_controller_with_room(Arc::clone(&sem), largest, f64::from(tenths) / 10.0)
                }
                Limiter::JointCountMax(max) => {
                    joint_controller_with_count_max(Arc::clone(&sem), largest, max)
                }
                Limiter::JointCountOnly => {
                    sem.set_capacity([16, BYTES_MAX]).unwrap();
                    joint_count_only_controller(Arc::clone(&sem))
                }
                _ => {
                    sem.set_capacity([16, BYTES_MAX]).unwrap();
                    count_only_controller(Arc::clone(&sem))
                }
            };
            (sem, Some(ctl))
        }
    };
    let mut rng = Rng::new(scenario.seed);
    let head_size = scenario.traffic.draw(&mut rng);
    let mut sim = Sim {
        scenario,
        limiter,
        sem,
        controller,
        base: Instant::now(),
        now: 0,
        seq: 0,
        events: BinaryHeap::new(),
        rng,
        next_id: 0,
        head_size,
        requests: HashMap::new(),
        downstream: scenario.phases[0].downstream,
        queue: VecDeque::new(),
        busy: 0,
        link: Link {
            served: 0.0,
            last: 0,
            tags: BinaryHeap::new(),
        },
        measured_from: nanos(scenario.warmup),
        completions: Vec::new(),
        timeline: Vec::new(),
        bucket_start: 0,
        limit_sums: vec![([0.0; 2], 0); scenario.phases.len()],
        link_busy: vec![0; scenario.phases.len()],
        phase: 0,
    };
    sim.simulate();
    sim.report()
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn percentile(sorted: &[u64], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Duration::from_nanos(sorted[rank - 1])
}

impl Sim<'_> {
    fn at(&self, t: u64) -> Instant {
        self.base + Duration::from_nanos(t)
    }

    fn schedule(&mut self, t: u64, event: Event) {
        self.seq += 1;
        self.events.push(Reverse((t, self.seq, event)));
    }

    fn end(&self) -> u64 {
        self.measured_from
            + self
                .scenario
                .phases
                .iter()
                .map(|p| nanos(p.duration))
                .sum::<u64>()
    }

    fn simulate(&mut self) {
        let mut start = self.measured_from;
        for i in 1..self.scenario.phases.len() {
            start += nanos(self.scenario.phases[i - 1].duration);
            self.schedule(start, Event::PhaseChange(i));
        }
        self.schedule(
            self.measured_from + nanos(self.scenario.bucket),
            Event::Tick,
        );
        self.admit();
        let end = self.end();
        loop {
            let next_event = self.events.peek().map(|Reverse((t, _, _))| *t);
            let next_link = self.link.next_done(self.downstream.bandwidth);
            let t = match (next_event, next_link) {
                (None, None) => break,
                (Some(e), Some(l)) => e.min(l),
                (Some(e), None) => e,
                (None, Some(l)) => l,
            };
            if t > end {
                break;
            }
            if next_link == Some(t) {
                self.now = t;
                self.link_done();
                continue;
            }
            let Reverse((t, _, event)) = self.events.pop().unwrap();
            self.now = t;
            self.handle(event);
        }
        // Count the link's last busy stretch up to the end.
        self.now = end;
        self.advance_link();
        self.drain();
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Arrive(id) => {
                if self.busy < self.downstream.workers {
                    self.start_work(id);
                } else if self.queue.len() < self.downstream.queue {
                    self.queue.push_back(id);
                } else {
                    let t = self.now + nanos(self.scenario.network);
                    self.schedule(t, Event::Reply(id, false));
                }
            }
            Event::OverheadDone(id) => {
                self.advance_link();
                let size = self.requests.get(&id).map_or(0, |r| r.size);
                let tag = ((self.link.served + size as f64) * 1000.0).ceil() as u64;
                self.link.tags.push(Reverse((tag, id)));
            }
            Event::Reply(id, success) => {
                let outcome = if success {
                    let size = self.requests.get(&id).map_or(0, |r| r.size);
                    Outcome::delivered(size)
                } else {
                    Outcome::Dropped
                };
                self.client_done(id, outcome, true);
            }
            // The downstream may still have it: keep its entry for the late
            // reply, or for the worker that finds it abandoned in the queue.
            Event::Timeout(id) => self.client_done(id, Outcome::Dropped, false),
            Event::PhaseChange(i) => {
                self.advance_link();
                self.downstream = self.scenario.phases[i].downstream;
                self.phase = i;
                self.start_queued();
            }
            Event::Tick => {
                self.close_bucket();
                let t = self.now + nanos(self.scenario.bucket);
                self.schedule(t, Event::Tick);
            }
        }
    }

    fn start_work(&mut self, id: u64) {
        self.busy += 1;
        let t = self.now + nanos(self.downstream.overhead);
        self.schedule(t, Event::OverheadDone(id));
    }

    /// Workers free (or added) take queued requests whose client still waits.
    fn start_queued(&mut self) {
        while self.busy < self.downstream.workers {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            let waiting = self.requests.get(&id).is_some_and(|r| r.permit.is_some());
            if waiting {
                self.start_work(id);
            } else {
                self.requests.remove(&id);
            }
        }
    }

    /// Moves the link to now at this phase's bandwidth, counting the time
    /// it was busy. Every change of bandwidth (a phase change) and of the
    /// transfers under way calls it first, so each stretch it counts lies
    /// within one phase at one bandwidth and one set of transfers.
    fn advance_link(&mut self) {
        let from = self.link.last.max(self.measured_from);
        if !self.link.tags.is_empty() && self.now > from {
            self.link_busy[self.phase] += self.now - from;
        }
        self.link.advance(self.now, self.downstream.bandwidth);
    }

    fn link_done(&mut self) {
        self.advance_link();
        // One milli-byte of slack for rounding; and the transfer that was
        // due ends even if rounding left it a hair short.
        let served_milli = (self.link.served * 1000.0).ceil() as u64 + 1;
        let mut first = true;
        while let Some(&Reverse((tag, id))) = self.link.tags.peek() {
            if tag > served_milli && !first {
                break;
            }
            first = false;
            self.link.tags.pop();
            self.busy -= 1;
            let t = self.now + nanos(self.scenario.network);
            self.schedule(t, Event::Reply(id, true));
        }
        self.start_queued();
    }

    /// A reply or a timeout reaches the client; the first one counts. A
    /// reply is `last`: nothing more will come for the request.
    fn client_done(&mut self, id: u64, outcome: Outcome, last: bool) {
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        let Some(held) = request.permit.take() else {
            // Already timed out: this is the late reply; the request is over.
            self.requests.remove(&id);
            return;
        };
        let latency = self.now - request.granted;
        let size = request.size;
        let success = matches!(outcome, Outcome::Success { .. });
        if last {
            self.requests.remove(&id);
        }
        match held {
            Held::Plain(permit) => drop(permit),
            Held::Tracked(permit) => permit.complete_at(outcome, self.at(self.now)),
        }
        if self.now >= self.measured_from {
            self.completions
                .push((self.now - self.measured_from, latency, size, success));
        }
        self.admit();
    }

    /// Admits backlog messages, head first, while they fit.
    fn admit(&mut self) {
        loop {
            let amounts = [1, self.head_size];
            let now = self.at(self.now);
            let held = match &self.controller {
                Some(ctl) => ctl.try_acquire_at(amounts, now).map(Held::Tracked),
                None => self.sem.try_acquire_owned(amounts).map(Held::Plain),
            };
            let Ok(held) = held else { return };
            let id = self.next_id;
            self.next_id += 1;
            self.requests.insert(
                id,
                Request {
                    size: self.head_size,
                    granted: self.now,
                    permit: Some(held),
                },
            );
            self.head_size = self.scenario.traffic.draw(&mut self.rng);
            let network = nanos(self.scenario.network);
            self.schedule(self.now + network, Event::Arrive(id));
            self.schedule(self.now + nanos(self.scenario.timeout), Event::Timeout(id));
        }
    }

    fn close_bucket(&mut self) {
        let from = self.bucket_start;
        let to = self.completions.len();
        self.bucket_start = to;
        let bucket = nanos(self.scenario.bucket);
        let mut latencies: Vec<u64> = Vec::new();
        let (mut bytes, mut drops) = (0, 0);
        for &(_, latency, size, success) in &self.completions[from..to] {
            if success {
                latencies.push(latency);
                bytes += size;
            } else {
                drops += 1;
            }
        }
        latencies.sort_unstable();
        let capacity = self.sem.capacity();
        let in_flight = self.sem.in_flight();
        let limits = capacity;
        let end = self.now - self.measured_from;
        let phase = self.phase_at(end - 1);
        let sums = &mut self.limit_sums[phase];
        sums.0[0] += limits[0] as f64;
        sums.0[1] += limits[1] as f64;
        sums.1 += 1;
        self.timeline.push(Bucket {
            end: Duration::from_nanos(end),
            phase,
            goodput: bytes as f64 / (bucket as f64 / NS as f64),
            p50: percentile(&latencies, 0.5),
            p99: percentile(&latencies, 0.99),
            successes: latencies.len() as u64,
            drops,
            limits,
            in_flight,
        });
    }

    /// The phase at `t` from the measured start.
    fn phase_at(&self, t: u64) -> usize {
        let mut end = 0;
        for (i, phase) in self.scenario.phases.iter().enumerate() {
            end += nanos(phase.duration);
            if t < end {
                return i;
            }
        }
        self.scenario.phases.len() - 1
    }

    /// Gives back every permit still held, as a caller abandoning its
    /// requests would (dropped without an outcome: ignored), so that the
    /// books can be checked.
    fn drain(&mut self) {
        for request in self.requests.values_mut() {
            if let Some(held) = request.permit.take() {
                drop(held); // dropped without an outcome: ignored
            }
        }
        self.requests.clear();
    }

    fn report(self) -> RunReport {
        let balanced = self.sem.available() == self.sem.capacity();
        let mut phases = Vec::new();
        let mut start = 0;
        for (i, phase) in self.scenario.phases.iter().enumerate() {
            let end = start + nanos(phase.duration);
            let mut latencies = Vec::new();
            let (mut bytes, mut drops) = (0u64, 0u64);
            for &(t, latency, size, success) in &self.completions {
                if t < start || t >= end {
                    continue;
                }
                if success {
                    latencies.push(latency);
                    bytes += size;
                } else {
                    drops += 1;
                }
            }
            latencies.sort_unstable();
            let successes = latencies.len() as u64;
            let (sums, n) = self.limit_sums[i];
            phases.push(PhaseReport {
                name: phase.name,
                goodput: bytes as f64 / phase.duration.as_secs_f64(),
                p50: percentile(&latencies, 0.5),
                p99: percentile(&latencies, 0.99),
                drop_rate: if successes + drops == 0 {
                    0.0
                } else {
                    drops as f64 / (successes + drops) as f64
                },
                successes,
                drops,
                mean_limits: sums.map(|s| s / n.max(1) as f64),
                link_busy: self.link_busy[i] as f64 / nanos(phase.duration) as f64,
            });
            start = end;
        }
        RunReport {
            limiter: self.limiter,
            phases,
            timeline: self.timeline,
            completions: self.completions,
            balanced,
        }
    }
}

/// The static limits tried by the oracle's grid search: counts from 1 to
/// 512 and byte limits from the largest message to 256 of them, and no byte
/// limit at all; in steps of at most 1.5x up to 192 requests and 16
/// messages (finer where the best ones lie), doubling above.
pub fn grid(traffic: Traffic) -> Vec<[u64; 2]> {
    let counts = [
        1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 64, 96, 128, 192, 256, 512,
    ];
    // In quarters of the largest message.
    let quarters = [
        4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 32, 48, 64, 128, 256, 512, 1024,
    ];
    let largest = traffic.largest();
    let mut bytes: Vec<u64> = quarters.iter().map(|q| q * largest / 4).collect();
    bytes.push(BYTES_MAX);
    counts
        .iter()
        .flat_map(|&c| bytes.iter().map(move |&b| [c, b]))
        .collect()
}

/// The best static limits for one phase: the highest goodput with drops at
/// most 1%; among those within 2% of it, the lowest p99 (then the smallest
/// limits). Returns the limits and their report. The grid's runs are
/// independent, so they are spread over the machine's cores; the result
/// does not depend on how.
///
/// # Panics
///
/// If a run of the grid leaks permits: a bug of the library, not a figure.
pub fn oracle(scenario: &Scenario, phase: usize, grid: &[[u64; 2]]) -> ([u64; 2], PhaseReport) {
    let single = scenario.single(phase);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = grid.len().div_ceil(threads).max(1);
    let runs: Vec<([u64; 2], PhaseReport)> = std::thread::scope(|s| {
        let handles: Vec<_> = grid
            .chunks(chunk)
            .map(|part| {
                let single = &single;
                s.spawn(move || {
                    part.iter()
                        .map(|&limits| {
                            let report = run(single, Limiter::Static(limits));
                            // A leak would be the library's bug, not a
                            // figure: no run of the grid may hide one.
                            assert!(report.balanced, "static {limits:?}: permits leaked");
                            (limits, report.phases[0].clone())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let feasible = runs.iter().filter(|(_, r)| r.drop_rate <= 0.01);
    let best = feasible.clone().map(|(_, r)| r.goodput).fold(0.0, f64::max);
    feasible
        .filter(|(_, r)| r.goodput >= 0.98 * best)
        .min_by(|(la, a), (lb, b)| a.p99.cmp(&b.p99).then(la.cmp(lb)))
        .cloned()
        .expect("some static limit drops at most 1%")
}

/// The oracle of every phase of `scenario`; phases with the same downstream
/// (recovered is steady's again) share theirs, which a phase run alone
/// would find the same.
pub fn oracles(scenario: &Scenario, grid: &[[u64; 2]]) -> Vec<([u64; 2], PhaseReport)> {
    let mut found: Vec<([u64; 2], PhaseReport)> = Vec::new();
    for (p, phase) in scenario.phases.iter().enumerate() {
        let same = scenario.phases[..p]
            .iter()
            .position(|q| q.downstream == phase.downstream);
        let oracle = match same {
            Some(q) => found[q].clone(),
            None => oracle(scenario, p, grid),
        };
        found.push(oracle);
    }
    found
}

/// Whether a phase's `report` meets the goals against its `oracle`: at
/// least 90% of its goodput, a p99 at most 1.5x its, at most 1% drops.
pub fn meets_oracle_goals(report: &PhaseReport, oracle: &PhaseReport) -> bool {
    report.goodput >= 0.9 * oracle.goodput
        && report.p99.as_secs_f64() <= 1.5 * oracle.p99.as_secs_f64()
        && report.drop_rate <= 0.01
}

/// How long after the start of `phase` the run settled: the start of the
/// first 500 ms bucket from which every bucket to the phase's end has at
/// least 90% of the oracle's goodput, a p99 within 1.5x the oracle's and at
/// most 1% drops. `None` if the last bucket does not.
pub fn convergence(
    scenario: &Scenario,
    report: &RunReport,
    phase: usize,
    oracle: &PhaseReport,
) -> Option<Duration> {
    let bucket = 500_000_000u64;
    let start: u64 = scenario.phases[..phase]
        .iter()
        .map(|p| nanos(p.duration))
        .sum();
    let len = nanos(scenario.phases[phase].duration);
    let buckets = (len / bucket) as usize;
    let mut ok = vec![false; buckets];
    let mut per_bucket: Vec<(Vec<u64>, u64, u64)> = vec![(Vec::new(), 0, 0); buckets];
    for &(t, latency, size, success) in &report.completions {
        if t < start || t >= start + len {
            continue;
        }
        let b = ((t - start) / bucket) as usize;
        if b >= buckets {
            continue;
        }
        if success {
            per_bucket[b].0.push(latency);
            per_bucket[b].1 += size;
        } else {
            per_bucket[b].2 += 1;
        }
    }
    for (b, (latencies, bytes, drops)) in per_bucket.iter_mut().enumerate() {
        latencies.sort_unstable();
        let goodput = *bytes as f64 / (bucket as f64 / NS as f64);
        let answered = latencies.len() as u64 + *drops;
        let drop_rate = if answered == 0 {
            0.0
        } else {
            *drops as f64 / answered as f64
        };
        ok[b] = goodput >= 0.9 * oracle.goodput
            && percentile(latencies, 0.99).as_secs_f64() <= 1.5 * oracle.p99.as_secs_f64()
            && drop_rate <= 0.01;
    }
    let settled = ok
        .iter()
        .rposition(|&ok| !ok)
        .map_or(0, |last_bad| last_bad + 1);
    (settled < buckets).then(|| Duration::from_nanos(settled as u64 * bucket))
}

/// [`convergence`] of the oracle itself: its static `limits` for `phase`,
/// run on that phase alone after the warm-up on the same downstream (as
/// the grid search ran it, so nothing changes within it), judged against
/// its own `report`. A bucket it misses is the measure's noise, not a
/// limiter's: goodput counts a request's bytes when it completes, and
/// where a few large messages carry nearly every byte, one or two of them
/// completing in the next 500 ms bucket move a bucket's goodput by 5% or
/// more. So this is the floor under any limiter's figure on that phase.
pub fn oracle_settling(
    scenario: &Scenario,
    phase: usize,
    limits: [u64; 2],
    report: &PhaseReport,
) -> Option<Duration> {
    let alone = scenario.single(phase);
    convergence(&alone, &run(&alone, Limiter::Static(limits)), 0, report)
}
