//! The transport under a session: plain TCP, or TLS over TCP, upgradable in place for
//! STARTTLS; or the standard input and output of a tunnel command ([`Tunnel`]).

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
    /// A command's standard input and output (`ssh host /usr/lib/dovecot/imap`).
    Tunnel(Box<Tunnel>),
}

/// A tunnel command speaking IMAP on its standard input and output, as mbsync's `Tunnel` and
/// OfflineIMAP's `preauthtunnel` run one. It runs in a process group of its own, so that
/// ending it (on drop) also ends what it started (ssh's children, a shell's command).
#[derive(Debug)]
pub struct Tunnel {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
}

impl Tunnel {
    /// Wraps a spawned command whose stdin and stdout were taken out of `child`.
    pub(crate) fn new(
        child: tokio::process::Child,
        stdin: tokio::process::ChildStdin,
        stdout: tokio::process::ChildStdout,
    ) -> Tunnel {
        Tunnel {
            child,
            stdin,
            stdout,
        }
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        // The command was started as the leader of its own process group (its pid is the
        // group's id): SIGTERM to the group ends it and everything it started. A group already
        // gone is not an error here.
        if let Some(pid) = self
            .child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.start_kill();
    }
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
            Transport::Tunnel(t) => Pin::new(&mut t.stdout).poll_read(cx, buf),
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
            Transport::Tunnel(t) => Pin::new(&mut t.stdin).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Transport::Tunnel(t) => Pin::new(&mut t.stdin).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // tokio-rustls sends close_notify in poll_shutdown before shutting the socket.
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            // End of input for the command; the process group ends when the tunnel drops.
            Transport::Tunnel(t) => Pin::new(&mut t.stdin).poll_shutdown(cx),
        }
    }
}
