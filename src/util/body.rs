//! Collecting a whole body from its chunks, bounded, without copying the common case: a
//! body that arrives as a single chunk is kept as that chunk.

use bytes::{Bytes, BytesMut};

/// The body would exceed its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

pub struct BodyCollector {
    limit: usize,
    capacity_hint: usize,
    first: Option<Bytes>,
    joined: Option<BytesMut>,
    len: usize,
}

impl BodyCollector {
    /// `capacity_hint` (e.g. a declared Content-Length) sizes the buffer once a second
    /// chunk makes joining necessary.
    pub fn new(limit: usize, capacity_hint: usize) -> Self {
        BodyCollector {
            limit,
            capacity_hint: capacity_hint.min(limit),
            first: None,
            joined: None,
            len: 0,
        }
    }

    pub fn push(&mut self, chunk: Bytes) -> Result<(), TooLarge> {
        if self.len + chunk.len() > self.limit {
            return Err(TooLarge);
        }
        self.len += chunk.len();
        match (&mut self.joined, self.first.take()) {
            (Some(joined), _) => joined.extend_from_slice(&chunk),
            (None, None) => self.first = Some(chunk),
            (None, Some(first)) => {
                let mut joined = BytesMut::with_capacity(self.capacity_hint.max(self.len));
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&chunk);
                self.joined = Some(joined);
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Bytes {
        match (self.joined, self.first) {
            (Some(joined), _) => joined.freeze(),
            (None, Some(first)) => first,
            (None, None) => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_chunk_is_kept_as_is_and_many_are_joined() {
        let chunk = Bytes::from_static(b"{\"a\":1}");
        let mut one = BodyCollector::new(100, 0);
        one.push(chunk.clone()).unwrap();
        let body = one.finish();
        assert_eq!(body.as_ptr(), chunk.as_ptr(), "no copy for one chunk");

        let mut many = BodyCollector::new(100, 10);
        for part in ["ab", "cd", "ef"] {
            many.push(Bytes::from_static(part.as_bytes())).unwrap();
        }
        assert_eq!(&many.finish()[..], b"abcdef");
        assert_eq!(&BodyCollector::new(1, 0).finish()[..], b"");
    }

    #[test]
    fn limit_is_enforced_across_chunks() {
        let mut c = BodyCollector::new(5, 0);
        c.push(Bytes::from_static(b"abc")).unwrap();
        assert_eq!(c.push(Bytes::from_static(b"def")), Err(TooLarge));
        let mut exact = BodyCollector::new(6, 0);
        exact.push(Bytes::from_static(b"abc")).unwrap();
        exact.push(Bytes::from_static(b"def")).unwrap();
        assert_eq!(&exact.finish()[..], b"abcdef");
    }
}
