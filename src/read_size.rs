//! How much one read asks for: the one policy behind a [`Stream`](crate::Stream)'s socket
//! reads and a [`Connection`](crate::Connection)'s reader.
//!
//! Small while data trickles or the connection is idle, so an idle connection keeps no large
//! buffer; large once a small read comes back full (data is flowing: several TLS records per
//! read); small again after a run of reads that would have fitted the small size.

/// One read while data trickles or the connection is idle.
pub(crate) const SMALL_READ: usize = 4 * 1024;
/// One read while data flows: several TLS records.
pub(crate) const LARGE_READ: usize = 64 * 1024;
/// Reads in a row that would have fitted [`SMALL_READ`] before the size goes back to it.
const SHRINK_AFTER_SMALL_READS: u32 = 16;

/// The size of the next read, learned from the last ones.
#[derive(Debug, Default)]
pub(crate) struct ReadSize {
    large: bool,
    small_reads: u32,
}

impl ReadSize {
    /// Whether the next read is [`LARGE_READ`] rather than [`SMALL_READ`].
    pub(crate) fn is_large(&self) -> bool {
        self.large
    }

    /// The size of the next read.
    pub(crate) fn get(&self) -> usize {
        if self.large { LARGE_READ } else { SMALL_READ }
    }

    /// Learns from a read that brought `n` bytes into `size`; returns whether the size of
    /// the next read changed.
    pub(crate) fn update(&mut self, size: usize, n: usize) -> bool {
        if n == size && size < LARGE_READ {
            self.small_reads = 0;
            return !std::mem::replace(&mut self.large, true);
        }
        if size > SMALL_READ && n <= SMALL_READ {
            self.small_reads += 1;
            if self.small_reads >= SHRINK_AFTER_SMALL_READS {
                self.small_reads = 0;
                return std::mem::replace(&mut self.large, false);
            }
        } else {
            self.small_reads = 0;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_on_a_full_small_read_and_shrinks_after_a_run_of_small_ones() {
        let mut size = ReadSize::default();
        assert_eq!(size.get(), SMALL_READ);
        assert!(!size.update(SMALL_READ, 100));
        assert!(size.update(SMALL_READ, SMALL_READ));
        assert_eq!(size.get(), LARGE_READ);
        for _ in 1..SHRINK_AFTER_SMALL_READS {
            assert!(!size.update(LARGE_READ, 10));
        }
        // A large read in the run starts it again.
        assert!(!size.update(LARGE_READ, LARGE_READ));
        for _ in 1..SHRINK_AFTER_SMALL_READS {
            assert!(!size.update(LARGE_READ, 10));
        }
        assert!(size.update(LARGE_READ, 10));
        assert!(!size.is_large());
    }
}
