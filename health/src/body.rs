//! The response body: the health endpoint's JSON or the inner service's body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project::pin_project;

/// The body of a response from [`Health`](crate::Health): either a health endpoint's
/// JSON (one frame, or none for `HEAD`) or the inner service's body, untouched.
#[pin_project(project = ResponseBodyProj)]
#[derive(Debug)]
pub enum ResponseBody<B> {
    /// A health endpoint's body.
    Health {
        /// The bytes still to send.
        data: Option<Bytes>,
    },
    /// The inner service's body.
    Inner {
        /// The body.
        #[pin]
        body: B,
    },
}

impl<B> ResponseBody<B> {
    pub(crate) fn health(data: Option<Bytes>) -> Self {
        ResponseBody::Health {
            data: data.filter(|d| !d.is_empty()),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            ResponseBodyProj::Health { data } => {
                Poll::Ready(data.take().map(|d| Ok(Frame::data(d))))
            }
            ResponseBodyProj::Inner { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Health { data } => data.is_none(),
            ResponseBody::Inner { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Health { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ResponseBody::Inner { body } => body.size_hint(),
        }
    }
}
