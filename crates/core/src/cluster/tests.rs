//! Unit tests of the cluster map: one transition each, read as a
//! specification of the control plane.

use super::*;

fn new_map(replicas: usize) -> ClusterMap {
    ClusterMap::new(ClusterConfig::new(replicas, 16))
}

fn register(id: &str, incarnation: u64) -> Event {
    Event::Register {
        id: id.to_string(),
        addr: format!("{id}:3001"),
        data_addr: Some(format!("{id}:4001")),
        incarnation: Some(incarnation),
        seen_epoch: None,
    }
}

fn healthy(id: &str) -> Event {
    Event::Verdict {
        id: id.to_string(),
        healthy: true,
        data_addr: None,
        probed: None,
    }
}

fn unhealthy(id: &str) -> Event {
    Event::Verdict {
        id: id.to_string(),
        healthy: false,
        data_addr: None,
        probed: None,
    }
}

fn decommission(id: &str) -> Event {
    Event::Decommission { id: id.to_string() }
}

fn ids(v: &[&str]) -> Vec<NodeId> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Applies `event`, which must be accepted, and returns its commands.
fn accept(map: &mut ClusterMap, event: Event) -> Vec<Command> {
    let applied = map.apply(event.clone());
    assert!(applied.outcome.is_ok(), "{event:?}: {:?}", applied.outcome);
    map.check().expect("invariants hold");
    applied.commands
}

/// Reports the current round finished.
fn finish(map: &mut ClusterMap) -> Vec<Command> {
    let id = map.round().expect("a round runs").id;
    accept(map, Event::RoundFinished { round: id })
}

/// A steady cluster of `members`, every one up and committed.
fn steady(replicas: usize, members: &[&str]) -> ClusterMap {
    let mut map = new_map(replicas);
    for id in members {
        accept(&mut map, register(id, 1));
        accept(&mut map, healthy(id));
    }
    finish(&mut map);
    assert!(map.round().is_none());
    assert_eq!(map.committed_members(), Some(&ids(members)[..]));
    map
}

fn started_round(commands: &[Command]) -> Option<&Round> {
    commands.iter().find_map(|c| match c {
        Command::StartRound(r) => Some(r),
        _ => None,
    })
}

#[test]
fn a_registration_adds_a_joining_node_and_asks_for_a_probe() {
    let mut map = new_map(2);
    let applied = map.apply(register("a", 1));
    assert_eq!(applied.outcome, Ok(Accepted::Added));
    assert_eq!(
        applied.commands,
        vec![
            Command::Probe { id: "a".into() },
            Command::AnnounceEpoch { epoch: 1 }
        ]
    );
    let node = map.node("a").expect("registered");
    assert_eq!(node.state, NodeState::Joining);
    assert!(!node.is_live());
    assert!(map.target_members().is_empty());
}

#[test]
fn a_repeated_registration_changes_nothing() {
    let mut map = steady(2, &["a", "b"]);
    let before = map.clone();
    let applied = map.apply(register("a", 1));
    assert_eq!(applied.outcome, Ok(Accepted::Unchanged));
    assert!(applied.commands.is_empty());
    assert_eq!(map, before);
    // Without the optional fields it matches too.
    let applied = map.apply(Event::Register {
        id: "a".into(),
        addr: "a:3001".into(),
        data_addr: None,
        incarnation: None,
        seen_epoch: None,
    });
    assert_eq!(applied.outcome, Ok(Accepted::Unchanged));
    assert_eq!(map, before);
}

#[test]
fn the_first_healthy_verdict_starts_a_full_round() {
    let mut map = new_map(2);
    accept(&mut map, register("a", 1));
    let commands = accept(&mut map, healthy("a"));
    let round = started_round(&commands).expect("a round starts");
    assert!(round.full, "nothing is known to be in place yet");
    assert_eq!(round.handoff.from, None);
    assert_eq!(round.handoff.to_ids(), ids(&["a"]));
    assert_eq!(round.handoff.to[0].data_addr, "a:4001");
    assert_eq!(
        round.handoff.to_replicas, 1,
        "REPLICAS is capped by members"
    );
    assert_eq!(round.epoch, map.epoch());
    assert_eq!(map.target_members(), ids(&["a"]));
    assert_eq!(map.committed_members(), None);
}

#[test]
fn a_finished_round_commits_its_target_and_cleans_up() {
    let mut map = new_map(2);
    accept(&mut map, register("a", 1));
    accept(&mut map, healthy("a"));
    let epoch = map.epoch();
    let commands = finish(&mut map);
    assert_eq!(map.committed_members(), Some(&ids(&["a"])[..]));
    assert!(map.round().is_none());
    assert_eq!(map.epoch(), epoch + 1);
    assert!(commands.contains(&Command::AnnounceEpoch { epoch: epoch + 1 }));
    assert!(commands.iter().any(|c| matches!(
        c,
        Command::CleanUp(h) if h.from == Some(ids(&["a"])) && h.sources == ids(&["a"])
    )));
}

#[test]
fn a_join_moves_keys_from_the_committed_ring() {
    let mut map = steady(2, &["a", "b"]);
    accept(&mut map, register("c", 1));
    let commands = accept(&mut map, healthy("c"));
    let round = started_round(&commands).expect("a round starts");
    assert!(!round.full);
    assert_eq!(round.handoff.from, Some(ids(&["a", "b"])));
    assert_eq!(round.handoff.to_ids(), ids(&["a", "b", "c"]));
    assert_eq!(round.handoff.sources, ids(&["a", "b", "c"]));
    let routing = map.routing();
    assert!(routing.rebalancing);
    assert_eq!(routing.committed, Some(ids(&["a", "b"])));
    assert_eq!(routing.target, ids(&["a", "b", "c"]));
    finish(&mut map);
    assert_eq!(map.routing().committed, Some(ids(&["a", "b", "c"])));
    assert!(!map.routing().rebalancing);
}

#[test]
fn a_report_about_another_round_changes_nothing() {
    let mut map = steady(2, &["a", "b"]);
    accept(&mut map, register("c", 1));
    accept(&mut map, healthy("c"));
    let current = map.round().expect("a round runs").id;
    let before = map.clone();
    for round in [current - 1, current + 1, 0, u64::MAX] {
        for event in [Event::RoundFinished { round }, Event::RoundFailed { round }] {
            let applied = map.apply(event);
            assert_eq!(
                applied.outcome,
                Err(Rejection::StaleRound {
                    round,
                    current: Some(current)
                })
            );
            assert!(applied.commands.is_empty());
            assert_eq!(map, before);
        }
    }
}

#[test]
fn a_source_that_goes_down_supersedes_the_round() {
    let mut map = steady(2, &["a", "b", "c"]);
    accept(&mut map, register("d", 1));
    accept(&mut map, healthy("d"));
    let first = map.round().expect("a round runs").clone();
    let commands = accept(&mut map, unhealthy("b"));
    let second = started_round(&commands).expect("a new round starts");
    assert!(second.id > first.id);
    assert_eq!(second.handoff.to_ids(), ids(&["a", "c", "d"]));
    assert!(!second.handoff.sources.contains(&"b".to_string()));
    assert!(second.full, "the first round may have moved copies");
    assert_eq!(map.routing().abandoned, vec![ids(&["a", "b", "c", "d"])]);
    assert_eq!(
        map.apply(Event::RoundFinished { round: first.id }).outcome,
        Err(Rejection::StaleRound {
            round: first.id,
            current: Some(second.id)
        })
    );
    finish(&mut map);
    assert!(map.routing().abandoned.is_empty());
    assert_eq!(map.node("b").map(|n| n.state), Some(NodeState::Down));
}

#[test]
fn a_death_in_a_steady_cluster_moves_keys_from_the_survivors() {
    let mut map = steady(2, &["a", "b", "c"]);
    let commands = accept(&mut map, unhealthy("c"));
    let round = started_round(&commands).expect("a round starts");
    assert!(!round.full);
    assert_eq!(round.handoff.from, Some(ids(&["a", "b", "c"])));
    assert_eq!(round.handoff.sources, ids(&["a", "b"]));
    finish(&mut map);
    assert_eq!(map.committed_members(), Some(&ids(&["a", "b"])[..]));
    // Back up: a partial round gives it its keys back.
    let commands = accept(&mut map, healthy("c"));
    assert!(!started_round(&commands).expect("a round").full);
}

#[test]
fn a_member_back_before_the_commit_gets_a_full_round() {
    let mut map = steady(2, &["a", "b", "c"]);
    accept(&mut map, unhealthy("c"));
    // Back before the round without it finished: it may have missed
    // writes, and the round may have moved copies.
    let commands = accept(&mut map, healthy("c"));
    let round = started_round(&commands).expect("a round starts");
    assert!(round.full);
    assert_eq!(round.handoff.to_ids(), ids(&["a", "b", "c"]));
    finish(&mut map);
    assert!(map.round().is_none());
}

#[test]
fn a_decommissioned_node_leaves_only_after_its_handoff() {
    let mut map = steady(2, &["a", "b", "c"]);
    let applied = map.apply(decommission("c"));
    assert_eq!(applied.outcome, Ok(Accepted::Changed));
    let round = started_round(&applied.commands).expect("a round starts");
    assert_eq!(round.handoff.to_ids(), ids(&["a", "b"]));
    assert_eq!(round.handoff.sources, ids(&["a", "b", "c"]));
    let node = map.node("c").expect("still there");
    assert_eq!(node.state, NodeState::Leaving);
    assert!(node.is_live());
    assert_eq!(map.routing().leaving, ids(&["c"]), "reads may still ask it");
    // Repeating the request changes nothing.
    assert_eq!(
        map.apply(decommission("c")).outcome,
        Ok(Accepted::Unchanged)
    );
    let commands = finish(&mut map);
    assert!(commands.contains(&Command::Removed { id: "c".into() }));
    assert!(map.node("c").is_none());
    assert_eq!(map.decommissioned("c"), Some(Some(1)));
    assert_eq!(map.committed_members(), Some(&ids(&["a", "b"])[..]));
}

#[test]
fn a_leaving_node_that_stops_answering_is_not_removed_by_the_round() {
    let mut map = steady(2, &["a", "b", "c"]);
    accept(&mut map, decommission("c"));
    let commands = accept(&mut map, unhealthy("c"));
    let round = started_round(&commands).expect("superseded");
    assert!(!round.handoff.sources.contains(&"c".to_string()));
    let commands = finish(&mut map);
    assert!(!commands.contains(&Command::Removed { id: "c".into() }));
    assert_eq!(map.node("c").map(|n| n.state), Some(NodeState::Leaving));
    // A second decommission removes the silent node.
    assert_eq!(map.apply(decommission("c")).outcome, Ok(Accepted::Removed));
    assert!(map.node("c").is_none());
}

#[test]
fn the_last_node_up_cannot_be_decommissioned() {
    let mut map = steady(2, &["a"]);
    let before = map.clone();
    let applied = map.apply(decommission("a"));
    assert_eq!(applied.outcome, Err(Rejection::LastNode { id: "a".into() }));
    assert!(applied.commands.is_empty());
    assert_eq!(map, before);
}

#[test]
fn a_node_that_does_not_answer_is_removed_at_once() {
    let mut map = steady(2, &["a", "b"]);
    accept(&mut map, unhealthy("b"));
    let applied = map.apply(decommission("b"));
    assert_eq!(applied.outcome, Ok(Accepted::Removed));
    assert!(
        applied
            .commands
            .contains(&Command::Removed { id: "b".into() })
    );
    assert!(map.node("b").is_none());
    // It stays in the committed ring, dead, until the next commit.
    assert_eq!(map.committed_members(), Some(&ids(&["a", "b"])[..]));
    finish(&mut map);
    assert_eq!(map.committed_members(), Some(&ids(&["a"])[..]));
}

#[test]
fn a_decommissioned_incarnation_cannot_return_but_a_restarted_one_can() {
    let mut map = steady(2, &["a", "b"]);
    accept(&mut map, unhealthy("b"));
    accept(&mut map, decommission("b"));
    let before = map.clone();
    assert_eq!(
        map.apply(register("b", 1)).outcome,
        Err(Rejection::Decommissioned {
            id: "b".into(),
            incarnation: 1
        })
    );
    assert_eq!(map, before);
    assert_eq!(map.apply(register("b", 2)).outcome, Ok(Accepted::Added));
    assert_eq!(map.decommissioned("b"), None);
    assert_eq!(map.node("b").map(|n| n.state), Some(NodeState::Joining));
}

#[test]
fn a_restart_takes_an_up_node_out_until_it_is_healthy_again() {
    let mut map = steady(2, &["a", "b", "c"]);
    let epoch = map.epoch();
    let commands = accept(&mut map, register("c", 2));
    assert!(commands.contains(&Command::Probe { id: "c".into() }));
    assert!(map.epoch() > epoch);
    let node = map.node("c").expect("known");
    assert_eq!((node.state, node.answering), (NodeState::Joining, false));
    assert_eq!(map.target_members(), ids(&["a", "b"]));
    // Healthy again: it may have lost its copies, so every copy is
    // re-placed.
    let commands = accept(&mut map, healthy("c"));
    assert!(started_round(&commands).expect("a round").full);
}

#[test]
fn a_failed_round_starts_again_with_a_higher_attempt() {
    let mut map = steady(2, &["a", "b"]);
    accept(&mut map, register("c", 1));
    accept(&mut map, healthy("c"));
    let first = map.round().expect("a round").clone();
    let commands = accept(&mut map, Event::RoundFailed { round: first.id });
    let second = started_round(&commands).expect("started again");
    assert_eq!(second.attempt, 1);
    assert!(second.id > first.id);
    let third = started_round(&accept(&mut map, Event::RoundFailed { round: second.id }))
        .expect("started again")
        .clone();
    assert_eq!(third.attempt, 2);
}

#[test]
fn rebalance_runs_a_full_round_and_needs_a_node_up() {
    let mut map = new_map(2);
    assert_eq!(
        map.apply(Event::Rebalance).outcome,
        Err(Rejection::NoAuxiliaries)
    );
    let mut map = steady(2, &["a", "b"]);
    let epoch = map.epoch();
    let commands = accept(&mut map, Event::Rebalance);
    let round = started_round(&commands).expect("a round");
    assert!(round.full);
    assert_eq!(map.epoch(), epoch, "a round alone changes no routing");
    // Asking again replaces it.
    let again = started_round(&accept(&mut map, Event::Rebalance))
        .expect("a round")
        .clone();
    assert!(again.id > round.id);
    finish(&mut map);
    assert!(map.round().is_none());
}

#[test]
fn events_about_unknown_nodes_are_refused() {
    let mut map = steady(2, &["a"]);
    let before = map.clone();
    for event in [healthy("x"), unhealthy("x"), decommission("x")] {
        assert_eq!(
            map.apply(event).outcome,
            Err(Rejection::UnknownNode { id: "x".into() })
        );
    }
    assert_eq!(map, before);
}

#[test]
fn malformed_registrations_are_refused() {
    let mut map = new_map(2);
    let long = "x".repeat(MAX_NODE_ID_BYTES + 1);
    for (id, addr) in [
        ("", "a:1"),
        (long.as_str(), "a:1"),
        ("a\nb", "a:1"),
        ("a", ""),
        ("a", "a 1"),
    ] {
        let applied = map.apply(Event::Register {
            id: id.into(),
            addr: addr.into(),
            data_addr: None,
            incarnation: None,
            seen_epoch: None,
        });
        assert!(applied.outcome.is_err(), "{id:?} {addr:?}");
    }
    assert_eq!(map, new_map(2));
}

#[test]
fn a_healthy_verdict_needs_a_data_address() {
    let mut map = new_map(2);
    accept(
        &mut map,
        Event::Register {
            id: "a".into(),
            addr: "a:3001".into(),
            data_addr: None,
            incarnation: None,
            seen_epoch: None,
        },
    );
    assert_eq!(
        map.apply(healthy("a")).outcome,
        Err(Rejection::NoDataAddr { id: "a".into() })
    );
    // The probe's answer supplies it.
    accept(
        &mut map,
        Event::Verdict {
            id: "a".into(),
            healthy: true,
            data_addr: Some("a:4001".into()),
            probed: None,
        },
    );
    assert_eq!(
        map.routing().live.get("a").map(String::as_str),
        Some("a:4001")
    );
}

#[test]
fn a_new_http_address_changes_no_routing() {
    let mut map = steady(2, &["a", "b"]);
    let epoch = map.epoch();
    let applied = map.apply(Event::Register {
        id: "a".into(),
        addr: "elsewhere:3001".into(),
        data_addr: None,
        incarnation: None,
        seen_epoch: None,
    });
    assert_eq!(applied.outcome, Ok(Accepted::Changed));
    assert_eq!(map.epoch(), epoch);
    assert_eq!(applied.commands, vec![Command::Probe { id: "a".into() }]);
}

#[test]
fn a_new_data_address_supersedes_the_round_that_sends_there() {
    let mut map = steady(2, &["a", "b"]);
    accept(&mut map, register("c", 1));
    accept(&mut map, healthy("c"));
    let first = map.round().expect("a round").id;
    accept(
        &mut map,
        Event::Verdict {
            id: "c".into(),
            healthy: true,
            data_addr: Some("c:5001".into()),
            probed: None,
        },
    );
    let round = map.round().expect("a round");
    assert!(round.id > first);
    assert!(round.handoff.to.contains(&Member {
        id: "c".into(),
        data_addr: "c:5001".into()
    }));
}

#[test]
fn a_new_leader_resumes_the_epoch_and_the_round() {
    let mut map = steady(2, &["a", "b"]);
    assert_eq!(
        map.resume(),
        vec![Command::AnnounceEpoch { epoch: map.epoch() }]
    );
    accept(&mut map, unhealthy("b"));
    let round = map.round().expect("a round").clone();
    assert_eq!(
        map.resume(),
        vec![
            Command::AnnounceEpoch { epoch: map.epoch() },
            Command::StartRound(round)
        ]
    );
}

#[test]
fn preview_answers_without_changing_the_map() {
    let mut map = steady(2, &["a", "b"]);
    let before = map.clone();
    assert_eq!(map.preview(&register("a", 1)), Ok(Accepted::Unchanged));
    assert_eq!(map.preview(&register("z", 1)), Ok(Accepted::Added));
    assert_eq!(map.preview(&decommission("b")), Ok(Accepted::Changed));
    assert_eq!(map, before);
    assert_eq!(map.apply(decommission("b")).outcome, Ok(Accepted::Changed));
}

#[test]
fn an_up_node_shows_as_joining_until_its_keys_reach_it() {
    let mut map = steady(2, &["a"]);
    accept(&mut map, register("b", 1));
    accept(&mut map, healthy("b"));
    let b = map.node("b").expect("known").clone();
    assert_eq!(b.state, NodeState::Up);
    assert_eq!(map.shown_state(&b), NodeState::Joining);
    finish(&mut map);
    assert_eq!(map.shown_state(&b), NodeState::Up);
}

#[test]
fn the_map_survives_a_serde_round_trip() {
    let mut map = steady(3, &["a", "b", "c"]);
    accept(&mut map, decommission("c"));
    let json = serde_json::to_string(&map).expect("serializes");
    let back: ClusterMap = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, map);
    back.check().expect("invariants hold");
    let event = Event::RoundFinished { round: 7 };
    let json = serde_json::to_string(&event).expect("serializes");
    assert_eq!(serde_json::from_str::<Event>(&json).expect("parses"), event);
}

#[test]
fn settings_are_taken_only_before_the_first_node_joins() {
    let mut map = new_map(2);
    let one = ClusterConfig::new(1, 8);
    assert_eq!(
        map.apply(Event::Configure { config: one }).outcome,
        Ok(Accepted::Changed)
    );
    assert_eq!(map.config(), one);
    assert_eq!(map.epoch(), 0, "settings alone route nothing");
    // The same settings again: nothing to do, whenever.
    accept(&mut map, register("a", 1));
    assert_eq!(
        map.apply(Event::Configure { config: one }).outcome,
        Ok(Accepted::Unchanged)
    );
    // Other settings once a node is known: refused, the map unchanged.
    let before = map.clone();
    let applied = map.apply(Event::Configure {
        config: ClusterConfig::new(3, 8),
    });
    assert_eq!(applied.outcome, Err(Rejection::Configured { current: one }));
    assert!(applied.commands.is_empty());
    assert_eq!(map, before);
}

#[test]
fn a_probe_of_an_address_the_node_has_left_judges_nothing() {
    let mut map = steady(2, &["a", "b"]);
    // "a" restarted at another address and registered again.
    accept(
        &mut map,
        Event::Register {
            id: "a".into(),
            addr: "a:3002".into(),
            data_addr: Some("a:4002".into()),
            incarnation: Some(2),
            seen_epoch: None,
        },
    );
    accept(&mut map, healthy("a"));
    let before = map.clone();
    // A probe of the old address, sent before the registration, fails.
    let stale = Event::Verdict {
        id: "a".into(),
        healthy: false,
        data_addr: None,
        probed: Some("a:3001".into()),
    };
    assert_eq!(map.apply(stale).outcome, Ok(Accepted::Unchanged));
    assert_eq!(map, before, "the node stays up");
    // A probe of its address now is a verdict like any other.
    let current = Event::Verdict {
        id: "a".into(),
        healthy: false,
        data_addr: None,
        probed: Some("a:3002".into()),
    };
    assert_eq!(map.apply(current).outcome, Ok(Accepted::Changed));
    assert_eq!(map.node("a").map(|n| n.state), Some(NodeState::Down));
}

#[test]
fn a_map_rebuilt_from_scratch_starts_past_the_epochs_its_nodes_have_seen() {
    // Every master restarted without its Raft directory: a new, empty map,
    // while the auxiliaries still refuse anything older than epoch 40.
    let mut map = new_map(2);
    let register = |id: &str| Event::Register {
        id: id.into(),
        addr: format!("{id}:3001"),
        data_addr: Some(format!("{id}:4001")),
        incarnation: Some(1),
        seen_epoch: Some(40),
    };
    let commands = accept(&mut map, register("a"));
    assert_eq!(map.epoch(), 41);
    assert!(commands.contains(&Command::AnnounceEpoch { epoch: 41 }));
    // Once past it, the same registration changes nothing.
    let before = map.clone();
    assert_eq!(map.apply(register("a")).outcome, Ok(Accepted::Unchanged));
    assert_eq!(map, before);
    // And the epoch grows on as before.
    accept(&mut map, healthy("a"));
    assert_eq!(map.epoch(), 42);
}

#[test]
fn a_known_node_that_has_seen_a_newer_epoch_raises_the_maps() {
    let mut map = steady(2, &["a", "b"]);
    let epoch = map.epoch();
    let again = Event::Register {
        id: "a".into(),
        addr: "a:3001".into(),
        data_addr: Some("a:4001".into()),
        incarnation: Some(1),
        seen_epoch: Some(epoch + 10),
    };
    // Nothing about the node changed, but the epoch must move past what it
    // has seen: the registration is not a no-op.
    assert_eq!(map.preview(&again), Ok(Accepted::Changed));
    map.apply(again);
    assert_eq!(map.epoch(), epoch + 11);
    map.check().expect("invariants hold");
}

#[test]
fn no_round_commits_away_keys_whose_every_replica_is_silent() {
    // Two of three down with two copies each: the keys whose copies are
    // on both cannot be moved, so no round starts and the committed ring
    // stays, with the silent nodes in it.
    let mut map = steady(2, &["a", "b", "c"]);
    let commands = accept(&mut map, unhealthy("a"));
    assert!(
        started_round(&commands).is_some(),
        "one down: every key still has a live copy, so its keys move"
    );
    let commands = accept(&mut map, unhealthy("c"));
    assert!(started_round(&commands).is_none(), "{commands:?}");
    assert!(map.round().is_none());
    assert_eq!(map.committed_members(), Some(&ids(&["a", "b", "c"])[..]));
    assert_eq!(map.target_members(), ids(&["b"]));

    // One of them answers again: every key has a live copy, and a full
    // round (versions deciding) brings the cluster back together.
    accept(&mut map, register("c", 2));
    let commands = accept(&mut map, healthy("c"));
    let round = started_round(&commands).expect("a round starts");
    assert!(round.full, "c may have missed writes");
    finish(&mut map);
    assert_eq!(map.committed_members(), Some(&ids(&["b", "c"])[..]));
}

#[test]
fn decommissioning_the_silent_nodes_gives_their_keys_up_and_lets_a_round_run() {
    let mut map = steady(1, &["a", "b", "c"]);
    accept(&mut map, unhealthy("a"));
    let commands = accept(&mut map, unhealthy("b"));
    assert!(
        started_round(&commands).is_none(),
        "a and b held the only copies"
    );
    let commands = accept(&mut map, decommission("a"));
    assert!(map.node("a").is_none());
    let round = started_round(&commands).expect("the operator gave a's keys up");
    assert_eq!(round.handoff.to_ids(), ids(&["c"]));
    finish(&mut map);
    assert_eq!(map.committed_members(), Some(&ids(&["c"])[..]));
}

#[test]
fn a_minority_of_silent_nodes_is_routed_around_even_when_it_held_only_copies() {
    // With one copy per key, a dead node's keys are beyond the promise;
    // joins and leaves must not wait for it.
    let mut map = steady(1, &["a", "b", "c"]);
    let commands = accept(&mut map, unhealthy("a"));
    let round = started_round(&commands).expect("a round starts");
    assert_eq!(round.handoff.to_ids(), ids(&["b", "c"]));
    accept(&mut map, register("d", 1));
    let commands = accept(&mut map, healthy("d"));
    let round = started_round(&commands).expect("the join is not held up");
    assert_eq!(round.handoff.to_ids(), ids(&["b", "c", "d"]));
    finish(&mut map);
    assert_eq!(map.committed_members(), Some(&ids(&["b", "c", "d"])[..]));
}
