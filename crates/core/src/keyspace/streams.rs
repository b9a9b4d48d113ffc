//! Streams: XADD, XRANGE, XREAD, consumer groups and the rest, as Redis
//! 7.0 runs them (`crate::value::stream` keeps the data and
//! `crate::command::stream` the arguments).
//!
//! Every change is an effect ([`EffectOp::XAdd`] and its family) that
//! carries what the leader decided: the ID `*` gave, the delivery times
//! and counts of pending entries, a group's position. Replicas never read
//! a clock.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{EffectOp, Exec, Result};
use crate::command::stream::{
    AddId, AutoClaim, Claim, GroupAt, GroupFrom, PendingRange, Read, ReadFrom, ReadId,
    StreamCommand,
};
use crate::command::{CommandError, Reply};
use crate::value::stream::{Fields, Group, Pending, StreamId, Trim, TrimTo};
use crate::value::{StreamValue, Value};

fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(id.to_bytes())
}

fn fields_reply(fields: &Fields) -> Reply {
    Reply::Array(fields.iter().map(|f| Reply::Bulk(f.clone())).collect())
}

fn entry_reply(id: StreamId, fields: &Fields) -> Reply {
    Reply::Array(vec![id_reply(id), fields_reply(fields)])
}

/// The reply of an entry that may be gone: `[id, nil]` for one deleted
/// since it was delivered.
fn held_entry(s: &StreamValue, id: StreamId) -> Reply {
    match s.get(id) {
        Some(fields) => entry_reply(id, fields),
        None => Reply::Array(vec![id_reply(id), Reply::NullArray]),
    }
}

fn nogroup_for_key(key: &[u8], group: &[u8]) -> CommandError {
    CommandError::Relayed(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

fn nogroup(key: &[u8], group: &[u8]) -> CommandError {
    CommandError::Relayed(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    ))
}

/// How long ago `at` was, never negative.
fn idle(now: u64, at: u64) -> i64 {
    i64::try_from(now.saturating_sub(at)).unwrap_or(i64::MAX)
}

/// The lag of `group`: entries added that it has not read, when known.
fn lag(s: &StreamValue, group: &Group) -> Reply {
    if s.entries_added() == 0 {
        return Reply::Integer(0);
    }
    let added = s.entries_added() as i64;
    if let Some(read) = group.entries_read
        && !s.has_tombstones(group.last_id, StreamId::MAX)
    {
        return Reply::Integer(added.wrapping_sub(read as i64));
    }
    match s.entries_up_to(group.last_id) {
        Some(read) => Reply::Integer(added.wrapping_sub(read as i64)),
        None => Reply::Null,
    }
}

fn entries_read_reply(group: &Group) -> Reply {
    group
        .entries_read
        .map_or(Reply::Null, |n| Reply::Integer(n as i64))
}

/// A COUNT where 0 means no bound (XREAD's, XINFO FULL's).
fn no_bound_if_zero(count: usize) -> usize {
    if count == 0 { usize::MAX } else { count }
}

fn word(s: &'static str) -> Reply {
    Reply::bulk(s.as_bytes())
}

impl Exec<'_> {
    fn stream(&mut self, key: &[u8]) -> Result<Option<&StreamValue>> {
        match self.entry(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Stream(s)) => Ok(Some(s)),
            Some(_) => Err(CommandError::WrongType),
        }
    }

    /// The stream at `key` and its group `group`, or Redis's NOGROUP.
    fn stream_group(&mut self, key: &[u8], group: &[u8]) -> Result<(&StreamValue, &Group)> {
        match self.stream(key)? {
            Some(s) => match s.group(group) {
                Some(g) => Ok((s, g)),
                None => Err(nogroup_for_key(key, group)),
            },
            None => Err(nogroup_for_key(key, group)),
        }
    }

    pub(super) fn stream_command(&mut self, c: &StreamCommand) -> Result<Reply> {
        match c {
            StreamCommand::Add {
                key,
                no_mkstream,
                trim,
                id,
                fields,
            } => self.xadd(key, *no_mkstream, *trim, *id, fields),
            StreamCommand::Len { key } => Ok(Reply::Integer(
                self.stream(key)?.map_or(0, |s| s.len() as i64),
            )),
            StreamCommand::Range {
                key,
                start,
                end,
                count,
                rev,
            } => {
                let Some(s) = self.stream(key)? else {
                    return Ok(Reply::Array(Vec::new()));
                };
                let limit = match count {
                    Some(0) => return Ok(Reply::NullArray),
                    Some(n) => *n,
                    None => usize::MAX,
                };
                let range = s.range(*start, *end);
                let entries: Vec<Reply> = if *rev {
                    range
                        .rev()
                        .take(limit)
                        .map(|(id, f)| entry_reply(*id, f))
                        .collect()
                } else {
                    range
                        .take(limit)
                        .map(|(id, f)| entry_reply(*id, f))
                        .collect()
                };
                Ok(Reply::Array(entries))
            }
            StreamCommand::Del { key, ids } => {
                let Some(s) = self.stream(key)? else {
                    return Ok(Reply::Integer(0));
                };
                let ids = ids.clone()?;
                let mut gone: Vec<StreamId> =
                    ids.into_iter().filter(|id| s.get(*id).is_some()).collect();
                gone.sort_unstable();
                gone.dedup();
                let n = gone.len() as i64;
                if n > 0 {
                    self.emit(key, EffectOp::XDel(gone));
                }
                Ok(Reply::Integer(n))
            }
            StreamCommand::Trim { key, trim } => {
                let Some(s) = self.stream(key)? else {
                    return Ok(Reply::Integer(0));
                };
                let mut probe = s.clone();
                let removed = probe.trim(*trim);
                if removed > 0 {
                    self.emit(key, EffectOp::XTrim(*trim));
                }
                Ok(Reply::Integer(removed as i64))
            }
            StreamCommand::Read(read) => self.xread(read),
            StreamCommand::GroupCreate { .. }
            | StreamCommand::GroupSetId { .. }
            | StreamCommand::GroupDestroy { .. }
            | StreamCommand::CreateConsumer { .. }
            | StreamCommand::DelConsumer { .. } => self.xgroup(c),
            StreamCommand::Ack { key, group, ids } => {
                let s = self.stream(key)?;
                let Some(pending) = s.and_then(|s| s.group(group)).map(|g| g.pending.clone())
                else {
                    return Ok(Reply::Integer(0));
                };
                let ids = ids.clone()?;
                let mut acked: Vec<StreamId> = ids
                    .into_iter()
                    .filter(|id| pending.contains_key(id))
                    .collect();
                acked.sort_unstable();
                acked.dedup();
                let n = acked.len() as i64;
                if n > 0 {
                    self.emit(
                        key,
                        EffectOp::XAck {
                            group: group.clone(),
                            ids: acked,
                        },
                    );
                }
                Ok(Reply::Integer(n))
            }
            StreamCommand::Pending { key, group, range } => self.xpending(key, group, range),
            StreamCommand::Claim {
                key,
                group,
                consumer,
                args,
            } => self.xclaim(key, group, consumer, args),
            StreamCommand::AutoClaim {
                key,
                group,
                consumer,
                args,
            } => self.xautoclaim(key, group, consumer, args),
            StreamCommand::SetId { .. } => self.xsetid(c),
            StreamCommand::InfoStream { .. }
            | StreamCommand::InfoGroups { .. }
            | StreamCommand::InfoConsumers { .. } => self.xinfo(c),
            StreamCommand::Help(lines) => Ok(Reply::Array(
                lines
                    .iter()
                    .map(|l| Reply::Status(std::borrow::Cow::Borrowed(*l)))
                    .collect(),
            )),
        }
    }

    /// XGROUP's subcommands but HELP.
    fn xgroup(&mut self, c: &StreamCommand) -> Result<Reply> {
        match c {
            StreamCommand::GroupCreate {
                key,
                group,
                at,
                mkstream,
                entries_read,
            } => {
                let s = self.stream(key)?;
                if s.is_none() && !mkstream {
                    return Err(key_must_exist());
                }
                let last = s.map_or(StreamId::MIN, |s| s.last_id());
                let exists = s.is_some();
                let busy = s.is_some_and(|s| s.group(group).is_some());
                let at = match at.clone()? {
                    GroupAt::Last => last,
                    GroupAt::Id(id) => id,
                };
                if busy {
                    return Err(CommandError::Relayed(
                        "BUSYGROUP Consumer Group name already exists".into(),
                    ));
                }
                if !exists {
                    self.emit(
                        key,
                        EffectOp::Put {
                            value: Value::Stream(Box::default()),
                            expire_at_ms: None,
                        },
                    );
                }
                self.emit(
                    key,
                    EffectOp::XGroupSet {
                        group: group.clone(),
                        last_id: at,
                        entries_read: entries_read.and_then(|n| u64::try_from(n).ok()),
                    },
                );
                Ok(Reply::OK)
            }
            StreamCommand::GroupSetId { key, group, at } => {
                let s = self.stream(key)?.ok_or_else(key_must_exist)?;
                if s.group(group).is_none() {
                    return Err(nogroup(key, group));
                }
                let last = s.last_id();
                let (at, read) = at.clone()?;
                let at = match at {
                    GroupAt::Last => last,
                    GroupAt::Id(id) => id,
                };
                self.emit(
                    key,
                    EffectOp::XGroupSet {
                        group: group.clone(),
                        last_id: at,
                        entries_read: read.and_then(|n| u64::try_from(n).ok()),
                    },
                );
                Ok(Reply::OK)
            }
            StreamCommand::GroupDestroy { key, group } => {
                let s = self.stream(key)?.ok_or_else(key_must_exist)?;
                if s.group(group).is_none() {
                    return Ok(Reply::Integer(0));
                }
                self.emit(key, EffectOp::XGroupDestroy(group.clone()));
                Ok(Reply::Integer(1))
            }
            StreamCommand::CreateConsumer {
                key,
                group,
                consumer,
            } => {
                let g = self.xgroup_target(key, group)?;
                if g.consumers.contains_key(consumer) {
                    return Ok(Reply::Integer(0));
                }
                self.touch_consumer(key, group, consumer);
                Ok(Reply::Integer(1))
            }
            StreamCommand::DelConsumer {
                key,
                group,
                consumer,
            } => {
                let g = self.xgroup_target(key, group)?;
                if !g.consumers.contains_key(consumer) {
                    return Ok(Reply::Integer(0));
                }
                let held = g.pending_of(consumer).count() as i64;
                self.emit(
                    key,
                    EffectOp::XConsumerDel {
                        group: group.clone(),
                        consumer: consumer.clone(),
                    },
                );
                Ok(Reply::Integer(held))
            }
            _ => Err(misrouted_stream()),
        }
    }

    /// XSETID.
    fn xsetid(&mut self, c: &StreamCommand) -> Result<Reply> {
        match c {
            StreamCommand::SetId {
                key,
                last,
                entries_added,
                max_deleted,
            } => {
                let Some(s) = self.stream(key)? else {
                    return Err(CommandError::NoSuchKey);
                };
                if let Some((_, (top, _))) = s.edges() {
                    if last < top {
                        return Err(CommandError::Other(
                            "The ID specified in XSETID is smaller than the target stream top item",
                        ));
                    }
                    if entries_added.is_some_and(|n| (n as u64) < s.len() as u64) {
                        return Err(CommandError::Other(
                            "The entries_added specified in XSETID is smaller than the target stream length",
                        ));
                    }
                }
                self.emit(
                    key,
                    EffectOp::XSetId {
                        last: *last,
                        added: entries_added.map(|n| n as u64),
                        max_deleted: max_deleted.filter(|id| !id.is_zero()),
                    },
                );
                Ok(Reply::OK)
            }
            _ => Err(misrouted_stream()),
        }
    }

    /// XINFO's subcommands but HELP.
    fn xinfo(&mut self, c: &StreamCommand) -> Result<Reply> {
        match c {
            StreamCommand::InfoStream { key, full } => {
                let s = self.existing(key)?;
                Ok(info_stream(s, full.clone()?))
            }
            StreamCommand::InfoGroups { key } => {
                let s = self.existing(key)?;
                let groups = s
                    .groups()
                    .iter()
                    .map(|(name, g)| {
                        Reply::Map(vec![
                            (word("name"), Reply::Bulk(name.clone())),
                            (word("consumers"), Reply::Integer(g.consumers.len() as i64)),
                            (word("pending"), Reply::Integer(g.pending.len() as i64)),
                            (word("last-delivered-id"), id_reply(g.last_id)),
                            (word("entries-read"), entries_read_reply(g)),
                            (word("lag"), lag(s, g)),
                        ])
                    })
                    .collect();
                Ok(Reply::Array(groups))
            }
            StreamCommand::InfoConsumers { key, group } => {
                let now = self.now;
                let s = self.existing(key)?;
                let Some(g) = s.group(group) else {
                    return Err(nogroup(key, group));
                };
                let held = g.pending_by_consumer(0);
                let consumers = g
                    .consumers
                    .iter()
                    .map(|(name, c)| {
                        let pending = held.get(name).map_or(0, |(n, _)| *n);
                        Reply::Map(vec![
                            (word("name"), Reply::Bulk(name.clone())),
                            (word("pending"), Reply::Integer(pending as i64)),
                            (word("idle"), Reply::Integer(idle(now, c.seen_ms))),
                        ])
                    })
                    .collect();
                Ok(Reply::Array(consumers))
            }
            _ => Err(misrouted_stream()),
        }
    }

    /// Group `group` of the stream at `key`, for an XGROUP subcommand
    /// that needs both to exist.
    fn xgroup_target(&mut self, key: &[u8], group: &[u8]) -> Result<&Group> {
        let s = self.stream(key)?.ok_or_else(key_must_exist)?;
        s.group(group).ok_or_else(|| nogroup(key, group))
    }

    /// The stream at `key`, which XGROUP and XINFO need to exist.
    fn existing(&mut self, key: &[u8]) -> Result<&StreamValue> {
        self.stream(key)?.ok_or(CommandError::NoSuchKey)
    }

    /// Creates `consumer` of `group`, or notes it was seen now.
    fn touch_consumer(&mut self, key: &Bytes, group: &Bytes, consumer: &Bytes) {
        let seen_ms = self.now;
        self.emit(
            key,
            EffectOp::XConsumer {
                group: group.clone(),
                consumer: consumer.clone(),
                seen_ms,
            },
        );
    }

    fn xadd(
        &mut self,
        key: &Bytes,
        no_mkstream: bool,
        trim: Option<Trim>,
        id: AddId,
        fields: &[Bytes],
    ) -> Result<Reply> {
        let now = self.now;
        let s = self.stream(key)?;
        if s.is_none() && no_mkstream {
            return Ok(Reply::Null);
        }
        let last = s.map_or(StreamId::MIN, |s| s.last_id());
        let exhausted = CommandError::Other(
            "The stream has exhausted the last possible ID, unable to add more items",
        );
        if last == StreamId::MAX {
            return Err(exhausted);
        }
        let id = match id {
            AddId::Auto if now > last.ms => StreamId::new(now, 0),
            AddId::Auto => last.next().ok_or(exhausted)?,
            AddId::Partial(ms) if ms == last.ms => {
                if last.seq == u64::MAX {
                    return Err(CommandError::Other("Elements are too large to be stored"));
                }
                StreamId::new(ms, last.seq + 1)
            }
            AddId::Partial(ms) => StreamId::new(ms, 0),
            AddId::Exact(id) => id,
        };
        if id <= last {
            return Err(CommandError::Other(
                "The ID specified in XADD is equal or smaller than the target stream top item",
            ));
        }
        let fields: Fields = fields.to_vec().into();
        self.emit(key, EffectOp::XAdd { id, fields });
        if let Some(trim) = trim
            && let Some(s) = self.stream(key)?
            && would_trim(s, trim)
        {
            self.emit(key, EffectOp::XTrim(trim));
        }
        Ok(id_reply(id))
    }

    fn xread(&mut self, read: &Read) -> Result<Reply> {
        // Each key in turn: its type, its group, then its ID, as Redis
        // checks them.
        let mut from = Vec::with_capacity(read.keys.len());
        for (key, id) in read.keys.iter().zip(&read.ids) {
            let s = self.stream(key)?;
            if let Some((group, _)) = &read.group
                && s.is_none_or(|s| s.group(group).is_none())
            {
                return Err(CommandError::Relayed(format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(group)
                )));
            }
            let last = s.map_or(StreamId::MIN, |s| s.last_id());
            from.push(match id.clone()? {
                ReadId::Plain(ReadFrom::Last) => ReadId::Plain(ReadFrom::After(last)),
                other => other,
            });
        }
        let mut served = Vec::new();
        for (key, from) in read.keys.iter().zip(from) {
            let Some(s) = self.stream(key)? else {
                continue;
            };
            let entries = match (from, &read.group) {
                (ReadId::Plain(ReadFrom::After(after)), _) => {
                    let Some(start) = after.next() else {
                        continue;
                    };
                    let entries: Vec<Reply> = s
                        .range(start, StreamId::MAX)
                        .take(no_bound_if_zero(read.count))
                        .map(|(id, f)| entry_reply(*id, f))
                        .collect();
                    if entries.is_empty() {
                        continue;
                    }
                    entries
                }
                (ReadId::Group(from), Some((group, consumer))) => {
                    match self.read_group(key, group, consumer, from, read)? {
                        Some(entries) => entries,
                        None => continue,
                    }
                }
                _ => continue,
            };
            served.push((Reply::Bulk(key.clone()), Reply::Array(entries)));
        }
        if served.is_empty() {
            return Ok(Reply::NullArray);
        }
        Ok(Reply::Keyed(served))
    }

    /// One key of XREADGROUP: `None` when it has nothing to serve.
    fn read_group(
        &mut self,
        key: &Bytes,
        group: &Bytes,
        consumer: &Bytes,
        from: GroupFrom,
        read: &Read,
    ) -> Result<Option<Vec<Reply>>> {
        let now = self.now;
        // Redis creates the consumer (or notes it was seen) only when it
        // serves the key: its history, or new entries there are.
        let serves = match (from, self.stream(key)?) {
            (GroupFrom::History(_), Some(_)) => true,
            (GroupFrom::New, Some(s)) => s
                .group(group)
                .zip(s.edges())
                .is_some_and(|(g, (_, (top, _)))| *top > g.last_id),
            (_, None) => false,
        };
        if !serves {
            return Ok(None);
        }
        self.touch_consumer(key, group, consumer);
        let Some(s) = self.stream(key)? else {
            return Ok(None);
        };
        let Some(g) = s.group(group) else {
            return Ok(None);
        };
        let limit = no_bound_if_zero(read.count);
        match from {
            GroupFrom::History(after) => {
                let Some(start) = after.next() else {
                    return Ok(Some(Vec::new()));
                };
                let mut replies = Vec::new();
                let mut redelivered = Vec::new();
                for (id, p) in g
                    .pending
                    .range(start..)
                    .filter(|(_, p)| p.consumer == *consumer)
                    .take(limit)
                {
                    replies.push(held_entry(s, *id));
                    if s.get(*id).is_some() {
                        redelivered.push((
                            *id,
                            Pending {
                                consumer: consumer.clone(),
                                delivered_ms: now,
                                deliveries: p.deliveries + 1,
                            },
                        ));
                    }
                }
                if !redelivered.is_empty() {
                    self.emit(
                        key,
                        EffectOp::XPending {
                            group: group.clone(),
                            entries: redelivered,
                        },
                    );
                }
                Ok(Some(replies))
            }
            GroupFrom::New => {
                let Some(start) = g.last_id.next() else {
                    return Ok(None);
                };
                let mut last_id = g.last_id;
                let mut entries_read = g.entries_read;
                let mut replies = Vec::new();
                let mut delivered = Vec::new();
                for (id, fields) in s.range(start, StreamId::MAX).take(limit) {
                    if entries_read.is_some() && !s.has_tombstones(*id, StreamId::MAX) {
                        entries_read = entries_read.map(|n| n + 1);
                    } else if s.entries_added() > 0 {
                        entries_read = s.entries_up_to(*id);
                    }
                    last_id = *id;
                    replies.push(entry_reply(*id, fields));
                    if !read.noack {
                        delivered.push((
                            *id,
                            Pending {
                                consumer: consumer.clone(),
                                delivered_ms: now,
                                deliveries: 1,
                            },
                        ));
                    }
                }
                if replies.is_empty() {
                    return Ok(None);
                }
                self.emit(
                    key,
                    EffectOp::XGroupSet {
                        group: group.clone(),
                        last_id,
                        entries_read,
                    },
                );
                if !delivered.is_empty() {
                    self.emit(
                        key,
                        EffectOp::XPending {
                            group: group.clone(),
                            entries: delivered,
                        },
                    );
                }
                Ok(Some(replies))
            }
        }
    }

    fn xpending(
        &mut self,
        key: &Bytes,
        group: &Bytes,
        range: &Option<PendingRange>,
    ) -> Result<Reply> {
        let now = self.now;
        let (_, g) = self.stream_group(key, group)?;
        let Some(range) = range else {
            if g.pending.is_empty() {
                return Ok(Reply::Array(vec![
                    Reply::Integer(0),
                    Reply::Null,
                    Reply::Null,
                    Reply::NullArray,
                ]));
            }
            let mut by_consumer: BTreeMap<&Bytes, i64> = BTreeMap::new();
            for p in g.pending.values() {
                *by_consumer.entry(&p.consumer).or_default() += 1;
            }
            let first = g.pending.get_min().map_or(StreamId::MIN, |(id, _)| *id);
            let last = g.pending.get_max().map_or(StreamId::MIN, |(id, _)| *id);
            return Ok(Reply::Array(vec![
                Reply::Integer(g.pending.len() as i64),
                id_reply(first),
                id_reply(last),
                Reply::Array(
                    by_consumer
                        .into_iter()
                        .map(|(c, n)| {
                            Reply::Array(vec![
                                Reply::Bulk(c.clone()),
                                Reply::bulk(n.to_string().as_bytes()),
                            ])
                        })
                        .collect(),
                ),
            ]));
        };
        if range.count <= 0 || range.start > range.end {
            return Ok(Reply::Array(Vec::new()));
        }
        if let Some(c) = &range.consumer
            && !g.consumers.contains_key(c)
        {
            return Ok(Reply::Array(Vec::new()));
        }
        let entries = g
            .pending
            .range(range.start..=range.end)
            .filter(|(_, p)| range.consumer.as_ref().is_none_or(|c| *c == p.consumer))
            .filter(|(_, p)| {
                range
                    .min_idle_ms
                    .is_none_or(|min| min <= 0 || idle(now, p.delivered_ms) >= min)
            })
            .take(usize::try_from(range.count).unwrap_or(usize::MAX))
            .map(|(id, p)| {
                Reply::Array(vec![
                    id_reply(*id),
                    Reply::Bulk(p.consumer.clone()),
                    Reply::Integer(idle(now, p.delivered_ms)),
                    Reply::Integer(p.deliveries as i64),
                ])
            })
            .collect();
        Ok(Reply::Array(entries))
    }

    fn xclaim(
        &mut self,
        key: &Bytes,
        group: &Bytes,
        consumer: &Bytes,
        args: &Result<Claim>,
    ) -> Result<Reply> {
        let now = self.now;
        let (s, g) = self.stream_group(key, group)?;
        let claim = args.clone()?;
        let opts = &claim.opts;
        let delivered_ms = match (opts.idle_ms, opts.time_ms) {
            (_, Some(time)) => time,
            (Some(idle), None) => (now as i64).saturating_sub(idle),
            (None, None) => now as i64,
        };
        let delivered_ms = if delivered_ms < 0 || delivered_ms as u64 > now {
            now
        } else {
            delivered_ms as u64
        };
        let mut pending: BTreeMap<StreamId, Option<Pending>> = BTreeMap::new();
        let mut replies = Vec::new();
        let mut claimed_any = false;
        for id in &claim.ids {
            let held = match pending.get(id) {
                Some(p) => p.clone(),
                None => g.pending.get(id).cloned(),
            };
            if s.get(*id).is_none() {
                if held.is_some() {
                    pending.insert(*id, None);
                }
                continue;
            }
            let (mut p, forced) = match held {
                Some(p) => (p, false),
                None if opts.force => (
                    Pending {
                        consumer: Bytes::new(),
                        delivered_ms: now,
                        deliveries: 1,
                    },
                    true,
                ),
                None => continue,
            };
            if !forced && claim.min_idle_ms > 0 && idle(now, p.delivered_ms) < claim.min_idle_ms {
                continue;
            }
            claimed_any = true;
            p.consumer = consumer.clone();
            p.delivered_ms = delivered_ms;
            match opts.retry_count {
                Some(n) if n >= 0 => p.deliveries = n as u64,
                _ if !opts.just_id => p.deliveries += 1,
                _ => {}
            }
            pending.insert(*id, Some(p));
            replies.push(if opts.just_id {
                id_reply(*id)
            } else {
                held_entry(s, *id)
            });
        }
        let raise_last = opts.last_id.filter(|id| *id > g.last_id);
        let group_read = g.entries_read;
        if let Some(last) = raise_last {
            self.emit(
                key,
                EffectOp::XGroupSet {
                    group: group.clone(),
                    last_id: last,
                    entries_read: group_read,
                },
            );
        }
        self.settle_claims(key, group, consumer, claimed_any, pending);
        Ok(Reply::Array(replies))
    }

    /// Emits what a claim changed: the consumer (seen now), the entries it
    /// took, and the pending entries of deleted stream entries it dropped.
    fn settle_claims(
        &mut self,
        key: &Bytes,
        group: &Bytes,
        consumer: &Bytes,
        claimed: bool,
        pending: BTreeMap<StreamId, Option<Pending>>,
    ) {
        if claimed {
            self.touch_consumer(key, group, consumer);
        }
        let dropped: Vec<StreamId> = pending
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(id, _)| *id)
            .collect();
        if !dropped.is_empty() {
            self.emit(
                key,
                EffectOp::XAck {
                    group: group.clone(),
                    ids: dropped,
                },
            );
        }
        let taken: Vec<(StreamId, Pending)> = pending
            .into_iter()
            .filter_map(|(id, p)| Some((id, p?)))
            .collect();
        if !taken.is_empty() {
            self.emit(
                key,
                EffectOp::XPending {
                    group: group.clone(),
                    entries: taken,
                },
            );
        }
    }

    fn xautoclaim(
        &mut self,
        key: &Bytes,
        group: &Bytes,
        consumer: &Bytes,
        args: &Result<AutoClaim>,
    ) -> Result<Reply> {
        let now = self.now;
        // Redis reads XAUTOCLAIM's arguments before it looks the key up.
        let claim = args.clone()?;
        let (s, g) = self.stream_group(key, group)?;
        let mut attempts = claim.count.saturating_mul(10);
        let mut count = claim.count;
        let mut pending: BTreeMap<StreamId, Option<Pending>> = BTreeMap::new();
        let mut replies = Vec::new();
        let mut deleted = Vec::new();
        let mut claimed_any = false;
        let mut walk = g.pending.range(claim.start..);
        let mut next = None;
        loop {
            if attempts == 0 || count == 0 {
                next = walk.next().map(|(id, _)| *id);
                break;
            }
            attempts -= 1;
            let Some((id, p)) = walk.next() else {
                break;
            };
            if s.get(*id).is_none() {
                pending.insert(*id, None);
                deleted.push(id_reply(*id));
                count -= 1;
                continue;
            }
            if claim.min_idle_ms > 0 && idle(now, p.delivered_ms) < claim.min_idle_ms {
                continue;
            }
            claimed_any = true;
            let mut p = p.clone();
            p.consumer = consumer.clone();
            p.delivered_ms = now;
            if !claim.just_id {
                p.deliveries += 1;
            }
            pending.insert(*id, Some(p));
            replies.push(if claim.just_id {
                id_reply(*id)
            } else {
                held_entry(s, *id)
            });
            count -= 1;
        }
        self.settle_claims(key, group, consumer, claimed_any, pending);
        Ok(Reply::Array(vec![
            id_reply(next.unwrap_or(StreamId::MIN)),
            Reply::Array(replies),
            Reply::Array(deleted),
        ]))
    }
}

/// A stream command given to the wrong one of its executors: a bug,
/// answered as an error rather than a panic.
fn misrouted_stream() -> CommandError {
    debug_assert!(false, "stream command routed to the wrong executor");
    CommandError::Other("internal error: command routed to the wrong executor")
}

fn key_must_exist() -> CommandError {
    CommandError::Other(
        "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to \
         use the MKSTREAM option to create an empty stream automatically.",
    )
}

/// Whether `trim` could remove anything from `s`.
fn would_trim(s: &StreamValue, trim: Trim) -> bool {
    match trim.to {
        TrimTo::MaxLen(max) => s.len() as u64 > max,
        TrimTo::MinId(min) => s.edges().is_some_and(|((first, _), _)| *first < min),
    }
}

/// XINFO STREAM, plain or FULL with at most `full` entries (0: all).
fn info_stream(s: &StreamValue, full: Option<usize>) -> Reply {
    let mut fields = vec![
        (word("length"), Reply::Integer(s.len() as i64)),
        (
            word("radix-tree-keys"),
            Reply::Integer(s.nodes().len() as i64),
        ),
        (
            word("radix-tree-nodes"),
            Reply::Integer(s.nodes().len() as i64 + 1),
        ),
        (word("last-generated-id"), id_reply(s.last_id())),
        (word("max-deleted-entry-id"), id_reply(s.max_deleted())),
        (
            word("entries-added"),
            Reply::Integer(s.entries_added() as i64),
        ),
        (word("recorded-first-entry-id"), id_reply(s.first_id())),
    ];
    let Some(count) = full else {
        fields.push((word("groups"), Reply::Integer(s.groups().len() as i64)));
        let (first, last) = match s.edges() {
            Some(((fid, ff), (lid, lf))) => (entry_reply(*fid, ff), entry_reply(*lid, lf)),
            None => (Reply::Null, Reply::Null),
        };
        fields.push((word("first-entry"), first));
        fields.push((word("last-entry"), last));
        return Reply::Map(fields);
    };
    let limit = no_bound_if_zero(count);
    fields.push((
        word("entries"),
        Reply::Array(
            s.range(StreamId::MIN, StreamId::MAX)
                .take(limit)
                .map(|(id, f)| entry_reply(*id, f))
                .collect(),
        ),
    ));
    let groups = s
        .groups()
        .iter()
        .map(|(name, g)| {
            let pending = g
                .pending
                .iter()
                .take(limit)
                .map(|(id, p)| {
                    Reply::Array(vec![
                        id_reply(*id),
                        Reply::Bulk(p.consumer.clone()),
                        Reply::Integer(p.delivered_ms as i64),
                        Reply::Integer(p.deliveries as i64),
                    ])
                })
                .collect();
            let held = g.pending_by_consumer(limit);
            let consumers = g
                .consumers
                .iter()
                .map(|(cname, c)| {
                    let (count, first) =
                        held.get(cname).map_or((0, &[][..]), |(n, f)| (*n, &f[..]));
                    let own: Vec<Reply> = first
                        .iter()
                        .map(|&(id, p)| {
                            Reply::Array(vec![
                                id_reply(*id),
                                Reply::Integer(p.delivered_ms as i64),
                                Reply::Integer(p.deliveries as i64),
                            ])
                        })
                        .collect();
                    Reply::Map(vec![
                        (word("name"), Reply::Bulk(cname.clone())),
                        (word("seen-time"), Reply::Integer(c.seen_ms as i64)),
                        (word("pel-count"), Reply::Integer(count as i64)),
                        (word("pending"), Reply::Array(own)),
                    ])
                })
                .collect();
            Reply::Map(vec![
                (word("name"), Reply::Bulk(name.clone())),
                (word("last-delivered-id"), id_reply(g.last_id)),
                (word("entries-read"), entries_read_reply(g)),
                (word("lag"), lag(s, g)),
                (word("pel-count"), Reply::Integer(g.pending.len() as i64)),
                (word("pending"), Reply::Array(pending)),
                (word("consumers"), Reply::Array(consumers)),
            ])
        })
        .collect();
    fields.push((word("groups"), Reply::Array(groups)));
    Reply::Map(fields)
}
