//! A response body that holds the request's permit until its last frame.

use crate::OwnedPermit;
use crate::tower::Report;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

pin_project! {
    /// A response body `B` carrying the request's permit `P` (an
    /// [`OwnedPermit`](crate::OwnedPermit)): the permit is returned once the
    /// body has yielded its last frame, yielded an error, or been dropped
    /// (the client disconnected mid-body). A refusal's body is empty and
    /// holds nothing.
    ///
    /// The last frame yielded is not yet the last byte written: the
    /// server may still be sending it. A body of one frame (`Full`, a
    /// `String`) returns the permit as soon as the server takes that
    /// frame, however slow the client; stream a large body in frames to
    /// hold the permit while most of it is sent (hyper asks for the next
    /// frame only as its write buffer drains).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Full};
    /// use multisem::MultiSemaphore;
    /// use multisem::http::PermitBody;
    /// use std::sync::Arc;
    ///
    /// # futures_executor::block_on(async {
    /// let sem = Arc::new(MultiSemaphore::new([4, 1024]));
    /// let permit = sem.try_acquire_owned([1, 100]).unwrap();
    /// let body = PermitBody::new(Full::new(Bytes::from("hello")), permit);
    /// assert_eq!(sem.available(), [3, 924]);
    /// let bytes = body.collect().await.unwrap().to_bytes(); // sends the last frame
    /// assert_eq!(bytes, "hello");
    /// assert_eq!(sem.available(), [4, 1024]);
    /// # });
    /// ```
    pub struct PermitBody<B, P> {
        #[pin]
        body: Option<B>,
        permit: Option<P>,
    }
}

impl<B, P> PermitBody<B, P> {
    /// `body`, holding `permit` until it ends.
    ///
    /// ```
    /// use http_body_util::Empty;
    /// use multisem::MultiSemaphore;
    /// use multisem::http::PermitBody;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([1]));
    /// let body = PermitBody::new(Empty::<bytes::Bytes>::new(), sem.try_acquire_owned([1]).unwrap());
    /// assert!(body.permit().is_some());
    /// ```
    pub fn new(body: B, permit: P) -> Self {
        Self {
            body: Some(body),
            permit: Some(permit),
        }
    }

    /// An empty body holding nothing, as refusals answer with.
    ///
    /// ```
    /// use http_body::Body;
    /// use multisem::{OwnedPermit, http::PermitBody};
    ///
    /// let body = PermitBody::<http_body_util::Empty<bytes::Bytes>, OwnedPermit<2>>::empty();
    /// assert!(body.is_end_stream());
    /// ```
    pub fn empty() -> Self {
        Self {
            body: None,
            permit: None,
        }
    }

    /// The permit, while the body still holds it.
    ///
    /// ```
    /// use multisem::{OwnedPermit, http::PermitBody};
    ///
    /// let body = PermitBody::<http_body_util::Empty<bytes::Bytes>, OwnedPermit<2>>::empty();
    /// assert!(body.permit().is_none());
    /// ```
    pub fn permit(&self) -> Option<&P> {
        self.permit.as_ref()
    }
}

/// What a [`PermitBody`] carries: shown the trailers the body ends with,
/// if any, before it is dropped at the body's end. A permit ignores them; a
/// learning layer's [`Report`] has its outcome classified again
/// ([`Classify::classify_trailers`](crate::tower::Classify::classify_trailers)),
/// since gRPC sends its status there. Implement it (the method is
/// provided) to carry a type of your own.
///
/// ```
/// use http_body_util::Empty;
/// use multisem::http::{OnTrailers, PermitBody};
/// use multisem::{MultiSemaphore, OwnedPermit};
/// use std::{sync::Arc, time::Instant};
///
/// /// A permit, and when its request came in.
/// struct Timed {
///     _permit: OwnedPermit<2>,
///     since: Instant,
/// }
///
/// impl OnTrailers for Timed {
///     fn on_trailers(&mut self, trailers: &http::HeaderMap) {
///         println!("{:?} after {:?}", trailers.get("grpc-status"), self.since.elapsed());
///     }
/// }
///
/// let sem = Arc::new(MultiSemaphore::new([4, 1024]));
/// let permit = sem.try_acquire_owned([1, 10]).unwrap();
/// let held = Timed { _permit: permit, since: Instant::now() };
/// let body = PermitBody::new(Empty::<bytes::Bytes>::new(), held);
/// # drop(body);
/// ```
pub trait OnTrailers {
    /// Shown the body's `trailers`, before its end drops `self`.
    fn on_trailers(&mut self, trailers: &http::HeaderMap) {
        let _ = trailers;
    }
}

impl<const N: usize> OnTrailers for OwnedPermit<N> {}

impl<const N: usize> OnTrailers for Report<N> {
    fn on_trailers(&mut self, trailers: &http::HeaderMap) {
        self.reclassify(trailers);
    }
}

impl<B: Body, P: OnTrailers> Body for PermitBody<B, P> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let Some(mut body) = this.body.as_pin_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(body.as_mut().poll_frame(cx));
        if let (Some(Ok(frame)), Some(permit)) = (&frame, this.permit.as_mut()) {
            if let Some(trailers) = frame.trailers_ref() {
                permit.on_trailers(trailers);
            }
        }
        // The last frame (or the end, or an error) is out: the response no
        // longer needs its budget. A server may stop polling once
        // `is_end_stream` is true, so check it after every frame.
        let ended = match &frame {
            Some(Ok(_)) => body.is_end_stream(),
            None | Some(Err(_)) => true,
        };
        if ended {
            *this.permit = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl<B, P: std::fmt::Debug> std::fmt::Debug for PermitBody<B, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PermitBody")
            .field("permit", &self.permit)
            .field("empty", &self.body.is_none())
            .finish_non_exhaustive()
    }
}
