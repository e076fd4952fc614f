//! Issue 5: live limits (`add_permits`, `set_capacity`) under concurrency.

use std::sync::Arc;

use loom::thread;
use multisem::{AcquireError, TryAcquireError};

use crate::support::{Defuse, Ghost, Layout, Sem, assert_quiescent, models};

models! {
    add_permits_racing_acquire_and_release: 3,
    shrink_below_in_flight_then_concurrent_releases: 3,
    set_capacity_shrink_racing_queued_waiter: 3,
    set_capacity_grow_serves_queued_waiter: 3,
    forget_racing_queued_waiter_fails_it_with_exceeds_capacity: 3,
    give_back_refused_by_a_shrink_still_serves_the_queue: 3,
}

/// `available()` must never read more than `bound` in a dimension: a wrapped
/// counter would read close to `u64::MAX`.
#[track_caller]
fn assert_no_wrap(sem: &Sem, bound: [u64; 2]) {
    let available = sem.available();
    for d in 0..2 {
        assert!(
            available[d] <= bound[d],
            "available {available:?} over {bound:?}: a counter wrapped"
        );
    }
}

/// A blocking waiter is queued behind a full permit; `add_permits` and the
/// release of that permit race it. Either may serve it; both land exactly.
fn add_permits_racing_acquire_and_release(layout: Layout) {
    let cap = [1, 1];
    let grown = [2, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(grown);

    let held = sem.try_acquire_owned(cap).unwrap();
    ghost.take(cap);
    let waiter = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            let permit = sem
                .acquire_blocking([1, 1])
                .expect("the waiter must be granted");
            ghost.take(permit.amounts());
            ghost.give(permit.amounts());
            drop(permit);
        })
    };
    let grower = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.add_permits([1, 1]).unwrap())
    };
    ghost.give(held.amounts());
    drop(held);
    waiter.join().unwrap();
    grower.join().unwrap();

    assert_quiescent(&sem, grown);
}

/// Capacity shrinks from [2, 2] to [1, 0] while two [1, 1] permits are out
/// and the first is released concurrently; then a second thread, still
/// holding the other, tries to take [1, 0], racing that release, and returns
/// its permit. The counters never wrap, and no grant passes the *new*
/// capacity: the debt holds back every grant of a dimension that owes, even
/// one racing a return that lands in the counters between the locked path's
/// settling of the debt and its take. At the end the books balance at the new
/// capacity.
fn shrink_below_in_flight_then_concurrent_releases(layout: Layout) {
    let cap = [2, 2];
    let shrunk = [1, 0];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let first = sem.try_acquire_owned([1, 1]).unwrap();
    let second = sem.try_acquire_owned([1, 1]).unwrap();
    ghost.take([1, 1]);
    ghost.take([1, 1]);

    let t1 = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            ghost.give(first.amounts());
            drop(first);
            assert_no_wrap(&sem, cap);
        })
    };
    sem.set_capacity(shrunk).unwrap();
    assert_eq!(sem.capacity(), shrunk, "capacity shrinks at once");
    // From here on, every grant is checked against the new capacity.
    ghost.lower_limit(shrunk);
    let t2 = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            match sem.try_acquire([1, 0]) {
                Ok(permit) => {
                    ghost.take(permit.amounts());
                    ghost.give(permit.amounts());
                    drop(permit);
                }
                Err(TryAcquireError::Insufficient { dim: 0, .. }) => {}
                Err(other) => panic!("try_acquire([1, 0]) failed with {other:?}"),
            }
            ghost.give(second.amounts());
            drop(second);
        })
    };
    // A snapshot is exact at some instant during the call: it never shows
    // more than the new capacity less the least that was in flight meanwhile.
    ghost.mark_low();
    let available = sem.available();
    let low = ghost.low();
    for d in 0..2 {
        assert!(
            available[d] <= shrunk[d].saturating_sub(low[d]),
            "available() read {available:?} after set_capacity({shrunk:?}) returned, \
             with at least {low:?} in flight throughout the call"
        );
    }
    t1.join().unwrap();
    t2.join().unwrap();

    assert_quiescent(&sem, shrunk);
    assert_eq!(
        sem.try_acquire([0, 1]).unwrap_err(),
        crate::support::TryExceeds {
            dim: 1,
            requested: 1,
            capacity: 0
        }
    );
}

/// A blocking waiter for [2, 1] is queued behind a full permit while capacity
/// shrinks to [1, 2] and the permit is released: the waiter is granted (the
/// release came first) or fails with `ExceedsCapacity` (the shrink came first),
/// and never sleeps forever.
fn set_capacity_shrink_racing_queued_waiter(layout: Layout) {
    let cap = [2, 2];
    let shrunk = [1, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let held = sem.try_acquire_owned(cap).unwrap();
    ghost.take(cap);
    let waiter = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || match sem.acquire_blocking([2, 1]) {
            Ok(permit) => {
                ghost.take(permit.amounts());
                ghost.give(permit.amounts());
                drop(permit);
            }
            Err(AcquireError::ExceedsCapacity {
                dim: 0,
                requested: 2,
                capacity: 1,
                ..
            }) => {}
            Err(other) => panic!("acquire([2, 1]) failed with {other:?}"),
        })
    };
    let shrinker = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity(shrunk).unwrap())
    };
    ghost.give(held.amounts());
    drop(held);
    waiter.join().unwrap();
    shrinker.join().unwrap();

    assert_quiescent(&sem, shrunk);
}

/// A blocking waiter is queued behind a permit that is never released before it
/// completes; `set_capacity` grows the capacity so it fits, and it must be
/// served with no release at all.
fn set_capacity_grow_serves_queued_waiter(layout: Layout) {
    let cap = [1, 1];
    let grown = [2, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(grown);

    let held = Defuse::new(sem.try_acquire(cap).unwrap());
    ghost.take(cap);
    let waiter = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            let permit = sem
                .acquire_blocking([1, 1])
                .expect("growing must serve the waiter");
            ghost.take(permit.amounts());
            ghost.give(permit.amounts());
            drop(permit);
        })
    };
    sem.set_capacity(grown).unwrap();
    assert_eq!(sem.capacity(), grown);
    waiter.join().unwrap();

    ghost.give(cap);
    drop(held);
    assert_quiescent(&sem, grown);
}

/// A blocking waiter for [2, 1] queues behind a full permit while its holder
/// forgets [1, 0] of it and returns the rest: capacity drops to [1, 2], so the
/// waiter can never fit and must fail with `ExceedsCapacity` instead of
/// blocking the queue (it can never be granted before the forget: the permit
/// holds all of dimension 0 until then).
fn forget_racing_queued_waiter_fails_it_with_exceeds_capacity(layout: Layout) {
    let cap = [2, 2];
    let sem = layout.arc(cap);

    let mut held = sem.try_acquire_owned(cap).unwrap();
    let waiter = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            assert_eq!(
                sem.acquire_blocking([2, 1]).unwrap_err(),
                crate::support::Exceeds {
                    dim: 0,
                    requested: 2,
                    capacity: 1
                }
            );
        })
    };
    held.split([1, 0]).unwrap().forget();
    drop(held);
    waiter.join().unwrap();

    assert_quiescent(&sem, [1, 2]);
}

/// A take of [2, 1] (on this thread) holds its reserve part when a waiter for
/// [1, 1] queues and the capacity shrinks to [1, 2]; its commit then sees
/// `SLOW` and gives its part back, and the shrink makes it fail with
/// `ExceedsCapacity`, a refusal that needs no lock. The permits it gave back
/// are what the waiter needs (with the shrink's debt paid): the take must
/// visit the lock to serve the queue before it returns, or the waiter sleeps
/// for good with its permits free.
fn give_back_refused_by_a_shrink_still_serves_the_queue(layout: Layout) {
    let cap = [2, 2];
    let shrunk = [1, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let waiter = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            let limit = ghost.limit();
            let permit = sem
                .acquire_blocking([1, 1])
                .expect("[1, 1] fits both capacities: the waiter must be granted");
            ghost.take_under(permit.amounts(), limit);
            ghost.give(permit.amounts());
            drop(permit);
        })
    };
    let shrinker = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            sem.set_capacity(shrunk).unwrap();
            ghost.lower_limit(shrunk);
        })
    };
    let limit = ghost.limit();
    match sem.try_acquire([2, 1]) {
        Ok(permit) => {
            ghost.take_under(permit.amounts(), limit);
            ghost.give(permit.amounts());
            drop(permit);
        }
        Err(TryAcquireError::Insufficient { .. })
        | Err(TryAcquireError::ExceedsCapacity { dim: 0, .. }) => {}
        Err(other) => panic!("try_acquire([2, 1]) failed with {other:?}"),
    }
    shrinker.join().unwrap();
    waiter.join().unwrap();

    assert_quiescent(&sem, shrunk);
}
