//! WATCH as clients use it, for optimistic locking: several connections on
//! two masters increment one key with WATCH, GET, MULTI, SET, EXEC, each
//! retrying when EXEC answers nil. No increment may be lost: every EXEC
//! that ran saw the value it replaced, which the leader's check under the
//! key's lock guarantees (docs/commands.md, "How commands reach the
//! cluster", 8).

mod common;

#[allow(dead_code)]
#[path = "../../core/tests/support/resp.rs"]
mod resp;

use common::{Cluster, Spec};
use resp::{Client, Frame};

/// Connections per master, and the increments each makes.
const CLIENTS_PER_MASTER: usize = 3;
const INCREMENTS: usize = 20;

/// One optimistic increment of `key`: the EXECs that answered nil before
/// the one that ran.
fn increment(client: &mut Client, key: &str) -> usize {
    for retries in 0.. {
        assert_eq!(client.call_str(&["WATCH", key]), Frame::Simple("OK".into()));
        let value = match client.call_str(&["GET", key]) {
            Frame::Bulk(b) => String::from_utf8(b).unwrap().parse::<u64>().unwrap(),
            Frame::NullBulk => 0,
            other => panic!("GET answered {other:?}"),
        };
        assert_eq!(client.call_str(&["MULTI"]), Frame::Simple("OK".into()));
        let next = (value + 1).to_string();
        assert_eq!(
            client.call_str(&["SET", key, &next]),
            Frame::Simple("QUEUED".into())
        );
        match client.call_str(&["EXEC"]) {
            Frame::Array(replies) => {
                assert_eq!(replies, vec![Frame::Simple("OK".into())]);
                return retries;
            }
            Frame::NullArray => continue,
            other => panic!("EXEC answered {other:?}"),
        }
    }
    unreachable!()
}

#[test]
fn optimistic_increments_from_two_masters_lose_nothing() {
    let cluster = Cluster::start(Spec {
        masters: 2,
        auxiliaries: 3,
        replicas: 2,
        resp: true,
        ..Spec::default()
    });
    let ports: Vec<u16> = cluster
        .masters
        .iter()
        .map(|m| m.resp_port.unwrap())
        .collect();
    let key = "{watch}:counter";
    let retries: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = ports
            .iter()
            .flat_map(|&port| std::iter::repeat_n(port, CLIENTS_PER_MASTER))
            .map(|port| {
                scope.spawn(move || {
                    let mut client = Client::connect(port).unwrap();
                    (0..INCREMENTS)
                        .map(|_| increment(&mut client, key))
                        .sum::<usize>()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let total = ports.len() * CLIENTS_PER_MASTER * INCREMENTS;
    let mut client = Client::connect(ports[0]).unwrap();
    assert_eq!(
        client.call_str(&["GET", key]),
        Frame::Bulk(total.to_string().into_bytes()),
        "{retries} EXECs answered nil on the way"
    );
    eprintln!("{total} increments, {retries} retried");
}
