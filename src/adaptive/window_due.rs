//! When the window being filled may close, readable without a lock: each
//! completion asks, and only one that finds the window due takes the
//! controller's lock to close it.

use std::time::{Duration, Instant};

use crate::sync::{AtomicU64, Ordering, now};

/// The first instant at which the window being filled may close (its start
/// plus the window's least duration), as a number one atomic holds.
pub(crate) struct WindowDue {
    /// The least a window lasts.
    min_window: Duration,
    /// The instant the numbers count from: the controller's build.
    epoch: Instant,
    /// Nanoseconds from `epoch`, plus 2^63 so that earlier instants (times
    /// a caller supplies may be) still order below later ones. 0 until
    /// the first completion, which starts the first window.
    at: AtomicU64,
}

/// `epoch` itself, as a number.
const EPOCH: u64 = 1 << 63;

impl WindowDue {
    pub(crate) fn new(min_window: Duration) -> Self {
        Self {
            min_window,
            epoch: now(),
            at: AtomicU64::new(0),
        }
    }

    /// The least a window lasts.
    pub(crate) fn min_window(&self) -> Duration {
        self.min_window
    }

    /// Whether the window may close at `now`: whether `now` is at least
    /// `min_window` past its start, as the controller's lock sees it, where
    /// a time before the start counts as the start itself. So a window of
    /// no length is due at any time, one before its start too.
    ///
    /// Relaxed: the figure only sends a completion to the controller's
    /// lock, where the window's start is read again. While completions'
    /// times are in order a stale figure is an earlier one, which sends a
    /// completion there for nothing; only a window started at an earlier
    /// time than the last (times out of order) can leave a completion
    /// reading a later figure, and then a later completion closes it.
    pub(crate) fn reached(&self, now: Instant) -> bool {
        self.min_window.is_zero() || self.number(now) >= self.at.load(Ordering::Relaxed)
    }

    /// The window now being filled started at `started`. Called under the
    /// controller's lock, so the last figure stored is the newest window's
    /// (Relaxed: see `reached`).
    pub(crate) fn set(&self, started: Instant) {
        let at = self.number(started).saturating_add(nanos(self.min_window));
        self.at.store(at, Ordering::Relaxed);
    }

    fn number(&self, instant: Instant) -> u64 {
        match instant.checked_duration_since(self.epoch) {
            Some(after) => EPOCH.saturating_add(nanos(after)),
            None => EPOCH.saturating_sub(nanos(self.epoch - instant)),
        }
    }
}

/// Whole nanoseconds, saturating (at 584 years).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_first_completion_finds_it_due_then_the_window_decides() {
        let due = WindowDue::new(Duration::from_millis(100));
        let start = Instant::now();
        // Before any window, every instant is due: the first completion
        // starts the first window.
        assert!(due.reached(start));
        due.set(start);
        assert!(!due.reached(start));
        assert!(!due.reached(start + Duration::from_millis(99)));
        assert!(due.reached(start + Duration::from_millis(100)));
    }

    #[test]
    fn a_window_of_no_length_is_due_at_any_time() {
        let due = WindowDue::new(Duration::ZERO);
        let start = Instant::now() + Duration::from_millis(5);
        due.set(start);
        assert!(due.reached(start));
        assert!(
            due.reached(start - Duration::from_millis(1)),
            "before its start"
        );
    }

    #[test]
    fn instants_before_the_build_keep_their_order() {
        let due = WindowDue::new(Duration::from_millis(4));
        let early = due.epoch - Duration::from_millis(10);
        due.set(early);
        assert!(!due.reached(early + Duration::from_millis(3)));
        assert!(due.reached(early + Duration::from_millis(4)));
        assert!(due.reached(due.epoch));
    }

    #[test]
    fn windows_beyond_the_clock_saturate_instead_of_wrapping() {
        let due = WindowDue::new(Duration::MAX);
        let start = due.epoch;
        due.set(start);
        let decade = Duration::from_secs(10 * 365 * 24 * 3600);
        assert!(!due.reached(start + decade));
    }
}
