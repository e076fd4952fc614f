//! Issue 2: the lock-free, all-or-nothing core.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use loom::thread;
use multisem::TryAcquireError;

use crate::support::{Ghost, Layout, Sem, assert_quiescent, models};

models! {
    racing_try_acquires_never_exceed_capacity: 3,
    try_acquire_and_release_loops_keep_exact_accounting: 3,
    rollback_racing_release_leaks_nothing: 3,
    rollback_of_dimension_1_racing_take_counts_exactly: 3,
    split_merge_forget_racing_try_acquire_keep_exact_accounting: 3,
    close_racing_try_acquire_and_release_stays_closed: 3,
}

/// One `try_acquire`: on success the ghost ledger checks the grant and the
/// permit is dropped; a failure must be a truthful `Insufficient`.
fn try_once(sem: &Sem, ghost: &Ghost, request: [u64; 2]) -> bool {
    match sem.try_acquire(request) {
        Ok(permit) => {
            assert_eq!(permit.amounts(), request);
            ghost.take(request);
            ghost.give(request);
            drop(permit);
            true
        }
        Err(TryAcquireError::Insufficient {
            dim,
            requested,
            available,
            ..
        }) => {
            assert_eq!(requested, request[dim], "the error names the request");
            assert!(
                available < requested,
                "Insufficient on dimension {dim} with {available} available for {requested}"
            );
            false
        }
        Err(other) => panic!("try_acquire({request:?}) failed with {other:?}"),
    }
}

/// Three threads race `try_acquire` with overlapping two-dimensional requests
/// that pairwise do not fit together: no two are ever held at once beyond the
/// capacity, failures are truthful, and everything is back at the end.
fn racing_try_acquires_never_exceed_capacity(layout: Layout) {
    let cap = [2, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let handles: Vec<_> = [[1, 2], [2, 1]]
        .into_iter()
        .map(|request| {
            let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
            thread::spawn(move || try_once(&sem, &ghost, request))
        })
        .collect();
    try_once(&sem, &ghost, [1, 1]);
    for handle in handles {
        handle.join().unwrap();
    }

    assert_quiescent(&sem, cap);
}

/// Two threads each acquire, hold and release in turn; one takes twice while
/// the other takes a request that conflicts on both dimensions. Releases race
/// acquires; the books balance after every execution.
fn try_acquire_and_release_loops_keep_exact_accounting(layout: Layout) {
    let cap = [1, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let t = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            for _ in 0..2 {
                try_once(&sem, &ghost, [1, 1]);
            }
        })
    };
    try_once(&sem, &ghost, [1, 2]);
    t.join().unwrap();

    assert_quiescent(&sem, cap);
    // Every success the ghost saw, plus the final probe in assert_quiescent.
    assert_eq!(
        sem.stats().acquired,
        ghost.granted() + 1,
        "stats().acquired"
    );
}

/// A request that fits dimension 0 but not dimension 1 (where a layout that
/// takes dimension 0 first would roll it back; the tiered layout's reserve
/// checks both before taking anything) races the release of
/// dimension 1 and a third thread that wants only dimension 0. Whatever the
/// order, nothing is lost or counted twice.
fn rollback_racing_release_leaks_nothing(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let held = sem.try_acquire_owned([0, 1]).unwrap();
    ghost.take([0, 1]);

    let releaser = {
        let ghost = Arc::clone(&ghost);
        thread::spawn(move || {
            ghost.give(held.amounts());
            drop(held);
        })
    };
    let other = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || try_once(&sem, &ghost, [1, 0]))
    };
    match sem.try_acquire([1, 1]) {
        Ok(permit) => {
            ghost.take([1, 1]);
            ghost.give([1, 1]);
            drop(permit);
        }
        Err(TryAcquireError::Insufficient {
            dim,
            requested: 1,
            available: 0,
            ..
        }) => assert!(dim < 2),
        Err(other) => panic!("try_acquire([1, 1]) failed with {other:?}"),
    }
    releaser.join().unwrap();
    other.join().unwrap();

    assert_quiescent(&sem, cap);
}

/// A request for both dimensions races one for dimension 0 only and one for
/// dimension 1 only, each of which can take its dimension between the first
/// one's check and its take. Then the first may have taken the other
/// dimension already and must give it back, racing the third thread. No
/// permit is lost, and the acquisition count is exact: a take is counted
/// only when it commits.
fn rollback_of_dimension_1_racing_take_counts_exactly(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let count_only = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || try_once(&sem, &ghost, [1, 0]))
    };
    let bytes_only = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || try_once(&sem, &ghost, [0, 1]))
    };
    let both = try_once(&sem, &ghost, [1, 1]);
    let count = count_only.join().unwrap();
    let bytes = bytes_only.join().unwrap();

    let successes = u64::from(both) + u64::from(count) + u64::from(bytes);
    assert_eq!(sem.stats().acquired, successes, "acquisitions counted");
    assert_quiescent(&sem, cap);
}

/// One thread splits a full permit in three, checks an oversized split changes
/// nothing, merges two parts back, drops one and forgets the rest, while another
/// thread tries to take what is released. Capacity shrinks by exactly what was
/// forgotten and the books balance.
fn split_merge_forget_racing_try_acquire_keep_exact_accounting(layout: Layout) {
    let cap = [2, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let mut permit = sem.try_acquire_owned(cap).unwrap();
    ghost.take(cap);

    let owner = {
        let ghost = Arc::clone(&ghost);
        thread::spawn(move || {
            let a = permit.split([1, 0]).unwrap();
            let b = permit.split([0, 1]).unwrap();
            assert_eq!(permit.amounts(), [1, 1]);
            assert!(permit.split([2, 0]).is_none(), "split of more than held");
            assert_eq!(permit.amounts(), [1, 1], "a refused split changes nothing");
            permit.merge(a);
            assert_eq!(permit.amounts(), [2, 1]);
            ghost.give(b.amounts());
            drop(b);
            ghost.give(permit.amounts());
            permit.forget();
        })
    };

    // Dimension 1 comes back (b), dimension 0 never does (forgotten).
    try_once(&sem, &ghost, [0, 1]);
    match sem.try_acquire([1, 1]) {
        Err(TryAcquireError::Insufficient { .. })
        | Err(TryAcquireError::ExceedsCapacity {
            dim: 0,
            requested: 1,
            capacity: 0,
            ..
        }) => {}
        other => panic!("dimension 0 is never released, yet try_acquire([1, 1]) gave {other:?}"),
    }
    owner.join().unwrap();

    assert_quiescent(&sem, [0, 1]);
}

/// `close` races a `try_acquire` and the release of a permit (a counter update
/// that must not lose the closed flag). A try that starts after `close` returned
/// fails with `Closed`; afterwards the semaphore stays closed, every acquire
/// (even of nothing) fails with `Closed` after the `ExceedsCapacity` check, and
/// the released permit is back.
fn close_racing_try_acquire_and_release_stays_closed(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);
    let closed = Arc::new(AtomicBool::new(false));

    let held = sem.try_acquire_owned([1, 0]).unwrap();
    ghost.take([1, 0]);

    let closer = {
        let (sem, closed) = (Arc::clone(&sem), Arc::clone(&closed));
        thread::spawn(move || {
            sem.close();
            closed.store(true, SeqCst);
            assert!(sem.is_closed());
        })
    };
    let releaser = {
        let ghost = Arc::clone(&ghost);
        thread::spawn(move || {
            ghost.give(held.amounts());
            drop(held);
        })
    };

    let closed_before = closed.load(SeqCst);
    match sem.try_acquire([0, 1]) {
        Ok(permit) => {
            assert!(
                !closed_before,
                "try_acquire succeeded after close() returned"
            );
            ghost.take([0, 1]);
            ghost.give([0, 1]);
            drop(permit);
        }
        Err(TryAcquireError::Closed) => {}
        Err(other) => panic!("try_acquire([0, 1]) failed with {other:?}"),
    }
    closer.join().unwrap();
    releaser.join().unwrap();

    assert!(sem.is_closed(), "closed stays closed");
    assert_eq!(sem.try_acquire([0, 1]).err(), Some(TryAcquireError::Closed));
    assert_eq!(sem.try_acquire([0, 0]).err(), Some(TryAcquireError::Closed));
    assert_eq!(
        sem.try_acquire([2, 0]).unwrap_err(),
        crate::support::TryExceeds {
            dim: 0,
            requested: 2,
            capacity: 1
        }
    );
    assert_quiescent(&sem, cap);
}
