//! [`SnapshotWriter`]: encodes a snapshot in today's format (v2) to any
//! [`Write`], block by block, without holding the whole file in memory.

use std::io::{self, Write};

use super::SnapshotHeader;
use super::v2::{END_MARKER, ENTRY_BLOCK, MAGIC, MAX_NODE_ID_LEN, TOMBSTONE_BLOCK};
use super::v3::VERSION;
use crate::codec;
use crate::store::{Entry, EntryRef};
use crate::version::Version;

/// Records are grouped in blocks of about this many payload bytes; each
/// block carries its own checksum, so damage is located to a block.
const BLOCK_TARGET_BYTES: usize = 64 * 1024;

/// Writes one snapshot: the header at [`SnapshotWriter::new`], entries with
/// [`SnapshotWriter::push`] in the order they should be restored, then
/// tombstones, and the end section at [`SnapshotWriter::finish`], which
/// checks that exactly the header's counts were pushed.
pub struct SnapshotWriter<W: Write> {
    out: W,
    file_crc: crc32fast::Hasher,
    block: Chunk,
    expected: Counts,
    pushed: Counts,
    bytes: u64,
}

/// Entries and tombstones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    entries: u64,
    tombstones: u64,
}

/// One block's worth of records of one kind, encoded.
#[derive(Debug)]
struct Chunk {
    marker: u8,
    count: u32,
    payload: Vec<u8>,
}

impl Chunk {
    fn new(marker: u8) -> Self {
        Chunk {
            marker,
            count: 0,
            payload: Vec::with_capacity(BLOCK_TARGET_BYTES + 256),
        }
    }

    fn is_full(&self) -> bool {
        self.payload.len() >= BLOCK_TARGET_BYTES || self.count == u32::MAX
    }
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
        let body_len = 8 + 8 + 8 + 8 + 4 + 2 + id.len();
        head.extend_from_slice(&(body_len as u32).to_le_bytes());
        head.extend_from_slice(&header.created_at_ms.to_le_bytes());
        head.extend_from_slice(&header.entry_count.to_le_bytes());
        head.extend_from_slice(&header.tombstone_count.to_le_bytes());
        head.extend_from_slice(&header.log_generation.to_le_bytes());
        head.extend_from_slice(&header.shard_count.to_le_bytes());
        head.extend_from_slice(&(id.len() as u16).to_le_bytes());
        head.extend_from_slice(id);
        let crc = crc32fast::hash(&head);
        head.extend_from_slice(&crc.to_le_bytes());
        let mut writer = SnapshotWriter {
            out,
            file_crc: crc32fast::Hasher::new(),
            block: Chunk::new(ENTRY_BLOCK),
            expected: Counts {
                entries: header.entry_count,
                tombstones: header.tombstone_count,
            },
            pushed: Counts::default(),
            bytes: 0,
        };
        writer.emit(&head)?;
        Ok(writer)
    }

    /// Appends one entry. Entries come before every tombstone.
    pub fn push(&mut self, key: &[u8], entry: &Entry) -> io::Result<()> {
        if self.pushed.entries == self.expected.entries {
            return Err(invalid("more entries than the snapshot header announced"));
        }
        if self.pushed.tombstones > 0 {
            return Err(invalid("entries must come before tombstones"));
        }
        codec::put_entry(&mut self.block.payload, key, entry.view())?;
        self.pushed.entries += 1;
        self.block.count += 1;
        if self.block.is_full() {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Appends one tombstone: `key` was deleted at `version`.
    pub fn push_tombstone(&mut self, key: &[u8], version: Version) -> io::Result<()> {
        if self.pushed.tombstones == self.expected.tombstones {
            return Err(invalid(
                "more tombstones than the snapshot header announced",
            ));
        }
        if self.block.marker != TOMBSTONE_BLOCK {
            self.flush_block()?;
            self.block.marker = TOMBSTONE_BLOCK;
        }
        codec::put_key_version(&mut self.block.payload, key, version)?;
        self.pushed.tombstones += 1;
        self.block.count += 1;
        if self.block.is_full() {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Appends records encoded earlier (see [`EncodedEntries`]), each of its
    /// chunks as one block.
    pub fn push_encoded(&mut self, encoded: &EncodedEntries) -> io::Result<()> {
        if self.expected.entries - self.pushed.entries < encoded.entries
            || self.expected.tombstones - self.pushed.tombstones < encoded.tombstones
        {
            return Err(invalid("more records than the snapshot header announced"));
        }
        if self.pushed.tombstones > 0 && encoded.entries > 0 {
            return Err(invalid("entries must come before tombstones"));
        }
        self.flush_block()?;
        for chunk in encoded.entry_chunks.iter().chain(&encoded.tombstone_chunks) {
            self.write_block(chunk)?;
        }
        self.pushed.entries += encoded.entries;
        self.pushed.tombstones += encoded.tombstones;
        Ok(())
    }

    /// Writes the end section and returns the output and the snapshot's
    /// size in bytes. Flushes `out` but does not sync it: durability is the
    /// caller's (it knows whether `out` is a file).
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        if self.pushed != self.expected {
            return Err(invalid("fewer records than the snapshot header announced"));
        }
        self.flush_block()?;
        let mut end = [0u8; 17];
        end[0] = END_MARKER;
        end[1..9].copy_from_slice(&self.pushed.entries.to_le_bytes());
        end[9..].copy_from_slice(&self.pushed.tombstones.to_le_bytes());
        self.emit(&end)?;
        let crc = self.file_crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.bytes += 4;
        self.out.flush()?;
        Ok((self.out, self.bytes))
    }

    fn flush_block(&mut self) -> io::Result<()> {
        if self.block.count == 0 {
            return Ok(());
        }
        let marker = self.block.marker;
        let mut block = std::mem::replace(
            &mut self.block,
            Chunk {
                marker,
                count: 0,
                payload: Vec::new(),
            },
        );
        let written = self.write_block(&block);
        // Keep the allocation for the next block.
        block.payload.clear();
        self.block.payload = block.payload;
        written
    }

    fn write_block(&mut self, chunk: &Chunk) -> io::Result<()> {
        let payload_len =
            u32::try_from(chunk.payload.len()).map_err(|_| invalid("snapshot block too large"))?;
        let mut head = [0u8; 9];
        head[0] = chunk.marker;
        head[1..5].copy_from_slice(&chunk.count.to_le_bytes());
        head[5..9].copy_from_slice(&payload_len.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.update(&chunk.payload);
        let crc = crc.finalize().to_le_bytes();
        self.emit(&head)?;
        self.emit(&chunk.payload)?;
        self.emit(&crc)
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.file_crc.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(())
    }
}

/// Records already encoded, in block-sized chunks, before the snapshot's
/// header (which needs the totals) can be written. This is how a store is
/// copied: each shard is encoded while its lock is held, a copy of bytes
/// with no allocation per record, and the file is written after, with no
/// lock held.
#[derive(Debug, Default)]
pub struct EncodedEntries {
    entry_chunks: Vec<Chunk>,
    tombstone_chunks: Vec<Chunk>,
    entries: u64,
    /// Of `entries`, the expired floors ([`EncodedEntries::push_floor`]).
    floors: u64,
    tombstones: u64,
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
        let chunk = open_chunk(&mut self.entry_chunks, ENTRY_BLOCK);
        let before = chunk.payload.len();
        codec::put_entry(&mut chunk.payload, key, entry)?;
        chunk.count += 1;
        self.entries += 1;
        self.bytes += (chunk.payload.len() - before) as u64;
        Ok(())
    }

    /// Encodes a shard's expired-version floor: an entry every reader
    /// skips as expired, so no key of the snapshot (see `encode_store`).
    pub fn push_floor(&mut self, key: &[u8], entry: EntryRef<'_>) -> io::Result<()> {
        self.push(key, entry)?;
        self.floors += 1;
        Ok(())
    }

    /// Encodes one more tombstone. A key that cannot be stored is refused.
    pub fn push_tombstone(&mut self, key: &[u8], version: Version) -> io::Result<()> {
        let chunk = open_chunk(&mut self.tombstone_chunks, TOMBSTONE_BLOCK);
        let before = chunk.payload.len();
        codec::put_key_version(&mut chunk.payload, key, version)?;
        chunk.count += 1;
        self.tombstones += 1;
        self.bytes += (chunk.payload.len() - before) as u64;
        Ok(())
    }

    /// Entries encoded.
    pub fn len(&self) -> u64 {
        self.entries
    }

    /// Entries encoded that are keys: all but the expired floors.
    pub fn keys(&self) -> u64 {
        self.entries - self.floors
    }

    /// Tombstones encoded.
    pub fn tombstones(&self) -> u64 {
        self.tombstones
    }

    /// True when nothing was.
    pub fn is_empty(&self) -> bool {
        self.entries == 0 && self.tombstones == 0
    }

    /// Bytes of encoded records.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// The last chunk of `chunks`, or a new one when it is full.
fn open_chunk(chunks: &mut Vec<Chunk>, marker: u8) -> &mut Chunk {
    if chunks.last().is_none_or(Chunk::is_full) {
        chunks.push(Chunk::new(marker));
    }
    let last = chunks.len() - 1;
    &mut chunks[last]
}
