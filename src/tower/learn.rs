//! Learning the limits from the service's answers: a [`Hold`] that reports
//! each admitted request's outcome and round trip to an adaptive
//! [`Controller`].

use super::{BoxError, Hold, Refused, UntilResponse};
use crate::OwnedPermit;
use crate::adaptive::{Controller, Outcome, TrackedPermit};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// Tells an adaptive [`Controller`] what became of a request: the inner
/// service's answer (`Ok`) or error (`Err`), and the amounts the request
/// held, to [`Outcome`].
///
/// Any `Fn(Result<&Response, &E>, [u64; N]) -> Outcome` is a classifier;
/// implement the trait for one with a name of its own (as the `http`
/// feature's [`StatusOutcome`](crate::http::StatusOutcome) does).
///
/// ```
/// use multisem::adaptive::Outcome;
/// use multisem::tower::Classify;
///
/// /// A broker's reply: `Err` is a timeout or "busy", so overload.
/// #[derive(Clone)]
/// struct Broker;
///
/// impl Classify<u64, std::io::Error, 2> for Broker {
///     fn classify(&self, result: Result<&u64, &std::io::Error>, amounts: [u64; 2]) -> Outcome {
///         match result {
///             Ok(_) => Outcome::delivered(amounts[1]),
///             Err(_) => Outcome::Dropped,
///         }
///     }
/// }
/// assert_eq!(Broker.classify(Ok(&7), [1, 4096]), Outcome::delivered(4096));
/// ```
pub trait Classify<Response, E, const N: usize> {
    /// The outcome of a request that held `amounts` and was answered with
    /// `result`.
    fn classify(&self, result: Result<&Response, &E>, amounts: [u64; N]) -> Outcome;

    /// The outcome once an HTTP answer's body has ended with `trailers`,
    /// given the `outcome` its head was classified as (with the `http`
    /// feature, for a layer that holds the permit until the body's end:
    /// gRPC sends its status there after the messages). By default the
    /// head's outcome stands.
    #[cfg(feature = "http")]
    fn classify_trailers(&self, trailers: &http::HeaderMap, outcome: Outcome) -> Outcome {
        let _ = trailers;
        outcome
    }
}

impl<Response, E, F, const N: usize> Classify<Response, E, N> for F
where
    F: Fn(Result<&Response, &E>, [u64; N]) -> Outcome,
{
    fn classify(&self, result: Result<&Response, &E>, amounts: [u64; N]) -> Outcome {
        self(result, amounts)
    }
}

/// The [`Hold`] of a layer made by [`AdmitLayer::adaptive`](super::AdmitLayer::adaptive):
/// holds each permit as `H` does (by default until the response future
/// completes, as [`UntilResponse`] does; with the `http` feature, until the
/// response body ends: [`until_body_end`](super::AdmitLayer::until_body_end)),
/// and reports the request to the controller as it returns the permit: the
/// classifier's [`Outcome`] and the time from the grant, so the controller
/// resizes the semaphore from what the service answers.
///
/// * **What is a sample.** A request the inner service answered or failed,
///   timed from when the layer takes its permit: in `call` where it fits
///   at once, else at the poll that delivers its grant, as a
///   [`TrackedAcquire`](crate::adaptive::TrackedAcquire) times it (a
///   grant made while the task waited counts from when it runs again, so
///   the runtime's wake-up delay is not in the round trip). Time spent
///   queued for the permit is the layer's own queue, not the service's
///   latency.
/// * **What is not.** A request the layer refused (shed, timed out in the
///   queue, too large, closed) never held a permit and says nothing about
///   the service. A response future dropped before it completed (its client
///   left, or a timeout *outside* this layer fired) returns its permit with
///   no sample, as a [`TrackedPermit`](crate::adaptive::TrackedPermit)
///   dropped without an outcome does. So that timeouts count as drops, put
///   the timeout *inside* the layer (tower's `TimeoutLayer` between this
///   layer and the service) and classify its error as [`Outcome::Dropped`].
///
/// Each admitted request costs one clock read more than [`UntilResponse`],
/// and its completion a call to the controller (see the adaptive module's
/// costs).
pub struct Learn<C, const N: usize, H = UntilResponse> {
    shared: Arc<Shared<C, N>>,
    /// How long the permit is held, and how refusals are answered.
    pub(crate) hold: H,
    /// Set on the request's own clone when its permit is granted.
    granted: Option<Instant>,
}

struct Shared<C, const N: usize> {
    controller: Arc<Controller<N>>,
    classify: C,
}

impl<C, const N: usize> Learn<C, N> {
    /// Only [`AdmitLayer::adaptive`](super::AdmitLayer::adaptive) makes one,
    /// over the controller's own semaphore, so that every permit it tracks
    /// is one the controller resizes.
    pub(crate) fn new(controller: Arc<Controller<N>>, classify: C) -> Self {
        Self {
            shared: Arc::new(Shared {
                controller,
                classify,
            }),
            hold: UntilResponse,
            granted: None,
        }
    }
}

impl<C, const N: usize, H> Learn<C, N, H> {
    /// The same reporting, holding as `hold` does.
    #[cfg(feature = "http")]
    pub(crate) fn holding<H2>(self, hold: H2) -> Learn<C, N, H2> {
        Learn {
            shared: self.shared,
            hold,
            granted: self.granted,
        }
    }

    /// The outcome of `result` for a request that held `amounts`.
    pub(crate) fn classify<R, E>(&self, result: Result<&R, &E>, amounts: [u64; N]) -> Outcome
    where
        C: Classify<R, E, N>,
    {
        self.shared.classify.classify(result, amounts)
    }

    /// `permit`, to be reported with `outcome` when it is dropped.
    pub(crate) fn report_on_drop(&self, permit: OwnedPermit<N>, outcome: Outcome) -> Report<N> {
        Report {
            permit: Some(self.track(permit)),
            outcome,
            #[cfg(feature = "http")]
            trailers: None,
        }
    }

    /// `permit`, tracked from its grant; a request never admitted through
    /// the layer (no grant time) is not a sample.
    fn track(&self, permit: OwnedPermit<N>) -> Result<TrackedPermit<N>, OwnedPermit<N>> {
        match self.granted {
            Some(granted) => Ok(self.shared.controller.track_at(permit, granted)),
            None => Err(permit),
        }
    }

    /// Reports the request that held `permit` and was answered with
    /// `result`, and returns the permit.
    pub(crate) fn report<R, E>(&self, result: Result<&R, &E>, permit: OwnedPermit<N>)
    where
        C: Classify<R, E, N>,
    {
        let outcome = self.classify(result, permit.amounts());
        drop(self.report_on_drop(permit, outcome));
    }

    /// The classifier (with the controller), for a response body to reach
    /// once its trailers come.
    #[cfg(feature = "http")]
    pub(crate) fn classifier(&self) -> Arc<dyn std::any::Any + Send + Sync>
    where
        C: Send + Sync + 'static,
    {
        self.shared.clone()
    }

    /// `classifier`'s classifier, if it is one of `Learn<C, N>`'s.
    #[cfg(feature = "http")]
    pub(crate) fn classify_of(classifier: &(dyn std::any::Any + Send + Sync)) -> Option<&C>
    where
        C: 'static,
    {
        let shared = classifier.downcast_ref::<Shared<C, N>>()?;
        Some(&shared.classify)
    }

    /// Notes the grant: for [`Hold::admitted`].
    pub(crate) fn note_grant(&mut self) {
        self.granted = Some(Instant::now());
    }
}

/// A learning layer's permit after the response: reports the request's
/// [`Outcome`] to the controller, timed from the grant, when it is dropped,
/// and returns the permit. With the `http` feature's
/// [`until_body_end`](super::AdmitLayer::until_body_end), the response body
/// carries it ([`PermitBody`](crate::http::PermitBody)`<B, Report<N>>`), so
/// the round trip ends when the body has yielded its last frame, or is
/// dropped. Dropped
/// while its thread unwinds from a panic, it reports nothing (as
/// [`Outcome::Ignore`]): the controller's algorithms, which may be the
/// user's, would run during the unwind, where a panic of theirs aborts.
#[must_use = "the request is reported and the permit returned as soon as this is dropped"]
pub struct Report<const N: usize> {
    /// `Err`: a permit with no grant time, returned without a sample.
    permit: Option<Result<TrackedPermit<N>, OwnedPermit<N>>>,
    outcome: Outcome,
    /// How the trailers, if the body ends with some, change the outcome.
    #[cfg(feature = "http")]
    pub(crate) trailers: Option<crate::http::Reclassify>,
}

impl<const N: usize> Report<N> {
    /// The outcome that will be reported.
    ///
    /// ```
    /// use multisem::tower::Report;
    ///
    /// fn reports_a_drop(report: &Report<2>) -> bool {
    ///     report.outcome() == multisem::adaptive::Outcome::Dropped
    /// }
    /// # let _ = reports_a_drop;
    /// ```
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The amounts held.
    ///
    /// ```
    /// use multisem::tower::Report;
    ///
    /// fn bytes(report: &Report<2>) -> u64 {
    ///     report.amounts()[1]
    /// }
    /// # let _ = bytes;
    /// ```
    pub fn amounts(&self) -> [u64; N] {
        match self.permit.as_ref() {
            Some(Ok(tracked)) => tracked.amounts(),
            Some(Err(permit)) => permit.amounts(),
            None => [0; N],
        }
    }
}

#[cfg(feature = "http")]
impl<const N: usize> Report<N> {
    /// Classifies the outcome again by the trailers the body ended with.
    pub(crate) fn reclassify(&mut self, trailers: &http::HeaderMap) {
        if let Some(reclassify) = &self.trailers {
            self.outcome = reclassify.outcome(trailers, self.outcome);
        }
    }
}

impl<const N: usize> Drop for Report<N> {
    fn drop(&mut self) {
        if let Some(Ok(tracked)) = self.permit.take() {
            if std::thread::panicking() {
                // The tracked permit's drop returns it, with no sample.
                return;
            }
            tracked.complete(self.outcome);
        }
    }
}

impl<const N: usize> fmt::Debug for Report<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Report")
            .field("amounts", &self.amounts())
            .field("outcome", &self.outcome)
            .finish()
    }
}

impl<R, E, C, const N: usize> Hold<R, E, N> for Learn<C, N, UntilResponse>
where
    E: Into<BoxError>,
    C: Classify<R, E, N>,
{
    type Response = R;
    type Error = BoxError;

    fn respond(&self, response: R, permit: OwnedPermit<N>) -> R {
        self.report(Ok(&response), permit);
        response
    }

    fn refuse(&self, refused: Refused) -> Result<R, BoxError> {
        Err(refused.boxed())
    }

    fn fail(&self, error: E) -> BoxError {
        error.into()
    }

    fn admitted(&mut self) {
        self.note_grant();
    }

    fn fail_holding(&self, error: E, permit: OwnedPermit<N>) -> BoxError {
        self.report(Err(&error), permit);
        error.into()
    }
}

impl<C, const N: usize, H: Clone> Clone for Learn<C, N, H> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            hold: self.hold.clone(),
            granted: self.granted,
        }
    }
}

impl<C, const N: usize, H: fmt::Debug> fmt::Debug for Learn<C, N, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Learn")
            .field("controller", &self.shared.controller)
            .field("hold", &self.hold)
            .field("granted", &self.granted)
            .finish_non_exhaustive()
    }
}
