//! TCP connection establishment: resolve, then try every address (IPv6 and IPv4, in the
//! resolver's order) with a per-attempt timeout, so one black-holed address family cannot
//! stall the connection (seed N1: any host and port).

use std::net::SocketAddr;
use std::time::Duration;

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::net::TcpStream;

use crate::error::Error;
use crate::stream::Tunnel;

/// Resolves `host:port` and connects to the first address that answers within `timeout`.
/// The error names the last failure, so "connection refused" and "timed out" stay visible.
pub async fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(timeout, tokio::net::lookup_host((bare, port)))
            .await
            .map_err(|_| Error::Timeout(format!("resolving {host}")))?
            .map_err(|e| Error::Io(format!("resolving {host}"), e))?
            .collect();
    if addrs.is_empty() {
        return Err(Error::Config(format!("{host} resolves to no address")));
    }
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // Small command lines must not wait for Nagle: pipelined commands are written
                // in one go anyway, and IDLE's DONE must leave at once.
                let _ = stream.set_nodelay(true);
                tracing::debug!("connected to {addr}");
                return Ok(stream);
            }
            Ok(Err(e)) => {
                tracing::debug!("connect to {addr}: {e}");
                last = Some(Error::Io(format!("connecting to {addr}"), e));
            }
            Err(_) => {
                tracing::debug!("connect to {addr}: timed out");
                last = Some(Error::Timeout(format!("connecting to {addr}")));
            }
        }
    }
    // Non-empty address list: at least one attempt ran and recorded its failure.
    Err(last.unwrap_or_else(|| Error::Config(format!("{host}: no address tried"))))
}

/// Starts a tunnel command (argv, no shell) in a process group of its own, with its stdin
/// and stdout as the IMAP stream and its stderr copied to the log line by line (long lines cut,
/// so the command cannot make the log or memory grow without bound).
pub fn spawn_tunnel(argv: &[String]) -> Result<Tunnel, Error> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Config("the tunnel command is empty".into()));
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Io(format!("starting the tunnel {program:?}"), e))?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(Error::Config("the tunnel's pipes were not set up".into()));
    };
    let name = program.clone();
    tokio::spawn(async move {
        let mut r = tokio::io::BufReader::new(stderr);
        let mut line = Vec::new();
        // Read in pieces of at most MAX_STDERR_LINE bytes; a piece without its line end is
        // the start of an over-long line, whose further pieces are skipped, not logged.
        let mut rest_of_long_line = false;
        loop {
            line.clear();
            match (&mut r)
                .take(MAX_STDERR_LINE)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if !rest_of_long_line {
                        let text = String::from_utf8_lossy(&line);
                        tracing::warn!("tunnel {name}: {}", text.trim_end());
                    }
                    rest_of_long_line = !line.ends_with(b"\n");
                }
            }
        }
    });
    tracing::debug!("started the tunnel {program}");
    Ok(Tunnel::new(child, stdin, stdout))
}

/// The longest line of a tunnel's stderr written to the log.
const MAX_STDERR_LINE: u64 = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connects_over_ipv4_and_refuses_cleanly() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let s = connect_tcp("127.0.0.1", port, Duration::from_secs(2)).await;
        assert!(s.is_ok());
        drop(listener);
        let e = connect_tcp("127.0.0.1", port, Duration::from_secs(2)).await;
        assert!(matches!(e, Err(Error::Io(..))), "{e:?}");
    }

    #[tokio::test]
    async fn connects_over_ipv6_when_available() {
        let Ok(listener) = tokio::net::TcpListener::bind("[::1]:0").await else {
            return; // no IPv6 loopback on this machine
        };
        let port = listener.local_addr().unwrap().port();
        assert!(connect_tcp("[::1]", port, Duration::from_secs(2))
            .await
            .is_ok());
        assert!(connect_tcp("::1", port, Duration::from_secs(2))
            .await
            .is_ok());
    }
}
