//! ServiceNow: not built yet.

use opsdesk_domain::connector::ConnectorSpec;

use crate::http::BuildError;

pub struct ServiceNow;

impl ServiceNow {
    pub fn new(
        spec: ConnectorSpec,
    ) -> Result<std::sync::Arc<crate::rt::RequestTracker>, BuildError> {
        Err(BuildError(format!(
            "connectors.{}: ServiceNow is not built yet",
            spec.name
        )))
    }
}
