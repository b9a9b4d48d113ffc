//! `docs/openapi.yaml` against the code: the operations it documents are
//! exactly the ones the router serves (each route the router source names,
//! probed with every method on a real master), the access each declares is
//! the one the auth table enforces, and the master serves the same text at
//! `/openapi.yaml`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Cluster, Spec};
use distcache_server::security::auth::{Need, ROUTE_ACCESS, Role};
use serde_json::Value;

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (METHOD, path) of every operation in the document, with its
/// `x-distcache-access`.
fn documented() -> BTreeSet<(String, String, String)> {
    let doc: serde_yaml::Value = serde_yaml::from_str(&repo_file("docs/openapi.yaml")).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "an OpenAPI 3 document"
    );
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        let path = path.as_str().unwrap();
        for (method, op) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if method == "parameters" {
                continue;
            }
            let access = op["x-distcache-access"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no x-distcache-access"));
            ops.insert((method.to_uppercase(), path.to_string(), access.to_string()));
        }
    }
    ops
}

/// The router's route templates, as `routes.rs` registers them.
fn route_templates() -> Vec<String> {
    let src = repo_file("crates/server/src/master/routes.rs");
    let mut out = Vec::new();
    let mut rest = src.as_str();
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + ".route(".len()..];
        let start = rest.find('"').unwrap();
        let end = start + 1 + rest[start + 1..].find('"').unwrap();
        out.push(rest[start + 1..end].to_string());
    }
    assert!(out.len() >= 10, "found the routes: {out:?}");
    out
}

/// A router template as the document writes it: `{*key}` is `{key}`, and
/// `/data/` is `/data/{key}` with the empty key.
fn normalize(template: &str) -> String {
    match template {
        "/data/" => "/data/{key}".to_string(),
        t => t.replace("{*key}", "{key}"),
    }
}

fn access_name(need: Need) -> &'static str {
    match need {
        Need::Open => "open",
        Need::Metrics => "metrics",
        Need::Membership => "membership",
        Need::Role(Role::Read) => "read",
        Need::Role(Role::Write) => "write",
        Need::Role(Role::Admin) => "admin",
    }
}

#[test]
fn the_openapi_document_matches_the_router() {
    let docs = documented();
    let doc_ops: BTreeSet<(String, String)> = docs
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();

    // The auth table covers exactly the documented operations, with the
    // same access.
    let table: BTreeSet<(String, String, String)> = ROUTE_ACCESS
        .iter()
        .map(|(m, r, need)| (m.to_string(), normalize(r), access_name(*need).to_string()))
        .collect();
    assert_eq!(table, docs, "ROUTE_ACCESS versus docs/openapi.yaml");

    // The router, probed: a (method, route) is served when the answer is
    // neither `no_route` nor 405.
    let c = Cluster::start(Spec {
        auxiliaries: 0,
        ..Spec::default()
    });
    let mut served = BTreeSet::new();
    for template in route_templates() {
        let path = template.replace("{*key}", "k").replace("{id}", "x");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let resp = c
                .http
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    c.url(0, &path),
                )
                .send()
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().unwrap_or(Value::Null);
            let unrouted = status == 405 || (status == 404 && body["error"]["code"] == "no_route");
            if !unrouted {
                served.insert((method.to_string(), normalize(&template)));
            }
        }
    }
    assert_eq!(served, doc_ops, "the router versus docs/openapi.yaml");

    // A path nobody serves is told apart (the probe can fail).
    let resp = c.http.get(c.url(0, "/no-such-route")).send().unwrap();
    assert_eq!(resp.status(), 404);

    // The master serves the document itself.
    let served_doc = c.http.get(c.url(0, "/openapi.yaml")).send().unwrap();
    assert_eq!(served_doc.status(), 200);
    assert_eq!(served_doc.text().unwrap(), repo_file("docs/openapi.yaml"));
}
