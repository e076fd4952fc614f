//! Concurrent property test: proptest generates one operation list per thread
//! (2 to 4 threads), the lists run on real threads against one semaphore, and
//! at quiescence the books must balance exactly:
//!
//! - `available() == capacity()` and `waiters() == 0`;
//! - without `set_capacity`, `capacity()` is the initial capacity plus what
//!   `add_permits` added minus what was forgotten;
//! - the statistics match what the threads saw (acquired, refused by
//!   dimension, timed out, closed out; cancelled at most the futures dropped
//!   unfinished);
//! - the semaphore is still usable.
//!
//! Permits also grow (`try_grow`, counted as acquires and refusals like
//! `try_acquire`) and give part back (`release`) while the others run.
//!
//! During the run a checker thread samples a shared in-flight counter (raised
//! after each acquire, lowered before each release) and `available()` /
//! `capacity()`: none may pass the largest capacity the case can reach.

// Per-dimension loops index several arrays at once; an index reads best.
#![allow(clippy::needless_range_loop)]

use std::array::from_fn;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::task::{Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use multisem::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

mod common;
use common::{Layout, assert_every_wait_ended, poll_once};

#[derive(Clone, Debug)]
enum TOp<const N: usize> {
    Try {
        amounts: [u64; N],
        owned: bool,
    },
    Timeout {
        amounts: [u64; N],
        ms: u64,
        owned: bool,
    },
    Deadline {
        amounts: [u64; N],
        ms: u64,
    },
    /// `futures_executor::block_on` racing a timeout; the loser is dropped.
    Async {
        amounts: [u64; N],
        ms: u64,
        owned: bool,
    },
    /// Polled once, then dropped.
    AsyncCancel {
        amounts: [u64; N],
    },
    Drop(usize),
    Split(usize, [u64; N]),
    Merge(usize, usize),
    Forget(usize),
    /// `try_grow` of permit k.
    Grow(usize, [u64; N]),
    /// `release` of part of permit k.
    Release(usize, [u64; N]),
    AddPermits([u64; N]),
    SetCapacity([u64; N]),
    Close,
}

fn arr<const N: usize>(s: impl Strategy<Value = u64>) -> impl Strategy<Value = [u64; N]> {
    vec(s, N).prop_map(|v| <[u64; N]>::try_from(v).unwrap())
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![2 => Just(0u64), 6 => 1..=3u64, 1 => 9..=12u64]
}

fn top<const N: usize>() -> impl Strategy<Value = TOp<N>> {
    let ms = 0..=2u64;
    prop_oneof![
        12 => (arr(amount()), any::<bool>()).prop_map(|(amounts, owned)| TOp::Try { amounts, owned }),
        8 => (arr(amount()), ms.clone(), any::<bool>())
            .prop_map(|(amounts, ms, owned)| TOp::Timeout { amounts, ms, owned }),
        4 => (arr(amount()), ms.clone()).prop_map(|(amounts, ms)| TOp::Deadline { amounts, ms }),
        6 => (arr(amount()), ms, any::<bool>())
            .prop_map(|(amounts, ms, owned)| TOp::Async { amounts, ms, owned }),
        4 => arr(amount()).prop_map(|amounts| TOp::AsyncCancel { amounts }),
        12 => (0..16usize).prop_map(TOp::Drop),
        4 => (0..16usize, arr(0..=2u64)).prop_map(|(k, a)| TOp::Split(k, a)),
        4 => (0..16usize, 0..16usize).prop_map(|(j, k)| TOp::Merge(j, k)),
        2 => (0..16usize).prop_map(TOp::Forget),
        4 => (0..16usize, arr(amount())).prop_map(|(k, a)| TOp::Grow(k, a)),
        4 => (0..16usize, arr(0..=2u64)).prop_map(|(k, a)| TOp::Release(k, a)),
        2 => arr(0..=3u64).prop_map(TOp::AddPermits),
        2 => arr(0..=10u64).prop_map(TOp::SetCapacity),
        1 => Just(TOp::Close),
    ]
}

fn case<const N: usize>() -> impl Strategy<Value = ([u64; N], bool, Vec<Vec<TOp<N>>>)> {
    (
        arr(1..=8u64),
        any::<bool>(),
        vec(vec(top::<N>(), 1..24), 2..=4),
    )
}

enum Held<'a, const N: usize> {
    B(Permit<'a, N>),
    O(OwnedPermit<N>),
}

impl<const N: usize> Held<'_, N> {
    fn amounts(&self) -> [u64; N] {
        match self {
            Held::B(p) => p.amounts(),
            Held::O(p) => p.amounts(),
        }
    }
}

/// What one thread saw.
#[derive(Debug)]
struct Tally<const N: usize> {
    acquired: u64,
    refused: [u64; N],
    timed_out: u64,
    closed_out: u64,
    /// Async acquires dropped before they finished (each may count as cancelled).
    dropped_unfinished: u64,
    added: [u64; N],
    forgotten: [u64; N],
    largest: [u64; N],
}

impl<const N: usize> Default for Tally<N> {
    fn default() -> Self {
        Tally {
            acquired: 0,
            refused: [0; N],
            timed_out: 0,
            closed_out: 0,
            dropped_unfinished: 0,
            added: [0; N],
            forgotten: [0; N],
            largest: [0; N],
        }
    }
}

struct Shared<const N: usize> {
    in_flight: [AtomicU64; N],
}

fn block_on_timeout<F: Future>(fut: F, timeout: Duration) -> Option<F::Output> {
    let deadline = Instant::now() + timeout;
    let slot: Arc<(Mutex<Option<Waker>>, AtomicBool)> =
        Arc::new((Mutex::new(None), AtomicBool::new(false)));
    let timer = Arc::clone(&slot);
    thread::spawn(move || {
        let now = Instant::now();
        if deadline > now {
            thread::sleep(deadline - now);
        }
        // Keep waking until the race is decided.
        while !timer.1.load(Ordering::SeqCst) {
            if let Some(w) = timer.0.lock().unwrap().take() {
                w.wake();
            }
            thread::sleep(Duration::from_millis(1));
        }
    });
    let mut fut = pin!(fut);
    let out = futures_executor::block_on(std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if Instant::now() >= deadline {
            return Poll::Ready(None);
        }
        *slot.0.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }));
    slot.1.store(true, Ordering::SeqCst);
    out
}

/// Records an acquire result; returns the permit when there is one.
fn record_try<'a, const N: usize>(
    t: &mut Tally<N>,
    sh: &Shared<N>,
    a: [u64; N],
    r: Result<Held<'a, N>, TryAcquireError>,
) -> Result<Option<Held<'a, N>>, String> {
    match r {
        Ok(h) => {
            got(t, sh, a, &h)?;
            Ok(Some(h))
        }
        Err(TryAcquireError::Insufficient {
            dim,
            requested,
            available,
            queued_ahead,
            ..
        }) => {
            // Refused behind a queue, the request may fit what is available;
            // otherwise the named dimension really was short.
            let truthful = queued_ahead || available < requested;
            if dim >= N || requested != a[dim] || !truthful {
                return Err(format!(
                    "bad Insufficient for {a:?}: dim {dim} requested {requested} available {available}"
                ));
            }
            t.refused[dim] += 1;
            Ok(None)
        }
        Err(TryAcquireError::ExceedsCapacity { dim, requested, .. }) => {
            if dim >= N || requested != a[dim] {
                return Err(format!("bad ExceedsCapacity for {a:?}: dim {dim}"));
            }
            t.refused[dim] += 1;
            Ok(None)
        }
        Err(TryAcquireError::Closed) => {
            t.closed_out += 1;
            Ok(None)
        }
        Err(e) => Err(format!("unknown error {e:?}")),
    }
}

fn record_acquire<'a, const N: usize>(
    t: &mut Tally<N>,
    sh: &Shared<N>,
    a: [u64; N],
    r: Result<Held<'a, N>, AcquireError>,
) -> Result<Option<Held<'a, N>>, String> {
    match r {
        Ok(h) => {
            got(t, sh, a, &h)?;
            Ok(Some(h))
        }
        Err(AcquireError::Timeout) => {
            t.timed_out += 1;
            Ok(None)
        }
        Err(AcquireError::Closed) => {
            t.closed_out += 1;
            Ok(None)
        }
        Err(AcquireError::ExceedsCapacity { dim, requested, .. }) => {
            if dim >= N || requested != a[dim] {
                return Err(format!("bad ExceedsCapacity for {a:?}: dim {dim}"));
            }
            Ok(None)
        }
        Err(e) => Err(format!("unknown error {e:?}")),
    }
}

fn got<const N: usize>(
    t: &mut Tally<N>,
    sh: &Shared<N>,
    a: [u64; N],
    h: &Held<'_, N>,
) -> Result<(), String> {
    if h.amounts() != a {
        return Err(format!("asked {a:?}, permit holds {:?}", h.amounts()));
    }
    t.acquired += 1;
    for d in 0..N {
        sh.in_flight[d].fetch_add(a[d], Ordering::SeqCst);
        t.largest[d] = t.largest[d].max(a[d]);
    }
    Ok(())
}

fn lower<const N: usize>(sh: &Shared<N>, a: [u64; N]) {
    for d in 0..N {
        sh.in_flight[d].fetch_sub(a[d], Ordering::SeqCst);
    }
}

fn run_thread<'a, const N: usize>(
    sem: &'a Arc<MultiSemaphore<N>>,
    sh: &Shared<N>,
    ops: &[TOp<N>],
) -> Result<Tally<N>, String> {
    let mut t = Tally::default();
    let mut held: Vec<Held<'a, N>> = Vec::new();
    for op in ops {
        match *op {
            TOp::Try { amounts, owned } => {
                let r = if owned {
                    sem.try_acquire_owned(amounts).map(Held::O)
                } else {
                    sem.try_acquire(amounts).map(Held::B)
                };
                held.extend(record_try(&mut t, sh, amounts, r)?);
            }
            TOp::Timeout { amounts, ms, owned } => {
                let d = Duration::from_millis(ms);
                let start = Instant::now();
                let r = if owned {
                    sem.acquire_owned_blocking_timeout(amounts, d).map(Held::O)
                } else {
                    sem.acquire_blocking_timeout(amounts, d).map(Held::B)
                };
                if matches!(r, Err(AcquireError::Timeout)) && start.elapsed() < d {
                    return Err(format!(
                        "acquire_blocking_timeout({amounts:?}, {d:?}) returned Timeout after {:?}",
                        start.elapsed()
                    ));
                }
                held.extend(record_acquire(&mut t, sh, amounts, r)?);
            }
            TOp::Deadline { amounts, ms } => {
                let deadline = Instant::now() + Duration::from_millis(ms);
                let r = sem
                    .acquire_blocking_deadline(amounts, deadline)
                    .map(Held::B);
                if matches!(r, Err(AcquireError::Timeout)) && Instant::now() < deadline {
                    return Err(
                        "acquire_blocking_deadline returned Timeout before its deadline".into(),
                    );
                }
                held.extend(record_acquire(&mut t, sh, amounts, r)?);
            }
            TOp::Async { amounts, ms, owned } => {
                let d = Duration::from_millis(ms);
                let r = if owned {
                    block_on_timeout(sem.acquire_owned(amounts), d).map(|r| r.map(Held::O))
                } else {
                    block_on_timeout(sem.acquire(amounts), d).map(|r| r.map(Held::B))
                };
                match r {
                    Some(r) => held.extend(record_acquire(&mut t, sh, amounts, r)?),
                    None => t.dropped_unfinished += 1,
                }
            }
            TOp::AsyncCancel { amounts } => {
                let mut f = Box::pin(sem.acquire(amounts));
                match poll_once(f.as_mut()) {
                    Poll::Ready(r) => {
                        held.extend(record_acquire(&mut t, sh, amounts, r.map(Held::B))?)
                    }
                    Poll::Pending => {
                        drop(f);
                        t.dropped_unfinished += 1;
                    }
                }
            }
            TOp::Drop(k) => {
                if !held.is_empty() {
                    let h = held.swap_remove(k % held.len());
                    lower(sh, h.amounts());
                    drop(h);
                }
            }
            TOp::Split(k, a) => {
                if !held.is_empty() {
                    let k = k % held.len();
                    let before = held[k].amounts();
                    let fits = (0..N).all(|d| a[d] <= before[d]);
                    let part = match &mut held[k] {
                        Held::B(p) => p.split(a).map(Held::B),
                        Held::O(p) => p.split(a).map(Held::O),
                    };
                    match part {
                        Some(p) if fits => {
                            if p.amounts() != a
                                || held[k].amounts() != from_fn(|d| before[d] - a[d])
                            {
                                return Err(format!("split({a:?}) of {before:?} miscounted"));
                            }
                            held.push(p);
                        }
                        None if !fits => {}
                        _ => return Err(format!("split({a:?}) of {before:?}: wrong outcome")),
                    }
                }
            }
            TOp::Merge(j, k) => {
                if held.len() >= 2 {
                    let (j, k) = (j % held.len(), k % held.len());
                    let same = matches!(
                        (&held[j], &held[k]),
                        (Held::B(_), Held::B(_)) | (Held::O(_), Held::O(_))
                    );
                    if j != k && same {
                        let sum: [u64; N] =
                            from_fn(|d| held[j].amounts()[d] + held[k].amounts()[d]);
                        let other = held.swap_remove(k);
                        let j = if j == held.len() { k } else { j };
                        match (&mut held[j], other) {
                            (Held::B(p), Held::B(q)) => p.merge(q),
                            (Held::O(p), Held::O(q)) => p.merge(q),
                            _ => unreachable!(),
                        }
                        if held[j].amounts() != sum {
                            return Err("merge miscounted".into());
                        }
                    }
                }
            }
            TOp::Grow(k, a) => {
                if !held.is_empty() {
                    let k = k % held.len();
                    let before = held[k].amounts();
                    let r = match &mut held[k] {
                        Held::B(p) => p.try_grow(a),
                        Held::O(p) => p.try_grow(a),
                    };
                    let after = held[k].amounts();
                    match r {
                        Ok(()) if after == from_fn(|d| before[d] + a[d]) => {
                            t.acquired += 1;
                            for d in 0..N {
                                sh.in_flight[d].fetch_add(a[d], Ordering::SeqCst);
                                t.largest[d] = t.largest[d].max(after[d]);
                            }
                        }
                        // Refused for its size: the error names what the
                        // permit would hold, above the capacity.
                        Err(TryAcquireError::ExceedsCapacity {
                            dim,
                            requested,
                            capacity,
                            ..
                        }) if after == before => {
                            let would_hold = before[dim].saturating_add(a[dim]);
                            if a[dim] == 0 || requested != would_hold || capacity >= requested {
                                return Err(format!(
                                    "bad ExceedsCapacity for grow({a:?}) of {before:?}: dim {dim} requested {requested} capacity {capacity}"
                                ));
                            }
                            t.refused[dim] += 1;
                        }
                        Err(e) if after == before => {
                            record_try::<N>(&mut t, sh, a, Err(e))?;
                        }
                        r => {
                            return Err(format!(
                                "grow({a:?}) of {before:?} gave {r:?}, holding {after:?}"
                            ));
                        }
                    }
                }
            }
            TOp::Release(k, a) => {
                if !held.is_empty() {
                    let k = k % held.len();
                    let before = held[k].amounts();
                    let fits = (0..N).all(|d| a[d] <= before[d]);
                    if fits {
                        // Lowered before the permits go back, as for a drop.
                        lower(sh, a);
                    }
                    let r = match &mut held[k] {
                        Held::B(p) => p.release(a),
                        Held::O(p) => p.release(a),
                    };
                    let after = held[k].amounts();
                    match r {
                        Ok(()) if fits && after == from_fn(|d| before[d] - a[d]) => {}
                        Err(ReleaseError::ExceedsHeld { .. }) if !fits && after == before => {}
                        r => {
                            return Err(format!(
                                "release({a:?}) of {before:?} gave {r:?}, holding {after:?}"
                            ));
                        }
                    }
                }
            }
            TOp::Forget(k) => {
                if !held.is_empty() {
                    let h = held.swap_remove(k % held.len());
                    let a = h.amounts();
                    lower(sh, a);
                    match h {
                        Held::B(p) => p.forget(),
                        Held::O(p) => p.forget(),
                    }
                    for d in 0..N {
                        t.forgotten[d] += a[d];
                    }
                }
            }
            TOp::AddPermits(a) => match sem.add_permits(a) {
                Ok(()) => {
                    for d in 0..N {
                        t.added[d] += a[d];
                    }
                }
                Err(e) => return Err(format!("add_permits({a:?}) failed: {e:?}")),
            },
            TOp::SetCapacity(c) => {
                if let Err(e) = sem.set_capacity(c) {
                    return Err(format!("set_capacity({c:?}) failed: {e:?}"));
                }
            }
            TOp::Close => sem.close(),
        }
    }
    for h in held.drain(..) {
        lower(sh, h.amounts());
        drop(h);
    }
    Ok(t)
}

fn make<const N: usize>(layout: Layout, cap: [u64; N], track_peaks: bool) -> MultiSemaphore<N> {
    layout.builder(cap).track_peaks(track_peaks).build()
}

fn run<const N: usize>(
    layout: Layout,
    cap: [u64; N],
    track_peaks: bool,
    threads: Vec<Vec<TOp<N>>>,
) -> Result<(), TestCaseError> {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(Duration::from_secs(60))
        {
            eprintln!("watchdog: a concurrent case still running after 60 s; aborting");
            std::process::abort();
        }
    });

    let sem = Arc::new(make(layout, cap, track_peaks));
    let resized = threads
        .iter()
        .flatten()
        .any(|op| matches!(op, TOp::SetCapacity(_)));
    // The largest capacity this case can ever reach, per dimension.
    let bound: [u64; N] = from_fn(|d| {
        let set = threads
            .iter()
            .flatten()
            .filter_map(|op| match op {
                TOp::SetCapacity(c) => Some(c[d]),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let adds: u64 = threads
            .iter()
            .flatten()
            .map(|op| match op {
                TOp::AddPermits(a) => a[d],
                _ => 0,
            })
            .sum();
        cap[d].max(set) + adds
    });
    let shared = Shared {
        in_flight: from_fn(|_| AtomicU64::new(0)),
    };
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(threads.len());

    let (results, violations) = thread::scope(|s| {
        let checker = s.spawn(|| {
            let mut violations = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let av = sem.available();
                let c = sem.capacity();
                for d in 0..N {
                    let held = shared.in_flight[d].load(Ordering::SeqCst);
                    if held > bound[d] || av[d] > bound[d] || c[d] > bound[d] {
                        violations.push(format!(
                            "dim {d}: in flight {held}, available {}, capacity {}, bound {}",
                            av[d], c[d], bound[d]
                        ));
                    }
                }
                thread::yield_now();
            }
            violations
        });
        let workers: Vec<_> = threads
            .iter()
            .map(|ops| {
                let (sem, shared, barrier) = (&sem, &shared, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    run_thread(sem, shared, ops)
                })
            })
            .collect();
        let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        stop.store(true, Ordering::SeqCst);
        (results, checker.join().unwrap())
    });
    drop(done_tx);
    watchdog.join().unwrap();

    let mut tallies = Vec::new();
    for r in results {
        tallies.push(r.map_err(TestCaseError::fail)?);
    }
    prop_assert!(
        violations.is_empty(),
        "bound passed: {:?}",
        &violations[..violations.len().min(5)]
    );

    // Quiescence.
    prop_assert_eq!(sem.waiters(), 0);
    prop_assert_eq!(
        sem.available(),
        sem.capacity(),
        "permits leaked or counted twice"
    );
    for d in 0..N {
        prop_assert_eq!(shared.in_flight[d].load(Ordering::SeqCst), 0);
    }
    if !resized {
        let want: [u64; N] = from_fn(|d| {
            cap[d] + tallies.iter().map(|t| t.added[d]).sum::<u64>()
                - tallies.iter().map(|t| t.forgotten[d]).sum::<u64>()
        });
        prop_assert_eq!(sem.capacity(), want, "capacity after adds and forgets");
    }
    assert_every_wait_ended(&sem, "after the threads");
    let stats = sem.stats();
    let sum = |f: fn(&Tally<N>) -> u64| tallies.iter().map(f).sum::<u64>();
    prop_assert_eq!(stats.acquired, sum(|t| t.acquired), "acquired");
    let refused: [u64; N] = from_fn(|d| tallies.iter().map(|t| t.refused[d]).sum());
    prop_assert_eq!(stats.refused, refused, "refused");
    prop_assert_eq!(stats.timed_out, sum(|t| t.timed_out), "timed_out");
    // Every future dropped unfinished was queued (cancelled), granted and
    // dropped undelivered (cancelled), closed and dropped undelivered
    // (closed_out or cancelled), or, only where capacity shrank, failed with
    // ExceedsCapacity and dropped undelivered (counted nowhere).
    let seen_closed = sum(|t| t.closed_out);
    let dropped = sum(|t| t.dropped_unfinished);
    prop_assert!(
        stats.closed_out >= seen_closed,
        "closed_out {} below the {} Closed results seen",
        stats.closed_out,
        seen_closed
    );
    let shrinks = resized
        || threads
            .iter()
            .flatten()
            .any(|op| matches!(op, TOp::Forget(_)));
    let counted = stats.closed_out - seen_closed + stats.cancelled;
    if shrinks {
        prop_assert!(
            counted <= dropped,
            "closed_out {} + cancelled {} count more than the {} Closed seen and {} futures dropped",
            stats.closed_out,
            stats.cancelled,
            seen_closed,
            dropped
        );
    } else {
        prop_assert_eq!(
            counted,
            dropped,
            "each of the {} futures dropped unfinished counts once (closed_out {}, {} Closed \
             seen, cancelled {})",
            dropped,
            stats.closed_out,
            seen_closed,
            stats.cancelled
        );
    }
    for d in 0..N {
        let largest = tallies.iter().map(|t| t.largest[d]).max().unwrap_or(0);
        if track_peaks {
            prop_assert!(
                stats.peak_in_flight[d] >= largest && stats.peak_in_flight[d] <= bound[d],
                "peak {:?}, largest single permit {}, bound {:?}",
                stats.peak_in_flight,
                largest,
                bound
            );
        } else {
            prop_assert_eq!(stats.peak_in_flight[d], 0);
        }
    }
    // Still usable.
    if sem.is_closed() {
        prop_assert_eq!(
            sem.try_acquire([0; N]).unwrap_err(),
            TryAcquireError::Closed
        );
    } else {
        let c = sem.capacity();
        let all = sem.try_acquire(c);
        prop_assert!(
            all.is_ok(),
            "cannot take the whole capacity {:?}: {:?}",
            c,
            all.as_ref().err()
        );
        drop(all);
        prop_assert_eq!(sem.available(), c);
    }
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // Small by default so the suite runs in seconds; PROPTEST_CASES
        // raises it for a longer hunt.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(32),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/concurrent.txt",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn concurrent_n2_packed((cap, peaks, threads) in case::<2>()) {
        run(Layout::Packed, cap, peaks, threads)?;
    }

    #[test]
    fn concurrent_n2_per_dim((cap, peaks, threads) in case::<2>()) {
        run(Layout::PerDim, cap, peaks, threads)?;
    }

    #[test]
    fn concurrent_n2_reserve_only((cap, peaks, threads) in case::<2>()) {
        run(Layout::ReserveOnly, cap, peaks, threads)?;
    }

    #[test]
    fn concurrent_n3_packed((cap, peaks, threads) in case::<3>()) {
        run(Layout::Packed, cap, peaks, threads)?;
    }

    #[test]
    fn concurrent_n3_per_dim((cap, peaks, threads) in case::<3>()) {
        run(Layout::PerDim, cap, peaks, threads)?;
    }
}

/// A fixed heavy mix, so that every run exercises contention on the queue
/// whatever proptest draws: four threads, each looping over every kind of
/// acquire with short timeouts, on a semaphore that fits only a few at once.
#[test]
fn concurrent_fixed_mix() {
    for layout in Layout::ALL {
        let ops: Vec<TOp<2>> = (0..200)
            .map(|i| match i % 8 {
                0 => TOp::Try {
                    amounts: [1, 2],
                    owned: i % 16 == 0,
                },
                1 => TOp::Timeout {
                    amounts: [2, 1],
                    ms: 1,
                    owned: i % 16 == 1,
                },
                2 => TOp::Async {
                    amounts: [1, 3],
                    ms: 1,
                    owned: i % 16 == 2,
                },
                3 => TOp::AsyncCancel { amounts: [3, 1] },
                4 => TOp::Deadline {
                    amounts: [1, 1],
                    ms: 1,
                },
                5 => TOp::Split(i, [1, 0]),
                6 => TOp::Merge(i, i + 1),
                _ => TOp::Drop(i),
            })
            .collect();
        let threads = vec![ops.clone(), ops.clone(), ops.clone(), ops];
        if let Err(e) = run(layout, [4, 6], true, threads) {
            panic!("{layout:?}: {e}");
        }
    }
}
