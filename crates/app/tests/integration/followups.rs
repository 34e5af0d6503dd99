//! Readiness follow-up on both backends: a resolved SEV1 incident opens a post-incident review
//! with its timeline drawn from the ticket's records; its lessons become task tickets linked to
//! the incident; overdue items and reviews are announced once through the routing rules on an
//! injected clock; a proposed question joins a lens on approval; the readiness KPIs count it
//! all; and the API serves it under the access policy.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use opsdesk_core::outbox::NotifySettings;
use opsdesk_core::readiness::{
    ItemState, NewActionItem, NewReview, NewSchedule, ProposalDecision, ReviewKind, ReviewQuery,
    VerificationNote,
};
use opsdesk_core::{Actor, Desk, Error, FixedClock};
use opsdesk_domain::readiness::incident::{IncidentReport, Practice, ProposedQuestion};
use opsdesk_domain::readiness::schedule::ScheduleState;
use opsdesk_domain::readiness::Risk;
use opsdesk_domain::{NewTicket, Status, TicketPatch};
use opsdesk_store::OutboxFilter;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{on_both_backends, Backend, TestDb, TestServer};

on_both_backends!(
    a_resolved_sev1_incident_is_reviewed_and_its_lessons_become_tracked_work,
    schedules_open_reviews_and_announce_due_then_overdue,
    findings_become_tasks_and_the_kpis_count_them,
    the_api_serves_post_incident_reviews_and_action_items,
    a_review_by_hand_counts_and_old_or_gone_things_stay_quiet,
);

const FULL: &str = include_str!("../../../domain/tests/fixtures/lens/full.json");

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
}

fn notify() -> NotifySettings {
    NotifySettings {
        channels: vec![
            from(
                json!({"name": "hook", "type": "webhook", "url": "https://hooks.example.com/ops"}),
            ),
            from(
                json!({"name": "prod", "type": "webhook", "url": "https://hooks.example.com/prod"}),
            ),
        ],
        rules: vec![
            from(json!({"name": "everything", "channels": ["hook"]})),
            from(json!({
                "name": "production-reviews", "events": ["review_due", "review_overdue"],
                "environments": ["production"], "channels": ["prod"]
            })),
        ],
        base_url: Some("https://desk.example.com".into()),
        ..NotifySettings::default()
    }
}

async fn desk(backend: Backend) -> (TestDb, Desk, Arc<FixedClock>) {
    let db = TestDb::new(backend).await;
    let clock = Arc::new(FixedClock::new(t0()));
    let desk =
        Desk::new(db.desk().await.db().clone(), clock.clone()).with_notify_settings(notify());
    desk.seed_readiness().await.unwrap();
    (db, desk, clock)
}

async fn workload(desk: &Desk, name: &str, environment: &str) {
    let cli = Actor::cli();
    if desk
        .teams(&cli)
        .await
        .unwrap()
        .iter()
        .all(|t| t.name != "payments")
    {
        desk.add_team(&cli, "payments", None).await.unwrap();
    }
    desk.save_workload(
        &cli,
        from(json!({
            "name": name, "environment": environment, "team": "payments",
            "accounts": ["111122223333"]
        })),
    )
    .await
    .unwrap();
}

async fn incident(desk: &Desk, title: &str, severity: &str, workload: &str) -> i64 {
    desk.create_ticket(
        &Actor::cli(),
        from::<NewTicket>(json!({
            "title": title, "kind": "incident", "severity": severity, "workload": workload,
            "team": "payments"
        })),
    )
    .await
    .unwrap()
    .id
}

async fn status(desk: &Desk, id: i64, to: &str) {
    desk.update_ticket(
        &Actor::cli(),
        id,
        None,
        from::<TicketPatch>(json!({ "status": to })),
    )
    .await
    .unwrap();
}

/// The events queued on the outbox for `channel`, with the title each tells.
async fn queued(desk: &Desk, channel: &str) -> Vec<(String, String)> {
    desk.db()
        .outbox(&OutboxFilter {
            state: None,
            ticket_id: None,
            limit: 1000,
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.channel == channel)
        .map(|o| {
            (
                o.event,
                o.notification["title"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn team_lens() -> String {
    let mut lens: Value = serde_json::from_str(FULL).unwrap();
    lens["name"] = json!("Payments readiness");
    lens.to_string()
}

async fn a_resolved_sev1_incident_is_reviewed_and_its_lessons_become_tracked_work(
    backend: Backend,
) {
    let (_db, desk, clock) = desk(backend).await;
    let cli = Actor::cli();
    workload(&desk, "checkout", "production").await;
    // The team reviews checkout against its own lens: the post-incident review uses it.
    let lens = desk.import_lens(&cli, &team_lens()).await.unwrap();
    desk.create_schedule(
        &cli,
        NewSchedule {
            workload: "checkout".into(),
            lens: Some(lens.id.clone()),
            every_days: Some(90),
            review_by: None,
            days_before: None,
            notice_days: None,
        },
    )
    .await
    .unwrap();

    let id = incident(&desk, "Checkout returns 502", "SEV1", "checkout").await;
    clock.advance(Duration::minutes(4));
    status(&desk, id, "acknowledged").await;
    desk.add_comment(
        &cli,
        id,
        from(json!({"body": "Rolled back the deploy", "public": false})),
    )
    .await
    .unwrap();
    clock.advance(Duration::minutes(40));
    let minor = incident(&desk, "Slow search", "SEV3", "checkout").await;
    status(&desk, minor, "resolved").await;
    assert!(
        desk.list_reviews(
            &cli,
            &ReviewQuery {
                ticket: Some(minor),
                ..ReviewQuery::default()
            }
        )
        .await
        .unwrap()
        .is_empty(),
        "a SEV3 incident gets no post-incident review"
    );
    status(&desk, id, "resolved").await;

    // Resolving opened the post-incident review at once, on the workload's lens.
    let reviews = desk
        .list_reviews(
            &cli,
            &ReviewQuery {
                ticket: Some(id),
                ..ReviewQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(reviews[0].kind, ReviewKind::PostIncident);
    assert_eq!(reviews[0].workload, "checkout");
    assert_eq!(reviews[0].lens, lens.id);
    let review_id = reviews[0].id;
    // A pass later opens nothing more for it.
    assert!(desk
        .watch_readiness()
        .await
        .unwrap()
        .incident_reviews_opened
        .is_empty());

    let pir = desk.incident_review(&cli, review_id).await.unwrap();
    assert_eq!(pir.incident.key, format!("OPS-{id}"));
    assert!(pir.timeline_generated);
    assert_eq!(pir.measured.seconds_to_acknowledge, Some(4 * 60));
    assert_eq!(pir.measured.seconds_to_resolve, Some(44 * 60));
    assert_eq!(
        pir.due_at,
        Some(t0() + Duration::minutes(44) + Duration::days(14))
    );
    let texts: Vec<String> = pir.timeline.iter().map(|e| e.text.clone()).collect();
    assert!(texts.iter().any(|t| t.starts_with("created")), "{texts:#?}");
    assert!(
        texts
            .iter()
            .any(|t| t.contains("status new → acknowledged")),
        "{texts:#?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t == "internal note: Rolled back the deploy"),
        "{texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("created sent to hook")),
        "the notifications are on the timeline: {texts:#?}"
    );
    assert!(pir.timeline.windows(2).all(|w| w[0].at <= w[1].at));

    // Completing needs the story first.
    let e = desk
        .complete_incident_review(&cli, review_id)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(f) if f.field == "what_happened"),
        "{e:?}"
    );
    let report = IncidentReport {
        what_happened: "A deploy shipped a bad target group.".into(),
        impact: "Checkout failed for 40 minutes.".into(),
        whys: vec!["The canary did not look at 5xx".into()],
        lessons: vec!["Alarm on the load balancer's 5xx".into()],
        caught_by: Some("A question on canary alarms".into()),
        proposal: Some(ProposedQuestion {
            pillar: None,
            title: "Does the canary stop a deploy on 5xx?".into(),
            description: None,
            practices: vec![Practice {
                title: "Canary alarms on 5xx roll back".into(),
                improvement_plan: "Add a 5xx alarm to the deployment's canary.".into(),
            }],
        }),
        ..IncidentReport::default()
    };
    let saved = desk
        .save_incident_report(&cli, review_id, report.clone(), None)
        .await
        .unwrap();
    assert!(
        saved.timeline_generated,
        "the timeline stays drawn until edited"
    );
    let done = desk
        .complete_incident_review(&cli, review_id)
        .await
        .unwrap();
    assert_eq!(done.completed_at, Some(desk.now()));

    // An agent may not add a question to a lens; an admin may not add it to the built-in one.
    let agent = Actor::new("user:agent@example.com", opsdesk_domain::Role::Agent);
    let e = desk
        .decide_proposal(
            &agent,
            review_id,
            ProposalDecision {
                approve: true,
                lens: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    let e = desk
        .decide_proposal(
            &cli,
            review_id,
            ProposalDecision {
                approve: true,
                lens: Some("opsdesk-readiness".into()),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(f) if f.field == "lens"),
        "{e:?}"
    );
    let decided = desk
        .decide_proposal(
            &cli,
            review_id,
            ProposalDecision {
                approve: true,
                lens: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(decided.proposal_lens.as_deref(), Some(lens.id.as_str()));
    assert_eq!(decided.proposal_version, Some(2));
    let exported = desk.export_lens(&cli, &lens.id, None).await.unwrap();
    assert!(
        exported.contains("Does the canary stop a deploy on 5xx?"),
        "{exported}"
    );
    assert!(
        exported.contains(&format!("https://desk.example.com/tickets/OPS-{id}")),
        "the question links the incident that motivated it"
    );
    let e = desk
        .decide_proposal(
            &cli,
            review_id,
            ProposalDecision {
                approve: false,
                lens: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "decided once: {e:?}");
    let mut changed = report.clone();
    changed.proposal.as_mut().unwrap().title = "Something else?".into();
    let e = desk
        .save_incident_report(&cli, review_id, changed, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(f) if f.field == "proposal"),
        "{e:?}"
    );

    // The lesson becomes a task ticket, linked to the incident.
    let (item, made) = desk
        .create_action_item(
            &cli,
            review_id,
            NewActionItem {
                title: Some("Alarm on the load balancer's 5xx".into()),
                owner: Some("ana@example.com".into()),
                due: Some("2026-12-20".parse().unwrap()),
                ..NewActionItem::default()
            },
        )
        .await
        .unwrap();
    assert!(made);
    assert_eq!(item.incident.as_deref(), Some(format!("OPS-{id}").as_str()));
    assert_eq!(item.state, ItemState::Open);
    assert!(!item.overdue);
    let task = desk.ticket(&cli, item.ticket).await.unwrap();
    assert_eq!(task.kind, opsdesk_domain::Kind::Task);
    assert_eq!(task.workload.as_deref(), Some("checkout"));
    assert_eq!(task.team.as_deref(), Some("payments"));
    assert_eq!(task.assignee.as_deref(), Some("ana@example.com"));
    let links = desk.links(&cli, item.ticket).await.unwrap();
    assert!(links.iter().any(|l| l.target_id == id), "{links:?}");

    // Past its due date the item is announced once, on its ticket.
    clock.advance(Utc.with_ymd_and_hms(2026, 12, 21, 8, 0, 0).unwrap() - desk.now());
    let pass = desk.watch_readiness().await.unwrap();
    assert_eq!(pass.announced, [format!("action_item_overdue:{}", item.id)]);
    let overdue: Vec<_> = queued(&desk, "hook")
        .await
        .into_iter()
        .filter(|(e, _)| e == "action_item_overdue")
        .collect();
    assert_eq!(overdue.len(), 1, "{overdue:?}");
    assert_eq!(overdue[0].1, "Alarm on the load balancer's 5xx");
    assert!(
        desk.watch_readiness().await.unwrap().announced.is_empty(),
        "announced once"
    );
    let history = desk.history(&cli, item.ticket).await.unwrap();
    assert!(history
        .iter()
        .any(|h| h.action == "review.action_item_overdue"));

    // Resolving the task shows the item done but unverified; a note closes it.
    status(&desk, item.ticket, "resolved").await;
    let now = desk.action_item(&cli, item.id).await.unwrap();
    assert_eq!(now.state, ItemState::Resolved);
    assert!(now.overdue, "not closed until verified");
    let e = desk
        .verify_action_item(&cli, item.id, VerificationNote { note: "  ".into() })
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(f) if f.field == "note"),
        "{e:?}"
    );
    let verified = desk
        .verify_action_item(
            &cli,
            item.id,
            VerificationNote {
                note: "Fired the alarm in staging; it paged.".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(verified.state, ItemState::Verified);
    assert!(!verified.overdue);
    assert_eq!(
        verified.verification.as_deref(),
        Some("Fired the alarm in staging; it paged.")
    );
    let e = desk
        .verify_action_item(
            &cli,
            item.id,
            VerificationNote {
                note: "again".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    let pir = desk.incident_review(&cli, review_id).await.unwrap();
    assert_eq!(pir.action_items.len(), 1);
    assert_eq!(pir.action_items[0].state, ItemState::Verified);
}

async fn schedules_open_reviews_and_announce_due_then_overdue(backend: Backend) {
    let (_db, desk, clock) = desk(backend).await;
    let cli = Actor::cli();
    workload(&desk, "checkout", "production").await;
    workload(&desk, "intranet", "staging").await;
    let bad = desk
        .create_schedule(
            &cli,
            NewSchedule {
                workload: "nowhere".into(),
                lens: None,
                every_days: Some(90),
                review_by: None,
                days_before: None,
                notice_days: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, Error::Invalid(f) if f.field == "workload"),
        "{bad:?}"
    );
    let every = desk
        .create_schedule(
            &cli,
            NewSchedule {
                workload: "checkout".into(),
                lens: None,
                every_days: Some(90),
                review_by: None,
                days_before: None,
                notice_days: Some(14),
            },
        )
        .await
        .unwrap();
    // Never reviewed: due from the day it was scheduled.
    assert_eq!(every.state, ScheduleState::Overdue);
    let launch = desk
        .create_schedule(
            &cli,
            NewSchedule {
                workload: "intranet".into(),
                lens: None,
                every_days: None,
                review_by: Some("2027-06-01".parse().unwrap()),
                days_before: Some(7),
                notice_days: Some(10),
            },
        )
        .await
        .unwrap();
    assert_eq!(launch.state, ScheduleState::Upcoming);
    assert_eq!(
        launch.due_at,
        Utc.with_ymd_and_hms(2027, 5, 25, 0, 0, 0).unwrap()
    );

    // First pass: checkout is overdue at first sight: a periodic review opens and
    // review_overdue goes out (not review_due as well).
    let pass = desk.watch_readiness().await.unwrap();
    assert_eq!(pass.reviews_opened.len(), 1);
    assert_eq!(pass.announced.len(), 1, "{pass:?}");
    assert!(pass.announced[0].starts_with("review_overdue:"));
    let prod = queued(&desk, "prod").await;
    assert_eq!(prod.len(), 1, "{prod:?}");
    assert_eq!(prod[0].0, "review_overdue");
    assert!(prod[0].1.contains("checkout"), "{prod:?}");
    assert!(
        desk.watch_readiness().await.unwrap() == Default::default(),
        "once"
    );

    // A milestone on the review marks it done: the next one is due 90 days later.
    let review = pass.reviews_opened[0];
    let r = desk.review(&cli, review).await.unwrap();
    assert_eq!(r.kind, ReviewKind::Periodic);
    clock.advance(Duration::days(1));
    desk.create_milestone(&cli, review, from(json!({"name": "December"})))
        .await
        .unwrap();
    let now = desk.schedules(&cli, Some("checkout")).await.unwrap();
    assert_eq!(now[0].state, ScheduleState::Upcoming);
    assert_eq!(now[0].due_at, t0() + Duration::days(91));

    // 80 days on it is due: a new review opens and review_due goes to the production rule.
    clock.advance(Duration::days(80));
    let pass = desk.watch_readiness().await.unwrap();
    assert_eq!(pass.reviews_opened.len(), 1);
    assert!(pass.announced[0].starts_with("review_due:"), "{pass:?}");
    // By the end of May both are overdue: the production rule takes checkout's, not the
    // staging workload's launch review.
    clock.advance(Utc.with_ymd_and_hms(2027, 5, 26, 0, 0, 0).unwrap() - desk.now());
    let pass = desk.watch_readiness().await.unwrap();
    assert_eq!(pass.announced.len(), 2, "{pass:?}");
    let prod = queued(&desk, "prod").await;
    let events: Vec<&str> = prod.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        events,
        ["review_overdue", "review_due", "review_overdue"],
        "{prod:?}"
    );
    assert!(prod.iter().all(|(_, t)| t.contains("checkout")), "{prod:?}");
    let hook = queued(&desk, "hook").await;
    assert!(
        hook.iter()
            .any(|(e, t)| e == "review_overdue" && t.contains("intranet")),
        "{hook:?}"
    );
    desk.delete_schedule(&cli, launch.id).await.unwrap();
    assert!(matches!(
        desk.delete_schedule(&cli, launch.id).await.unwrap_err(),
        Error::NotFound(_)
    ));
}

async fn findings_become_tasks_and_the_kpis_count_them(backend: Backend) {
    let (_db, desk, clock) = desk(backend).await;
    let cli = Actor::cli();
    workload(&desk, "checkout", "production").await;
    let review = desk
        .start_review(&cli, from(json!({"workload": "checkout"})))
        .await
        .unwrap();
    let q = &review.pillars[0].questions[0];
    let none = q
        .choices
        .iter()
        .find(|c| c.none_of_these)
        .unwrap()
        .id
        .clone();
    let answer = desk
        .answer_question(&cli, review.id, &q.id, from(json!({"choices": [none]})))
        .await
        .unwrap();
    assert_eq!(answer.risk, Risk::High);
    let unanswered = review.pillars[0].questions[1].id.clone();
    let e = desk
        .create_action_item(
            &cli,
            review.id,
            NewActionItem {
                question: Some(unanswered),
                ..NewActionItem::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(f) if f.field == "question"),
        "{e:?}"
    );
    let (item, made) = desk
        .create_action_item(
            &cli,
            review.id,
            NewActionItem {
                question: Some(q.id.clone()),
                ..NewActionItem::default()
            },
        )
        .await
        .unwrap();
    assert!(made);
    let task = desk.ticket(&cli, item.ticket).await.unwrap();
    assert_eq!(
        task.severity,
        opsdesk_domain::Severity::Sev3,
        "a HIGH finding is SEV3"
    );
    assert!(task.title.starts_with("Readiness: "), "{}", task.title);
    assert!(
        task.description.contains("Improvement plans:"),
        "{}",
        task.description
    );
    assert_eq!(item.due_at, Some(t0() + Duration::days(30)));
    // The same finding again gives the same item.
    let (again, made) = desk
        .create_action_item(
            &cli,
            review.id,
            NewActionItem {
                question: Some(q.id.clone()),
                ..NewActionItem::default()
            },
        )
        .await
        .unwrap();
    assert!(!made);
    assert_eq!(again.id, item.id);

    // A SEV2 incident resolved 20 days before its review is complete is late.
    let id = incident(&desk, "Payments queue stuck", "SEV2", "checkout").await;
    status(&desk, id, "resolved").await;

    clock.advance(Duration::days(31));
    desk.evaluate_kpis(true).await.unwrap();
    let value = |name: &'static str| {
        let desk = desk.clone();
        async move { desk.kpi(&Actor::cli(), name).await.unwrap() }
    };
    let risks = value("readiness_risks").await;
    assert_eq!(risks.value, Some(1.0), "{risks:?}");
    let since = value("since_review").await;
    assert_eq!(
        since.value,
        Some(Duration::days(31).num_seconds() as f64),
        "never reviewed: since the workload was added"
    );
    let overdue = value("action_items_overdue").await;
    assert_eq!(overdue.value, Some(1.0));
    let on_time = value("incident_reviews_on_time").await;
    assert_eq!(on_time.value, Some(0.0), "open past its 14 days: late");

    // Verified, the finding no longer counts as open risk, nor the item as overdue.
    desk.verify_action_item(
        &cli,
        item.id,
        VerificationNote {
            note: "Backups restored in a drill".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        desk.ticket(&cli, item.ticket).await.unwrap().status,
        Status::Resolved,
        "verifying resolves the task"
    );
    clock.advance(Duration::minutes(5));
    desk.evaluate_kpis(true).await.unwrap();
    assert_eq!(value("readiness_risks").await.value, Some(0.0));
    assert_eq!(value("action_items_overdue").await.value, Some(0.0));
}

async fn the_api_serves_post_incident_reviews_and_action_items(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = Some(s.admin.as_str());
    let r = s
        .call(
            Method::POST,
            "/api/v1/workloads",
            admin,
            Some(json!({ "name": "checkout", "environment": "production", "accounts": ["111122223333"] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = s
        .call(
            Method::POST,
            "/api/v1/tickets",
            Some(&s.agent),
            Some(json!({"title": "API down", "kind": "incident", "severity": "SEV1", "workload": "checkout"})),
        )
        .await;
    let id = r.body["id"].as_i64().unwrap();
    let r = s
        .call(
            Method::PATCH,
            &format!("/api/v1/tickets/{id}"),
            Some(&s.agent),
            Some(json!({"status": "resolved"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/reviews?ticket={id}&kind=post_incident"),
            Some(&s.viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let review = r.body[0]["id"].as_i64().expect("a post-incident review");
    let path = format!("/api/v1/reviews/{review}/incident");
    let r = s.call(Method::GET, &path, Some(&s.viewer), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["incident"]["key"], json!(format!("OPS-{id}")));
    assert_eq!(r.body["timeline_generated"], json!(true));
    assert!(
        r.body["timeline"].as_array().unwrap().len() >= 2,
        "{}",
        r.body
    );

    // Viewers read; agents write; a bad field is named.
    let body = json!({"what_happened": "x", "impact": "y", "whys": ["w"], "lessons": ["z"],
                      "timeline": [{"at": "2026-12-01T10:00:00Z", "text": "Paged"}]});
    let r = s
        .call(Method::PUT, &path, Some(&s.viewer), Some(body.clone()))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = s
        .call(
            Method::PUT,
            &path,
            Some(&s.agent),
            Some(json!({"whys": ["ok", "bad\u{1}"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["field"], json!("whys[1]"));
    // A save based on the version read goes in; one based on an older version is refused.
    let read = s.call(Method::GET, &path, Some(&s.agent), None).await.body["report_version"]
        .as_str()
        .unwrap()
        .to_owned();
    let put_if = |version: &str, body: Value| {
        s.http
            .put(s.url(&path))
            .bearer_auth(&s.agent)
            .header("If-Match", format!("\"{version}\""))
            .json(&body)
            .send()
    };
    let r = put_if(&read, body.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = put_if(&read, json!({"what_happened": "an older view"}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = s.call(Method::PUT, &path, Some(&s.agent), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["report"]["what_happened"], json!("x"));
    assert_eq!(r.body["timeline_generated"], json!(false));
    assert_eq!(r.body["timeline"][0]["source"], json!("person"));
    let r = s
        .call(
            Method::POST,
            &format!("{path}/complete"),
            Some(&s.agent),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["completed_at"].is_string());
    let r = s
        .call(
            Method::POST,
            &format!("{path}/proposal"),
            Some(&s.admin),
            Some(json!({"approve": true})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no proposal: {}",
        r.body
    );

    let items = format!("/api/v1/reviews/{review}/action-items");
    let r = s
        .call(
            Method::POST,
            &items,
            Some(&s.agent),
            Some(json!({"title": "Add a runbook", "due": "2027-01-10"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let item = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["incident"], json!(format!("OPS-{id}")));
    assert_eq!(r.body["state"], json!("open"));
    let r = s
        .call(Method::POST, &items, Some(&s.agent), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["field"], json!("title"));
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/action-items?incident={id}&open=true"),
            Some(&s.viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    let verify = format!("/api/v1/action-items/{item}/verify");
    let r = s
        .call(
            Method::POST,
            &verify,
            Some(&s.viewer),
            Some(json!({"note": "done"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = s
        .call(
            Method::POST,
            &verify,
            Some(&s.agent),
            Some(json!({"note": "Runbook used in a drill"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], json!("verified"));
    assert_eq!(r.body["status"], json!("resolved"));

    // Schedules.
    let r = s
        .call(
            Method::POST,
            "/api/v1/review-schedules",
            Some(&s.agent),
            Some(json!({"workload": "checkout", "every_days": 0})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["field"], json!("every_days"));
    let r = s
        .call(
            Method::POST,
            "/api/v1/review-schedules",
            Some(&s.agent),
            Some(json!({"workload": "checkout", "review_by": "2027-03-01", "days_before": 14})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["due_at"], json!("2027-02-15T00:00:00Z"));
    let sid = r.body["id"].as_i64().unwrap();
    let r = s
        .call(
            Method::GET,
            "/api/v1/review-schedules?workload=checkout",
            Some(&s.viewer),
            None,
        )
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    let r = s
        .call(
            Method::DELETE,
            &format!("/api/v1/review-schedules/{sid}"),
            Some(&s.viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = s
        .call(
            Method::DELETE,
            &format!("/api/v1/review-schedules/{sid}"),
            Some(&s.agent),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // A review that is not post-incident has no incident document.
    let r = s
        .call(
            Method::POST,
            "/api/v1/reviews",
            Some(&s.agent),
            Some(json!({"workload": "checkout"})),
        )
        .await;
    let plain = r.body["id"].as_i64().unwrap();
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/reviews/{plain}/incident"),
            Some(&s.viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn a_review_by_hand_counts_and_old_or_gone_things_stay_quiet(backend: Backend) {
    let (_db, desk, clock) = desk(backend).await;
    let cli = Actor::cli();
    workload(&desk, "search", "production").await;
    workload(&desk, "legacy", "production").await;

    // A review started by hand, then a schedule: the pass opens no second review and the
    // overdue notice points at the one started.
    let manual = desk
        .start_review(
            &cli,
            NewReview {
                workload: "search".into(),
                lens: None,
            },
        )
        .await
        .unwrap();
    let every = |workload: &str| NewSchedule {
        workload: workload.into(),
        lens: None,
        every_days: Some(90),
        review_by: None,
        days_before: None,
        notice_days: None,
    };
    desk.create_schedule(&cli, every("search")).await.unwrap();
    // A schedule whose workload is deleted afterwards is skipped.
    desk.create_schedule(&cli, every("legacy")).await.unwrap();
    desk.delete_workload(&cli, "legacy").await.unwrap();
    let pass = desk.watch_readiness().await.unwrap();
    assert!(pass.reviews_opened.is_empty(), "{pass:?}");
    assert_eq!(pass.announced.len(), 1, "{pass:?}");
    let prod = queued(&desk, "prod").await;
    assert_eq!(prod.len(), 1, "{prod:?}");
    assert!(prod[0].1.contains("search"), "{prod:?}");
    let reviews = desk
        .list_reviews(
            &cli,
            &ReviewQuery {
                workload: Some("search".into()),
                ..ReviewQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].id, manual.id);

    // An incident resolved long ago that becomes SEV1 by an edit opens no review.
    let old = incident(&desk, "Slow queries", "SEV3", "search").await;
    status(&desk, old, "resolved").await;
    clock.advance(Duration::days(40));
    desk.update_ticket(
        &cli,
        old,
        None,
        from::<TicketPatch>(json!({"severity": "SEV1"})),
    )
    .await
    .unwrap();
    assert!(desk
        .watch_readiness()
        .await
        .unwrap()
        .incident_reviews_opened
        .is_empty());
    let after = desk
        .list_reviews(
            &cli,
            &ReviewQuery {
                ticket: Some(old),
                ..ReviewQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(after.is_empty(), "{after:?}");
}
