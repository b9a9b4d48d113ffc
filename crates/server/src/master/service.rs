//! The master's HTTP service. The three routes a cache client takes on
//! every request (`GET` and `DELETE /data/{key}`, `POST /data`) are
//! dispatched here, straight to their handlers; every other request goes
//! through the axum router of [`super::routes`].
//!
//! Both ways run the same checks in the same order through the same
//! functions (the request's metrics, 431, 401/403, then the body under its
//! deadline and limit: 408, 413), and the same handlers, so a request gets
//! the same answer either way. What the direct way skips is axum's work per
//! request: matching the route, the extensions it inserts, and the service
//! each layer clones and boxes, which came to a fifth of the master's
//! instructions per request (docs/performance.md).
//!
//! The routes taken here are the route table's entries for those handlers
//! ([`route_table`]): their methods and templates, what they need, and the
//! template each is counted under all come from there.
//!
//! A request is taken here only when the router would certainly send it to
//! one of those handlers; anything unusual (`HEAD`, an empty key, the
//! table's own routes under the key's prefix such as `/data/bulk`, a key
//! that does not decode to UTF-8) goes to the router, which answers it as
//! before.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as _, Incoming};

use super::Master;
use super::route_table::{self, Handler, ROUTES, Route};
use super::routes::{self, Edge};
use crate::security::{auth, limits};

/// The master's service: see the module documentation.
#[derive(Clone)]
pub struct MasterService {
    master: Arc<Master>,
    edge: Arc<Edge>,
    router: Router,
    /// The routes between masters (`/internal/*`: Raft's RPCs, Pub/Sub's
    /// delivery): they check the cluster secret and bound their bodies
    /// themselves, and are no part of the public API.
    internal: Router,
}

/// The path prefix of the routes between masters.
const INTERNAL_PREFIX: &str = "/internal/";

impl MasterService {
    pub(super) fn new(master: Arc<Master>, internal: Router) -> MasterService {
        let edge = routes::edge_of(&master);
        MasterService {
            router: routes::router(master.clone(), edge.clone()),
            master,
            edge,
            internal,
        }
    }
}

/// A request the direct way serves.
#[derive(Debug, PartialEq, Eq)]
enum Direct {
    Get(String),
    Delete(String),
    Set,
}

/// The routes the direct way serves, found in the route table once.
struct FastPath {
    set: &'static Route,
    get: KeyRoute,
    delete: KeyRoute,
}

/// A route whose template ends in a key that may hold `/` (`/data/{*key}`).
struct KeyRoute {
    route: &'static Route,
    /// The template before the key: `/data/`.
    prefix: &'static str,
    /// What follows `prefix` in the table's other templates (`""` of
    /// `/data/`, `bulk` of `/data/bulk`): the router's own routes, which
    /// it prefers to the key's.
    taken: Vec<&'static str>,
}

impl KeyRoute {
    fn of(route: &'static Route) -> KeyRoute {
        let template = route.template;
        let prefix = &template[..template.find("{*").expect("a key route ends in {*key}")];
        let taken = ROUTES
            .iter()
            .filter(|r| r.template != template)
            .filter_map(|r| r.template.strip_prefix(prefix))
            .inspect(|tail| {
                // The direct way could not tell such a route from a key.
                assert!(!tail.contains('{'), "{prefix}{tail} under a key route");
            })
            .collect();
        KeyRoute {
            route,
            prefix,
            taken,
        }
    }

    /// The key of `path` when the router would send it to this route.
    fn key_of(&self, path: &str) -> Option<String> {
        let raw = path.strip_prefix(self.prefix)?;
        if self.taken.contains(&raw) {
            return None;
        }
        // As the router's handlers decode it; a malformed escape or a key
        // that is not UTF-8 is left to the router for its 400.
        routes::decode_path_segment(raw).ok()
    }
}

static FAST_PATH: LazyLock<FastPath> = LazyLock::new(|| FastPath {
    set: route_table::only(Handler::SetValue),
    get: KeyRoute::of(route_table::only(Handler::GetValue)),
    delete: KeyRoute::of(route_table::only(Handler::DeleteValue)),
});

impl Direct {
    /// The table's entry for this request.
    fn route(&self) -> &'static Route {
        let fast = &*FAST_PATH;
        match self {
            Direct::Set => fast.set,
            Direct::Get(_) => fast.get.route,
            Direct::Delete(_) => fast.delete.route,
        }
    }
}

/// The direct route of a request, if it has one.
fn direct_route(method: &Method, path: &str) -> Option<Direct> {
    let fast = &*FAST_PATH;
    if *method == fast.set.method {
        (path == fast.set.template).then_some(Direct::Set)
    } else if *method == fast.get.route.method {
        fast.get.key_of(path).map(Direct::Get)
    } else if *method == fast.delete.route.method {
        fast.delete.key_of(path).map(Direct::Delete)
    } else {
        None
    }
}

impl tower::Service<Request<Incoming>> for MasterService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        match direct_route(req.method(), req.uri().path()) {
            Some(direct) => Box::pin(serve_direct(
                self.master.clone(),
                self.edge.clone(),
                direct,
                req,
            )),
            None if req.uri().path().starts_with(INTERNAL_PREFIX) => {
                Box::pin(tower::Service::call(&mut self.internal, req))
            }
            None => {
                let call = tower::Service::call(&mut self.router, req);
                Box::pin(call)
            }
        }
    }
}

/// The edge checks of [`routes`]' middleware, then the handler.
async fn serve_direct(
    master: Arc<Master>,
    edge: Arc<Edge>,
    direct: Direct,
    req: Request<Incoming>,
) -> Result<Response, Infallible> {
    let started = Instant::now();
    let route = direct.route();
    let resp = if let Some(resp) = limits::headers_error(&edge.limits, &req) {
        resp
    } else if let Some(resp) = auth::refusal(&edge.gate, route.need, req.headers()) {
        resp
    } else {
        let body = req.into_body();
        let body = if body.is_end_stream() {
            Ok(bytes::Bytes::new())
        } else {
            limits::read_body_bytes(&edge.limits, body).await
        };
        match body {
            Err(resp) => resp,
            Ok(body) => {
                let state = State(master);
                match direct {
                    Direct::Get(key) => routes::get_value_of(state, key).await,
                    Direct::Delete(key) => routes::delete_value_of(state, key).await,
                    Direct::Set => routes::set_value(state, Ok(body)).await,
                }
                .into_response()
            }
        }
    };
    edge.metrics.observe(
        route.template,
        route.method.as_str(),
        resp.status().as_u16(),
        started.elapsed(),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_routes_are_taken_directly_with_their_keys_decoded() {
        assert_eq!(
            direct_route(&Method::GET, "/data/user1"),
            Some(Direct::Get("user1".into()))
        );
        assert_eq!(
            direct_route(&Method::DELETE, "/data/a%2Fb%20c"),
            Some(Direct::Delete("a/b c".into()))
        );
        assert_eq!(
            direct_route(&Method::GET, "/data/a/b/"),
            Some(Direct::Get("a/b/".into()))
        );
        assert_eq!(
            direct_route(&Method::GET, "/data/%F0%9F%A6%80"),
            Some(Direct::Get("🦀".into()))
        );
        assert_eq!(direct_route(&Method::POST, "/data"), Some(Direct::Set));
    }

    #[test]
    fn everything_else_is_left_to_the_router() {
        for (method, path) in [
            (Method::HEAD, "/data/k"),
            (Method::PUT, "/data/k"),
            (Method::POST, "/data/k"),
            (Method::POST, "/data/"),
            (Method::GET, "/data"),
            (Method::GET, "/data/"),
            (Method::GET, "/data/bulk"),
            (Method::DELETE, "/data/bulk/get"),
            (Method::POST, "/data/bulk"),
            (Method::GET, "/data/%FF"),
            (Method::GET, "/database"),
            (Method::GET, "/health"),
        ] {
            assert_eq!(direct_route(&method, path), None, "{method} {path}");
        }
    }
}

/// The direct path against axum itself: for every path it takes, a router
/// built from the route table as [`routes::router`] is, each route
/// answering with the template it matched and the key it extracted, picks
/// the direct route's template with the same decoded key.
#[cfg(test)]
mod router_agreement {
    use super::*;
    use axum::body::Body;
    use axum::extract::MatchedPath;
    use axum::response::IntoResponse;
    use axum::routing::on;
    use tower::ServiceExt;

    /// The routes of [`routes::router`], answering `template|key`.
    fn shadow() -> Router {
        let echo = |m: MatchedPath, k: Result<routes::StrictPath, crate::http::ApiError>| async move {
            match k {
                Ok(routes::StrictPath(k)) => format!("{}|{}", m.as_str(), k),
                Err(e) => format!("{}|ERR {}", m.as_str(), e.into_response().status()),
            }
        };
        routes::router_of(|route| on(routes::filter_of(route), echo))
            .fallback(|| async { "FALLBACK" })
    }

    #[tokio::test]
    async fn the_direct_path_takes_only_what_the_router_sends_to_the_key_route() {
        let paths = [
            "/data/k",
            "/data/bulk",
            "/data/bulk/get",
            "/data/bulk/",
            "/data/bulk/get/",
            "/data/bulk/x",
            "/data/bulkx",
            "/data/b",
            "/data/bulk/get/x",
            "/data/bulk/ge",
            "/data//",
            "/data//bulk",
            "/data/%2F",
            "/data/a%",
            "/data/%62ulk",
            "/data/bulk%2Fget",
            "/data/a+b",
            "/data/a//b",
            "/data/a/",
            "/data/%",
            "/data/%zz",
            "/data/%00",
            "/data/%C3",
            "/data/a%20b",
            "/data/.",
            "/data/..",
            "/data/./x",
            "/data/{x}",
            "/data/:x",
            "/data/*",
            "/data/bulk/get/bulk",
            "/data/bu",
            "/data/bulk//",
            "/data/bulk/get//",
            "/data/Bulk",
            "/data/bulk%2F",
            "/data/%2Fbulk",
            "/data/bulk/get%2F",
        ];
        let mut bad = Vec::new();
        for method in [Method::GET, Method::DELETE] {
            for p in paths {
                let Some(d) = direct_route(&method, p) else {
                    continue;
                };
                let template = d.route().template;
                let key = match d {
                    Direct::Get(k) | Direct::Delete(k) => k,
                    Direct::Set => unreachable!(),
                };
                let req = axum::http::Request::builder()
                    .method(method.clone())
                    .uri(p)
                    .body(Body::empty())
                    .unwrap();
                let resp = shadow().oneshot(req).await.unwrap();
                let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .unwrap();
                let got = String::from_utf8_lossy(&body).to_string();
                let want = format!("{template}|{key}");
                if got != want {
                    bad.push(format!("{method} {p}: direct {want:?} router {got:?}"));
                }
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}
