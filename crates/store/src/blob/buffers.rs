//! Read buffers kept for reuse. A fresh buffer of a chunk's size costs the kernel zeroing its
//! pages on first touch (with transparent huge pages, 2 MiB at a time): measured at half of a
//! download's time. Buffers handed out as [`Bytes`] come back here when the last view drops.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// Buffers kept at most, and the largest kept: 16 of 1 MiB chunks (the largest chunk) is 16 MiB.
const KEPT: usize = 16;
const LARGEST: usize = 1024 * 1024;
/// Reads smaller than this get a buffer of their own size: a small blob held for long must not
/// pin a whole kept buffer.
const SMALLEST: usize = 64 * 1024;

static FREE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer able to hold `len` bytes: a kept one when `len` is between [`SMALLEST`] and
/// [`LARGEST`].
pub(crate) fn take(len: usize) -> Vec<u8> {
    if !(SMALLEST..=LARGEST).contains(&len) {
        return Vec::with_capacity(len);
    }
    let kept = FREE.lock().unwrap_or_else(PoisonError::into_inner).pop();
    match kept {
        Some(mut buffer) => {
            buffer.clear();
            buffer
        }
        None => Vec::with_capacity(LARGEST),
    }
}

/// `buffer` as [`Bytes`], given back for reuse once no view of it is left.
pub(crate) fn share(buffer: Vec<u8>) -> Bytes {
    if buffer.capacity() != LARGEST {
        return Bytes::from(buffer);
    }
    Bytes::from_owner(Returned(buffer))
}

struct Returned(Vec<u8>);

impl AsRef<[u8]> for Returned {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.0);
        let mut free = FREE.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < KEPT {
            free.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_their_last_view_drops() {
        let mut buffer = take(SMALLEST);
        assert!(buffer.capacity() >= LARGEST && buffer.is_empty());
        buffer.extend_from_slice(b"hello world");
        let bytes = share(buffer);
        let view = bytes.slice(6..);
        drop(bytes);
        assert_eq!(&view[..], b"world", "a view keeps the buffer alive");
        drop(view);
        // Another test may take it first: only check that a kept buffer is empty and large.
        let again = take(SMALLEST + 10);
        assert!(again.is_empty() && again.capacity() >= LARGEST);
        // Larger reads are not kept, nor smaller ones.
        assert!(take(LARGEST + 1).capacity() > LARGEST);
        assert!(take(10).capacity() < SMALLEST);
    }
}
