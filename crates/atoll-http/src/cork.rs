//! Deferred small writes: the responses an event loop's connections write during one pass
//! over its ready tasks leave in one burst at the end of that pass.
//!
//! Why: a guest instance is set up and torn down by a lot of wasmtime code and data, and
//! it runs faster when the instance before it ran just before it. Writing each response
//! at once puts the kernel's loopback send path (and the wake-up of the client) between
//! two instances, which evicts much of that from the caches. Deferring the write to the
//! end of the pass runs the ready requests' instances back to back, then their sends.
//! Measured in process, the hello guest's instance costs ~18 us after 512 KiB of other
//! memory traffic and ~14 us right after another instance; in `atoll up` under wrk,
//! deferring took the CPU per request from ~33 to ~29 us and throughput up 10-20 %
//! (docs/benchmarks.md).
//!
//! It also owns the end of a connection that closes with input unread: see the `Drop`
//! of [`CorkedStream`].
//!
//! What it is not: a buffer that holds data back. A deferred write is sent before the
//! loop waits for I/O again (the flusher is an ordinary task behind the ones already
//! ready), so it adds at most the time the loop spends on the other ready requests.
//! Only up to [`MAX_DEFERRED`] bytes per connection are deferred; larger writes go
//! straight to the socket with the usual backpressure, and if the socket cannot take a
//! deferred write in full, the connection's writes wait until a task of its own has sent
//! the rest.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, OwnedSemaphorePermit};

/// Largest amount of written data a connection may have waiting for the flusher.
const MAX_DEFERRED: usize = 16 * 1024;

/// One per event loop: the connections with a deferred write, and the task that sends
/// them.
pub(crate) struct Flusher {
    pending: Mutex<Vec<Arc<Shared>>>,
    wake: Notify,
    /// Deferred writes the socket could not take in full (for the tests).
    #[cfg(test)]
    stalls: std::sync::atomic::AtomicUsize,
}

impl Flusher {
    /// A flusher for the current event loop, with its task spawned on it.
    pub(crate) fn start() -> Arc<Self> {
        let flusher = Arc::new(Self {
            pending: Mutex::new(Vec::new()),
            wake: Notify::new(),
            #[cfg(test)]
            stalls: Default::default(),
        });
        let this = flusher.clone();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            loop {
                this.wake.notified().await;
                std::mem::swap(&mut batch, &mut *lock(&this.pending));
                for conn in batch.drain(..) {
                    if conn.send_deferred() {
                        #[cfg(test)]
                        this.stalls
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        });
        flusher
    }

    fn defer(&self, conn: Arc<Shared>) {
        lock(&self.pending).push(conn);
        self.wake.notify_one();
    }
}

/// A connection's socket with deferred small writes; what hyper reads and writes.
pub(crate) struct CorkedStream {
    /// `None` only once dropped (the read half may go on to linger).
    read: Option<OwnedReadHalf>,
    shared: Arc<Shared>,
    flusher: Arc<Flusher>,
    /// The connection's slot under the server's connection cap, held until the socket
    /// is closed (after any linger).
    slot: Option<OwnedSemaphorePermit>,
}

impl CorkedStream {
    pub(crate) fn new(
        stream: TcpStream,
        flusher: Arc<Flusher>,
        slot: impl Into<Option<OwnedSemaphorePermit>>,
    ) -> Self {
        let (read, write) = stream.into_split();
        Self {
            read: Some(read),
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    write,
                    deferred: Vec::new(),
                    queued: false,
                    stalled: false,
                    failed: None,
                    waiting: None,
                }),
            }),
            flusher,
            slot: slot.into(),
        }
    }
}

impl Drop for CorkedStream {
    /// A connection that ends with input still unread (a client sending a body the
    /// server refused, say with 413) would be closed with a reset, and a reset can make
    /// the client lose the response it has not read yet. So when there is unread input,
    /// the socket is kept a little longer: the response is finished (deferred data, then
    /// FIN) and the client's input read and discarded until it stops sending, at most
    /// [`LINGER`]. Meanwhile the connection still counts against the server's cap.
    fn drop(&mut self) {
        let Some(read) = self.read.take() else {
            return;
        };
        let mut probe = [0u8; 1];
        if !matches!(read.try_read(&mut probe), Ok(n) if n > 0) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(read, self.shared.clone(), self.slot.take()));
        }
    }
}

/// How long a connection closed with unread input is kept open for the client to read
/// its response (see `CorkedStream`'s `Drop`).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

async fn linger(mut read: OwnedReadHalf, shared: Arc<Shared>, _slot: Option<OwnedSemaphorePermit>) {
    let deadline = tokio::time::Instant::now() + LINGER;
    // Finish the response: everything deferred, then FIN.
    let finish = std::future::poll_fn(|cx| {
        let mut st = lock(&shared.state);
        ready!(st.poll_clear(cx))?;
        ready!(st.poll_send_deferred_waiting(cx))?;
        Pin::new(&mut st.write).poll_shutdown(cx)
    });
    if !matches!(tokio::time::timeout_at(deadline, finish).await, Ok(Ok(()))) {
        return;
    }
    // Then read and drop what the client still sends, until it stops.
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout_at(deadline, async {
        use tokio::io::AsyncReadExt;
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// The write side, shared by the connection's task and the flusher. Both run on the same
/// event loop, so the lock is never contended.
struct Shared {
    state: Mutex<State>,
}

struct State {
    write: OwnedWriteHalf,
    /// Written by hyper, not yet sent.
    deferred: Vec<u8>,
    /// In the flusher's list.
    queued: bool,
    /// The flusher could not send all of `deferred` (the socket's buffer is full): a
    /// task of its own sends the rest, waiting for the socket; until it is done the
    /// connection's writes wait.
    stalled: bool,
    /// Sending deferred data failed; the connection's next write reports it.
    failed: Option<io::Error>,
    /// The connection's task, waiting for a stalled send to finish.
    waiting: Option<Waker>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The flusher's part: send what is deferred without waiting. If the socket takes
    /// only part of it, a task of its own sends the rest (and this returns true).
    fn send_deferred(self: Arc<Self>) -> bool {
        let mut st = lock(&self.state);
        st.queued = false;
        if st.stalled {
            return false;
        }
        while !st.deferred.is_empty() {
            match st.write.try_write(&st.deferred) {
                Ok(n) => {
                    st.deferred.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    st.stalled = true;
                    drop(st);
                    let conn = self.clone();
                    tokio::spawn(std::future::poll_fn(move |cx| conn.poll_finish(cx)));
                    return true;
                }
                Err(e) => {
                    st.fail(e);
                    return false;
                }
            }
        }
        st.release_spare();
        false
    }

    /// The stalled send, waiting for the socket; then the connection's writes go on.
    fn poll_finish(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = lock(&self.state);
        let result = ready!(st.poll_send_deferred(cx));
        if let Err(e) = result {
            st.fail(e);
        }
        st.stalled = false;
        if let Some(waker) = st.waiting.take() {
            waker.wake();
        }
        Poll::Ready(())
    }
}

impl State {
    /// Send everything deferred, waiting for the socket.
    fn poll_send_deferred(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.deferred.is_empty() {
            let n = ready!(Pin::new(&mut self.write).poll_write(cx, &self.deferred))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.deferred.drain(..n);
        }
        self.release_spare();
        Poll::Ready(Ok(()))
    }

    /// A send of deferred data failed: drop the rest; the next write reports the error.
    fn fail(&mut self, e: io::Error) {
        self.deferred.clear();
        self.failed = Some(e);
    }

    /// An idle keep-alive connection keeps at most a small buffer.
    fn release_spare(&mut self) {
        if self.deferred.capacity() > 4096 {
            self.deferred = Vec::new();
        }
    }

    /// [`State::poll_send_deferred`] from the connection's task. If it has to wait, the
    /// flusher may meanwhile find the socket full and start the stalled send, whose task
    /// then holds the socket's write wake-up: it wakes this one when it is done.
    fn poll_send_deferred_waiting(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = self.poll_send_deferred(cx);
        if poll.is_pending() {
            self.waiting = Some(cx.waker().clone());
        }
        poll
    }

    /// Pending while a stalled send is under way; a failed one's error, once.
    fn poll_clear(&mut self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        if self.stalled {
            self.waiting = Some(cx.waker().clone());
            return Poll::Pending;
        }
        match self.failed.take() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncRead for CorkedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().read {
            Some(read) => Pin::new(read).poll_read(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for CorkedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut st = lock(&this.shared.state);
        ready!(st.poll_clear(cx))?;
        if st.deferred.len() + total <= MAX_DEFERRED {
            for b in bufs {
                st.deferred.extend_from_slice(b);
            }
            if !st.queued {
                st.queued = true;
                drop(st);
                this.flusher.defer(this.shared.clone());
            }
            return Poll::Ready(Ok(total));
        }
        // Too much to defer: what is deferred goes first, then this write, both directly.
        ready!(st.poll_send_deferred_waiting(cx))?;
        Pin::new(&mut st.write).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A deferred write leaves with the flusher at the end of this pass (or with the
        // task that finishes a stalled one, which this waits for).
        let mut st = lock(&self.shared.state);
        ready!(st.poll_clear(cx))?;
        Pin::new(&mut st.write).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = lock(&self.shared.state);
        ready!(st.poll_clear(cx))?;
        ready!(st.poll_send_deferred_waiting(cx))?;
        Pin::new(&mut st.write).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair(flusher: Arc<Flusher>) -> (CorkedStream, TcpStream) {
        pair_with(flusher, None).await
    }

    async fn pair_with(
        flusher: Arc<Flusher>,
        slot: Option<OwnedSemaphorePermit>,
    ) -> (CorkedStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (CorkedStream::new(server, flusher, slot), client)
    }

    /// Chunk `i`: 1000 bytes, its index then a byte pattern, so a lost, doubled or
    /// reordered chunk shows.
    fn chunk(i: u32) -> Vec<u8> {
        let mut c = i.to_le_bytes().to_vec();
        c.extend((0..996u32).map(|j| (i.wrapping_mul(31).wrapping_add(j) % 251) as u8));
        c
    }

    fn check(received: &[u8], chunks: u32) {
        assert_eq!(received.len(), chunks as usize * 1000, "bytes received");
        for (i, got) in received.chunks(1000).enumerate() {
            assert!(got == chunk(i as u32), "chunk {i} differs");
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn small_writes_from_many_connections_all_arrive_in_order() {
        runtime().block_on(async {
            let flusher = Flusher::start();
            let mut clients = Vec::new();
            for _ in 0..8 {
                let (mut server, client) = pair(flusher.clone()).await;
                tokio::spawn(async move {
                    for i in 0..200 {
                        server.write_all(&chunk(i)).await.expect("write");
                        server.flush().await.expect("flush");
                        if i % 7 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    server.shutdown().await.expect("shutdown");
                });
                clients.push(client);
            }
            for mut client in clients {
                let mut received = Vec::new();
                client.read_to_end(&mut received).await.expect("read");
                check(&received, 200);
            }
        });
    }

    #[test]
    fn a_full_socket_holds_writes_back_and_loses_nothing() {
        runtime().block_on(async {
            let flusher = Flusher::start();
            let (mut server, mut client) = pair(flusher.clone()).await;
            // 16 MiB in small writes, each left to the flusher (the yield lets it run),
            // to a client that does not read for a while: the socket fills, the flusher
            // finds it full, and the writer has to wait.
            const CHUNKS: u32 = 16 * 1024;
            let writer = tokio::spawn(async move {
                for i in 0..CHUNKS {
                    server.write_all(&chunk(i)).await.expect("write");
                    server.flush().await.expect("flush");
                    tokio::task::yield_now().await;
                }
                server.shutdown().await.expect("shutdown");
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(!writer.is_finished(), "the writer should be held back");
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.expect("read");
            check(&received, CHUNKS);
            writer.await.expect("writer");
            assert!(
                flusher.stalls.load(std::sync::atomic::Ordering::Relaxed) > 0,
                "the flusher never found the socket full: the test did not test the stall"
            );
        });
    }

    #[test]
    fn a_client_still_sending_when_the_server_answers_and_closes_gets_no_reset() {
        runtime().block_on(async {
            let flusher = Flusher::start();
            let slots = Arc::new(tokio::sync::Semaphore::new(1));
            let slot = slots.clone().try_acquire_owned().expect("a free slot");
            let (mut server, client) = pair_with(flusher, Some(slot)).await;
            let (mut from_server, mut to_server) = client.into_split();
            // The client starts sending a body the server never reads (as with a 413)...
            to_server
                .write_all(&vec![b'a'; 256 << 10])
                .await
                .expect("send body");
            tokio::time::sleep(Duration::from_millis(50)).await;
            // ...the server answers and ends the connection...
            server.write_all(b"refused").await.expect("write");
            server.flush().await.expect("flush");
            drop(server);
            tokio::time::sleep(Duration::from_millis(50)).await;
            // ...and the client, like an HTTP client sending while it reads, goes on
            // sending the rest of its body: without the linger its writes would meet a
            // reset (and an HTTP client would report that instead of the answer).
            to_server
                .write_all(&vec![b'a'; 2 << 20])
                .await
                .expect("the rest of the body is taken, not reset");
            // A lingering connection still holds its slot under the connection cap.
            assert_eq!(slots.available_permits(), 0);
            to_server.shutdown().await.expect("shutdown");
            let mut received = Vec::new();
            from_server
                .read_to_end(&mut received)
                .await
                .expect("the response, then EOF");
            assert_eq!(received, b"refused");
            // Once the client has stopped sending, the socket closes and the slot is free.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            while slots.available_permits() == 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(slots.available_permits(), 1);
        });
    }

    #[test]
    fn a_write_to_a_closed_peer_fails() {
        runtime().block_on(async {
            let flusher = Flusher::start();
            let (mut server, client) = pair(flusher).await;
            drop(client);
            let mut failed = false;
            for i in 0..10_000 {
                let r = async {
                    server.write_all(&chunk(i)).await?;
                    server.flush().await
                }
                .await;
                if r.is_err() {
                    failed = true;
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert!(failed, "writes to a closed connection kept succeeding");
        });
    }
}
