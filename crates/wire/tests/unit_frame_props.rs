//! Property tests for the frame codec: arbitrary frames round-trip, arbitrary
//! bytes never panic, and a prefix of a frame is never mistaken for a frame.

use bytes::{BufMut, Bytes, BytesMut};
use distcache_core::ring::PositionRange;
use distcache_core::store::Watched;
use distcache_core::{Entry, Lookup, Version};
use distcache_wire::frame::{
    ApplyStatus, DeleteStatus, KeyedEntry, MAX_FRAME_BYTES, RequestFrame, ShippedChanges,
    WriteStatus, decode_request, decode_response, encode_request, encode_response,
};
use distcache_wire::{FrameError, Request, Response};
use proptest::collection::vec;
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn version() -> impl Strategy<Value = Version> {
    (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(millis, counter, origin)| Version {
        millis,
        counter,
        origin,
    })
}

fn entry() -> impl Strategy<Value = Entry> {
    // Some(0) is sent as Some(1) (see the frame docs), so it is left out here.
    let expiry = prop_oneof![Just(None), (1..=u64::MAX).prop_map(Some)];
    (bytes(64), expiry, version()).prop_map(|(value, expires_at_ms, version)| Entry {
        value,
        expires_at_ms,
        version,
    })
}

fn status() -> impl Strategy<Value = WriteStatus> {
    prop_oneof![
        Just(WriteStatus::Stored),
        version().prop_map(|held| WriteStatus::Stale { held }),
        Just(WriteStatus::Expired),
        Just(WriteStatus::TooLarge),
    ]
}

fn delete_status() -> impl Strategy<Value = DeleteStatus> {
    prop_oneof![
        Just(DeleteStatus::Deleted),
        Just(DeleteStatus::NotFound),
        version().prop_map(|held| DeleteStatus::Stale { held }),
    ]
}

fn lookup() -> impl Strategy<Value = Lookup> {
    prop_oneof![
        Just(Lookup::Absent),
        entry().prop_map(Lookup::Live),
        version().prop_map(Lookup::Deleted),
    ]
}

/// Mostly small epochs, as a cluster's are, and now and then any `u64`.
fn epoch() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 1u64..1000, any::<u64>()]
}

/// A request frame's fields, for the codec.
fn request_frame() -> impl Strategy<Value = RequestFrame> {
    (any::<u64>(), epoch(), request()).prop_map(|(id, epoch, request)| RequestFrame {
        id,
        epoch,
        request,
    })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Ping),
        bytes(64).prop_map(|secret| Request::Hello { secret }),
        bytes(64).prop_map(|key| Request::Get { key }),
        (bytes(64), entry()).prop_map(|(key, entry)| Request::Set { key, entry }),
        (bytes(64), version()).prop_map(|(key, version)| Request::Delete { key, version }),
        (bytes(64), version()).prop_map(|(key, version)| Request::NoteExpired { key, version }),
        (
            bytes(64),
            prop_oneof![
                entry().prop_map(Lookup::Live),
                version().prop_map(Lookup::Deleted),
            ],
            vec(version(), 0..4)
        )
            .prop_map(|(key, copy, over)| Request::Adopt { key, copy, over }),
        vec(bytes(16), 0..16).prop_map(|keys| Request::GetMany { keys }),
        vec(
            (bytes(16), entry()).prop_map(|(key, entry)| KeyedEntry { key, entry }),
            0..8
        )
        .prop_map(|entries| Request::SetMany { entries }),
        vec((bytes(16), version()), 0..8).prop_map(|keys| Request::DeleteMany { keys }),
        (
            proptest::option::of(version()),
            any::<u64>(),
            vec(vec(bytes(16), 0..6), 0..4),
            any::<bool>(),
            prop_oneof![Just(Vec::new()), vec((bytes(16), watched()), 1..4)]
        )
            .prop_map(
                |(version, max_value_bytes, commands, ship_effects, watched)| {
                    Request::Execute {
                        version,
                        max_value_bytes,
                        commands: commands.into(),
                        ship_effects,
                        watched,
                    }
                }
            ),
        (version(), vec(shipped(), 0..4))
            .prop_map(|(version, changes)| Request::ApplyChanges { version, changes }),
        position_ranges().prop_map(|ranges| Request::CountKeys { ranges }),
    ]
}

/// Sorted, disjoint ranges, as `CountKeys` requires: consecutive cut
/// points paired up (the ends of the hash space among them at times).
fn position_ranges() -> impl Strategy<Value = Vec<PositionRange>> {
    let point = prop_oneof![any::<u64>(), Just(0), Just(u64::MAX)];
    vec(point, 0..16).prop_map(|mut points| {
        points.sort_unstable();
        points.dedup();
        points
            .chunks_exact(2)
            .map(|pair| PositionRange {
                first: pair[0],
                last: pair[1],
            })
            .collect()
    })
}

fn watched() -> impl Strategy<Value = Watched> {
    prop_oneof![
        Just(Watched::Absent),
        version().prop_map(Watched::Live),
        version().prop_map(Watched::Deleted),
    ]
}

fn shipped() -> impl Strategy<Value = ShippedChanges> {
    (bytes(16), proptest::option::of(version()), bytes(48))
        .prop_map(|(key, base, ops)| ShippedChanges { key, base, ops })
}

fn apply_status() -> impl Strategy<Value = ApplyStatus> {
    prop_oneof![
        Just(ApplyStatus::Applied),
        version().prop_map(|held| ApplyStatus::Stale { held }),
        Just(ApplyStatus::Diverged),
        Just(ApplyStatus::TooLarge),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        Just(Response::Pong),
        Just(Response::Ok),
        epoch().prop_map(|current| Response::StaleEpoch { current }),
        entry().prop_map(Response::Value),
        Just(Response::NotFound),
        status().prop_map(Response::Written),
        delete_status().prop_map(Response::Deleted),
        version().prop_map(Response::Tombstone),
        vec(lookup(), 0..8).prop_map(Response::Values),
        vec(status(), 0..16).prop_map(Response::WrittenMany),
        (
            proptest::option::of(version()),
            bytes(64),
            vec(shipped(), 0..4)
        )
            .prop_map(|(version, replies, changes)| Response::Executed {
                version,
                replies,
                changes
            }),
        vec(apply_status(), 0..8).prop_map(Response::Applied),
        any::<u64>().prop_map(|keys| Response::Counted { keys }),
        Just(Response::WatchFailed),
        (any::<String>(), any::<String>())
            .prop_map(|(code, message)| Response::Error { code, message }),
    ]
}

fn encoded_request(frame: &RequestFrame) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_request(frame.id, frame.epoch, &frame.request, &mut buf);
    buf
}

fn encoded_response(id: u64, resp: &Response) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_response(id, resp, &mut buf);
    buf
}

/// Decodes frames from `buf` until it runs dry or fails; must not panic.
fn drain_requests(mut buf: BytesMut) {
    while let Ok(Some(_)) = decode_request(&mut buf) {}
}

fn drain_responses(mut buf: BytesMut) {
    while let Ok(Some(_)) = decode_response(&mut buf) {}
}

/// A frame with a correct length prefix around an arbitrary opcode and
/// payload: gets past the length check into the payload parsers. Returned
/// twice: as a request (with an epoch after the opcode, most of the time)
/// and as a response (without).
fn framed_noise() -> impl Strategy<Value = (BytesMut, BytesMut)> {
    let opcode = prop_oneof![0x00u8..=0x0E, 0x80u8..=0x8E, Just(0xFF), any::<u8>()];
    // Half the time the payload opens with a small count, so that batch
    // parsers get past their count check.
    let count = proptest::option::of(0u32..4);
    let payload = vec(prop_oneof![0u8..4, any::<u8>()], 0..96);
    let request_epoch = prop_oneof![
        4 => epoch().prop_map(|e| e.to_le_bytes().to_vec()),
        1 => vec(any::<u8>(), 0..8),
    ];
    (any::<u64>(), opcode, count, payload, request_epoch).prop_map(
        |(id, opcode, count, payload, request_epoch)| {
            let count = count.map(u32::to_le_bytes);
            let count: &[u8] = count.as_ref().map_or(&[], |c| &c[..]);
            let frame = |header_extra: &[u8]| {
                let mut buf = BytesMut::new();
                buf.put_u32_le((9 + header_extra.len() + count.len() + payload.len()) as u32);
                buf.put_u64_le(id);
                buf.put_u8(opcode);
                buf.put_slice(header_extra);
                buf.put_slice(count);
                buf.put_slice(&payload);
                buf
            };
            (frame(&request_epoch), frame(&[]))
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn requests_round_trip(frame in request_frame()) {
        let mut buf = encoded_request(&frame);
        prop_assert_eq!(decode_request(&mut buf), Ok(Some(frame)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn responses_round_trip(id in any::<u64>(), resp in response()) {
        let mut buf = encoded_response(id, &resp);
        prop_assert_eq!(decode_response(&mut buf), Ok(Some((id, resp))));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn a_stream_of_frames_decodes_in_order(reqs in vec(request_frame(), 0..8)) {
        let mut buf = BytesMut::new();
        for frame in &reqs {
            buf.put_slice(&encoded_request(frame));
        }
        for expected in reqs {
            prop_assert_eq!(decode_request(&mut buf), Ok(Some(expected)));
        }
        prop_assert_eq!(decode_request(&mut buf), Ok(None));
    }

    #[test]
    fn arbitrary_bytes_never_panic(noise in vec(any::<u8>(), 0..256)) {
        drain_requests(BytesMut::from(&noise[..]));
        drain_responses(BytesMut::from(&noise[..]));
    }

    #[test]
    fn framed_noise_is_refused_or_canonical((request, frame) in framed_noise()) {
        // A frame with a valid length is always consumed or refused, never
        // left waiting for more bytes; and whatever decodes is canonical: it
        // encodes back to exactly the bytes it came from (the epoch too).
        let mut buf = request.clone();
        match decode_request(&mut buf) {
            Ok(None) => prop_assert!(false, "a whole frame was left waiting"),
            Ok(Some(decoded)) => prop_assert_eq!(encoded_request(&decoded), request),
            Err(_) => {}
        }
        let mut buf = frame.clone();
        match decode_response(&mut buf) {
            Ok(None) => prop_assert!(false, "a whole frame was left waiting"),
            Ok(Some((id, resp))) => prop_assert_eq!(encoded_response(id, &resp), frame),
            Err(_) => {}
        }
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete(frame in request_frame()) {
        let whole = encoded_request(&frame);
        for cut in 0..whole.len() {
            let mut prefix = BytesMut::from(&whole[..cut]);
            prop_assert_eq!(decode_request(&mut prefix), Ok(None), "prefix of {} bytes", cut);
            prop_assert_eq!(prefix.len(), cut);
        }
    }

    #[test]
    fn every_prefix_of_a_response_is_incomplete(id in any::<u64>(), resp in response()) {
        let whole = encoded_response(id, &resp);
        for cut in 0..whole.len() {
            let mut prefix = BytesMut::from(&whole[..cut]);
            prop_assert_eq!(decode_response(&mut prefix), Ok(None), "prefix of {} bytes", cut);
            prop_assert_eq!(prefix.len(), cut);
        }
    }

    #[test]
    fn a_larger_length_prefix_waits_or_is_refused(
        frame in request_frame(),
        declared in any::<u32>(),
    ) {
        let mut buf = encoded_request(&frame);
        let actual = buf.len() - 4;
        prop_assume!(declared as usize > actual);
        buf[..4].copy_from_slice(&declared.to_le_bytes());
        let before = buf.clone();
        let got = decode_request(&mut buf);
        if declared as usize > MAX_FRAME_BYTES {
            prop_assert_eq!(got, Err(FrameError::TooLarge { len: declared as usize, max: MAX_FRAME_BYTES }));
        } else {
            prop_assert_eq!(got, Ok(None));
        }
        prop_assert_eq!(buf, before);
    }

    #[test]
    fn a_corrupted_request_never_decodes_as_a_different_one(
        frame in request_frame(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..,
    ) {
        // Flip one byte anywhere (the epoch included): the result is an
        // error, incomplete, or a frame that encodes back to exactly the
        // corrupted bytes.
        let mut buf = encoded_request(&frame);
        let i = at.index(buf.len());
        buf[i] ^= xor;
        let corrupted = buf.clone();
        if let Ok(Some(got)) = decode_request(&mut buf) {
            let mut again = encoded_request(&got);
            again.put_slice(&buf);
            prop_assert_eq!(again, corrupted);
        }
    }

    #[test]
    fn a_corrupted_response_never_decodes_as_a_different_one(
        id in any::<u64>(),
        resp in response(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..,
    ) {
        let mut buf = encoded_response(id, &resp);
        let i = at.index(buf.len());
        buf[i] ^= xor;
        let corrupted = buf.clone();
        if let Ok(Some((got_id, got))) = decode_response(&mut buf) {
            let mut again = encoded_response(got_id, &got);
            again.put_slice(&buf);
            prop_assert_eq!(again, corrupted);
        }
    }
}
