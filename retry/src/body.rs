//! A request body that keeps what it sends, so the request can be sent again byte-identical.
//!
//! [`ReplayBody`] wraps the caller's body. As the inner service (hyper, tonic, …) pulls frames,
//! each data frame is passed through *and* kept (a reference-counted [`Bytes`], no copy when the
//! body already yields `Bytes`) in a buffer bounded by the policy's body limit (default 64 KiB).
//! A retry re-sends the whole body, once, from its first byte: either a copy of what was kept,
//! when the inner service read it to the end, or what was kept followed by the rest of the
//! caller's body, when the inner service let the body go before its end. A body over the limit
//! or one that failed is never re-sent, and a body still held by the attempt that read it is
//! not re-sent while it is held: no partial or duplicated body is ever sent. A body that is
//! empty from the start costs nothing: no buffer, no lock.
//!
//! "Read to the end" means the body yielded its end, its trailers, or a data frame after
//! which it says it has ended (`is_end_stream`, as a `Full` body does): hyper stops polling it
//! there. A body of known length that does not say it has ended once its bytes are written
//! may still have trailers: hyper's HTTP/1 client drops it there (it is then handed back, see
//! below, and replayed as what was read followed by its end), its HTTP/2 client polls on for
//! the trailers. hyper and tonic finish sending a small body before a response comes back. A server that answers before reading the
//! request (load shedding, a gRPC trailers-only `UNAVAILABLE` to a client stream) leaves the
//! body unfinished and still held by the transport when the answer arrives: the retry then
//! waits out its backoff, and if the transport has let the body go by then (it does once the
//! server closes the connection or resets the stream), the next attempt sends what was read and
//! then the rest — with its whole length as `size_hint`, for a `Content-Length`. If the body is
//! still held after the wait, the answer is returned as it is. A body whose `size_hint` already
//! exceeds the limit is not buffered at all. Capturing takes an uncontended lock per data frame
//! (only for requests with a body).
//!
//! A body the inner service dropped without reading any of it (a refused connection, a circuit
//! breaker's rejection: nothing was sent) is handed back whole and becomes the next attempt's
//! body. A non-empty body is boxed for this (one allocation per request with a body, besides
//! the shared capture buffer); an empty one costs nothing.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// The request body the inner service receives from an HTTP or gRPC retry policy.
///
/// It yields [`Bytes`] frames and the wrapped body's error. To hand it to a service that wants
/// another body type, map the request; for a tonic `Channel`, see
/// [`grpc`](crate::grpc#tonic-channels).
#[derive(Debug)]
pub struct ReplayBody<B> {
    kind: Kind<B>,
}

#[derive(Debug)]
enum Kind<B> {
    Empty,
    Streaming {
        body: Option<Pin<Box<B>>>,
        capture: Option<Arc<Mutex<Capture<B>>>>,
        /// What an earlier attempt already read of the body, sent before `body` (which is
        /// the rest of it, handed back): boxed, only a resumed body pays.
        prefix: Option<Box<Prefix>>,
    },
    /// Trailers are boxed: only a replay of a body that had some pays, and every request's
    /// body (and so every retry future) stays small.
    Replay {
        chunks: Vec<Bytes>,
        next: usize,
        trailers: Option<Box<HeaderMap>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaptureState {
    Reading,
    Complete,
    Lost,
}

/// The chunks an earlier attempt read, sent again before the rest of the body.
#[derive(Debug)]
struct Prefix {
    chunks: Vec<Bytes>,
    next: usize,
}

/// What a streaming body has passed through so far, and the rest of it once the attempt that
/// held it let it go before its end.
#[derive(Debug)]
pub(crate) struct Capture<B> {
    chunks: Vec<Bytes>,
    len: usize,
    limit: usize,
    state: CaptureState,
    trailers: Option<HeaderMap>,
    /// The part of the body not yet read, handed back when the attempt holding it dropped it
    /// before its end (the whole body, if it read none).
    rest: Option<Pin<Box<B>>>,
}

impl<B> Capture<B> {
    fn lose(&mut self) {
        self.state = CaptureState::Lost;
        self.chunks = Vec::new();
        self.trailers = None;
        self.rest = None;
    }
}

/// The replay side of a body, kept by the retry future.
#[derive(Debug)]
pub(crate) enum Saved<B> {
    Empty,
    Captured(Arc<Mutex<Capture<B>>>),
    TooLarge,
}

impl<B> Saved<B> {
    /// Whether [`replay`](Self::replay) would give a body now (it builds nothing).
    pub(crate) fn replayable(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::TooLarge => false,
            Self::Captured(c) => {
                let guard = c.lock().unwrap_or_else(PoisonError::into_inner);
                guard.rest.is_some() || guard.state == CaptureState::Complete
            }
        }
    }

    /// Whether the body is still held by the attempt that read it: neither read to the end
    /// nor let go yet (the transport may still be sending it, or about to drop it), so it may
    /// become replayable soon.
    pub(crate) fn held(&self) -> bool {
        match self {
            Self::Empty | Self::TooLarge => false,
            Self::Captured(c) => {
                let guard = c.lock().unwrap_or_else(PoisonError::into_inner);
                guard.rest.is_none() && guard.state == CaptureState::Reading
            }
        }
    }

    /// The body for the next attempt: a copy of the whole body if it was read to the end and
    /// fit; what was read of it followed by the rest, if the attempt that held it let it go
    /// before its end; else `None`.
    pub(crate) fn replay(&self) -> Option<ReplayBody<B>> {
        let kind = match self {
            Self::Empty => Kind::Empty,
            Self::TooLarge => return None,
            Self::Captured(c) => {
                let mut guard = c.lock().unwrap_or_else(PoisonError::into_inner);
                if guard.state == CaptureState::Complete {
                    Kind::Replay {
                        chunks: guard.chunks.clone(),
                        next: 0,
                        trailers: guard.trailers.clone().map(Box::new),
                    }
                } else if let Some(body) = guard.rest.take() {
                    // Handed to one attempt at a time: it captures the rest as it goes, and
                    // hands back what it did not read if it too stops short.
                    let prefix = (!guard.chunks.is_empty()).then(|| {
                        Box::new(Prefix {
                            chunks: guard.chunks.clone(),
                            next: 0,
                        })
                    });
                    Kind::Streaming {
                        body: Some(body),
                        capture: Some(c.clone()),
                        prefix,
                    }
                } else {
                    return None;
                }
            }
        };
        Some(ReplayBody { kind })
    }
}

impl<B: Body> ReplayBody<B> {
    /// Wraps `body` without keeping any of it: it will never be replayed.
    #[inline]
    pub(crate) fn passthrough(body: B) -> (Self, Saved<B>) {
        (
            ReplayBody {
                kind: Kind::Streaming {
                    body: Some(Box::pin(body)),
                    capture: None,
                    prefix: None,
                },
            },
            Saved::TooLarge,
        )
    }

    /// Wraps `body`, keeping up to `limit` bytes of it for a replay.
    #[inline]
    pub(crate) fn wrap(body: B, limit: usize) -> (Self, Saved<B>) {
        if body.is_end_stream() {
            return (ReplayBody { kind: Kind::Empty }, Saved::Empty);
        }
        if body.size_hint().lower() > limit as u64 {
            return Self::passthrough(body);
        }
        let c = Arc::new(Mutex::new(Capture {
            chunks: Vec::new(),
            len: 0,
            limit,
            state: CaptureState::Reading,
            trailers: None,
            rest: None,
        }));
        (
            ReplayBody {
                kind: Kind::Streaming {
                    body: Some(Box::pin(body)),
                    capture: Some(c.clone()),
                    prefix: None,
                },
            },
            Saved::Captured(c),
        )
    }
}

impl<B> Drop for ReplayBody<B> {
    /// Inlined: an empty body (every bodiless request) drops in a comparison.
    #[inline]
    fn drop(&mut self) {
        if let Kind::Streaming {
            body: body @ Some(_),
            capture: Some(c),
            ..
        } = &mut self.kind
        {
            hand_back(body, c);
        }
    }
}

/// Let go before its end (a refused connection, a reset stream, an early answer): the rest
/// goes back to the capture, so the next attempt can send what was read and then the rest —
/// the whole body, once.
#[inline(never)]
fn hand_back<B>(body: &mut Option<Pin<Box<B>>>, capture: &Mutex<Capture<B>>) {
    let mut guard = capture.lock().unwrap_or_else(PoisonError::into_inner);
    if guard.state == CaptureState::Reading {
        guard.rest = body.take();
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Data: Buf,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Replay {
                chunks,
                next,
                trailers,
            } => {
                if let Some(chunk) = chunks.get_mut(*next) {
                    *next += 1;
                    return Poll::Ready(Some(Ok(Frame::data(std::mem::take(chunk)))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(*t))))
            }
            Kind::Streaming {
                body,
                capture,
                prefix,
            } => {
                if let Some(p) = prefix {
                    if let Some(chunk) = p.chunks.get_mut(p.next) {
                        p.next += 1;
                        // Already kept by the capture: sent, not kept again.
                        return Poll::Ready(Some(Ok(Frame::data(std::mem::take(chunk)))));
                    }
                    *prefix = None;
                }
                let Some(body) = body.as_mut() else {
                    return Poll::Ready(None);
                };
                let frame = match body.as_mut().poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(f) => f,
                };
                let mut guard = capture
                    .as_ref()
                    .map(|c| c.lock().unwrap_or_else(PoisonError::into_inner));
                let out = match frame {
                    None => {
                        if let Some(c) = guard.as_deref_mut()
                            && c.state == CaptureState::Reading
                        {
                            c.state = CaptureState::Complete;
                        }
                        None
                    }
                    Some(Err(e)) => {
                        if let Some(c) = guard.as_deref_mut() {
                            c.lose();
                        }
                        Some(Err(e))
                    }
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(mut data) => {
                            let bytes = data.copy_to_bytes(data.remaining());
                            if let Some(c) = guard.as_deref_mut()
                                && c.state == CaptureState::Reading
                            {
                                if c.len + bytes.len() > c.limit {
                                    c.lose();
                                } else {
                                    c.len += bytes.len();
                                    c.chunks.push(bytes.clone());
                                    // hyper stops polling once the body says it has ended (a
                                    // `Full` body after its data): what was kept is then the
                                    // whole body. A body with no bytes left that does not say
                                    // so may still have trailers (HTTP/2 polls for them; HTTP/1
                                    // drops a body of known length once it is written): it is
                                    // whole only once read to its end, or let go, and then
                                    // replayed as what was read followed by what is left.
                                    if body.is_end_stream() {
                                        c.state = CaptureState::Complete;
                                    }
                                }
                            }
                            Some(Ok(Frame::data(bytes)))
                        }
                        Err(frame) => match frame.into_trailers() {
                            Ok(t) => {
                                // Trailers are a body's last frame; kept even after the
                                // data said it was all there (a known length may still end
                                // with trailers).
                                if let Some(c) = guard.as_deref_mut()
                                    && c.state != CaptureState::Lost
                                {
                                    c.trailers = Some(t.clone());
                                    c.state = CaptureState::Complete;
                                }
                                Some(Ok(Frame::trailers(t)))
                            }
                            // An unknown frame kind: it cannot be replayed faithfully.
                            Err(_) => {
                                if let Some(c) = guard.as_deref_mut() {
                                    c.lose();
                                }
                                return Poll::Ready(None);
                            }
                        },
                    },
                };
                Poll::Ready(out)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Streaming { body, prefix, .. } => {
                prefix.as_ref().is_none_or(|p| p.next >= p.chunks.len())
                    && body.as_ref().is_none_or(|b| b.is_end_stream())
            }
            Kind::Replay {
                chunks,
                next,
                trailers,
            } => *next >= chunks.len() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Streaming { body, prefix, .. } => {
                let rest = body
                    .as_ref()
                    .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint());
                let Some(p) = prefix else {
                    return rest;
                };
                // What was read before plus the rest: the body's whole length, as a
                // `Content-Length` needs it.
                let sent: u64 = p.chunks[p.next..].iter().map(|c| c.len() as u64).sum();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(sent));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(sent));
                }
                hint
            }
            Kind::Replay { chunks, next, .. } => {
                SizeHint::with_exact(chunks[*next..].iter().map(|c| c.len() as u64).sum())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    fn stream(chunks: &[&'static str]) -> impl Body<Data = Bytes, Error = std::io::Error> {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn replays_the_exact_bytes_once_fully_read() {
        let (body, saved) = ReplayBody::wrap(stream(&["he", "llo", " world"]), 64);
        assert!(saved.replay().is_none(), "not read yet");
        let sent = body.collect().await.unwrap().to_bytes();
        assert_eq!(sent, "hello world");
        let again = saved.replay().unwrap();
        assert_eq!(again.size_hint().exact(), Some(11));
        assert_eq!(again.collect().await.unwrap().to_bytes(), "hello world");
        // Replays can be replayed again.
        let third = saved.replay().unwrap();
        assert_eq!(third.collect().await.unwrap().to_bytes(), "hello world");
    }

    /// A body of one data frame `x` and trailers, and the trailers.
    fn with_trailers() -> (
        impl Body<Data = Bytes, Error = std::io::Error> + Unpin,
        HeaderMap,
    ) {
        let mut t = HeaderMap::new();
        t.insert("x-checksum", "1".parse().unwrap());
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(b"x"))),
            Ok(Frame::trailers(t.clone())),
        ];
        (StreamBody::new(futures_util::stream::iter(frames)), t)
    }

    /// Reads `body` as hyper sends it: no poll once it says it has ended, none after
    /// trailers (sent with the end of the stream).
    async fn send_like_hyper<B: Body<Data = Bytes> + Unpin>(mut body: B) -> Vec<u8>
    where
        B::Error: std::fmt::Debug,
    {
        let mut sent = Vec::new();
        while !body.is_end_stream() {
            let Some(frame) = body.frame().await else {
                break;
            };
            match frame.unwrap().into_data() {
                Ok(data) => sent.extend_from_slice(&data),
                Err(_) => break,
            }
        }
        sent
    }

    #[tokio::test]
    async fn a_body_ended_by_its_size_or_its_trailers_is_replayed() {
        // A `Full` body says it has ended right after its data: never polled for the end.
        let (body, saved) = ReplayBody::wrap(Full::new(Bytes::from_static(b"hello")), 64);
        assert_eq!(send_like_hyper(body).await, b"hello");
        let again = saved.replay().expect("the whole body was sent");
        assert_eq!(again.collect().await.unwrap().to_bytes(), "hello");

        let (body, t) = with_trailers();
        let (body, saved) = ReplayBody::wrap(body, 64);
        assert_eq!(send_like_hyper(body).await, b"x");
        let c = saved
            .replay()
            .expect("trailers end the body")
            .collect()
            .await
            .unwrap();
        assert_eq!(c.trailers(), Some(&t));
    }

    /// A body of known length that never says it has ended: its size hint counts down, and
    /// its trailers, if any, follow its data.
    struct KnownLength(Vec<Bytes>, Option<HeaderMap>);

    impl Body for KnownLength {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if !self.0.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(self.0.remove(0)))));
            }
            Poll::Ready(self.1.take().map(|t| Ok(Frame::trailers(t))))
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
        }
    }

    #[tokio::test]
    async fn a_body_of_known_length_written_whole_is_replayed() {
        // hyper's HTTP/1 writer: the body's length in the head, and no poll after that many
        // bytes.
        let chunks = vec![Bytes::from_static(b"he"), Bytes::from_static(b"llo")];
        let (mut body, saved) = ReplayBody::wrap(KnownLength(chunks, None), 64);
        let mut left = body.size_hint().exact().unwrap();
        while left > 0 {
            let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
            left -= data.len() as u64;
            assert!(left == 0 || saved.replay().is_none(), "not all sent yet");
        }
        drop(body);
        let again = saved.replay().expect("every byte was sent");
        assert_eq!(again.collect().await.unwrap().to_bytes(), "hello");
    }

    /// A body of known length followed by trailers, answered (HTTP/2) after its last data
    /// frame and before its trailers: the trailers are not lost.
    #[tokio::test]
    async fn a_body_let_go_between_its_data_and_its_trailers_keeps_them() {
        let mut t = HeaderMap::new();
        t.insert("grpc-checksum", "3".parse().unwrap());
        let chunks = vec![Bytes::from_static(b"he"), Bytes::from_static(b"llo")];
        let (mut body, saved) = ReplayBody::wrap(KnownLength(chunks, Some(t.clone())), 64);
        assert_eq!(next_data(&mut body).await, "he");
        assert_eq!(next_data(&mut body).await, "llo");
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(saved.held(), "the trailers are still to come");
        drop(body); // the stream was reset after the server answered
        let again = saved.replay().expect("what was read, then the rest");
        assert_eq!(again.size_hint().exact(), Some(5));
        let c = again.collect().await.unwrap();
        assert_eq!(c.trailers(), Some(&t), "the trailers are sent again");
        assert_eq!(c.to_bytes(), "hello");
        let c = saved.replay().unwrap().collect().await.unwrap();
        assert_eq!(c.trailers(), Some(&t), "and again, from the capture");
        assert_eq!(c.to_bytes(), "hello");
    }

    #[tokio::test]
    async fn over_the_limit_is_sent_whole_but_never_replayed() {
        let (body, saved) = ReplayBody::wrap(stream(&["12345", "67890"]), 8);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "1234567890");
        assert!(saved.replay().is_none());
        let (_, saved) = ReplayBody::wrap(Full::new(Bytes::from_static(b"123456789")), 8);
        assert!(matches!(saved, Saved::TooLarge));
    }

    #[tokio::test]
    async fn a_body_never_polled_is_handed_back_whole() {
        let (body, saved) = ReplayBody::wrap(stream(&["ab", "cd"]), 64);
        drop(body); // e.g. a refused connection: nothing was sent
        let again = saved.replay().unwrap();
        assert!(saved.replay().is_none(), "handed back once, to one attempt");
        assert_eq!(again.collect().await.unwrap().to_bytes(), "abcd");
        // The second attempt captured it as it went: a third may replay it.
        assert_eq!(
            saved.replay().unwrap().collect().await.unwrap().to_bytes(),
            "abcd"
        );
    }

    /// The data of the next frame of `body`.
    async fn next_data<B: Body<Data = Bytes> + Unpin>(body: &mut B) -> Bytes
    where
        B::Error: std::fmt::Debug,
    {
        body.frame().await.unwrap().unwrap().into_data().unwrap()
    }

    #[tokio::test]
    async fn a_body_let_go_part_way_is_replayed_whole() {
        let (mut body, saved) = ReplayBody::wrap(stream(&["a", "b", "c"]), 64);
        assert_eq!(next_data(&mut body).await, "a");
        assert!(saved.held(), "still held by the attempt reading it");
        assert!(saved.replay().is_none(), "never while it is held");
        drop(body); // e.g. the stream was reset after the server answered
        assert!(!saved.held());
        assert!(saved.replayable());
        let mut again = saved.replay().expect("what was read, then the rest");
        assert!(saved.replay().is_none(), "the rest goes to one attempt");
        assert!(saved.held());
        // Stopped short again, inside what was read before: handed back as it was.
        assert_eq!(next_data(&mut again).await, "a");
        drop(again);
        let mut third = saved.replay().unwrap();
        assert_eq!(next_data(&mut third).await, "a");
        assert_eq!(next_data(&mut third).await, "b");
        drop(third);
        // ... and inside the rest: what it read is kept too.
        let fourth = saved.replay().unwrap();
        assert_eq!(fourth.collect().await.unwrap().to_bytes(), "abc");
        // Read to the end at last: replayed from the capture from now on.
        assert!(!saved.held());
        for _ in 0..2 {
            let again = saved.replay().unwrap();
            assert_eq!(again.collect().await.unwrap().to_bytes(), "abc");
        }
    }

    #[tokio::test]
    async fn a_resumed_body_keeps_its_length_and_trailers() {
        let chunks = vec![
            Bytes::from_static(b"he"),
            Bytes::from_static(b"ll"),
            Bytes::from_static(b"o"),
        ];
        let (mut body, saved) = ReplayBody::wrap(KnownLength(chunks, None), 64);
        assert_eq!(next_data(&mut body).await, "he");
        drop(body);
        let again = saved.replay().unwrap();
        assert_eq!(
            again.size_hint().exact(),
            Some(5),
            "the whole length, for Content-Length"
        );
        assert!(!again.is_end_stream());
        assert_eq!(send_like_hyper(again).await, b"hello");
        assert_eq!(
            saved.replay().unwrap().collect().await.unwrap().to_bytes(),
            "hello"
        );

        let mut t = HeaderMap::new();
        t.insert("x-checksum", "2".parse().unwrap());
        let frames = vec![
            Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"x"))),
            Ok(Frame::data(Bytes::from_static(b"y"))),
            Ok(Frame::trailers(t.clone())),
        ];
        let (mut body, saved) =
            ReplayBody::wrap(StreamBody::new(futures_util::stream::iter(frames)), 64);
        assert_eq!(next_data(&mut body).await, "x");
        drop(body);
        let c = saved.replay().unwrap().collect().await.unwrap();
        assert_eq!(c.trailers(), Some(&t));
        assert_eq!(c.to_bytes(), "xy");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_or_failed_is_not_handed_back() {
        let (mut body, saved) = ReplayBody::wrap(stream(&["12345", "67890"]), 8);
        assert_eq!(next_data(&mut body).await, "12345");
        assert_eq!(next_data(&mut body).await, "67890");
        drop(body);
        assert!(!saved.held() && saved.replay().is_none());

        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::from_static(b"a"))),
            Err(std::io::Error::other("disk")),
            Ok(Frame::data(Bytes::from_static(b"b"))),
        ];
        let (mut body, saved) =
            ReplayBody::wrap(StreamBody::new(futures_util::stream::iter(frames)), 64);
        assert_eq!(next_data(&mut body).await, "a");
        assert!(body.frame().await.unwrap().is_err());
        drop(body);
        assert!(!saved.held() && saved.replay().is_none());
    }

    #[tokio::test]
    async fn empty_bodies_need_no_buffer() {
        let (body, saved) = ReplayBody::wrap(Full::new(Bytes::new()), 64);
        assert!(body.is_end_stream());
        assert!(matches!(saved, Saved::Empty));
        assert!(saved.replay().unwrap().is_end_stream());
    }

    #[tokio::test]
    async fn trailers_are_replayed() {
        let (body, t) = with_trailers();
        let (body, saved) = ReplayBody::wrap(body, 64);
        let c = body.collect().await.unwrap();
        assert_eq!(c.trailers(), Some(&t));
        let c = saved.replay().unwrap().collect().await.unwrap();
        assert_eq!(c.trailers(), Some(&t));
        assert_eq!(c.to_bytes(), "x");
    }
}
