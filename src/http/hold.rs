//! Holding the permit in the response body; refusals as responses.

use super::PermitBody;
use crate::OwnedPermit;
use crate::tower::{AdmitLayer, Hold, Refused};
use http::{HeaderValue, Response, StatusCode, header};
use std::time::Duration;

/// A [`Hold`] for HTTP services: moves the permit into the response body
/// ([`PermitBody`]) so it is held until the body has yielded its last
/// frame (see [`PermitBody`] on a body of one frame), and answers
/// a refusal with a response of its own ([`refusal_response`]) instead of a
/// service error, which hyper would answer by closing the connection.
///
/// ```
/// use multisem::MultiSemaphore;
/// use multisem::http::{RequestBytes, UntilBodyEnd};
/// use multisem::tower::AdmitLayer;
/// use std::{sync::Arc, time::Duration};
///
/// // Three dimensions: requests, bytes, and one "upload slot" per request.
/// let sem = Arc::new(MultiSemaphore::new([256, 64 << 20, 8]));
/// let weigh = RequestBytes::new(1 << 20);
/// let layer = AdmitLayer::new(sem, move |req: &http::Request<http_body_util::Empty<bytes::Bytes>>| {
///     [1, weigh.bytes(req), u64::from(req.method() == http::Method::PUT)]
/// })
/// .hold(UntilBodyEnd::default().retry_after(Duration::from_secs(5)));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UntilBodyEnd {
    pub(super) retry_after: Duration,
}

impl Default for UntilBodyEnd {
    /// Answers `Retry-After: 1`.
    fn default() -> Self {
        Self {
            retry_after: Duration::from_secs(1),
        }
    }
}

impl UntilBodyEnd {
    /// Sets the `Retry-After` that a `503` answer carries (whole seconds,
    /// rounded up; 1 second by default).
    ///
    /// ```
    /// use multisem::http::UntilBodyEnd;
    /// use std::time::Duration;
    ///
    /// let hold = UntilBodyEnd::default().retry_after(Duration::from_secs(3));
    /// # let _ = hold;
    /// ```
    #[must_use = "this returns the changed hold; the original is unchanged"]
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }
}

impl<W, const N: usize> AdmitLayer<W, N, UntilBodyEnd> {
    /// [`AdmitLayer::hold`] on a layer that holds until the body's end, such
    /// as [`http::layer`](super::layer)'s: to answer with another
    /// `Retry-After`, or to hold the permits another way.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::http::UntilBodyEnd;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let sem = Arc::new(MultiSemaphore::new([256, 64 << 20]));
    /// let layer = multisem::http::layer(sem, 64 << 10)
    ///     .hold(UntilBodyEnd::default().retry_after(Duration::from_secs(5)));
    /// # let _ = layer;
    /// ```
    pub fn hold<H2>(self, hold: H2) -> AdmitLayer<W, N, H2> {
        self.map_hold(|_| hold)
    }
}

impl<B, E, const N: usize> Hold<Response<B>, E, N> for UntilBodyEnd {
    type Response = Response<PermitBody<B, OwnedPermit<N>>>;
    type Error = E;

    fn respond(&self, response: Response<B>, permit: OwnedPermit<N>) -> Self::Response {
        response.map(|body| PermitBody::new(body, permit))
    }

    fn refuse(&self, refused: Refused) -> Result<Self::Response, E> {
        Ok(refusal_response(&refused, self.retry_after).map(|()| PermitBody::empty()))
    }

    fn fail(&self, error: E) -> E {
        error
    }
}

/// The HTTP answer to a refusal, with an empty body to fill in:
/// `413 Payload Too Large` for [`TooLarge`](crate::tower::TooLarge) (the
/// request does not fit the capacity in force; a retry helps only where
/// that capacity was lowered live and grows back), `503 Service Unavailable`
/// with `Retry-After` (whole seconds, rounded up, at least 1) for
/// [`Shed`](crate::tower::Shed), [`TimedOut`](crate::tower::TimedOut) and
/// [`Closed`](crate::tower::Closed), and for a `TooLarge` against a
/// capacity of 0 that may grow again (a dimension resized to nothing admits
/// no request that asks any of it, however small; the first dimension a
/// request is too large for decides). A request above that dimension's
/// [`max_capacity`](crate::MultiSemaphore::max_capacity) too can never fit
/// however it grows (a maximum of 0 is 0 for good): `413`. Both carry an
/// `x-multisem-refused` header with the refusal's message, which names the
/// dimension that was short, or says that others were queued ahead (in
/// visible ASCII, as RFC 9110 asks of new fields: `µs` reads `us`, any
/// other character outside it `?`).
///
/// For a tower stack that keeps the layer's refusals as errors
/// ([`UntilResponse`](crate::tower::UntilResponse)), find the refusal with
/// [`Refused::find`] and answer with this:
///
/// ```
/// use multisem::http::refusal_response;
/// use multisem::tower::{BoxError, Refused};
/// use std::time::Duration;
///
/// fn answer(err: BoxError) -> http::Response<String> {
///     match Refused::find(&*err) {
///         Some(refused) => refusal_response(&refused, Duration::from_secs(2)).map(|()| refused.to_string()),
///         None => {
///             let mut response = http::Response::new(err.to_string());
///             *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
///             response
///         }
///     }
/// }
/// let shed = answer(Box::new(multisem::tower::Closed::default()));
/// assert_eq!(shed.status(), 503);
/// assert_eq!(shed.headers()["retry-after"], "2");
/// ```
pub fn refusal_response(refused: &Refused, retry_after: Duration) -> Response<()> {
    let mut response = Response::new(());
    // Visible ASCII only (RFC 9110, 5.5): a wait under a millisecond reads
    // "µs", and a dimension's name may be any text.
    let message: String = refused
        .to_string()
        .replace('µ', "u")
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    if let Ok(message) = HeaderValue::from_str(&message) {
        response.headers_mut().insert("x-multisem-refused", message);
    }
    // A dimension resized to nothing (a drain, a lost lease) refuses every
    // request as too large, a `GET` without a body included: that is the
    // service's state, not the payload's fault, and it passes (unless the
    // request is above its maximum too: then it can never fit).
    if matches!(refused, Refused::TooLarge(too_large)
        if too_large.capacity() > 0 || too_large.max_capacity() < too_large.requested())
    {
        *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        return response;
    }
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let seconds = retry_after
        .as_secs()
        .saturating_add(u64::from(retry_after.subsec_nanos() > 0));
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}
