//! The request parser against what Redis does with the same bytes:
//! multibulk and inline requests, pipelines, input arriving a byte at a
//! time, every refusal with Redis's words, and arbitrary bytes.

use proptest::prelude::*;

use super::*;

fn args(list: &[&[u8]]) -> Vec<Bytes> {
    list.iter().map(|a| Bytes::copy_from_slice(a)).collect()
}

fn multibulk(list: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", list.len()).into_bytes();
    for a in list {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn parse_all(bytes: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(request) = parse_request(&mut buf, &RespLimits::default())? {
        out.push(request);
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    Ok(out)
}

fn inline(line: &str) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
    parse_all(format!("{line}\r\n").as_bytes())
}

#[test]
fn a_pipeline_of_multibulk_requests_parses_in_order() {
    let mut bytes = multibulk(&[b"SET", b"k", b"a\r\nb"]);
    bytes.extend(multibulk(&[b"GET", b"k"]));
    bytes.extend(multibulk(&[b"SET", b"empty", b""]));
    assert_eq!(
        parse_all(&bytes).unwrap(),
        vec![
            args(&[b"SET", b"k", b"a\r\nb"]),
            args(&[b"GET", b"k"]),
            args(&[b"SET", b"empty", b""])
        ]
    );
}

#[test]
fn a_request_arriving_a_byte_at_a_time_is_taken_only_when_whole() {
    let bytes = multibulk(&[b"HSET", b"h", b"field", b"value"]);
    let mut buf = BytesMut::new();
    for (i, &b) in bytes.iter().enumerate() {
        buf.extend_from_slice(&[b]);
        let got = parse_request(&mut buf, &RespLimits::default()).unwrap();
        if i + 1 < bytes.len() {
            assert_eq!(got, None, "after {} bytes", i + 1);
            assert_eq!(buf.len(), i + 1, "nothing consumed");
        } else {
            assert_eq!(got, Some(args(&[b"HSET", b"h", b"field", b"value"])));
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn empty_requests_are_skipped() {
    let mut bytes = b"*0\r\n*-1\r\n\r\n   \r\n".to_vec();
    bytes.extend(multibulk(&[b"PING"]));
    assert_eq!(parse_all(&bytes).unwrap(), vec![args(&[b"PING"])]);
}

#[test]
fn inline_commands_split_like_sdssplitargs() {
    assert_eq!(inline("PING").unwrap(), vec![args(&[b"PING"])]);
    assert_eq!(
        inline("  set  k   v  ").unwrap(),
        vec![args(&[b"set", b"k", b"v"])]
    );
    assert_eq!(
        inline(r#"SET "a key" "tab\there\x41\"q\"""#).unwrap(),
        vec![args(&[b"SET", b"a key", b"tab\there\x41\"q\""])]
    );
    assert_eq!(
        inline(r"SET 'it\'s' 'a \n stays'").unwrap(),
        vec![args(&[b"SET", b"it's", b"a \\n stays"])]
    );
    // A quote inside a word opens a quoted part of the same argument.
    assert_eq!(
        inline(r#"SET k"ey" v"#).unwrap(),
        vec![args(&[b"SET", b"key", b"v"])]
    );
    // A line ended by a bare \n works too (telnet may send one).
    assert_eq!(parse_all(b"GET k\n").unwrap(), vec![args(&[b"GET", b"k"])]);
    // "" is an empty argument.
    assert_eq!(
        inline(r#"SET k """#).unwrap(),
        vec![args(&[b"SET", b"k", b""])]
    );
}

#[test]
fn unbalanced_quotes_are_refused_with_redis_words() {
    for line in [r#"SET "k v"#, r#"SET "k"v"#, "SET 'k v", "SET 'k'v"] {
        let err = inline(line).unwrap_err();
        assert_eq!(err, ProtocolError::UnbalancedQuotes, "{line}");
        assert_eq!(
            err.to_string(),
            "Protocol error: unbalanced quotes in request"
        );
    }
}

#[test]
fn bad_headers_are_refused_with_redis_words() {
    let cases: &[(&[u8], &str)] = &[
        (b"*x\r\n", "Protocol error: invalid multibulk length"),
        (b"*01\r\n", "Protocol error: invalid multibulk length"),
        (b"*1\r\n+PING\r\n", "Protocol error: expected '$', got '+'"),
        (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$abc\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$-0\r\n\r\n", "Protocol error: invalid bulk length"),
    ];
    for (bytes, message) in cases {
        let err = parse_all(bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            *message,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn limits_are_enforced_from_the_headers_alone() {
    let limits = RespLimits {
        max_bulk_bytes: 10,
        max_args: 3,
        max_inline_bytes: 32,
        before_auth: false,
    };
    let refuse = |bytes: &[u8]| parse_request(&mut BytesMut::from(bytes), &limits).unwrap_err();
    // Refused before any of the payload has arrived.
    assert_eq!(refuse(b"*4\r\n"), ProtocolError::MultibulkLength);
    assert_eq!(refuse(b"*1\r\n$11\r\n"), ProtocolError::BulkLength);
    assert_eq!(
        refuse(b"*1\r\n$1000000000000\r\n"),
        ProtocolError::BulkLength
    );
    // Lines with no end in sight.
    assert_eq!(refuse(&[b'*'; 40]), ProtocolError::MultibulkHeaderTooLong);
    let mut long_bulk_header = b"*1\r\n$".to_vec();
    long_bulk_header.extend([b'1'; 40]);
    assert_eq!(refuse(&long_bulk_header), ProtocolError::BulkHeaderTooLong);
    assert_eq!(refuse(&[b'a'; 40]), ProtocolError::InlineTooLong);
    // At the limits, accepted.
    let ok = multibulk(&[b"SET", b"k", b"0123456789"]);
    assert_eq!(
        parse_request(&mut BytesMut::from(&ok[..]), &limits).unwrap(),
        Some(args(&[b"SET", b"k", b"0123456789"]))
    );
}

#[test]
fn arguments_share_the_read_buffer_instead_of_copying_it() {
    let bytes = multibulk(&[b"SET", b"k", &[b'v'; 1000]]);
    let mut buf = BytesMut::from(&bytes[..]);
    let base = buf.as_ptr() as usize;
    let request = parse_request(&mut buf, &RespLimits::default())
        .unwrap()
        .unwrap();
    let value = request[2].as_ptr() as usize;
    assert!(
        value >= base && value < base + bytes.len(),
        "the value was copied"
    );
}

/// How `number` read its digits before it read them one by one: Rust's
/// own parser, after the checks for what `string2ll` refuses.
fn number_by_str(digits: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(digits).ok()?;
    let leading_zero = text.starts_with("-0") || (text.len() > 1 && text.starts_with('0'));
    if text.is_empty() || text.starts_with('+') || leading_zero {
        return None;
    }
    text.parse().ok()
}

#[test]
fn numbers_are_read_as_string2ll_reads_them() {
    let cases: &[(&[u8], Option<i64>)] = &[
        (b"0", Some(0)),
        (b"7", Some(7)),
        (b"-12", Some(-12)),
        (b"9223372036854775807", Some(i64::MAX)),
        (b"-9223372036854775808", Some(i64::MIN)),
        (b"9223372036854775808", None),
        (b"-9223372036854775809", None),
        (b"", None),
        (b"-", None),
        (b"-0", None),
        (b"00", None),
        (b"01", None),
        (b"+1", None),
        (b" 1", None),
        (b"1 ", None),
        (b"1x", None),
        ("\u{661}".as_bytes(), None),
    ];
    for (digits, expected) in cases {
        let shown = String::from_utf8_lossy(digits);
        assert_eq!(number(digits), *expected, "{shown:?}");
        assert_eq!(number_by_str(digits), *expected, "{shown:?}");
    }
}

proptest! {
    #[test]
    fn numbers_read_digit_by_digit_as_by_rusts_parser(
        digits in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..24),
            "-?[0-9]{0,20}".prop_map(String::into_bytes),
        ],
    ) {
        prop_assert_eq!(number(&digits), number_by_str(&digits));
    }

    #[test]
    fn any_arguments_round_trip_through_multibulk(
        list in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8),
        split in any::<prop::sample::Index>(),
    ) {
        let refs: Vec<&[u8]> = list.iter().map(Vec::as_slice).collect();
        let bytes = multibulk(&refs);
        // Arriving in two pieces, at any point.
        let at = split.index(bytes.len() + 1);
        let mut buf = BytesMut::from(&bytes[..at]);
        let first = parse_request(&mut buf, &RespLimits::default()).unwrap();
        if at < bytes.len() {
            prop_assert_eq!(first, None);
            buf.extend_from_slice(&bytes[at..]);
            let whole = parse_request(&mut buf, &RespLimits::default()).unwrap();
            prop_assert_eq!(whole, Some(args(&refs)));
        } else {
            prop_assert_eq!(first, Some(args(&refs)));
        }
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_grow_past_the_limits(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        star in any::<bool>(),
    ) {
        let mut input = if star { b"*".to_vec() } else { Vec::new() };
        input.extend(bytes);
        let limits = RespLimits { max_bulk_bytes: 64, max_args: 8, max_inline_bytes: 64, before_auth: false };
        let mut buf = BytesMut::from(&input[..]);
        while let Ok(Some(request)) = parse_request(&mut buf, &limits) {
            prop_assert!(!request.is_empty());
            prop_assert!(request.len() <= 8 || !star);
        }
        // What is left waiting is at most one legal request's worth.
        prop_assert!(buf.len() <= input.len());
    }
}

#[test]
fn before_authentication_ten_arguments_of_16_kib_at_most_as_in_redis() {
    let limits = RespLimits {
        before_auth: true,
        ..RespLimits::default()
    };
    let parse = |bytes: &[u8]| parse_request(&mut BytesMut::from(bytes), &limits);
    // Refused from the headers alone, before any payload.
    assert_eq!(
        parse(b"*11\r\n"),
        Err(ProtocolError::UnauthenticatedMultibulkLength)
    );
    assert_eq!(
        parse(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n"),
        Err(ProtocolError::UnauthenticatedBulkLength)
    );
    // At the limits: fine.
    let mut ten = b"*10\r\n".to_vec();
    for _ in 0..10 {
        ten.extend_from_slice(b"$1\r\nx\r\n");
    }
    assert_eq!(parse(&ten).unwrap().map(|args| args.len()), Some(10));
    assert_eq!(parse(b"*1\r\n$16384\r\n"), Ok(None));
    // Redis's words.
    assert_eq!(
        ProtocolError::UnauthenticatedMultibulkLength.to_string(),
        "Protocol error: unauthenticated multibulk length"
    );
    // Authenticated: the usual limits.
    let mut eleven = b"*11\r\n".to_vec();
    for _ in 0..11 {
        eleven.extend_from_slice(b"$1\r\nx\r\n");
    }
    let usual = RespLimits::default();
    assert_eq!(
        parse_request(&mut BytesMut::from(&eleven[..]), &usual)
            .unwrap()
            .map(|args| args.len()),
        Some(11)
    );
}
