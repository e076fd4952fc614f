//! Tests of the waiting half of `multisem`: `acquire_blocking`, `acquire_blocking_timeout`,
//! `acquire_blocking_deadline`, `acquire` and their owned twins.
//!
//! Every blocking step is bounded: timed acquires use seconds-long timeouts,
//! background threads are joined through a channel with a timeout, and each
//! test arms a watchdog that ends the process if the test itself gets stuck
//! (a lost wakeup must fail CI, never hang it).
//!
//! Most tests run against both internal layouts: the packed single-word one
//! (`MultiSemaphore::new` with small capacities) and the per-dimension one
//! (forced with `max_capacity([MAX_PERMITS; 2])`).

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Wake, Waker};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use futures_executor::block_on;
use multisem::{AcquireError, MultiSemaphore, OwnedPermit, Permit, TryAcquireError};

mod common;
use common::{Watchdog, counting_waker, layouts, poll_with, ready};

type Sem = MultiSemaphore<2>;
type Got = Result<[u64; 2], AcquireError>;

/// How long any single wait in a test may take before the test fails.
const LIMIT: Duration = Duration::from_secs(10);
/// Timeout given to timed acquires that are expected to succeed or be woken.
const LONG: Duration = Duration::from_secs(10);
/// How long a whole test may run before the watchdog ends the process.
const TEST_LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// Harness: watchdog, bounded background threads, hand-written executor.
// ---------------------------------------------------------------------------

/// A background thread whose result is collected with a timeout.
struct Bg<T> {
    rx: Receiver<thread::Result<T>>,
    handle: Option<JoinHandle<()>>,
}

fn bg<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Bg<T> {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let r = panic::catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    Bg {
        rx,
        handle: Some(handle),
    }
}

impl<T> Bg<T> {
    /// Waits at most `LIMIT` for the thread; re-raises its panic.
    #[track_caller]
    fn join(mut self) -> T {
        match self.rx.recv_timeout(LIMIT) {
            Ok(Ok(v)) => {
                if let Some(h) = self.handle.take() {
                    let _ = h.join();
                }
                v
            }
            Ok(Err(p)) => panic::resume_unwind(p),
            Err(_) => panic!("background thread did not finish within {LIMIT:?}"),
        }
    }

    fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }
}

/// Polls `cond` until it holds; fails the test after `LIMIT`.
#[track_caller]
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Drives `fut` on this thread until it completes or `limit` passes (then the
/// future is dropped, i.e. cancelled, and `None` is returned).
fn block_on_for<F: Future>(fut: F, limit: Duration) -> Option<F::Output> {
    let (_cw, waker) = counting_waker();
    let mut fut = std::pin::pin!(fut);
    let deadline = Instant::now() + limit;
    loop {
        if let Poll::Ready(v) = poll_with(fut.as_mut(), &waker) {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::park_timeout(deadline - now);
    }
}

// ---------------------------------------------------------------------------
// The semaphores and the eight waiting methods.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Acquire,
    Timeout,
    Deadline,
    Async,
    Owned,
    OwnedTimeout,
    OwnedDeadline,
    OwnedAsync,
}
use Method::*;

const METHODS: [Method; 8] = [
    Acquire,
    Timeout,
    Deadline,
    Async,
    Owned,
    OwnedTimeout,
    OwnedDeadline,
    OwnedAsync,
];
const TIMED: [Method; 4] = [Timeout, Deadline, OwnedTimeout, OwnedDeadline];

enum Held<'a> {
    Borrowed(Permit<'a, 2>),
    Owned(OwnedPermit<2>),
}

impl Held<'_> {
    fn amounts(&self) -> [u64; 2] {
        match self {
            Held::Borrowed(p) => p.amounts(),
            Held::Owned(p) => p.amounts(),
        }
    }
}

/// Acquires with method `m`; timed methods get `LONG`.
fn take(sem: &Arc<Sem>, m: Method, amounts: [u64; 2]) -> Result<Held<'_>, AcquireError> {
    match m {
        Acquire => sem.acquire_blocking(amounts).map(Held::Borrowed),
        Timeout => sem
            .acquire_blocking_timeout(amounts, LONG)
            .map(Held::Borrowed),
        Deadline => sem
            .acquire_blocking_deadline(amounts, Instant::now() + LONG)
            .map(Held::Borrowed),
        Async => block_on(sem.acquire(amounts)).map(Held::Borrowed),
        Owned => sem.acquire_owned_blocking(amounts).map(Held::Owned),
        OwnedTimeout => sem
            .acquire_owned_blocking_timeout(amounts, LONG)
            .map(Held::Owned),
        OwnedDeadline => sem
            .acquire_owned_blocking_deadline(amounts, Instant::now() + LONG)
            .map(Held::Owned),
        OwnedAsync => block_on(sem.acquire_owned(amounts)).map(Held::Owned),
    }
}

/// A timed acquire (`m` in `TIMED`) with the given deadline.
fn take_until(
    sem: &Arc<Sem>,
    m: Method,
    amounts: [u64; 2],
    deadline: Instant,
) -> Result<Held<'_>, AcquireError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    match m {
        Timeout => sem
            .acquire_blocking_timeout(amounts, timeout)
            .map(Held::Borrowed),
        Deadline => sem
            .acquire_blocking_deadline(amounts, deadline)
            .map(Held::Borrowed),
        OwnedTimeout => sem
            .acquire_owned_blocking_timeout(amounts, timeout)
            .map(Held::Owned),
        OwnedDeadline => sem
            .acquire_owned_blocking_deadline(amounts, deadline)
            .map(Held::Owned),
        _ => unreachable!("{m:?} is not timed"),
    }
}

fn got(r: &Result<Held<'_>, AcquireError>) -> Got {
    r.as_ref().map(Held::amounts).map_err(Clone::clone)
}

/// Acquires on another thread and drops the permit at once; bounded.
fn take_in_thread(sem: &Arc<Sem>, m: Method, amounts: [u64; 2]) -> Got {
    let sem = Arc::clone(sem);
    bg(move || got(&take(&sem, m, amounts))).join()
}

/// A thread that acquires with some method, reports the outcome, and holds
/// the permit until `finish`.
struct Holder {
    label: String,
    got: Receiver<Got>,
    release: Option<Sender<()>>,
    bg: Bg<()>,
}

impl Holder {
    fn spawn(sem: &Arc<Sem>, m: Method, amounts: [u64; 2]) -> Holder {
        let (got_tx, got_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let sem = Arc::clone(sem);
        let bg = bg(move || {
            let r = take(&sem, m, amounts);
            let _ = got_tx.send(got(&r));
            if r.is_ok() {
                // Held until the sender is dropped (or a bounded time passes).
                let _ = release_rx.recv_timeout(LIMIT);
            }
            drop(r);
        });
        Holder {
            label: format!("{m:?} {amounts:?}"),
            got: got_rx,
            release: Some(release_tx),
            bg,
        }
    }

    /// The outcome of the acquire; fails the test if none comes within `LIMIT`.
    #[track_caller]
    fn result(&self) -> Got {
        match self.got.recv_timeout(LIMIT) {
            Ok(r) => r,
            Err(_) => panic!("{}: no outcome within {LIMIT:?}", self.label),
        }
    }

    /// Asserts the acquire is still waiting (it has not returned).
    #[track_caller]
    fn assert_waiting(&self) {
        if let Ok(r) = self.got.try_recv() {
            panic!("{}: returned {r:?} while it should still wait", self.label);
        }
    }

    /// Drops the permit (if any) and joins the thread.
    fn finish(mut self) {
        drop(self.release.take());
        self.bg.join();
    }
}

/// Registers a queued acquirer: spawns it and waits until `waiters()` shows it.
fn queue(sem: &Arc<Sem>, m: Method, amounts: [u64; 2]) -> Holder {
    let before = sem.waiters();
    let h = Holder::spawn(sem, m, amounts);
    wait_until(&format!("{m:?} {amounts:?} to queue"), || {
        sem.waiters() > before
    });
    h
}

fn exceeds(dim: usize, requested: u64, capacity: u64) -> common::Plain {
    common::Plain::Exceeds {
        dim,
        requested,
        capacity,
    }
}

/// A moment that is certainly in the past.
fn past() -> Instant {
    let t = Instant::now();
    thread::sleep(Duration::from_millis(2));
    t
}

// ---------------------------------------------------------------------------
// Success, blocking, impossible and zero requests.
// ---------------------------------------------------------------------------

#[test]
fn every_method_succeeds_at_once_when_it_fits() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([10, 1000]) {
        for m in METHODS {
            let acquired = sem.stats().acquired;
            let p = take(&sem, m, [3, 100]).unwrap_or_else(|e| panic!("{layout} {m:?}: {e}"));
            assert_eq!(p.amounts(), [3, 100], "{layout} {m:?}");
            assert_eq!(sem.available(), [7, 900], "{layout} {m:?}");
            assert_eq!(sem.waiters(), 0, "{layout} {m:?}");
            drop(p);
            assert_eq!(sem.available(), [10, 1000], "{layout} {m:?}");
            assert_eq!(sem.stats().acquired, acquired + 1, "{layout} {m:?}");
        }
    }
}

#[test]
fn every_method_blocks_until_a_release_on_another_thread() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([4, 1000]) {
        // Short in the count dimension, then short in the bytes dimension.
        for (hold_amounts, want) in [([4, 0], [2, 50]), ([0, 980], [1, 50])] {
            for m in METHODS {
                let ctx = format!("{layout} {m:?} hold {hold_amounts:?} want {want:?}");
                let hold = sem.try_acquire_owned(hold_amounts).unwrap();
                let h = queue(&sem, m, want);
                assert_eq!(sem.waiters(), 1, "{ctx}");
                thread::sleep(Duration::from_millis(10));
                h.assert_waiting();
                let free = sem.available();
                drop(hold);
                assert_eq!(h.result(), Ok(want), "{ctx}");
                assert_eq!(sem.waiters(), 0, "{ctx}");
                assert_eq!(sem.available(), [4 - want[0], 1000 - want[1]], "{ctx}");
                assert!(free[0] < want[0] || free[1] < want[1], "{ctx}");
                h.finish();
                assert_eq!(sem.available(), [4, 1000], "{ctx}");
            }
        }
    }
}

#[test]
fn exceeds_capacity_fails_at_once_and_is_never_queued() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([2, 100]) {
        // Everything is held: a request that were queued would block forever.
        let hold = sem.try_acquire_owned([2, 100]).unwrap();
        for m in METHODS {
            for (req, dim, cap) in [([3, 1], 0, 2), ([1, 101], 1, 100), ([0, 1000], 1, 100)] {
                let ctx = format!("{layout} {m:?} {req:?}");
                assert_eq!(
                    take_in_thread(&sem, m, req).map_err(common::plain),
                    Err(exceeds(dim, req[dim], cap)),
                    "{ctx}"
                );
                assert_eq!(sem.waiters(), 0, "{ctx}");
                assert_eq!(sem.available(), [0, 0], "{ctx}");
            }
        }
        // Still never queued while someone else is queued.
        let w = queue(&sem, Timeout, [1, 1]);
        for m in METHODS {
            assert_eq!(
                take_in_thread(&sem, m, [1, 101]).map_err(common::plain),
                Err(exceeds(1, 101, 100)),
                "{layout} {m:?} behind a waiter"
            );
            assert_eq!(sem.waiters(), 1, "{layout} {m:?}");
        }
        drop(hold);
        assert_eq!(w.result(), Ok([1, 1]));
        w.finish();
        // ExceedsCapacity comes before Closed.
        sem.close();
        for m in METHODS {
            assert_eq!(
                take_in_thread(&sem, m, [3, 0]).map_err(common::plain),
                Err(exceeds(0, 3, 2)),
                "{layout} {m:?} closed"
            );
        }
        assert_eq!(sem.available(), [2, 100]);
    }
}

#[test]
fn oversized_request_does_not_hold_up_small_ones() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([2, 100]) {
        for m in METHODS {
            assert_eq!(
                take_in_thread(&sem, m, [1, 101]).map_err(common::plain),
                Err(exceeds(1, 101, 100)),
                "{layout} {m:?}"
            );
            // Nothing is queued, so small requests of every kind go straight through.
            let a = sem.try_acquire([1, 50]).unwrap();
            let b = take(&sem, m, [1, 50]).unwrap();
            assert_eq!(sem.available(), [0, 0]);
            drop((a, b));
        }
    }
}

#[test]
fn zero_request_succeeds_at_once_even_when_nothing_is_free() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([2, 100]) {
        let hold = sem.try_acquire([2, 100]).unwrap();
        for m in METHODS {
            let acquired = sem.stats().acquired;
            assert_eq!(
                take_in_thread(&sem, m, [0, 0]),
                Ok([0, 0]),
                "{layout} {m:?}"
            );
            assert_eq!(sem.stats().acquired, acquired + 1, "{layout} {m:?}");
            assert_eq!(sem.waiters(), 0);
        }
        drop(hold);
        assert_eq!(sem.available(), [2, 100]);
    }
}

#[test]
fn zero_request_does_not_wait_behind_queued_acquirers() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([2, 100]) {
        let hold = sem.try_acquire_owned([2, 100]).unwrap();
        let w = queue(&sem, Timeout, [1, 1]);
        for m in METHODS {
            assert_eq!(
                take_in_thread(&sem, m, [0, 0]),
                Ok([0, 0]),
                "{layout} {m:?}"
            );
        }
        assert_eq!(sem.waiters(), 1);
        w.assert_waiting();
        drop(hold);
        assert_eq!(w.result(), Ok([1, 1]));
        w.finish();
        // Closed wins over a zero request.
        sem.close();
        for m in METHODS {
            assert_eq!(
                take_in_thread(&sem, m, [0, 0]),
                Err(AcquireError::Closed),
                "{layout} {m:?} closed"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Close.
// ---------------------------------------------------------------------------

#[test]
fn closed_semaphore_fails_every_method_and_permits_out_stay_valid() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([4, 100]) {
        let out = sem.try_acquire_owned([1, 10]).unwrap();
        sem.close();
        assert!(sem.is_closed());
        for m in METHODS {
            assert_eq!(
                take_in_thread(&sem, m, [1, 1]),
                Err(AcquireError::Closed),
                "{layout} {m:?}"
            );
        }
        // Past deadline on a closed semaphore: Closed comes before Timeout.
        let then = past();
        assert_eq!(
            sem.acquire_blocking_deadline([4, 100], then).err(),
            Some(AcquireError::Closed)
        );
        assert_eq!(sem.stats().closed_out, 9, "{layout}");
        assert_eq!(sem.stats().timed_out, 0, "{layout}");
        assert_eq!(sem.waiters(), 0);
        assert_eq!(out.amounts(), [1, 10]);
        drop(out);
        assert_eq!(sem.available(), [4, 100], "{layout}");
        assert!(sem.is_closed());
    }
}

#[test]
fn close_wakes_every_queued_acquirer() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([4, 100]) {
        let hold = sem.try_acquire_owned([4, 100]).unwrap();
        let holders: Vec<Holder> = METHODS.iter().map(|&m| queue(&sem, m, [1, 1])).collect();
        // And two futures driven by hand, one borrowed, one owned, each
        // with a waker of its own: each must be woken.
        let (cw1, waker1) = counting_waker();
        let (cw2, waker2) = counting_waker();
        let mut f1 = Box::pin(sem.acquire([1, 1]));
        let mut f2 = Box::pin(sem.acquire_owned([2, 2]));
        assert!(poll_with(f1.as_mut(), &waker1).is_pending());
        assert!(poll_with(f2.as_mut(), &waker2).is_pending());
        assert_eq!(sem.waiters(), METHODS.len() + 2, "{layout}");

        sem.close();
        for h in holders {
            assert_eq!(
                h.result(),
                Err(AcquireError::Closed),
                "{layout} {}",
                h.label
            );
            h.finish();
        }
        wait_until("close to wake the futures", || {
            cw1.wakes() == 1 && cw2.wakes() == 1
        });
        assert!(matches!(
            poll_with(f1.as_mut(), &waker1),
            Poll::Ready(Err(AcquireError::Closed))
        ));
        assert!(matches!(
            poll_with(f2.as_mut(), &waker2),
            Poll::Ready(Err(AcquireError::Closed))
        ));
        drop((f1, f2));
        assert_eq!(sem.waiters(), 0, "{layout}");
        assert_eq!(sem.stats().closed_out, METHODS.len() as u64 + 2, "{layout}");
        assert_eq!(sem.stats().cancelled, 0, "{layout}");
        drop(hold);
        assert_eq!(sem.available(), [4, 100], "{layout}");
    }
}

// ---------------------------------------------------------------------------
// Deadlines and timeouts.
// ---------------------------------------------------------------------------

#[test]
fn past_deadline_is_one_try() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([4, 100]) {
        let then = past();
        // Fits: Ok, like a try.
        assert_eq!(got(&take_until(&sem, Deadline, [1, 1], then)), Ok([1, 1]));
        assert_eq!(
            got(&take_until(&sem, OwnedDeadline, [1, 1], then)),
            Ok([1, 1])
        );
        assert_eq!(
            sem.acquire_blocking_timeout([1, 1], Duration::ZERO)
                .unwrap()
                .amounts(),
            [1, 1]
        );
        assert_eq!(
            sem.acquire_owned_blocking_timeout([1, 1], Duration::ZERO)
                .unwrap()
                .amounts(),
            [1, 1]
        );
        // Does not fit: Timeout at once, nothing queued, nothing taken.
        let hold = sem.try_acquire([3, 0]).unwrap();
        for m in TIMED {
            let timed_out = sem.stats().timed_out;
            assert_eq!(
                got(&take_until(&sem, m, [2, 1], then)),
                Err(AcquireError::Timeout),
                "{layout} {m:?}"
            );
            assert_eq!(sem.stats().timed_out, timed_out + 1);
            assert_eq!(sem.waiters(), 0);
            assert_eq!(sem.available(), [1, 100]);
        }
        assert_eq!(
            sem.acquire_blocking_timeout([2, 1], Duration::ZERO).err(),
            Some(AcquireError::Timeout)
        );
        // A past deadline does not barge past a queued acquirer either.
        let w = queue(&sem, Timeout, [2, 0]);
        for m in TIMED {
            assert_eq!(
                got(&take_until(&sem, m, [1, 1], then)),
                Err(AcquireError::Timeout),
                "{layout} {m:?} behind a waiter"
            );
        }
        drop(hold);
        assert_eq!(w.result(), Ok([2, 0]));
        w.finish();
        assert_eq!(sem.available(), [4, 100]);
    }
}

#[test]
fn timeout_is_never_early_and_returns_soon_after_the_deadline() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([4, 100]) {
        let hold = sem.try_acquire([4, 50]).unwrap();
        for wait in [1, 30, 120].map(Duration::from_millis) {
            for m in TIMED {
                let ctx = format!("{layout} {m:?} {wait:?}");
                let timed_out = sem.stats().timed_out;
                let start = Instant::now();
                let deadline = start + wait;
                let r = match m {
                    Timeout => got(&sem
                        .acquire_blocking_timeout([1, 1], wait)
                        .map(Held::Borrowed)),
                    OwnedTimeout => got(&sem
                        .acquire_owned_blocking_timeout([1, 1], wait)
                        .map(Held::Owned)),
                    _ => got(&take_until(&sem, m, [1, 1], deadline)),
                };
                let end = Instant::now();
                assert_eq!(r, Err(AcquireError::Timeout), "{ctx}");
                assert!(
                    end >= deadline,
                    "{ctx}: returned {:?} early",
                    deadline - end
                );
                if !cfg!(miri) {
                    assert!(
                        end < deadline + Duration::from_millis(500),
                        "{ctx}: returned {:?} after the deadline",
                        end - deadline
                    );
                }
                assert_eq!(sem.waiters(), 0, "{ctx}");
                assert_eq!(sem.available(), [0, 50], "{ctx}");
                assert_eq!(sem.stats().timed_out, timed_out + 1, "{ctx}");
            }
        }
        drop(hold);
        assert_eq!(sem.available(), [4, 100]);
    }
}

/// KAFKA-3651 class: a timed-out waiter leaves nothing behind, in any dimension.
#[test]
fn timeout_leaves_queue_empty_and_every_dimension_unchanged() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([10, 1000]) {
        for (hold_amounts, want) in [
            ([5, 1000], [1, 10]),
            ([10, 500], [1, 10]),
            ([8, 900], [3, 200]),
        ] {
            let hold = sem.try_acquire(hold_amounts).unwrap();
            let free = sem.available();
            for m in TIMED {
                let ctx = format!("{layout} {m:?} hold {hold_amounts:?} want {want:?}");
                let r = got(&take_until(
                    &sem,
                    m,
                    want,
                    Instant::now() + Duration::from_millis(20),
                ));
                assert_eq!(r, Err(AcquireError::Timeout), "{ctx}");
                assert_eq!(sem.waiters(), 0, "{ctx}");
                assert_eq!(sem.available(), free, "{ctx}");
            }
            // An async acquire dropped while queued leaves nothing either.
            let (_cw, waker) = counting_waker();
            let mut f = Box::pin(sem.acquire(want));
            assert!(poll_with(f.as_mut(), &waker).is_pending());
            assert_eq!(sem.waiters(), 1);
            drop(f);
            assert_eq!(sem.waiters(), 0, "{layout}");
            assert_eq!(sem.available(), free, "{layout}");
            drop(hold);
            // Full capacity is usable again in one piece.
            let all = sem.try_acquire([10, 1000]).unwrap();
            drop(all);
        }
    }
}

// ---------------------------------------------------------------------------
// FIFO, no barging, no starvation.
// ---------------------------------------------------------------------------

#[test]
fn two_queued_acquirers_are_granted_in_arrival_order() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    let pairs = [
        (Acquire, Async),
        (Async, Timeout),
        (OwnedTimeout, OwnedAsync),
        (OwnedAsync, Deadline),
        (Owned, OwnedDeadline),
    ];
    for (layout, sem) in layouts([1, 100]) {
        for (ma, mb) in pairs {
            let ctx = format!("{layout} first {ma:?} then {mb:?}");
            let hold = sem.try_acquire([1, 100]).unwrap();
            let a = queue(&sem, ma, [1, 10]);
            let b = queue(&sem, mb, [1, 10]);
            assert_eq!(sem.waiters(), 2, "{ctx}");
            drop(hold);
            assert_eq!(a.result(), Ok([1, 10]), "{ctx}: the first did not get it");
            thread::sleep(Duration::from_millis(10));
            b.assert_waiting();
            a.finish();
            assert_eq!(b.result(), Ok([1, 10]), "{ctx}");
            b.finish();
            assert_eq!(sem.available(), [1, 100]);
        }
    }
}

#[test]
fn two_queued_futures_are_granted_in_arrival_order() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([1, 100]) {
        let hold = sem.try_acquire([1, 100]).unwrap();
        let (cw1, w1) = counting_waker();
        let (_cw2, w2) = counting_waker();
        let mut f1 = Box::pin(sem.acquire([1, 10]));
        let mut f2 = Box::pin(sem.acquire_owned([1, 10]));
        assert!(poll_with(f1.as_mut(), &w1).is_pending());
        assert!(poll_with(f2.as_mut(), &w2).is_pending());
        drop(hold);
        wait_until("the head future to be woken", || cw1.wakes() >= 1);
        assert!(
            poll_with(f2.as_mut(), &w2).is_pending(),
            "{layout}: second overtook the first"
        );
        let p1 = ready(
            poll_with(f1.as_mut(), &w1),
            format_args!("{layout}: woken head is not ready"),
        )
        .unwrap();
        assert!(poll_with(f2.as_mut(), &w2).is_pending());
        drop(p1);
        let p2 = block_on_for(f2, LIMIT)
            .expect("second future not granted")
            .unwrap();
        assert_eq!(p2.amounts(), [1, 10]);
        drop(p2);
        assert_eq!(sem.available(), [1, 100]);
    }
}

/// A large request at the head is not overtaken by smaller ones behind it,
/// even where the counters alone would let them in.
#[test]
fn no_newcomer_barges_past_a_queued_head() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([10, 100]) {
        let hold = sem.try_acquire_owned([5, 0]).unwrap();
        let big = queue(&sem, Timeout, [10, 0]);
        let small = queue(&sem, Async, [1, 0]);
        assert_eq!(sem.available(), [5, 100], "{layout}");
        assert!(
            matches!(
                sem.try_acquire([1, 0]),
                Err(TryAcquireError::Insufficient { .. })
            ),
            "{layout}: try_acquire barged past the queue"
        );
        assert_eq!(
            sem.acquire_blocking_timeout([1, 0], Duration::from_millis(20))
                .err(),
            Some(AcquireError::Timeout),
            "{layout}: a timed newcomer barged past the queue"
        );
        thread::sleep(Duration::from_millis(10));
        small.assert_waiting();
        drop(hold);
        assert_eq!(big.result(), Ok([10, 0]));
        thread::sleep(Duration::from_millis(10));
        small.assert_waiting();
        big.finish();
        assert_eq!(small.result(), Ok([1, 0]));
        small.finish();
        assert_eq!(sem.available(), [10, 100]);
        assert!(sem.stats().refused.iter().sum::<u64>() >= 1);
    }
}

/// Runs `act` at its first wake.
struct OnFirstWake(Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl Wake for OnFirstWake {
    fn wake(self: Arc<Self>) {
        let act = self.0.lock().unwrap().take();
        if let Some(act) = act {
            act();
        }
    }
}

/// 20 requests for `[5, 0]` queued on `sem` (of `[10, 100]`, held whole),
/// the first with a waker that runs `act` at its first wake; then `first`
/// (a close or a shrink, whose batches of 8 wakes run `act` between two);
/// then how each ended: `E` for `ExceedsCapacity`, `C` for `Closed`.
fn outcomes_when_a_waker_acts_between_batches(
    sem: &Arc<Sem>,
    act: impl FnOnce() + Send + 'static,
    first: impl FnOnce(),
) -> String {
    let held = sem.try_acquire_owned([10, 100]).unwrap();
    let acts = Waker::from(Arc::new(OnFirstWake(Mutex::new(Some(Box::new(act))))));
    let (_, waker) = counting_waker();
    let mut futures: Vec<_> = (0..20).map(|_| Box::pin(sem.acquire([5, 0]))).collect();
    for (i, future) in futures.iter_mut().enumerate() {
        let with = if i == 0 { &acts } else { &waker };
        assert!(poll_with(future.as_mut(), with).is_pending());
    }
    first();
    let ended = futures
        .iter_mut()
        .map(|future| match poll_with(future.as_mut(), &waker) {
            Poll::Ready(Err(AcquireError::ExceedsCapacity { .. })) => 'E',
            Poll::Ready(Err(AcquireError::Closed)) => 'C',
            other => panic!("{:?}", other.map(|r| r.map(drop))),
        })
        .collect();
    drop(held);
    ended
}

/// A close and a shrink that race keep their order for every waiter, though
/// each wakes the queue 8 at a time and lets go of the lock between: a
/// shrink run between two of the close's batches (by a waker the close
/// woke) fails nobody for its size, every waiter ends `Closed`; a close run
/// between two of a shrink's batches finishes the shrink's work first,
/// every waiter it made too large ends `ExceedsCapacity`. (Both split at
/// the batch: the first 8 one way, the other 12 the other. From two
/// reviewers.)
#[test]
fn a_close_and_a_shrink_that_race_keep_their_order_for_every_waiter() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([10, 100]) {
        let shrinks = Arc::clone(&sem);
        let ended = outcomes_when_a_waker_acts_between_batches(
            &sem,
            move || shrinks.set_capacity([4, 100]).unwrap(),
            || sem.close(),
        );
        assert_eq!(sem.capacity(), [4, 100], "{layout}: the shrink ran");
        assert_eq!(ended, "C".repeat(20), "{layout}: the close came first");
        assert_eq!(sem.stats().closed_out_while_waiting, 20, "{layout}");
    }
    for (layout, sem) in layouts([10, 100]) {
        let closes = Arc::clone(&sem);
        let ended = outcomes_when_a_waker_acts_between_batches(
            &sem,
            move || closes.close(),
            || sem.set_capacity([4, 100]).unwrap(),
        );
        assert!(sem.is_closed(), "{layout}: the close ran");
        assert_eq!(ended, "E".repeat(20), "{layout}: the shrink came first");
        assert_eq!(sem.stats().exceeded_while_waiting, 20, "{layout}");
    }
}

/// Go `TestLargeAcquireDoesntStarve`: a request for everything is served while
/// blocking, async and `try_acquire` newcomers hammer small requests.
#[test]
fn large_request_is_not_starved_by_a_stream_of_small_ones() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    let rounds = if cfg!(miri) { 1 } else { 5 };
    for (layout, sem) in layouts([4, 4000]) {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for kind in 0..5 {
            let (sem, stop, ops) = (Arc::clone(&sem), Arc::clone(&stop), Arc::clone(&ops));
            workers.push(bg(move || {
                while !stop.load(SeqCst) {
                    let p = match kind {
                        0 | 1 => Some(Held::Borrowed(
                            sem.acquire_blocking_timeout([1, 1000], LONG).unwrap(),
                        )),
                        2 => Some(Held::Borrowed(block_on(sem.acquire([1, 1000])).unwrap())),
                        3 => Some(Held::Owned(block_on(sem.acquire_owned([1, 1000])).unwrap())),
                        _ => sem.try_acquire([1, 1000]).ok().map(Held::Borrowed),
                    };
                    if p.is_some() {
                        ops.fetch_add(1, SeqCst);
                    }
                    thread::yield_now();
                    drop(p);
                }
            }));
        }
        wait_until("the small acquirers to get going", || {
            ops.load(SeqCst) >= 50
        });
        for round in 0..rounds {
            let before = ops.load(SeqCst);
            let all = sem
                .acquire_blocking_timeout([4, 4000], LONG)
                .unwrap_or_else(|e| panic!("{layout} round {round}: large request starved: {e}"));
            assert_eq!(sem.available(), [0, 0]);
            drop(all);
            wait_until("small acquirers to make progress", || {
                ops.load(SeqCst) > before + 10
            });
        }
        stop.store(true, SeqCst);
        for w in workers {
            w.join();
        }
        assert_eq!(sem.waiters(), 0, "{layout}");
        assert_eq!(sem.available(), [4, 4000], "{layout}");
    }
}

/// The same with `try_acquire` newcomers that go hand over hand: each keeps
/// its permit until a new one is in hand, and lets it go only when a try
/// fails. Were a newcomer let in past the queued large request (barging, as
/// Java's fair `tryAcquire()` does), three or four permits would always be
/// held and it would never fit; only a queue that refuses newcomers while
/// it waits brings every permit back. (The test above, whose small
/// acquirers drop each permit before the next, passed 10 of 11 runs with
/// the single-word fast path barging: the permits were often all free at
/// once.)
#[test]
fn large_request_is_not_starved_by_small_ones_held_hand_over_hand() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([4, 4000]) {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (sem, stop, ops) = (Arc::clone(&sem), Arc::clone(&stop), Arc::clone(&ops));
                bg(move || {
                    let mut held: Option<Permit<'_, 2>> = None;
                    while !stop.load(SeqCst) {
                        // The old permit goes once the new one is in hand,
                        // or when none came.
                        held = sem.try_acquire([1, 1000]).ok();
                        if held.is_some() {
                            ops.fetch_add(1, SeqCst);
                        }
                        thread::yield_now();
                    }
                    drop(held);
                })
            })
            .collect();
        wait_until("the small acquirers to get going", || {
            ops.load(SeqCst) >= 50
        });
        for round in 0..5 {
            let all = sem
                .acquire_blocking_timeout([4, 4000], LONG)
                .unwrap_or_else(|e| panic!("{layout} round {round}: large request starved: {e}"));
            assert_eq!(sem.available(), [0, 0]);
            drop(all);
        }
        stop.store(true, SeqCst);
        for w in workers {
            w.join();
        }
        assert_eq!(sem.available(), [4, 4000], "{layout}");
    }
}

// ---------------------------------------------------------------------------
// The head of the queue leaving (Go #37852) and hold-and-wait.
// ---------------------------------------------------------------------------

/// Cap 10, 1 held. A waiter for 10 is queued, a waiter for 1 behind it. When the
/// first leaves by timing out, the second completes with no further release.
#[test]
fn head_timing_out_lets_the_follower_in_without_a_release() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([10, 100]) {
        for (head, follower) in [
            (Timeout, Acquire),
            (OwnedDeadline, Async),
            (Deadline, OwnedAsync),
            (OwnedTimeout, OwnedTimeout),
        ] {
            let ctx = format!("{layout} head {head:?} follower {follower:?}");
            let waited = |sem: &MultiSemaphore<2>| sem.stats().waited.iter().sum::<u64>();
            let waited_before = waited(&sem);
            let hold = sem.try_acquire([1, 0]).unwrap();
            let head_sem = Arc::clone(&sem);
            let deadline = Instant::now() + Duration::from_millis(300);
            let head_t = bg(move || got(&take_until(&head_sem, head, [10, 0], deadline)));
            wait_until("the head to queue", || {
                sem.waiters() == 1 || head_t.is_finished()
            });
            let f = Holder::spawn(&sem, follower, [1, 0]);
            wait_until("the follower to queue", || {
                sem.waiters() == 2 || head_t.is_finished()
            });
            assert_eq!(head_t.join(), Err(AcquireError::Timeout), "{ctx}");
            // No release happens: `hold` is still held.
            assert_eq!(f.result(), Ok([1, 0]), "{ctx}: follower stranded");
            // Both queued, the follower behind the head: the hand-off ran.
            assert_eq!(waited(&sem), waited_before + 2, "{ctx}: did not queue");
            assert_eq!(sem.available(), [8, 100], "{ctx}");
            assert_eq!(sem.waiters(), 0, "{ctx}");
            f.finish();
            drop(hold);
            assert_eq!(sem.available(), [10, 100]);
        }
    }
}

#[test]
fn head_future_dropped_lets_the_follower_in_without_a_release() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([10, 100]) {
        for follower in METHODS {
            for owned_head in [false, true] {
                let ctx = format!("{layout} follower {follower:?} owned head {owned_head}");
                let hold = sem.try_acquire([1, 0]).unwrap();
                let (_cw, waker) = counting_waker();
                let head: Pin<Box<dyn Future<Output = Got> + '_>> = if owned_head {
                    let f = sem.acquire_owned([10, 0]);
                    Box::pin(async move { f.await.map(|p| p.amounts()) })
                } else {
                    let f = sem.acquire([10, 0]);
                    Box::pin(async move { f.await.map(|p| p.amounts()) })
                };
                let mut head = head;
                assert!(poll_with(head.as_mut(), &waker).is_pending(), "{ctx}");
                let f = queue(&sem, follower, [1, 0]);
                assert_eq!(sem.waiters(), 2, "{ctx}");
                f.assert_waiting();
                drop(head);
                assert_eq!(f.result(), Ok([1, 0]), "{ctx}: follower stranded");
                assert_eq!(sem.available(), [8, 100], "{ctx}");
                f.finish();
                drop(hold);
                assert_eq!(sem.available(), [10, 100], "{ctx}");
                assert_eq!(sem.waiters(), 0, "{ctx}");
            }
        }
    }
}

#[test]
fn head_leaving_wakes_a_follower_future_in_the_bytes_dimension() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([10, 100]) {
        let hold = sem.try_acquire([0, 10]).unwrap();
        let head_sem = Arc::clone(&sem);
        let head_t = bg(move || {
            got(&head_sem
                .acquire_blocking_timeout([1, 100], Duration::from_millis(300))
                .map(Held::Borrowed))
        });
        wait_until("the head to queue", || {
            sem.waiters() == 1 || head_t.is_finished()
        });
        let (cw, waker) = counting_waker();
        let mut follower = Box::pin(sem.acquire([1, 50]));
        // Ready at once only if the head has already left (slow machine).
        let first = poll_with(follower.as_mut(), &waker);
        assert_eq!(head_t.join(), Err(AcquireError::Timeout));
        let p = match first {
            Poll::Ready(r) => r.unwrap(),
            Poll::Pending => {
                wait_until("the follower to be woken", || cw.wakes() >= 1);
                ready(
                    poll_with(follower.as_mut(), &waker),
                    format_args!("{layout}: follower woken but not granted"),
                )
                .unwrap()
            }
        };
        assert_eq!(sem.available(), [9, 40]);
        drop((p, hold));
        assert_eq!(sem.available(), [10, 100]);
    }
}

/// No hold-and-wait: a request waiting for bytes does not pin a count permit.
#[test]
fn queued_request_pins_no_dimension_while_it_waits() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([10, 100]) {
        for m in METHODS {
            let hold = sem.try_acquire([0, 98]).unwrap();
            let w = queue(&sem, m, [1, 5]);
            thread::sleep(Duration::from_millis(5));
            assert_eq!(
                sem.available(),
                [10, 2],
                "{layout} {m:?}: the waiter pinned something"
            );
            w.assert_waiting();
            drop(hold);
            assert_eq!(w.result(), Ok([1, 5]), "{layout} {m:?}");
            assert_eq!(sem.available(), [9, 95], "{layout} {m:?}");
            w.finish();
        }
        // Same with a future driven by hand.
        let hold = sem.try_acquire([0, 98]).unwrap();
        let (_cw, waker) = counting_waker();
        let mut f = Box::pin(sem.acquire([1, 5]));
        assert!(poll_with(f.as_mut(), &waker).is_pending());
        assert_eq!(sem.available(), [10, 2], "{layout} future pinned something");
        drop(hold);
        let p = block_on_for(f, LIMIT).expect("not granted").unwrap();
        assert_eq!(sem.available(), [9, 95]);
        drop(p);
        assert_eq!(sem.available(), [10, 100]);
    }
}

// ---------------------------------------------------------------------------
// Resizing with waiters queued.
// ---------------------------------------------------------------------------

#[test]
fn add_permits_serves_queued_waiters() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([2, 100]) {
        let hold = sem.try_acquire([2, 100]).unwrap();
        let a = queue(&sem, Timeout, [2, 10]);
        let (cw, waker) = counting_waker();
        let mut b = Box::pin(sem.acquire([1, 50]));
        assert!(poll_with(b.as_mut(), &waker).is_pending());
        assert_eq!(sem.waiters(), 2);

        sem.add_permits([2, 0]).unwrap(); // count fits, bytes do not
        thread::sleep(Duration::from_millis(10));
        a.assert_waiting();
        sem.add_permits([0, 60]).unwrap(); // now a fits; b is behind it and short of count
        assert_eq!(a.result(), Ok([2, 10]), "{layout}");
        assert!(poll_with(b.as_mut(), &waker).is_pending(), "{layout}");
        let wakes = cw.wakes();
        sem.add_permits([1, 0]).unwrap();
        wait_until("b to be woken by add_permits", || cw.wakes() > wakes);
        let p = ready(
            poll_with(b.as_mut(), &waker),
            format_args!("{layout}: b woken but not granted"),
        )
        .unwrap();
        assert_eq!(sem.capacity(), [5, 160]);
        assert_eq!(sem.available(), [0, 0]);
        drop(p);
        a.finish();
        drop(hold);
        assert_eq!(sem.available(), [5, 160], "{layout}");
        assert_eq!(sem.waiters(), 0);
    }
}

#[test]
fn set_capacity_below_a_queued_request_fails_it() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([10, 100]) {
        let hold = sem.try_acquire([10, 0]).unwrap();
        let w1 = queue(&sem, Timeout, [8, 10]);
        let (cw, waker) = counting_waker();
        let mut w2 = Box::pin(sem.acquire_owned([0, 90]));
        assert!(poll_with(w2.as_mut(), &waker).is_pending());
        let w3 = queue(&sem, OwnedAsync, [2, 0]);
        assert_eq!(sem.waiters(), 3);

        sem.set_capacity([5, 80]).unwrap();
        assert_eq!(sem.capacity(), [5, 80]);
        assert_eq!(
            w1.result().map_err(common::plain),
            Err(exceeds(0, 8, 5)),
            "{layout}"
        );
        wait_until("w2 to be woken by set_capacity", || cw.wakes() >= 1);
        assert!(
            matches!(poll_with(w2.as_mut(), &waker), Poll::Ready(Err(e)) if common::plain(e.clone()) == exceeds(1, 90, 80)),
            "{layout}"
        );
        // w3 still fits the new capacity, but 10 are in flight against 5.
        assert_eq!(sem.available(), [0, 80]);
        thread::sleep(Duration::from_millis(10));
        w3.assert_waiting();
        drop(hold);
        assert_eq!(w3.result(), Ok([2, 0]), "{layout}");
        w3.finish();
        w1.finish();
        assert_eq!(sem.waiters(), 0);
        assert_eq!(sem.available(), [5, 80], "{layout}");
    }
}

#[test]
fn set_capacity_failing_the_head_lets_the_follower_in() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([10, 100]) {
        let hold = sem.try_acquire([1, 0]).unwrap();
        let head = queue(&sem, Async, [10, 0]);
        let follower = queue(&sem, Timeout, [1, 0]);
        sem.set_capacity([9, 100]).unwrap();
        assert_eq!(
            head.result().map_err(common::plain),
            Err(exceeds(0, 10, 9)),
            "{layout}"
        );
        assert_eq!(follower.result(), Ok([1, 0]), "{layout}");
        follower.finish();
        head.finish();
        drop(hold);
        assert_eq!(sem.available(), [9, 100]);
    }
}

// ---------------------------------------------------------------------------
// Futures: wakers, grants that are never collected, two futures in one task.
// ---------------------------------------------------------------------------

#[test]
fn repoll_with_a_new_waker_is_woken_through_the_new_one() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([1, 10]) {
        for owned in [false, true] {
            let hold = sem.try_acquire([1, 10]).unwrap();
            let (_a, waker_a) = counting_waker();
            let (b, waker_b) = counting_waker();
            let mut f: Pin<Box<dyn Future<Output = Got> + '_>> = if owned {
                let f = sem.acquire_owned([1, 10]);
                Box::pin(async move { f.await.map(|p| p.amounts()) })
            } else {
                let f = sem.acquire([1, 10]);
                Box::pin(async move { f.await.map(|p| p.amounts()) })
            };
            assert!(poll_with(f.as_mut(), &waker_a).is_pending());
            assert!(poll_with(f.as_mut(), &waker_b).is_pending());
            assert_eq!(
                sem.waiters(),
                1,
                "{layout} owned {owned}: re-poll queued twice"
            );
            drop(hold);
            wait_until("waker B to be woken", || b.wakes() >= 1);
            assert_eq!(poll_with(f.as_mut(), &waker_b), Poll::Ready(Ok([1, 10])));
            assert_eq!(sem.available(), [1, 10]);
        }
    }
}

/// python/asyncio #270 class: a future granted and then dropped before it is
/// polled again returns its permits, and the next waiter is woken.
#[test]
fn granted_future_dropped_before_repoll_returns_permits_and_wakes_next() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([1, 10]) {
        let acquired = sem.stats().acquired;
        let hold = sem.try_acquire([1, 10]).unwrap();
        let (cw1, w1) = counting_waker();
        let (cw2, w2) = counting_waker();
        let mut f1 = Box::pin(sem.acquire([1, 10]));
        let mut f2 = Box::pin(sem.acquire_owned([1, 5]));
        assert!(poll_with(f1.as_mut(), &w1).is_pending());
        assert!(poll_with(f2.as_mut(), &w2).is_pending());
        drop(hold);
        wait_until("f1 to be woken", || cw1.wakes() >= 1);
        drop(f1); // granted, never collected
        wait_until("f2 to be woken after f1 was dropped", || cw2.wakes() >= 1);
        let p2 = ready(
            poll_with(f2.as_mut(), &w2),
            format_args!("{layout}: f2 woken but not granted"),
        )
        .unwrap();
        assert_eq!(sem.available(), [0, 5], "{layout}");
        drop(p2);
        assert_eq!(sem.available(), [1, 10], "{layout}");
        assert_eq!(sem.waiters(), 0);
        // `hold` and `p2` were delivered; f1's grant was not.
        assert_eq!(sem.stats().acquired, acquired + 2, "{layout}");
    }
}

/// tokio #6450 class: two acquire futures in one task; the first is kept but
/// never polled again. Dropping it must return what it was granted.
#[test]
fn two_futures_in_one_task_first_kept_unpolled() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([1, 10]) {
        // (a) The first was polled once (queued), then ignored.
        let hold = sem.try_acquire([1, 10]).unwrap();
        let (cw, task_waker) = counting_waker();
        let mut first = Box::pin(sem.acquire([1, 10]));
        let mut second = Box::pin(sem.acquire([1, 10]));
        assert!(poll_with(first.as_mut(), &task_waker).is_pending());
        assert!(poll_with(second.as_mut(), &task_waker).is_pending());
        drop(hold);
        wait_until("the task to be woken", || cw.wakes() >= 1);
        // The task polls only the second: it stays behind the first, which holds the grant.
        assert!(
            poll_with(second.as_mut(), &task_waker).is_pending(),
            "{layout}"
        );
        assert_eq!(
            sem.waiters(),
            1,
            "{layout}: only the second is still queued"
        );
        let wakes = cw.wakes();
        drop(first);
        wait_until("the task to be woken again", || cw.wakes() > wakes);
        let p = ready(
            poll_with(second.as_mut(), &task_waker),
            format_args!("{layout}: second not granted after first dropped"),
        )
        .unwrap();
        drop(p);
        assert_eq!(sem.available(), [1, 10]);

        // (b) The first was created but never polled: it is not queued at all.
        let hold = sem.try_acquire([1, 10]).unwrap();
        let first = sem.acquire([1, 10]);
        let mut second = Box::pin(sem.acquire_owned([1, 10]));
        assert!(poll_with(second.as_mut(), &task_waker).is_pending());
        assert_eq!(sem.waiters(), 1);
        drop(hold);
        let p = block_on_for(second, LIMIT)
            .expect("second not granted")
            .unwrap();
        drop(first);
        assert_eq!(sem.available(), [0, 0]);
        drop(p);
        assert_eq!(sem.available(), [1, 10]);
        assert_eq!(sem.waiters(), 0);
    }
}

#[test]
fn acquire_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_static<T: 'static>(_: &T) {}
    let sem = Arc::new(Sem::new([1, 1]));
    let f = sem.acquire([1, 1]);
    assert_send(&f);
    let g = sem.acquire_owned([1, 1]);
    assert_send(&g);
    assert_static(&g);
    // An owned future can be driven on another thread.
    let p = bg(move || block_on(g).map(|p| p.amounts())).join();
    assert_eq!(p, Ok([1, 1]));
    drop(f);
}

// ---------------------------------------------------------------------------
// Owned permits in callbacks; wakers that call back in.
// ---------------------------------------------------------------------------

#[test]
fn owned_permit_moved_into_a_callback_on_another_thread() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    let n = if cfg!(miri) { 8 } else { 200 };
    for (layout, sem) in layouts([4, 40]) {
        let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let ran = Arc::new(AtomicU64::new(0));
        let completer = bg(move || {
            let mut ran = 0;
            while let Ok(callback) = rx.recv_timeout(LIMIT) {
                callback();
                ran += 1;
            }
            ran
        });
        for i in 0..n {
            let p = if i % 2 == 0 {
                sem.acquire_owned_blocking_timeout([1, 10], LONG).unwrap()
            } else {
                block_on_for(sem.acquire_owned([1, 10]), LIMIT)
                    .expect("owned async acquire stuck")
                    .unwrap()
            };
            let ran = Arc::clone(&ran);
            tx.send(Box::new(move || {
                assert_eq!(p.amounts(), [1, 10]);
                thread::yield_now();
                drop(p);
                ran.fetch_add(1, SeqCst);
            }))
            .unwrap();
        }
        drop(tx);
        assert_eq!(completer.join(), n, "{layout}");
        assert_eq!(ran.load(SeqCst), n);
        assert_eq!(sem.available(), [4, 40], "{layout}");
        assert_eq!(sem.waiters(), 0);
    }
}

/// A waker whose `wake` and `Drop` call back into the semaphore.
struct ReentrantWaker {
    sem: Arc<Sem>,
    wakes: AtomicUsize,
    reentered: Arc<AtomicUsize>,
}

impl ReentrantWaker {
    fn poke(&self) {
        // try_acquire and drop, plus every read-only call.
        if let Ok(p) = self.sem.try_acquire([0, 1]) {
            drop(p);
        }
        // Likely to take the internal lock (it serves queued waiters).
        self.sem.add_permits([0, 0]).unwrap();
        let _ = (self.sem.available(), self.sem.waiters(), self.sem.stats());
        self.reentered.fetch_add(1, SeqCst);
    }
}

impl Wake for ReentrantWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
        self.poke();
    }
}

impl Drop for ReentrantWaker {
    fn drop(&mut self) {
        self.poke();
    }
}

/// tokio #5429: waking or dropping a waker under the internal lock deadlocks a
/// waker that calls back in. Every step runs on a bounded thread.
#[test]
fn waker_calling_back_into_the_semaphore_does_not_deadlock() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([2, 10]) {
        let reentered = Arc::new(AtomicUsize::new(0));
        let make = |sem: &Arc<Sem>| {
            let rw = Arc::new(ReentrantWaker {
                sem: Arc::clone(sem),
                wakes: AtomicUsize::new(0),
                reentered: Arc::clone(&reentered),
            });
            (Arc::clone(&rw), Waker::from(rw))
        };
        // Woken by a release (permit drop on another thread).
        let hold = sem.try_acquire_owned([2, 10]).unwrap();
        let (rw, waker) = make(&sem);
        let mut f = Box::pin(sem.acquire_owned([1, 1]));
        assert!(poll_with(f.as_mut(), &waker).is_pending());
        // Re-poll with a fresh re-entrant waker: the old one is dropped somewhere.
        let (rw2, waker2) = make(&sem);
        drop(rw);
        drop(waker);
        assert!(poll_with(f.as_mut(), &waker2).is_pending());
        bg(move || drop(hold)).join();
        wait_until("the re-entrant waker to be woken", || {
            rw2.wakes.load(SeqCst) >= 1
        });
        let p = ready(
            poll_with(f.as_mut(), &waker2),
            format_args!("{layout}: woken but not granted"),
        )
        .unwrap();
        drop(p);
        drop(f);

        // Woken by add_permits, set_capacity and close, each on another thread.
        type Op = fn(&Sem);
        let ops: [(&str, Op); 3] = [
            ("add_permits", |s| s.add_permits([1, 0]).unwrap()),
            ("set_capacity", |s| s.set_capacity([4, 10]).unwrap()),
            ("close", |s| s.close()),
        ];
        for (name, op) in ops {
            let hold = sem.try_acquire_owned(sem.available()).unwrap();
            let (rw, waker) = make(&sem);
            let mut f = Box::pin(sem.acquire_owned([1, 0]));
            assert!(
                poll_with(f.as_mut(), &waker).is_pending(),
                "{layout} {name}"
            );
            let s = Arc::clone(&sem);
            bg(move || op(&s)).join();
            wait_until("the re-entrant waker to be woken", || {
                rw.wakes.load(SeqCst) >= 1
            });
            assert!(poll_with(f.as_mut(), &waker).is_ready(), "{layout} {name}");
            // Dropping the future (and the last waker) on another thread.
            bg(move || drop(f)).join();
            drop(waker);
            drop(rw);
            drop(hold);
        }
        assert!(reentered.load(SeqCst) > 0);
        assert_eq!(sem.waiters(), 0);
        assert_eq!(sem.available(), sem.capacity(), "{layout}");
    }
}

#[test]
fn queued_future_dropped_with_reentrant_waker_does_not_deadlock() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([2, 10]) {
        let reentered = Arc::new(AtomicUsize::new(0));
        let hold = sem.try_acquire_owned([2, 10]).unwrap();
        let rw = Arc::new(ReentrantWaker {
            sem: Arc::clone(&sem),
            wakes: AtomicUsize::new(0),
            reentered: Arc::clone(&reentered),
        });
        let waker = Waker::from(rw);
        let mut f = Box::pin(sem.acquire_owned([1, 1]));
        assert!(poll_with(f.as_mut(), &waker).is_pending());
        drop(waker); // the semaphore now holds the last reference
        bg(move || drop(f)).join();
        assert!(
            reentered.load(SeqCst) >= 1,
            "{layout}: waker not dropped on cancel"
        );
        assert_eq!(sem.waiters(), 0);
        drop(hold);
        assert_eq!(sem.available(), [2, 10]);
    }
}

// ---------------------------------------------------------------------------
// Statistics.
// ---------------------------------------------------------------------------

#[test]
fn stats_count_timeouts_cancellations_and_closes() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([2, 10]) {
        let hold = sem.try_acquire([2, 10]).unwrap();
        // Two timeouts and one past deadline.
        assert_eq!(
            sem.acquire_blocking_timeout([1, 1], Duration::from_millis(5))
                .err(),
            Some(AcquireError::Timeout)
        );
        assert_eq!(
            sem.acquire_owned_blocking_timeout([1, 1], Duration::from_millis(5))
                .err(),
            Some(AcquireError::Timeout)
        );
        assert_eq!(
            sem.acquire_blocking_deadline([1, 1], past()).err(),
            Some(AcquireError::Timeout)
        );
        // One future cancelled while queued; one dropped before it was ever polled.
        let (_cw, waker) = counting_waker();
        let mut f = Box::pin(sem.acquire([1, 1]));
        assert!(poll_with(f.as_mut(), &waker).is_pending());
        drop(f);
        drop(sem.acquire_owned([1, 1]));
        // Two queued acquirers closed out, then one acquire on the closed semaphore.
        let a = queue(&sem, Timeout, [1, 1]);
        let b = queue(&sem, OwnedAsync, [1, 1]);
        sem.close();
        assert_eq!(a.result(), Err(AcquireError::Closed));
        assert_eq!(b.result(), Err(AcquireError::Closed));
        a.finish();
        b.finish();
        assert_eq!(
            sem.acquire_blocking([1, 1]).err(),
            Some(AcquireError::Closed)
        );
        drop(hold);

        let s = sem.stats();
        assert_eq!(s.acquired, 1, "{layout}: {s:?}");
        assert_eq!(s.timed_out, 3, "{layout}: {s:?}");
        assert_eq!(s.cancelled, 1, "{layout}: {s:?}");
        assert_eq!(s.closed_out, 3, "{layout}: {s:?}");
        assert_eq!(s.refused, [0, 0], "{layout}: {s:?}");
        assert_eq!(s.peak_in_flight, [2, 10], "{layout}: {s:?}");
    }
}

/// Every queued acquirer that `close()` ends is counted somewhere: a future
/// that close() woke and that is then dropped before it is polled again was
/// "woken by close()" (API.md on `closed_out`), or, at least, "dropped before
/// its grant" (`cancelled`). It must not vanish from the statistics.
#[test]
fn stats_count_a_future_closed_out_then_dropped_unpolled() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([1, 10]) {
        let hold = sem.try_acquire([1, 10]).unwrap();
        let (cw, waker) = counting_waker();
        let mut f = Box::pin(sem.acquire([1, 1]));
        assert!(poll_with(f.as_mut(), &waker).is_pending());
        let before = sem.stats();
        sem.close();
        wait_until("close to wake the future", || cw.wakes() >= 1);
        drop(f); // woken by close, never polled again
        let after = sem.stats();
        assert_eq!(
            (after.closed_out + after.cancelled) - (before.closed_out + before.cancelled),
            1,
            "{layout}: a queued future ended by close() and then dropped is in neither \
             closed_out nor cancelled: before {before:?}, after {after:?}"
        );
        drop(hold);
    }
}

// ---------------------------------------------------------------------------
// Races: grant against timeout and against a future's drop.
// ---------------------------------------------------------------------------

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// vs-threading #521 class: grants racing timeouts and cancellations never
/// admit more than the capacity, and every permit comes back. (It checks
/// the accounting whatever the races did; a grant that lands just as its
/// wait times out is met only now and then here: the deterministic
/// `a_blocking_wait_past_its_deadline_delivers_an_outcome_that_landed`
/// and `wait_outcomes.rs` stage it.)
#[test]
fn grants_racing_timeouts_and_drops_keep_exact_accounting() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    let iters = if cfg!(miri) { 15 } else { 400 };
    for (layout, sem) in layouts([3, 30]) {
        let in_use = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let tally = Arc::new(Mutex::new((0u64, 0u64, 0u64))); // (ok, timed out, cancelled)
        let workers: Vec<_> = (0..4u64)
            .map(|t| {
                let (sem, in_use, tally) =
                    (Arc::clone(&sem), Arc::clone(&in_use), Arc::clone(&tally));
                bg(move || {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t + 1) * 7919));
                    let (mut ok, mut timed_out, mut cancelled) = (0, 0, 0);
                    for _ in 0..iters {
                        let amounts = [1 + rng.below(2), 1 + rng.below(20)];
                        let wait = Duration::from_micros(rng.below(1500));
                        let held: Option<Held<'_>> = match rng.below(4) {
                            0 | 1 => {
                                let m = TIMED[rng.below(4) as usize];
                                match take_until(&sem, m, amounts, Instant::now() + wait) {
                                    Ok(p) => Some(p),
                                    Err(AcquireError::Timeout) => {
                                        timed_out += 1;
                                        None
                                    }
                                    Err(e) => panic!("{e}"),
                                }
                            }
                            k => {
                                // Poll, wait a little, poll again, then cancel by drop.
                                let (_cw, waker) = counting_waker();
                                let mut f: Pin<
                                    Box<dyn Future<Output = Result<Held<'_>, AcquireError>> + '_>,
                                > = if k == 2 {
                                    let f = sem.acquire(amounts);
                                    Box::pin(async move { f.await.map(Held::Borrowed) })
                                } else {
                                    let f = sem.acquire_owned(amounts);
                                    Box::pin(async move { f.await.map(Held::Owned) })
                                };
                                let mut out = None;
                                for _ in 0..2 {
                                    if let Poll::Ready(r) = poll_with(f.as_mut(), &waker) {
                                        out = Some(r.unwrap());
                                        break;
                                    }
                                    thread::park_timeout(wait);
                                }
                                if out.is_none() {
                                    cancelled += 1;
                                }
                                drop(f);
                                out
                            }
                        };
                        if let Some(p) = held {
                            ok += 1;
                            let a = p.amounts();
                            for d in 0..2 {
                                let now = in_use[d].fetch_add(a[d], SeqCst) + a[d];
                                assert!(now <= [3, 30][d], "dimension {d}: {now} in use");
                            }
                            thread::yield_now();
                            for d in 0..2 {
                                in_use[d].fetch_sub(a[d], SeqCst);
                            }
                            drop(p);
                        }
                    }
                    let mut t = tally.lock().unwrap();
                    t.0 += ok;
                    t.1 += timed_out;
                    t.2 += cancelled;
                })
            })
            .collect();
        for w in workers {
            w.join();
        }
        assert_eq!(sem.waiters(), 0, "{layout}");
        assert_eq!(sem.available(), [3, 30], "{layout}");
        let (ok, timed_out, cancelled) = *tally.lock().unwrap();
        let s = sem.stats();
        assert_eq!(s.acquired, ok, "{layout}: {s:?}");
        assert_eq!(s.timed_out, timed_out, "{layout}: {s:?}");
        assert_eq!(s.cancelled, cancelled, "{layout}: {s:?}");
        assert!(
            s.peak_in_flight[0] <= 3 && s.peak_in_flight[1] <= 30,
            "{layout}: {s:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Many waiters served by one call (more than one batch of wakes)
// ---------------------------------------------------------------------------

/// `n` futures of `amounts` each, queued in order with their own wakers.
fn queue_many(
    sem: &Arc<Sem>,
    n: usize,
    amounts: [u64; 2],
) -> Vec<(
    Arc<common::CountingWaker>,
    Waker,
    Pin<Box<multisem::AcquireOwned<2>>>,
)> {
    (0..n)
        .map(|_| {
            let (cw, waker) = counting_waker();
            let mut f = Box::pin(sem.acquire_owned(amounts));
            assert!(poll_with(f.as_mut(), &waker).is_pending());
            (cw, waker, f)
        })
        .collect()
}

#[test]
fn one_release_serves_many_waiters_in_order_and_wakes_each_once() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([30, 3000]) {
        let hold = sem.try_acquire_owned([30, 3000]).unwrap();
        let mut first = queue_many(&sem, 20, [1, 100]);
        // Blocked threads in the middle of the queue; they hand their
        // permits back to this thread.
        let (tx, rx) = mpsc::channel();
        let threads: Vec<_> = (0..5)
            .map(|i| {
                let (s, tx) = (Arc::clone(&sem), tx.clone());
                let t = thread::spawn(move || tx.send(s.acquire_owned_blocking([1, 100])));
                wait_until("a thread to queue", || sem.waiters() == 21 + i);
                t
            })
            .collect();
        let mut last = queue_many(&sem, 10, [1, 100]);
        // Does not fit until every permit is back: stays queued.
        let mut tail = queue_many(&sem, 1, [30, 3000]);
        assert_eq!(sem.waiters(), 36);
        // One release: 30 fit, the 20 futures, the 5 threads and the first
        // 5 of `last`, in that order.
        drop(hold);
        let mut merged = sem.try_acquire_owned([0, 0]).unwrap();
        for t in threads {
            t.join().unwrap().unwrap();
            merged.merge(rx.recv_timeout(LIMIT).unwrap().unwrap());
        }
        for (i, (cw, waker, f)) in first.iter_mut().chain(&mut last[..5]).enumerate() {
            assert_eq!(cw.wakes(), 1, "{layout}: waiter {i}");
            merged.merge(ready(poll_with(f.as_mut(), waker), "granted").unwrap());
        }
        assert_eq!(merged.amounts(), [30, 3000]);
        assert_eq!(sem.waiters(), 6, "{layout}");
        for (cw, _, _) in &last[5..] {
            assert_eq!(cw.wakes(), 0, "{layout}: served out of order");
        }
        // All 30 back in one release: the last 5 are served; the tail waits
        // for the permits they hold.
        drop(merged);
        let mut held = Vec::new();
        for (cw, waker, f) in &mut last[5..] {
            assert_eq!(cw.wakes(), 1, "{layout}");
            held.push(ready(poll_with(f.as_mut(), waker), "granted").unwrap());
        }
        assert_eq!(sem.waiters(), 1, "{layout}");
        drop(held);
        let (cw, waker, f) = &mut tail[0];
        assert_eq!(cw.wakes(), 1, "{layout}");
        drop(ready(poll_with(f.as_mut(), waker), "granted").unwrap());
        assert_eq!(sem.waiters(), 0);
        assert_eq!(sem.available(), [30, 3000], "{layout}");
    }
}

#[test]
fn close_wakes_many_waiters() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([4, 400]) {
        let hold = sem.try_acquire_owned([4, 400]).unwrap();
        let mut queued = queue_many(&sem, 30, [1, 1]);
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let s = Arc::clone(&sem);
                let t = thread::spawn(move || s.acquire_blocking([1, 1]).map(|p| p.amounts()));
                wait_until("a thread to queue", || sem.waiters() == 31 + i);
                t
            })
            .collect();
        sem.close();
        for t in threads {
            assert_eq!(t.join().unwrap(), Err(AcquireError::Closed), "{layout}");
        }
        for (cw, waker, f) in &mut queued {
            assert_eq!(cw.wakes(), 1, "{layout}");
            let r = ready(poll_with(f.as_mut(), waker), "closed out");
            assert_eq!(r.unwrap_err(), AcquireError::Closed, "{layout}");
        }
        assert_eq!(sem.waiters(), 0);
        drop(hold);
        assert_eq!(sem.available(), [4, 400], "{layout}");
    }
}

#[test]
fn a_shrink_fails_many_oversized_waiters_and_serves_the_rest() {
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([40, 4000]) {
        let hold = sem.try_acquire_owned([40, 4000]).unwrap();
        // Alternating: [2, 10] stays within the new capacity, [1, 200] does not.
        let mut queued = Vec::new();
        for _ in 0..15 {
            queued.extend(queue_many(&sem, 1, [2, 10]));
            queued.extend(queue_many(&sem, 1, [1, 200]));
        }
        sem.set_capacity([40, 150]).unwrap();
        for (i, (cw, waker, f)) in queued.iter_mut().enumerate().skip(1).step_by(2) {
            assert_eq!(cw.wakes(), 1, "{layout}: oversized waiter {i}");
            let r = ready(poll_with(f.as_mut(), waker), "failed");
            assert!(
                matches!(r, Err(AcquireError::ExceedsCapacity { dim: 1, .. })),
                "{layout}: {r:?}"
            );
        }
        assert_eq!(sem.waiters(), 15, "{layout}");
        drop(hold);
        for (i, (cw, waker, f)) in queued.iter_mut().enumerate().step_by(2) {
            assert_eq!(cw.wakes(), 1, "{layout}: waiter {i}");
            let p = ready(poll_with(f.as_mut(), waker), "granted").unwrap();
            assert_eq!(p.amounts(), [2, 10]);
        }
        assert_eq!(sem.waiters(), 0);
        assert_eq!(sem.available(), [40, 150], "{layout}");
    }
}

/// Drops the futures in its slots when woken.
struct DropsOnWake(Mutex<Vec<Pin<Box<multisem::AcquireOwned<2>>>>>);

impl Wake for DropsOnWake {
    fn wake(self: Arc<Self>) {
        drop(std::mem::take(&mut *self.0.lock().unwrap()));
    }
}

#[test]
fn a_shrink_fails_every_oversized_waiter_though_some_leave_between_its_batches() {
    // A shrink fails the oversized waiters a batch of wakes at a time,
    // walking the queue once: each batch is woken with the lock released,
    // and the walk goes on where it stopped. The first waiter's waker drops
    // the ninth (where the walk stopped, after the first batch of eight),
    // the tenth and the fifteenth: the walk must step past them and still
    // fail every other oversized waiter, and the waiters that fit stay
    // queued, in order.
    let _w = Watchdog::this_test(TEST_LIMIT);
    for (layout, sem) in layouts([4, 4]) {
        let hold = sem.try_acquire_owned([4, 4]).unwrap();
        let dropper = Arc::new(DropsOnWake(Mutex::new(Vec::new())));
        let mut first = Box::pin(sem.acquire_owned([4, 1]));
        let first_waker = Waker::from(Arc::clone(&dropper));
        assert!(poll_with(first.as_mut(), &first_waker).is_pending());
        let mut oversized = queue_many(&sem, 19, [4, 1]);
        let fitting = queue_many(&sem, 3, [1, 1]);
        // Dropped in queue order: the ninth (where the walk stands), then
        // two behind it. The walk must stand on the tenth's successor after
        // the second, and stay there after the third.
        for i in [13, 8, 7] {
            let (_, _, f) = oversized.remove(i);
            dropper.0.lock().unwrap().insert(0, f);
        }
        assert_eq!(sem.waiters(), 23, "{layout}");
        sem.set_capacity([3, 4]).unwrap();
        assert!(dropper.0.lock().unwrap().is_empty(), "{layout}: woken");
        let r = ready(poll_with(first.as_mut(), &first_waker), "failed");
        assert!(matches!(
            r,
            Err(AcquireError::ExceedsCapacity { dim: 0, .. })
        ));
        for (i, (cw, waker, f)) in oversized.iter_mut().enumerate() {
            assert_eq!(cw.wakes(), 1, "{layout}: oversized waiter {i}");
            let r = ready(poll_with(f.as_mut(), waker), "failed");
            assert!(
                matches!(r, Err(AcquireError::ExceedsCapacity { dim: 0, .. })),
                "{layout}: {r:?}"
            );
        }
        assert_eq!(sem.waiters(), 3, "{layout}");
        assert_eq!(sem.stats().exceeded, [17, 0], "{layout}");
        assert_eq!(sem.stats().cancelled, 3, "{layout}");
        drop(hold);
        for (cw, waker, mut f) in fitting {
            assert_eq!(cw.wakes(), 1, "{layout}");
            drop(ready(poll_with(f.as_mut(), &waker), "granted").unwrap());
        }
        assert_eq!(sem.available(), [3, 4], "{layout}");
    }
}

#[test]
fn a_queue_past_its_kept_slots_stays_in_order_across_cancels_and_drains() {
    // 300 waiters (past the 63 slots the queue keeps, over several chunks),
    // a random third cancelled, the rest served one at a time in arrival
    // order; three rounds, each after the queue drained. Under Miri, 100
    // waiters (seven chunks) and two rounds: the full test takes it minutes.
    const WAITERS: usize = if cfg!(miri) { 100 } else { 300 };
    const ROUNDS: usize = if cfg!(miri) { 2 } else { 3 };
    let _w = Watchdog::this_test(TEST_LIMIT);
    let mut rng = common::Rng::new(12);
    for (layout, sem) in layouts([1, 1]) {
        for round in 0..ROUNDS {
            let hold = sem.try_acquire_owned([1, 1]).unwrap();
            let mut queued: Vec<_> = queue_many(&sem, WAITERS, [1, 1])
                .into_iter()
                .map(Some)
                .collect();
            for entry in queued.iter_mut() {
                if rng.chance(3) {
                    *entry = None;
                }
            }
            let left = queued.iter().flatten().count();
            assert_eq!(sem.waiters(), left, "{layout} round {round}");
            let mut permit = hold;
            for (i, entry) in queued.iter_mut().enumerate() {
                let Some((cw, waker, f)) = entry else {
                    continue;
                };
                assert_eq!(cw.wakes(), 0, "{layout} round {round}: {i} woken early");
                drop(permit);
                assert_eq!(cw.wakes(), 1, "{layout} round {round}: {i} not woken");
                permit = ready(poll_with(f.as_mut(), waker), "granted").unwrap();
            }
            drop(permit);
            drop(queued);
            assert_eq!(sem.waiters(), 0);
            assert_eq!(sem.available(), [1, 1], "{layout} round {round}");
        }
    }
}

// ---------------------------------------------------------------------------
// A head that fits when its time runs out.

/// A waker whose first `wake` blocks until the test says go (or 5 s pass):
/// a task run inline, holding up the release that woke it.
struct HoldsUpItsWaker {
    go: Mutex<Option<Receiver<()>>>,
    waking: AtomicBool,
}

impl Wake for HoldsUpItsWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.waking.store(true, SeqCst);
        let go = self.go.lock().unwrap().take();
        if let Some(go) = go {
            let _ = go.recv_timeout(Duration::from_secs(5));
        }
    }
}

/// Capacity `ahead + 1` in each dimension; `ahead` async waiters of
/// [1, 1], then the timed one under test, then one more behind it. A
/// return of the whole capacity grants the first 8, a full batch, and
/// wakes them outside the lock before it comes back for the rest; the first
/// waker holds that up. Meanwhile the timed one fits, behind `ahead - 8`
/// others that fit too. Returns the semaphore, those ahead, the one behind,
/// the release's thread and `go`, which lets it finish, once the first
/// waker is held up.
fn timed_one_that_fits_while_a_batch_wakes(
    ahead: u64,
    queue_the_timed_one: impl FnOnce(&Arc<Sem>),
) -> BatchWaking {
    let cap = ahead + 1;
    let sem = Arc::new(MultiSemaphore::new([cap, cap]));
    let held = sem.try_acquire_owned([cap, cap]).unwrap();
    let (go, wait) = mpsc::channel();
    let holds_up = Arc::new(HoldsUpItsWaker {
        go: Mutex::new(Some(wait)),
        waking: AtomicBool::new(false),
    });
    let held_up = Waker::from(Arc::clone(&holds_up));
    let (_, plain) = counting_waker();
    let queued_ahead: Vec<_> = (0..ahead)
        .map(|i| {
            let mut waiter = Box::pin(sem.acquire_owned([1, 1]));
            let waker = if i == 0 { &held_up } else { &plain };
            assert!(poll_with(waiter.as_mut(), waker).is_pending());
            waiter
        })
        .collect();
    queue_the_timed_one(&sem);
    assert_eq!(sem.waiters() as u64, ahead + 1);
    let mut behind = Box::pin(sem.acquire_owned([1, 1]));
    assert!(poll_with(behind.as_mut(), &plain).is_pending());
    let release = thread::spawn(move || drop(held));
    let start = Instant::now();
    while !holds_up.waking.load(SeqCst) {
        assert!(start.elapsed() < LIMIT, "the release never woke the batch");
        thread::yield_now();
    }
    assert_eq!(sem.available(), [cap - 8, cap - 8]);
    BatchWaking {
        sem,
        ahead: queued_ahead,
        behind,
        release,
        go,
    }
}

/// What `timed_one_that_fits_while_a_batch_wakes` set up.
struct BatchWaking {
    sem: Arc<Sem>,
    ahead: Vec<Pin<Box<multisem::AcquireOwned<2>>>>,
    behind: Pin<Box<multisem::AcquireOwned<2>>>,
    release: JoinHandle<()>,
    go: Sender<()>,
}

impl BatchWaking {
    /// Once the timed one has its result `got` (`what` says which): looks at
    /// the one behind it, lets the release finish, and checks that the
    /// timed one was granted [1, 1] and the one behind it nothing; then
    /// that every permit comes back. Returns the semaphore's statistics
    /// from before the futures were dropped.
    fn check(
        mut self,
        got: Result<OwnedPermit<2>, AcquireError>,
        what: &str,
    ) -> multisem::Stats<2> {
        let (_, plain) = counting_waker();
        let behind_got = poll_with(self.behind.as_mut(), &plain).is_ready();
        self.go.send(()).unwrap();
        self.release.join().unwrap();
        let got = got.map(|permit| permit.amounts());
        assert_eq!(
            got,
            Ok([1, 1]),
            "{what} (the one behind it served: {behind_got})"
        );
        assert!(!behind_got, "{what}: the one behind it took the permits");
        let stats = self.sem.stats();
        drop((self.ahead, self.behind));
        assert_eq!(self.sem.available(), self.sem.capacity(), "{what}");
        stats
    }
}

/// A queued acquirer whose time runs out while its turn has come and it
/// fits (a release woke a full batch ahead of it and has not come back
/// for the rest yet) is granted, as a grant that raced its deadline, not
/// timed out: and the one behind it does not take its permits. Also with
/// a second full batch ahead of it that fits, which its own visit serves
/// and wakes first. On the old code it timed out and its own visit to the
/// lock served the one behind it (two reviewers' finds). Blocking and
/// async (`with_timeout`) alike.
#[test]
fn a_head_that_fits_when_its_time_runs_out_is_granted_not_passed_over() {
    let _watchdog = Watchdog::this_test(TEST_LIMIT);
    // Blocking: its 300 ms run out while the batch's first waker holds up.
    let mut timed = None;
    let waking = timed_one_that_fits_while_a_batch_wakes(8, |sem| {
        let waiter = Arc::clone(sem);
        timed = Some(thread::spawn(move || {
            waiter.acquire_owned_blocking_timeout([1, 1], Duration::from_millis(300))
        }));
        let start = Instant::now();
        while sem.waiters() < 9 {
            assert!(start.elapsed() < LIMIT, "the timed acquirer never queued");
            thread::yield_now();
        }
    });
    // It keeps its permit until the one behind it has been looked at.
    let got = timed.unwrap().join().unwrap();
    waking.check(got, "blocking");

    // Async: its timer fires while the batch's first waker holds up.
    for queued_ahead in [8, 16] {
        let fired = Arc::new(AtomicBool::new(false));
        let timer = {
            let fired = Arc::clone(&fired);
            std::future::poll_fn(move |_| {
                if fired.load(SeqCst) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
        };
        let (_, plain) = counting_waker();
        let mut timed = None;
        let waking = timed_one_that_fits_while_a_batch_wakes(queued_ahead, |sem| {
            let mut waiter = Box::pin(sem.acquire_owned([1, 1]).with_timeout(timer));
            assert!(poll_with(waiter.as_mut(), &plain).is_pending());
            timed = Some(waiter);
        });
        let mut timed = timed.unwrap();
        fired.store(true, SeqCst);
        let got = ready(poll_with(timed.as_mut(), &plain), "its timer fired");
        let stats = waking.check(got, &format!("async, {queued_ahead} ahead"));
        // Delivered so far: its grant alone (those ahead are not polled again).
        assert_eq!((stats.timed_out, stats.acquired_after_wait), (0, 1));
    }
}
