//! The trait every limit algorithm implements, and how two combine.

use super::window::Window;

/// One dimension as the controller sees it when a window closes.
///
/// ```
/// use multisem::adaptive::{Algorithm, Dimension, Window};
///
/// /// Grows the limit only while the dimension is in use.
/// struct Creep;
///
/// impl Algorithm for Creep {
///     fn update(&mut self, _: &Window, dim: &Dimension) -> u64 {
///         if dim.peak_in_flight * 2 >= dim.limit { dim.limit + 1 } else { dim.limit }
///     }
/// }
/// # let _ = Creep;
/// ```
///
/// [`Dimension::default()`] (dimension 0, every figure zero) plus the
/// fields set by hand makes one for a test of an algorithm on its own:
///
/// ```
/// use multisem::adaptive::{Algorithm, Dimension, Gradient2, Window};
/// use std::time::Duration;
///
/// let mut dim = Dimension::default();
/// (dim.limit, dim.peak_in_flight, dim.min, dim.max) = (100, 100, 1, 1000);
/// let mut window = Window::default();
/// (window.successes, window.mean_rtt) = (50, Duration::from_millis(10));
///
/// // The first window sets the long-term round-trip time; a steady one grows the limit.
/// let mut gradient = Gradient2::default();
/// assert!(gradient.update(&window, &dim) > 100);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Dimension {
    /// Which dimension of the semaphore.
    pub index: usize,
    /// The limit the controller last set: the capacity in force, unless
    /// something else resized this dimension since (the window's new limit
    /// replaces that too).
    pub limit: u64,
    /// The most seen in flight in this dimension at a completion during the
    /// window: a limit well above it is not what holds the caller back.
    pub peak_in_flight: u64,
    /// The lowest limit the controller will set.
    pub min: u64,
    /// The highest limit the controller will set.
    pub max: u64,
}

/// A rule that proposes a dimension's next limit from a window of
/// completions. The controller clamps what it returns into the dimension's
/// bounds, so an algorithm need not.
///
/// Algorithms start from [`Dimension::limit`], the limit in force, so that
/// two combined with [`Min`] (or a limit clamped by its bounds) stay in step;
/// but while one of a `Min`'s two probes, the other is shown the limit from
/// before the probe (see [`before_probe`](Self::before_probe)).
///
/// The built-in algorithms compute in `f64`. Above 2^53 (8 Pi units) an
/// `f64` cannot hold every integer: there a window that holds keeps the
/// limit exactly, but a step smaller than the `f64`'s spacing (`Aimd`'s one
/// unit, say) is lost, so such a limit grows only by larger steps.
///
/// ```
/// use multisem::MultiSemaphore;
/// use multisem::adaptive::{Algorithm, Controller, Dimension, Window};
/// use std::sync::Arc;
///
/// /// Halves the limit on any drop, else adds one.
/// struct Halve;
///
/// impl Algorithm for Halve {
///     fn update(&mut self, window: &Window, dim: &Dimension) -> u64 {
///         if window.drops > 0 { dim.limit / 2 } else { dim.limit + 1 }
///     }
/// }
///
/// let sem = Arc::new(MultiSemaphore::new([8, 1 << 20]));
/// let ctl = Controller::builder(sem).limit(0, 1..=64, Halve).build();
/// # drop(ctl);
/// ```
pub trait Algorithm: Send + 'static {
    /// The next limit for `dim`, given what completed in `window`.
    ///
    /// It runs in the completion that closes the window, under the
    /// controller's lock. If it panics, the panic reaches that completion's
    /// caller; the window is spent all the same (it counts in
    /// [`windows`](super::Controller::windows), and no algorithm is shown
    /// its samples again) and no dimension is resized for it.
    ///
    /// Keep it quick: arithmetic on the window, no I/O, no blocking. While
    /// it runs, every other completion that finds the next window due waits
    /// for the lock (in whatever thread dropped its permit: a runtime's
    /// worker, for the tower layer's reports), and so do
    /// [`limits`](super::Controller::limits), [`set_bounds`](super::Controller::set_bounds)
    /// and the exporter. A budget that takes a call to learn (a lease from
    /// a cluster-wide service) belongs on a thread of its own, which
    /// hands it over with `set_bounds`.
    fn update(&mut self, window: &Window, dim: &Dimension) -> u64;

    /// While this algorithm probes, the limit in force when its probe
    /// began; `None` (the default) otherwise.
    ///
    /// A probe is a limit lowered on purpose for a few windows, to be
    /// raised again whatever they show ([`BandwidthDelay`](super::BandwidthDelay)
    /// halves its product for one to a few windows, to drain the queue
    /// and measure the round trip without it). [`Min`] shows its other
    /// algorithm this limit instead of the probe's, so that the other does
    /// not take the probe for a limit it must regrow from: an [`Aimd`](super::Aimd)
    /// would regrow one step a window (but never above the other's own last
    /// limit: see [`proposed`](Self::proposed)).
    fn before_probe(&self) -> Option<u64> {
        None
    }

    /// The limit this algorithm's last [`update`](Self::update) returned,
    /// where it keeps it; `None` (the default) otherwise.
    ///
    /// While its partner in a [`Min`] probes, this algorithm is shown the
    /// limit from before the probe, but never more than this: one that
    /// backs off through the probe (an [`Aimd`](super::Aimd) seeing drops)
    /// goes on from its own limit, and its back-offs compound, rather than
    /// starting again from the limit before the probe every window. The
    /// algorithms of this module keep it (a `Min`, where both its sides
    /// do); one that does not is shown the limit from before the probe.
    fn proposed(&self) -> Option<u64> {
        None
    }
}

impl<A: Algorithm + ?Sized> Algorithm for Box<A> {
    fn update(&mut self, window: &Window, dim: &Dimension) -> u64 {
        (**self).update(window, dim)
    }

    fn before_probe(&self) -> Option<u64> {
        (**self).before_probe()
    }

    fn proposed(&self) -> Option<u64> {
        (**self).proposed()
    }
}

/// The smaller of two algorithms' limits; both see every window.
///
/// While one of them probes (see [`Algorithm::before_probe`]), the other
/// is shown the limit in force before the probe, not the probe's: it
/// neither follows the probe down nor regrows from it once the probe ends.
/// But never more than its own last limit ([`Algorithm::proposed`]): one
/// that backs off through the probe goes on from where it backed off to.
///
/// ```
/// use multisem::adaptive::{Aimd, Gradient2, Min};
///
/// // Latency-driven, with a drop-driven back-off as a safety net.
/// let count = Min(Aimd::default(), Gradient2::default());
/// # let _ = count;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Min<A, B>(pub A, pub B);

impl<A: Algorithm, B: Algorithm> Algorithm for Min<A, B> {
    fn update(&mut self, window: &Window, dim: &Dimension) -> u64 {
        // Asked before either updates: a probe's limit was in force through
        // this window if it was under way when the window began.
        let for_a = past_probe(dim, self.1.before_probe(), self.0.proposed());
        let for_b = past_probe(dim, self.0.before_probe(), self.1.proposed());
        let a = self.0.update(window, &for_a);
        let b = self.1.update(window, &for_b);
        a.min(b)
    }

    fn proposed(&self) -> Option<u64> {
        Some(self.0.proposed()?.min(self.1.proposed()?))
    }

    fn before_probe(&self) -> Option<u64> {
        match (self.0.before_probe(), self.1.before_probe()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// `dim` as the partner of an algorithm that probes sees it: with the limit
/// in force before the probe, but not above the partner's own last one
/// (`own`, where it keeps it), and never a lower one than now.
fn past_probe(dim: &Dimension, before_probe: Option<u64>, own: Option<u64>) -> Dimension {
    match before_probe {
        Some(before) => Dimension {
            limit: own.map_or(before, |own| own.min(before)).max(dim.limit),
            ..*dim
        },
        None => *dim,
    }
}

/// An estimate kept in floating point between windows, so that steps
/// smaller than one unit add up; re-based on the limit in force whenever
/// something else (a partner in [`Min`], the bounds) moved it.
///
/// Above 2^53 an `f64` cannot hold every integer: the limit in force reads
/// rounded, and a step smaller than the `f64`'s spacing there is lost. A
/// value that the `f64` cannot tell from the one [`current`](Self::current)
/// answered (a window that holds, or such a step) keeps the limit in force
/// exactly, rather than its rounding: no limit moves without a signal.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Estimate {
    /// The last value set, and the limit it gave.
    kept: Option<(f64, u64)>,
    /// What `current` last answered, and the limit in force it was asked
    /// with.
    read: (f64, u64),
}

impl Estimate {
    /// The estimate, or the limit in force if they no longer agree.
    pub(crate) fn current(&mut self, limit: u64) -> f64 {
        let value = match self.kept {
            Some((value, kept)) if kept == limit => value,
            _ => limit as f64,
        };
        self.read = (value, limit);
        value
    }

    /// The limit the last value set gave, if one was set.
    pub(crate) fn proposed(&self) -> Option<u64> {
        self.kept.map(|(_, limit)| limit)
    }

    /// Keeps `value` and returns it as a limit (rounded down, saturating).
    pub(crate) fn set(&mut self, value: f64) -> u64 {
        // NaN is no estimate (0); +inf saturates as a huge finite value does.
        let value = if value.is_nan() {
            0.0
        } else {
            value.clamp(0.0, u64::MAX as f64)
        };
        let (read, in_force) = self.read;
        let limit = if value == read {
            in_force
        } else {
            // `as` saturates at u64::MAX for huge floats.
            value.floor() as u64
        };
        self.kept = Some((value, limit));
        limit
    }
}
