//! Integration tests of the public contract (API.md): every method and every
//! error variant of the non-blocking and resizing API, for N = 1, 2 and 3, in
//! the packed single-word default and in the tiered layout, forced with
//! `builder(..).max_capacity([MAX_PERMITS; N])` (see `common::Layout`).
//!
//! Every generic check below is instantiated seven times by `all_shapes!`, as
//! `<check>::n{1,2,3}_{packed,per_dim}` and `<check>::n2_reserve_only`.

// Per-dimension loops index several arrays at once; an index reads best.
#![allow(clippy::needless_range_loop)]

use std::array::from_fn;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use multisem::*;

mod common;
use common::{Layout, Watchdog, counting_waker, poll_once, poll_with, ready};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn max_permits<const N: usize>() -> u64 {
    MultiSemaphore::<N>::MAX_PERMITS
}

fn make_arc<const N: usize>(layout: Layout, cap: [u64; N]) -> Arc<MultiSemaphore<N>> {
    Arc::new(layout.make(cap))
}

/// Small capacities that fit the packed layout for every N up to 3; all
/// divisible by 8 so halves and quarters are exact.
fn caps<const N: usize>() -> [u64; N] {
    from_fn(|d| [8, 1024, 4096][d])
}

/// `v` in dimension `d`, `rest` everywhere else.
fn at<const N: usize>(d: usize, v: u64, rest: u64) -> [u64; N] {
    from_fn(|e| if e == d { v } else { rest })
}

fn sub<const N: usize>(a: [u64; N], b: [u64; N]) -> [u64; N] {
    from_fn(|d| a[d] - b[d])
}

/// Waits (bounded) until `sem.waiters() == n`.
fn wait_for_waiters<const N: usize>(sem: &MultiSemaphore<N>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while sem.waiters() != n {
        assert!(
            Instant::now() < deadline,
            "waiters() stayed {} instead of {n}",
            sem.waiters()
        );
        thread::sleep(Duration::from_millis(1));
    }
}

macro_rules! all_shapes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::Layout;
            #[test]
            fn n1_packed() {
                super::$name::<1>(Layout::Packed)
            }
            #[test]
            fn n1_per_dim() {
                super::$name::<1>(Layout::PerDim)
            }
            #[test]
            fn n2_packed() {
                super::$name::<2>(Layout::Packed)
            }
            #[test]
            fn n2_per_dim() {
                super::$name::<2>(Layout::PerDim)
            }
            #[test]
            fn n3_packed() {
                super::$name::<3>(Layout::Packed)
            }
            #[test]
            fn n3_per_dim() {
                super::$name::<3>(Layout::PerDim)
            }
            #[test]
            fn n2_reserve_only() {
                super::$name::<2>(Layout::ReserveOnly)
            }
        }
    )*};
}

all_shapes!(
    fresh_state,
    try_acquire_success_and_drop,
    try_acquire_insufficient_exact,
    try_acquire_insufficient_several_short,
    exceeds_capacity_any_dimension,
    exceeds_capacity_never_blocks,
    closed_fails_every_acquire,
    close_keeps_outstanding_permits_valid,
    error_order,
    zero_requests,
    zero_request_while_queued,
    try_acquire_does_not_overtake_queued,
    waiters_counts_queued_acquirers,
    permit_split,
    permit_merge,
    permit_forget_shrinks_capacity,
    owned_permits,
    owned_permit_dropped_on_another_thread,
    add_permits_grows,
    add_permits_serves_queued,
    set_capacity_grow_and_shrink,
    set_capacity_below_in_flight,
    set_capacity_fails_queued_that_no_longer_fit,
    forget_while_over_capacity,
    forget_fails_queued_that_no_longer_fit,
    layout_is_as_requested,
    permit_semaphore_accessor,
    capacity_overflow_changes_nothing,
    set_capacity_overflow_changes_nothing,
    set_capacity_of_one_dimension,
    merge_of_huge_permits,
    closed_stays_closed,
    stats_counters,
    stats_without_peaks,
    in_flight_exact_after_shrink,
    head_request_and_shortfall,
    blocked_behind_head_counts_what_fifo_holds_back,
    acquired_amounts_when_tracked,
    waits_and_timeouts_by_dimension,
    try_acquire_refused_by_the_heads_dimension,
    exceeded_counts_every_kind_of_acquire,
    with_timeout_counts_a_timeout,
);

// ---------------------------------------------------------------------------
// Construction (N == 0 and N > 64 are compile errors: see the
// compile_fail doctests on `MultiSemaphore::new`)
// ---------------------------------------------------------------------------

#[test]
#[should_panic(expected = "capacity 1152921504606846977 of dimension 1 is above MAX_PERMITS")]
fn new_panics_above_max_permits() {
    let _ = MultiSemaphore::new([1, MultiSemaphore::<2>::MAX_PERMITS + 1]);
}

#[test]
#[should_panic(expected = "is above MAX_PERMITS")]
fn new_panics_at_u64_max() {
    let _ = MultiSemaphore::new([u64::MAX]);
}

#[test]
#[should_panic(expected = "capacity 10 of dimension 1 is above its max capacity 9")]
fn builder_panics_when_capacity_above_max() {
    let _ = MultiSemaphore::builder([10, 10])
        .max_capacity([10, 9])
        .build();
}

#[test]
#[should_panic(expected = "max capacity 1152921504606846977 of dimension 1 is above MAX_PERMITS")]
fn builder_panics_when_max_above_max_permits() {
    let m = MultiSemaphore::<2>::MAX_PERMITS;
    let _ = MultiSemaphore::builder([10, 10])
        .max_capacity([m, m + 1])
        .build();
}

#[test]
fn max_permits_is_2_pow_60() {
    // API.md: at least 2^60; the crate gives exactly that, for every N.
    assert_eq!(MultiSemaphore::<1>::MAX_PERMITS, 1 << 60);
    assert_eq!(MultiSemaphore::<2>::MAX_PERMITS, 1 << 60);
    assert_eq!(MultiSemaphore::<3>::MAX_PERMITS, 1 << 60);
}

#[test]
fn new_accepts_max_permits_and_zero() {
    let m = MultiSemaphore::<2>::MAX_PERMITS;
    let sem = MultiSemaphore::new([m, 0]);
    assert_eq!(sem.capacity(), [m, 0]);
    assert_eq!(sem.available(), [m, 0]);
    let p = sem.try_acquire([m, 0]).unwrap();
    assert_eq!(sem.available(), [0, 0]);
    assert_eq!(
        sem.try_acquire([0, 1]).unwrap_err(),
        common::TryExceeds {
            dim: 1,
            requested: 1,
            capacity: 0
        }
    );
    drop(p);
    assert_eq!(sem.available(), [m, 0]);
}

#[test]
fn builder_defaults_match_new() {
    let a = MultiSemaphore::new([1024, 100 << 20]);
    let b = MultiSemaphore::builder([1024, 100 << 20]).build();
    assert_eq!(a.capacity(), b.capacity());
    assert_eq!(a.available(), b.available());
    assert_eq!(a.max_capacity(), b.max_capacity());
}

fn fresh_state<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    assert_eq!(sem.capacity(), cap);
    assert_eq!(sem.available(), cap);
    assert_eq!(sem.waiters(), 0);
    assert!(!sem.is_closed());
    let max = sem.max_capacity();
    for d in 0..N {
        assert!(
            max[d] >= cap[d],
            "max_capacity {max:?} below capacity {cap:?}"
        );
        assert!(max[d] <= max_permits::<N>());
    }
    if layout != Layout::Packed {
        assert_eq!(max, [max_permits::<N>(); N]);
    }
    assert_eq!(sem.stats(), Stats::<N>::default());
    assert!(!format!("{sem:?}").is_empty());
}

// ---------------------------------------------------------------------------
// try_acquire
// ---------------------------------------------------------------------------

fn try_acquire_success_and_drop<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let a: [u64; N] = from_fn(|d| cap[d] / 2);
    let p = sem.try_acquire(a).unwrap();
    assert_eq!(p.amounts(), a);
    assert_eq!(sem.available(), sub(cap, a));
    assert_eq!(sem.capacity(), cap);
    let b: [u64; N] = from_fn(|d| cap[d] / 4);
    let q = sem.try_acquire(b).unwrap();
    assert_eq!(sem.available(), sub(sub(cap, a), b));
    drop(p);
    assert_eq!(sem.available(), sub(cap, b));
    drop(q);
    assert_eq!(sem.available(), cap);

    // Everything at once, then nothing is left in any dimension.
    let all = sem.try_acquire(cap).unwrap();
    assert_eq!(all.amounts(), cap);
    assert_eq!(sem.available(), [0; N]);
    for d in 0..N {
        assert_eq!(
            sem.try_acquire(at(d, 1, 0)).unwrap_err(),
            common::Insufficient {
                dim: d,
                requested: 1,
                available: 0
            }
        );
    }
    drop(all);
    assert_eq!(sem.available(), cap);

    // Many small ones until exhaustion of dimension 0.
    let ones = [1; N];
    let mut held = Vec::new();
    while let Ok(p) = sem.try_acquire(ones) {
        held.push(p);
    }
    assert_eq!(held.len() as u64, cap[0]);
    assert_eq!(sem.available(), from_fn(|d| cap[d] - cap[0]));
    held.clear();
    assert_eq!(sem.available(), cap);
}

fn try_acquire_insufficient_exact<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    for d in 0..N {
        let sem = layout.make(cap);
        // Leave exactly 3 available in dimension d, everything elsewhere.
        let hold = sem.try_acquire(at(d, cap[d] - 3, 0)).unwrap();
        let before: [u64; N] = from_fn(|e| if e == d { 3 } else { cap[e] });
        assert_eq!(sem.available(), before);
        let err = sem.try_acquire(at(d, 4, 1)).unwrap_err();
        assert_eq!(
            err,
            common::Insufficient {
                dim: d,
                requested: 4,
                available: 3
            }
        );
        // All or nothing: the dimensions that did fit were not taken.
        assert_eq!(sem.available(), before);
        let ok = sem.try_acquire(at(d, 3, 1)).unwrap();
        assert_eq!(
            sem.available(),
            from_fn(|e| if e == d { 0 } else { cap[e] - 1 })
        );
        drop(ok);
        drop(hold);
        assert_eq!(sem.available(), cap);
    }
}

fn try_acquire_insufficient_several_short<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    // Every dimension has 2 left; ask for 3 everywhere.
    let hold = sem.try_acquire(from_fn(|d| cap[d] - 2)).unwrap();
    match sem.try_acquire([3; N]).unwrap_err() {
        TryAcquireError::Insufficient {
            dim,
            requested,
            available,
            ..
        } => {
            assert!(dim < N);
            assert_eq!(requested, 3);
            assert_eq!(available, 2);
        }
        other => panic!("expected Insufficient, got {other:?}"),
    }
    assert_eq!(sem.available(), [2; N]);
    drop(hold);
    assert_eq!(sem.available(), cap);
}

fn exceeds_capacity_any_dimension<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    for d in 0..N {
        let req = at(d, cap[d] + 1, 1);
        assert_eq!(
            sem.try_acquire(req).unwrap_err(),
            common::TryExceeds {
                dim: d,
                requested: cap[d] + 1,
                capacity: cap[d]
            }
        );
        assert_eq!(
            sem.try_acquire(at(d, u64::MAX, 0)).unwrap_err(),
            common::TryExceeds {
                dim: d,
                requested: u64::MAX,
                capacity: cap[d]
            }
        );
        assert_eq!(sem.available(), cap);
    }
    // Also when the dimensions that fit are exhausted: ExceedsCapacity wins over
    // Insufficient (it can never succeed, whatever the state).
    let all = sem.try_acquire(cap).unwrap();
    for d in 0..N {
        assert_eq!(
            sem.try_acquire(at(d, cap[d] + 1, 1)).unwrap_err(),
            common::TryExceeds {
                dim: d,
                requested: cap[d] + 1,
                capacity: cap[d]
            }
        );
    }
    drop(all);
    assert_eq!(sem.available(), cap);
}

fn exceeds_capacity_never_blocks<const N: usize>(layout: Layout) {
    let _wd = Watchdog::new("exceeds_capacity_never_blocks", Duration::from_secs(60));
    let cap = caps::<N>();
    let sem = make_arc(layout, cap);
    // Hold everything and queue a waiter, so that a queued request would block.
    let all = sem.try_acquire(cap).unwrap();
    let mut queued = Box::pin(sem.acquire([1; N]));
    assert!(poll_once(queued.as_mut()).is_pending());
    assert_eq!(sem.waiters(), 1);
    let long = Duration::from_secs(3600);
    for d in 0..N {
        let req = at(d, cap[d] + 1, 0);
        let want = common::Exceeds {
            dim: d,
            requested: cap[d] + 1,
            capacity: cap[d],
        };
        assert_eq!(sem.acquire_blocking(req).unwrap_err(), want);
        assert_eq!(sem.acquire_blocking_timeout(req, long).unwrap_err(), want);
        assert_eq!(
            sem.acquire_blocking_deadline(req, Instant::now() + long)
                .unwrap_err(),
            want
        );
        assert_eq!(sem.acquire_owned_blocking(req).unwrap_err(), want);
        assert_eq!(
            sem.acquire_owned_blocking_timeout(req, long).unwrap_err(),
            want
        );
        assert_eq!(
            sem.acquire_owned_blocking_deadline(req, Instant::now() + long)
                .unwrap_err(),
            want
        );
        let mut f = Box::pin(sem.acquire(req));
        match poll_once(f.as_mut()) {
            Poll::Ready(r) => assert_eq!(r.unwrap_err(), want),
            Poll::Pending => panic!("acquire above capacity is pending"),
        }
        let mut f = Box::pin(sem.acquire_owned(req));
        match poll_once(f.as_mut()) {
            Poll::Ready(r) => assert_eq!(r.unwrap_err(), want),
            Poll::Pending => panic!("acquire_owned above capacity is pending"),
        }
        assert_eq!(
            sem.try_acquire_owned(req).unwrap_err(),
            common::TryExceeds {
                dim: d,
                requested: cap[d] + 1,
                capacity: cap[d]
            }
        );
    }
    assert_eq!(sem.waiters(), 1);
    drop(queued);
    assert_eq!(sem.waiters(), 0);
    drop(all);
    assert_eq!(sem.available(), cap);
}

fn closed_fails_every_acquire<const N: usize>(layout: Layout) {
    let _wd = Watchdog::new("closed_fails_every_acquire", Duration::from_secs(60));
    let cap = caps::<N>();
    let sem = make_arc(layout, cap);
    assert!(!sem.is_closed());
    sem.close();
    assert!(sem.is_closed());
    sem.close(); // idempotent
    assert!(sem.is_closed());
    let long = Duration::from_secs(3600);
    for req in [[1; N], [0; N], cap] {
        assert_eq!(sem.try_acquire(req).unwrap_err(), TryAcquireError::Closed);
        assert_eq!(
            sem.try_acquire_owned(req).unwrap_err(),
            TryAcquireError::Closed
        );
        assert_eq!(sem.acquire_blocking(req).unwrap_err(), AcquireError::Closed);
        assert_eq!(
            sem.acquire_blocking_timeout(req, long).unwrap_err(),
            AcquireError::Closed
        );
        assert_eq!(
            sem.acquire_blocking_deadline(req, Instant::now() + long)
                .unwrap_err(),
            AcquireError::Closed
        );
        assert_eq!(
            sem.acquire_blocking_deadline(req, Instant::now() - Duration::from_millis(1))
                .unwrap_err(),
            AcquireError::Closed
        );
        assert_eq!(
            sem.acquire_owned_blocking(req).unwrap_err(),
            AcquireError::Closed
        );
        assert_eq!(
            sem.acquire_owned_blocking_timeout(req, long).unwrap_err(),
            AcquireError::Closed
        );
        assert_eq!(
            sem.acquire_owned_blocking_deadline(req, Instant::now() + long)
                .unwrap_err(),
            AcquireError::Closed
        );
        let mut f = Box::pin(sem.acquire(req));
        assert_eq!(
            poll_once(f.as_mut()).map(|r| r.map(|p| p.amounts())),
            Poll::Ready(Err(AcquireError::Closed))
        );
        let mut f = Box::pin(sem.acquire_owned(req));
        assert_eq!(
            poll_once(f.as_mut()).map(|r| r.map(|p| p.amounts())),
            Poll::Ready(Err(AcquireError::Closed))
        );
    }
    assert_eq!(sem.available(), cap);
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.stats().closed_out, 3 * 11);
    assert_eq!(sem.stats().acquired, 0);
}

fn close_keeps_outstanding_permits_valid<const N: usize>(layout: Layout) {
    let _wd = Watchdog::new(
        "close_keeps_outstanding_permits_valid",
        Duration::from_secs(60),
    );
    let cap = caps::<N>();
    let sem = make_arc(layout, cap);
    let half: [u64; N] = from_fn(|d| cap[d] / 2);
    let mut p = sem.try_acquire(half).unwrap();
    let o = sem.try_acquire_owned([1; N]).unwrap();

    // A blocked thread and a queued future are both woken with Closed.
    let sem2 = Arc::clone(&sem);
    let blocked = thread::spawn(move || {
        sem2.acquire_blocking_timeout(cap, Duration::from_secs(30))
            .err()
    });
    wait_for_waiters(&sem, 1);
    let (waker, w) = counting_waker();
    let mut fut = Box::pin(sem.acquire_owned(cap));
    assert!(poll_with(fut.as_mut(), &w).is_pending());
    wait_for_waiters(&sem, 2);

    sem.close();
    assert_eq!(blocked.join().unwrap(), Some(AcquireError::Closed));
    assert!(waker.wakes() >= 1, "queued future not woken by close");
    assert_eq!(
        poll_with(fut.as_mut(), &w).map(|r| r.map(|p| p.amounts())),
        Poll::Ready(Err(AcquireError::Closed))
    );
    assert_eq!(sem.waiters(), 0);

    // Permits out stay valid: amounts, split, merge, drop all still work.
    assert_eq!(p.amounts(), half);
    let part = p.split([1; N]).unwrap();
    assert_eq!(part.amounts(), [1; N]);
    p.merge(part);
    assert_eq!(p.amounts(), half);
    assert_eq!(sem.available(), sub(sub(cap, half), [1; N]));
    drop(p);
    assert_eq!(sem.available(), sub(cap, [1; N]));
    thread::spawn(move || drop(o)).join().unwrap();
    assert_eq!(sem.available(), cap);
    assert_eq!(sem.capacity(), cap);
    assert!(sem.is_closed());
}

fn error_order<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let all = sem.try_acquire(cap).unwrap();
    // Before close: a fitting request is Insufficient / Timeout.
    assert!(matches!(
        sem.try_acquire([1; N]).unwrap_err(),
        TryAcquireError::Insufficient { .. }
    ));
    let past = Instant::now() - Duration::from_millis(5);
    assert_eq!(
        sem.acquire_blocking_deadline([1; N], past).unwrap_err(),
        AcquireError::Timeout
    );
    sem.close();
    // ExceedsCapacity before Closed.
    let last = N - 1;
    let too_big = at(last, cap[last] + 1, 0);
    assert_eq!(
        sem.try_acquire(too_big).unwrap_err(),
        common::TryExceeds {
            dim: last,
            requested: cap[last] + 1,
            capacity: cap[last]
        }
    );
    assert_eq!(
        sem.acquire_blocking_deadline(too_big, past).unwrap_err(),
        common::Exceeds {
            dim: last,
            requested: cap[last] + 1,
            capacity: cap[last]
        }
    );
    // Closed before Insufficient / Timeout (nothing is available).
    assert_eq!(
        sem.try_acquire([1; N]).unwrap_err(),
        TryAcquireError::Closed
    );
    assert_eq!(
        sem.acquire_blocking_deadline([1; N], past).unwrap_err(),
        AcquireError::Closed
    );
    assert_eq!(
        sem.acquire_blocking_timeout([1; N], Duration::from_millis(1))
            .unwrap_err(),
        AcquireError::Closed
    );
    drop(all);
    assert_eq!(sem.available(), cap);
}

fn zero_requests<const N: usize>(layout: Layout) {
    let _wd = Watchdog::new("zero_requests", Duration::from_secs(60));
    let cap = caps::<N>();
    let sem = make_arc(layout, cap);
    let z = sem.try_acquire([0; N]).unwrap();
    assert_eq!(z.amounts(), [0; N]);
    assert_eq!(sem.available(), cap);
    // Even when nothing is available in any dimension.
    let all = sem.try_acquire(cap).unwrap();
    let z2 = sem.try_acquire([0; N]).unwrap();
    let z3 = sem.try_acquire_owned([0; N]).unwrap();
    let z4 = sem.acquire_blocking([0; N]).unwrap();
    let z5 = sem
        .acquire_blocking_timeout([0; N], Duration::from_secs(60))
        .unwrap();
    let z6 = sem
        .acquire_blocking_deadline([0; N], Instant::now() - Duration::from_secs(1))
        .unwrap();
    let z7 = sem.acquire_owned_blocking([0; N]).unwrap();
    let mut f = Box::pin(sem.acquire([0; N]));
    let z8 = ready(poll_once(f.as_mut()), "zero async acquire is pending").unwrap();
    for p in [&z2, &z4, &z5, &z6, &z8] {
        assert_eq!(p.amounts(), [0; N]);
    }
    assert_eq!(z3.amounts(), [0; N]);
    assert_eq!(z7.amounts(), [0; N]);
    assert_eq!(sem.available(), [0; N]);
    assert_eq!(sem.stats().acquired, 9);
    drop((z, z2, z3, z4, z5, z6, z7, z8));
    drop(f);
    assert_eq!(sem.available(), [0; N]);
    drop(all);
    assert_eq!(sem.available(), cap);
    assert_eq!(sem.capacity(), cap);
    // A zero permit's forget changes nothing.
    sem.try_acquire([0; N]).unwrap().forget();
    assert_eq!(sem.capacity(), cap);
    assert_eq!(sem.available(), cap);
}

fn zero_request_while_queued<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let all = sem.try_acquire(cap).unwrap();
    let mut queued = Box::pin(sem.acquire([1; N]));
    assert!(poll_once(queued.as_mut()).is_pending());
    assert_eq!(sem.waiters(), 1);
    // Taking nothing overtakes nobody: it succeeds at once.
    let z = sem.try_acquire([0; N]).unwrap();
    assert_eq!(z.amounts(), [0; N]);
    drop(z);
    drop(queued);
    drop(all);
    assert_eq!(sem.available(), cap);
}

fn try_acquire_does_not_overtake_queued<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let half: [u64; N] = from_fn(|d| cap[d] / 2);
    let h = sem.try_acquire(half).unwrap();
    // The head wants everything: it cannot fit until `h` comes back.
    let (waker, w) = counting_waker();
    let mut head = Box::pin(sem.acquire(cap));
    assert!(poll_with(head.as_mut(), &w).is_pending());
    assert_eq!(sem.waiters(), 1);
    // The counters alone would fit [1; N], but a newcomer may not barge.
    assert!(matches!(
        sem.try_acquire([1; N]).unwrap_err(),
        TryAcquireError::Insufficient { .. }
    ));
    assert_eq!(
        sem.acquire_blocking_deadline([1; N], Instant::now())
            .unwrap_err(),
        AcquireError::Timeout
    );
    assert_eq!(sem.available(), sub(cap, half));
    drop(h);
    assert!(waker.wakes() >= 1, "head not woken");
    let p = ready(
        poll_with(head.as_mut(), &w),
        "head not granted after release",
    )
    .unwrap();
    assert_eq!(p.amounts(), cap);
    assert_eq!(sem.available(), [0; N]);
    assert_eq!(sem.waiters(), 0);
    drop(p);
    assert_eq!(sem.available(), cap);
    // With the queue empty, try_acquire works again.
    drop(sem.try_acquire([1; N]).unwrap());
}

fn waiters_counts_queued_acquirers<const N: usize>(layout: Layout) {
    let _wd = Watchdog::new("waiters_counts_queued_acquirers", Duration::from_secs(60));
    let cap = caps::<N>();
    let sem = make_arc(layout, cap);
    let all = sem.try_acquire_owned(cap).unwrap();
    assert_eq!(sem.waiters(), 0);
    // A future that is created but never polled is not queued.
    let f0 = sem.acquire_owned([1; N]);
    assert_eq!(sem.waiters(), 0);
    let mut f1 = Box::pin(sem.acquire_owned([1; N]));
    assert!(poll_once(f1.as_mut()).is_pending());
    assert_eq!(sem.waiters(), 1);
    // Polling again does not queue it twice.
    assert!(poll_once(f1.as_mut()).is_pending());
    assert_eq!(sem.waiters(), 1);
    let sem2 = Arc::clone(&sem);
    let t = thread::spawn(move || {
        sem2.acquire_blocking_timeout([1; N], Duration::from_secs(30))
            .map(|p| p.amounts())
    });
    wait_for_waiters(&sem, 2);
    drop(f0);
    assert_eq!(sem.waiters(), 2);
    drop(f1); // cancelled: the blocked thread is now the head
    assert_eq!(sem.waiters(), 1);
    drop(all);
    assert_eq!(t.join().unwrap(), Ok([1; N]));
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.available(), cap);
}

// ---------------------------------------------------------------------------
// Permits
// ---------------------------------------------------------------------------

fn permit_split<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let half: [u64; N] = from_fn(|d| cap[d] / 2);
    let mut p = sem.try_acquire(half).unwrap();
    let quarter: [u64; N] = from_fn(|d| cap[d] / 4);
    let q = p.split(quarter).unwrap();
    assert_eq!(q.amounts(), quarter);
    assert_eq!(p.amounts(), sub(half, quarter));
    assert_eq!(sem.available(), sub(cap, half));
    // More than held in any one dimension: None, and nothing changes.
    for d in 0..N {
        let too_much = at(d, p.amounts()[d] + 1, 0);
        assert!(p.split(too_much).is_none());
        assert_eq!(p.amounts(), sub(half, quarter));
        let too_much = at(d, u64::MAX, 1);
        assert!(p.split(too_much).is_none());
        assert_eq!(p.amounts(), sub(half, quarter));
    }
    assert_eq!(sem.available(), sub(cap, half));
    // Zero split: an empty permit.
    let z = p.split([0; N]).unwrap();
    assert_eq!(z.amounts(), [0; N]);
    drop(z);
    assert_eq!(sem.available(), sub(cap, half));
    // Split everything: the original is left empty but still valid.
    let rest = p.amounts();
    let r = p.split(rest).unwrap();
    assert_eq!(p.amounts(), [0; N]);
    assert_eq!(r.amounts(), rest);
    drop(q);
    assert_eq!(sem.available(), sub(cap, rest));
    drop(p);
    assert_eq!(sem.available(), sub(cap, rest));
    drop(r);
    assert_eq!(sem.available(), cap);
    assert_eq!(sem.capacity(), cap);
}

fn permit_merge<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let a = [1; N];
    let b: [u64; N] = from_fn(|d| cap[d] / 2);
    let mut p = sem.try_acquire(a).unwrap();
    let q = sem.try_acquire(b).unwrap();
    p.merge(q);
    assert_eq!(p.amounts(), from_fn(|d| a[d] + b[d]));
    assert_eq!(sem.available(), from_fn(|d| cap[d] - a[d] - b[d]));
    let z = sem.try_acquire([0; N]).unwrap();
    p.merge(z);
    assert_eq!(p.amounts(), from_fn(|d| a[d] + b[d]));
    // Split and merge back round-trips.
    let s = p.split(a).unwrap();
    p.merge(s);
    assert_eq!(p.amounts(), from_fn(|d| a[d] + b[d]));
    drop(p);
    assert_eq!(sem.available(), cap);
}

#[test]
#[should_panic(expected = "cannot merge permits of two different semaphores")]
fn merge_of_different_semaphores_panics() {
    let a = MultiSemaphore::new([4, 4]);
    let b = MultiSemaphore::new([4, 4]);
    let mut p = a.try_acquire([1, 1]).unwrap();
    let q = b.try_acquire([1, 1]).unwrap();
    p.merge(q);
}

#[test]
#[should_panic(expected = "cannot merge permits of two different semaphores")]
fn merge_of_different_owned_semaphores_panics() {
    let a = Arc::new(MultiSemaphore::new([4]));
    let b = Arc::new(MultiSemaphore::new([4]));
    let mut p = a.try_acquire_owned([1]).unwrap();
    let q = b.try_acquire_owned([1]).unwrap();
    p.merge(q);
}

#[test]
fn merge_of_different_semaphores_changes_nothing() {
    // The panic happens before anything moves: both semaphores keep exact books
    // once the permits are dropped during unwinding.
    let a = MultiSemaphore::new([4, 40]);
    let b = MultiSemaphore::builder([4, 40])
        .max_capacity([MultiSemaphore::<2>::MAX_PERMITS; 2])
        .build();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut p = a.try_acquire([1, 10]).unwrap();
        let q = b.try_acquire([2, 20]).unwrap();
        p.merge(q);
    }));
    assert!(r.is_err());
    assert_eq!(a.available(), [4, 40]);
    assert_eq!(b.available(), [4, 40]);
    assert_eq!(a.capacity(), [4, 40]);
    assert_eq!(b.capacity(), [4, 40]);
}

fn permit_forget_shrinks_capacity<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let a: [u64; N] = from_fn(|d| cap[d] / 4);
    let p = sem.try_acquire(a).unwrap();
    let q = sem.try_acquire([1; N]).unwrap();
    p.forget();
    assert_eq!(sem.capacity(), sub(cap, a));
    assert_eq!(sem.available(), sub(sub(cap, a), [1; N]));
    drop(q);
    assert_eq!(sem.available(), sem.capacity());
    // ExceedsCapacity now uses the smaller capacity.
    let c = sem.capacity();
    assert_eq!(
        sem.try_acquire(at(0, c[0] + 1, 0)).unwrap_err(),
        common::TryExceeds {
            dim: 0,
            requested: c[0] + 1,
            capacity: c[0]
        }
    );
    // Forget everything: capacity 0.
    sem.try_acquire(c).unwrap().forget();
    assert_eq!(sem.capacity(), [0; N]);
    assert_eq!(sem.available(), [0; N]);
    // add_permits brings capacity back.
    sem.add_permits(cap).unwrap();
    assert_eq!(sem.capacity(), cap);
    assert_eq!(sem.available(), cap);
}

fn owned_permits<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = make_arc(layout, cap);
    let half: [u64; N] = from_fn(|d| cap[d] / 2);
    let mut p = sem.try_acquire_owned(half).unwrap();
    assert_eq!(p.amounts(), half);
    assert_eq!(sem.available(), sub(cap, half));
    let q = p.split([1; N]).unwrap();
    assert_eq!(q.amounts(), [1; N]);
    assert!(p.split(from_fn(|d| cap[d])).is_none());
    assert_eq!(p.amounts(), sub(half, [1; N]));
    p.merge(q);
    assert_eq!(p.amounts(), half);
    // Insufficient and ExceedsCapacity from the owned twin.
    assert_eq!(
        sem.try_acquire_owned(at(0, cap[0] - half[0] + 1, 0))
            .unwrap_err(),
        common::Insufficient {
            dim: 0,
            requested: cap[0] - half[0] + 1,
            available: cap[0] - half[0]
        }
    );
    // The semaphore may go away first: the permit keeps it alive.
    let weak = Arc::downgrade(&sem);
    drop(sem);
    let sem = weak
        .upgrade()
        .expect("owned permit keeps its semaphore alive");
    let f = sem.try_acquire_owned([1; N]).unwrap();
    f.forget();
    assert_eq!(sem.capacity(), sub(cap, [1; N]));
    drop(p);
    assert_eq!(sem.available(), sub(cap, [1; N]));
    drop(sem);
    assert!(
        weak.upgrade().is_none(),
        "no permit left, no reference left"
    );
}

fn owned_permit_dropped_on_another_thread<const N: usize>(layout: Layout) {
    let _wd = Watchdog::new(
        "owned_permit_dropped_on_another_thread",
        Duration::from_secs(60),
    );
    let cap = caps::<N>();
    let sem = make_arc(layout, cap);
    let p = sem.try_acquire_owned(cap).unwrap();
    let (tx, rx) = mpsc::channel::<OwnedPermit<N>>();
    let completer = thread::spawn(move || {
        // A completion callback: receives the permit and drops it.
        let mut n = 0;
        while let Ok(p) = rx.recv() {
            n += p.amounts()[0];
            drop(p);
        }
        n
    });
    assert_eq!(sem.available(), [0; N]);
    tx.send(p).unwrap();
    // The acquire below can only succeed once the other thread dropped it.
    let again = sem
        .acquire_owned_blocking_timeout(cap, Duration::from_secs(30))
        .unwrap();
    tx.send(again).unwrap();
    for _ in 0..100 {
        let p = sem
            .acquire_owned_blocking_timeout([1; N], Duration::from_secs(30))
            .unwrap();
        tx.send(p).unwrap();
    }
    drop(tx);
    assert_eq!(completer.join().unwrap(), 2 * cap[0] + 100);
    assert_eq!(sem.available(), cap);
}

// ---------------------------------------------------------------------------
// Resizing
// ---------------------------------------------------------------------------

fn add_permits_grows<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    sem.add_permits([0; N]).unwrap();
    assert_eq!(sem.capacity(), cap);
    let p = sem.try_acquire([1; N]).unwrap();
    sem.add_permits(from_fn(|d| d as u64 + 1)).unwrap();
    let cap2: [u64; N] = from_fn(|d| cap[d] + d as u64 + 1);
    assert_eq!(sem.capacity(), cap2);
    assert_eq!(sem.available(), sub(cap2, [1; N]));
    drop(p);
    assert_eq!(sem.available(), cap2);
    let all = sem.try_acquire(cap2).unwrap();
    assert_eq!(sem.available(), [0; N]);
    drop(all);
    // Grow one dimension from zero.
    let z = layout.make(at::<N>(N - 1, 0, 5));
    assert_eq!(
        z.try_acquire([1; N]).unwrap_err(),
        common::TryExceeds {
            dim: N - 1,
            requested: 1,
            capacity: 0
        }
    );
    z.add_permits(at(N - 1, 1, 0)).unwrap();
    drop(z.try_acquire([1; N]).unwrap());
    assert_eq!(z.available(), at(N - 1, 1, 5));
}

fn add_permits_serves_queued<const N: usize>(layout: Layout) {
    let _wd = Watchdog::new("add_permits_serves_queued", Duration::from_secs(60));
    let cap = caps::<N>();
    let sem = make_arc(layout, cap);
    let all = sem.try_acquire(cap).unwrap();
    let sem2 = Arc::clone(&sem);
    let t = thread::spawn(move || {
        sem2.acquire_blocking_timeout([2; N], Duration::from_secs(30))
            .map(|p| p.amounts())
    });
    wait_for_waiters(&sem, 1);
    sem.add_permits([1; N]).unwrap();
    assert_eq!(sem.waiters(), 1, "granted with too little");
    sem.add_permits([1; N]).unwrap();
    assert_eq!(t.join().unwrap(), Ok([2; N]));
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.capacity(), from_fn(|d| cap[d] + 2));
    assert_eq!(sem.available(), [2; N]);
    drop(all);
    assert_eq!(sem.available(), sem.capacity());
}

fn set_capacity_grow_and_shrink<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let big: [u64; N] = from_fn(|d| cap[d] * 2);
    sem.set_capacity(big).unwrap();
    assert_eq!(sem.capacity(), big);
    assert_eq!(sem.available(), big);
    let p = sem.try_acquire(cap).unwrap();
    let small: [u64; N] = from_fn(|d| cap[d] + 1);
    sem.set_capacity(small).unwrap();
    assert_eq!(sem.capacity(), small);
    assert_eq!(sem.available(), [1; N]);
    assert_eq!(
        sem.try_acquire(at(0, small[0] + 1, 0)).unwrap_err(),
        common::TryExceeds {
            dim: 0,
            requested: small[0] + 1,
            capacity: small[0]
        }
    );
    drop(p);
    assert_eq!(sem.available(), small);
    sem.set_capacity(small).unwrap(); // same value: no change
    assert_eq!(sem.capacity(), small);
    assert_eq!(sem.available(), small);
    sem.set_capacity([0; N]).unwrap();
    assert_eq!(sem.capacity(), [0; N]);
    assert_eq!(sem.available(), [0; N]);
    drop(sem.try_acquire([0; N]).unwrap());
    sem.set_capacity(cap).unwrap();
    assert_eq!(sem.available(), cap);
}

/// `set_capacity_of` resizes one dimension, below what is in flight too,
/// and leaves the others as they are; past the maximum it changes nothing.
fn set_capacity_of_one_dimension<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let max = sem.max_capacity();
    let held = sem.try_acquire([2; N]).unwrap();
    for d in 0..N {
        // Grow, then shrink below what is in flight.
        sem.set_capacity_of(d, cap[d] + 5).unwrap();
        let grown: [u64; N] = from_fn(|e| if e == d { cap[e] + 5 } else { cap[e] });
        assert_eq!(sem.capacity(), grown);
        assert_eq!(sem.available(), sub(grown, [2; N]));
        sem.set_capacity_of(d, 1).unwrap();
        let shrunk: [u64; N] = from_fn(|e| if e == d { 1 } else { cap[e] });
        assert_eq!(sem.capacity(), shrunk);
        assert_eq!(sem.in_flight(), [2; N]);
        assert_eq!(sem.available()[d], 0);
        // Past the maximum: an error, and nothing changes.
        assert_eq!(
            sem.set_capacity_of(d, max[d] + 1).unwrap_err(),
            common::Overflow {
                dim: d,
                requested: max[d] + 1,
                max: max[d]
            }
        );
        assert_eq!(sem.capacity(), shrunk);
        sem.set_capacity_of(d, cap[d]).unwrap();
        assert_eq!(sem.capacity(), cap);
    }
    drop(held);
    assert_eq!(sem.available(), cap);
}

fn set_capacity_below_in_flight<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let half: [u64; N] = from_fn(|d| cap[d] / 2);
    let quarter: [u64; N] = from_fn(|d| cap[d] / 4);
    let mut p1 = sem.try_acquire(half).unwrap();
    let p2 = sem.try_acquire(quarter).unwrap();
    // In flight: 3/4 of cap. New capacity: 1/2 of cap, so 1/4 is over.
    sem.set_capacity(half).unwrap();
    assert_eq!(sem.capacity(), half);
    assert_eq!(sem.available(), [0; N], "available must read 0, never wrap");
    assert_eq!(
        sem.try_acquire([1; N]).unwrap_err(),
        common::Insufficient {
            dim: 0,
            requested: 1,
            available: 0
        }
    );
    // Returning the over part is absorbed.
    drop(p2);
    assert_eq!(sem.available(), [0; N]);
    assert_eq!(sem.capacity(), half);
    // Then returns count again.
    let p3 = p1.split(quarter).unwrap();
    drop(p3);
    assert_eq!(sem.available(), quarter);
    drop(p1);
    assert_eq!(sem.available(), half);
    assert_eq!(sem.capacity(), half);
    let all = sem.try_acquire(half).unwrap();
    assert_eq!(sem.available(), [0; N]);
    drop(all);

    // Shrink to zero with everything out, then grow back while it is out.
    let sem = layout.make(cap);
    let p = sem.try_acquire(cap).unwrap();
    sem.set_capacity([0; N]).unwrap();
    assert_eq!(sem.available(), [0; N]);
    sem.set_capacity(half).unwrap();
    assert_eq!(sem.available(), [0; N]);
    sem.add_permits(cap).unwrap(); // capacity 3/2 cap, in flight cap
    assert_eq!(sem.capacity(), from_fn(|d| half[d] + cap[d]));
    assert_eq!(sem.available(), half);
    drop(p);
    assert_eq!(sem.available(), sem.capacity());
}

fn set_capacity_fails_queued_that_no_longer_fit<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let all = sem.try_acquire(cap).unwrap();
    let (w1, k1) = counting_waker();
    let (w2, k2) = counting_waker();
    // Head wants everything, the follower a little.
    let mut head = Box::pin(sem.acquire(cap));
    let mut follower = Box::pin(sem.acquire([1; N]));
    assert!(poll_with(head.as_mut(), &k1).is_pending());
    assert!(poll_with(follower.as_mut(), &k2).is_pending());
    assert_eq!(sem.waiters(), 2);
    let last = N - 1;
    let smaller: [u64; N] = from_fn(|d| if d == last { cap[d] - 1 } else { cap[d] });
    sem.set_capacity(smaller).unwrap();
    assert!(w1.wakes() >= 1, "head not woken by shrink");
    match poll_with(head.as_mut(), &k1) {
        Poll::Ready(r) => assert_eq!(
            r.map(|p| p.amounts()).map_err(common::plain),
            Err(common::Plain::Exceeds {
                dim: last,
                requested: cap[last],
                capacity: cap[last] - 1
            })
        ),
        Poll::Pending => panic!("head whose request no longer fits is still queued"),
    }
    assert!(poll_with(follower.as_mut(), &k2).is_pending());
    assert_eq!(sem.waiters(), 1);
    drop(all);
    assert!(w2.wakes() >= 1, "follower not woken");
    match poll_with(follower.as_mut(), &k2) {
        Poll::Ready(r) => assert_eq!(r.unwrap().amounts(), [1; N]),
        Poll::Pending => panic!("follower not granted"),
    }
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.available(), smaller);
}

fn forget_while_over_capacity<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let half: [u64; N] = from_fn(|d| cap[d] / 2);
    let quarter: [u64; N] = from_fn(|d| cap[d] / 4);
    let eighth: [u64; N] = from_fn(|d| cap[d] / 8);
    let p1 = sem.try_acquire(half).unwrap();
    let p2 = sem.try_acquire(quarter).unwrap();
    // In flight 3/4, capacity 1/2: 1/4 over.
    sem.set_capacity(half).unwrap();
    // Forgetting 1/4 only pays the over part: capacity stays 1/2.
    p2.forget();
    assert_eq!(sem.capacity(), half);
    assert_eq!(sem.available(), [0; N]);
    // Now the books balance: forgetting shrinks capacity again.
    let mut p1 = p1;
    let e = p1.split(eighth).unwrap();
    e.forget();
    assert_eq!(sem.capacity(), sub(half, eighth));
    assert_eq!(sem.available(), [0; N]);
    drop(p1);
    assert_eq!(sem.available(), sub(half, eighth));
    assert_eq!(sem.capacity(), sub(half, eighth));

    // A forget larger than the over part: the rest shrinks capacity.
    let sem = layout.make(cap);
    let p = sem.try_acquire(half).unwrap();
    sem.set_capacity(quarter).unwrap(); // 1/4 over
    p.forget(); // 1/4 pays the over part, 1/4 shrinks capacity
    assert_eq!(sem.capacity(), [0; N]);
    assert_eq!(sem.available(), [0; N]);
    sem.add_permits(cap).unwrap();
    assert_eq!(sem.available(), cap);
}

/// A queued request that `forget` leaves above capacity can never be granted:
/// like `set_capacity`, the shrink must fail it with `ExceedsCapacity` (API.md:
/// "a request larger than a dimension's capacity ... never blocks"), or it
/// blocks everyone queued behind it until the next resize or close.
fn forget_fails_queued_that_no_longer_fit<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let one = sem.try_acquire([1; N]).unwrap();
    let rest = sem.try_acquire(sub(cap, [1; N])).unwrap();
    let (w1, k1) = counting_waker();
    let (w2, k2) = counting_waker();
    let mut head = Box::pin(sem.acquire(cap));
    let mut follower = Box::pin(sem.acquire([1; N]));
    assert!(poll_with(head.as_mut(), &k1).is_pending());
    assert!(poll_with(follower.as_mut(), &k2).is_pending());
    // Capacity shrinks to cap - 1 in every dimension: the head can never fit.
    one.forget();
    assert_eq!(sem.capacity(), sub(cap, [1; N]));
    // Everything else comes back: the follower fits with room to spare and
    // is granted as the permits return (before it is polled again).
    drop(rest);
    assert_eq!(sem.available(), sub(cap, [2; N]));
    let head_result =
        poll_with(head.as_mut(), &k1).map(|r| r.map(|p| p.amounts()).map_err(common::plain));
    let follower_result = poll_with(follower.as_mut(), &k2).map(|r| r.map(|p| p.amounts()));
    assert_eq!(
        (head_result, follower_result, sem.waiters()),
        (
            Poll::Ready(Err(common::Plain::Exceeds {
                dim: 0,
                requested: cap[0],
                capacity: cap[0] - 1
            })),
            Poll::Ready(Ok([1; N])),
            0
        ),
        "after forget shrank capacity below the queued head's request, \
         (head, follower, waiters) should be (ExceedsCapacity, granted, 0)"
    );
    assert!(w1.wakes() >= 1);
    assert!(w2.wakes() >= 1);
    assert_eq!(sem.available(), sem.capacity());
}

fn layout_is_as_requested<const N: usize>(layout: Layout) {
    let sem = layout.make(caps::<N>());
    match layout {
        // Small capacities fit one word: the default packs them.
        Layout::Packed => assert!(sem.is_single_word()),
        // A maximum of MAX_PERMITS (61 bits and a guard) does not fit beside
        // the flags and the tally, even alone.
        Layout::PerDim | Layout::ReserveOnly => assert!(!sem.is_single_word()),
    }
    let big = MultiSemaphore::new([max_permits::<N>(); N]);
    assert!(!big.is_single_word());
    assert_eq!(big.capacity(), [max_permits::<N>(); N]);
}

fn permit_semaphore_accessor<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let other = layout.make(cap);
    let p = sem.try_acquire([1; N]).unwrap();
    assert!(std::ptr::eq(p.semaphore(), &sem));
    assert!(!std::ptr::eq(p.semaphore(), &other));
    assert_eq!(p.semaphore().available(), sub(cap, [1; N]));
    let arc = make_arc(layout, cap);
    let o = arc.try_acquire_owned([1; N]).unwrap();
    assert!(Arc::ptr_eq(o.semaphore(), &arc));
    drop((p, o));
}

fn capacity_overflow_changes_nothing<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let max = sem.max_capacity();
    for d in 0..N {
        let c = sem.capacity();
        let room = max[d] - c[d];
        // One more than the room: Overflow, and other dimensions untouched.
        let others_fit: [u64; N] = from_fn(|e| {
            if e == d {
                room + 1
            } else {
                u64::from(max[e] > c[e])
            }
        });
        let err = sem.add_permits(others_fit).unwrap_err();
        assert_eq!(
            err,
            common::Overflow {
                dim: d,
                requested: max[d] + 1,
                max: max[d]
            }
        );
        assert_eq!(sem.capacity(), c);
        assert_eq!(sem.available(), c);
        // A count that would wrap u64.
        match sem.add_permits(at(d, u64::MAX, 0)).unwrap_err() {
            CapacityError::Overflow {
                dim,
                requested,
                max: m,
                ..
            } => {
                assert_eq!(dim, d);
                // The sum itself overflows u64: reported saturated.
                assert_eq!(requested, u64::MAX);
                assert_eq!(m, max[d]);
            }
            other => panic!("expected Overflow, got {other:?}"),
        }
        assert_eq!(sem.capacity(), c);
        assert_eq!(sem.available(), c);
        // Exactly the room: fine, and the dimension is full.
        sem.add_permits(at(d, room, 0)).unwrap();
        assert_eq!(sem.capacity()[d], max[d]);
        assert_eq!(sem.available()[d], max[d]);
        assert!(matches!(
            sem.add_permits(at(d, 1, 0)).unwrap_err(),
            CapacityError::Overflow { dim, requested, max: m, .. }
                if dim == d && requested == max[d] + 1 && m == max[d]
        ));
        // Still usable: take it all and give it back.
        let p = sem.try_acquire(at(d, max[d], 0)).unwrap();
        assert_eq!(sem.available()[d], 0);
        drop(p);
        assert_eq!(sem.available()[d], max[d]);
        sem.set_capacity(cap).unwrap();
    }
    assert_eq!(sem.capacity(), cap);
    assert_eq!(sem.available(), cap);
    assert_eq!(sem.max_capacity(), max);
}

fn set_capacity_overflow_changes_nothing<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let max = sem.max_capacity();
    let p = sem.try_acquire([1; N]).unwrap();
    for d in 0..N {
        // The other dimensions ask for a valid change, which must not happen.
        let req: [u64; N] = from_fn(|e| if e == d { max[e] + 1 } else { cap[e] + 3 });
        assert_eq!(
            sem.set_capacity(req).unwrap_err(),
            common::Overflow {
                dim: d,
                requested: max[d] + 1,
                max: max[d]
            }
        );
        assert_eq!(sem.capacity(), cap);
        assert_eq!(sem.available(), sub(cap, [1; N]));
        assert!(sem.set_capacity(at(d, u64::MAX, 1)).is_err());
        assert_eq!(sem.capacity(), cap);
    }
    sem.set_capacity(max).unwrap();
    assert_eq!(sem.capacity(), max);
    assert_eq!(sem.available(), sub(max, [1; N]));
    drop(p);
    assert_eq!(sem.available(), max);
}

fn merge_of_huge_permits<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let max = sem.max_capacity();
    sem.set_capacity(max).unwrap();
    let mut a = sem.try_acquire(from_fn(|d| max[d] - 1)).unwrap();
    let b = sem.try_acquire([1; N]).unwrap();
    assert_eq!(sem.available(), [0; N]);
    a.merge(b);
    assert_eq!(a.amounts(), max);
    let c = a.split(max).unwrap();
    assert_eq!(a.amounts(), [0; N]);
    a.merge(c);
    assert_eq!(a.amounts(), max);
    drop(a);
    assert_eq!(sem.available(), max);
    // Still usable, and its capacity can shrink back.
    sem.set_capacity(cap).unwrap();
    drop(sem.try_acquire(cap).unwrap());
    assert_eq!(sem.available(), cap);
}

#[test]
fn overflow_at_max_permits_per_dim() {
    let m = MultiSemaphore::<2>::MAX_PERMITS;
    let sem = MultiSemaphore::builder([m, 1]).max_capacity([m, m]).build();
    assert_eq!(
        sem.add_permits([1, 0]).unwrap_err(),
        common::Overflow {
            dim: 0,
            requested: m + 1,
            max: m
        }
    );
    assert_eq!(
        sem.set_capacity([m + 1, 1]).unwrap_err(),
        common::Overflow {
            dim: 0,
            requested: m + 1,
            max: m
        }
    );
    assert!(sem.add_permits([u64::MAX, u64::MAX]).is_err());
    assert_eq!(sem.capacity(), [m, 1]);
    assert_eq!(sem.available(), [m, 1]);
    let mut p = sem.try_acquire([m - 1, 0]).unwrap();
    p.merge(sem.try_acquire([1, 1]).unwrap());
    assert_eq!(p.amounts(), [m, 1]);
    drop(p);
    assert_eq!(sem.available(), [m, 1]);
}

#[test]
fn packed_default_reports_its_headroom() {
    // Whatever the packed layout's limit is, it is reported and enforced, never
    // silently truncated.
    let sem = MultiSemaphore::new([1024, 100 << 20]);
    let max = sem.max_capacity();
    assert!(max[0] >= 1024 && max[1] >= 100 << 20);
    sem.set_capacity(max).unwrap();
    assert_eq!(sem.capacity(), max);
    assert_eq!(sem.available(), max);
    let p = sem.try_acquire(max).unwrap();
    assert_eq!(sem.available(), [0, 0]);
    drop(p);
    assert_eq!(sem.available(), max);
    // Reserving more room up front is honoured.
    let big = MultiSemaphore::builder([1024, 100 << 20])
        .max_capacity([1 << 40, 1 << 50])
        .build();
    assert_eq!(big.max_capacity(), [1 << 40, 1 << 50]);
    big.set_capacity([1 << 40, 1 << 50]).unwrap();
    assert_eq!(big.available(), [1 << 40, 1 << 50]);
}

#[test]
fn capacities_too_large_for_one_word_use_the_tiered_layout() {
    // 41 + 51 bits: no single word holds them, even without room to grow.
    let cap = [1u64 << 40, 1 << 50];
    let sem = MultiSemaphore::new(cap);
    assert!(!sem.is_single_word());
    assert_eq!(sem.available(), cap);
    // Small requests (served by the front word) and ones far larger than any
    // field of it (served partly by the reserve) mix and return exactly.
    let small = sem.try_acquire([1, 1500]).unwrap();
    let large = sem.try_acquire([1 << 39, 1 << 49]).unwrap();
    let rest = sem.try_acquire([(1 << 39) - 1, (1 << 49) - 1500]).unwrap();
    assert_eq!(sem.available(), [0, 0]);
    assert_eq!(
        sem.try_acquire([0, 1]).unwrap_err(),
        common::Insufficient {
            dim: 1,
            requested: 1,
            available: 0
        }
    );
    drop(large);
    assert_eq!(sem.available(), [1 << 39, 1 << 49]);
    drop(small);
    drop(rest);
    assert_eq!(sem.available(), cap);
    assert_eq!(sem.stats().acquired, 3);
    assert_eq!(sem.stats().peak_in_flight, cap);
    // And everything at once, after all that moving between the tiers.
    drop(sem.try_acquire(cap).unwrap());
    assert_eq!(sem.available(), cap);
}

#[test]
fn tiered_layout_with_no_front_field_for_a_dimension() {
    // Dimension 0 lives wholly in the reserve; dimension 1 has a 1-permit
    // field in front. Every take and return of dimension 0 crosses the tiers.
    let sem = MultiSemaphore::builder([3, 3])
        .max_capacity([MultiSemaphore::<2>::MAX_PERMITS; 2])
        .front_bits([0, 1])
        .build();
    let a = sem.try_acquire([1, 1]).unwrap();
    let b = sem.try_acquire([2, 2]).unwrap();
    assert_eq!(
        sem.try_acquire([1, 0]).unwrap_err(),
        common::Insufficient {
            dim: 0,
            requested: 1,
            available: 0
        }
    );
    drop(a);
    assert_eq!(sem.available(), [1, 1]);
    drop(b);
    assert_eq!(sem.available(), [3, 3]);
    sem.set_capacity([1, 5]).unwrap();
    drop(sem.try_acquire([1, 5]).unwrap());
    assert_eq!(sem.available(), [1, 5]);
}

#[test]
fn many_large_dimensions_share_the_front_word() {
    // 40 dimensions of 2^40: a fair share of the front word is under two
    // bits, so some dimensions get a 1-bit field and the rest none at all.
    const N: usize = 40;
    let cap = [1u64 << 40; N];
    let sem = MultiSemaphore::new(cap);
    assert!(!sem.is_single_word());
    let one = sem.try_acquire([1; N]).unwrap();
    let mut rest_amounts = cap;
    rest_amounts.iter_mut().for_each(|a| *a -= 1);
    let rest = sem.try_acquire(rest_amounts).unwrap();
    assert_eq!(sem.available(), [0; N]);
    let mut one_more = [0; N];
    one_more[N - 1] = 1;
    assert_eq!(
        sem.try_acquire(one_more).unwrap_err(),
        common::Insufficient {
            dim: N - 1,
            requested: 1,
            available: 0
        }
    );
    drop(one);
    assert_eq!(sem.available(), [1; N]);
    drop(rest);
    assert_eq!(sem.available(), cap);
}

#[test]
#[should_panic(expected = "do not fit in one word")]
fn front_bits_that_do_not_fit_panic() {
    let _ = MultiSemaphore::builder([1, 1])
        .max_capacity([MultiSemaphore::<2>::MAX_PERMITS; 2])
        .front_bits([40, 40])
        .build();
}

fn closed_stays_closed<const N: usize>(layout: Layout) {
    // tokio #8020 class: a counter update must not lose the closed flag.
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let p = sem.try_acquire([1; N]).unwrap();
    let q = sem.try_acquire([1; N]).unwrap();
    let mut r = sem.try_acquire([2; N]).unwrap();
    sem.close();
    assert!(sem.is_closed());
    sem.add_permits([1; N]).unwrap();
    assert!(sem.is_closed());
    assert_eq!(
        sem.try_acquire([1; N]).unwrap_err(),
        TryAcquireError::Closed
    );
    sem.set_capacity(from_fn(|d| cap[d] + 5)).unwrap();
    assert!(sem.is_closed());
    assert_eq!(
        sem.try_acquire([1; N]).unwrap_err(),
        TryAcquireError::Closed
    );
    sem.set_capacity([2; N]).unwrap(); // below in flight
    assert!(sem.is_closed());
    p.forget();
    assert!(sem.is_closed());
    drop(q);
    assert!(sem.is_closed());
    let s = r.split([1; N]).unwrap();
    r.merge(s);
    drop(r);
    assert!(sem.is_closed());
    assert_eq!(
        sem.try_acquire([0; N]).unwrap_err(),
        TryAcquireError::Closed
    );
    assert_eq!(
        sem.acquire_blocking_deadline([1; N], Instant::now())
            .unwrap_err(),
        AcquireError::Closed
    );
    sem.add_permits([0; N]).unwrap();
    assert!(sem.is_closed());
    assert_eq!(sem.available(), sem.capacity());
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

fn stats_counters<const N: usize>(layout: Layout) {
    let _wd = Watchdog::new("stats_counters", Duration::from_secs(60));
    let cap = caps::<N>();
    let sem = make_arc(layout, cap);
    assert_eq!(sem.stats(), Stats::<N>::default());

    let a = sem.try_acquire([1; N]).unwrap();
    let b = sem.try_acquire_owned([2; N]).unwrap();
    let z = sem.try_acquire([0; N]).unwrap();
    let c = sem
        .acquire_blocking_timeout([1; N], Duration::from_secs(10))
        .unwrap();
    let s = sem.stats();
    assert_eq!(s.acquired, 4);
    assert_eq!(s.refused, [0; N]);
    assert_eq!(s.peak_in_flight, [4; N]);
    drop((a, z, c));
    assert_eq!(sem.stats().peak_in_flight, [4; N], "peak is a maximum");

    // refused, by the dimension named in the error.
    let mut want_refused = [0u64; N];
    for d in 0..N {
        let e = sem.try_acquire(at(d, cap[d] + 1, 0)).unwrap_err();
        assert!(matches!(e, TryAcquireError::ExceedsCapacity { dim, .. } if dim == d));
        want_refused[d] += 1;
        let free = sem.available()[d];
        let e = sem.try_acquire_owned(at(d, free + 1, 0)).unwrap_err();
        assert!(matches!(e, TryAcquireError::Insufficient { dim, .. } if dim == d));
        want_refused[d] += 1;
    }
    assert_eq!(sem.stats().refused, want_refused);

    // timed_out: a past deadline and a short timeout on a full semaphore.
    let full = sem.try_acquire(sem.available()).unwrap();
    assert_eq!(
        sem.acquire_blocking_deadline([1; N], Instant::now() - Duration::from_secs(1))
            .unwrap_err(),
        AcquireError::Timeout
    );
    assert_eq!(
        sem.acquire_blocking_timeout([1; N], Duration::from_millis(1))
            .unwrap_err(),
        AcquireError::Timeout
    );
    assert_eq!(
        sem.acquire_owned_blocking_timeout([1; N], Duration::from_millis(1))
            .unwrap_err(),
        AcquireError::Timeout
    );
    assert_eq!(sem.stats().timed_out, 3);

    // cancelled: an async acquire dropped while queued.
    let mut f = Box::pin(sem.acquire([1; N]));
    assert!(poll_once(f.as_mut()).is_pending());
    drop(f);
    let mut f = Box::pin(sem.acquire_owned([1; N]));
    assert!(poll_once(f.as_mut()).is_pending());
    drop(f);
    // A future never polled was never queued: not cancelled.
    drop(sem.acquire([1; N]));
    assert_eq!(sem.stats().cancelled, 2);
    assert_eq!(sem.stats().timed_out, 3);

    // The peak covers everything held at once.
    assert_eq!(sem.stats().peak_in_flight, cap);
    drop(full);
    drop(b);

    // closed_out: a queued future woken by close, and refusals after close.
    let all = sem.try_acquire(cap).unwrap();
    let mut f = Box::pin(sem.acquire([1; N]));
    assert!(poll_once(f.as_mut()).is_pending());
    sem.close();
    assert!(matches!(
        poll_once(f.as_mut()),
        Poll::Ready(Err(AcquireError::Closed))
    ));
    drop(f);
    assert_eq!(
        sem.try_acquire([1; N]).unwrap_err(),
        TryAcquireError::Closed
    );
    assert_eq!(
        sem.acquire_blocking([1; N]).unwrap_err(),
        AcquireError::Closed
    );
    drop(all);

    let s = sem.stats();
    assert_eq!(s.acquired, 4 + 2);
    assert_eq!(s.refused, want_refused, "Closed is not a refusal");
    assert_eq!(s.timed_out, 3);
    assert_eq!(
        s.cancelled, 2,
        "woken by close is closed_out, not cancelled"
    );
    assert_eq!(s.closed_out, 3);
    assert_eq!(s.peak_in_flight, cap);
    let copy = s;
    assert_eq!(copy, s);
}

fn stats_without_peaks<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let b = MultiSemaphore::builder(cap).track_peaks(false);
    let sem = match layout {
        Layout::Packed => b.build(),
        Layout::PerDim => b.max_capacity([max_permits::<N>(); N]).build(),
        Layout::ReserveOnly => b
            .max_capacity([max_permits::<N>(); N])
            .front_bits([0; N])
            .build(),
    };
    let p = sem.try_acquire(cap).unwrap();
    assert!(sem.try_acquire([1; N]).is_err());
    drop(p);
    let s = sem.stats();
    assert_eq!(s.peak_in_flight, [0; N]);
    assert_eq!(s.acquired, 1);
    assert_eq!(s.refused.iter().sum::<u64>(), 1);
    // With peaks on (the default), the same run records them.
    let sem = layout.make(cap);
    drop(sem.try_acquire(cap).unwrap());
    assert_eq!(sem.stats().peak_in_flight, cap);
}

// ---------------------------------------------------------------------------
// In flight, the queue's head, and statistics by dimension
// ---------------------------------------------------------------------------

fn in_flight_exact_after_shrink<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    assert_eq!(sem.in_flight(), [0; N]);
    // Hold all but a quarter, then shrink to half: available reads 0,
    // capacity - available understates what is out, in_flight does not.
    let held: [u64; N] = from_fn(|d| cap[d] - cap[d] / 4);
    let p = sem.try_acquire(held).unwrap();
    assert_eq!(sem.in_flight(), held);
    sem.set_capacity(from_fn(|d| cap[d] / 2)).unwrap();
    assert_eq!(sem.available(), [0; N]);
    assert_eq!(sem.in_flight(), held);
    let mut p = p;
    let part = p.split(from_fn(|d| cap[d] / 8)).unwrap();
    drop(part);
    assert_eq!(sem.in_flight(), sub(held, from_fn(|d| cap[d] / 8)));
    drop(p);
    assert_eq!(sem.in_flight(), [0; N]);
    assert_eq!(sem.available(), from_fn(|d| cap[d] / 2));
    // A forgotten permit leaves flight and capacity together.
    sem.try_acquire([1; N]).unwrap().forget();
    assert_eq!(sem.in_flight(), [0; N]);
}

fn head_request_and_shortfall<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    assert_eq!((sem.head_request(), sem.head_shortfall()), (None, None));
    let last = N - 1;
    // All of the last dimension out but one; the head wants 3 of it.
    let held = sem.try_acquire(at(last, cap[last] - 1, 1)).unwrap();
    let want = at(last, 3, 1);
    let mut head = Box::pin(sem.acquire(want));
    assert!(poll_once(head.as_mut()).is_pending());
    let mut behind = Box::pin(sem.acquire([1; N]));
    assert!(poll_once(behind.as_mut()).is_pending());
    assert_eq!(sem.head_request(), Some(want));
    assert_eq!(sem.head_shortfall(), Some(at(last, 2, 0)));
    // The head leaves: the one behind it is the head now, and fits.
    drop(head);
    assert!(matches!(poll_once(behind.as_mut()), Poll::Ready(Ok(_))));
    assert_eq!(sem.head_request(), None);
    drop(held);
}

fn blocked_behind_head_counts_what_fifo_holds_back<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    assert_eq!(sem.waiters_blocked_behind_head(), 0);
    let last = N - 1;
    // All of the last dimension out but one; the head wants 3 of it.
    let held = sem.try_acquire(at(last, cap[last] - 1, 0)).unwrap();
    let mut head = Box::pin(sem.acquire(at(last, 3, 0)));
    assert!(poll_once(head.as_mut()).is_pending());
    assert_eq!(
        sem.waiters_blocked_behind_head(),
        0,
        "the head itself is not behind"
    );
    let mut fits = Box::pin(sem.acquire(at(last, 1, 0)));
    assert!(poll_once(fits.as_mut()).is_pending());
    assert_eq!(
        sem.waiters_blocked_behind_head(),
        1,
        "one behind the head, and it fits"
    );
    let mut too_big = Box::pin(sem.acquire(at(last, 2, 0)));
    let mut also_fits = Box::pin(sem.acquire(at(last, 1, 0)));
    for fut in [too_big.as_mut(), also_fits.as_mut()] {
        assert!(poll_once(fut).is_pending());
    }
    assert_eq!(
        sem.waiters_blocked_behind_head(),
        2,
        "each of the 1s fits on its own, the 2 does not"
    );
    drop(too_big);
    assert_eq!(sem.waiters_blocked_behind_head(), 2);
    // The head leaves: `fits` takes the one left, and `also_fits`, the new
    // head, lacks it.
    drop(head);
    let Poll::Ready(Ok(first)) = poll_once(fits.as_mut()) else {
        panic!("`fits` is served once the head has left");
    };
    assert_eq!(sem.head_request(), Some(at(last, 1, 0)));
    assert_eq!(sem.waiters_blocked_behind_head(), 0);
    drop((first, also_fits, held));
    assert_eq!(sem.waiters_blocked_behind_head(), 0);
}

/// 16 grants of `MAX_PERMITS` would wrap a sum of `u64`: it saturates, so
/// that it never goes back (the metrics exporter keeps the largest value it
/// is given). Found by a reviewer.
#[test]
fn acquired_amounts_saturate() {
    let m = MultiSemaphore::<1>::MAX_PERMITS;
    let sem = MultiSemaphore::builder([m]).track_amounts(true).build();
    for _ in 0..17 {
        drop(sem.try_acquire([m]).unwrap());
    }
    let s = sem.stats();
    assert_eq!(s.acquired, 17);
    assert_eq!(s.acquired_amounts, [u64::MAX]);
}

fn acquired_amounts_when_tracked<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = Arc::new(layout.builder(cap).track_amounts(true).build());
    let untracked = layout.make(cap);
    let mut total = [0u64; N];
    let mut add = |a: [u64; N]| (0..N).for_each(|d| total[d] += a[d]);
    // Fast path, owned, zero, blocking, async, and a queued grant.
    drop(sem.try_acquire([1; N]).unwrap());
    add([1; N]);
    drop(sem.try_acquire_owned(at(0, 2, 1)).unwrap());
    add(at(0, 2, 1));
    drop(sem.try_acquire([0; N]).unwrap());
    drop(sem.acquire_blocking([3; N]).unwrap());
    add([3; N]);
    drop(futures_executor::block_on(sem.acquire([2; N])).unwrap());
    add([2; N]);
    let all = sem.try_acquire(cap).unwrap();
    add(cap);
    let mut f = Box::pin(sem.acquire_owned([1; N]));
    assert!(poll_once(f.as_mut()).is_pending());
    drop(all);
    drop(ready(poll_once(f.as_mut()), "granted after the release").unwrap());
    add([1; N]);
    // Refusals add nothing.
    assert!(sem.try_acquire(from_fn(|d| cap[d] + 1)).is_err());
    // What a permit grows by is granted; what it gives back early is not
    // taken off.
    let mut grown = sem.try_acquire([1; N]).unwrap();
    add([1; N]);
    grown.try_grow([1; N]).unwrap();
    add([1; N]);
    grown.release([1; N]).unwrap();
    drop(grown);
    let s = sem.stats();
    assert_eq!(s.acquired_amounts, total);
    // The grow counts as an acquire (as `Permit::try_grow` says).
    assert_eq!(s.acquired, 9);
    // Off by default: the same acquires leave it at zero.
    drop(untracked.try_acquire([1; N]).unwrap());
    drop(untracked.acquire_blocking([1; N]).unwrap());
    assert_eq!(untracked.stats().acquired_amounts, [0; N]);
    assert_eq!(untracked.stats().acquired, 2);
}

fn waits_and_timeouts_by_dimension<const N: usize>(layout: Layout) {
    let _wd = Watchdog::this_test(Duration::from_secs(60));
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let last = N - 1;
    // The last dimension is all out: every wait is held back by it.
    let held = sem.try_acquire(at(last, cap[last], 0)).unwrap();
    let past = Instant::now() - Duration::from_secs(1);
    assert_eq!(
        sem.acquire_blocking_deadline([1; N], past).unwrap_err(),
        AcquireError::Timeout
    );
    assert_eq!(
        sem.acquire_blocking_timeout(at(last, 1, 0), Duration::from_millis(1))
            .unwrap_err(),
        AcquireError::Timeout
    );
    let mut f = Box::pin(sem.acquire([1; N]));
    assert!(poll_once(f.as_mut()).is_pending());
    let s = sem.stats();
    assert_eq!(s.waited, at(last, 3, 0));
    assert_eq!(s.timed_out_by, at(last, 2, 0));
    assert_eq!(s.timed_out, 2);
    // Behind that head, a request for the first dimension alone, which
    // fits, is held back by the head's dimension.
    assert_eq!(
        sem.acquire_blocking_timeout(at(0, 1, 0), Duration::from_millis(1))
            .unwrap_err(),
        AcquireError::Timeout
    );
    let s = sem.stats();
    assert_eq!(s.waited, at(last, 4, 0));
    assert_eq!(s.timed_out_by, at(last, 3, 0));
    // A dropped future is cancelled, not timed out.
    drop(f);
    let s = sem.stats();
    assert_eq!((s.timed_out, s.cancelled), (3, 1));
    drop(held);
    // With room, nothing waits.
    drop(sem.acquire_blocking([1; N]).unwrap());
    assert_eq!(sem.stats().waited, at(last, 4, 0));
}

fn try_acquire_refused_by_the_heads_dimension<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let last = N - 1;
    let held = sem.try_acquire(at(last, cap[last], 0)).unwrap();
    let mut head = Box::pin(sem.acquire(at(last, 1, 0)));
    assert!(poll_once(head.as_mut()).is_pending());
    // Dimension 0 has room, but the head waits for the last one.
    match sem.try_acquire(at(0, 1, 0)).unwrap_err() {
        TryAcquireError::Insufficient {
            dim,
            requested,
            available,
            ..
        } => {
            assert_eq!(dim, last, "the head's dimension");
            assert_eq!(requested, at::<N>(0, 1, 0)[last]);
            assert_eq!(available, 0, "what available() shows there");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sem.stats().refused, at(last, 1, 0));
    drop(head);
    drop(held);
}

fn exceeded_counts_every_kind_of_acquire<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = layout.make(cap);
    let last = N - 1;
    let too_big = at(last, cap[last] + 1, 0);
    assert!(sem.try_acquire(too_big).is_err());
    assert!(sem.acquire_blocking(too_big).is_err());
    assert!(
        sem.acquire_blocking_deadline(too_big, Instant::now())
            .is_err()
    );
    assert!(futures_executor::block_on(sem.acquire(too_big)).is_err());
    // Queued, then failed by a shrink: counted when the shrink fails it,
    // even though it is dropped without being polled again.
    let held = sem.try_acquire(cap).unwrap();
    let mut f = Box::pin(sem.acquire(at(0, 4, 0)));
    assert!(poll_once(f.as_mut()).is_pending());
    sem.set_capacity(at(0, 2, cap[last])).unwrap();
    drop(f);
    let s = sem.stats();
    let mut want = at(last, 4, 0);
    want[0] += 1;
    assert_eq!(s.exceeded, want);
    assert_eq!(s.refused, at(last, 1, 0), "refused counts try_acquire only");
    drop(held);
}

fn with_timeout_counts_a_timeout<const N: usize>(layout: Layout) {
    let cap = caps::<N>();
    let sem = Arc::new(layout.make(cap));
    let last = N - 1;
    let held = sem.try_acquire(at(last, cap[last], 0)).unwrap();
    // A timer already complete: the acquire queues, then times out, and
    // says which dimension it was short in.
    let mut borrowed = Box::pin(sem.acquire([1; N]).with_timeout(async {}));
    assert_eq!(borrowed.short_at_timeout(), None, "not timed out yet");
    let err = futures_executor::block_on(borrowed.as_mut());
    assert_eq!(
        (err.unwrap_err(), borrowed.short_at_timeout()),
        (AcquireError::Timeout, Some(last))
    );
    let err = futures_executor::block_on(sem.acquire_owned([1; N]).with_timeout(async {}));
    assert_eq!(err.unwrap_err(), AcquireError::Timeout);
    let s = sem.stats();
    assert_eq!((s.timed_out, s.cancelled), (2, 0));
    assert_eq!(s.timed_out_by, at(last, 2, 0));
    assert_eq!(s.waited, at(last, 2, 0));
    assert_eq!(sem.waiters(), 0);
    drop(held);
    // A grant that comes first wins over a timer that never fires.
    let never = std::future::pending::<()>();
    let p = futures_executor::block_on(sem.acquire([1; N]).with_timeout(never)).unwrap();
    assert_eq!(p.amounts(), [1; N]);
    // Granted while queued, then the timer fires: the grant is delivered.
    let all = sem.try_acquire(sem.available()).unwrap();
    // A timer that completes on its second poll.
    let mut polls = 0;
    let late = std::future::poll_fn(move |_| {
        polls += 1;
        if polls > 1 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    let mut f = Box::pin(sem.acquire([1; N]).with_timeout(late));
    assert!(poll_once(f.as_mut()).is_pending());
    drop(all);
    let got = ready(poll_once(f.as_mut()), "granted before the timer");
    assert_eq!(got.unwrap().amounts(), [1; N]);
    assert_eq!(sem.stats().timed_out, 2);
    // The race itself: the grant lands after the acquire was polled and
    // found queued, and the timer fires in the same poll (here the timer
    // returns the permits that grant it, as another thread could at that
    // moment). The grant is delivered, not lost.
    let all = Arc::new(std::sync::Mutex::new(Some(
        sem.try_acquire_owned(sem.available()).unwrap(),
    )));
    let releasing = Arc::clone(&all);
    let racing = std::future::poll_fn(move |_| {
        drop(releasing.lock().unwrap().take());
        Poll::Ready(())
    });
    let mut f = Box::pin(sem.acquire([1; N]).with_timeout(racing));
    let got = ready(poll_once(f.as_mut()), "the grant or the timeout");
    assert_eq!(
        got.expect("the grant that raced the timer").amounts(),
        [1; N]
    );
    assert!(all.lock().unwrap().is_none(), "the timer ran");
    assert_eq!(sem.stats().timed_out, 2, "not a timeout");
    assert_eq!(sem.waiters(), 0);
    drop(f);
    drop(p);
    assert_eq!(sem.available(), cap);
    // Short in the first dimension alone.
    let first = sem.try_acquire(at(0, cap[0], 0)).unwrap();
    let mut f = Box::pin(sem.acquire([1; N]).with_timeout(async {}));
    let err = futures_executor::block_on(f.as_mut());
    assert_eq!(
        (err.unwrap_err(), f.short_at_timeout()),
        (AcquireError::Timeout, Some(0))
    );
    drop(first);
    assert_eq!(sem.available(), cap);
}

#[test]
fn tokio_timeout_counts_as_cancelled() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let sem = MultiSemaphore::new([10, 100]);
        let held = sem.try_acquire([1, 100]).unwrap();
        let wait = Duration::from_millis(5);
        // The runtime's timeout drops the future: a cancel.
        assert!(
            tokio::time::timeout(wait, sem.acquire([1, 1]))
                .await
                .is_err()
        );
        // The timer handed to the acquire: a timeout, by dimension.
        let err = sem
            .acquire([1, 1])
            .with_timeout(tokio::time::sleep(wait))
            .await
            .unwrap_err();
        assert_eq!(err, AcquireError::Timeout);
        let s = sem.stats();
        assert_eq!((s.cancelled, s.timed_out), (1, 1));
        assert_eq!(s.timed_out_by, [0, 1]);
        assert_eq!(s.waited, [0, 2]);
        drop(held);
    });
}

// ---------------------------------------------------------------------------
// Errors: Display and traits
// ---------------------------------------------------------------------------

#[test]
fn display_strings() {
    let sem = MultiSemaphore::new([4, 1024, 4096]);
    let held = sem.try_acquire([0, 0, 3072]).unwrap();
    let e = sem.try_acquire([1, 0, 2048]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "insufficient permits in dimension 2: requested 2048, available 1024"
    );
    let e = sem.try_acquire([0, 0, 4097]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "request exceeds capacity in dimension 2: requested 4097, capacity 4096"
    );
    let e = sem.acquire_blocking([5, 0, 0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "request exceeds capacity in dimension 0: requested 5, capacity 4"
    );
    drop(held);
    sem.close();
    assert_eq!(
        sem.try_acquire([1, 0, 0]).unwrap_err().to_string(),
        "semaphore closed"
    );
    assert_eq!(
        sem.acquire_blocking([1, 0, 0]).unwrap_err().to_string(),
        "semaphore closed"
    );
    assert_eq!(
        AcquireError::Timeout.to_string(),
        "timed out waiting for permits"
    );
    let sem = MultiSemaphore::builder([1, 1])
        .max_capacity([1, 1 << 30])
        .build();
    let e = sem.set_capacity([1, 1 << 40]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "capacity of dimension 1 would pass its maximum: requested 1099511627776, max 1073741824"
    );
    let named = MultiSemaphore::builder([1, 1])
        .max_capacity([1, 1 << 30])
        .names(&["messages", "bytes"])
        .build();
    let e = named.add_permits([0, 1 << 30]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "capacity of bytes would pass its maximum: requested 1073741825, max 1073741824"
    );
    assert!(format!("{e:?}").contains(r#"dim: 1 ("bytes")"#), "{e:?}");
    // Debug exists and names the variant.
    assert!(format!("{:?}", TryAcquireError::Closed).contains("Closed"));
    assert!(format!("{:?}", AcquireError::Timeout).contains("Timeout"));
}

#[test]
fn insufficient_names_every_short_dimension() {
    let sem = MultiSemaphore::new([2, 100, 10]);
    let held = sem.try_acquire([2, 0, 10]).unwrap();
    let e = sem.try_acquire([1, 1, 1]).unwrap_err();
    match e {
        TryAcquireError::Insufficient {
            dim,
            available,
            queued_ahead,
            short,
            ..
        } => {
            assert_eq!((dim, available, queued_ahead), (0, 0, false));
            assert_eq!(short.iter().collect::<Vec<_>>(), [0, 2]);
            assert_eq!(short.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.is_queued_ahead());
    assert_eq!(
        e.to_string(),
        "insufficient permits in dimension 0: requested 1, available 0 (also short: dimension 2)"
    );
    // Every dimension short: the others listed in order, comma-separated.
    let half = sem.try_acquire([0, 50, 0]).unwrap();
    let e = sem.try_acquire([1, 51, 1]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "insufficient permits in dimension 0: requested 1, available 0 (also short: dimension 1, dimension 2)"
    );
    drop((held, half));
}

#[test]
fn the_short_set_holds_exactly_the_short_dimensions() {
    // One dimension short, not the first: the set holds it alone.
    let sem = MultiSemaphore::new([2, 100, 10]);
    let held = sem.try_acquire([0, 100, 0]).unwrap();
    let Err(TryAcquireError::Insufficient { dim, short, .. }) = sem.try_acquire([1, 1, 1]) else {
        panic!("dimension 1 is short");
    };
    assert_eq!(dim, 1);
    assert_eq!(short.iter().collect::<Vec<_>>(), [1]);
    assert_eq!((short.len(), short.is_empty()), (1, false));
    assert!(short.contains(1) && !short.contains(0) && !short.contains(2));
    // Past the last dimension a set can hold: not in it, and no panic.
    assert!(!short.contains(63) && !short.contains(64) && !short.contains(usize::MAX));
    assert_eq!(format!("{short:?}"), "{1}");
    assert!(DimSet::default().is_empty());
    assert_eq!(format!("{:?}", DimSet::default()), "{}");
    drop(held);
}

/// A set walks its dimensions in increasing order, by `iter` or a `for`
/// loop, with an exact length (28 dimensions of 1: the widest that one
/// word holds, where a refusal names every short dimension).
#[test]
fn a_dim_set_iterates_in_order_with_an_exact_length() {
    const N: usize = 28;
    let capacity = [1; N];
    let sem = MultiSemaphore::new(capacity);
    let short_at = [0, 5, 6, 17, 26, 27];
    let mut held_amounts = [0; N];
    for d in short_at {
        held_amounts[d] = 1;
    }
    let held = sem.try_acquire(held_amounts).unwrap();
    let Err(TryAcquireError::Insufficient { short, .. }) = sem.try_acquire(capacity) else {
        panic!("six dimensions are short");
    };
    let mut walked = Vec::new();
    for d in short {
        walked.push(d);
    }
    assert_eq!(walked, short_at);
    let mut iter = short.iter();
    assert_eq!(iter.len(), 6);
    assert_eq!(iter.next(), Some(0));
    assert_eq!(iter.size_hint(), (5, Some(5)));
    assert_eq!(iter.by_ref().count(), 5);
    assert_eq!((iter.next(), iter.len()), (None, 0), "fused, empty");
    assert_eq!(DimSet::default().into_iter().next(), None);
    drop(held);
}

#[test]
fn stats_debug_names_the_dimensions() {
    let sem = MultiSemaphore::builder([1, 10])
        .names(&["messages", "bytes"])
        .build();
    assert!(sem.try_acquire([1, 11]).is_err());
    assert!(sem.try_acquire([0, 11]).is_err());
    let debug = format!("{:?}", sem.stats());
    assert!(
        debug.contains(r#"exceeded: {"messages": 0, "bytes": 2}"#),
        "{debug}"
    );
    // Without names, plain arrays.
    let sem = MultiSemaphore::new([1, 10]);
    assert!(sem.try_acquire([0, 11]).is_err());
    let debug = format!("{:?}", sem.stats());
    assert!(debug.contains("exceeded: [0, 1]"), "{debug}");
}

/// A dimension without a name (an empty one) is written as messages write
/// it, wherever it is: an unnamed first dimension dropped every name, and
/// a later one read "?".
#[test]
fn stats_debug_writes_an_unnamed_dimension_as_messages_do() {
    for (names, expected) in [
        (
            &["", "bytes"],
            r#"exceeded: {"dimension 0": 0, "bytes": 1}"#,
        ),
        (
            &["messages", ""],
            r#"exceeded: {"messages": 0, "dimension 1": 1}"#,
        ),
    ] {
        let sem = MultiSemaphore::builder([1, 10]).names(names).build();
        let err = sem.try_acquire([0, 11]).unwrap_err();
        let label = if names[1].is_empty() {
            "dimension 1"
        } else {
            names[1]
        };
        assert!(err.to_string().contains(label), "{err}");
        let debug = format!("{:?}", sem.stats());
        assert!(debug.contains(expected), "{debug}");
    }
}

#[test]
fn a_future_a_shrink_failed_then_dropped_counts_only_as_exceeded() {
    let sem = MultiSemaphore::new([4, 1000]);
    let held = sem.try_acquire([0, 900]).unwrap();
    let mut waiting = Box::pin(sem.acquire([1, 800]));
    assert!(poll_once(waiting.as_mut()).is_pending());
    sem.set_capacity([4, 500]).unwrap();
    drop(waiting);
    let stats = sem.stats();
    assert_eq!(
        (stats.exceeded, stats.cancelled, stats.closed_out),
        ([0, 1], 0, 0)
    );
    drop(held);
}

#[test]
fn insufficient_tells_queued_ahead_from_a_shortage() {
    for layout in Layout::ALL {
        let sem = layout.make([10, 100]);
        let held = sem.try_acquire([1, 100]).unwrap();
        let mut head = Box::pin(sem.acquire([1, 50]));
        assert!(poll_once(head.as_mut()).is_pending());
        // [1, 0] fits what is available ([9, 0]), but the head comes first.
        let e = sem.try_acquire([1, 0]).unwrap_err();
        assert!(e.is_queued_ahead(), "{layout:?}: {e:?}");
        match e {
            TryAcquireError::Insufficient {
                dim,
                requested,
                available,
                short,
                ..
            } => {
                assert_eq!((dim, requested, available), (1, 0, 0), "{layout:?}");
                assert_eq!(
                    short.iter().collect::<Vec<_>>(),
                    [1],
                    "the head lacks bytes"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            e.to_string(),
            "others are queued ahead, the first waiting for dimension 1 (0 available); this request asks 0 of it"
        );
        // A real shortage while others are queued is still a shortage.
        let e = sem.try_acquire([1, 10]).unwrap_err();
        assert!(!e.is_queued_ahead(), "{layout:?}: {e:?}");
        assert!(e.is_insufficient());
        drop(head);
        drop(held);
    }
}

#[test]
fn dimension_names_in_display_and_debug() {
    static NAMES: [&str; 2] = ["messages", "bytes"];
    let sem = Arc::new(MultiSemaphore::builder([10, 1024]).names(&NAMES).build());
    let held = sem.try_acquire([10, 1000]).unwrap();
    let e = sem.try_acquire([1, 100]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "insufficient permits in messages: requested 1, available 0 (also short: bytes)"
    );
    let debug = format!("{e:?}");
    assert!(debug.contains(r#"dim: 0 ("messages")"#), "{debug}");
    assert!(debug.contains(r#"1 ("bytes")"#), "{debug}");
    let TryAcquireError::Insufficient { names, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!((names.get(1), names.get(2)), (Some("bytes"), None));
    let e = sem.acquire_blocking([1, 2048]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "request exceeds capacity in bytes: requested 2048, capacity 1024"
    );
    assert!(format!("{e:?}").contains(r#"dim: 1 ("bytes")"#));
    // A queued request failed by a shrink carries the names too.
    let mut f = Box::pin(sem.acquire_owned([1, 1000]));
    assert!(poll_once(f.as_mut()).is_pending());
    sem.set_capacity([10, 512]).unwrap();
    let e = ready(poll_once(f.as_mut()), "failed by the shrink").unwrap_err();
    assert_eq!(
        e.to_string(),
        "request exceeds capacity in bytes: requested 1000, capacity 512"
    );
    assert!(format!("{sem:?}").contains(r#"names: ["messages", "bytes"]"#));
    // Without names: numbered dimensions, and errors equal across semaphores.
    let plain = MultiSemaphore::new([10, 1024]);
    let e = plain.try_acquire([1, 2048]).unwrap_err();
    assert_eq!(
        e,
        MultiSemaphore::new([10, 1024])
            .try_acquire([1, 2048])
            .unwrap_err()
    );
    assert!(format!("{e:?}").contains("dim: 1,"), "{e:?}");
    drop(held);
}

/// An empty name is no name: the dimension is written by its index, as
/// the tower layer's errors write it. (It read "exceeds capacity in :",
/// from a reviewer's case.)
#[test]
fn an_empty_dimension_name_writes_the_dimension_by_its_index() {
    let sem = MultiSemaphore::builder([4, 100])
        .names(&["", "bytes"])
        .build();
    let e = sem.try_acquire([5, 0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "request exceeds capacity in dimension 0: requested 5, capacity 4"
    );
    let TryAcquireError::ExceedsCapacity { names, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!((names.get(0), names.get(1)), (None, Some("bytes")));
    assert!(format!("{e:?}").contains("dim: 0,"), "{e:?}");
}

#[test]
fn error_predicates() {
    let sem = MultiSemaphore::new([1]);
    let p = sem.try_acquire([1]).unwrap();
    let ins = sem.try_acquire([1]).unwrap_err();
    let exc = sem.try_acquire([2]).unwrap_err();
    assert!(ins.is_insufficient() && !ins.is_closed() && !ins.is_queued_ahead());
    assert!(!exc.is_insufficient() && !exc.is_closed() && !exc.is_queued_ahead());
    assert!(exc.is_exceeds_capacity() && !ins.is_exceeds_capacity());
    assert_eq!(
        (ins.dim(), exc.dim(), TryAcquireError::Closed.dim()),
        (Some(0), Some(0), None)
    );
    assert!(TryAcquireError::Closed.is_closed() && !TryAcquireError::Closed.is_insufficient());
    assert!(!TryAcquireError::Closed.is_exceeds_capacity());
    let exc = sem.acquire_blocking([2]).unwrap_err();
    assert!(AcquireError::Timeout.is_timeout() && !AcquireError::Timeout.is_closed());
    assert!(AcquireError::Closed.is_closed() && !AcquireError::Closed.is_timeout());
    assert!(!exc.is_closed() && !exc.is_timeout() && exc.is_exceeds_capacity());
    assert!(
        !AcquireError::Timeout.is_exceeds_capacity() && !AcquireError::Closed.is_exceeds_capacity()
    );
    assert_eq!(
        (
            exc.dim(),
            AcquireError::Timeout.dim(),
            AcquireError::Closed.dim()
        ),
        (Some(0), None, None)
    );
    let wide = MultiSemaphore::new([4, 8]);
    assert_eq!(wide.try_acquire([1, 9]).unwrap_err().dim(), Some(1));
    assert_eq!(wide.acquire_blocking([1, 9]).unwrap_err().dim(), Some(1));
    let _all = wide.try_acquire([0, 8]).unwrap();
    assert_eq!(wide.try_acquire([1, 1]).unwrap_err().dim(), Some(1));
    assert!(
        sem.acquire_blocking_deadline([1], Instant::now())
            .unwrap_err()
            .is_timeout()
    );
    sem.close();
    assert!(sem.try_acquire([1]).unwrap_err().is_closed());
    assert!(sem.acquire_blocking([1]).unwrap_err().is_closed());
    drop(p);
}

#[test]
fn display_of_real_errors() {
    let sem = MultiSemaphore::new([4, 4096]);
    let _p = sem.try_acquire([0, 3072]).unwrap();
    let e = sem.try_acquire([1, 4096]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "insufficient permits in dimension 1: requested 4096, available 1024"
    );
}

#[test]
fn try_merge_and_is_from() {
    let a = Arc::new(MultiSemaphore::new([4, 100]));
    let b = Arc::new(MultiSemaphore::new([4, 100]));
    let mut p = a.try_acquire([1, 10]).unwrap();
    assert!(p.is_from(&a) && !p.is_from(&b));
    p.try_merge(a.try_acquire([1, 5]).unwrap()).unwrap();
    let stranger = p.try_merge(b.try_acquire([2, 20]).unwrap()).unwrap_err();
    assert_eq!((p.amounts(), stranger.amounts()), ([2, 15], [2, 20]));
    assert_eq!((a.in_flight(), b.in_flight()), ([2, 15], [2, 20]));
    drop((p, stranger));
    assert_eq!((a.available(), b.available()), ([4, 100], [4, 100]));
    // Owned twins.
    let mut o = a.try_acquire_owned([1, 1]).unwrap();
    assert!(o.is_from(&a) && !o.is_from(&b));
    o.try_merge(a.try_acquire_owned([1, 1]).unwrap()).unwrap();
    let back = o
        .try_merge(b.try_acquire_owned([1, 1]).unwrap())
        .unwrap_err();
    assert!(back.is_from(&b));
    assert_eq!((o.amounts(), back.amounts()), ([2, 2], [1, 1]));
    drop((o, back));
    assert_eq!((a.available(), b.available()), ([4, 100], [4, 100]));
}

fn assert_error<E: std::error::Error + Send + Sync + Clone + Eq + std::fmt::Debug + 'static>() {}
fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn assert_static<T: 'static>() {}
fn is_send<T: Send>(_: &T) {}

#[test]
fn error_traits() {
    assert_error::<TryAcquireError>();
    assert_error::<AcquireError>();
    assert_error::<CapacityError>();
    // Usable as a boxed error and through `?`.
    fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let sem = MultiSemaphore::new([1]);
        let _p = sem.try_acquire([1])?;
        drop(sem.try_acquire([1])?);
        Ok(())
    }
    let e = boxed().unwrap_err();
    let e = e.downcast::<TryAcquireError>().unwrap();
    assert_eq!(
        *e,
        common::Insufficient {
            dim: 0,
            requested: 1,
            available: 0
        }
    );
    let a = AcquireError::Timeout;
    assert_eq!(a.clone(), a);
    assert_ne!(AcquireError::Timeout, AcquireError::Closed);
}

#[test]
fn send_sync_bounds() {
    assert_send::<MultiSemaphore<1>>();
    assert_sync::<MultiSemaphore<1>>();
    assert_send::<MultiSemaphore<2>>();
    assert_sync::<MultiSemaphore<2>>();
    assert_send::<MultiSemaphore<3>>();
    assert_sync::<MultiSemaphore<3>>();
    assert_send::<Permit<'static, 2>>();
    assert_sync::<Permit<'static, 2>>();
    assert_send::<OwnedPermit<2>>();
    assert_sync::<OwnedPermit<2>>();
    assert_static::<OwnedPermit<2>>();
    assert_send::<Acquire<'static, 2>>();
    assert_send::<AcquireOwned<2>>();
    assert_static::<AcquireOwned<2>>();
    assert_send::<Stats<2>>();
    assert_sync::<Stats<2>>();
    assert_send::<Builder<2>>();

    let sem = Arc::new(MultiSemaphore::new([2, 2]));
    let f = sem.acquire([1, 1]);
    is_send(&f);
    let g = sem.acquire_owned([1, 1]);
    is_send(&g);
    fn is_static<T: 'static>(_: &T) {}
    is_static(&g);
    drop((f, g));
}

/// A semaphore, its permits and a controller cross `catch_unwind` without
/// `AssertUnwindSafe`, as tokio's semaphore does: a panic through any of
/// their methods leaves them consistent (their locks do not poison).
#[test]
fn the_semaphore_its_permits_and_a_controller_cross_catch_unwind() {
    use multisem::adaptive::{Aimd, Controller, Outcome};
    use std::panic::{RefUnwindSafe, UnwindSafe, catch_unwind};

    fn unwind_safe<T: UnwindSafe>(_: &T) {}
    fn ref_unwind_safe<T: RefUnwindSafe>() {}
    ref_unwind_safe::<MultiSemaphore<2>>();
    ref_unwind_safe::<Controller<2>>();

    let sem = MultiSemaphore::new([2, 1024]);
    let taken = catch_unwind(|| sem.try_acquire([1, 10]).map(|p| p.amounts()));
    assert_eq!(taken.unwrap(), Ok([1, 10]));
    let shared = Arc::new(MultiSemaphore::new([2, 1024]));
    let owned = shared.try_acquire_owned([1, 1]).unwrap();
    let borrowed = shared.try_acquire([1, 1]).unwrap();
    unwind_safe(&borrowed);
    unwind_safe(&shared.acquire([1, 1]));
    unwind_safe(&shared.acquire_owned([1, 1]));
    assert_eq!(catch_unwind(move || owned.amounts()).unwrap(), [1, 1]);
    drop(borrowed);

    let ctl = Controller::builder(Arc::clone(&shared))
        .limit(0, 1..=2, Aimd::default())
        .build();
    let completed = catch_unwind(|| {
        ctl.try_acquire([1, 1])
            .map(|permit| permit.complete(Outcome::success()))
    });
    assert_eq!(completed.unwrap(), Ok(()));
    assert_eq!(shared.available(), shared.capacity());
}

/// The adaptive module's plain values are `Hash` and `Eq`: counted in a
/// map, kept in a set.
#[test]
fn outcomes_windows_and_dimensions_are_hash_and_eq() {
    use multisem::adaptive::{Dimension, Outcome, Window};
    use std::collections::{HashMap, HashSet};

    let mut tally: HashMap<Outcome, u64> = HashMap::new();
    for outcome in [Outcome::success(), Outcome::Dropped, Outcome::success()] {
        *tally.entry(outcome).or_default() += 1;
    }
    assert_eq!(tally[&Outcome::success()], 2);
    let windows = HashSet::from([Window::default(), Window::default()]);
    assert_eq!(windows.len(), 1);
    let dims = HashSet::from([Dimension::default()]);
    assert!(dims.contains(&Dimension::default()));
}

#[test]
fn owned_async_future_runs_on_another_thread() {
    let _wd = Watchdog::new(
        "owned_async_future_runs_on_another_thread",
        Duration::from_secs(60),
    );
    let sem = Arc::new(MultiSemaphore::new([2, 2048]));
    let hold = sem.try_acquire_owned([2, 0]).unwrap();
    let fut = sem.acquire_owned([1, 1024]);
    let barrier = Arc::new(Barrier::new(2));
    let b2 = Arc::clone(&barrier);
    let t = thread::spawn(move || {
        b2.wait();
        futures_executor::block_on(fut).map(|p| p.amounts())
    });
    barrier.wait();
    wait_for_waiters(&sem, 1);
    drop(hold);
    assert_eq!(t.join().unwrap(), Ok([1, 1024]));
    assert_eq!(sem.available(), [2, 2048]);
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

/// RocketMQ #8140: with two separate semaphores, failing to get the bytes after
/// getting the count leaked the count permit, and throughput decayed to zero.
fn rocketmq_scenario(layout: Layout) {
    let _wd = Watchdog::new("rocketmq_scenario", Duration::from_secs(60));
    const MIB: u64 = 1 << 20;
    const KIB: u64 = 1 << 10;
    let sem = layout.make([10, MIB]);
    let all_bytes = sem.try_acquire([0, MIB]).unwrap();
    assert_eq!(sem.available(), [10, 0]);
    let refusals = if cfg!(miri) { 100 } else { 10_000 };
    for _ in 0..refusals {
        assert_eq!(
            sem.try_acquire([1, KIB]).unwrap_err(),
            common::Insufficient {
                dim: 1,
                requested: KIB,
                available: 0
            }
        );
    }
    for _ in 0..3 {
        assert_eq!(
            sem.acquire_blocking_timeout([1, KIB], Duration::from_millis(1))
                .unwrap_err(),
            AcquireError::Timeout
        );
        assert_eq!(
            sem.acquire_blocking_deadline([1, KIB], Instant::now())
                .unwrap_err(),
            AcquireError::Timeout
        );
    }
    // Not one count permit leaked.
    assert_eq!(sem.available(), [10, 0]);
    assert_eq!(sem.stats().refused, [0, refusals]);
    drop(all_bytes);
    assert_eq!(sem.available(), [10, MIB]);
    // Full throughput: ten in flight at once, the eleventh is refused by count.
    let ten: Vec<_> = (0..10)
        .map(|_| sem.try_acquire([1, KIB]).unwrap())
        .collect();
    assert_eq!(sem.available(), [0, MIB - 10 * KIB]);
    assert_eq!(
        sem.try_acquire([1, KIB]).unwrap_err(),
        common::Insufficient {
            dim: 0,
            requested: 1,
            available: 0
        }
    );
    drop(ten);
    for _ in 0..10_000 {
        let batch: Vec<_> = (0..10)
            .map(|_| sem.try_acquire([1, KIB]).unwrap())
            .collect();
        drop(batch);
    }
    assert_eq!(sem.available(), [10, MIB]);
}

#[test]
fn rocketmq_scenario_packed() {
    rocketmq_scenario(Layout::Packed);
}

#[test]
fn rocketmq_scenario_per_dim() {
    rocketmq_scenario(Layout::PerDim);
}

#[test]
fn rocketmq_scenario_with_threads() {
    // Senders race on a byte-starved semaphore; nothing leaks.
    let _wd = Watchdog::new("rocketmq_scenario_with_threads", Duration::from_secs(60));
    const MIB: u64 = 1 << 20;
    for layout in Layout::ALL {
        let sem = layout.make([10, MIB]);
        let hog = sem.try_acquire([0, MIB - 1000]).unwrap();
        thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for i in 0..20_000u64 {
                        if let Ok(p) = sem.try_acquire([1, 100 + i % 1000]) {
                            drop(p);
                        }
                    }
                });
            }
        });
        assert_eq!(sem.available(), [10, 1000]);
        drop(hog);
        assert_eq!(sem.available(), [10, MIB]);
    }
}

/// Without `Builder::max_capacity`, a semaphore that fits one word gets
/// every spare bit of it as room to grow: each dimension's maximum is a
/// field full of ones (`2^k - 1`), at least its capacity, and the fields
/// (plus a guard bit each) fill the 56 bits that the flags and the take
/// tally leave. The spare bits go to the later dimensions first.
#[test]
fn default_max_capacity_uses_every_spare_bit_of_the_word() {
    fn check<const N: usize>(capacity: [u64; N]) {
        let sem = MultiSemaphore::new(capacity);
        assert!(sem.is_single_word(), "{capacity:?}");
        let max = sem.max_capacity();
        let bits: [u32; N] = std::array::from_fn(|d| {
            assert!(max[d] >= capacity[d], "{capacity:?}: {max:?}");
            assert_eq!(max[d] & max[d].wrapping_add(1), 0, "{capacity:?}: {max:?}");
            64 - max[d].leading_zeros()
        });
        let used: u32 = bits.iter().map(|b| b + 1).sum();
        assert_eq!(used, 56, "{capacity:?}: fields {bits:?}");
        // The remainder of the spare bits goes to the later dimensions.
        let widths: Vec<u32> = bits.to_vec();
        let base: Vec<u32> = capacity.iter().map(|&c| 64 - c.leading_zeros()).collect();
        let bonus: Vec<u32> = widths.iter().zip(&base).map(|(w, b)| w - b).collect();
        assert!(
            bonus.windows(2).all(|w| w[0] <= w[1]),
            "{capacity:?}: room to grow {bonus:?}"
        );
    }
    check([1]);
    check([1, 1]);
    check([1024, 100 << 20]);
    check([1, 1, 1]);
    check([1000, 1_000_000, 64, 4000]);
}

/// A permit's `Debug` shows what it holds.
#[test]
fn permits_debug_shows_their_amounts() {
    let sem = Arc::new(MultiSemaphore::new([4, 100]));
    let permit = sem.try_acquire([1, 10]).unwrap();
    assert_eq!(format!("{permit:?}"), "Permit { amounts: [1, 10], .. }");
    let owned = sem.try_acquire_owned([2, 20]).unwrap();
    assert_eq!(format!("{owned:?}"), "OwnedPermit { amounts: [2, 20], .. }");
}

/// The tiered layout's front fields (a hook for tests and benches) must fit
/// the word beside their guard bits, or the builder says so: 28 + 28 bits
/// and two guards are 58, two more than the 56 the flags and tally leave.
#[test]
#[should_panic(expected = "do not fit in one word")]
fn front_bits_that_do_not_fit_the_word_are_refused() {
    let _ = MultiSemaphore::builder([1 << 40, 1 << 40])
        .max_capacity([MultiSemaphore::<2>::MAX_PERMITS; 2])
        .front_bits([28, 28])
        .build();
}

/// The widest front fields that fit are accepted: 27 + 27 bits and two
/// guards fill the 56 bits exactly.
#[test]
fn front_bits_that_fill_the_word_are_accepted() {
    let sem = MultiSemaphore::builder([1 << 40, 1 << 40])
        .max_capacity([MultiSemaphore::<2>::MAX_PERMITS; 2])
        .front_bits([27, 27])
        .build();
    let permit = sem.try_acquire([1 << 39, 1]).unwrap();
    assert_eq!(sem.available(), [1 << 39, (1 << 40) - 1]);
    drop(permit);
    assert_eq!(sem.available(), [1 << 40, 1 << 40]);
}

#[test]
#[should_panic(expected = "set_capacity_of: dimension 2 out of range (the semaphore has 2)")]
fn set_capacity_of_panics_on_a_dimension_out_of_range() {
    let _ = MultiSemaphore::new([1, 1]).set_capacity_of(2, 1);
}

/// Two owners, each resizing its own dimension in a loop: neither ever
/// undoes the other's resize (as reading the capacity and writing it back
/// with `set_capacity` would, between another's read and write).
#[test]
fn owners_of_two_dimensions_never_undo_each_other() {
    for layout in Layout::ALL {
        let sem = Arc::new(layout.make([1000, 1000]));
        let start = Arc::new(Barrier::new(2));
        let done = Arc::new([false, false].map(std::sync::atomic::AtomicBool::new));
        let owner = |dim: usize| {
            let (sem, start, done) = (Arc::clone(&sem), Arc::clone(&start), Arc::clone(&done));
            thread::spawn(move || {
                start.wait();
                let began = Instant::now();
                // 2000 resizes, and on until the other owner's were seen
                // between this one's (they raced), the other finished, or
                // 5 s passed.
                let (mut i, mut seen_other, mut other) = (0, 0, sem.capacity()[1 - dim]);
                while i < 2000
                    || (seen_other == 0
                        && !done[1 - dim].load(std::sync::atomic::Ordering::SeqCst)
                        && began.elapsed() < Duration::from_secs(5))
                {
                    let capacity = 1 + (i % 997);
                    sem.set_capacity_of(dim, capacity).unwrap();
                    let now = sem.capacity();
                    assert_eq!(now[dim], capacity, "{layout:?}, dim {dim}");
                    if now[1 - dim] != other {
                        (seen_other, other) = (seen_other + 1, now[1 - dim]);
                    }
                    i += 1;
                }
                done[dim].store(true, std::sync::atomic::Ordering::SeqCst);
                (1 + (i - 1) % 997, seen_other)
            })
        };
        let (a, b) = (owner(0), owner(1));
        let ((last_a, seen_a), (last_b, seen_b)) = (a.join().unwrap(), b.join().unwrap());
        assert!(
            seen_a + seen_b > 0,
            "{layout:?}: the owners never overlapped"
        );
        assert_eq!(sem.capacity(), [last_a, last_b], "{layout:?}");
        assert_eq!(sem.available(), sem.capacity());
    }
}

/// A timeout too long for the clock (`Duration::MAX`) waits without a
/// deadline: no overflow, and the grant comes when the permits do.
#[test]
fn a_timeout_of_duration_max_waits_without_overflowing() {
    let sem = Arc::new(MultiSemaphore::new([1, 10]));
    drop(
        sem.acquire_blocking_timeout([1, 10], Duration::MAX)
            .unwrap(),
    );
    let held = sem.try_acquire_owned([1, 10]).unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
    });
    let owned = Arc::clone(&sem)
        .acquire_owned_blocking_timeout([1, 5], Duration::MAX)
        .unwrap();
    assert_eq!(owned.amounts(), [1, 5]);
    releaser.join().unwrap();
    drop(owned);
    assert_eq!(sem.available(), sem.capacity());
}

/// An acquire future says what it asks for and whether it is queued.
#[test]
fn acquire_futures_debug_their_amounts_and_whether_queued() {
    let sem = Arc::new(MultiSemaphore::new([1, 10]));
    let held = sem.try_acquire([1, 0]).unwrap();
    let mut borrowed = Box::pin(sem.acquire([1, 5]));
    assert_eq!(
        format!("{borrowed:?}"),
        "Acquire { amounts: [1, 5], queued: false, .. }"
    );
    assert!(poll_once(borrowed.as_mut()).is_pending());
    assert_eq!(
        format!("{borrowed:?}"),
        "Acquire { amounts: [1, 5], queued: true, .. }"
    );
    let owned = sem.acquire_owned([1, 2]);
    assert_eq!(
        format!("{owned:?}"),
        "AcquireOwned { amounts: [1, 2], queued: false, .. }"
    );
    let timed = sem
        .acquire([0, 3])
        .with_timeout(std::future::pending::<()>());
    assert_eq!(
        format!("{timed:?}"),
        "AcquireTimeout { amounts: [0, 3], queued: false, .. }"
    );
    let owned_timed = owned.with_timeout(std::future::pending::<()>());
    assert_eq!(
        format!("{owned_timed:?}"),
        "AcquireOwnedTimeout { amounts: [1, 2], queued: false, .. }"
    );
    drop((borrowed, owned_timed, timed, held));
    assert_eq!(sem.available(), sem.capacity());
}

/// `try_acquire_or_wait` takes at once what fits, as `try_acquire` does;
/// otherwise it hands back the acquire, not yet queued and counted
/// nowhere: never a refusal. Its first poll queues it (or fails it), and
/// the wait counts as any acquire's.
#[test]
fn try_acquire_or_wait_takes_or_hands_back_the_wait() {
    let sem = Arc::new(MultiSemaphore::new([2, 1000]));
    let first = sem.try_acquire_or_wait([1, 600]).expect("fits");
    assert_eq!(first.amounts(), [1, 600]);
    let Err(mut later) = sem.try_acquire_or_wait([1, 600]) else {
        panic!("600 more cannot fit");
    };
    // Handed back, not queued: a try still takes what fits.
    assert_eq!(sem.waiters(), 0);
    let small = sem.try_acquire([1, 100]).unwrap();
    drop(small);
    assert!(poll_once(std::pin::Pin::new(&mut later)).is_pending());
    assert_eq!(sem.waiters(), 1);
    drop(first);
    let second = ready(poll_once(std::pin::Pin::new(&mut later)), "granted").unwrap();
    assert_eq!(second.amounts(), [1, 600]);
    let stats = sem.stats();
    assert_eq!(
        (stats.acquired, stats.refused, stats.waited),
        (3, [0, 0], [0, 1])
    );

    // The owned twin, and the errors, from the first poll.
    let Err(oversized) = sem.try_acquire_owned_or_wait([1, 1001]) else {
        panic!("too large to fit");
    };
    let err = ready(poll_once(std::pin::pin!(oversized)), "failed at once").unwrap_err();
    assert!(matches!(
        err,
        AcquireError::ExceedsCapacity {
            dim: 1,
            requested: 1001,
            capacity: 1000,
            ..
        }
    ));
    // Dropped before its first poll: it never queued, and counts nowhere.
    let Err(unpolled) = sem.try_acquire_owned_or_wait([2, 0]) else {
        panic!("one of 2 is held");
    };
    drop(unpolled);
    let stats = sem.stats();
    assert_eq!(
        (stats.refused, stats.exceeded, stats.cancelled, stats.waited),
        ([0, 0], [0, 1], 0, [0, 1])
    );
    sem.close();
    let Err(closed) = sem.try_acquire_owned_or_wait([1, 1]) else {
        panic!("closed");
    };
    let err = ready(poll_once(std::pin::pin!(closed)), "closed out").unwrap_err();
    assert_eq!(err, AcquireError::Closed);
    drop(second);
    assert_eq!(sem.available(), sem.capacity());
}

/// A refusal on the lock-free path names every short dimension where one
/// word holds them all; in the tiered layout, whose tiers only the lock
/// reads at one instant, only the dimension that refused it (such a refusal
/// takes no lock). Behind a queue, both name what the head lacks.
#[test]
fn a_lock_free_refusal_names_its_short_dimensions_as_its_layout_can() {
    for (sem, all) in [
        (MultiSemaphore::new([4, 1000]), true),
        (MultiSemaphore::new([4, 1 << 55]), false),
    ] {
        let cap = sem.capacity();
        let _all = sem.try_acquire(cap).unwrap();
        let err = sem.try_acquire([1, 1]).unwrap_err();
        let TryAcquireError::Insufficient { dim, short, .. } = err else {
            panic!("insufficient: {err:?}");
        };
        let want: Vec<usize> = if all { vec![0, 1] } else { vec![0] };
        assert_eq!((dim, short.iter().collect::<Vec<_>>()), (0, want));
    }
}

/// `Insufficient::dim` is the first dimension in `short`, also when another
/// thread empties a lower dimension between the refused take and the read
/// that fills in `short`: that read may add dimensions after `dim`, never
/// one before it, which was not short when the take looked. One thread asks
/// for `[1, 60]` with 50 bytes free (short in bytes alone) while another
/// takes and returns the whole count. Within 1000 tries on the old code.
/// Bounded: 400 ms of tries a layout.
#[test]
fn a_refusals_dimension_is_the_first_it_names_short_while_others_race() {
    use std::sync::atomic::{AtomicBool, Ordering};
    for layout in Layout::ALL {
        let sem = Arc::new(layout.make([2, 100]));
        let _bytes = sem.try_acquire([0, 50]).unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    drop(sem.try_acquire([2, 0]));
                }
            });
            let end = Instant::now() + Duration::from_millis(400);
            let mut tries = 0u64;
            while Instant::now() < end {
                tries += 1;
                let err = sem.try_acquire([1, 60]).unwrap_err();
                let TryAcquireError::Insufficient { dim, short, .. } = err else {
                    panic!("{layout:?}: insufficient, not {err:?}");
                };
                let short: Vec<usize> = short.iter().collect();
                if short.first() != Some(&dim) {
                    stop.store(true, Ordering::Relaxed);
                    panic!("{layout:?}: dim {dim}, short {short:?}, after {tries} tries");
                }
            }
            stop.store(true, Ordering::Relaxed);
            assert!(tries > 0, "{layout:?}");
        });
    }
}
