//! Sorted sets.

use bytes::Bytes;

use super::hashes::{check_repeat_count, empty_scan, matches, scan_reply, scan_window};
use super::{EffectOp, Exec, Result, clamp_range, misrouted};
use crate::command::number::format_double_compact;
use crate::command::{
    Aggregate, Command, CommandError, Cond, LexBound, Reply, ScoreBound, SetOp, ZAddOpts,
    ZAlgebraOpts, ZRangeBy,
};
use crate::value::{Score, Value, ZSetValue};

fn above_min(score: f64, min: &ScoreBound) -> bool {
    if min.exclusive {
        score > min.score
    } else {
        score >= min.score
    }
}

fn below_max(score: f64, max: &ScoreBound) -> bool {
    if max.exclusive {
        score < max.score
    } else {
        score <= max.score
    }
}

fn lex_above_min(member: &[u8], min: &LexBound) -> bool {
    match min {
        LexBound::Min => true,
        LexBound::Max => false,
        LexBound::Member {
            member: m,
            exclusive,
        } => {
            if *exclusive {
                member > m.as_ref()
            } else {
                member >= m.as_ref()
            }
        }
    }
}

fn lex_below_max(member: &[u8], max: &LexBound) -> bool {
    match max {
        LexBound::Min => false,
        LexBound::Max => true,
        LexBound::Member {
            member: m,
            exclusive,
        } => {
            if *exclusive {
                member < m.as_ref()
            } else {
                member <= m.as_ref()
            }
        }
    }
}

/// The members (with scores) a range selects, in the order asked (`rev`:
/// highest first), before LIMIT.
fn select<'z>(z: &'z ZSetValue, range: &ZRangeBy, rev: bool) -> Vec<(&'z Bytes, f64)> {
    match range {
        ZRangeBy::Rank { start, stop } => {
            let Some((a, b)) = clamp_range(*start, *stop, z.len()) else {
                return Vec::new();
            };
            if rev {
                // Ranks counted from the top: a..=b is len-1-b ..= len-1-a.
                let len = z.len();
                z.iter_ranks(len - 1 - b, len - a).rev().collect()
            } else {
                z.iter_ranks(a, b + 1).collect()
            }
        }
        ZRangeBy::Score { min, max } => {
            if rev {
                z.iter_down_from_score(max.score)
                    .skip_while(|(_, s)| !below_max(*s, max))
                    .take_while(|(_, s)| above_min(*s, min))
                    .collect()
            } else {
                z.iter_from_score(min.score)
                    .skip_while(|(_, s)| !above_min(*s, min))
                    .take_while(|(_, s)| below_max(*s, max))
                    .collect()
            }
        }
        ZRangeBy::Lex { min, max } => {
            let in_range = |(m, _): &(&Bytes, f64)| lex_above_min(m, min) && lex_below_max(m, max);
            if rev {
                z.iter().rev().filter(in_range).collect()
            } else {
                z.iter().filter(in_range).collect()
            }
        }
    }
}

fn apply_limit<T>(items: Vec<T>, limit: Option<(i64, i64)>) -> Vec<T> {
    match limit {
        None => items,
        Some((offset, _)) if offset < 0 => Vec::new(),
        Some((offset, count)) => {
            let it = items
                .into_iter()
                .skip(usize::try_from(offset).unwrap_or(usize::MAX));
            if count < 0 {
                it.collect()
            } else {
                it.take(usize::try_from(count).unwrap_or(usize::MAX))
                    .collect()
            }
        }
    }
}

fn scored(items: &[(&Bytes, f64)], with_scores: bool) -> Reply {
    if with_scores {
        Reply::Pairs(
            items
                .iter()
                .map(|(m, s)| (Reply::Bulk((*m).clone()), Reply::Double(*s)))
                .collect(),
        )
    } else {
        Reply::Array(
            items
                .iter()
                .map(|(m, _)| Reply::Bulk((*m).clone()))
                .collect(),
        )
    }
}

impl Exec<'_> {
    pub(super) fn zset(&mut self, key: &[u8]) -> Result<Option<&ZSetValue>> {
        match self.entry(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::ZSet(z)) => Ok(Some(z)),
            Some(_) => Err(CommandError::WrongType),
        }
    }

    pub(super) fn zset_command(&mut self, c: &Command) -> Result<Reply> {
        match c {
            Command::ZAdd { key, opts, pairs } => self.zadd(key, *opts, pairs),
            Command::ZIncrBy { key, by, member } => self.zadd(
                key,
                ZAddOpts {
                    incr: true,
                    ..ZAddOpts::default()
                },
                &[(*by, member.clone())],
            ),
            Command::ZRem { key, members } => {
                let Some(z) = self.zset(key)? else {
                    return Ok(Reply::Integer(0));
                };
                let gone = super::distinct_kept(members, |m| z.score(m).is_some());
                let n = gone.len();
                if n > 0 {
                    self.emit(key, EffectOp::ZRemove(gone));
                }
                Ok(Reply::Integer(n as i64))
            }
            Command::ZScore { key, member } => Ok(self
                .zset(key)?
                .and_then(|z| z.score(member))
                .map_or(Reply::Null, Reply::Double)),
            Command::ZMScore { key, members } => {
                let z = self.zset(key)?;
                Ok(Reply::Array(
                    members
                        .iter()
                        .map(|m| {
                            z.and_then(|z| z.score(m))
                                .map_or(Reply::Null, Reply::Double)
                        })
                        .collect(),
                ))
            }
            Command::ZCard { key } => {
                Ok(Reply::Integer(self.zset(key)?.map_or(0, |z| z.len()) as i64))
            }
            Command::ZCount { key, min, max } => {
                let Some(z) = self.zset(key)? else {
                    return Ok(Reply::Integer(0));
                };
                let range = ZRangeBy::Score {
                    min: *min,
                    max: *max,
                };
                Ok(Reply::Integer(select(z, &range, false).len() as i64))
            }
            Command::ZLexCount { key, min, max } => {
                let Some(z) = self.zset(key)? else {
                    return Ok(Reply::Integer(0));
                };
                let range = ZRangeBy::Lex {
                    min: min.clone(),
                    max: max.clone(),
                };
                Ok(Reply::Integer(select(z, &range, false).len() as i64))
            }
            Command::ZRank { key, member, rev } => {
                let Some(z) = self.zset(key)? else {
                    return Ok(Reply::Null);
                };
                Ok(z.rank(member).map_or(Reply::Null, |r| {
                    Reply::Integer(if *rev { z.len() - 1 - r } else { r } as i64)
                }))
            }
            Command::ZRange {
                key,
                range,
                rev,
                limit,
                with_scores,
            } => {
                let Some(z) = self.zset(key)? else {
                    return Ok(Reply::Array(vec![]));
                };
                let items = apply_limit(select(z, range, *rev), *limit);
                Ok(scored(&items, *with_scores))
            }
            Command::ZPop { key, max, count } => {
                let n = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
                let popped = self.pop_members(key, *max, n)?;
                Ok(match count {
                    None => Reply::Array(
                        popped
                            .into_iter()
                            .flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)])
                            .collect(),
                    ),
                    Some(_) => Reply::Pairs(
                        popped
                            .into_iter()
                            .map(|(m, s)| (Reply::Bulk(m), Reply::Double(s)))
                            .collect(),
                    ),
                })
            }
            Command::ZRandMember {
                key,
                count,
                with_scores,
            } => {
                check_repeat_count(*count)?;
                let Some(len) = self.zset(key)?.map(|z| z.len()) else {
                    return Ok(if count.is_some() {
                        Reply::Array(vec![])
                    } else {
                        Reply::Null
                    });
                };
                let Some(n) = count else {
                    let i = self.random_index(len);
                    let z = self.zset(key)?.ok_or(CommandError::NoSuchKey)?;
                    return Ok(z
                        .get_index(i)
                        .map_or(Reply::Null, |(m, _)| Reply::Bulk(m.clone())));
                };
                let picks = self.random_picks(len, *n);
                let z = self.zset(key)?.ok_or(CommandError::NoSuchKey)?;
                let chosen: Vec<(&Bytes, f64)> =
                    picks.into_iter().filter_map(|i| z.get_index(i)).collect();
                Ok(scored(&chosen, *with_scores))
            }
            Command::ZRemRange { key, range } => {
                let Some(z) = self.zset(key)? else {
                    return Ok(Reply::Integer(0));
                };
                let gone: Vec<Bytes> = select(z, range, false)
                    .into_iter()
                    .map(|(m, _)| m.clone())
                    .collect();
                let n = gone.len();
                if n == z.len() {
                    self.emit(key, EffectOp::Delete);
                } else if n > 0 {
                    self.emit(key, EffectOp::ZRemove(gone));
                }
                Ok(Reply::Integer(n as i64))
            }
            Command::ZMPop { keys, max, count } => {
                for key in keys {
                    if self.zset(key)?.is_none() {
                        continue;
                    }
                    // Nested pairs in RESP2 too, unlike ZPOPMIN's.
                    let pairs = self
                        .pop_members(key, *max, *count)?
                        .into_iter()
                        .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                        .collect();
                    return Ok(Reply::Array(vec![
                        Reply::Bulk(key.clone()),
                        Reply::Array(pairs),
                    ]));
                }
                Ok(Reply::NullArray)
            }
            Command::BZPop { keys, max, .. } => {
                for key in keys {
                    let Some((member, score)) = self.pop_members(key, *max, 1)?.pop() else {
                        continue;
                    };
                    return Ok(Reply::Array(vec![
                        Reply::Bulk(key.clone()),
                        Reply::Bulk(member),
                        Reply::Double(score),
                    ]));
                }
                Ok(Reply::NullArray)
            }
            Command::BZMPop {
                keys, max, count, ..
            } => self.zset_command(&Command::ZMPop {
                keys: keys.clone(),
                max: *max,
                count: *count,
            }),
            Command::ZAlgebra {
                op,
                keys,
                store,
                opts,
            } => {
                let mut inputs = Vec::with_capacity(keys.len());
                for key in keys {
                    inputs.push(self.zinput(key)?);
                }
                let opts = opts.as_ref().clone()?;
                if opts.card {
                    return Ok(Reply::Integer(intersection_size(&inputs, opts.limit) as i64));
                }
                let result = combine(*op, inputs, &opts);
                match store {
                    None => Ok(scored(
                        &result.iter().map(|(m, s)| (m, *s)).collect::<Vec<_>>(),
                        opts.with_scores,
                    )),
                    Some(dst) => self.store_zset(dst, result),
                }
            }
            Command::ZRangeStore {
                dst,
                src,
                range,
                rev,
                limit,
            } => {
                let items: Vec<(Bytes, f64)> = match self.zset(src)? {
                    None => Vec::new(),
                    Some(z) => apply_limit(select(z, range, *rev), *limit)
                        .into_iter()
                        .map(|(m, s)| (m.clone(), s))
                        .collect(),
                };
                self.store_zset(dst, items)
            }
            Command::ZScan { key, cursor, opts } => {
                let Some(z) = self.zset(key)? else {
                    return Ok(empty_scan());
                };
                let opts = opts.clone()?;
                let mut items = Vec::new();
                let push = |(m, s): (&Bytes, f64)| {
                    if matches(&opts, m) {
                        items.push(Reply::Bulk(m.clone()));
                        items.push(Reply::Bulk(Bytes::from(format_double_compact(s))));
                    }
                };
                // Redis answers a listpack whole, by score, whatever the
                // cursor and COUNT.
                if super::object::is_listpack_zset(z) {
                    z.iter().for_each(push);
                    return Ok(scan_reply(0, items));
                }
                let (window, next) = scan_window(z.len(), *cursor, opts.count);
                window.rev().filter_map(|i| z.get_index(i)).for_each(push);
                Ok(scan_reply(next, items))
            }
            other => Err(misrouted(other)),
        }
    }

    /// Removes up to `n` members of the sorted set at `key`, the lowest
    /// scores first (the highest with `max`), and returns them with their
    /// scores; none when `key` holds no sorted set.
    fn pop_members(&mut self, key: &Bytes, max: bool, n: usize) -> Result<Vec<(Bytes, f64)>> {
        let Some(z) = self.zset(key)? else {
            return Ok(Vec::new());
        };
        let n = n.min(z.len());
        let popped: Vec<(Bytes, f64)> = if max {
            z.iter()
                .rev()
                .take(n)
                .map(|(m, s)| (m.clone(), s))
                .collect()
        } else {
            z.iter().take(n).map(|(m, s)| (m.clone(), s)).collect()
        };
        if n > 0 && n == z.len() {
            self.emit(key, EffectOp::Delete);
        } else if n > 0 {
            self.emit(
                key,
                EffectOp::ZRemove(popped.iter().map(|(m, _)| m.clone()).collect()),
            );
        }
        Ok(popped)
    }

    /// A sorted set's members and scores, or a set's members scored 1, as
    /// the sorted-set algebra reads its inputs; a missing key is empty.
    fn zinput(&mut self, key: &[u8]) -> Result<Vec<(Bytes, f64)>> {
        match self.entry(key).map(|e| &e.value) {
            None => Ok(Vec::new()),
            Some(Value::ZSet(z)) => Ok(z.iter().map(|(m, s)| (m.clone(), s)).collect()),
            Some(Value::Set(s)) => Ok(s.iter().map(|m| (m.clone(), 1.0)).collect()),
            Some(_) => Err(CommandError::WrongType),
        }
    }

    /// Replaces `dst` (of any type, its TTL gone) with a sorted set of
    /// `members`, or deletes it when there are none; answers their number.
    pub(super) fn store_zset(&mut self, dst: &Bytes, members: Vec<(Bytes, f64)>) -> Result<Reply> {
        let n = members.len();
        if n == 0 {
            if self.exists(dst) {
                self.emit(dst, EffectOp::Delete);
            }
            return Ok(Reply::Integer(0));
        }
        let mut z = ZSetValue::new();
        for (m, s) in members {
            z.insert(m, Score::new(s).map_err(|_| CommandError::ScoreNan)?);
        }
        self.emit(
            dst,
            EffectOp::Put {
                value: Value::ZSet(z),
                expire_at_ms: None,
            },
        );
        Ok(Reply::Integer(n as i64))
    }

    /// ZADD (and ZINCRBY, which is ZADD INCR): per member, NX/XX decide
    /// whether it may be added or updated, GT/LT whether an update happens;
    /// the effect carries the final scores.
    pub(super) fn zadd(
        &mut self,
        key: &Bytes,
        opts: ZAddOpts,
        pairs: &[(f64, Bytes)],
    ) -> Result<Reply> {
        let z = self.zset(key)?;
        if z.is_none() && opts.cond == Cond::IfExists {
            return Ok(if opts.incr {
                Reply::Null
            } else {
                Reply::Integer(0)
            });
        }
        let mut updates: Vec<(f64, Bytes)> = Vec::new();
        // Earlier pairs of this same command count as current: each
        // member's latest score among them (a map, so that a ZADD of many
        // members stays linear).
        let mut pending: std::collections::HashMap<&[u8], f64> = std::collections::HashMap::new();
        let (mut added, mut changed) = (0i64, 0i64);
        let mut last_score = None;
        for (score, member) in pairs {
            let current = pending
                .get(member.as_ref())
                .copied()
                .or_else(|| z.and_then(|z| z.score(member)));
            match current {
                Some(cur) => {
                    if opts.cond == Cond::IfMissing {
                        last_score = None;
                        continue;
                    }
                    let new = if opts.incr { cur + score } else { *score };
                    if new.is_nan() {
                        return Err(CommandError::ScoreNan);
                    }
                    if (opts.gt && new <= cur) || (opts.lt && new >= cur) {
                        last_score = None;
                        continue;
                    }
                    last_score = Some(new);
                    if new != cur {
                        updates.push((new, member.clone()));
                        pending.insert(member.as_ref(), new);
                        changed += 1;
                    }
                }
                None => {
                    if opts.cond == Cond::IfExists {
                        last_score = None;
                        continue;
                    }
                    let new = *score;
                    updates.push((new, member.clone()));
                    pending.insert(member.as_ref(), new);
                    added += 1;
                    last_score = Some(new);
                }
            }
        }
        if !updates.is_empty() {
            self.emit(key, EffectOp::ZAdd(updates));
        }
        Ok(if opts.incr {
            last_score.map_or(Reply::Null, Reply::Double)
        } else if opts.ch {
            Reply::Integer(added + changed)
        } else {
            Reply::Integer(added)
        })
    }
}

/// One score combined into another as AGGREGATE says; a sum of two
/// opposite infinities is 0, as in Redis.
fn aggregate(target: &mut f64, value: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += value;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        // A NaN `value` (0 × inf) compares false and leaves the target.
        Aggregate::Min => {
            if value < *target {
                *target = value;
            }
        }
        Aggregate::Max => {
            if value > *target {
                *target = value;
            }
        }
    }
}

/// A member's score times its input's weight; 0 × inf is 0.
fn weighted(score: f64, weight: f64) -> f64 {
    let w = weight * score;
    if w.is_nan() { 0.0 } else { w }
}

/// The inputs of ZUNION and ZINTER with their weights, smallest first (a
/// stable sort, as Redis's `qsort` by cardinality is with glibc): the
/// order in which a member's scores are combined, which matters where
/// infinities meet and for the last bits of a sum.
fn by_size(inputs: Vec<Vec<(Bytes, f64)>>, weights: &[f64]) -> Vec<(Vec<(Bytes, f64)>, f64)> {
    let mut inputs: Vec<(Vec<(Bytes, f64)>, f64)> = inputs
        .into_iter()
        .enumerate()
        .map(|(i, members)| (members, weights.get(i).copied().unwrap_or(1.0)))
        .collect();
    inputs.sort_by_key(|(members, _)| members.len());
    inputs
}

/// ZUNION, ZINTER or ZDIFF of `inputs` (in the keys' order), in the
/// result's order: by score, then member.
fn combine(op: SetOp, inputs: Vec<Vec<(Bytes, f64)>>, opts: &ZAlgebraOpts) -> Vec<(Bytes, f64)> {
    let mut result: Vec<(Bytes, f64)> = match op {
        SetOp::Union => {
            let mut order: Vec<Bytes> = Vec::new();
            let mut scores: std::collections::HashMap<Bytes, f64> = Default::default();
            for (members, weight) in by_size(inputs, &opts.weights) {
                for (m, s) in members {
                    let value = weighted(s, weight);
                    match scores.get_mut(&m) {
                        Some(target) => aggregate(target, value, opts.aggregate),
                        None => {
                            scores.insert(m.clone(), value);
                            order.push(m);
                        }
                    }
                }
            }
            order
                .into_iter()
                .map(|m| {
                    let s = scores[&m];
                    (m, s)
                })
                .collect()
        }
        SetOp::Inter => {
            let mut inputs = by_size(inputs, &opts.weights).into_iter();
            let Some((first, first_weight)) = inputs.next() else {
                return Vec::new();
            };
            let others: Vec<(std::collections::HashMap<Bytes, f64>, f64)> = inputs
                .map(|(members, weight)| (members.into_iter().collect(), weight))
                .collect();
            first
                .into_iter()
                .filter_map(|(m, s)| {
                    let mut score = weighted(s, first_weight);
                    for (other, weight) in &others {
                        // Only the first input's product is made 0 when NaN,
                        // as in Redis; a later one reaches the aggregate.
                        aggregate(&mut score, *other.get(&m)? * weight, opts.aggregate);
                    }
                    Some((m, score))
                })
                .collect()
        }
        SetOp::Diff => {
            let mut inputs = inputs.into_iter();
            let first = inputs.next().unwrap_or_default();
            let others: Vec<std::collections::HashSet<Bytes>> = inputs
                .map(|members| members.into_iter().map(|(m, _)| m).collect())
                .collect();
            first
                .into_iter()
                .filter(|(m, _)| !others.iter().any(|o| o.contains(m)))
                .collect()
        }
    };
    // Redis's order: scores compared as numbers (-0 equals 0; there is no
    // NaN), then members.
    result.sort_by(|(ma, sa), (mb, sb)| {
        sa.partial_cmp(sb)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| ma.cmp(mb))
    });
    result
}

/// ZINTERCARD: how many members every input holds, counting up to `limit`
/// (0: no limit).
fn intersection_size(inputs: &[Vec<(Bytes, f64)>], limit: usize) -> usize {
    let mut sorted: Vec<&Vec<(Bytes, f64)>> = inputs.iter().collect();
    sorted.sort_by_key(|members| members.len());
    let Some((first, others)) = sorted.split_first() else {
        return 0;
    };
    let others: Vec<std::collections::HashSet<&Bytes>> = others
        .iter()
        .map(|members| members.iter().map(|(m, _)| m).collect())
        .collect();
    let mut n = 0;
    for (m, _) in first.iter() {
        if others.iter().all(|o| o.contains(m)) {
            n += 1;
            if n == limit {
                break;
            }
        }
    }
    n
}
