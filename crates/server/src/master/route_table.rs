//! Every public route of the master, declared once in [`ROUTES`].
//!
//! The rest derives from this table: the axum router
//! ([`super::routes`] adds one method route per entry), who may call a
//! route ([`need_of`]), the routes the fast path of [`super::service`]
//! takes past the router, and the `route` label of the request metrics
//! (the router labels a request with the template it matched, the fast
//! path with its entry's template). `tests/proc_openapi.rs` checks the table
//! against `docs/openapi.yaml` and against what a running master answers.

use axum::http::Method;

use crate::security::auth::{Need, Role};

/// One public route: a method on a route template.
#[derive(Debug)]
pub struct Route {
    /// The method. `GET` also answers `HEAD`, as axum's `get` does.
    pub method: Method,
    /// The path template as axum matches it (`/data/{*key}`); also the
    /// `route` label of the request metrics.
    pub template: &'static str,
    /// Who may call it.
    pub need: Need,
    /// What answers it.
    pub handler: Handler,
}

/// What answers a route. The first three are what a cache client calls on
/// every request: the fast path serves them without the router (which
/// still answers what the fast path leaves to it, such as `HEAD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    /// Store the body's key and value (fast path).
    SetValue,
    /// The value of the key captured by the template (fast path).
    GetValue,
    /// Delete the key captured by the template (fast path).
    DeleteValue,
    /// The value of the key the template spells: a route of its own that
    /// is also a key (`GET /data/bulk` reads the key `bulk`).
    GetNamedKey,
    /// Delete the key the template spells, as [`Handler::GetNamedKey`].
    DeleteNamedKey,
    /// 400: the key is empty.
    EmptyKey,
    /// Store many keys.
    BulkSet,
    /// Read many keys.
    BulkGet,
    /// The master's health and its view of the map.
    Health,
    /// Every auxiliary.
    ListNodes,
    /// Register an auxiliary.
    RegisterNode,
    /// One auxiliary.
    GetNode,
    /// Decommission an auxiliary.
    RemoveNode,
    /// The ring and its shares.
    Ring,
    /// Prometheus text.
    Metrics,
    /// The cluster's stats.
    Stats,
    /// Write a backup now.
    Backup,
    /// Restore a backup.
    Restore,
    /// How a restore is going.
    RestoreProgress,
    /// Run a rebalance round now.
    Rebalance,
    /// `docs/openapi.yaml`.
    OpenApi,
    /// One command as a JSON array (Upstash's `POST /`).
    Command,
    /// Commands one after another, each on its own.
    Pipeline,
    /// Commands as one transaction (MULTI ... EXEC).
    MultiExec,
}

const fn route(method: Method, template: &'static str, need: Need, handler: Handler) -> Route {
    Route {
        method,
        template,
        need,
        handler,
    }
}

const READ: Need = Need::Role(Role::Read);
const WRITE: Need = Need::Role(Role::Write);
const ADMIN: Need = Need::Role(Role::Admin);

/// The public routes. A route missing here needs an admin token
/// ([`need_of`]): new routes are closed until someone decides otherwise.
///
/// The methods of a template are listed in the order its `Allow` header
/// names them on a 405 (axum joins them as they are added).
pub const ROUTES: &[Route] = {
    use Handler::*;
    use Method as M;
    &[
        route(M::POST, "/data", WRITE, SetValue),
        // `bulk` and `bulk/get` are also ordinary keys for GET and DELETE.
        route(M::POST, "/data/bulk", WRITE, BulkSet),
        route(M::GET, "/data/bulk", READ, GetNamedKey),
        route(M::DELETE, "/data/bulk", WRITE, DeleteNamedKey),
        route(M::POST, "/data/bulk/get", READ, BulkGet),
        route(M::GET, "/data/bulk/get", READ, GetNamedKey),
        route(M::DELETE, "/data/bulk/get", WRITE, DeleteNamedKey),
        route(M::GET, "/data/{*key}", READ, GetValue),
        route(M::DELETE, "/data/{*key}", WRITE, DeleteValue),
        route(M::GET, "/data/", READ, EmptyKey),
        route(M::DELETE, "/data/", WRITE, EmptyKey),
        route(M::GET, "/health", Need::Open, Health),
        route(M::GET, "/nodes", READ, ListNodes),
        route(M::POST, "/nodes", Need::Membership, RegisterNode),
        route(M::GET, "/nodes/{id}", READ, GetNode),
        route(M::DELETE, "/nodes/{id}", Need::Membership, RemoveNode),
        route(M::GET, "/ring", READ, Ring),
        route(M::GET, "/metrics", Need::Metrics, Metrics),
        // The same per-node facts as `GET /nodes`, plus counters `/metrics`
        // already shows; it changes nothing (see docs/openapi.yaml).
        route(M::GET, "/stats", READ, Stats),
        route(M::POST, "/backup", ADMIN, Backup),
        route(M::POST, "/restore", ADMIN, Restore),
        route(M::GET, "/restore", ADMIN, RestoreProgress),
        route(M::POST, "/rebalance", ADMIN, Rebalance),
        route(M::GET, "/openapi.yaml", Need::Open, OpenApi),
        // Commands over HTTP: each command needs its own role (the
        // command table's), which the handler checks.
        route(M::POST, "/", Need::Command, Command),
        route(M::POST, "/pipeline", Need::Command, Pipeline),
        route(M::POST, "/multi-exec", Need::Command, MultiExec),
    ]
};

impl Route {
    /// The key a [`Handler::GetNamedKey`] or [`Handler::DeleteNamedKey`]
    /// route stands for: its template after `/data/`.
    pub fn named_key(&self) -> &'static str {
        self.template
            .strip_prefix("/data/")
            .unwrap_or_else(|| panic!("{} names no key", self.template))
    }
}

/// The entry for `method` on the template `route` (the router's matched
/// path; `None` when nothing matched). `HEAD` is looked up as `GET`.
pub fn find(method: &Method, route: Option<&str>) -> Option<&'static Route> {
    let route = route?;
    let head = method == Method::HEAD;
    ROUTES
        .iter()
        .find(|r| r.template == route && (r.method == method || (head && r.method == Method::GET)))
}

/// What `method` on the template `route` needs: the entry's need, or an
/// admin token for anything not in the table.
pub fn need_of(method: &Method, route: Option<&str>) -> Need {
    find(method, route).map_or(ADMIN, |r| r.need)
}

/// The entry answered by `handler`; the fast path asks for its three.
///
/// # Panics
///
/// When not exactly one entry has that handler (a table the unit tests
/// refuse).
pub fn only(handler: Handler) -> &'static Route {
    let mut found = ROUTES.iter().filter(|r| r.handler == handler);
    match (found.next(), found.next()) {
        (Some(route), None) => route,
        _ => panic!("ROUTES needs exactly one {handler:?} entry"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn each_method_and_template_is_declared_once() {
        let mut seen = BTreeSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method.as_str(), r.template)),
                "{} {} twice",
                r.method,
                r.template
            );
        }
    }

    #[test]
    fn the_fast_path_handlers_have_one_entry_each() {
        assert_eq!(only(Handler::SetValue).template, "/data");
        assert_eq!(only(Handler::GetValue).method, Method::GET);
        assert_eq!(only(Handler::DeleteValue).method, Method::DELETE);
    }

    #[test]
    fn named_key_routes_spell_their_key() {
        let named: BTreeSet<_> = ROUTES
            .iter()
            .filter(|r| matches!(r.handler, Handler::GetNamedKey | Handler::DeleteNamedKey))
            .map(Route::named_key)
            .collect();
        assert_eq!(named, BTreeSet::from(["bulk", "bulk/get"]));
    }

    #[test]
    fn unknown_routes_need_admin() {
        assert_eq!(need_of(&Method::GET, None), ADMIN);
        assert_eq!(need_of(&Method::PUT, Some("/data")), ADMIN);
        assert_eq!(need_of(&Method::GET, Some("/data/k")), ADMIN);
        assert_eq!(need_of(&Method::HEAD, Some("/health")), Need::Open);
        assert_eq!(need_of(&Method::HEAD, Some("/data/{*key}")), READ);
        assert_eq!(
            need_of(&Method::DELETE, Some("/nodes/{id}")),
            Need::Membership
        );
    }
}
