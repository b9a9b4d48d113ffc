//! Streams: entries ordered by ID, each a list of field-value pairs, with
//! the stream's counters and its consumer groups, as Redis 7.0 keeps them.
//!
//! # Contract
//!
//! - **IDs only grow.** An entry is added only above [`StreamValue::last_id`],
//!   which never goes back, deletions included (XSETID may move it up, or
//!   down to the last entry).
//! - **Nodes.** Redis keeps a stream's entries in nodes (listpacks) of at
//!   most 100 entries and 4096 bytes (its `stream-node-max-entries` and
//!   `stream-node-max-bytes`), and approximate trimming (`~`) removes whole
//!   nodes only. To trim as it does, the nodes are kept here too: the
//!   first and last ID written to each, how many entries were written to
//!   it and how many are left, the field names of its first entry and the
//!   bytes its listpack would take ([`listpack`]). A node takes entries
//!   until 100 have been written to it, deleted ones included, or until
//!   its bytes and the next entry's field and value bytes reach 4096. One
//!   whose last entry XDEL deletes is dropped; one a trim empties stays
//!   (it takes the next entries), as in Redis.
//! - **Cheap copies.** The maps are persistent (`imbl`): a copy shares
//!   everything with the original until one of them changes, so a store
//!   that keeps a write's old value to take it back pays O(log n), not the
//!   stream's size.
//! - **An empty stream is a value.** Unlike the other containers, a stream
//!   with no entry stays (XDEL of every entry, XTRIM to 0, XGROUP CREATE
//!   ... MKSTREAM).
//! - **Accounting.** [`StreamValue::footprint`] is kept by every change,
//!   as for the other containers, so that the encoded length and the
//!   counted bytes are O(1).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use imbl::{OrdMap, Vector};

use super::Footprint;

/// Entries written to a node before the next starts (Redis's default
/// `stream-node-max-entries`).
pub const NODE_MAX_ENTRIES: u32 = 100;

/// A stream entry's ID: milliseconds, then a sequence within them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    /// Milliseconds.
    pub ms: u64,
    /// Sequence.
    pub seq: u64,
}

impl StreamId {
    /// `0-0`.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest ID.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// An ID.
    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID, if any.
    pub fn next(self) -> Option<StreamId> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(StreamId::new(self.ms, seq)),
            None => Some(StreamId::new(self.ms.checked_add(1)?, 0)),
        }
    }

    /// The ID before, if any.
    pub fn prev(self) -> Option<StreamId> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(StreamId::new(self.ms, seq)),
            None => Some(StreamId::new(self.ms.checked_sub(1)?, u64::MAX)),
        }
    }

    /// Whether this is `0-0`.
    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// `ms-seq`, as Redis writes it.
    pub fn to_bytes(self) -> Bytes {
        Bytes::from(self.to_string())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// An entry's fields and values, in order: field, value, field, value...
pub type Fields = Arc<[Bytes]>;

/// An entry, as the stream lends it.
pub type EntryRef<'a> = (&'a StreamId, &'a Fields);

/// A node of entries (see the module's contract).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The first ID written to it.
    pub first: StreamId,
    /// The last ID written to it.
    pub last: StreamId,
    /// Entries written to it, deleted ones included.
    pub written: u32,
    /// Entries left in it.
    pub live: u32,
    /// The bytes of its listpack in Redis.
    pub bytes: u32,
    /// The field names of its first entry, which later entries with the
    /// same names do not repeat in Redis's listpack.
    pub master: Arc<[Bytes]>,
}

/// Bytes a node's listpack takes in Redis, element by element, so that
/// nodes split where Redis's do (its `lpBytes` and the encodings of
/// `listpack.c`).
pub mod listpack {
    /// The listpack's header and end byte.
    pub const FRAME: usize = 6 + 1;
    /// When a node is full.
    pub const MAX_BYTES: usize = 4096;

    /// The bytes a back-length of an element of `len` bytes takes.
    fn backlen(len: usize) -> usize {
        match len {
            0..=127 => 1,
            128..16383 => 2,
            16383..2097151 => 3,
            2097151..268435455 => 4,
            _ => 5,
        }
    }

    /// An integer element.
    pub fn int(n: i64) -> usize {
        let enc = match n {
            0..=127 => 1,
            -4096..=4095 => 2,
            -32768..=32767 => 3,
            -8388608..=8388607 => 4,
            -2147483648..=2147483647 => 5,
            _ => 9,
        };
        enc + backlen(enc)
    }

    /// A string element: an integer when it is one written canonically,
    /// as listpacks store it.
    pub fn string(s: &[u8]) -> usize {
        if let Some(n) = canonical_int(s) {
            return int(n);
        }
        let len = s.len();
        let enc = match len {
            0..=63 => 1 + len,
            64..=4095 => 2 + len,
            _ => 5 + len,
        };
        enc + backlen(enc)
    }

    /// `s` as an `i64` if it is one written the one way Redis writes it.
    fn canonical_int(s: &[u8]) -> Option<i64> {
        if s.is_empty() || s.len() > 20 {
            return None;
        }
        let digits = s.strip_prefix(b"-").unwrap_or(s);
        let canonical = !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
            && (digits == b"0" || digits[0] != b'0')
            && s != b"-0";
        if !canonical {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    }
}

/// An entry delivered to a consumer of a group and not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Who has it.
    pub consumer: Bytes,
    /// When it was last delivered, Unix milliseconds.
    pub delivered_ms: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
}

/// A consumer of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer {
    /// When it last read or claimed, Unix milliseconds.
    pub seen_ms: u64,
}

/// A consumer group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Group {
    /// The last ID delivered to it.
    pub last_id: StreamId,
    /// How many entries it has read, when known (Redis's `entries-read`).
    pub entries_read: Option<u64>,
    /// Entries delivered and not acknowledged.
    pub pending: OrdMap<StreamId, Pending>,
    /// Its consumers.
    pub consumers: OrdMap<Bytes, Consumer>,
}

impl Group {
    /// Per consumer, in one pass over the pending entries: how many it
    /// holds, and the first `keep` of them (lowest first).
    pub fn pending_by_consumer(&self, keep: usize) -> PendingByConsumer<'_> {
        let mut by: PendingByConsumer<'_> = std::collections::BTreeMap::new();
        for (id, p) in self.pending.iter() {
            let (count, first) = by.entry(&p.consumer).or_default();
            *count += 1;
            if first.len() < keep {
                first.push((id, p));
            }
        }
        by
    }

    /// The entries `consumer` holds, lowest first.
    pub fn pending_of<'a>(
        &'a self,
        consumer: &'a [u8],
    ) -> impl Iterator<Item = (&'a StreamId, &'a Pending)> + 'a {
        self.pending
            .iter()
            .filter(move |(_, p)| p.consumer.as_ref() == consumer)
    }
}

/// [`Group::pending_by_consumer`]'s answer.
pub type PendingByConsumer<'a> =
    std::collections::BTreeMap<&'a Bytes, (usize, Vec<(&'a StreamId, &'a Pending)>)>;

/// How a trim chooses what goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrimTo {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Drop entries below this ID.
    MinId(StreamId),
}

/// A trim as XADD and XTRIM ask for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trim {
    /// What goes.
    pub to: TrimTo,
    /// `~`: whole nodes only.
    pub approx: bool,
    /// At most this many entries removed, in whole nodes (0: no bound).
    pub limit: u64,
}

/// A stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamValue {
    entries: OrdMap<StreamId, Fields>,
    nodes: Vector<Node>,
    last_id: StreamId,
    first_id: StreamId,
    max_deleted: StreamId,
    entries_added: u64,
    groups: OrdMap<Bytes, Group>,
    /// The entries' footprint.
    footprint: Footprint,
    /// The groups' footprint: their names and positions, and consumers.
    meta: Footprint,
    /// The groups' pending entries' footprint.
    pending: Footprint,
    /// What the nodes' field names add to the encoding.
    nodes_encoded: usize,
}

/// Bytes of an ID in the encoding.
const ID_BYTES: usize = 16;
/// Bytes of a node in the encoding beside its field names: two IDs and
/// three `u32`s.
pub(crate) const NODE_BYTES: usize = 2 * ID_BYTES + 12;
/// Bytes of the stream's own fields in the encoding: three IDs, the count
/// of entries added, and the counts of nodes, entries and groups.
pub(crate) const HEADER_BYTES: usize = 3 * ID_BYTES + 8 + 3 * 8;

/// The bytes entry `id` with `fields` adds to `node`'s listpack: its
/// flags, its ID as differences from the node's first, its values (and
/// its field names, unless they are the node's first entry's), and its
/// element count.
fn entry_bytes(node: &Node, id: StreamId, fields: &[Bytes]) -> usize {
    let n = fields.len() / 2;
    let same = node.master.len() == n
        && node
            .master
            .iter()
            .zip(fields.iter().step_by(2))
            .all(|(a, b)| a == b);
    let ms = id.ms.wrapping_sub(node.first.ms) as i64;
    let seq = id.seq.wrapping_sub(node.first.seq) as i64;
    let head = listpack::int(0) + listpack::int(ms) + listpack::int(seq);
    let body: usize = if same {
        fields
            .iter()
            .skip(1)
            .step_by(2)
            .map(|v| listpack::string(v))
            .sum()
    } else {
        listpack::int(n as i64) + fields.iter().map(|f| listpack::string(f)).sum::<usize>()
    };
    let count = if same { n + 3 } else { 2 * n + 4 };
    head + body + listpack::int(count as i64)
}

/// What a node's field names add to the encoding: their count and each
/// name with its length.
fn node_names_encoded(names: &[Bytes]) -> usize {
    4 + names
        .iter()
        .map(|n| super::encoding::varint_len(n.len() as u64) + n.len())
        .sum::<usize>()
}

fn entry_cost(fields: &[Bytes]) -> Footprint {
    let parts: Vec<&[u8]> = fields.iter().map(|f| f.as_ref()).collect();
    Footprint::of(&parts, ID_BYTES + 4)
}

fn group_cost(name: &[u8]) -> Footprint {
    // Name, last ID, entries read, the counts of consumers and pending.
    Footprint::of(&[name], ID_BYTES + 8 + 8 + 8)
}

fn consumer_cost(name: &[u8]) -> Footprint {
    Footprint::of(&[name], 8)
}

fn pending_cost(consumer: &[u8]) -> Footprint {
    Footprint::of(&[consumer], ID_BYTES + 16)
}

impl StreamValue {
    /// An empty stream.
    pub fn new() -> StreamValue {
        StreamValue::default()
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entry (the stream still exists).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The largest ID ever added (or set by XSETID).
    pub fn last_id(&self) -> StreamId {
        self.last_id
    }

    /// The first entry's ID as last recorded (`0-0` when empty).
    pub fn first_id(&self) -> StreamId {
        self.first_id
    }

    /// The largest ID deleted by XDEL.
    pub fn max_deleted(&self) -> StreamId {
        self.max_deleted
    }

    /// Entries ever added.
    pub fn entries_added(&self) -> u64 {
        self.entries_added
    }

    /// Its nodes (see the module's contract).
    pub fn nodes(&self) -> &Vector<Node> {
        &self.nodes
    }

    /// See [`super::Value::heap_bytes`].
    pub fn heap_bytes(&self) -> usize {
        self.footprint.heap
            + self.meta.heap
            + self.pending.heap
            + self.nodes.len() * super::ELEMENT_OVERHEAD_BYTES
    }

    /// What `MAX_VALUE_BYTES` bounds of a stream: its encoding less its
    /// groups' pending entries, which XREADGROUP adds as it reads and which
    /// only an acknowledgement removes, so that a stream at the limit can
    /// still be read, acknowledged, claimed and trimmed (see
    /// [`super::stored::limited_len`]). Entries, groups and consumers, which
    /// writes add, count.
    pub fn limited_len(&self) -> usize {
        self.encoded_len() - self.pending.encoded
    }

    /// The length of its encoding.
    pub(crate) fn encoded_len(&self) -> usize {
        2 + HEADER_BYTES
            + self.nodes.len() * NODE_BYTES
            + self.nodes_encoded
            + self.footprint.encoded
            + self.meta.encoded
            + self.pending.encoded
            + 4
    }

    /// The entry `id`.
    pub fn get(&self, id: StreamId) -> Option<&Fields> {
        self.entries.get(&id)
    }

    /// Entries from `start` to `end`, both included, lowest first.
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
    ) -> impl DoubleEndedIterator<Item = (&StreamId, &Fields)> {
        let bounds = if start <= end {
            Some(start..=end)
        } else {
            None
        };
        bounds.into_iter().flat_map(move |r| self.entries.range(r))
    }

    /// The first and last entries.
    pub fn edges(&self) -> Option<(EntryRef<'_>, EntryRef<'_>)> {
        let (first, first_fields) = self.entries.get_min()?;
        let (last, last_fields) = self.entries.get_max()?;
        Some(((first, first_fields), (last, last_fields)))
    }

    /// Its groups, by name.
    pub fn groups(&self) -> &OrdMap<Bytes, Group> {
        &self.groups
    }

    /// The group `name`.
    pub fn group(&self, name: &[u8]) -> Option<&Group> {
        self.groups.get(name)
    }

    /// Adds an entry at `id`, which must be above [`StreamValue::last_id`]
    /// (else false, and nothing changes).
    pub fn add(&mut self, id: StreamId, fields: Fields) -> bool {
        if id <= self.last_id {
            return false;
        }
        let raw: usize = fields.iter().map(|f| f.len()).sum();
        let fits = self.nodes.back().is_some_and(|node| {
            node.written < NODE_MAX_ENTRIES && node.bytes as usize + raw < listpack::MAX_BYTES
        });
        if fits && let Some(node) = self.nodes.back_mut() {
            let size = entry_bytes(node, id, &fields);
            node.written += 1;
            node.live += 1;
            node.last = id;
            node.bytes = node.bytes.saturating_add(size as u32);
        } else {
            let master: Arc<[Bytes]> = fields.iter().step_by(2).cloned().collect();
            let mut node = Node {
                first: id,
                last: id,
                written: 1,
                live: 1,
                bytes: 0,
                master,
            };
            // The master entry: live and deleted counts, the field names,
            // and its end mark; then the entry.
            let master_bytes = 2 * listpack::int(0)
                + listpack::int(node.master.len() as i64)
                + node
                    .master
                    .iter()
                    .map(|f| listpack::string(f))
                    .sum::<usize>()
                + listpack::int(0);
            let size = listpack::FRAME + master_bytes + entry_bytes(&node, id, &fields);
            node.bytes = u32::try_from(size).unwrap_or(u32::MAX);
            self.nodes_encoded += node_names_encoded(&node.master);
            self.nodes.push_back(node);
        }
        if self.entries.is_empty() {
            self.first_id = id;
        }
        self.footprint += entry_cost(&fields);
        self.entries.insert(id, fields);
        self.last_id = id;
        self.entries_added += 1;
        true
    }

    /// The index of the node that holds `id`, if one could.
    fn node_of(&self, id: StreamId) -> Option<usize> {
        // The last node whose first ID is at or below `id`.
        let after = self.nodes.binary_search_by(|n| {
            if n.first <= id {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        });
        let at = match after {
            Ok(i) | Err(i) => i,
        };
        at.checked_sub(1)
    }

    /// Removes the entry `id` as XDEL does; false if there is none.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some(fields) = self.entries.remove(&id) else {
            return false;
        };
        self.footprint -= entry_cost(&fields);
        if let Some(i) = self.node_of(id) {
            let node = &mut self.nodes[i];
            if node.live <= 1 {
                let gone = self.nodes.remove(i);
                self.nodes_encoded -= node_names_encoded(&gone.master);
            } else {
                node.live -= 1;
            }
        }
        self.max_deleted = self.max_deleted.max(id);
        self.first_id = self.entries.get_min().map_or(StreamId::MIN, |(id, _)| *id);
        true
    }

    /// Trims as XTRIM (and XADD's trimming) does; returns how many entries
    /// went.
    pub fn trim(&mut self, trim: Trim) -> u64 {
        let mut removed: u64 = 0;
        while let Some(node) = self.nodes.front().cloned() {
            let len = self.entries.len() as u64;
            if let TrimTo::MaxLen(max) = trim.to
                && len <= max
            {
                break;
            }
            let live = u64::from(node.live);
            if trim.limit > 0 && removed + live > trim.limit {
                break;
            }
            let whole = match trim.to {
                TrimTo::MaxLen(max) => len - live >= max,
                TrimTo::MinId(min) => node.last < min,
            };
            // A node's live entries are the next `live` ones: every live
            // entry of a node is below those of the nodes after it (new IDs
            // only grow above the live ones, even after XSETID), though a
            // node's `last` may not be (XSETID below deleted entries).
            if whole {
                for _ in 0..node.live {
                    self.pop_first();
                }
                self.nodes.pop_front();
                self.nodes_encoded -= node_names_encoded(&node.master);
                removed += live;
                continue;
            }
            if trim.approx {
                break;
            }
            // Entries from the front of this node, until the rule holds.
            let mut taken = 0u32;
            while taken < node.live
                && let Some(&(id, _)) = self.entries.get_min()
            {
                let stop = match trim.to {
                    TrimTo::MaxLen(max) => self.entries.len() as u64 <= max,
                    TrimTo::MinId(min) => id >= min,
                };
                if stop {
                    break;
                }
                self.pop_first();
                taken += 1;
            }
            // It stays, even with no entry left, as Redis's does.
            if let Some(front) = self.nodes.front_mut() {
                front.live -= taken;
            }
            removed += u64::from(taken);
            break;
        }
        self.first_id = self.entries.get_min().map_or(StreamId::MIN, |(id, _)| *id);
        removed
    }

    /// Removes the lowest entry.
    fn pop_first(&mut self) {
        let Some(&(id, _)) = self.entries.get_min() else {
            return;
        };
        if let Some(fields) = self.entries.remove(&id) {
            self.footprint -= entry_cost(&fields);
        }
    }

    /// XSETID: the last ID, and optionally the count of entries added and
    /// the largest deleted ID.
    pub fn set_id(&mut self, last: StreamId, added: Option<u64>, max_deleted: Option<StreamId>) {
        self.last_id = last;
        if let Some(added) = added {
            self.entries_added = added;
        }
        if let Some(max_deleted) = max_deleted {
            self.max_deleted = max_deleted;
        }
    }

    /// Sets where group `name` reads from, creating it if it is missing.
    pub fn set_group(&mut self, name: Bytes, last_id: StreamId, entries_read: Option<u64>) {
        match self.groups.get_mut(&name) {
            Some(group) => {
                group.last_id = last_id;
                group.entries_read = entries_read;
            }
            None => {
                self.meta += group_cost(&name);
                self.groups.insert(
                    name,
                    Group {
                        last_id,
                        entries_read,
                        ..Group::default()
                    },
                );
            }
        }
    }

    /// Removes group `name`; false if there is none.
    pub fn destroy_group(&mut self, name: &[u8]) -> bool {
        let Some(group) = self.groups.remove(name) else {
            return false;
        };
        self.meta -= group_cost(name);
        for name in group.consumers.keys() {
            self.meta -= consumer_cost(name);
        }
        for p in group.pending.values() {
            self.pending -= pending_cost(&p.consumer);
        }
        true
    }

    /// Creates consumer `name` of `group`, or notes it was seen at
    /// `seen_ms`; false if the group does not exist.
    pub fn touch_consumer(&mut self, group: &[u8], name: Bytes, seen_ms: u64) -> bool {
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        if g.consumers
            .insert(name.clone(), Consumer { seen_ms })
            .is_none()
        {
            self.meta += consumer_cost(&name);
        }
        true
    }

    /// Removes consumer `name` of `group` and its pending entries; how
    /// many it had (`None`: no such consumer).
    pub fn delete_consumer(&mut self, group: &[u8], name: &[u8]) -> Option<usize> {
        let g = self.groups.get_mut(group)?;
        g.consumers.remove(name)?;
        let held: Vec<StreamId> = g.pending_of(name).map(|(id, _)| *id).collect();
        for id in &held {
            g.pending.remove(id);
        }
        self.meta -= consumer_cost(name);
        for _ in &held {
            self.pending -= pending_cost(name);
        }
        Some(held.len())
    }

    /// Puts `entries` in `group`'s pending list (replacing what it held
    /// for their IDs); false if the group does not exist.
    pub fn set_pending(&mut self, group: &[u8], entries: &[(StreamId, Pending)]) -> bool {
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        let mut cost = Footprint::default();
        let mut freed = Footprint::default();
        for (id, p) in entries {
            cost += pending_cost(&p.consumer);
            if let Some(old) = g.pending.insert(*id, p.clone()) {
                freed += pending_cost(&old.consumer);
            }
        }
        self.pending += cost;
        self.pending -= freed;
        true
    }

    /// Removes `ids` from `group`'s pending list; how many were there.
    pub fn ack(&mut self, group: &[u8], ids: &[StreamId]) -> usize {
        let Some(g) = self.groups.get_mut(group) else {
            return 0;
        };
        let mut freed = Footprint::default();
        let mut acked = 0;
        for id in ids {
            if let Some(old) = g.pending.remove(id) {
                freed += pending_cost(&old.consumer);
                acked += 1;
            }
        }
        self.pending -= freed;
        acked
    }

    /// Whether an entry was deleted (XDEL) between `start` and `end`,
    /// as far as the largest deleted ID tells: Redis's test of whether a
    /// group's count of entries read can still be trusted.
    pub fn has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        !self.entries.is_empty()
            && !self.max_deleted.is_zero()
            && self.first_id <= self.max_deleted
            && start <= self.max_deleted
            && self.max_deleted <= end
    }

    /// How many entries were added up to `id` included, when that can be
    /// known (Redis's estimate of an ID's distance from the first entry
    /// ever added): `None` for an ID past the last, or one a deletion makes
    /// uncertain.
    pub fn entries_up_to(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.entries.is_empty() && id <= self.last_id {
            return Some(self.entries_added);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added),
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        let before_first = self.entries_added.saturating_sub(self.entries.len() as u64);
        if self.max_deleted.is_zero() || self.max_deleted < self.first_id {
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => return Some(before_first),
                std::cmp::Ordering::Equal => return Some(before_first + 1),
                std::cmp::Ordering::Greater => {}
            }
        }
        None
    }

    /// Rebuilds a stream from its parts, as the encoding holds them;
    /// `None` if they do not fit together.
    pub(crate) fn from_parts(parts: StreamParts) -> Option<StreamValue> {
        let nodes_encoded = parts
            .nodes
            .iter()
            .map(|n| node_names_encoded(&n.master))
            .sum();
        let mut s = StreamValue {
            nodes: parts.nodes.into_iter().collect(),
            nodes_encoded,
            last_id: parts.last_id,
            first_id: parts.first_id,
            max_deleted: parts.max_deleted,
            entries_added: parts.entries_added,
            ..StreamValue::default()
        };
        let mut previous = None;
        for (id, fields) in parts.entries {
            if previous.is_some_and(|p| p >= id) || id > s.last_id || fields.len() % 2 != 0 {
                return None;
            }
            previous = Some(id);
            s.footprint += entry_cost(&fields);
            s.entries.insert(id, fields);
        }
        // Each node's live entries are the next ones, within its bounds;
        // a node may hold none (a trim emptied it, as Redis keeps it).
        let mut ids = s.entries.keys();
        let mut previous_first = None;
        for n in s.nodes.iter() {
            if n.live > n.written
                || n.written > NODE_MAX_ENTRIES
                || n.first > n.last
                || previous_first.is_some_and(|p| p >= n.first)
            {
                return None;
            }
            previous_first = Some(n.first);
            for _ in 0..n.live {
                let id = ids.next()?;
                if *id < n.first || *id > n.last {
                    return None;
                }
            }
        }
        if ids.next().is_some() || s.entries_added < s.entries.len() as u64 {
            return None;
        }
        for (name, group) in parts.groups {
            if s.groups.contains_key(&name) {
                return None;
            }
            s.meta += group_cost(&name);
            for name in group.consumers.keys() {
                s.meta += consumer_cost(name);
            }
            for p in group.pending.values() {
                if !group.consumers.contains_key(&p.consumer) {
                    return None;
                }
                s.pending += pending_cost(&p.consumer);
            }
            s.groups.insert(name, group);
        }
        Some(s)
    }

    /// Its parts, for the encoding.
    pub(crate) fn parts(&self) -> StreamPartsRef<'_> {
        StreamPartsRef {
            entries: &self.entries,
            nodes: &self.nodes,
            last_id: self.last_id,
            first_id: self.first_id,
            max_deleted: self.max_deleted,
            entries_added: self.entries_added,
            groups: &self.groups,
        }
    }
}

/// A stream's parts, decoded.
pub(crate) struct StreamParts {
    pub(crate) entries: Vec<(StreamId, Fields)>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) last_id: StreamId,
    pub(crate) first_id: StreamId,
    pub(crate) max_deleted: StreamId,
    pub(crate) entries_added: u64,
    pub(crate) groups: Vec<(Bytes, Group)>,
}

/// A stream's parts, to encode.
pub(crate) struct StreamPartsRef<'a> {
    pub(crate) entries: &'a OrdMap<StreamId, Fields>,
    pub(crate) nodes: &'a Vector<Node>,
    pub(crate) last_id: StreamId,
    pub(crate) first_id: StreamId,
    pub(crate) max_deleted: StreamId,
    pub(crate) entries_added: u64,
    pub(crate) groups: &'a OrdMap<Bytes, Group>,
}
