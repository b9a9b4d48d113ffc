//! Registration: an auxiliary announces itself to the masters (or the load
//! balancer in front of them) at start, retrying with backoff while none
//! answers, and then again every [`REREGISTER_INTERVAL`] so that a master
//! that restarted learns of it. Registering is idempotent on the master.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tracing::{debug, info, warn};

use super::Identity;
use crate::security::secret::Credentials;
use crate::security::{ClusterConfig, base_url};
use crate::shutdown::Shutdown;

/// How often a registered auxiliary registers again.
pub const REREGISTER_INTERVAL: Duration = Duration::from_secs(5);
/// First retry delay while no master answers; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest retry delay while no master answers.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// After its keys have moved away, a node keeps answering this long before
/// it stops, so that a master that has not yet applied the map without it
/// (followers apply a committed change a moment after the leader) never
/// writes to a node that is gone.
pub const DRAIN: Duration = Duration::from_secs(3);
/// Longest wait for one registration call.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How an auxiliary calls the masters: an HTTP client that trusts `TLS_CA`
/// for `https://` masters, and the cluster secret on every call.
#[derive(Clone)]
pub struct Caller {
    client: reqwest::Client,
    credentials: Arc<Credentials>,
}

impl Caller {
    /// A caller for these settings.
    pub fn new(
        config: &ClusterConfig,
        credentials: Arc<Credentials>,
    ) -> Result<Self, crate::error::StartError> {
        let client = crate::security::tls::client_builder(config.tls_ca.as_deref())?
            .build()
            .map_err(|e| crate::error::StartError::Client(e.to_string()))?;
        Ok(Caller {
            client,
            credentials,
        })
    }
}

/// Registers `identity` with every address in `masters` until `shutdown`
/// triggers. A master answering 410 Gone has decommissioned this node (its
/// keys have moved away): `node` is shut down.
pub async fn register_loop(
    identity: Identity,
    masters: Vec<String>,
    caller: Caller,
    fence: Arc<super::EpochFence>,
    shutdown: Shutdown,
    node: Shutdown,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut registered_once = false;
    loop {
        // The epoch it has seen goes with every registration: masters that
        // lost their map and rebuild it start past it (see DESIGN's
        // cluster map), or they would be refused here forever.
        let body = json!({
            "id": identity.node_id,
            "addr": identity.addr,
            "data_addr": identity.data_addr,
            "incarnation": identity.incarnation,
            "epoch": fence.current(),
        });
        let mut accepted = 0;
        for master in &masters {
            let url = format!("{}/nodes", base_url(master));
            let req = caller.client.post(&url).timeout(CALL_TIMEOUT).json(&body);
            match caller.credentials.sign(req).send().await {
                Ok(resp) if resp.status().is_success() => {
                    accepted += 1;
                    // The epoch of a map that holds this process; an older
                    // master does not say, and its answer opens the fence
                    // as it is.
                    let epoch = resp
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .and_then(|body| body.get("epoch").and_then(|e| e.as_u64()));
                    fence.registered(epoch);
                }
                Ok(resp) if resp.status() == StatusCode::GONE => {
                    warn!(master = %master, "this node was decommissioned; shutting down");
                    tokio::time::sleep(DRAIN).await;
                    node.trigger();
                    return;
                }
                Ok(resp) => {
                    warn!(master = %master, status = %resp.status(), "registration refused")
                }
                Err(e) => debug!(master = %master, error = %e, "registration failed"),
            }
        }
        let wait = if accepted > 0 {
            if !registered_once {
                info!(masters = accepted, "registered with the masters");
                registered_once = true;
            }
            backoff = FIRST_BACKOFF;
            REREGISTER_INTERVAL
        } else {
            if registered_once {
                warn!("no master accepted the registration; retrying");
            }
            let wait = backoff;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            wait
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.triggered() => return,
        }
    }
}

/// Longest wait for the masters to move this node's keys away.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(75);

/// Asks the masters to decommission this node, and waits until one says its
/// keys have moved (or that it is unknown). Gives up quietly if no master
/// answers: the node then simply stops, as if it had died.
pub async fn leave(identity: &Identity, masters: &[String], caller: &Caller) {
    info!(node = %identity.node_id, "leaving: asking the masters to move this node's keys");
    let id: String = identity
        .node_id
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    for master in masters {
        let url = format!("{}/nodes/{id}", base_url(master));
        let req = caller.client.delete(&url).timeout(LEAVE_TIMEOUT);
        match caller.credentials.sign(req).send().await {
            Ok(resp) if resp.status().is_success() => {
                info!(node = %identity.node_id, master = %master, "left the cluster; keys handed over");
                tokio::time::sleep(DRAIN).await;
                return;
            }
            Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                info!(node = %identity.node_id, master = %master, "the master does not know this node; nothing to hand over");
                return;
            }
            Ok(resp) if resp.status() == StatusCode::CONFLICT => {
                warn!(node = %identity.node_id, master = %master, "no other auxiliary can take the keys; stopping with them");
                return;
            }
            Ok(resp) => warn!(master = %master, status = %resp.status(), "leave refused"),
            Err(e) => warn!(master = %master, error = %e, "leave failed"),
        }
    }
    warn!(node = %identity.node_id, "no master took the leave; stopping without handing keys over");
}
