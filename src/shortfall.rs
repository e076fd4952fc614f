//! Why a request cannot be granted now, by dimension: for the statistics
//! and for the errors that say why.

/// What held a request back at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shortfall {
    /// The dimension the statistics count it under: the first in `short`.
    pub(crate) dim: usize,
    /// Every dimension in which the request itself was short (bit `d` for
    /// dimension `d`), or, where it was short nowhere, those the queue's head
    /// lacked.
    pub(crate) short: u64,
    /// The request would have fit what was available, but acquirers queued
    /// ahead of it come first.
    pub(crate) queued_ahead: bool,
}

impl Shortfall {
    /// Why `amounts` was not granted, given what was `available` and the
    /// request at the queue's head (which may be this very request).
    ///
    /// Where neither the request nor the head lacked anything (a return on
    /// its way to the lock, in a race), it names the first dimension the
    /// request asks for.
    pub(crate) fn of<const N: usize>(
        amounts: [u64; N],
        available: [u64; N],
        head: Option<[u64; N]>,
    ) -> Self {
        let lacking = |want: &[u64; N]| -> u64 {
            (0..N)
                .filter(|&d| want[d] > available[d])
                .fold(0, |set, d| set | 1 << d)
        };
        let own = lacking(&amounts);
        let (short, queued_ahead) = match head {
            _ if own != 0 => (own, false),
            Some(head) => match lacking(&head) {
                0 => (first_asked(&amounts), true),
                theirs => (theirs, true),
            },
            None => (first_asked(&amounts), false),
        };
        Self {
            dim: short.trailing_zeros() as usize,
            short,
            queued_ahead,
        }
    }
}

/// The set holding only the first dimension `amounts` asks for (dimension
/// 0 for an empty request).
fn first_asked<const N: usize>(amounts: &[u64; N]) -> u64 {
    1 << amounts.iter().position(|&a| a > 0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::Shortfall;

    fn of(amounts: [u64; 3], available: [u64; 3], head: Option<[u64; 3]>) -> (usize, u64, bool) {
        let s = Shortfall::of(amounts, available, head);
        (s.dim, s.short, s.queued_ahead)
    }

    #[test]
    fn names_every_dimension_the_request_lacks_first() {
        // Its own shortage wins over the head's.
        assert_eq!(of([5, 1, 9], [4, 1, 8], Some([0, 2, 0])), (0, 0b101, false));
        assert_eq!(of([0, 3, 9], [4, 1, 8], None), (1, 0b110, false));
    }

    #[test]
    fn names_what_the_head_lacks_when_the_request_fits() {
        assert_eq!(of([1, 1, 1], [4, 1, 8], Some([0, 2, 9])), (1, 0b110, true));
    }

    #[test]
    fn names_the_first_dimension_asked_for_when_nothing_lacks() {
        // Queued behind a head that fits too (it is being served), or in a
        // race with a return: the first dimension it asks for, skipping
        // those it asks nothing of.
        assert_eq!(of([0, 0, 2], [4, 1, 8], Some([1, 1, 1])), (2, 0b100, true));
        assert_eq!(of([0, 1, 2], [4, 1, 8], None), (1, 0b010, false));
        // An empty request: dimension 0.
        assert_eq!(of([0, 0, 0], [0, 0, 0], None), (0, 0b001, false));
    }
}
