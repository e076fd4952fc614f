//! Learning the limits from HTTP answers: statuses as outcomes, and the
//! round trip to the response body's last frame.

use super::{PermitBody, UntilBodyEnd, refusal_response};
use crate::OwnedPermit;
use crate::adaptive::Outcome;
use crate::tower::{AdmitLayer, Classify, Hold, Learn, Refused, Report};
use http::{HeaderMap, Response, StatusCode};
use std::any::Any;
use std::sync::Arc;

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
/// * a gRPC answer whose status comes in its headers (a "trailers-only"
///   answer, as tonic sends every error a handler or a layer returns) is
///   classified by its `grpc-status` the same way: `DEADLINE_EXCEEDED` (4),
///   `RESOURCE_EXHAUSTED` (8) and `UNAVAILABLE` (14) are drops; the
///   server-side failures `CANCELLED` (1), `UNKNOWN` (2), `ABORTED` (10),
///   `UNIMPLEMENTED` (12), `INTERNAL` (13) and `DATA_LOSS` (15) are ignored;
///   the other codes, the caller's errors (`NOT_FOUND` and the like), were
///   served, as a `404` is;
/// * a gRPC status in the trailers, after the messages, counts the same
///   way when the body ends (for a layer that holds the permit until then,
///   as [`adaptive_layer`](super::adaptive_layer) does): a drop or
///   server-side code there overrides what the head said, any other code
///   keeps it;
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
///
/// // gRPC: HTTP 200 with the status in the headers.
/// let grpc = |code: &str| {
///     let answer = http::Response::builder().header("grpc-status", code).body(()).unwrap();
///     by_status.classify(Ok::<_, &()>(&answer), [1, 4096])
/// };
/// assert_eq!(grpc("0"), Outcome::delivered(4096));
/// assert_eq!(grpc("8"), Outcome::Dropped); // RESOURCE_EXHAUSTED
/// assert_eq!(grpc("13"), Outcome::Ignore); // INTERNAL
/// assert_eq!(grpc("5"), Outcome::delivered(4096)); // NOT_FOUND: served
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
    #[must_use = "this returns the changed classifier; the original is unchanged"]
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
        let success = Outcome::Success {
            delivered: self.delivered.and_then(|dim| amounts.get(dim).copied()),
        };
        match response.status() {
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Outcome::Dropped,
            status if status.is_server_error() => Outcome::Ignore,
            _ => by_grpc_status(response.headers(), success),
        }
    }

    /// A gRPC status in the trailers counts as in the head: an overload or
    /// server-side code overrides what the head said; any other keeps it.
    fn classify_trailers(&self, trailers: &HeaderMap, outcome: Outcome) -> Outcome {
        by_grpc_status(trailers, outcome)
    }
}

/// The outcome the `grpc-status` in `headers` (if any) makes of an answer
/// that was otherwise `served`.
fn by_grpc_status(headers: &HeaderMap, served: Outcome) -> Outcome {
    let code = headers
        .get("grpc-status")
        .and_then(|code| code.to_str().ok()?.trim().parse::<u32>().ok());
    match code {
        Some(4 | 8 | 14) => Outcome::Dropped,
        Some(1 | 2 | 10 | 12 | 13 | 15) => Outcome::Ignore,
        _ => served,
    }
}

/// How a learning body's trailers change its [`Report`]'s outcome: the
/// layer's classifier, its type erased so that `Report` need not name it,
/// and the function that gives it the trailers.
pub(crate) struct Reclassify {
    classifier: Arc<dyn Any + Send + Sync>,
    by: fn(&(dyn Any + Send + Sync), &HeaderMap, Outcome) -> Outcome,
}

impl Reclassify {
    /// The outcome `trailers` make of `outcome`.
    pub(crate) fn outcome(&self, trailers: &HeaderMap, outcome: Outcome) -> Outcome {
        (self.by)(&*self.classifier, trailers, outcome)
    }
}

/// [`Classify::classify_trailers`] of a `Learn<C, N>`'s classifier.
fn classify_trailers<B, E, C, const N: usize>(
    classifier: &(dyn Any + Send + Sync),
    trailers: &HeaderMap,
    outcome: Outcome,
) -> Outcome
where
    C: Classify<Response<B>, E, N> + 'static,
{
    match Learn::<C, N>::classify_of(classifier) {
        Some(classify) => classify.classify_trailers(trailers, outcome),
        None => outcome,
    }
}

/// Holds the permit in the response body, as [`UntilBodyEnd`] does, and
/// reports the request when the body ends: so the round trip the
/// controller learns from includes producing the body and handing it to
/// the server (all but the writing of its last frame: see [`PermitBody`]),
/// and trailers the body ends with (gRPC's status) are classified too
/// ([`Classify::classify_trailers`]).
impl<B, E, C, const N: usize> Hold<Response<B>, E, N> for Learn<C, N, UntilBodyEnd>
where
    C: Classify<Response<B>, E, N> + Send + Sync + 'static,
{
    type Response = Response<PermitBody<B, Report<N>>>;
    type Error = E;

    fn respond(&self, response: Response<B>, permit: OwnedPermit<N>) -> Self::Response {
        let outcome = self.classify(Ok(&response), permit.amounts());
        let mut report = self.report_on_drop(permit, outcome);
        report.trailers = Some(Reclassify {
            classifier: self.classifier(),
            by: classify_trailers::<B, E, C, N>,
        });
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
        self.report(Err(&error), permit);
        error
    }
}

impl<W, C, const N: usize> AdmitLayer<W, N, Learn<C, N>> {
    /// Holds each permit until the response *body* has yielded its last
    /// frame (or is dropped), as `hold` does, and reports the request then:
    /// refusals are answered with `413` / `503` responses as
    /// [`UntilBodyEnd`] answers them.
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

impl<W, C, const N: usize> AdmitLayer<W, N, Learn<C, N, UntilBodyEnd>> {
    /// Answers refusals as `hold` does, in place of the [`UntilBodyEnd`]
    /// this layer holds until now: how a layer from
    /// [`adaptive_layer`](super::adaptive_layer) sets the `Retry-After` of
    /// its `503` answers.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::adaptive::Controller;
    /// use multisem::http::UntilBodyEnd;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let sem = Arc::new(MultiSemaphore::new([256, 64 << 20]));
    /// let ctl = Controller::builder(sem)
    ///     .count_and_bytes(0, 8..=4096, 1, (1 << 20)..=(1 << 30))
    ///     .build();
    /// let layer = multisem::http::adaptive_layer(ctl, 64 << 10)
    ///     .until_body_end(UntilBodyEnd::default().retry_after(Duration::from_secs(5)))
    ///     .shed();
    /// # let _ = layer;
    /// ```
    pub fn until_body_end(self, hold: UntilBodyEnd) -> Self {
        self.map_hold(|learn| learn.holding(hold))
    }
}
