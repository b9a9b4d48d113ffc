//! Byte-level pieces shared by today's persisted formats (snapshot v2, the
//! mutation log v1): a bounds-checked reader, and the layouts of an entry
//! and of a key with a version.
//!
//! Frozen format modules (`snapshot::v1`) keep their own copies on purpose:
//! a change here must never change how an old file decodes. A future format
//! that needs a different entry layout adds new functions rather than
//! changing these.
//!
//! # Layouts (integers little-endian)
//!
//! ```text
//! entry         key_len u16 (>= 1), key, value_len u32, value,
//!               millis u64, counter u32, origin u32,
//!               flags u8 (bit 0: has expiry; other bits 0),
//!               [expires_at_ms u64 if bit 0]
//! key_version   key_len u16 (>= 1), key, millis u64, counter u32, origin u32
//! ```

use std::io;

use crate::store::EntryRef;
use crate::version::Version;

/// Entry flag: an expiry follows.
pub(crate) const FLAG_EXPIRES: u8 = 0x01;
/// The smallest encoded entry: a 1-byte key, empty value, no expiry.
pub(crate) const MIN_ENTRY_LEN: usize = 2 + 1 + 4 + 8 + 4 + 4 + 1;

/// Why bytes could not be read as one of the layouts above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Short {
    /// The bytes end before the field named.
    Truncated(&'static str),
    /// The bytes are there but make no sense.
    Malformed(&'static str),
}

/// A bounds-checked reader: every length read from the input is used only
/// through it, so a damaged length fails as a truncation, never a panic or
/// an allocation.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    /// Bytes read so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Short> {
        if self.remaining() < n {
            return Err(Short::Truncated(what));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Short> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, Short> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Short> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, Short> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Short> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn key(&mut self) -> Result<&'a [u8], Short> {
        let len = self.u16("key_len")? as usize;
        if len == 0 {
            return Err(Short::Malformed("empty key"));
        }
        self.take(len, "key")
    }

    pub(crate) fn version(&mut self) -> Result<Version, Short> {
        Ok(Version {
            millis: self.u64("millis")?,
            counter: self.u32("counter")?,
            origin: self.u32("origin")?,
        })
    }

    /// Reads one entry in the layout above.
    pub(crate) fn entry(&mut self) -> Result<(&'a [u8], EntryRef<'a>), Short> {
        let key = self.key()?;
        let value_len = self.u32("value_len")? as usize;
        let value = self.take(value_len, "value")?;
        let version = self.version()?;
        let flags = self.u8("flags")?;
        if flags & !FLAG_EXPIRES != 0 {
            return Err(Short::Malformed("unknown entry flags"));
        }
        let expires_at_ms = if flags & FLAG_EXPIRES != 0 {
            Some(self.u64("expires_at_ms")?)
        } else {
            None
        };
        Ok((
            key,
            EntryRef {
                value,
                expires_at_ms,
                version,
            },
        ))
    }

    /// Reads one key with a version in the layout above.
    pub(crate) fn key_version(&mut self) -> Result<(&'a [u8], Version), Short> {
        let key = self.key()?;
        Ok((key, self.version()?))
    }
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn put_key(out: &mut Vec<u8>, key: &[u8]) -> io::Result<()> {
    if key.is_empty() || key.len() > usize::from(u16::MAX) {
        return Err(invalid("a persisted key must be 1 to 65535 bytes"));
    }
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
    Ok(())
}

pub(crate) fn put_version(out: &mut Vec<u8>, version: Version) {
    out.extend_from_slice(&version.millis.to_le_bytes());
    out.extend_from_slice(&version.counter.to_le_bytes());
    out.extend_from_slice(&version.origin.to_le_bytes());
}

/// Appends one entry. Refuses (and appends nothing) an empty key, a key
/// over 65535 bytes or a value over 4 GiB.
pub(crate) fn put_entry(out: &mut Vec<u8>, key: &[u8], entry: EntryRef<'_>) -> io::Result<()> {
    let value_len = u32::try_from(entry.value.len())
        .map_err(|_| invalid("a persisted value must be under 4 GiB"))?;
    let start = out.len();
    if let Err(e) = put_key(out, key) {
        out.truncate(start);
        return Err(e);
    }
    out.extend_from_slice(&value_len.to_le_bytes());
    out.extend_from_slice(entry.value);
    put_version(out, entry.version);
    match entry.expires_at_ms {
        Some(at) => {
            out.push(FLAG_EXPIRES);
            out.extend_from_slice(&at.to_le_bytes());
        }
        None => out.push(0),
    }
    Ok(())
}

/// Appends one key with a version. Refuses (and appends nothing) an empty
/// key or one over 65535 bytes.
pub(crate) fn put_key_version(out: &mut Vec<u8>, key: &[u8], version: Version) -> io::Result<()> {
    put_key(out, key)?;
    put_version(out, version);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version() -> Version {
        Version {
            millis: 1_700_000_000_000,
            counter: 7,
            origin: 3,
        }
    }

    #[test]
    fn an_entry_reads_back_as_written_with_and_without_expiry() {
        for expires_at_ms in [None, Some(42)] {
            let entry = EntryRef {
                value: b"value",
                expires_at_ms,
                version: version(),
            };
            let mut out = Vec::new();
            put_entry(&mut out, b"k", entry).unwrap();
            let mut cur = Cursor::new(&out);
            let (key, read) = cur.entry().unwrap();
            assert_eq!((key, read), (&b"k"[..], entry));
            assert_eq!(cur.remaining(), 0);
            // Every shorter prefix is a truncation, never a panic.
            for len in 0..out.len() {
                assert!(matches!(
                    Cursor::new(&out[..len]).entry(),
                    Err(Short::Truncated(_))
                ));
            }
        }
    }

    #[test]
    fn empty_and_oversized_keys_are_refused_without_writing() {
        let entry = EntryRef {
            value: b"",
            expires_at_ms: None,
            version: version(),
        };
        let mut out = vec![9];
        assert!(put_entry(&mut out, b"", entry).is_err());
        assert!(put_entry(&mut out, &vec![b'k'; 65_536], entry).is_err());
        assert!(put_key_version(&mut out, b"", version()).is_err());
        assert_eq!(out, [9]);
        // An empty key on the wire is malformed, not a truncation.
        let mut bytes = 0u16.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        assert_eq!(
            Cursor::new(&bytes).key_version(),
            Err(Short::Malformed("empty key"))
        );
    }

    #[test]
    fn unknown_entry_flags_are_malformed() {
        let mut out = Vec::new();
        let entry = EntryRef {
            value: b"v",
            expires_at_ms: None,
            version: version(),
        };
        put_entry(&mut out, b"k", entry).unwrap();
        *out.last_mut().unwrap() = 0x02;
        assert_eq!(
            Cursor::new(&out).entry(),
            Err(Short::Malformed("unknown entry flags"))
        );
    }
}
