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
use opsdesk_core::cases::{CaseAccount, CaseRequest, SupportCases};
use opsdesk_domain::CaseSeverity;
use serde_json::json;

use crate::peers::Moto;

const ACCOUNT: &str = "123456789012";

fn account() -> CaseAccount {
    CaseAccount {
        id: ACCOUNT.into(),
        role_arn: None,
    }
}

fn request() -> CaseRequest {
    CaseRequest {
        account: account(),
        subject: "RDS failover did not complete".into(),
        body: "The writer of orders-prod has been unavailable since 09:52 UTC.".into(),
        severity: CaseSeverity::Urgent,
        service_code: "amazon-relational-database-service-aurora".into(),
        category_code: "performance".into(),
        cc: vec!["tam@example.com".into()],
        attachment_set_id: None,
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
    let first = cases.describe_case(&account(), &id, None).await.unwrap();
    assert_eq!(first.status, "pending-customer-action");
    assert_eq!(first.display_id.as_deref(), Some("foo_display_id"));
    assert_eq!(first.communications.len(), 1, "{first:?}");
    let opening = &first.communications[0];
    assert_eq!(opening.body, request().body);
    assert_eq!(opening.submitted_by, "moto@moto.com");

    // `since` is applied by the client: moto ignores afterTime.
    let before = cases
        .describe_case(&account(), &id, Some(opening.at - TimeDelta::seconds(1)))
        .await
        .unwrap();
    assert_eq!(before.status, "reopened");
    assert_eq!(before.communications, first.communications);

    // moto's ResolveCase moves the case one step too, which from reopened is resolved; the
    // cycle is then held so the describe after it reads the resolved case.
    assert_eq!(
        cases.resolve_case(&account(), &id).await.unwrap(),
        "resolved"
    );
    advance_cases_every(&moto, 1_000_000).await;
    let resolved = cases
        .describe_case(&account(), &id, Some(opening.at))
        .await
        .unwrap();
    // Still returned once resolved (moto drops it without includeResolvedCases), and nothing
    // was written after the opening message.
    assert_eq!(resolved.status, "resolved");
    assert_eq!(resolved.display_id.as_deref(), Some("foo_display_id"));
    assert_eq!(resolved.communications, []);
}

/// A case is opened with the credentials of the account it is for: through the account's
/// `support_role_arn` (STS AssumeRole, moto's), or with opsdesk's own credentials only when
/// they belong to that account.
#[tokio::test]
async fn cases_open_in_their_own_account() {
    let moto = Moto::start().await;
    let sdk = moto.sdk_config().await;
    let cases = SupportClient::from_sdk(&sdk);
    let other = |role_arn: Option<&str>| CaseAccount {
        id: "222222222222".into(),
        role_arn: role_arn.map(str::to_owned),
    };

    // moto's own credentials are account 123456789012's: no case for another account.
    let refused = cases
        .create_case(&CaseRequest {
            account: other(None),
            ..request()
        })
        .await
        .unwrap_err();
    assert!(!refused.retryable());
    let text = refused.to_string();
    assert!(
        text.contains("belong to account 123456789012, not 222222222222")
            && text.contains("support_role_arn"),
        "{text}"
    );

    // Through the account's role, the case is that account's.
    let role = other(Some("arn:aws:iam::222222222222:role/opsdesk-support"));
    let id = cases
        .create_case(&CaseRequest {
            account: role.clone(),
            ..request()
        })
        .await
        .unwrap();
    let seen = cases.describe_case(&role, &id, None).await.unwrap();
    assert_eq!(seen.communications[0].body, request().body);
    let own = aws_sdk_support::Client::new(&sdk)
        .describe_cases()
        .include_resolved_cases(true)
        .send()
        .await
        .unwrap();
    assert!(
        own.cases().iter().all(|c| c.case_id() != Some(id.as_str())),
        "the case must not be in account 123456789012"
    );
}
