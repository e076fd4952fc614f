//! The samples of the last few windows: what BBR's windowed maximum
//! (the bandwidth) and minimum (the base delay) are taken over.

use std::collections::VecDeque;

/// The most samples a filter reserves room for ahead (the preset's spans
/// are 20 and 400 windows): a longer span grows as it fills.
const RESERVED: usize = 1 << 16;

/// The samples of the last `span` windows that gave one (a window that
/// measured nothing pushes nothing, so it does not age the others).
#[derive(Debug, Clone)]
pub(super) struct Windowed<T> {
    samples: VecDeque<T>,
    span: usize,
}

impl<T: Copy> Windowed<T> {
    pub(super) fn new(span: usize) -> Self {
        Windowed {
            samples: VecDeque::new(),
            span,
        }
    }

    /// A span narrower than the samples held forgets the oldest at once,
    /// so the filter never holds more than its span.
    pub(super) fn set_span(&mut self, span: usize) {
        self.span = span;
        let excess = self.samples.len().saturating_sub(span);
        self.samples.drain(..excess);
    }

    /// Makes room for the whole span (up to `RESERVED`) at once, so that
    /// filling it later allocates nothing: a window that measures no delay
    /// pushes none, so the delays may fill long after the first window.
    pub(super) fn reserve(&mut self) {
        let room = self.span.min(RESERVED).saturating_sub(self.samples.len());
        self.samples.reserve_exact(room);
    }

    /// Appends `sample`, dropping the oldest first if the span is full: a
    /// filter never holds more than its span, so it never outgrows what
    /// [`reserve`](Self::reserve) made room for.
    pub(super) fn push(&mut self, sample: T) {
        if self.samples.len() >= self.span {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// Forgets every sample but `sample`.
    pub(super) fn restart(&mut self, sample: T) {
        self.samples.clear();
        self.samples.push_back(sample);
    }

    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.samples.iter()
    }
}

/// The deliveries of the last few windows, for a delivery rate taken over
/// enough of them that one large request more or less does not swing it:
/// in a 25 ms window a 64 MiB/s link delivers 1.6 MiB, so with 1 MiB
/// requests a window's own rate is one, two or three of them over 25 ms,
/// 40 to 120 MiB/s, and the maximum of such rates overstates the link
/// (BBR's rate samples span a round trip for the same reason).
#[derive(Debug, Clone)]
pub(super) struct Deliveries(
    /// Per window: what it delivered (bytes, or successes) and its length
    /// in seconds, the newest last.
    Windowed<(f64, f64)>,
);

impl Deliveries {
    pub(super) fn new(span: usize) -> Self {
        Deliveries(Windowed::new(span))
    }

    pub(super) fn set_span(&mut self, span: usize) {
        self.0.set_span(span);
    }

    pub(super) fn reserve(&mut self) {
        self.0.reserve();
    }

    /// Records a window that delivered `amount` over `secs`, and returns
    /// the rate over the newest windows that together delivered at least
    /// `enough` (over all of the last `span` if they did not).
    pub(super) fn rate(&mut self, amount: f64, secs: f64, enough: f64) -> f64 {
        self.0.push((amount, secs));
        let (mut delivered, mut elapsed) = (0.0, 0.0);
        for &(amount, secs) in self.0.iter().rev() {
            delivered += amount;
            elapsed += secs;
            if delivered >= enough {
                break;
            }
        }
        delivered / elapsed
    }

    /// Forgets every window but the newest.
    pub(super) fn restart(&mut self) {
        let newest = self.0.iter().next_back().copied();
        if let Some(newest) = newest {
            self.0.restart(newest);
        }
    }
}
