//! Weighted admission of a stream's items (feature `futures`): each item
//! leaves the adaptor with the permit for its weight, in the stream's order.
//!
//! Built on the public API alone (`acquire_owned`); the core knows nothing
//! of it.

use crate::{AcquireError, AcquireOwned, MultiSemaphore, OwnedPermit};
use futures_core::stream::{FusedStream, Stream};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A stream adaptor that admits each item of `S` by its weight: it yields
/// every item with an [`OwnedPermit`] for the amounts the weigher gives it,
/// in the source's order.
///
/// `buffer_unordered(n)` bounds work in flight by count alone; this bounds it
/// in every dimension of the semaphore at once (say, messages and bytes).
/// The permit travels with the item into the send, and the budget comes back
/// when the send drops it.
///
/// The source is back-pressured: the next item is pulled only once the
/// current one is admitted, so at most one item waits here, and an item the
/// semaphore cannot take yet holds nothing while it waits (an async
/// [`acquire_owned`](MultiSemaphore::acquire_owned), first come, first
/// served with every other acquirer). It needs nothing of the executor but
/// its wakers.
///
/// ```
/// use futures_util::{StreamExt, stream};
/// use multisem::{MultiSemaphore, stream::Admit};
/// use std::sync::Arc;
///
/// // At most 2 messages and 1 KiB in flight.
/// let sem = Arc::new(MultiSemaphore::new([2, 1024]));
/// let messages = stream::iter(vec![vec![0u8; 300], vec![1; 500], vec![2; 200]]);
/// let mut admitted = Admit::new(messages, Arc::clone(&sem), |m: &Vec<u8>| [1, m.len() as u64]);
///
/// futures_executor::block_on(async {
///     let (first, permit) = admitted.next().await.unwrap().unwrap();
///     assert_eq!((first.len(), permit.amounts()), (300, [1, 300]));
///     let second = admitted.next().await.unwrap().unwrap();
///     // Two messages in flight: the third waits until one is sent.
///     drop(permit);
///     let (third, permit) = admitted.next().await.unwrap().unwrap();
///     assert_eq!((third.len(), permit.amounts()), (200, [1, 200]));
///     assert!(admitted.next().await.is_none());
///     # drop(second);
/// });
/// ```
///
/// # Errors
///
/// An item the semaphore refuses (its weight above a capacity, unless the
/// semaphore was built with
/// [`clamp_oversized`](crate::Builder::clamp_oversized), which refuses only
/// some of a dimension whose `max_capacity` is 0; or the semaphore
/// closed) comes out as [`Refused`], with the item, so the caller decides
/// whether to skip it, fail the stream or stop. The adaptor then goes on
/// with the next item: after [`close`](crate::MultiSemaphore::close), every
/// further item comes out refused, with `Closed` (or `ExceedsCapacity` for
/// one the semaphore refuses for its size, as above: every acquire checks
/// that first), so an endless source never ends. Stop on
/// [`error.is_closed()`](crate::AcquireError::is_closed), and
/// take the rest back with [`into_inner`](Admit::into_inner).
///
/// # Cancel safety
///
/// Dropping the adaptor at any point leaks nothing: an item waiting for its
/// permit is dropped, and its pending acquire leaves the queue (a grant that
/// raced the drop goes back to the semaphore).
#[must_use = "streams do nothing unless polled"]
pub struct Admit<S: Stream, F, const N: usize> {
    /// Boxed once, so that the adaptor is `Unpin` whatever `S` is, with
    /// neither `unsafe` nor a pin-projection crate (one allocation per
    /// adaptor, none per item).
    source: Pin<Box<S>>,
    sem: Arc<MultiSemaphore<N>>,
    weigh: F,
    /// The item pulled from the source and the acquire of its weight.
    waiting: Option<(S::Item, AcquireOwned<N>)>,
    source_done: bool,
}

/// An item the semaphore refused, with the reason; see [`Admit`].
///
/// ```
/// use futures_util::{StreamExt, stream};
/// use multisem::{AcquireError, MultiSemaphore, stream::Admit};
/// use std::sync::Arc;
///
/// let sem = Arc::new(MultiSemaphore::new([8, 1024]));
/// let messages = stream::iter(vec![vec![0u8; 4096], vec![1; 100]]);
/// let mut admitted = Admit::new(messages, sem, |m: &Vec<u8>| [1, m.len() as u64]);
/// futures_executor::block_on(async {
///     // Above the byte capacity: refused at once, and the item comes back.
///     let refused = admitted.next().await.unwrap().unwrap_err();
///     assert_eq!(refused.item.len(), 4096);
///     assert!(matches!(refused.error, AcquireError::ExceedsCapacity { dim: 1, .. }));
///     // The adaptor goes on with the next item.
///     let (next, _permit) = admitted.next().await.unwrap().unwrap();
///     assert_eq!(next.len(), 100);
/// });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Refused<T> {
    /// The item, given back untouched.
    pub item: T,
    /// Why it was refused: [`ExceedsCapacity`](AcquireError::ExceedsCapacity)
    /// or [`Closed`](AcquireError::Closed).
    pub error: AcquireError,
}

impl<S: Stream, F, const N: usize> Admit<S, F, N>
where
    F: FnMut(&S::Item) -> [u64; N],
{
    /// Admits the items of `source` from `sem`, each by `weigh(&item)`.
    ///
    /// ```
    /// use futures_util::stream;
    /// use multisem::{MultiSemaphore, stream::Admit};
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// let lines = stream::iter(["a", "bc", "def"]);
    /// // One message, and its length in bytes.
    /// let admitted = Admit::new(lines, Arc::clone(&sem), |line: &&str| [1, line.len() as u64]);
    /// assert!(Arc::ptr_eq(admitted.semaphore(), &sem));
    /// ```
    pub fn new(source: S, sem: Arc<MultiSemaphore<N>>, weigh: F) -> Self {
        Self {
            source: Box::pin(source),
            sem,
            weigh,
            waiting: None,
            source_done: false,
        }
    }

    /// The semaphore the permits come from (see [`new`](Self::new)).
    pub fn semaphore(&self) -> &Arc<MultiSemaphore<N>> {
        &self.sem
    }

    /// Whether an item has been pulled from the source and waits for its
    /// permit.
    ///
    /// ```
    /// use futures_util::{FutureExt, StreamExt, stream};
    /// use multisem::{MultiSemaphore, stream::Admit};
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([1, 1024]));
    /// let held = sem.try_acquire([1, 0]).unwrap();
    /// let mut admitted = Admit::new(stream::iter([10u64, 20]), Arc::clone(&sem), |&n| [1, n]);
    /// // The count is taken: the first item is pulled, and waits.
    /// assert!(admitted.next().now_or_never().is_none());
    /// assert!(admitted.is_waiting());
    /// drop(held);
    /// let (item, _permit) = admitted.next().now_or_never().unwrap().unwrap().unwrap();
    /// assert_eq!(item, 10);
    /// assert!(!admitted.is_waiting());
    /// ```
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// Gives back the item that waits for its permit, if one does: for a
    /// shutdown that must not lose it. Its acquire is dropped, so it leaves
    /// the queue having taken nothing (a grant that raced it goes back to
    /// the semaphore); the adaptor goes on with the source's next item.
    ///
    /// ```
    /// use futures_util::{FutureExt, StreamExt, stream};
    /// use multisem::{MultiSemaphore, stream::Admit};
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([1, 1024]));
    /// let held = sem.try_acquire([1, 0]).unwrap();
    /// let mut admitted = Admit::new(stream::iter([10u64, 20]), Arc::clone(&sem), |&n| [1, n]);
    /// assert!(admitted.next().now_or_never().is_none()); // 10 waits
    /// // Shutting down: the waiting message is not lost.
    /// assert_eq!(admitted.take_waiting(), Some(10));
    /// assert_eq!(sem.waiters(), 0);
    /// drop(held);
    /// let (item, _permit) = admitted.next().now_or_never().unwrap().unwrap().unwrap();
    /// assert_eq!(item, 20);
    /// ```
    pub fn take_waiting(&mut self) -> Option<S::Item> {
        self.waiting.take().map(|(item, _acquire)| item)
    }

    /// The source, and the item that waits for its permit if one does (see
    /// [`take_waiting`](Self::take_waiting)): what is left of the stream,
    /// without the adaptor. The source stays pinned in its box, since it
    /// need not be `Unpin`.
    ///
    /// ```
    /// use futures_util::{FutureExt, StreamExt, stream};
    /// use multisem::{MultiSemaphore, stream::Admit};
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([1, 1024]));
    /// let held = sem.try_acquire([1, 0]).unwrap();
    /// let mut admitted = Admit::new(stream::iter([1u64, 2, 3]), Arc::clone(&sem), |&n| [1, n]);
    /// assert!(admitted.next().now_or_never().is_none()); // 1 waits
    /// let (rest, waiting) = admitted.into_inner();
    /// assert_eq!(waiting, Some(1));
    /// assert_eq!(rest.collect::<Vec<_>>().now_or_never(), Some(vec![2, 3]));
    /// assert_eq!(sem.waiters(), 0);
    /// # drop(held);
    /// ```
    pub fn into_inner(mut self) -> (Pin<Box<S>>, Option<S::Item>) {
        let waiting = self.take_waiting();
        (self.source, waiting)
    }
}

impl<S: Stream, F, const N: usize> Stream for Admit<S, F, N>
where
    F: FnMut(&S::Item) -> [u64; N],
{
    type Item = Result<(S::Item, OwnedPermit<N>), Refused<S::Item>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.waiting.is_none() {
            if this.source_done {
                return Poll::Ready(None);
            }
            let Some(item) = std::task::ready!(this.source.as_mut().poll_next(cx)) else {
                this.source_done = true;
                return Poll::Ready(None);
            };
            let amounts = (this.weigh)(&item);
            this.waiting = Some((item, this.sem.acquire_owned(amounts)));
        }
        let Some((_, acquire)) = &mut this.waiting else {
            unreachable!("set above")
        };
        // `AcquireOwned` is `Unpin`; polled at once, so an item that fits
        // costs no extra wake-up.
        let result = std::task::ready!(Pin::new(acquire).poll(cx));
        let Some((item, _)) = this.waiting.take() else {
            unreachable!("polled above")
        };
        Poll::Ready(Some(match result {
            Ok(permit) => Ok((item, permit)),
            Err(error) => Err(Refused { item, error }),
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let waiting = usize::from(self.waiting.is_some());
        if self.source_done {
            return (waiting, Some(waiting));
        }
        let (low, high) = self.source.size_hint();
        (
            low.saturating_add(waiting),
            high.and_then(|h| h.checked_add(waiting)),
        )
    }
}

// Nothing in the adaptor is ever pinned in place: the source is behind its
// own `Pin<Box>`, and the waiting item and acquire are moved freely (the
// acquire is `Unpin`). So the adaptor is `Unpin` whatever `S` and its items
// are, and `poll_next` may take `&mut Self` out of its `Pin`.
impl<S: Stream, F, const N: usize> Unpin for Admit<S, F, N> {}

impl<S: Stream, F, const N: usize> FusedStream for Admit<S, F, N>
where
    F: FnMut(&S::Item) -> [u64; N],
{
    fn is_terminated(&self) -> bool {
        self.source_done && self.waiting.is_none()
    }
}

impl<S: Stream, F, const N: usize> fmt::Debug for Admit<S, F, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admit")
            .field("sem", &self.sem)
            .field("waiting", &self.waiting.is_some())
            .field("source_done", &self.source_done)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for Refused<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The reason is `source()`: an error reporter prints it once.
        f.write_str("item refused")
    }
}

impl<T: fmt::Debug> std::error::Error for Refused<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
