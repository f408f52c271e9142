//! Shutdown, in one place: the signal (SIGINT or SIGTERM), one token that every connection,
//! generator and WebSocket loop watches, one tracker for every task that must end before the
//! process does, and one deadline for them all.
//!
//! When shutdown begins, the accept loop stops, each connection finishes its response in
//! flight and closes, and each open stream ends at once: text bodies cleanly, SSE bodies
//! without their `end` event (so that clients resume elsewhere), WebSockets with 1001.
//! [`Shutdown::finish`] then waits for all of them, at most the shutdown timeout.

use std::{future::Future, time::Duration};

use tokio_util::{
    sync::{CancellationToken, WaitForCancellationFuture},
    task::TaskTracker,
};

/// The server's shutdown: cheap to clone, every clone the same.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tasks: TaskTracker,
}

impl Shutdown {
    /// Tells every connection, stream and task to end now.
    pub fn begin(&self) {
        self.token.cancel();
    }

    /// Completes when shutdown has begun.
    pub fn begun(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// The token generators watch (they end early when it is cancelled).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Spawns `task`, tracked: [`Shutdown::finish`] waits for it.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Waits, at most `deadline`, for every tracked task to end; returns how many had not.
    pub async fn finish(&self, deadline: Duration) -> usize {
        self.tasks.close();
        match tokio::time::timeout(deadline, self.tasks.wait()).await {
            Ok(()) => 0,
            Err(_) => self.tasks.len(),
        }
    }
}

/// Completes when the process receives SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
