//! A network partition, made with a real network namespace: one auxiliary
//! runs in its own namespace, joined to the host by a veth pair; taking the
//! host end down cuts it off from the masters and its peers, bringing it up
//! heals the partition (see `common/netns.rs`). Needs root and iproute2
//! (`ip`), as on CI.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::netns::Netns;
use common::{BIN, Cluster, Spec, wait_until};
use serde_json::{Value, json};

struct NsAux {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for NsAux {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- log of the partitioned auxiliary ----");
            eprintln!("{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

#[test]
fn a_partitioned_auxiliary_is_treated_as_down_and_reconciles_after_healing() {
    let ns = Netns::create();
    // Everything listens where the namespace can reach it: masters on all
    // addresses, host auxiliaries advertising the host end of the veth.
    let mut c = Cluster::start(Spec {
        auxiliaries: 0,
        master_env: vec![("BIND_ADDR".into(), "0.0.0.0".into())],
        ..Spec::default()
    });
    let master_port = c.masters[0].addr.rsplit(':').next().unwrap().to_string();
    for id in ["aux-1", "aux-2"] {
        // Bound to the host end of the veth, on ports the kernel picks as
        // it binds, an auxiliary advertises that address and those ports.
        // (Ports found free beforehand raced other tests' listeners on
        // other addresses: a port free on 127.0.0.1 may be taken on
        // 0.0.0.0, and the auxiliary then never started.)
        c.add_aux_with(
            id,
            &[
                ("BIND_ADDR".into(), ns.host_ip.clone()),
                (
                    "MASTER_ADDRESS".into(),
                    format!("{}:{master_port}", ns.host_ip),
                ),
            ],
        );
    }
    let log = c.dir.path().join("aux-p.log");
    let file = std::fs::File::create(&log).unwrap();
    let _aux_p = NsAux {
        child: Command::new("ip")
            .args(["netns", "exec", &ns.name, BIN, "aux"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("NODE_ID", "aux-p")
            .env("BIND_ADDR", &ns.ns_ip)
            .env("PORT", "3001")
            .env("MASTER_ADDRESS", format!("{}:{master_port}", ns.host_ip))
            .env("CACHE_SIZE", "10000")
            .env("BACKUP_DIR", c.dir.path().join("aux-p"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start the auxiliary in the namespace"),
        log,
    };
    c.wait_for_up(3);
    let settled = |c: &Cluster, want: &[&str]| {
        wait_until(
            Duration::from_secs(60),
            &format!("settled on {want:?}"),
            || {
                let ring: Value = c.get_json(0, "/ring");
                ring["rebalancing"] == json!(false) && ring["committed"] == json!(want)
            },
        );
    };
    settled(&c, &["aux-1", "aux-2", "aux-p"]);
    for i in 0..300 {
        assert_eq!(c.set(0, &format!("k{i}"), json!({"v": 1})).status(), 200);
    }

    ns.cut();
    wait_until(Duration::from_secs(20), "aux-p seen as down", || {
        c.node_state(0, "aux-p").as_deref() == Some("down")
    });
    settled(&c, &["aux-1", "aux-2"]);
    // The cluster goes on without it: every key readable and writable.
    for i in 0..300 {
        assert_eq!(
            c.set(0, &format!("k{i}"), json!({"v": 2})).status(),
            200,
            "k{i}"
        );
    }
    for i in 0..60 {
        assert_eq!(c.delete(0, &format!("k{i}")).status(), 200);
    }

    ns.heal();
    wait_until(Duration::from_secs(30), "aux-p back up", || {
        c.node_state(0, "aux-p").as_deref() == Some("up")
    });
    settled(&c, &["aux-1", "aux-2", "aux-p"]);
    // Its stale copies lost to the newer versions and the deletes.
    for i in 0..60 {
        assert_eq!(c.value(0, &format!("k{i}")), None, "deleted k{i} is back");
    }
    for i in 60..300 {
        assert_eq!(c.value(0, &format!("k{i}")), Some(json!({"v": 2})), "k{i}");
    }
    let nodes: Value = c.get_json(0, "/nodes");
    let p = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "aux-p")
        .unwrap()
        .clone();
    assert!(
        p["items"].as_u64().unwrap() > 0,
        "aux-p holds its share again: {p}"
    );
}
