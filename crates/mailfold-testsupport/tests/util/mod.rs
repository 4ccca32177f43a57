//! A raw line-level IMAP client for testing the harness without the mailfold client.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// Sends commands and reads lines; fails the test on a timeout.
pub struct Raw {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
}

pub fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        Raw::over(Box::new(tcp(addr)))
    }

    pub fn over(stream: Box<dyn Stream>) -> Raw {
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects with implicit TLS, trusting `config`'s roots, verifying the name 127.0.0.1.
    pub fn connect_tls(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Raw {
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        Raw::over(Box::new(rustls::StreamOwned::new(conn, tcp(addr))))
    }

    /// Upgrades a plain connection after STARTTLS was answered OK.
    pub fn upgrade(self, config: Arc<rustls::ClientConfig>, tcp: TcpStream) -> Raw {
        assert!(
            self.buf.is_empty(),
            "bytes after STARTTLS OK: {:?}",
            self.buf
        );
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        Raw::over(Box::new(rustls::StreamOwned::new(conn, tcp)))
    }

    pub fn line(&mut self) -> String {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return String::from_utf8_lossy(&line).trim_end().to_string();
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).expect("read a line");
            assert!(
                n > 0,
                "connection closed; partial: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).unwrap();
        self.stream.write_all(b"\r\n").unwrap();
        self.stream.flush().unwrap();
    }

    /// Sends `tag text` and returns every line up to and including the tagged one.
    pub fn cmd(&mut self, tag: &str, text: &str) -> Vec<String> {
        self.send(&format!("{tag} {text}"));
        self.until_tagged(tag)
    }

    pub fn until_tagged(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }
}

pub fn tagged_ok(lines: &[String]) -> bool {
    lines
        .last()
        .map(|l| l.split(' ').nth(1) == Some("OK"))
        .unwrap_or(false)
}
