//! What the tiered layout's granted permits hold, per dimension, and the
//! most they have held at once: its peaks.
//!
//! The single-word layout reads what is in flight off its one word at the
//! instant of a take. The tiered layout cannot: its tiers are read one after
//! the other, and a split take holds a part of the reserve for a moment
//! before it commits or gives it back, so `capacity - front - reserve` would
//! count such a part as in flight though no permit ever held it. So with
//! peak tracking on it counts what permits hold: raised after each grant,
//! lowered before each return (or forget). Never above what granted permits
//! hold, and exact once the grants and returns in progress are done.

use crate::sync::{AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

#[derive(Debug)]
pub(crate) struct Held<const N: usize> {
    /// Written by every take and return: away from the front word and the
    /// reserve, which other cores write.
    in_flight: CachePadded<[AtomicU64; N]>,
    peak: [AtomicU64; N],
}

impl<const N: usize> Held<N> {
    pub(super) fn new() -> Self {
        Self {
            in_flight: CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))),
            peak: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// After a grant of `amounts`: raises what is held, and the peaks.
    pub(super) fn granted(&self, amounts: &[u64; N]) {
        for d in (0..N).filter(|&d| amounts[d] != 0) {
            // Relaxed: a statistic. A permit is counted by the thread that
            // took it before it can be handed on, so its return, which
            // happens after, never lowers a count that did not include it.
            let now = self.in_flight[d].fetch_add(amounts[d], Ordering::Relaxed) + amounts[d];
            if now > self.peak[d].load(Ordering::Relaxed) {
                self.peak[d].fetch_max(now, Ordering::Relaxed);
            }
        }
    }

    /// Before a return (or forget) of `amounts`: lowers what is held.
    pub(super) fn returned(&self, amounts: &[u64; N]) {
        for d in (0..N).filter(|&d| amounts[d] != 0) {
            // Relaxed: as in `granted`.
            self.in_flight[d].fetch_sub(amounts[d], Ordering::Relaxed);
        }
    }

    /// What is held, per dimension, read without a lock: never above what
    /// granted permits hold, exact once the grants and returns under way
    /// are done; each dimension read on its own.
    pub(super) fn in_flight(&self) -> [u64; N] {
        // Relaxed: a statistic, as in `granted`.
        std::array::from_fn(|d| self.in_flight[d].load(Ordering::Relaxed))
    }

    /// The most held at once, per dimension.
    pub(super) fn peaks(&self) -> [u64; N] {
        // Relaxed: a statistic.
        std::array::from_fn(|d| self.peak[d].load(Ordering::Relaxed))
    }
}
