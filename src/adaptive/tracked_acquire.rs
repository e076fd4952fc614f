//! The futures of [`Controller::acquire`]: the semaphore's own acquire,
//! its permit tracked from the grant.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::controller::Controller;
use super::tracked::TrackedPermit;
use crate::error::AcquireError;
use crate::sync::Arc;
use crate::{AcquireOwned, AcquireOwnedTimeout, OwnedPermit};

/// The future of [`Controller::acquire`]: as
/// [`AcquireOwned`](crate::AcquireOwned), its permit tracked from the grant.
/// `Send`, `'static` and `Unpin`: it can be spawned, kept in a struct, or
/// raced in `select!` without pinning.
///
/// "From the grant" is from the poll that delivers it: a grant made while
/// the task waited is timed from when the task runs again (the request can
/// be sent no sooner), so the runtime's wake-up delay is not counted in
/// the round trip. The blocking acquires likewise time from the thread's
/// return.
///
/// # Cancel safety
///
/// As [`MultiSemaphore::acquire`](crate::MultiSemaphore::acquire): dropped
/// before its grant, it holds nothing.
#[must_use = "futures do nothing unless polled"]
pub struct TrackedAcquire<const N: usize> {
    acquire: AcquireOwned<N>,
    controller: Arc<Controller<N>>,
}

/// The future of [`TrackedAcquire::with_timeout`]: as
/// [`AcquireOwnedTimeout`](crate::AcquireOwnedTimeout), its permit tracked
/// from the grant.
///
/// # Cancel safety
///
/// As [`TrackedAcquire`].
#[must_use = "futures do nothing unless polled"]
pub struct TrackedAcquireTimeout<const N: usize, T: ?Sized> {
    controller: Arc<Controller<N>>,
    acquire: AcquireOwnedTimeout<N, T>,
}

impl<const N: usize> TrackedAcquire<N> {
    pub(super) fn new(acquire: AcquireOwned<N>, controller: Arc<Controller<N>>) -> Self {
        Self {
            acquire,
            controller,
        }
    }

    /// This acquire, given up when `timer` completes first, as
    /// [`AcquireOwned::with_timeout`](crate::AcquireOwned::with_timeout):
    /// the wait then fails with [`Timeout`](AcquireError::Timeout) and
    /// counts as a timeout in the semaphore's
    /// [`stats`](crate::MultiSemaphore::stats), by the dimension that held
    /// it back (where a runtime's `timeout(.., acquire)` drops the future,
    /// which the semaphore can only count as a cancel).
    ///
    /// ```
    /// # use multisem::{AcquireError, MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::{sync::Arc, time::Duration};
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=256, Aimd::default()).build();
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let timer = tokio::time::sleep(Duration::from_millis(100));
    /// let permit = ctl.acquire([1, 100]).with_timeout(timer).await?;
    /// permit.complete(Outcome::success());
    /// # Ok::<(), AcquireError>(())
    /// # }).unwrap();
    /// ```
    pub fn with_timeout<T: Future>(self, timer: T) -> TrackedAcquireTimeout<N, T> {
        TrackedAcquireTimeout {
            controller: self.controller,
            acquire: self.acquire.with_timeout(timer),
        }
    }
}

impl<const N: usize, T: ?Sized> TrackedAcquireTimeout<N, T> {
    /// As [`AcquireOwnedTimeout::short_at_timeout`](crate::AcquireOwnedTimeout::short_at_timeout):
    /// once it timed out, the first dimension its request was short in.
    pub fn short_at_timeout(&self) -> Option<usize> {
        self.acquire.short_at_timeout()
    }
}

impl<const N: usize> Future for TrackedAcquire<N> {
    type Output = Result<TrackedPermit<N>, AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        track(&this.controller, Pin::new(&mut this.acquire).poll(cx))
    }
}

impl<const N: usize, T: Future + ?Sized> Future for TrackedAcquireTimeout<N, T> {
    type Output = Result<TrackedPermit<N>, AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        track(&this.controller, Pin::new(&mut this.acquire).poll(cx))
    }
}

impl<const N: usize> TrackedAcquire<N> {
    /// Whether it returned `Ready` (for `FusedFuture`, `src/fused.rs`).
    #[cfg(feature = "futures")]
    pub(crate) fn is_terminated(&self) -> bool {
        self.acquire.is_terminated()
    }
}

impl<const N: usize, T: ?Sized> TrackedAcquireTimeout<N, T> {
    #[cfg(feature = "futures")]
    pub(crate) fn is_terminated(&self) -> bool {
        self.acquire.is_terminated()
    }
}

/// A grant, tracked from now.
fn track<const N: usize>(
    controller: &Arc<Controller<N>>,
    polled: Poll<Result<OwnedPermit<N>, AcquireError>>,
) -> Poll<Result<TrackedPermit<N>, AcquireError>> {
    polled.map_ok(|permit| controller.track(permit))
}

impl<const N: usize> fmt::Debug for TrackedAcquire<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackedAcquire")
            .field("acquire", &self.acquire)
            .finish_non_exhaustive()
    }
}

impl<const N: usize, T: ?Sized> fmt::Debug for TrackedAcquireTimeout<N, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackedAcquireTimeout")
            .field("acquire", &self.acquire)
            .finish_non_exhaustive()
    }
}
