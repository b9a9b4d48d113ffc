//! Golden values for placement.
//!
//! THESE VALUES MUST NEVER CHANGE. Every master, in every process, version
//! and platform, must put a key on the same auxiliaries, or a rolling upgrade
//! (or two masters built differently) would read and write keys in different
//! places. If one of these tests fails, the change that broke it is wrong:
//! do not update the literals. They were computed once from xxh3-64 and the
//! ring rules in `distcache_core::ring`, then written down by hand.

use distcache_core::{DEFAULT_VIRTUAL_NODES, Ring, hash_tag, key_hash};

/// `len` bytes counting 0, 1, ..., 255, 0, 1, ...
fn counting_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 256) as u8).collect()
}

fn aux_1_to_5(vnodes: u32) -> Ring {
    Ring::new((1..=5).map(|i| format!("aux-{i}")), vnodes)
}

/// Checks each key's three replicas, by name, leader first.
fn assert_placement(ring: &Ring, expected: &[(&str, [&str; 3])]) {
    for (key, replicas) in expected {
        let got: Vec<&str> = ring
            .replicas_for(key.as_bytes(), 3)
            .as_slice()
            .iter()
            .map(|&i| ring.members()[i as usize].as_str())
            .collect();
        assert_eq!(got, replicas, "key {key:?} at {} vnodes", ring.vnodes());
    }
}

#[test]
fn ring_key_hash_is_pinned() {
    // The lengths cover each code path of xxh3-64 (0, 1-3, 4-8, 9-16,
    // 17-128, 129-240 bytes, one and several 1 KiB blocks).
    let cases: [(&[u8], u64); 9] = [
        // The reference XXH3_64bits("") test vector.
        (b"", 0x2d06_8005_38d3_94c2),
        (b"a", 0xe6c6_32b6_1e96_4e1f),
        (b"user:1", 0x3b57_7afd_7fed_9501),
        ("🦀".as_bytes(), 0x3825_6e7e_5005_6328),
        (&counting_bytes(16), 0x8355_e3a6_f617_70db),
        (&counting_bytes(100), 0x004e_4f92_1a64_bd1c),
        (&counting_bytes(200), 0xf42a_8864_feaf_0703),
        (&counting_bytes(1024), 0xa870_f929_8439_8d22),
        (&counting_bytes(5000), 0x1b74_bda2_c82a_8c7a),
    ];
    for (key, hash) in cases {
        assert_eq!(key_hash(key), hash, "key of {} bytes", key.len());
    }
}

#[test]
fn ring_placement_is_pinned_at_1024_vnodes() {
    assert_placement(
        &aux_1_to_5(1024),
        &[
            ("", ["aux-5", "aux-4", "aux-1"]),
            ("a", ["aux-3", "aux-1", "aux-4"]),
            ("user:1", ["aux-2", "aux-3", "aux-5"]),
            ("user:2", ["aux-3", "aux-4", "aux-2"]),
            ("user:42", ["aux-4", "aux-1", "aux-2"]),
            ("session:abc", ["aux-1", "aux-3", "aux-2"]),
            ("🦀", ["aux-5", "aux-1", "aux-3"]),
            ("cart/7/items", ["aux-3", "aux-4", "aux-5"]),
        ],
    );
}

#[test]
fn ring_placement_is_pinned_at_10_vnodes() {
    let ring = aux_1_to_5(10);
    assert_placement(
        &ring,
        &[
            ("", ["aux-4", "aux-2", "aux-5"]),
            ("a", ["aux-2", "aux-4", "aux-5"]),
            ("user:1", ["aux-4", "aux-2", "aux-5"]),
            ("user:2", ["aux-2", "aux-1", "aux-5"]),
            ("user:42", ["aux-5", "aux-2", "aux-1"]),
            ("session:abc", ["aux-1", "aux-5", "aux-4"]),
            ("🦀", ["aux-4", "aux-2", "aux-5"]),
            ("cart/7/items", ["aux-3", "aux-1", "aux-2"]),
        ],
    );
    // The exact shares depend on every one of the 50 points, so they pin the
    // whole ring (u128 -> f64 and the division are exactly rounded by IEEE).
    assert_eq!(
        ring.shares(),
        [
            0.23769470619215904,
            0.15421629239151607,
            0.21132376623651988,
            0.25029496187060435,
            0.14647027330920068,
        ]
    );
}

#[test]
fn ring_placement_is_pinned_at_the_default_vnodes() {
    // Changing the default moves most keys: treat it as part of placement.
    assert_eq!(DEFAULT_VIRTUAL_NODES, 1200);
    assert_placement(
        &aux_1_to_5(DEFAULT_VIRTUAL_NODES),
        &[
            ("", ["aux-5", "aux-4", "aux-1"]),
            ("a", ["aux-3", "aux-1", "aux-5"]),
            ("user:1", ["aux-2", "aux-3", "aux-4"]),
            ("user:2", ["aux-3", "aux-4", "aux-2"]),
            ("user:42", ["aux-2", "aux-4", "aux-1"]),
            ("session:abc", ["aux-1", "aux-3", "aux-2"]),
            ("🦀", ["aux-5", "aux-1", "aux-4"]),
            ("cart/7/items", ["aux-3", "aux-4", "aux-5"]),
        ],
    );
}

#[test]
fn ring_epoch_is_pinned() {
    // The epoch hashes the member set only, so it does not depend on vnodes.
    for vnodes in [10, 1024, DEFAULT_VIRTUAL_NODES] {
        assert_eq!(aux_1_to_5(vnodes).epoch(), 0xc587_f0ea_eb28_903a);
    }
    assert_eq!(Ring::new(["aux-1"], 10).epoch(), 0xd176_e093_9555_0aa7);
    assert_eq!(
        Ring::new(["127.0.0.1:3001", "127.0.0.1:3002", "127.0.0.1:3003"], 10).epoch(),
        0x6d90_7a24_30d8_5044
    );
    assert_eq!(Ring::new(Vec::<String>::new(), 10).epoch(), 0);
}

#[test]
fn tagged_keys_place_by_their_tag_and_untagged_keys_as_before() {
    // Redis Cluster's rule: the bytes between the first `{` and the first
    // `}` after it, when there is at least one.
    let tags: [(&str, &str); 9] = [
        ("user:{42}:a", "42"),
        ("user:{42}:b", "42"),
        ("foo{bar}{zap}", "bar"),
        ("foo{{bar}}zap", "{bar"),
        ("}{x}", "x"),
        ("{}", "{}"),
        ("foo{}{bar}", "foo{}{bar}"),
        ("open{only", "open{only"),
        ("no tag", "no tag"),
    ];
    for (key, tag) in tags {
        assert_eq!(hash_tag(key.as_bytes()), tag.as_bytes(), "{key}");
    }
    // A tagged key lives where its tag would as a key: pinned through the
    // untagged placements above.
    assert_placement(
        &aux_1_to_5(DEFAULT_VIRTUAL_NODES),
        &[
            ("{user:42}", ["aux-2", "aux-4", "aux-1"]),
            ("cart:{user:42}", ["aux-2", "aux-4", "aux-1"]),
            ("orders:{user:42}:2024", ["aux-2", "aux-4", "aux-1"]),
            ("x{a}", ["aux-3", "aux-1", "aux-5"]),
            ("{session:abc}:token", ["aux-1", "aux-3", "aux-2"]),
        ],
    );
}
