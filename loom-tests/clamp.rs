//! Issue 15: the oversized policy. A clamped request at the head of the
//! queue races `set_capacity` and the release it waits for: it is granted
//! the capacity of the moment of its grant, so a shrink never strands it
//! (a clamp fixed at enqueue would wait for more than exists: a loom
//! deadlock) and a growth never gives it more than it asked.

use std::sync::Arc;

use loom::thread;

use crate::support::{Layout, assert_quiescent, block_on, models, poll_once};

models! {
    clamped_head_racing_shrink_is_granted_the_capacity_of_its_grant: 2,
    clamped_head_racing_growth_is_granted_the_capacity_of_its_grant: 2,
    clamping_try_acquire_racing_a_shrink_is_never_refused_for_its_size: 3,
    clamping_try_acquire_racing_a_growth_is_granted: 3,
}

/// Capacity [1, 2]; a permit P = [0, 1] is out. The main thread's async
/// request for [1, 5] is clamped and queued (it needs both bytes). Thread R
/// drops P while thread S calls `set_capacity(capacity_after)`. The request
/// is granted `[1, capacity]` at whichever capacity held at its grant, one
/// of the two; then everything balances at the new capacity.
fn clamped_head_races(layout: Layout, capacity_after: [u64; 2]) {
    let before = [1, 2];
    let sem = Arc::new(layout.builder(before).clamp_oversized(true).build());
    let p = sem.try_acquire_owned([0, 1]).unwrap();

    let mut request = Box::pin(sem.acquire([1, 5]));
    let waker = std::task::Waker::noop();
    assert!(poll_once(request.as_mut(), waker).is_pending());
    assert_eq!(sem.waiters(), 1);

    let releaser = thread::spawn(move || drop(p));
    let resizer = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity(capacity_after).unwrap())
    };

    let permit = block_on(request).expect("the clamped head is granted");
    let granted = permit.amounts();
    assert!(
        granted == [1, before[1]] || granted == [1, capacity_after[1]],
        "granted {granted:?}: neither the capacity before ({before:?}) nor after ({capacity_after:?})"
    );
    drop(permit);
    releaser.join().unwrap();
    resizer.join().unwrap();
    assert_eq!(sem.stats().clamped, 1);

    assert_quiescent(&sem, capacity_after);
}

fn clamped_head_racing_shrink_is_granted_the_capacity_of_its_grant(layout: Layout) {
    clamped_head_races(layout, [1, 1]);
}

fn clamped_head_racing_growth_is_granted_the_capacity_of_its_grant(layout: Layout) {
    clamped_head_races(layout, [1, 3]);
}

/// Capacity [1, 2] with [0, 1] held, on a clamping semaphore: the main
/// thread's `try_acquire([1, 2])` misses the fast path (one byte is free)
/// while thread S shrinks the bytes to 1. Before the shrink the request
/// fits and is short; after it, it is clamped to [1, 1] and is short still.
/// Either way `Insufficient`, never `ExceedsCapacity`: a clamping semaphore
/// refuses nothing for its size, even when the capacity it read to decide
/// whether to clamp is gone by the time it checks (a reviewer's finding).
fn clamping_try_acquire_racing_a_shrink_is_never_refused_for_its_size(layout: Layout) {
    let sem = Arc::new(layout.builder([1, 2]).clamp_oversized(true).build());
    let held = sem.try_acquire_owned([0, 1]).unwrap();
    let resizer = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity([1, 1]).unwrap())
    };
    match sem.try_acquire([1, 2]) {
        Err(error) => assert!(error.is_insufficient(), "{error:?}"),
        Ok(permit) => panic!("granted {:?} with a byte held", permit.amounts()),
    }
    resizer.join().unwrap();
    assert_eq!(sem.stats().exceeded, [0, 0]);
    drop(held);
    assert_quiescent(&sem, [1, 1]);
}

/// Capacity [1, 1], nothing held, on a clamping semaphore: the main
/// thread's `try_acquire([1, 2])` misses the fast path (one byte is free)
/// while thread S grows the bytes to 2. Before the growth the request is
/// clamped to [1, 1] and fits; after it, [1, 2] fits. Either way it is
/// granted: a refusal decided on a lock-free read of the capacities (the
/// shortcut for a short take, which read the grown capacity and found the
/// request not oversized) is wrong at every instant (a reviewer's finding).
fn clamping_try_acquire_racing_a_growth_is_granted(layout: Layout) {
    let sem = Arc::new(layout.builder([1, 1]).clamp_oversized(true).build());
    let resizer = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity([1, 2]).unwrap())
    };
    let permit = sem
        .try_acquire([1, 2])
        .unwrap_or_else(|error| panic!("refused: {error:?}"));
    let granted = permit.amounts();
    assert!(
        granted == [1, 1] || granted == [1, 2],
        "granted {granted:?}: neither the clamp to [1, 1] nor the whole request"
    );
    drop(permit);
    resizer.join().unwrap();
    assert_eq!(sem.stats().clamped, u64::from(granted == [1, 1]));
    assert_quiescent(&sem, [1, 2]);
}
