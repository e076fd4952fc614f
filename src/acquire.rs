//! Waiting acquires: the blocking loop and the futures.
//!
//! Both start with the lock-free fast path, then queue through
//! `MultiSemaphore::enqueue` and wait for the queue's verdict:
//!
//! ```text
//!  fast path ok ───────────────────────────────────────────────▶ Ok(permit)
//!       │ no
//!       ▼
//!  enqueue (under the lock) ── fits, nobody ahead ─────────────▶ Ok(permit)
//!       │ ── exceeds capacity / closed ────────────────────────▶ Err
//!       ▼ queued
//!  wait (park / Pending) ◀──┐
//!       │ woken              │ still queued
//!       ▼                    │
//!  collect (under the lock) ─┘
//!       │ Granted ─────────────────────────────────────────────▶ Ok(permit)
//!       │ Closed / ExceedsCapacity ────────────────────────────▶ Err
//!
//!  deadline passed, or future dropped: cancel (under the lock)
//!       │ still queued: unlinked, took nothing, followers served ▶ Timeout / nothing
//!       │ already granted: the caller holds the permits ────────▶ Ok(permit) / returned
//! ```
//!
//! Timeout and drop share `MultiSemaphore::cancel`, so the loom models, which
//! have no clock, cover the timeout path by dropping futures.

use crate::counters::FastError;
use crate::dims::DimNames;
use crate::error::AcquireError;
use crate::permit::{OwnedPermit, Permit};
use crate::semaphore::{Enqueued, Leaving, MultiSemaphore};
use crate::stats::Event;
use crate::sync::{self, Arc};
use crate::waiters::{Notify, Outcome, Parked, Ticket};
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

impl<const N: usize> MultiSemaphore<N> {
    /// Takes `amounts` in every dimension, blocking the thread until they are
    /// all granted together. Waiters are served first come, first served.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([10, 1 << 20]);
    /// let permit = sem.acquire_blocking([1, 4096]).unwrap();
    /// assert_eq!(permit.amounts(), [1, 4096]);
    /// ```
    ///
    /// # Errors
    ///
    /// [`ExceedsCapacity`](AcquireError::ExceedsCapacity) at once (never
    /// blocking) if a dimension's capacity is below the request (unless the
    /// semaphore [clamps](crate::Builder::clamp_oversized) such requests);
    /// [`Closed`](AcquireError::Closed) if the semaphore is or gets closed
    /// first.
    ///
    /// # Blocking
    ///
    /// Parks the thread; do not call it from async code (use
    /// [`acquire`](Self::acquire)).
    pub fn acquire_blocking(&self, amounts: [u64; N]) -> Result<Permit<'_, N>, AcquireError> {
        let taken = self.wait(amounts, None)?;
        Ok(Permit::new(self, taken))
    }

    /// [`acquire_blocking`](Self::acquire_blocking), giving up after `timeout`.
    ///
    /// ```
    /// use multisem::{AcquireError, MultiSemaphore};
    /// use std::time::Duration;
    ///
    /// let sem = MultiSemaphore::new([1, 100]);
    /// let held = sem.acquire_blocking_timeout([1, 10], Duration::from_secs(1)).unwrap();
    /// let err = sem.acquire_blocking_timeout([1, 10], Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err, AcquireError::Timeout);
    /// drop(held);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`acquire_blocking`](Self::acquire_blocking), plus [`Timeout`](AcquireError::Timeout),
    /// never before `timeout` has passed. If the grant races the timeout the
    /// permit is returned: it is never lost. A request whose turn has come
    /// and that fits when its time runs out is granted, not timed out.
    ///
    /// # Blocking
    ///
    /// Parks the thread for up to `timeout`; in async code use
    /// [`acquire`](Self::acquire)`(..).`[`with_timeout`](crate::Acquire::with_timeout)`(timer)`,
    /// which counts as a timeout in [`stats`](Self::stats) (racing the
    /// future with a timer counts as a cancel).
    pub fn acquire_blocking_timeout(
        &self,
        amounts: [u64; N],
        timeout: Duration,
    ) -> Result<Permit<'_, N>, AcquireError> {
        let taken = self.wait(amounts, deadline_after(timeout))?;
        Ok(Permit::new(self, taken))
    }

    /// [`acquire_blocking`](Self::acquire_blocking), giving up at `deadline`. A deadline
    /// already past makes this a single try that fails with
    /// [`Timeout`](AcquireError::Timeout) if the request does not fit now.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::time::{Duration, Instant};
    ///
    /// let sem = MultiSemaphore::new([10, 1 << 20]);
    /// let deadline = Instant::now() + Duration::from_millis(100);
    /// let permit = sem.acquire_blocking_deadline([1, 4096], deadline).unwrap();
    /// # drop(permit);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`acquire_blocking_timeout`](Self::acquire_blocking_timeout). While
    /// it waits, a [`set_capacity`](Self::set_capacity) (or a
    /// [`forget`](crate::Permit::forget)) that shrinks a dimension below the
    /// request fails it at once with
    /// [`ExceedsCapacity`](AcquireError::ExceedsCapacity), long before the
    /// deadline: the request could then never be granted, and a head of the
    /// queue that cannot be granted would hold back everyone behind it until
    /// its deadline. (On a semaphore that
    /// [clamps](crate::Builder::clamp_oversized) oversized requests, the
    /// request follows the capacity down instead, and is granted its clamp.)
    ///
    /// # Blocking
    ///
    /// Parks the thread until `deadline` at the latest; in async code use
    /// [`acquire`](Self::acquire)`(..).`[`with_timeout`](crate::Acquire::with_timeout)`(timer)`.
    pub fn acquire_blocking_deadline(
        &self,
        amounts: [u64; N],
        deadline: Instant,
    ) -> Result<Permit<'_, N>, AcquireError> {
        let taken = self.wait(amounts, Some(deadline))?;
        Ok(Permit::new(self, taken))
    }

    /// [`acquire_blocking`](Self::acquire_blocking) for a semaphore in an [`Arc`]: the permit
    /// is `'static` and can move to another thread or into a callback.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([10, 1 << 20]));
    /// let permit = sem.acquire_owned_blocking([1, 4096]).unwrap();
    /// std::thread::spawn(move || drop(permit)).join().unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`acquire_blocking`](Self::acquire_blocking).
    ///
    /// # Blocking
    ///
    /// As [`acquire_blocking`](Self::acquire_blocking).
    pub fn acquire_owned_blocking(
        self: &Arc<Self>,
        amounts: [u64; N],
    ) -> Result<OwnedPermit<N>, AcquireError> {
        let taken = self.wait(amounts, None)?;
        Ok(OwnedPermit::new(Arc::clone(self), taken))
    }

    /// [`acquire_blocking_timeout`](Self::acquire_blocking_timeout) for a semaphore in an
    /// [`Arc`]: the permit can move into a completion callback.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([10, 1 << 20]));
    /// let permit = sem.acquire_owned_blocking_timeout([1, 4096], Duration::from_secs(3)).unwrap();
    /// std::thread::spawn(move || drop(permit)).join().unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`acquire_blocking_timeout`](Self::acquire_blocking_timeout).
    ///
    /// # Blocking
    ///
    /// As [`acquire_blocking_timeout`](Self::acquire_blocking_timeout).
    pub fn acquire_owned_blocking_timeout(
        self: &Arc<Self>,
        amounts: [u64; N],
        timeout: Duration,
    ) -> Result<OwnedPermit<N>, AcquireError> {
        let taken = self.wait(amounts, deadline_after(timeout))?;
        Ok(OwnedPermit::new(Arc::clone(self), taken))
    }

    /// [`acquire_blocking_deadline`](Self::acquire_blocking_deadline) for a semaphore in an
    /// [`Arc`].
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::sync::Arc;
    /// use std::time::{Duration, Instant};
    ///
    /// let sem = Arc::new(MultiSemaphore::new([10, 1 << 20]));
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// let permit = sem.acquire_owned_blocking_deadline([1, 4096], deadline).unwrap();
    /// # drop(permit);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`acquire_blocking_deadline`](Self::acquire_blocking_deadline).
    ///
    /// # Blocking
    ///
    /// As [`acquire_blocking_deadline`](Self::acquire_blocking_deadline).
    pub fn acquire_owned_blocking_deadline(
        self: &Arc<Self>,
        amounts: [u64; N],
        deadline: Instant,
    ) -> Result<OwnedPermit<N>, AcquireError> {
        let taken = self.wait(amounts, Some(deadline))?;
        Ok(OwnedPermit::new(Arc::clone(self), taken))
    }

    /// Takes `amounts` in every dimension, waiting asynchronously until they
    /// are all granted together. Works on any executor: the future needs
    /// nothing but its [`Waker`](std::task::Waker). Waiters are served first
    /// come, first served.
    ///
    /// For a timeout, hand your runtime's timer to
    /// [`with_timeout`](Acquire::with_timeout): the acquire then fails with
    /// [`Timeout`](AcquireError::Timeout) and counts in
    /// [`Stats::timed_out`](crate::Stats::timed_out). Racing it with
    /// `tokio::time::timeout` works too, but that drops the future, which
    /// the semaphore can only count as [`cancelled`](crate::Stats::cancelled).
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([10, 1 << 20]);
    /// let permit = futures_executor::block_on(sem.acquire([1, 4096])).unwrap();
    /// assert_eq!(permit.amounts(), [1, 4096]);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`acquire_blocking`](Self::acquire_blocking).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point takes nothing: a queued request
    /// leaves the queue (and those behind it that now fit are served), and a
    /// grant that raced the drop is returned to the semaphore. The request
    /// loses its place in the queue.
    pub fn acquire(&self, amounts: [u64; N]) -> Acquire<'_, N> {
        Acquire {
            waiting: Waiting::new(self, amounts),
        }
    }

    /// [`acquire`](Self::acquire) for a semaphore in an [`Arc`]:
    /// the future is `Send + 'static` (it can be spawned) and the permit can
    /// move into a completion callback.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([10, 1 << 20]));
    /// let permit = futures_executor::block_on(sem.acquire_owned([1, 4096])).unwrap();
    /// std::thread::spawn(move || drop(permit)).join().unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`acquire_blocking`](Self::acquire_blocking).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire): dropping the future at any
    /// point takes nothing.
    pub fn acquire_owned(self: &Arc<Self>, amounts: [u64; N]) -> AcquireOwned<N> {
        AcquireOwned {
            waiting: Waiting::new(Arc::clone(self), amounts),
        }
    }

    /// Takes `amounts` now by the lock-free take of
    /// [`try_acquire`](Self::try_acquire), where that can (nobody queued,
    /// no shrink being absorbed, the request within the capacity), or else
    /// returns the [`acquire`](Self::acquire) that waits for them, whose
    /// first poll takes them if they fit by then: for a caller that waits
    /// whenever it cannot take at once, as a server's admission layer does,
    /// and wants the permit without a future when it can.
    ///
    /// Unlike `try_acquire` followed by `acquire`, a request that goes on to
    /// wait is not counted as refused in [`stats`](Self::stats): it is no
    /// refusal, and counts where its wait ends once the future is polled
    /// (`waited`, then `acquired`, `timed_out`, `cancelled`, ...). The
    /// future returned has taken nothing and is not queued yet: its first
    /// poll tries again, then queues it, and gives its errors
    /// (`ExceedsCapacity`, `Closed`).
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// # futures_executor::block_on(async {
    /// let sem = MultiSemaphore::new([1, 1000]);
    /// let first = sem.try_acquire_or_wait([1, 100]).expect("fits: taken at once");
    /// let later = sem.try_acquire_or_wait([1, 100]).expect_err("must wait");
    /// drop(first);
    /// let second = later.await?;
    /// assert_eq!(second.amounts(), [1, 100]);
    /// let stats = sem.stats();
    /// assert_eq!((stats.acquired, stats.refused, stats.waited), (2, [0, 0], [0, 0]));
    /// # Ok::<(), multisem::AcquireError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// (The second acquire did not wait: the permit it needed was back by
    /// its first poll.)
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire): dropping the future at any
    /// point takes nothing.
    #[inline(always)]
    pub fn try_acquire_or_wait(&self, amounts: [u64; N]) -> Result<Permit<'_, N>, Acquire<'_, N>> {
        match self.take_fast(amounts) {
            Ok(()) => Ok(Permit::new(self, amounts)),
            Err(fast) => Err(self.wait_after_miss(amounts, fast)),
        }
    }

    /// `try_acquire_or_wait` after its take missed: out of line, so that
    /// what is inlined is the take and the permit.
    #[cold]
    #[inline(never)]
    fn wait_after_miss(&self, amounts: [u64; N], fast: FastError) -> Acquire<'_, N> {
        self.pay_owed_visit(fast);
        self.acquire(amounts)
    }

    /// `wait_after_miss` for `try_acquire_owned_or_wait`.
    #[cold]
    #[inline(never)]
    fn wait_owned_after_miss(
        self: &Arc<Self>,
        amounts: [u64; N],
        fast: FastError,
    ) -> AcquireOwned<N> {
        self.pay_owed_visit(fast);
        self.acquire_owned(amounts)
    }

    /// [`try_acquire_or_wait`](Self::try_acquire_or_wait) for a semaphore in
    /// an [`Arc`]: the permit and the future are `'static` and `Send`.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::sync::Arc;
    ///
    /// # futures_executor::block_on(async {
    /// let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    /// let permit = match sem.try_acquire_owned_or_wait([1, 4096]) {
    ///     Ok(permit) => permit,
    ///     Err(wait) => wait.await?,
    /// };
    /// std::thread::spawn(move || drop(permit)).join().unwrap();
    /// # Ok::<(), multisem::AcquireError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    #[inline(always)]
    pub fn try_acquire_owned_or_wait(
        self: &Arc<Self>,
        amounts: [u64; N],
    ) -> Result<OwnedPermit<N>, AcquireOwned<N>> {
        match self.take_fast(amounts) {
            Ok(()) => Ok(OwnedPermit::new(Arc::clone(self), amounts)),
            Err(fast) => Err(self.wait_owned_after_miss(amounts, fast)),
        }
    }

    /// The blocking wait behind every blocking method. Returns what it
    /// took: `amounts`, or their clamp.
    fn wait(&self, amounts: [u64; N], deadline: Option<Instant>) -> Result<[u64; N], AcquireError> {
        let Err(fast) = self.take_fast(amounts) else {
            return Ok(amounts);
        };
        let (result, queued) = self.wait_slow(amounts, deadline, fast);
        self.record_delivered(&result, queued);
        result
    }

    /// Also says whether the request queued: its result then ends a wait
    /// counted in `waited`.
    #[cold]
    #[inline(never)]
    fn wait_slow(
        &self,
        amounts: [u64; N],
        deadline: Option<Instant>,
        fast: FastError,
    ) -> (Result<[u64; N], AcquireError>, bool) {
        if deadline.is_some_and(sync::deadline_passed) {
            // Its timeout, the one wait it counts, is counted there.
            return (self.try_once(amounts, fast), false);
        }
        let owed = self.owed_visit(fast);
        let parked = Parked::current();
        owed.paid();
        let ticket = match self.enqueue(amounts, Notify::Thread(parked.clone())) {
            Ok(Enqueued::Queued(ticket)) => ticket,
            Ok(Enqueued::Granted(taken)) => return (Ok(taken), false),
            Err(err) => return (Err(err), false),
        };
        (self.wait_queued(ticket, parked, amounts, deadline), true)
    }

    /// `wait_slow` once the request is queued under `ticket`. (Crate-wide
    /// for a unit test that reaches its deadline-after-outcome arm.)
    pub(crate) fn wait_queued(
        &self,
        ticket: Ticket,
        parked: Parked,
        amounts: [u64; N],
        deadline: Option<Instant>,
    ) -> Result<[u64; N], AcquireError> {
        // Only a whole grant raises the flag; every other outcome (a close,
        // a shrink, a clamped grant) reaches this thread by its unpark alone.
        // But `enqueue` woke, on this thread, the tasks its visit granted,
        // and a waker that runs its task inline may park the thread (a
        // channel's `recv`) and so consume that unpark. So the first sleep
        // is preceded by a look under the lock; nothing after `enqueue`
        // runs user code here.
        let mut looked = false;
        loop {
            if deadline.is_some_and(sync::deadline_passed) {
                return match self.cancel(ticket, amounts, Some(&parked), Leaving::TimedOut) {
                    Ok(shortfall) => {
                        self.record(Event::TimedOut(shortfall.dim));
                        Err(AcquireError::Timeout)
                    }
                    Err(outcome) => outcome_result(outcome, amounts, self.names()),
                };
            }
            // A grant often comes within microseconds: a short spin on the
            // flag first saves the sleep and the wake-up system call.
            if !sync::spin_until(|| parked.granted()) {
                if !looked {
                    looked = true;
                    if let Some(outcome) = self.collect_parked(ticket, &parked, amounts) {
                        return outcome_result(outcome, amounts, self.names());
                    }
                }
                sync::park(deadline);
            }
            if let Some(outcome) = self.collect_parked(ticket, &parked, amounts) {
                return outcome_result(outcome, amounts, self.names());
            }
        }
    }

    /// A deadline already past: one try, as `try_acquire`, that fails with
    /// `Timeout` where that would fail with `Insufficient`.
    fn try_once(&self, amounts: [u64; N], fast: FastError) -> Result<[u64; N], AcquireError> {
        use crate::error::TryAcquireError as E;
        match self.try_take_locked(amounts, amounts, fast, self.clamps_oversized()) {
            Ok(taken) => Ok(taken),
            Err(E::ExceedsCapacity {
                dim,
                requested,
                capacity,
                names,
            }) => Err(AcquireError::exceeds(dim, requested, capacity, names)),
            Err(E::Closed) => Err(AcquireError::Closed),
            Err(E::Insufficient { dim, .. }) => {
                // It would have waited, had its deadline not passed.
                self.record(Event::Waited(dim));
                self.record(Event::TimedOut(dim));
                Err(AcquireError::Timeout)
            }
        }
    }
}

/// The deadline `timeout` from now, or none for a timeout too large to
/// represent (`Duration::MAX`): that one waits as long as it takes.
fn deadline_after(timeout: Duration) -> Option<Instant> {
    sync::now().checked_add(timeout)
}

/// The result of a request for `amounts` that ended with `outcome`: what
/// was granted, or the error.
fn outcome_result<const N: usize>(
    outcome: Outcome<N>,
    amounts: [u64; N],
    names: DimNames,
) -> Result<[u64; N], AcquireError> {
    match outcome {
        Outcome::Granted(granted) => Ok(granted),
        Outcome::Closed => Err(AcquireError::Closed),
        Outcome::ExceedsCapacity { dim, capacity } => {
            Err(AcquireError::exceeds(dim, amounts[dim], capacity, names))
        }
    }
}

/// The state of an async acquire, shared by [`Acquire`] and
/// [`AcquireOwned`]; `S` reaches the semaphore (a reference or an `Arc`).
struct Waiting<S: Deref<Target = MultiSemaphore<N>>, const N: usize> {
    sem: S,
    amounts: [u64; N],
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not polled yet.
    Start,
    /// In the queue.
    Queued(Ticket),
    /// Returned `Ready`; polling again panics.
    Done,
    /// Returned `Ready` with a timeout (`with_timeout`'s timer fired while it
    /// was queued): the first dimension its own request was short in, or
    /// none where it would have fit but was queued behind others. As `Done`.
    /// A `u8` (a semaphore has at most 64 dimensions), so that the state,
    /// which every future carries, stays the size of a ticket and its tag.
    TimedOut(Option<u8>),
}

impl<S: Deref<Target = MultiSemaphore<N>>, const N: usize> Waiting<S, N> {
    fn new(sem: S, amounts: [u64; N]) -> Self {
        Self {
            sem,
            amounts,
            state: State::Start,
        }
    }

    /// Whether this returned `Ready`: polling it again would panic.
    #[cfg(feature = "futures")]
    fn is_terminated(&self) -> bool {
        matches!(self.state, State::Done | State::TimedOut(_))
    }

    /// Ready with what was granted: the request, or its clamp.
    #[track_caller]
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<[u64; N], AcquireError>> {
        let sem = &*self.sem;
        let result = match self.state {
            State::Start => match sem.take_fast(self.amounts) {
                Ok(()) => {
                    self.state = State::Done;
                    return Poll::Ready(Ok(self.amounts));
                }
                Err(fast) => {
                    let owed = sem.owed_visit(fast);
                    let notify = Notify::Task(cx.waker().clone());
                    owed.paid();
                    match sem.enqueue(self.amounts, notify) {
                        Ok(Enqueued::Queued(ticket)) => {
                            self.state = State::Queued(ticket);
                            return Poll::Pending;
                        }
                        Ok(Enqueued::Granted(taken)) => Ok(taken),
                        Err(err) => Err(err),
                    }
                }
            },
            State::Queued(ticket) => match sem.collect_or_renotify(ticket, cx.waker()) {
                None => return Poll::Pending,
                Some(outcome) => outcome_result(outcome, self.amounts, self.sem.names()),
            },
            State::Done | State::TimedOut(_) => {
                panic!("acquire future polled after it completed")
            }
        };
        let queued = matches!(self.state, State::Queued(_));
        self.state = State::Done;
        sem.record_delivered(&result, queued);
        Poll::Ready(result)
    }

    /// The timer of [`Acquire::with_timeout`] fired while this was pending:
    /// gives the request up, counting a timeout, unless it ended first
    /// (then that result is delivered; a grant is never lost).
    fn time_out(&mut self) -> Result<[u64; N], AcquireError> {
        let State::Queued(ticket) = self.state else {
            unreachable!("a pending acquire is queued")
        };
        self.state = State::Done;
        let result = match self
            .sem
            .cancel(ticket, self.amounts, None, Leaving::TimedOut)
        {
            Ok(shortfall) => {
                self.sem.record(Event::TimedOut(shortfall.dim));
                let short = (!shortfall.queued_ahead).then_some(shortfall.dim as u8);
                self.state = State::TimedOut(short);
                return Err(AcquireError::Timeout);
            }
            Err(outcome) => outcome_result(outcome, self.amounts, self.sem.names()),
        };
        self.sem.record_delivered(&result, true);
        result
    }

    /// After a timeout: the first dimension the request was short in when
    /// the time ran out (as the semaphore judged it, before those behind it
    /// were served), or `None` where it was only queued behind others.
    fn short_at_timeout(&self) -> Option<usize> {
        match self.state {
            State::TimedOut(short) => short.map(usize::from),
            _ => None,
        }
    }

    /// `poll`, racing `timer`: see [`Acquire::with_timeout`].
    #[track_caller]
    fn poll_timed<T: Future + ?Sized>(
        &mut self,
        timer: Pin<&mut T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<[u64; N], AcquireError>> {
        if let Poll::Ready(result) = self.poll(cx) {
            return Poll::Ready(result);
        }
        match timer.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(self.time_out()),
        }
    }
}

impl<S: Deref<Target = MultiSemaphore<N>>, const N: usize> Drop for Waiting<S, N> {
    fn drop(&mut self) {
        let State::Queued(ticket) = self.state else {
            return;
        };
        let sem = &*self.sem;
        let event = match sem.cancel(ticket, self.amounts, None, Leaving::Dropped) {
            // Still queued: it leaves, having taken nothing.
            Ok(_) => Event::Cancelled,
            // A grant raced the drop: the permits are ours, give them back,
            // swallowing the panic of a waker this serves: it must not
            // unwind out of a drop (and skip the count below).
            Err(Outcome::Granted(granted)) => {
                sem.release_quietly(&granted);
                Event::Cancelled
            }
            // Woken by `close()` before the drop: counted as closed out, as
            // the poll that never came would have.
            // `closed_out` first: the end of the wait, counted last
            // (Release), then shows in a snapshot with it (as in
            // `record_delivered`).
            Err(Outcome::Closed) => {
                sem.record(Event::ClosedOut);
                Event::ClosedOutWhileWaiting
            }
            // A shrink failed it before the drop; counted (in `exceeded`)
            // when it did, polled or not.
            Err(Outcome::ExceedsCapacity { .. }) => return,
        };
        sem.record(event);
    }
}

/// The future of [`MultiSemaphore::acquire`].
///
/// ```
/// use multisem::MultiSemaphore;
///
/// # futures_executor::block_on(async {
/// let sem = MultiSemaphore::new([4, 1 << 20]);
/// let acquire = sem.acquire([1, 4096]); // nothing is taken yet
/// let permit = acquire.await?;
/// assert_eq!(sem.available(), [3, (1 << 20) - 4096]);
/// # drop(permit);
/// # Ok::<(), multisem::AcquireError>(())
/// # }).unwrap();
/// ```
///
/// # Cancel safety
///
/// Dropping it at any point takes nothing: see
/// [`acquire`](MultiSemaphore::acquire).
///
/// With the feature `futures`, this future and the other acquire futures
/// are `FusedFuture`s: `futures::select!` takes them without `.fuse()`.
///
/// # Panics
///
/// Polled again once it returned `Ready` (as the `Future` contract allows);
/// so do the other acquire futures (with the feature `futures`,
/// `FusedFuture::is_terminated` tells when one did).
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a, const N: usize> {
    waiting: Waiting<&'a MultiSemaphore<N>, N>,
}

/// The future of [`MultiSemaphore::acquire_owned`]: `Send + 'static`.
///
/// It can be spawned, and its permit moved to another thread:
///
/// ```
/// use multisem::MultiSemaphore;
/// use std::sync::Arc;
///
/// let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
/// let acquire = sem.acquire_owned([1, 4096]);
/// let sender = std::thread::spawn(move || {
///     let permit = futures_executor::block_on(acquire).unwrap();
///     // ... send; the budget comes back when the permit is dropped.
///     drop(permit);
/// });
/// sender.join().unwrap();
/// assert_eq!(sem.available(), sem.capacity());
/// ```
///
/// # Cancel safety
///
/// Dropping it at any point takes nothing: see
/// [`acquire`](MultiSemaphore::acquire).
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwned<const N: usize> {
    waiting: Waiting<Arc<MultiSemaphore<N>>, N>,
}

impl<'a, const N: usize> Acquire<'a, N> {
    /// This acquire, given up when `timer` completes first: then it fails
    /// with [`Timeout`](AcquireError::Timeout) and counts in
    /// [`Stats::timed_out`](crate::Stats::timed_out), which a drop by the
    /// runtime's own timeout (`tokio::time::timeout`) cannot do: the
    /// semaphore sees that only as a cancel. Any runtime's timer future
    /// works (`tokio::time::sleep`, `async_io::Timer`,
    /// `futures_timer::Delay`); its output is ignored.
    ///
    /// ```
    /// use multisem::{AcquireError, MultiSemaphore};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let sem = MultiSemaphore::new([10, 1000]);
    /// let held = sem.try_acquire([1, 1000]).unwrap();
    /// let timer = tokio::time::sleep(Duration::from_millis(10));
    /// let err = sem.acquire([1, 100]).with_timeout(timer).await.unwrap_err();
    /// assert_eq!(err, AcquireError::Timeout);
    /// assert_eq!(sem.stats().timed_out_by, [0, 1]); // bytes held it back
    /// # drop(held);
    /// # });
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](MultiSemaphore::acquire). If the grant and the timer
    /// race, the permit is delivered: it is never lost. A request whose
    /// turn has come and that fits when the timer fires is granted, not
    /// timed out.
    pub fn with_timeout<T: Future>(self, timer: T) -> AcquireTimeout<'a, N, T> {
        AcquireTimeout {
            waiting: self.waiting,
            timer: Box::pin(timer),
        }
    }
}

impl<const N: usize> AcquireOwned<N> {
    /// This acquire, given up when `timer` completes first; see
    /// [`Acquire::with_timeout`].
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let sem = Arc::new(MultiSemaphore::new([10, 1000]));
    /// let timer = tokio::time::sleep(Duration::from_secs(1));
    /// let permit = sem.acquire_owned([1, 100]).with_timeout(timer).await.unwrap();
    /// # drop(permit);
    /// # });
    /// ```
    pub fn with_timeout<T: Future>(self, timer: T) -> AcquireOwnedTimeout<N, T> {
        self.with_boxed_timeout(Box::pin(timer))
    }

    /// `with_timeout` for a timer already boxed (the tower layer's), so
    /// that it is not boxed twice.
    pub(crate) fn with_boxed_timeout<T: Future + ?Sized>(
        self,
        timer: Pin<Box<T>>,
    ) -> AcquireOwnedTimeout<N, T> {
        AcquireOwnedTimeout {
            waiting: self.waiting,
            timer,
        }
    }
}

/// The future of [`Acquire::with_timeout`].
///
/// # Cancel safety
///
/// Dropping it at any point takes nothing: see
/// [`acquire`](MultiSemaphore::acquire).
#[must_use = "futures do nothing unless polled"]
pub struct AcquireTimeout<'a, const N: usize, T: ?Sized> {
    waiting: Waiting<&'a MultiSemaphore<N>, N>,
    /// Boxed: pinned without `unsafe` projection.
    timer: Pin<Box<T>>,
}

/// The future of [`AcquireOwned::with_timeout`]: `Send + 'static` where the
/// timer is.
///
/// # Cancel safety
///
/// Dropping it at any point takes nothing: see
/// [`acquire`](MultiSemaphore::acquire).
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwnedTimeout<const N: usize, T: ?Sized> {
    waiting: Waiting<Arc<MultiSemaphore<N>>, N>,
    timer: Pin<Box<T>>,
}

impl<const N: usize, T: ?Sized> AcquireTimeout<'_, N, T> {
    /// After this future returned [`Timeout`](AcquireError::Timeout): the
    /// first dimension its request was short in when the time ran out, as
    /// the semaphore judged it before serving those behind; `None` where it
    /// would have fit but was queued behind others, or before a timeout.
    ///
    /// ```
    /// use multisem::{AcquireError, MultiSemaphore};
    ///
    /// let sem = MultiSemaphore::new([4, 100]);
    /// let held = sem.try_acquire([0, 90]).unwrap();
    /// let mut acquire = Box::pin(sem.acquire([1, 50]).with_timeout(std::future::ready(())));
    /// let err = futures_executor::block_on(acquire.as_mut()).unwrap_err();
    /// assert_eq!((err, acquire.short_at_timeout()), (AcquireError::Timeout, Some(1)));
    /// # drop(held);
    /// ```
    pub fn short_at_timeout(&self) -> Option<usize> {
        self.waiting.short_at_timeout()
    }
}

impl<const N: usize, T: ?Sized> AcquireOwnedTimeout<N, T> {
    /// As [`AcquireTimeout::short_at_timeout`].
    ///
    /// ```
    /// use multisem::{AcquireError, MultiSemaphore};
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([4, 100]));
    /// let held = sem.try_acquire([0, 90]).unwrap();
    /// let mut acquire = Box::pin(sem.acquire_owned([1, 50]).with_timeout(std::future::ready(())));
    /// let err = futures_executor::block_on(acquire.as_mut()).unwrap_err();
    /// assert_eq!((err, acquire.short_at_timeout()), (AcquireError::Timeout, Some(1)));
    /// # drop(held);
    /// ```
    pub fn short_at_timeout(&self) -> Option<usize> {
        self.waiting.short_at_timeout()
    }
}

impl<'a, const N: usize, T: Future + ?Sized> Future for AcquireTimeout<'a, N, T> {
    type Output = Result<Permit<'a, N>, AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let waiting = &mut this.waiting;
        waiting
            .poll_timed(this.timer.as_mut(), cx)
            .map_ok(|taken| Permit::new(waiting.sem, taken))
    }
}

impl<const N: usize, T: Future + ?Sized> Future for AcquireOwnedTimeout<N, T> {
    type Output = Result<OwnedPermit<N>, AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let waiting = &mut this.waiting;
        waiting
            .poll_timed(this.timer.as_mut(), cx)
            .map_ok(|taken| OwnedPermit::new(Arc::clone(&waiting.sem), taken))
    }
}

impl<const N: usize, T: ?Sized> fmt::Debug for AcquireTimeout<'_, N, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireTimeout")
            .field("amounts", &self.waiting.amounts)
            .field("queued", &matches!(self.waiting.state, State::Queued(_)))
            .finish_non_exhaustive()
    }
}

impl<const N: usize, T: ?Sized> fmt::Debug for AcquireOwnedTimeout<N, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwnedTimeout")
            .field("amounts", &self.waiting.amounts)
            .field("queued", &matches!(self.waiting.state, State::Queued(_)))
            .finish_non_exhaustive()
    }
}

impl<'a, const N: usize> Future for Acquire<'a, N> {
    type Output = Result<Permit<'a, N>, AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let waiting = &mut self.waiting;
        waiting
            .poll(cx)
            .map_ok(|taken| Permit::new(waiting.sem, taken))
    }
}

impl<const N: usize> Future for AcquireOwned<N> {
    type Output = Result<OwnedPermit<N>, AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let waiting = &mut self.waiting;
        waiting
            .poll(cx)
            .map_ok(|taken| OwnedPermit::new(Arc::clone(&waiting.sem), taken))
    }
}

impl<const N: usize> fmt::Debug for Acquire<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("amounts", &self.waiting.amounts)
            .field("queued", &matches!(self.waiting.state, State::Queued(_)))
            .finish_non_exhaustive()
    }
}

/// Whether each future returned `Ready` (for `FusedFuture`, `src/fused.rs`).
impl<const N: usize> Acquire<'_, N> {
    #[cfg(feature = "futures")]
    pub(crate) fn is_terminated(&self) -> bool {
        self.waiting.is_terminated()
    }
}

impl<const N: usize> AcquireOwned<N> {
    #[cfg(feature = "futures")]
    pub(crate) fn is_terminated(&self) -> bool {
        self.waiting.is_terminated()
    }
}

impl<const N: usize, T: ?Sized> AcquireTimeout<'_, N, T> {
    #[cfg(feature = "futures")]
    pub(crate) fn is_terminated(&self) -> bool {
        self.waiting.is_terminated()
    }
}

impl<const N: usize, T: ?Sized> AcquireOwnedTimeout<N, T> {
    #[cfg(feature = "futures")]
    pub(crate) fn is_terminated(&self) -> bool {
        self.waiting.is_terminated()
    }
}

impl<const N: usize> fmt::Debug for AcquireOwned<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwned")
            .field("amounts", &self.waiting.amounts)
            .field("queued", &matches!(self.waiting.state, State::Queued(_)))
            .finish_non_exhaustive()
    }
}
