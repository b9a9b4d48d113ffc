//! `nginx -t` on the shipped `deploy/nginx/nginx.conf` as it is: nginx
//! resolves the upstream names (`master-1`...) at start, so the check runs
//! in a private mount namespace (`unshare --mount`, which needs root) whose
//! `/etc/hosts` maps them. nginx comes from
//! `scripts/deps.d/30-deploy-tools.sh`. `./scripts/test` runs this file only
//! as root with nginx installed (always in CI).

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use common::{output_text, repo, run_command};

const DEPS_SCRIPT: &str = "scripts/deps.d/30-deploy-tools.sh";

/// A program the deps script installs (see [`common::tool`]).
fn tool(relative_or_name: &str) -> PathBuf {
    common::tool(relative_or_name, DEPS_SCRIPT)
}

fn nginx() -> PathBuf {
    tool("nginx")
}

/// The shipped nginx config.
fn shipped_nginx_conf() -> String {
    fs::read_to_string(repo().join("deploy/nginx/nginx.conf")).expect("deploy/nginx/nginx.conf")
}

#[test]
fn nginx_accepts_the_shipped_config_as_it_is() {
    common::require_root("a private mount namespace");
    let conf = repo().join("deploy/nginx/nginx.conf");
    let shipped = shipped_nginx_conf();
    // What the issue asks of it, in its directives (comments stripped).
    let directives: String = shipped
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    for wanted in [
        "upstream distcache_masters {",
        "server master-1:8000",
        "server master-2:8000",
        "server master-3:8000",
        "keepalive 64;",
        "proxy_http_version 1.1;",
        "proxy_set_header Connection \"\";",
        "proxy_next_upstream error timeout;",
        "client_max_body_size 16m;",
        "access_log off;",
        "proxy_pass http://distcache_masters;",
        "stream {",
        "upstream distcache_resp {",
        "server master-1:6379",
        "server master-2:6379",
        "server master-3:6379",
        "listen 6379;",
        "proxy_pass distcache_resp;",
    ] {
        assert!(directives.contains(wanted), "nginx.conf lacks {wanted:?}");
    }
    assert!(
        !directives.contains("non_idempotent"),
        "POSTs must not be retried"
    );
    assert!(
        !directives.contains("ip_hash") && !directives.contains("least_conn"),
        "round robin"
    );

    // `nginx -t` resolves the upstream names: run it in a private mount
    // namespace whose /etc/hosts maps the compose service names.
    let unshare = tool("unshare");
    let dir = tempfile::tempdir().expect("temp dir");
    let hosts = dir.path().join("hosts");
    fs::write(
        &hosts,
        "127.0.0.1 localhost\n127.0.0.1 master-1 master-2 master-3\n",
    )
    .expect("hosts");
    // Debian's nginx has the stream module as a dynamic module (the nginx
    // image builds it in): load it from the command line, the file as is.
    let script = "mount --bind \"$1\" /etc/hosts && exec \"$2\" -t -c \"$3\" -g \"$4\"";
    let out = run_command(
        Command::new(&unshare)
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(&hosts)
            .arg(nginx())
            .arg(&conf)
            .arg(common::nginx_stream_module_directive()),
    );
    let log = output_text(&out);
    assert!(
        !log.contains("unshare failed") && !log.contains("Operation not permitted"),
        "this test needs root (CAP_SYS_ADMIN) for a private mount namespace:\n{log}"
    );
    assert!(
        out.status.success(),
        "nginx -t on the shipped config:\n{log}"
    );
    assert!(log.contains("test is successful"), "{log}");

    // The same check with names that do not resolve fails: the test above
    // really resolved the upstreams.
    let empty = dir.path().join("empty-hosts");
    fs::write(&empty, "127.0.0.1 localhost\n").expect("hosts");
    let out = run_command(
        Command::new(&unshare)
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(&empty)
            .arg(nginx())
            .arg(&conf)
            .arg(common::nginx_stream_module_directive()),
    );
    assert!(
        !out.status.success(),
        "nginx -t must fail without the names:\n{}",
        output_text(&out)
    );
    assert!(
        output_text(&out).contains("host not found in upstream"),
        "{}",
        output_text(&out)
    );
}
