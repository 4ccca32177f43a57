//! Framing: any byte stream, any caps, never panics; every frame found lies inside the buffer
//! and respects the caps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailfold_proto::framing::{Frame, Framer, FramingConfig};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // Small caps make the cap paths reachable.
    let cfg = FramingConfig {
        max_line: 16 + usize::from(data[0]) * 4,
        max_inline_literal: u64::from(data[1]),
        max_response: 64 + usize::from(data[0]) * 16,
    };
    let mut framer = Framer::new(cfg);
    let mut buf = &data[2..];
    // Feed growing prefixes the way a socket would, resuming the scan each time.
    let mut avail = 1;
    while !buf.is_empty() {
        let view = &buf[..avail.min(buf.len())];
        match framer.frame(view) {
            Ok(Some(Frame::Complete { len })) => {
                assert!(len > 0 && len <= view.len());
                // An inlined literal may end at max_response; the line after it adds at most
                // max_line bytes plus CRLF.
                assert!(len <= cfg.max_response + cfg.max_line + 2);
                buf = &buf[len..];
                avail = 1;
            }
            Ok(Some(Frame::LargeLiteral { header_start, data_start, len })) => {
                assert!(header_start < data_start);
                assert!(len > cfg.max_inline_literal);
                let skip = (data_start as u64).saturating_add(len);
                let skip = usize::try_from(skip).unwrap_or(usize::MAX).min(buf.len());
                buf = &buf[skip..];
                avail = 1;
            }
            Ok(None) => {
                if avail >= buf.len() {
                    break;
                }
                avail += 7;
            }
            Err(_) => {
                framer.reset();
                // Skip one line, as the parser's resynchronisation does.
                let skip = buf.iter().position(|&b| b == b'\n').map_or(buf.len(), |p| p + 1);
                buf = &buf[skip..];
                avail = 1;
            }
        }
    }
});
