//! AWS Support cases through `SupportClient`, with moto standing in for the AWS Support API.
//!
//! What moto 5.2 implements of the case operations, as found in its moto/support/: CreateCase,
//! DescribeCases and ResolveCase. AddCommunicationToCase, DescribeCommunications and
//! DescribeServices answer HTTP 500 there, so those three (and the error codes AWS answers
//! with, which moto never sends) are tested with aws-smithy-mocks in
//! crates/aws/src/support.rs instead.
//!
//! How moto's cases differ from AWS's, as found:
//! - every DescribeCases and ResolveCase moves the case one step along a cycle (opened,
//!   pending-customer-action, reopened, resolved, unassigned, work-in-progress, opened...),
//!   and moto drops a resolved case from DescribeCases unless includeResolvedCases is set;
//! - ResolveCase answers `finalCaseStatus: resolved` whatever step the case is at;
//! - a case keeps only the communication it was opened with, its display id is always
//!   `foo_display_id`, and times carry no offset (the server's local time, UTC here).

use chrono::TimeDelta;
use opsdesk_aws::support::SupportClient;
use opsdesk_core::cases::{CaseRequest, SupportCases};
use opsdesk_domain::CaseSeverity;
use serde_json::json;

use crate::peers::Moto;

const ACCOUNT: &str = "123456789012";

fn request() -> CaseRequest {
    CaseRequest {
        account_id: ACCOUNT.into(),
        subject: "RDS failover did not complete".into(),
        body: "The writer of orders-prod has been unavailable since 09:52 UTC.".into(),
        severity: CaseSeverity::Urgent,
        service_code: "amazon-relational-database-service-aurora".into(),
        category_code: "performance".into(),
        cc: vec!["tam@example.com".into()],
    }
}

/// Makes every `times`-th call that reads a moto case move it one step (moto's default is 1).
async fn advance_cases_every(moto: &Moto, times: u64) {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/moto-api/state-manager/set-transition",
            moto.endpoint
        ))
        .json(&json!({
            "model_name": "support::case",
            "transition": { "progression": "manual", "times": times },
        }))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "moto refused the transition: {r:?}"
    );
}

#[tokio::test]
async fn a_case_is_opened_followed_and_resolved() {
    let moto = Moto::start().await;
    // Pinned rather than left to moto's default, so the steps counted below stay right.
    advance_cases_every(&moto, 1).await;
    let cases = SupportClient::from_sdk(&moto.sdk_config().await);

    let id = cases.create_case(&request()).await.unwrap();
    assert!(id.starts_with("case-"), "{id}");

    // Opened, then one step: what the client reports is what moto says, not a constant.
    let first = cases.describe_case(ACCOUNT, &id, None).await.unwrap();
    assert_eq!(first.status, "pending-customer-action");
    assert_eq!(first.display_id.as_deref(), Some("foo_display_id"));
    assert_eq!(first.communications.len(), 1, "{first:?}");
    let opening = &first.communications[0];
    assert_eq!(opening.body, request().body);
    assert_eq!(opening.submitted_by, "moto@moto.com");

    // `since` is applied by the client: moto ignores afterTime.
    let before = cases
        .describe_case(ACCOUNT, &id, Some(opening.at - TimeDelta::seconds(1)))
        .await
        .unwrap();
    assert_eq!(before.status, "reopened");
    assert_eq!(before.communications, first.communications);

    // moto's ResolveCase moves the case one step too, which from reopened is resolved; the
    // cycle is then held so the describe after it reads the resolved case.
    assert_eq!(cases.resolve_case(ACCOUNT, &id).await.unwrap(), "resolved");
    advance_cases_every(&moto, 1_000_000).await;
    let resolved = cases
        .describe_case(ACCOUNT, &id, Some(opening.at))
        .await
        .unwrap();
    // Still returned once resolved (moto drops it without includeResolvedCases), and nothing
    // was written after the opening message.
    assert_eq!(resolved.status, "resolved");
    assert_eq!(resolved.display_id.as_deref(), Some("foo_display_id"));
    assert_eq!(resolved.communications, []);
}
