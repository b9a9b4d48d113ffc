//! `docs/openapi.yaml` against the code: the operations it documents are
//! exactly the entries of the master's route table, with the access each
//! entry needs; a real master, probed with every method on every path the
//! table or the document names, answers exactly those and counts each
//! request under the template of the entry that served it; and the master
//! serves the same text at `/openapi.yaml`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Cluster, Spec};
use distcache_server::master::route_table::ROUTES;
use distcache_server::security::auth::{Need, Role};
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
        Need::Command => "command",
        Need::Role(Role::Read) => "read",
        Need::Role(Role::Write) => "write",
        Need::Role(Role::Admin) => "admin",
    }
}

/// A path that a template matches: `{*key}` and `{key}` as `k`, `{id}`
/// as `x`.
fn instance(template: &str) -> String {
    template
        .replace("{*key}", "k")
        .replace("{key}", "k")
        .replace("{id}", "x")
}

/// (method, route, status) of every `distcache_http_requests_total` line.
fn counted(metrics: &str) -> BTreeSet<(String, String, u16)> {
    let label = |labels: &str, name: &str| -> String {
        let start = labels.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let len = labels[start..].find('"').unwrap();
        labels[start..start + len].to_string()
    };
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("distcache_http_requests_total{"))
        .map(|l| {
            // The last brace: a route template has braces of its own.
            let labels = &l[..l.rfind('}').unwrap()];
            let status = label(labels, "status").parse().unwrap();
            (label(labels, "method"), label(labels, "route"), status)
        })
        .collect()
}

#[test]
fn the_openapi_document_matches_the_router() {
    let docs = documented();
    let doc_ops: BTreeSet<(String, String)> = docs
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();

    // The route table holds each operation once, covers exactly the
    // documented operations, with the same access.
    let entries: BTreeSet<(String, &str)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.template))
        .collect();
    assert_eq!(entries.len(), ROUTES.len(), "an entry declared twice");
    let table: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|r| {
            let access = access_name(r.need).to_string();
            (r.method.to_string(), normalize(r.template), access)
        })
        .collect();
    assert_eq!(table, docs, "the route table versus docs/openapi.yaml");

    // The router, probed on every path the table or the document names and
    // on paths nobody serves: a (method, path) is served when the answer is
    // neither `no_route` nor 405.
    let c = Cluster::start(Spec {
        auxiliaries: 0,
        ..Spec::default()
    });
    let mut paths: BTreeSet<String> = ROUTES.iter().map(|r| instance(r.template)).collect();
    paths.extend(doc_ops.iter().map(|(_, p)| instance(p)));
    paths.extend(["/", "/no-such-route", "/nodes/x/y"].map(String::from));
    let mut served = BTreeSet::new();
    for path in &paths {
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            let resp = c
                .http
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    c.url(0, path),
                )
                .send()
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().unwrap_or(Value::Null);
            let unrouted = status == 405 || (status == 404 && body["error"]["code"] == "no_route");
            // HEAD is GET without a body (nothing to tell `no_route` by):
            // it is probed for the metric labels below.
            if !unrouted && method != "HEAD" {
                served.insert((method.to_string(), path.clone()));
            }
        }
    }
    let want: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), instance(r.template)))
        .collect();
    assert_eq!(served, want, "the router versus the route table");

    // Every request was counted under the template of a table entry (or as
    // unmatched), by the router and the direct path alike; a request the
    // table serves under its entry's template and method (HEAD as GET).
    let templates: BTreeSet<&str> = ROUTES.iter().map(|r| r.template).collect();
    let mut counted_ops = BTreeSet::new();
    for (method, route, status) in counted(&c.get_text(0, "/metrics")) {
        if route == "unmatched" {
            assert_eq!(status, 404, "{method} unmatched");
            continue;
        }
        assert!(
            templates.contains(route.as_str()),
            "{route} is no template of the table"
        );
        if status != 405 {
            let method = if method == "HEAD" {
                "GET".into()
            } else {
                method
            };
            assert!(
                entries.contains(&(method.clone(), route.as_str())),
                "{method} {route} answered but not in the table"
            );
            counted_ops.insert((method, route));
        }
    }
    let all: BTreeSet<(String, String)> = entries
        .iter()
        .map(|(m, t)| (m.clone(), t.to_string()))
        .collect();
    assert_eq!(counted_ops, all, "the metric labels versus the route table");

    // A path nobody serves is told apart (the probe can fail).
    let resp = c.http.get(c.url(0, "/no-such-route")).send().unwrap();
    assert_eq!(resp.status(), 404);

    // The master serves the document itself.
    let served_doc = c.http.get(c.url(0, "/openapi.yaml")).send().unwrap();
    assert_eq!(served_doc.status(), 200);
    assert_eq!(served_doc.text().unwrap(), repo_file("docs/openapi.yaml"));
}
