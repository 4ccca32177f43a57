//! Modified UTF-7: decoding arbitrary bytes never panics; whatever decodes re-encodes to the
//! same bytes (the decoder accepts only canonical forms); any string round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailfold_proto::utf7::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = decode(data) {
        assert_eq!(encode(&s).as_bytes(), data, "non-canonical form accepted");
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let wire = encode(s);
        assert!(wire.is_ascii());
        assert_eq!(decode(wire.as_bytes()).as_deref(), Ok(s));
    }
});
