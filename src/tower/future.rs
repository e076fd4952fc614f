//! The response future: waits for the permit if it must, then runs the
//! inner service's future with the permit held.

use super::layer::{Config, Mode, Timer};
use super::{Closed, Hold, Refused, TimedOut, Waited};
use crate::{AcquireError, AcquireOwned, AcquireOwnedTimeout, OwnedPermit};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tower_service::Service;

/// The future of [`Admit`](super::Admit)'s `call` for inner service `S`,
/// request type `Request`, hold `H` and `N` dimensions.
///
/// ```
/// use multisem::MultiSemaphore;
/// use multisem::tower::{AdmitFuture, AdmitLayer, UntilResponse};
/// use std::sync::Arc;
/// use tower::{service_fn, util::ServiceFn, Layer, Service};
///
/// type Inner = ServiceFn<fn(u32) -> std::future::Ready<Result<u32, std::convert::Infallible>>>;
/// let mut svc = AdmitLayer::new(Arc::new(MultiSemaphore::new([2])), |_: &u32| [1])
///     .layer(service_fn((|n| std::future::ready(Ok(n))) as fn(u32) -> _));
/// let future: AdmitFuture<Inner, u32, UntilResponse, 1> = svc.call(7);
/// assert_eq!(futures_executor::block_on(future).unwrap(), 7);
/// ```
pub type AdmitFuture<S, Request, H, const N: usize> =
    ResponseFuture<<S as Service<Request>>::Future, Waiting<S, Request, N>, OwnedPermit<N>, H>;

pin_project! {
    /// The response future behind [`AdmitFuture`], spelled with the types
    /// it holds: `F`, the inner service's future; `Q`, the [`Waiting`]
    /// state of a request queued for its permit; `P`, the permit; `H`, the
    /// [`Hold`]. Name it through [`AdmitFuture`].
    ///
    /// Dropping it at any point returns whatever it holds: a queued request
    /// leaves the queue, and a permit goes back to the semaphore.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::tower::AdmitLayer;
    /// use std::sync::Arc;
    /// use tower::{service_fn, Layer, Service};
    ///
    /// let sem = Arc::new(MultiSemaphore::new([1]));
    /// let mut svc = AdmitLayer::new(sem.clone(), |_: &()| [1])
    ///     .layer(service_fn(|()| std::future::pending::<Result<(), std::convert::Infallible>>()));
    /// let future = svc.call(());
    /// assert_eq!(sem.available(), [0]);
    /// drop(future); // the client went away
    /// assert_eq!(sem.available(), [1]);
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, Q, P, H> {
        #[pin]
        state: State<F, Q, P>,
        hold: H,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, Q, P> {
        // Admitted: the inner future runs with the permit held.
        Calling { #[pin] future: F, permit: Option<P> },
        // Queued for the permit.
        Waiting { waiting: Q },
        // Refused before it was ever queued.
        Refused { refused: Option<Refused> },
        // Finished by a refusal while waiting: the queued acquire is gone.
        Done,
    }
}

impl<F, Q, P, H> ResponseFuture<F, Q, P, H> {
    pub(crate) fn calling(future: F, permit: P, hold: H) -> Self {
        Self {
            state: State::Calling {
                future,
                permit: Some(permit),
            },
            hold,
        }
    }

    pub(crate) fn waiting(waiting: Q, hold: H) -> Self {
        Self {
            state: State::Waiting { waiting },
            hold,
        }
    }

    pub(crate) fn refused(refused: Refused, hold: H) -> Self {
        Self {
            state: State::Refused {
                refused: Some(refused),
            },
            hold,
        }
    }
}

impl<S, Request, H, const N: usize> Future
    for ResponseFuture<S::Future, Waiting<S, Request, N>, OwnedPermit<N>, H>
where
    S: Service<Request>,
    H: Hold<S::Response, S::Error, N>,
{
    type Output = Result<H::Response, H::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future, permit } => {
                    let result = ready!(future.poll(cx));
                    let permit = permit.take().expect("future polled after it completed");
                    return Poll::Ready(match result {
                        Ok(response) => Ok(this.hold.respond(response, permit)),
                        Err(err) => Err(this.hold.fail_holding(err, permit)),
                    });
                }
                StateProj::Waiting { waiting } => match ready!(waiting.poll_admit(cx)) {
                    Ok((mut service, request, permit)) => {
                        this.hold.admitted();
                        let future = service.call(request);
                        this.state.set(State::Calling {
                            future,
                            permit: Some(permit),
                        });
                    }
                    Err(refused) => {
                        // Leave the queue now, not when the caller drops us.
                        this.state.set(State::Done);
                        return Poll::Ready(this.hold.refuse(refused));
                    }
                },
                StateProj::Refused { refused } => {
                    let refused = refused.take().expect("future polled after it completed");
                    return Poll::Ready(this.hold.refuse(refused));
                }
                StateProj::Done => panic!("future polled after it completed"),
            }
        }
    }
}

/// A request queued for its permit, with the ready inner service it goes
/// to once admitted: part of [`AdmitFuture`]'s type.
///
/// It waits with the semaphore's [`acquire_owned`](crate::MultiSemaphore::acquire_owned)
/// (first come, first served), raced with the layer's timeout if it has one.
///
/// Only ever made by the layer, and never handed out: it shows up in the
/// future's type, and in its `Debug` output (the amounts it asks for,
/// since when, and whether a timeout races it).
///
/// ```
/// # #![allow(dead_code)]
/// use multisem::tower::{AdmitFuture, UntilResponse};
///
/// // The layer's future over a service `S` of `String` requests, whose
/// // queued state is a `Waiting<S, String, 2>`.
/// type Admitting<S> = AdmitFuture<S, String, UntilResponse, 2>;
/// # fn named<S: tower::Service<String>>(_: Option<Admitting<S>>) {}
/// ```
pub struct Waiting<S, Request, const N: usize> {
    /// `None` only while `poll_admit` swaps in the timed acquire.
    acquire: Option<Acquiring<N>>,
    /// Polled before: its acquire is (or was) queued.
    polled: bool,
    started: Instant,
    service: Option<S>,
    request: Option<Request>,
    amounts: [u64; N],
    config: Arc<Config<N>>,
}

impl<S, Request, const N: usize> Waiting<S, Request, N> {
    /// `acquire`: the request's acquire, not yet polled (not queued).
    pub(crate) fn new(
        service: S,
        request: Request,
        amounts: [u64; N],
        config: Arc<Config<N>>,
        acquire: AcquireOwned<N>,
    ) -> Self {
        // The timer is made on the first poll that leaves the request
        // queued (see `poll_admit`): one refused at once (too large,
        // closed) never waits, and never calls the sleep function.
        Self {
            acquire: Some(Acquiring::Plain(acquire)),
            polled: false,
            started: Instant::now(),
            service: Some(service),
            request: Some(request),
            amounts,
            config,
        }
    }

    /// Polls the acquire, then the timeout; on admission hands back the
    /// ready service and the request with the permit.
    fn poll_admit(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(S, Request, OwnedPermit<N>), Refused>> {
        let config = &*self.config;
        let first = !std::mem::replace(&mut self.polled, true);
        let mut polled = poll_acquire(&mut self.acquire, cx);
        // Pending here: it is queued, so it has waited, whatever the poll
        // with the timer below says.
        let queued = polled.is_pending();
        let timeout = match &config.mode {
            Mode::Wait { timeout } => timeout.as_ref(),
            _ => None,
        };
        if let (true, Some((after, sleep))) = (queued, timeout) {
            // Queued, and not yet timed: now race the timer, for what is
            // left of the timeout since `call`. The semaphore races it
            // itself, so a timeout counts in its `timed_out` (by the
            // dimension that held it back), not as a cancel. The timer is
            // made before the acquire is taken out: a sleep function that
            // panics leaves it in place.
            if let Some(Acquiring::Plain(_)) = self.acquire {
                let timer = sleep(after.saturating_sub(self.started.elapsed()));
                if let Some(Acquiring::Plain(acquire)) = self.acquire.take() {
                    self.acquire = Some(Acquiring::Timed(acquire.with_boxed_timeout(timer)));
                }
                polled = poll_acquire(&mut self.acquire, cx);
            }
        }
        let (result, end) = match ready!(polled) {
            Ok(permit) => {
                let service = self.service.take().expect("admitted twice");
                let request = self.request.take().expect("admitted twice");
                (Ok((service, request, permit)), Waited::Admitted)
            }
            Err(AcquireError::ExceedsCapacity {
                dim,
                requested,
                capacity,
                ..
            }) => (
                Err(config.too_large(dim, requested, capacity)),
                Waited::TooLarge,
            ),
            Err(AcquireError::Timeout) => {
                // The semaphore's verdict, taken before the timeout's cancel
                // served those behind: what is available after it is not.
                let dim = match &self.acquire {
                    Some(Acquiring::Timed(acquire)) => acquire.short_at_timeout(),
                    _ => None,
                };
                let timed_out = TimedOut {
                    dim,
                    name: dim.map_or("", |dim| config.names[dim]),
                    waited: self.started.elapsed(),
                };
                (Err(Refused::TimedOut(timed_out)), Waited::TimedOut)
            }
            Err(_) => (Err(Refused::Closed(Closed::default())), Waited::Closed),
        };
        // Settled on its first poll, it never queued: refused at once, as in
        // `call` (where the try that missed could not say why), or admitted
        // by room that came back since; not observed, as the semaphore
        // counts no wait for it (`Stats::waited`).
        let at_once = first && !queued;
        if let (Some(observe), false) = (&config.on_wait, at_once) {
            observe(self.started.elapsed(), end);
        }
        Poll::Ready(result)
    }
}

/// Polls the acquire, raced with its timer once it has one. A function of
/// the field alone, so that the caller keeps its borrow of the config.
fn poll_acquire<const N: usize>(
    acquire: &mut Option<Acquiring<N>>,
    cx: &mut Context<'_>,
) -> Poll<Result<OwnedPermit<N>, AcquireError>> {
    match acquire.as_mut().expect("the acquire is put back") {
        Acquiring::Plain(acquire) => Pin::new(acquire).poll(cx),
        Acquiring::Timed(acquire) => Pin::new(acquire).poll(cx),
    }
}

/// The semaphore's acquire, raced with the layer's timer if it has one.
enum Acquiring<const N: usize> {
    Plain(AcquireOwned<N>),
    Timed(AcquireOwnedTimeout<N, Timer>),
}

impl<F, Q: fmt::Debug, P: fmt::Debug, H: fmt::Debug> fmt::Debug for ResponseFuture<F, Q, P, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("ResponseFuture");
        match &self.state {
            State::Calling { permit, .. } => out.field("permit", permit),
            State::Waiting { waiting } => out.field("waiting", waiting),
            State::Refused { refused } => out.field("refused", refused),
            State::Done => out.field("done", &true),
        };
        out.field("hold", &self.hold).finish_non_exhaustive()
    }
}

impl<S, Request, const N: usize> fmt::Debug for Waiting<S, Request, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiting")
            .field("amounts", &self.amounts)
            .field("since", &self.started)
            .field(
                "timeout",
                &matches!(self.config.mode, Mode::Wait { timeout: Some(_) }),
            )
            .finish_non_exhaustive()
    }
}
