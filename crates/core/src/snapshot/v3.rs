//! Format version 3: v2's layout, with every value in its *stored form*
//! (`crate::value::stored`): JSON text (a value stored through `/data`),
//! `0x00` and a plain string's bytes, or a collection's value encoding. Today's
//! format; once a v4 exists this module is frozen like [`super::v1`] and
//! [`super::v2`].
//!
//! Why a new version when the bytes are laid out as v2's: a v2 reader (an
//! older binary) takes every value for JSON text, and would misread plain
//! strings and collections. Refusing a v3 file as a newer version is what
//! it must do instead. The other way round is safe: v2's values are all
//! JSON text, which is a valid stored form, so a v2 file decodes unchanged.
//!
//! # Layout
//!
//! As [`super::v2`], with `version u16 = 3` in the preamble.

use super::{SnapshotError, SnapshotHeader, Visitor};

/// This module's format version.
pub const VERSION: u16 = 3;

/// Checks a v3 snapshot in full, then calls `visitor` with each entry and
/// tombstone in file order and returns the header (v2's walk: the layout
/// is the same). The caller has checked the magic number and the version.
pub(super) fn visit(
    data: &[u8],
    visitor: &mut impl Visitor,
) -> Result<SnapshotHeader, SnapshotError> {
    super::v2::visit(data, visitor)
}
