//! Acceptance tests of permits that change size: `try_grow` and `release`
//! on `Permit` and `OwnedPermit`, every error, in every layout.
//!
//! Each test states the scenario a producer meets: a size known only after
//! encoding (grow), a message that compressed well (release), and the rule
//! that neither may overtake a queued acquirer or take part of a request.

use std::pin::pin;
use std::sync::Arc;

use multisem::*;

mod common;
use common::{Layout, counting_waker, poll_once, poll_with, ready};

/// Every layout, each test run on all three.
fn each_layout(mut check: impl FnMut(Layout, Arc<MultiSemaphore<2>>)) {
    for layout in Layout::ALL {
        check(layout, Arc::new(layout.make([4, 1000])));
    }
}

#[test]
fn grow_takes_exactly_the_amounts_and_drop_returns_all() {
    each_layout(|layout, sem| {
        let mut permit = sem.try_acquire([1, 100]).unwrap();
        permit.try_grow([1, 250]).unwrap();
        assert_eq!(permit.amounts(), [2, 350], "{layout:?}");
        assert_eq!(sem.available(), [2, 650], "{layout:?}");
        drop(permit);
        assert_eq!(sem.available(), [4, 1000], "{layout:?}");
    });
}

#[test]
fn grow_of_zero_changes_nothing() {
    each_layout(|layout, sem| {
        let mut permit = sem.try_acquire([1, 100]).unwrap();
        permit.try_grow([0, 0]).unwrap();
        assert_eq!(permit.amounts(), [1, 100], "{layout:?}");
        assert_eq!(sem.available(), [3, 900], "{layout:?}");
    });
}

#[test]
fn grow_short_is_insufficient_and_takes_nothing() {
    each_layout(|layout, sem| {
        let mut permit = sem.try_acquire([1, 300]).unwrap();
        let _other = sem.try_acquire([0, 300]).unwrap();
        // Dimension 0 fits, dimension 1 does not: nothing of either is taken.
        assert_eq!(
            permit.try_grow([2, 401]).unwrap_err(),
            common::Insufficient {
                dim: 1,
                requested: 401,
                available: 400
            },
            "{layout:?}"
        );
        assert_eq!(permit.amounts(), [1, 300], "{layout:?}");
        assert_eq!(sem.available(), [3, 400], "{layout:?}");
    });
}

#[test]
fn grow_above_capacity_is_exceeds_capacity() {
    each_layout(|layout, sem| {
        let mut permit = sem.try_acquire([1, 10]).unwrap();
        // `requested` is what the permit would hold.
        assert_eq!(
            permit.try_grow([0, 1001]).unwrap_err(),
            common::TryExceeds {
                dim: 1,
                requested: 1011,
                capacity: 1000
            },
            "{layout:?}"
        );
        assert_eq!(permit.amounts(), [1, 10], "{layout:?}");
        assert_eq!(sem.available(), [3, 990], "{layout:?}");
    });
}

#[test]
fn grow_that_the_permit_could_never_hold_is_exceeds_capacity() {
    each_layout(|layout, sem| {
        let mut permit = sem.try_acquire([1, 600]).unwrap();
        // 500 would fit the capacity alone, not beside the 600 held: no
        // retry can succeed, so not `Insufficient` (which says one may).
        let err = permit.try_grow([1, 500]).unwrap_err();
        assert_eq!(
            err,
            common::TryExceeds {
                dim: 1,
                requested: 1100,
                capacity: 1000
            },
            "{layout:?}"
        );
        assert!(!err.is_insufficient(), "{layout:?}");
        assert_eq!(
            err.to_string(),
            "request exceeds capacity in dimension 1: requested 1100, capacity 1000"
        );
        // Counted as `try_acquire` counts such a refusal, in both.
        let stats = sem.stats();
        assert_eq!(
            (stats.refused, stats.exceeded),
            ([0, 1], [0, 1]),
            "{layout:?}"
        );
        // Nothing is taken, however often it is asked; the amounts
        // saturate rather than wrap.
        for _ in 0..3 {
            assert!(permit.try_grow([0, 401]).unwrap_err().is_exceeds_capacity());
        }
        let err = permit.try_grow([0, u64::MAX]).unwrap_err();
        assert!(
            matches!(
                err,
                TryAcquireError::ExceedsCapacity {
                    dim: 1,
                    requested: u64::MAX,
                    ..
                }
            ),
            "{layout:?}: {err:?}"
        );
        assert_eq!(permit.amounts(), [1, 600], "{layout:?}");
        assert_eq!(sem.available(), [3, 400], "{layout:?}");
        // What still fits beside it grows it.
        permit.try_grow([1, 400]).unwrap();
        assert_eq!(permit.amounts(), [2, 1000], "{layout:?}");
        // Capacity first, then closed, as for `try_acquire`.
        sem.close();
        assert!(permit.try_grow([0, 1]).unwrap_err().is_exceeds_capacity());
        assert_eq!(
            permit.try_grow([1, 0]).unwrap_err(),
            TryAcquireError::Closed
        );
        drop(permit);
        assert_eq!(sem.available(), [4, 1000], "{layout:?}");
    });
}

#[test]
fn a_clamped_permit_cannot_grow_past_the_capacity() {
    let sem = MultiSemaphore::builder([4, 1000])
        .clamp_oversized(true)
        .build();
    let mut permit = sem.try_acquire([1, 5000]).unwrap();
    assert_eq!(permit.amounts(), [1, 1000]);
    assert!(permit.try_grow([0, 1]).unwrap_err().is_exceeds_capacity());
    // Once the capacity grows, so can the permit.
    sem.set_capacity([4, 1500]).unwrap();
    permit.try_grow([0, 500]).unwrap();
    assert_eq!(permit.amounts(), [1, 1500]);
}

#[test]
fn grow_after_close_is_closed_and_the_permit_stays_valid() {
    each_layout(|layout, sem| {
        let mut permit = sem.try_acquire_owned([1, 10]).unwrap();
        sem.close();
        assert_eq!(
            permit.try_grow([1, 10]).unwrap_err(),
            TryAcquireError::Closed,
            "{layout:?}"
        );
        // The error order of try_acquire: capacity first, then closed.
        assert!(matches!(
            permit.try_grow([5, 0]).unwrap_err(),
            TryAcquireError::ExceedsCapacity { dim: 0, .. }
        ));
        assert_eq!(permit.amounts(), [1, 10], "{layout:?}");
        drop(permit);
        assert_eq!(sem.available(), [4, 1000], "{layout:?}");
    });
}

#[test]
fn grow_never_overtakes_a_queued_acquirer() {
    each_layout(|layout, sem| {
        let mut permit = sem.try_acquire([1, 500]).unwrap();
        let blocker = sem.try_acquire([0, 300]).unwrap();
        // A request for [1, 400] waits: only 200 bytes are free.
        let (wakes, waker) = counting_waker();
        let mut queued = pin!(sem.acquire([1, 400]));
        assert!(poll_with(queued.as_mut(), &waker).is_pending());
        // The counters would fit a grow of [1, 100], but it would overtake
        // the queued request: refused, and nothing taken.
        let err = permit.try_grow([1, 100]).unwrap_err();
        assert!(err.is_insufficient(), "{layout:?}: {err}");
        assert_eq!(permit.amounts(), [1, 500], "{layout:?}");
        // Once the queue is served, the same grow fits.
        drop(blocker);
        assert_eq!(wakes.wakes(), 1, "{layout:?}");
        let head = ready(poll_with(queued.as_mut(), &waker), "the head was granted").unwrap();
        assert_eq!(head.amounts(), [1, 400]);
        permit.try_grow([1, 100]).unwrap();
        assert_eq!(permit.amounts(), [2, 600], "{layout:?}");
        assert_eq!(sem.available(), [1, 0], "{layout:?}");
    });
}

#[test]
fn grow_is_refused_while_a_shrink_is_absorbed() {
    each_layout(|layout, sem| {
        let mut permit = sem.try_acquire([2, 800]).unwrap();
        sem.set_capacity([4, 500]).unwrap();
        // 800 held against a capacity of 500: the permit could never hold
        // more there, and says so; a grow elsewhere is judged there alone.
        assert_eq!(
            permit.try_grow([0, 1]).unwrap_err(),
            common::TryExceeds {
                dim: 1,
                requested: 801,
                capacity: 500
            },
            "{layout:?}"
        );
        permit.try_grow([1, 0]).unwrap();
        permit.release([1, 0]).unwrap();
        permit.release([0, 500]).unwrap();
        assert_eq!(sem.available(), [2, 200], "{layout:?}");
        permit.try_grow([0, 200]).unwrap();
        assert_eq!(sem.available(), [2, 0], "{layout:?}");
        drop(permit);
        assert_eq!(sem.available(), [4, 500], "{layout:?}");
    });
}

#[test]
fn grow_counts_as_an_acquire_and_raises_the_peak() {
    each_layout(|layout, sem| {
        let mut permit = sem.try_acquire([1, 100]).unwrap();
        permit.try_grow([1, 200]).unwrap();
        let stats = sem.stats();
        assert_eq!(stats.acquired, 2, "{layout:?}");
        assert_eq!(stats.peak_in_flight, [2, 300], "{layout:?}");
        assert!(permit.try_grow([0, 701]).is_err());
        assert_eq!(sem.stats().refused, [0, 1], "{layout:?}");
    });
}

#[test]
fn release_gives_back_part_and_keeps_the_rest() {
    each_layout(|layout, sem| {
        let mut permit = sem.try_acquire_owned([3, 900]).unwrap();
        permit.release([1, 600]).unwrap();
        assert_eq!(permit.amounts(), [2, 300], "{layout:?}");
        assert_eq!(sem.available(), [2, 700], "{layout:?}");
        permit.release([2, 300]).unwrap();
        assert_eq!(permit.amounts(), [0, 0], "{layout:?}");
        drop(permit);
        assert_eq!(sem.available(), [4, 1000], "{layout:?}");
    });
}

/// `shrink_to` keeps at most the target in each dimension and gives the
/// rest back; a dimension holding less keeps what it holds. It serves the
/// queue as `release` does.
#[test]
fn shrink_to_keeps_at_most_the_target() {
    each_layout(|layout, sem| {
        let mut permit = sem.try_acquire([3, 900]).unwrap();
        permit.shrink_to([5, 250]);
        assert_eq!(permit.amounts(), [3, 250], "{layout:?}");
        assert_eq!(sem.available(), [1, 750], "{layout:?}");
        let mut queued = pin!(sem.acquire([2, 700]));
        assert!(poll_once(queued.as_mut()).is_pending());
        permit.shrink_to([1, 250]);
        assert_eq!(permit.amounts(), [1, 250], "{layout:?}");
        let granted = ready(poll_once(queued.as_mut()), "granted by the shrink").unwrap();
        assert_eq!(granted.amounts(), [2, 700], "{layout:?}");
        permit.shrink_to([0, 0]);
        assert_eq!(permit.amounts(), [0, 0], "{layout:?}");
        drop((permit, granted));
        assert_eq!(sem.available(), sem.capacity(), "{layout:?}");
        let mut owned = sem.try_acquire_owned([2, 10]).unwrap();
        owned.shrink_to([1, 10]);
        assert_eq!((owned.amounts(), sem.available()), ([1, 10], [3, 990]));
    });
}

#[test]
fn release_of_more_than_held_is_an_error_and_gives_nothing_back() {
    each_layout(|layout, sem| {
        let mut permit = sem.try_acquire([2, 100]).unwrap();
        // Dimension 0 could be released, dimension 1 not: neither is.
        let err = permit.release([1, 101]).unwrap_err();
        let ReleaseError::ExceedsHeld {
            dim,
            requested,
            held,
            ..
        } = err
        else {
            unreachable!()
        };
        assert_eq!((dim, requested, held), (1, 101, 100), "{layout:?}");
        assert_eq!(
            err.to_string(),
            "dimension 1: asked to release 101, the permit holds 100"
        );
        assert_eq!(permit.amounts(), [2, 100], "{layout:?}");
        assert_eq!(sem.available(), [2, 900], "{layout:?}");
    });
}

#[test]
fn release_after_close_still_returns_the_permits() {
    each_layout(|layout, sem| {
        let mut permit = sem.try_acquire([2, 100]).unwrap();
        sem.close();
        permit.release([1, 50]).unwrap();
        assert_eq!(sem.available(), [3, 950], "{layout:?}");
    });
}

#[test]
fn release_serves_a_queued_acquirer_at_once() {
    each_layout(|layout, sem| {
        let mut permit = sem.try_acquire([1, 900]).unwrap();
        let (wakes, waker) = counting_waker();
        let mut queued = pin!(sem.acquire([1, 500]));
        assert!(poll_with(queued.as_mut(), &waker).is_pending());
        // Giving back 399 is not enough: still queued.
        permit.release([0, 399]).unwrap();
        assert_eq!(wakes.wakes(), 0, "{layout:?}");
        assert!(poll_once(queued.as_mut()).is_pending());
        // One more byte and the head fits: granted without a further drop.
        permit.release([0, 1]).unwrap();
        let granted = ready(poll_with(queued.as_mut(), &waker), "granted on release").unwrap();
        assert_eq!(granted.amounts(), [1, 500], "{layout:?}");
        assert_eq!(permit.amounts(), [1, 500], "{layout:?}");
    });
}

#[test]
fn grow_then_release_round_trip_for_every_n() {
    fn check<const N: usize>(cap: [u64; N]) {
        for layout in Layout::ALL {
            let sem = layout.make(cap);
            let mut permit = sem.try_acquire([1; N]).unwrap();
            permit.try_grow([1; N]).unwrap();
            assert_eq!(permit.amounts(), [2; N]);
            permit.release([2; N]).unwrap();
            assert_eq!(sem.available(), cap, "{layout:?}");
        }
    }
    check([8]);
    check([8, 1024]);
    check([8, 1024, 4096]);
}

/// A release error names the dimension as the semaphore does.
#[test]
fn a_release_error_names_its_dimension() {
    let sem = MultiSemaphore::builder([4, 1000])
        .names(&["messages", "bytes"])
        .build();
    let mut permit = sem.try_acquire([2, 100]).unwrap();
    let err = permit.release([1, 101]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bytes: asked to release 101, the permit holds 100"
    );
    assert_eq!(
        format!("{err:?}"),
        r#"ExceedsHeld { dim: 1 ("bytes"), requested: 101, held: 100 }"#
    );
}

/// The dimension errors' `Debug` output names the dimension where the
/// semaphore has names, whatever the error.
#[test]
fn dimension_errors_debug_their_dimension_by_name() {
    use multisem::{AcquireError, CapacityError, TryAcquireError};

    let sem = MultiSemaphore::builder([4, 1000])
        .names(&["messages", "bytes"])
        .build();
    let exceeds: TryAcquireError = sem.try_acquire([1, 1001]).unwrap_err();
    assert_eq!(
        format!("{exceeds:?}"),
        r#"ExceedsCapacity { dim: 1 ("bytes"), requested: 1001, capacity: 1000 }"#
    );
    let waited: AcquireError = sem.acquire_blocking([5, 0]).unwrap_err();
    assert_eq!(
        format!("{waited:?}"),
        r#"ExceedsCapacity { dim: 0 ("messages"), requested: 5, capacity: 4 }"#
    );
    let max = sem.max_capacity()[0];
    let overflow: CapacityError = sem.set_capacity_of(0, max + 1).unwrap_err();
    assert_eq!(
        format!("{overflow:?}"),
        format!(
            r#"Overflow {{ dim: 0 ("messages"), requested: {}, max: {max} }}"#,
            max + 1
        )
    );
}

/// `split_up_to` moves, per dimension, what was asked or all that is
/// left, never fails, and moves permits between guards only: the
/// semaphore's counts do not change until the parts are dropped.
#[test]
fn split_up_to_gives_the_last_parts_what_is_left() {
    each_layout(|layout, sem| {
        let mut batch = sem.try_acquire([3, 900]).unwrap();
        let first = batch.split_up_to([1, 500]);
        let second = batch.split_up_to([1, 500]);
        let third = batch.split_up_to([2, 500]);
        assert_eq!(first.amounts(), [1, 500], "{layout:?}");
        assert_eq!(second.amounts(), [1, 400], "{layout:?}: what was left");
        assert_eq!(
            third.amounts(),
            [1, 0],
            "{layout:?}: the count that was left"
        );
        assert_eq!(batch.amounts(), [0, 0], "{layout:?}");
        assert_eq!(
            sem.available(),
            [1, 100],
            "{layout:?}: nothing given back yet"
        );
        drop((first, batch));
        assert_eq!(sem.available(), [2, 600], "{layout:?}");
        drop((second, third));
        assert_eq!(sem.available(), sem.capacity(), "{layout:?}");

        let mut owned = sem.try_acquire_owned([2, 100]).unwrap();
        let part = owned.split_up_to([5, 30]);
        assert_eq!((part.amounts(), owned.amounts()), ([2, 30], [0, 70]));
        let empty = owned.split_up_to([0, 0]);
        assert_eq!(empty.amounts(), [0, 0], "{layout:?}");
        drop((part, owned, empty));
        assert_eq!(sem.available(), sem.capacity(), "{layout:?}");
    });
}

proptest::proptest! {
    /// However a permit is cut up by `split_up_to`, each part holds what
    /// it asked or what was left, the parts and the rest add up to what
    /// was held, and dropping them all gives back exactly that.
    #[test]
    fn split_up_to_conserves_what_is_held(
        held in [0u64..=4, 0u64..=1000],
        asks in proptest::collection::vec([0u64..=3, 0u64..=600], 0..8),
    ) {
        for layout in Layout::ALL {
            let sem = layout.make([4, 1000]);
            let mut rest = sem.try_acquire(held).unwrap();
            let mut parts = Vec::new();
            for ask in &asks {
                let before = rest.amounts();
                let part = rest.split_up_to(*ask);
                let want: [u64; 2] = std::array::from_fn(|d| ask[d].min(before[d]));
                proptest::prop_assert_eq!(part.amounts(), want);
                parts.push(part);
            }
            let total: [u64; 2] = std::array::from_fn(|d| {
                rest.amounts()[d] + parts.iter().map(|p| p.amounts()[d]).sum::<u64>()
            });
            proptest::prop_assert_eq!(total, held);
            proptest::prop_assert_eq!(sem.in_flight(), held);
            drop(parts);
            drop(rest);
            proptest::prop_assert_eq!(sem.available(), sem.capacity());
        }
    }
}
