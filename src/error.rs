//! Error types: one enum per family of operations.

use std::fmt;

/// Why [`try_acquire`](crate::MultiSemaphore::try_acquire) (or its owned twin)
/// took nothing.
///
/// Whatever the variant, no permit is held once the call has returned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryAcquireError {
    /// Dimension `dim` lacks permits now; a later attempt may succeed.
    ///
    /// While other acquirers are queued, their demand comes first: then
    /// `available` is what a newcomer may take, which can be 0 even where the
    /// counters alone would fit.
    Insufficient {
        /// The first dimension that was short.
        dim: usize,
        /// The amount asked for in that dimension.
        requested: u64,
        /// What a newcomer could take in that dimension at the time.
        available: u64,
    },
    /// The request is larger than dimension `dim`'s capacity: it can never
    /// succeed while the capacity stays as it is.
    ExceedsCapacity {
        /// The first dimension whose capacity is too small.
        dim: usize,
        /// The amount asked for in that dimension.
        requested: u64,
        /// That dimension's capacity.
        capacity: u64,
    },
    /// The semaphore was [closed](crate::MultiSemaphore::close).
    Closed,
}

/// Why a waiting acquire ([`acquire_blocking`](crate::MultiSemaphore::acquire_blocking),
/// `acquire_blocking_timeout`, `acquire_blocking_deadline`, `acquire` and their owned
/// twins) took nothing.
///
/// Whatever the variant, no permit is held once the call has returned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcquireError {
    /// The deadline passed before the request could be granted.
    Timeout,
    /// The request is larger than dimension `dim`'s capacity, so it was never
    /// queued. Also returned to a queued acquirer when
    /// [`set_capacity`](crate::MultiSemaphore::set_capacity) or
    /// [`Permit::forget`](crate::Permit::forget) shrinks that dimension below
    /// its request.
    ExceedsCapacity {
        /// The first dimension whose capacity is too small.
        dim: usize,
        /// The amount asked for in that dimension.
        requested: u64,
        /// That dimension's capacity.
        capacity: u64,
    },
    /// The semaphore was [closed](crate::MultiSemaphore::close) before the
    /// request was granted.
    Closed,
}

/// Why [`add_permits`](crate::MultiSemaphore::add_permits) or
/// [`set_capacity`](crate::MultiSemaphore::set_capacity) changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CapacityError {
    /// Dimension `dim` would pass its
    /// [`max_capacity`](crate::MultiSemaphore::max_capacity).
    Overflow {
        /// The first dimension that would overflow.
        dim: usize,
        /// The capacity that was asked for in that dimension (saturated at
        /// `u64::MAX` where the sum itself overflows).
        requested: u64,
        /// The most that dimension can hold.
        max: u64,
    },
}

/// Why [`Permit::release`](crate::Permit::release) (or
/// [`OwnedPermit::release`](crate::OwnedPermit::release)) gave nothing back.
///
/// The permit is unchanged: it still holds everything it held before.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The permit holds less than `requested` in dimension `dim`.
    ExceedsHeld {
        /// The first dimension where the permit holds too little.
        dim: usize,
        /// The amount asked to release in that dimension.
        requested: u64,
        /// What the permit holds in that dimension.
        held: u64,
    },
}

impl TryAcquireError {
    /// Whether this is [`TryAcquireError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
    }

    /// Whether this is [`TryAcquireError::Insufficient`]: retrying later may succeed.
    pub fn is_insufficient(&self) -> bool {
        matches!(self, Self::Insufficient { .. })
    }
}

impl AcquireError {
    /// Whether this is [`AcquireError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
    }

    /// Whether this is [`AcquireError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout)
    }
}

const CLOSED_MESSAGE: &str = "semaphore closed";

fn exceeds(f: &mut fmt::Formatter<'_>, dim: usize, requested: u64, capacity: u64) -> fmt::Result {
    write!(
        f,
        "dimension {dim}: requested {requested}, capacity {capacity}"
    )
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Insufficient {
                dim,
                requested,
                available,
            } => write!(
                f,
                "dimension {dim}: requested {requested}, available {available}"
            ),
            Self::ExceedsCapacity {
                dim,
                requested,
                capacity,
            } => exceeds(f, dim, requested, capacity),
            Self::Closed => f.write_str(CLOSED_MESSAGE),
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
            } => exceeds(f, dim, requested, capacity),
            Self::Closed => f.write_str(CLOSED_MESSAGE),
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
            } => write!(
                f,
                "dimension {dim}: capacity {requested} would pass the maximum {max}"
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
            } => write!(
                f,
                "dimension {dim}: asked to release {requested}, the permit holds {held}"
            ),
        }
    }
}

impl std::error::Error for ReleaseError {}
