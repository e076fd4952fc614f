//! Weighing an HTTP request by its body's size.

use crate::tower::Weigh;
use http_body::Body;

/// Weighs an HTTP request `[1, bytes]`: one request, and its body's size
/// from the `Content-Length` header, else the body's exact
/// [`size_hint`](Body::size_hint), else the configured default (a chunked
/// upload of unknown length). A `Content-Length` that is not a number
/// counts as absent; one too large for a `u64` weighs `u64::MAX`, so it is
/// refused as too large (`413`), never admitted at the default (on a
/// semaphore that clamps oversized requests it is admitted alone, at the
/// whole capacity, as any oversized request is). hyper refuses both before
/// a service sees them; other servers may not.
///
/// The weight is what the request *declares*: a client may send more than
/// it declared without a `Content-Length`. To hold it to its weight, bound
/// the body's length as well (for example with `http_body_util::Limited`,
/// or tower-http's `RequestBodyLimitLayer`, at the default).
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{Empty, Full};
/// use multisem::http::RequestBytes;
/// use multisem::tower::Weigh;
///
/// let weigh = RequestBytes::new(64 * 1024);
/// let sized = http::Request::new(Full::new(Bytes::from(vec![0; 100])));
/// assert_eq!(weigh.weigh(&sized), [1, 100]);
/// let declared = http::Request::builder()
///     .header(http::header::CONTENT_LENGTH, "5000")
///     .body(Empty::<Bytes>::new())
///     .unwrap();
/// assert_eq!(weigh.weigh(&declared), [1, 5000]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBytes {
    default: u64,
}

impl RequestBytes {
    /// A weigher that counts a body of unknown length as `default` bytes.
    ///
    /// ```
    /// let weigh = multisem::http::RequestBytes::new(1 << 20);
    /// # let _ = weigh;
    /// ```
    pub fn new(default: u64) -> Self {
        Self { default }
    }

    /// The declared size of `request`'s body, as [`weigh`](Weigh::weigh)
    /// counts it: for a weigher with more dimensions than `[1, bytes]`.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use multisem::http::RequestBytes;
    ///
    /// let req = http::Request::new(Full::new(Bytes::from("hello")));
    /// let bytes = RequestBytes::new(0).bytes(&req);
    /// let weight = [1, bytes, bytes.div_ceil(4096)]; // requests, bytes, pages
    /// assert_eq!(weight, [1, 5, 1]);
    /// ```
    pub fn bytes<B: Body>(&self, request: &http::Request<B>) -> u64 {
        request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(declared_length)
            .or_else(|| request.body().size_hint().exact())
            .unwrap_or(self.default)
    }
}

impl<B: Body> Weigh<http::Request<B>, 2> for RequestBytes {
    fn weigh(&self, request: &http::Request<B>) -> [u64; 2] {
        [1, self.bytes(request)]
    }
}

/// A `Content-Length` value as a number of bytes: `None` if it is not a
/// number, `u64::MAX` for one past it (it declares more than any capacity).
fn declared_length(value: &http::HeaderValue) -> Option<u64> {
    match value.to_str().ok()?.trim().parse::<u64>() {
        Ok(length) => Some(length),
        Err(err) if *err.kind() == std::num::IntErrorKind::PosOverflow => Some(u64::MAX),
        Err(_) => None,
    }
}
