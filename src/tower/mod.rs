//! A tower [`Layer`](tower_layer::Layer) that admits each request by its
//! weight, and holds the permit until the response is done (feature `tower`).
//!
//! [`AdmitLayer`] wraps any [`Service`](tower_service::Service): for every
//! request, a weigher computes its amounts (say `[1, body bytes]`), and the
//! layer takes them from a shared [`MultiSemaphore`](crate::MultiSemaphore)
//! before the inner service sees the request.
//!
//! ```
//! use multisem::MultiSemaphore;
//! use multisem::tower::AdmitLayer;
//! use std::sync::Arc;
//! use tower::{service_fn, Layer, Service, ServiceExt};
//!
//! # futures_executor::block_on(async {
//! // At most 64 requests and 1 MiB of payload in flight, over every connection.
//! let sem = Arc::new(MultiSemaphore::new([64, 1 << 20]));
//! let layer = AdmitLayer::new(sem.clone(), |payload: &Vec<u8>| [1, payload.len() as u64])
//!     .names(&["requests", "bytes"]);
//! let mut svc = layer.layer(service_fn(|payload: Vec<u8>| async move {
//!     Ok::<_, std::convert::Infallible>(payload.len())
//! }));
//! let len = svc.ready().await?.call(vec![0; 4096]).await?;
//! assert_eq!(len, 4096);
//! assert_eq!(sem.available(), sem.capacity()); // the permit came back with the response
//! # Ok::<(), tower::BoxError>(())
//! # }).unwrap();
//! ```
//!
//! # What it guarantees
//!
//! * **The permit is taken in `call`**, once the request and so its weight
//!   are known. `poll_ready` only drives the inner service's readiness and
//!   takes nothing, so an idle keep-alive connection holds no permit (unlike
//!   tower's `ConcurrencyLimit`, which takes one in `poll_ready`).
//! * **It is held until the response is done**: until the response future
//!   completes, fails or is dropped (a client that goes away drops it); with
//!   the `http` feature's [`UntilBodyEnd`](crate::http::UntilBodyEnd), until
//!   the response *body* has sent its last frame or is dropped. Nothing leaks
//!   on any path: the permit is an [`OwnedPermit`](crate::OwnedPermit), which
//!   returns its amounts when dropped.
//! * **Two modes.** *Wait* (the default) queues the request first come,
//!   first served, optionally bounded by a timeout
//!   ([`wait_timeout`](AdmitLayer::wait_timeout)); *shed*
//!   ([`shed`](AdmitLayer::shed)) never waits and refuses at once when the
//!   weight does not fit now. A waiting request takes its place in the
//!   queue when its response future is first polled (so a future never
//!   polled holds no place, and no permit another awaits); it counts in
//!   the semaphore's `waited`, never in its `refused` (of this layer's
//!   requests, only shed ones count there). In both modes, a
//!   request larger than a dimension's whole capacity is refused at once
//!   ([`TooLarge`]), unless the semaphore clamps oversized requests
//!   ([`Builder::clamp_oversized`](crate::Builder::clamp_oversized)): then
//!   it is admitted with that whole capacity once it is free (or, in shed
//!   mode, shed while it is not), but for some of a dimension whose
//!   capacity can never leave 0 (its `max_capacity` is 0): refused at once.
//! * **Typed refusals.** The service's error is tower's
//!   [`BoxError`]; a refusal is one of [`Shed`], [`TimedOut`], [`TooLarge`]
//!   or [`Closed`], each naming the dimension that was short where there
//!   is one, found with
//!   `err.downcast_ref::<Shed>()` or [`Refused::find`]. The inner service's
//!   own errors pass through unchanged (boxed).
//! * **Any request type**, not only HTTP: the weigher is any
//!   `Fn(&Request) -> [u64; N]` (or a [`Weigh`] implementation).
//! * **Limits that learn.** [`AdmitLayer::adaptive`] admits through an
//!   adaptive [`Controller`](crate::adaptive::Controller)'s semaphore and
//!   reports every answered request to it: a classifier ([`Classify`])
//!   turns the answer or error into an
//!   [`Outcome`](crate::adaptive::Outcome), timed from the grant (not from
//!   the wait in the queue), and the controller resizes the semaphore as
//!   its algorithms say. Refused requests are not samples. See [`Learn`];
//!   the `http` feature's [`adaptive_layer`](crate::http::adaptive_layer)
//!   classifies by status and times each request to its body's end.
//!
//! # What it costs
//!
//! An uncontended request costs one lock-free take (`try_acquire_owned`'s,
//! through [`try_acquire_owned_or_wait`](crate::MultiSemaphore::try_acquire_owned_or_wait)
//! in wait mode: one CAS where the capacities fit a 64-bit word) and, when
//! the response is done, one atomic add; plus one `Arc` reference count for
//! the owned permit. No lock and no allocation. Only a request that has to
//! wait pays more: the inner service is cloned (the ready one goes with the
//! request, as tower's `Oneshot` does), its place in the queue is the
//! semaphore's async acquire, and with a timeout, the sleep future is
//! boxed.
//!
//! A layer made by [`AdmitLayer::adaptive`] adds a clock read at the grant
//! and, when the response is done, the controller's sample: a second clock
//! read, an uncontended lock and the window's sums (about 105 ns more per
//! request in `benches/tower.rs`), and no allocation once the
//! controller's filters are full (`tests/memory.rs`).
//!
//! # Timeouts without a runtime dependency
//!
//! The crate does not depend on an async runtime, so a wait timeout takes
//! the runtime's sleep function: `.wait_timeout(Duration::from_secs(2),
//! tokio::time::sleep)` (or async-io's `Timer::after`, or any
//! `Fn(Duration) -> impl Future`). The timeout bounds only the wait for the
//! permit, which is what a queueing budget means; to bound the whole
//! request, add tower's `TimeoutLayer` outside this one as well.
//!
//! # In a stack
//!
//! * **A waiting request keeps the inner service's readiness**: the ready
//!   clone goes with it, so a layer inside this one that reserves in
//!   `poll_ready` (tower's `ConcurrencyLimit`, `RateLimit`) holds its
//!   reservation while the request waits for its permit here. Put such
//!   layers outside this one unless that is what you want.
//! * `Buffer` works on either side; `LoadShed` outside a shedding layer
//!   passes its [`Shed`] through, found with [`Refused::find`].
//! * `Retry` outside: each attempt is admitted anew, and an answered
//!   attempt's permit comes back when the policy drops its response.
//! * `Timeout` outside bounds the whole request and takes a waiting one out
//!   of the queue; inside, it bounds the inner call only (for an adaptive
//!   layer, a drop sample: see [`Learn`]).

// The docs link to the `http` feature's items, which exist only with it;
// with `tower` alone those links are left unresolved rather than broken.
#![cfg_attr(not(feature = "http"), allow(rustdoc::broken_intra_doc_links))]

mod error;
mod future;
mod hold;
mod layer;
mod learn;
mod service;
mod weigh;

pub use error::{Closed, Refused, Shed, TimedOut, TooLarge};
pub use future::{AdmitFuture, ResponseFuture, Waiting};
pub use hold::{Hold, UntilResponse};
pub use layer::{AdmitLayer, Waited};
pub use learn::{Classify, Learn, Report};
pub use service::Admit;
pub use weigh::Weigh;

/// The error type of tower stacks: the layer's refusals and the inner
/// service's errors, boxed (the same type as `tower::BoxError`).
///
/// ```
/// use multisem::tower::{BoxError, Shed, TimedOut};
///
/// fn retry_later(err: &BoxError) -> bool {
///     err.is::<Shed>() || err.is::<TimedOut>()
/// }
/// let inner: BoxError = "connection refused".into();
/// assert!(!retry_later(&inner));
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
