//! Numbers as Redis reads and writes them: which byte strings are integers
//! and floats, and how a double is printed.

/// Parses a 64-bit integer as Redis's `string2ll` does: an optional `-`, no
/// `+`, no spaces, no leading zeros (`0` itself excepted, `-0` refused), at
/// most 20 characters, within range.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        if n == 1 << 63 {
            Some(i64::MIN)
        } else {
            i64::try_from(n).ok().map(|v| -v)
        }
    } else {
        i64::try_from(n).ok()
    }
}

/// Parses a double as Redis's `getDoubleFromObject` does with `strtod`:
/// the whole string, no leading space, `inf`/`infinity` in any case with an
/// optional sign; refused: NaN, a finite number too large for a double, and
/// a non-zero number so small it rounds to zero.
///
/// Known gap: C's hexadecimal floats (`0x1p3`) are refused here and
/// accepted by Redis.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s).ok()?;
    if text.is_empty() || text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    if value.is_nan() {
        return None;
    }
    let spelled_infinity = text.bytes().any(|b| b.eq_ignore_ascii_case(&b'i'));
    if value.is_infinite() && !spelled_infinity {
        return None;
    }
    if value == 0.0 && mantissa_has_nonzero_digit(text) {
        return None;
    }
    Some(value)
}

/// Parses a range bound as Redis's `zslParseRange` does: `strtod` must
/// consume the whole string and give no NaN, and that is all: the empty
/// string is 0 (strtod consumes nothing and stops at the end), leading
/// spaces are skipped, and an overflow is an infinity.
pub fn parse_f64_lax(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s).ok()?;
    let text = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    if text.is_empty() {
        return if s.is_empty() { Some(0.0) } else { None };
    }
    let value: f64 = text.parse().ok()?;
    if value.is_nan() { None } else { Some(value) }
}

fn mantissa_has_nonzero_digit(text: &str) -> bool {
    text.bytes()
        .take_while(|b| !b.eq_ignore_ascii_case(&b'e'))
        .any(|b| (b'1'..=b'9').contains(&b))
}

/// Formats a double as Redis replies with one (ZSCORE, ZINCRBY, the scores
/// of WITHSCORES...): C's `%.17g`, with `inf` and `-inf`.
pub fn format_double(v: f64) -> String {
    if v.is_nan() {
        return "nan".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // 17 significant digits, correctly rounded, as d.dddddddddddddddde±x.
    let sci = format!("{:.16e}", v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-4..17).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let rest = rest.trim_end_matches('0');
        let dot = if rest.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{esign}{:02}", exp.unsigned_abs());
    }
    let (int_part, frac_part) = if exp >= 0 {
        let split = (exp + 1) as usize;
        (digits[..split].to_owned(), digits[split..].to_owned())
    } else {
        let zeros = "0".repeat((-exp - 1) as usize);
        ("0".to_owned(), format!("{zeros}{digits}"))
    };
    let frac_part = frac_part.trim_end_matches('0');
    if frac_part.is_empty() {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac_part}")
    }
}

/// Formats a double as Redis stores a score in a small sorted set (and so
/// as ZSCAN shows it): `d2string`, which prints integral values within
/// ±2^62 as integers and everything else as `%.17g`.
pub fn format_double_compact(v: f64) -> String {
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if v.is_finite() && v != 0.0 && (-LIMIT..=LIMIT).contains(&v) && v.fract() == 0.0 {
        return (v as i64).to_string();
    }
    format_double(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_string2ll() {
        for (text, want) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-0", None),
            ("01", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("", None),
            ("-", None),
            ("1.0", None),
        ] {
            assert_eq!(parse_i64(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn floats_follow_strtod_as_redis_checks_it() {
        for (text, want) in [
            ("1.5", Some(1.5)),
            ("-inf", Some(f64::NEG_INFINITY)),
            ("+Infinity", Some(f64::INFINITY)),
            (".5", Some(0.5)),
            ("5.", Some(5.0)),
            ("1e3", Some(1000.0)),
            ("nan", None),
            ("1e400", None),
            ("1e-400", None),
            ("0e-400", Some(0.0)),
            (" 1", None),
            ("1 ", None),
            ("", None),
            ("abc", None),
        ] {
            assert_eq!(parse_f64(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn stored_scores_print_integral_values_as_integers() {
        assert_eq!(format_double_compact(1e17), "100000000000000000");
        assert_eq!(
            format_double_compact(123456789012345678.0),
            "123456789012345680"
        );
        assert_eq!(format_double_compact(1e25), "1.0000000000000001e+25");
        assert_eq!(format_double_compact(2.5), "2.5");
        assert_eq!(format_double_compact(f64::INFINITY), "inf");
    }

    #[test]
    fn doubles_print_like_percent_17g() {
        for (v, want) in [
            (1.1, "1.1000000000000001"),
            (0.0, "0"),
            (-0.0, "-0"),
            (3.0, "3"),
            (1e25, "1.0000000000000001e+25"),
            (1e-5, "1.0000000000000001e-05"),
            (0.0001, "0.0001"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(format_double(v), want, "{v}");
        }
    }
}
