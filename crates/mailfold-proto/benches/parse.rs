//! Parser throughput: the same synthetic server streams parsed by mailfold's streaming
//! parser, `imap-proto` and `imap-codec`, reported as bytes per second.
//!
//! Streams:
//! - `flags`: `* n FETCH (UID n FLAGS (\Seen))` lines (the bulk of a flag resync);
//! - `envelope`: FETCH lines with UID, FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE and a
//!   multipart BODYSTRUCTURE with extension data (a header listing);
//! - `literals`: `BODY[]` literals of 10–100 KB (a body download).
//!
//! mailfold is fed in 64 KiB pieces, as a socket read would hand them over, and every
//! event is consumed; the peers parse the whole buffer in place (their best case).
//! Results and the command used are in `docs/parser-bench.md`.

// criterion's macros generate an undocumented public `benches` function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use imap_codec::decode::Decoder;
use mailfold_proto::parse::{parse_response, Event, ParserConfig, ResponseParser};

fn flags_stream() -> Vec<u8> {
    let mut s = Vec::new();
    for i in 1..=100_000u32 {
        s.extend_from_slice(format!("* {i} FETCH (UID {} FLAGS (\\Seen))\r\n", i * 3).as_bytes());
    }
    s
}

fn envelope_stream() -> Vec<u8> {
    let mut s = Vec::new();
    for i in 1..=10_000u32 {
        s.extend_from_slice(
            format!(
                "* {i} FETCH (UID {uid} FLAGS (\\Seen \\Answered $Forwarded) \
INTERNALDATE \"17-Jul-2023 02:44:25 -0700\" RFC822.SIZE {size} \
ENVELOPE (\"Mon, 17 Jul 2023 02:23:25 -0700\" \"Re: quarterly numbers, part {i}\" \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((NIL NIL \"imap\" \"cac.washington.edu\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) \
((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")) NIL \"<B27396-{i}@cac.washington.edu>\" \
\"<B27397-{i}@cac.washington.edu>\") \
BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"UTF-8\") NIL NIL \"QUOTED-PRINTABLE\" 1315 42 NIL NIL NIL NIL)\
(\"TEXT\" \"HTML\" (\"CHARSET\" \"UTF-8\") NIL NIL \"QUOTED-PRINTABLE\" 5036 100 NIL NIL NIL NIL) \
\"ALTERNATIVE\" (\"BOUNDARY\" \"b1_{i}\") NIL NIL NIL))\r\n",
                uid = i * 3,
                size = 4000 + i
            )
            .as_bytes(),
        );
    }
    s
}

fn literal_stream() -> Vec<u8> {
    let mut s = Vec::new();
    // Sizes cycle through 10 KB .. 100 KB; the body is printable text with CRLFs.
    let line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n";
    for i in 0..200u32 {
        let len = 10_000 + (i as usize * 7_919) % 90_001;
        s.extend_from_slice(
            format!("* {} FETCH (UID {} BODY[] {{{len}}}\r\n", i + 1, i + 1).as_bytes(),
        );
        let mut body = Vec::with_capacity(len);
        while body.len() < len {
            let take = line.len().min(len - body.len());
            body.extend_from_slice(&line[..take]);
        }
        s.extend_from_slice(&body);
        s.extend_from_slice(b")\r\n");
    }
    s
}

/// mailfold, streaming: returns a checksum of what it saw so nothing is optimised away.
fn mailfold_stream(input: &[u8]) -> usize {
    let mut p = ResponseParser::new(ParserConfig {
        expect_greeting: false,
        ..ParserConfig::default()
    });
    let mut n = 0;
    for chunk in input.chunks(64 * 1024) {
        p.feed(chunk);
        while let Some(ev) = p.next() {
            match ev {
                Ok(Event::Response(r)) => {
                    n += 1;
                    black_box(&r);
                }
                Ok(Event::BodyChunk(b)) => n += b.len() & 1,
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
    n
}

/// mailfold, whole buffer: `parse_response` in a loop (all literals inlined).
fn mailfold_whole(mut input: &[u8]) -> usize {
    let mut n = 0;
    while !input.is_empty() {
        let (r, used) = parse_response(input).expect("valid stream");
        black_box(&r);
        input = &input[used..];
        n += 1;
    }
    n
}

fn imap_proto_parse(mut input: &[u8]) -> usize {
    let mut n = 0;
    while !input.is_empty() {
        let (rest, r) = imap_proto::Response::parse(input).expect("imap-proto parses");
        black_box(&r);
        input = rest;
        n += 1;
    }
    n
}

fn imap_codec_parse(mut input: &[u8]) -> usize {
    let codec = imap_codec::ResponseCodec::default();
    let mut n = 0;
    while !input.is_empty() {
        let (rest, r) = codec.decode(input).expect("imap-codec parses");
        black_box(&r);
        input = rest;
        n += 1;
    }
    n
}

fn bench(c: &mut Criterion) {
    for (name, stream) in [
        ("flags", flags_stream()),
        ("envelope", envelope_stream()),
        ("literals", literal_stream()),
    ] {
        // All parsers must agree on the number of responses before they are timed.
        let responses = mailfold_whole(&stream);
        assert_eq!(imap_proto_parse(&stream), responses);
        assert_eq!(imap_codec_parse(&stream), responses);
        assert!(mailfold_stream(&stream) >= responses);

        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.sample_size(20);
        g.bench_with_input(BenchmarkId::new("mailfold", "stream"), &stream, |b, s| {
            b.iter(|| mailfold_stream(s))
        });
        g.bench_with_input(BenchmarkId::new("mailfold", "whole"), &stream, |b, s| {
            b.iter(|| mailfold_whole(s))
        });
        g.bench_with_input(BenchmarkId::new("imap-proto", "whole"), &stream, |b, s| {
            b.iter(|| imap_proto_parse(s))
        });
        g.bench_with_input(BenchmarkId::new("imap-codec", "whole"), &stream, |b, s| {
            b.iter(|| imap_codec_parse(s))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);

/// `MAILFOLD_PARSE_MIN=<stream>`: the four parsers run in turn, 40 rounds, and the fastest
/// pass of each is printed. On a shared, loaded machine the minimum is the least disturbed
/// measurement, and interleaving exposes every parser to the same load.
fn best_of(stream: &str) {
    let input = match stream {
        "flags" => flags_stream(),
        "envelope" => envelope_stream(),
        "literals" => literal_stream(),
        other => panic!("unknown stream {other}"),
    };
    type Parser = fn(&[u8]) -> usize;
    let parsers: [(&str, Parser); 4] = [
        ("mailfold stream", mailfold_stream),
        ("mailfold whole", mailfold_whole),
        ("imap-proto", imap_proto_parse),
        ("imap-codec", imap_codec_parse),
    ];
    let mut best = [f64::MAX; 4];
    for _ in 0..40 {
        for (i, (_, f)) in parsers.iter().enumerate() {
            let t = std::time::Instant::now();
            black_box(f(black_box(&input)));
            best[i] = best[i].min(t.elapsed().as_secs_f64());
        }
    }
    for (i, (name, _)) in parsers.iter().enumerate() {
        println!(
            "{stream} {name}: {:.2} ms, {:.0} MB/s",
            best[i] * 1e3,
            input.len() as f64 / best[i] / 1e6
        );
    }
}

/// `MAILFOLD_PARSE_ONCE=<stream>:<parser>` runs a single pass of one parser over one stream
/// and exits, for instruction counting under `valgrind --tool=callgrind` (criterion's
/// repeated timing loop would drown the count); `<parser>` `none` only builds the stream,
/// so its count is the baseline to subtract. Streams: flags, envelope, literals; parsers:
/// stream, whole, imap-proto, imap-codec, none.
fn main() {
    if let Ok(spec) = std::env::var("MAILFOLD_PARSE_ONCE") {
        let (stream, parser) = spec.split_once(':').expect("<stream>:<parser>");
        let input = match stream {
            "flags" => flags_stream(),
            "envelope" => envelope_stream(),
            "literals" => literal_stream(),
            other => panic!("unknown stream {other}"),
        };
        let n = match parser {
            "stream" => mailfold_stream(&input),
            "whole" => mailfold_whole(&input),
            "imap-proto" => imap_proto_parse(&input),
            "imap-codec" => imap_codec_parse(&input),
            "none" => input.len(),
            other => panic!("unknown parser {other}"),
        };
        println!("{spec}: {n}");
        return;
    }
    if let Ok(stream) = std::env::var("MAILFOLD_PARSE_MIN") {
        best_of(&stream);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
