//! The application as one service: axum's router inside; around it, once per request, what every
//! route needs (metrics by route pattern and status, failure logs) and what the work routes need
//! (a permit per request in flight, the timeout).
//!
//! Not `axum::middleware::from_fn` layers on the router: the router applies a layer to each
//! route, and then every request pays, at every layer, a boxed clone of the rest of the stack and
//! a boxed future (`from_fn` adds one more of each). Here the request's future is the router's
//! plus a few fields, allocated nowhere, and the route pattern for the metrics is found once
//! with the same matcher the router uses (docs/decisions/serving-window-mode.md has what the
//! layers cost).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::state::AppState;

/// pm-serve's HTTP application: a tower service (cheap to clone), served by
/// [`crate::server::accept`] or called with `oneshot` in tests.
#[derive(Clone)]
pub struct App {
    front: Arc<Front>,
    router: Router,
}

/// What the service knows beside the router.
struct Front {
    st: AppState,
    /// Route pattern → its index in `routes`.
    matcher: matchit::Router<usize>,
    /// Each route's pattern (the metrics' `route` label) and whether it is a work route.
    routes: Vec<(String, bool)>,
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl App {
    /// `router` must answer the `routes` given, each marked whether it is a work route (shed under
    /// overload and timed out); a path none of them matches is `unmatched` in the metrics.
    pub fn new(st: AppState, router: Router, routes: Vec<(String, bool)>) -> Self {
        let mut matcher = matchit::Router::new();
        for (i, (pattern, _)) in routes.iter().enumerate() {
            // The router took these patterns already (with this matcher); one it refused would
            // only be counted as unmatched.
            if let Err(e) = matcher.insert(pattern.as_str(), i) {
                tracing::warn!(pattern, "route not labelled in the metrics: {e}");
            }
        }
        let permits = Arc::new(Semaphore::new(st.cfg.max_inflight.max(1)));
        let timeout = st.cfg.request_timeout;
        App { front: Arc::new(Front { st, matcher, routes, permits, timeout }), router }
    }
}

impl tower_service::Service<Request> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = AppFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> AppFuture {
        let start = Instant::now();
        let front = &self.front;
        let route = front.matcher.at(req.uri().path()).ok().map(|m| *m.value);
        let track = Track { front: InFlight::new(front), start, route, method: req.method().clone() };
        let mut guard = None;
        if route.and_then(|i| front.routes.get(i)).is_some_and(|r| r.1) {
            let Ok(permit) = Arc::clone(&front.permits).try_acquire_owned() else {
                return AppFuture { answer: Answer::Shed, guard, track };
            };
            let deadline = tokio::time::Instant::from_std(start) + front.timeout;
            guard = Some(Guard { _permit: permit, deadline, timer: None });
        }
        AppFuture { answer: Answer::Route { inner: self.router.call(req) }, guard, track }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer in the making.
    pub struct AppFuture {
        #[pin]
        answer: Answer,
        guard: Option<Guard>,
        track: Track,
    }
}

pin_project_lite::pin_project! {
    #[project = AnswerProj]
    enum Answer {
        /// Refused at once (503 + Retry-After): all permits are taken, and a queue would only add
        /// latency to an overloaded server.
        Shed,
        Route { #[pin] inner: RouteFuture<Infallible> },
    }
}

/// A work request's permit and time limit, counted from its arrival. A request that completes
/// on its first poll (most: the body came in one read, the work is synchronous) never registers
/// a timer, which would cost a visible share of a stateful `/predict`. One that waits gets the
/// rest of its time as a timer.
struct Guard {
    _permit: OwnedSemaphorePermit,
    deadline: tokio::time::Instant,
    // Boxed: only a request still waiting after its first poll pays for it.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// What the metrics and logs need of a request.
struct Track {
    front: InFlight,
    start: Instant,
    route: Option<usize>,
    method: Method,
}

/// One request in `pm_http_requests_in_flight` while it lives — also when its future is dropped
/// unfinished (the client went away), which a decrement after an `.await` would miss.
struct InFlight(Arc<Front>);

impl InFlight {
    fn new(front: &Arc<Front>) -> Self {
        front.st.metrics.http_inflight.inc();
        InFlight(Arc::clone(front))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.st.metrics.http_inflight.dec();
    }
}

impl Future for AppFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = match this.answer.project() {
            AnswerProj::Shed => {
                let msg = "the server is at its concurrency limit; retry shortly";
                ApiError::unavailable("overloaded", msg, 1).into_response()
            }
            AnswerProj::Route { inner } => match (inner.poll(cx), this.guard) {
                (Poll::Ready(Ok(resp)), _) => resp,
                (Poll::Pending, None) => return Poll::Pending,
                (Poll::Pending, Some(guard)) => {
                    let deadline = guard.deadline;
                    let timer = guard.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    ready!(timer.as_mut().poll(cx));
                    let msg = "the request took longer than the server's timeout";
                    ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", msg).into_response()
                }
            },
        };
        this.track.finish(&resp);
        Poll::Ready(Ok(resp))
    }
}

impl Track {
    /// Counts and times the answered request by route pattern and status; logs a failure.
    fn finish(&self, resp: &Response) {
        let secs = self.start.elapsed().as_secs_f64();
        let front = &self.front.0;
        let route = self.route.and_then(|i| front.routes.get(i)).map_or("unmatched", |r| r.0.as_str());
        let (method, status) = (&self.method, resp.status());
        front.st.metrics.observe_http(route, method.as_str(), status.as_u16(), secs);
        // 503 is an expected state (no model yet, overload), counted in the metrics; not a log line each.
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(%route, %method, status = status.as_u16(), secs, "Request failed.");
        } else {
            tracing::debug!(%route, %method, status = status.as_u16(), secs, "Request answered.");
        }
    }
}
