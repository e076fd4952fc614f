//! Why the layer refused a request: one error type per reason, so a tower
//! stack can tell them apart by downcasting its `BoxError`.

use std::fmt;
use std::time::Duration;

/// Writes a dimension as the user named it, or by its index.
fn dimension(f: &mut fmt::Formatter<'_>, dim: usize, name: &str) -> fmt::Result {
    if name.is_empty() {
        write!(f, "dimension {dim}")
    } else {
        f.write_str(name)
    }
}

/// Shed mode refused the request at once: dimension `dim` lacked permits,
/// or the request would have fit but others are queued ahead of it
/// ([`is_queued_ahead`](Self::is_queued_ahead)), who come first.
///
/// The request was never passed to the inner service. Retrying later may
/// succeed; over HTTP this is a `503 Service Unavailable`.
///
/// ```
/// use multisem::MultiSemaphore;
/// use multisem::tower::{AdmitLayer, Shed};
/// use std::sync::Arc;
/// use tower::{service_fn, Layer, Service, ServiceExt};
///
/// # futures_executor::block_on(async {
/// let sem = Arc::new(MultiSemaphore::new([1, 1024]));
/// let layer = AdmitLayer::new(sem.clone(), |len: &usize| [1, *len as u64])
///     .names(&["requests", "bytes"])
///     .shed();
/// let mut svc = layer.layer(service_fn(|len: usize| async move { Ok::<_, std::convert::Infallible>(len) }));
/// let _held = sem.try_acquire([0, 1000]).unwrap();
/// let err = svc.ready().await.unwrap().call(100).await.unwrap_err();
/// let shed = err.downcast_ref::<Shed>().unwrap();
/// assert_eq!((shed.dim(), shed.name()), (1, "bytes"));
/// assert_eq!(shed.to_string(), "shed: bytes short, requested 100, available 24");
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shed {
    pub(crate) dim: usize,
    pub(crate) name: &'static str,
    pub(crate) requested: u64,
    pub(crate) available: u64,
    /// It would have fit, but others are queued ahead of it.
    pub(crate) queued_ahead: bool,
}

impl Shed {
    /// The first dimension that was short. Where the request would have fit
    /// but others were queued first (who come first), the first dimension
    /// it asks for, with an [`available`](Self::available) of 0.
    ///
    /// ```
    /// # use multisem::tower::Shed;
    /// fn short(err: &Shed) -> usize { err.dim() }
    /// # let _ = short;
    /// ```
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// That dimension's name, as given to [`AdmitLayer::names`](super::AdmitLayer::names)
    /// (empty if none was given).
    ///
    /// ```
    /// # use multisem::tower::Shed;
    /// fn short(err: &Shed) -> &'static str { err.name() }
    /// # let _ = short;
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The amount the request asked for in that dimension.
    ///
    /// ```
    /// # use multisem::tower::Shed;
    /// fn asked(err: &Shed) -> u64 { err.requested() }
    /// # let _ = asked;
    /// ```
    pub fn requested(&self) -> u64 {
        self.requested
    }

    /// What was free in that dimension when it was refused: 0 where the
    /// request would have fit but others were queued first (they come
    /// first).
    ///
    /// ```
    /// # use multisem::tower::Shed;
    /// fn free(err: &Shed) -> u64 { err.available() }
    /// # let _ = free;
    /// ```
    pub fn available(&self) -> u64 {
        self.available
    }

    /// Whether the request would have fit, but others were queued ahead of
    /// it (they come first): then nothing was short for it, and its message
    /// says so (as [`TryAcquireError::is_queued_ahead`](crate::TryAcquireError::is_queued_ahead)).
    ///
    /// ```
    /// # use multisem::tower::Shed;
    /// fn behind_others(err: &Shed) -> bool { err.is_queued_ahead() }
    /// # let _ = behind_others;
    /// ```
    pub fn is_queued_ahead(&self) -> bool {
        self.queued_ahead
    }
}

impl fmt::Display for Shed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("shed: ")?;
        if self.queued_ahead {
            write!(
                f,
                "others are queued ahead (they come first); this request asks {} of ",
                self.requested
            )?;
            return dimension(f, self.dim, self.name);
        }
        dimension(f, self.dim, self.name)?;
        write!(
            f,
            " short, requested {}, available {}",
            self.requested, self.available
        )
    }
}

impl std::error::Error for Shed {}

/// Wait mode gave up: the request waited its whole timeout without being
/// admitted.
///
/// The request was never passed to the inner service; over HTTP this is a
/// `503 Service Unavailable`. [`dim`](Self::dim) names the first dimension
/// that was short when the time ran out, if any was: with none, the request
/// was queued behind earlier ones that did not fit yet.
///
/// ```
/// use multisem::MultiSemaphore;
/// use multisem::tower::{AdmitLayer, TimedOut};
/// use std::{sync::Arc, time::Duration};
/// use tower::{service_fn, Layer, Service, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let sem = Arc::new(MultiSemaphore::new([1, 1024]));
/// let layer = AdmitLayer::new(sem.clone(), |_: &()| [1, 1])
///     .wait_timeout(Duration::from_millis(20), tokio::time::sleep);
/// let mut svc = layer.layer(service_fn(|()| async { Ok::<_, std::convert::Infallible>(()) }));
/// let _held = sem.try_acquire([1, 0]).unwrap();
/// let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
/// let timed_out = err.downcast_ref::<TimedOut>().unwrap();
/// assert_eq!(timed_out.dim(), Some(0));
/// assert!(timed_out.waited() >= Duration::from_millis(20));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimedOut {
    pub(crate) dim: Option<usize>,
    pub(crate) name: &'static str,
    pub(crate) waited: Duration,
}

impl TimedOut {
    /// The first dimension that was short when the time ran out; `None`
    /// when every dimension would have fit but earlier requests were ahead.
    ///
    /// ```
    /// # use multisem::tower::TimedOut;
    /// fn short(err: &TimedOut) -> Option<usize> { err.dim() }
    /// # let _ = short;
    /// ```
    pub fn dim(&self) -> Option<usize> {
        self.dim
    }

    /// That dimension's name, as given to [`AdmitLayer::names`](super::AdmitLayer::names)
    /// (empty if none was given or no dimension was short).
    ///
    /// ```
    /// # use multisem::tower::TimedOut;
    /// fn short(err: &TimedOut) -> &'static str { err.name() }
    /// # let _ = short;
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How long the request waited.
    ///
    /// ```
    /// # use multisem::tower::TimedOut;
    /// fn waited(err: &TimedOut) -> std::time::Duration { err.waited() }
    /// # let _ = waited;
    /// ```
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {:?} waiting for ", self.waited)?;
        match self.dim {
            Some(dim) => dimension(f, dim, self.name),
            None => f.write_str("earlier requests"),
        }
    }
}

impl std::error::Error for TimedOut {}

/// The request is larger than dimension `dim`'s whole capacity: it can never
/// be admitted. Refused without waiting, in either mode, when it arrives
/// so; a request already waiting that a shrink leaves too large ends with
/// it too ([`Waited::TooLarge`](super::Waited::TooLarge)).
///
/// Over HTTP ([`http::refusal_response`](crate::http::refusal_response)
/// and the `http` layers) this is a `413 Payload Too Large`, whichever
/// dimension it is: the request does not fit the capacity in force, and
/// retrying it helps only where that capacity grows back (a limit lowered
/// live); but against a capacity of 0 that may grow again (a dimension
/// resized to nothing, which admits no request that asks any of it,
/// however small), and the request within its `max_capacity`, a `503
/// Service Unavailable`.
///
/// ```
/// use multisem::MultiSemaphore;
/// use multisem::tower::{AdmitLayer, TooLarge};
/// use std::sync::Arc;
/// use tower::{service_fn, Layer, Service, ServiceExt};
///
/// # futures_executor::block_on(async {
/// let sem = Arc::new(MultiSemaphore::new([8, 1024]));
/// let layer = AdmitLayer::new(sem, |len: &u64| [1, *len]).names(&["requests", "bytes"]);
/// let mut svc = layer.layer(service_fn(|_: u64| async { Ok::<_, std::convert::Infallible>(()) }));
/// let err = svc.ready().await.unwrap().call(4096).await.unwrap_err();
/// let too_large = err.downcast_ref::<TooLarge>().unwrap();
/// assert_eq!((too_large.name(), too_large.requested(), too_large.capacity()), ("bytes", 4096, 1024));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TooLarge {
    pub(crate) dim: usize,
    pub(crate) name: &'static str,
    pub(crate) requested: u64,
    pub(crate) capacity: u64,
    pub(crate) max_capacity: u64,
}

impl TooLarge {
    /// The first dimension whose capacity is below the request.
    ///
    /// ```
    /// # use multisem::tower::TooLarge;
    /// fn short(err: &TooLarge) -> usize { err.dim() }
    /// # let _ = short;
    /// ```
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// That dimension's name, as given to [`AdmitLayer::names`](super::AdmitLayer::names)
    /// (empty if none was given).
    ///
    /// ```
    /// # use multisem::tower::TooLarge;
    /// fn short(err: &TooLarge) -> &'static str { err.name() }
    /// # let _ = short;
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The amount the request asked for in that dimension.
    ///
    /// ```
    /// # use multisem::tower::TooLarge;
    /// fn asked(err: &TooLarge) -> u64 { err.requested() }
    /// # let _ = asked;
    /// ```
    pub fn requested(&self) -> u64 {
        self.requested
    }

    /// That dimension's capacity.
    ///
    /// ```
    /// # use multisem::tower::TooLarge;
    /// fn most(err: &TooLarge) -> u64 { err.capacity() }
    /// # let _ = most;
    /// ```
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// How far that dimension's capacity can grow
    /// ([`MultiSemaphore::max_capacity`](crate::MultiSemaphore::max_capacity)):
    /// a request above it can never fit (over HTTP a `413`, where a
    /// dimension resized to 0 for a while answers `503`).
    ///
    /// ```
    /// # use multisem::tower::TooLarge;
    /// fn for_good(err: &TooLarge) -> bool { err.max_capacity() < err.requested() }
    /// # let _ = for_good;
    /// ```
    pub fn max_capacity(&self) -> u64 {
        self.max_capacity
    }
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("too large: ")?;
        dimension(f, self.dim, self.name)?;
        write!(
            f,
            " requested {}, capacity {}",
            self.requested, self.capacity
        )
    }
}

impl std::error::Error for TooLarge {}

/// The semaphore was [closed](crate::MultiSemaphore::close) before the
/// request was admitted: the service is shutting down.
///
/// ```
/// use multisem::MultiSemaphore;
/// use multisem::tower::{AdmitLayer, Closed};
/// use std::sync::Arc;
/// use tower::{service_fn, Layer, Service, ServiceExt};
///
/// # futures_executor::block_on(async {
/// let sem = Arc::new(MultiSemaphore::new([8]));
/// let mut svc = AdmitLayer::new(sem.clone(), |_: &()| [1])
///     .layer(service_fn(|()| async { Ok::<_, std::convert::Infallible>(()) }));
/// sem.close();
/// let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
/// assert!(err.is::<Closed>());
/// # });
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Closed(());

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("semaphore closed")
    }
}

impl std::error::Error for Closed {}

/// Any of the layer's refusals, for code that answers them (such as
/// [`http::refusal_response`](crate::http::refusal_response) with the `http`
/// feature) without caring about the inner service's errors.
///
/// ```
/// use multisem::tower::Refused;
///
/// fn retry_later(err: &(dyn std::error::Error + 'static)) -> bool {
///     matches!(Refused::find(err), Some(Refused::Shed(_) | Refused::TimedOut(_)))
/// }
/// # let _ = retry_later;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refused {
    /// See [`Shed`].
    Shed(Shed),
    /// See [`TimedOut`].
    TimedOut(TimedOut),
    /// See [`TooLarge`].
    TooLarge(TooLarge),
    /// See [`Closed`].
    Closed(Closed),
}

impl Refused {
    /// The refusal behind `err`, if it is one of the layer's: looks at `err`
    /// and its [`source`](std::error::Error::source) chain, so it also finds
    /// a refusal wrapped by an outer layer, and inside a [`std::io::Error`]
    /// (whose `source` is its payload's source, which skips the payload).
    ///
    /// ```
    /// use multisem::tower::{Closed, Refused};
    ///
    /// let err: Box<dyn std::error::Error + Send + Sync> = Box::new(Refused::Closed(Closed::default()).clone());
    /// assert!(matches!(Refused::find(&*err), Some(Refused::Closed(_))));
    /// let io = std::io::Error::other(Closed::default());
    /// assert!(matches!(Refused::find(&io), Some(Refused::Closed(_))));
    /// ```
    pub fn find(err: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let mut next = Some(err);
        while let Some(err) = next {
            if let Some(found) = Self::downcast(err) {
                return Some(found);
            }
            next = match err.downcast_ref::<std::io::Error>() {
                Some(io) => io.get_ref().map(|payload| payload as _),
                None => err.source(),
            };
        }
        None
    }

    fn downcast(err: &(dyn std::error::Error + 'static)) -> Option<Self> {
        if let Some(err) = err.downcast_ref::<Self>() {
            return Some(err.clone());
        }
        if let Some(err) = err.downcast_ref::<Shed>() {
            return Some(Self::Shed(err.clone()));
        }
        if let Some(err) = err.downcast_ref::<TimedOut>() {
            return Some(Self::TimedOut(err.clone()));
        }
        if let Some(err) = err.downcast_ref::<TooLarge>() {
            return Some(Self::TooLarge(err.clone()));
        }
        err.downcast_ref::<Closed>()
            .map(|err| Self::Closed(err.clone()))
    }

    /// Boxes the specific error type (not this enum), as the layer's
    /// service returns it.
    pub(crate) fn boxed(self) -> super::BoxError {
        match self {
            Self::Shed(err) => Box::new(err),
            Self::TimedOut(err) => Box::new(err),
            Self::TooLarge(err) => Box::new(err),
            Self::Closed(err) => Box::new(err),
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shed(err) => err.fmt(f),
            Self::TimedOut(err) => err.fmt(f),
            Self::TooLarge(err) => err.fmt(f),
            Self::Closed(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for Refused {}
