//! Shared by the codec's integration tests.
#![allow(dead_code)] // each test binary uses a part

use std::sync::OnceLock;

use bytes::Bytes;

/// A buffer pool that joins slices of one received buffer, as a reactor's
/// incremental receive ring does. The buffer may be set after the session
/// that uses the pool is made.
#[derive(Debug, Default)]
pub struct OneBuffer(pub OnceLock<Bytes>);

impl OneBuffer {
    pub fn of(buffer: Bytes) -> OneBuffer {
        OneBuffer(OnceLock::from(buffer))
    }
}

impl zmtp_codec::BufferPool for OneBuffer {
    fn take(&self, capacity: usize) -> Vec<u8> {
        Vec::with_capacity(capacity)
    }

    fn freeze(&self, buffer: Vec<u8>) -> Bytes {
        Bytes::from(buffer)
    }

    fn joins(&self) -> bool {
        true
    }

    fn join(&self, head: &Bytes, next: &Bytes) -> Option<Bytes> {
        let buffer = self.0.get()?;
        let base = buffer.as_ptr() as usize;
        let (h, n) = (head.as_ptr() as usize, next.as_ptr() as usize);
        let inside = h >= base && n + next.len() <= base + buffer.len();
        (inside && !head.is_empty() && h + head.len() == n)
            .then(|| buffer.slice(h - base..n + next.len() - base))
    }
}
