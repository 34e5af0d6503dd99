//! Signals in through the HTTP endpoints: EventBridge events, alerts, Alertmanager webhooks;
//! workloads, severity rules, correlation, exactly-once, maintenance and flapping.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{on_both_backends, Backend, Reply, TestDb, TestServer};

on_both_backends!(
    health_event_opens_updates_resolves_and_reopens_one_ticket,
    each_source_gets_its_severity_and_resolves,
    repeated_deliveries_take_effect_once,
    bad_deliveries_are_refused_and_write_nothing,
    alerts_trigger_acknowledge_and_resolve,
    alertmanager_webhook_fires_and_resolves,
    workloads_crud,
    maintenance_windows_are_listed_and_expected,
    flapping_is_marked_and_damped,
    old_problems_open_new_tickets_after_the_reopen_window,
    concurrent_batches_over_the_same_problems_all_commit,
    concurrent_single_events_each_get_their_own_answer,
    a_revoked_ingest_token_is_forbidden_not_unauthorized,
    credentials_in_payloads_are_never_stored_or_shown,
    stored_payloads_are_scrubbed_of_credentials_by_migration,
    paginated_event_second_page_first_lands_on_production,
    paginated_event_first_page_first_moves_to_production,
    abuse_report_opens_a_security_incident,
    organizational_view_event_belongs_to_the_affected_account,
    personas_route_to_their_own_channels,
    security_findings_and_grafana_alerts_open_and_close_one_ticket_each,
    old_signals_and_receipts_are_purged_but_open_problems_keep_theirs,
);

pub const ACCOUNT: &str = "111122223333";
const EVENT_ARN: &str = "arn:aws:health:eu-west-1::event/EC2/AWS_EC2_OPERATIONAL_ISSUE/AWS_EC2_OPERATIONAL_ISSUE_7f35c8ae-af1f-54e6-a526-d0179ed6d68f";

/// An AWS Health event as EventBridge delivers it (times in RFC 1123, as AWS sends them).
pub fn health_event(id: &str, status: &str, updated: &str, description: &str) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": "AWS Health Event",
        "source": "aws.health",
        "account": ACCOUNT,
        "time": "2026-11-23T09:01:22Z",
        "region": "eu-west-1",
        "resources": ["i-0abc1234def567890"],
        "detail": {
            "eventArn": EVENT_ARN,
            "service": "EC2",
            "eventTypeCode": "AWS_EC2_OPERATIONAL_ISSUE",
            "eventTypeCategory": "issue",
            "eventScopeCode": "ACCOUNT_SPECIFIC",
            "communicationId": "1d3d5ec5b6a4e8e2c1e0d7d7c0f0a0a0",
            "startTime": "Mon, 23 Nov 2026 06:02:51 GMT",
            "lastUpdatedTime": updated,
            "statusCode": status,
            "eventRegion": "eu-west-1",
            "eventDescription": [{ "language": "en_US", "latestDescription": description }],
            "affectedEntities": [{ "entityValue": "arn:aws:ec2:eu-west-1:111122223333:instance/i-0abc1234def567890" }],
            "affectedAccount": ACCOUNT
        }
    })
}

pub fn alarm_event(name: &str, state: &str, at: &str) -> Value {
    json!({
        "version": "0",
        "id": format!("cw-{name}-{state}-{at}"),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "time": "2026-11-23T10:00:00Z",
        "region": "eu-west-1",
        "resources": [format!("arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:{name}")],
        "detail": {
            "alarmName": name,
            "configuration": { "description": "5xx above 1% for 5 minutes" },
            "previousState": { "value": "OK", "timestamp": "2026-11-23T09:00:00.000+0000", "reason": "Threshold not crossed" },
            "state": { "value": state, "timestamp": at, "reason": "Threshold Crossed: 1 datapoint [3.2] was greater than the threshold (1.0)." }
        }
    })
}

fn advisor_event(status: &str, time: &str) -> Value {
    json!({
        "version": "0",
        "id": format!("ta-{status}-{time}"),
        "detail-type": "Trusted Advisor Check Item Refresh Notification",
        "source": "aws.trustedadvisor",
        "account": ACCOUNT,
        "time": time,
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "check-name": "Exposed Access Keys",
            "check-item-detail": {
                "Access Key ID": "AKIAIOSFODNN7EXAMPLE",
                "User Name (IAM or Root)": "deploy-bot",
                "Location": "github.com/example/repo"
            },
            "status": status,
            "resource_id": "arn:aws:iam::111122223333:user/deploy-bot",
            "uuid": "aa12345f-55c7-498e-b7ac-123456781234"
        }
    })
}

impl TestServer {
    pub async fn events(&self, body: Value) -> Reply {
        self.call(
            Method::POST,
            "/api/v1/events",
            Some(&self.ingest),
            Some(body),
        )
        .await
    }

    pub async fn send_ok(&self, body: Value) -> Value {
        let r = self.events(body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        r.body
    }

    pub async fn ticket_by_id(&self, id: i64) -> Value {
        let r = self.get(&format!("/api/v1/tickets/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    pub async fn problems(&self, id: i64) -> Value {
        let r = self.get(&format!("/api/v1/tickets/{id}/signals")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    async fn workload(&self, body: Value) {
        let r = self
            .call(
                Method::POST,
                "/api/v1/workloads",
                Some(&self.admin),
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }

    async fn history_actions(&self, id: i64) -> Vec<String> {
        let r = self.get(&format!("/api/v1/tickets/{id}/history")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn effects(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["effect"].as_str().unwrap().to_owned())
        .collect()
}

fn production_workload() -> Value {
    json!({
        "name": "checkout",
        "environment": "production",
        "team": "payments",
        "accounts": [ACCOUNT],
        "resources": ["arn:aws:ec2:eu-west-1:111122223333:instance/*"]
    })
}

async fn health_event_opens_updates_resolves_and_reopens_one_ticket(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    s.workload(production_workload()).await;

    let first = s
        .send_ok(health_event(
            "e1",
            "open",
            "Mon, 23 Nov 2026 06:10:00 GMT",
            "We are investigating increased error rates.",
        ))
        .await;
    assert_eq!(first["accepted"], 1);
    assert_eq!(effects(&first), ["created"]);
    let id = first["tickets"][0].as_i64().unwrap();
    let t = s.ticket_by_id(id).await;
    // Health `issue` on a production workload: SEV2, owned by the workload's team.
    assert_eq!(t["severity"], "SEV2");
    assert_eq!(t["team"], "payments");
    assert_eq!(t["workload"], "checkout");
    assert_eq!(t["source"], "aws.health");
    assert_eq!(t["status"], "new");
    assert_eq!(t["dedup_key"], format!("{EVENT_ARN}|{ACCOUNT}"));
    assert!(t["tags"].as_array().unwrap().contains(&json!("production")));
    assert!(t["description"]
        .as_str()
        .unwrap()
        .contains("increased error rates"));

    // An update of the same event (sent with x-api-key, as API destinations can).
    let r = s
        .http
        .post(s.url("/api/v1/events"))
        .header("x-api-key", &s.ingest)
        .json(&health_event(
            "e2",
            "open",
            "Mon, 23 Nov 2026 07:10:00 GMT",
            "We have identified the cause.",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(effects(&body), ["occurrence"]);
    assert_eq!(body["tickets"], json!([id]));
    let p = s.problems(id).await;
    assert_eq!(p["problems"][0]["occurrences"], 2);
    assert_eq!(p["signals"].as_array().unwrap().len(), 2);
    // The latest description is in the ticket's history.
    let history = s.get(&format!("/api/v1/tickets/{id}/history")).await.body;
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "ticket.occurrence");
    assert_eq!(
        last["changes"]["signal"]["after"]["body"],
        "We have identified the cause."
    );
    assert_eq!(s.count_tickets().await, 1);

    // Health says it is over: the ticket is resolved, and the history says why.
    let closed = s
        .send_ok(health_event(
            "e3",
            "closed",
            "Mon, 23 Nov 2026 09:01:22 GMT",
            "The issue has been resolved.",
        ))
        .await;
    assert_eq!(effects(&closed), ["resolved"]);
    let t = s.ticket_by_id(id).await;
    assert_eq!(t["status"], "resolved");
    let history = s.get(&format!("/api/v1/tickets/{id}/history")).await.body;
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "ticket.resolved");
    assert!(last["changes"]["reason"]["after"]
        .as_str()
        .unwrap()
        .contains("aws.health"));

    // It fires again within the reopen window: the same ticket reopens.
    let again = s
        .send_ok(health_event(
            "e4",
            "open",
            "Mon, 23 Nov 2026 10:00:00 GMT",
            "The issue has returned.",
        ))
        .await;
    assert_eq!(effects(&again), ["reopened"]);
    assert_eq!(again["tickets"], json!([id]));
    assert_eq!(s.ticket_by_id(id).await["status"], "in_progress");
    assert_eq!(s.count_tickets().await, 1);
    assert_eq!(
        s.history_actions(id).await,
        [
            "ticket.created",
            "ticket.occurrence",
            "ticket.resolved",
            "ticket.reopened"
        ]
    );
    s.stop().await;
}

async fn each_source_gets_its_severity_and_resolves(backend: Backend) {
    let s = TestServer::start_with(backend, |c, _| {
        c.ingest.rules = vec![
            serde_json::from_value(json!({
                "source": "aws.cloudwatch", "title": "CloudWatch alarm prod-* is *", "severity": "SEV2"
            }))
            .unwrap(),
            serde_json::from_value(json!({ "source": "com.example.deploys", "ticket": true, "severity": "SEV4" }))
                .unwrap(),
        ];
    })
    .await
    .with_ingest_token()
    .await;

    // Trusted Advisor ERROR on a security check: SEV3; OK resolves.
    let ta = s
        .send_ok(advisor_event("ERROR", "2026-11-23T10:00:00Z"))
        .await;
    let ta_id = ta["tickets"][0].as_i64().unwrap();
    assert_eq!(s.ticket_by_id(ta_id).await["severity"], "SEV3");
    let ok = s.send_ok(advisor_event("OK", "2026-11-24T10:00:00Z")).await;
    assert_eq!(effects(&ok), ["resolved"]);

    // CloudWatch ALARM: SEV3 by default, SEV2 by the configured name rule; OK resolves.
    let batch = s
        .send_ok(json!([
            alarm_event(
                "staging-api-latency",
                "ALARM",
                "2026-11-23T10:00:00.000+0000"
            ),
            alarm_event("prod-api-5xx", "ALARM", "2026-11-23T10:00:00.000+0000"),
        ]))
        .await;
    assert_eq!(batch["accepted"], 2);
    assert_eq!(effects(&batch), ["created", "created"]);
    let staging = batch["tickets"][0].as_i64().unwrap();
    let prod = batch["tickets"][1].as_i64().unwrap();
    assert_eq!(s.ticket_by_id(staging).await["severity"], "SEV3");
    assert_eq!(s.ticket_by_id(prod).await["severity"], "SEV2");
    let ok = s
        .send_ok(alarm_event(
            "prod-api-5xx",
            "OK",
            "2026-11-23T10:20:00.000+0000",
        ))
        .await;
    assert_eq!(effects(&ok), ["resolved"]);
    assert_eq!(s.ticket_by_id(prod).await["status"], "resolved");
    assert_eq!(s.ticket_by_id(staging).await["status"], "new");

    // An event opsdesk has no reader for is kept, without a ticket...
    let custom = json!({
        "version": "0", "id": "c0ffee00-0000-4000-8000-000000000001", "detail-type": "Nightly report",
        "source": "com.example.reports", "account": ACCOUNT, "time": "2026-11-23T10:00:00Z",
        "region": "eu-west-1", "resources": [], "detail": { "rows": 42 }
    });
    let kept = s.send_ok(custom).await;
    assert_eq!(effects(&kept), ["recorded"]);
    assert_eq!(kept["tickets"], json!([]));
    let unclassified = s.get("/api/v1/signals?classified=false").await;
    assert_eq!(unclassified.status, StatusCode::OK, "{}", unclassified.body);
    let stored = &unclassified.body["signals"][0];
    assert_eq!(stored["source"], "com.example.reports");
    assert_eq!(stored["raw"]["detail"]["rows"], 42);
    // ...unless a rule asks for one.
    let deploy = json!({
        "version": "0", "id": "c0ffee00-0000-4000-8000-000000000002", "detail-type": "Deploy failed",
        "source": "com.example.deploys", "account": ACCOUNT, "time": "2026-11-23T10:00:00Z",
        "region": "eu-west-1", "resources": [], "detail": { "service": "cart" }
    });
    let opened = s.send_ok(deploy).await;
    assert_eq!(effects(&opened), ["created"]);
    let t = s.ticket_by_id(opened["tickets"][0].as_i64().unwrap()).await;
    assert_eq!(t["severity"], "SEV4");
    assert_eq!(t["source"], "com.example.deploys");
    s.stop().await;
}

async fn repeated_deliveries_take_effect_once(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    let event = health_event(
        "id-1",
        "open",
        "Mon, 23 Nov 2026 06:10:00 GMT",
        "Investigating.",
    );
    // The same news again: an EventBridge retry (same id), and a copy through the backup
    // region (another id and region), in one batch and in separate requests at once.
    let mut backup = event.clone();
    backup["id"] = json!("id-2");
    backup["region"] = json!("us-west-2");
    let batch = s
        .send_ok(json!([event.clone(), event.clone(), backup.clone()]))
        .await;
    assert_eq!(effects(&batch), ["created", "duplicate", "duplicate"]);
    let id = batch["tickets"][0].as_i64().unwrap();
    let (a, b) = tokio::join!(s.events(event.clone()), s.events(backup.clone()));
    assert_eq!(
        (a.status, b.status),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    assert_eq!(effects(&a.body), ["duplicate"]);
    assert_eq!(effects(&b.body), ["duplicate"]);
    assert_eq!(s.count_tickets().await, 1);
    assert_eq!(s.problems(id).await["problems"][0]["occurrences"], 1);
    assert_eq!(s.history_actions(id).await, ["ticket.created"]);

    // Many senders racing with a new problem still open one ticket.
    let alarm = alarm_event("prod-db-cpu", "ALARM", "2026-11-23T11:00:00.000+0000");
    let sends = (0..8).map(|_| s.events(alarm.clone()));
    let replies = futures::future::join_all(sends).await;
    let created = replies
        .iter()
        .filter(|r| effects(&r.body) == ["created"])
        .count();
    assert_eq!(created, 1);
    assert_eq!(s.count_tickets().await, 2);
    s.stop().await;
}

async fn bad_deliveries_are_refused_and_write_nothing(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    let head = s.audit_head().await;
    let raw = |body: &'static str, token: &str| {
        s.http
            .post(s.url("/api/v1/events"))
            .bearer_auth(token.to_owned())
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(
        raw("{not json", &s.ingest).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );

    s.events(json!({ "hello": "world" }))
        .await
        .assert_problem(422, Some("source"));
    s.events(json!([])).await.assert_problem(422, Some("body"));
    s.events(json!(["text"]))
        .await
        .assert_problem(422, Some("[0].body"));
    let mut no_arn = health_event("x", "open", "Mon, 23 Nov 2026 06:10:00 GMT", "d");
    no_arn["detail"].as_object_mut().unwrap().remove("eventArn");
    let good = alarm_event("prod-api-5xx", "ALARM", "2026-11-23T10:00:00.000+0000");
    // One bad event in a batch: nothing of the batch is kept.
    s.events(json!([good, no_arn]))
        .await
        .assert_problem(422, Some("[1].detail.eventArn"));
    let mut bad_time = health_event("y", "open", "yesterday", "d");
    bad_time["id"] = json!("y");
    s.events(bad_time)
        .await
        .assert_problem(422, Some("detail.lastUpdatedTime"));

    // Wrong token, and a token without the ingest role.
    s.call(
        Method::POST,
        "/api/v1/events",
        Some("odk_wrong"),
        Some(good_event()),
    )
    .await
    .assert_problem(401, None);
    s.call(Method::POST, "/api/v1/events", None, Some(good_event()))
        .await
        .assert_problem(401, None);
    s.call(
        Method::POST,
        "/api/v1/events",
        Some(&s.agent),
        Some(good_event()),
    )
    .await
    .assert_problem(403, None);
    // An ingest token reaches the ingest endpoints and nothing else.
    s.call(Method::GET, "/api/v1/tickets", Some(&s.ingest), None)
        .await
        .assert_problem(403, None);

    assert_eq!(s.audit_head().await, head);
    assert_eq!(s.count_tickets().await, 0);
    let signals = s.get("/api/v1/signals").await;
    assert_eq!(signals.body["signals"], json!([]));
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("opsdesk_ingest_refused_total{input=\"events\",reason=\"invalid\"}"),
        "{metrics}"
    );
    s.stop().await;
}

fn good_event() -> Value {
    alarm_event("prod-api-5xx", "ALARM", "2026-11-23T10:00:00.000+0000")
}

async fn alerts_trigger_acknowledge_and_resolve(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    // PagerDuty senders put the key in the body and send no header.
    let send = |body: Value| s.http.post(s.url("/api/v1/alerts")).json(&body).send();
    let trigger = |ts: &str| {
        json!({
            "routing_key": s.ingest,
            "event_action": "trigger",
            "dedup_key": "disk-full/db-1",
            "payload": {
                "summary": "Disk 95% full on db-1",
                "source": "db-1.example.internal",
                "severity": "critical",
                "timestamp": ts,
                "component": "postgres",
                "custom_details": { "free_gb": 3 }
            },
            "links": [{ "href": "https://grafana.example.com/d/db", "text": "Dashboard" }]
        })
    };
    let r = send(trigger("2026-11-23T10:00:00Z")).await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "success");
    assert_eq!(body["dedup_key"], "disk-full/db-1");
    assert_eq!(body["effect"], "created");
    let id = body["ticket_id"].as_i64().unwrap();
    let t = s.ticket_by_id(id).await;
    assert_eq!(t["severity"], "SEV2");
    assert_eq!(t["title"], "Disk 95% full on db-1");
    assert!(t["description"]
        .as_str()
        .unwrap()
        .contains("[Dashboard](https://grafana.example.com/d/db)"));

    let again: Value = send(trigger("2026-11-23T10:05:00Z"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["effect"], "occurrence");
    let ack = json!({ "routing_key": s.ingest, "event_action": "acknowledge", "dedup_key": "disk-full/db-1" });
    let acked: Value = send(ack).await.unwrap().json().await.unwrap();
    assert_eq!(acked["effect"], "acknowledged");
    assert_eq!(s.ticket_by_id(id).await["status"], "acknowledged");
    // Through a header as well.
    let resolve = json!({ "event_action": "resolve", "dedup_key": "disk-full/db-1" });
    let r = s
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&s.ingest),
            Some(resolve),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["effect"], "resolved");
    assert_eq!(s.ticket_by_id(id).await["status"], "resolved");

    // Bad alerts.
    let head = s.audit_head().await;
    let no_summary = json!({ "routing_key": s.ingest, "event_action": "trigger", "payload": { "severity": "error" } });
    Reply::from(send(no_summary).await.unwrap())
        .await
        .assert_problem(422, Some("payload.summary"));
    let bad_action = json!({ "routing_key": s.ingest, "event_action": "snooze", "dedup_key": "x" });
    Reply::from(send(bad_action).await.unwrap())
        .await
        .assert_problem(422, Some("event_action"));
    let mut wrong_key = trigger("2026-11-23T11:00:00Z");
    wrong_key["routing_key"] = json!("odk_not-a-token");
    Reply::from(send(wrong_key).await.unwrap())
        .await
        .assert_problem(401, None);
    let mut not_ingest = trigger("2026-11-23T11:00:00Z");
    not_ingest["routing_key"] = json!(s.agent);
    Reply::from(send(not_ingest).await.unwrap())
        .await
        .assert_problem(403, None);
    assert_eq!(s.audit_head().await, head);
    s.stop().await;
}

/// An Alertmanager webhook notification, as Alertmanager sends it.
pub fn alertmanager_notification(status: &str, ends_at: &str) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"HighErrorRate\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "opsdesk",
        "groupLabels": { "alertname": "HighErrorRate" },
        "commonLabels": { "alertname": "HighErrorRate", "severity": "critical" },
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [{
            "status": status,
            "labels": { "alertname": "HighErrorRate", "severity": "critical", "service": "checkout", "instance": "10.0.1.7:9100" },
            "annotations": { "summary": "Checkout error rate above 5%", "description": "5xx ratio 7.1% over 5m" },
            "startsAt": "2026-11-23T10:00:00Z",
            "endsAt": ends_at,
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=...",
            "fingerprint": "c6d5d1c5a0b2e3f4"
        }]
    })
}

async fn alertmanager_webhook_fires_and_resolves(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    let post = |body: Value| {
        s.call(
            Method::POST,
            "/api/v1/ingest/alertmanager",
            Some(&s.ingest),
            Some(body),
        )
    };
    let r = post(alertmanager_notification("firing", "0001-01-01T00:00:00Z")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(effects(&r.body), ["created"]);
    let id = r.body["tickets"][0].as_i64().unwrap();
    let t = s.ticket_by_id(id).await;
    assert_eq!(t["severity"], "SEV2");
    assert_eq!(t["dedup_key"], "c6d5d1c5a0b2e3f4");
    // Alertmanager repeats a firing group every repeat_interval: the same news, no effect.
    let r = post(alertmanager_notification("firing", "0001-01-01T00:00:00Z")).await;
    assert_eq!(effects(&r.body), ["duplicate"]);
    let r = post(alertmanager_notification(
        "resolved",
        "2026-11-23T10:30:00Z",
    ))
    .await;
    assert_eq!(effects(&r.body), ["resolved"]);
    assert_eq!(s.ticket_by_id(id).await["status"], "resolved");
    post(json!({ "version": "4" }))
        .await
        .assert_problem(422, Some("alerts"));
    s.stop().await;
}

async fn workloads_crud(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    let admin =
        |m: Method, path: &'static str, body: Option<Value>| s.call(m, path, Some(&s.admin), body);
    s.workload(production_workload()).await;
    let dup = admin(
        Method::POST,
        "/api/v1/workloads",
        Some(production_workload()),
    )
    .await;
    dup.assert_problem(409, None);
    let mut bad = production_workload();
    bad["accounts"] = json!(["1234"]);
    bad["name"] = json!("other");
    admin(Method::POST, "/api/v1/workloads", Some(bad))
        .await
        .assert_problem(422, Some("accounts[0]"));
    let mut unknown = production_workload();
    unknown["owner"] = json!("x");
    admin(Method::POST, "/api/v1/workloads", Some(unknown))
        .await
        .assert_problem(422, Some("owner"));
    // An agent reads workloads but cannot change them.
    let r = s.get("/api/v1/workloads/checkout").await;
    assert_eq!(r.body["environment"], "production");
    s.call(
        Method::POST,
        "/api/v1/workloads",
        Some(&s.agent),
        Some(production_workload()),
    )
    .await
    .assert_problem(403, None);

    let mut staging = production_workload();
    staging["environment"] = json!("staging");
    let r = admin(Method::PUT, "/api/v1/workloads/checkout", Some(staging)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["environment"], "staging");
    // Staging now: a Health issue is SEV3, not SEV2.
    let sent = s
        .send_ok(health_event(
            "w1",
            "open",
            "Mon, 23 Nov 2026 06:10:00 GMT",
            "d",
        ))
        .await;
    let t = s.ticket_by_id(sent["tickets"][0].as_i64().unwrap()).await;
    assert_eq!(
        (t["severity"].as_str(), t["workload"].as_str()),
        (Some("SEV3"), Some("checkout"))
    );

    let r = admin(Method::DELETE, "/api/v1/workloads/checkout", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    s.get("/api/v1/workloads/checkout")
        .await
        .assert_problem(404, None);
    assert_eq!(s.get("/api/v1/workloads").await.body, json!([]));
    let actions: Vec<Value> = s
        .audit_trail()
        .await
        .iter()
        .map(|e| e["action"].clone())
        .collect();
    for a in ["workload.created", "workload.updated", "workload.deleted"] {
        assert!(actions.contains(&json!(a)), "{actions:?}");
    }
    s.stop().await;
}

async fn maintenance_windows_are_listed_and_expected(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    s.workload(production_workload()).await;
    // AWS Health announces a scheduled change: SEV4, and a window in /api/v1/maintenance.
    let mut scheduled = health_event(
        "m1",
        "upcoming",
        "Mon, 23 Nov 2026 06:10:00 GMT",
        "Your instance will be retired.",
    );
    scheduled["detail"]["eventTypeCategory"] = json!("scheduledChange");
    scheduled["detail"]["eventTypeCode"] = json!("AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED");
    scheduled["detail"]["eventArn"] =
        json!("arn:aws:health:eu-west-1::event/EC2/AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED/retire-1");
    scheduled["detail"]["startTime"] = json!("Wed, 02 Dec 2026 04:00:00 GMT");
    scheduled["detail"]["endTime"] = json!("Wed, 02 Dec 2026 06:00:00 GMT");
    let sent = s.send_ok(scheduled).await;
    let id = sent["tickets"][0].as_i64().unwrap();
    assert_eq!(s.ticket_by_id(id).await["severity"], "SEV4");
    assert_eq!(s.ticket_by_id(id).await["kind"], "task");
    let r = s
        .get("/api/v1/maintenance?from=2026-12-01T00:00:00Z&to=2026-12-31T00:00:00Z")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let w = &r.body[0];
    assert_eq!(w["origin"], "aws.health");
    assert_eq!(w["start"], "2026-12-02T04:00:00Z");
    assert_eq!(w["end"], "2026-12-02T06:00:00Z");
    assert_eq!(w["ticket_id"], id);
    assert_eq!(w["service"], "EC2");
    assert_eq!(w["workload"], "checkout");

    // An open alarm, then a planned window: a new alarm inside the window is expected (no
    // ticket), while the open one still resolves.
    let open = s
        .send_ok(alarm_event(
            "prod-api-5xx",
            "ALARM",
            "2026-11-23T09:00:00.000+0000",
        ))
        .await;
    let open_id = open["tickets"][0].as_i64().unwrap();
    let mut wl = production_workload();
    wl["resources"] = json!([
        "arn:aws:cloudwatch:*:111122223333:alarm:prod-*",
        "arn:aws:ec2:*"
    ]);
    s.call(
        Method::PUT,
        "/api/v1/workloads/checkout",
        Some(&s.admin),
        Some(wl),
    )
    .await;
    let plan = json!({ "workload": "checkout", "title": "DB upgrade", "start": "2026-11-23T09:30:00Z", "end": "2026-11-23T11:00:00Z" });
    let r = s.post("/api/v1/maintenance", plan).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let window_id = r.body["id"].as_i64().unwrap();
    let bad = json!({ "workload": "checkout", "title": "x", "start": "2026-11-23T11:00:00Z", "end": "2026-11-23T10:00:00Z" });
    s.post("/api/v1/maintenance", bad)
        .await
        .assert_problem(422, Some("end"));
    let quiet = s
        .send_ok(alarm_event(
            "prod-db-cpu",
            "ALARM",
            "2026-11-23T10:00:00.000+0000",
        ))
        .await;
    assert_eq!(effects(&quiet), ["recorded"]);
    let stored = s.get("/api/v1/signals?limit=1").await.body["signals"][0].clone();
    assert_eq!(stored["expected"], true);
    let resolved = s
        .send_ok(alarm_event(
            "prod-api-5xx",
            "OK",
            "2026-11-23T10:00:00.000+0000",
        ))
        .await;
    assert_eq!(effects(&resolved), ["resolved"]);
    assert_eq!(s.ticket_by_id(open_id).await["status"], "resolved");
    let r = s
        .call(
            Method::DELETE,
            &format!("/api/v1/maintenance/{window_id}"),
            Some(&s.agent),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    s.stop().await;
}

async fn flapping_is_marked_and_damped(backend: Backend) {
    let s = TestServer::start_with(backend, |c, _| {
        c.ingest.flapping_changes = 3;
    })
    .await
    .with_ingest_token()
    .await;
    let at = |m: u32| format!("2026-11-23T10:{m:02}:00.000+0000");
    let first = s
        .send_ok(alarm_event("prod-queue-depth", "ALARM", &at(0)))
        .await;
    let id = first["tickets"][0].as_i64().unwrap();
    // What people wrote on the ticket survives every change the signals make, the flapping
    // mark (which rewrites the whole ticket) included.
    let title = "Queue \"depth\" \\ backslash, ünïcødé 🚨 <b>not bold</b>";
    let description = "Line one\n\ttabbed, 'quotes' and \"more\"\r\n{\"json\": [1]}";
    let edited = s
        .patch(
            &format!("/api/v1/tickets/{id}"),
            None,
            json!({ "title": title, "description": description, "assignee": "ana", "tags": ["ç-tag", "queue"] }),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    let flips = [("OK", 1), ("ALARM", 2), ("OK", 3), ("ALARM", 4), ("OK", 5)];
    let mut seen = Vec::new();
    for (state, m) in flips {
        let r = s
            .send_ok(alarm_event("prod-queue-depth", state, &at(m)))
            .await;
        seen.push(effects(&r)[0].clone());
    }
    // Resolved, reopened, then the third flip marks it flapping: that resolve and the later
    // ones are damped (the ticket stays open; firing again counts an occurrence).
    assert_eq!(
        seen,
        ["resolved", "reopened", "recorded", "occurrence", "recorded"]
    );
    let t = s.ticket_by_id(id).await;
    assert!(
        t["tags"].as_array().unwrap().contains(&json!("flapping")),
        "{t}"
    );
    assert_eq!(t["status"], "in_progress");
    assert_eq!(t["title"], title);
    assert_eq!(t["description"], description);
    assert_eq!(t["assignee"], "ana");
    assert_eq!(t["tags"], json!(["flapping", "queue", "ç-tag"]));
    assert_eq!(t["created_at"], edited.body["created_at"]);
    assert_eq!(s.problems(id).await["problems"][0]["flapping"], true);
    assert_eq!(s.count_tickets().await, 1);
    s.stop().await;
}

async fn old_problems_open_new_tickets_after_the_reopen_window(backend: Backend) {
    let s = TestServer::start_with(backend, |c, _| {
        c.ingest.reopen_window_hours = 0;
    })
    .await
    .with_ingest_token()
    .await;
    let a = s
        .send_ok(alarm_event(
            "prod-api-5xx",
            "ALARM",
            "2026-11-23T10:00:00.000+0000",
        ))
        .await;
    s.send_ok(alarm_event(
        "prod-api-5xx",
        "OK",
        "2026-11-23T10:10:00.000+0000",
    ))
    .await;
    let b = s
        .send_ok(alarm_event(
            "prod-api-5xx",
            "ALARM",
            "2026-11-23T12:00:00.000+0000",
        ))
        .await;
    assert_eq!(effects(&b), ["created"]);
    assert_ne!(a["tickets"], b["tickets"]);
    // The problem now follows the new ticket: the next alarm is an occurrence on it.
    let c = s
        .send_ok(alarm_event(
            "prod-api-5xx",
            "ALARM",
            "2026-11-23T12:05:00.000+0000",
        ))
        .await;
    assert_eq!(effects(&c), ["occurrence"]);
    assert_eq!(c["tickets"], b["tickets"]);
    assert_eq!(s.count_tickets().await, 2);
    s.stop().await;
}

async fn concurrent_batches_over_the_same_problems_all_commit(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    // Eight senders, each a batch over the same ten alarms, half of them in reverse order:
    // every batch commits (no deadlock between them) and each alarm has one ticket.
    let batch = |sender: usize| {
        let mut events: Vec<Value> = (0..10)
            .map(|a| {
                let at = format!("2026-11-23T10:{:02}:{:02}.000+0000", sender, a);
                alarm_event(&format!("prod-alarm-{a}"), "ALARM", &at)
            })
            .collect();
        if sender % 2 == 1 {
            events.reverse();
        }
        Value::Array(events)
    };
    let replies = futures::future::join_all((0..8).map(|i| s.events(batch(i)))).await;
    for r in &replies {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }
    let all: Vec<String> = replies.iter().flat_map(|r| effects(&r.body)).collect();
    assert_eq!(all.iter().filter(|e| *e == "created").count(), 10);
    assert_eq!(all.iter().filter(|e| *e == "occurrence").count(), 70);
    assert_eq!(s.count_tickets().await, 10);
    s.stop().await;
}

async fn concurrent_single_events_each_get_their_own_answer(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    // Sixty single-event requests at once, written together: each answer is about its own
    // alarm, each alarm has one ticket, and the copies of an event sent twice count once.
    let event = |i: usize| {
        alarm_event(
            &format!("single-{}", i % 30),
            "ALARM",
            "2026-11-23T11:00:00.000+0000",
        )
    };
    let replies = futures::future::join_all((0..60).map(|i| s.events(event(i)))).await;
    let mut tickets: std::collections::HashMap<usize, i64> = Default::default();
    let mut duplicates = 0;
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        assert_eq!(r.body["accepted"], 1, "{}", r.body);
        match effects(&r.body)[0].as_str() {
            "created" => {
                let id = r.body["results"][0]["ticket_id"].as_i64().unwrap();
                assert!(
                    tickets.insert(i % 30, id).is_none(),
                    "alarm {} opened twice",
                    i % 30
                );
            }
            "duplicate" => duplicates += 1,
            other => panic!("unexpected effect {other}: {}", r.body),
        }
    }
    assert_eq!(tickets.len(), 30);
    assert_eq!(duplicates, 30);
    assert_eq!(s.count_tickets().await, 30);
    for (alarm, id) in tickets {
        let t = s.get(&format!("/api/v1/tickets/{id}")).await.body;
        assert!(
            t["title"]
                .as_str()
                .unwrap()
                .contains(&format!("single-{alarm}")),
            "ticket {id} is not about alarm {alarm}: {t}"
        );
    }
    let metrics = s.metrics().await;
    assert!(metrics.contains("opsdesk_ingest_groups_total"), "{metrics}");
    s.stop().await;
}

/// EventBridge API destinations retry a 401 for up to 24 hours, but not a 403: a revoked token
/// is told apart from one that was never issued.
async fn a_revoked_ingest_token_is_forbidden_not_unauthorized(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    let event = health_event("ev-revoked", "open", "Mon, 23 Nov 2026 09:01:22 GMT", "x");
    let r = s
        .call(
            Method::POST,
            "/api/v1/events",
            Some(&s.ingest),
            Some(event.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);

    let desk = s.db.desk().await;
    desk.revoke_token(&opsdesk_core::Actor::cli(), "test-ingest")
        .await
        .unwrap();
    desk.db().close().await;
    // Revoked through another process: this server's token cache forgets it within 2 s.
    let revoked_at = std::time::Instant::now();
    loop {
        let r = s
            .call(
                Method::POST,
                "/api/v1/events",
                Some(&s.ingest),
                Some(event.clone()),
            )
            .await;
        if r.status != StatusCode::ACCEPTED {
            r.assert_problem(403, None);
            assert!(
                r.body["detail"].as_str().unwrap().contains("revoked"),
                "{:?}",
                r.body
            );
            break;
        }
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(3),
            "the revoked token still works after 3 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Through routing_key as well.
    let alert = json!({"routing_key": s.ingest, "event_action": "trigger", "dedup_key": "k",
        "payload": {"summary": "x", "source": "y", "severity": "error"}});
    s.call(Method::POST, "/api/v1/alerts", None, Some(alert))
        .await
        .assert_problem(403, None);
    // A token never issued is still 401.
    let unknown = format!("{}x", &s.ingest[..s.ingest.len() - 1]);
    s.call(Method::POST, "/api/v1/events", Some(&unknown), Some(event))
        .await
        .assert_problem(401, None);
    s.stop().await;
}

/// Credentials a sender put in a payload: in the texts people and exports read, none may show.
fn assert_no_credential(what: &str, text: &str, credentials: &[&str]) {
    for c in credentials {
        assert!(
            !text.contains(c),
            "{what} shows the credential {c:?}: {text}"
        );
    }
}

async fn credentials_in_payloads_are_never_stored_or_shown(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    // The PagerDuty way: the token in `routing_key`, and a monitor that sends more than it should.
    let alert = json!({
        "routing_key": s.ingest,
        "event_action": "trigger",
        "dedup_key": "api-5xx",
        "payload": {
            "summary": "API 5xx above 5%",
            "source": "api-1",
            "severity": "critical",
            "custom_details": {
                "db_password": "hunter2-db-password",
                "headers": [{ "name": "X-Api-Key", "value": "k3y-from-a-header-list" }],
                "callback": { "Authorization": "Bearer bearer-from-details" },
                "rate": "7%"
            }
        }
    });
    let r = s
        .http
        .post(s.url("/api/v1/alerts"))
        .json(&alert)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["ticket_id"]
        .as_i64()
        .unwrap();
    // An EventBridge event whose detail carries a secret; it becomes an unclassified signal
    // whose body shows the detail.
    let event = json!({
        "version": "0", "id": "evt-creds-1", "detail-type": "Deploy Finished",
        "source": "custom.deployer", "account": ACCOUNT, "time": "2026-11-23T10:00:00Z",
        "region": "eu-west-1", "resources": [],
        "detail": { "service": "api", "client_secret": "client-secret-in-detail" }
    });
    let r = s
        .call(Method::POST, "/api/v1/events", Some(&s.ingest), Some(event))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let credentials = [
        s.ingest.as_str(),
        "hunter2-db-password",
        "k3y-from-a-header-list",
        "bearer-from-details",
        "client-secret-in-detail",
    ];

    // A viewer reads the ticket's signals; the rest of the payload is still there.
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/tickets/{id}/signals"),
            Some(&s.viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_no_credential(
        "a viewer's ticket signals",
        &r.body.to_string(),
        &credentials,
    );
    let raw = &r.body["signals"][0]["raw"];
    assert_eq!(raw["routing_key"], "<redacted>");
    assert_eq!(raw["payload"]["custom_details"]["rate"], "7%");
    assert_eq!(raw["payload"]["summary"], "API 5xx above 5%");

    // An agent lists every signal.
    let r = s
        .call(Method::GET, "/api/v1/signals", Some(&s.agent), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["signals"].as_array().unwrap().len(), 2, "{}", r.body);
    assert_no_credential("an agent's signal list", &r.body.to_string(), &credentials);

    // Nor do the ticket, its history, the audit trail or an export carry one.
    let ticket = s.ticket_by_id(id).await;
    assert_no_credential("the ticket", &ticket.to_string(), &credentials);
    let history = s.get(&format!("/api/v1/tickets/{id}/history")).await.body;
    assert_no_credential("the ticket's history", &history.to_string(), &credentials);
    let trail = s.audit_trail().await;
    assert_no_credential(
        "the audit trail",
        &Value::from(trail).to_string(),
        &credentials,
    );
    let desk = s.db.desk().await;
    let export = desk
        .export_page(&opsdesk_core::Actor::cli(), &Default::default(), 0)
        .await
        .unwrap();
    desk.db().close().await;
    assert_no_credential(
        "the export",
        &serde_json::to_string(&export).unwrap(),
        &credentials,
    );

    // The token still works: stripping it from what is stored does not touch sign-in.
    let resolve =
        json!({ "routing_key": s.ingest, "event_action": "resolve", "dedup_key": "api-5xx" });
    let r = s
        .http
        .post(s.url("/api/v1/alerts"))
        .json(&resolve)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(s.ticket_by_id(id).await["status"], "resolved");
    s.stop().await;
}

/// The migration that scrubs stored payloads.
const SCRUB_MIGRATION: i64 = 20261207000015;

/// Brings `db`'s schema to the version before `version`, as an older opsdesk left it.
async fn migrate_before(db: &TestDb, backend: Backend, version: i64) {
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../store/migrations")
        .join(folder);
    let mut migrator = sqlx::migrate::Migrator::new(path).await.unwrap();
    let older: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect();
    assert!(
        older.len() < migrator.migrations.len(),
        "no migration {version}"
    );
    migrator.migrations = older.into();
    match backend {
        Backend::Sqlite => {
            use std::str::FromStr;
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
            migrator.run(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            migrator.run(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

async fn stored_payloads_are_scrubbed_of_credentials_by_migration(backend: Backend) {
    let db = TestDb::new(backend).await;
    migrate_before(&db, backend, SCRUB_MIGRATION).await;
    // Payloads as an older opsdesk stored them: whole.
    let leaky = json!({
        "routing_key": "odk_stored-before-the-fix",
        "event_action": "trigger",
        "dedup_key": "disk/db-1",
        "payload": {
            "summary": "Disk full",
            "custom_details": {
                "x-api-key": "stored-api-key",
                "db": { "password": "stored-password", "host": "db-1" },
                "headers": [{ "name": "Authorization", "value": "Bearer stored-bearer" }],
                "free_gb": 3
            }
        }
    });
    let clean = r#"{"source":"aws.health","detail":{"service":"EC2","key":"keep me"}}"#;
    for (id, raw) in [(1, leaky.to_string()), (2, clean.to_owned())] {
        db.sql(&format!(
            "INSERT INTO signals (id, received_at, source, dedup_key, state, kind, severity, \
             resources, title, body, occurred_at, classified, expected, rule, outcome, raw) \
             VALUES ({id}, '2026-11-23T10:00:00.000000Z', 'alerts', 'disk/db-1', 'firing', \
             'critical', 'SEV2', '[]', 'Disk full', '', '2026-11-23T10:00:00.000000Z', TRUE, \
             FALSE, 'default', 'recorded', '{}')",
            raw.replace('\'', "''")
        ))
        .await
        .unwrap();
    }

    // Opening the database runs the rest of the migrations.
    let desk = db.desk().await;
    let signals = desk
        .signals(
            &opsdesk_core::Actor::cli(),
            &opsdesk_store::SignalFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    desk.db().close().await;
    let raw = |id: i64| -> Value {
        let s = signals.iter().find(|s| s.id == id).unwrap();
        serde_json::from_str(s.raw.get()).unwrap()
    };
    let scrubbed = raw(1);
    assert_no_credential(
        "a payload stored before the migration",
        &scrubbed.to_string(),
        &[
            "odk_stored-before-the-fix",
            "stored-api-key",
            "stored-password",
            "stored-bearer",
        ],
    );
    let mut want = leaky.clone();
    want["routing_key"] = json!("<redacted>");
    want["payload"]["custom_details"]["x-api-key"] = json!("<redacted>");
    want["payload"]["custom_details"]["db"]["password"] = json!("<redacted>");
    want["payload"]["custom_details"]["headers"][0]["value"] = json!("<redacted>");
    assert_eq!(scrubbed, want, "only the credentials are replaced");
    let kept = signals.iter().find(|s| s.id == 2).unwrap();
    assert_eq!(
        kept.raw.get(),
        clean,
        "a payload without credentials is left as it was"
    );
    db.drop_schema().await;
}

const STAGING_VM: &str = "arn:aws:ec2:eu-west-1:111122223333:instance/i-0stage000000000001";
const PRODUCTION_VM: &str = "arn:aws:ec2:eu-west-1:111122223333:instance/i-0prod0000000000001";
const PAGED_ARN: &str = "arn:aws:health:eu-west-1::event/EC2/AWS_EC2_INSTANCE_STORE_DRIVE_PERFORMANCE_DEGRADED/AWS_EC2_INSTANCE_STORE_DRIVE_PERFORMANCE_DEGRADED_5d1e";

/// One page of an AWS Health event split over two EventBridge messages, shaped as the AWS
/// Health EventBridge schema reference shows it: the same `eventArn` and `communicationId`
/// suffixed with the page, `page` and `totalPages` as strings.
fn health_page(page: u32, entities: &[&str]) -> Value {
    json!({
        "version": "0",
        "id": format!("5f2c3d1e-0000-4000-8000-00000000000{page}"),
        "detail-type": "AWS Health Event",
        "source": "aws.health",
        "account": ACCOUNT,
        "time": "2026-11-30T08:00:00Z",
        "region": "eu-west-1",
        "resources": entities,
        "detail": {
            "eventArn": PAGED_ARN,
            "service": "EC2",
            "eventTypeCode": "AWS_EC2_INSTANCE_STORE_DRIVE_PERFORMANCE_DEGRADED",
            "eventTypeCategory": "issue",
            "eventScopeCode": "ACCOUNT_SPECIFIC",
            "communicationId": format!("3c9d6e1f8a7b4c2d9e0f1a2b3c4d5e6f7a8b9c0d-{page}"),
            "startTime": "Mon, 30 Nov 2026 07:40:00 GMT",
            "lastUpdatedTime": "Mon, 30 Nov 2026 07:55:00 GMT",
            "statusCode": "open",
            "eventRegion": "eu-west-1",
            "eventDescription": [{ "language": "en_US", "latestDescription": "Instance store drives have degraded performance." }],
            "affectedEntities": entities.iter().map(|e| json!({ "entityValue": e })).collect::<Vec<_>>(),
            "affectedAccount": ACCOUNT,
            "actionability": "ACTION_REQUIRED",
            "personas": ["OPERATIONS"],
            "page": page.to_string(),
            "totalPages": "2"
        }
    })
}

/// A staging workload for the first page's instance, production for the second's.
async fn paged_workloads(s: &TestServer) {
    s.workload(json!({
        "name": "reports", "environment": "staging", "team": "platform",
        "accounts": [ACCOUNT], "resources": ["arn:aws:ec2:*:instance/i-0stage*"]
    }))
    .await;
    s.workload(json!({
        "name": "checkout", "environment": "production", "team": "payments",
        "accounts": [ACCOUNT], "resources": ["arn:aws:ec2:*:instance/i-0prod*"]
    }))
    .await;
}

async fn assert_on_production(s: &TestServer, id: i64) {
    let t = s.ticket_by_id(id).await;
    assert_eq!(t["workload"], "checkout", "{t}");
    assert_eq!(t["team"], "payments");
    // An issue on production: SEV2, whichever page came first.
    assert_eq!(t["severity"], "SEV2");
    let tags = t["tags"].as_array().unwrap();
    assert!(tags.contains(&json!("production")), "{tags:?}");
    assert!(
        tags.contains(&json!("actionability:action_required")),
        "{tags:?}"
    );
    assert!(tags.contains(&json!("persona:operations")), "{tags:?}");
    // Two pages are one piece of news, not two occurrences.
    let p = s.problems(id).await;
    assert_eq!(p["problems"][0]["occurrences"], 1, "{p}");
    assert_eq!(p["signals"].as_array().unwrap().len(), 2);
    assert_eq!(s.count_tickets().await, 1);
}

async fn paginated_event_second_page_first_lands_on_production(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    paged_workloads(&s).await;
    let two = s.send_ok(health_page(2, &[PRODUCTION_VM])).await;
    assert_eq!(effects(&two), ["created"]);
    let id = two["tickets"][0].as_i64().unwrap();
    let one = s.send_ok(health_page(1, &[STAGING_VM])).await;
    assert_eq!(effects(&one), ["merged"]);
    assert_eq!(one["tickets"], json!([id]));
    assert_on_production(&s, id).await;
    // A page delivered again is a repeat, whichever page it is.
    let again = s
        .send_ok(json!([
            health_page(1, &[STAGING_VM]),
            health_page(2, &[PRODUCTION_VM])
        ]))
        .await;
    assert_eq!(effects(&again), ["duplicate", "duplicate"]);
    assert_eq!(
        s.history_actions(id).await,
        ["ticket.created", "ticket.merged"]
    );
    s.stop().await;
}

async fn paginated_event_first_page_first_moves_to_production(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    paged_workloads(&s).await;
    let one = s.send_ok(health_page(1, &[STAGING_VM])).await;
    assert_eq!(effects(&one), ["created"]);
    let id = one["tickets"][0].as_i64().unwrap();
    let t = s.ticket_by_id(id).await;
    assert_eq!(
        (t["workload"].as_str(), t["severity"].as_str()),
        (Some("reports"), Some("SEV3"))
    );
    assert_eq!(t["team"], "platform");

    let two = s.send_ok(health_page(2, &[PRODUCTION_VM])).await;
    assert_eq!(effects(&two), ["merged"]);
    assert_on_production(&s, id).await;
    let history = s.get(&format!("/api/v1/tickets/{id}/history")).await.body;
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "ticket.merged");
    assert_eq!(last["changes"]["workload"]["before"], "reports");
    assert_eq!(last["changes"]["workload"]["after"], "checkout");
    assert_eq!(last["changes"]["severity"]["after"], "SEV2");
    assert_eq!(last["changes"]["pages"]["after"]["received"], json!([1, 2]));

    let again = s.send_ok(health_page(2, &[PRODUCTION_VM])).await;
    assert_eq!(effects(&again), ["duplicate"]);
    // Both pages in one delivery (a batch from SQS) behave the same.
    s.stop().await;

    let s = TestServer::start(backend).await.with_ingest_token().await;
    paged_workloads(&s).await;
    let both = s
        .send_ok(json!([
            health_page(1, &[STAGING_VM]),
            health_page(2, &[PRODUCTION_VM])
        ]))
        .await;
    assert_eq!(effects(&both), ["created", "merged"]);
    assert_on_production(&s, both["tickets"][0].as_i64().unwrap()).await;
    s.stop().await;
}

/// An abuse report as AWS Health sends it through EventBridge.
fn abuse_event() -> Value {
    json!({
        "version": "0",
        "id": "d4b0e6f2-6c1a-4f6e-9a51-3f0c2b7d9e18",
        "detail-type": "AWS Health Abuse Event",
        "source": "aws.health",
        "account": ACCOUNT,
        "time": "2026-11-27T01:30:00Z",
        "region": "global",
        "resources": [PRODUCTION_VM],
        "detail": {
            "eventArn": "arn:aws:health:global::event/AWS_ABUSE_DOS_REPORT_3223324344_3243_234_34_34",
            "service": "ABUSE",
            "eventTypeCode": "AWS_ABUSE_DOS_REPORT",
            "eventTypeCategory": "issue",
            "startTime": "Fri, 27 Nov 2026 01:30:00 GMT",
            "eventDescription": [{
                "language": "en_US",
                "latestDescription": "Denial of Service (DOS) attack has been reported to have been caused by AWS resources in your account."
            }],
            "affectedEntities": [{ "entityValue": PRODUCTION_VM }]
        }
    })
}

async fn abuse_report_opens_a_security_incident(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    let r = s.send_ok(abuse_event()).await;
    assert_eq!(effects(&r), ["created"]);
    let t = s.ticket_by_id(r["tickets"][0].as_i64().unwrap()).await;
    assert_eq!(t["kind"], "incident");
    assert_eq!(t["severity"], "SEV2");
    assert_eq!(t["title"], "AWS Health abuse report: dos report");
    let tags = t["tags"].as_array().unwrap();
    assert!(tags.contains(&json!("security")), "{tags:?}");
    assert!(tags.contains(&json!("persona:security")), "{tags:?}");
    let description = t["description"].as_str().unwrap();
    assert!(
        description.contains("Denial of Service (DOS) attack"),
        "{description}"
    );
    assert!(description.contains(PRODUCTION_VM), "{description}");
    let signals = s.get("/api/v1/signals?source=aws.health").await.body;
    assert_eq!(signals["signals"][0]["kind"], "abuse", "{signals}");
    assert_eq!(signals["signals"][0]["classified"], true);
    assert_eq!(signals["signals"][0]["rule"], "default rule 1");
    s.stop().await;
}

async fn organizational_view_event_belongs_to_the_affected_account(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    let member = "444455556666";
    s.workload(json!({
        "name": "member-shop", "environment": "production", "team": "shop",
        "accounts": [member]
    }))
    .await;
    // Received in the management account (`account`) about a member account.
    let mut event = health_event(
        "org-1",
        "open",
        "Mon, 23 Nov 2026 06:10:00 GMT",
        "Degraded.",
    );
    event["account"] = json!("999988887777");
    event["detail"]["affectedAccount"] = json!(member);
    event["detail"]["affectedEntities"] = json!([]);
    event["resources"] = json!([]);
    let r = s.send_ok(event).await;
    let id = r["tickets"][0].as_i64().unwrap();
    let t = s.ticket_by_id(id).await;
    assert_eq!(t["workload"], "member-shop");
    assert_eq!(t["dedup_key"], format!("{EVENT_ARN}|{member}"));
    assert!(t["description"]
        .as_str()
        .unwrap()
        .contains(&format!("Account: {member}")));
    // The stored signal, which the AWS case takes its account from, names the member.
    let p = s.problems(id).await;
    assert_eq!(p["signals"][0]["account"], member, "{p}");
    s.stop().await;
}

async fn personas_route_to_their_own_channels(backend: Backend) {
    let s = TestServer::start_with(backend, |c, _| {
        c.notify.channels = vec![
            serde_json::from_value(json!({ "name": "security-hook", "type": "webhook", "url": "https://security.example.com/hook" })).unwrap(),
            serde_json::from_value(json!({ "name": "billing-hook", "type": "webhook", "url": "https://billing.example.com/hook" })).unwrap(),
        ];
        c.notify.rules = vec![
            serde_json::from_value(json!({ "name": "security", "tags": ["persona:security"], "channels": ["security-hook"] })).unwrap(),
            serde_json::from_value(json!({ "name": "billing", "tags": ["persona:billing"], "channels": ["billing-hook"] })).unwrap(),
        ];
    })
    .await
    .with_ingest_token()
    .await;
    let mut billing = health_event(
        "bill-1",
        "open",
        "Mon, 23 Nov 2026 06:10:00 GMT",
        "Your bill.",
    );
    billing["detail"]["eventTypeCategory"] = json!("accountNotification");
    billing["detail"]["eventTypeCode"] = json!("AWS_BILLING_NOTIFICATION");
    billing["detail"]["service"] = json!("BILLING");
    billing["detail"]["actionability"] = json!("INFORMATIONAL");
    billing["detail"]["personas"] = json!(["BILLING"]);
    let abuse = s.send_ok(abuse_event()).await["tickets"][0]
        .as_i64()
        .unwrap();
    let bill = s.send_ok(billing).await["tickets"][0].as_i64().unwrap();
    for (id, want) in [(abuse, "security-hook"), (bill, "billing-hook")] {
        let check = s
            .post(
                "/api/v1/routing-rules/check",
                json!({ "event": "created", "ticket": format!("OPS-{id}") }),
            )
            .await;
        assert_eq!(check.status, StatusCode::OK, "{}", check.body);
        assert_eq!(check.body["channels"], json!([want]), "{}", check.body);
    }
    // An informational account notification: SEV5.
    assert_eq!(s.ticket_by_id(bill).await["severity"], "SEV5");
    s.stop().await;
}

const GUARDDUTY: &str = include_str!("../fixtures/signals/guardduty-finding.json");
const SECURITY_HUB: &str = include_str!("../fixtures/signals/securityhub-findings.json");
const GRAFANA: &str = include_str!("../fixtures/signals/grafana-webhook.json");

async fn security_findings_and_grafana_alerts_open_and_close_one_ticket_each(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    s.workload(json!({
        "name": "checkout", "environment": "production", "accounts": [ACCOUNT],
        "resources": ["arn:aws:ec2:*:*:instance/i-05746eb48123455e0", "arn:aws:s3:::checkout-*"]
    }))
    .await;
    let send = |path: &'static str, body: Value| {
        let token = s.ingest.clone();
        let s = &s;
        async move { s.call(Method::POST, path, Some(&token), Some(body)).await }
    };

    // GuardDuty through EventBridge: severity 8 is high, on the workload of its instance.
    let mut finding: Value = serde_json::from_str(GUARDDUTY).unwrap();
    let r = send("/api/v1/events", finding.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(effects(&r.body), ["created"]);
    let id = r.body["tickets"][0].as_i64().unwrap();
    let t = s.ticket_by_id(id).await;
    assert_eq!(t["severity"], "SEV2", "{t}");
    assert_eq!(t["workload"], "checkout");
    assert_eq!(t["kind"], "incident");
    assert_eq!(t["dedup_key"], "16afba5c5c43e07c9e3e5e2e544e95df");
    assert!(
        t["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("persona:security")),
        "{t}"
    );
    // The finding seen again is the same ticket; archived, it resolves.
    finding["id"] = json!("d1f7c3a2-0000-4000-8000-000000000001");
    finding["detail"]["service"]["count"] = json!(9);
    finding["detail"]["updatedAt"] = json!("2026-11-30T23:46:23.000Z");
    let r = send("/api/v1/events", finding.clone()).await;
    assert_eq!(r.body["tickets"], json!([id]), "{}", r.body);
    finding["id"] = json!("d1f7c3a2-0000-4000-8000-000000000002");
    finding["detail"]["service"]["archived"] = json!(true);
    let r = send("/api/v1/events", finding.clone()).await;
    assert_eq!(effects(&r.body), ["resolved"], "{}", r.body);
    assert_eq!(s.ticket_by_id(id).await["status"], "resolved");
    finding["detail"]["severity"] = json!("HIGH");
    send("/api/v1/events", finding)
        .await
        .assert_problem(422, Some("detail.severity"));

    // Security Hub: one ticket per finding of the event.
    let mut findings: Value = serde_json::from_str(SECURITY_HUB).unwrap();
    let r = send("/api/v1/events", findings.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(effects(&r.body), ["created", "created"]);
    let (bucket, root) = (
        r.body["tickets"][0].as_i64().unwrap(),
        r.body["tickets"][1].as_i64().unwrap(),
    );
    assert_eq!(s.ticket_by_id(bucket).await["severity"], "SEV2");
    assert_eq!(s.ticket_by_id(bucket).await["workload"], "checkout");
    assert_eq!(s.ticket_by_id(root).await["severity"], "SEV1");
    // Each event has an id of its own; the same event again changes nothing.
    let r = send("/api/v1/events", findings.clone()).await;
    assert_eq!(effects(&r.body), ["duplicate", "duplicate"], "{}", r.body);
    findings["id"] = json!("9a0b1c2d-0000-4000-8000-000000000003");
    findings["detail"]["findings"][0]["Workflow"]["Status"] = json!("RESOLVED");
    findings["detail"]["findings"][0]["UpdatedAt"] = json!("2026-12-01T08:00:00.000Z");
    findings["detail"]["findings"][1]["RecordState"] = json!("ARCHIVED");
    findings["detail"]["findings"][1]["UpdatedAt"] = json!("2026-12-01T08:00:00.000Z");
    let r = send("/api/v1/events", findings).await;
    assert_eq!(effects(&r.body), ["resolved", "resolved"], "{}", r.body);

    // Grafana at the one webhook route; Alertmanager answers there as at its own path.
    let mut alert: Value = serde_json::from_str(GRAFANA).unwrap();
    let r = send("/api/v1/ingest/grafana", alert.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(effects(&r.body), ["created"]);
    let grafana = r.body["tickets"][0].as_i64().unwrap();
    let t = s.ticket_by_id(grafana).await;
    assert_eq!(t["dedup_key"], "c6eadffa33fcdf37");
    assert_eq!(t["source"], "grafana");
    assert!(t["description"]
        .as_str()
        .unwrap()
        .contains("https://runbooks.example.com/memory"));
    alert["alerts"][0]["status"] = json!("resolved");
    alert["alerts"][0]["endsAt"] = json!("2026-11-30T10:21:03.157076+02:00");
    let r = send("/api/v1/ingest/grafana", alert).await;
    assert_eq!(effects(&r.body), ["resolved"], "{}", r.body);
    let r = send(
        "/api/v1/ingest/alertmanager",
        alertmanager_notification("firing", "0001-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(effects(&r.body), ["created"]);
    let r = s
        .call(
            Method::POST,
            "/api/v1/ingest/nagios",
            Some(&s.ingest),
            Some(json!({})),
        )
        .await;
    r.assert_problem(404, None);
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("alertmanager, grafana"));
    // Only ingest tokens send.
    let r = s
        .call(
            Method::POST,
            "/api/v1/ingest/grafana",
            Some(&s.agent),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    s.stop().await;
}

/// Retention: signals past their age go when their ticket is resolved (an open problem keeps
/// its signals whatever their age), receipts go by age, and the audit trail keeps everything.
/// A delivery repeated after its receipt went counts as another occurrence of the problem,
/// not as a new problem.
async fn old_signals_and_receipts_are_purged_but_open_problems_keep_theirs(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    let open = alarm_event("prod-keep", "ALARM", "2026-11-23T11:00:00.000+0000");
    let fired = alarm_event("prod-done", "ALARM", "2026-11-23T11:00:00.000+0000");
    let cleared = alarm_event("prod-done", "OK", "2026-11-23T11:05:00.000+0000");
    let kept = s.send_ok(open.clone()).await["tickets"][0]
        .as_i64()
        .unwrap();
    let done = s.send_ok(fired).await["tickets"][0].as_i64().unwrap();
    s.send_ok(cleared).await;
    let signals = |id: i64| {
        let s = &s;
        async move {
            s.get(&format!("/api/v1/tickets/{id}/signals")).await.body["signals"]
                .as_array()
                .map(Vec::len)
                .unwrap()
        }
    };
    assert_eq!((signals(kept).await, signals(done).await), (1, 2));
    let audit_before = s.history_actions(done).await;

    // Everything is "old" as seen from 2100.
    let db = opsdesk_store::Db::connect(&s.db.url, &Default::default())
        .await
        .unwrap();
    let later: chrono::DateTime<chrono::Utc> = "2100-01-01T00:00:00Z".parse().unwrap();
    assert_eq!(db.purge_signals(later, 5_000).await.unwrap(), 2);
    assert_eq!(
        signals(done).await,
        0,
        "the resolved problem's signals are gone"
    );
    assert_eq!(signals(kept).await, 1, "the open problem keeps its signal");
    assert_eq!(s.history_actions(done).await, audit_before);
    assert_eq!(db.purge_receipts(later, 5_000).await.unwrap(), 3);
    assert_eq!(db.purge_receipts(later, 5_000).await.unwrap(), 0);
    db.close().await;

    // The open alarm's delivery again, with its receipt gone: one more occurrence of the same
    // problem, on the same ticket.
    let again = s.send_ok(open).await;
    assert_eq!(effects(&again), ["occurrence"], "{again}");
    assert_eq!(again["tickets"][0], kept);
    assert_eq!(s.count_tickets().await, 2);
    s.stop().await;
}
