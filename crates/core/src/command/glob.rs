//! Glob-style matching for KEYS, SCAN MATCH and friends, byte for byte as
//! Redis's `stringmatchlen`: `*`, `?`, `[abc]`, `[^a]`, `[a-z]` (ends in
//! either order), and `\` to take the next byte literally. An unclosed `[`
//! runs to the end of the pattern, as in Redis.

/// Whether `text` matches `pattern`. Note that `*` does not match the empty
/// string here, as in `stringmatchlen`; KEYS and SCAN treat a lone `*` as
/// "no pattern" before they get here ([`matches_all`]).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let mut skip_longer = false;
    matches(pattern, text, &mut skip_longer, 0)
}

/// Whether KEYS/SCAN skip matching altogether: a pattern of exactly `*`.
pub fn matches_all(pattern: &[u8]) -> bool {
    pattern == b"*"
}

/// Whether `text` passes a KEYS/SCAN pattern (a lone `*` passes everything,
/// the empty string included).
pub fn pattern_allows(pattern: &[u8], text: &[u8]) -> bool {
    matches_all(pattern) || glob_match(pattern, text)
}

/// The pattern byte at `i`, or 0 past the end: Redis reads its patterns as
/// NUL-terminated strings and some of its branches rely on seeing that NUL.
fn at(p: &[u8], i: usize) -> u8 {
    p.get(i).copied().unwrap_or(0)
}

fn matches(pattern: &[u8], text: &[u8], skip_longer: &mut bool, nesting: u32) -> bool {
    // Redis gives up (no match) on patterns nested this deep, so that a
    // hostile pattern cannot exhaust the stack.
    if nesting > 1000 {
        return false;
    }
    let (mut p, mut s) = (0usize, 0usize);
    while p < pattern.len() && s < text.len() {
        match pattern[p] {
            b'*' => {
                while p + 1 < pattern.len() && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                while s < text.len() {
                    if matches(&pattern[p + 1..], &text[s..], skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let negate = at(pattern, p) == b'^';
                if negate {
                    p += 1;
                }
                let c = text[s];
                let mut hit = false;
                loop {
                    let left = pattern.len().saturating_sub(p);
                    if at(pattern, p) == b'\\' && left >= 2 {
                        p += 1;
                        if pattern[p] == c {
                            hit = true;
                        }
                    } else if at(pattern, p) == b']' {
                        break;
                    } else if left == 0 {
                        // Unclosed class: step back so the `p += 1` below
                        // lands on the end of the pattern.
                        p -= 1;
                        break;
                    } else if left >= 3 && pattern[p + 1] == b'-' {
                        let (mut lo, mut hi) = (pattern[p], pattern[p + 2]);
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        p += 2;
                        if (lo..=hi).contains(&c) {
                            hit = true;
                        }
                    } else if pattern[p] == c {
                        hit = true;
                    }
                    p += 1;
                }
                if negate {
                    hit = !hit;
                }
                if !hit {
                    return false;
                }
                s += 1;
            }
            b'\\' if pattern.len() - p >= 2 => {
                p += 1;
                if pattern[p] != text[s] {
                    return false;
                }
                s += 1;
            }
            literal => {
                if literal != text[s] {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == text.len() {
            while at(pattern, p) == b'*' && p < pattern.len() {
                p += 1;
            }
            break;
        }
    }
    p >= pattern.len() && s == text.len()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn matches_like_redis_stringmatchlen() {
        for (pattern, text, want) in [
            ("*", "", false),
            ("*", "abc", true),
            ("", "", true),
            ("", "a", false),
            ("a*", "a", true),
            ("a**", "abc", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h[ae]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[^e]llo", "hallo", true),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hbllo", true),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hallo", false),
            ("[\\]]", "]", true),
            ("a[bc", "ab", true),
            ("a[bc", "ac", true),
            ("a[", "ab", false),
            ("*a*b", "xaxb", true),
            ("*a*b", "xaxbx", false),
            ("k\\", "k\\", true),
            ("[", "", false),
        ] {
            assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                want,
                "{pattern:?} ~ {text:?}"
            );
        }
    }
}
