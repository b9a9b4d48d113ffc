//! Why a snapshot could not be read.

use thiserror::Error;

/// A snapshot that must not be loaded, and why. Every damaged, foreign or
/// unreadable input gives one of these; none is ever accepted in part.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnapshotError {
    /// The first bytes are not a distcache snapshot's magic number.
    #[error("not a distcache snapshot: wrong magic number")]
    BadMagic,
    /// Written by a newer distcache, in a format this build does not know.
    #[error("snapshot format version {found} is newer than this build reads (up to {supported})")]
    NewerVersion {
        /// The file's format version.
        found: u16,
        /// The newest version this build reads.
        supported: u16,
    },
    /// A format version that never existed (0).
    #[error("unknown snapshot format version {found}")]
    UnknownVersion {
        /// The file's format version.
        found: u16,
    },
    /// The data ends before the snapshot does.
    #[error("snapshot truncated at byte {offset}: expected {expected}")]
    Truncated {
        /// Where the data ran out.
        offset: u64,
        /// What was being read.
        expected: &'static str,
    },
    /// A checksum does not match its data.
    #[error("checksum mismatch in the {section} ending at byte {offset}")]
    Checksum {
        /// The header, a block of entries, or the whole file.
        section: &'static str,
        /// Where the checksum sits.
        offset: u64,
    },
    /// Well-checksummed bytes that still do not make sense (lengths or counts
    /// that disagree, unknown markers, bytes after the end).
    #[error("malformed snapshot at byte {offset}: {reason}")]
    Malformed {
        /// Where the problem was found.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
}
