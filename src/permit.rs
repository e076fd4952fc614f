//! Permits: RAII guards that give back exactly what they hold.

use crate::error::{ReleaseError, TryAcquireError};
use crate::semaphore::MultiSemaphore;
use crate::sync::Arc;
use std::fmt;
use std::ops::Deref;

/// Amounts held from one semaphore, reached through `S` (a reference or an
/// `Arc`). Both public permit types are this with a different `S`.
struct Held<S: Deref<Target = MultiSemaphore<N>>, const N: usize> {
    sem: S,
    amounts: [u64; N],
}

impl<S: Deref<Target = MultiSemaphore<N>>, const N: usize> Held<S, N> {
    /// Takes `amounts` out of this permit, or returns the first dimension
    /// where it holds less (then nothing changes).
    fn take_out(&mut self, amounts: [u64; N]) -> Result<(), ReleaseError> {
        if let Some(dim) = (0..N).find(|&d| amounts[d] > self.amounts[d]) {
            return Err(ReleaseError::ExceedsHeld {
                dim,
                requested: amounts[dim],
                held: self.amounts[dim],
                names: self.sem.names(),
            });
        }
        for (held, moved) in self.amounts.iter_mut().zip(amounts) {
            *held -= moved;
        }
        Ok(())
    }

    fn split(&mut self, amounts: [u64; N]) -> Option<[u64; N]> {
        self.take_out(amounts).ok().map(|()| amounts)
    }

    /// Takes out, per dimension, `amounts` or all it holds if less: what
    /// it took.
    fn split_up_to(&mut self, amounts: [u64; N]) -> [u64; N] {
        let moved = std::array::from_fn(|d| amounts[d].min(self.amounts[d]));
        for (held, moved) in self.amounts.iter_mut().zip(moved) {
            *held -= moved;
        }
        moved
    }

    /// `try_acquire` of `amounts`, added to this permit: the same fast path,
    /// the same deference to queued acquirers, the same errors.
    fn try_grow(&mut self, amounts: [u64; N]) -> Result<(), TryAcquireError> {
        self.sem.try_take_more(self.amounts, amounts)?;
        for (held, more) in self.amounts.iter_mut().zip(amounts) {
            // As in `merge`: all of it is in flight from one semaphore.
            *held += more;
        }
        Ok(())
    }

    fn shrink_to(&mut self, amounts: [u64; N]) {
        let excess = std::array::from_fn(|d| self.amounts[d].saturating_sub(amounts[d]));
        self.release(excess)
            .expect("the excess is at most what the permit holds");
    }

    fn release(&mut self, amounts: [u64; N]) -> Result<(), ReleaseError> {
        self.take_out(amounts)?;
        // As in `drop`: an empty release touches no atomic.
        if amounts != [0; N] {
            self.sem.release(&amounts);
        }
        Ok(())
    }

    fn is_from(&self, sem: &MultiSemaphore<N>) -> bool {
        std::ptr::eq(&*self.sem, sem)
    }

    #[track_caller]
    fn merge(&mut self, other: Self) {
        assert!(
            self.is_from(&other.sem),
            "cannot merge permits of two different semaphores"
        );
        self.absorb(other);
    }

    /// `merge` without the check: `other` must come from the same semaphore.
    fn absorb(&mut self, mut other: Self) {
        for (held, more) in self.amounts.iter_mut().zip(other.amounts) {
            // Both are held from one semaphore, so the sum is at most what is
            // in flight there, which is at most its max capacity: no overflow.
            *held += more;
        }
        // `other` now holds nothing: its drop returns nothing.
        other.amounts = [0; N];
    }

    fn forget(mut self) {
        // Emptied first: the shrink re-raises a failed waiter's waker panic,
        // and the drop that then runs while unwinding must return nothing.
        let amounts = std::mem::replace(&mut self.amounts, [0; N]);
        self.sem.forget_permits(amounts);
    }
}

impl<S: Deref<Target = MultiSemaphore<N>>, const N: usize> Drop for Held<S, N> {
    #[inline(always)]
    fn drop(&mut self) {
        // An empty permit (zero request, or forgotten, split or merged away)
        // returns nothing: skip the atomic operation.
        if self.amounts != [0; N] {
            self.sem.release(&self.amounts);
        }
    }
}

/// What a permit is made from: a reference to the semaphore (for a
/// [`Permit`]) or to its `Arc` (for an [`OwnedPermit`]). One pointer, so that
/// the fast path passes it to its out-of-line part in one register.
pub(crate) trait PermitSource<'a, const N: usize>: Copy {
    type Permit;
    fn semaphore(self) -> &'a MultiSemaphore<N>;
    fn permit(self, amounts: [u64; N]) -> Self::Permit;
}

impl<'a, const N: usize> PermitSource<'a, N> for &'a MultiSemaphore<N> {
    type Permit = Permit<'a, N>;

    #[inline(always)]
    fn semaphore(self) -> &'a MultiSemaphore<N> {
        self
    }

    #[inline(always)]
    fn permit(self, amounts: [u64; N]) -> Permit<'a, N> {
        Permit::new(self, amounts)
    }
}

impl<'a, const N: usize> PermitSource<'a, N> for &'a Arc<MultiSemaphore<N>> {
    type Permit = OwnedPermit<N>;

    #[inline(always)]
    fn semaphore(self) -> &'a MultiSemaphore<N> {
        self
    }

    #[inline(always)]
    fn permit(self, amounts: [u64; N]) -> OwnedPermit<N> {
        OwnedPermit::new(Arc::clone(self), amounts)
    }
}

/// Permits held from a [`MultiSemaphore`], returned when this is dropped
/// (also while unwinding from a panic).
///
/// It borrows the semaphore, so it cannot outlive it:
///
/// ```compile_fail
/// use multisem::MultiSemaphore;
///
/// let permit = {
///     let sem = MultiSemaphore::new([2, 100]);
///     sem.try_acquire([1, 10]).unwrap()
/// }; // error: `sem` does not live long enough
/// drop(permit);
/// ```
///
/// For a permit that moves into another thread or a callback, see
/// [`OwnedPermit`].
#[must_use = "the permits are returned as soon as this is dropped"]
#[clippy::has_significant_drop]
pub struct Permit<'a, const N: usize> {
    held: Held<&'a MultiSemaphore<N>, N>,
}

/// Permits held from a [`MultiSemaphore`] behind an [`Arc`], returned when
/// this is dropped (also while unwinding from a panic).
///
/// `'static + Send + Sync`: it can move into a completion callback on another
/// thread, which releases the permits by dropping it.
///
/// ```
/// use multisem::MultiSemaphore;
/// use std::sync::Arc;
///
/// let sem = Arc::new(MultiSemaphore::new([10, 1 << 20]));
/// let permit = sem.try_acquire_owned([1, 4096]).unwrap();
/// std::thread::spawn(move || {
///     // ... send the message, then:
///     drop(permit);
/// })
/// .join()
/// .unwrap();
/// assert_eq!(sem.available(), [10, 1 << 20]);
/// ```
#[must_use = "the permits are returned as soon as this is dropped"]
#[clippy::has_significant_drop]
pub struct OwnedPermit<const N: usize> {
    held: Held<Arc<MultiSemaphore<N>>, N>,
}

impl<'a, const N: usize> Permit<'a, N> {
    #[inline]
    pub(crate) fn new(sem: &'a MultiSemaphore<N>, amounts: [u64; N]) -> Self {
        Self {
            held: Held { sem, amounts },
        }
    }

    /// The amounts this permit holds, per dimension.
    pub fn amounts(&self) -> [u64; N] {
        self.held.amounts
    }

    /// The semaphore the permits came from.
    pub fn semaphore(&self) -> &'a MultiSemaphore<N> {
        self.held.sem
    }

    /// Gives the permits up for good: they are not returned, and the
    /// semaphore's [`capacity`](MultiSemaphore::capacity) shrinks by them
    /// (where a [`set_capacity`](MultiSemaphore::set_capacity) left the
    /// semaphore over capacity, they first pay that down instead). Queued
    /// acquirers whose request no longer fits the smaller capacity fail with
    /// [`ExceedsCapacity`](crate::AcquireError::ExceedsCapacity); on a
    /// semaphore built with
    /// [`clamp_oversized`](crate::Builder::clamp_oversized) they wait, and
    /// are granted their clamp to the capacity in force.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([4, 100]);
    /// sem.try_acquire([1, 10]).unwrap().forget();
    /// assert_eq!(sem.capacity(), [3, 90]);
    /// assert_eq!(sem.available(), [3, 90]);
    /// ```
    pub fn forget(self) {
        self.held.forget();
    }

    /// Moves `amounts` out of this permit into a new one, or returns `None`
    /// (changing nothing) if this permit holds less than that in a dimension.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([4, 100]);
    /// let mut batch = sem.try_acquire([2, 60]).unwrap();
    /// let first = batch.split([1, 25]).unwrap();
    /// assert_eq!((batch.amounts(), first.amounts()), ([1, 35], [1, 25]));
    /// assert!(batch.split([2, 0]).is_none());
    /// ```
    #[must_use = "the split-off permit is returned as soon as this is dropped"]
    pub fn split(&mut self, amounts: [u64; N]) -> Option<Self> {
        let amounts = self.held.split(amounts)?;
        Some(Self::new(self.held.sem, amounts))
    }

    /// Moves up to `amounts` out of this permit into a new one, which never
    /// fails: in each dimension the new permit takes `amounts`, or all this
    /// one holds if that is less (then this one keeps none of it). For a
    /// batch whose parts may add up to more than it holds, as on a semaphore
    /// that [clamps](crate::Builder::clamp_oversized) what it grants: split
    /// a part for each message in turn; the first part that asks more than
    /// is left takes all of it, and those after it get nothing of that
    /// dimension.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::builder([8, 1000]).clamp_oversized(true).build();
    /// let sizes = [600, 300, 400];
    /// let mut batch = sem.try_acquire([3, sizes.iter().sum()]).unwrap();
    /// assert_eq!(batch.amounts(), [3, 1000]); // 1300 bytes, clamped to 1000
    /// let first = batch.split_up_to([1, sizes[0]]);
    /// let second = batch.split_up_to([1, sizes[1]]);
    /// // The last message gets what is left: 100 of its 400 bytes.
    /// assert_eq!(
    ///     (first.amounts(), second.amounts(), batch.amounts()),
    ///     ([1, 600], [1, 300], [1, 100])
    /// );
    /// ```
    pub fn split_up_to(&mut self, amounts: [u64; N]) -> Self {
        let amounts = self.held.split_up_to(amounts);
        Self::new(self.held.sem, amounts)
    }

    /// Moves everything `other` holds into this permit.
    ///
    /// # Panics
    ///
    /// If the permits come from different semaphores.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([4, 100]);
    /// let mut a = sem.try_acquire([1, 10]).unwrap();
    /// a.merge(sem.try_acquire([2, 20]).unwrap());
    /// assert_eq!(a.amounts(), [3, 30]);
    /// ```
    #[track_caller]
    pub fn merge(&mut self, other: Self) {
        self.held.merge(other.held);
    }

    /// Moves everything `other` holds into this permit, if both come from
    /// the same semaphore; otherwise gives `other` back untouched (where
    /// [`merge`](Self::merge) panics).
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let (a, b) = (MultiSemaphore::new([4, 100]), MultiSemaphore::new([4, 100]));
    /// let mut permit = a.try_acquire([1, 10]).unwrap();
    /// permit.try_merge(a.try_acquire([1, 5]).unwrap()).unwrap();
    /// let stranger = b.try_acquire([2, 20]).unwrap();
    /// let stranger = permit.try_merge(stranger).unwrap_err();
    /// assert_eq!((permit.amounts(), stranger.amounts()), ([2, 15], [2, 20]));
    /// ```
    ///
    /// # Errors
    ///
    /// `other` itself, if it comes from another semaphore.
    pub fn try_merge(&mut self, other: Self) -> Result<(), Self> {
        if !self.held.is_from(other.held.sem) {
            return Err(other);
        }
        self.held.absorb(other.held);
        Ok(())
    }

    /// Whether this permit's amounts came from `sem` (and go back to it).
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let (a, b) = (MultiSemaphore::new([4, 100]), MultiSemaphore::new([4, 100]));
    /// let permit = a.try_acquire([1, 10]).unwrap();
    /// assert!(permit.is_from(&a));
    /// assert!(!permit.is_from(&b));
    /// ```
    pub fn is_from(&self, sem: &MultiSemaphore<N>) -> bool {
        self.held.is_from(sem)
    }

    /// Takes `amounts` more from the semaphore into this permit, all of
    /// them or none, without waiting: for a size known only after the
    /// permit was taken (a message compressed, a download's length fetched).
    ///
    /// It behaves exactly as [`try_acquire`](MultiSemaphore::try_acquire)
    /// of `amounts` followed by [`merge`](Self::merge), without the second
    /// permit: lock-free while nobody is queued, and never overtaking a
    /// queued acquirer (while any is queued it fails with `Insufficient`). It
    /// never clamps: it grows by exactly `amounts` or not at all. A grow
    /// counts as an acquire in [`stats`](MultiSemaphore::stats).
    ///
    /// ```
    /// use multisem::{MultiSemaphore, TryAcquireError};
    ///
    /// let sem = MultiSemaphore::new([10, 1000]);
    /// let mut permit = sem.try_acquire([1, 100])?; // the size we guessed
    /// permit.try_grow([0, 150])?;                   // the size it turned out to be
    /// assert_eq!(permit.amounts(), [1, 250]);
    /// // All or nothing: a grow that does not fit now changes nothing,
    /// let other = sem.try_acquire([1, 600])?;
    /// assert!(permit.try_grow([1, 200]).unwrap_err().is_insufficient());
    /// // and one that the permit could never hold says so.
    /// assert!(permit.try_grow([0, 800]).unwrap_err().is_exceeds_capacity());
    /// assert_eq!(permit.amounts(), [1, 250]);
    /// # drop(other);
    /// # Ok::<(), TryAcquireError>(())
    /// ```
    ///
    /// # Why there is no waiting grow
    ///
    /// A permit that waits for more while it holds what it has is
    /// hold-and-wait, the deadlock this crate exists to prevent: two
    /// producers each holding half the bytes and each waiting to grow by the
    /// other half never finish, and a queued grow would pin its permits
    /// while acquirers behind it starve. Where a grow does not fit now,
    /// either drop the permit and [`acquire`](MultiSemaphore::acquire) the
    /// full size (waiting while holding nothing), or
    /// [`release`](Self::release) what you can first.
    ///
    /// Under back-pressure, acquirers are queued most of the time, and a
    /// grow then fails however small it is (`is_queued_ahead`). Where a
    /// bound on the size is known before it is (a message's size before
    /// compression), acquire that bound and give back the rest with
    /// [`shrink_to`](Self::shrink_to) once the size is known: it never
    /// fails.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](MultiSemaphore::try_acquire) of `amounts`, but
    /// `ExceedsCapacity` also where the permit would hold more than a
    /// capacity in a dimension it grows in: such a grow cannot succeed
    /// while the capacity stays as it is (the error's `requested` is what
    /// the permit would hold). The permit is unchanged.
    pub fn try_grow(&mut self, amounts: [u64; N]) -> Result<(), TryAcquireError> {
        self.held.try_grow(amounts)
    }

    /// Gives `amounts` back to the semaphore now, keeping the rest: for a
    /// size that shrank once known (a message that compressed well), or
    /// work that finishes in parts. All or nothing: queued acquirers that
    /// now fit are served in turn, as when a permit is dropped.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([10, 1000]);
    /// let mut permit = sem.try_acquire([1, 600]).unwrap();
    /// permit.release([0, 400]).unwrap(); // it compressed to 200
    /// assert_eq!(permit.amounts(), [1, 200]);
    /// assert_eq!(sem.available(), [9, 800]);
    /// // More than held: an error, and nothing is given back.
    /// let err = permit.release([0, 201]).unwrap_err();
    /// assert_eq!(err.to_string(), "dimension 1: asked to release 201, the permit holds 200");
    /// assert_eq!(permit.amounts(), [1, 200]);
    /// ```
    ///
    /// # Errors
    ///
    /// [`ReleaseError::ExceedsHeld`] if the permit holds less than `amounts`
    /// in a dimension; then nothing changes.
    pub fn release(&mut self, amounts: [u64; N]) -> Result<(), ReleaseError> {
        self.held.release(amounts)
    }
    /// Keeps at most `amounts` in each dimension and gives the rest back at
    /// once: [`release`](Self::release) of whatever is above them. A
    /// dimension that holds less keeps what it holds, as
    /// [`Vec::shrink_to`] keeps a smaller capacity.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([10, 1000]);
    /// let mut permit = sem.try_acquire([1, 600])?; // the size before compression
    /// permit.shrink_to([1, 250]);                  // the size it compressed to
    /// assert_eq!(permit.amounts(), [1, 250]);
    /// assert_eq!(sem.available(), [9, 750]);
    /// permit.shrink_to([5, 300]); // above what it holds: nothing changes
    /// assert_eq!(permit.amounts(), [1, 250]);
    /// # Ok::<(), multisem::TryAcquireError>(())
    /// ```
    pub fn shrink_to(&mut self, amounts: [u64; N]) {
        self.held.shrink_to(amounts);
    }
}

impl<const N: usize> OwnedPermit<N> {
    #[inline]
    pub(crate) fn new(sem: Arc<MultiSemaphore<N>>, amounts: [u64; N]) -> Self {
        Self {
            held: Held { sem, amounts },
        }
    }

    /// The amounts this permit holds, per dimension.
    pub fn amounts(&self) -> [u64; N] {
        self.held.amounts
    }

    /// The semaphore the permits came from.
    pub fn semaphore(&self) -> &Arc<MultiSemaphore<N>> {
        &self.held.sem
    }

    /// Gives the permits up for good; see [`Permit::forget`].
    pub fn forget(self) {
        self.held.forget();
    }

    /// Moves `amounts` into a new permit, or returns `None` (changing
    /// nothing) if this one holds less; see [`Permit::split`].
    #[must_use = "the split-off permit is returned as soon as this is dropped"]
    pub fn split(&mut self, amounts: [u64; N]) -> Option<Self> {
        let amounts = self.held.split(amounts)?;
        Some(Self::new(Arc::clone(&self.held.sem), amounts))
    }

    /// Moves up to `amounts` into a new permit, never failing: in each
    /// dimension `amounts`, or all this one holds if less; see
    /// [`Permit::split_up_to`].
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([4, 100]));
    /// let mut batch = sem.try_acquire_owned([2, 60]).unwrap();
    /// let part = batch.split_up_to([1, 80]); // more bytes than it holds
    /// assert_eq!((part.amounts(), batch.amounts()), ([1, 60], [1, 0]));
    /// ```
    pub fn split_up_to(&mut self, amounts: [u64; N]) -> Self {
        let amounts = self.held.split_up_to(amounts);
        Self::new(Arc::clone(&self.held.sem), amounts)
    }

    /// Moves everything `other` holds into this permit.
    ///
    /// # Panics
    ///
    /// If the permits come from different semaphores.
    #[track_caller]
    pub fn merge(&mut self, other: Self) {
        self.held.merge(other.held);
    }

    /// Moves everything `other` holds into this permit if both come from the
    /// same semaphore, or gives `other` back; see [`Permit::try_merge`].
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::sync::Arc;
    ///
    /// let a = Arc::new(MultiSemaphore::new([4, 100]));
    /// let b = Arc::new(MultiSemaphore::new([4, 100]));
    /// let mut permit = a.try_acquire_owned([1, 10]).unwrap();
    /// let stranger = permit.try_merge(b.try_acquire_owned([1, 1]).unwrap()).unwrap_err();
    /// assert!(stranger.is_from(&b));
    /// ```
    ///
    /// # Errors
    ///
    /// `other` itself, if it comes from another semaphore.
    pub fn try_merge(&mut self, other: Self) -> Result<(), Self> {
        if !self.held.is_from(&other.held.sem) {
            return Err(other);
        }
        self.held.absorb(other.held);
        Ok(())
    }

    /// Whether this permit's amounts came from `sem` (an
    /// `&Arc<MultiSemaphore>` works too); see [`Permit::is_from`].
    pub fn is_from(&self, sem: &MultiSemaphore<N>) -> bool {
        self.held.is_from(sem)
    }

    /// Takes `amounts` more into this permit, all or none, without waiting;
    /// see [`Permit::try_grow`] (and there, why no grow waits).
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([10, 1000]));
    /// let mut permit = sem.try_acquire_owned([1, 100]).unwrap();
    /// permit.try_grow([0, 150]).unwrap();
    /// assert_eq!(permit.amounts(), [1, 250]);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Permit::try_grow`]: as [`try_acquire`](MultiSemaphore::try_acquire),
    /// and `ExceedsCapacity` where the permit would hold more than a
    /// capacity. The permit is unchanged.
    pub fn try_grow(&mut self, amounts: [u64; N]) -> Result<(), TryAcquireError> {
        self.held.try_grow(amounts)
    }

    /// Gives `amounts` back now, keeping the rest; see [`Permit::release`].
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([10, 1000]));
    /// let mut permit = sem.try_acquire_owned([1, 600]).unwrap();
    /// permit.release([0, 400]).unwrap();
    /// assert_eq!(sem.available(), [9, 800]);
    /// ```
    ///
    /// # Errors
    ///
    /// [`ReleaseError::ExceedsHeld`] if the permit holds less than `amounts`
    /// in a dimension; then nothing changes.
    pub fn release(&mut self, amounts: [u64; N]) -> Result<(), ReleaseError> {
        self.held.release(amounts)
    }
    /// As [`Permit::shrink_to`]: keeps at most `amounts` in each dimension
    /// and gives the rest back at once.
    pub fn shrink_to(&mut self, amounts: [u64; N]) {
        self.held.shrink_to(amounts);
    }
}

impl<const N: usize> fmt::Debug for Permit<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("amounts", &self.held.amounts)
            .finish_non_exhaustive()
    }
}

impl<const N: usize> fmt::Debug for OwnedPermit<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("amounts", &self.held.amounts)
            .finish_non_exhaustive()
    }
}
