//! A minimal OAuth 2.0 token-introspection endpoint (RFC 7662) for Dovecot's oauth2 passdb.
//!
//! Dovecot checks an XOAUTH2 / OAUTHBEARER bearer token by POSTing `token=...` to the configured
//! introspection URL and reading `active` and `username` from the JSON answer. This server knows
//! one token per test user and answers everything else with `{"active":false}`. It runs on
//! 127.0.0.1 in one thread, handles one request per connection (`Connection: close`), caps every
//! request at a few KiB, and stops within a poll interval of being dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest request accepted: Dovecot's are a few hundred bytes.
const MAX_REQUEST: usize = 16 * 1024;
const POLL: Duration = Duration::from_millis(20);

/// The running endpoint; dropping it stops the thread.
pub(crate) struct Introspection {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Introspection {
    /// Starts the endpoint with `(token, username)` pairs.
    pub(crate) fn start(tokens: Vec<(String, String)>) -> Introspection {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the introspection endpoint");
        let addr = listener
            .local_addr()
            .expect("local address of a bound listener");
        listener
            .set_nonblocking(true)
            .expect("make the introspection listener non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let requests = Arc::clone(&requests);
            std::thread::Builder::new()
                .name("oauth-introspection".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok((stream, _)) => {
                                requests.fetch_add(1, Ordering::Relaxed);
                                // A failed exchange only fails that one login, which is what
                                // the test will then see; nothing to report here.
                                let _ = serve(stream, &tokens);
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                            Err(_) => std::thread::sleep(POLL),
                        }
                    }
                })
                .expect("spawn the introspection thread")
        };
        Introspection {
            addr,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    /// The URL Dovecot is configured with.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/introspect", self.addr)
    }

    /// How many requests were served (a test can check OAuth really went through it).
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Introspection {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: TcpStream, tokens: &[(String, String)]) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.set_write_timeout(Some(Duration::from_millis(500)))?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (head_end, body_len) = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]);
            let len = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, len.min(MAX_REQUEST));
        }
        if buf.len() > MAX_REQUEST || Instant::now() > deadline {
            return Ok(());
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    while buf.len() < head_end + body_len && Instant::now() < deadline {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    let token = token_of(&head, &body);
    let user = token.and_then(|t| tokens.iter().find(|(tok, _)| *tok == t).map(|(_, u)| u));
    // Usernames and tokens are generated by this crate from [a-z0-9-], so no JSON escaping is
    // needed.
    let json = match user {
        Some(user) => format!("{{\"active\":true,\"username\":\"{user}\",\"scope\":\"mail\"}}"),
        None => "{\"active\":false}".to_string(),
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// The token from any of the places Dovecot's `introspection_mode`s put it: a form body
/// (`post`), an `Authorization: Bearer` header (`auth`), or the end of the URL (`get`).
fn token_of<'a>(head: &'a str, body: &'a str) -> Option<&'a str> {
    if let Some(t) = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .filter(|t| !t.is_empty())
    {
        return Some(t);
    }
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("authorization") {
                if let Some(t) = v.trim().strip_prefix("Bearer ") {
                    return Some(t.trim());
                }
            }
        }
    }
    let target = head.lines().next()?.split(' ').nth(1)?;
    target.rsplit(['=', '/']).next().filter(|t| !t.is_empty())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_form_header_or_url() {
        assert_eq!(
            token_of("POST / HTTP/1.1", "token=abc&client_id="),
            Some("abc")
        );
        assert_eq!(
            token_of("GET / HTTP/1.1\r\nAuthorization: Bearer xyz", ""),
            Some("xyz")
        );
        assert_eq!(token_of("GET /introspect/t1 HTTP/1.1", ""), Some("t1"));
    }

    #[test]
    fn answers_active_only_for_known_token() {
        let server = Introspection::start(vec![("tok".into(), "user1".into())]);
        let ask = |token: &str| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            let body = format!("token={token}");
            write!(
                s,
                "POST /introspect HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        assert!(ask("tok").contains("\"active\":true,\"username\":\"user1\""));
        assert!(ask("nope").contains("\"active\":false"));
        assert_eq!(server.requests(), 2);
    }
}
