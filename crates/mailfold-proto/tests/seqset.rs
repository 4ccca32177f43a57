//! Sequence sets: compact form (seed V0060), parsing errors, lazy iteration, chunking, and
//! decode→encode→decode round trips.

use mailfold_proto::seqset::{parse_items, SeqItem, SeqSet, Star, UidSet};
use proptest::prelude::*;

#[test]
fn v0060_non_contiguous_uids_compact_to_ranges() {
    let s = UidSet::from_numbers([12, 1, 2, 3, 4, 5, 7, 9, 10, 11, 3]).unwrap();
    assert_eq!(s.to_string(), "1:5,7,9:12");
    assert_eq!(s.len(), 10);
    assert!(s.contains(7) && !s.contains(6) && !s.contains(8) && !s.contains(13));
    // Gaps are kept exactly: nothing assumes UIDs are contiguous.
    assert_eq!(
        s.iter().collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 7, 9, 10, 11, 12]
    );
}

#[test]
fn full_range_is_never_expanded() {
    let s: UidSet = "1:4294967295".parse().unwrap();
    assert_eq!(s.len(), 4_294_967_295);
    assert_eq!(s.ranges().len(), 1);
    // Lazy: taking a few from the front and checking the bounds costs nothing.
    assert_eq!(s.iter().take(3).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(s.iter().size_hint().0 as u64, 4_294_967_295);
    assert!(s.contains(u32::MAX));
    let chunks: Vec<_> = s.chunks(1_000_000_000).collect();
    assert_eq!(chunks.len(), 5);
    assert_eq!(chunks[0].to_string(), "1:1000000000");
    assert_eq!(chunks[4].to_string(), "4000000001:4294967295");
}

#[test]
fn parse_accepts_wire_forms_and_normalises() {
    let s: SeqSet = "5:3,1,2,*".parse().unwrap();
    assert_eq!(s.to_string(), "1:5,*");
    let s: SeqSet = "*:4".parse().unwrap();
    assert_eq!(s.star(), Some(Star::From(4)));
    assert_eq!(s.to_string(), "4:*");
    let s: UidSet = "1:*,*".parse().unwrap();
    assert_eq!(s.to_string(), "1:*");
    assert_eq!(s.resolve(7).to_string(), "1:7");
    let s: UidSet = "10:*".parse().unwrap();
    assert_eq!(s.resolve(7).to_string(), "7:10");
    assert!(UidSet::largest().resolve(0).is_empty());
}

#[test]
fn parse_errors_name_the_offset() {
    let e = SeqSet::parse(b"1,2,").unwrap_err();
    assert_eq!((e.offset, e.reason), (3, "sequence set ends with a comma"));
    assert_eq!(SeqSet::parse(b"").unwrap_err().reason, "empty sequence set");
    assert_eq!(SeqSet::parse(b"1,,2").unwrap_err().offset, 2);
    assert_eq!(SeqSet::parse(b"0").unwrap_err().offset, 0);
    assert_eq!(SeqSet::parse(b"3:0").unwrap_err().offset, 2);
    assert_eq!(
        SeqSet::parse(b"4294967296").unwrap_err().reason,
        "number larger than 4294967295"
    );
    assert_eq!(SeqSet::parse(b"1 2").unwrap_err().offset, 1);
    assert_eq!(SeqSet::parse(b"1:").unwrap_err().offset, 2);
    assert!(SeqSet::parse(b"99999999999999999999999999").is_err());
}

#[test]
fn parse_items_keeps_wire_order_for_copyuid() {
    let items = parse_items(b"304,319:320,5:3,*").unwrap();
    assert_eq!(
        items,
        vec![
            SeqItem::Range(304, 304),
            SeqItem::Range(319, 320),
            SeqItem::Range(5, 3),
            SeqItem::Star(Star::Largest)
        ]
    );
}

#[test]
fn insert_and_remove_ranges() {
    let mut s = UidSet::range(1, 100).unwrap();
    s.remove_range(10, 20);
    s.remove(50);
    assert_eq!(s.to_string(), "1:9,21:49,51:100");
    assert_eq!(s.len(), 9 + 29 + 50);
    s.insert_range(5, 60).unwrap();
    assert_eq!(s.to_string(), "1:100");
    s.remove_range(1, u32::MAX);
    assert!(s.is_empty());
    assert!(s.insert_range(0, 5).is_err());
}

#[test]
fn chunks_by_wire_len_respect_the_budget() {
    let s = UidSet::from_numbers((1..=2000).map(|n| n * 2)).unwrap();
    let chunks: Vec<_> = s.chunks_by_wire_len(100).collect();
    assert!(chunks.iter().all(|c| c.wire_len() <= 100 && !c.is_empty()));
    let total: u64 = chunks.iter().map(|c| c.len()).sum();
    assert_eq!(total, 2000);
    let mut joined = UidSet::new();
    for c in &chunks {
        joined.extend_from(c);
    }
    assert_eq!(joined, s);
    // The star form travels in the last chunk.
    let s: UidSet = "1,3,5,7:*".parse().unwrap();
    let chunks: Vec<_> = s.chunks(2).collect();
    assert_eq!(
        chunks.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        ["1,3", "5,7:*"]
    );
}

proptest! {
    #[test]
    fn from_numbers_matches_a_naive_set(nums in proptest::collection::vec(1u32..300, 0..200)) {
        let s = UidSet::from_numbers(nums.iter().copied()).unwrap();
        let mut naive: Vec<u32> = nums.clone();
        naive.sort_unstable();
        naive.dedup();
        prop_assert_eq!(s.iter().collect::<Vec<_>>(), naive.clone());
        prop_assert_eq!(s.len(), naive.len() as u64);
        for n in 0..310 {
            prop_assert_eq!(s.contains(n), naive.binary_search(&n).is_ok());
        }
        // Ranges are maximal: no two are adjacent.
        let r: Vec<_> = s.ranges().collect();
        prop_assert!(r.windows(2).all(|w| w[0].1 + 1 < w[1].0));
    }

    #[test]
    fn display_parse_round_trips(nums in proptest::collection::vec(1u32.., 1..50), star in 0u32..3) {
        let mut s = SeqSet::from_numbers(nums).unwrap();
        s.set_star(match star { 0 => None, 1 => Some(Star::Largest), _ => Some(Star::From(9)) });
        let wire = s.to_string();
        prop_assert_eq!(wire.len(), s.wire_len());
        let back: SeqSet = wire.parse().unwrap();
        prop_assert_eq!(&back, &s);
        prop_assert_eq!(back.to_string(), wire);
    }

    #[test]
    fn parse_of_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let _ = SeqSet::parse(&bytes);
        let _ = parse_items(&bytes);
    }

    #[test]
    fn chunks_partition_the_set(nums in proptest::collection::vec(1u32..1000, 1..100), max in 1u64..20, bytes in 1usize..40) {
        let s = UidSet::from_numbers(nums).unwrap();
        let mut joined = UidSet::new();
        let mut count = 0;
        for c in s.chunks(max) {
            prop_assert!(c.len() <= max && !c.is_empty());
            count += c.len();
            joined.extend_from(&c);
        }
        prop_assert_eq!(count, s.len());
        prop_assert_eq!(&joined, &s);
        let mut joined = UidSet::new();
        for c in s.chunks_by_wire_len(bytes) {
            prop_assert!(c.wire_len() <= bytes || c.ranges().len() == 1);
            joined.extend_from(&c);
        }
        prop_assert_eq!(&joined, &s);
    }

    #[test]
    fn insert_remove_match_a_naive_set(ops in proptest::collection::vec((any::<bool>(), 1u32..60, 1u32..60), 0..60)) {
        let mut s = UidSet::new();
        let mut naive = std::collections::BTreeSet::new();
        for (add, a, b) in ops {
            let (lo, hi) = (a.min(b), a.max(b));
            if add {
                s.insert_range(a, b).unwrap();
                naive.extend(lo..=hi);
            } else {
                s.remove_range(a, b);
                for n in lo..=hi { naive.remove(&n); }
            }
        }
        prop_assert_eq!(s.iter().collect::<Vec<_>>(), naive.into_iter().collect::<Vec<_>>());
    }
}
