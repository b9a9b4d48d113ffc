//! The byte form of one value, for snapshots and handoff.
//!
//! ```text
//! version u8 (= 1) · type tag u8 · body · CRC-32 (LE) of everything before it
//! tag 0 string, 1 JSON string: varint length, bytes
//! tag 2 hash:  varint count, count × (field, value)   each as varint length + bytes
//! tag 3 list:  varint count, count × element          head first
//! tag 4 set:   varint count, count × member
//! tag 5 zset:  varint count, count × (score f64 LE bits, member)   lowest first
//! tag 6 stream: last ID, first ID, largest deleted ID, u64 entries added,
//!              u64 count, count × node (first ID, last ID, u32 written, u32 live,
//!                u32 listpack bytes, u32 count, count × field name)
//!              u64 count, count × entry (ID, u32 pairs, pairs × (field, value))
//!              u64 count, count × group (name, last ID, u64 entries read or
//!                u64::MAX, u64 count, count × consumer (name, u64 seen ms),
//!                u64 count, count × pending (ID, consumer name, u64 delivered
//!                ms, u64 deliveries))
//! ```
//!
//! In a stream, an ID is two `u64` LE (milliseconds, sequence) and the
//! counts are fixed-width, so that its encoded length follows from its
//! footprint without a count's varint.
//!
//! Varints are LEB128 (7 bits a byte, low bits first, at most 10 bytes).
//! Decoding is total: any input gives the value or a [`DecodeError`], never
//! a panic, and never allocates more than the input's own length could
//! hold (a count is checked against the bytes left before anything is
//! reserved). A decoded value also satisfies the type's invariants: no
//! duplicate field or member, no NaN score, no empty container. A later
//! format gets version 2 and this decoder stays, frozen, beside it.

use bytes::Bytes;

use super::stream::{Consumer, Group, Node, Pending, StreamId, StreamParts};
use super::{
    HashValue, ListValue, Score, SetValue, StrValue, StreamValue, Value, ValueType, ZSetValue,
};

/// The format version [`encode`] writes.
pub const VERSION: u8 = 1;

const TAG_STR: u8 = 0;
const TAG_JSON: u8 = 1;
const TAG_HASH: u8 = 2;
const TAG_LIST: u8 = 3;
const TAG_SET: u8 = 4;
const TAG_ZSET: u8 = 5;
const TAG_STREAM: u8 = 6;

/// Why bytes are not a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the smallest encoding.
    #[error("encoded value truncated")]
    Truncated,
    /// The checksum does not match.
    #[error("encoded value checksum mismatch")]
    Checksum,
    /// A version this build does not read.
    #[error("unknown value encoding version {0}")]
    Version(u8),
    /// A type tag that does not exist.
    #[error("unknown value type tag {0}")]
    Tag(u8),
    /// Lengths or counts that disagree with the data, a duplicate element,
    /// a NaN score, an empty container, or bytes after the value.
    #[error("malformed encoded value: {0}")]
    Malformed(&'static str),
}

/// Appends the encoding of `value` to `out`.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(VERSION);
    match value {
        Value::Str(s) => {
            out.push(if s.json { TAG_JSON } else { TAG_STR });
            put_bytes(out, &s.bytes);
        }
        Value::Hash(h) => {
            out.push(TAG_HASH);
            put_varint(out, h.len() as u64);
            for (f, v) in h.iter() {
                put_bytes(out, f);
                put_bytes(out, v);
            }
        }
        Value::List(l) => {
            out.push(TAG_LIST);
            put_varint(out, l.len() as u64);
            for item in l.iter() {
                put_bytes(out, item);
            }
        }
        Value::Set(s) => {
            out.push(TAG_SET);
            put_varint(out, s.len() as u64);
            for m in s.iter() {
                put_bytes(out, m);
            }
        }
        Value::ZSet(z) => {
            out.push(TAG_ZSET);
            put_varint(out, z.len() as u64);
            for (m, score) in z.iter() {
                out.extend_from_slice(&score.to_bits().to_le_bytes());
                put_bytes(out, m);
            }
        }
        Value::Stream(stream) => {
            out.push(TAG_STREAM);
            put_stream(out, stream);
        }
    }
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Opens a checksummed encoding framed as values and effects are
/// (`version u8, tag u8, fields..., crc u32` over the rest): checks the
/// checksum, then that the version is `version`, and gives the tag and a
/// reader at the first field.
pub(crate) fn open(data: &[u8], version: u8) -> Result<(u8, Reader<'_>), DecodeError> {
    if data.len() < 2 + 1 + 4 {
        return Err(DecodeError::Truncated);
    }
    let (body, crc) = data.split_at(data.len() - 4);
    let mut crc_bytes = [0u8; 4];
    crc_bytes.copy_from_slice(crc);
    if crc32fast::hash(body) != u32::from_le_bytes(crc_bytes) {
        return Err(DecodeError::Checksum);
    }
    if body[0] != version {
        return Err(DecodeError::Version(body[0]));
    }
    Ok((body[1], Reader { data: body, pos: 2 }))
}

/// The type of the value encoded in `data`, from its tag byte alone (the
/// checksum is not verified: [`decode`] does that).
pub fn type_of(data: &[u8]) -> Option<ValueType> {
    match data.get(1)? {
        &TAG_STR | &TAG_JSON => Some(ValueType::String),
        &TAG_HASH => Some(ValueType::Hash),
        &TAG_LIST => Some(ValueType::List),
        &TAG_SET => Some(ValueType::Set),
        &TAG_ZSET => Some(ValueType::ZSet),
        &TAG_STREAM => Some(ValueType::Stream),
        _ => None,
    }
}

/// Decodes one value encoded by [`encode`] (the whole of `data`).
pub fn decode(data: &[u8]) -> Result<Value, DecodeError> {
    let (tag, mut r) = open(data, VERSION)?;
    let value = match tag {
        tag @ (TAG_STR | TAG_JSON) => Value::Str(StrValue {
            bytes: r.bytes()?.to_vec(),
            json: tag == TAG_JSON,
        }),
        TAG_HASH => {
            let n = r.count(2)?;
            let mut h = HashValue::new();
            for _ in 0..n {
                let f = r.bytes()?;
                let v = r.bytes()?;
                if !h.insert(f, v) {
                    return Err(DecodeError::Malformed("duplicate hash field"));
                }
            }
            Value::Hash(h)
        }
        TAG_LIST => {
            let n = r.count(1)?;
            let mut l = ListValue::new();
            for _ in 0..n {
                l.push(false, r.bytes()?);
            }
            Value::List(l)
        }
        TAG_SET => {
            let n = r.count(1)?;
            let mut s = SetValue::new();
            for _ in 0..n {
                if !s.insert(r.bytes()?) {
                    return Err(DecodeError::Malformed("duplicate set member"));
                }
            }
            Value::Set(s)
        }
        TAG_ZSET => {
            let n = r.count(9)?;
            let mut z = ZSetValue::new();
            for _ in 0..n {
                let score = f64::from_bits(r.u64()?);
                let score = Score::new(score).map_err(|_| DecodeError::Malformed("NaN score"))?;
                if z.insert(r.bytes()?, score).is_some() {
                    return Err(DecodeError::Malformed("duplicate sorted set member"));
                }
            }
            Value::ZSet(z)
        }
        TAG_STREAM => Value::Stream(Box::new(read_stream(&mut r)?)),
        tag => return Err(DecodeError::Tag(tag)),
    };
    if !r.at_end() {
        return Err(DecodeError::Malformed("bytes after the value"));
    }
    if value.is_empty_container() {
        return Err(DecodeError::Malformed("empty container"));
    }
    Ok(value)
}

/// A stream ID: milliseconds, then sequence, each a `u64` LE.
fn put_id(out: &mut Vec<u8>, id: StreamId) {
    out.extend_from_slice(&id.ms.to_le_bytes());
    out.extend_from_slice(&id.seq.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_stream(out: &mut Vec<u8>, stream: &StreamValue) {
    let s = stream.parts();
    put_id(out, s.last_id);
    put_id(out, s.first_id);
    put_id(out, s.max_deleted);
    put_u64(out, s.entries_added);
    put_u64(out, s.nodes.len() as u64);
    for node in s.nodes {
        put_id(out, node.first);
        put_id(out, node.last);
        out.extend_from_slice(&node.written.to_le_bytes());
        out.extend_from_slice(&node.live.to_le_bytes());
        out.extend_from_slice(&node.bytes.to_le_bytes());
        out.extend_from_slice(&(node.master.len() as u32).to_le_bytes());
        for name in node.master.iter() {
            put_bytes(out, name);
        }
    }
    put_u64(out, s.entries.len() as u64);
    for (id, fields) in s.entries {
        put_id(out, *id);
        out.extend_from_slice(&((fields.len() / 2) as u32).to_le_bytes());
        for f in fields.iter() {
            put_bytes(out, f);
        }
    }
    put_u64(out, s.groups.len() as u64);
    for (name, group) in s.groups {
        put_bytes(out, name);
        put_id(out, group.last_id);
        put_u64(out, group.entries_read.unwrap_or(u64::MAX));
        put_u64(out, group.consumers.len() as u64);
        for (name, consumer) in &group.consumers {
            put_bytes(out, name);
            put_u64(out, consumer.seen_ms);
        }
        put_u64(out, group.pending.len() as u64);
        for (id, p) in &group.pending {
            put_id(out, *id);
            put_bytes(out, &p.consumer);
            put_u64(out, p.delivered_ms);
            put_u64(out, p.deliveries);
        }
    }
}

fn read_id(r: &mut Reader<'_>) -> Result<StreamId, DecodeError> {
    Ok(StreamId::new(r.u64()?, r.u64()?))
}

/// A fixed-width count, checked against the bytes left as
/// [`Reader::count`] checks a varint one.
fn read_count(r: &mut Reader<'_>, min_bytes: usize) -> Result<usize, DecodeError> {
    match usize::try_from(r.u64()?) {
        Ok(n) if n.saturating_mul(min_bytes) <= r.left() => Ok(n),
        _ => Err(DecodeError::Malformed("count larger than the data")),
    }
}

fn read_u32(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    let bytes = [r.u8()?, r.u8()?, r.u8()?, r.u8()?];
    Ok(u32::from_le_bytes(bytes))
}

fn read_stream(r: &mut Reader<'_>) -> Result<StreamValue, DecodeError> {
    let last_id = read_id(r)?;
    let first_id = read_id(r)?;
    let max_deleted = read_id(r)?;
    let entries_added = r.u64()?;
    let n = read_count(r, super::stream::NODE_BYTES)?;
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        let first = read_id(r)?;
        let last = read_id(r)?;
        let written = read_u32(r)?;
        let live = read_u32(r)?;
        let bytes = read_u32(r)?;
        let names = read_u32(r)? as usize;
        if names > r.left() {
            return Err(DecodeError::Malformed("count larger than the data"));
        }
        let mut master = Vec::with_capacity(names);
        for _ in 0..names {
            master.push(r.bytes()?);
        }
        nodes.push(Node {
            first,
            last,
            written,
            live,
            bytes,
            master: master.into(),
        });
    }
    let n = read_count(r, 20)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let id = read_id(r)?;
        let pairs = read_u32(r)? as usize;
        if pairs == 0 || pairs.saturating_mul(2) > r.left() {
            return Err(DecodeError::Malformed("stream entry without fields"));
        }
        let mut fields = Vec::with_capacity(pairs * 2);
        for _ in 0..pairs * 2 {
            fields.push(r.bytes()?);
        }
        entries.push((id, fields.into()));
    }
    let n = read_count(r, 41)?;
    let mut groups = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.bytes()?;
        let mut group = Group {
            last_id: read_id(r)?,
            entries_read: Some(r.u64()?).filter(|&n| n != u64::MAX),
            ..Group::default()
        };
        for _ in 0..read_count(r, 9)? {
            let name = r.bytes()?;
            let seen_ms = r.u64()?;
            if group.consumers.insert(name, Consumer { seen_ms }).is_some() {
                return Err(DecodeError::Malformed("duplicate consumer"));
            }
        }
        for _ in 0..read_count(r, 33)? {
            let id = read_id(r)?;
            let pending = Pending {
                consumer: r.bytes()?,
                delivered_ms: r.u64()?,
                deliveries: r.u64()?,
            };
            if group.pending.insert(id, pending).is_some() {
                return Err(DecodeError::Malformed("duplicate pending entry"));
            }
        }
        groups.push((name, group));
    }
    StreamValue::from_parts(StreamParts {
        entries,
        nodes,
        last_id,
        first_id,
        max_deleted,
        entries_added,
        groups,
    })
    .ok_or(DecodeError::Malformed(
        "stream parts that do not fit together",
    ))
}

/// Bytes [`put_varint`] writes for `n`.
pub(crate) fn varint_len(n: u64) -> usize {
    // One byte per started group of 7 bits, at least one.
    (64 - n.leading_zeros() as usize).div_ceil(7).max(1)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A cursor over encoded bytes whose every read is checked.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.data.len()
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.data.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut n: u64 = 0;
        for i in 0..10 {
            let b = *self.data.get(self.pos).ok_or(DecodeError::Truncated)?;
            self.pos += 1;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return Err(DecodeError::Malformed("varint overflows 64 bits"));
            }
            n |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(DecodeError::Malformed("varint longer than 10 bytes"))
    }

    /// A count of elements each at least `min_bytes` long, checked against
    /// what is left so that no hostile count makes us loop or reserve.
    pub(crate) fn count(&mut self, min_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_bytes) <= self.left() => Ok(n),
            _ => Err(DecodeError::Malformed("count larger than the data")),
        }
    }

    pub(crate) fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.left())
            .ok_or(DecodeError::Truncated)?;
        let b = Bytes::copy_from_slice(&self.data[self.pos..self.pos + len]);
        self.pos += len;
        Ok(b)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        if self.left() < 8 {
            return Err(DecodeError::Truncated);
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.data[self.pos..self.pos + 8]);
        self.pos += 8;
        Ok(u64::from_le_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn element() -> impl Strategy<Value = Bytes> {
        // Some past 127 bytes, whose length prefix takes two bytes.
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..12),
            1 => proptest::collection::vec(any::<u8>(), 120..140),
        ]
        .prop_map(Bytes::from)
    }

    fn value() -> impl Strategy<Value = Value> {
        let score = prop_oneof![
            any::<f64>().prop_filter("not NaN", |f| !f.is_nan()),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            (-5i32..5).prop_map(f64::from),
        ];
        prop_oneof![
            (proptest::collection::vec(any::<u8>(), 0..40), any::<bool>())
                .prop_map(|(bytes, json)| Value::Str(StrValue { bytes, json })),
            proptest::collection::vec((element(), element()), 1..20).prop_map(|pairs| {
                let mut h = HashValue::new();
                for (f, v) in pairs {
                    h.insert(f, v);
                }
                Value::Hash(h)
            }),
            proptest::collection::vec(element(), 1..20)
                .prop_map(|v| Value::List(v.into_iter().collect())),
            proptest::collection::vec(element(), 1..20)
                .prop_map(|v| Value::Set(v.into_iter().collect())),
            // A stream: entries (some deleted), a group whose consumers
            // hold some of them.
            (
                proptest::collection::vec((element(), element(), any::<bool>()), 0..30),
                proptest::collection::vec(any::<u8>(), 0..6),
            )
                .prop_map(|(entries, pending)| {
                    let mut s = StreamValue::new();
                    for (i, (f, v, _)) in entries.iter().enumerate() {
                        s.add(
                            StreamId::new(i as u64 + 1, 0),
                            vec![f.clone(), v.clone()].into(),
                        );
                    }
                    for (i, (_, _, gone)) in entries.iter().enumerate() {
                        if *gone {
                            s.delete(StreamId::new(i as u64 + 1, 0));
                        }
                    }
                    s.set_group(Bytes::from_static(b"g"), StreamId::new(3, 0), Some(3));
                    s.touch_consumer(b"g", Bytes::from_static(b"alice"), 7);
                    let held: Vec<_> = pending
                        .iter()
                        .map(|&n| {
                            (
                                StreamId::new(u64::from(n), 0),
                                Pending {
                                    consumer: Bytes::from_static(b"alice"),
                                    delivered_ms: u64::from(n) * 10,
                                    deliveries: 1,
                                },
                            )
                        })
                        .collect();
                    s.set_pending(b"g", &held);
                    Value::Stream(Box::new(s))
                }),
            proptest::collection::vec((element(), score), 1..20).prop_map(|v| {
                Value::ZSet(
                    v.into_iter()
                        .map(|(m, s)| (m, Score::new(s).unwrap()))
                        .collect(),
                )
            }),
        ]
    }

    proptest! {
        #[test]
        fn every_value_round_trips(v in value()) {
            let mut out = Vec::new();
            encode(&v, &mut out);
            prop_assert_eq!(v.encoded_len(), out.len());
            let back = decode(&out).unwrap();
            prop_assert_eq!(back.heap_bytes(), v.heap_bytes());
            prop_assert_eq!(back, v);
        }

        #[test]
        fn the_encoded_length_follows_removals_and_replacements(
            fields in proptest::collection::vec((0u8..8, proptest::collection::vec(any::<u8>(), 0..300)), 1..40),
        ) {
            // Long values cross the 128-byte line where a length prefix
            // takes a second byte.
            let mut hash = HashValue::new();
            let mut list = ListValue::new();
            for (f, v) in fields {
                let field = Bytes::from(vec![f]);
                if v.len() % 3 == 0 {
                    hash.remove(&field);
                    list.pop(f % 2 == 0);
                } else {
                    hash.insert(field, Bytes::from(v.clone()));
                    list.push(f % 2 == 0, Bytes::from(v));
                }
                for value in [Value::Hash(hash.clone()), Value::List(list.clone())] {
                    let mut out = Vec::new();
                    encode(&value, &mut out);
                    prop_assert_eq!(value.encoded_len(), out.len());
                }
            }
        }

        #[test]
        fn any_single_bit_flip_is_detected(v in value(), bit in any::<usize>()) {
            let mut out = Vec::new();
            encode(&v, &mut out);
            let bit = bit % (out.len() * 8);
            out[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode(&out).is_err());
        }

        #[test]
        fn hostile_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&data);
        }

        #[test]
        fn hostile_bodies_with_a_valid_checksum_never_panic(body in proptest::collection::vec(any::<u8>(), 2..200)) {
            // Past the checksum, so that the parser itself is exercised.
            let mut data = body.clone();
            data[0] = VERSION;
            data[1] %= 6;
            let crc = crc32fast::hash(&data);
            data.extend_from_slice(&crc.to_le_bytes());
            if let Ok(v) = decode(&data) {
                let mut again = Vec::new();
                encode(&v, &mut again);
                prop_assert_eq!(decode(&again).unwrap(), v);
            }
        }
    }

    #[test]
    fn a_huge_count_is_refused_without_allocating() {
        let mut data = vec![VERSION, TAG_LIST];
        put_varint(&mut data, u64::MAX >> 1);
        let crc = crc32fast::hash(&data);
        data.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode(&data),
            Err(DecodeError::Malformed("count larger than the data"))
        );
    }

    #[test]
    fn an_empty_container_is_refused() {
        let mut data = vec![VERSION, TAG_SET, 0];
        let crc = crc32fast::hash(&data);
        data.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode(&data),
            Err(DecodeError::Malformed("empty container"))
        );
    }
}
