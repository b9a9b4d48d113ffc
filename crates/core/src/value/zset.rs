//! Sorted sets: members ordered by score, then by member bytes, exactly as
//! Redis orders them.
//!
//! Two structures: a map member → score for O(1) ZSCORE and membership, and
//! an order-statistics tree of (score, member) ([`super::ranked`]) for
//! ranges, ranks and selection by rank in O(log n), as Redis's skiplist.

use std::cmp::Ordering;

use bytes::Bytes;
use indexmap::IndexMap;

use super::Footprint;
use super::ranked::RankedTree;

/// A score: any `f64` but NaN. `-0.0` is stored as `0.0`, as Redis's compact
/// encoding of small sorted sets does (it keeps integral scores as integers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score(f64);

/// A NaN where a score was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a score must not be NaN")]
pub struct ScoreError;

impl Score {
    /// `value` as a score; NaN is refused.
    pub fn new(value: f64) -> Result<Score, ScoreError> {
        if value.is_nan() {
            Err(ScoreError)
        } else if value == 0.0 {
            Ok(Score(0.0))
        } else {
            Ok(Score(value))
        }
    }

    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Score) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Score) -> Ordering {
        // Never NaN (kept by `Score::new`), so `partial_cmp` is total here.
        self.0.partial_cmp(&other.0).unwrap_or(Ordering::Equal)
    }
}

/// One element in order: by score, then by member bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Ranked {
    pub(super) score: Score,
    pub(super) member: Bytes,
}

/// A sorted set.
#[derive(Clone, Debug, Default)]
pub struct ZSetValue {
    scores: IndexMap<Bytes, Score>,
    order: RankedTree,
    payload_bytes: Footprint,
}

impl PartialEq for ZSetValue {
    fn eq(&self, other: &ZSetValue) -> bool {
        // `order` is derived from `scores`; comparing one suffices.
        self.scores == other.scores
    }
}

fn cost(member: &[u8]) -> Footprint {
    // The score: 8 bytes, encoded as its bits.
    Footprint::of(&[member], 8)
}

impl ZSetValue {
    /// An empty sorted set (transient only).
    pub fn new() -> ZSetValue {
        ZSetValue::default()
    }

    /// Members.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// No member.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// See [`super::Value::heap_bytes`].
    pub fn heap_bytes(&self) -> usize {
        self.payload_bytes.heap
    }

    pub(crate) fn footprint(&self) -> Footprint {
        self.payload_bytes
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).map(|s| s.0)
    }

    /// The member and score at position `index` of the map (for random
    /// picks; not the rank).
    pub fn get_index(&self, index: usize) -> Option<(&Bytes, f64)> {
        self.scores.get_index(index).map(|(m, s)| (m, s.0))
    }

    /// Sets the score of `member`, adding it if new; returns the old score.
    pub fn insert(&mut self, member: Bytes, score: Score) -> Option<f64> {
        let old = self.scores.insert(member.clone(), score);
        match old {
            Some(old_score) => {
                if old_score != score || old_score.0.to_bits() != score.0.to_bits() {
                    self.order.remove(&Ranked {
                        score: old_score,
                        member: member.clone(),
                    });
                    self.order.insert(Ranked { score, member });
                }
            }
            None => {
                self.payload_bytes += cost(&member);
                self.order.insert(Ranked { score, member });
            }
        }
        old.map(|s| s.0)
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.swap_remove_entry(member) {
            Some((member, score)) => {
                self.payload_bytes -= cost(&member);
                self.order.remove(&Ranked { score, member });
                true
            }
            None => false,
        }
    }

    /// Members with scores, lowest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        self.iter_ranks(0, self.len())
    }

    /// Members with scores of ranks `from..to`, lowest first. O(log n) to
    /// start, O(log n) a step.
    pub fn iter_ranks(
        &self,
        from: usize,
        to: usize,
    ) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        self.order.range(from, to).map(|r| (&r.member, r.score.0))
    }

    /// Members with scores `>= min`, lowest first (callers stop where their
    /// range ends).
    pub fn iter_from_score(&self, min: f64) -> impl Iterator<Item = (&Bytes, f64)> {
        let start = self.order.count_while(|r| r.score.0 < min);
        self.iter_ranks(start, self.len())
    }

    /// Members with scores `<= max`, highest first.
    pub fn iter_down_from_score(&self, max: f64) -> impl Iterator<Item = (&Bytes, f64)> {
        let end = self.order.count_while(|r| r.score.0 <= max);
        self.iter_ranks(0, end).rev()
    }

    /// The 0-based rank of `member`, lowest score first. O(log n).
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = *self.scores.get(member)?;
        Some(self.order.rank(&Ranked {
            score,
            member: Bytes::copy_from_slice(member),
        }))
    }
}

impl FromIterator<(Bytes, Score)> for ZSetValue {
    fn from_iter<I: IntoIterator<Item = (Bytes, Score)>>(iter: I) -> ZSetValue {
        let mut z = ZSetValue::new();
        for (m, s) in iter {
            z.insert(m, s);
        }
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(pairs: &[(&str, f64)]) -> ZSetValue {
        pairs
            .iter()
            .map(|(m, s)| {
                (
                    Bytes::copy_from_slice(m.as_bytes()),
                    Score::new(*s).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn orders_by_score_then_by_member_bytes() {
        let set = z(&[
            ("b", 1.0),
            ("a", 1.0),
            ("c", f64::NEG_INFINITY),
            ("ab", 1.0),
            ("d", f64::INFINITY),
        ]);
        let order: Vec<&[u8]> = set.iter().map(|(m, _)| m.as_ref()).collect();
        assert_eq!(order, [&b"c"[..], b"a", b"ab", b"b", b"d"]);
        assert_eq!(set.rank(b"ab"), Some(2));
    }

    #[test]
    fn nan_is_refused_and_negative_zero_is_zero() {
        assert_eq!(Score::new(f64::NAN), Err(ScoreError));
        assert!(Score::new(-0.0).unwrap().get().is_sign_positive());
    }

    #[test]
    fn rescoring_moves_the_member_and_keeps_accounting() {
        let mut set = z(&[("a", 1.0), ("b", 2.0)]);
        let bytes = set.heap_bytes();
        assert_eq!(
            set.insert(Bytes::from_static(b"a"), Score::new(3.0).unwrap()),
            Some(1.0)
        );
        assert_eq!(set.heap_bytes(), bytes);
        assert_eq!(set.rank(b"a"), Some(1));
        assert!(set.remove(b"a"));
        assert_eq!(set.iter().count(), 1);
    }
}
