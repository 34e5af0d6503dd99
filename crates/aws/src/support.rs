//! AWS Support cases through the AWS Support API: [`SupportClient`] implements
//! [`SupportCases`], the calls core makes to open a case, follow it, answer it and resolve it.
//!
//! The client comes from an [`SdkConfig`], so it takes credentials and endpoint the usual way
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SUPPORT`, profiles, instance roles). AWS Support
//! answers in us-east-1, the region used when none is configured.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_support::config::http::HttpResponse;
use aws_sdk_support::config::SharedCredentialsProvider;
use aws_sdk_support::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_support::types::Communication;
use chrono::{DateTime, SecondsFormat, Utc};
use opsdesk_core::cases::{
    CaseAccount, CaseAttachmentRef, CaseCommunication, CaseError, CaseFile, CaseRequest, CaseState,
    SupportCases, SupportService,
};
use opsdesk_domain::signal::parse_time;
use opsdesk_domain::CaseSeverity;

use crate::poll::{aws_error, PollError};

/// The API's name in messages.
const API: &str = "AWS Support";
/// The region of the AWS Support API endpoint in the commercial partition.
const DEFAULT_REGION: &str = "us-east-1";
/// opsdesk opens technical cases only; account and billing questions go elsewhere.
const ISSUE_TYPE: &str = "technical";
const LANGUAGE: &str = "en";
/// DescribeCases returns "the five most recent communications" of a case.
const RECENT_COMMUNICATIONS: usize = 5;
/// DescribeCommunications' largest page.
const COMMUNICATIONS_PAGE: i32 = 100;
/// The error code of a case that does not exist.
const CASE_ID_NOT_FOUND: &str = "CaseIdNotFound";
/// A throttling code the shared list in [`crate::poll`] does not name.
const TOO_MANY_REQUESTS: &str = "TooManyRequests";
/// What a resolved case is called when ResolveCase does not say.
const RESOLVED: &str = "resolved";

/// The AWS Support API client. The credentials of a call decide whose cases it sees: for an
/// account with a `support_role_arn` the call goes through a client that assumes that role
/// (one per role, kept); otherwise through opsdesk's own credentials, and only when they
/// belong to that account (STS GetCallerIdentity), so a case never opens in the wrong account.
#[derive(Debug, Clone)]
pub struct SupportClient {
    /// The client with opsdesk's own credentials.
    client: aws_sdk_support::Client,
    /// The configuration roles are assumed from; none for a client made from a bare SDK
    /// client, which then serves every account as it is.
    sdk: Option<SdkConfig>,
    /// A client per assumed role.
    roles: Arc<tokio::sync::Mutex<HashMap<String, aws_sdk_support::Client>>>,
    /// The account opsdesk's own credentials belong to, once asked.
    own_account: Arc<tokio::sync::OnceCell<String>>,
    /// DescribeServices' answer and when it was read: the list changes rarely.
    services: Arc<tokio::sync::Mutex<Option<ServicesRead>>>,
}

/// A DescribeServices answer and when it was read.
type ServicesRead = (Instant, Vec<SupportService>);

/// How long a DescribeServices answer is used before it is asked again.
const SERVICES_TTL: Duration = Duration::from_secs(24 * 60 * 60);

impl SupportClient {
    /// A client that serves every account with `client` as it is (no roles, no account check).
    pub fn new(client: aws_sdk_support::Client) -> SupportClient {
        SupportClient {
            client,
            sdk: None,
            roles: Arc::default(),
            own_account: Arc::default(),
            services: Arc::default(),
        }
    }

    /// A client with `sdk`'s credentials, endpoint and retry settings, in its region or, when
    /// it has none, in us-east-1.
    pub fn from_sdk(sdk: &SdkConfig) -> SupportClient {
        SupportClient {
            sdk: Some(sdk.clone()),
            ..SupportClient::new(support_client(sdk, None))
        }
    }

    /// The client for `account`'s calls.
    async fn client_for(
        &self,
        account: &CaseAccount,
    ) -> Result<aws_sdk_support::Client, CaseError> {
        let Some(sdk) = &self.sdk else {
            return Ok(self.client.clone());
        };
        if let Some(role) = &account.role_arn {
            let mut roles = self.roles.lock().await;
            if let Some(c) = roles.get(role) {
                return Ok(c.clone());
            }
            let provider = aws_config::sts::AssumeRoleProvider::builder(role)
                .session_name("opsdesk-support")
                .configure(sdk)
                .build()
                .await;
            let c = support_client(sdk, Some(SharedCredentialsProvider::new(provider)));
            roles.insert(role.clone(), c.clone());
            return Ok(c);
        }
        let own = self
            .own_account
            .get_or_try_init(|| async {
                aws_sdk_sts::Client::new(sdk)
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| {
                        CaseError::Failed(format!("GetCallerIdentity: {}", DisplayErrorContext(&e)))
                    })?
                    .account()
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        CaseError::Failed("GetCallerIdentity named no account".to_owned())
                    })
            })
            .await?;
        if own != &account.id {
            return Err(CaseError::Refused(format!(
                "opsdesk's AWS credentials belong to account {own}, not {id}: give account {id} \
                 a support_role_arn (an IAM role there that opsdesk may assume), or run opsdesk \
                 with credentials of account {id}",
                id = account.id
            )));
        }
        Ok(self.client.clone())
    }

    /// A client configured from the environment, as the AWS CLI is.
    pub async fn from_env() -> SupportClient {
        SupportClient::from_sdk(&aws_config::defaults(BehaviorVersion::latest()).load().await)
    }
}

#[async_trait::async_trait]
impl SupportCases for SupportClient {
    async fn create_case(&self, case: &CaseRequest) -> Result<String, CaseError> {
        const OPERATION: &str = "CreateCase";
        let out = self
            .client_for(&case.account)
            .await?
            .create_case()
            .subject(&case.subject)
            .communication_body(&case.body)
            .severity_code(case.severity.as_str())
            .service_code(&case.service_code)
            .category_code(&case.category_code)
            .issue_type(ISSUE_TYPE)
            .language(LANGUAGE)
            .set_cc_email_addresses(cc(&case.cc))
            .set_attachment_set_id(case.attachment_set_id.clone())
            .send()
            .await
            .map_err(|e| case_error(OPERATION, e))?;
        match out.case_id() {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ => Err(CaseError::Failed(format!(
                "{OPERATION}: AWS Support answered without a case id"
            ))),
        }
    }

    /// DescribeCases brings the case with its five most recent communications. Only when all
    /// five are newer than `since` (or `since` is `None`) and AWS says there are more does
    /// DescribeCommunications page through the rest. moto implements DescribeCases but not
    /// DescribeCommunications, and its cases have one communication, so it never gets there.
    async fn describe_case(
        &self,
        account: &CaseAccount,
        case_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<CaseState, CaseError> {
        const OPERATION: &str = "DescribeCases";
        let client = self.client_for(account).await?;
        let out = client
            .describe_cases()
            .case_id_list(case_id)
            .include_resolved_cases(true)
            .include_communications(true)
            .send()
            .await
            .map_err(|e| case_error(OPERATION, e))?;
        let Some(case) = out.cases().iter().find(|c| c.case_id() == Some(case_id)) else {
            return Err(CaseError::NotFound(format!(
                "{OPERATION} did not return case {case_id}"
            )));
        };
        let recent = case.recent_communications();
        let listed = recent.map(|r| r.communications()).unwrap_or_default();
        let mut communications = listed
            .iter()
            .map(|c| communication(OPERATION, c))
            .collect::<Result<Vec<_>, _>>()?;
        let more = recent
            .and_then(|r| r.next_token())
            .is_some_and(|t| !t.is_empty());
        let reaches_since = since.is_some_and(|since| communications.iter().any(|c| c.at <= since));
        if more && listed.len() >= RECENT_COMMUNICATIONS && !reaches_since {
            communications = communications_after(&client, case_id, since).await?;
        }
        // AWS's afterTime is not documented as exclusive, so the filter is applied here too.
        communications.retain(|c| since.is_none_or(|since| c.at > since));
        communications.sort_by_key(|c| c.at);
        Ok(CaseState {
            status: case.status().unwrap_or_default().to_owned(),
            display_id: case.display_id().map(str::to_owned),
            communications,
        })
    }

    async fn add_communication(
        &self,
        account: &CaseAccount,
        case_id: &str,
        body: &str,
        cc_addresses: &[String],
        attachment_set_id: Option<&str>,
    ) -> Result<(), CaseError> {
        const OPERATION: &str = "AddCommunicationToCase";
        let out = self
            .client_for(account)
            .await?
            .add_communication_to_case()
            .case_id(case_id)
            .communication_body(body)
            .set_cc_email_addresses(cc(cc_addresses))
            .set_attachment_set_id(attachment_set_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| case_error(OPERATION, e))?;
        if out.result() {
            Ok(())
        } else {
            Err(CaseError::Failed(format!(
                "{OPERATION}: AWS Support did not add the communication to case {case_id}"
            )))
        }
    }

    async fn add_attachment_set(
        &self,
        account: &CaseAccount,
        files: &[CaseFile],
    ) -> Result<String, CaseError> {
        const OPERATION: &str = "AddAttachmentsToSet";
        let attachments = files
            .iter()
            .map(|f| {
                aws_sdk_support::types::Attachment::builder()
                    .file_name(&f.name)
                    .data(aws_sdk_support::primitives::Blob::new(f.bytes.clone()))
                    .build()
            })
            .collect();
        let out = self
            .client_for(account)
            .await?
            .add_attachments_to_set()
            .set_attachments(Some(attachments))
            .send()
            .await
            .map_err(|e| case_error(OPERATION, e))?;
        match out.attachment_set_id() {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ => Err(CaseError::Failed(format!(
                "{OPERATION}: AWS Support answered without an attachment set id"
            ))),
        }
    }

    async fn attachment(
        &self,
        account: &CaseAccount,
        attachment_id: &str,
    ) -> Result<CaseFile, CaseError> {
        const OPERATION: &str = "DescribeAttachment";
        let out = self
            .client_for(account)
            .await?
            .describe_attachment()
            .attachment_id(attachment_id)
            .send()
            .await
            .map_err(|e| case_error(OPERATION, e))?;
        let a = out.attachment().ok_or_else(|| {
            CaseError::Refused(format!(
                "{OPERATION}: AWS Support answered without attachment {attachment_id}"
            ))
        })?;
        Ok(CaseFile {
            name: a.file_name().unwrap_or("attachment").to_owned(),
            bytes: a.data().map(|d| d.as_ref().to_vec()).unwrap_or_default(),
        })
    }

    async fn resolve_case(
        &self,
        account: &CaseAccount,
        case_id: &str,
    ) -> Result<String, CaseError> {
        let out = self
            .client_for(account)
            .await?
            .resolve_case()
            .case_id(case_id)
            .send()
            .await
            .map_err(|e| case_error("ResolveCase", e))?;
        Ok(out
            .final_case_status()
            .filter(|s| !s.is_empty())
            .unwrap_or(RESOLVED)
            .to_owned())
    }

    /// The same for every account; cached for a day; a failed call is not cached.
    async fn services(&self, account: &CaseAccount) -> Result<Vec<SupportService>, CaseError> {
        let client = self.client_for(account).await?;
        let mut cached = self.services.lock().await;
        if let Some((at, services)) = cached.as_ref() {
            if at.elapsed() < SERVICES_TTL {
                return Ok(services.clone());
            }
        }
        let services = describe_services(&client).await?;
        *cached = Some((Instant::now(), services.clone()));
        Ok(services)
    }

    /// Not cached here: core keeps the answer per account, shared by every node.
    async fn severity_levels(&self, account: &CaseAccount) -> Result<Vec<CaseSeverity>, CaseError> {
        const OPERATION: &str = "DescribeSeverityLevels";
        let out = self
            .client_for(account)
            .await?
            .describe_severity_levels()
            .language(LANGUAGE)
            .send()
            .await
            .map_err(|e| case_error(OPERATION, e))?;
        severity_levels(out.severity_levels())
    }
}

/// The severities of a DescribeSeverityLevels answer, lowest first. A code opsdesk does not
/// know is passed over (and logged); an answer with none it knows is an error, so that the
/// plan table decides rather than an empty list.
fn severity_levels(
    levels: &[aws_sdk_support::types::SeverityLevel],
) -> Result<Vec<CaseSeverity>, CaseError> {
    let mut known: Vec<CaseSeverity> = Vec::with_capacity(levels.len());
    for level in levels {
        let code = level.code().unwrap_or_default();
        match CaseSeverity::parse(code) {
            Some(sev) if !known.contains(&sev) => known.push(sev),
            Some(_) => {}
            None => tracing::info!(
                code,
                "DescribeSeverityLevels named a severity opsdesk does not know"
            ),
        }
    }
    known.sort();
    if known.is_empty() {
        return Err(CaseError::Failed(
            "DescribeSeverityLevels: AWS Support named no severity opsdesk knows".to_owned(),
        ));
    }
    Ok(known)
}

/// Every communication of a case created after `since`, through DescribeCommunications.
async fn communications_after(
    client: &aws_sdk_support::Client,
    case_id: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<CaseCommunication>, CaseError> {
    const OPERATION: &str = "DescribeCommunications";
    let listed = client
        .describe_communications()
        .case_id(case_id)
        .set_after_time(since.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)))
        .max_results(COMMUNICATIONS_PAGE)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| case_error(OPERATION, e))?;
    listed.iter().map(|c| communication(OPERATION, c)).collect()
}

async fn describe_services(
    client: &aws_sdk_support::Client,
) -> Result<Vec<SupportService>, CaseError> {
    let out = client
        .describe_services()
        .language(LANGUAGE)
        .send()
        .await
        .map_err(|e| case_error("DescribeServices", e))?;
    // A service or category without a code cannot be named in CreateCase.
    Ok(out
        .services()
        .iter()
        .filter_map(|s| {
            let code = s.code().filter(|c| !c.is_empty())?;
            Some(SupportService {
                code: code.to_owned(),
                name: s.name().unwrap_or(code).to_owned(),
                categories: s
                    .categories()
                    .iter()
                    .filter_map(|c| {
                        let code = c.code().filter(|c| !c.is_empty())?;
                        Some((code.to_owned(), c.name().unwrap_or(code).to_owned()))
                    })
                    .collect(),
            })
        })
        .collect())
}

/// An AWS Support client from `sdk`, with other credentials when given, in us-east-1 when
/// `sdk` names no region.
fn support_client(
    sdk: &SdkConfig,
    credentials: Option<SharedCredentialsProvider>,
) -> aws_sdk_support::Client {
    let mut config = aws_sdk_support::config::Builder::from(sdk)
        // A case's calls must end well within the case worker's lease.
        .timeout_config(
            aws_sdk_support::config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        );
    if sdk.region().is_none() {
        config = config.region(Region::from_static(DEFAULT_REGION));
    }
    if let Some(c) = credentials {
        config = config.credentials_provider(c);
    }
    aws_sdk_support::Client::from_conf(config.build())
}

/// The addresses to copy, or none at all: AWS refuses an empty list on some operations.
/// The copies a case call sends: AWS refuses the whole call for more than
/// [`opsdesk_domain::support::EMAILS_MAX`], so an account saved before that limit was checked
/// copies its first ones rather than losing the case.
fn cc(addresses: &[String]) -> Option<Vec<String>> {
    (!addresses.is_empty()).then(|| {
        addresses
            .iter()
            .take(opsdesk_domain::support::EMAILS_MAX)
            .cloned()
            .collect()
    })
}

/// A communication as opsdesk keeps it. AWS writes times as RFC 3339 strings; a time without
/// an offset (moto's) is read as UTC. A time that does not parse at all is an error rather
/// than a skipped message: the caller moves `since` past what it read, so a message skipped
/// once would never be seen again.
fn communication(operation: &str, c: &Communication) -> Result<CaseCommunication, CaseError> {
    let created = c.time_created().unwrap_or_default();
    let at = parse_time(created).ok_or_else(|| {
        CaseError::Failed(format!(
            "{operation}: a communication of case {} has timeCreated {created:?}, which is not \
             an RFC 3339 time",
            c.case_id().unwrap_or("(no case id)")
        ))
    })?;
    Ok(CaseCommunication {
        body: c.body().unwrap_or_default().to_owned(),
        submitted_by: c.submitted_by().unwrap_or_default().to_owned(),
        at,
        attachments: c
            .attachment_set()
            .iter()
            .filter_map(|a| {
                Some(CaseAttachmentRef {
                    id: a.attachment_id()?.to_owned(),
                    name: a.file_name().unwrap_or("attachment").to_owned(),
                })
            })
            .collect(),
    })
}

/// Sorts an SDK error into the cases core treats differently; the message names the
/// operation and, when AWS answered, its error code and message.
fn case_error<E>(operation: &str, err: SdkError<E, HttpResponse>) -> CaseError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    let message = match (code.as_deref(), err.message()) {
        (Some(code), Some(message)) => format!("{operation}: {code}: {message}"),
        (Some(code), None) => format!("{operation}: {code}"),
        (None, _) => format!("{operation}: {}", DisplayErrorContext(&err)),
    };
    match code.as_deref() {
        Some(CASE_ID_NOT_FOUND | "AttachmentIdNotFound" | "AttachmentSetIdNotFound") => {
            CaseError::NotFound(message)
        }
        Some(TOO_MANY_REQUESTS | "DescribeAttachmentLimitExceeded") => {
            CaseError::Throttled(message)
        }
        // Files AWS will never take: too many in a set, or too large.
        Some("AttachmentLimitExceeded" | "AttachmentSetSizeLimitExceeded") => {
            CaseError::Refused(message)
        }
        // A request AWS finds invalid (unknown service or category code, say) stays invalid.
        Some(c) if c.starts_with("InvalidParameter") || c.ends_with("ValidationException") => {
            CaseError::Refused(message)
        }
        // The pollers' sorting knows the plan and throttling codes and HTTP 429.
        _ => match aws_error(API, err) {
            PollError::SubscriptionRequired { .. } => CaseError::SubscriptionRequired(message),
            PollError::Throttled { .. } => CaseError::Throttled(message),
            PollError::Aws { .. } | PollError::Desk(_) => CaseError::Failed(message),
        },
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_support::config::retry::RetryConfig;
    use aws_sdk_support::Client;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use opsdesk_domain::CaseSeverity;
    use serde_json::{json, Value};

    use super::*;

    const CASE: &str = "case-123456789012-muen-2026-3f1a9c2b7d4e5f60";
    const ACCOUNT: &str = "123456789012";

    fn account() -> CaseAccount {
        CaseAccount {
            id: ACCOUNT.into(),
            role_arn: None,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// A rule answering `$op` with HTTP `$status` and the JSON `$body`, every time it matches.
    macro_rules! reply {
        ($op:expr, $status:expr, $body:expr) => {
            mock!($op)
                .sequence()
                .http_status($status, Some($body.to_string()))
                .repeatedly()
                .build()
        };
        ($op:expr, when $matches:expr, $status:expr, $body:expr) => {
            mock!($op)
                .match_requests($matches)
                .sequence()
                .http_status($status, Some($body.to_string()))
                .repeatedly()
                .build()
        };
    }

    fn client(rules: &[Rule]) -> SupportClient {
        SupportClient::new(mock_client!(
            aws_sdk_support,
            RuleMode::MatchAny,
            rules,
            |c| c.retry_config(RetryConfig::disabled())
        ))
    }

    fn message(body: &str, by: &str, created: &str) -> Value {
        json!({"caseId": CASE, "body": body, "submittedBy": by, "timeCreated": created})
    }

    fn case(status: &str, communications: Vec<Value>, next_token: Option<&str>) -> Value {
        let mut recent = json!({ "communications": communications });
        if let Some(token) = next_token {
            recent["nextToken"] = json!(token);
        }
        json!({"cases": [{
            "caseId": CASE,
            "displayId": "178394561",
            "subject": "RDS failover did not complete",
            "status": status,
            "serviceCode": "amazon-relational-database-service-aurora",
            "categoryCode": "performance",
            "severityCode": "urgent",
            "submittedBy": "ops@example.com",
            "timeCreated": "2026-11-24T10:00:00.000Z",
            "recentCommunications": recent,
            "ccEmailAddresses": ["tam@example.com"],
            "language": "en"
        }]})
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

    fn aws_error_body(code: &str, message: &str) -> Value {
        json!({"__type": code, "message": message})
    }

    #[tokio::test]
    async fn create_case_sends_the_case_and_returns_its_id() {
        let rules = [reply!(
            Client::create_case,
            when | r | r.subject() == Some("RDS failover did not complete")
                && r.communication_body()
                    == Some("The writer of orders-prod has been unavailable since 09:52 UTC.")
                && r.severity_code() == Some("urgent")
                && r.service_code() == Some("amazon-relational-database-service-aurora")
                && r.category_code() == Some("performance")
                && r.issue_type() == Some("technical")
                && r.language() == Some("en")
                && r.cc_email_addresses() == ["tam@example.com"],
            200,
            json!({ "caseId": CASE })
        )];
        let id = client(&rules).create_case(&request()).await.unwrap();
        assert_eq!(id, CASE);
        assert_eq!(rules[0].num_calls(), 1);
    }

    #[tokio::test]
    async fn no_call_copies_more_addresses_than_aws_takes() {
        let team: Vec<String> = (0..12).map(|i| format!("tam{i}@example.com")).collect();
        fn first_ten(cc: &[String]) -> bool {
            cc.len() == 10
                && cc
                    .iter()
                    .zip(0..)
                    .all(|(c, i)| *c == format!("tam{i}@example.com"))
        }
        let rules = [
            reply!(
                Client::create_case,
                when | r | first_ten(r.cc_email_addresses()),
                200,
                json!({ "caseId": CASE })
            ),
            reply!(
                Client::add_communication_to_case,
                when | r | first_ten(r.cc_email_addresses()),
                200,
                json!({ "result": true })
            ),
        ];
        let client = client(&rules);
        let case = CaseRequest {
            cc: team.clone(),
            ..request()
        };
        assert_eq!(client.create_case(&case).await.unwrap(), CASE);
        client
            .add_communication(&account(), CASE, "An update.", &team, None)
            .await
            .unwrap();
        assert_eq!(rules[0].num_calls(), 1);
        assert_eq!(rules[1].num_calls(), 1);
    }

    #[tokio::test]
    async fn a_case_without_copies_sends_no_cc_list() {
        let rules = [reply!(
            Client::create_case,
            when | r | r.cc_email_addresses.is_none(),
            200,
            json!({ "caseId": CASE })
        )];
        let case = CaseRequest {
            cc: vec![],
            ..request()
        };
        assert_eq!(client(&rules).create_case(&case).await.unwrap(), CASE);
    }

    #[tokio::test]
    async fn the_support_plan_error_is_told_apart() {
        let rules = [reply!(
            Client::create_case,
            400,
            aws_error_body(
                "SubscriptionRequiredException",
                "AWS Premium Support Subscription is required to use this service."
            )
        )];
        let err = client(&rules).create_case(&request()).await.unwrap_err();
        assert_eq!(
            err,
            CaseError::SubscriptionRequired(
                "CreateCase: SubscriptionRequiredException: AWS Premium Support Subscription \
                 is required to use this service."
                    .into()
            )
        );
        assert!(!err.retryable());
    }

    /// DescribeSeverityLevels' answer as the API reference shows it, for the given codes.
    fn levels(codes: &[&str]) -> Value {
        let levels: Vec<Value> = codes
            .iter()
            .map(|c| {
                let mut name = c.to_string();
                name[..1].make_ascii_uppercase();
                json!({ "code": c, "name": name })
            })
            .collect();
        json!({ "severityLevels": levels })
    }

    #[tokio::test]
    async fn severity_levels_are_read_for_each_plan() {
        use CaseSeverity::{Critical, High, Low, Normal, Urgent};
        for (plan, codes, want) in [
            (
                "Business",
                &["low", "normal", "high", "urgent"][..],
                &[Low, Normal, High, Urgent][..],
            ),
            (
                "Enterprise",
                &["low", "normal", "high", "urgent", "critical"][..],
                &[Low, Normal, High, Urgent, Critical][..],
            ),
            // Out of order, repeated and with a code opsdesk does not know.
            (
                "a future plan",
                &["critical", "low", "sev0", "normal", "low"][..],
                &[Low, Normal, Critical][..],
            ),
        ] {
            let rules = [reply!(
                Client::describe_severity_levels,
                when | r | r.language() == Some("en"),
                200,
                levels(codes)
            )];
            let got = client(&rules).severity_levels(&account()).await.unwrap();
            assert_eq!(got, want, "{plan}");
            assert_eq!(rules[0].num_calls(), 1);
        }
    }

    #[tokio::test]
    async fn severity_levels_without_the_api_or_any_known_code_are_errors() {
        let rules = [reply!(
            Client::describe_severity_levels,
            400,
            aws_error_body(
                "SubscriptionRequiredException",
                "AWS Premium Support Subscription is required to use this service."
            )
        )];
        let err = client(&rules)
            .severity_levels(&account())
            .await
            .unwrap_err();
        assert!(matches!(err, CaseError::SubscriptionRequired(_)), "{err:?}");

        let rules = [reply!(
            Client::describe_severity_levels,
            400,
            aws_error_body(
                "AccessDeniedException",
                "User is not authorized to perform: support:DescribeSeverityLevels"
            )
        )];
        let err = client(&rules)
            .severity_levels(&account())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("support:DescribeSeverityLevels"),
            "{err}"
        );

        let rules = [reply!(
            Client::describe_severity_levels,
            200,
            levels(&["sev0"])
        )];
        let err = client(&rules)
            .severity_levels(&account())
            .await
            .unwrap_err();
        assert!(matches!(err, CaseError::Failed(_)), "{err:?}");
    }

    #[tokio::test]
    async fn throttling_is_told_apart_and_retryable() {
        for (code, status) in [("ThrottlingException", 400), ("TooManyRequests", 429)] {
            let rules = [reply!(
                Client::describe_cases,
                status,
                aws_error_body(code, "Rate exceeded")
            )];
            let err = client(&rules)
                .describe_case(&account(), CASE, None)
                .await
                .unwrap_err();
            assert_eq!(
                err,
                CaseError::Throttled(format!("DescribeCases: {code}: Rate exceeded"))
            );
            assert!(err.retryable());
        }
    }

    #[tokio::test]
    async fn an_unknown_case_is_not_found() {
        let missing = aws_error_body(
            "CaseIdNotFound",
            "Invalid case ID: case-123456789012-muen-2026-3f1a9c2b7d4e5f60",
        );
        let rules = [
            reply!(Client::describe_cases, 400, missing),
            reply!(Client::add_communication_to_case, 400, missing),
            reply!(Client::resolve_case, 400, missing),
        ];
        let c = client(&rules);
        let described = c.describe_case(&account(), CASE, None).await.unwrap_err();
        assert_eq!(
            described,
            CaseError::NotFound(format!(
                "DescribeCases: CaseIdNotFound: Invalid case ID: {CASE}"
            ))
        );
        let added = c
            .add_communication(&account(), CASE, "Any news?", &[], None)
            .await
            .unwrap_err();
        assert!(matches!(added, CaseError::NotFound(_)), "{added:?}");
        let resolved = c.resolve_case(&account(), CASE).await.unwrap_err();
        assert!(matches!(resolved, CaseError::NotFound(_)), "{resolved:?}");
        assert!(!resolved.retryable());
    }

    #[tokio::test]
    async fn a_case_missing_from_the_answer_is_not_found() {
        let rules = [reply!(Client::describe_cases, 200, json!({ "cases": [] }))];
        let err = client(&rules)
            .describe_case(&account(), CASE, None)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            CaseError::NotFound(format!("DescribeCases did not return case {CASE}"))
        );
    }

    #[tokio::test]
    async fn other_errors_name_the_operation_code_and_message() {
        let rules = [reply!(
            Client::create_case,
            400,
            aws_error_body(
                "CaseCreationLimitExceeded",
                "You have exceeded the case creation limit."
            )
        )];
        let err = client(&rules).create_case(&request()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "AWS Support call failed: CreateCase: CaseCreationLimitExceeded: You have exceeded \
             the case creation limit."
        );
        assert!(err.retryable());

        let rules = [reply!(
            Client::create_case,
            400,
            aws_error_body(
                "InvalidParameterValueException",
                "Invalid service code: amazon-ec3."
            )
        )];
        let err = client(&rules).create_case(&request()).await.unwrap_err();
        assert!(matches!(err, CaseError::Refused(_)), "{err:?}");
        assert!(!err.retryable());
    }

    #[tokio::test]
    async fn describe_returns_the_communications_after_since_oldest_first() {
        // AWS lists the most recent communication first.
        let recent = vec![
            message(
                "We are checking the cluster.",
                "Amazon Web Services",
                "2026-11-24T10:40:00.000Z",
            ),
            message(
                "Failover is stuck at 'modifying'.",
                "AdminRole (Role) <ops@example.com>",
                "2026-11-24T10:20:00.000Z",
            ),
            message(
                "The writer has been unavailable since 09:52 UTC.",
                "AdminRole (Role) <ops@example.com>",
                "2026-11-24T10:00:00.000Z",
            ),
        ];
        let rules = [reply!(
            Client::describe_cases,
            when | r | r.case_id_list() == [CASE]
                && r.include_resolved_cases() == Some(true)
                && r.include_communications() == Some(true),
            200,
            case("pending-customer-action", recent, None)
        )];
        let c = client(&rules);

        let all = c.describe_case(&account(), CASE, None).await.unwrap();
        assert_eq!(all.status, "pending-customer-action");
        assert_eq!(all.display_id.as_deref(), Some("178394561"));
        let times: Vec<_> = all.communications.iter().map(|m| m.at).collect();
        assert_eq!(
            times,
            [
                at("2026-11-24T10:00:00Z"),
                at("2026-11-24T10:20:00Z"),
                at("2026-11-24T10:40:00Z")
            ]
        );

        // A communication at exactly `since` was read before.
        let new = c
            .describe_case(&account(), CASE, Some(at("2026-11-24T10:20:00Z")))
            .await
            .unwrap();
        assert_eq!(
            new.communications,
            [CaseCommunication {
                body: "We are checking the cluster.".into(),
                submitted_by: "Amazon Web Services".into(),
                at: at("2026-11-24T10:40:00Z"),
                attachments: Vec::new(),
            }]
        );

        let none = c
            .describe_case(&account(), CASE, Some(at("2026-11-24T10:40:00Z")))
            .await
            .unwrap();
        assert_eq!(none.communications, []);
    }

    /// Message `n` of a busy case, written at 10:`n`.
    fn numbered(n: u32) -> Value {
        message(
            &format!("message {n}"),
            "Amazon Web Services",
            &format!("2026-11-24T10:{n:02}:00.000Z"),
        )
    }

    /// Communications `range`, newest first, as AWS lists them.
    fn numbered_newest_first(range: std::ops::RangeInclusive<u32>) -> Vec<Value> {
        range.rev().map(numbered).collect()
    }

    /// A case with messages 0 to 50: DescribeCases shows the five most recent and a token.
    fn busy_case() -> Value {
        case("opened", numbered_newest_first(46..=50), Some("older"))
    }

    fn bodies(state: &CaseState) -> Vec<String> {
        state
            .communications
            .iter()
            .map(|m| m.body.clone())
            .collect()
    }

    #[tokio::test]
    async fn communications_beyond_the_recent_five_are_paged_after_since() {
        let rules = [
            reply!(Client::describe_cases, 200, busy_case()),
            reply!(
                Client::describe_communications,
                when | r | r.case_id() == Some(CASE)
                    && r.after_time() == Some("2026-11-24T09:55:00.000Z")
                    && r.next_token().is_none(),
                200,
                json!({"communications": numbered_newest_first(20..=50), "nextToken": "page-2"})
            ),
            reply!(
                Client::describe_communications,
                when | r | r.next_token() == Some("page-2")
                    && r.after_time() == Some("2026-11-24T09:55:00.000Z"),
                200,
                json!({"communications": numbered_newest_first(0..=19)})
            ),
        ];
        let state = client(&rules)
            .describe_case(&account(), CASE, Some(at("2026-11-24T09:55:00Z")))
            .await
            .unwrap();
        let expected: Vec<_> = (0..=50).map(|n| format!("message {n}")).collect();
        assert_eq!(bodies(&state), expected);
        assert_eq!(rules[1].num_calls(), 1);
        assert_eq!(rules[2].num_calls(), 1);
    }

    #[tokio::test]
    async fn the_recent_five_suffice_when_they_reach_back_to_since() {
        let rules = [
            reply!(Client::describe_cases, 200, busy_case()),
            reply!(
                Client::describe_communications,
                500,
                json!({"__type": "InternalServerError"})
            ),
        ];
        let state = client(&rules)
            .describe_case(&account(), CASE, Some(at("2026-11-24T10:47:00Z")))
            .await
            .unwrap();
        assert_eq!(bodies(&state), ["message 48", "message 49", "message 50"]);
        assert_eq!(rules[1].num_calls(), 0);
    }

    #[tokio::test]
    async fn times_without_an_offset_are_utc_and_unreadable_times_are_an_error() {
        let moto_like = vec![message(
            "hello",
            "moto@moto.com",
            "2026-11-24T14:30:48.819250",
        )];
        let rules = [reply!(
            Client::describe_cases,
            200,
            case("opened", moto_like, Some("foo_next_token"))
        )];
        let state = client(&rules)
            .describe_case(&account(), CASE, None)
            .await
            .unwrap();
        assert_eq!(
            state.communications[0].at,
            at("2026-11-24T14:30:48.819250Z")
        );

        let broken = vec![message("hello", "Amazon Web Services", "yesterday")];
        let rules = [reply!(
            Client::describe_cases,
            200,
            case("opened", broken, None)
        )];
        let err = client(&rules)
            .describe_case(&account(), CASE, None)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            CaseError::Failed(format!(
                "DescribeCases: a communication of case {CASE} has timeCreated \"yesterday\", \
                 which is not an RFC 3339 time"
            ))
        );
    }

    #[tokio::test]
    async fn add_communication_sends_the_body_and_copies() {
        let rules = [reply!(
            Client::add_communication_to_case,
            when | r | r.case_id() == Some(CASE)
                && r.communication_body() == Some("Failover completed at 11:02 UTC.")
                && r.cc_email_addresses() == ["tam@example.com"],
            200,
            json!({ "result": true })
        )];
        let c = client(&rules);
        c.add_communication(
            &account(),
            CASE,
            "Failover completed at 11:02 UTC.",
            &["tam@example.com".into()],
            None,
        )
        .await
        .unwrap();
        assert_eq!(rules[0].num_calls(), 1);

        let rules = [reply!(
            Client::add_communication_to_case,
            200,
            json!({ "result": false })
        )];
        let err = client(&rules)
            .add_communication(&account(), CASE, "Any news?", &[], None)
            .await
            .unwrap_err();
        assert!(matches!(err, CaseError::Failed(_)), "{err:?}");
    }

    #[tokio::test]
    async fn files_go_in_an_attachment_set_and_with_the_case_and_its_messages() {
        use base64::Engine;
        const PNG: &[u8] = b"\x89PNG\r\n\x1a\nrest";
        let png = PNG.to_vec();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&png);
        let rules = [
            reply!(
                Client::add_attachments_to_set,
                when | r | r.attachment_set_id().is_none()
                    && r.attachments().len() == 2
                    && r.attachments()[0].file_name() == Some("graph.png")
                    && r.attachments()[0].data().map(|d| d.as_ref()) == Some(PNG)
                    && r.attachments()[1].file_name() == Some("app.log"),
                200,
                json!({ "attachmentSetId": "set-1", "expiryTime": "2026-11-24T11:00:00.000Z" })
            ),
            reply!(
                Client::create_case,
                when | r | r.attachment_set_id() == Some("set-1"),
                200,
                json!({ "caseId": CASE })
            ),
            reply!(
                Client::add_communication_to_case,
                when | r | r.attachment_set_id() == Some("set-1"),
                200,
                json!({ "result": true })
            ),
        ];
        let c = client(&rules);
        let files = [
            CaseFile {
                name: "graph.png".into(),
                bytes: png.clone(),
            },
            CaseFile {
                name: "app.log".into(),
                bytes: b"timeout".to_vec(),
            },
        ];
        let set = c.add_attachment_set(&account(), &files).await.unwrap();
        assert_eq!(set, "set-1");
        let case = CaseRequest {
            attachment_set_id: Some(set.clone()),
            ..request()
        };
        assert_eq!(c.create_case(&case).await.unwrap(), CASE);
        c.add_communication(&account(), CASE, "More files", &[], Some(&set))
            .await
            .unwrap();
        assert!(rules.iter().all(|r| r.num_calls() == 1));

        // A file on a case message is read back whole, under its name.
        let rules = [reply!(
            Client::describe_attachment,
            when | r | r.attachment_id() == Some("att-9"),
            200,
            json!({ "attachment": { "fileName": "trace.png", "data": encoded }, "attachmentId": "att-9" })
        )];
        let file = client(&rules)
            .attachment(&account(), "att-9")
            .await
            .unwrap();
        assert_eq!(file.name, "trace.png");
        assert_eq!(file.bytes, png);

        // AWS's limits are its errors, told apart like any refusal.
        let rules = [reply!(
            Client::add_attachments_to_set,
            400,
            aws_error_body(
                "AttachmentSetSizeLimitExceeded",
                "A set can hold at most 3 attachments"
            )
        )];
        let err = client(&rules)
            .add_attachment_set(&account(), &files)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("AddAttachmentsToSet")
                && err.to_string().contains("AttachmentSetSizeLimitExceeded"),
            "{err}"
        );
        assert!(matches!(err, CaseError::Refused(_)), "{err:?}");
        // A file AWS no longer has will not come back: not worth asking again.
        let rules = [reply!(
            Client::describe_attachment,
            400,
            aws_error_body(
                "AttachmentIdNotFound",
                "An attachment with this ID could not be found"
            )
        )];
        let err = client(&rules)
            .attachment(&account(), "att-0")
            .await
            .unwrap_err();
        assert!(
            matches!(err, CaseError::NotFound(_)) && !err.retryable(),
            "{err:?}"
        );
    }

    #[test]
    fn files_of_case_messages_are_named() {
        let c = Communication::builder()
            .body("See the trace")
            .time_created("2026-11-24T10:00:00Z")
            .attachment_set(
                aws_sdk_support::types::AttachmentDetails::builder()
                    .attachment_id("att-9")
                    .file_name("trace.png")
                    .build(),
            )
            .build();
        let m = communication("DescribeCases", &c).unwrap();
        assert_eq!(
            m.attachments,
            [CaseAttachmentRef {
                id: "att-9".into(),
                name: "trace.png".into()
            }]
        );
    }

    #[tokio::test]
    async fn resolve_returns_the_final_status() {
        let rules = [reply!(
            Client::resolve_case,
            when | r | r.case_id() == Some(CASE),
            200,
            json!({"initialCaseStatus": "work-in-progress", "finalCaseStatus": "resolved"})
        )];
        assert_eq!(
            client(&rules).resolve_case(&account(), CASE).await.unwrap(),
            "resolved"
        );

        let rules = [reply!(
            Client::resolve_case,
            200,
            json!({"initialCaseStatus": "opened"})
        )];
        assert_eq!(
            client(&rules).resolve_case(&account(), CASE).await.unwrap(),
            "resolved"
        );
    }

    #[tokio::test]
    async fn services_list_codes_names_and_categories() {
        let rules = [reply!(
            Client::describe_services,
            when | r | r.language() == Some("en"),
            200,
            json!({"services": [
                {"code": "amazon-elastic-compute-cloud-linux",
                 "name": "Elastic Compute Cloud (EC2 - Linux)",
                 "categories": [
                    {"code": "instance-issue", "name": "Instance Issue"},
                    {"code": "performance", "name": "Performance"}
                 ]},
                {"code": "general-info", "name": "General Info and Getting Started",
                 "categories": []},
                {"name": "A service without a code", "categories": []}
            ]})
        )];
        let support = client(&rules);
        let services = support.services(&account()).await.unwrap();
        // Read once a day: the second call is answered from the cache.
        assert_eq!(support.services(&account()).await.unwrap(), services);
        assert_eq!(rules[0].num_calls(), 1);
        assert_eq!(
            services,
            [
                SupportService {
                    code: "amazon-elastic-compute-cloud-linux".into(),
                    name: "Elastic Compute Cloud (EC2 - Linux)".into(),
                    categories: vec![
                        ("instance-issue".into(), "Instance Issue".into()),
                        ("performance".into(), "Performance".into()),
                    ],
                },
                SupportService {
                    code: "general-info".into(),
                    name: "General Info and Getting Started".into(),
                    categories: vec![],
                },
            ]
        );
    }

    #[test]
    fn the_region_defaults_to_us_east_1() {
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        let c = SupportClient::from_sdk(&sdk);
        assert_eq!(
            c.client.config().region(),
            Some(&Region::from_static("us-east-1"))
        );

        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::from_static("cn-north-1"))
            .build();
        let c = SupportClient::from_sdk(&sdk);
        assert_eq!(
            c.client.config().region(),
            Some(&Region::from_static("cn-north-1"))
        );
    }
}
