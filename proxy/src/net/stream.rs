//! A connection that is plain TCP or TLS over TCP, on either leg.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

/// A TCP connection, possibly wrapped in TLS.
pub enum Conn {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (client or server side).
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    /// True when the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    /// The leaf certificate the peer presented, on a connection pgvisor opened with TLS.
    pub fn peer_leaf(&self) -> Option<&[u8]> {
        match self {
            Conn::Tls(tls) => match tls.as_ref() {
                TlsStream::Client(s) => s.get_ref().1.peer_certificates()?.first().map(|c| c.as_ref()),
                TlsStream::Server(_) => None,
            },
            Conn::Plain(_) => None,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The reading half of a [`Conn`]: lock-free for plain TCP, shared with the writer under TLS.
pub enum ConnReader {
    /// Plain TCP.
    Plain(OwnedReadHalf),
    /// TLS (one session state, so the halves share it).
    Tls(ReadHalf<Conn>),
}

/// The writing half of a [`Conn`].
pub enum ConnWriter {
    /// Plain TCP.
    Plain(OwnedWriteHalf),
    /// TLS.
    Tls(WriteHalf<Conn>),
}

impl Conn {
    /// Splits into halves that can be used from two futures at once.
    pub fn split(self) -> (ConnReader, ConnWriter) {
        match self {
            Conn::Plain(tcp) => {
                let (r, w) = tcp.into_split();
                (ConnReader::Plain(r), ConnWriter::Plain(w))
            }
            tls => {
                let (r, w) = tokio::io::split(tls);
                (ConnReader::Tls(r), ConnWriter::Tls(w))
            }
        }
    }
}

impl AsyncRead for ConnReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ConnReader::Plain(r) => Pin::new(r).poll_read(cx, buf),
            ConnReader::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ConnWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ConnWriter::Plain(w) => Pin::new(w).poll_write(cx, buf),
            ConnWriter::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ConnWriter::Plain(w) => Pin::new(w).poll_flush(cx),
            ConnWriter::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ConnWriter::Plain(w) => Pin::new(w).poll_shutdown(cx),
            ConnWriter::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
