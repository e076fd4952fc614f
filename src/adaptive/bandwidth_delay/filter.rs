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

    pub(super) fn set_span(&mut self, span: usize) {
        self.span = span;
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

    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.samples.iter()
    }
}
