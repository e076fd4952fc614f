//! Learning the limits from HTTP answers: statuses as outcomes, and the
//! round trip to the end of the response body.

use super::{PermitBody, UntilBodyEnd, refusal_response};
use crate::OwnedPermit;
use crate::adaptive::Outcome;
use crate::tower::{AdmitLayer, Classify, Hold, Learn, Refused, Report};
use http::{Response, StatusCode};

/// Classifies an HTTP answer by its status, for a layer that learns its
/// limits ([`adaptive_layer`](super::adaptive_layer),
/// [`AdmitLayer::adaptive`]):
///
/// * `429 Too Many Requests`, `503 Service Unavailable` and
///   `504 Gateway Timeout` are overload: [`Outcome::Dropped`];
/// * a service error is too: in a tower stack, what reaches this layer
///   as an error comes from the layers inside it, a timeout or a load
///   shedder (with hyper, any other error aborts the connection); write a
///   classifier of your own where that is not so;
/// * any other `5xx` is a failure unrelated to load: [`Outcome::Ignore`];
/// * anything else is a success, which delivered the request's amount in
///   the dimension given to [`delivering`](Self::delivering) (none by
///   default).
///
/// ```
/// use multisem::adaptive::Outcome;
/// use multisem::http::StatusOutcome;
/// use multisem::tower::Classify;
///
/// let by_status = StatusOutcome::default().delivering(1);
/// let answer = |status: u16| http::Response::builder().status(status).body(()).unwrap();
/// let classify = |status| by_status.classify(Ok::<_, &()>(&answer(status)), [1, 4096]);
/// assert_eq!(classify(200), Outcome::delivered(4096));
/// assert_eq!(classify(404), Outcome::delivered(4096));
/// assert_eq!(classify(503), Outcome::Dropped);
/// assert_eq!(classify(500), Outcome::Ignore);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusOutcome {
    delivered: Option<usize>,
}

impl StatusOutcome {
    /// Reports a success as delivering the request's amount in dimension
    /// `dim` (the bytes, for a byte limit that follows the bandwidth). A
    /// `dim` outside the semaphore's dimensions delivers nothing.
    ///
    /// ```
    /// use multisem::http::StatusOutcome;
    ///
    /// let by_status = StatusOutcome::default().delivering(1);
    /// # let _ = by_status;
    /// ```
    pub fn delivering(mut self, dim: usize) -> Self {
        self.delivered = Some(dim);
        self
    }
}

impl<B, E, const N: usize> Classify<Response<B>, E, N> for StatusOutcome {
    fn classify(&self, result: Result<&Response<B>, &E>, amounts: [u64; N]) -> Outcome {
        let Ok(response) = result else {
            return Outcome::Dropped;
        };
        match response.status() {
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Outcome::Dropped,
            status if status.is_server_error() => Outcome::Ignore,
            _ => Outcome::Success {
                delivered: self.delivered.and_then(|dim| amounts.get(dim).copied()),
            },
        }
    }
}

/// Holds the permit in the response body, as [`UntilBodyEnd`] does, and
/// reports the request when the body ends: so the round trip the
/// controller learns from includes sending the body.
impl<B, E, C, const N: usize> Hold<Response<B>, E, N> for Learn<C, N, UntilBodyEnd>
where
    C: Classify<Response<B>, E, N>,
{
    type Response = Response<PermitBody<B, Report<N>>>;
    type Error = E;

    fn respond(&self, response: Response<B>, permit: OwnedPermit<N>) -> Self::Response {
        let outcome = self.classify(Ok(&response), permit.amounts());
        let report = self.report_on_drop(permit, outcome);
        response.map(|body| PermitBody::new(body, report))
    }

    fn refuse(&self, refused: Refused) -> Result<Self::Response, E> {
        Ok(refusal_response(&refused, self.hold.retry_after).map(|()| PermitBody::empty()))
    }

    fn fail(&self, error: E) -> E {
        error
    }

    fn admitted(&mut self) {
        self.note_grant();
    }

    fn fail_holding(&self, error: E, permit: OwnedPermit<N>) -> E {
        let outcome = self.classify(Err(&error), permit.amounts());
        self.complete(permit, outcome);
        error
    }
}

impl<W, C, const N: usize> AdmitLayer<W, N, Learn<C, N>> {
    /// Holds each permit until the response *body* has been sent (or
    /// dropped), as `hold` does, and reports the request then: refusals
    /// are answered with `413` / `503` responses as [`UntilBodyEnd`]
    /// answers them.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::adaptive::Controller;
    /// use multisem::http::{RequestBytes, StatusOutcome, UntilBodyEnd};
    /// use multisem::tower::AdmitLayer;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([256, 64 << 20]));
    /// let ctl = Controller::builder(sem)
    ///     .count_and_bytes(0, 8..=4096, 1, (1 << 20)..=(1 << 30))
    ///     .build();
    /// let weigh = RequestBytes::new(64 << 10);
    /// let layer = AdmitLayer::adaptive(
    ///     ctl,
    ///     move |req: &http::Request<http_body_util::Empty<bytes::Bytes>>| [1, weigh.bytes(req)],
    ///     StatusOutcome::default().delivering(1),
    /// )
    /// .until_body_end(UntilBodyEnd::default());
    /// # let _ = layer;
    /// ```
    pub fn until_body_end(self, hold: UntilBodyEnd) -> AdmitLayer<W, N, Learn<C, N, UntilBodyEnd>> {
        self.map_hold(|learn| learn.holding(hold))
    }
}
