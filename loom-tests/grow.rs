//! Issue 15: permits that change size. `try_grow` racing a partial
//! `release` and a waiter's enqueue: a grow takes all of its amounts or
//! nothing, never overtakes a waiter it could have seen queued, and a
//! partial release serves the queue like a drop does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loom::thread;
use multisem::TryAcquireError;

use crate::support::{Ghost, Layout, assert_quiescent, models};

models! {
    try_grow_racing_release_and_enqueue_is_all_or_nothing_and_fair: 2,
}

/// Capacity [2, 2]. The main thread holds P = [1, 0]; thread R holds
/// Q = [1, 1] and gives it back in two parts (`release([0, 1])`, then the
/// drop); thread W blocks for [1, 1]. The main thread grows P by [1, 1],
/// which dimension 1 can supply before dimension 0 can.
///
/// * All or nothing: the grow either holds both amounts or neither, and
///   the ledger never sees more held than the capacity.
/// * No overtaking: a grow that starts after `waiters()` showed W queued
///   may succeed only once W has been served and given its permit back
///   (while W holds [1, 1], [1, 1] more cannot fit).
/// * No lost wakeup: W is granted whatever the interleaving (a never-woken
///   W is a loom deadlock), by R's last part or by the drop of P.
fn try_grow_racing_release_and_enqueue_is_all_or_nothing_and_fair(layout: Layout) {
    let cap = [2, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let mut p = sem.try_acquire([1, 0]).unwrap();
    ghost.take([1, 0]);
    let mut q = sem.try_acquire_owned([1, 1]).unwrap();
    ghost.take([1, 1]);

    let releaser = {
        let ghost = Arc::clone(&ghost);
        thread::spawn(move || {
            ghost.give([0, 1]);
            q.release([0, 1]).unwrap();
            assert_eq!(q.amounts(), [1, 0]);
            ghost.give([1, 0]);
            drop(q);
        })
    };
    let waiter = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let permit = sem
                .acquire_blocking_deadline([1, 1], deadline)
                .expect("the waiter must be granted");
            ghost.take([1, 1]);
            ghost.give([1, 1]);
            drop(permit);
        })
    };

    let saw_waiter = sem.waiters() > 0;
    match p.try_grow([1, 1]) {
        Ok(()) => {
            // W records its grant (the third) before it drops the permit.
            let waiter_served = ghost.granted() == 3;
            assert!(
                !saw_waiter || waiter_served,
                "a grow overtook a waiter it had seen queued"
            );
            ghost.take([1, 1]);
            assert_eq!(p.amounts(), [2, 1]);
        }
        Err(TryAcquireError::Insufficient { .. }) => {
            assert_eq!(p.amounts(), [1, 0], "a failed grow changed the permit");
        }
        Err(other) => panic!("try_grow failed with {other:?}"),
    }
    ghost.give(p.amounts());
    drop(p);
    releaser.join().unwrap();
    waiter.join().unwrap();

    assert_quiescent(&sem, cap);
}
