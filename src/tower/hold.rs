//! How long the permit is held, and how a refusal reaches the caller.

use super::{BoxError, Refused};
use crate::OwnedPermit;

/// What the layer does with a response and its permit, and with a refusal.
///
/// [`UntilResponse`] (the default) drops the permit when the response
/// future completes and returns refusals as errors; the `http` feature's
/// [`UntilBodyEnd`](crate::http::UntilBodyEnd) moves the permit into the
/// response body and answers refusals with `413` / `503` responses;
/// [`Learn`](super::Learn) holds as one of those and reports each request
/// to an adaptive controller.
///
/// The layer clones the hold for each request, so a hold may keep state of
/// the request's own (as [`Learn`](super::Learn) keeps its grant time).
///
/// ```
/// use multisem::OwnedPermit;
/// use multisem::tower::{Hold, Refused};
///
/// /// Keeps the permit with the response, for a caller that streams it.
/// #[derive(Clone)]
/// struct WithResponse;
///
/// impl<R, E, const N: usize> Hold<R, E, N> for WithResponse {
///     type Response = (R, OwnedPermit<N>);
///     type Error = Result<E, Refused>;
///     fn respond(&self, response: R, permit: OwnedPermit<N>) -> Self::Response {
///         (response, permit)
///     }
///     fn refuse(&self, refused: Refused) -> Result<Self::Response, Self::Error> {
///         Err(Err(refused))
///     }
///     fn fail(&self, error: E) -> Self::Error {
///         Ok(error)
///     }
/// }
/// # let _ = WithResponse;
/// ```
pub trait Hold<Response, E, const N: usize> {
    /// What the layered service responds with.
    type Response;
    /// The layered service's error.
    type Error;

    /// The inner service answered `response`; `permit` is the request's.
    fn respond(&self, response: Response, permit: OwnedPermit<N>) -> Self::Response;

    /// The layer refused the request: an error, or an answer of its own.
    ///
    /// # Errors
    ///
    /// Whatever the implementation chooses to report a refusal with.
    fn refuse(&self, refused: Refused) -> Result<Self::Response, Self::Error>;

    /// The inner service failed with `error`, with no permit held: its
    /// `poll_ready` failed, or (by default) [`fail_holding`](Self::fail_holding)
    /// has returned the request's permit.
    fn fail(&self, error: E) -> Self::Error;

    /// The request was admitted: its permit was granted just now, and the
    /// inner service is about to be called. Called on the request's own
    /// clone of the hold, once per admitted request, never for a refused
    /// one. The default does nothing; [`Learn`](super::Learn) notes the
    /// time, to report the round trip from the grant.
    #[inline]
    fn admitted(&mut self) {}

    /// The inner service's future failed with `error` while the request
    /// held `permit`. The default returns the permit and answers
    /// [`fail`](Self::fail); [`Learn`](super::Learn) first reports the
    /// failure to its controller.
    fn fail_holding(&self, error: E, permit: OwnedPermit<N>) -> Self::Error {
        drop(permit);
        self.fail(error)
    }
}

/// Holds the permit until the response future completes, fails or is
/// dropped, and returns refusals as their own error types in a [`BoxError`].
///
/// ```
/// use multisem::MultiSemaphore;
/// use multisem::tower::{AdmitLayer, UntilResponse};
/// use std::sync::Arc;
///
/// // The default: `AdmitLayer::new` holds `UntilResponse`.
/// let layer = AdmitLayer::new(Arc::new(MultiSemaphore::new([8])), |_: &()| [1])
///     .hold(UntilResponse);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UntilResponse;

impl<R, E: Into<BoxError>, const N: usize> Hold<R, E, N> for UntilResponse {
    type Response = R;
    type Error = BoxError;

    fn respond(&self, response: R, permit: OwnedPermit<N>) -> R {
        drop(permit);
        response
    }

    fn refuse(&self, refused: Refused) -> Result<R, BoxError> {
        Err(refused.boxed())
    }

    fn fail(&self, error: E) -> BoxError {
        error.into()
    }
}
