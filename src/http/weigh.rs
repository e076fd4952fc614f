//! Weighing an HTTP request by its body's size.

use crate::tower::Weigh;
use http_body::Body;

/// Weighs an HTTP request `[1, bytes]`: one request, and its body's size
/// from the `Content-Length` header, else the body's exact
/// [`size_hint`](Body::size_hint), else the configured default (a chunked
/// upload of unknown length). A `Content-Length` that is not a number
/// (RFC 9110 allows digits only: no sign, no hexadecimal) counts as absent;
/// one too large for a `u64` weighs `u64::MAX`, so it is refused as too
/// large (`413`), never admitted at the default (on a semaphore that clamps
/// oversized requests it is admitted alone, at the whole capacity, as any
/// oversized request is). A request that declares several lengths (the
/// header repeated, or a list such as `42, 42`) weighs the largest (one
/// among them that is not a number weighs as an absent one would): a
/// server that frames its body by another one reads no more than that, so
/// it is never admitted below what it sends. hyper refuses lengths that
/// are not numbers, too large or that differ before a service sees them;
/// other servers may not.
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
        let undeclared = || request.body().size_hint().exact().unwrap_or(self.default);
        match declared_lengths(request.headers()) {
            (Some(largest), false) => largest,
            // One unreadable length counts as absent (weighed as a body of
            // no declared length), but not the readable ones beside it.
            (Some(largest), true) => largest.max(undeclared()),
            (None, _) => undeclared(),
        }
    }
}

impl<B: Body> Weigh<http::Request<B>, 2> for RequestBytes {
    fn weigh(&self, request: &http::Request<B>) -> [u64; 2] {
        [1, self.bytes(request)]
    }
}

/// The largest length the `Content-Length` headers declare (`None` if
/// none is readable; `u64::MAX` for one past it, which declares more than
/// any capacity), and whether any of them is not a number.
fn declared_lengths(headers: &http::HeaderMap) -> (Option<u64>, bool) {
    let mut largest = None;
    let mut unreadable = false;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        let Ok(value) = value.to_str() else {
            unreadable = true;
            continue;
        };
        // A list is allowed where its lengths agree (RFC 9110, 8.6).
        for element in value.split(',') {
            match decimal(element.trim_matches([' ', '\t'])) {
                Some(length) => largest = largest.max(Some(length)),
                None => unreadable = true,
            }
        }
    }
    (largest, unreadable)
}

/// `digits` as a number: `None` unless it is one or more ASCII digits,
/// `u64::MAX` where it is past that.
fn decimal(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits alone fail to parse only past `u64::MAX`.
    Some(digits.parse().unwrap_or(u64::MAX))
}
