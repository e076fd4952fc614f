//! Soak test: many threads and async tasks hammer one semaphore with every
//! kind of acquire for a while, then the books must balance exactly.
//!
//! It is `#[ignore]`d so that `cargo test` stays fast. Run it with
//!
//! ```text
//! SOAK_SECONDS=30 cargo test --release --test soak -- --ignored --nocapture
//! ```
//!
//! `SOAK_SECONDS` (default 10) is the total time, split between two runs: the
//! packed single-word layout (ended by stopping the load and restoring the
//! capacity) and the tiered layout (ended by `close()` under load).
//! `--nocapture` shows the operations per second of each run.
//!
//! What runs concurrently:
//! - worker threads picking at random: `try_acquire` (borrowed and owned),
//!   `acquire_blocking`, `acquire_blocking_timeout`, `acquire_blocking_deadline` (past deadlines included),
//!   owned timed acquires whose permit moves to a completer thread that drops
//!   it, async acquires driven by hand with random cancellation and a waker
//!   that calls back into the semaphore, owned async acquires under
//!   `futures_executor::block_on`, panics while holding permits (caught),
//!   `split`/`merge`/`forget`, zero requests and requests above any capacity;
//! - tokio tasks doing `acquire_owned` / `acquire` cancelled by
//!   `tokio::time::timeout`, some handing their permit to a completer thread;
//! - a resizer calling `add_permits` and `set_capacity` (also below what is in
//!   flight);
//! - a checker asserting that what callers hold never exceeds the largest
//!   capacity ever set.
//!
//! At the end: `waiters() == 0`, `available() == capacity()`, and `stats()`
//! matches what the callers saw (acquired, timed out, cancelled, closed out,
//! refused).

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use multisem::{AcquireError, MultiSemaphore, OwnedPermit, Permit, TryAcquireError};

mod common;
use common::{Rng, assert_every_wait_ended};

type Sem = MultiSemaphore<2>;

/// Starting capacity: messages and bytes.
const CAP0: [u64; 2] = [16, 512 << 10];
/// The resizer keeps every capacity within `LO..=HI`.
const LO: [u64; 2] = [4, 128 << 10];
const HI: [u64; 2] = [48, 2 << 20];
/// Every normal request fits `LO`; oversized ones exceed `HI`.
const MAX_REQ: [u64; 2] = [4, 64 << 10];

/// Worker threads and tokio tasks.
const WORKERS: usize = 6;
const TASKS: usize = 16;

const PANIC_MARKER: &str = "soak: deliberate panic while holding a permit";
const JOIN_LIMIT: Duration = Duration::from_secs(60);

/// Mostly small messages, a few large ones, sometimes zero.
fn draw_amounts(rng: &mut Rng) -> [u64; 2] {
    if rng.chance(50) {
        return [0, 0];
    }
    let bytes = if rng.chance(10) {
        1 + rng.below(MAX_REQ[1])
    } else {
        1 + rng.below(4096)
    };
    [1 + rng.below(MAX_REQ[0]), bytes]
}

/// What the callers saw.
#[derive(Default)]
struct Books {
    in_use: [AtomicU64; 2],
    max_in_use: [AtomicU64; 2],
    ok: AtomicU64,
    timed_out: AtomicU64,
    closed_out: AtomicU64,
    try_closed: AtomicU64,
    cancelled: AtomicU64,
    refused: AtomicU64,
    exceeded: AtomicU64,
    panics: AtomicU64,
    forgets: AtomicU64,
    splits: AtomicU64,
    resizes: AtomicU64,
    reentries: AtomicU64,
    ops: AtomicU64,
}

struct Ctx {
    sem: Arc<Sem>,
    stop: AtomicBool,
    books: Books,
    /// Serializes capacity changes (resizes and forgets) so each can be checked.
    capacity_lock: Mutex<()>,
}

impl Ctx {
    fn lock_capacity(&self) -> MutexGuard<'_, ()> {
        self.capacity_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn done(&self) -> bool {
        self.stop.load(Relaxed) || self.sem.is_closed()
    }

    fn took(&self, a: [u64; 2]) {
        self.books.ok.fetch_add(1, Relaxed);
        for (d, &amount) in a.iter().enumerate() {
            let now = self.books.in_use[d].fetch_add(amount, SeqCst) + amount;
            self.books.max_in_use[d].fetch_max(now, Relaxed);
            assert!(
                now <= HI[d],
                "dimension {d}: {now} held, more than any capacity ever set"
            );
        }
    }

    fn gave(&self, a: [u64; 2]) {
        for (d, &amount) in a.iter().enumerate() {
            self.books.in_use[d].fetch_sub(amount, SeqCst);
        }
    }

    /// Books a blocking/async outcome. `ExceedsCapacity` is legal for a normal
    /// request only when `forget` shrank the capacity below it.
    fn acquired<'a>(
        self: &Arc<Self>,
        r: Result<Held<'a>, AcquireError>,
        a: [u64; 2],
    ) -> Option<Tracked<'a>> {
        match r {
            Ok(h) => {
                assert_eq!(h.amounts(), a);
                Some(Tracked::new(self, h))
            }
            Err(AcquireError::Timeout) => {
                self.books.timed_out.fetch_add(1, Relaxed);
                None
            }
            Err(AcquireError::Closed) => {
                self.books.closed_out.fetch_add(1, Relaxed);
                None
            }
            Err(AcquireError::ExceedsCapacity { dim, requested, .. }) => {
                assert_eq!(requested, a[dim]);
                // Capacities never go below MAX_REQ (see the forget in `worker`).
                assert!(
                    a[0] > HI[0],
                    "ExceedsCapacity for {a:?}, within every capacity"
                );
                self.books.exceeded.fetch_add(1, Relaxed);
                None
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }

    fn tried<'a>(
        self: &Arc<Self>,
        r: Result<Held<'a>, TryAcquireError>,
        a: [u64; 2],
    ) -> Option<Tracked<'a>> {
        match r {
            Ok(h) => {
                assert_eq!(h.amounts(), a);
                Some(Tracked::new(self, h))
            }
            Err(TryAcquireError::Closed) => {
                self.books.try_closed.fetch_add(1, Relaxed);
                None
            }
            Err(TryAcquireError::Insufficient { .. } | TryAcquireError::ExceedsCapacity { .. }) => {
                self.books.refused.fetch_add(1, Relaxed);
                None
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
}

enum Held<'a> {
    Borrowed(Permit<'a, 2>),
    Owned(OwnedPermit<2>),
}

impl<'a> Held<'a> {
    fn amounts(&self) -> [u64; 2] {
        match self {
            Held::Borrowed(p) => p.amounts(),
            Held::Owned(p) => p.amounts(),
        }
    }
    fn split(&mut self, a: [u64; 2]) -> Option<Held<'a>> {
        match self {
            Held::Borrowed(p) => p.split(a).map(Held::Borrowed),
            Held::Owned(p) => p.split(a).map(Held::Owned),
        }
    }
    fn merge(&mut self, other: Held<'a>) {
        match (self, other) {
            (Held::Borrowed(p), Held::Borrowed(q)) => p.merge(q),
            (Held::Owned(p), Held::Owned(q)) => p.merge(q),
            _ => unreachable!("split keeps the kind"),
        }
    }
    fn forget(self) {
        match self {
            Held::Borrowed(p) => p.forget(),
            Held::Owned(p) => p.forget(),
        }
    }
}

/// A permit whose amounts are on the books while it lives (also when it is
/// dropped by unwinding).
struct Tracked<'a> {
    held: Option<Held<'a>>,
    ctx: Arc<Ctx>,
}

impl<'a> Tracked<'a> {
    fn new(ctx: &Arc<Ctx>, held: Held<'a>) -> Self {
        ctx.took(held.amounts());
        Tracked {
            held: Some(held),
            ctx: Arc::clone(ctx),
        }
    }
    fn amounts(&self) -> [u64; 2] {
        self.held.as_ref().unwrap().amounts()
    }
    fn split(&mut self, a: [u64; 2]) -> Option<Tracked<'a>> {
        let part = self.held.as_mut().unwrap().split(a)?;
        Some(Tracked {
            held: Some(part),
            ctx: Arc::clone(&self.ctx),
        })
    }
    fn merge(&mut self, mut other: Tracked<'a>) {
        let h = other.held.take().unwrap();
        self.held.as_mut().unwrap().merge(h);
    }
    fn forget(mut self) {
        let h = self.held.take().unwrap();
        self.ctx.gave(h.amounts());
        self.ctx.books.forgets.fetch_add(1, Relaxed);
        h.forget();
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.held.take() {
            self.ctx.gave(h.amounts());
            drop(h);
        }
    }
}

/// Holds a permit for a short random while.
fn hold_briefly(rng: &mut Rng) {
    match rng.below(4) {
        0 => {}
        1 | 2 => thread::yield_now(),
        _ => thread::sleep(rng.micros(200)),
    }
}

/// A waker that unparks its thread and calls back into the semaphore in
/// `wake` and in `Drop` (tokio #5429 class).
struct ReentrantWaker {
    ctx: Arc<Ctx>,
    thread: Thread,
    wakes: AtomicUsize,
}

impl ReentrantWaker {
    fn poke(&self) {
        let sem = &self.ctx.sem;
        let r = sem.try_acquire([0, 1]).map(Held::Borrowed);
        // Booked like any try (it counts in stats), then dropped at once.
        drop(self.ctx.tried(r, [0, 1]));
        sem.add_permits([0, 0]).unwrap();
        let _ = (sem.available(), sem.waiters(), sem.stats());
        self.ctx.books.reentries.fetch_add(1, Relaxed);
    }
}

impl Wake for ReentrantWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
        self.poke();
        self.thread.unpark();
    }
}

impl Drop for ReentrantWaker {
    fn drop(&mut self) {
        self.poke();
    }
}

/// Polls `fut` up to `polls` times with a re-entrant waker, parking a random
/// while in between; drops it (cancels) if it is still pending.
fn drive_or_cancel<'a>(
    ctx: &Arc<Ctx>,
    rng: &mut Rng,
    mut fut: Pin<Box<dyn Future<Output = Result<Held<'a>, AcquireError>> + 'a>>,
    a: [u64; 2],
) -> Option<Tracked<'a>> {
    let waker = Waker::from(Arc::new(ReentrantWaker {
        ctx: Arc::clone(ctx),
        thread: thread::current(),
        wakes: AtomicUsize::new(0),
    }));
    let polls = 1 + rng.below(4);
    for _ in 0..polls {
        if let Poll::Ready(r) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            return ctx.acquired(r, a);
        }
        thread::park_timeout(rng.micros(1000));
    }
    ctx.books.cancelled.fetch_add(1, Relaxed);
    drop(fut);
    None
}

type Completer = Sender<Tracked<'static>>;

fn worker(ctx: Arc<Ctx>, seed: u64, completers: Vec<Completer>) {
    let mut rng = Rng::new(seed);
    let sem = Arc::clone(&ctx.sem);
    let send = |rng: &mut Rng, t: Tracked<'static>| {
        let i = rng.below(completers.len() as u64) as usize;
        // A completer that is gone (end of run) just means we drop it here.
        let _ = completers[i].send(t);
    };
    while !ctx.done() {
        ctx.books.ops.fetch_add(1, Relaxed);
        let mut a = draw_amounts(&mut rng);
        let oversized = rng.chance(200);
        if oversized {
            a = [HI[0] + 1, 1];
        }
        let wait = rng.micros(2000);
        let got: Option<Tracked<'_>> = match rng.below(13) {
            0 => ctx.tried(sem.try_acquire(a).map(Held::Borrowed), a),
            1 => {
                if let Some(t) = ctx.tried(sem.try_acquire_owned(a).map(Held::Owned), a) {
                    send(&mut rng, t);
                }
                None
            }
            2 => ctx.acquired(sem.acquire_blocking(a).map(Held::Borrowed), a),
            3 => ctx.acquired(sem.acquire_blocking_timeout(a, wait).map(Held::Borrowed), a),
            4 => {
                // A quarter of the deadlines are already past: one try.
                let deadline = if rng.chance(4) {
                    Instant::now()
                } else {
                    Instant::now() + wait
                };
                ctx.acquired(
                    sem.acquire_blocking_deadline(a, deadline)
                        .map(Held::Borrowed),
                    a,
                )
            }
            5 => {
                // Owned permit moved to a completer thread that drops it.
                if let Some(t) = ctx.acquired(
                    sem.acquire_owned_blocking_timeout(a, wait).map(Held::Owned),
                    a,
                ) {
                    send(&mut rng, t);
                }
                None
            }
            6 => ctx.acquired(
                sem.acquire_owned_blocking_deadline(a, Instant::now() + wait)
                    .map(Held::Owned),
                a,
            ),
            7 => {
                let f = sem.acquire(a);
                drive_or_cancel(
                    &ctx,
                    &mut rng,
                    Box::pin(async move { f.await.map(Held::Borrowed) }),
                    a,
                )
            }
            8 => {
                let f = sem.acquire_owned(a);
                drive_or_cancel(
                    &ctx,
                    &mut rng,
                    Box::pin(async move { f.await.map(Held::Owned) }),
                    a,
                )
            }
            9 => ctx.acquired(
                futures_executor::block_on(sem.acquire_owned(a)).map(Held::Owned),
                a,
            ),
            10 => {
                // Panic while holding: unwinding must return the permit.
                let r = panic::catch_unwind(AssertUnwindSafe(|| {
                    if let Some(t) =
                        ctx.acquired(sem.acquire_blocking_timeout(a, wait).map(Held::Borrowed), a)
                    {
                        let _keep = t;
                        panic::panic_any(PANIC_MARKER);
                    }
                }));
                if let Err(payload) = r {
                    // Only the deliberate one: a failed check inside
                    // `acquired` is a failure, not this step's panic.
                    if payload.downcast_ref::<&str>() != Some(&PANIC_MARKER) {
                        panic::resume_unwind(payload);
                    }
                    ctx.books.panics.fetch_add(1, Relaxed);
                }
                None
            }
            11 => {
                // Split, then merge back, drop apart, or (rarely) forget a part.
                let two = [a[0].max(2), a[1].max(2)];
                match ctx.acquired(
                    sem.acquire_owned_blocking_timeout(two, wait)
                        .map(Held::Owned),
                    two,
                ) {
                    Some(mut t) => {
                        let part = [1 + rng.below(two[0] - 1), 1 + rng.below(two[1] - 1)];
                        let mut p = t.split(part).expect("split within what is held");
                        assert_eq!(p.amounts(), part);
                        assert_eq!(t.amounts(), [two[0] - part[0], two[1] - part[1]]);
                        assert!(p.split([two[0], 0]).is_none(), "split more than held");
                        ctx.books.splits.fetch_add(1, Relaxed);
                        match rng.below(8) {
                            0 => {
                                // Forget only where the capacity stays at or above
                                // every normal request (serialized with resizes):
                                // then ExceedsCapacity comes only from oversized
                                // requests, and every outcome is accounted for.
                                let _g = ctx.lock_capacity();
                                let cap = sem.capacity();
                                if cap[0] >= MAX_REQ[0] + part[0] && cap[1] >= MAX_REQ[1] + part[1]
                                {
                                    p.forget();
                                    let now = sem.capacity();
                                    assert!(
                                        now[0] >= cap[0] - part[0] && now[1] >= cap[1] - part[1]
                                    );
                                    assert!(now[0] <= cap[0] && now[1] <= cap[1]);
                                } else {
                                    drop(p);
                                }
                            }
                            1..=3 => {
                                t.merge(p);
                                assert_eq!(t.amounts(), two);
                            }
                            _ => send(&mut rng, p),
                        }
                        Some(t)
                    }
                    None => None,
                }
            }
            _ => ctx.acquired(
                futures_executor::block_on(sem.acquire(a)).map(Held::Borrowed),
                a,
            ),
        };
        if oversized {
            assert!(got.is_none(), "a request above every capacity was granted");
        }
        if got.is_some() {
            hold_briefly(&mut rng);
        }
        drop(got);
    }
}

fn completer(ctx: Arc<Ctx>, rx: Receiver<Tracked<'static>>, seed: u64) {
    let mut rng = Rng::new(seed);
    while let Ok(t) = rx.recv_timeout(JOIN_LIMIT) {
        if !ctx.done() {
            hold_briefly(&mut rng);
        }
        drop(t);
    }
}

fn resizer(ctx: Arc<Ctx>, seed: u64) {
    let mut rng = Rng::new(seed);
    let sem = &ctx.sem;
    while !ctx.done() {
        thread::sleep(rng.micros(2000));
        let _g = ctx.lock_capacity();
        let r = if rng.chance(2) {
            let cap = [
                LO[0] + rng.below(HI[0] - LO[0] + 1),
                LO[1] + rng.below(HI[1] - LO[1] + 1),
            ];
            let r = sem.set_capacity(cap);
            assert_eq!(sem.capacity(), cap, "capacity after set_capacity");
            r
        } else {
            let cap = sem.capacity();
            let add = [rng.below(HI[0] - cap[0] + 1), rng.below(HI[1] - cap[1] + 1)];
            let r = sem.add_permits(add);
            assert_eq!(
                sem.capacity(),
                [cap[0] + add[0], cap[1] + add[1]],
                "after add_permits"
            );
            r
        };
        r.expect("resize within the reserved room");
        ctx.books.resizes.fetch_add(1, Relaxed);
    }
}

fn checker(ctx: Arc<Ctx>) {
    while !ctx.done() {
        let avail = ctx.sem.available();
        let peak = ctx.sem.stats().peak_in_flight;
        for d in 0..2 {
            let held = ctx.books.in_use[d].load(SeqCst);
            assert!(held <= HI[d], "dimension {d}: {held} held");
            assert!(avail[d] <= HI[d], "dimension {d}: {} available", avail[d]);
            assert!(peak[d] <= HI[d], "dimension {d}: peak {}", peak[d]);
        }
        thread::sleep(Duration::from_millis(1));
    }
}

async fn tokio_task(ctx: Arc<Ctx>, seed: u64, completer: Completer) {
    let mut rng = Rng::new(seed);
    let sem = Arc::clone(&ctx.sem);
    while !ctx.done() {
        ctx.books.ops.fetch_add(1, Relaxed);
        let a = draw_amounts(&mut rng);
        let wait = rng.micros(3000);
        let r = if rng.chance(2) {
            tokio::time::timeout(wait, sem.acquire_owned(a))
                .await
                .map(|r| r.map(Held::Owned))
        } else {
            tokio::time::timeout(wait, sem.acquire(a))
                .await
                .map(|r| r.map(Held::Borrowed))
        };
        match r {
            Err(_elapsed) => {
                ctx.books.cancelled.fetch_add(1, Relaxed);
            }
            Ok(r) => {
                if let Some(mut t) = ctx.acquired(r, a) {
                    if matches!(t.held, Some(Held::Owned(_))) && rng.chance(2) {
                        // Re-wrap as 'static (same books) and hand it to a completer thread.
                        let Some(Held::Owned(p)) = t.held.take() else {
                            unreachable!()
                        };
                        let moved = Tracked {
                            held: Some(Held::Owned(p)),
                            ctx: Arc::clone(&ctx),
                        };
                        let _ = completer.send(moved);
                    } else {
                        tokio::time::sleep(rng.micros(300)).await;
                        drop(t);
                    }
                }
            }
        }
    }
}

struct Bg {
    name: String,
    rx: Receiver<thread::Result<()>>,
    handle: JoinHandle<()>,
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Bg {
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(f)));
        })
        .unwrap();
    Bg { name, rx, handle }
}

impl Bg {
    fn join(self) {
        match self.rx.recv_timeout(JOIN_LIMIT) {
            Ok(Ok(())) => self.handle.join().unwrap(),
            Ok(Err(p)) => {
                eprintln!("soak: thread {} panicked", self.name);
                panic::resume_unwind(p)
            }
            Err(_) => panic!(
                "soak: thread {} did not finish within {JOIN_LIMIT:?} (stuck waiter?)",
                self.name
            ),
        }
    }
}

/// Runs the load for `secs` against `sem`; `close_at_end` ends it with
/// `close()` under load instead of stopping the load first.
fn run(layout: &str, sem: Sem, secs: f64, close_at_end: bool) {
    let ctx = Arc::new(Ctx {
        sem: Arc::new(sem),
        stop: AtomicBool::new(false),
        books: Books::default(),
        capacity_lock: Mutex::new(()),
    });
    let mut threads = Vec::new();
    let mut completer_txs = Vec::new();
    for i in 0..2 {
        let (tx, rx) = mpsc::channel();
        completer_txs.push(tx);
        let c = Arc::clone(&ctx);
        threads.push(spawn(format!("completer-{i}"), move || {
            completer(c, rx, 900 + i)
        }));
    }
    for i in 0..WORKERS as u64 {
        let (c, txs) = (Arc::clone(&ctx), completer_txs.clone());
        threads.push(spawn(format!("worker-{i}"), move || worker(c, 1 + i, txs)));
    }
    let c = Arc::clone(&ctx);
    let resizer_t = spawn("resizer".into(), move || resizer(c, 77));
    let c = Arc::clone(&ctx);
    let checker_t = spawn("checker".into(), move || checker(c));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..TASKS as u64)
        .map(|i| {
            rt.spawn(tokio_task(
                Arc::clone(&ctx),
                500 + i,
                completer_txs[(i % 2) as usize].clone(),
            ))
        })
        .collect();
    drop(completer_txs);

    let start = Instant::now();
    thread::sleep(Duration::from_secs_f64(secs));
    if close_at_end {
        // Close under load: every queued and later acquire fails with Closed.
        ctx.sem.close();
        ctx.stop.store(true, SeqCst);
        resizer_t.join();
    } else {
        ctx.stop.store(true, SeqCst);
        resizer_t.join();
        // Untimed acquires still queued are served once the load stops.
        ctx.sem.set_capacity(CAP0).unwrap();
    }
    rt.block_on(async {
        for t in tasks {
            tokio::time::timeout(JOIN_LIMIT, t)
                .await
                .expect("soak: tokio task stuck")
                .expect("soak: tokio task panicked");
        }
    });
    drop(rt);
    for t in threads {
        t.join();
    }
    checker_t.join();
    let elapsed = start.elapsed().as_secs_f64();

    // Exact accounting.
    let sem = &ctx.sem;
    let b = &ctx.books;
    assert_eq!(b.in_use[0].load(SeqCst), 0);
    assert_eq!(b.in_use[1].load(SeqCst), 0);
    assert_eq!(sem.waiters(), 0, "{layout}: waiters left");
    assert_eq!(sem.available(), sem.capacity(), "{layout}: permits leaked");
    let _g = ctx.lock_capacity();
    sem.set_capacity(CAP0).unwrap();
    assert_eq!(sem.capacity(), CAP0, "{layout}");
    assert_eq!(sem.available(), CAP0, "{layout}: permits leaked");
    assert_eq!(sem.is_closed(), close_at_end);

    assert_every_wait_ended(sem, layout);
    let s = sem.stats();
    let load = |x: &AtomicU64| x.load(SeqCst);
    assert_eq!(s.acquired, load(&b.ok), "{layout}: acquired; {s:?}");
    assert_eq!(
        s.timed_out,
        load(&b.timed_out),
        "{layout}: timed_out; {s:?}"
    );
    // Futures we dropped after a `Pending` poll are `cancelled` in our books.
    // One that close() had already ended (its Closed not yet delivered) may be
    // counted by the library as closed out, or not at all (see tests/waiting.rs
    // `stats_count_a_future_closed_out_then_dropped_unpolled`): at most one per
    // worker and task, and only in the run that closes under load. Without
    // close the counts must match exactly.
    let undelivered = load(&b.cancelled)
        .checked_sub(s.cancelled)
        .unwrap_or_else(|| panic!("{layout}: more cancellations counted than happened; {s:?}"));
    let slack = if close_at_end {
        (WORKERS + TASKS) as u64
    } else {
        0
    };
    assert!(
        undelivered <= slack,
        "{layout}: cancelled {} vs {} dropped futures; {s:?}",
        s.cancelled,
        load(&b.cancelled)
    );
    // Whether a try_acquire that returned Closed counts as closed out is not
    // pinned down; every blocking/async one that returned Closed must.
    let closed = load(&b.closed_out);
    assert!(
        (closed..=closed + load(&b.try_closed) + undelivered).contains(&s.closed_out),
        "{layout}: closed_out {} vs {closed} (+{} tries, +{undelivered} undelivered); {s:?}",
        s.closed_out,
        load(&b.try_closed)
    );
    assert_eq!(
        s.refused.iter().sum::<u64>(),
        load(&b.refused),
        "{layout}: refused; {s:?}"
    );
    for (d, (&peak, max_held)) in s.peak_in_flight.iter().zip(&b.max_in_use).enumerate() {
        assert!(peak <= HI[d], "{layout}: {s:?}");
        assert!(
            peak >= load(max_held),
            "{layout}: peak below what callers held; {s:?}"
        );
    }
    if close_at_end {
        assert_eq!(
            sem.acquire_blocking_timeout([1, 1], Duration::from_secs(1))
                .err(),
            Some(AcquireError::Closed)
        );
    } else {
        let all = sem
            .acquire_blocking_timeout(CAP0, Duration::from_secs(1))
            .expect("full capacity");
        drop(all);
    }

    let ops = load(&b.ops);
    println!(
        "soak {layout}: {:.1} s, {ops} ops ({:.0} ops/s); acquired {}, timed out {}, cancelled {}, \
         closed out {}, refused {}, exceeded {}, panics {}, splits {}, forgets {}, resizes {}, \
         waker re-entries {}; peak in flight {:?}; dropped after close {}",
        elapsed,
        ops as f64 / elapsed,
        s.acquired,
        s.timed_out,
        s.cancelled,
        s.closed_out,
        load(&b.refused),
        load(&b.exceeded),
        load(&b.panics),
        load(&b.splits),
        load(&b.forgets),
        load(&b.resizes),
        load(&b.reentries),
        s.peak_in_flight,
        undelivered,
    );
    if secs >= 1.0 {
        assert!(
            load(&b.ok) > 0
                && load(&b.timed_out) > 0
                && load(&b.cancelled) > 0
                && load(&b.panics) > 0,
            "{layout}: load too light to exercise every path"
        );
    }
}

#[test]
#[ignore = "soak test: SOAK_SECONDS=N cargo test --release --test soak -- --ignored --nocapture"]
fn soak() {
    let secs: f64 = match std::env::var("SOAK_SECONDS") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("SOAK_SECONDS={v:?} is not a number")),
        Err(_) => 10.0,
    };
    // Silence only the deliberate panics.
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&PANIC_MARKER) {
            default_hook(info);
        }
    }));

    run(
        "packed",
        Sem::builder(CAP0).max_capacity(HI).build(),
        secs / 2.0,
        false,
    );
    // The tiered layout, with front fields far smaller than the capacities,
    // so that permits keep crossing between the front word and the reserve.
    run(
        "tiered",
        Sem::builder(CAP0)
            .max_capacity([Sem::MAX_PERMITS; 2])
            .front_bits([2, 10])
            .build(),
        secs / 2.0,
        true,
    );
}
