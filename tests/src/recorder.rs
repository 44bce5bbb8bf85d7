//! Records the bytes real clients and PostgreSQL exchange, chunk by chunk as they were read, so
//! the advisor's pairing tests can replay real conversations without a network.
//!
//! File format: the line `pgvisor-stream 1\n`, then records of one direction byte (`F` client to
//! server, `B` server to client), a big-endian u32 length, and that many bytes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Header line of a stream file.
pub const STREAM_HEADER: &[u8] = b"pgvisor-stream 1\n";

/// One connection's recording, appended to as bytes pass.
type Recording = Arc<Mutex<Vec<u8>>>;

/// A relay on a free loopback port that records every connection through it.
pub struct Recorder {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<Recording>>>,
}

impl Recorder {
    /// Starts relaying to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the recorder");
        let addr = listener.local_addr().expect("recorder address");
        let connections: Arc<Mutex<Vec<Recording>>> = Arc::default();
        let all = connections.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = Arc::new(Mutex::new(STREAM_HEADER.to_vec()));
                all.lock().unwrap().push(log.clone());
                tokio::spawn(relay(client, upstream, log));
            }
        });
        Self { addr, connections }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The recording of every connection so far, in accept order.
    pub fn recordings(&self) -> Vec<Vec<u8>> {
        self.connections.lock().unwrap().iter().map(|c| c.lock().unwrap().clone()).collect()
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, log: Recording) {
    let server = TcpStream::connect(upstream).await.expect("connect the recorder upstream");
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let to_server = copy(&mut cr, &mut sw, b'F', log.clone());
    let to_client = copy(&mut sr, &mut cw, b'B', log);
    tokio::select! { _ = to_server => {}, _ = to_client => {} }
}

async fn copy(from: &mut (impl AsyncReadExt + Unpin), to: &mut (impl AsyncWriteExt + Unpin), dir: u8, log: Recording) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        {
            let mut log = log.lock().unwrap();
            log.push(dir);
            log.extend_from_slice(&(n as u32).to_be_bytes());
            log.extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
