#![cfg(loom)]
//! loom models of `multisem`: every interleaving of two or three threads, within
//! a preemption bound, on capacities of 1-2 per dimension and two dimensions,
//! for the packed layout and twice for the tiered one: with every permit in
//! the reserve behind the front word, and with capacities split between the
//! two (see `support::Layout`).
//!
//! They are a crate of their own, `multisem-loom` (a workspace member that a
//! plain `cargo test` leaves out), so that this build compiles `multisem` and
//! loom alone, none of the root's dev-dependencies. Run them with
//!
//! ```text
//! RUSTFLAGS="--cfg loom -C debug-assertions" LOOM_MAX_PREEMPTIONS=2 \
//!     CARGO_TARGET_DIR=target/loom cargo test --release -p multisem-loom -- --nocapture
//! ```
//!
//! Each model prints how many executions loom explored. A failing model is a
//! library bug, or a loom false alarm (see "SeqCst" below). `LOOM_LOG=trace`
//! (with `LOOM_LOCATION=1`) prints every step of the failing execution; run
//! one model with `-- --exact NAME`.
//!
//! - [`nonblocking`]: racing `try_acquire`s, rollback against release and
//!   against another take,
//!   `split`/`merge`/`forget` against `try_acquire`, `close` against `try_acquire`.
//! - [`waiting`]: release against enqueue, grant against cancel, a head waiter
//!   leaving, close against enqueue, a granted future dropped, FIFO order,
//!   a rollback against enqueue (both dimension orders, and one forced by a
//!   take that wins the second dimension), a waiter seen in
//!   `waiters()` not overtaken, a cancel on another thread, close waking
//!   every waiter, a waker that re-enters the semaphore.
//! - [`drain`]: a drain waiter (async and blocking) against `close` and the
//!   last returns, and one leaving while they race.
//! - [`clamp`]: a clamped request at the head racing `set_capacity` (shrink
//!   and growth) and the release it waits for.
//! - [`grow`]: `try_grow` racing a partial `release` and an enqueue.
//! - [`resize`]: `add_permits`, `set_capacity` and `forget` against acquires,
//!   releases and queued waiters; a shrink below what is in flight, whose
//!   debt holds back every grant (checked against the new capacity); a take
//!   that gave its reserve part back and is then refused by a shrink still
//!   serving the queue; `set_capacity_of` by two owners of two dimensions at
//!   once (neither undone), and shrinking one dimension against a release
//!   and queued waiters; the adaptive controller's resize (`set_bounds`),
//!   whose grants are handed back and woken after its lock is released.
//! - [`adaptive`]: the adaptive controller's completions on two threads,
//!   summed apart and taken together by whichever closes the window.
//! - [`stats`]: the statistics kept off the fast path (amounts granted, waits
//!   and timeouts by dimension, `in_flight`) against racing grants, timeouts
//!   and fast takes.
//!
//! loom has no clock, so a timeout is modelled by polling an async acquire once
//! and dropping it: the library sends a passed deadline down the same cancel path.
//! The timed methods still appear (with a far deadline) to cover their grant path.
//!
//! # SeqCst
//!
//! loom treats `SeqCst` loads and read-modify-writes as `AcqRel` (its README,
//! "Unsupported features"); only `fence(SeqCst)` is modelled fully. A
//! store-buffer handshake across two atomics (one side writes `A` then reads
//! `B`, the other writes `B` then reads `A`) that relies on `SeqCst` accesses
//! alone is correct in C11 but fails here as a lost wakeup. Such a handshake
//! needs a `fence(SeqCst)` on each side, at least under `cfg(loom)`, for these
//! models to check it.
//!
//! A model that can fail leaves what it holds across a blocking point in a
//! `support::Defuse`, so that loom's deadlock report is not turned into an
//! abort of the whole binary by destructors that run while unwinding.

mod adaptive;
mod clamp;
mod drain;
mod grow;
mod nonblocking;
mod resize;
mod snapshots;
mod stats;
mod support;
mod waiting;
