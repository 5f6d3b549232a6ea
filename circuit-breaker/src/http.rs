//! HTTP awareness (feature `http`): tower-http's `classify` module decides what counts as a
//! failure, and rejections become `503 Service Unavailable` with `Retry-After`.
//!
//! [`HttpClassifier`] adapts any tower-http [`MakeClassifier`]: by default
//! [`ServerErrorsAsFailures`] (every 5xx response and every transport error is a failure);
//! [`too_many_requests`](HttpClassifier::too_many_requests) adds `429`. A classifier that
//! must see the end of the body (tower-http's gRPC classifier reads `grpc-status` from the
//! trailers) gets it through [`ResponseBody`], which records the outcome when the trailers
//! or the end of the stream arrive; a body dropped before that counts as a cancelled call.
//!
//! For rejections, use [`handle_error`] with axum's `HandleErrorLayer`, build the response
//! yourself with [`rejection_response`], or let the breaker answer with the
//! [`RejectionResponse`] fallback.
//!
//! ```
//! use axum::{Router, error_handling::HandleErrorLayer, routing::get};
//! use palisade_circuit_breaker::CircuitBreakerLayer;
//! use palisade_circuit_breaker::http::{HttpClassifier, handle_error};
//! use tower::ServiceBuilder;
//!
//! let breaker = CircuitBreakerLayer::builder("api")
//!     .with_classifier(HttpClassifier::new().too_many_requests(true))
//!     .build()?;
//! let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(
//!     ServiceBuilder::new()
//!         .layer(HandleErrorLayer::new(handle_error))
//!         .layer(breaker),
//! );
//! # let _ = app;
//! # Ok::<(), palisade_circuit_breaker::error::ConfigError>(())
//! ```

use std::fmt;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Buf;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project::pin_project;
use tower_http::classify::{
    ClassifiedResponse, ClassifyEos, ClassifyResponse as TowerClassifyResponse, MakeClassifier,
    NeverClassifyEos, ServerErrorsAsFailures, SharedClassifier,
};

use crate::classify::{Classify, ClassifyResponse, Outcome};
use crate::error::{BoxError, CircuitOpen};
use crate::fallback::Fallback;
use crate::permit::Permit;

/// Classifies HTTP responses with a tower-http [`MakeClassifier`]; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct HttpClassifier<M = SharedClassifier<ServerErrorsAsFailures>> {
    make: M,
    too_many_requests: bool,
}

impl HttpClassifier {
    /// 5xx responses and transport errors are failures (tower-http's
    /// [`ServerErrorsAsFailures`]).
    pub fn new() -> Self {
        HttpClassifier::with_make_classifier(ServerErrorsAsFailures::make_classifier())
    }
}

impl Default for HttpClassifier {
    fn default() -> Self {
        HttpClassifier::new()
    }
}

impl<M> HttpClassifier<M> {
    /// Classifies with any tower-http classifier, for example
    /// `StatusInRangeAsFailures::new(400..=599).into_make_classifier()`.
    pub fn with_make_classifier(make: M) -> Self {
        HttpClassifier {
            make,
            too_many_requests: false,
        }
    }

    /// Also count `429 Too Many Requests` as a failure (an overloaded dependency), whatever
    /// the inner classifier says. Defaults to `false`.
    #[must_use]
    pub fn too_many_requests(mut self, failure: bool) -> Self {
        self.too_many_requests = failure;
        self
    }
}

impl<M, ReqB, ResB, E> Classify<Request<ReqB>, Response<ResB>, E> for HttpClassifier<M>
where
    M: MakeClassifier,
{
    type Classifier = HttpResponseClassifier<M::Classifier>;

    fn classify_request(&self, req: &Request<ReqB>) -> Self::Classifier {
        HttpResponseClassifier {
            inner: self.make.make_classifier(req),
            too_many_requests: self.too_many_requests,
        }
    }
}

/// One call's classifier, made by [`HttpClassifier`].
#[derive(Debug, Clone)]
pub struct HttpResponseClassifier<K> {
    inner: K,
    too_many_requests: bool,
}

impl<K, ResB, E> ClassifyResponse<Response<ResB>, E> for HttpResponseClassifier<K>
where
    K: TowerClassifyResponse,
{
    type Response = Response<ResponseBody<ResB, K::ClassifyEos>>;

    fn classify(
        self,
        result: Result<Response<ResB>, E>,
        permit: Permit,
    ) -> Result<Self::Response, E> {
        match result {
            Ok(res) => {
                if self.too_many_requests && res.status() == StatusCode::TOO_MANY_REQUESTS {
                    permit.record(Outcome::Failure);
                    return Ok(res.map(ResponseBody::new));
                }
                match self.inner.classify_response(&res) {
                    ClassifiedResponse::Ready(r) => {
                        permit.record(if r.is_ok() {
                            Outcome::Success
                        } else {
                            Outcome::Failure
                        });
                        Ok(res.map(ResponseBody::new))
                    }
                    ClassifiedResponse::RequiresEos(eos) => Ok(res.map(|inner| ResponseBody {
                        inner,
                        eos: Some((eos, permit)),
                    })),
                }
            }
            Err(e) => {
                // Transport errors are failures, whatever the classifier's class for them.
                permit.record(Outcome::Failure);
                Err(e)
            }
        }
    }

    fn passthrough(response: Response<ResB>) -> Self::Response {
        response.map(ResponseBody::new)
    }
}

/// A response body that records the call's outcome when it ends, for classifiers that
/// need the trailers (gRPC). Passes every frame through unchanged.
#[pin_project]
pub struct ResponseBody<B, Eos> {
    #[pin]
    inner: B,
    eos: Option<(Eos, Permit)>,
}

impl<B, Eos> ResponseBody<B, Eos> {
    /// Wraps a body whose call's outcome is already recorded (or that did not go through
    /// the inner service).
    pub fn new(inner: B) -> Self {
        ResponseBody { inner, eos: None }
    }

    /// The wrapped body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Default, Eos> Default for ResponseBody<B, Eos> {
    fn default() -> Self {
        ResponseBody::new(B::default())
    }
}

impl<B, Eos> fmt::Debug for ResponseBody<B, Eos> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("awaiting_end", &self.eos.is_some())
            .finish_non_exhaustive()
    }
}

impl<B, Eos> Body for ResponseBody<B, Eos>
where
    B: Body,
    B::Data: Buf,
    Eos: ClassifyEos,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some((eos, permit)) = this.eos.take() {
            match &frame {
                Some(Ok(f)) => match f.trailers_ref() {
                    Some(trailers) => record(permit, eos.classify_eos(Some(trailers))),
                    None => *this.eos = Some((eos, permit)),
                },
                Some(Err(_)) => permit.record(Outcome::Failure),
                None => record(permit, eos.classify_eos(None)),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn record<C>(permit: Permit, class: Result<(), C>) {
    permit.record(if class.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    });
}

/// The seconds for a `Retry-After` header: the rejection's `retry_after` rounded up, so a
/// client that waits exactly that long finds the breaker half-open.
pub fn retry_after_secs(open: &CircuitOpen) -> Option<u64> {
    open.retry_after()
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

/// `503 Service Unavailable` for a rejection, with `Retry-After` (in whole seconds, rounded
/// up; omitted when the breaker cannot know, for example when forced open) and a
/// plain-text body naming the breaker.
pub fn rejection_response(open: &CircuitOpen) -> Response<String> {
    let mut res = Response::new(open.to_string());
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(secs) = retry_after_secs(open) {
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// An error handler for axum's `HandleErrorLayer`: a [`CircuitOpen`] rejection becomes
/// [`rejection_response`]; any other error (the inner service's) becomes
/// `500 Internal Server Error` without its message, so nothing internal leaks to clients.
pub async fn handle_error(err: BoxError) -> Response<String> {
    match err.downcast_ref::<CircuitOpen>() {
        Some(open) => rejection_response(open),
        None => {
            let mut res = Response::new(String::from("internal server error"));
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            res
        }
    }
}

/// A [`Fallback`] answering rejected HTTP calls with `503 Service Unavailable`,
/// `Retry-After` and an empty body (of the inner service's body type, which must be
/// `Default`), so that no error reaches the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct RejectionResponse;

impl<ReqB, ResB: Default> Fallback<Request<ReqB>, Response<ResB>> for RejectionResponse {
    type Future = Ready<Result<Response<ResB>, BoxError>>;

    fn call(&mut self, _req: Request<ReqB>, open: CircuitOpen) -> Self::Future {
        let mut res = Response::new(ResB::default());
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        if let Some(secs) = retry_after_secs(&open) {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        ready(Ok(res))
    }
}

/// The body type of a breaker using the default [`HttpClassifier`].
pub type ServerErrorsBody<B> =
    ResponseBody<B, NeverClassifyEos<tower_http::classify::ServerErrorsFailureClass>>;
