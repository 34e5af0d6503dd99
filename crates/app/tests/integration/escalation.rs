//! SLA events, escalation tiers and the way to AWS Support, driven by a fake clock: the
//! watcher announces each SLA warning and breach once, moves unacknowledged tickets up their
//! tiers, and sends production emergencies to AWS Support at the severity the plan allows.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use opsdesk_core::escalation::EscalationSettings;
use opsdesk_core::outbox::NotifySettings;
use opsdesk_core::{Actor, Desk, FixedClock};
use opsdesk_domain::escalation::{AwsEscalation, EscalateTo, EscalationPolicy};
use opsdesk_domain::{
    AwsAccount, CapSource, CaseSeverity, NewTicket, NewWorkload, SupportPlan, Ticket, TicketPatch,
};
use opsdesk_store::{OutboxFilter, OutboxItem};
use serde_json::{json, Value};

use crate::common::{add_local_user, on_both_backends, Backend, TestDb};

on_both_backends!(
    sla_warning_and_breach_are_announced_once_each,
    unacknowledged_ticket_climbs_the_tiers_up_to_aws,
    production_emergencies_go_to_aws_at_once_within_the_plan,
    manual_escalation_explains_what_it_cannot_do,
    routing_rules_reach_the_owning_team_on_call_and_account_team,
    the_case_worker_opens_follows_and_resolves_cases,
    refused_cases_are_retried_then_told,
    no_account_known_keeps_the_clocks_going,
    the_aws_tier_after_the_automatic_case_opens_no_second_one,
    failures_while_following_keep_what_was_done,
    long_replies_are_split_and_a_refused_reply_holds_back_none,
    stored_due_times_move_on_by_the_time_spent_pending,
    a_tickets_account_is_that_of_its_newest_signal_naming_one,
    what_aws_offers_decides_the_case_severity,
    a_severity_aws_refuses_is_asked_again_then_lowered,
    the_same_configuration_escalates_differently_from_2027,
    kpi_measures_a_case_against_the_plan_it_was_opened_on,
    files_go_with_the_case_and_come_back_from_it,
);

fn t0() -> DateTime<Utc> {
    // A Tuesday; the built-in policies count around the clock.
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// Every event goes to the `hook` webhook (never sent here: no dispatcher runs), so the
/// outbox shows what was announced.
fn notify() -> NotifySettings {
    NotifySettings {
        channels: vec![
            from(json!({"name": "hook", "type": "webhook", "url": "https://hooks.example.com/x"})),
            from(
                json!({"name": "dev-sns", "type": "sns", "topic_arn": "arn:aws:sns:eu-west-1:123456789012:dev"}),
            ),
            from(json!({"name": "aws-team", "type": "email", "to": ["ops-lead@example.com"]})),
        ],
        rules: vec![from(json!({"name": "all", "channels": ["hook"]}))],
        ..NotifySettings::default()
    }
}

fn accounts() -> Vec<AwsAccount> {
    vec![
        from(
            json!({"id": "111111111111", "name": "shop-prod", "support_plan": "business",
                    "account_team_emails": ["tam@example.com"]}),
        ),
        from(
            json!({"id": "222222222222", "name": "lab", "support_plan": "developer",
                    "account_team_emails": ["lab-tam@example.com"]}),
        ),
    ]
}

async fn desk(backend: Backend, escalation: EscalationSettings) -> (TestDb, Desk, Arc<FixedClock>) {
    let db = TestDb::new(backend).await;
    let clock = Arc::new(FixedClock::new(t0()));
    let configured = db.desk().await;
    let desk = Desk::new(configured.db().clone(), clock.clone())
        .with_attachment_settings(configured.attachment_settings().clone())
        .with_notify_settings(notify())
        .with_aws_accounts(accounts())
        .with_escalation_settings(escalation);
    (db, desk, clock)
}

async fn workload(desk: &Desk, name: &str, environment: &str, account: &str) {
    desk.save_workload(
        &Actor::cli(),
        from::<NewWorkload>(
            json!({"name": name, "environment": environment, "accounts": [account]}),
        ),
    )
    .await
    .unwrap();
}

async fn open(desk: &Desk, body: Value) -> Ticket {
    let mut body = body;
    body["kind"] = json!("incident");
    desk.create_ticket(&Actor::cli(), from::<NewTicket>(body))
        .await
        .unwrap()
}

async fn outbox(desk: &Desk, id: i64) -> Vec<OutboxItem> {
    let mut items = desk
        .db()
        .outbox(&OutboxFilter {
            ticket_id: Some(id),
            limit: 100,
            ..OutboxFilter::default()
        })
        .await
        .unwrap();
    items.reverse();
    items
}

/// The ticket's AWS Support case, if any.
async fn case_of(desk: &Desk, id: i64) -> Option<opsdesk_store::SupportCaseRecord> {
    desk.ticket_clocks(&Actor::cli(), id).await.unwrap().1
}

fn events(items: &[OutboxItem]) -> Vec<String> {
    items
        .iter()
        .map(|i| format!("{}:{}", i.event, i.channel))
        .collect()
}

async fn actions(desk: &Desk, id: i64) -> Vec<String> {
    desk.history(&Actor::cli(), id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

async fn sla_warning_and_breach_are_announced_once_each(backend: Backend) {
    let (_db, desk, clock) = desk(backend, EscalationSettings::default()).await;
    let t = open(
        &desk,
        json!({"title": "Checkout is down", "severity": "SEV1"}),
    )
    .await;

    assert_eq!(desk.watch_clocks().await.unwrap(), 1);
    let (stored, _) = desk.ticket_clocks(&Actor::cli(), t.id).await.unwrap();
    let stored = stored.unwrap();
    // The built-in SEV1 policy: first response in 15 minutes, resolution in 4 hours, warning
    // at 75 %.
    assert_eq!(stored.sla_policy.as_deref(), Some("default-sev1"));
    assert_eq!(
        stored.first_response_due_at,
        Some(t0() + TimeDelta::minutes(15))
    );
    assert_eq!(
        stored.first_response_warn_at,
        Some(t0() + TimeDelta::seconds(11 * 60 + 15))
    );
    assert_eq!(stored.resolution_due_at, Some(t0() + TimeDelta::hours(4)));
    assert_eq!(stored.check_at, stored.first_response_warn_at);
    assert_eq!(events(&outbox(&desk, t.id).await), ["created:hook"]);

    // Nothing is due before the warning time: the watcher does not even look.
    clock.advance(TimeDelta::minutes(11));
    assert_eq!(desk.watch_clocks().await.unwrap(), 0);

    clock.advance(TimeDelta::minutes(1));
    assert_eq!(desk.watch_clocks().await.unwrap(), 1);
    let items = outbox(&desk, t.id).await;
    assert_eq!(events(&items), ["created:hook", "sla_warning:hook"]);
    assert_eq!(
        items[1].idempotency_key,
        format!("{}-v1-sla_warning-first_response-hook", t.key)
    );
    assert_eq!(desk.watch_clocks().await.unwrap(), 0, "announced once");

    clock.advance(TimeDelta::minutes(4));
    assert_eq!(desk.watch_clocks().await.unwrap(), 1);
    assert_eq!(
        events(&outbox(&desk, t.id).await),
        ["created:hook", "sla_warning:hook", "sla_breach:hook"]
    );
    let history = actions(&desk, t.id).await;
    assert!(
        history.contains(&"ticket.sla_warning".to_owned()),
        "{history:?}"
    );
    assert!(
        history.contains(&"ticket.sla_breached".to_owned()),
        "{history:?}"
    );

    // Acknowledged: the first-response clock is done; the resolution clock warns at 3 hours.
    desk.update_ticket(
        &Actor::cli(),
        t.id,
        None,
        from::<TicketPatch>(json!({"status": "acknowledged"})),
    )
    .await
    .unwrap();
    assert_eq!(desk.watch_clocks().await.unwrap(), 1);
    clock.advance(TimeDelta::minutes(3 * 60 - 16));
    assert_eq!(desk.watch_clocks().await.unwrap(), 1);
    let items = outbox(&desk, t.id).await;
    assert_eq!(
        events(&items),
        [
            "created:hook",
            "sla_warning:hook",
            "sla_breach:hook",
            "sla_warning:hook"
        ]
    );
    assert!(items[3].idempotency_key.contains("sla_warning-resolution"));

    // Resolved: nothing is watched any more.
    desk.update_ticket(
        &Actor::cli(),
        t.id,
        None,
        from::<TicketPatch>(json!({"status": "resolved"})),
    )
    .await
    .unwrap();
    assert_eq!(desk.watch_clocks().await.unwrap(), 1);
    clock.advance(TimeDelta::hours(2));
    assert_eq!(desk.watch_clocks().await.unwrap(), 0);
    let (stored, _) = desk.ticket_clocks(&Actor::cli(), t.id).await.unwrap();
    assert_eq!(stored.unwrap().check_at, None);
}

fn tiers() -> EscalationPolicy {
    from(json!({
        "name": "standard",
        "tiers": [
            {"name": "L1", "team": "service-desk", "ack_timeout_minutes": 15},
            {"name": "L2", "team": "sre", "ack_timeout_minutes": 30},
            {"name": "AWS", "aws": true},
        ],
    }))
}

async fn unacknowledged_ticket_climbs_the_tiers_up_to_aws(backend: Backend) {
    let settings = EscalationSettings {
        policies: vec![tiers()],
        ..EscalationSettings::default()
    };
    let (_db, desk, clock) = desk(backend, settings).await;
    // Staging: the automatic AWS rule stays out of it.
    workload(&desk, "shop", "staging", "111111111111").await;
    let t = open(
        &desk,
        json!({"title": "Orders slow", "severity": "SEV3", "workload": "shop", "team": "service-desk"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();
    let (stored, _) = desk.ticket_clocks(&Actor::cli(), t.id).await.unwrap();
    let stored = stored.unwrap();
    assert_eq!(stored.escalation_policy.as_deref(), Some("standard"));
    assert_eq!(stored.tier, Some(0));
    assert_eq!(stored.escalate_at, Some(t0() + TimeDelta::minutes(15)));

    clock.advance(TimeDelta::minutes(16));
    desk.watch_clocks().await.unwrap();
    let now = desk.ticket(&Actor::cli(), t.id).await.unwrap();
    assert_eq!(now.team.as_deref(), Some("sre"), "handed to L2");
    let (stored, case) = desk.ticket_clocks(&Actor::cli(), t.id).await.unwrap();
    let stored = stored.unwrap();
    assert_eq!(stored.tier, Some(1));
    assert_eq!(stored.escalate_at, Some(t0() + TimeDelta::minutes(46)));
    assert!(case.is_none());
    let history = desk.history(&Actor::cli(), t.id).await.unwrap();
    let moved = history
        .iter()
        .find(|e| e.action == "ticket.escalated")
        .unwrap();
    assert_eq!(moved.actor, "system:escalation");
    assert_eq!(moved.changes["team"].after, json!("sre"));
    assert_eq!(moved.changes["tier"].after["tier"], json!("L2"));
    assert!(events(&outbox(&desk, t.id).await).contains(&"escalated:hook".to_owned()));

    // Still nobody answers: the last tier opens an AWS case in the workload's account.
    clock.advance(TimeDelta::minutes(31));
    desk.watch_clocks().await.unwrap();
    let (stored, case) = desk.ticket_clocks(&Actor::cli(), t.id).await.unwrap();
    assert_eq!(stored.unwrap().tier, Some(2));
    let case = case.expect("an AWS case is requested");
    assert_eq!(case.state, "requested");
    assert_eq!(case.account_id, "111111111111");
    assert_eq!(case.requested_severity, "high");
    assert_eq!(case.severity.as_deref(), Some("high"));
    assert_eq!(case.cc, ["tam@example.com"]);
    assert!(case
        .subject
        .starts_with(&format!("[{}][SEV3] Orders slow", t.key)));
    let notes = desk.comments(&Actor::cli(), t.id).await.unwrap();
    assert!(
        notes.iter().any(|c| !c.public
            && c.body
                .contains("Escalated to AWS Support in account 111111111111")),
        "{notes:?}"
    );

    // There is no tier above AWS.
    let err = desk
        .escalate(&Actor::cli(), t.id, EscalateTo::Next, None, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("last tier"), "{err}");
}

async fn production_emergencies_go_to_aws_at_once_within_the_plan(backend: Backend) {
    let settings = EscalationSettings {
        aws: AwsEscalation {
            notify_channels: vec!["dev-sns".into()],
            account_team_channel: Some("aws-team".into()),
            ..AwsEscalation::default()
        },
        ..EscalationSettings::default()
    };
    let (_db, desk, _clock) = desk(backend, settings).await;
    workload(&desk, "shop", "production", "111111111111").await;
    workload(&desk, "lab", "production", "222222222222").await;
    workload(&desk, "shop-staging", "staging", "111111111111").await;

    let shop = open(
        &desk,
        json!({"title": "Payments fail", "severity": "SEV1", "workload": "shop"}),
    )
    .await;
    let lab = open(
        &desk,
        json!({"title": "Lab down", "severity": "SEV2", "workload": "lab"}),
    )
    .await;
    let staging = open(
        &desk,
        json!({"title": "Staging down", "severity": "SEV1", "workload": "shop-staging"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();

    // Business plan: critical is not allowed, so the case asks for urgent, and says why.
    let case = case_of(&desk, shop.id).await;
    let case = case.unwrap();
    assert_eq!(
        (case.state.as_str(), case.requested_severity.as_str()),
        ("requested", "critical")
    );
    assert_eq!(case.severity.as_deref(), Some("urgent"));
    assert!(case.detail.contains("at most urgent"), "{}", case.detail);
    let notes = desk.comments(&Actor::cli(), shop.id).await.unwrap();
    assert!(
        notes.iter().any(|c| c.body.contains("at most urgent")),
        "{notes:?}"
    );
    // In the same step: the development team's SNS topic and the account team by email.
    let items = outbox(&desk, shop.id).await;
    let escalated: Vec<&OutboxItem> = items.iter().filter(|i| i.event == "escalated").collect();
    let channels: Vec<&str> = escalated.iter().map(|i| i.channel.as_str()).collect();
    assert_eq!(channels, ["hook", "dev-sns", "aws-team"]);
    assert_eq!(
        escalated[2].notification["recipients"],
        json!(["tam@example.com"])
    );
    let history = desk.history(&Actor::cli(), shop.id).await.unwrap();
    let step = history
        .iter()
        .find(|e| e.action == "ticket.escalated")
        .unwrap();
    assert_eq!(step.changes["aws_case"].after["capped"], json!(true));

    // Developer plan: no AWS Support API. The ticket says so; the account team hears instead.
    let case = case_of(&desk, lab.id).await;
    let case = case.unwrap();
    assert_eq!(case.state, "unavailable");
    assert_eq!(case.severity, None);
    let notes = desk.comments(&Actor::cli(), lab.id).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|c| c.body.contains("Not sent to AWS Support")
                && c.body.contains("lab-tam@example.com")),
        "{notes:?}"
    );
    let items = outbox(&desk, lab.id).await;
    let team = items.iter().find(|i| i.channel == "aws-team").unwrap();
    assert_eq!(
        team.notification["recipients"],
        json!(["lab-tam@example.com"])
    );

    // Staging is not production: no case.
    let case = case_of(&desk, staging.id).await;
    assert!(case.is_none());

    // Raised to SEV2 later, a production ticket goes then.
    let later = open(
        &desk,
        json!({"title": "Search slow", "severity": "SEV4", "workload": "shop"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();
    assert!(case_of(&desk, later.id).await.is_none());
    desk.update_ticket(
        &Actor::cli(),
        later.id,
        None,
        from::<TicketPatch>(json!({"severity": "SEV2"})),
    )
    .await
    .unwrap();
    desk.watch_clocks().await.unwrap();
    let case = case_of(&desk, later.id).await.unwrap();
    assert_eq!(case.severity.as_deref(), Some("urgent"));
}

async fn manual_escalation_explains_what_it_cannot_do(backend: Backend) {
    let (_db, desk, _clock) = desk(backend, EscalationSettings::default()).await;
    let t = open(
        &desk,
        json!({"title": "Question about limits", "severity": "SEV4"}),
    )
    .await;
    // Two accounts and nothing on the ticket naming one.
    let err = desk
        .escalate(&Actor::cli(), t.id, EscalateTo::Aws, None, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no AWS account is known"), "{err}");
    let err = desk
        .escalate(
            &Actor::cli(),
            t.id,
            EscalateTo::Aws,
            Some("999999999999".into()),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("999999999999 is not known"),
        "{err}"
    );
    let err = desk
        .escalate(&Actor::cli(), t.id, EscalateTo::Next, None, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no escalation policy"), "{err}");

    let done = desk
        .escalate(
            &Actor::cli(),
            t.id,
            EscalateTo::Aws,
            Some("111111111111".into()),
            Some("customer asks for AWS".into()),
        )
        .await
        .unwrap();
    let case = done.aws_case.unwrap();
    assert_eq!(
        (case.state.as_str(), case.severity.as_deref()),
        ("requested", Some("normal"))
    );
    assert_eq!(done.ticket.version, t.version + 1);
    let err = desk
        .escalate(
            &Actor::cli(),
            t.id,
            EscalateTo::Aws,
            Some("111111111111".into()),
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already escalated"), "{err}");
    let requester = Actor::new("token:someone", opsdesk_domain::Role::Requester);
    assert!(desk
        .escalate(&requester, t.id, EscalateTo::Next, None, None)
        .await
        .is_err());
}

async fn routing_rules_reach_the_owning_team_on_call_and_account_team(backend: Backend) {
    let (_db, desk, _clock) = desk(backend, EscalationSettings::default()).await;
    let cli = Actor::cli();
    for who in ["ana@example.com", "ben@example.com", "lead@example.com"] {
        add_local_user(&desk, who, opsdesk_domain::Role::Agent).await;
    }
    desk.add_team(&cli, "payments", Some("lead@example.com"))
        .await
        .unwrap();
    for who in ["ana@example.com", "ben@example.com"] {
        desk.set_team_member(&cli, "payments", who, true)
            .await
            .unwrap();
    }
    workload(&desk, "shop", "staging", "111111111111").await;
    let rule: opsdesk_domain::routing::RoutingRule = from(json!({
        "name": "people", "events": ["created", "resolved"], "channels": ["aws-team"],
        "recipients": ["owning_team", "on_call", "account_team"],
    }));
    desk.save_routing_rule(&cli, rule, None).await.unwrap();

    let t = open(&desk, json!({"title": "Refunds stuck", "severity": "SEV3", "workload": "shop", "team": "payments"})).await;
    let items = outbox(&desk, t.id).await;
    let mail = items.iter().find(|i| i.channel == "aws-team").unwrap();
    // The team (its lead is a member too), on call (unassigned: the lead, named once) and the
    // account team of the workload's account.
    assert_eq!(
        mail.notification["recipients"],
        json!([
            "ana@example.com",
            "ben@example.com",
            "lead@example.com",
            "tam@example.com"
        ])
    );

    // Assigned: on call is the assignee; looked up again for each event.
    desk.set_team_member(&cli, "payments", "ben@example.com", false)
        .await
        .unwrap();
    desk.update_ticket(
        &cli,
        t.id,
        None,
        from::<TicketPatch>(json!({"assignee": "carla@example.com", "status": "resolved"})),
    )
    .await
    .unwrap();
    let items = outbox(&desk, t.id).await;
    let mail = items
        .iter()
        .find(|i| i.channel == "aws-team" && i.event == "resolved")
        .unwrap();
    assert_eq!(
        mail.notification["recipients"],
        json!([
            "ana@example.com",
            "lead@example.com",
            "carla@example.com",
            "tam@example.com"
        ])
    );
}

/// The AWS Support API as a recording stand-in, for what moto cannot do
/// (AddCommunicationToCase, messages from AWS, throttling and SubscriptionRequiredException;
/// see support_cases.rs). The real client is tested against moto there and end to end in
/// emergency.rs.
#[derive(Default)]
struct Aws {
    calls: std::sync::Mutex<Vec<String>>,
    messages: std::sync::Mutex<Vec<opsdesk_core::cases::CaseCommunication>>,
    status: std::sync::Mutex<String>,
    create_fails: std::sync::Mutex<Option<opsdesk_core::cases::CaseError>>,
    describe_fails: std::sync::Mutex<bool>,
    /// Replies with this body fail.
    reply_fails: std::sync::Mutex<Option<String>>,
    /// Replies with this body are refused as invalid.
    reply_refused: std::sync::Mutex<Option<String>>,
    /// DescribeSeverityLevels' answer; none: the call fails, as on an endpoint without it.
    levels: std::sync::Mutex<Option<Result<Vec<CaseSeverity>, opsdesk_core::cases::CaseError>>>,
    /// How many times DescribeSeverityLevels was asked.
    level_asks: std::sync::Mutex<u32>,
    /// CreateCase refuses cases of this severity, as AWS does one the account cannot open.
    refused_severity: std::sync::Mutex<Option<CaseSeverity>>,
    /// The attachment sets made, in order.
    sets: std::sync::Mutex<Vec<Vec<opsdesk_core::cases::CaseFile>>>,
    /// Files on AWS's messages, by attachment id.
    case_files: std::sync::Mutex<std::collections::HashMap<String, opsdesk_core::cases::CaseFile>>,
    /// DescribeAttachment is throttled.
    attachment_throttled: std::sync::Mutex<bool>,
}

#[async_trait::async_trait]
impl opsdesk_core::cases::SupportCases for Aws {
    async fn create_case(
        &self,
        case: &opsdesk_core::cases::CaseRequest,
    ) -> Result<String, opsdesk_core::cases::CaseError> {
        self.calls.lock().unwrap().push(format!(
            "create {} {} {}/{} cc={}{}",
            case.account.id,
            case.severity,
            case.service_code,
            case.category_code,
            case.cc.join(","),
            case.attachment_set_id
                .as_deref()
                .map(|s| format!(" files={s}"))
                .unwrap_or_default()
        ));
        if *self.refused_severity.lock().unwrap() == Some(case.severity) {
            return Err(opsdesk_core::cases::CaseError::Refused(format!(
                "CreateCase: InvalidParameterValueException: Invalid value for severityCode: {}",
                case.severity
            )));
        }
        match self.create_fails.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok("case-1".into()),
        }
    }

    async fn describe_case(
        &self,
        _account: &opsdesk_core::cases::CaseAccount,
        case_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<opsdesk_core::cases::CaseState, opsdesk_core::cases::CaseError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("describe {case_id}"));
        if *self.describe_fails.lock().unwrap() {
            return Err(opsdesk_core::cases::CaseError::Failed(
                "connection reset".into(),
            ));
        }
        Ok(opsdesk_core::cases::CaseState {
            status: self.status.lock().unwrap().clone(),
            display_id: Some("1234567890".into()),
            communications: self
                .messages
                .lock()
                .unwrap()
                .iter()
                .filter(|m| since.is_none_or(|s| m.at > s))
                .cloned()
                .collect(),
        })
    }

    async fn add_communication(
        &self,
        _account: &opsdesk_core::cases::CaseAccount,
        case_id: &str,
        body: &str,
        _cc: &[String],
        attachment_set_id: Option<&str>,
    ) -> Result<(), opsdesk_core::cases::CaseError> {
        self.calls.lock().unwrap().push(format!(
            "reply {case_id}: {body}{}",
            attachment_set_id
                .map(|s| format!(" files={s}"))
                .unwrap_or_default()
        ));
        if self.reply_fails.lock().unwrap().as_deref() == Some(body) {
            return Err(opsdesk_core::cases::CaseError::Throttled(
                "Rate exceeded".into(),
            ));
        }
        // As AWS does: communicationBody has at most 8,000 characters.
        if body.chars().count() > 8000
            || self.reply_refused.lock().unwrap().as_deref() == Some(body)
        {
            return Err(opsdesk_core::cases::CaseError::Refused(
                "AddCommunicationToCase: ValidationException: communicationBody is too long".into(),
            ));
        }
        Ok(())
    }

    async fn add_attachment_set(
        &self,
        _account: &opsdesk_core::cases::CaseAccount,
        files: &[opsdesk_core::cases::CaseFile],
    ) -> Result<String, opsdesk_core::cases::CaseError> {
        // As AWS does: at most three files of at most 5 MB.
        if files.len() > 3 || files.iter().any(|f| f.bytes.len() > 5 * 1024 * 1024) {
            return Err(opsdesk_core::cases::CaseError::Refused(
                "AddAttachmentsToSet: AttachmentLimitExceeded".into(),
            ));
        }
        let mut sets = self.sets.lock().unwrap();
        sets.push(files.to_vec());
        let id = format!("set-{}", sets.len());
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        self.calls
            .lock()
            .unwrap()
            .push(format!("attach {id}: {}", names.join(",")));
        Ok(id)
    }

    async fn attachment(
        &self,
        _account: &opsdesk_core::cases::CaseAccount,
        attachment_id: &str,
    ) -> Result<opsdesk_core::cases::CaseFile, opsdesk_core::cases::CaseError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("read file {attachment_id}"));
        if *self.attachment_throttled.lock().unwrap() {
            return Err(opsdesk_core::cases::CaseError::Throttled(
                "DescribeAttachment: DescribeAttachmentLimitExceeded".into(),
            ));
        }
        self.case_files
            .lock()
            .unwrap()
            .get(attachment_id)
            .cloned()
            .ok_or_else(|| {
                opsdesk_core::cases::CaseError::NotFound(format!("attachment {attachment_id}"))
            })
    }

    async fn resolve_case(
        &self,
        _account: &opsdesk_core::cases::CaseAccount,
        case_id: &str,
    ) -> Result<String, opsdesk_core::cases::CaseError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("resolve {case_id}"));
        Ok("resolved".into())
    }

    async fn services(
        &self,
        _account: &opsdesk_core::cases::CaseAccount,
    ) -> Result<Vec<opsdesk_core::cases::SupportService>, opsdesk_core::cases::CaseError> {
        self.calls.lock().unwrap().push("services".into());
        Ok(vec![opsdesk_core::cases::SupportService {
            code: "amazon-cloudwatch".into(),
            name: "CloudWatch".into(),
            categories: vec![
                ("alarms".into(), "Alarms".into()),
                ("general-guidance".into(), "General Guidance".into()),
            ],
        }])
    }

    async fn severity_levels(
        &self,
        _account: &opsdesk_core::cases::CaseAccount,
    ) -> Result<Vec<CaseSeverity>, opsdesk_core::cases::CaseError> {
        *self.level_asks.lock().unwrap() += 1;
        self.levels.lock().unwrap().clone().unwrap_or_else(|| {
            Err(opsdesk_core::cases::CaseError::Failed(
                "DescribeSeverityLevels: UnknownOperationException".into(),
            ))
        })
    }
}

impl Aws {
    fn asks(&self) -> u32 {
        *self.level_asks.lock().unwrap()
    }

    fn calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

async fn the_case_worker_opens_follows_and_resolves_cases(backend: Backend) {
    let (_db, desk, clock) = desk(backend, EscalationSettings::default()).await;
    workload(&desk, "shop", "production", "111111111111").await;
    let aws = Aws::default();
    *aws.status.lock().unwrap() = "opened".into();
    let t = open(
        &desk,
        json!({"title": "Payments fail", "severity": "SEV2", "workload": "shop"}),
    )
    .await;
    assert_eq!(desk.sync_cases(&aws).await.unwrap(), 0, "nothing asked yet");
    desk.watch_clocks().await.unwrap();

    // Opened, then read back at once for its display id, in one pass.
    assert_eq!(desk.sync_cases(&aws).await.unwrap(), 2);
    assert_eq!(
        aws.calls(),
        [
            "create 111111111111 urgent general-info/using-aws cc=tam@example.com",
            "describe case-1"
        ]
    );
    let case = case_of(&desk, t.id).await.unwrap();
    assert_eq!(case.state, "opened");
    assert_eq!(case.case_id.as_deref(), Some("case-1"));
    assert_eq!(case.display_id.as_deref(), Some("1234567890"));
    assert_eq!(case.aws_status.as_deref(), Some("opened"));
    assert_eq!(
        desk.sync_cases(&aws).await.unwrap(),
        0,
        "followed every minute"
    );

    // AWS answers; the agent replies in public and adds an internal note.
    aws.messages
        .lock()
        .unwrap()
        .push(opsdesk_core::cases::CaseCommunication {
            body: "We are looking into the payment gateway errors.".into(),
            submitted_by: "Amazon Web Services".into(),
            at: t0() + TimeDelta::minutes(3),
            attachments: Vec::new(),
        });
    *aws.status.lock().unwrap() = "pending-customer-action".into();
    let cli = Actor::cli();
    let comment = |body: &str, public: bool| {
        from::<opsdesk_domain::NewComment>(json!({"body": body, "public": public}))
    };
    desk.add_comment(
        &cli,
        t.id,
        comment("Error rate back under 1% since 10:05.", true),
    )
    .await
    .unwrap();
    desk.add_comment(&cli, t.id, comment("internal: rollback done", false))
        .await
        .unwrap();
    clock.advance(TimeDelta::minutes(2));
    assert_eq!(desk.sync_cases(&aws).await.unwrap(), 1);
    assert_eq!(
        aws.calls(),
        [
            "describe case-1",
            "reply case-1: Error rate back under 1% since 10:05."
        ]
    );
    let notes = desk.comments(&cli, t.id).await.unwrap();
    let mirrored: Vec<&opsdesk_domain::Comment> =
        notes.iter().filter(|c| c.author == "aws:support").collect();
    assert_eq!(mirrored.len(), 1, "{notes:?}");
    assert!(!mirrored[0].public);
    assert!(mirrored[0]
        .body
        .contains("We are looking into the payment gateway errors."));
    let history = actions(&desk, t.id).await;
    for a in [
        "ticket.aws_case_opened",
        "ticket.aws_case_status",
        "ticket.aws_case_message",
    ] {
        assert!(history.contains(&a.to_owned()), "{a} not in {history:?}");
    }

    // Nothing new: read, nothing sent again, nothing mirrored twice.
    clock.advance(TimeDelta::minutes(2));
    desk.sync_cases(&aws).await.unwrap();
    assert_eq!(aws.calls(), ["describe case-1"]);
    let again = desk.comments(&cli, t.id).await.unwrap();
    assert_eq!(again.len(), notes.len());

    // Resolving the ticket resolves the case at the next look, without waiting a minute.
    desk.update_ticket(
        &cli,
        t.id,
        None,
        from::<TicketPatch>(json!({"status": "resolved"})),
    )
    .await
    .unwrap();
    desk.watch_clocks().await.unwrap();
    desk.sync_cases(&aws).await.unwrap();
    assert_eq!(aws.calls(), ["resolve case-1"]);
    let case = case_of(&desk, t.id).await.unwrap();
    assert_eq!(
        (case.state.as_str(), case.aws_status.as_deref()),
        ("resolved", Some("resolved"))
    );
    clock.advance(TimeDelta::hours(1));
    assert_eq!(
        desk.sync_cases(&aws).await.unwrap(),
        0,
        "a resolved case is left alone"
    );
}

async fn refused_cases_are_retried_then_told(backend: Backend) {
    let settings = EscalationSettings {
        case_max_attempts: 2,
        aws: AwsEscalation {
            account_team_channel: Some("aws-team".into()),
            ..AwsEscalation::default()
        },
        ..EscalationSettings::default()
    };
    let (_db, desk, clock) = desk(backend, settings).await;
    workload(&desk, "shop", "production", "111111111111").await;
    let aws = Aws::default();
    let cli = Actor::cli();

    // Throttled, then failing: retried once after a backoff, then failed and said so.
    *aws.create_fails.lock().unwrap() = Some(opsdesk_core::cases::CaseError::Throttled(
        "Rate exceeded".into(),
    ));
    let t = open(
        &desk,
        json!({"title": "Checkout down", "severity": "SEV1", "workload": "shop"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();
    desk.sync_cases(&aws).await.unwrap();
    let case = case_of(&desk, t.id).await.unwrap();
    assert_eq!((case.state.as_str(), case.attempts), ("requested", 1));
    assert!(
        case.next_sync_at > t0() + TimeDelta::seconds(20),
        "{case:?}"
    );
    assert_eq!(
        desk.sync_cases(&aws).await.unwrap(),
        0,
        "waits out the backoff"
    );
    clock.advance(TimeDelta::minutes(1));
    desk.sync_cases(&aws).await.unwrap();
    let case = case_of(&desk, t.id).await.unwrap();
    assert_eq!(case.state, "failed");
    assert!(case.detail.contains("Rate exceeded"), "{}", case.detail);
    let notes = desk.comments(&cli, t.id).await.unwrap();
    assert!(
        notes.iter().any(|c| c
            .body
            .contains("Could not open the AWS Support case after 2 attempts")),
        "{notes:?}"
    );

    // AWS says the account's plan has no API (the configured plan was out of date): the
    // ticket says so and the account team hears.
    *aws.create_fails.lock().unwrap() = Some(opsdesk_core::cases::CaseError::SubscriptionRequired(
        "AWS Premium Support Subscription is required".into(),
    ));
    let u = open(
        &desk,
        json!({"title": "Orders lost", "severity": "SEV2", "workload": "shop"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();
    desk.sync_cases(&aws).await.unwrap();
    let case = case_of(&desk, u.id).await.unwrap();
    assert_eq!(case.state, "unavailable");
    let notes = desk.comments(&cli, u.id).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|c| c.body.contains("AWS Support refused the case")),
        "{notes:?}"
    );
    let told: Vec<OutboxItem> = outbox(&desk, u.id)
        .await
        .into_iter()
        .filter(|i| i.channel == "aws-team")
        .collect();
    // Once when escalated, once when AWS refused.
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(told[1]
        .idempotency_key
        .contains("escalated-aws-unavailable"));
    assert_eq!(
        told[1].notification["recipients"],
        json!(["tam@example.com"])
    );
}

async fn no_account_known_keeps_the_clocks_going(backend: Backend) {
    let (_db, desk, clock) = desk(backend, EscalationSettings::default()).await;
    // A production workload in an account opsdesk does not know.
    workload(&desk, "shop", "production", "999999999999").await;
    let t = open(
        &desk,
        json!({"title": "Checkout down", "severity": "SEV1", "workload": "shop"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();
    assert!(case_of(&desk, t.id).await.is_none());
    let notes = desk.comments(&Actor::cli(), t.id).await.unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].body.contains("no AWS account is known"),
        "{notes:?}"
    );
    assert!(actions(&desk, t.id)
        .await
        .contains(&"ticket.escalation_skipped".to_owned()));

    // The SLA clocks go on, and the note is not repeated.
    clock.advance(TimeDelta::minutes(12));
    assert_eq!(desk.watch_clocks().await.unwrap(), 1);
    assert!(events(&outbox(&desk, t.id).await).contains(&"sla_warning:hook".to_owned()));
    assert_eq!(desk.comments(&Actor::cli(), t.id).await.unwrap().len(), 1);
}

async fn the_aws_tier_after_the_automatic_case_opens_no_second_one(backend: Backend) {
    let settings = EscalationSettings {
        policies: vec![tiers()],
        ..EscalationSettings::default()
    };
    let (_db, desk, clock) = desk(backend, settings).await;
    workload(&desk, "shop", "production", "111111111111").await;
    let t = open(
        &desk,
        json!({"title": "Checkout down", "severity": "SEV1", "workload": "shop"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();
    let (stored, case) = desk.ticket_clocks(&Actor::cli(), t.id).await.unwrap();
    assert_eq!(case.unwrap().state, "requested");
    // Already with AWS Support: the climb ends there.
    let stored = stored.unwrap();
    assert_eq!((stored.tier, stored.escalate_at), (Some(2), None));

    // Nothing moves later, and nothing fails.
    clock.advance(TimeDelta::hours(1));
    desk.watch_clocks().await.unwrap();
    let history = actions(&desk, t.id).await;
    assert_eq!(
        history.iter().filter(|a| *a == "ticket.escalated").count(),
        1,
        "{history:?}"
    );
    // Reaching the AWS tier by hand finds the case: no second one.
    let (stored, _) = desk.ticket_clocks(&Actor::cli(), t.id).await.unwrap();
    assert_eq!(stored.unwrap().tier, Some(2));
    let err = desk
        .escalate(&Actor::cli(), t.id, EscalateTo::Aws, None, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already escalated"), "{err}");
}

async fn failures_while_following_keep_what_was_done(backend: Backend) {
    let (_db, desk, clock) = desk(backend, EscalationSettings::default()).await;
    workload(&desk, "shop", "production", "111111111111").await;
    let aws = Aws::default();
    *aws.status.lock().unwrap() = "opened".into();
    let cli = Actor::cli();
    let comment =
        |body: &str| from::<opsdesk_domain::NewComment>(json!({"body": body, "public": true}));

    // Resolved before the case could be opened: it is not opened at all.
    let gone = open(
        &desk,
        json!({"title": "Blip", "severity": "SEV2", "workload": "shop"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();
    desk.update_ticket(
        &cli,
        gone.id,
        None,
        from::<TicketPatch>(json!({"status": "resolved"})),
    )
    .await
    .unwrap();
    desk.sync_cases(&aws).await.unwrap();
    assert!(aws.calls().is_empty(), "no call to AWS");
    let case = case_of(&desk, gone.id).await.unwrap();
    assert_eq!(case.state, "cancelled");

    let t = open(
        &desk,
        json!({"title": "Payments fail", "severity": "SEV2", "workload": "shop"}),
    )
    .await;
    desk.add_comment(&cli, t.id, comment("Written before the case."))
        .await
        .unwrap();
    desk.watch_clocks().await.unwrap();
    desk.sync_cases(&aws).await.unwrap();
    desk.sync_cases(&aws).await.unwrap();
    aws.calls();

    // Two replies; AWS throttles the second: the first is not sent again.
    desk.add_comment(&cli, t.id, comment("First reply."))
        .await
        .unwrap();
    desk.add_comment(&cli, t.id, comment("Second reply."))
        .await
        .unwrap();
    *aws.reply_fails.lock().unwrap() = Some("Second reply.".into());
    clock.advance(TimeDelta::minutes(2));
    desk.sync_cases(&aws).await.unwrap();
    assert_eq!(
        aws.calls(),
        [
            "describe case-1",
            "reply case-1: First reply.",
            "reply case-1: Second reply."
        ]
    );
    let case = case_of(&desk, t.id).await.unwrap();
    assert!(case.detail.contains("Rate exceeded"), "{case:?}");
    assert_eq!(case.attempts, 1);
    *aws.reply_fails.lock().unwrap() = None;
    clock.advance(TimeDelta::minutes(2));
    desk.sync_cases(&aws).await.unwrap();
    assert_eq!(
        aws.calls(),
        ["describe case-1", "reply case-1: Second reply."]
    );

    // AWS unreachable: retried with growing waits, and the ticket hears after five failures.
    *aws.describe_fails.lock().unwrap() = true;
    for _ in 0..5 {
        clock.advance(TimeDelta::hours(1));
        desk.sync_cases(&aws).await.unwrap();
        assert_eq!(
            desk.sync_cases(&aws).await.unwrap(),
            0,
            "waits before trying again"
        );
    }
    let case = case_of(&desk, t.id).await.unwrap();
    assert_eq!(case.attempts, 5);
    let notes = desk.comments(&cli, t.id).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|c| c.body.contains("has failed 5 times in a row")),
        "{notes:?}"
    );

    // A resolved ticket resolves its case even while AWS cannot be read.
    desk.update_ticket(
        &cli,
        t.id,
        None,
        from::<TicketPatch>(json!({"status": "resolved"})),
    )
    .await
    .unwrap();
    desk.watch_clocks().await.unwrap();
    aws.calls();
    desk.sync_cases(&aws).await.unwrap();
    assert_eq!(aws.calls(), ["resolve case-1"]);
    let case = case_of(&desk, t.id).await.unwrap();
    assert_eq!(case.state, "resolved");
}

async fn long_replies_are_split_and_a_refused_reply_holds_back_none(backend: Backend) {
    let (_db, desk, clock) = desk(backend, EscalationSettings::default()).await;
    workload(&desk, "shop", "production", "111111111111").await;
    let aws = Aws::default();
    *aws.status.lock().unwrap() = "opened".into();
    let cli = Actor::cli();
    let comment =
        |body: &str| from::<opsdesk_domain::NewComment>(json!({"body": body, "public": true}));
    let t = open(
        &desk,
        json!({"title": "Payments fail", "severity": "SEV2", "workload": "shop"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();
    desk.sync_cases(&aws).await.unwrap();
    desk.sync_cases(&aws).await.unwrap();
    aws.calls();

    // A 20,000-character reply (a pasted log, say), one AWS refuses, and one after them.
    let line = format!("{}.", "log line ".repeat(50).trim_end());
    let long = vec![line.as_str(); 46].join("\n");
    assert!(long.chars().count() > 20_000);
    desk.add_comment(&cli, t.id, comment(&long)).await.unwrap();
    desk.add_comment(&cli, t.id, comment("Refused reply."))
        .await
        .unwrap();
    desk.add_comment(&cli, t.id, comment("Last reply."))
        .await
        .unwrap();
    *aws.reply_refused.lock().unwrap() = Some("Refused reply.".into());
    clock.advance(TimeDelta::minutes(2));
    desk.sync_cases(&aws).await.unwrap();
    let calls = aws.calls();
    assert_eq!(calls[0], "describe case-1");
    let parts: Vec<&str> = calls[1..calls.len() - 2]
        .iter()
        .map(|c| c.strip_prefix("reply case-1: ").unwrap())
        .collect();
    assert_eq!(parts.len(), 3, "{calls:?}");
    for (i, p) in parts.iter().enumerate() {
        assert!(p.chars().count() <= 8000);
        assert!(
            p.starts_with(&format!("(part {} of 3)\n\n", i + 1)),
            "{p:.30}"
        );
    }
    // Every line of the reply reaches AWS, in order.
    let sent: Vec<&str> = parts
        .iter()
        .map(|p| p.split_once("\n\n").unwrap().1)
        .collect();
    assert_eq!(sent.join("\n"), long);
    assert_eq!(
        calls[calls.len() - 2..],
        ["reply case-1: Refused reply.", "reply case-1: Last reply."]
    );
    let case = case_of(&desk, t.id).await.unwrap();
    assert_eq!(case.attempts, 0, "{case:?}");
    let notes = desk.comments(&cli, t.id).await.unwrap();
    assert!(
        notes.iter().any(|c| !c.public
            && c.body.contains("was not sent to AWS Support case case-1")
            && c.body.contains("ValidationException")),
        "{notes:?}"
    );

    // Nothing is sent twice.
    clock.advance(TimeDelta::hours(1));
    desk.sync_cases(&aws).await.unwrap();
    assert_eq!(aws.calls(), ["describe case-1"]);

    // AWS throttles the second part of a long reply: the next pass goes on from that part,
    // so the first is not repeated at AWS.
    let another = vec![line.as_str(); 30].join("\n");
    let parts = opsdesk_domain::support::communication_parts(&another);
    assert_eq!(parts.len(), 2);
    *aws.reply_fails.lock().unwrap() = Some(parts[1].clone());
    desk.add_comment(&cli, t.id, comment(&another))
        .await
        .unwrap();
    desk.add_comment(&cli, t.id, comment("After the long one."))
        .await
        .unwrap();
    clock.advance(TimeDelta::minutes(2));
    desk.sync_cases(&aws).await.unwrap();
    let reply = |p: &str| format!("reply case-1: {p}");
    assert_eq!(
        aws.calls(),
        [
            "describe case-1".to_owned(),
            reply(&parts[0]),
            reply(&parts[1])
        ]
    );
    let case = case_of(&desk, t.id).await.unwrap();
    assert_eq!((case.sent_parts, case.attempts), (1, 1), "{case:?}");
    *aws.reply_fails.lock().unwrap() = None;
    clock.advance(TimeDelta::hours(1));
    desk.sync_cases(&aws).await.unwrap();
    assert_eq!(
        aws.calls(),
        [
            "describe case-1".to_owned(),
            reply(&parts[1]),
            reply("After the long one.")
        ]
    );
    let case = case_of(&desk, t.id).await.unwrap();
    assert_eq!((case.sent_parts, case.attempts), (0, 0), "{case:?}");
}

async fn stored_due_times_move_on_by_the_time_spent_pending(backend: Backend) {
    let (_db, desk, clock) = desk(backend, EscalationSettings::default()).await;
    let cli = Actor::cli();
    let t = open(
        &desk,
        json!({"title": "Waiting on the vendor", "severity": "SEV1"}),
    )
    .await;
    let status = |s: &str| from::<TicketPatch>(json!({ "status": s }));
    desk.update_ticket(&cli, t.id, None, status("acknowledged"))
        .await
        .unwrap();
    clock.advance(TimeDelta::minutes(10));
    desk.update_ticket(&cli, t.id, None, status("pending"))
        .await
        .unwrap();
    desk.watch_clocks().await.unwrap();
    clock.advance(TimeDelta::minutes(30));
    desk.update_ticket(&cli, t.id, None, status("in_progress"))
        .await
        .unwrap();
    desk.watch_clocks().await.unwrap();
    let (stored, _) = desk.ticket_clocks(&cli, t.id).await.unwrap();
    // Four hours of resolution time, plus the half hour spent pending.
    assert_eq!(
        stored.unwrap().resolution_due_at,
        Some(t0() + TimeDelta::hours(4) + TimeDelta::minutes(30))
    );
}

/// A CloudWatch alarm of `account` (`None`: an event that names no account).
fn alarm(n: u32, account: Option<&str>) -> opsdesk_domain::signal::Signal {
    let event = json!({
        "version": "0", "id": format!("alarm-{n}"), "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": account.unwrap_or("111111111111"),
        "time": "2026-11-24T09:00:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:cloudwatch:eu-west-1:111111111111:alarm:api-5xx"],
        "detail": {"alarmName": "api-5xx", "state": {"value": "ALARM",
                   "timestamp": format!("2026-11-24T09:{n:02}:00.000+0000")}}
    });
    let mut signal = opsdesk_domain::signal::eventbridge::from_event(&event, t0())
        .unwrap()
        .remove(0);
    signal.account = account.map(str::to_owned);
    signal
}

/// The account a ticket's AWS case would go to comes from the newest of its signals that
/// names one, however many signals came before it or after it without one.
async fn a_tickets_account_is_that_of_its_newest_signal_naming_one(backend: Backend) {
    let (_db, desk, _clock) = desk(backend, EscalationSettings::default()).await;
    let mut signals = vec![alarm(0, Some("111111111111"))];
    signals.extend((1..30).map(|n| alarm(n, None)));
    signals.push(alarm(30, Some("222222222222")));
    signals.extend((31..40).map(|n| alarm(n, None)));
    let monitor = Actor::new("token:monitor", opsdesk_domain::Role::Ingest);
    let outcomes = desk.ingest(&monitor, signals).await.unwrap();
    let ticket = outcomes[0].ticket_id.unwrap();
    assert!(outcomes.iter().all(|o| o.ticket_id == Some(ticket)));
    let quiet = open(&desk, json!({"title": "no signals", "severity": "SEV3"})).await;

    let contexts = desk
        .db()
        .tickets_aws_context(&[ticket, quiet.id, 999_999])
        .await
        .unwrap();
    let (account, _service) = &contexts[&ticket];
    assert_eq!(account.as_deref(), Some("222222222222"));
    assert!(!contexts.contains_key(&quiet.id), "{contexts:?}");
    assert_eq!(contexts.len(), 1, "{contexts:?}");
}

async fn what_aws_offers_decides_the_case_severity(backend: Backend) {
    let (_db, desk, clock) = desk(backend, EscalationSettings::default()).await;
    // Configured Business, which the table caps at urgent; AWS offers the account critical.
    workload(&desk, "shop", "production", "111111111111").await;
    let aws = Aws::default();
    *aws.status.lock().unwrap() = "opened".into();
    *aws.levels.lock().unwrap() = Some(Ok(CaseSeverity::ALL.to_vec()));
    let first = open(
        &desk,
        json!({"title": "Checkout down", "severity": "SEV1", "workload": "shop"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();
    let case = case_of(&desk, first.id).await.unwrap();
    assert_eq!(
        case.severity.as_deref(),
        Some("urgent"),
        "AWS has not been asked yet"
    );
    assert_eq!(case.severity_source, Some(CapSource::Plan));

    desk.sync_cases(&aws).await.unwrap();
    assert_eq!(aws.asks(), 1);
    assert_eq!(
        aws.calls()[0],
        "create 111111111111 critical general-info/using-aws cc=tam@example.com"
    );
    let case = case_of(&desk, first.id).await.unwrap();
    assert_eq!(case.severity.as_deref(), Some("critical"));
    assert_eq!(case.severity_source, Some(CapSource::Aws));
    assert_eq!(case.support_plan, Some(SupportPlan::Business));
    let notes = desk.comments(&Actor::cli(), first.id).await.unwrap();
    assert!(
        notes.iter().any(|c| c
            .body
            .contains("AWS offers this account critical (DescribeSeverityLevels)")),
        "{notes:?}"
    );
    let history = desk.history(&Actor::cli(), first.id).await.unwrap();
    let opened = history
        .iter()
        .find(|e| e.action == "ticket.aws_case_opened")
        .unwrap();
    assert_eq!(opened.changes["aws_case"].after["severity_from"], "aws");

    // The answer is kept: the next escalation uses it at once, and the worker does not ask
    // again within the day.
    let second = open(
        &desk,
        json!({"title": "Payments down", "severity": "SEV1", "workload": "shop"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();
    let case = case_of(&desk, second.id).await.unwrap();
    assert_eq!(case.severity.as_deref(), Some("critical"));
    assert_eq!(case.severity_source, Some(CapSource::Aws));
    let history = desk.history(&Actor::cli(), second.id).await.unwrap();
    let step = history
        .iter()
        .find(|e| e.action == "ticket.escalated")
        .unwrap();
    assert_eq!(step.changes["aws_case"].after["capped_by"], "aws");
    clock.advance(TimeDelta::minutes(5));
    desk.sync_cases(&aws).await.unwrap();
    assert_eq!(aws.asks(), 1, "asked once a day");

    // A day later the plan changed at AWS: only up to urgent now.
    *aws.levels.lock().unwrap() = Some(Ok(vec![
        CaseSeverity::Low,
        CaseSeverity::Normal,
        CaseSeverity::High,
        CaseSeverity::Urgent,
    ]));
    clock.advance(TimeDelta::hours(25));
    let third = open(
        &desk,
        json!({"title": "Search down", "severity": "SEV1", "workload": "shop"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();
    aws.calls();
    desk.sync_cases(&aws).await.unwrap();
    assert_eq!(aws.asks(), 2);
    let case = case_of(&desk, third.id).await.unwrap();
    assert_eq!(case.severity.as_deref(), Some("urgent"));
    assert_eq!(case.severity_source, Some(CapSource::Aws));

    // Plan advice and the account list show what AWS's answer means for the configuration.
    let advice = desk.support_plan_advice(&Actor::cli()).await.unwrap();
    let shop = advice
        .iter()
        .find(|a| a.account_id == "111111111111")
        .unwrap();
    assert_eq!(shop.aws_mismatch, None, "urgent fits Business");
    *aws.levels.lock().unwrap() = Some(Ok(CaseSeverity::ALL.to_vec()));
    let checks = desk
        .check_severity_levels(&Actor::cli(), &aws)
        .await
        .unwrap();
    let shop = checks
        .iter()
        .find(|c| c.account_id == "111111111111")
        .unwrap();
    assert!(
        shop.mismatch
            .as_deref()
            .is_some_and(|m| m.contains("up to critical")),
        "{shop:?}"
    );
    let advice = desk.support_plan_advice(&Actor::cli()).await.unwrap();
    let shop = advice
        .iter()
        .find(|a| a.account_id == "111111111111")
        .unwrap();
    assert!(shop.aws_mismatch.is_some(), "{shop:?}");
    // The server asks again for every account whose answer is a day old: both were just
    // asked.
    let asked = aws.asks();
    assert_eq!(desk.refresh_severity_levels(&aws).await.unwrap(), 0);
    assert_eq!(aws.asks(), asked);
    clock.advance(TimeDelta::hours(25));
    assert_eq!(desk.refresh_severity_levels(&aws).await.unwrap(), 2);
    assert!(desk
        .check_severity_levels(
            &Actor::new("agent@example.com", opsdesk_domain::Role::Agent),
            &aws
        )
        .await
        .is_err());
}

async fn a_severity_aws_refuses_is_asked_again_then_lowered(backend: Backend) {
    let (_db, desk, _clock) = desk(backend, EscalationSettings::default()).await;
    let cli = Actor::cli();
    desk.save_aws_account(
        &cli,
        from(json!({"id": "333333333333", "name": "new-plan", "support_plan": "business_support_plus"})),
    )
    .await
    .unwrap();
    workload(&desk, "orders", "production", "333333333333").await;
    let aws = Aws::default();
    *aws.status.lock().unwrap() = "opened".into();
    // AWS cannot say which severities the account has, and refuses critical.
    *aws.refused_severity.lock().unwrap() = Some(CaseSeverity::Critical);
    let t = open(
        &desk,
        json!({"title": "Orders down", "severity": "SEV1", "workload": "orders"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();
    let case = case_of(&desk, t.id).await.unwrap();
    assert_eq!(
        case.severity.as_deref(),
        Some("critical"),
        "the table gives Business Support+ critical"
    );
    desk.sync_cases(&aws).await.unwrap();
    let calls = aws.calls();
    assert!(
        calls[0].starts_with("create 333333333333 critical"),
        "{calls:?}"
    );
    assert!(
        calls[1].starts_with("create 333333333333 urgent"),
        "{calls:?}"
    );
    assert_eq!(
        aws.asks(),
        2,
        "asked before opening, and again after the refusal"
    );
    let case = case_of(&desk, t.id).await.unwrap();
    assert_eq!(case.state, "opened");
    assert_eq!(case.severity.as_deref(), Some("urgent"));
    let notes = desk.comments(&cli, t.id).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|c| c.body.contains("refused the case as critical")
                && c.body.contains("opening it as urgent instead")),
        "{notes:?}"
    );

    // AWS lists critical yet refuses it: one lower, and AWS's refusal is believed until its
    // next answer, so a refusal that does not clear (throttled) and the next pass ask for
    // urgent, not critical again.
    *aws.levels.lock().unwrap() = Some(Ok(CaseSeverity::ALL.to_vec()));
    _clock.advance(TimeDelta::hours(2));
    let u = open(
        &desk,
        json!({"title": "Invoices down", "severity": "SEV1", "workload": "orders"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();
    aws.calls();
    *aws.create_fails.lock().unwrap() = Some(opsdesk_core::cases::CaseError::Throttled(
        "Rate exceeded".into(),
    ));
    desk.sync_cases(&aws).await.unwrap();
    let creates = |calls: Vec<String>| -> Vec<String> {
        calls
            .into_iter()
            .filter(|c| c.starts_with("create"))
            .collect()
    };
    let calls = creates(aws.calls());
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls[0].starts_with("create 333333333333 critical"),
        "{calls:?}"
    );
    assert!(
        calls[1].starts_with("create 333333333333 urgent"),
        "{calls:?}"
    );
    let case = case_of(&desk, u.id).await.unwrap();
    assert_eq!(
        (case.state.as_str(), case.severity.as_deref()),
        ("requested", Some("urgent"))
    );
    *aws.create_fails.lock().unwrap() = None;
    _clock.advance(TimeDelta::minutes(5));
    desk.sync_cases(&aws).await.unwrap();
    let calls = creates(aws.calls());
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].starts_with("create 333333333333 urgent"),
        "{calls:?}"
    );
    assert_eq!(case_of(&desk, u.id).await.unwrap().state, "opened");

    // An account AWS now says has no Support API loses what AWS offered it before.
    *aws.levels.lock().unwrap() = Some(Err(opsdesk_core::cases::CaseError::SubscriptionRequired(
        "AWS Premium Support Subscription is required".into(),
    )));
    desk.check_severity_levels(&cli, &aws).await.unwrap();
    let kept = desk.db().severity_levels().await.unwrap();
    let orders = kept
        .iter()
        .find(|k| k.account_id == "333333333333")
        .unwrap();
    assert_eq!(orders.levels, None, "{orders:?}");
    assert!(orders
        .error
        .as_deref()
        .is_some_and(|e| e.contains("Subscription")));
}

async fn the_same_configuration_escalates_differently_from_2027(backend: Backend) {
    // The lab account is configured `developer`, and Developer ends on 1 January 2027.
    for (at, state) in [
        (
            Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap(),
            "unavailable",
        ),
        (
            Utc.with_ymd_and_hms(2027, 1, 1, 1, 0, 0).unwrap(),
            "requested",
        ),
    ] {
        let (_db, desk, clock) = desk(backend, EscalationSettings::default()).await;
        clock.advance(at - t0());
        workload(&desk, "lab", "production", "222222222222").await;
        let t = open(
            &desk,
            json!({"title": "Lab down", "severity": "SEV2", "workload": "lab"}),
        )
        .await;
        desk.watch_clocks().await.unwrap();
        let case = case_of(&desk, t.id).await.unwrap();
        assert_eq!(case.state, state, "{at}");
        let notes = desk.comments(&Actor::cli(), t.id).await.unwrap();
        if state == "requested" {
            // After the end opsdesk asks AWS what the account has; one AWS has not moved
            // answers that it has no API, and the ticket and account team hear it.
            assert_eq!(case.support_plan, Some(SupportPlan::BusinessSupportPlus));
            assert!(
                case.detail
                    .contains("configured Developer, which ended on 2027-01-01"),
                "{}",
                case.detail
            );
            let aws = Aws::default();
            *aws.levels.lock().unwrap() = Some(Err(
                opsdesk_core::cases::CaseError::SubscriptionRequired("no plan".into()),
            ));
            *aws.create_fails.lock().unwrap() =
                Some(opsdesk_core::cases::CaseError::SubscriptionRequired(
                    "AWS Premium Support Subscription is required".into(),
                ));
            desk.sync_cases(&aws).await.unwrap();
            let case = case_of(&desk, t.id).await.unwrap();
            assert_eq!(case.state, "unavailable");
        } else {
            assert!(
                notes
                    .iter()
                    .any(|c| c.body.contains("Developer plan has no AWS Support API")),
                "{notes:?}"
            );
        }
        // Plan advice says what happens to the plan, before and after.
        let advice = desk.support_plan_advice(&Actor::cli()).await.unwrap();
        let lab = advice
            .iter()
            .find(|a| a.account_id == "222222222222")
            .unwrap();
        let notice = lab.notice.clone().unwrap();
        assert!(
            notice.contains(if state == "requested" {
                "ended on 2027-01-01"
            } else {
                "AWS ends the Developer plan on 2027-01-01"
            }),
            "{notice}"
        );
        // Production with the built-in 15-minute SEV1 target: Enterprise, in either year.
        assert_eq!(lab.recommended, SupportPlan::Enterprise);
    }
}

async fn kpi_measures_a_case_against_the_plan_it_was_opened_on(backend: Backend) {
    // An Enterprise On-Ramp account answers critical within 30 minutes; Enterprise, which
    // AWS moves it to, within 15. A case opened on the 31st of December and answered after
    // 25 minutes met its target, whatever the account holds when the KPI is read.
    let (db, _desk, clock) = desk(backend, EscalationSettings::default()).await;
    clock.advance(Utc.with_ymd_and_hms(2026, 12, 31, 12, 0, 0).unwrap() - t0());
    let ramp: Vec<AwsAccount> = vec![from(json!({"id": "444444444444", "name": "ramp",
        "support_plan": "enterprise_on_ramp"}))];
    let configured = db.desk().await;
    let desk = Desk::new(configured.db().clone(), clock.clone())
        .with_attachment_settings(configured.attachment_settings().clone())
        .with_notify_settings(notify())
        .with_aws_accounts(ramp)
        .with_escalation_settings(EscalationSettings::default());
    workload(&desk, "core", "production", "444444444444").await;
    let t = open(
        &desk,
        json!({"title": "Core down", "severity": "SEV1", "workload": "core"}),
    )
    .await;
    desk.watch_clocks().await.unwrap();
    let opened_at = Utc.with_ymd_and_hms(2026, 12, 31, 12, 0, 0).unwrap();
    let aws = Aws::default();
    *aws.status.lock().unwrap() = "opened".into();
    aws.messages
        .lock()
        .unwrap()
        .push(opsdesk_core::cases::CaseCommunication {
            body: "An engineer is on it.".into(),
            submitted_by: "Amazon Web Services".into(),
            at: opened_at + TimeDelta::minutes(25),
            attachments: Vec::new(),
        });
    desk.sync_cases(&aws).await.unwrap();
    let case = case_of(&desk, t.id).await.unwrap();
    assert_eq!(case.support_plan, Some(SupportPlan::EnterpriseOnRamp));
    assert_eq!(case.severity.as_deref(), Some("critical"));

    // In January the account is configured as what AWS moved it to.
    clock.advance(TimeDelta::days(2));
    let moved: Vec<AwsAccount> = vec![from(json!({"id": "444444444444", "name": "ramp",
        "support_plan": "enterprise"}))];
    let configured = db.desk().await;
    let desk = Desk::new(configured.db().clone(), clock.clone())
        .with_attachment_settings(configured.attachment_settings().clone())
        .with_notify_settings(notify())
        .with_aws_accounts(moved)
        .with_escalation_settings(EscalationSettings::default());
    desk.evaluate_kpis(true).await.unwrap();
    let kpis = desk.kpis(&Actor::cli(), None).await.unwrap();
    let met = kpis
        .iter()
        .find(|k| k.info.name == "aws_case_first_response")
        .and_then(|k| k.value)
        .unwrap();
    assert_eq!(
        met, 100.0,
        "measured against Enterprise On-Ramp's 30 minutes"
    );
}

async fn files_go_with_the_case_and_come_back_from_it(backend: Backend) {
    use opsdesk_core::attachments::{AttachOptions, Upload};
    let (_db, desk, clock) = desk(backend, EscalationSettings::default()).await;
    workload(&desk, "shop", "production", "111111111111").await;
    let aws = Aws::default();
    *aws.status.lock().unwrap() = "opened".into();
    let t = open(
        &desk,
        json!({"title": "Payments fail", "severity": "SEV2", "workload": "shop"}),
    )
    .await;
    let cli = Actor::cli();
    let upload = |name: &str, bytes: Vec<u8>| Upload {
        name: name.into(),
        declared_type: None,
        bytes,
    };
    let for_case = AttachOptions {
        comment_id: None,
        public: false,
        to_case: true,
    };
    let chosen = desk
        .attach(
            &cli,
            t.id,
            vec![
                upload("graph.png", crate::attachments::PNG.to_vec()),
                upload("app.log", b"timeout after 30s".to_vec()),
                upload("rates.csv", b"minute,errors\n1,40".to_vec()),
                upload("notes.txt", b"rolled back 10:04".to_vec()),
                upload("heap.txt", vec![b'h'; 6 * 1024 * 1024]),
            ],
            for_case,
        )
        .await
        .unwrap();
    desk.attach(
        &cli,
        t.id,
        vec![upload("private.txt", b"not for AWS".to_vec())],
        AttachOptions {
            to_case: false,
            ..for_case
        },
    )
    .await
    .unwrap();
    desk.watch_clocks().await.unwrap();

    // Three files go with the case; the fourth follows in a message; the one over AWS's 5 MB
    // stays, with a note; the file not chosen never goes.
    assert_eq!(desk.sync_cases(&aws).await.unwrap(), 2);
    let key = t.key.clone();
    assert_eq!(
        aws.calls(),
        [
            "attach set-1: graph.png,app.log,rates.csv".to_owned(),
            "create 111111111111 urgent general-info/using-aws cc=tam@example.com files=set-1"
                .to_owned(),
            "describe case-1".to_owned(),
            "attach set-2: notes.txt".to_owned(),
            format!("reply case-1: Files from opsdesk ticket {key}: notes.txt files=set-2"),
        ]
    );
    assert_eq!(
        aws.sets.lock().unwrap()[0][0].bytes,
        crate::attachments::PNG
    );
    let files = desk.attachments(&cli, t.id).await.unwrap();
    let sent: Vec<&str> = files
        .iter()
        .filter(|f| f.sent_to_case_at.is_some())
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(sent, ["graph.png", "app.log", "rates.csv", "notes.txt"]);
    let heap = files.iter().find(|f| f.id == chosen[4].id).unwrap();
    assert!(!heap.to_case && heap.sent_to_case_at.is_none());
    let notes = desk.comments(&cli, t.id).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|c| !c.public && c.body.contains("heap.txt") && c.body.contains("5 MB")),
        "{notes:?}"
    );
    // Nothing is sent twice.
    clock.advance(TimeDelta::minutes(2));
    desk.sync_cases(&aws).await.unwrap();
    assert_eq!(aws.calls(), ["describe case-1"]);

    // AWS answers with a file: it comes to the ticket once, for staff; a file the desk does
    // not take is told of instead.
    aws.case_files.lock().unwrap().insert(
        "att-1".into(),
        opsdesk_core::cases::CaseFile {
            name: "trace.png".into(),
            bytes: crate::attachments::PNG.to_vec(),
        },
    );
    aws.case_files.lock().unwrap().insert(
        "att-2".into(),
        opsdesk_core::cases::CaseFile {
            name: "page.html".into(),
            bytes: b"<html><script>x</script></html>".to_vec(),
        },
    );
    aws.messages
        .lock()
        .unwrap()
        .push(opsdesk_core::cases::CaseCommunication {
            body: "Please see the attached trace.".into(),
            submitted_by: "Amazon Web Services".into(),
            at: t0() + TimeDelta::minutes(3),
            attachments: vec![
                opsdesk_core::cases::CaseAttachmentRef {
                    id: "att-1".into(),
                    name: "trace.png".into(),
                },
                opsdesk_core::cases::CaseAttachmentRef {
                    id: "att-2".into(),
                    name: "page.html".into(),
                },
            ],
        });
    // Our own files message comes back from AWS too; it is not mirrored.
    aws.messages
        .lock()
        .unwrap()
        .push(opsdesk_core::cases::CaseCommunication {
            body: format!("Files from opsdesk ticket {key}: notes.txt"),
            submitted_by: "opsdesk@example.com".into(),
            at: t0() + TimeDelta::minutes(3),
            attachments: Vec::new(),
        });
    // AWS throttles the file: the message waits for the next pass, nothing is half-taken.
    *aws.attachment_throttled.lock().unwrap() = true;
    clock.advance(TimeDelta::minutes(2));
    desk.sync_cases(&aws).await.unwrap();
    assert_eq!(aws.calls(), ["describe case-1", "read file att-1"]);
    let notes = desk.comments(&cli, t.id).await.unwrap();
    assert!(
        !notes
            .iter()
            .any(|c| c.body.contains("Please see the attached trace")),
        "{notes:?}"
    );
    *aws.attachment_throttled.lock().unwrap() = false;
    clock.advance(TimeDelta::minutes(30));
    desk.sync_cases(&aws).await.unwrap();
    assert_eq!(
        aws.calls(),
        ["describe case-1", "read file att-1", "read file att-2"]
    );
    let files = desk.attachments(&cli, t.id).await.unwrap();
    let came: Vec<_> = files
        .iter()
        .filter(|f| f.source == opsdesk_domain::attachment::AttachmentSource::AwsCase)
        .collect();
    assert_eq!(came.len(), 1, "{files:?}");
    assert_eq!(came[0].name, "trace.png");
    assert!(!came[0].public);
    assert_eq!(came[0].added_by, "aws:support");
    let notes = desk.comments(&cli, t.id).await.unwrap();
    assert!(
        notes.iter().any(|c| c.body.contains("page.html")),
        "{notes:?}"
    );
    assert!(
        !notes
            .iter()
            .any(|c| c.body.contains("Files from opsdesk ticket")),
        "{notes:?}"
    );
    let (_, bytes) = desk.download(&cli, t.id, came[0].id).await.unwrap();
    assert_eq!(bytes, crate::attachments::PNG);
}
