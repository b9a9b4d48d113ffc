//! One stored item: its key, value, version and expiry, with the key and the
//! value in a single heap buffer behind a thin pointer. The only module of
//! the workspace with `unsafe` code.
//!
//! Why `unsafe`: an item's buffer must be reachable through 8 bytes. A
//! `Box<[u8]>` is a fat pointer (16 bytes), which would make the slab node
//! 40 bytes instead of 32; at a million items those 8 bytes are 8 MB. So the
//! buffer is allocated with `std::alloc` and its length is recomputed from
//! what it holds. Everything outside this file sees safe accessors.
//!
//! The buffer (alignment 1; every field read with `from_le_bytes` from a
//! byte slice, never through a cast pointer):
//!
//! ```text
//! [u32 LE: value length | HAS_EXPIRY (bit 31)]
//! [u32 LE: the version's counter]   only when `counter` is COUNTER_IN_BUFFER
//! [u64 LE: expires_at]              only when HAS_EXPIRY is set
//! [key bytes][value bytes]
//! ```
//!
//! The version's millis and origin, the key's length and the counter (when
//! it is below `u16::MAX`, as a clock's counter almost always is) live in
//! the [`Item`] itself, so reading a version seldom touches the buffer.

// The workspace denies `unsafe`; this module alone is allowed it, and every
// block states why it is sound (clippy's `undocumented_unsafe_blocks`).
#![allow(unsafe_code)]

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::fmt;
use std::ptr::NonNull;

use crate::version::Version;

/// Bit 31 of the buffer's first word: an expiry follows.
const HAS_EXPIRY: u32 = 1 << 31;

/// The value of [`Item::counter`] that says "the counter is in the buffer".
const COUNTER_IN_BUFFER: u16 = u16::MAX;

/// Longest key an item can hold: its length is a `u16`.
pub(super) const MAX_KEY_LEN: usize = u16::MAX as usize;

/// Longest value an item can hold: its length shares a `u32` with
/// [`HAS_EXPIRY`].
pub(super) const MAX_VALUE_LEN: usize = (1 << 31) - 1;

/// The longest header: length word, counter, expiry.
const MAX_HEADER_LEN: usize = 4 + 4 + 8;

/// A key, a value, a version and an expiry (0 = never), owned together.
///
/// 24 bytes on 64-bit targets, and `Option<Item>` too (the pointer is never
/// null), which is what keeps the slab node at 32.
pub(super) struct Item {
    /// The buffer; this item is its only owner.
    data: NonNull<u8>,
    millis: u64,
    origin: u32,
    key_len: u16,
    /// The version's counter, or [`COUNTER_IN_BUFFER`].
    counter: u16,
}

// SAFETY: an `Item` uniquely owns its buffer, as a `Box<[u8]>` owns its
// bytes: no other pointer to the buffer exists, and `&Item` only reads it. So
// moving an item to another thread (a shard moves with its `Mutex`) moves
// that ownership and nothing else.
unsafe impl Send for Item {}

/// The layout of a buffer of `len` bytes, if the allocator can serve one.
fn layout(len: usize) -> Option<Layout> {
    Layout::from_size_align(len, 1).ok()
}

/// Reads a little-endian `u32` at `at`, 0 if the slice is too short (it
/// never is: `new` wrote the field).
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..)
        .and_then(|rest| rest.first_chunk::<4>())
        .map_or(0, |word| u32::from_le_bytes(*word))
}

/// Reads a little-endian `u64` at `at`, 0 if the slice is too short.
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..)
        .and_then(|rest| rest.first_chunk::<8>())
        .map_or(0, |word| u64::from_le_bytes(*word))
}

impl Item {
    /// True when an item can hold a key of `key_len` bytes and a value of
    /// `value_len` bytes, whatever its version and expiry.
    pub(super) fn fits(key_len: usize, value_len: usize) -> bool {
        key_len <= MAX_KEY_LEN
            && value_len <= MAX_VALUE_LEN
            && MAX_HEADER_LEN
                .checked_add(key_len)
                .and_then(|len| len.checked_add(value_len))
                .and_then(layout)
                .is_some()
    }

    /// An item holding copies of `key` and `value`, or `None` when it cannot
    /// hold them (see [`Item::fits`]). Aborts through
    /// [`handle_alloc_error`] if the allocator has no memory, as a `Vec`
    /// would.
    pub(super) fn new(key: &[u8], value: &[u8], version: Version, expires_at: u64) -> Option<Item> {
        if !Item::fits(key.len(), value.len()) {
            return None;
        }
        let key_len = u16::try_from(key.len()).ok()?;
        let value_len = u32::try_from(value.len()).ok()?;
        let counter = u16::try_from(version.counter)
            .ok()
            .filter(|&c| c != COUNTER_IN_BUFFER)
            .unwrap_or(COUNTER_IN_BUFFER);

        let mut header = [0u8; MAX_HEADER_LEN];
        let flags = if expires_at != 0 { HAS_EXPIRY } else { 0 };
        header[..4].copy_from_slice(&(value_len | flags).to_le_bytes());
        let mut header_len = 4;
        if counter == COUNTER_IN_BUFFER {
            header[header_len..header_len + 4].copy_from_slice(&version.counter.to_le_bytes());
            header_len += 4;
        }
        if expires_at != 0 {
            header[header_len..header_len + 8].copy_from_slice(&expires_at.to_le_bytes());
            header_len += 8;
        }
        let header = &header[..header_len];

        let len = header_len + key.len() + value.len();
        let layout = layout(len)?;
        // SAFETY: `layout` has a non-zero size (the header is at least 4
        // bytes), as `alloc` requires.
        let ptr = unsafe { alloc(layout) };
        let Some(data) = NonNull::new(ptr) else {
            handle_alloc_error(layout);
        };
        // SAFETY: `data` points to `len` freshly allocated bytes, which no
        // other pointer reaches and which the three source slices (the stack
        // header and the caller's key and value) cannot overlap. The three
        // copies fill `[0, header_len)`, `[header_len, header_len + key
        // len)` and the rest up to `len`, so every byte of the buffer is
        // initialized before anything reads it.
        unsafe {
            let dst = data.as_ptr();
            std::ptr::copy_nonoverlapping(header.as_ptr(), dst, header.len());
            let dst = dst.add(header.len());
            std::ptr::copy_nonoverlapping(key.as_ptr(), dst, key.len());
            let dst = dst.add(key.len());
            std::ptr::copy_nonoverlapping(value.as_ptr(), dst, value.len());
        }
        Some(Item {
            data,
            millis: version.millis,
            origin: version.origin,
            key_len,
            counter,
        })
    }

    /// Every field, decoded from the buffer in one pass.
    pub(super) fn parts(&self) -> Parts<'_> {
        let shape = self.shape();
        let bytes = self.bytes(shape.len);
        let counter = if self.counter == COUNTER_IN_BUFFER {
            u32_at(bytes, 4)
        } else {
            u32::from(self.counter)
        };
        let expires_at = if shape.has_expiry {
            u64_at(bytes, shape.key_start - 8)
        } else {
            0
        };
        Parts {
            key: bytes
                .get(shape.key_start..shape.value_start)
                .unwrap_or_default(),
            value: bytes.get(shape.value_start..).unwrap_or_default(),
            version: Version {
                millis: self.millis,
                counter,
                origin: self.origin,
            },
            expires_at,
        }
    }

    /// The key.
    pub(super) fn key(&self) -> &[u8] {
        self.parts().key
    }

    /// The version that wrote the value. Reads the buffer only for a
    /// counter of `u16::MAX` or more.
    pub(super) fn version(&self) -> Version {
        if self.counter == COUNTER_IN_BUFFER {
            return self.parts().version;
        }
        Version {
            millis: self.millis,
            counter: u32::from(self.counter),
            origin: self.origin,
        }
    }

    /// Absolute expiry in Unix milliseconds, 0 = never.
    pub(super) fn expires_at(&self) -> u64 {
        self.parts().expires_at
    }

    /// Whether the value is empty (how the LRU tells an item whose value
    /// is kept decoded beside it). Reads only the first word.
    pub(super) fn value_is_empty(&self) -> bool {
        self.word() & !HAS_EXPIRY == 0
    }

    /// Bytes charged against the byte limit: key plus value.
    pub(super) fn size(&self) -> u64 {
        u64::from(self.key_len) + u64::from(self.word() & !HAS_EXPIRY)
    }

    /// The buffer's first word: the value's length, and [`HAS_EXPIRY`].
    fn word(&self) -> u32 {
        // SAFETY: every buffer is at least 4 bytes long (`new` always writes
        // the length word), initialized, and lives as long as `self`, which
        // only lends it out immutably here.
        let word = unsafe { std::slice::from_raw_parts(self.data.as_ptr(), 4) };
        u32_at(word, 0)
    }

    /// Where the buffer's sections are, from its first word and this item's
    /// fields.
    fn shape(&self) -> Shape {
        let word = self.word();
        let has_expiry = word & HAS_EXPIRY != 0;
        let counter_len = if self.counter == COUNTER_IN_BUFFER {
            4
        } else {
            0
        };
        let key_start = 4 + counter_len + if has_expiry { 8 } else { 0 };
        let value_start = key_start + usize::from(self.key_len);
        Shape {
            has_expiry,
            key_start,
            value_start,
            len: value_start + (word & !HAS_EXPIRY) as usize,
        }
    }

    /// The whole buffer, `len` bytes long (from [`Item::shape`]).
    fn bytes(&self, len: usize) -> &[u8] {
        // SAFETY: `new` allocated and initialized exactly `len` bytes: the
        // length word and the counter and key length fields that `shape`
        // computes `len` from are the ones `new` wrote, and nothing changes
        // them. The buffer lives until `drop`, after every borrow of `self`
        // ends, and is never written after `new`.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), len) }
    }
}

/// An item's fields, borrowed from its buffer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Parts<'a> {
    pub(super) key: &'a [u8],
    pub(super) value: &'a [u8],
    pub(super) version: Version,
    /// 0 = never.
    pub(super) expires_at: u64,
}

/// Where an item's buffer holds what.
struct Shape {
    has_expiry: bool,
    key_start: usize,
    value_start: usize,
    len: usize,
}

impl Drop for Item {
    fn drop(&mut self) {
        // `new` built this layout from the same length, so it exists.
        if let Some(layout) = layout(self.shape().len) {
            // SAFETY: `data` was allocated by `alloc` with this very layout
            // (same length, alignment 1) and is freed only here, once.
            unsafe { dealloc(self.data.as_ptr(), layout) }
        }
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = self.parts();
        f.debug_struct("Item")
            .field("key_len", &parts.key.len())
            .field("value_len", &parts.value.len())
            .field("version", &parts.version)
            .field("expires_at", &parts.expires_at)
            .finish()
    }
}
