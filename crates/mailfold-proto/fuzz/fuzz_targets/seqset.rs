//! Sequence sets: parsing arbitrary bytes never panics or expands; a parsed set prints back to
//! a set that parses to the same value; size and chunking stay lazy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailfold_proto::seqset::UidSet;

fuzz_target!(|data: &[u8]| {
    let Ok(set) = UidSet::parse(data) else {
        return;
    };
    let printed = set.to_string();
    let again = UidSet::parse(printed.as_bytes()).expect("printed set must parse");
    assert_eq!(again, set);
    assert_eq!(again.len(), set.len());
    // Chunking a set of up to 4 billion numbers must cost time in ranges, not numbers.
    let mut total = 0u64;
    for (i, c) in set.chunks(1 << 20).enumerate() {
        total += c.len();
        if i > 10_000 {
            break;
        }
    }
    assert!(total <= set.len());
    let _ = set.iter().take(1000).count();
});
