//! Lets the responses that become ready together leave in one socket write.
//!
//! When the apply thread finishes a batch it wakes every request task of
//! the batch at once. Each task hands its response to its HTTP/2 connection
//! and wakes the connection's task, which tokio then runs next on the same
//! worker (the waking task's "LIFO slot"): the connection writes that one
//! response, and the next request task's response needs a write of its own.
//! Under load that is one `writev` (and one trip through the TCP stack) per
//! response, the biggest single cost of the client port.
//!
//! [`Coalesce`] makes the first write attempt of each round yield instead:
//! it wakes its own task and answers `Pending`, so the task goes to the back
//! of the worker's queue; the request tasks already queued run first and add
//! their responses, and the retry writes everything buffered by then at once.
//! The cost is one extra poll of the connection per write; the wait is the
//! time the queued tasks take, never a timer.
//!
//! Invariant: every write is retried at the first poll after its yield (the
//! task woke itself), so nothing waits for outside activity.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A socket whose writes first yield once to the tasks already ready.
pub struct Coalesce<T> {
    /// The socket.
    inner: T,
    /// Whether the write being attempted has already yielded.
    yielded: bool,
}

impl<T> Coalesce<T> {
    /// Wraps a freshly accepted connection.
    pub fn new(inner: T) -> Self {
        Coalesce {
            inner,
            yielded: false,
        }
    }

    /// `Some(Pending)` (after scheduling a retry) on a round's first write
    /// attempt; `None` when the write should go ahead.
    fn yield_first(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<usize>>> {
        if self.yielded {
            self.yielded = false;
            return None;
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Some(Poll::Pending)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(pending) = this.yield_first(cx) {
            return pending;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(pending) = this.yield_first(cx) {
            return pending;
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A waker that counts its wakes.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn each_write_yields_once_and_wakes_itself_first() {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut io = Coalesce::new(Vec::new());
        for round in 1..=2 {
            let first = Pin::new(&mut io).poll_write(&mut cx, b"ab");
            assert!(first.is_pending(), "round {round}");
            assert_eq!(counter.0.load(Ordering::SeqCst), round, "retry scheduled");
            let second = Pin::new(&mut io).poll_write(&mut cx, b"ab");
            assert!(matches!(second, Poll::Ready(Ok(2))), "round {round}");
        }
        assert_eq!(io.inner, b"abab");
    }

    #[tokio::test]
    async fn writes_complete_through_the_yields() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut io = Coalesce::new(client);
        let data: Vec<u8> = (0..200u8).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut server, &mut got)
                .await
                .unwrap();
            got
        });
        io.write_all(&data).await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap(), data);
    }
}
