//! What a valid key is: a non-empty UTF-8 string of at most [`MAX_KEY_BYTES`]
//! bytes. Any character is allowed; URLs carry keys percent-encoded.

/// The longest key accepted, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is the empty string.
    #[error("key must not be empty")]
    Empty,
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("key is {len} bytes; the limit is {max} bytes")]
    TooLong {
        /// Length of the refused key in bytes.
        len: usize,
        /// The limit in force.
        max: usize,
    },
}

/// Checks a key against the rules every node enforces.
pub fn validate_key(key: &str) -> Result<(), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong {
            len: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_any_characters_up_to_the_limit() {
        for key in ["a", "a/b", "q?x", "50%", "with space", "emoji 🦀", "#frag"] {
            assert_eq!(validate_key(key), Ok(()), "{key}");
        }
        assert_eq!(validate_key(&"k".repeat(MAX_KEY_BYTES)), Ok(()));
    }

    #[test]
    fn refuses_empty_and_long_keys() {
        assert_eq!(validate_key(""), Err(KeyError::Empty));
        assert_eq!(
            validate_key(&"k".repeat(MAX_KEY_BYTES + 1)),
            Err(KeyError::TooLong {
                len: MAX_KEY_BYTES + 1,
                max: MAX_KEY_BYTES
            })
        );
        // The limit counts bytes, not characters: 257 four-byte crabs are 1028 bytes.
        assert!(validate_key(&"🦀".repeat(257)).is_err());
    }
}
