//! A lock-free multi-dimensional semaphore: acquire a message count *and* its
//! bytes (and any other budget) all together, or not at all.
//!
//! ```
//! use multisem::{MultiSemaphore, TryAcquireError};
//!
//! // At most 1024 messages and 100 MiB in flight.
//! let sem = MultiSemaphore::new([1024, 100 << 20]);
//!
//! let message = vec![0u8; 4096];
//! // Lengths are `usize`, permits `u64`: `as u64` never truncates.
//! let permit = sem.try_acquire([1, message.len() as u64])?; // one message of 4 KiB
//! assert_eq!(sem.available(), [1023, (100 << 20) - 4096]);
//!
//! // A request that cannot fit takes nothing at all, in no dimension.
//! let err = sem.try_acquire([1, 200 << 20]).unwrap_err();
//! assert!(matches!(err, TryAcquireError::ExceedsCapacity { dim: 1, .. }));
//! assert_eq!(sem.available(), [1023, (100 << 20) - 4096]);
//!
//! drop(permit);                                    // gives back exactly [1, 4096]
//! assert_eq!(sem.available(), sem.capacity());
//! # Ok::<(), TryAcquireError>(())
//! ```
//!
//! # Why
//!
//! A producer that bounds what it has in flight by count and by bytes with two
//! semaphores must take one, then the other, and give the first back when the
//! second fails. Apache RocketMQ's producer forgot that last step: every
//! refusal of the bytes semaphore leaked a count permit, and under load the
//! producer slowed to a stop. Here one call takes every dimension or none,
//! and the [`Permit`] gives back exactly what it holds, so that class of bug
//! cannot be written.
//!
//! # Guarantees
//!
//! * **All or nothing.** Every acquire takes the requested amount in every
//!   dimension, or nothing. A call that fails, times out, is closed out, or
//!   (async) is dropped, holds nothing once it has returned.
//! * **Exact accounting.** Dropping a permit returns exactly its amounts, also
//!   while unwinding. For every dimension, `available()` plus what live
//!   permits hold equals `capacity()` whenever no acquire, release or
//!   resize is running, but while a shrink below what was in flight is
//!   being absorbed: then `available()` reads 0 there and what permits
//!   hold ([`in_flight`](MultiSemaphore::in_flight)) exceeds `capacity()`,
//!   until enough comes back. No counter wraps on any path.
//! * **First come, first served.** Blocking and async acquirers are granted
//!   in arrival order, a large request is never starved by smaller ones
//!   arriving after it, and `try_acquire` does not overtake queued acquirers.
//!   A queued request that leaves lets those behind it proceed at once.
//! * **Never blocks on the impossible.** A request above a dimension's
//!   capacity fails at once with `ExceedsCapacity`, or, on a semaphore
//!   built with [`clamp_oversized`](Builder::clamp_oversized), is granted
//!   that whole capacity and runs alone in it (a dimension resized to 0
//!   is then paused: such a request waits until it is above 0, or fails
//!   with `ExceedsCapacity` where its `max_capacity` is 0 too).
//! * **Lock-free fast path.** While nobody is queued, `try_acquire` and
//!   dropping a permit use atomic operations only: no lock, allocation or
//!   system call (rarer states also send them through the internal lock:
//!   a shrink below what is in flight, until returns have absorbed it; a
//!   closed semaphore with someone waiting in
//!   [`drained`](MultiSemaphore::drained); a refusal that a resize
//!   raced, so that a request too large at one instant is never told it
//!   was merely short at another; a take that raised a peak while a resize
//!   ran, which notes the peak under the lock; and, in the tiered layout, a read of
//!   both tiers under the lock in progress: by
//!   [`available`](MultiSemaphore::available),
//!   [`in_flight`](MultiSemaphore::in_flight),
//!   [`waiters_blocked_behind_head`](MultiSemaphore::waiters_blocked_behind_head)
//!   (with two queued or more), or a refusal decided under the lock, as every refusal of a semaphore
//!   that clamps oversized requests is). Where the capacities (or the
//!   builder's `max_capacity`, where it reserves one) fit in one
//!   64-bit word (their bit widths, a guard bit each, within 56 bits, as
//!   `[1024, 100 MiB]`'s 40:
//!   [`is_single_word`](MultiSemaphore::is_single_word) tells), an acquire is one
//!   compare-and-swap and a release one `fetch_add`, so a concurrent
//!   `try_acquire` never fails because another call held a dimension it
//!   then gave back. Larger capacities keep as much
//!   as fits in such a word in front, which serves most acquires with one
//!   CAS, and the rest in one atomic per dimension behind it.
//! * **Cancel safety.** An async acquire can be dropped at any await point;
//!   a grant that raced the drop goes back to the semaphore.
//! * **Waiting allocates nothing in steady state.** An async acquire that
//!   queues, and the release that grants it, reuse the queue's memory; the
//!   queue grows outside the internal lock and gives the memory of its peak
//!   back once it drains (no waiter queued, every result collected).
//!   `with_timeout` boxes its timer, once per call: a runtime's timeout
//!   around the plain future allocates nothing of ours.
//! * **A panicking waker strands nobody.** A release, resize or `close` that
//!   grants (or closes out) several waiters wakes every one of them even if a
//!   waker panics, then re-raises the first such panic to its caller. While
//!   the caller is already unwinding (a permit dropped during a panic), that
//!   panic is swallowed instead, since raising it would abort the process.
//!   An acquire or a cancel that serves others on its way holds a result of
//!   its own (its permits, its place in the queue): it wakes them too, but
//!   swallows their wakers' panics, and those of a waker's drop where the
//!   semaphore drops one, so that no panic of someone else's waker costs it
//!   that result. The panic hook has reported each panic as it happened.
//!
//! # Fairness design
//!
//! Released permits go back to the counters; while anyone is queued, no
//! newcomer may take from them, and the head of the queue is granted only once
//! *all* of its request fits (the discipline of Go's `x/sync/semaphore`). The
//! alternative, tokio's hand-off of released permits to the head as they come,
//! makes the head hold part of its request while it waits: with several
//! dimensions, that pins count permits while waiting for bytes, the
//! hold-and-wait that starved RocketMQ. Here a waiter never holds a part.
//! The price is that a large request at the head holds back smaller ones
//! behind it until it fits; that is what makes it unstarvable.
//!
//! # Which method
//!
//! The rule, as in tokio and async-lock: the short names (`acquire`,
//! `acquire_owned`) are async and return `#[must_use]` futures; every method
//! that blocks the thread says so in its name (`acquire_blocking*`). A
//! `.await` typed out of habit does what it says, and a forgotten one is
//! warned about, never silently compiled into a blocking call.
//!
//! | you want to | call |
//! |---|---|
//! | admit or shed load in a hot loop, never waiting | [`try_acquire`](MultiSemaphore::try_acquire) |
//! | block a thread, bounded in time | [`acquire_blocking_timeout`](MultiSemaphore::acquire_blocking_timeout), [`acquire_blocking_deadline`](MultiSemaphore::acquire_blocking_deadline) |
//! | block a thread until granted or closed | [`acquire_blocking`](MultiSemaphore::acquire_blocking) |
//! | wait in async code, on any runtime | [`acquire`](MultiSemaphore::acquire) |
//! | wait in async code with a timeout | [`acquire`](MultiSemaphore::acquire)`(..).`[`with_timeout`](Acquire::with_timeout)`(timer)` |
//! | take at once if it fits, else wait (no future when it fits, no refusal counted when it waits) | [`try_acquire_or_wait`](MultiSemaphore::try_acquire_or_wait), [`try_acquire_owned_or_wait`](MultiSemaphore::try_acquire_owned_or_wait) |
//! | move the permit into a callback or another thread | the `*_owned` twins, on an `Arc<MultiSemaphore>` |
//! | learn the size only after acquiring (encoding, compression) | acquire an upper bound, then [`Permit::shrink_to`]; or [`Permit::try_grow`] (fails under back-pressure, however small), [`Permit::release`] |
//! | let an item larger than the budget through, alone | [`Builder::clamp_oversized`] |
//! | admit a stream's items by weight, in order | `stream::Admit` (feature `futures`) |
//! | shut down: refuse new work, then wait for what is in flight | [`close`](MultiSemaphore::close), then [`drained`](MultiSemaphore::drained) (async) or [`drained_blocking_timeout`](MultiSemaphore::drained_blocking_timeout) |
//! | change the limits while running | [`add_permits`](MultiSemaphore::add_permits), [`set_capacity`](MultiSemaphore::set_capacity), [`set_capacity_of`](MultiSemaphore::set_capacity_of) (one dimension) |
//! | see why you are throttled | [`stats`](MultiSemaphore::stats) (refusals, waits and timeouts by dimension), [`head_shortfall`](MultiSemaphore::head_shortfall), [`waiters_blocked_behind_head`](MultiSemaphore::waiters_blocked_behind_head), [`available`](MultiSemaphore::available), [`in_flight`](MultiSemaphore::in_flight), [`waiters`](MultiSemaphore::waiters) |
//! | let the limits learn from what completions report | [`adaptive::Controller`]: each dimension follows its own algorithm ([`count_and_bytes`](adaptive::ControllerBuilder::count_and_bytes) for count and bytes), resized alone with [`set_capacity_of`](MultiSemaphore::set_capacity_of) |
//! | admit each request of a tower service by its weight (feature `tower`) | `tower::AdmitLayer`: wait (FIFO, optional timeout) or `.shed()`; `AdmitLayer::adaptive` reports each answer to a controller |
//! | bound the request bytes in flight of a hyper / axum server (feature `http`) | `http::layer(sem, default_bytes)`: the permit rides in the response body; refusals answer `413` / `503`; `http::adaptive_layer` learns both limits from the statuses |
//! | publish gauges, counters and a wait histogram (feature `metrics`) | `metrics::Exporter::record` (`Exporter::named` labels the dimensions with the semaphore's names; `Exporter::record_every` records on a thread of its own), `Exporter::wait_observer`, `Exporter::with_controller` (what the limits learned from) |
//!
//! # Cargo features
//!
//! All are off by default; the default build depends only on `parking_lot`
//! and `crossbeam-utils`.
//!
//! | feature | adds | on crates |
//! |---|---|---|
//! | `tower` | `tower`: a layer that takes each request's permit in `call`, waits or sheds, and holds it until the response is done; with an adaptive controller, reports each answer to it | `tower-service`, `tower-layer`, `pin-project-lite` |
//! | `http` | `http`: weighers by `Content-Length`, the permit carried in the response body, `413` / `503` + `Retry-After` answers, limits learnt from the statuses (implies `tower`) | `http`, `http-body` 1.x |
//! | `metrics` | `metrics`: an exporter of gauges and counters per dimension, a wait-time histogram and an adaptive controller's windows, on the `metrics` facade; zero cost on the fast path | `metrics` 0.24 |
//! | `futures` | `stream`: `Admit`, a `Stream` adaptor that yields each item with the permit of its weight, in order, pulling the next only once the current is admitted; `FusedFuture` for the acquire futures, for `futures::select!` without `.fuse()` | `futures-core` 0.3 (no default features) |
//!
//! # How it is checked
//!
//! loom models of every race named above (release against enqueue, grant
//! against cancel and timeout, close against enqueue, the head leaving,
//! resizing against acquires), proptest state machines against a sequential
//! model, concurrent property tests of exact accounting, and a soak test.

#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::undocumented_unsafe_blocks
)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod acquire;
pub mod adaptive;
mod builder;
mod counters;
mod dims;
mod error;
mod permit;
mod semaphore;
mod shortfall;
mod stats;
mod sync;
mod waiters;

#[cfg(feature = "futures")]
mod fused;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "futures")]
pub mod stream;
#[cfg(feature = "tower")]
pub mod tower;

pub use acquire::{Acquire, AcquireOwned, AcquireOwnedTimeout, AcquireTimeout};
pub use builder::Builder;

/// The core's types, for a glob import: `use multisem::prelude::*;`.
///
/// A glob of the crate root would also bring in its integration modules,
/// `tower`, `http` and `metrics`, whose names are those of the crates they
/// integrate with: next to `use tower::ServiceBuilder;` the compiler
/// would call `tower` ambiguous. The integrations' own types (`Admit`,
/// `Refused` in both `stream` and `tower`) are best named through their
/// module: `multisem::tower::Admit`, `multisem::stream::Admit`.
///
/// ```
/// use multisem::prelude::*;
/// use std::sync::Arc;
///
/// let sem: Arc<MultiSemaphore<2>> = Arc::new(MultiSemaphore::new([10, 1024]));
/// let permit: OwnedPermit<2> = sem.try_acquire_owned([1, 100]).unwrap();
/// assert!(matches!(sem.try_acquire([1, 2048]), Err(TryAcquireError::ExceedsCapacity { .. })));
/// # drop(permit);
/// ```
pub mod prelude {
    pub use crate::{
        Acquire, AcquireError, AcquireOwned, AcquireOwnedTimeout, AcquireTimeout, Builder,
        CapacityError, DimNames, DimSet, Drained, MultiSemaphore, OwnedPermit, Permit,
        ReleaseError, Stats, TryAcquireError,
    };
}
pub use dims::{DimNames, DimSet, DimSetIter};
pub use error::{AcquireError, CapacityError, ReleaseError, TryAcquireError};
pub use permit::{OwnedPermit, Permit};
pub use semaphore::MultiSemaphore;
pub use semaphore::drain::Drained;
pub use stats::Stats;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
