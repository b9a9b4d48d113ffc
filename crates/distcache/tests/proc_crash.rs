//! A whole cluster SIGKILLed at once while writes and deletes run, then
//! restarted: every operation the clients saw acknowledged is still there
//! (no older value, no deleted key back), as the mutation log promises.
//!
//! The workload and the checker are the history check's
//! (`history/workload.rs`, `history/checker.rs`): writers and readers run
//! through all three masters before, during and after the kill and the
//! restart; at the end every key is read through every master and the whole
//! history is checked, the reads made while the nodes came back included. Auxiliaries
//! snapshot every second, so the kill lands between snapshots, with writes
//! spread over a snapshot and several log generations.
//!
//! Why every acknowledged operation and not only those older than the fsync
//! window: the log is written to the kernel before each answer, so a killed
//! process loses nothing; the `everysec` window is what a machine crash (power
//! loss, kernel panic) may lose, which a test on one machine cannot cause.

#[path = "history/checker.rs"]
mod checker;
mod common;
#[path = "history/workload.rs"]
mod workload;

use std::time::Duration;

use common::{Cluster, Spec};
use workload::Workload;

const AUXILIARIES: [&str; 3] = ["aux-1", "aux-2", "aux-3"];

fn crash_and_check(log_fsync: &str) {
    let mut c = Cluster::start(Spec {
        masters: 3,
        auxiliaries: 3,
        replicas: 2,
        aux_env: vec![
            ("LOG_FSYNC".into(), log_fsync.into()),
            ("BACKUP_INTERVAL".into(), "1".into()),
        ],
        ..Spec::default()
    });
    c.wait_settled(&AUXILIARIES);
    let workload = Workload::start((0..c.masters.len()).map(|m| c.url(m, "")).collect());
    let shared = workload.shared.clone();
    // Long enough for two snapshots, so the kill finds a snapshot, covered
    // generations deleted, and a log written since.
    std::thread::sleep(Duration::from_millis(2_500));

    eprintln!("crash: every master and auxiliary SIGKILLed at once");
    // The clients go on through the kill and the restart: operations that
    // fail are of unknown outcome, and every read that answers, while the
    // nodes come back one by one too, is checked like any other.
    shared.enter(false);
    c.kill_all();
    c.restart_all();
    c.wait_settled(&AUXILIARIES);
    std::thread::sleep(Duration::from_millis(500));
    shared.enter(true);
    std::thread::sleep(Duration::from_millis(1_000));
    // The check needs 1,000 reads; a busy machine may not have made them
    // in the phases above.
    workload.wait_for_reads(1_100, Duration::from_secs(30));

    let replayed: f64 = AUXILIARIES
        .iter()
        .map(|id| {
            c.aux_metric(id, "distcache_log_replayed_records_total")
                .unwrap_or(0.0)
        })
        .sum();
    eprintln!("crash: {replayed} log records replayed at restart");
    // Without a replayed log this test would not show what it claims.
    assert!(replayed > 0.0, "no auxiliary replayed its log");
    workload.finish_and_check();
}

#[test]
fn after_a_full_cluster_sigkill_every_acknowledged_write_and_delete_is_back_with_everysec() {
    crash_and_check("everysec");
}

#[test]
fn after_a_full_cluster_sigkill_every_acknowledged_write_and_delete_is_back_with_always() {
    crash_and_check("always");
}
