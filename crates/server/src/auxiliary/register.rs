//! Registration: an auxiliary announces itself to the masters (or the load
//! balancer in front of them) at start, retrying with backoff while none
//! answers, and then again every [`REREGISTER_INTERVAL`] so that a master
//! that restarted learns of it. Registering is idempotent on the master.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tracing::{debug, info, warn};

use super::Identity;
use crate::shutdown::Shutdown;

/// How often a registered auxiliary registers again.
pub const REREGISTER_INTERVAL: Duration = Duration::from_secs(5);
/// First retry delay while no master answers; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest retry delay while no master answers.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait for one registration call.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Registers `identity` with every address in `masters` until shutdown. A
/// master answering 410 Gone has decommissioned this node: it shuts down.
pub async fn register_loop(identity: Identity, masters: Vec<String>, shutdown: Shutdown) {
    let client = match reqwest::Client::builder().timeout(CALL_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot build the registration client");
            return;
        }
    };
    let body = json!({
        "id": identity.node_id,
        "addr": identity.addr,
        "data_addr": identity.data_addr,
        "incarnation": identity.incarnation,
    });
    let mut backoff = FIRST_BACKOFF;
    let mut registered_once = false;
    loop {
        let mut accepted = 0;
        for master in &masters {
            let url = format!("http://{master}/nodes");
            match client.post(&url).json(&body).send().await {
                Ok(resp) if resp.status().is_success() => accepted += 1,
                Ok(resp) if resp.status() == StatusCode::GONE => {
                    warn!(master = %master, "this node was decommissioned; shutting down");
                    shutdown.trigger();
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
