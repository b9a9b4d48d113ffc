//! The framing of the consensus files: a header, then records.
//!
//! ```text
//! file   = magic (8 bytes) | format version (u32 LE) | record*
//! record = payload length (u32 LE) | CRC-32 of the payload (u32 LE) | payload (JSON)
//! ```
//!
//! The log file is appended to, so its last record may be torn by a crash
//! (the append was not yet acknowledged, since an append is acknowledged
//! only after its fsync). A bad record at the very end is reported as a torn
//! tail the caller may cut off; a bad record with more bytes after it is
//! corruption. Decoding never panics and never allocates what a length field
//! asks for.

use thiserror::Error;

/// The format version every consensus file is written in.
pub const FORMAT_VERSION: u32 = 1;

/// Magic of the Raft log file.
pub const LOG_MAGIC: [u8; 8] = *b"DCRFTLOG";
/// Magic of the vote file.
pub const VOTE_MAGIC: [u8; 8] = *b"DCRFTVOT";
/// Magic of the snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"DCRFTSNP";

/// Bytes of the file header.
pub const HEADER_LEN: usize = 12;
/// Bytes of a record's length and checksum.
const RECORD_HEAD_LEN: usize = 8;
/// No record is larger: a longer length field is damage, not data.
pub const MAX_RECORD_BYTES: usize = 256 << 20;

/// Why a file's bytes do not decode.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    /// The file does not start with the expected magic.
    #[error("not a {expected} file (bad magic)")]
    BadMagic {
        /// What kind of file was expected.
        expected: &'static str,
    },
    /// The file was written in a format this build does not read.
    #[error("format version {found} is not supported (this build reads {FORMAT_VERSION})")]
    WrongVersion {
        /// The version in the header.
        found: u32,
    },
    /// A record in the middle of the file is damaged.
    #[error("damaged record at byte {offset}: {reason}")]
    Corrupt {
        /// Where the record starts.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The header of a file of kind `magic`.
pub fn header(magic: [u8; 8]) -> [u8; HEADER_LEN] {
    let mut out = [0; HEADER_LEN];
    out[..8].copy_from_slice(&magic);
    out[8..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out
}

/// Appends one framed record holding `payload` to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    // Callers frame JSON of a bounded state; a payload this large is a bug
    // upstream and would not decode, so it is refused at write time too.
    debug_assert!(payload.len() <= MAX_RECORD_BYTES);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The records of a file.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Each intact record's payload, with the offset it starts at.
    pub records: Vec<(usize, &'a [u8])>,
    /// Bytes up to the end of the last intact record.
    pub valid_len: usize,
    /// True if bytes after `valid_len` are a torn last record.
    pub torn_tail: bool,
}

/// Decodes a file of kind `magic` named `kind` in errors.
pub fn decode<'a>(
    bytes: &'a [u8],
    magic: [u8; 8],
    kind: &'static str,
) -> Result<Decoded<'a>, RecordError> {
    if bytes.len() < HEADER_LEN || bytes[..8] != magic {
        return Err(RecordError::BadMagic { expected: kind });
    }
    let mut version = [0; 4];
    version.copy_from_slice(&bytes[8..HEADER_LEN]);
    let found = u32::from_le_bytes(version);
    if found != FORMAT_VERSION {
        return Err(RecordError::WrongVersion { found });
    }
    let mut records = Vec::new();
    let mut at = HEADER_LEN;
    let torn_tail = loop {
        let rest = &bytes[at..];
        if rest.is_empty() {
            break false;
        }
        if rest.len() < RECORD_HEAD_LEN {
            break true;
        }
        let mut word = [0; 4];
        word.copy_from_slice(&rest[..4]);
        let len = u32::from_le_bytes(word) as usize;
        word.copy_from_slice(&rest[4..8]);
        let crc = u32::from_le_bytes(word);
        if len > MAX_RECORD_BYTES {
            return Err(RecordError::Corrupt {
                offset: at,
                reason: "length out of range",
            });
        }
        let Some(payload) = rest.get(RECORD_HEAD_LEN..RECORD_HEAD_LEN + len) else {
            break true;
        };
        if crc32fast::hash(payload) != crc {
            if rest.len() == RECORD_HEAD_LEN + len {
                break true;
            }
            return Err(RecordError::Corrupt {
                offset: at,
                reason: "checksum mismatch",
            });
        }
        records.push((at, payload));
        at += RECORD_HEAD_LEN + len;
    };
    Ok(Decoded {
        records,
        valid_len: at,
        torn_tail,
    })
}

/// The one record of a file that is only ever replaced atomically (the vote,
/// the snapshot): a crash never leaves such a file half written, so
/// anything but exactly one intact record is damage.
pub fn decode_single<'a>(
    bytes: &'a [u8],
    magic: [u8; 8],
    kind: &'static str,
) -> Result<&'a [u8], RecordError> {
    let decoded = decode(bytes, magic, kind)?;
    match decoded.records.as_slice() {
        [(_, payload)] if !decoded.torn_tail => Ok(payload),
        _ => Err(RecordError::Corrupt {
            offset: HEADER_LEN,
            reason: "the file must hold exactly one intact record",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = header(LOG_MAGIC).to_vec();
        for p in payloads {
            encode(p, &mut out);
        }
        out
    }

    #[test]
    fn records_round_trip() {
        let bytes = file(&[b"one", b"", b"three"]);
        let d = decode(&bytes, LOG_MAGIC, "log").expect("decodes");
        let payloads: Vec<&[u8]> = d.records.iter().map(|(_, p)| *p).collect();
        assert_eq!(payloads, vec![&b"one"[..], b"", b"three"]);
        assert_eq!(d.valid_len, bytes.len());
        assert!(!d.torn_tail);
    }

    #[test]
    fn a_torn_last_record_is_a_tail_to_cut_not_an_error() {
        let whole = file(&[b"one", b"two"]);
        let one_len = file(&[b"one"]).len();
        for cut in one_len + 1..whole.len() {
            let d = decode(&whole[..cut], LOG_MAGIC, "log").expect("a torn tail decodes");
            assert_eq!(d.records.len(), 1, "cut at {cut}");
            assert_eq!(d.valid_len, one_len);
            assert!(d.torn_tail);
        }
        let mut flipped = whole.clone();
        *flipped.last_mut().expect("non-empty") ^= 1;
        let d = decode(&flipped, LOG_MAGIC, "log").expect("a bad last record is a tail");
        assert_eq!((d.records.len(), d.torn_tail), (1, true));
    }

    #[test]
    fn damage_before_the_end_is_corruption() {
        let mut bytes = file(&[b"one", b"two"]);
        bytes[HEADER_LEN + 8] ^= 0x20;
        assert_eq!(
            decode(&bytes, LOG_MAGIC, "log"),
            Err(RecordError::Corrupt {
                offset: HEADER_LEN,
                reason: "checksum mismatch"
            })
        );
        let mut huge = file(&[b"one"]);
        huge[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&huge, LOG_MAGIC, "log"),
            Err(RecordError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_single_record_file_holds_exactly_one_record() {
        let mut one = header(VOTE_MAGIC).to_vec();
        encode(b"vote", &mut one);
        assert_eq!(decode_single(&one, VOTE_MAGIC, "vote"), Ok(&b"vote"[..]));
        let empty = header(VOTE_MAGIC).to_vec();
        assert!(decode_single(&empty, VOTE_MAGIC, "vote").is_err());
        assert!(decode_single(&one[..one.len() - 1], VOTE_MAGIC, "vote").is_err());
        let mut two = one.clone();
        encode(b"again", &mut two);
        assert!(decode_single(&two, VOTE_MAGIC, "vote").is_err());
    }

    #[test]
    fn wrong_magic_or_version_is_refused() {
        let bytes = file(&[b"x"]);
        assert_eq!(
            decode(&bytes, VOTE_MAGIC, "vote"),
            Err(RecordError::BadMagic { expected: "vote" })
        );
        assert!(decode(&bytes[..5], LOG_MAGIC, "log").is_err());
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert_eq!(
            decode(&v2, LOG_MAGIC, "log"),
            Err(RecordError::WrongVersion { found: 2 })
        );
    }
}
