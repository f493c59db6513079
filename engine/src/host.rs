//! Host memory handed to a backend without copying: a region of a memory map or of an owned
//! vector, kept alive by reference counting.

use std::fmt;
use std::sync::Arc;

/// An immutable byte region `owner[offset .. offset + len]`. Cloning shares the owner.
#[derive(Clone)]
pub struct HostBytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    offset: usize,
    len: usize,
}

impl HostBytes {
    /// The whole of `owner`.
    pub fn new(owner: Arc<dyn AsRef<[u8]> + Send + Sync>) -> Self {
        let len = (*owner).as_ref().len();
        HostBytes { owner, offset: 0, len }
    }

    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self::new(Arc::new(bytes))
    }

    /// A sub-region, or `None` if it does not lie inside this one.
    pub fn slice(&self, offset: usize, len: usize) -> Option<HostBytes> {
        let end = offset.checked_add(len)?;
        (end <= self.len).then(|| HostBytes { owner: Arc::clone(&self.owner), offset: self.offset + offset, len })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.offset..self.offset + self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for HostBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostBytes({} bytes at offset {})", self.len, self.offset)
    }
}
