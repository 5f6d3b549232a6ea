//! The response future of [`Health`](crate::Health).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project::pin_project;

use crate::body::ResponseBody;

/// The response future of [`Health`](crate::Health): a ready health response, or the
/// inner service's future with its body wrapped. Never boxed.
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F, B> {
    #[pin]
    state: State<F, B>,
}

#[pin_project(project = StateProj)]
#[derive(Debug)]
enum State<F, B> {
    Health {
        response: Option<Response<ResponseBody<B>>>,
    },
    Inner {
        #[pin]
        future: F,
    },
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn health(response: Response<ResponseBody<B>>) -> Self {
        Self {
            state: State::Health {
                response: Some(response),
            },
        }
    }

    pub(crate) fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Health { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                // Polled after completion: stay pending rather than panic.
                None => Poll::Pending,
            },
            StateProj::Inner { future } => future
                .poll(cx)
                .map(|r| r.map(|res| res.map(|body| ResponseBody::Inner { body }))),
        }
    }
}
