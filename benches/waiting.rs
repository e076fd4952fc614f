//! The waiting path (issue 3 section 6): timed blocking acquires under load, multisem beside
//! two `tokio::sync::Semaphore`s taken in sequence and a hand-written
//! `parking_lot::Mutex<[u64; 2]>` + `Condvar`, each scenario in the same run.
//!
//! Run: `cargo bench --bench waiting` (about 30 s), or `cargo bench --bench waiting -- handoff`
//! (or `starvation`) for one scenario. Each scenario lasts `MULTISEM_BENCH_SECS` seconds per
//! implementation (default 2). These are plain timed runs printed as tables, not criterion
//! benches; `cargo test --benches` runs each for 100 ms.
//!
//! - handoff (the async-send pattern): capacity [64, 1 MiB]; three producers call
//!   `acquire_owned_blocking_timeout([1, size], 1 s)`, sizes 100 B..=64 KiB from a seeded xorshift, and
//!   send the owned permit through a `std::sync::mpsc` channel to one completer thread that
//!   drops it. Reports acquires/s and acquire latency p50/p99/p99.9/max.
//! - starvation: capacity [65536, 1 MiB]; two threads hammer
//!   `acquire_owned_blocking_timeout([1, 1 KiB], 20 ms)` and hand each permit to a completer that holds
//!   it 5-15 ms; a third asks for [1, 512 KiB] with a 1 s timeout, drops what it gets, sleeps
//!   10 ms, and repeats for the run. Reports big grants, big timeouts, big wait p50/p99/max.
//! - resize_serves: how long one call takes to serve a queue of Q async waiters, per waiter,
//!   against a release granting the same queue: `add_permits` granting them all, and a
//!   `set_capacity` shrink failing Q oversized waiters queued behind Q that fit, against the
//!   same 2Q waiters cancelled. Medians of 5 rounds.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use multisem::{AcquireError, MultiSemaphore, OwnedPermit};

mod common;
use common::{RunMode, XorShift, as_ns, fmt_ns, percentile};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// A semaphore over [count, bytes] that can block with a timeout and hands out owned permits.
trait WaitSem: Send + Sync + Sized + 'static {
    /// What a successful acquire holds; dropping it gives everything back.
    type Owned: Send + 'static;
    /// Per-thread state an acquirer needs (a runtime for tokio).
    type Ctx;

    fn ctx(&self) -> Self::Ctx;

    /// `None` on timeout.
    fn acquire_blocking_timeout(
        sem: &Arc<Self>,
        ctx: &mut Self::Ctx,
        amounts: [u64; 2],
        timeout: Duration,
    ) -> Option<Self::Owned>;

    /// After a scenario, with every permit returned: checks the implementation's own books.
    fn check_after(&self, _name: &str, _acquired: u64, _timed_out: u64) {}
}

impl WaitSem for MultiSemaphore<2> {
    type Owned = OwnedPermit<2>;
    type Ctx = ();

    fn ctx(&self) {}

    fn acquire_blocking_timeout(
        sem: &Arc<Self>,
        _: &mut (),
        amounts: [u64; 2],
        timeout: Duration,
    ) -> Option<OwnedPermit<2>> {
        match sem.acquire_owned_blocking_timeout(amounts, timeout) {
            Ok(permit) => Some(permit),
            Err(AcquireError::Timeout) => None,
            Err(e) => {
                panic!("multisem acquire_owned_blocking_timeout({amounts:?}): unexpected {e}")
            }
        }
    }

    fn check_after(&self, name: &str, acquired: u64, timed_out: u64) {
        if self.available() != self.capacity() {
            println!(
                "  BUG: {name}: available() = {:?} != capacity() = {:?} with no permit out",
                self.available(),
                self.capacity()
            );
        }
        if self.waiters() != 0 {
            println!(
                "  BUG: {name}: waiters() = {} with nobody waiting",
                self.waiters()
            );
        }
        let stats = self.stats();
        if stats.acquired != acquired || stats.timed_out != timed_out {
            println!(
                "  BUG: {name}: stats() says acquired {} timed_out {}, the bench counted {acquired} and {timed_out}",
                stats.acquired, stats.timed_out
            );
        }
    }
}

fn multisem_packed(capacity: [u64; 2]) -> Arc<MultiSemaphore<2>> {
    Arc::new(common::multisem_packed(capacity))
}

fn multisem_wide(capacity: [u64; 2]) -> Arc<MultiSemaphore<2>> {
    Arc::new(common::multisem_wide(capacity))
}

/// Two tokio semaphores taken in sequence, count then bytes, as rocketmq-rust does. Each
/// acquire first tries without the runtime (tokio's `try_acquire` does not barge past queued
/// waiters, so this keeps its FIFO order) and only then blocks on a per-thread current-thread
/// runtime with `timeout_at` the shared deadline; the count permit is held while waiting for
/// bytes (hold-and-wait, as with any two-semaphore design).
struct TokioPair {
    count: Arc<tokio::sync::Semaphore>,
    bytes: Arc<tokio::sync::Semaphore>,
}

impl TokioPair {
    fn new([count, bytes]: [u64; 2]) -> Arc<Self> {
        let cap = |n: u64| usize::try_from(n).expect("capacity fits usize");
        Arc::new(Self {
            count: Arc::new(tokio::sync::Semaphore::new(cap(count))),
            bytes: Arc::new(tokio::sync::Semaphore::new(cap(bytes))),
        })
    }

    fn take(
        rt: &tokio::runtime::Runtime,
        sem: &Arc<tokio::sync::Semaphore>,
        n: u64,
        deadline: Instant,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let n = u32::try_from(n).expect("tokio takes u32 permits");
        match Arc::clone(sem).try_acquire_many_owned(n) {
            Ok(permit) => return Some(permit),
            Err(tokio::sync::TryAcquireError::NoPermits) => {}
            Err(tokio::sync::TryAcquireError::Closed) => panic!("tokio semaphore closed"),
        }
        let acquire = Arc::clone(sem).acquire_many_owned(n);
        let deadline = tokio::time::Instant::from_std(deadline);
        // The timer must be created inside the runtime, hence the async block.
        rt.block_on(async { tokio::time::timeout_at(deadline, acquire).await })
            .ok()
            .map(|r| r.expect("tokio semaphore closed"))
    }
}

impl WaitSem for TokioPair {
    type Owned = (
        tokio::sync::OwnedSemaphorePermit,
        tokio::sync::OwnedSemaphorePermit,
    );
    type Ctx = tokio::runtime::Runtime;

    fn ctx(&self) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime")
    }

    fn acquire_blocking_timeout(
        sem: &Arc<Self>,
        rt: &mut tokio::runtime::Runtime,
        [count, bytes]: [u64; 2],
        timeout: Duration,
    ) -> Option<Self::Owned> {
        let deadline = Instant::now() + timeout;
        let count = Self::take(rt, &sem.count, count, deadline)?;
        // On timeout `count` drops here and goes back.
        let bytes = Self::take(rt, &sem.bytes, bytes, deadline)?;
        Some((count, bytes))
    }
}

/// The hand-written lock: counters under a mutex, `notify_all` on release, waiters re-check
/// until their deadline (barging: whoever gets the lock first and fits, takes).
struct CondvarPair {
    avail: parking_lot::Mutex<[u64; 2]>,
    released: parking_lot::Condvar,
}

impl CondvarPair {
    fn new(capacity: [u64; 2]) -> Arc<Self> {
        Arc::new(Self {
            avail: parking_lot::Mutex::new(capacity),
            released: parking_lot::Condvar::new(),
        })
    }
}

struct CondvarHeld(Arc<CondvarPair>, [u64; 2]);

impl Drop for CondvarHeld {
    fn drop(&mut self) {
        let mut avail = self.0.avail.lock();
        avail[0] += self.1[0];
        avail[1] += self.1[1];
        drop(avail);
        self.0.released.notify_all();
    }
}

impl WaitSem for CondvarPair {
    type Owned = CondvarHeld;
    type Ctx = ();

    fn ctx(&self) {}

    fn acquire_blocking_timeout(
        sem: &Arc<Self>,
        _: &mut (),
        amounts: [u64; 2],
        timeout: Duration,
    ) -> Option<CondvarHeld> {
        let deadline = Instant::now() + timeout;
        let mut avail = sem.avail.lock();
        loop {
            if avail[0] >= amounts[0] && avail[1] >= amounts[1] {
                avail[0] -= amounts[0];
                avail[1] -= amounts[1];
                return Some(CondvarHeld(Arc::clone(sem), amounts));
            }
            if Instant::now() >= deadline {
                return None;
            }
            // A timed-out wait loops once more: the check above gets its last chance.
            let _ = sem.released.wait_until(&mut avail, deadline);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Handoff

const HANDOFF_CAP: [u64; 2] = [64, MIB];
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(1);
const HANDOFF_PRODUCERS: u64 = 3;
/// Interleaved slices per implementation (see `run_handoff`).
const HANDOFF_ROUNDS: u32 = 4;

struct HandoffResult {
    acquires: u64,
    timeouts: u64,
    elapsed: Duration,
    /// Acquire latencies in ns (sorted only for the report).
    latencies: Vec<u64>,
}

fn handoff<S: WaitSem>(sem: &Arc<S>, run_for: Duration) -> HandoffResult {
    let (tx, rx) = mpsc::channel::<S::Owned>();
    let stop = AtomicBool::new(false);
    let start = Barrier::new(HANDOFF_PRODUCERS as usize + 1);
    let (stop, start) = (&stop, &start);
    std::thread::scope(|s| {
        let completer = s.spawn(move || rx.into_iter().for_each(drop));
        let producers: Vec<_> = (0..HANDOFF_PRODUCERS)
            .map(|i| {
                let tx = tx.clone();
                s.spawn(move || {
                    let mut ctx = sem.ctx();
                    let mut rng = XorShift::new(i);
                    let mut latencies = Vec::with_capacity(1 << 20);
                    let mut timeouts = 0u64;
                    start.wait();
                    while !stop.load(Ordering::Relaxed) {
                        let size = rng.range(100, 64 * KIB);
                        let t0 = Instant::now();
                        match S::acquire_blocking_timeout(sem, &mut ctx, [1, size], HANDOFF_TIMEOUT)
                        {
                            Some(permit) => {
                                latencies.push(as_ns(t0.elapsed()));
                                tx.send(permit).expect("completer alive");
                            }
                            None => timeouts += 1,
                        }
                    }
                    (latencies, timeouts)
                })
            })
            .collect();
        drop(tx);
        start.wait();
        let t0 = Instant::now();
        std::thread::sleep(run_for);
        stop.store(true, Ordering::Relaxed);
        let mut result = HandoffResult {
            acquires: 0,
            timeouts: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
        };
        for p in producers {
            let (lat, timeouts) = p.join().expect("producer panicked");
            result.latencies.extend(lat);
            result.timeouts += timeouts;
        }
        result.elapsed = t0.elapsed();
        completer.join().expect("completer panicked");
        result.acquires = result.latencies.len() as u64;
        result
    })
}

/// One handoff slice on a fresh semaphore, checked afterwards.
fn handoff_slice<S: WaitSem>(name: &str, sem: Arc<S>, run_for: Duration) -> HandoffResult {
    let r = handoff(&sem, run_for);
    sem.check_after(name, r.acquires, r.timeouts);
    r
}

/// Runs each implementation for `run_for` in total, in `rounds` interleaved slices, so that
/// load from elsewhere on the machine falls on all of them alike.
fn run_handoff(run_for: Duration, rounds: u32) {
    println!();
    println!(
        "handoff: capacity {HANDOFF_CAP:?}, {HANDOFF_PRODUCERS} producers acquire_owned_blocking_timeout([1, 100..=64Ki], 1 s) -> mpsc -> 1 completer drops; \
         {:.2} s each in {rounds} interleaved slices",
        run_for.as_secs_f64()
    );
    type Slice = fn(Duration) -> HandoffResult;
    let contenders: [(&str, Slice); 4] = [
        ("multisem_packed", |d| {
            handoff_slice("multisem_packed", multisem_packed(HANDOFF_CAP), d)
        }),
        ("multisem_wide", |d| {
            handoff_slice("multisem_wide", multisem_wide(HANDOFF_CAP), d)
        }),
        ("tokio_two_semaphores", |d| {
            handoff_slice("tokio_two_semaphores", TokioPair::new(HANDOFF_CAP), d)
        }),
        ("mutex_condvar", |d| {
            handoff_slice("mutex_condvar", CondvarPair::new(HANDOFF_CAP), d)
        }),
    ];
    let slice = run_for / rounds;
    let mut totals: Vec<HandoffResult> = contenders
        .iter()
        .map(|_| HandoffResult {
            acquires: 0,
            timeouts: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
        })
        .collect();
    for _ in 0..rounds {
        for ((_, run), total) in contenders.iter().zip(&mut totals) {
            let r = run(slice);
            total.acquires += r.acquires;
            total.timeouts += r.timeouts;
            total.elapsed += r.elapsed;
            total.latencies.extend(r.latencies);
        }
    }
    println!(
        "{:<22} {:>12} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "implementation", "acquires/s", "p50", "p99", "p99.9", "max", "timeouts"
    );
    for ((name, _), mut r) in contenders.iter().zip(totals) {
        r.latencies.sort_unstable();
        let l = &r.latencies;
        println!(
            "{:<22} {:>12.0} {:>10} {:>10} {:>10} {:>10} {:>9}",
            name,
            r.acquires as f64 / r.elapsed.as_secs_f64(),
            fmt_ns(percentile(l, 50.0)),
            fmt_ns(percentile(l, 99.0)),
            fmt_ns(percentile(l, 99.9)),
            fmt_ns(l.last().copied().unwrap_or(0)),
            r.timeouts
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Starvation

const STARVE_CAP: [u64; 2] = [65_536, MIB];
const SMALL: [u64; 2] = [1, KIB];
const SMALL_TIMEOUT: Duration = Duration::from_millis(20);
const BIG: [u64; 2] = [1, 512 * KIB];
const BIG_TIMEOUT: Duration = Duration::from_secs(1);
const BIG_PAUSE: Duration = Duration::from_millis(10);

/// A permit the completer will drop at `at`; ordered so that `BinaryHeap` pops the earliest.
struct Due<P> {
    at: Instant,
    seq: u64,
    _permit: P,
}

impl<P> PartialEq for Due<P> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<P> Eq for Due<P> {}
impl<P> PartialOrd for Due<P> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl<P> Ord for Due<P> {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        // Reversed: the earliest deadline is the heap's greatest.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Holds each permit it receives until its due time, then drops it; drops the rest once
/// every sender is gone.
fn timed_completer<P>(rx: mpsc::Receiver<(P, Instant)>) {
    let mut heap = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|d: &Due<P>| d.at <= now) {
            heap.pop();
        }
        let wait = heap.peek().map_or(Duration::from_millis(50), |d| {
            d.at.saturating_duration_since(now)
        });
        match rx.recv_timeout(wait) {
            Ok((permit, at)) => {
                seq += 1;
                heap.push(Due {
                    at,
                    seq,
                    _permit: permit,
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[derive(Default)]
struct StarvationResult {
    small_grants: u64,
    small_timeouts: u64,
    big_grants: u64,
    big_timeouts: u64,
    /// Every big attempt's wait in ns (grants and timeouts), ascending.
    big_waits: Vec<u64>,
}

fn starvation<S: WaitSem>(sem: &Arc<S>, run_for: Duration) -> StarvationResult {
    let (tx, rx) = mpsc::channel::<(S::Owned, Instant)>();
    let stop = AtomicBool::new(false);
    let start = Barrier::new(3);
    let (stop, start) = (&stop, &start);
    std::thread::scope(|s| {
        let completer = s.spawn(move || timed_completer(rx));
        let hammers: Vec<_> = (0..2u64)
            .map(|i| {
                let tx = tx.clone();
                s.spawn(move || {
                    let mut ctx = sem.ctx();
                    let mut rng = XorShift::new(100 + i);
                    let (mut grants, mut timeouts) = (0u64, 0u64);
                    start.wait();
                    while !stop.load(Ordering::Relaxed) {
                        let hold = Duration::from_millis(rng.range(5, 15));
                        match S::acquire_blocking_timeout(sem, &mut ctx, SMALL, SMALL_TIMEOUT) {
                            Some(permit) => {
                                grants += 1;
                                tx.send((permit, Instant::now() + hold))
                                    .expect("completer alive");
                            }
                            None => timeouts += 1,
                        }
                    }
                    (grants, timeouts)
                })
            })
            .collect();
        drop(tx);
        let mut ctx = sem.ctx();
        let mut r = StarvationResult::default();
        start.wait();
        // Let the hammers fill the semaphore before the first big request.
        std::thread::sleep(BIG_PAUSE);
        let end = Instant::now() + run_for;
        while Instant::now() < end {
            let t0 = Instant::now();
            match S::acquire_blocking_timeout(sem, &mut ctx, BIG, BIG_TIMEOUT) {
                Some(permit) => {
                    r.big_grants += 1;
                    drop(permit);
                }
                None => r.big_timeouts += 1,
            }
            r.big_waits.push(as_ns(t0.elapsed()));
            std::thread::sleep(BIG_PAUSE);
        }
        stop.store(true, Ordering::Relaxed);
        for h in hammers {
            let (grants, timeouts) = h.join().expect("hammer panicked");
            r.small_grants += grants;
            r.small_timeouts += timeouts;
        }
        completer.join().expect("completer panicked");
        r.big_waits.sort_unstable();
        r
    })
}

fn starvation_row<S: WaitSem>(name: &str, sem: Arc<S>, run_for: Duration) {
    let r = starvation(&sem, run_for);
    let w = &r.big_waits;
    println!(
        "{:<22} {:>10} {:>12} {:>10} {:>10} {:>10} {:>12} {:>14}",
        name,
        r.big_grants,
        r.big_timeouts,
        fmt_ns(percentile(w, 50.0)),
        fmt_ns(percentile(w, 99.0)),
        fmt_ns(w.last().copied().unwrap_or(0)),
        r.small_grants,
        r.small_timeouts
    );
    sem.check_after(
        name,
        r.big_grants + r.small_grants,
        r.big_timeouts + r.small_timeouts,
    );
}

fn run_starvation(run_for: Duration) {
    println!();
    println!(
        "starvation: capacity {STARVE_CAP:?}, 2 threads acquire_owned_blocking_timeout({SMALL:?}, 20 ms) held 5-15 ms; \
         1 thread acquires {BIG:?} with a 1 s timeout, then pauses 10 ms; {:.1} s each",
        run_for.as_secs_f64()
    );
    println!(
        "{:<22} {:>10} {:>12} {:>10} {:>10} {:>10} {:>12} {:>14}",
        "implementation",
        "big grants",
        "big timeouts",
        "big p50",
        "big p99",
        "big max",
        "small grants",
        "small timeouts"
    );
    starvation_row("multisem_packed", multisem_packed(STARVE_CAP), run_for);
    starvation_row("multisem_wide", multisem_wide(STARVE_CAP), run_for);
    starvation_row("tokio_two_semaphores", TokioPair::new(STARVE_CAP), run_for);
    starvation_row("mutex_condvar", CondvarPair::new(STARVE_CAP), run_for);
}

/// Q async waiters of `amounts` queued on `sem`, polled once.
fn queue_waiters(
    sem: &Arc<MultiSemaphore<1>>,
    q: u64,
    amounts: [u64; 1],
) -> Vec<std::pin::Pin<Box<multisem::AcquireOwned<1>>>> {
    use std::future::Future;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    (0..q)
        .map(|_| {
            let mut acquire = Box::pin(sem.acquire_owned(amounts));
            assert!(acquire.as_mut().poll(&mut cx).is_pending());
            acquire
        })
        .collect()
}

/// Times `serve` on a fresh queue made by `setup`; the waiters are dropped
/// after the clock stops.
fn time_serve<T>(setup: impl Fn() -> T, serve: impl Fn(&mut T)) -> u64 {
    let mut state = setup();
    let start = Instant::now();
    serve(&mut state);
    let ns = as_ns(start.elapsed());
    drop(state);
    ns
}

fn run_resize_serves(rounds: u32, sizes: &[u64]) {
    println!(
        "\n## resize_serves: one call serving queued waiters, ns per waiter it serves (median)"
    );
    println!(
        "| Q | release grants Q | add_permits grants Q | cancels of 2Q | shrink fails Q behind Q |"
    );
    println!("|---|---|---|---|---|");
    for &q in sizes {
        let held = || {
            let sem = Arc::new(MultiSemaphore::builder([q]).max_capacity([2 * q]).build());
            let hold = sem.try_acquire_owned([q]).unwrap();
            let waiters = queue_waiters(&sem, q, [1]);
            (sem, Some(hold), waiters)
        };
        let mixed = || {
            let sem = Arc::new(MultiSemaphore::builder([4]).max_capacity([4]).build());
            let hold = sem.try_acquire_owned([4]).unwrap();
            let mut waiters = queue_waiters(&sem, q, [1]);
            waiters.extend(queue_waiters(&sem, q, [4]));
            (sem, Some(hold), waiters)
        };
        // Per waiter served: granted, cancelled or failed.
        let median = |served: u64, f: &dyn Fn() -> u64| {
            let mut ns: Vec<u64> = (0..rounds).map(|_| f()).collect();
            ns.sort_unstable();
            ns[ns.len() / 2] / served
        };
        let release = median(q, &|| time_serve(held, |(_, hold, _)| drop(hold.take())));
        let grow = median(q, &|| {
            time_serve(held, |(sem, _, _)| sem.add_permits([q]).unwrap())
        });
        let cancels = median(2 * q, &|| {
            time_serve(mixed, |(_, _, waiters)| waiters.clear())
        });
        let shrink = median(q, &|| {
            time_serve(mixed, |(sem, _, _)| sem.set_capacity([3]).unwrap())
        });
        println!("| {q} | {release} | {grow} | {cancels} | {shrink} |");
    }
}

fn main() {
    let (run_for, rounds) = match common::run_mode() {
        RunMode::List => return,
        // `cargo test --benches`: just check that every scenario runs.
        RunMode::Test => (Duration::from_millis(100), 1),
        RunMode::Bench => (common::scenario_secs(2.0), HANDOFF_ROUNDS),
    };
    // Positional arguments filter scenarios by name, as criterion's do benchmarks.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    if wanted("handoff") {
        run_handoff(run_for, rounds);
    }
    if wanted("starvation") {
        run_starvation(run_for);
    }
    if wanted("resize_serves") {
        match common::run_mode() {
            RunMode::Bench => run_resize_serves(5, &[1_000, 10_000, 40_000]),
            _ => run_resize_serves(1, &[1_000]),
        }
    }
}
