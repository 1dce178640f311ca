//! A TCP relay between two nodes that a test can slow down: while held, it
//! keeps what the dialling side sends (counting the bytes) and forwards it
//! only when released, like a link with a long delay. A node advertises the
//! relay's address as its endpoint, so its peers dial through it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub(crate) struct SlowLink {
    pub addr: SocketAddr,
    hold: watch::Sender<bool>,
    held: Arc<AtomicU64>,
}

impl SlowLink {
    /// Relays connections on a free 127.0.0.1 port to `target`.
    pub(crate) async fn start(target: SocketAddr) -> SlowLink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (hold, rx) = watch::channel(false);
        let held = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&held);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else { continue };
                let (mut in_r, mut in_w) = inbound.into_split();
                let (mut out_r, mut out_w) = outbound.into_split();
                let mut hold = rx.clone();
                let counter = Arc::clone(&counter);
                // The reader keeps reading while held (so everything sent is
                // counted); the writer forwards only when released.
                let (chunks_tx, mut chunks) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
                let reading = hold.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match in_r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if *reading.borrow() {
                            counter.fetch_add(n as u64, Ordering::SeqCst);
                        }
                        if chunks_tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    while let Some(chunk) = chunks.recv().await {
                        if hold.wait_for(|h| !*h).await.is_err() || out_w.write_all(&chunk).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut out_r, &mut in_w).await;
                });
            }
        });
        SlowLink { addr, hold, held }
    }

    /// From now on, what the dialling side sends waits.
    pub(crate) fn hold(&self) {
        self.held.store(0, Ordering::SeqCst);
        let _ = self.hold.send(true);
    }

    /// Forwards everything held, and stops holding.
    pub(crate) fn release(&self) {
        let _ = self.hold.send(false);
    }

    /// Bytes the dialling side sent since `hold`.
    pub(crate) fn held_bytes(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }
}
