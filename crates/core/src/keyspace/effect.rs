//! Effects: what a command did to one key, compact enough to ship to
//! replicas, and deterministic: applying the same effects in the same order
//! to equal keyspaces gives equal keyspaces. Randomness and arithmetic are
//! resolved at the leader (SPOP names the members it popped, INCRBYFLOAT
//! ships the resulting string), so replicas never re-roll or re-round.
//!
//! Cost: an effect is proportional to the arguments of the command, not to
//! the value it changes: a push onto a list of 100,000 elements ships and
//! applies one element. Only commands that build a whole new value (SET,
//! the STORE variants, COPY, RENAME's destination) ship a whole value.

use bytes::Bytes;

use super::Entry;
use crate::value::stream::{Fields, Pending, StreamId, Trim};
use crate::value::{
    HashValue, ListValue, Score, ScoreError, SetValue, StrValue, StreamValue, Value, ValueType,
    ZSetValue,
};

/// A change to one key.
#[derive(Clone, Debug, PartialEq)]
pub struct Effect {
    /// The key.
    pub key: Bytes,
    /// The change.
    pub op: EffectOp,
}

/// The changes an effect can make. Operations on a container create the
/// key when it is missing, and delete it when they leave it empty.
#[derive(Clone, Debug, PartialEq)]
pub enum EffectOp {
    /// The key is gone.
    Delete,
    /// The key holds this whole value, with this expiry.
    Put {
        /// The value.
        value: Value,
        /// Absolute expiry, Unix milliseconds.
        expire_at_ms: Option<u64>,
    },
    /// The key's expiry changes (or is removed).
    SetExpiry(Option<u64>),
    /// The string's bytes are replaced, TTL kept (counters, created at 0 if missing).
    SetString(Vec<u8>),
    /// Bytes appended to a string (created if missing).
    Append(Bytes),
    /// Bytes written at an offset, zero-padding as needed.
    SetRange {
        /// Where.
        offset: usize,
        /// What.
        bytes: Bytes,
    },
    /// Hash fields set.
    HashSet(Vec<(Bytes, Bytes)>),
    /// Hash fields removed.
    HashDel(Vec<Bytes>),
    /// Elements pushed, one by one, at the head or the tail.
    Push {
        /// Head.
        front: bool,
        /// In push order.
        elements: Vec<Bytes>,
    },
    /// Elements popped from the head or the tail.
    Pop {
        /// Head.
        front: bool,
        /// How many.
        count: usize,
    },
    /// A list element replaced.
    ListSet {
        /// Index from the head.
        index: usize,
        /// The new element.
        element: Bytes,
    },
    /// A list element inserted so that it ends up at `index`.
    ListInsert {
        /// Index from the head.
        index: usize,
        /// The element.
        element: Bytes,
    },
    /// LREM as sent (deterministic on equal lists).
    ListRemove {
        /// As LREM's count.
        count: i64,
        /// The element.
        element: Bytes,
    },
    /// Only the elements `start..=stop` are kept (`None`: none).
    ListTrim {
        /// First kept.
        start: usize,
        /// Last kept.
        stop: Option<usize>,
    },
    /// Set members added.
    SetAdd(Vec<Bytes>),
    /// Set members removed.
    SetRemove(Vec<Bytes>),
    /// Sorted set members given these (final) scores.
    ZAdd(Vec<(f64, Bytes)>),
    /// Sorted set members removed.
    ZRemove(Vec<Bytes>),
    /// A stream entry added above the stream's last ID (the stream
    /// created if missing).
    XAdd {
        /// Its ID.
        id: StreamId,
        /// Field, value, field, value...
        fields: Fields,
    },
    /// Stream entries deleted, as XDEL deletes them.
    XDel(Vec<StreamId>),
    /// A stream trimmed as XTRIM asks (deterministic on equal streams).
    XTrim(Trim),
    /// XSETID.
    XSetId {
        /// The last ID.
        last: StreamId,
        /// The count of entries added.
        added: Option<u64>,
        /// The largest deleted ID.
        max_deleted: Option<StreamId>,
    },
    /// A consumer group's position (the group created if missing).
    XGroupSet {
        /// The group.
        group: Bytes,
        /// The last ID delivered.
        last_id: StreamId,
        /// Entries read, when known.
        entries_read: Option<u64>,
    },
    /// A consumer group removed.
    XGroupDestroy(Bytes),
    /// A consumer created, or seen at a time.
    XConsumer {
        /// The group.
        group: Bytes,
        /// The consumer.
        consumer: Bytes,
        /// When, Unix milliseconds.
        seen_ms: u64,
    },
    /// A consumer removed, with its pending entries.
    XConsumerDel {
        /// The group.
        group: Bytes,
        /// The consumer.
        consumer: Bytes,
    },
    /// Entries put in a group's pending list (delivered or claimed).
    XPending {
        /// The group.
        group: Bytes,
        /// The entries, as they now are.
        entries: Vec<(StreamId, Pending)>,
    },
    /// Entries removed from a group's pending list (acknowledged).
    XAck {
        /// The group.
        group: Bytes,
        /// Their IDs.
        ids: Vec<StreamId>,
    },
}

/// An effect that does not fit the keyspace it is applied to: the replica
/// has diverged and must be repaired from the leader's full value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EffectError {
    /// The key holds another type than the effect works on.
    #[error("effect for a {expected} applied to a {found}")]
    WrongType {
        /// The type the effect works on.
        expected: &'static str,
        /// What the key holds.
        found: &'static str,
    },
    /// A list index past the end.
    #[error("list index {0} out of range")]
    Index(usize),
    /// A NaN score.
    #[error(transparent)]
    Score(#[from] ScoreError),
    /// A stream change that does not fit the stream (an ID not above its
    /// last, a group that is not there).
    #[error("stream {0}")]
    Stream(&'static str),
}

impl EffectOp {
    /// The type this op works on, and an empty value of it to create.
    fn creates(&self) -> Option<Value> {
        match self {
            EffectOp::SetString(_) | EffectOp::Append(_) | EffectOp::SetRange { .. } => {
                Some(Value::Str(StrValue::default()))
            }
            EffectOp::HashSet(_) => Some(Value::Hash(HashValue::new())),
            EffectOp::Push { .. } => Some(Value::List(ListValue::new())),
            EffectOp::SetAdd(_) => Some(Value::Set(SetValue::new())),
            EffectOp::ZAdd(_) => Some(Value::ZSet(ZSetValue::new())),
            EffectOp::XAdd { .. } => Some(Value::Stream(Box::default())),
            _ => None,
        }
    }
}

fn wrong(expected: ValueType, found: &Value) -> EffectError {
    EffectError::WrongType {
        expected: expected.name(),
        found: found.value_type().name(),
    }
}

/// Applies `op` to one key's slot (`None`: the key does not exist): the
/// whole of a replica's work for one key, for any store that keeps
/// [`Entry`]s its own way. Container ops create a missing key and delete
/// one they leave empty. On an error the slot is unchanged.
pub fn apply_to_slot(slot: &mut Option<Entry>, op: &EffectOp) -> Result<(), EffectError> {
    match op {
        EffectOp::Delete => *slot = None,
        EffectOp::Put {
            value,
            expire_at_ms,
        } => {
            *slot = Some(Entry {
                value: value.clone(),
                expire_at_ms: *expire_at_ms,
            })
        }
        EffectOp::SetExpiry(at) => {
            if let Some(entry) = slot.as_mut() {
                entry.expire_at_ms = *at;
            }
        }
        op => {
            // Refused before a missing stream is created for it, so that
            // an error leaves the slot as it was.
            if let EffectOp::XAdd { id, fields } = op
                && (fields.is_empty() || fields.len() % 2 != 0 || id.is_zero())
            {
                return Err(EffectError::Stream("entry without fields, or at 0-0"));
            }
            let entry = match slot {
                Some(entry) => entry,
                None => match op.creates() {
                    // Removing from a missing key changes nothing.
                    None => return Ok(()),
                    Some(value) => slot.insert(Entry {
                        value,
                        expire_at_ms: None,
                    }),
                },
            };
            let applied = apply_to_value(&mut entry.value, op);
            if entry.value.is_empty_container() {
                *slot = None;
            }
            applied?;
        }
    }
    Ok(())
}

/// What takes back one applied op: ops that restore the slot, applied in
/// order, or the slot as it was.
#[derive(Clone, Debug, PartialEq)]
pub enum Undo {
    /// Apply these, in order.
    Ops(Vec<EffectOp>),
    /// Put this back.
    Slot(Option<Entry>),
}

impl Undo {
    /// Takes the op back: `slot` is again what it was before.
    pub fn apply(self, slot: &mut Option<Entry>) {
        match self {
            Undo::Slot(old) => *slot = old,
            Undo::Ops(ops) => {
                for op in &ops {
                    // Each inverse fits the slot the op left, by construction.
                    let undone = apply_to_slot(slot, op);
                    debug_assert!(undone.is_ok(), "an inverse op did not fit: {op:?}");
                }
            }
        }
    }
}

/// [`apply_to_slot`], returning what takes the op back. The undo costs
/// about what the op does (a push is undone by a pop, a pop by pushing the
/// popped elements back), so a store can run commands on values it lends
/// without copying them and still take a refused command back; only ops
/// that cost O(n) anyway (LINSERT, LREM) and string ops keep a copy, and
/// stream ops, whose copy costs O(log n) (its maps are persistent).
pub fn apply_undoable(slot: &mut Option<Entry>, op: &EffectOp) -> Result<Undo, EffectError> {
    if matches!(op, EffectOp::Delete | EffectOp::Put { .. }) {
        // The old entry moves into the undo: no copy.
        let old = slot.take();
        apply_to_slot(slot, op)?;
        return Ok(Undo::Slot(old));
    }
    let undo = inverse(slot.as_ref(), op);
    apply_to_slot(slot, op)?;
    Ok(undo)
}

/// What undoes `op` on `entry`, computed before it is applied. An op that
/// does not fit gets an empty undo: it will fail and change nothing.
fn inverse(entry: Option<&Entry>, op: &EffectOp) -> Undo {
    // A container op on a missing key creates it (or changes nothing).
    let Some(entry) = entry else {
        return Undo::Slot(None);
    };
    let mut ops = match (op, &entry.value) {
        (EffectOp::SetExpiry(_), _) => vec![EffectOp::SetExpiry(entry.expire_at_ms)],
        (EffectOp::HashSet(pairs), Value::Hash(h)) => {
            let (old, new): (Vec<_>, Vec<_>) = pairs.iter().partition(|(f, _)| h.get(f).is_some());
            let old = old
                .into_iter()
                .filter_map(|(f, _)| Some((f.clone(), h.get(f)?.clone())))
                .collect();
            let new = new.into_iter().map(|(f, _)| f.clone()).collect();
            vec![EffectOp::HashSet(old), EffectOp::HashDel(new)]
        }
        // A small hash keeps its fields' order, which putting the removed
        // ones back would not restore (they would go to the end): a copy,
        // which costs what the removal's shifting does.
        (EffectOp::HashDel(_), Value::Hash(h))
            if h.len() <= crate::value::HASH_LISTPACK_MAX_FIELDS =>
        {
            return Undo::Slot(Some(entry.clone()));
        }
        (EffectOp::HashDel(fields), Value::Hash(h)) => {
            let old = fields
                .iter()
                .filter_map(|f| Some((f.clone(), h.get(f)?.clone())))
                .collect();
            vec![EffectOp::HashSet(old)]
        }
        (EffectOp::Push { front, elements }, Value::List(_)) => vec![EffectOp::Pop {
            front: *front,
            count: elements.len(),
        }],
        (EffectOp::Pop { front, count }, Value::List(l)) => {
            // Pushed back one by one, the last popped first, so that the
            // end popped first ends up outermost again.
            let elements = if *front {
                l.iter().take(*count).rev().cloned().collect()
            } else {
                l.iter()
                    .skip(l.len().saturating_sub(*count))
                    .cloned()
                    .collect()
            };
            vec![EffectOp::Push {
                front: *front,
                elements,
            }]
        }
        (EffectOp::ListSet { index, .. }, Value::List(l)) => match l.get(*index) {
            Some(old) => vec![EffectOp::ListSet {
                index: *index,
                element: old.clone(),
            }],
            None => Vec::new(),
        },
        (EffectOp::ListTrim { start, stop }, Value::List(l)) => {
            let len = l.len();
            let kept = stop
                .filter(|&s| s >= *start && *start < len)
                .map(|s| (*start, s.min(len - 1)));
            match kept {
                None => vec![EffectOp::Push {
                    front: false,
                    elements: l.iter().cloned().collect(),
                }],
                Some((start, stop)) => vec![
                    EffectOp::Push {
                        front: false,
                        elements: l.iter().skip(stop + 1).cloned().collect(),
                    },
                    EffectOp::Push {
                        front: true,
                        elements: l.iter().take(start).rev().cloned().collect(),
                    },
                ],
            }
        }
        (EffectOp::SetAdd(members), Value::Set(s)) => vec![EffectOp::SetRemove(
            members.iter().filter(|m| !s.contains(m)).cloned().collect(),
        )],
        (EffectOp::SetRemove(members), Value::Set(s)) => vec![EffectOp::SetAdd(
            members.iter().filter(|m| s.contains(m)).cloned().collect(),
        )],
        (EffectOp::ZAdd(pairs), Value::ZSet(z)) => {
            let old = pairs
                .iter()
                .filter_map(|(_, m)| Some((z.score(m)?, m.clone())))
                .collect();
            let new = pairs
                .iter()
                .filter(|(_, m)| z.score(m).is_none())
                .map(|(_, m)| m.clone())
                .collect();
            vec![EffectOp::ZRemove(new), EffectOp::ZAdd(old)]
        }
        (EffectOp::ZRemove(members), Value::ZSet(z)) => {
            let old = members
                .iter()
                .filter_map(|m| Some((z.score(m)?, m.clone())))
                .collect();
            vec![EffectOp::ZAdd(old)]
        }
        // Strings are small and copied anyway; LINSERT and LREM walk the
        // list already. A type mismatch fails without change: its copy is
        // never used.
        _ => return Undo::Slot(Some(entry.clone())),
    };
    if !matches!(op, EffectOp::SetExpiry(_)) {
        // An op that empties a container deletes the key; the inverse
        // recreates it without an expiry, so put the expiry back.
        ops.push(EffectOp::SetExpiry(entry.expire_at_ms));
    }
    Undo::Ops(ops)
}

/// Applies a value-level op to `value`. Every check happens before any
/// change, so an error leaves `value` as it was.
fn apply_to_value(value: &mut Value, op: &EffectOp) -> Result<(), EffectError> {
    if let EffectOp::ZAdd(pairs) = op {
        for (score, _) in pairs {
            Score::new(*score)?;
        }
    }
    match (op, value) {
        (EffectOp::SetString(bytes), Value::Str(s)) => {
            s.bytes.clone_from(bytes);
            s.json = false;
        }
        (EffectOp::Append(bytes), Value::Str(s)) => {
            s.bytes.extend_from_slice(bytes);
            s.json = false;
        }
        (EffectOp::SetRange { offset, bytes }, Value::Str(s)) => {
            let end = offset + bytes.len();
            if s.bytes.len() < end {
                s.bytes.resize(end, 0);
            }
            s.bytes[*offset..end].copy_from_slice(bytes);
            s.json = false;
        }
        (EffectOp::HashSet(pairs), Value::Hash(h)) => {
            for (f, v) in pairs {
                h.insert(f.clone(), v.clone());
            }
        }
        (EffectOp::HashDel(fields), Value::Hash(h)) => {
            for f in fields {
                h.remove(f);
            }
        }
        (EffectOp::Push { front, elements }, Value::List(l)) => {
            for e in elements {
                l.push(*front, e.clone());
            }
        }
        (EffectOp::Pop { front, count }, Value::List(l)) => {
            for _ in 0..*count {
                l.pop(*front);
            }
        }
        (EffectOp::ListSet { index, element }, Value::List(l)) => {
            if !l.set(*index, element.clone()) {
                return Err(EffectError::Index(*index));
            }
        }
        (EffectOp::ListInsert { index, element }, Value::List(l)) => {
            if *index > l.len() {
                return Err(EffectError::Index(*index));
            }
            l.insert(*index, element.clone());
        }
        (EffectOp::ListRemove { count, element }, Value::List(l)) => {
            l.remove_matching(*count, element);
        }
        (EffectOp::ListTrim { start, stop }, Value::List(l)) => l.retain_range(*start, *stop),
        (EffectOp::SetAdd(members), Value::Set(s)) => {
            for m in members {
                s.insert(m.clone());
            }
        }
        (EffectOp::SetRemove(members), Value::Set(s)) => {
            for m in members {
                s.remove(m);
            }
        }
        (EffectOp::ZAdd(pairs), Value::ZSet(z)) => {
            for (score, m) in pairs {
                z.insert(m.clone(), Score::new(*score)?);
            }
        }
        (EffectOp::ZRemove(members), Value::ZSet(z)) => {
            for m in members {
                z.remove(m);
            }
        }
        (op, Value::Stream(s)) if op.stream_op() => apply_to_stream(s, op)?,
        (op, value) => {
            let expected = match op.creates() {
                Some(v) => v.value_type(),
                None => match op {
                    EffectOp::Pop { .. }
                    | EffectOp::ListSet { .. }
                    | EffectOp::ListInsert { .. }
                    | EffectOp::ListRemove { .. }
                    | EffectOp::ListTrim { .. } => ValueType::List,
                    EffectOp::HashDel(_) => ValueType::Hash,
                    EffectOp::SetRemove(_) => ValueType::Set,
                    EffectOp::ZRemove(_) => ValueType::ZSet,
                    op if op.stream_op() => ValueType::Stream,
                    _ => ValueType::String,
                },
            };
            return Err(wrong(expected, value));
        }
    }
    Ok(())
}

impl EffectOp {
    /// Whether this op works on a stream.
    fn stream_op(&self) -> bool {
        matches!(
            self,
            EffectOp::XAdd { .. }
                | EffectOp::XDel(_)
                | EffectOp::XTrim(_)
                | EffectOp::XSetId { .. }
                | EffectOp::XGroupSet { .. }
                | EffectOp::XGroupDestroy(_)
                | EffectOp::XConsumer { .. }
                | EffectOp::XConsumerDel { .. }
                | EffectOp::XPending { .. }
                | EffectOp::XAck { .. }
        )
    }
}

/// Applies a stream op. Every check happens before any change.
fn apply_to_stream(s: &mut StreamValue, op: &EffectOp) -> Result<(), EffectError> {
    let group_missing = |group: &Bytes| {
        if s.group(group).is_none() {
            Err(EffectError::Stream("group missing"))
        } else {
            Ok(())
        }
    };
    match op {
        EffectOp::XAdd { id, fields } => {
            if fields.is_empty() || fields.len() % 2 != 0 {
                return Err(EffectError::Stream("entry without fields"));
            }
            if !s.add(*id, fields.clone()) {
                return Err(EffectError::Stream("ID not above the last"));
            }
        }
        EffectOp::XDel(ids) => {
            for id in ids {
                s.delete(*id);
            }
        }
        EffectOp::XTrim(trim) => {
            s.trim(*trim);
        }
        EffectOp::XSetId {
            last,
            added,
            max_deleted,
        } => {
            // What XSETID refuses, a replica refuses too.
            let below_top = s.edges().is_some_and(|(_, (top, _))| last < top);
            if below_top || added.is_some_and(|n| n < s.len() as u64) {
                return Err(EffectError::Stream("XSETID below the stream's entries"));
            }
            s.set_id(*last, *added, *max_deleted)
        }
        EffectOp::XGroupSet {
            group,
            last_id,
            entries_read,
        } => s.set_group(group.clone(), *last_id, *entries_read),
        EffectOp::XGroupDestroy(group) => {
            s.destroy_group(group);
        }
        EffectOp::XConsumer {
            group,
            consumer,
            seen_ms,
        } => {
            group_missing(group)?;
            s.touch_consumer(group, consumer.clone(), *seen_ms);
        }
        EffectOp::XConsumerDel { group, consumer } => {
            s.delete_consumer(group, consumer);
        }
        EffectOp::XPending { group, entries } => {
            group_missing(group)?;
            let known = s.group(group).is_some_and(|g| {
                entries
                    .iter()
                    .all(|(_, p)| g.consumers.contains_key(&p.consumer))
            });
            if !known {
                return Err(EffectError::Stream("pending entry of an unknown consumer"));
            }
            s.set_pending(group, entries);
        }
        EffectOp::XAck { group, ids } => {
            s.ack(group, ids);
        }
        _ => return Err(EffectError::Stream("not a stream op")),
    }
    Ok(())
}

/// The byte form of an effect, for shipping to replicas (and for a
/// mutation log):
///
/// ```text
/// version u8 (= 1) · op tag u8 · key · payload · CRC-32 (LE) of everything before it
/// ```
///
/// Bytes and lists are encoded as in [`crate::value::encoding`] (LEB128
/// lengths and counts); a whole value (`Put`) is nested in its own
/// encoding. Decoding is total and never allocates beyond what the input
/// could hold.
pub mod encoding {
    use bytes::Bytes;

    use super::{Effect, EffectOp};
    use crate::value::encoding::{DecodeError, Reader, open, put_bytes, put_varint};
    use crate::value::stream::{Pending, StreamId, Trim, TrimTo};

    /// The format version [`encode`] writes.
    pub const VERSION: u8 = 1;

    /// An allowance for what [`encode_ops`] writes around an op's key and
    /// value: the length, version and tag, the key's and the value's
    /// length prefixes, an expiry, the checksum (41 bytes at most).
    const FRAMING_BYTES: usize = 48;

    fn tag(op: &EffectOp) -> u8 {
        match op {
            EffectOp::Delete => 0,
            EffectOp::Put { .. } => 1,
            EffectOp::SetExpiry(_) => 2,
            EffectOp::SetString(_) => 3,
            EffectOp::Append(_) => 4,
            EffectOp::SetRange { .. } => 5,
            EffectOp::HashSet(_) => 6,
            EffectOp::HashDel(_) => 7,
            EffectOp::Push { .. } => 8,
            EffectOp::Pop { .. } => 9,
            EffectOp::ListSet { .. } => 10,
            EffectOp::ListInsert { .. } => 11,
            EffectOp::ListRemove { .. } => 12,
            EffectOp::ListTrim { .. } => 13,
            EffectOp::SetAdd(_) => 14,
            EffectOp::SetRemove(_) => 15,
            EffectOp::ZAdd(_) => 16,
            EffectOp::ZRemove(_) => 17,
            EffectOp::XAdd { .. } => 18,
            EffectOp::XDel(_) => 19,
            EffectOp::XTrim(_) => 20,
            EffectOp::XSetId { .. } => 21,
            EffectOp::XGroupSet { .. } => 22,
            EffectOp::XGroupDestroy(_) => 23,
            EffectOp::XConsumer { .. } => 24,
            EffectOp::XConsumerDel { .. } => 25,
            EffectOp::XPending { .. } => 26,
            EffectOp::XAck { .. } => 27,
        }
    }

    fn put_opt(out: &mut Vec<u8>, v: Option<u64>) {
        match v {
            None => out.push(0),
            Some(n) => {
                out.push(1);
                put_varint(out, n);
            }
        }
    }

    fn put_id(out: &mut Vec<u8>, id: StreamId) {
        put_varint(out, id.ms);
        put_varint(out, id.seq);
    }

    fn put_ids(out: &mut Vec<u8>, ids: &[StreamId]) {
        put_varint(out, ids.len() as u64);
        for id in ids {
            put_id(out, *id);
        }
    }

    fn put_list(out: &mut Vec<u8>, items: &[Bytes]) {
        put_varint(out, items.len() as u64);
        for i in items {
            put_bytes(out, i);
        }
    }

    /// Puts a whole value as [`put_bytes`] would put its encoding, but
    /// encoded in place: no temporary buffer, no copy. The length prefix
    /// comes first, so it is taken from [`crate::value::Value::encoded_len`]
    /// (exact, and tested to be); should it ever disagree, the value is
    /// put again the slow way, so that the bytes never depend on it.
    fn put_value(out: &mut Vec<u8>, value: &crate::value::Value) {
        let len = value.encoded_len();
        let prefix_at = out.len();
        put_varint(out, len as u64);
        let at = out.len();
        crate::value::encode(value, out);
        if out.len() - at != len {
            debug_assert!(false, "encoded_len {len} for {} bytes", out.len() - at);
            let encoded = out.split_off(at);
            out.truncate(prefix_at);
            put_bytes(out, &encoded);
        }
    }

    /// Appends the encoding of `effect` to `out`.
    pub fn encode(effect: &Effect, out: &mut Vec<u8>) {
        encode_op(&effect.key, &effect.op, out);
    }

    /// [`encode`] for an effect given by its parts, so that a key's ops can
    /// be encoded without building (and so copying) an [`Effect`] for each.
    fn encode_op(key: &[u8], op: &EffectOp, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(VERSION);
        out.push(tag(op));
        put_bytes(out, key);
        match op {
            EffectOp::Delete => {}
            EffectOp::Put {
                value,
                expire_at_ms,
            } => {
                put_opt(out, *expire_at_ms);
                put_value(out, value);
            }
            EffectOp::SetExpiry(at) => put_opt(out, *at),
            EffectOp::SetString(b) => put_bytes(out, b),
            EffectOp::Append(b) => put_bytes(out, b),
            EffectOp::SetRange { offset, bytes } => {
                put_varint(out, *offset as u64);
                put_bytes(out, bytes);
            }
            EffectOp::HashSet(pairs) => {
                put_varint(out, pairs.len() as u64);
                for (f, v) in pairs {
                    put_bytes(out, f);
                    put_bytes(out, v);
                }
            }
            EffectOp::HashDel(items)
            | EffectOp::SetAdd(items)
            | EffectOp::SetRemove(items)
            | EffectOp::ZRemove(items) => put_list(out, items),
            EffectOp::Push { front, elements } => {
                out.push(u8::from(*front));
                put_list(out, elements);
            }
            EffectOp::Pop { front, count } => {
                out.push(u8::from(*front));
                put_varint(out, *count as u64);
            }
            EffectOp::ListSet { index, element } | EffectOp::ListInsert { index, element } => {
                put_varint(out, *index as u64);
                put_bytes(out, element);
            }
            EffectOp::ListRemove { count, element } => {
                out.extend_from_slice(&count.to_le_bytes());
                put_bytes(out, element);
            }
            EffectOp::ListTrim { start, stop } => {
                put_varint(out, *start as u64);
                put_opt(out, stop.map(|s| s as u64));
            }
            EffectOp::ZAdd(pairs) => {
                put_varint(out, pairs.len() as u64);
                for (score, m) in pairs {
                    out.extend_from_slice(&score.to_bits().to_le_bytes());
                    put_bytes(out, m);
                }
            }
            EffectOp::XAdd { id, fields } => {
                put_id(out, *id);
                put_list(out, fields);
            }
            EffectOp::XDel(ids) => put_ids(out, ids),
            EffectOp::XTrim(trim) => {
                match trim.to {
                    TrimTo::MaxLen(n) => {
                        out.push(0);
                        put_varint(out, n);
                    }
                    TrimTo::MinId(id) => {
                        out.push(1);
                        put_id(out, id);
                    }
                }
                out.push(u8::from(trim.approx));
                put_varint(out, trim.limit);
            }
            EffectOp::XSetId {
                last,
                added,
                max_deleted,
            } => {
                put_id(out, *last);
                put_opt(out, *added);
                match max_deleted {
                    None => out.push(0),
                    Some(id) => {
                        out.push(1);
                        put_id(out, *id);
                    }
                }
            }
            EffectOp::XGroupSet {
                group,
                last_id,
                entries_read,
            } => {
                put_bytes(out, group);
                put_id(out, *last_id);
                put_opt(out, *entries_read);
            }
            EffectOp::XGroupDestroy(group) => put_bytes(out, group),
            EffectOp::XConsumer {
                group,
                consumer,
                seen_ms,
            } => {
                put_bytes(out, group);
                put_bytes(out, consumer);
                put_varint(out, *seen_ms);
            }
            EffectOp::XConsumerDel { group, consumer } => {
                put_bytes(out, group);
                put_bytes(out, consumer);
            }
            EffectOp::XPending { group, entries } => {
                put_bytes(out, group);
                put_varint(out, entries.len() as u64);
                for (id, p) in entries {
                    put_id(out, *id);
                    put_bytes(out, &p.consumer);
                    put_varint(out, p.delivered_ms);
                    put_varint(out, p.deliveries);
                }
            }
            EffectOp::XAck { group, ids } => {
                put_bytes(out, group);
                put_ids(out, ids);
            }
        }
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    fn opt(r: &mut Reader<'_>) -> Result<Option<u64>, DecodeError> {
        match r.u8()? {
            0 => Ok(None),
            1 => Ok(Some(r.varint()?)),
            _ => Err(DecodeError::Malformed("bad option flag")),
        }
    }

    fn flag(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
        match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Malformed("bad boolean")),
        }
    }

    fn size(n: u64) -> Result<usize, DecodeError> {
        usize::try_from(n).map_err(|_| DecodeError::Malformed("size beyond this platform"))
    }

    fn id(r: &mut Reader<'_>) -> Result<StreamId, DecodeError> {
        Ok(StreamId::new(r.varint()?, r.varint()?))
    }

    fn ids(r: &mut Reader<'_>) -> Result<Vec<StreamId>, DecodeError> {
        let n = r.count(2)?;
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(id(r)?);
        }
        Ok(ids)
    }

    fn list(r: &mut Reader<'_>) -> Result<Vec<Bytes>, DecodeError> {
        let n = r.count(1)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(r.bytes()?);
        }
        Ok(items)
    }

    /// Appends a key's changes as shipped to its replicas: each op as an
    /// effect on `key` in [`encode`]'s form, after its `u32` LE length.
    pub fn encode_ops(key: &Bytes, ops: &[EffectOp], out: &mut Vec<u8>) {
        for op in ops {
            // Room for the op up front, so that `out` does not grow through
            // it a few bytes at a time: a whole value is most of a `Put`,
            // and the rest of a small op fits in the framing's allowance.
            let payload = match op {
                EffectOp::Put { value, .. } => value.encoded_len(),
                _ => 0,
            };
            out.reserve(FRAMING_BYTES + key.len() + payload);
            let at = out.len();
            out.extend_from_slice(&[0; 4]);
            encode_op(key, op, out);
            let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
            out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        }
    }

    /// Decodes what [`encode_ops`] wrote for `key`: an effect on another
    /// key is malformed.
    pub fn decode_ops(key: &[u8], mut data: &[u8]) -> Result<Vec<EffectOp>, DecodeError> {
        let mut ops = Vec::new();
        while !data.is_empty() {
            let (len, rest) = data
                .split_first_chunk::<4>()
                .ok_or(DecodeError::Truncated)?;
            let len = u32::from_le_bytes(*len) as usize;
            if rest.len() < len {
                return Err(DecodeError::Truncated);
            }
            let (one, rest) = rest.split_at(len);
            let effect = decode(one)?;
            if effect.key.as_ref() != key {
                return Err(DecodeError::Malformed("an effect on another key"));
            }
            ops.push(effect.op);
            data = rest;
        }
        Ok(ops)
    }

    /// Decodes one effect encoded by [`encode`] (the whole of `data`).
    pub fn decode(data: &[u8]) -> Result<Effect, DecodeError> {
        let (tag, mut r) = open(data, VERSION)?;
        let key = r.bytes()?;
        let op = match tag {
            0 => EffectOp::Delete,
            1 => {
                let expire_at_ms = opt(&mut r)?;
                let value = crate::value::decode(&r.bytes()?)?;
                EffectOp::Put {
                    value,
                    expire_at_ms,
                }
            }
            2 => EffectOp::SetExpiry(opt(&mut r)?),
            3 => EffectOp::SetString(r.bytes()?.to_vec()),
            4 => EffectOp::Append(r.bytes()?),
            5 => EffectOp::SetRange {
                offset: size(r.varint()?)?,
                bytes: r.bytes()?,
            },
            6 => {
                let n = r.count(2)?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    pairs.push((r.bytes()?, r.bytes()?));
                }
                EffectOp::HashSet(pairs)
            }
            7 => EffectOp::HashDel(list(&mut r)?),
            8 => EffectOp::Push {
                front: flag(&mut r)?,
                elements: list(&mut r)?,
            },
            9 => EffectOp::Pop {
                front: flag(&mut r)?,
                count: size(r.varint()?)?,
            },
            10 => EffectOp::ListSet {
                index: size(r.varint()?)?,
                element: r.bytes()?,
            },
            11 => EffectOp::ListInsert {
                index: size(r.varint()?)?,
                element: r.bytes()?,
            },
            12 => EffectOp::ListRemove {
                count: r.u64()? as i64,
                element: r.bytes()?,
            },
            13 => EffectOp::ListTrim {
                start: size(r.varint()?)?,
                stop: opt(&mut r)?.map(size).transpose()?,
            },
            14 => EffectOp::SetAdd(list(&mut r)?),
            15 => EffectOp::SetRemove(list(&mut r)?),
            16 => {
                let n = r.count(9)?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    let score = f64::from_bits(r.u64()?);
                    if score.is_nan() {
                        return Err(DecodeError::Malformed("NaN score"));
                    }
                    pairs.push((score, r.bytes()?));
                }
                EffectOp::ZAdd(pairs)
            }
            17 => EffectOp::ZRemove(list(&mut r)?),
            18 => EffectOp::XAdd {
                id: id(&mut r)?,
                fields: list(&mut r)?.into(),
            },
            19 => EffectOp::XDel(ids(&mut r)?),
            20 => {
                let to = match r.u8()? {
                    0 => TrimTo::MaxLen(r.varint()?),
                    1 => TrimTo::MinId(id(&mut r)?),
                    _ => return Err(DecodeError::Malformed("bad trim strategy")),
                };
                EffectOp::XTrim(Trim {
                    to,
                    approx: flag(&mut r)?,
                    limit: r.varint()?,
                })
            }
            21 => EffectOp::XSetId {
                last: id(&mut r)?,
                added: opt(&mut r)?,
                max_deleted: match r.u8()? {
                    0 => None,
                    1 => Some(id(&mut r)?),
                    _ => return Err(DecodeError::Malformed("bad option flag")),
                },
            },
            22 => EffectOp::XGroupSet {
                group: r.bytes()?,
                last_id: id(&mut r)?,
                entries_read: opt(&mut r)?,
            },
            23 => EffectOp::XGroupDestroy(r.bytes()?),
            24 => EffectOp::XConsumer {
                group: r.bytes()?,
                consumer: r.bytes()?,
                seen_ms: r.varint()?,
            },
            25 => EffectOp::XConsumerDel {
                group: r.bytes()?,
                consumer: r.bytes()?,
            },
            26 => {
                let group = r.bytes()?;
                let n = r.count(5)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let at = id(&mut r)?;
                    entries.push((
                        at,
                        Pending {
                            consumer: r.bytes()?,
                            delivered_ms: r.varint()?,
                            deliveries: r.varint()?,
                        },
                    ));
                }
                EffectOp::XPending { group, entries }
            }
            27 => EffectOp::XAck {
                group: r.bytes()?,
                ids: ids(&mut r)?,
            },
            t => return Err(DecodeError::Tag(t)),
        };
        if !r.at_end() {
            return Err(DecodeError::Malformed("bytes after the effect"));
        }
        Ok(Effect { key, op })
    }
}
