//! Expected errors for `assert_eq!` against real ones: shared by the
//! integration tests (`tests/common`) and the loom models (`loom-tests/support.rs`).

/// The numbers of an error variant, for `assert_eq!` against a real error
/// (whose variants are `#[non_exhaustive]`, so tests cannot build them):
/// equal when the variant and these fields match, whatever else the error
/// carries (which dimensions were short, names).
macro_rules! expected_error {
    ($(#[$doc:meta])* $name:ident: $error:ident::$variant:ident { $($field:ident: $ty:ty),* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            $(pub $field: $ty),*
        }

        impl PartialEq<$name> for multisem::$error {
            fn eq(&self, want: &$name) -> bool {
                matches!(*self, multisem::$error::$variant { $($field,)* .. } if $($field == want.$field)&&*)
            }
        }

        impl PartialEq<multisem::$error> for $name {
            fn eq(&self, got: &multisem::$error) -> bool {
                got == self
            }
        }
    };
}

expected_error!(
    /// `TryAcquireError::Insufficient`'s numbers.
    Insufficient: TryAcquireError::Insufficient { dim: usize, requested: u64, available: u64 }
);
expected_error!(
    /// `TryAcquireError::ExceedsCapacity`'s numbers.
    TryExceeds: TryAcquireError::ExceedsCapacity { dim: usize, requested: u64, capacity: u64 }
);
expected_error!(
    /// `AcquireError::ExceedsCapacity`'s numbers.
    Exceeds: AcquireError::ExceedsCapacity { dim: usize, requested: u64, capacity: u64 }
);
expected_error!(
    /// `CapacityError::Overflow`'s numbers.
    Overflow: CapacityError::Overflow { dim: usize, requested: u64, max: u64 }
);
