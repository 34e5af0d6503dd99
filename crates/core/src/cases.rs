//! AWS Support cases as opsdesk sees them: what it asks AWS for and what it reads back.
//!
//! The calls go through [`SupportCases`], which opsdesk-aws implements with the AWS Support
//! API; core decides when to call it and records every result on the ticket.

use chrono::{DateTime, Utc};
use opsdesk_domain::CaseSeverity;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The case to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRequest {
    /// The AWS account the case is opened in.
    pub account_id: String,
    pub subject: String,
    pub body: String,
    pub severity: CaseSeverity,
    pub service_code: String,
    pub category_code: String,
    /// The AWS account team, copied on every message of the case.
    pub cc: Vec<String>,
}

/// One message on a case, as AWS Support keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CaseCommunication {
    pub body: String,
    /// Who wrote it, as AWS names them (an address, or "Amazon Web Services").
    pub submitted_by: String,
    pub at: DateTime<Utc>,
}

/// A case as AWS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseState {
    /// AWS's status name: `opened`, `pending-customer-action`, `reopened`, `resolved`, ...
    pub status: String,
    /// The number people see in the Support Center.
    pub display_id: Option<String>,
    /// Messages created after the `since` asked for, oldest first.
    pub communications: Vec<CaseCommunication>,
}

/// A service and its categories, from DescribeServices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportService {
    pub code: String,
    pub name: String,
    pub categories: Vec<(String, String)>,
}

/// Why a call to AWS Support failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    /// The account's plan has no AWS Support API (AWS answered SubscriptionRequiredException).
    #[error("the AWS Support API is not available on this account's support plan: {0}")]
    SubscriptionRequired(String),
    /// AWS asked to slow down; try again later.
    #[error("AWS Support is throttling requests: {0}")]
    Throttled(String),
    /// The case does not exist (or is not visible to these credentials).
    #[error("AWS Support has no such case: {0}")]
    NotFound(String),
    /// Anything else: network, credentials, a refused request.
    #[error("AWS Support call failed: {0}")]
    Failed(String),
}

impl CaseError {
    /// Whether trying the same call later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, CaseError::Throttled(_) | CaseError::Failed(_))
    }
}

/// The AWS Support API, as opsdesk uses it. Every call names the account it is for, so an
/// implementation may hold one client per account.
#[async_trait::async_trait]
pub trait SupportCases: Send + Sync {
    /// CreateCase with issueType `technical`; the new case's id.
    async fn create_case(&self, case: &CaseRequest) -> Result<String, CaseError>;

    /// DescribeCases for one case (resolved ones included) with the communications created
    /// after `since` (all of them when `None`).
    async fn describe_case(
        &self,
        account_id: &str,
        case_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<CaseState, CaseError>;

    /// AddCommunicationToCase.
    async fn add_communication(
        &self,
        account_id: &str,
        case_id: &str,
        body: &str,
        cc: &[String],
    ) -> Result<(), CaseError>;

    /// ResolveCase; the status the case ends in.
    async fn resolve_case(&self, account_id: &str, case_id: &str) -> Result<String, CaseError>;

    /// DescribeServices: the service and category codes CreateCase accepts.
    async fn services(&self, account_id: &str) -> Result<Vec<SupportService>, CaseError>;
}
