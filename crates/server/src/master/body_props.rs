//! Property-based fuzzing of the parsers of untrusted request bodies: any
//! bytes at all give a value or our error, never a panic, and well-formed
//! bodies parse to what they say (the HTTP counterpart of the wire frames'
//! fuzzing in `crates/wire/tests/unit_frame_props.rs`; bearer-header and token
//! parsing is fuzzed in `security/auth.rs`).

use proptest::prelude::*;
use serde_json::json;

use super::{Fields, SetBody, parse};
use crate::master::membership::Registration;

/// Bytes that are JSON-ish more often than random bytes would be.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        "[\\[\\]{}\":,0-9a-z \\\\ntrulfse-]{0,128}".prop_map(|s| s.into_bytes()),
    ]
}

/// A JSON value, nested a little.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "\\PC{0,16}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `POST /data` and each `POST /data/bulk` item: any bytes parse or fail
    /// with a 400, never a panic.
    #[test]
    fn set_bodies_never_panic(bytes in body_bytes()) {
        if let Ok(fields) = parse::<Fields<'_>>(&bytes) {
            if let Err(e) = SetBody::from_fields(fields) {
                prop_assert_eq!(e.status.as_u16(), 400);
            }
        }
        if let Ok(items) = parse::<Vec<Fields<'_>>>(&bytes) {
            for item in items {
                let _ = SetBody::from_fields(item);
            }
        }
    }

    /// `POST /data/bulk/get` and `POST /nodes`: any bytes, no panic; errors
    /// are 400 bad_json.
    #[test]
    fn key_lists_and_registrations_never_panic(bytes in body_bytes()) {
        if let Err(e) = parse::<Vec<String>>(&bytes) {
            prop_assert_eq!(e.code, "bad_json");
        }
        let _ = parse::<Registration>(&bytes);
    }

    /// A well-formed set body parses to its key, its value's exact text and
    /// its ttl; an unknown field makes it a 400.
    #[test]
    fn well_formed_set_bodies_parse_to_what_they_say(
        key in "\\PC{0,20}",
        value in json_value(),
        ttl in proptest::option::of(0i64..1_000_000),
        extra in proptest::option::of("[a-z]{1,5}"),
    ) {
        let mut body = json!({"key": key, "value": value});
        if let Some(t) = ttl {
            body["ttl"] = json!(t);
        }
        let unknown = extra.filter(|f| !["key", "value", "ttl"].contains(&f.as_str()));
        if let Some(f) = &unknown {
            body[f.as_str()] = json!(1);
        }
        let text = serde_json::to_vec(&body).unwrap();
        let parsed = SetBody::from_fields(parse::<Fields<'_>>(&text).unwrap());
        match unknown {
            Some(_) => prop_assert_eq!(parsed.err().map(|e| e.status.as_u16()), Some(400)),
            None => {
                let parsed = parsed.unwrap();
                prop_assert_eq!(&parsed.key, &key);
                let round: serde_json::Value = serde_json::from_str(parsed.value.get()).unwrap();
                prop_assert_eq!(round, value);
                prop_assert_eq!(parsed.ttl, ttl);
            }
        }
    }
}
