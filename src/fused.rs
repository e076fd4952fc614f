//! `FusedFuture` for the acquire futures (feature `futures`), so that they
//! can be raced in `futures::select!` without `.fuse()`: each reports
//! itself terminated once it returned `Ready` (a grant, a refusal, or a
//! timeout), after which polling it again would panic.

use crate::adaptive::{TrackedAcquire, TrackedAcquireTimeout};
use crate::{Acquire, AcquireOwned, AcquireOwnedTimeout, AcquireTimeout};
use futures_core::future::FusedFuture;
use std::future::Future;

impl<const N: usize> FusedFuture for Acquire<'_, N> {
    fn is_terminated(&self) -> bool {
        Acquire::is_terminated(self)
    }
}

impl<const N: usize> FusedFuture for AcquireOwned<N> {
    fn is_terminated(&self) -> bool {
        AcquireOwned::is_terminated(self)
    }
}

impl<const N: usize, T: Future + ?Sized> FusedFuture for AcquireTimeout<'_, N, T> {
    fn is_terminated(&self) -> bool {
        AcquireTimeout::is_terminated(self)
    }
}

impl<const N: usize, T: Future + ?Sized> FusedFuture for AcquireOwnedTimeout<N, T> {
    fn is_terminated(&self) -> bool {
        AcquireOwnedTimeout::is_terminated(self)
    }
}

impl<const N: usize> FusedFuture for TrackedAcquire<N> {
    fn is_terminated(&self) -> bool {
        TrackedAcquire::is_terminated(self)
    }
}

impl<const N: usize, T: Future + ?Sized> FusedFuture for TrackedAcquireTimeout<N, T> {
    fn is_terminated(&self) -> bool {
        TrackedAcquireTimeout::is_terminated(self)
    }
}
