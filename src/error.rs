//! Error types: one enum per family of operations.

use crate::dims::{DimNames, DimSet, Labels};
use std::fmt;

/// Why [`try_acquire`](crate::MultiSemaphore::try_acquire) (or its owned twin)
/// took nothing.
///
/// Whatever the variant, no permit is held once the call has returned.
///
/// `Display` names the kind, the dimension (by its
/// [name](crate::Builder::names), if the semaphore has names) and the
/// numbers:
///
/// ```
/// use multisem::MultiSemaphore;
///
/// let sem = MultiSemaphore::builder([10, 1024]).names(&["messages", "bytes"]).build();
/// let held = sem.try_acquire([1, 1000]).unwrap();
/// assert_eq!(
///     sem.try_acquire([1, 100]).unwrap_err().to_string(),
///     "insufficient permits in bytes: requested 100, available 24"
/// );
/// assert_eq!(
///     sem.try_acquire([1, 4096]).unwrap_err().to_string(),
///     "request exceeds capacity in bytes: requested 4096, capacity 1024"
/// );
/// # drop(held);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TryAcquireError {
    /// The request does not fit now; a later attempt may succeed.
    ///
    /// Either dimensions lacked permits (`queued_ahead` is `false`, and
    /// `short` names every one of them, but see `short` on the tiered
    /// layout), or the request would have fit what
    /// is available but acquirers queued ahead of it come first, as they
    /// always do (`queued_ahead` is `true`, and `short` names the dimensions
    /// the oldest of them lacks).
    #[non_exhaustive]
    Insufficient {
        /// The first dimension in `short`.
        dim: usize,
        /// The amount asked for in that dimension.
        requested: u64,
        /// What [`available`](crate::MultiSemaphore::available) showed in
        /// that dimension at the time.
        available: u64,
        /// Whether the request was refused only because others are queued
        /// ahead of it.
        queued_ahead: bool,
        /// Every dimension that was short (see above). In the tiered layout
        /// (capacities too large for one word), a refusal while nobody is
        /// queued names only `dim`, the dimension that refused it: finding
        /// the others at one instant would take the lock, which such a
        /// refusal never takes.
        short: DimSet,
        /// The semaphore's dimension names, if it has any.
        names: DimNames,
    },
    /// The request is larger than dimension `dim`'s capacity: it can never
    /// succeed while the capacity stays as it is.
    #[non_exhaustive]
    ExceedsCapacity {
        /// The first dimension whose capacity is too small.
        dim: usize,
        /// The amount asked for in that dimension.
        requested: u64,
        /// That dimension's capacity.
        capacity: u64,
        /// The semaphore's dimension names, if it has any.
        names: DimNames,
    },
    /// The semaphore was [closed](crate::MultiSemaphore::close).
    Closed,
}

/// Why a waiting acquire ([`acquire_blocking`](crate::MultiSemaphore::acquire_blocking),
/// `acquire_blocking_timeout`, `acquire_blocking_deadline`, `acquire` and their owned
/// twins) took nothing.
///
/// Whatever the variant, no permit is held once the call has returned.
/// Which dimension held a timed-out request back is counted in
/// [`Stats::timed_out_by`](crate::Stats::timed_out_by).
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AcquireError {
    /// The deadline passed before the request could be granted.
    Timeout,
    /// The request is larger than dimension `dim`'s capacity, so it was never
    /// queued. Also returned to a queued acquirer when a resize
    /// ([`set_capacity`](crate::MultiSemaphore::set_capacity),
    /// [`set_capacity_of`](crate::MultiSemaphore::set_capacity_of), an
    /// adaptive controller's) or [`Permit::forget`](crate::Permit::forget)
    /// shrinks that dimension below its request.
    #[non_exhaustive]
    ExceedsCapacity {
        /// The first dimension whose capacity is too small.
        dim: usize,
        /// The amount asked for in that dimension.
        requested: u64,
        /// That dimension's capacity.
        capacity: u64,
        /// The semaphore's dimension names, if it has any.
        names: DimNames,
    },
    /// The semaphore was [closed](crate::MultiSemaphore::close) before the
    /// request was granted.
    Closed,
}

/// Why [`add_permits`](crate::MultiSemaphore::add_permits),
/// [`set_capacity`](crate::MultiSemaphore::set_capacity) or
/// [`set_capacity_of`](crate::MultiSemaphore::set_capacity_of) changed
/// nothing.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CapacityError {
    /// Dimension `dim` would pass its
    /// [`max_capacity`](crate::MultiSemaphore::max_capacity).
    #[non_exhaustive]
    Overflow {
        /// The first dimension that would overflow.
        dim: usize,
        /// The capacity that was asked for in that dimension (saturated at
        /// `u64::MAX` where the sum itself overflows).
        requested: u64,
        /// The most that dimension can hold.
        max: u64,
        /// The semaphore's dimension names, if it has any.
        names: DimNames,
    },
}

/// By hand: dimensions show their names, where the semaphore has some.
impl fmt::Debug for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Overflow {
                dim,
                requested,
                max,
                names,
            } => debug_dim(
                f,
                "Overflow",
                (dim, names),
                [("requested", requested), ("max", max)],
            ),
        }
    }
}

/// Why [`Permit::release`](crate::Permit::release) (or
/// [`OwnedPermit::release`](crate::OwnedPermit::release)) gave nothing back.
///
/// The permit is unchanged: it still holds everything it held before.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The permit holds less than `requested` in dimension `dim`.
    #[non_exhaustive]
    ExceedsHeld {
        /// The first dimension where the permit holds too little.
        dim: usize,
        /// The amount asked to release in that dimension.
        requested: u64,
        /// What the permit holds in that dimension.
        held: u64,
        /// The semaphore's dimension names, if it has any.
        names: DimNames,
    },
}

/// By hand: dimensions show their names, where the semaphore has some.
impl fmt::Debug for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ExceedsHeld {
                dim,
                requested,
                held,
                names,
            } => debug_dim(
                f,
                "ExceedsHeld",
                (dim, names),
                [("requested", requested), ("held", held)],
            ),
        }
    }
}

impl TryAcquireError {
    /// `ExceedsCapacity` for `dim`.
    pub(crate) fn exceeds(dim: usize, requested: u64, capacity: u64, names: DimNames) -> Self {
        Self::ExceedsCapacity {
            dim,
            requested,
            capacity,
            names,
        }
    }

    /// Whether this is an [`Insufficient`](Self::Insufficient) refusal
    /// because acquirers are queued ahead, though the request would have
    /// fit what is available.
    pub fn is_queued_ahead(&self) -> bool {
        matches!(
            self,
            Self::Insufficient {
                queued_ahead: true,
                ..
            }
        )
    }

    /// Whether this is [`TryAcquireError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
    }

    /// Whether this is [`TryAcquireError::Insufficient`]: retrying later may succeed.
    pub fn is_insufficient(&self) -> bool {
        matches!(self, Self::Insufficient { .. })
    }

    /// Whether this is [`TryAcquireError::ExceedsCapacity`]: retrying
    /// cannot succeed until the capacity grows.
    pub fn is_exceeds_capacity(&self) -> bool {
        matches!(self, Self::ExceedsCapacity { .. })
    }

    /// The dimension the error names (`Insufficient`, `ExceedsCapacity`),
    /// or `None` for `Closed`.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([10, 1024]);
    /// assert_eq!(sem.try_acquire([1, 2048]).unwrap_err().dim(), Some(1));
    /// sem.close();
    /// assert_eq!(sem.try_acquire([1, 1]).unwrap_err().dim(), None);
    /// ```
    pub fn dim(&self) -> Option<usize> {
        match *self {
            Self::Insufficient { dim, .. } | Self::ExceedsCapacity { dim, .. } => Some(dim),
            Self::Closed => None,
        }
    }
}

impl AcquireError {
    /// `ExceedsCapacity` for `dim`.
    pub(crate) fn exceeds(dim: usize, requested: u64, capacity: u64, names: DimNames) -> Self {
        Self::ExceedsCapacity {
            dim,
            requested,
            capacity,
            names,
        }
    }

    /// Whether this is [`AcquireError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
    }

    /// Whether this is [`AcquireError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout)
    }

    /// Whether this is [`AcquireError::ExceedsCapacity`].
    pub fn is_exceeds_capacity(&self) -> bool {
        matches!(self, Self::ExceedsCapacity { .. })
    }

    /// The dimension the error names (`ExceedsCapacity`), or `None`. For
    /// the dimension that held a timed-out request back, see
    /// [`Stats::timed_out_by`](crate::Stats::timed_out_by), or
    /// [`AcquireTimeout::short_at_timeout`](crate::AcquireTimeout::short_at_timeout)
    /// on an async acquire with a timeout.
    pub fn dim(&self) -> Option<usize> {
        match *self {
            Self::ExceedsCapacity { dim, .. } => Some(dim),
            Self::Timeout | Self::Closed => None,
        }
    }
}

const CLOSED_MESSAGE: &str = "semaphore closed";

fn exceeds(
    f: &mut fmt::Formatter<'_>,
    (dim, requested, capacity, names): (usize, u64, u64, DimNames),
) -> fmt::Result {
    write!(
        f,
        "request exceeds capacity in {}: requested {requested}, capacity {capacity}",
        names.label(dim)
    )
}

fn debug_exceeds(
    f: &mut fmt::Formatter<'_>,
    (dim, requested, capacity, names): (usize, u64, u64, DimNames),
) -> fmt::Result {
    let fields = [("requested", requested), ("capacity", capacity)];
    debug_dim(f, "ExceedsCapacity", (dim, names), fields)
}

/// An error variant about one dimension in `Debug` output: the dimension
/// with its name, where the semaphore has one, then `fields`.
fn debug_dim(
    f: &mut fmt::Formatter<'_>,
    variant: &str,
    (dim, names): (usize, DimNames),
    fields: [(&str, u64); 2],
) -> fmt::Result {
    let mut out = f.debug_struct(variant);
    out.field("dim", &names.label(dim));
    for (name, value) in fields {
        out.field(name, &value);
    }
    out.finish()
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Insufficient {
                dim,
                requested,
                available,
                queued_ahead,
                short,
                names,
            } => {
                if queued_ahead {
                    write!(
                        f,
                        "others are queued ahead, the first waiting for {} ({available} available); this request asks {requested} of it",
                        names.label(dim)
                    )?;
                } else {
                    write!(
                        f,
                        "insufficient permits in {}: requested {requested}, available {available}",
                        names.label(dim)
                    )?;
                }
                let mut more = short.iter().filter(|&d| d != dim).peekable();
                if more.peek().is_some() {
                    f.write_str(" (also short: ")?;
                    for (i, d) in more.enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{}", names.label(d))?;
                    }
                    f.write_str(")")?;
                }
                Ok(())
            }
            Self::ExceedsCapacity {
                dim,
                requested,
                capacity,
                names,
            } => exceeds(f, (dim, requested, capacity, names)),
            Self::Closed => f.write_str(CLOSED_MESSAGE),
        }
    }
}

/// By hand: dimensions show their names, where the semaphore has some.
impl fmt::Debug for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Insufficient {
                dim,
                requested,
                available,
                queued_ahead,
                short,
                names,
            } => f
                .debug_struct("Insufficient")
                .field("dim", &names.label(dim))
                .field("requested", &requested)
                .field("available", &available)
                .field("queued_ahead", &queued_ahead)
                .field("short", &Labels(short, names))
                .finish(),
            Self::ExceedsCapacity {
                dim,
                requested,
                capacity,
                names,
            } => debug_exceeds(f, (dim, requested, capacity, names)),
            Self::Closed => f.write_str("Closed"),
        }
    }
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Timeout => f.write_str("timed out waiting for permits"),
            Self::ExceedsCapacity {
                dim,
                requested,
                capacity,
                names,
            } => exceeds(f, (dim, requested, capacity, names)),
            Self::Closed => f.write_str(CLOSED_MESSAGE),
        }
    }
}

/// By hand: dimensions show their names, where the semaphore has some.
impl fmt::Debug for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Timeout => f.write_str("Timeout"),
            Self::ExceedsCapacity {
                dim,
                requested,
                capacity,
                names,
            } => debug_exceeds(f, (dim, requested, capacity, names)),
            Self::Closed => f.write_str("Closed"),
        }
    }
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Overflow {
                dim,
                requested,
                max,
                names,
            } => write!(
                f,
                "capacity of {} would pass its maximum: requested {requested}, max {max}",
                names.label(dim)
            ),
        }
    }
}

impl std::error::Error for TryAcquireError {}
impl std::error::Error for AcquireError {}
impl std::error::Error for CapacityError {}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ExceedsHeld {
                dim,
                requested,
                held,
                names,
            } => write!(
                f,
                "{}: asked to release {requested}, the permit holds {held}",
                names.label(dim)
            ),
        }
    }
}

impl std::error::Error for ReleaseError {}
