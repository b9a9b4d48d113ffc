//! The public REST API (DESIGN: public REST API). The router is built from
//! the route table ([`super::route_table`]); handlers parse and check
//! input, call the data path or membership, and shape the JSON answer.
//! Bodies are parsed here rather than by axum's `Json` extractor so that
//! every malformed body gets our JSON error with a 400, whatever its
//! content type says.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use bytes::Bytes;
use distcache_core::value::Value;
use distcache_core::value::stored::{self, StoredKind};
use distcache_core::{Entry, validate_key};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::Master;
use super::data::WriteItem;
use super::membership::{self, NodeState, Registration};
use super::route_table::{self, Handler, ROUTES, Route};
use crate::http::{self, ApiError, json_bytes};
use crate::metrics;
use crate::security::auth;
use crate::security::limits::{self, RequestLimits};

/// The one parameter of a route's path (`{*key}`, `{id}`), percent-decoded
/// strictly by [`decode_path_segment`]. axum's `Path` keeps a malformed
/// escape such as `%ZZ` as its three characters, which would store or look
/// up a key the client never meant; here it is a 400 `bad_path`.
pub(super) struct StrictPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for StrictPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::bad_request("bad_path", r.body_text()))?;
        let raw = params
            .iter()
            .next()
            .map(|(_, raw)| raw)
            .ok_or_else(|| ApiError::bad_request("bad_path", "the path has no parameter"))?;
        decode_path_segment(raw).map(StrictPath)
    }
}

/// Decodes a percent-encoded path segment: every `%` must start an escape
/// of two hex digits, and the bytes must be UTF-8; otherwise a 400
/// `bad_path` that shows the segment.
pub(super) fn decode_path_segment(raw: &str) -> Result<String, ApiError> {
    let bytes = raw.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err(ApiError::bad_request(
            "bad_path",
            format!(
                "bad percent-encoding in {raw:?}: a % must start %XX with two hex digits (a % itself is %25)"
            ),
        ));
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| {
            ApiError::bad_request("bad_path", format!("{raw:?} does not decode to UTF-8 text"))
        })
}

/// Longest TTL accepted: about 136 years, far past any cache's horizon.
pub const MAX_TTL_SECS: i64 = u32::MAX as i64;

/// What every request's checks need ([`edge_checks`]), built once per master.
pub(super) fn edge_of(master: &Master) -> Arc<Edge> {
    Arc::new(Edge {
        metrics: master.metrics.http.clone(),
        limits: Arc::new(RequestLimits {
            max_header_bytes: master.config.security.limits.max_header_bytes,
            max_body_bytes: master.config.max_body_bytes,
            body_read_timeout: master.config.security.limits.body_read_timeout(),
        }),
        gate: master.gate.clone(),
    })
}

/// The master's router: a route for every entry of [`ROUTES`].
/// [`super::service::MasterService`] sends the hot data routes past it,
/// through the same checks and handlers.
pub(super) fn router(master: Arc<Master>, edge: Arc<Edge>) -> Router {
    let body_limit = master.config.max_body_bytes;
    router_of(handler_of)
        .fallback(http::route_not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        // One middleware for the four checks every request passes: each
        // `from_fn` layer clones and boxes the inner service per request,
        // which cost a quarter of the master's instructions with four
        // (docs/performance.md).
        .layer(axum::middleware::from_fn_with_state(edge, edge_checks))
        .with_state(master)
}

/// A router with a route for every entry of [`ROUTES`], on its method and
/// template, answered as `answer` says. A template's entries merge into one
/// method router (axum's `route` merges what it is given for the same path).
pub(super) fn router_of<S: Clone + Send + Sync + 'static>(
    answer: impl Fn(&'static Route) -> MethodRouter<S>,
) -> Router<S> {
    ROUTES.iter().fold(Router::new(), |router, route| {
        router.route(route.template, answer(route))
    })
}

/// The method filter of an entry, for axum's `on`.
pub(super) fn filter_of(route: &Route) -> MethodFilter {
    MethodFilter::try_from(route.method.clone())
        .unwrap_or_else(|_| panic!("axum routes no {} requests", route.method))
}

/// The handler of an entry, on its method.
fn handler_of(route: &'static Route) -> MethodRouter<Arc<Master>> {
    let method = filter_of(route);
    match route.handler {
        Handler::SetValue => on(method, set_value),
        Handler::GetValue => on(method, get_value),
        Handler::DeleteValue => on(method, delete_value),
        Handler::GetNamedKey => on(method, move |s: State<Arc<Master>>| {
            get_value_of(s, route.named_key().into())
        }),
        Handler::DeleteNamedKey => on(method, move |s: State<Arc<Master>>| {
            delete_value_of(s, route.named_key().into())
        }),
        Handler::EmptyKey => on(method, empty_key),
        Handler::BulkSet => on(method, bulk_set),
        Handler::BulkGet => on(method, bulk_get),
        Handler::Health => on(method, health),
        Handler::ListNodes => on(method, list_nodes),
        Handler::RegisterNode => on(method, register_node),
        Handler::GetNode => on(method, get_node),
        Handler::RemoveNode => on(method, remove_node),
        Handler::Ring => on(method, ring),
        Handler::Metrics => on(method, metrics_text),
        Handler::Stats => on(method, super::stats::stats),
        Handler::Backup => on(method, backup_now),
        Handler::Restore => on(method, restore),
        Handler::RestoreProgress => on(method, restore_progress),
        Handler::Rebalance => on(method, rebalance_now),
        Handler::OpenApi => on(method, openapi),
        Handler::Command => on(method, super::command_api::command),
        Handler::Pipeline => on(method, super::command_api::pipeline),
        Handler::MultiExec => on(method, super::command_api::multi_exec),
    }
}

/// What [`edge_checks`] needs.
pub(super) struct Edge {
    pub(super) metrics: crate::metrics::HttpMetrics,
    pub(super) limits: Arc<RequestLimits>,
    pub(super) gate: Arc<auth::Gate>,
}

/// Middleware, in this order: counts and times the request
/// ([`http::track_requests`]); 431 when the headers are over the limit;
/// 401 or 403 for who may call; then reads the body under a deadline
/// (408, 413).
async fn edge_checks(
    State(edge): State<Arc<Edge>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let method = req.method().clone();
    let need = route_table::need_of(&method, route.as_ref().map(|p| p.as_str()));
    let resp = if let Some(resp) = limits::headers_error(&edge.limits, &req) {
        resp
    } else if let Some(resp) = auth::refusal(&edge.gate, need, req.headers()) {
        resp
    } else {
        match limits::read_whole_body(&edge.limits, req).await {
            Ok(req) => next.run(req).await,
            Err(resp) => resp,
        }
    };
    edge.metrics.observe(
        route.as_ref().map_or("unmatched", |p| p.as_str()),
        method.as_str(),
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

/// The OpenAPI 3 document of this API (`docs/openapi.yaml`).
pub const OPENAPI_YAML: &str = include_str!("../../../../docs/openapi.yaml");

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        OPENAPI_YAML,
    )
        .into_response()
}

async fn empty_key() -> ApiError {
    ApiError::bad_request("bad_key", "key must not be empty")
}

fn check_key(key: &str) -> Result<(), ApiError> {
    validate_key(key).map_err(|e| ApiError::bad_request("bad_key", e.to_string()))
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("bad_json", format!("malformed request body: {e}")))
}

/// `POST /data` body, and one item of `POST /data/bulk`.
struct SetBody<'a> {
    key: String,
    value: &'a RawValue,
    ttl: Option<i64>,
}

/// The fields of a JSON object, values left unparsed. Parsing into a map
/// first (rather than deriving `Deserialize` for [`SetBody`]) refuses what a
/// derived struct would accept by position, such as `["k", 1]`.
type Fields<'a> = BTreeMap<Cow<'a, str>, &'a RawValue>;

impl<'a> SetBody<'a> {
    fn from_fields(fields: Fields<'a>) -> Result<Self, ApiError> {
        let bad = |m: String| ApiError::bad_request("bad_json", m);
        let mut key = None;
        let mut value = None;
        let mut ttl = None;
        for (name, raw) in fields {
            match name.as_ref() {
                "key" => {
                    key = Some(
                        serde_json::from_str::<String>(raw.get())
                            .map_err(|_| bad(format!("key must be a string, not {}", raw.get())))?,
                    )
                }
                "value" => value = Some(raw),
                "ttl" => {
                    ttl = serde_json::from_str::<Option<i64>>(raw.get()).map_err(|_| {
                        ApiError::bad_request(
                            "bad_ttl",
                            format!("ttl must be whole seconds or null, not {}", raw.get()),
                        )
                    })?
                }
                other => {
                    return Err(bad(format!(
                        "unknown field {other:?}; the fields are key, value and ttl"
                    )));
                }
            }
        }
        Ok(SetBody {
            key: key.ok_or_else(|| bad("missing field \"key\"".into()))?,
            value: value.ok_or_else(|| bad("missing field \"value\"".into()))?,
            ttl,
        })
    }
}

impl Master {
    fn check_item(&self, body: SetBody<'_>) -> Result<WriteItem, ApiError> {
        check_key(&body.key)?;
        let value = body.value.get();
        if value.len() > self.config.max_value_bytes {
            return Err(ApiError::too_large(
                "value_too_large",
                format!(
                    "value is {} bytes; the limit is {} bytes (MAX_VALUE_BYTES)",
                    value.len(),
                    self.config.max_value_bytes
                ),
            ));
        }
        let ttl_secs = match body.ttl {
            None | Some(0) => None,
            Some(t) if (1..=MAX_TTL_SECS).contains(&t) => Some(t as u64),
            Some(t) => {
                return Err(ApiError::bad_request(
                    "bad_ttl",
                    format!("ttl must be whole seconds from 0 to {MAX_TTL_SECS}; got {t}"),
                ));
            }
        };
        Ok(WriteItem {
            key: body.key,
            value: Bytes::copy_from_slice(value.as_bytes()),
            ttl_secs,
        })
    }
}

pub(super) async fn set_value(
    State(master): State<Arc<Master>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let item = master.check_item(SetBody::from_fields(parse(&body)?)?)?;
    let key_json = serde_json::to_string(&item.key).unwrap_or_default();
    let ttl = item.ttl_secs;
    master.write(item.key, item.value, ttl).await?;
    let ttl = ttl.map(|t| t.to_string()).unwrap_or_else(|| "null".into());
    Ok(json_bytes(
        StatusCode::OK,
        format!("{{\"stored\":true,\"key\":{key_json},\"ttl\":{ttl}}}"),
    ))
}

/// The JSON `/data` answers for a stored value: JSON stored through
/// `/data` byte for byte as it was stored; a string written by a command
/// as a JSON string (bytes that are not UTF-8 become U+FFFD, as
/// docs/commands.md says); `None` for a hash, list, set or sorted set,
/// which have no JSON form.
pub(super) fn data_json(stored_value: &[u8]) -> Option<Cow<'_, [u8]>> {
    match stored::kind(stored_value) {
        StoredKind::Json => Some(Cow::Borrowed(stored_value)),
        StoredKind::Plain | StoredKind::Encoded => match stored::from_stored(stored_value) {
            Ok(Value::Str(s)) if s.json => Some(Cow::Owned(s.bytes)),
            Ok(Value::Str(s)) => {
                let text = String::from_utf8_lossy(&s.bytes);
                Some(Cow::Owned(serde_json::to_vec(&text).unwrap_or_default()))
            }
            _ => None,
        },
    }
}

/// `/data`'s answer for a key that holds a collection (`stored_value`).
fn wrong_type(key: &str, stored_value: &[u8]) -> ApiError {
    let held = stored::value_type(stored_value).map_or("collection", |t| t.name());
    ApiError::new(
        StatusCode::CONFLICT,
        "wrongtype",
        format!(
            "WRONGTYPE Operation against a key holding the wrong kind of value: {key:?} holds a \
             {held}, which has no JSON form; use commands (POST /) for it"
        ),
    )
}

/// `{"key":..,"value":..,"ttl":..}` written straight from the stored JSON
/// text, so the value comes back byte for byte as it was stored.
fn value_response(key: &str, entry: &Entry, now_ms: u64) -> Result<Response, ApiError> {
    let value = data_json(&entry.value).ok_or_else(|| wrong_type(key, &entry.value))?;
    let mut out = Vec::with_capacity(value.len() + key.len() + 40);
    out.extend_from_slice(b"{\"key\":");
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, key);
    out.extend_from_slice(b",\"value\":");
    out.extend_from_slice(&value);
    out.extend_from_slice(b",\"ttl\":");
    match entry.expires_at_ms {
        Some(at) => {
            let left_ms = at.saturating_sub(now_ms);
            let _ = write!(out, "{}", left_ms.div_ceil(1000).max(1));
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    Ok(json_bytes(StatusCode::OK, out))
}

async fn get_value(
    state: State<Arc<Master>>,
    StrictPath(key): StrictPath,
) -> Result<Response, ApiError> {
    get_value_of(state, key).await
}

pub(super) async fn get_value_of(
    State(master): State<Arc<Master>>,
    key: String,
) -> Result<Response, ApiError> {
    check_key(&key)?;
    match master.read(key.clone()).await? {
        Some(entry) => value_response(&key, &entry, (master.clock)()),
        None => Err(ApiError::not_found(
            "key_not_found",
            format!("no value for key {key:?}"),
        )),
    }
}

async fn delete_value(
    state: State<Arc<Master>>,
    StrictPath(key): StrictPath,
) -> Result<Response, ApiError> {
    delete_value_of(state, key).await
}

pub(super) async fn delete_value_of(
    State(master): State<Arc<Master>>,
    key: String,
) -> Result<Response, ApiError> {
    check_key(&key)?;
    if master.remove(key.clone()).await? {
        Ok(Json(json!({"deleted": true, "key": key})).into_response())
    } else {
        Err(ApiError::not_found(
            "key_not_found",
            format!("no value for key {key:?}"),
        ))
    }
}

async fn bulk_set(
    State(master): State<Arc<Master>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let items: Vec<Fields<'_>> = parse(&body)?;
    if items.len() > master.config.max_batch {
        return Err(ApiError::too_large(
            "batch_too_large",
            format!(
                "{} entries; the limit is {} (MAX_BATCH)",
                items.len(),
                master.config.max_batch
            ),
        ));
    }
    let mut failed = Vec::new();
    let mut valid = Vec::with_capacity(items.len());
    for fields in items {
        // A malformed item makes the whole body malformed; a well-formed
        // item with a bad key or value is reported on its own.
        let body = SetBody::from_fields(fields)?;
        let key = body.key.clone();
        match master.check_item(body) {
            Ok(item) => valid.push(item),
            Err(e) => {
                failed.push(json!({"key": key, "error": {"code": e.code, "message": e.message}}))
            }
        }
    }
    let keys: Vec<String> = valid.iter().map(|i| i.key.clone()).collect();
    let results = if valid.is_empty() {
        Vec::new()
    } else {
        master.write_many(valid).await?
    };
    let mut stored = 0;
    for (key, result) in keys.into_iter().zip(results) {
        match result {
            Ok(()) => stored += 1,
            Err(e) => {
                failed.push(json!({"key": key, "error": {"code": e.code, "message": e.message}}))
            }
        }
    }
    Ok(Json(json!({"stored": stored, "failed": failed})).into_response())
}

async fn bulk_get(
    State(master): State<Arc<Master>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let mut keys: Vec<String> = parse(&body)?;
    if keys.len() > master.config.max_batch {
        return Err(ApiError::too_large(
            "batch_too_large",
            format!(
                "{} keys; the limit is {} (MAX_BATCH)",
                keys.len(),
                master.config.max_batch
            ),
        ));
    }
    for key in &keys {
        check_key(key)?;
    }
    // A key asked twice is answered once: a JSON object names each key
    // once.
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    keys.retain(|key| seen.insert(key.clone()));
    if keys.is_empty() {
        return Ok(json_bytes(StatusCode::OK, "{}"));
    }
    let (found, unanswered) = master.read_many(keys.clone()).await?;
    let mut out = Vec::with_capacity(64 * found.len());
    out.push(b'{');
    let mut first = true;
    for (key, entry) in keys.iter().zip(&found) {
        // A collection has no JSON form: left out, as a missing key is.
        let Some(value) = entry.as_ref().and_then(|e| data_json(&e.value)) else {
            continue;
        };
        if !first {
            out.push(b',');
        }
        first = false;
        let _ = serde_json::to_writer(&mut out, key);
        out.push(b':');
        out.extend_from_slice(&value);
    }
    out.push(b'}');
    let mut resp = json_bytes(StatusCode::OK, out);
    if unanswered > 0 {
        resp.headers_mut()
            .insert("x-distcache-unanswered", HeaderValue::from(unanswered));
    }
    Ok(resp)
}

async fn backup_now(State(master): State<Arc<Master>>) -> Result<Response, ApiError> {
    Ok(Json(master.backup("requested").await?).into_response())
}

async fn restore(
    State(master): State<Arc<Master>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let req: super::backup::RestoreRequest = if body.iter().all(u8::is_ascii_whitespace) {
        Default::default()
    } else {
        parse(&body)?
    };
    Ok(Json(master.restore(req.backup).await?).into_response())
}

async fn restore_progress(State(master): State<Arc<Master>>) -> Response {
    Json(master.restore_progress()).into_response()
}

async fn rebalance_now(
    State(master): State<Arc<Master>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let authorization = headers.get(axum::http::header::AUTHORIZATION);
    let report = super::rebalance::rebalance_now(&master, authorization).await?;
    Ok(Json(report).into_response())
}

async fn health(State(master): State<Arc<Master>>) -> Response {
    let view = master.view.load();
    let nodes = master.nodes();
    let up = nodes.iter().filter(|n| n.state == NodeState::Up).count();
    let lease = master.lease.holds();
    let serving = !view.target.ring.is_empty() && lease;
    let consensus = master.consensus.metrics();
    let body = json!({
        "status": if serving { "ok" } else { "unavailable" },
        "role": "master",
        "node_id": master.id,
        "ring_epoch": view.epoch,
        "auxiliaries_up": up,
        "auxiliaries_total": nodes.len(),
        "replicas": view.replicas(view.target.ring.members().len()),
        "map": {
            "leader": consensus.leader_addr,
            "is_leader": master.consensus.is_leader(),
            "term": consensus.term,
            "applied_index": consensus.last_applied,
            "lease": lease,
        },
    });
    let status = if serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn list_nodes(State(master): State<Arc<Master>>) -> Response {
    Json(json!({"nodes": master.nodes()})).into_response()
}

async fn get_node(
    State(master): State<Arc<Master>>,
    StrictPath(id): StrictPath,
) -> Result<Response, ApiError> {
    match master.node(&id) {
        Some(node) => Ok(Json(node).into_response()),
        None => Err(ApiError::not_found(
            "node_not_found",
            format!("no auxiliary with id {id:?}"),
        )),
    }
}

async fn register_node(
    State(master): State<Arc<Master>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let reg: Registration = parse(&body)?;
    let (status, registered) = membership::register(&master, reg).await?;
    Ok((status, Json(registered)).into_response())
}

async fn remove_node(
    State(master): State<Arc<Master>>,
    StrictPath(id): StrictPath,
) -> Result<Response, ApiError> {
    match membership::decommission(&master, &id).await? {
        (true, node) => Ok(Json(json!({"removed": node})).into_response()),
        (false, node) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"leaving": node, "message": "its keys are still moving; it is removed when they have"})),
        )
            .into_response()),
    }
}

async fn ring(State(master): State<Arc<Master>>) -> Response {
    let view = master.view.load();
    let shares = view.target.ring.shares();
    let members: Vec<_> = view
        .target
        .ring
        .members()
        .iter()
        .zip(shares)
        .map(|(id, share)| json!({"id": id, "share": share}))
        .collect();
    Json(json!({
        "epoch": view.epoch,
        "virtual_nodes": view.config.virtual_nodes,
        "replicas": view.replicas(view.target.ring.members().len()),
        "members": members,
        "rebalancing": view.rebalancing(),
        "committed": master.committed(),
    }))
    .into_response()
}

async fn metrics_text(State(master): State<Arc<Master>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        metrics::render(&master.registry),
    )
        .into_response()
}

#[cfg(test)]
#[path = "body_props.rs"]
mod body_props;

#[cfg(test)]
mod path_tests {
    use super::decode_path_segment;

    #[test]
    fn well_formed_escapes_decode() {
        assert_eq!(decode_path_segment("a%2Fb").unwrap(), "a/b");
        assert_eq!(decode_path_segment("50%25").unwrap(), "50%");
        assert_eq!(decode_path_segment("%C3%A9t%c3%a9").unwrap(), "été");
        assert_eq!(decode_path_segment("plain+key").unwrap(), "plain+key");
    }

    #[test]
    fn a_malformed_escape_or_non_utf8_is_a_bad_path() {
        for raw in ["%ZZ", "a%", "%", "a%2", "%2G", "%zz", "%C3", "%FF"] {
            let e = decode_path_segment(raw).expect_err(raw);
            assert_eq!(e.code, "bad_path", "{raw}");
        }
    }
}
