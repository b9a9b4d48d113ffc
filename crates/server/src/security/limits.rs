//! Per-request limits, as middleware: the total size of the headers (431),
//! and the body, read whole under a deadline (408) and a size limit (413)
//! before any handler runs, so a slowly trickled or endless body cannot hold
//! a handler or a connection. Each answer is our JSON error and closes the
//! connection, since the rest of the request is left unread.
//!
//! The other limits live elsewhere: hyper's header-read timeout and the
//! connection cap in [`super::serve`]; key, value and batch sizes in the
//! master's routes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body as HttpBody;

use crate::http::ApiError;

/// The limits one HTTP server applies to each request.
#[derive(Clone, Debug)]
pub struct RequestLimits {
    /// Largest total size of the headers (names, values and separators).
    pub max_header_bytes: usize,
    /// Largest body.
    pub max_body_bytes: usize,
    /// Longest wait for the whole body.
    pub body_read_timeout: Duration,
}

/// The size the headers take on the wire: `name: value\r\n` each.
pub fn header_bytes(headers: &axum::http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// `err` as a response that also closes the connection.
pub fn closing(err: ApiError) -> Response {
    let mut resp = err.into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The 431 answer when the headers are over the limit, else `None`.
pub fn headers_error<B>(limits: &RequestLimits, req: &axum::http::Request<B>) -> Option<Response> {
    let size = header_bytes(req.headers());
    if size > limits.max_header_bytes {
        return Some(closing(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the headers take {size} bytes; the limit is {} bytes (MAX_HEADER_BYTES)",
                limits.max_header_bytes
            ),
        )));
    }
    None
}

/// Middleware: 431 when the headers are over the limit.
pub async fn check_headers(
    State(limits): State<Arc<RequestLimits>>,
    req: Request,
    next: Next,
) -> Response {
    match headers_error(&limits, &req) {
        Some(resp) => resp,
        None => next.run(req).await,
    }
}

/// Reads the whole body within the deadline and the size limit: the
/// request with its body in memory, or the answer (408, 413, 400) to give.
pub async fn read_whole_body(limits: &RequestLimits, req: Request) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    if axum::body::HttpBody::is_end_stream(&body) {
        // No body (a GET, a DELETE): nothing to read, so no deadline to arm.
        return Ok(Request::from_parts(parts, body));
    }
    let bytes = read_body_bytes(limits, body).await?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Reads a whole body within the deadline and the size limit, as
/// [`read_whole_body`] does: its bytes, or the answer (408, 413, 400) to give.
pub async fn read_body_bytes<B>(limits: &RequestLimits, body: B) -> Result<Bytes, Response>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = |what: String| {
        closing(ApiError::too_large(
            "body_too_large",
            format!(
                "{what}; the limit is {} bytes (MAX_BODY_BYTES)",
                limits.max_body_bytes
            ),
        ))
    };
    // The body is read up to the limit even when Content-Length already
    // says it is larger: a client that is still sending when the answer
    // comes and the connection closes would see a broken pipe, not the 413.
    let read = Limited::new(body, limits.max_body_bytes).collect();
    match tokio::time::timeout(limits.body_read_timeout, read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(too_large("the body is larger".to_string()))
        }
        Ok(Err(e)) => Err(closing(ApiError::bad_request(
            "bad_body",
            format!("the body could not be read: {e}"),
        ))),
        Err(_) => Err(closing(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the body did not arrive within {} ms (BODY_READ_TIMEOUT_MS)",
                limits.body_read_timeout.as_millis()
            ),
        ))),
    }
}

/// Middleware: reads the whole body within the deadline and the size limit,
/// then hands the request on with the body in memory.
pub async fn read_body(
    State(limits): State<Arc<RequestLimits>>,
    req: Request,
    next: Next,
) -> Response {
    match read_whole_body(&limits, req).await {
        Ok(req) => next.run(req).await,
        Err(resp) => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt;

    fn app(limits: RequestLimits) -> Router {
        let limits = Arc::new(limits);
        Router::new()
            .route("/echo", post(|body: bytes::Bytes| async move { body }))
            .layer(axum::middleware::from_fn_with_state(
                limits.clone(),
                read_body,
            ))
            .layer(axum::middleware::from_fn_with_state(limits, check_headers))
    }

    fn limits() -> RequestLimits {
        RequestLimits {
            max_header_bytes: 1024,
            max_body_bytes: 100,
            body_read_timeout: Duration::from_secs(5),
        }
    }

    async fn status_and_code(resp: Response) -> (u16, String) {
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        (
            status,
            v["error"]["code"].as_str().unwrap_or("").to_string(),
        )
    }

    #[tokio::test]
    async fn bodies_within_the_limit_pass_and_larger_ones_get_413() {
        let ok = app(limits())
            .oneshot(
                Request::post("/echo")
                    .body(Body::from(vec![b'x'; 100]))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let big = app(limits())
            .oneshot(
                Request::post("/echo")
                    .body(Body::from(vec![b'x'; 101]))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(big.headers()[header::CONNECTION], "close");
        assert_eq!(
            status_and_code(big).await,
            (413, "body_too_large".to_string())
        );
    }

    #[tokio::test]
    async fn large_headers_get_431() {
        let resp = app(limits())
            .oneshot(
                Request::post("/echo")
                    .header("x-big", "y".repeat(2000))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            status_and_code(resp).await,
            (431, "headers_too_large".to_string())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_gets_408() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
        tx.send(Ok(bytes::Bytes::from_static(b"{\"key\"")))
            .await
            .unwrap();
        let body = Body::from_stream(tokio_stream_from(rx));
        let resp = app(limits())
            .oneshot(Request::post("/echo").body(body).unwrap())
            .await
            .unwrap();
        assert_eq!(
            status_and_code(resp).await,
            (408, "request_timeout".to_string())
        );
        drop(tx);
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
