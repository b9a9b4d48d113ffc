//! [`SnapshotWriter`]: encodes a snapshot in today's format (v1) to any
//! [`Write`], block by block, without holding the whole file in memory.

use std::io::{self, Write};

use super::SnapshotHeader;
use super::v1::{BLOCK_MARKER, END_MARKER, FLAG_EXPIRES, MAGIC, MAX_NODE_ID_LEN, VERSION};
use crate::store::{Entry, EntryRef};

/// Entries are grouped in blocks of about this many payload bytes; each
/// block carries its own checksum, so damage is located to a block.
const BLOCK_TARGET_BYTES: usize = 64 * 1024;

/// Writes one snapshot: the header at [`SnapshotWriter::new`], entries with
/// [`SnapshotWriter::push`] in the order they should be restored, and the
/// end section at [`SnapshotWriter::finish`], which checks that exactly the
/// header's `entry_count` entries were pushed.
pub struct SnapshotWriter<W: Write> {
    out: W,
    file_crc: crc32fast::Hasher,
    block: Vec<u8>,
    block_entries: u32,
    expected: u64,
    pushed: u64,
    bytes: u64,
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

impl<W: Write> SnapshotWriter<W> {
    /// Starts a snapshot described by `header` on `out`.
    pub fn new(out: W, header: &SnapshotHeader) -> io::Result<Self> {
        let id = header.node_id.as_bytes();
        if id.len() > MAX_NODE_ID_LEN {
            return Err(invalid("node id too long for a snapshot header"));
        }
        let mut head = Vec::with_capacity(64 + id.len());
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&0u16.to_le_bytes());
        let body_len = 8 + 8 + 4 + 2 + id.len();
        head.extend_from_slice(&(body_len as u32).to_le_bytes());
        head.extend_from_slice(&header.created_at_ms.to_le_bytes());
        head.extend_from_slice(&header.entry_count.to_le_bytes());
        head.extend_from_slice(&header.shard_count.to_le_bytes());
        head.extend_from_slice(&(id.len() as u16).to_le_bytes());
        head.extend_from_slice(id);
        let crc = crc32fast::hash(&head);
        head.extend_from_slice(&crc.to_le_bytes());
        let mut writer = SnapshotWriter {
            out,
            file_crc: crc32fast::Hasher::new(),
            block: Vec::with_capacity(BLOCK_TARGET_BYTES + 1024),
            block_entries: 0,
            expected: header.entry_count,
            pushed: 0,
            bytes: 0,
        };
        writer.emit(&head)?;
        Ok(writer)
    }

    /// Appends one entry.
    pub fn push(&mut self, key: &[u8], entry: &Entry) -> io::Result<()> {
        if self.pushed == self.expected {
            return Err(invalid("more entries than the snapshot header announced"));
        }
        encode_entry(&mut self.block, key, entry.view())?;
        self.block_entries += 1;
        self.pushed += 1;
        if self.block.len() >= BLOCK_TARGET_BYTES || self.block_entries == u32::MAX {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Appends entries encoded earlier (see [`EncodedEntries`]), each of its
    /// chunks as one block.
    pub fn push_encoded(&mut self, encoded: &EncodedEntries) -> io::Result<()> {
        if self.expected - self.pushed < encoded.entries {
            return Err(invalid("more entries than the snapshot header announced"));
        }
        self.flush_block()?;
        for (count, payload) in &encoded.chunks {
            self.write_block(*count, payload)?;
        }
        self.pushed += encoded.entries;
        Ok(())
    }

    /// Writes the end section and returns the output and the snapshot's
    /// size in bytes. Flushes `out` but does not sync it: durability is the
    /// caller's (it knows whether `out` is a file).
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        if self.pushed != self.expected {
            return Err(invalid("fewer entries than the snapshot header announced"));
        }
        self.flush_block()?;
        let mut end = [0u8; 9];
        end[0] = END_MARKER;
        end[1..].copy_from_slice(&self.pushed.to_le_bytes());
        self.emit(&end)?;
        let crc = self.file_crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.bytes += 4;
        self.out.flush()?;
        Ok((self.out, self.bytes))
    }

    fn flush_block(&mut self) -> io::Result<()> {
        if self.block_entries == 0 {
            return Ok(());
        }
        let block = std::mem::take(&mut self.block);
        let written = self.write_block(self.block_entries, &block);
        self.block = block;
        self.block.clear();
        self.block_entries = 0;
        written
    }

    fn write_block(&mut self, count: u32, payload: &[u8]) -> io::Result<()> {
        let payload_len =
            u32::try_from(payload.len()).map_err(|_| invalid("snapshot block too large"))?;
        let mut head = [0u8; 9];
        head[0] = BLOCK_MARKER;
        head[1..5].copy_from_slice(&count.to_le_bytes());
        head[5..9].copy_from_slice(&payload_len.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.update(payload);
        let crc = crc.finalize().to_le_bytes();
        self.emit(&head)?;
        self.emit(payload)?;
        self.emit(&crc)
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.file_crc.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(())
    }
}

/// Appends one entry in v1's entry layout to `out`.
fn encode_entry(out: &mut Vec<u8>, key: &[u8], entry: EntryRef<'_>) -> io::Result<()> {
    if key.is_empty() || key.len() > usize::from(u16::MAX) {
        return Err(invalid("a snapshot key must be 1 to 65535 bytes"));
    }
    let value_len =
        u32::try_from(entry.value.len()).map_err(|_| invalid("value too large for a snapshot"))?;
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&value_len.to_le_bytes());
    out.extend_from_slice(entry.value);
    out.extend_from_slice(&entry.version.millis.to_le_bytes());
    out.extend_from_slice(&entry.version.counter.to_le_bytes());
    out.extend_from_slice(&entry.version.origin.to_le_bytes());
    match entry.expires_at_ms {
        Some(at) => {
            out.push(FLAG_EXPIRES);
            out.extend_from_slice(&at.to_le_bytes());
        }
        None => out.push(0),
    }
    Ok(())
}

/// Entries already encoded, in block-sized chunks, before the snapshot's
/// header (which needs the total count) can be written. This is how a
/// store is copied: each shard is encoded while its lock is held, a copy
/// of bytes with no allocation per entry, and the file is written after,
/// with no lock held.
#[derive(Debug, Default)]
pub struct EncodedEntries {
    chunks: Vec<(u32, Vec<u8>)>,
    entries: u64,
    bytes: u64,
}

impl EncodedEntries {
    /// Nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes one more entry. An entry that cannot be stored in a snapshot
    /// (empty key, key over 65535 bytes, value over 4 GiB) is refused.
    pub fn push(&mut self, key: &[u8], entry: EntryRef<'_>) -> io::Result<()> {
        let full = self.chunks.last().is_none_or(|(count, payload)| {
            payload.len() >= BLOCK_TARGET_BYTES || *count == u32::MAX
        });
        if full {
            self.chunks
                .push((0, Vec::with_capacity(BLOCK_TARGET_BYTES + 256)));
        }
        let Some((count, payload)) = self.chunks.last_mut() else {
            return Err(invalid("no chunk"));
        };
        let before = payload.len();
        encode_entry(payload, key, entry)?;
        *count += 1;
        self.entries += 1;
        self.bytes += (payload.len() - before) as u64;
        Ok(())
    }

    /// Entries encoded.
    pub fn len(&self) -> u64 {
        self.entries
    }

    /// True when none were.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Bytes of encoded entries.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}
