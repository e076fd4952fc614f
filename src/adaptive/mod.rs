//! Limits that learn: a [`Controller`] that sets a semaphore's capacity, in
//! every dimension, from what completed requests report.
//!
//! Adaptive concurrency limiters (Netflix's concurrency-limits, Envoy's
//! adaptive concurrency filter, Vector's ARC) adapt one number, the request
//! count. With mixed sizes that number means little: 64 requests in flight
//! may be 64 KiB or 64 MiB. Here each dimension has its own [`Algorithm`]:
//! the count follows the downstream's request bottleneck ([`Aimd`] on drops,
//! [`Gradient2`] on round-trip times), the bytes follow its byte bottleneck
//! ([`BandwidthDelay`]: delivered bytes per second times the uncongested
//! delay, times a gain).
//!
//! ```
//! use multisem::MultiSemaphore;
//! use multisem::adaptive::{Aimd, BandwidthDelay, Controller, Gradient2, Min, Outcome};
//! use std::sync::Arc;
//!
//! let sem = Arc::new(MultiSemaphore::new([16, 4 << 20]));
//! let ctl = Controller::builder(Arc::clone(&sem))
//!     .limit(0, 4..=1024, Min(Aimd::default(), Gradient2::default()))
//!     .limit(1, (2 << 20)..=(256 << 20), BandwidthDelay::default())
//!     .build();
//!
//! let permit = ctl.try_acquire([1, 4096]).unwrap();
//! // ... send the message; when the reply comes:
//! permit.complete(Outcome::delivered(4096));
//! assert_eq!(sem.available(), sem.capacity());
//! ```
//!
//! # How it works
//!
//! Acquire through the controller (or wrap a permit with
//! [`Controller::track`]): the [`TrackedPermit`] notes when it was granted.
//! When the request is done, [`complete`](TrackedPermit::complete) it with
//! an [`Outcome`]: a success (with the bytes delivered, which
//! [`BandwidthDelay`] needs), a drop (a timeout, a 429 or 503, a broker
//! "busy": the downstream was overloaded), or [`Outcome::Ignore`] (a failure
//! that says nothing about load). **A tracked permit dropped without an
//! outcome counts as `Ignore`**: its amounts go back, and no sample is taken.
//!
//! Samples gather in a window, each thread summing its own completions
//! apart (completions on many threads at once seldom meet on a lock). Once
//! a window is both long enough and holds enough samples
//! ([`ControllerBuilder::window`]), the completion that closes it takes
//! every thread's sums, asks each dimension's algorithm for a new limit,
//! clamps it into that dimension's bounds and resizes each dimension whose
//! capacity differs
//! ([`set_capacity_of`](crate::MultiSemaphore::set_capacity_of)): a window
//! never resizes a dimension without an algorithm, so its owner can set it
//! ([`Controller::set_bounds`] clamps it into new bounds, once). So resizes are rate-limited, and they never run on the acquire
//! path: an acquire through the controller is the semaphore's own acquire
//! plus a clock read and a reference to the controller. A completion adds a
//! clock read, its thread's sums and a read of what is in flight: in the
//! single-word layout [`in_flight`](crate::MultiSemaphore::in_flight),
//! without the lock, queued acquirers or not (it takes the lock only
//! while a shrink is being paid off, or where a resize races its read); in the
//! tiered layout its count of what permits hold, without the lock (under it with
//! [`track_peaks(false)`](crate::Builder::track_peaks), which keeps no
//! such count). Only a completion that finds the window due takes the
//! controller's lock.
//! A semaphore with no controller is untouched: the core does not know this
//! module exists.
//!
//! The shrink is exact: after a shrink below what is in flight, no new grant
//! is made until the amounts in flight fit the new capacity.
//!
//! The bounds can move while it runs ([`Controller::set_bounds`]): the
//! limit in force is clamped into them at once, so a budget set from
//! outside (a share of a cluster-wide lease, an operator's cap) bounds what
//! the controller learns.
//!
//! # Which algorithm
//!
//! | algorithm | signal | use it for |
//! |---|---|---|
//! | [`Aimd`] | drops | any dimension, as a safety net: backs off multiplicatively when the downstream sheds load |
//! | [`Gradient2`] | round-trip time, short term against long term | the request count, where latency grows with the number of requests queued |
//! | [`BandwidthDelay`] | delivered bytes per second and the uncongested delay | the bytes, where the downstream's bottleneck is a bandwidth |
//! | [`BandwidthDelay::per_request`] | requests per second and the uncongested delay (Little's law) | the request count, where the bottleneck is a number of workers |
//! | [`Min`] | the smaller of two | combining a drop-driven and a latency-driven limit |
//! | your own | anything in a [`Window`] | implement [`Algorithm`] |
//!
//! # Watching it
//!
//! [`Controller::limits`], [`windows`](Controller::windows),
//! [`resizes`](Controller::resizes) and
//! [`last_window`](Controller::last_window) say what it did and what it
//! last saw. With the `metrics` feature, `metrics::Exporter::with_controller`
//! publishes them beside the semaphore's own figures.
//!
//! Time is read with [`Instant::now`](std::time::Instant::now), or supplied by
//! the caller (the `*_at` methods), so that a simulation in virtual time can
//! drive the same code.
//!
//! The module is always compiled, not behind a cargo feature: it has no
//! dependency, the core does not import it, and none of it runs unless a
//! controller is built, so a feature would save only its compile time, and
//! would make every example and test that uses it name the feature.

mod aimd;
mod algorithm;
mod bandwidth_delay;
mod controller;
mod gradient;
pub mod preset;
mod stripes;
mod tracked;
mod tracked_acquire;
mod window;
mod window_due;

pub use aimd::Aimd;
pub use algorithm::{Algorithm, Dimension, Min};
pub use bandwidth_delay::BandwidthDelay;
pub use controller::{BoundsError, Controller, ControllerBuilder};
pub use gradient::Gradient2;
pub use tracked::{Outcome, TrackedPermit};
pub use tracked_acquire::{TrackedAcquire, TrackedAcquireTimeout};
pub use window::Window;
