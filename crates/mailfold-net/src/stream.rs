//! The transport under a session: plain TCP, or TLS over TCP, upgradable in place for
//! STARTTLS.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A byte stream to the server.
#[derive(Debug)]
pub enum Transport {
    /// Cleartext TCP (before STARTTLS, or a plaintext account).
    Plain(TcpStream),
    /// TLS over TCP. Boxed: a rustls connection is large and moves with the session.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    /// True once traffic is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// Runs the TLS handshake over a TCP stream (implicit TLS, or after STARTTLS's OK).
    pub async fn tls_handshake(
        tcp: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<Transport> {
        let tls = TlsConnector::from(config).connect(name, tcp).await?;
        Ok(Transport::Tls(Box::new(tls)))
    }

    /// Closes the stream: sends TLS close_notify first when encrypted, then shuts TCP down.
    pub async fn close(&mut self) {
        // Errors are irrelevant here: the peer may already be gone.
        let _ = self.shutdown().await;
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // tokio-rustls sends close_notify in poll_shutdown before shutting the socket.
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
