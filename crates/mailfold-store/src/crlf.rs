//! Line-end conversion between the wire (CRLF) and Maildir files (LF), and
//! the content hash and size of a message's canonical CRLF form.
//!
//! Files hold LF line ends, as Dovecot's Maildir and mutt write them. The two
//! conversions are: *to LF* replaces every `CR LF` pair by `LF` (a lone `CR`
//! is kept); *to CRLF* replaces every `LF` not already preceded by `CR` by
//! `CR LF`. A file mailfold wrote (LF ends) therefore uploads exactly as the
//! server sent it, and a file that already has CRLF ends (a Windows `.eml`
//! dropped into the Maildir) uploads with CRLF, never with the bare `CR` of a
//! `CR CR LF` that RFC 5322 2.3 forbids. The *canonical form* of a message is
//! to-CRLF(file); it equals the server's bytes whenever the server's copy has
//! no bare LF and no bare CR before a line end, and both the hash and the
//! size are defined on it, so a hash computed while downloading agrees with
//! one computed later from the file.

use sha2::{Digest, Sha256};
use std::io::{self, Read};

/// SHA-256 of a message's canonical CRLF form. The type is the planner's (a row's hash goes
/// into a plan unconverted); this module is where it is computed.
pub use mailfold_plan::ContentHash;

/// The hash of a whole message given in wire (CRLF) form.
pub fn hash_of_wire(bytes: &[u8]) -> ContentHash {
    let mut conv = WireToFile::new();
    let mut buf = Vec::with_capacity(bytes.len());
    conv.push(bytes, &mut buf);
    conv.finish(&mut buf).0
}

/// Streaming CRLF → LF conversion, correct when a `CR LF` pair is split
/// across two chunks.
#[derive(Debug, Default)]
pub struct CrlfToLf {
    /// The previous chunk ended in `CR`, not yet written.
    held_cr: bool,
}

impl CrlfToLf {
    /// A converter at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Converts one chunk, appending the result to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut rest = chunk;
        if self.held_cr {
            self.held_cr = false;
            match rest.first() {
                None => {
                    self.held_cr = true;
                    return;
                }
                Some(b'\n') => {
                    out.push(b'\n');
                    rest = &rest[1..];
                }
                Some(_) => out.push(b'\r'),
            }
        }
        let mut i = 0;
        while i < rest.len() {
            match memchr::memchr(b'\r', &rest[i..]) {
                None => {
                    out.extend_from_slice(&rest[i..]);
                    return;
                }
                Some(p) => {
                    let cr = i + p;
                    out.extend_from_slice(&rest[i..cr]);
                    match rest.get(cr + 1) {
                        None => {
                            self.held_cr = true;
                            return;
                        }
                        Some(b'\n') => {
                            out.push(b'\n');
                            i = cr + 2;
                        }
                        Some(_) => {
                            out.push(b'\r');
                            i = cr + 1;
                        }
                    }
                }
            }
        }
    }

    /// Ends the message: a final lone `CR` is kept.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.held_cr {
            self.held_cr = false;
            out.push(b'\r');
        }
    }
}

/// Hash and length of the canonical CRLF form, fed with LF-form bytes.
#[derive(Debug, Clone, Default)]
pub struct CanonicalDigest {
    hasher: Sha256,
    crlf_len: u64,
    lf_len: u64,
    /// The last byte fed was a `CR` (an `LF` right after it needs no `CR` of its own).
    prev_cr: bool,
}

impl CanonicalDigest {
    /// A fresh digest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds LF-form bytes (each `LF` not preceded by `CR` counts as `CR LF`).
    pub fn update_lf(&mut self, lf: &[u8]) {
        self.lf_len += lf.len() as u64;
        for (i, line) in lf.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                if self.prev_cr {
                    self.hasher.update(b"\n");
                    self.crlf_len += 1;
                } else {
                    self.hasher.update(b"\r\n");
                    self.crlf_len += 2;
                }
                self.prev_cr = false;
            }
            self.hasher.update(line);
            self.crlf_len += line.len() as u64;
            if let Some(&last) = line.last() {
                self.prev_cr = last == b'\r';
            }
        }
    }

    /// Feeds canonical bytes as they are.
    fn hash(&mut self, canonical: &[u8]) {
        self.hasher.update(canonical);
        self.crlf_len += canonical.len() as u64;
    }

    /// The hash, the canonical CRLF length and the LF (file) length.
    pub fn finish(self) -> (ContentHash, u64, u64) {
        (
            ContentHash(self.hasher.finalize().into()),
            self.crlf_len,
            self.lf_len,
        )
    }
}

/// Wire (CRLF) bytes to file (LF) bytes and the canonical digest of the
/// result, in one pass over each chunk: the same output as [`CrlfToLf`]
/// followed by [`CanonicalDigest::update_lf`] on what it produced, without
/// walking the converted bytes a second time (every byte of every download
/// passes through here, so a second walk would cost CPU on every sync).
///
/// The canonical form equals the wire bytes except around a bare `LF` (the
/// canonical form has `CR LF`) and a `CR CR LF` (it has `CR LF`: the file
/// holds `CR LF`, and an `LF` after a `CR` gets no `CR` of its own). So the
/// hasher is fed whole runs of the wire chunk as they are, and only those
/// two exceptions are fed separately.
#[derive(Debug, Default)]
pub struct WireToFile {
    /// The previous chunk ended in `CR`, not yet written nor hashed.
    held_cr: bool,
    digest: CanonicalDigest,
}

impl WireToFile {
    /// A converter at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Converts one chunk, appending the file bytes to `out` and feeding
    /// the digest.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        // `i`: next wire byte to convert; `h`: first wire byte not yet hashed.
        let mut i = 0;
        let mut h = 0;
        if self.held_cr {
            let Some(first) = self.resume_held_cr(chunk, out) else {
                return;
            };
            i = first;
            h = first;
        }
        // memchr2: a vectorised search; a byte-at-a-time scan of every body byte was the
        // largest user-space cost of an initial sync.
        while let Some(p) = memchr::memchr2(b'\r', b'\n', &chunk[i..]) {
            let j = i + p;
            out.extend_from_slice(&chunk[i..j]);
            if j > i {
                // The run holds neither CR nor LF, so it does not end in CR.
                self.digest.prev_cr = false;
            }
            if chunk[j] == b'\n' {
                // A bare LF: the file keeps it; the canonical form has `CR LF` unless
                // the byte before it in the file is a `CR`.
                out.push(b'\n');
                if !self.digest.prev_cr {
                    self.digest.hash(&chunk[h..j]);
                    self.digest.hash(b"\r\n");
                    h = j + 1;
                }
                self.digest.prev_cr = false;
                i = j + 1;
                continue;
            }
            match chunk.get(j + 1) {
                None => {
                    // Whether this CR starts a line end is known with the next chunk.
                    self.digest.hash(&chunk[h..j]);
                    self.held_cr = true;
                    self.digest.lf_len += (out.len() - start) as u64;
                    return;
                }
                Some(b'\n') => {
                    out.push(b'\n');
                    if self.digest.prev_cr {
                        // `CR CR LF`: the file has `CR LF`, canonical as it is.
                        self.digest.hash(&chunk[h..j]);
                        h = j + 1;
                    }
                    self.digest.prev_cr = false;
                    i = j + 2;
                }
                Some(_) => {
                    // A lone CR is kept, and is canonical as it is.
                    out.push(b'\r');
                    self.digest.prev_cr = true;
                    i = j + 1;
                }
            }
        }
        out.extend_from_slice(&chunk[i..]);
        if i < chunk.len() {
            self.digest.prev_cr = false;
        }
        self.digest.hash(&chunk[h..]);
        self.digest.lf_len += (out.len() - start) as u64;
    }

    /// Settles a `CR` held from the previous chunk against the first byte of
    /// `chunk`, writing and hashing it: the index of the first wire byte
    /// left to convert and hash, or `None` (still held) for an empty chunk.
    fn resume_held_cr(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        match chunk.first() {
            None => None,
            Some(b'\n') => {
                // The pair was split: one line end. The `CR` was not hashed.
                self.held_cr = false;
                out.push(b'\n');
                self.line_end();
                Some(1)
            }
            Some(_) => {
                self.held_cr = false;
                out.push(b'\r');
                self.digest.hash(b"\r");
                self.digest.prev_cr = true;
                Some(0)
            }
        }
    }

    /// A line end whose `CR` was held: canonical `CR LF`, or `LF` after a `CR`.
    fn line_end(&mut self) {
        if self.digest.prev_cr {
            self.digest.hash(b"\n");
        } else {
            self.digest.hash(b"\r\n");
        }
        self.digest.prev_cr = false;
    }

    /// Ends the message (a final lone `CR` is kept) and returns the hash,
    /// the canonical CRLF length and the file (LF) length.
    pub fn finish(mut self, out: &mut Vec<u8>) -> (ContentHash, u64, u64) {
        if self.held_cr {
            self.held_cr = false;
            out.push(b'\r');
            self.digest.hash(b"\r");
            self.digest.lf_len += 1;
        }
        self.digest.finish()
    }
}

/// Reads an LF-form message and yields its canonical CRLF form, in bounded
/// memory.
#[derive(Debug)]
pub struct LfToCrlf<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// A `CR` was emitted for the `LF` at `buf[start]`, which is still due.
    owe_lf: bool,
    /// The last input byte passed through was a `CR`.
    prev_cr: bool,
}

impl<R: Read> LfToCrlf<R> {
    /// Wraps a reader of LF-form bytes.
    pub fn new(inner: R) -> Self {
        LfToCrlf {
            inner,
            buf: vec![0u8; 64 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
            owe_lf: false,
            prev_cr: false,
        }
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for LfToCrlf<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.start == self.end {
            self.start = 0;
            self.end = loop {
                match self.inner.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if self.end == 0 {
                return Ok(0);
            }
        }
        let mut n = 0;
        while n < out.len() && self.start < self.end {
            let b = self.buf[self.start];
            if b == b'\n' && !self.owe_lf && !self.prev_cr {
                out[n] = b'\r';
                self.owe_lf = true;
            } else {
                out[n] = b;
                self.owe_lf = false;
                self.prev_cr = b == b'\r';
                self.start += 1;
            }
            n += 1;
        }
        Ok(n)
    }
}

/// Scans LF-form bytes and returns (canonical CRLF length, hash), reading
/// in fixed-size blocks.
pub fn canonical_digest_of<R: Read>(mut r: R) -> io::Result<(ContentHash, u64)> {
    let mut d = CanonicalDigest::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        d.update_lf(&buf[..n]);
    }
    let (h, crlf, _) = d.finish();
    Ok((h, crlf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Just;

    fn to_lf_chunks(input: &[u8], chunks: &[usize]) -> Vec<u8> {
        let mut c = CrlfToLf::new();
        let mut out = Vec::new();
        let mut rest = input;
        for &n in chunks {
            let n = n.min(rest.len());
            c.push(&rest[..n], &mut out);
            rest = &rest[n..];
        }
        c.push(rest, &mut out);
        c.finish(&mut out);
        out
    }

    #[test]
    fn crlf_to_lf_at_every_split_point() {
        let wire = b"A: b\r\n\r\nline\r\r\n\rx\r\n\n end\r";
        let expect = b"A: b\n\nline\r\n\rx\n\n end\r".to_vec();
        for i in 0..=wire.len() {
            for j in i..=wire.len() {
                assert_eq!(to_lf_chunks(wire, &[i, j - i]), expect, "split {i} {j}");
            }
        }
        // One byte at a time, with empty chunks in between.
        let mut c = CrlfToLf::new();
        let mut out = Vec::new();
        for b in wire {
            c.push(&[], &mut out);
            c.push(std::slice::from_ref(b), &mut out);
        }
        c.finish(&mut out);
        assert_eq!(out, expect);
    }

    /// The one-pass converter against the two passes it replaces, for a chunking.
    fn both_ways(wire: &[u8], cuts: &[usize]) {
        let mut two = CrlfToLf::new();
        let mut d = CanonicalDigest::new();
        let mut one = WireToFile::new();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut rest = wire;
        for &n in cuts.iter().chain(std::iter::once(&usize::MAX)) {
            let n = n.min(rest.len());
            let mut part = Vec::new();
            two.push(&rest[..n], &mut part);
            d.update_lf(&part);
            a.extend_from_slice(&part);
            one.push(&rest[..n], &mut b);
            rest = &rest[n..];
        }
        let mut part = Vec::new();
        two.finish(&mut part);
        d.update_lf(&part);
        a.extend_from_slice(&part);
        let got = one.finish(&mut b);
        assert_eq!(b, a, "file bytes, cuts {cuts:?}");
        assert_eq!(got, d.finish(), "digest, cuts {cuts:?}");
        assert_eq!(got.2, b.len() as u64);
    }

    #[test]
    fn one_pass_equals_two_passes_at_every_split_point() {
        let wire = b"A: b\r\n\r\nline\r\r\n\rx\r\n\n end\n\r\n\r\r\r\n\n\nz\r";
        for i in 0..=wire.len() {
            for j in i..=wire.len() {
                both_ways(wire, &[i, j - i]);
            }
        }
        both_ways(wire, &[1; 64]);
        both_ways(b"", &[]);
        both_ways(b"\r", &[0, 0]);
        assert_eq!(
            hash_of_wire(b"a\r\nb\r\n"),
            ContentHash(Sha256::digest(b"a\r\nb\r\n").into())
        );
    }

    proptest::proptest! {
        #[test]
        fn one_pass_equals_two_passes_on_any_bytes(
            wire in proptest::collection::vec(
                proptest::prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), proptest::num::u8::ANY],
                0..200,
            ),
            cuts in proptest::collection::vec(0usize..40, 0..8),
        ) {
            both_ways(&wire, &cuts);
        }
    }

    #[test]
    fn lf_to_crlf_inverts_and_digest_agrees() {
        let lf = b"a\n\r\nb\r\rc\n";
        let mut r = LfToCrlf::new(&lf[..]);
        let mut crlf = Vec::new();
        let mut small = [0u8; 3];
        loop {
            let n = r.read(&mut small).unwrap();
            if n == 0 {
                break;
            }
            crlf.extend_from_slice(&small[..n]);
        }
        // The CR LF already in the file stays one line end: no bare CR is made.
        assert_eq!(crlf, b"a\r\n\r\nb\r\rc\r\n");
        assert_eq!(to_lf_chunks(&crlf, &[]), b"a\n\nb\r\rc\n");
        let (h, len) = canonical_digest_of(&lf[..]).unwrap();
        assert_eq!(len, crlf.len() as u64);
        assert_eq!(h, ContentHash(Sha256::digest(&crlf).into()));
        assert_eq!(hash_of_wire(&crlf), h);
        assert_eq!(ContentHash::from_hex(&h.to_string()), Some(h));
    }

    #[test]
    fn crlf_files_upload_as_crlf_at_every_split_point() {
        let file = b"From: a\r\nSubject: b\r\n\r\nbody\r\nlf only\n";
        let want = b"From: a\r\nSubject: b\r\n\r\nbody\r\nlf only\r\n".to_vec();
        for cut in 0..=file.len() {
            // The reader sees the file in two reads split at `cut`.
            let chained = io::Read::chain(&file[..cut], &file[cut..]);
            let mut got = Vec::new();
            LfToCrlf::new(chained).read_to_end(&mut got).unwrap();
            assert_eq!(got, want, "split at {cut}");
            let mut d = CanonicalDigest::new();
            d.update_lf(&file[..cut]);
            d.update_lf(&file[cut..]);
            let (h, len, _) = d.finish();
            assert_eq!(len, want.len() as u64, "split at {cut}");
            assert_eq!(
                h,
                ContentHash(Sha256::digest(&want).into()),
                "split at {cut}"
            );
        }
    }
}
