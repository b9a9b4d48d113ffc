//! What the cluster under test can hold, and what that means for a run.
//!
//! A bench run writes into the cluster a user may be using. Its keys have a
//! prefix of their own (`--key-prefix`), so they never overwrite a user's
//! keys, but eviction does not look at names: a key space larger than the
//! cluster's capacity evicts the least recently used keys, the user's
//! included, and the run's own gets of evicted keys miss. So before a run
//! bench asks the master (`GET /stats` for each auxiliary's capacity, `GET
//! /health` for the copies kept of each key) and warns when the keys do not
//! fit; after it, the report says why gets missed. Against a server that is
//! not a distcache master (nginx's fixed answer in `bench/run.sh`) there is
//! nothing to ask, and nothing is said.

use std::time::Duration;

use serde::Deserialize;

/// How many distinct keys the cluster holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Auxiliaries up.
    pub nodes: u64,
    /// Their `CACHE_SIZE`s added up: items, copies included.
    pub items: u64,
    /// Copies of each key.
    pub replicas: u64,
}

impl Capacity {
    /// Distinct keys that fit: every key takes `replicas` items.
    pub fn keys(&self) -> u64 {
        self.items / self.replicas.max(1)
    }
}

#[derive(Deserialize)]
struct Stats {
    nodes: Vec<NodeStats>,
}

#[derive(Deserialize)]
struct NodeStats {
    state: String,
    capacity_items: Option<u64>,
}

#[derive(Deserialize)]
struct Health {
    replicas: u64,
}

/// Asks the master at `url` what its cluster holds; `None` when it does not
/// answer as a distcache master does.
pub async fn fetch(url: &str, token: Option<&str>) -> Option<Capacity> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let get = |path: &str| {
        let req = client.get(format!("{url}{path}"));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    };
    let stats: Stats = get("/stats").send().await.ok()?.json().await.ok()?;
    let health: Health = get("/health").send().await.ok()?.json().await.ok()?;
    let up: Vec<&NodeStats> = stats.nodes.iter().filter(|n| n.state == "up").collect();
    Some(Capacity {
        nodes: up.len() as u64,
        items: up.iter().filter_map(|n| n.capacity_items).sum(),
        replicas: health.replicas,
    })
}

/// The warning to give before a run of `keys` keys named `prefix…`, if they
/// do not fit.
pub fn warning(keys: u64, prefix: &str, capacity: &Capacity) -> Option<String> {
    let fits = capacity.keys();
    (keys > fits).then(|| {
        format!(
            "warning: {keys} keys do not fit in this cluster: its {} auxiliaries up hold {} items, \
             {fits} keys at {} copies each. The run evicts the least recently used keys, \
             other keys than {prefix}* included, and its gets of evicted keys miss. \
             Use --keys {fits} or fewer, or give the auxiliaries a larger CACHE_SIZE.",
            capacity.nodes, capacity.items, capacity.replicas
        )
    })
}

/// What a run did that makes a get miss, given its settings.
pub struct MissCauses {
    /// Every key was written first.
    pub preload: bool,
    /// The mix deletes.
    pub deletes: bool,
    /// Some sets carry a TTL of this many seconds.
    pub ttl_s: Option<u64>,
    /// The key space exceeds what the cluster holds.
    pub over_capacity: Option<Capacity>,
}

impl MissCauses {
    /// Why `misses` of `gets` missed, in one line; `None` without misses.
    pub fn explain(&self, misses: u64, gets: u64) -> Option<String> {
        if misses == 0 {
            return None;
        }
        let mut why = Vec::new();
        if !self.preload {
            why.push(
                "without --preload a key is there only once a set of this run (or an earlier one) \
                 wrote it"
                    .to_owned(),
            );
        }
        if let Some(c) = &self.over_capacity {
            why.push(format!(
                "the keys do not fit (the cluster holds {} keys), so some were evicted",
                c.keys()
            ));
        }
        if self.deletes {
            why.push("the mix deletes keys".to_owned());
        }
        if let Some(ttl) = self.ttl_s {
            why.push(format!("keys set with a TTL expire after {ttl} s"));
        }
        if why.is_empty() {
            why.push("keys were evicted or deleted by someone else during the run".to_owned());
        }
        Some(format!(
            "misses: {misses} of {gets} gets found no key: {}",
            why.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Capacity = Capacity {
        nodes: 3,
        items: 3000,
        replicas: 2,
    };

    #[test]
    fn a_key_space_over_capacity_is_warned_about_with_the_numbers() {
        assert_eq!(SMALL.keys(), 1500);
        let w = warning(10_000, "bench-", &SMALL).expect("a warning");
        assert!(w.contains("10000 keys do not fit"), "{w}");
        assert!(w.contains("3000 items, 1500 keys at 2 copies"), "{w}");
        assert!(w.contains("--keys 1500"), "{w}");
        assert_eq!(warning(1500, "bench-", &SMALL), None, "exactly full fits");
    }

    #[test]
    fn misses_are_explained_by_what_the_run_did() {
        let causes = MissCauses {
            preload: false,
            deletes: true,
            ttl_s: Some(60),
            over_capacity: Some(SMALL),
        };
        assert_eq!(causes.explain(0, 10), None);
        let text = causes.explain(5, 10).unwrap();
        for part in ["5 of 10 gets", "--preload", "1500 keys", "deletes", "60 s"] {
            assert!(text.contains(part), "{part}: {text}");
        }
        let preloaded = MissCauses {
            preload: true,
            deletes: false,
            ttl_s: None,
            over_capacity: None,
        };
        let text = preloaded.explain(1, 10).unwrap();
        assert!(!text.contains("--preload"), "{text}");
        assert!(text.contains("someone else"), "{text}");
    }
}
