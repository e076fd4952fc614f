//! Resizing: `add_permits`, `set_capacity`, `set_capacity_of` and
//! `Permit::forget`, and the debt that a shrink below what is in flight
//! leaves.
//!
//! # Debt
//!
//! A shrink cannot take back permits that are out. It lowers the capacity at
//! once and records the difference as debt, which permits pay as they come
//! back to the counters: each visitor to the lock settles what the counters
//! hold (`settle_debt`). Until a dimension's debt is paid, it grants nothing:
//! more is in flight there than the capacity in force allows. A return can
//! land in the counters at any moment, between a visitor's settling and its
//! take, so every locked take settles and checks the dimensions it asks for
//! first (`clear_of_debt`); the lock-free takes cannot run at all, since
//! `SLOW` stays set while any debt is outstanding.

use super::{MultiSemaphore, load_all};
use crate::counters::Short;
use crate::error::CapacityError;
use crate::stats::Event;
use crate::sync::Ordering;
use crate::waiters::{Outcome, WaitQueue, WakeList};
use std::cell::Cell;

impl<const N: usize> MultiSemaphore<N> {
    /// Grows each dimension's capacity by `amounts`, and what is available
    /// by what is left of them once they have paid any debt of a shrink below
    /// what is in flight (see [`set_capacity`](Self::set_capacity)). Queued
    /// acquirers that now fit are served, in turn: first come, first served,
    /// so one behind a head that still does not fit goes on waiting.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([10, 1000]);
    /// sem.add_permits([5, 0]).unwrap();
    /// assert_eq!(sem.capacity(), [15, 1000]);
    /// ```
    ///
    /// # Errors
    ///
    /// [`CapacityError::Overflow`] if a dimension would pass its
    /// [`max_capacity`](Self::max_capacity); then nothing changes.
    pub fn add_permits(&self, amounts: [u64; N]) -> Result<(), CapacityError> {
        self.resize(|capacity, dim| capacity.checked_add(amounts[dim]))
    }

    /// Sets each dimension's capacity, growing or shrinking it.
    ///
    /// A dimension an [`adaptive::Controller`](crate::adaptive::Controller)
    /// drives is set again by its next window: change its bounds instead
    /// ([`Controller::set_bounds`](crate::adaptive::Controller::set_bounds)).
    ///
    /// It may go below what is in flight: the capacity changes at once,
    /// [`available`](Self::available) reads 0 in that dimension, and permits
    /// returned are absorbed until the books balance; nothing wraps. Queued
    /// acquirers whose request no longer fits the new capacity fail with
    /// [`ExceedsCapacity`](crate::AcquireError::ExceedsCapacity); those that now fit
    /// are served, in turn (as [`add_permits`](Self::add_permits) says).
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([10, 1000]);
    /// let held = sem.try_acquire([8, 100]).unwrap();
    /// sem.set_capacity([4, 1000]).unwrap();
    /// assert_eq!(sem.available(), [0, 900]); // 8 out, capacity 4
    /// drop(held);
    /// assert_eq!(sem.available(), [4, 1000]);
    /// ```
    ///
    /// # Errors
    ///
    /// [`CapacityError::Overflow`] if a dimension would pass its
    /// [`max_capacity`](Self::max_capacity); then nothing changes.
    pub fn set_capacity(&self, capacity: [u64; N]) -> Result<(), CapacityError> {
        self.resize(|_, dim| Some(capacity[dim]))
    }

    /// Sets dimension `dim`'s capacity as [`set_capacity`](Self::set_capacity)
    /// does, and leaves every other dimension at the capacity it has at that
    /// moment: two owners of two budgets (a lease agent for the bytes, an
    /// operator for the count, an [adaptive
    /// controller](crate::adaptive::Controller) for either) resize their own
    /// without undoing each other's, which reading the capacity and setting
    /// it back with `set_capacity` could.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([10, 1000]);
    /// let held = sem.try_acquire([8, 100]).unwrap();
    /// sem.set_capacity_of(0, 4).unwrap();
    /// assert_eq!(sem.capacity(), [4, 1000]);
    /// assert_eq!(sem.available(), [0, 900]); // 8 out, capacity 4
    /// drop(held);
    /// assert_eq!(sem.available(), [4, 1000]);
    /// ```
    ///
    /// # Errors
    ///
    /// [`CapacityError::Overflow`] if `capacity` passes the dimension's
    /// [`max_capacity`](Self::max_capacity); then nothing changes.
    ///
    /// # Panics
    ///
    /// If `dim` is not below `N`.
    #[track_caller]
    pub fn set_capacity_of(&self, dim: usize, capacity: u64) -> Result<(), CapacityError> {
        assert!(
            dim < N,
            "set_capacity_of: dimension {dim} out of range (the semaphore has {N})"
        );
        self.resize(|old, d| Some(if d == dim { capacity } else { old }))
    }

    /// `Permit::forget`: the amounts leave circulation. They first pay down
    /// any debt (they were part of the excess in flight), then shrink the
    /// capacity.
    pub(crate) fn forget_permits(&self, amounts: [u64; N]) {
        if amounts == [0; N] {
            return;
        }
        self.counters.forgot(&amounts);
        let mut wake = WakeList::new();
        let more = {
            let mut queue = self.lock();
            self.change_limits(&mut queue, || {
                for (d, &amount) in amounts.iter().enumerate() {
                    // Relaxed: see `Limits`; we hold the lock.
                    let debt = self.limits.debt[d].load(Ordering::Relaxed);
                    let paid = debt.min(amount);
                    self.limits.debt[d].store(debt - paid, Ordering::Relaxed);
                    // Cannot underflow: in flight (which holds `amount`) is
                    // at most capacity + debt.
                    self.limits.capacity[d].fetch_sub(amount - paid, Ordering::Relaxed);
                }
            });
            let more = self.fail_oversized(&mut queue, &mut wake, true);
            self.rebalance(&mut queue, &mut wake);
            more
        };
        self.wake_and_serve(&mut wake, more);
        wake.finish();
    }

    /// Clamps the capacity of each dimension that `bounds` gives a range
    /// `(min, max)` into that range, in one resize, for a caller that
    /// resizes under a lock of its own (the adaptive controller; a fixed
    /// value is `min == max`). The capacities are read under the
    /// semaphore's lock, so a resize from elsewhere just before is clamped,
    /// never undone by one read earlier. Whom the resize grants or fails is
    /// not woken here but handed back in [`Woken`], for the caller to wake
    /// once its lock is released, since a waker may call back into it: the
    /// first batch, from which waking serves the queue on as any resize
    /// does, so that handing back never allocates. Returns the capacities
    /// before.
    pub(crate) fn clamp_capacities_handing_back(
        &self,
        bounds: [Option<(u64, u64)>; N],
    ) -> Result<([u64; N], Woken<'_, N>), CapacityError> {
        debug_assert!(
            bounds.iter().flatten().all(|(min, max)| min <= max),
            "the controller's bounds are checked"
        );
        let before: [Cell<u64>; N] = std::array::from_fn(|_| Cell::new(0));
        let mut wake = WakeList::new();
        let failing = self.resize_locked(
            |old, d| {
                before[d].set(old);
                Some(bounds[d].map_or(old, |(min, max)| old.clamp(min, max)))
            },
            &mut wake,
        )?;
        let woken = Woken {
            sem: self,
            wake,
            failing,
        };
        Ok((before.map(Cell::into_inner), woken))
    }

    /// `add_permits` and `set_capacity`: `target(capacity, dim)` gives each
    /// dimension's new capacity (`None` when the sum overflows `u64`).
    fn resize(&self, target: impl Fn(u64, usize) -> Option<u64>) -> Result<(), CapacityError> {
        let mut wake = WakeList::new();
        let more = self.resize_locked(target, &mut wake)?;
        self.wake_and_serve(&mut wake, more);
        wake.finish();
        Ok(())
    }

    /// The resize itself, under the lock: checks every dimension, then sets
    /// the capacities and the debt, and serves the queue into `wake`.
    /// `Ok(true)`: a shrink's walk for requests now too large stopped at a
    /// full batch, for the visits after it to go on with.
    fn resize_locked(
        &self,
        target: impl Fn(u64, usize) -> Option<u64>,
        wake: &mut WakeList,
    ) -> Result<bool, CapacityError> {
        {
            let mut queue = self.lock();
            let old = self.capacity();
            let mut new = [0; N];
            // Check every dimension before changing any.
            for dim in 0..N {
                let max = self.max_capacity[dim];
                new[dim] = match target(old[dim], dim) {
                    Some(capacity) if capacity <= max => capacity,
                    requested => {
                        return Err(CapacityError::Overflow {
                            dim,
                            requested: requested.unwrap_or(u64::MAX),
                            max,
                            names: self.names,
                        });
                    }
                };
            }
            if new == old {
                // Nothing to change, so nothing to serve: the queue is as
                // the last change left it.
                return Ok(false);
            }
            self.change_limits(&mut queue, || {
                let mut back = [0; N];
                for dim in 0..N {
                    // Relaxed: see `Limits`; we hold the lock.
                    let debt = self.limits.debt[dim].load(Ordering::Relaxed);
                    let debt = if new[dim] >= old[dim] {
                        // Growth pays the debt first, so capacity + debt stays
                        // within max_capacity; the rest goes to the counters.
                        let grow = new[dim] - old[dim];
                        let paid = grow.min(debt);
                        back[dim] = grow - paid;
                        debt - paid
                    } else {
                        // A shrink becomes debt, settled from the counters below
                        // and from permits as they return.
                        debt + (old[dim] - new[dim])
                    };
                    self.limits.debt[dim].store(debt, Ordering::Relaxed);
                    self.limits.capacity[dim].store(new[dim], Ordering::Relaxed);
                }
                // `SLOW` or not, we serve the queue below. Inside the bracket:
                // a take that sees the low water closed sees all the resize did.
                self.counters.add(&back);
            });
            // Only a shrink can make a queued request oversized.
            let shrank = (0..N).any(|d| new[d] < old[d]);
            let more = shrank && self.fail_oversized(&mut queue, wake, true);
            self.rebalance(&mut queue, wake);
            Ok(more)
        }
    }

    /// Changes capacities and debts, under the lock (`queue`), bracketed
    /// for the lock-free readers: `SLOW` set first, before any debt exists,
    /// so that a return from then on comes to the lock to pay it and no fast
    /// take claims what a shrink needs (`debt > 0` implies `SLOW`, always);
    /// the low water opened before and rebased after, so that a fast take
    /// or `in_flight()` that read the limits on one side of the change and
    /// the counters on the other knows (see `limits_unchanged_since`). The
    /// caller serves the queue after, which sets `SLOW` as it must be.
    ///
    /// Inside the bracket every change also writes the counter word, with a
    /// read-modify-write that steps its tally and leaves its fields alone
    /// (`Counters::step_for_resize`). So a lock-free reader that reads the
    /// word as a later grant left it (a compare-and-swap, in that write's
    /// release sequence) then sees the opening bump: where `SLOW` stays set
    /// for queued acquirers no clearing of it does that, and a `forget`,
    /// which changes only the capacity, would let `in_flight()` pair the
    /// capacity before it with the counters after a grant that followed it,
    /// and count the forgotten permits too. And a fast take that loaded the
    /// word before the resize cannot find it the same after (a growth whose
    /// permits went straight to queued requests leaves the fields as they
    /// were) and take against the low water before it, missing a peak.
    fn change_limits(&self, queue: &mut WaitQueue<N>, change: impl FnOnce()) {
        self.set_slow(queue, true);
        self.open_low_water();
        change();
        self.counters.step_for_resize();
        self.rebase_low_water();
    }

    /// After a capacity shrank: queued requests that can never fit now fail
    /// with `ExceedsCapacity` rather than block everyone behind them.
    /// Stops at a full batch of wakes; `wake_and_serve` comes back for the
    /// rest. Not where requests are clamped (`Builder::clamp_oversized`):
    /// those follow the capacity instead, granted the capacity of their grant.
    /// Nor once closed: the queue is then closed out, every waiter with
    /// `Closed` (`rebalance`), not failed for a size that a shrink between
    /// two of the close's batches gave it.
    /// Returns whether it stopped at a full batch with entries left to
    /// check; `from_start`: a new walk (a resize), else the walk goes on
    /// where the last one stopped.
    pub(super) fn fail_oversized(
        &self,
        queue: &mut WaitQueue<N>,
        wake: &mut WakeList,
        from_start: bool,
    ) -> bool {
        if self.clamp_oversized || self.is_closed() {
            return false;
        }
        if from_start {
            queue.start_check();
        }
        let capacity = self.capacity();
        while let Some((ticket, amounts)) = queue.checking() {
            if wake.is_full() {
                return true;
            }
            queue.checked(ticket);
            if let Some(dim) = (0..N).find(|&d| amounts[d] > capacity[d]) {
                self.stats.record(Event::Exceeded(dim));
                self.stats.record(Event::ExceededWhileWaiting);
                let outcome = Outcome::ExceedsCapacity {
                    dim,
                    capacity: capacity[dim],
                };
                wake.push(queue.complete(ticket, outcome));
            }
        }
        false
    }

    /// Pays what debt it can from the counters (permits that came back since
    /// the last visit); returns what is still owed. Under the lock.
    pub(super) fn settle_debt(&self) -> [u64; N] {
        let debt = load_all(&self.limits.debt);
        if debt == [0; N] {
            return debt;
        }
        let paid = self.counters.take_up_to(debt);
        std::array::from_fn(|d| {
            let left = debt[d] - paid[d];
            // Release: a lock-free reader that sees the debt paid sees the
            // counters it was paid from (`load_free_of_debt`).
            self.limits.debt[d].store(left, Ordering::Release);
            left
        })
    }

    /// Before a locked take of `amounts`: settles the debt and, if a
    /// dimension asked for still owes, fails with the first dimension the
    /// request lacks (one in debt has nothing available). A dimension not
    /// asked for may stay in debt: granting nothing of it never raises what
    /// is in flight there. Under the lock.
    pub(super) fn clear_of_debt(&self, amounts: [u64; N]) -> Result<(), Short> {
        let owes = |debt: [u64; N]| (0..N).any(|d| amounts[d] > 0 && debt[d] > 0);
        if !owes(load_all(&self.limits.debt)) {
            return Ok(());
        }
        loop {
            if !owes(self.settle_debt()) {
                return Ok(());
            }
            let available = self.available_locked();
            if let Some(dim) = (0..N).find(|&d| amounts[d] > available[d]) {
                return Err(Short {
                    dim,
                    available: available[dim],
                });
            }
            // A return landed after the settling, enough to pay what is
            // owed and more: settle again (each round pays some debt).
        }
    }
}

/// Whom a resize under a caller's own lock granted or failed
/// ([`clamp_capacities_handing_back`](MultiSemaphore::clamp_capacities_handing_back)):
/// a first batch, and whether the queue may hold more to serve. Once the
/// caller's lock is released, [`wake`](Self::wake) wakes that batch and
/// serves the queue on, batch by batch, as every resize does (so nothing is
/// kept past a batch, and nothing allocated). Dropped without `wake` (a
/// panic on the way), it does the same and swallows the wakers' panics.
#[must_use = "the waiters must be woken"]
pub(crate) struct Woken<'a, const N: usize> {
    sem: &'a MultiSemaphore<N>,
    wake: WakeList,
    /// The resize's walk of the queue for requests now too large stopped
    /// at a full batch (see `wake_and_serve`).
    failing: bool,
}

impl<'a, const N: usize> Woken<'a, N> {
    /// Nobody: for a caller that had nothing to resize.
    pub(crate) fn nobody(sem: &'a MultiSemaphore<N>) -> Self {
        Woken {
            sem,
            wake: WakeList::new(),
            failing: false,
        }
    }

    /// Wakes them, serving the queue on while a batch comes back full, then
    /// re-raises the first panic of a waker, as a resize does (and swallows
    /// it, likewise, while this thread is already unwinding).
    pub(crate) fn wake(mut self) {
        self.serve_on();
        self.wake.finish();
    }

    fn serve_on(&mut self) {
        self.sem.wake_and_serve(&mut self.wake, self.failing);
        // Served: the list is no longer full, and nothing is left to walk.
        self.failing = false;
    }
}

impl<const N: usize> Drop for Woken<'_, N> {
    fn drop(&mut self) {
        // After `wake`, or a panic it re-raised: nothing left to do.
        self.serve_on();
        self.wake.finish_quietly();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::counters::Counters;
    use crate::sync::Ordering;
    use crate::{AcquireOwned, MultiSemaphore};
    use std::future::Future;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::{Context, Poll, Wake, Waker};

    /// Every resize publishes a low-water word that no earlier one equals,
    /// even when the capacities and peaks it is computed from are the same
    /// as an earlier one's (a shrink undone): its generation moves on. So a
    /// refresh computed from the capacity before the resize, whose
    /// compare-exchange expects an earlier word, can never land after it
    /// (see `refresh_low_water`). And it leaves the generation even: no
    /// resize under way. A resize that changes no capacity publishes
    /// nothing: there is no before and after to tell apart.
    #[test]
    fn every_resize_moves_the_low_water_generation_on() {
        for sem in [
            MultiSemaphore::new([4, 4]),
            MultiSemaphore::builder([4, 4])
                .max_capacity([MultiSemaphore::<2>::MAX_PERMITS; 2])
                .build(),
        ] {
            let _held = sem.try_acquire([1, 1]).unwrap();
            let mut seen = vec![sem.limits.low_water.load(Ordering::Relaxed)];
            for capacity in [[3, 4], [4, 4], [3, 4], [4, 4]] {
                sem.set_capacity(capacity).unwrap();
                let now = sem.limits.low_water.load(Ordering::Relaxed);
                assert!(
                    !seen.contains(&now),
                    "{now:#x} was published before: {seen:x?}"
                );
                // Closed again (even): fast takes and `in_flight` trust it.
                assert_eq!(Counters::<2>::generation(now) % 2, 0, "{now:#x}");
                seen.push(now);
            }
            let last = sem.limits.low_water.load(Ordering::Relaxed);
            sem.set_capacity([4, 4]).unwrap();
            sem.set_capacity_of(0, 4).unwrap();
            sem.add_permits([0, 0]).unwrap();
            assert_eq!(sem.limits.low_water.load(Ordering::Relaxed), last);
        }
    }

    /// Counts its wakes; one made with `panics` panics after counting.
    struct Counted {
        wakes: AtomicUsize,
        panics: bool,
    }

    impl Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.wakes.fetch_add(1, SeqCst);
            assert!(!self.panics, "a waker that panics");
        }
    }

    /// 20 requests of 1 queued on a semaphore of 1, held, with wakers that
    /// panic at `panicking` (`clamp_capacities_handing_back` to 21 then
    /// grants them all).
    fn handed_back(panicking: &[usize]) -> HandedBack {
        let sem = Arc::new(MultiSemaphore::builder([1]).max_capacity([64]).build());
        let held = sem.try_acquire_owned([1]).unwrap();
        let mut waiters = vec![];
        for i in 0..20 {
            let waker = Arc::new(Counted {
                wakes: AtomicUsize::new(0),
                panics: panicking.contains(&i),
            });
            let mut future = Box::pin(Arc::clone(&sem).acquire_owned([1]));
            let woken = Waker::from(Arc::clone(&waker));
            assert!(
                future
                    .as_mut()
                    .poll(&mut Context::from_waker(&woken))
                    .is_pending()
            );
            waiters.push((future, waker));
        }
        HandedBack {
            sem,
            _held: held,
            waiters,
        }
    }

    struct HandedBack {
        sem: Arc<MultiSemaphore<1>>,
        _held: crate::OwnedPermit<1>,
        waiters: Vec<(Pin<Box<AcquireOwned<1>>>, Arc<Counted>)>,
    }

    impl HandedBack {
        fn wakes(&self) -> Vec<usize> {
            self.waiters
                .iter()
                .map(|(_, w)| w.wakes.load(SeqCst))
                .collect()
        }

        /// Every waiter woken once and granted, nobody left queued.
        fn check_all_served(&mut self) {
            assert_eq!(self.wakes(), vec![1; 20]);
            assert_eq!(self.sem.waiters(), 0);
            let mut cx = Context::from_waker(Waker::noop());
            let permits: Vec<_> = (self.waiters.iter_mut())
                .map(|(future, _)| match future.as_mut().poll(&mut cx) {
                    Poll::Ready(Ok(permit)) => permit,
                    other => panic!("granted, not {other:?}"),
                })
                .collect();
            assert_eq!(self.sem.in_flight(), [21]);
            drop(permits);
        }
    }

    /// A resize handed back holds a batch, not every grant (so it never
    /// allocates): `wake` wakes it and serves the queue on, waking every
    /// waiter once whatever their wakers do (a panic in the first batch or
    /// a later one), then re-raises the first panic; with none, returns.
    #[test]
    fn a_handed_back_resize_serves_the_queue_on_when_woken() {
        for panicking in [&[1, 9][..], &[8], &[19], &[]] {
            let mut back = handed_back(panicking);
            let (before, woken) = back
                .sem
                .clamp_capacities_handing_back([Some((21, 21))])
                .unwrap();
            assert_eq!((before, back.sem.capacity()), ([1], [21]));
            assert_eq!(
                back.wakes(),
                vec![0; 20],
                "nobody woken under the caller's lock"
            );
            assert_eq!(back.sem.waiters(), 12, "a batch of 8 granted");
            let result = catch_unwind(AssertUnwindSafe(|| woken.wake()));
            assert_eq!(result.is_err(), !panicking.is_empty(), "{panicking:?}");
            back.check_all_served();
        }
    }

    /// Dropped without `wake` (a panic between the resize and its caller's
    /// wake), it still serves and wakes every waiter once, and no waker's
    /// panic escapes the drop.
    #[test]
    fn a_handed_back_resize_dropped_unwoken_still_serves_everyone() {
        let mut back = handed_back(&[1, 9]);
        let (_, woken) = back
            .sem
            .clamp_capacities_handing_back([Some((21, 21))])
            .unwrap();
        drop(woken);
        back.check_all_served();
    }
}
