//! Sequence sets: compact sets of message sequence numbers ([`SeqSet`]) or UIDs ([`UidSet`]).
//!
//! Both are [`NumberSet`] with a different marker type, so the compiler refuses a sequence
//! number where a UID is meant (one of the classic IMAP client bugs) while the code exists
//! once. The representation is a sorted list of disjoint, non-adjacent inclusive ranges plus
//! at most one `*` form (`*` or `n:*`, RFC 3501 section 9 `seq-range`). Nothing here ever
//! expands a range: `1:4294967295` is one `(1, 4294967295)` entry, `len` is computed by
//! arithmetic, and iteration is lazy.
//!
//! UIDs are not assumed to be contiguous (seed V0060): a set built from `1,2,3,5,9,10` is
//! `1:3,5,9:10`, and the gaps are kept exactly. Zero is never a member (`nz-number`).
//!
//! `*` forms cannot be resolved without knowing the largest number in use in the selected
//! mailbox, so they are kept apart from the explicit ranges: [`NumberSet::contains`],
//! [`NumberSet::len`] and [`NumberSet::iter`] only see explicit numbers, and
//! [`NumberSet::resolve`] turns the `*` forms into explicit ranges once the caller knows that
//! largest number.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

/// Marks what a [`NumberSet`] counts. Sealed: the only kinds are [`Seq`] and [`Uid`].
pub trait SetKind: sealed::Sealed {
    /// Type name used in `Debug` output.
    const NAME: &'static str;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Seq {}
    impl Sealed for super::Uid {}
}

/// Marker: message sequence numbers (RFC 3501 2.3.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seq {}

/// Marker: unique identifiers (RFC 3501 2.3.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Uid {}

impl SetKind for Seq {
    const NAME: &'static str = "SeqSet";
}

impl SetKind for Uid {
    const NAME: &'static str = "UidSet";
}

/// A set of message sequence numbers.
pub type SeqSet = NumberSet<Seq>;

/// A set of UIDs.
pub type UidSet = NumberSet<Uid>;

/// The `*` part of a set: a number relative to the largest one in use in the mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Star {
    /// `*`: the largest number in use.
    Largest,
    /// `n:*`: from `n` (never 0) to the largest number in use.
    From(u32),
}

/// Why a set could not be parsed or built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqSetError {
    /// Byte offset in the parsed text (0 for errors that are not about parsing).
    pub offset: usize,
    /// What was wrong.
    pub reason: &'static str,
}

impl SeqSetError {
    fn at(offset: usize, reason: &'static str) -> Self {
        SeqSetError { offset, reason }
    }

    fn zero() -> Self {
        SeqSetError::at(0, "0 is not a valid sequence number or UID")
    }
}

impl fmt::Display for SeqSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid sequence set at byte {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for SeqSetError {}

/// A compact set of non-zero 32-bit numbers with an optional `*` form; see the module docs.
/// Use it through the aliases [`SeqSet`] and [`UidSet`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NumberSet<K: SetKind> {
    /// Sorted, disjoint, non-adjacent, inclusive; no range contains 0.
    ranges: Vec<(u32, u32)>,
    star: Option<Star>,
    kind: PhantomData<fn() -> K>,
}

impl<K: SetKind> Default for NumberSet<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: SetKind> NumberSet<K> {
    /// The empty set. It cannot be sent (the encoder rejects it) but is useful to build on.
    pub fn new() -> Self {
        NumberSet {
            ranges: Vec::new(),
            star: None,
            kind: PhantomData,
        }
    }

    /// A set of one number.
    pub fn single(n: u32) -> Result<Self, SeqSetError> {
        Self::range(n, n)
    }

    /// The range `a:b` (either order, as on the wire).
    pub fn range(a: u32, b: u32) -> Result<Self, SeqSetError> {
        let mut s = Self::new();
        s.insert_range(a, b)?;
        Ok(s)
    }

    /// `1:*`: every message.
    pub fn all() -> Self {
        Self::star_from(1)
    }

    /// `*`: the last message (or the largest UID).
    pub fn largest() -> Self {
        NumberSet {
            ranges: Vec::new(),
            star: Some(Star::Largest),
            kind: PhantomData,
        }
    }

    /// `n:*`. A zero `n` is taken as 1, since `0:*` can only have meant "everything".
    pub fn star_from(n: u32) -> Self {
        NumberSet {
            ranges: Vec::new(),
            star: Some(Star::From(n.max(1))),
            kind: PhantomData,
        }
    }

    /// Builds a set from numbers in any order, with duplicates and gaps (seed V0060). Runs in
    /// O(k log k) for k numbers; the result is as compact as possible.
    pub fn from_numbers(numbers: impl IntoIterator<Item = u32>) -> Result<Self, SeqSetError> {
        let mut ranges = Vec::new();
        for n in numbers {
            if n == 0 {
                return Err(SeqSetError::zero());
            }
            ranges.push((n, n));
        }
        Ok(Self::from_raw_ranges(ranges, None))
    }

    /// Builds a set from inclusive ranges in any order (each in either order).
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u32, u32)>) -> Result<Self, SeqSetError> {
        let mut v = Vec::new();
        for (a, b) in ranges {
            if a == 0 || b == 0 {
                return Err(SeqSetError::zero());
            }
            v.push((a.min(b), a.max(b)));
        }
        Ok(Self::from_raw_ranges(v, None))
    }

    /// Sorts and merges ranges that are already known to be non-zero and ordered.
    fn from_raw_ranges(mut v: Vec<(u32, u32)>, star: Option<Star>) -> Self {
        v.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                // Merge overlapping and adjacent ranges; u64 avoids overflow at u32::MAX.
                Some(last) if u64::from(a) <= u64::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        out.shrink_to_fit();
        NumberSet {
            ranges: out,
            star,
            kind: PhantomData,
        }
    }

    /// Parses wire text (`sequence-set`, RFC 3501 section 9), e.g. `1:5,7,9:12` or `4:*`.
    /// Ranges may be given in either order (`5:3`), numbers in any order and overlapping; the
    /// result is normalised. Errors name the byte offset: empty text, a trailing or doubled
    /// comma, 0, a number over 4294967295, or any other byte.
    pub fn parse(wire: &[u8]) -> Result<Self, SeqSetError> {
        let mut ranges = Vec::new();
        let mut star = None;
        for item in parse_items(wire)? {
            match item {
                SeqItem::Range(a, b) => ranges.push((a.min(b), a.max(b))),
                SeqItem::Star(s) => star = merge_star(star, s),
            }
        }
        Ok(Self::from_raw_ranges(ranges, star))
    }

    /// Adds one number. Returns whether it was new.
    pub fn insert(&mut self, n: u32) -> Result<bool, SeqSetError> {
        if self.contains(n) {
            return Ok(false);
        }
        self.insert_range(n, n)?;
        Ok(true)
    }

    /// Adds the inclusive range `a:b` (either order), merging with neighbours. O(log n + m)
    /// where m is the number of ranges it absorbs.
    pub fn insert_range(&mut self, a: u32, b: u32) -> Result<(), SeqSetError> {
        if a == 0 || b == 0 {
            return Err(SeqSetError::zero());
        }
        let (a, b) = (a.min(b), a.max(b));
        // First range that ends at or after a-1 (touching or overlapping the new one).
        let i = self
            .ranges
            .partition_point(|&(_, e)| u64::from(e) + 1 < u64::from(a));
        // First range that starts after b+1 (cannot merge).
        let j = self
            .ranges
            .partition_point(|&(s, _)| u64::from(s) <= u64::from(b) + 1);
        if i == j {
            self.ranges.insert(i, (a, b));
        } else {
            let start = a.min(self.ranges[i].0);
            let end = b.max(self.ranges[j - 1].1);
            self.ranges.drain(i + 1..j);
            self.ranges[i] = (start, end);
        }
        Ok(())
    }

    /// Removes one explicit number (the `*` form is left alone). Returns whether it was there.
    pub fn remove(&mut self, n: u32) -> bool {
        let present = self.contains(n);
        if present {
            self.remove_range(n, n);
        }
        present
    }

    /// Removes an inclusive range (either order) from the explicit numbers; the `*` form is
    /// left alone, since what it covers is not known here.
    pub fn remove_range(&mut self, a: u32, b: u32) {
        let (a, b) = (a.min(b).max(1), a.max(b));
        if b == 0 {
            return;
        }
        let i = self.ranges.partition_point(|&(_, e)| e < a);
        let j = self.ranges.partition_point(|&(s, _)| s <= b);
        if i >= j {
            return;
        }
        let first = self.ranges[i];
        let last = self.ranges[j - 1];
        let mut keep = Vec::with_capacity(2);
        if first.0 < a {
            keep.push((first.0, a - 1));
        }
        if last.1 > b {
            keep.push((b + 1, last.1));
        }
        self.ranges.splice(i..j, keep);
    }

    /// Adds every number and the `*` form of `other`.
    pub fn extend_from(&mut self, other: &Self) {
        for &(a, b) in &other.ranges {
            // Both ranges are non-zero by invariant, so this cannot fail.
            let _ = self.insert_range(a, b);
        }
        if let Some(s) = other.star {
            self.star = merge_star(self.star, s);
        }
    }

    /// True when `n` is one of the explicit numbers (the `*` form is not consulted).
    pub fn contains(&self, n: u32) -> bool {
        let i = self.ranges.partition_point(|&(_, e)| e < n);
        self.ranges.get(i).is_some_and(|&(s, _)| s <= n)
    }

    /// How many explicit numbers the set holds, without expanding it (the `*` form is not
    /// counted: [`resolve`](Self::resolve) first when it matters).
    pub fn len(&self) -> u64 {
        self.ranges
            .iter()
            .map(|&(a, b)| u64::from(b) - u64::from(a) + 1)
            .sum()
    }

    /// True when there is neither an explicit number nor a `*` form.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.star.is_none()
    }

    /// The `*` form, if any.
    pub fn star(&self) -> Option<Star> {
        self.star
    }

    /// Replaces the `*` form.
    pub fn set_star(&mut self, star: Option<Star>) {
        self.star = star.map(|s| match s {
            Star::From(0) => Star::From(1),
            s => s,
        });
    }

    /// The explicit ranges, ascending, disjoint and non-adjacent.
    pub fn ranges(&self) -> impl ExactSizeIterator<Item = (u32, u32)> + '_ {
        self.ranges.iter().copied()
    }

    /// Smallest explicit number.
    pub fn first(&self) -> Option<u32> {
        self.ranges.first().map(|r| r.0)
    }

    /// Largest explicit number.
    pub fn last(&self) -> Option<u32> {
        self.ranges.last().map(|r| r.1)
    }

    /// The explicit numbers in ascending order, produced lazily: iterating `1:4294967295`
    /// allocates nothing.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            ranges: &self.ranges,
            next: self.ranges.first().map(|r| r.0),
            idx: 0,
        }
    }

    /// Replaces the `*` form by explicit numbers, given the largest number in use (the
    /// message count for a [`SeqSet`], the largest UID for a [`UidSet`]). `n:*` with `n`
    /// above `largest` means `largest:n` (RFC 9051 section 9, `seq-range`). With `largest`
    /// 0 (an empty mailbox) the `*` forms match nothing.
    pub fn resolve(&self, largest: u32) -> Self {
        let mut out = NumberSet {
            ranges: self.ranges.clone(),
            star: None,
            kind: PhantomData,
        };
        if largest > 0 {
            // Non-zero by the check above and the Star::From invariant, so insertion succeeds.
            let _ = match self.star {
                Some(Star::Largest) => out.insert_range(largest, largest),
                Some(Star::From(n)) => out.insert_range(n, largest),
                None => Ok(()),
            };
        }
        out
    }

    /// Byte length of the wire text, computed without formatting it.
    pub fn wire_len(&self) -> usize {
        let mut n = 0;
        for &(a, b) in &self.ranges {
            n += range_wire_len(a, b) + 1;
        }
        n += match self.star {
            Some(Star::Largest) => 2,
            Some(Star::From(a)) => digits(a) + 3,
            None => 0,
        };
        n.saturating_sub(1)
    }

    /// Splits the set into consecutive sets of at most `max_numbers` explicit numbers each
    /// (0 is taken as 1), for batching large commands. A `*` form travels in the last chunk.
    pub fn chunks(&self, max_numbers: u64) -> Chunks<'_, K> {
        Chunks::new(self, Limit::Numbers(max_numbers.max(1)))
    }

    /// Splits the set into consecutive sets whose wire text is at most `max_bytes` long each
    /// (a single range longer than that still goes out alone, so progress is guaranteed;
    /// ranges are never cut for bytes, since a cut never shortens the text). A `*` form
    /// travels in the last chunk.
    pub fn chunks_by_wire_len(&self, max_bytes: usize) -> Chunks<'_, K> {
        Chunks::new(self, Limit::Bytes(max_bytes))
    }
}

fn merge_star(a: Option<Star>, b: Star) -> Option<Star> {
    Some(match (a, b) {
        (None, s) => s,
        (Some(Star::From(x)), Star::From(y)) => Star::From(x.min(y)),
        // `n:*` includes `*`.
        (Some(Star::From(x)), Star::Largest) | (Some(Star::Largest), Star::From(x)) => {
            Star::From(x)
        }
        (Some(Star::Largest), Star::Largest) => Star::Largest,
    })
}

fn digits(n: u32) -> usize {
    match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1_000..=9_999 => 4,
        10_000..=99_999 => 5,
        100_000..=999_999 => 6,
        1_000_000..=9_999_999 => 7,
        10_000_000..=99_999_999 => 8,
        100_000_000..=999_999_999 => 9,
        _ => 10,
    }
}

fn range_wire_len(a: u32, b: u32) -> usize {
    if a == b {
        digits(a)
    } else {
        digits(a) + 1 + digits(b)
    }
}

/// One element of a sequence set as written on the wire, in wire order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqItem {
    /// `a` (as `(a, a)`) or `a:b` exactly as written (not reordered).
    Range(u32, u32),
    /// `*`, `n:*` or `*:n` (the last stored as `From(n)`).
    Star(Star),
}

/// Parses a `sequence-set` keeping wire order and duplicates. The UIDPLUS `COPYUID` response
/// (RFC 4315 section 3) pairs source and destination UIDs by position, which a normalised set
/// would lose; everything else should use [`NumberSet::parse`]. The result has at most one
/// entry per two input bytes, so its size is bounded by the input.
pub fn parse_items(wire: &[u8]) -> Result<Vec<SeqItem>, SeqSetError> {
    if wire.is_empty() {
        return Err(SeqSetError::at(0, "empty sequence set"));
    }
    let mut items = Vec::new();
    let mut pos = 0;
    loop {
        let (first, next) = parse_number(wire, pos)?;
        pos = next;
        let item = if wire.get(pos) == Some(&b':') {
            let (second, next) = parse_number(wire, pos + 1)?;
            pos = next;
            match (first, second) {
                (Some(a), Some(b)) => SeqItem::Range(a, b),
                (Some(n), None) | (None, Some(n)) => SeqItem::Star(Star::From(n)),
                (None, None) => SeqItem::Star(Star::Largest),
            }
        } else {
            match first {
                Some(a) => SeqItem::Range(a, a),
                None => SeqItem::Star(Star::Largest),
            }
        };
        items.push(item);
        match wire.get(pos) {
            None => return Ok(items),
            Some(b',') if pos + 1 == wire.len() => {
                return Err(SeqSetError::at(pos, "sequence set ends with a comma"))
            }
            Some(b',') => pos += 1,
            Some(_) => return Err(SeqSetError::at(pos, "expected ',' or ':' or end of set")),
        }
    }
}

/// Parses `nz-number` or `*` at `pos`; `None` stands for `*`.
fn parse_number(wire: &[u8], pos: usize) -> Result<(Option<u32>, usize), SeqSetError> {
    match wire.get(pos) {
        Some(b'*') => return Ok((None, pos + 1)),
        Some(b'0'..=b'9') => {}
        Some(b',') => return Err(SeqSetError::at(pos, "empty element (doubled comma)")),
        Some(_) => return Err(SeqSetError::at(pos, "expected a number or '*'")),
        None => {
            return Err(SeqSetError::at(
                pos,
                "expected a number or '*', found the end",
            ))
        }
    }
    let mut value: u64 = 0;
    let mut end = pos;
    while let Some(&d @ b'0'..=b'9') = wire.get(end) {
        value = value * 10 + u64::from(d - b'0');
        if value > u64::from(u32::MAX) {
            return Err(SeqSetError::at(pos, "number larger than 4294967295"));
        }
        end += 1;
    }
    match u32::try_from(value) {
        Ok(0) => Err(SeqSetError::at(
            pos,
            "0 is not a valid sequence number or UID",
        )),
        Ok(v) => Ok((Some(v), end)),
        // Unreachable: bounded by the loop check above.
        Err(_) => Err(SeqSetError::at(pos, "number larger than 4294967295")),
    }
}

/// Serialised in its compact wire form (`1:3,7`), as a string.
#[cfg(feature = "serde")]
impl<K: SetKind> serde::Serialize for NumberSet<K> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<K: SetKind> fmt::Display for NumberSet<K> {
    /// The compact wire form (seed V0060): `1:5,7,9:12`, then the `*` form if any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for &(a, b) in &self.ranges {
            if a == b {
                write!(f, "{sep}{a}")?;
            } else {
                write!(f, "{sep}{a}:{b}")?;
            }
            sep = ",";
        }
        match self.star {
            Some(Star::Largest) => write!(f, "{sep}*"),
            Some(Star::From(n)) => write!(f, "{sep}{n}:*"),
            None => Ok(()),
        }
    }
}

impl<K: SetKind> fmt::Debug for NumberSet<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", K::NAME, self)
    }
}

impl<K: SetKind> FromStr for NumberSet<K> {
    type Err = SeqSetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl<K: SetKind> TryFrom<u32> for NumberSet<K> {
    type Error = SeqSetError;

    fn try_from(n: u32) -> Result<Self, Self::Error> {
        Self::single(n)
    }
}

impl<'a, K: SetKind> IntoIterator for &'a NumberSet<K> {
    type Item = u32;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Lazy ascending iterator over a set's explicit numbers.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    ranges: &'a [(u32, u32)],
    idx: usize,
    /// Next number to yield within `ranges[idx]`, `None` once exhausted.
    next: Option<u32>,
}

impl Iterator for Iter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let n = self.next?;
        let (_, end) = *self.ranges.get(self.idx)?;
        self.next = if n < end {
            Some(n + 1)
        } else {
            self.idx += 1;
            self.ranges.get(self.idx).map(|r| r.0)
        };
        Some(n)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let Some(n) = self.next else {
            return (0, Some(0));
        };
        let mut left: u64 = 0;
        for (i, &(a, b)) in self.ranges.iter().enumerate().skip(self.idx) {
            let start = if i == self.idx { n } else { a };
            left += u64::from(b) - u64::from(start) + 1;
        }
        match usize::try_from(left) {
            Ok(l) => (l, Some(l)),
            Err(_) => (usize::MAX, None),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Limit {
    Numbers(u64),
    Bytes(usize),
}

/// Iterator over the chunks of a set; see [`NumberSet::chunks`].
#[derive(Clone, Debug)]
pub struct Chunks<'a, K: SetKind> {
    set: &'a NumberSet<K>,
    limit: Limit,
    idx: usize,
    /// Where the current range resumes, when a previous chunk took part of it.
    resume: Option<u32>,
    star_done: bool,
}

impl<'a, K: SetKind> Chunks<'a, K> {
    fn new(set: &'a NumberSet<K>, limit: Limit) -> Self {
        Chunks {
            set,
            limit,
            idx: 0,
            resume: None,
            star_done: set.star.is_none(),
        }
    }
}

impl<K: SetKind> Iterator for Chunks<'_, K> {
    type Item = NumberSet<K>;

    fn next(&mut self) -> Option<NumberSet<K>> {
        let ranges = &self.set.ranges;
        if self.idx >= ranges.len() && self.star_done {
            return None;
        }
        let mut out: Vec<(u32, u32)> = Vec::new();
        let mut used_numbers: u64 = 0;
        let mut used_bytes: usize = 0;
        while let Some(&(a, b)) = ranges.get(self.idx) {
            let a = self.resume.unwrap_or(a);
            let sep = usize::from(!out.is_empty());
            match self.limit {
                Limit::Numbers(max) => {
                    let room = max - used_numbers;
                    if room == 0 {
                        break;
                    }
                    let size = u64::from(b) - u64::from(a) + 1;
                    if size > room {
                        // room < size <= u32::MAX here, so the cast is lossless.
                        let cut = a + (room as u32) - 1;
                        out.push((a, cut));
                        self.resume = Some(cut + 1);
                        return Some(NumberSet::from_raw_ranges(out, None));
                    }
                    used_numbers += size;
                }
                Limit::Bytes(max) => {
                    let len = range_wire_len(a, b) + sep;
                    if !out.is_empty() && used_bytes + len > max {
                        break;
                    }
                    used_bytes += len;
                }
            }
            out.push((a, b));
            self.resume = None;
            self.idx += 1;
        }
        let mut star = None;
        if self.idx >= ranges.len() && !self.star_done {
            let star_len = match self.set.star {
                Some(Star::Largest) => 1,
                Some(Star::From(n)) => digits(n) + 2,
                None => 0,
            } + usize::from(!out.is_empty());
            let fits = match self.limit {
                Limit::Numbers(_) => true,
                Limit::Bytes(max) => out.is_empty() || used_bytes + star_len <= max,
            };
            if fits {
                star = self.set.star;
                self.star_done = true;
            }
        }
        Some(NumberSet::from_raw_ranges(out, star))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merges_neighbours() {
        let mut s = UidSet::new();
        for n in [5, 1, 3, 2, 9, 7, 8] {
            s.insert(n).unwrap();
        }
        assert_eq!(s.to_string(), "1:3,5,7:9");
        s.insert_range(4, 6).unwrap();
        assert_eq!(s.to_string(), "1:9");
        s.remove_range(3, 4);
        assert_eq!(s.to_string(), "1:2,5:9");
        assert!(s.remove(9));
        assert!(!s.remove(9));
        assert_eq!(s.to_string(), "1:2,5:8");
        s.insert_range(u32::MAX, u32::MAX - 1).unwrap();
        assert_eq!(s.to_string(), "1:2,5:8,4294967294:4294967295");
        assert_eq!(s.insert(0), Err(SeqSetError::zero()));
    }

    #[test]
    fn wire_len_matches_display() {
        for t in ["1", "1:5,7,9:12", "*", "3:*", "1,4:*", "4294967295"] {
            let s: SeqSet = t.parse().unwrap();
            assert_eq!(s.wire_len(), s.to_string().len(), "{t}");
        }
        assert_eq!(SeqSet::new().wire_len(), 0);
    }
}
