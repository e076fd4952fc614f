#![cfg(loom)]
//! loom models of `multisem`: every interleaving of two or three threads, within
//! a preemption bound, on capacities of 1-2 per dimension and two dimensions,
//! for both internal layouts (one packed word and one atomic per dimension).
//!
//! Run them with
//!
//! ```text
//! RUSTFLAGS="--cfg loom -C debug-assertions" LOOM_MAX_PREEMPTIONS=2 \
//!     CARGO_TARGET_DIR=target/loom cargo test --release --test loom -- --nocapture
//! ```
//!
//! Each model prints how many executions loom explored. A failing model is a
//! library bug; `LOOM_LOG=trace` and `LOOM_CHECKPOINT_FILE` (see loom's docs)
//! replay the failing interleaving.
//!
//! - [`nonblocking`]: racing `try_acquire`s, rollback against release,
//!   `split`/`merge`/`forget` against `try_acquire`, `close` against `try_acquire`.
//! - [`waiting`]: release against enqueue, grant against cancel, a head waiter
//!   leaving, close against enqueue, a granted future dropped, FIFO order.
//! - [`resize`]: `add_permits` and `set_capacity` against acquires, releases and
//!   queued waiters.
//!
//! loom has no clock, so a timeout is modelled by polling an async acquire once
//! and dropping it: the library sends a passed deadline down the same cancel path.

mod nonblocking;
mod resize;
mod support;
mod waiting;
