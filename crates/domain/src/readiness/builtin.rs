//! The readiness lens opsdesk ships with: what a workload on AWS needs before its support
//! capability can be called ready. It is an ordinary custom lens, so it can be exported to the
//! Well-Architected Tool or copied and changed by a team.

use super::lens::{Lens, LensError};

/// The built-in lens as a JSON document in the custom lens format.
pub const OPSDESK_READINESS_JSON: &str = include_str!("opsdesk-readiness.json");

/// The built-in lens, read and checked like any imported lens.
pub fn opsdesk_readiness() -> Result<Lens, LensError> {
    Lens::parse(OPSDESK_READINESS_JSON)
}
