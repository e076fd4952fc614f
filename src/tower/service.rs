//! The service: weighs each request and takes its permit in `call`.

use super::layer::{Config, Mode};
use super::{
    AdmitFuture, Closed, Hold, Refused, ResponseFuture, Shed, UntilResponse, Waiting, Weigh,
};
use crate::{AcquireOwned, MultiSemaphore, TryAcquireError};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// The service made by [`AdmitLayer`](super::AdmitLayer): admits each
/// request by its weight before passing it to `S`.
///
/// `poll_ready` only drives `S`'s readiness; `call` weighs the request and
/// takes its permit, at once if it fits (no lock, no allocation), else by
/// waiting or shedding as the layer says. `S` must be `Clone` because a
/// request that waits takes the ready inner service along, leaving a clone
/// in its place, as tower's `Oneshot` does.
///
/// ```
/// use multisem::MultiSemaphore;
/// use multisem::tower::AdmitLayer;
/// use std::sync::Arc;
/// use tower::{service_fn, Layer, Service, ServiceExt};
///
/// # futures_executor::block_on(async {
/// let sem = Arc::new(MultiSemaphore::new([2]));
/// let mut svc = AdmitLayer::new(sem.clone(), |_: &u32| [1])
///     .layer(service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n * 2) }));
/// let pending = svc.ready().await.unwrap().call(21); // the permit is taken here
/// assert_eq!(sem.available(), [1]);
/// assert_eq!(pending.await.unwrap(), 42);
/// assert_eq!(sem.available(), [2]);
/// # });
/// ```
pub struct Admit<S, W, const N: usize, H = UntilResponse> {
    inner: S,
    config: Arc<Config<N>>,
    weigher: W,
    hold: H,
}

impl<S, W, const N: usize, H> Admit<S, W, N, H> {
    pub(crate) fn new(inner: S, config: Arc<Config<N>>, weigher: W, hold: H) -> Self {
        Self {
            inner,
            config,
            weigher,
            hold,
        }
    }

    /// The inner service.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::tower::AdmitLayer;
    /// use std::sync::Arc;
    /// use tower::Layer;
    ///
    /// let svc = AdmitLayer::new(Arc::new(MultiSemaphore::new([2])), |_: &()| [1]).layer("inner");
    /// assert_eq!(*svc.get_ref(), "inner");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::tower::AdmitLayer;
    /// use std::sync::Arc;
    /// use tower::Layer;
    ///
    /// let mut svc = AdmitLayer::new(Arc::new(MultiSemaphore::new([2])), |_: &()| [1]).layer(1);
    /// *svc.get_mut() += 1;
    /// assert_eq!(*svc.get_ref(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, out of the layer. Requests already admitted keep
    /// their permits until their responses are done.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::tower::AdmitLayer;
    /// use std::sync::Arc;
    /// use tower::Layer;
    ///
    /// let svc = AdmitLayer::new(Arc::new(MultiSemaphore::new([2])), |_: &()| [1]).layer("inner");
    /// assert_eq!(svc.into_inner(), "inner");
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The semaphore requests are admitted through.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::tower::AdmitLayer;
    /// use std::sync::Arc;
    /// use tower::Layer;
    ///
    /// let svc = AdmitLayer::new(Arc::new(MultiSemaphore::new([2])), |_: &()| [1]).layer(());
    /// assert_eq!(svc.semaphore().capacity(), [2]);
    /// ```
    pub fn semaphore(&self) -> &Arc<MultiSemaphore<N>> {
        &self.config.sem
    }
}

impl<S, W, Request, H, const N: usize> Service<Request> for Admit<S, W, N, H>
where
    S: Service<Request> + Clone,
    W: Weigh<Request, N>,
    H: Hold<S::Response, S::Error, N> + Clone,
{
    type Response = H::Response;
    type Error = H::Error;
    type Future = AdmitFuture<S, Request, H, N>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // No permit here: the request, and so its weight, is not known yet,
        // and an idle connection must not sit on one.
        self.inner.poll_ready(cx).map_err(|err| self.hold.fail(err))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let amounts = self.weigher.weigh(&request);
        let config = &self.config;
        let mut hold = self.hold.clone();
        let refused = match &config.mode {
            Mode::Wait { .. } => {
                // A request that waits is queued, not refused: it counts in
                // `waited`, not in `Stats::refused`, which counts the
                // refusals callers get (so no `try_acquire_owned` here).
                return match config.sem.try_acquire_owned_or_wait(amounts) {
                    Ok(permit) => {
                        hold.admitted();
                        ResponseFuture::calling(self.inner.call(request), permit, hold)
                    }
                    Err(acquire) => self.wait(acquire, request, amounts, hold),
                };
            }
            Mode::Shed => match config.sem.try_acquire_owned(amounts) {
                Ok(permit) => {
                    hold.admitted();
                    return ResponseFuture::calling(self.inner.call(request), permit, hold);
                }
                Err(TryAcquireError::Insufficient {
                    dim,
                    available,
                    queued_ahead,
                    ..
                }) => {
                    // Queued ahead, it would have fit, but others wait
                    // first: the error's dimension is what *they* lack,
                    // maybe one this request does not ask for. Name this
                    // request's first instead, of which a newcomer could
                    // take nothing.
                    let (dim, available) = if queued_ahead {
                        ((0..N).find(|&d| amounts[d] > 0).unwrap_or(0), 0)
                    } else {
                        (dim, available)
                    };
                    Refused::Shed(Shed {
                        dim,
                        name: config.names[dim],
                        // What it asked, not its clamp (on a clamping semaphore).
                        requested: amounts[dim],
                        available,
                        queued_ahead,
                    })
                }
                Err(TryAcquireError::ExceedsCapacity {
                    dim,
                    requested,
                    capacity,
                    ..
                }) => config.too_large(dim, requested, capacity),
                Err(_) => Refused::Closed(Closed::default()),
            },
        };
        ResponseFuture::refused(refused, hold)
    }
}

impl<S, W, const N: usize, H> Admit<S, W, N, H> {
    /// `call` for a request that cannot be admitted at once, in wait mode:
    /// the ready service goes with the request, and a clone, not yet ready,
    /// stays for the next `poll_ready`. The request queues when its
    /// response future is first polled, not here: a future that is never
    /// polled (or polled after a later one) must not hold a place in the
    /// queue, nor, once granted, the permits that others wait for.
    #[cold]
    #[inline(never)]
    fn wait<Request>(
        &mut self,
        acquire: AcquireOwned<N>,
        request: Request,
        amounts: [u64; N],
        hold: H,
    ) -> AdmitFuture<S, Request, H, N>
    where
        S: Service<Request> + Clone,
        H: Hold<S::Response, S::Error, N>,
    {
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        ResponseFuture::waiting(Waiting::new(ready, request, amounts, config, acquire), hold)
    }
}

impl<S: Clone, W: Clone, const N: usize, H: Clone> Clone for Admit<S, W, N, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
            weigher: self.weigher.clone(),
            hold: self.hold.clone(),
        }
    }
}

impl<S: fmt::Debug, W, const N: usize, H: fmt::Debug> fmt::Debug for Admit<S, W, N, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admit")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("hold", &self.hold)
            .finish_non_exhaustive()
    }
}
