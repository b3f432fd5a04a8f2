//! raft-engine's file system with one change: space for the log is reserved
//! by writing zeros instead of `fallocate`.
//!
//! Why: raft-engine grows a log file 2 MiB at a time. With `fallocate` those
//! blocks are allocated but *unwritten* (ext4, xfs), so every append that
//! lands in them converts part of an unwritten extent, a metadata change, and
//! the Ready's `fdatasync` then waits for a journal commit as well as for the
//! data: three waits for the disk instead of one. Blocks that already hold
//! zeros are simply overwritten. Measured on this project's machine (ext4 on
//! a virtio disk), 8 KiB appends each followed by `fdatasync`: 270-305 µs on
//! average (p50 267-291 µs) into fallocated space, 166-176 µs (p50 128-139
//! µs) into zero-filled space, the zero-filling and its flush included.
//!
//! The price: each 2 MiB chunk is written twice (zeros, then entries), and the
//! `fdatasync` after a chunk is zero-filled flushes it (~5 ms once per 2 MiB of
//! log). Readers cannot tell the difference: raft-engine already treats the
//! zeros after the last batch (what `fallocate` leaves) as the end of the log.

use std::io::{Result, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use raft_engine::env::{DefaultFileSystem, FileSystem, Permission, WriteExt};

/// The default file system's handle and reader.
type Inner = DefaultFileSystem;

/// Zeros written per call while reserving space.
const ZERO_CHUNK: usize = 256 << 10;

/// raft-engine's default file system, reserving log space by writing zeros.
pub(crate) struct ZeroFillFileSystem;

impl FileSystem for ZeroFillFileSystem {
    type Handle = <Inner as FileSystem>::Handle;
    type Reader = <Inner as FileSystem>::Reader;
    type Writer = ZeroFillWriter;

    fn create<P: AsRef<Path>>(&self, path: P) -> Result<Self::Handle> {
        DefaultFileSystem.create(path)
    }

    fn open<P: AsRef<Path>>(&self, path: P, perm: Permission) -> Result<Self::Handle> {
        DefaultFileSystem.open(path, perm)
    }

    fn delete<P: AsRef<Path>>(&self, path: P) -> Result<()> {
        DefaultFileSystem.delete(path)
    }

    fn rename<P: AsRef<Path>>(&self, src_path: P, dst_path: P) -> Result<()> {
        DefaultFileSystem.rename(src_path, dst_path)
    }

    fn new_reader(&self, handle: Arc<Self::Handle>) -> Result<Self::Reader> {
        DefaultFileSystem.new_reader(handle)
    }

    fn new_writer(&self, handle: Arc<Self::Handle>) -> Result<Self::Writer> {
        Ok(ZeroFillWriter {
            inner: DefaultFileSystem.new_writer(handle)?,
        })
    }
}

/// The default writer, except that [`WriteExt::allocate`] writes zeros.
pub(crate) struct ZeroFillWriter {
    inner: <Inner as FileSystem>::Writer,
}

impl Write for ZeroFillWriter {
    fn write(&mut self, buf: &[u8]) -> Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
}

impl Seek for ZeroFillWriter {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64> {
        self.inner.seek(pos)
    }
}

impl WriteExt for ZeroFillWriter {
    fn truncate(&mut self, offset: usize) -> Result<()> {
        self.inner.truncate(offset)
    }

    /// Writes zeros over `offset..offset + size`, then returns to where the
    /// writer was. raft-engine only reserves space past what it has written.
    fn allocate(&mut self, offset: usize, size: usize) -> Result<()> {
        let resume = self.inner.stream_position()?;
        self.inner.seek(SeekFrom::Start(offset as u64))?;
        let zeros = vec![0u8; ZERO_CHUNK.min(size)];
        let mut left = size;
        let filled = (|| {
            while left > 0 {
                let n = left.min(zeros.len());
                self.inner.write_all(&zeros[..n])?;
                left -= n;
            }
            Ok(())
        })();
        self.inner.seek(SeekFrom::Start(resume))?;
        filled
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn allocate_writes_zeros_and_keeps_the_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let fs = ZeroFillFileSystem;
        let handle = Arc::new(fs.create(&path).unwrap());
        let mut w = fs.new_writer(handle.clone()).unwrap();
        w.write_all(b"head").unwrap();
        w.allocate(4, 3 << 20).unwrap();
        assert_eq!(w.stream_position().unwrap(), 4);
        w.write_all(b"tail").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 4 + (3 << 20));
        // Really written: no holes, every block allocated.
        assert!(meta.blocks() * 512 >= meta.len());
        let mut content = Vec::new();
        let mut r = fs.new_reader(handle).unwrap();
        r.read_to_end(&mut content).unwrap();
        assert_eq!(&content[..8], b"headtail");
        assert!(content[8..].iter().all(|&b| b == 0));
    }
}
