//! The wire formats. Mainly the internal protocol between masters and
//! auxiliaries (and between auxiliaries when keys move): length-prefixed
//! binary frames over persistent TCP connections, multiplexed by request id
//! so that one connection carries many requests in flight. Also the
//! requests of the Redis protocol that clients speak to the masters.
//!
//! # Layout
//!
//! - [`frame`]: the frame format, [`Request`] and [`Response`], and their
//!   encoder and decoder. Every request frame carries the epoch of the
//!   cluster map its sender routed by ([`UNFENCED`] for none), so that an
//!   auxiliary can refuse a stale sender ([`Response::StaleEpoch`]).
//!   Decoding is total: any byte string either decodes or yields a
//!   [`FrameError`], never a panic.
//! - [`client`]: [`Client`], one multiplexed connection per peer with
//!   reconnection, per-call timeouts and batched writes; `call` sends
//!   unfenced, `call_at` at an epoch.
//! - [`server`]: [`serve`], the accept loop that answers requests (with
//!   their epochs) through a synchronous [`Handler`], pipelining responses.
//! - [`resp`]: requests in the Redis protocol as clients send them
//!   (multibulk and inline), parsed within memory limits with Redis's own
//!   error messages; the masters' Redis-protocol listener reads with it.

pub mod client;
pub mod frame;
pub mod resp;
pub mod server;

pub use client::{
    Client, ClientConfig, DEFAULT_REQUEST_TIMEOUT, WireError, WriteCounts, use_lane_on_this_thread,
};
pub use frame::{
    DeleteStatus, FrameError, KeyedEntry, MAX_BATCH_ITEMS, MAX_FRAME_BYTES, Request, RequestFrame,
    Response, UNFENCED, WriteStatus, error_code,
};
pub use server::{ConnState, Handler, serve};
