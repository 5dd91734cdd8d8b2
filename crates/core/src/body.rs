//! Streamed response bodies. Each goes through [`streamed`], which fuses its stream: layers that
//! wrap the body (gzip's encoder) may poll once more after the end, and some streams (`unfold`,
//! dav-server's bodies) panic when polled again after returning their last item.

use axum::BoxError;
use axum::body::{Body, Bytes};
use futures::{Stream, StreamExt};

/// A response body that streams `stream`, safe to poll after its end.
pub fn streamed<S, T, E>(stream: S) -> Body
where
    S: Stream<Item = Result<T, E>> + Send + 'static,
    T: Into<Bytes> + 'static,
    E: Into<BoxError> + 'static,
{
    Body::from_stream(stream.fuse())
}
