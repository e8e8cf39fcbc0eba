//! The undo log of one file: what `crash` must put back so the file holds
//! exactly what it held at its last fsync.
//!
//! Writes reach the backing file at once; before a write or truncate changes
//! bytes that were synced, the old bytes are saved here (once per byte: a
//! second overwrite of the same range saves nothing). Bytes past the synced
//! size are never saved, because `crash` truncates the file back to that size,
//! so appends (a WAL, an append-only file) cost no memory at all. Pure: it
//! computes ranges, the caller does the I/O.

use std::collections::BTreeMap;

/// The state of one file since its last fsync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUndo {
    synced_size: u64,
    /// Saved original bytes by offset; the ranges never overlap.
    saved: BTreeMap<u64, Vec<u8>>,
    saved_bytes: u64,
}

impl FileUndo {
    /// A file whose size at its last fsync was `synced_size`.
    pub fn new(synced_size: u64) -> Self {
        FileUndo {
            synced_size,
            saved: BTreeMap::new(),
            saved_bytes: 0,
        }
    }

    /// The file's size at its last fsync: `crash` truncates it back to this.
    pub fn synced_size(&self) -> u64 {
        self.synced_size
    }

    /// Bytes of original content held in memory.
    pub fn saved_bytes(&self) -> u64 {
        self.saved_bytes
    }

    /// The parts of `[offset, offset + len)` that were synced and are not yet
    /// saved: the caller reads them from the backing file and passes them to
    /// [`FileUndo::save`] before changing the range.
    pub fn missing(&self, offset: u64, len: u64) -> Vec<(u64, u64)> {
        let end = offset.saturating_add(len).min(self.synced_size);
        let mut out = Vec::new();
        let mut pos = offset;
        if pos >= end {
            return out;
        }
        // A saved range starting before `pos` may cover it.
        if let Some((&start, bytes)) = self.saved.range(..=pos).next_back() {
            pos = pos.max(start + bytes.len() as u64);
        }
        for (&start, bytes) in self.saved.range(offset..end) {
            if start > pos {
                out.push((pos, start - pos));
            }
            pos = pos.max(start + bytes.len() as u64);
        }
        if pos < end {
            out.push((pos, end - pos));
        }
        out
    }

    /// Records the original `bytes` at `offset`, a range [`FileUndo::missing`] returned.
    pub fn save(&mut self, offset: u64, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        self.saved_bytes += bytes.len() as u64;
        self.saved.insert(offset, bytes);
    }

    /// The saved ranges, to be written back in any order (they never overlap).
    pub fn saved(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.saved.iter().map(|(&o, b)| (o, b.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_past_the_synced_size_save_nothing() {
        let u = FileUndo::new(100);
        assert_eq!(u.missing(100, 50), vec![]);
        assert_eq!(u.missing(90, 50), vec![(90, 10)]);
    }

    #[test]
    fn saved_ranges_are_not_saved_twice() {
        let mut u = FileUndo::new(100);
        u.save(10, vec![0; 10]); // [10, 20)
        u.save(40, vec![0; 5]); // [40, 45)
                                //         offset len   missing
        assert_eq!(u.missing(0, 100), vec![(0, 10), (20, 20), (45, 55)]);
        assert_eq!(u.missing(12, 5), vec![]);
        assert_eq!(u.missing(15, 10), vec![(20, 5)]);
        assert_eq!(u.missing(44, 3), vec![(45, 2)]);
        assert_eq!(u.missing(5, 0), vec![]);
        assert_eq!(u.saved_bytes(), 15);
    }

    #[test]
    fn huge_offsets_do_not_overflow() {
        let u = FileUndo::new(u64::MAX);
        assert_eq!(u.missing(u64::MAX - 1, 10), vec![(u64::MAX - 1, 1)]);
    }
}
