//! AWS Support cases as opsdesk sees them: what it asks AWS for and what it reads back.
//!
//! The calls go through [`SupportCases`], which opsdesk-aws implements with the AWS Support
//! API; core decides when to call it and records every result on the ticket.

use chrono::{DateTime, Duration, Utc};
use opsdesk_domain::support::{cap_severity, communication_parts, CaseContext};
use opsdesk_domain::{AwsAccount, CapSource, CaseSeverity, SupportPlan};
use opsdesk_store::SupportCaseRecord;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::audit::whole;
use utoipa::ToSchema;

/// The AWS account a call is for, and the role to assume for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseAccount {
    pub id: String,
    /// The account's `support_role_arn`; without one, opsdesk's own credentials are used and
    /// must belong to the account.
    pub role_arn: Option<String>,
}

impl From<&AwsAccount> for CaseAccount {
    fn from(a: &AwsAccount) -> Self {
        CaseAccount {
            id: a.id.clone(),
            role_arn: a.support_role_arn.clone(),
        }
    }
}

/// The case to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRequest {
    /// The AWS account the case is opened in.
    pub account: CaseAccount,
    pub subject: String,
    pub body: String,
    pub severity: CaseSeverity,
    pub service_code: String,
    pub category_code: String,
    /// The AWS account team, copied on every message of the case.
    pub cc: Vec<String>,
    /// Files sent with the case (AddAttachmentsToSet's set).
    pub attachment_set_id: Option<String>,
}

/// One message on a case, as AWS Support keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CaseCommunication {
    pub body: String,
    /// Who wrote it, as AWS names them (an address, or "Amazon Web Services").
    pub submitted_by: String,
    pub at: DateTime<Utc>,
    /// The files the message carries.
    #[serde(default)]
    pub attachments: Vec<CaseAttachmentRef>,
}

/// A file on a case message, as AWS Support names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CaseAttachmentRef {
    pub id: String,
    pub name: String,
}

/// A file sent to AWS Support or read from it.
#[derive(Clone, PartialEq, Eq)]
pub struct CaseFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for CaseFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaseFile")
            .field("name", &self.name)
            .field("size", &self.bytes.len())
            .finish()
    }
}

/// AddAttachmentsToSet takes at most three files per set.
pub const CASE_FILES_PER_SET: usize = 3;
/// AWS Support takes files of at most 5 MB.
pub const CASE_FILE_MAX_BYTES: usize = 5 * 1024 * 1024;
/// How the message carrying ticket files to a case begins; such messages coming back from AWS
/// are not mirrored onto the ticket.
pub const CASE_FILES_MESSAGE: &str = "Files from opsdesk ticket";

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
    /// opsdesk cannot make the call as configured (credentials of another account, say);
    /// trying again will not help until the configuration changes.
    #[error("AWS Support call not made: {0}")]
    Refused(String),
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
/// implementation holds one client per account (per assumed role).
#[async_trait::async_trait]
pub trait SupportCases: Send + Sync {
    /// CreateCase with issueType `technical`; the new case's id.
    async fn create_case(&self, case: &CaseRequest) -> Result<String, CaseError>;

    /// DescribeCases for one case (resolved ones included) with the communications created
    /// after `since` (all of them when `None`).
    async fn describe_case(
        &self,
        account: &CaseAccount,
        case_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<CaseState, CaseError>;

    /// AddCommunicationToCase, with the files of an attachment set when one is given.
    async fn add_communication(
        &self,
        account: &CaseAccount,
        case_id: &str,
        body: &str,
        cc: &[String],
        attachment_set_id: Option<&str>,
    ) -> Result<(), CaseError>;

    /// AddAttachmentsToSet: a new set holding `files` (at most [`CASE_FILES_PER_SET`], each
    /// at most [`CASE_FILE_MAX_BYTES`]); the set's id, good for an hour.
    async fn add_attachment_set(
        &self,
        account: &CaseAccount,
        files: &[CaseFile],
    ) -> Result<String, CaseError>;

    /// DescribeAttachment: a file on a case message.
    async fn attachment(
        &self,
        account: &CaseAccount,
        attachment_id: &str,
    ) -> Result<CaseFile, CaseError>;

    /// ResolveCase; the status the case ends in.
    async fn resolve_case(&self, account: &CaseAccount, case_id: &str)
        -> Result<String, CaseError>;

    /// DescribeServices: the service and category codes CreateCase accepts.
    async fn services(&self, account: &CaseAccount) -> Result<Vec<SupportService>, CaseError>;

    /// DescribeSeverityLevels: the case severities AWS offers the account, lowest first.
    async fn severity_levels(&self, account: &CaseAccount) -> Result<Vec<CaseSeverity>, CaseError>;
}

/// The author name of messages mirrored from AWS Support.
pub const AWS_AUTHOR: &str = "aws:support";
/// Cases worked on per pass, each claimed on its own so that a lease covers one case's calls.
const SYNC_BATCH: usize = 10;
/// Consecutive failures to follow a case before the ticket says so.
const FOLLOW_FAILURES_NOTED: i64 = 5;
/// How long AWS's answer about an account's case severities is used before it is asked again.
const LEVELS_FRESH: Duration = Duration::hours(24);
/// How long after a failed ask it is tried again.
const LEVELS_RETRY: Duration = Duration::hours(1);

/// A reply AWS refused: the comment, the parts of it AWS took before, of how many.
struct Refusal {
    comment: i64,
    taken: usize,
    parts: usize,
    error: CaseError,
}

/// How long a kept answer about an account's severities is used: a day, or an hour when the
/// last ask failed.
fn levels_wait(failed: bool) -> Duration {
    if failed {
        LEVELS_RETRY
    } else {
        LEVELS_FRESH
    }
}

/// The severity a case is opened with, and how it was decided.
struct Opening {
    severity: CaseSeverity,
    source: CapSource,
    plan: Option<SupportPlan>,
    /// Sentences for the ticket: a severity other than the escalation recorded, a refusal.
    notes: Vec<String>,
}

/// What AWS answered for one case, to record in one transaction.
enum Outcome {
    /// The case id, the service and category codes and the severity it was opened with, and
    /// the files that went with it.
    Opened(String, (String, String), Opening, Vec<i64>),
    /// Not opened: retry later, or give up (`dead`); the severity it is to be opened with
    /// next time; `notes` for the ticket.
    NotOpened {
        error: CaseError,
        dead: bool,
        severity: CaseSeverity,
        notes: Vec<String>,
    },
    /// The ticket was resolved before the case could be opened: it is not opened.
    Cancelled,
    /// Read back (when `state` is there), replies sent up to comment `sent_upto` and
    /// `sent_parts` parts of the one after it, resolved at AWS with the status given; `error`
    /// is the call that failed on the way, if any; `refused` the replies AWS refused and that
    /// are passed over, by comment id.
    Followed {
        state: Option<CaseState>,
        sent_upto: i64,
        sent_parts: i64,
        resolved: Option<String>,
        error: Option<CaseError>,
        refused: Vec<Refusal>,
        files: FileWork,
    },
}

/// Files between a ticket and its case on one pass.
#[derive(Debug, Default)]
struct FileWork {
    /// Ticket files now on the case.
    sent: Vec<i64>,
    /// Ticket files AWS will not take, and why: they are no longer chosen for the case.
    refused: Vec<(i64, String)>,
    /// Files of case messages, stored, to record on the ticket.
    came: Vec<crate::attachments::StoredFile>,
    /// What the ticket is told about files.
    notes: Vec<String>,
}

/// The codes to open a case with: the configured mapping or defaults, unless DescribeServices
/// knows the ticket's AWS service by name and the defaults are in use.
fn pick_codes(
    case: &SupportCaseRecord,
    service: Option<&str>,
    defaults: (&str, &str),
    services: &[SupportService],
) -> (String, String) {
    let current = (case.service_code.clone(), case.category_code.clone());
    let using_defaults = case.service_code == defaults.0 && case.category_code == defaults.1;
    let Some(service) = service.map(str::to_ascii_lowercase) else {
        return current;
    };
    if !using_defaults || service.is_empty() {
        return current;
    }
    services
        .iter()
        .find(|s| {
            s.code.to_ascii_lowercase().contains(&service)
                || s.name.to_ascii_lowercase().contains(&service)
        })
        .and_then(|s| {
            let category = s
                .categories
                .iter()
                .find(|(code, _)| code.contains("general") || code.contains("other"))
                .or_else(|| s.categories.first())?;
            Some((s.code.clone(), category.0.clone()))
        })
        .unwrap_or(current)
}

/// Something an account's support plan calls for attention to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanWarning {
    pub account_id: String,
    /// The account is in the configuration file (else added through the API).
    pub configured: bool,
    /// The plan ends or has ended (else: AWS's answer does not fit it).
    pub ending: bool,
    pub text: String,
}

/// What AWS said about one account's case severities when asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SeverityCheck {
    pub account_id: String,
    pub support_plan: SupportPlan,
    /// The plan whose table applies today: the configured one, or its successor once it has
    /// ended.
    pub plan_in_effect: SupportPlan,
    /// What AWS offers the account, lowest first; none when it did not answer.
    pub levels: Option<Vec<CaseSeverity>>,
    /// Why AWS did not answer.
    pub error: Option<String>,
    /// When the answer does not fit the configured plan: what it says and which plans fit.
    pub mismatch: Option<String>,
    /// What the account should know about its plan ending.
    pub notice: Option<String>,
}

impl crate::Desk {
    /// The AWS Support cases asked for most recently, newest first (at most `limit`).
    pub async fn recent_aws_cases(
        &self,
        actor: &crate::Actor,
        limit: i64,
    ) -> crate::Result<Vec<SupportCaseRecord>> {
        crate::kpis::require_overview(actor)?;
        Ok(self.db().recent_support_cases(limit.clamp(1, 100)).await?)
    }

    /// One pass of the case worker: opens the AWS Support cases escalations asked for, and
    /// follows open ones (mirrors their status and messages onto the ticket, adds the ticket's
    /// public replies to the case, resolves the case when the ticket is resolved). Returns how
    /// many cases it worked on.
    pub async fn sync_cases(&self, aws: &dyn SupportCases) -> crate::Result<usize> {
        let mut done = 0;
        while done < SYNC_BATCH {
            if !self.db().support_cases_due(self.now()).await? {
                break;
            }
            let lease = self.settings.escalation.case_lease;
            let claimed = self
                .change(move |tx, now| {
                    Box::pin(async move { Ok(tx.claim_support_cases(now, now + lease, 1).await?) })
                })
                .await?;
            let Some(case) = claimed.into_iter().next() else {
                break;
            };
            done += 1;
            let key = opsdesk_domain::Ticket::key_for(case.ticket_id);
            if let Err(e) = self.sync_case(aws, case).await {
                tracing::warn!(ticket = %key, error = %e, "working on an AWS Support case failed");
            }
        }
        Ok(done)
    }

    async fn sync_case(
        &self,
        aws: &dyn SupportCases,
        case: SupportCaseRecord,
    ) -> crate::Result<()> {
        // Everything that can fail on our side is read before AWS is called.
        let routing = self.routing().await?;
        let account = self.case_account_of(&case).await?;
        let ticket_open = self
            .db()
            .get_ticket(case.ticket_id)
            .await?
            .is_some_and(|t| t.status.is_open());
        let outcome = match (case.state.as_str(), case.case_id.clone()) {
            ("requested", _) if !ticket_open => Outcome::Cancelled,
            ("requested", _) => self.open_case(aws, &case, &account).await?,
            ("opened", Some(case_id)) => {
                self.follow_case(aws, &case, &case_id, &account, ticket_open)
                    .await?
            }
            _ => return Ok(()),
        };
        let settings = self.settings.escalation.clone();
        let accounts = self.settings.aws_accounts.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let Some(mut record) = tx.support_case(case.ticket_id).await? else {
                    return Ok(());
                };
                let Some(ticket) = tx.ticket_for_update(case.ticket_id).await? else {
                    return Ok(());
                };
                record.updated_at = now;
                record.next_sync_at = now + settings.case_sync_interval;
                let mut entries: Vec<(String, opsdesk_domain::audit::Changes)> = Vec::new();
                let mut notes: Vec<(String, String)> = Vec::new();
                let mut tell: Option<(&str, bool)> = None;
                match outcome {
                    Outcome::Opened(case_id, _, _, _)
                        if record.state != "requested" || record.case_id.is_some() =>
                    {
                        // Another node opened it meanwhile (its lease ran out under us): keep
                        // the case it recorded and say which one is left over.
                        notes.push((
                            "ticket.aws_case_duplicate".into(),
                            format!(
                                "AWS Support case {case_id} was opened a second time for this ticket; \
                                 opsdesk follows {}. Resolve {case_id} in the AWS Support Center.",
                                record.case_id.clone().unwrap_or_default()
                            ),
                        ));
                    }
                    Outcome::Opened(case_id, (service_code, category_code), opening, sent) => {
                        for n in opening.notes {
                            notes.push(("ticket.aws_case_severity".into(), n));
                        }
                        tx.mark_sent_to_case(&sent, now).await?;
                        record.severity = Some(opening.severity.as_str().to_owned());
                        record.severity_source = Some(opening.source);
                        if opening.plan.is_some() {
                            record.support_plan = opening.plan;
                        }
                        record.state = "opened".into();
                        record.service_code = service_code;
                        record.category_code = category_code;
                        record.attempts = 0;
                        record.case_id = Some(case_id.clone());
                        // Read it back at once for its display id and first status.
                        record.next_sync_at = now;
                        entries.push((
                            "ticket.aws_case_opened".into(),
                            whole("aws_case", Value::Null, json!({
                                "case_id": case_id,
                                "account": record.account_id,
                                "severity": record.severity,
                                "severity_from": record.severity_source,
                                "service_code": record.service_code,
                                "category_code": record.category_code,
                            })),
                        ));
                    }
                    Outcome::Cancelled => {
                        record.state = "cancelled".into();
                        record.detail = "the ticket was resolved before the case was opened".into();
                        entries.push((
                            "ticket.aws_case_cancelled".into(),
                            whole("aws_case", Value::Null, json!({ "state": "cancelled", "reason": record.detail })),
                        ));
                    }
                    Outcome::NotOpened { error, dead, severity, notes: said } => {
                        for n in said {
                            notes.push(("ticket.aws_case_severity".into(), n));
                        }
                        // A severity AWS refused is not asked for again.
                        record.severity = Some(severity.as_str().to_owned());
                        record.attempts += 1;
                        record.detail = error.to_string();
                        let told = if settings.aws.account_team_channel.is_some() {
                            "The AWS account team is notified instead."
                        } else {
                            "Tell the AWS account team yourself: no escalation.aws.account_team_channel is set."
                        };
                        if let CaseError::SubscriptionRequired(_) = error {
                            record.state = "unavailable".into();
                            notes.push((
                                "ticket.aws_case_unavailable".into(),
                                format!("AWS Support refused the case: {error}. {told}"),
                            ));
                            tell = Some(("aws-unavailable", true));
                        } else if dead {
                            record.state = "failed".into();
                            notes.push((
                                "ticket.aws_case_failed".into(),
                                format!(
                                    "Could not open the AWS Support case after {} attempts: {error}. \
                                     Open it in the AWS Support Center, or escalate again.",
                                    record.attempts
                                ),
                            ));
                            tell = Some(("aws-failed", false));
                        } else {
                            record.next_sync_at = now + retry_wait(record.attempts);
                        }
                    }
                    Outcome::Followed {
                        state,
                        sent_upto,
                        sent_parts,
                        resolved,
                        error,
                        refused,
                        files,
                    } => {
                        tx.mark_sent_to_case(&files.sent, now).await?;
                        for (id, why) in &files.refused {
                            tx.set_attachment_to_case(*id, false).await?;
                            entries.push((
                                "attachment.changed".into(),
                                whole(
                                    &format!("attachment {id} to_case"),
                                    json!(true),
                                    json!({ "to_case": false, "reason": why }),
                                ),
                            ));
                        }
                        for n in files.notes {
                            notes.push(("ticket.aws_case_files".into(), n));
                        }
                        let from_aws = crate::Actor::new(AWS_AUTHOR, opsdesk_domain::Role::Agent);
                        let how = crate::attachments::FileUse {
                            comment_id: None,
                            public: false,
                            source: opsdesk_domain::attachment::AttachmentSource::AwsCase,
                            to_case: false,
                        };
                        crate::attachments::record_files(tx, &from_aws, ticket.id, &files.came, how, now)
                            .await?;
                        for r in refused {
                            let case_id = record.case_id.clone().unwrap_or_default();
                            let text = if r.taken == 0 {
                                format!(
                                    "Reply #{} was not sent to AWS Support case {case_id}: {}. \
                                     Later replies are sent; post this one in the AWS Support Center.",
                                    r.comment, r.error
                                )
                            } else {
                                format!(
                                    "Reply #{} was sent only in part to AWS Support case {case_id} \
                                     (parts 1 to {} of {} were added): {}. Later replies are sent; \
                                     post the rest in the AWS Support Center.",
                                    r.comment, r.taken, r.parts, r.error
                                )
                            };
                            notes.push(("ticket.aws_case_reply_refused".into(), text));
                        }
                        if let Some(state) = state {
                            if state.display_id.is_some() {
                                record.display_id = state.display_id.clone();
                            }
                            if resolved.is_none() && record.aws_status.as_deref() != Some(state.status.as_str()) {
                                entries.push((
                                    "ticket.aws_case_status".into(),
                                    opsdesk_domain::audit::Changes::from([(
                                        "aws_status".to_owned(),
                                        opsdesk_domain::audit::FieldChange {
                                            before: json!(record.aws_status),
                                            after: json!(state.status),
                                        },
                                    )]),
                                ));
                                record.aws_status = Some(state.status.clone());
                            }
                            for m in &state.communications {
                                notes.push((
                                    "ticket.aws_case_message".into(),
                                    format!("AWS Support case message from {}:\n\n{}", m.submitted_by, m.body),
                                ));
                                record.last_message_at =
                                    Some(record.last_message_at.map_or(m.at, |l| l.max(m.at)));
                                record.first_reply_at =
                                    Some(record.first_reply_at.map_or(m.at, |f| f.min(m.at)));
                            }
                        }
                        // Another node's pass may have got further meanwhile (a lease that ran
                        // out): what AWS has is never taken back.
                        if sent_upto > record.sent_comment_id {
                            record.sent_comment_id = sent_upto;
                            record.sent_parts = sent_parts;
                        } else if sent_upto == record.sent_comment_id {
                            record.sent_parts = record.sent_parts.max(sent_parts);
                        }
                        if let Some(status) = resolved {
                            record.state = "resolved".into();
                            record.aws_status = Some(status.clone());
                            entries.push((
                                "ticket.aws_case_resolved".into(),
                                whole("aws_case", Value::Null, json!({ "case_id": record.case_id, "status": status })),
                            ));
                        }
                        match error {
                            Some(error) => {
                                record.attempts += 1;
                                record.detail = error.to_string();
                                record.next_sync_at = now + retry_wait(record.attempts);
                                if record.attempts == FOLLOW_FAILURES_NOTED {
                                    notes.push((
                                        "ticket.aws_case_unreachable".into(),
                                        format!(
                                            "Following AWS Support case {} has failed {} times in a row: {error}. \
                                             opsdesk keeps trying.",
                                            record.case_id.clone().unwrap_or_default(),
                                            record.attempts
                                        ),
                                    ));
                                }
                            }
                            None => record.attempts = 0,
                        }
                    }
                }
                tx.save_support_case(&record).await?;
                if entries.is_empty() && notes.is_empty() {
                    return Ok(());
                }
                let mut t = ticket.clone();
                for (action, body) in &notes {
                    let c = tx.insert_comment(t.id, body, AWS_AUTHOR, false, now).await?;
                    entries.push((
                        action.clone(),
                        whole("comment", Value::Null, json!({ "id": c.id, "public": false, "body": c.body })),
                    ));
                }
                if !notes.is_empty() {
                    t.touch(now);
                    tx.update_ticket(&t, &ticket).await?;
                }
                for (action, changes) in entries {
                    tx.append_audit(opsdesk_domain::audit::AuditEntry {
                        at: now,
                        actor: AWS_AUTHOR.to_owned(),
                        action,
                        ticket_id: Some(t.id),
                        changes,
                    })
                    .await?;
                }
                if let Some((tag, account_team)) = tell {
                    // The escalation channels hear that the case is not open; the account team
                    // too when the plan could not take it.
                    let mut extra: Vec<(String, Vec<String>)> = settings
                        .aws
                        .notify_channels
                        .iter()
                        .map(|c| (c.clone(), Vec::new()))
                        .collect();
                    if let Some(channel) = &settings.aws.account_team_channel {
                        let team = accounts
                            .iter()
                            .find(|a| a.id == record.account_id)
                            .map(|a| a.account_team_emails.clone())
                            .unwrap_or(record.cc.clone());
                        if account_team {
                            extra.push((channel.clone(), team));
                        }
                    }
                    let items = routing
                        .items_with(
                            tx,
                            opsdesk_domain::channel::NotificationEvent::Escalated,
                            &t,
                            now,
                            Some(tag),
                            &extra,
                        )
                        .await?;
                    tx.enqueue(&items, now).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn open_case(
        &self,
        aws: &dyn SupportCases,
        case: &SupportCaseRecord,
        account: &CaseAccount,
    ) -> crate::Result<Outcome> {
        let aws_settings = &self.settings.escalation.aws;
        let service = self
            .db()
            .tickets_aws_context(&[case.ticket_id])
            .await?
            .remove(&case.ticket_id)
            .and_then(|(_, service)| service);
        let (service_code, category_code) = if service.is_some()
            && aws_settings
                .mapped(service.as_deref().unwrap_or_default())
                .is_none()
        {
            match aws.services(account).await {
                Ok(services) => pick_codes(
                    case,
                    service.as_deref(),
                    (
                        &aws_settings.default_service_code,
                        &aws_settings.default_category_code,
                    ),
                    &services,
                ),
                Err(_) => (case.service_code.clone(), case.category_code.clone()),
            }
        } else {
            (case.service_code.clone(), case.category_code.clone())
        };
        let recorded = case
            .severity
            .as_deref()
            .and_then(CaseSeverity::parse)
            .unwrap_or(CaseSeverity::Low);
        let configured = self.account_of(&case.account_id).await?;
        let mut opening = self
            .opening(aws, case, account, configured.as_ref(), recorded, false)
            .await?;
        // The files chosen for the case go with it; when AWS will not take them the case is
        // opened without them (they follow on a later pass).
        // Files AWS cannot take are told of on the first pass that follows the case.
        let mut files = self.files_for_case(case.ticket_id).await?;
        let first: Vec<_> = files
            .ready
            .drain(..files.ready.len().min(CASE_FILES_PER_SET))
            .collect();
        let mut sent = Vec::new();
        let mut attachment_set_id = None;
        let mut files_note = None;
        if !first.is_empty() {
            let payload: Vec<CaseFile> = first.iter().map(|(_, f)| f.clone()).collect();
            match aws.add_attachment_set(account, &payload).await {
                Ok(set) => {
                    attachment_set_id = Some(set);
                    sent = first.iter().map(|(id, _)| *id).collect();
                }
                Err(e) => {
                    files_note = Some(format!(
                        "The case is opened without its files ({}): AWS Support did not take them: {e}. \
                         opsdesk sends them again with the next pass.",
                        names(&first)
                    ))
                }
            }
        }
        let mut request = CaseRequest {
            account: account.clone(),
            subject: case.subject.clone(),
            body: case.body.clone(),
            severity: opening.severity,
            service_code,
            category_code,
            cc: case.cc.clone(),
            attachment_set_id,
        };
        let mut refusals = 0;
        loop {
            let error = match aws.create_case(&request).await {
                Ok(id) => {
                    opening.notes.extend(files_note);
                    return Ok(Outcome::Opened(
                        id,
                        (request.service_code, request.category_code),
                        opening,
                        sent,
                    ));
                }
                Err(error) => error,
            };
            // AWS refused the severity (the account's plan changed, or the table was wrong):
            // ask AWS again what it offers, or else try one severity lower, once.
            let severity_refused = matches!(&error, CaseError::Refused(m)
                if m.to_ascii_lowercase().contains("severity"));
            if severity_refused && refusals == 0 {
                refusals += 1;
                let refused = request.severity;
                let mut next = self
                    .opening(aws, case, account, configured.as_ref(), refused, true)
                    .await?;
                if next.source == CapSource::Plan || next.severity >= refused {
                    if next.source == CapSource::Aws {
                        // AWS lists the severity it just refused: believe the refusal until
                        // its next answer, so later cases do not ask for it again.
                        self.drop_offered(&account.id, refused).await?;
                    }
                    if let Some(lower) = refused.lower() {
                        next.severity = lower;
                        next.source = CapSource::Plan;
                    }
                }
                if next.severity < refused {
                    let mut notes = std::mem::take(&mut opening.notes);
                    notes.push(format!(
                        "AWS Support refused the case as {refused} ({error}); opening it as {} \
                         instead.",
                        next.severity
                    ));
                    notes.append(&mut next.notes);
                    next.notes = notes;
                    opening = next;
                    request.severity = opening.severity;
                    continue;
                }
            }
            let dead = !error.retryable()
                || case.attempts + 1 >= self.settings.escalation.case_max_attempts;
            return Ok(Outcome::NotOpened {
                error,
                dead,
                severity: opening.severity,
                notes: opening.notes,
            });
        }
    }

    /// The severity to open `case` with: what AWS offers the account (asked again when the
    /// answer kept is older than a day, or when `ask` says so), capped at `asked`, or when AWS
    /// does not answer, the severity the escalation recorded.
    async fn opening(
        &self,
        aws: &dyn SupportCases,
        case: &SupportCaseRecord,
        account: &CaseAccount,
        configured: Option<&AwsAccount>,
        asked: CaseSeverity,
        ask: bool,
    ) -> crate::Result<Opening> {
        let offered = self.offered_severities(aws, account, ask).await?;
        let recorded = case.severity.as_deref().and_then(CaseSeverity::parse);
        let (Some(offered), Some(configured)) = (offered, configured) else {
            return Ok(Opening {
                severity: asked,
                source: case.severity_source.unwrap_or(CapSource::Plan),
                plan: None,
                notes: Vec::new(),
            });
        };
        // At first AWS's answer may open the case as high as the ticket asked; after a
        // refusal, no higher than what was refused.
        let ceiling = if ask {
            asked
        } else {
            CaseSeverity::parse(&case.requested_severity).unwrap_or(asked)
        };
        let decision = cap_severity(
            configured.support_plan,
            ceiling,
            &CaseContext {
                day: self.now().date_naive(),
                govcloud: configured.govcloud,
                offered: Some(offered),
            },
        );
        let severity = decision.granted.unwrap_or(asked);
        let mut notes = Vec::new();
        if recorded != Some(severity) {
            notes.push(format!(
                "{}. The escalation recorded {}; AWS's answer for the account decides.",
                decision.reason,
                recorded.map_or("no severity", CaseSeverity::as_str)
            ));
        }
        Ok(Opening {
            severity,
            source: decision.capped_by,
            plan: Some(decision.plan_in_effect),
            notes,
        })
    }

    /// What AWS offers `account` (DescribeSeverityLevels), from the answer kept for it when
    /// that is fresh, else asked now and kept. `None` when AWS has never answered.
    async fn offered_severities(
        &self,
        aws: &dyn SupportCases,
        account: &CaseAccount,
        ask: bool,
    ) -> crate::Result<Option<Vec<CaseSeverity>>> {
        let now = self.now();
        let kept = self
            .db()
            .severity_levels()
            .await?
            .into_iter()
            .find(|l| l.account_id == account.id);
        let fresh = kept
            .as_ref()
            .is_some_and(|k| now < k.checked_at + levels_wait(k.error.is_some()));
        if fresh && !ask {
            return Ok(kept.and_then(|k| k.levels));
        }
        let answer = self.ask_severity_levels(aws, account).await?;
        Ok(match answer {
            Ok(levels) => Some(levels),
            // No Support API: what AWS offered before no longer holds.
            Err(CaseError::SubscriptionRequired(_)) => None,
            Err(e) => {
                tracing::info!(account = %account.id, error = %e, "AWS did not say which case severities the account has; the plan table decides");
                kept.and_then(|k| k.levels)
            }
        })
    }

    /// Asks AWS (DescribeSeverityLevels) which case severities `account` has and keeps the
    /// answer, or why there is none (a SubscriptionRequiredException forgets the last answer;
    /// other failures keep it).
    async fn ask_severity_levels(
        &self,
        aws: &dyn SupportCases,
        account: &CaseAccount,
    ) -> crate::Result<Result<Vec<CaseSeverity>, CaseError>> {
        let answer = aws.severity_levels(account).await;
        let id = account.id.clone();
        let (levels, error) = match &answer {
            Ok(levels) => (Some(levels.clone()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let forget = matches!(answer, Err(CaseError::SubscriptionRequired(_)));
        self.change(move |tx, now| {
            Box::pin(async move {
                tx.save_severity_levels(&id, levels.as_deref(), error.as_deref(), forget, now)
                    .await?;
                Ok(())
            })
        })
        .await?;
        Ok(answer)
    }

    /// Asks AWS (DescribeSeverityLevels) which case severities each known account has,
    /// keeps the answers for escalations and advice, and says where an answer does not fit
    /// the configured plan. Accounts whose plan has no AWS Support API are asked too: AWS's
    /// answer, SubscriptionRequiredException included, is what counts.
    pub async fn check_severity_levels(
        &self,
        actor: &crate::Actor,
        aws: &dyn SupportCases,
    ) -> crate::Result<Vec<SeverityCheck>> {
        actor.require_admin()?;
        let today = self.now().date_naive();
        let mut checks = Vec::new();
        for record in self.aws_accounts(actor).await? {
            let a = record.account();
            let (levels, error) = match self.ask_severity_levels(aws, &(&a).into()).await? {
                Ok(levels) => (Some(levels), None),
                Err(e) => (None, Some(e.to_string())),
            };
            checks.push(SeverityCheck {
                mismatch: levels.as_deref().and_then(|l| {
                    opsdesk_domain::support::plan_mismatch(a.support_plan, l, today, a.govcloud)
                }),
                notice: opsdesk_domain::support::plan_notice(a.support_plan, today, a.govcloud),
                account_id: a.id,
                support_plan: a.support_plan,
                plan_in_effect: a.support_plan.in_effect(today, a.govcloud),
                levels,
                error,
            });
        }
        Ok(checks)
    }

    /// Asks AWS again (DescribeSeverityLevels) for every known account whose kept answer is
    /// older than a day (an hour after a failed ask), so escalations, advice and the admin
    /// page work from a fresh answer; returns how many accounts were asked.
    pub async fn refresh_severity_levels(&self, aws: &dyn SupportCases) -> crate::Result<usize> {
        let kept = self.db().severity_levels().await?;
        let now = self.now();
        let mut asked = 0;
        for record in self.aws_accounts(&crate::Actor::cli()).await? {
            let fresh = kept
                .iter()
                .find(|k| k.account_id == record.id)
                .is_some_and(|k| now < k.checked_at + levels_wait(k.error.is_some()));
            if !fresh {
                // The answer, or why there is none, is kept; the plan table covers a failure.
                if let Err(e) = self
                    .ask_severity_levels(aws, &(&record.account()).into())
                    .await?
                {
                    tracing::info!(account = %record.id, error = %e, "AWS did not say which case severities the account has");
                }
                asked += 1;
            }
        }
        Ok(asked)
    }

    /// What every known account (configuration file and API) should be warned of today: a
    /// plan that ends or has ended, and an AWS answer kept for it that does not fit its plan.
    pub async fn plan_warnings(&self) -> crate::Result<Vec<PlanWarning>> {
        let today = self.now().date_naive();
        let kept = self.db().severity_levels().await?;
        let mut warnings = Vec::new();
        for record in self.aws_accounts(&crate::Actor::cli()).await? {
            let a = record.account();
            let name = format!("AWS account {} ({})", a.id, a.name);
            let warn = |ending: bool, text: String| PlanWarning {
                account_id: a.id.clone(),
                configured: record.origin == "config",
                ending,
                text: format!("{name}: {text}"),
            };
            if let Some(n) = opsdesk_domain::support::plan_notice(a.support_plan, today, a.govcloud)
            {
                warnings.push(warn(true, n));
            }
            let offered = kept
                .iter()
                .find(|k| k.account_id == a.id)
                .and_then(|k| k.levels.as_deref());
            if let Some(m) = offered.and_then(|o| {
                opsdesk_domain::support::plan_mismatch(a.support_plan, o, today, a.govcloud)
            }) {
                warnings.push(warn(false, m));
            }
        }
        Ok(warnings)
    }

    /// Takes `refused` and every severity above it out of the answer kept for `account_id`.
    async fn drop_offered(&self, account_id: &str, refused: CaseSeverity) -> crate::Result<()> {
        let id = account_id.to_owned();
        self.change(move |tx, now| {
            Box::pin(async move {
                let Some(kept) = tx.severity_levels_of(&id).await? else {
                    return Ok(());
                };
                let Some(levels) = kept.levels else {
                    return Ok(());
                };
                let left: Vec<CaseSeverity> = levels.into_iter().filter(|l| *l < refused).collect();
                tx.save_severity_levels(&id, Some(&left), None, false, now)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// The account as configured now (the configuration file first, then the API).
    async fn account_of(&self, id: &str) -> crate::Result<Option<AwsAccount>> {
        if let Some(a) = self.settings.aws_accounts.iter().find(|a| a.id == id) {
            return Ok(Some(a.clone()));
        }
        Ok(self.db().aws_account(id).await?.map(|a| a.account()))
    }

    /// Follows an open case. A resolved ticket resolves the case first of all; otherwise the
    /// case is read back and the ticket's new public replies are sent, each once: a call that
    /// fails stops the rest and is reported with what was done before it.
    async fn follow_case(
        &self,
        aws: &dyn SupportCases,
        case: &SupportCaseRecord,
        case_id: &str,
        account: &CaseAccount,
        ticket_open: bool,
    ) -> crate::Result<Outcome> {
        let mut sent_upto = case.sent_comment_id;
        let mut sent_parts = case.sent_parts;
        if !ticket_open {
            return Ok(match aws.resolve_case(account, case_id).await {
                Ok(status) => Outcome::Followed {
                    state: None,
                    sent_upto,
                    sent_parts,
                    resolved: Some(status),
                    error: None,
                    refused: Vec::new(),
                    files: FileWork::default(),
                },
                Err(error) => Outcome::Followed {
                    state: None,
                    sent_upto,
                    sent_parts,
                    resolved: None,
                    error: Some(error),
                    refused: Vec::new(),
                    files: FileWork::default(),
                },
            });
        }
        let mut state = match aws
            .describe_case(account, case_id, case.last_message_at)
            .await
        {
            Ok(state) => state,
            Err(error) => {
                return Ok(Outcome::Followed {
                    state: None,
                    sent_upto,
                    sent_parts,
                    resolved: None,
                    error: Some(error),
                    refused: Vec::new(),
                    files: FileWork::default(),
                })
            }
        };
        let comments = self.db().comments(case.ticket_id).await?;
        // Our own messages come back from AWS; mirror only what others wrote.
        state.communications.retain(|m| {
            let body = m.body.trim();
            case.last_message_at.is_none_or(|l| m.at > l)
                && body != case.body.trim()
                && !body.starts_with(CASE_FILES_MESSAGE)
                && !comments.iter().any(|c| c.body.trim() == body)
        });
        let mut files = FileWork::default();
        // Files AWS's messages carry come to the ticket (once: each is recorded under its
        // AWS id). When one cannot be read for now, that message and those after it are read
        // again next pass (they are not mirrored now); the replies still go.
        let mut files_error = None;
        let mut kept = state.communications.len();
        'messages: for (i, m) in state.communications.iter().enumerate() {
            for a in &m.attachments {
                let read = match aws.attachment(account, &a.id).await {
                    Ok(file) => {
                        let upload = crate::attachments::Upload {
                            name: file.name,
                            declared_type: None,
                            bytes: file.bytes,
                        };
                        match self.store_files(vec![upload]).await {
                            Ok(stored) => {
                                files.came.extend(stored.into_iter().map(|mut f| {
                                    f.case_attachment = Some(a.id.clone());
                                    f
                                }));
                                Ok(())
                            }
                            Err(crate::Error::Files(e)) => Err(CaseError::Failed(format!(
                                "keeping a file of the case: {e}"
                            ))),
                            Err(e) => {
                                files.notes.push(format!(
                                    "The file {} of an AWS Support case message was not kept: {e}",
                                    a.name
                                ));
                                Ok(())
                            }
                        }
                    }
                    Err(e) => Err(e),
                };
                match read {
                    Ok(()) => {}
                    Err(e) if e.retryable() => {
                        files_error = Some(e);
                        kept = i;
                        break 'messages;
                    }
                    Err(e) => files.notes.push(format!(
                        "The file {} of an AWS Support case message could not be read: {e}",
                        a.name
                    )),
                }
            }
        }
        state.communications.truncate(kept);
        // Files already taken from a message read again are not recorded twice (each is
        // kept under its AWS id).
        let mut error = None;
        let mut refused = Vec::new();
        'replies: for c in comments
            .iter()
            .filter(|c| c.public && c.id > case.sent_comment_id && c.author != AWS_AUTHOR)
        {
            // A reply longer than AWS takes goes as several messages, in order; the parts AWS
            // took on an earlier pass are not sent again.
            let done = usize::try_from(sent_parts).unwrap_or(0);
            let parts = communication_parts(&c.body);
            for (i, part) in parts.iter().enumerate().skip(done) {
                match aws
                    .add_communication(account, case_id, part, &case.cc, None)
                    .await
                {
                    Ok(()) => sent_parts = i64::try_from(i + 1).unwrap_or(i64::MAX),
                    // AWS finds this message invalid and always will: it must not hold back
                    // the replies after it.
                    Err(e @ CaseError::Refused(_)) => {
                        refused.push(Refusal {
                            comment: c.id,
                            taken: i,
                            parts: parts.len(),
                            error: e,
                        });
                        break;
                    }
                    // Throttled or unreachable: the later replies would fare no better; this
                    // one goes on from the part that failed on the next pass.
                    Err(e) => {
                        error = Some(e);
                        break 'replies;
                    }
                }
            }
            sent_upto = c.id;
            sent_parts = 0;
        }
        if error.is_none() {
            error = self
                .send_files(aws, case, case_id, account, &mut files)
                .await?;
        }
        let error = error.or(files_error);
        Ok(Outcome::Followed {
            state: Some(state),
            sent_upto,
            sent_parts,
            resolved: None,
            error,
            refused,
            files,
        })
    }

    /// The ticket's files chosen for its case and not sent yet, read from the file store;
    /// those AWS cannot take are refused with a note.
    async fn files_for_case(&self, ticket_id: i64) -> crate::Result<CaseFiles> {
        let mut out = CaseFiles::default();
        for a in self.db().attachments_for_case(ticket_id).await? {
            if a.size > CASE_FILE_MAX_BYTES as i64 {
                let why = format!(
                    "{} is {}, over the 5 MB AWS Support takes; attach it in the AWS Support Center",
                    a.name,
                    opsdesk_domain::attachment::readable_size(a.size)
                );
                out.notes.push(format!("The file {why}."));
                out.refused.push((a.id, why));
                continue;
            }
            match self.stored_bytes(&a).await {
                Ok(bytes) => out.ready.push((
                    a.id,
                    CaseFile {
                        name: a.name.clone(),
                        bytes,
                    },
                )),
                // Gone, or not what was stored: it will not come back.
                Err(e @ crate::Error::FileLost(_)) => {
                    let why = format!("{} cannot be read from the file store: {e}", a.name);
                    out.notes.push(format!("The file {why}."));
                    out.refused.push((a.id, why));
                }
                // The store failed for now: tried again on the next pass.
                Err(e) => {
                    tracing::warn!(file = a.id, error = %e, "reading a file for an AWS Support case failed");
                }
            }
        }
        Ok(out)
    }

    /// Sends the files chosen for an open case, three to a message; returns the error that
    /// stopped it, if any (the rest go on the next pass).
    async fn send_files(
        &self,
        aws: &dyn SupportCases,
        case: &SupportCaseRecord,
        case_id: &str,
        account: &CaseAccount,
        work: &mut FileWork,
    ) -> crate::Result<Option<CaseError>> {
        let mut files = self.files_for_case(case.ticket_id).await?;
        work.refused.append(&mut files.refused);
        work.notes.append(&mut files.notes);
        let key = opsdesk_domain::Ticket::key_for(case.ticket_id);
        for batch in files.ready.chunks(CASE_FILES_PER_SET) {
            let payload: Vec<CaseFile> = batch.iter().map(|(_, f)| f.clone()).collect();
            let sent = match aws.add_attachment_set(account, &payload).await {
                Ok(set) => {
                    let body = format!("{CASE_FILES_MESSAGE} {key}: {}", names(batch));
                    aws.add_communication(account, case_id, &body, &case.cc, Some(&set))
                        .await
                }
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => work.sent.extend(batch.iter().map(|(id, _)| *id)),
                Err(e @ CaseError::Refused(_)) => {
                    work.notes.push(format!(
                        "AWS Support refused the files {}: {e}. Attach them in the AWS Support Center.",
                        names(batch)
                    ));
                    work.refused
                        .extend(batch.iter().map(|(id, _)| (*id, e.to_string())));
                }
                Err(e) => return Ok(Some(e)),
            }
        }
        Ok(None)
    }

    /// The account of a case with the role to assume for it, as configured now.
    async fn case_account_of(&self, case: &SupportCaseRecord) -> crate::Result<CaseAccount> {
        Ok(match self.account_of(&case.account_id).await? {
            Some(a) => (&a).into(),
            None => CaseAccount {
                id: case.account_id.clone(),
                role_arn: None,
            },
        })
    }
}

/// The wait before trying a case again after `attempts` failures in a row: 30 s doubling, at
/// most 30 minutes, with jitter.
fn retry_wait(attempts: i64) -> Duration {
    crate::outbox::backoff(
        attempts,
        Duration::seconds(30),
        Duration::minutes(30),
        &mut rand::thread_rng(),
    )
}

/// A ticket's files for its case: ready to send (by attachment id), or refused.
#[derive(Debug, Default)]
struct CaseFiles {
    ready: Vec<(i64, CaseFile)>,
    refused: Vec<(i64, String)>,
    notes: Vec<String>,
}

/// `a.png, b.log`.
fn names(files: &[(i64, CaseFile)]) -> String {
    files
        .iter()
        .map(|(_, f)| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
