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

use crate::value::{
    HashValue, ListValue, Score, ScoreError, SetValue, StrValue, Value, ValueType, ZSetValue,
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

/// Applies a value-level op to `value` (which exists and is not deleted by
/// the op itself). The key layer creates missing values and deletes empty ones.
pub(super) fn apply_to_value(value: &mut Value, op: &EffectOp) -> Result<(), EffectError> {
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
                    _ => ValueType::String,
                },
            };
            return Err(wrong(expected, value));
        }
    }
    Ok(())
}

pub(super) fn empty_value_for(op: &EffectOp) -> Option<Value> {
    op.creates()
}
