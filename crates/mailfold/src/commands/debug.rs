//! `mailfold debug parse`: reads a raw server byte stream and prints one JSON object per
//! response, so a user can see exactly what a misbehaving server sent and where it went wrong.

use std::io::{self, BufWriter, Read, Write};

use mailfold_sync::inspect::transcript::{Transcript, TranscriptEvent};
use serde_json::json;

/// What a parse run found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ParseSummary {
    /// Responses parsed.
    pub responses: u64,
    /// Malformed responses (each reported, then skipped).
    pub errors: u64,
    /// Bytes left over at the end that did not form a complete response.
    pub trailing: usize,
}

impl ParseSummary {
    /// True when every response parsed and nothing was left over.
    pub fn all_parsed(&self) -> bool {
        self.errors == 0 && self.trailing == 0
    }
}

/// Parses `input` as a server stream and writes one JSON line per response to `out`.
///
/// Large FETCH bodies are not printed: a `body_start` object gives the item and size, and the
/// final FETCH response says the body was streamed. Errors are printed as
/// `{"error": …, "offset": …, "expected": …}` and parsing continues after them.
pub fn parse_stream(
    input: &mut dyn Read,
    out: &mut dyn Write,
    greeting: bool,
) -> io::Result<ParseSummary> {
    let mut parser = Transcript::new(greeting);
    let mut out = BufWriter::new(out);
    let mut summary = ParseSummary::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut body_bytes: u64 = 0;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        parser.feed(&buf[..n]);
        while let Some(ev) = parser.next() {
            let line = match ev {
                TranscriptEvent::Response(r) => {
                    summary.responses += 1;
                    serde_json::to_value(&r).map_err(io::Error::other)?
                }
                TranscriptEvent::BodyStart { seq, item, len } => {
                    body_bytes = 0;
                    json!({ "body_start": { "seq": seq, "item": item, "len": len } })
                }
                TranscriptEvent::BodyChunk(n) => {
                    body_bytes += n as u64;
                    continue;
                }
                TranscriptEvent::BodyEnd => json!({ "body_end": { "bytes": body_bytes } }),
                TranscriptEvent::Error(e) => {
                    summary.errors += 1;
                    json!({
                        "error": e.message,
                        "offset": e.offset,
                        "expected": e.expected,
                        "kind": e.kind,
                    })
                }
            };
            serde_json::to_writer(&mut out, &line).map_err(io::Error::other)?;
            out.write_all(b"\n")?;
        }
    }
    summary.trailing = parser.buffered();
    if summary.trailing > 0 {
        let line = json!({
            "error": format!("stream ended inside a response ({} bytes left over)", summary.trailing),
            "offset": parser.offset(),
        });
        serde_json::to_writer(&mut out, &line).map_err(io::Error::other)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (ParseSummary, Vec<serde_json::Value>) {
        let mut out = Vec::new();
        let s = parse_stream(&mut &input[..], &mut out, true).unwrap();
        let lines = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (s, lines)
    }

    #[test]
    fn one_json_object_per_response() {
        let (s, lines) = run(b"* OK hi\r\n* 3 EXISTS\r\na1 OK done\r\n");
        assert_eq!(s.responses, 3);
        assert!(s.all_parsed());
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn malformed_response_is_reported_and_parsing_goes_on() {
        let (s, lines) = run(b"* OK hi\r\n* 1 FETCH (UID x)\r\n* 4 EXISTS\r\n");
        assert_eq!(s.responses, 2);
        assert_eq!(s.errors, 1);
        assert!(!s.all_parsed());
        assert!(lines[1]["offset"].as_u64().is_some(), "{}", lines[1]);
        assert!(lines[1]["error"].is_string());
    }

    #[test]
    fn truncated_stream_is_not_success() {
        let (s, _) = run(b"* OK hi\r\n* 4 EXI");
        assert!(!s.all_parsed());
    }
}
