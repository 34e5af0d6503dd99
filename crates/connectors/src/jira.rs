//! Jira Cloud: not built yet.

use opsdesk_domain::connector::ConnectorSpec;

use crate::http::BuildError;

pub struct Jira;

impl Jira {
    pub fn new(
        spec: ConnectorSpec,
    ) -> Result<std::sync::Arc<crate::rt::RequestTracker>, BuildError> {
        Err(BuildError(format!(
            "connectors.{}: Jira is not built yet",
            spec.name
        )))
    }
}
