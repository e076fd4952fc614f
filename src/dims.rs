//! Naming dimensions in errors: a set of dimensions, and the optional names
//! a semaphore was built with.

use std::fmt;

/// A set of a semaphore's dimensions (a semaphore has at most 64), as
/// [`TryAcquireError::Insufficient`](crate::TryAcquireError::Insufficient)
/// names every dimension that was short.
///
/// ```
/// use multisem::{MultiSemaphore, TryAcquireError};
///
/// let sem = MultiSemaphore::new([2, 100, 10]);
/// let _held = sem.try_acquire([2, 0, 10]).unwrap();
/// let err = sem.try_acquire([1, 1, 1]).unwrap_err();
/// let TryAcquireError::Insufficient { short, .. } = err else { unreachable!() };
/// assert_eq!(short.iter().collect::<Vec<_>>(), [0, 2]);
/// assert!(short.contains(2) && !short.contains(1));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DimSet(u64);

impl DimSet {
    /// Bit `d` set: dimension `d` is in the set.
    pub(crate) const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The set of one dimension.
    pub(crate) const fn one(dim: usize) -> Self {
        Self(1 << dim)
    }

    /// The set with `dim` added.
    pub(crate) const fn with(self, dim: usize) -> Self {
        Self(self.0 | 1 << dim)
    }

    /// Whether dimension `dim` is in the set.
    pub fn contains(self, dim: usize) -> bool {
        dim < 64 && self.0 & (1 << dim) != 0
    }

    /// How many dimensions are in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The dimensions in the set, in increasing order (as `for d in set`
    /// walks them).
    pub fn iter(self) -> DimSetIter {
        DimSetIter(self.0)
    }
}

impl IntoIterator for DimSet {
    type Item = usize;
    type IntoIter = DimSetIter;

    /// ```
    /// # use multisem::{MultiSemaphore, TryAcquireError};
    /// # let sem = MultiSemaphore::new([2, 100, 10]);
    /// # let _held = sem.try_acquire([2, 0, 10]).unwrap();
    /// # let TryAcquireError::Insufficient { short, .. } = sem.try_acquire([1, 1, 1]).unwrap_err()
    /// # else { unreachable!() };
    /// for dim in short {
    ///     assert!(dim == 0 || dim == 2);
    /// }
    /// ```
    fn into_iter(self) -> DimSetIter {
        self.iter()
    }
}

/// The dimensions of a [`DimSet`], in increasing order: from
/// [`DimSet::iter`], or a `for` loop over the set.
#[derive(Debug, Clone)]
pub struct DimSetIter(u64);

impl Iterator for DimSetIter {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let dim = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1; // clears the lowest bit, `dim`'s
        Some(dim)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.0.count_ones() as usize;
        (len, Some(len))
    }
}

impl ExactSizeIterator for DimSetIter {}

impl std::iter::FusedIterator for DimSetIter {}

impl fmt::Debug for DimSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The names of a semaphore's dimensions, if it was built with some (see
/// [`Builder::names`](crate::Builder::names)); errors carry them so that
/// `Display` and `Debug` say "bytes" rather than "dimension 1".
///
/// ```
/// use multisem::{MultiSemaphore, TryAcquireError};
///
/// let sem = MultiSemaphore::builder([10, 1024]).names(&["messages", "bytes"]).build();
/// let err = sem.try_acquire([1, 4096]).unwrap_err();
/// let TryAcquireError::ExceedsCapacity { dim, names, .. } = err else { unreachable!() };
/// assert_eq!(names.get(dim), Some("bytes"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DimNames(Option<&'static [&'static str]>);

impl DimNames {
    pub(crate) const fn new(names: Option<&'static [&'static str]>) -> Self {
        Self(names)
    }

    /// The name of dimension `dim`, if the semaphore has names. An empty
    /// name is none: messages write that dimension `dimension {dim}`, and
    /// the metrics exporter labels it by its index.
    pub fn get(self, dim: usize) -> Option<&'static str> {
        self.0
            .and_then(|names| names.get(dim).copied())
            .filter(|name| !name.is_empty())
    }

    /// Every dimension's name, as the builder was given them.
    #[cfg(feature = "http")]
    pub(crate) fn all(self) -> Option<&'static [&'static str]> {
        self.0
    }

    /// How dimension `dim` is written in messages: its name, or
    /// `dimension {dim}`.
    pub(crate) fn label(self, dim: usize) -> Label {
        Label { dim, names: self }
    }
}

impl fmt::Debug for DimNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(names) => f.debug_list().entries(names).finish(),
            None => f.write_str("None"),
        }
    }
}

/// A dimension as messages write it; see [`DimNames::label`].
#[derive(Clone, Copy)]
pub(crate) struct Label {
    dim: usize,
    names: DimNames,
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.names.get(self.dim) {
            Some(name) => f.write_str(name),
            None => write!(f, "dimension {}", self.dim),
        }
    }
}

/// In `Debug` output: the index, with the name where there is one.
impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.names.get(self.dim) {
            Some(name) => write!(f, "{} ({name:?})", self.dim),
            None => write!(f, "{}", self.dim),
        }
    }
}

/// A [`DimSet`] in `Debug` output, with names where there are some.
pub(crate) struct Labels(pub(crate) DimSet, pub(crate) DimNames);

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.0.iter().map(|d| self.1.label(d)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::DimSet;

    #[test]
    fn a_set_walks_every_bit_it_holds_up_to_the_64th() {
        let all = DimSet::from_bits(u64::MAX);
        assert!(all.iter().eq(0..64));
        assert_eq!(all.iter().len(), 64);
        let ends = DimSet::from_bits(1 | 1 << 63);
        assert_eq!(ends.into_iter().collect::<Vec<_>>(), [0, 63]);
        assert_eq!(DimSet::one(63).iter().next(), Some(63));
    }
}
