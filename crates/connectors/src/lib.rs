//! Connectors to other ticketing systems: one module per system, each implementing
//! [`opsdesk_core::connectors::RemoteSystem`] against the system's published API, and the loop
//! that keeps a connector's links in step.

mod http;
pub mod jira;
pub mod rt;
pub mod servicenow;
pub mod webhook;

use std::sync::Arc;
use std::time::{Duration, Instant};

use opsdesk_core::connectors::RemoteSystem;
use opsdesk_core::Desk;
use opsdesk_domain::connector::{ConnectorSpec, ConnectorType};
use tokio_util::sync::CancellationToken;

/// How often opsdesk looks for its own changes to send (a cheap query of the database); the
/// other side is asked every `poll_seconds`.
const LOCAL_TICK: Duration = Duration::from_secs(1);

/// The client for a connector's system.
pub fn remote(spec: &ConnectorSpec) -> Result<Arc<dyn RemoteSystem>, rt::BuildError> {
    match spec.kind {
        ConnectorType::RequestTracker => Ok(Arc::new(rt::RequestTracker::new(spec.clone())?)),
        ConnectorType::Jira => Ok(jira::Jira::new(spec.clone())?),
        ConnectorType::Servicenow => Ok(servicenow::ServiceNow::new(spec.clone())?),
    }
}

/// Keeps the connector's links in step until `stop`.
pub async fn run(desk: Desk, remote: Arc<dyn RemoteSystem>, stop: CancellationToken) {
    let name = remote.spec().name.clone();
    let poll = Duration::from_secs(remote.spec().poll_seconds.max(1));
    tracing::info!(connector = %name, system = remote.spec().kind.label(), "connector running");
    let mut looked: Option<Instant> = None;
    let mut tick = tokio::time::interval(LOCAL_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Taken first, so that a look asked for is not asked again after a poll.
        let asked = desk.take_connector_look(&name);
        let look = asked || looked.is_none_or(|t| t.elapsed() >= poll);
        if look {
            looked = Some(Instant::now());
        }
        if let Err(e) = desk.sync_connector(remote.as_ref(), look).await {
            if desk.db().is_closed() {
                return;
            }
            tracing::warn!(connector = %name, error = %e, "connector pass failed");
        }
    }
}
