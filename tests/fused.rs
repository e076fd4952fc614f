//! `FusedFuture` on the acquire futures (feature `futures`): each is
//! terminated exactly once it returned `Ready`, whatever the way out, and
//! so races in `futures::select!` without `.fuse()`.

use std::future::{pending, ready};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::FusedFuture;
use futures_util::{FutureExt, select};
use multisem::adaptive::{Aimd, Controller};
use multisem::{AcquireError, MultiSemaphore};

mod common;
use common::{Watchdog, poll_once};

#[test]
fn terminated_only_once_granted() {
    let sem = MultiSemaphore::new([2, 100]);
    let held = sem.try_acquire([2, 0]).unwrap();
    let mut acquire = pin!(sem.acquire([1, 10]));
    assert!(!acquire.is_terminated(), "not polled yet");
    assert!(poll_once(acquire.as_mut()).is_pending());
    assert!(!acquire.is_terminated(), "queued");
    drop(held);
    let permit = poll_once(acquire.as_mut()).map(Result::unwrap);
    assert!(permit.is_ready());
    assert!(acquire.is_terminated(), "granted");
}

#[test]
fn terminated_once_refused_or_closed() {
    let sem = Arc::new(MultiSemaphore::new([2, 100]));
    let mut too_large = pin!(sem.acquire_owned([3, 0]));
    assert!(matches!(
        poll_once(too_large.as_mut()),
        std::task::Poll::Ready(Err(AcquireError::ExceedsCapacity { dim: 0, .. }))
    ));
    assert!(too_large.is_terminated());

    let held = sem.try_acquire([2, 0]).unwrap();
    let mut closed_out = pin!(sem.acquire_owned([1, 0]));
    assert!(poll_once(closed_out.as_mut()).is_pending());
    sem.close();
    assert!(!closed_out.is_terminated(), "woken, not yet polled");
    assert!(matches!(
        poll_once(closed_out.as_mut()),
        std::task::Poll::Ready(Err(AcquireError::Closed))
    ));
    assert!(closed_out.is_terminated());
    drop(held);
}

#[test]
fn timed_futures_terminated_once_timed_out_or_granted() {
    let sem = Arc::new(MultiSemaphore::new([1, 100]));
    let held = sem.try_acquire([1, 0]).unwrap();

    let mut borrowed = pin!(sem.acquire([1, 0]).with_timeout(ready(())));
    assert!(!borrowed.is_terminated());
    assert!(matches!(
        poll_once(borrowed.as_mut()),
        std::task::Poll::Ready(Err(AcquireError::Timeout))
    ));
    assert!(borrowed.is_terminated(), "timed out");

    let mut owned = pin!(
        Arc::clone(&sem)
            .acquire_owned([1, 0])
            .with_timeout(pending::<()>())
    );
    assert!(poll_once(owned.as_mut()).is_pending());
    assert!(!owned.is_terminated());
    drop(held);
    assert!(matches!(
        poll_once(owned.as_mut()),
        std::task::Poll::Ready(Ok(_))
    ));
    assert!(owned.is_terminated(), "granted");
}

#[test]
fn tracked_futures_terminated_once_ready() {
    let sem = Arc::new(MultiSemaphore::new([1, 100]));
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 1..=1, Aimd::default())
        .build();
    let held = sem.try_acquire([1, 0]).unwrap();

    let mut tracked = pin!(ctl.acquire([1, 0]));
    assert!(poll_once(tracked.as_mut()).is_pending());
    assert!(!tracked.is_terminated());
    drop(held);
    let permit = match poll_once(tracked.as_mut()) {
        std::task::Poll::Ready(result) => result.unwrap(),
        std::task::Poll::Pending => panic!("the permit was returned"),
    };
    assert!(tracked.is_terminated());

    let mut timed = pin!(ctl.acquire([1, 0]).with_timeout(ready(())));
    assert!(!timed.is_terminated());
    assert!(matches!(
        poll_once(timed.as_mut()),
        std::task::Poll::Ready(Err(AcquireError::Timeout))
    ));
    assert!(timed.is_terminated());
    drop(permit);
}

/// The point of it: a loop that races an acquire against ticks with
/// `select!`, keeping the acquire across iterations, needs no `.fuse()`:
/// once granted, `select!` skips it (polling it again would panic).
#[test]
fn acquire_races_in_select_without_fuse() {
    let _watchdog = Watchdog::this_test(Duration::from_secs(30));
    let sem = Arc::new(MultiSemaphore::new([1, 100]));
    let mut held = Some(sem.try_acquire([1, 0]).unwrap());
    let mut acquire = sem.acquire_owned([1, 50]);
    let mut granted = Vec::new();
    futures_executor::block_on(async {
        // `select!` picks at random among ready branches: go on until three
        // ticks after the grant (about 2^-97 to pass 100 without it).
        let mut after_grant = 0;
        for tick in 0..100 {
            if !granted.is_empty() {
                after_grant += 1;
                if after_grant > 3 {
                    break;
                }
            }
            let mut ticked = pin!(async {}.fuse());
            select! {
                permit = acquire => granted.push(permit.unwrap()),
                () = ticked => {
                    // The third tick lets the acquire in.
                    if tick == 2 {
                        held.take();
                    }
                }
            }
        }
    });
    assert!(acquire.is_terminated());
    assert_eq!(granted.len(), 1, "granted once, then skipped");
    assert_eq!((granted[0].amounts(), sem.available()), ([1, 50], [0, 50]));
}
