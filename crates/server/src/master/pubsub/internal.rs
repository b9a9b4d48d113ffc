//! `POST /internal/pubsub/publish` and `/internal/pubsub/spublish`: where
//! a master delivers to this master's subscribers what was published on
//! it, with PUBLISH and with SPUBLISH. The body is a batch of messages in
//! the order they were published; the answer, for each, the subscribers
//! here that received it. Shard messages have a route of their own so
//! that a master from before sharded Pub/Sub answers 404 to them instead
//! of delivering them to the ordinary subscribers of their name. Channels and payloads are binary,
//! so they travel as base64. Like the Raft routes, the route needs the
//! cluster secret when one is set, and is no part of the public API.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes as Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::PubSub;
use super::registry::Space;
use crate::http::ApiError;
use crate::security::secret::Credentials;

/// The route of PUBLISH's messages.
pub const PUBLISH_PATH: &str = "/internal/pubsub/publish";
/// The route of SPUBLISH's messages.
pub const SPUBLISH_PATH: &str = "/internal/pubsub/spublish";

/// Most messages in one call: what a forwarder batches at most.
pub const MAX_BATCH: usize = 256;

/// A forwarder adds no more messages to a call once its channels and
/// payloads come to this many bytes (one message may be larger alone).
pub const BATCH_BYTES: usize = 1024 * 1024;

/// Messages published on another master, oldest first.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PublishBatch {
    /// The messages.
    pub messages: Vec<WireMessage>,
}

/// One message, its bytes in base64.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireMessage {
    /// The channel.
    pub channel: String,
    /// The payload.
    pub payload: String,
}

impl WireMessage {
    /// `channel` and `payload`, encoded.
    pub fn new(channel: &[u8], payload: &[u8]) -> WireMessage {
        WireMessage {
            channel: STANDARD.encode(channel),
            payload: STANDARD.encode(payload),
        }
    }

    fn decode(&self) -> Option<(Bytes, Bytes)> {
        let channel = STANDARD.decode(&self.channel).ok()?;
        let payload = STANDARD.decode(&self.payload).ok()?;
        Some((channel.into(), payload.into()))
    }
}

/// The route a message of `space` is delivered on.
pub fn path_of(space: Space) -> &'static str {
    match space {
        Space::Global => PUBLISH_PATH,
        Space::Shard => SPUBLISH_PATH,
    }
}

/// For each message of a [`PublishBatch`], in order, the subscribers of
/// the answering master that received it.
#[derive(Debug, Serialize, Deserialize)]
pub struct PublishAnswer {
    /// Receivers per message.
    pub receivers: Vec<u64>,
}

/// The route, to merge with the masters' other internal routes; it needs
/// the cluster secret when one is set, as every internal route does. A
/// message is at most `max_message_bytes` (channel and payload each come
/// in one RESP bulk or HTTP body).
pub fn router(
    pubsub: Arc<PubSub>,
    credentials: Arc<Credentials>,
    max_message_bytes: usize,
) -> Router {
    // Base64 takes 4 bytes for 3; a batch may end with a message of the
    // largest size; and the JSON around it.
    let max_body = (BATCH_BYTES + 2 * max_message_bytes) / 3 * 4 + 64 * MAX_BATCH + 4096;
    Router::new()
        .route(PUBLISH_PATH, post(publish))
        .route(SPUBLISH_PATH, post(spublish))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(pubsub)
        .layer(axum::middleware::from_fn_with_state(
            credentials.secret.clone(),
            crate::security::secret::require_for_internal,
        ))
}

/// Why the route refused a delivery.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The body could not be read.
    #[error("the body could not be read")]
    Unreadable,
    /// The body is larger than any batch a forwarder sends.
    #[error("the body is larger than any batch of messages a master sends")]
    TooLarge,
    /// The body is not a batch of messages.
    #[error("the body is not a batch of messages: {0}")]
    NotABatch(serde_json::Error),
    /// More messages than a forwarder sends at once.
    #[error("{0} messages in one batch; at most {MAX_BATCH}")]
    TooMany(usize),
    /// A channel or payload that is not base64.
    #[error("message {0}: the channel or payload is not base64")]
    NotBase64(usize),
}

impl From<DeliveryError> for ApiError {
    fn from(e: DeliveryError) -> Self {
        match e {
            DeliveryError::TooLarge => ApiError::too_large("body_too_large", e.to_string()),
            _ => ApiError::bad_request("bad_pubsub_delivery", e.to_string()),
        }
    }
}

async fn publish(
    State(pubsub): State<Arc<PubSub>>,
    body: Result<Body, BytesRejection>,
) -> Response {
    delivered(&pubsub, Space::Global, body)
}

async fn spublish(
    State(pubsub): State<Arc<PubSub>>,
    body: Result<Body, BytesRejection>,
) -> Response {
    delivered(&pubsub, Space::Shard, body)
}

fn delivered(pubsub: &PubSub, space: Space, body: Result<Body, BytesRejection>) -> Response {
    match deliver(pubsub, space, body) {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Decodes the batch and delivers it here, in order, in `space` (the
/// secret was checked before: [`router`]).
fn deliver(
    pubsub: &PubSub,
    space: Space,
    body: Result<Body, BytesRejection>,
) -> Result<PublishAnswer, DeliveryError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            DeliveryError::TooLarge
        } else {
            DeliveryError::Unreadable
        }
    })?;
    let batch: PublishBatch = serde_json::from_slice(&body).map_err(DeliveryError::NotABatch)?;
    if batch.messages.len() > MAX_BATCH {
        return Err(DeliveryError::TooMany(batch.messages.len()));
    }
    let messages = batch
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| m.decode().ok_or(DeliveryError::NotBase64(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let receivers = messages
        .iter()
        .map(|(channel, payload)| pubsub.deliver_here(space, channel, payload))
        .collect();
    Ok(PublishAnswer { receivers })
}
