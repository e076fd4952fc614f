//! Weighers: what a request costs in each dimension.

/// Computes the amounts a request takes in each of the `N` dimensions.
///
/// Any `Fn(&Request) -> [u64; N]` is a weigher; implement the trait for a
/// weigher with a name or configuration of its own (as the `http` feature's
/// [`RequestBytes`](crate::http::RequestBytes) does).
///
/// ```
/// use multisem::tower::Weigh;
///
/// /// One request, and its payload's length.
/// #[derive(Clone)]
/// struct Payload;
///
/// impl Weigh<Vec<u8>, 2> for Payload {
///     fn weigh(&self, request: &Vec<u8>) -> [u64; 2] {
///         [1, request.len() as u64]
///     }
/// }
/// assert_eq!(Payload.weigh(&vec![0; 10]), [1, 10]);
/// ```
pub trait Weigh<Request, const N: usize> {
    /// The amounts `request` takes in each dimension.
    fn weigh(&self, request: &Request) -> [u64; N];
}

impl<Request, F, const N: usize> Weigh<Request, N> for F
where
    F: Fn(&Request) -> [u64; N],
{
    fn weigh(&self, request: &Request) -> [u64; N] {
        self(request)
    }
}
