//! One way to shut down: every node owns a [`Shutdown`], a cancellation
//! token that every background task and listener watches, plus a tracker
//! that tells when they have all stopped.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long in-flight work gets to finish after shutdown starts.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// A node's shutdown signal and the tasks that must stop on it.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tasks: TaskTracker,
}

impl Shutdown {
    /// A fresh, un-triggered shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// A shutdown that also triggers when `parent` does (for nodes inside
    /// `distcache local`).
    pub fn child_of(parent: &Shutdown) -> Self {
        Shutdown {
            token: parent.token.child_token(),
            tasks: TaskTracker::new(),
        }
    }

    /// Starts shutting down.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// True once shutdown started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when shutdown starts.
    pub async fn triggered(&self) {
        self.token.cancelled().await
    }

    /// The token, for APIs that take one.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Runs `task` in the background as part of this node; it must return
    /// soon after shutdown triggers.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// Resolves once the tasks are closed to new ones (the node's last step,
    /// [`Shutdown::wait_for_tasks`]) and every one has ended: for a thread
    /// whose runtime drives some of them.
    pub async fn tasks_ended(&self) {
        self.tasks.wait().await
    }

    /// Waits for every spawned task to end, at most `deadline`. Returns false
    /// if some were still running.
    pub async fn wait_for_tasks(&self, deadline: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_ok()
    }
}
