//! The tiered layout's reserve: one plain `AtomicU64` per dimension, holding
//! the permits that do not fit in the front word.
//!
//! No flags and no tally live here: the front word has them, and every take
//! and return of the tiered layout ends with a read-modify-write of the
//! front word, which orders it against waiters (see `tiered.rs`). So nothing
//! here decides alone whether a take goes through; it only takes or returns
//! its part.

use super::Short;
use crate::sync::{AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

#[derive(Debug)]
pub(crate) struct Reserve<const N: usize> {
    /// Away from the front word: in a steady state nothing writes these.
    words: CachePadded<[AtomicU64; N]>,
}

/// A take of the reserve that fell short in `short.dim`, having taken
/// `taken` already: the caller returns that, and then touches the front word.
pub(crate) struct Shortfall<const N: usize> {
    pub(crate) short: Short,
    pub(crate) taken: [u64; N],
}

impl<const N: usize> Reserve<N> {
    pub(super) fn new(initial: [u64; N]) -> Self {
        Self {
            words: CachePadded::new(initial.map(AtomicU64::new)),
        }
    }

    /// Takes every amount or reports the first dimension short. Checks all
    /// dimensions asked of before it takes any, so a request that cannot fit
    /// holds nothing even briefly; a race lost after that check leaves
    /// `taken` for the caller to give back.
    pub(super) fn take(&self, amounts: [u64; N]) -> Result<(), Shortfall<N>> {
        // Acquire: a waiter's look after setting `SLOW` sees the reserve as
        // the returns before it left it (see `tiered.rs`); otherwise a guess
        // that the CAS checks. Dimensions not asked of are not read.
        let seen: [u64; N] = std::array::from_fn(|d| match amounts[d] {
            0 => 0,
            _ => self.words[d].load(Ordering::Acquire),
        });
        if let Some(dim) = (0..N).find(|&d| seen[d] < amounts[d]) {
            return Err(Shortfall {
                short: Short {
                    dim,
                    available: seen[dim],
                },
                taken: [0; N],
            });
        }
        let mut taken = [0; N];
        for d in (0..N).filter(|&d| amounts[d] != 0) {
            let mut current = seen[d];
            loop {
                if current < amounts[d] {
                    return Err(Shortfall {
                        short: Short {
                            dim: d,
                            available: current,
                        },
                        taken,
                    });
                }
                // Acquire: pairs with the Release of the return that put
                // these permits here, so the last holder's writes are visible.
                match self.words[d].compare_exchange_weak(
                    current,
                    current - amounts[d],
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(actual) => current = actual,
                }
            }
            taken[d] = amounts[d];
        }
        Ok(())
    }

    /// Takes up to `wanted` in each dimension; returns what it took.
    pub(super) fn take_up_to(&self, wanted: [u64; N]) -> [u64; N] {
        std::array::from_fn(|d| {
            if wanted[d] == 0 {
                return 0;
            }
            // Acquire: as in `take`; returns the value it took from.
            let before = self.words[d]
                .fetch_update(Ordering::Acquire, Ordering::Relaxed, |have| {
                    Some(have - have.min(wanted[d]))
                })
                .unwrap_or_else(|have| have);
            before.min(wanted[d])
        })
    }

    /// Returns permits. The caller then touches the front word.
    pub(super) fn give(&self, amounts: [u64; N]) {
        for (word, &amount) in self.words.iter().zip(&amounts) {
            if amount != 0 {
                // Release: publishes the holder's writes to the next taker.
                // Never overflows: a dimension's permits, in flight or not,
                // stay below `MAX_PERMITS` (see `counters/mod.rs`).
                word.fetch_add(amount, Ordering::Release);
            }
        }
    }

    /// The latest value of each word, by a read-modify-write that changes
    /// nothing: for the lock holder's exact read (see `Tiered::load_locked`).
    pub(super) fn load_latest(&self) -> [u64; N] {
        // Relaxed: an RMW reads the latest value whatever its ordering; it
        // is only counted.
        std::array::from_fn(|d| self.words[d].fetch_add(0, Ordering::Relaxed))
    }
}
