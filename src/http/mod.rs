//! HTTP services: weigh requests by their bytes, hold the permit until the
//! response body's last frame, answer refusals with `413` / `503`
//! (feature `http`, which implies `tower`; `http` and `http-body` 1.x).
//!
//! [`layer`] bounds the requests *and the request bytes* in flight across
//! every connection of a hyper (or axum, or tonic) server:
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use multisem::MultiSemaphore;
//! use std::sync::Arc;
//! use tower::{service_fn, Layer, Service, ServiceExt};
//!
//! # futures_executor::block_on(async {
//! // At most 256 requests and 64 MiB of request bodies in flight; a request
//! // of unknown length counts as 1 MiB.
//! let sem = Arc::new(MultiSemaphore::new([256, 64 << 20]));
//! let layer = multisem::http::layer(sem.clone(), 1 << 20);
//! let mut svc = layer.layer(service_fn(|_req: http::Request<Full<Bytes>>| async move {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("ok"))))
//! }));
//! let req = http::Request::new(Full::new(Bytes::from(vec![0; 4096])));
//! let response = svc.ready().await?.call(req).await?;
//! // The permit rides in the body until the server takes its last frame:
//! assert_eq!(sem.available(), [255, (64 << 20) - 4096]);
//! drop(response);
//! assert_eq!(sem.available(), sem.capacity());
//! # Ok::<(), std::convert::Infallible>(())
//! # }).unwrap();
//! ```
//!
//! * [`RequestBytes`] weighs a request `[1, bytes]`: its `Content-Length`,
//!   else its body's exact size hint, else a configured default.
//! * [`UntilBodyEnd`] moves the permit into the response body
//!   ([`PermitBody`]), which returns it when the body has yielded its last
//!   frame, failed, or been dropped (a client that disconnects mid-body),
//!   not when the response head is ready. The server may still be writing
//!   that last frame: a body of one frame (`Full`) returns the permit as
//!   soon as the server takes it, however slow the client; a body streamed
//!   in frames holds it until the server asks for the end, which hyper
//!   does only as its write buffer drains.
//! * A refusal becomes a response, not a service error (with hyper, a
//!   service error aborts the connection): `413 Payload Too Large` for a
//!   request above the byte capacity, which is refused at once instead of
//!   waiting forever; `503 Service Unavailable` with `Retry-After` for a shed,
//!   timed-out or closed-out request, and for one refused by a dimension
//!   resized to 0 (a drained server). [`refusal_response`] builds the same
//!   answers for a stack that keeps refusals as errors.
//! * A refusal answers before the request's body is read, and refusing its
//!   bytes is the point, so over HTTP/1.1 it usually ends the connection:
//!   hyper drops an unread body by draining what has already arrived, and
//!   closes the connection after the answer if that was not all of it. A
//!   client still sending then may see the connection reset before it reads
//!   the answer (`examples/http_gateway.rs --shed` counts such lost
//!   answers: from under 0.1% to a few percent of the server's refusals,
//!   from run to run on a loaded machine).
//!   A client that sends large bodies with `Expect: 100-continue` learns of
//!   a refusal before it sends them; HTTP/2 refuses a stream, not the
//!   connection.
//! * Give a waiting layer a [`wait_timeout`](AdmitLayer::wait_timeout):
//!   hyper reads nothing of a request body while the request waits for its
//!   permit, so it does not notice an uploading client that disconnects
//!   then, and the request keeps its place in the queue until it is
//!   admitted (or times out).
//! * [`adaptive_layer`] learns both limits instead: it reports each request
//!   to an adaptive [`Controller`], by its status ([`StatusOutcome`]; for
//!   gRPC, the status in the headers or the trailers) and timed from its
//!   grant to the end of its response body.

mod body;
mod hold;
mod learn;
mod weigh;

pub use body::{OnTrailers, PermitBody};
pub use hold::{UntilBodyEnd, refusal_response};
pub(crate) use learn::Reclassify;
pub use learn::StatusOutcome;
pub use weigh::RequestBytes;

use crate::MultiSemaphore;
use crate::adaptive::Controller;
use crate::tower::{AdmitLayer, Learn};
use std::sync::Arc;

/// A layer for HTTP services over a `[requests, bytes]` semaphore: weighs
/// each request with [`RequestBytes`] (`default_bytes` for a body of
/// unknown length), waits first come first served, holds the permit until
/// the response body ends ([`UntilBodyEnd`]), and names the dimensions as
/// the semaphore does ([`MultiSemaphore::names`]), or else `"requests"` and
/// `"bytes"`.
///
/// Every setting of [`AdmitLayer`] still applies, for example
/// `.shed()` or `.wait_timeout(..)`.
///
/// ```
/// use multisem::MultiSemaphore;
/// use std::{sync::Arc, time::Duration};
///
/// let sem = Arc::new(MultiSemaphore::new([256, 64 << 20]));
/// let layer = multisem::http::layer(sem, 64 << 10)
///     .wait_timeout(Duration::from_secs(1), tokio::time::sleep);
/// # let _ = layer;
/// ```
pub fn layer(
    sem: Arc<MultiSemaphore<2>>,
    default_bytes: u64,
) -> AdmitLayer<RequestBytes, 2, UntilBodyEnd> {
    let names = names(&sem);
    AdmitLayer::new(sem, RequestBytes::new(default_bytes))
        .names(names)
        .hold(UntilBodyEnd::default())
}

/// The semaphore's dimension names, or `"requests"` and `"bytes"`.
fn names(sem: &MultiSemaphore<2>) -> &'static [&'static str; 2] {
    let given: Option<&[&str; 2]> = sem.names().all().and_then(|names| names.try_into().ok());
    match given {
        Some(names @ [requests, bytes]) if !requests.is_empty() && !bytes.is_empty() => names,
        _ => &["requests", "bytes"],
    }
}

/// [`layer`] with limits that learn: admits through `controller`'s
/// `[requests, bytes]` semaphore, and reports each request to it when its
/// response body has yielded its last frame, by its status
/// ([`StatusOutcome`]: `429`, `503`, `504` and service errors are
/// overload, other `5xx` are ignored, the rest are successes that
/// delivered the request's bytes; a gRPC status counts by its code, in the
/// headers or in the trailers the body ends with), timed from the grant. The controller resizes both
/// dimensions as its algorithms say;
/// [`count_and_bytes`](crate::adaptive::ControllerBuilder::count_and_bytes)
/// is the preset measured in the simulation for exactly these two, but
/// where the requests' round trips differ tenfold (tiny and large bodies)
/// its count undercounts: see [`preset::count`](crate::adaptive::preset::count),
/// and `examples/http_gateway.rs --adaptive` for a controller that keeps up.
///
/// A request the layer refuses (`413`, `503`) is not a sample: it never
/// reached the service; a body dropped before its end (its client left),
/// or one that fails, is reported then, by its status (and its trailers,
/// if they came). See [`Learn`] for the rest. Give the byte
/// dimension a lower bound of at least the largest request body you
/// accept: a request above the byte capacity in force gets a `413`. A
/// shed's `503` says `Retry-After: 1`; to say another, give the layer
/// another [`UntilBodyEnd`] with
/// [`until_body_end`](AdmitLayer::until_body_end).
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Full};
/// use multisem::MultiSemaphore;
/// use multisem::adaptive::Controller;
/// use std::sync::Arc;
/// use tower::{service_fn, Layer, Service, ServiceExt};
///
/// # futures_executor::block_on(async {
/// let sem = Arc::new(MultiSemaphore::new([256, 64 << 20]));
/// let ctl = Controller::builder(sem.clone())
///     .count_and_bytes(0, 8..=4096, 1, (1 << 20)..=(1 << 30))
///     .build();
/// let layer = multisem::http::adaptive_layer(ctl, 64 << 10);
/// let mut svc = layer.layer(service_fn(|_req: http::Request<Full<Bytes>>| async move {
///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("ok"))))
/// }));
/// let req = http::Request::new(Full::new(Bytes::from(vec![0; 4096])));
/// let response = svc.ready().await?.call(req).await?;
/// assert_eq!(sem.available(), [255, (64 << 20) - 4096]);
/// response.into_body().collect().await?; // the body is sent: reported, and the permit returned
/// assert_eq!(sem.available(), sem.capacity());
/// # Ok::<(), std::convert::Infallible>(())
/// # }).unwrap();
/// ```
pub fn adaptive_layer(
    controller: Arc<Controller<2>>,
    default_bytes: u64,
) -> AdmitLayer<RequestBytes, 2, Learn<StatusOutcome, 2, UntilBodyEnd>> {
    let names = names(controller.semaphore());
    AdmitLayer::adaptive(
        controller,
        RequestBytes::new(default_bytes),
        StatusOutcome::default().delivering(1),
    )
    .names(names)
    .until_body_end(UntilBodyEnd::default())
}
