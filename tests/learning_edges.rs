//! The learning layers at their edges: one sample per admitted request,
//! whatever its service or its response body does (an error after the
//! grant, at once or after queueing; a body that ends without data, one at
//! its end before it is polled, trailers followed by more data), the permit
//! back at the body's real end, and no sample for a refusal.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full};
use multisem::MultiSemaphore;
use multisem::adaptive::{Aimd, Controller, Outcome};
use multisem::tower::{AdmitLayer, BoxError};
use tower::{Layer, Service, ServiceExt, service_fn};

fn every_sample(sem: &Arc<MultiSemaphore<2>>) -> Arc<Controller<2>> {
    Controller::builder(Arc::clone(sem))
        .limit(0, 1..=64, Aimd::default())
        .window(Duration::ZERO, 1)
        .build()
}

fn samples(ctl: &Controller<2>) -> (u64, u64, u64) {
    let w = ctl.last_window().unwrap_or_default();
    (ctl.windows(), w.successes, w.drops)
}

/// A learning layer over a service that always fails ("busy"), which its
/// classifier counts as a drop.
fn always_busy(ctl: &Arc<Controller<2>>) -> impl Service<u64, Response = u64, Error = BoxError> {
    let classify = |result: Result<&u64, &BoxError>, _: [u64; 2]| match result {
        Ok(_) => Outcome::success(),
        Err(_) => Outcome::Dropped,
    };
    AdmitLayer::adaptive(Arc::clone(ctl), |n: &u64| [1, *n], classify).layer(service_fn(
        |_: u64| async { Err::<u64, BoxError>("busy".into()) },
    ))
}

/// A service that fails after its permit was granted: one drop, and the
/// permit back with the error.
#[test]
fn a_service_error_after_the_grant_is_one_drop() {
    let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    let ctl = every_sample(&sem);
    let mut svc = always_busy(&ctl);
    futures_executor::block_on(async {
        let err = svc.ready().await.unwrap().call(10).await.unwrap_err();
        assert_eq!(err.to_string(), "busy");
    });
    assert_eq!(samples(&ctl), (1, 0, 1));
    assert_eq!(sem.available(), sem.capacity());
}

/// A queued request admitted later, whose service fails: one drop too.
#[test]
fn a_queued_request_whose_service_fails_is_one_drop() {
    let sem = Arc::new(MultiSemaphore::new([1, 1 << 20]));
    let ctl = every_sample(&sem);
    let mut svc = always_busy(&ctl);
    let blocker = sem.try_acquire_owned([1, 0]).unwrap();
    futures_executor::block_on(async {
        let mut pending = Box::pin(svc.ready().await.unwrap().call(10));
        // Queued behind the blocker, then granted when it goes.
        assert!(futures_util::poll!(pending.as_mut()).is_pending());
        assert_eq!(sem.waiters(), 1);
        drop(blocker);
        assert!(pending.await.is_err());
    });
    assert_eq!(samples(&ctl), (1, 0, 1));
    assert_eq!(sem.available(), sem.capacity());
}

/// A scripted body: yields its frames in order, then `None` (forever).
struct Scripted {
    frames: Vec<Frame<Bytes>>,
    end_at_start: bool,
}

impl Body for Scripted {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.frames.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Ready(Some(Ok(self.frames.remove(0))))
        }
    }

    fn is_end_stream(&self) -> bool {
        self.end_at_start
    }
}

fn grpc_trailers(code: &'static str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(code));
    trailers
}

fn learning_call(
    ctl: &Arc<Controller<2>>,
    body: impl FnOnce() -> Scripted + Send + Clone + 'static,
) -> Response<multisem::http::PermitBody<Scripted, multisem::tower::Report<2>>> {
    let mut svc = multisem::http::adaptive_layer(Arc::clone(ctl), 1024).layer(service_fn(
        move |_: Request<Full<Bytes>>| {
            let body = body.clone();
            async move { Ok::<_, Infallible>(Response::new(body())) }
        },
    ));
    futures_executor::block_on(async {
        svc.ready()
            .await
            .unwrap()
            .call(Request::new(Full::new(Bytes::from(vec![0; 700]))))
            .await
            .unwrap()
    })
}

#[test]
fn a_body_that_ends_without_data_reports_once_at_its_end() {
    let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    let ctl = every_sample(&sem);
    let response = learning_call(&ctl, || Scripted {
        frames: vec![],
        end_at_start: false,
    });
    assert_eq!(ctl.windows(), 0);
    let mut body = response.into_body();
    let polled = futures_executor::block_on(body.frame());
    assert!(polled.is_none());
    assert_eq!(samples(&ctl), (1, 1, 0));
    assert_eq!(ctl.last_window().unwrap().delivered_bytes, 700);
    assert_eq!(sem.available(), sem.capacity());
    // Polled again after its end: nothing more reported.
    assert!(futures_executor::block_on(body.frame()).is_none());
    drop(body);
    assert_eq!(samples(&ctl), (1, 1, 0));
}

#[test]
fn a_body_at_its_end_from_the_start_reports_once_when_dropped_unpolled() {
    let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    let ctl = every_sample(&sem);
    let response = learning_call(&ctl, || Scripted {
        frames: vec![],
        end_at_start: true,
    });
    assert!(response.body().is_end_stream());
    assert_eq!(sem.available(), [3, (1 << 20) - 700]);
    drop(response);
    assert_eq!(samples(&ctl), (1, 1, 0));
    assert_eq!(sem.available(), sem.capacity());
}

/// A misbehaving body: trailers (RESOURCE_EXHAUSTED), then more data. The
/// permit stays until the real end, the trailers' drop stands, one sample.
#[test]
fn trailers_followed_by_data_report_one_drop_at_the_end() {
    let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    let ctl = every_sample(&sem);
    let response = learning_call(&ctl, || Scripted {
        frames: vec![
            Frame::data(Bytes::from_static(b"a")),
            Frame::trailers(grpc_trailers("8")),
            Frame::data(Bytes::from_static(b"b")),
        ],
        end_at_start: false,
    });
    let mut body = response.into_body();
    for _ in 0..3 {
        assert!(futures_executor::block_on(body.frame()).is_some());
        assert_eq!(ctl.windows(), 0, "not reported before the end");
        assert_ne!(sem.available(), sem.capacity());
    }
    assert!(futures_executor::block_on(body.frame()).is_none());
    assert_eq!(samples(&ctl), (1, 0, 1));
    assert_eq!(sem.available(), sem.capacity());
    drop(body);
    assert_eq!(ctl.windows(), 1);
}

/// A refusal's body holds nothing and reports nothing.
#[test]
fn a_refusal_is_no_sample() {
    let sem = Arc::new(MultiSemaphore::new([1, 1 << 20]));
    let ctl = every_sample(&sem);
    let mut svc = multisem::http::adaptive_layer(Arc::clone(&ctl), 1024)
        .shed()
        .layer(service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
        }));
    let blocker = sem.try_acquire_owned([1, 0]).unwrap();
    let response = futures_executor::block_on(async {
        svc.ready()
            .await
            .unwrap()
            .call(Request::new(Full::new(Bytes::from_static(b"x"))))
            .await
            .unwrap()
    });
    assert_eq!(response.status(), 503);
    drop(response);
    drop(blocker);
    assert_eq!(ctl.windows(), 0);
    assert_eq!(sem.available(), sem.capacity());
}

/// A response body dropped while its thread unwinds from a panic reports
/// nothing (the controller's algorithms, which may be the user's, would run
/// during the unwind, where a panic of theirs aborts) and returns the
/// permit.
#[test]
fn a_body_dropped_while_its_thread_panics_reports_nothing() {
    let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    let ctl = every_sample(&sem);
    let response = learning_call(&ctl, || Scripted {
        frames: vec![Frame::data(Bytes::from_static(b"partial"))],
        end_at_start: false,
    });
    assert_ne!(sem.available(), sem.capacity(), "the body holds the permit");
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _response = response;
        panic!("expected: a panic while the body is held");
    }));
    assert!(unwound.is_err());
    assert_eq!(ctl.windows(), 0, "no sample while unwinding");
    assert_eq!(sem.available(), sem.capacity());
}
