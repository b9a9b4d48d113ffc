//! `distcache healthcheck`, the containers' health check, against live,
//! stopped and dead nodes of a real cluster.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Cluster, Spec, free_port, output_text, run_command, wait_until};

fn healthcheck(args: &[&str], port_env: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("healthcheck").args(args).env_remove("PORT");
    if let Some(p) = port_env {
        cmd.env("PORT", p);
    }
    let out = run_command(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        stdout.lines().count(),
        1,
        "one line of output: {}",
        output_text(&out)
    );
    (out.status.code().expect("exit code"), stdout)
}

#[test]
fn healthcheck_exits_0_for_healthy_nodes_and_1_otherwise() {
    let mut c = Cluster::start(Spec {
        masters: 1,
        auxiliaries: 0,
        ..Spec::default()
    });
    let master_url = format!("http://{}", c.masters[0].addr);

    // A master with no auxiliary answers 503: not healthy, but alive.
    let (code, out) = healthcheck(&["--url", &master_url], None);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("unhealthy:") && out.contains("503"),
        "{out}"
    );
    let (code, out) = healthcheck(&["--url", &master_url, "--live"], None);
    assert_eq!(code, 0, "{out}");

    c.add_aux("aux-1");
    c.wait_for_up(1);
    let (code, out) = healthcheck(&["--url", &master_url], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("healthy:"), "{out}");

    // The default URL is this host on $PORT, as in a container.
    let port = c.masters[0]
        .addr
        .rsplit(':')
        .next()
        .expect("port")
        .to_string();
    let (code, out) = healthcheck(&[], Some(&port));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("http://127.0.0.1:{port}/health")),
        "{out}"
    );

    let aux_url = format!("http://{}", c.aux_addr("aux-1"));
    let (code, out) = healthcheck(&["--url", &aux_url], None);
    assert_eq!(code, 0, "auxiliary: {out}");

    // Nothing listening.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (code, out) = healthcheck(&["--url", &dead], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("unhealthy:"), "{out}");
    let dead_port = free_port().to_string();
    let (code, _) = healthcheck(&[], Some(&dead_port));
    assert_eq!(code, 1);

    // A port that accepts but never answers: the timeout ends it.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let started = Instant::now();
    let (code, out) = healthcheck(&["--url", &url, "--timeout-ms", "300"], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no answer within 300 ms"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    // SIGKILL the auxiliary: the master turns unhealthy once it notices.
    c.auxes[0].proc.kill();
    wait_until(
        Duration::from_secs(20),
        "the master reports no auxiliary up",
        || healthcheck(&["--url", &master_url], None).0 == 1,
    );
    let (code, _) = healthcheck(&["--url", &aux_url], None);
    assert_eq!(code, 1, "a killed auxiliary is unhealthy");
}
