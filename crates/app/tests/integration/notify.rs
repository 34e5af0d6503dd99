//! Notifications end to end: ticket changes routed to channels through the outbox, delivered
//! by the server's dispatcher to a real HTTP receiver, every attempt in the ticket's history;
//! retries, dead letters and the retry API driven by a fake clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use opsdesk_core::outbox::NotifySettings;
use opsdesk_core::{Actor, Desk, FixedClock};
use opsdesk_domain::channel::ChannelSpec;
use opsdesk_domain::routing::RoutingRule;
use opsdesk_notify::{Channels, HttpClient};
use opsdesk_store::OutboxFilter;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::channels::{header, signature_matches, Receiver, SECRET};
use crate::common::{on_both_backends, Backend, TestDb, TestServer};

on_both_backends!(
    sev1_ticket_is_routed_delivered_and_recorded,
    failed_deliveries_back_off_then_dead_letter_and_can_be_retried,
    two_dispatchers_deliver_each_notification_once,
    a_claim_left_by_a_dead_node_is_sent_after_its_lease,
    webhook_urls_are_shown_masked_and_delivered_whole,
);

fn channel(json: Value) -> ChannelSpec {
    serde_json::from_value(json).unwrap()
}

fn rule(json: Value) -> RoutingRule {
    serde_json::from_value(json).unwrap()
}

/// Polls the ticket's deliveries until `done` holds, for at most ten seconds.
async fn deliveries_until(s: &TestServer, id: i64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let r = s.get(&format!("/api/v1/tickets/{id}/deliveries")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let items = r.body.as_array().unwrap().clone();
        if done(&items) {
            return items;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "deliveries did not settle: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn state_of<'a>(items: &'a [Value], channel: &str) -> Option<&'a str> {
    items
        .iter()
        .find(|i| i["channel"] == channel)
        .and_then(|i| i["state"].as_str())
}

async fn sev1_ticket_is_routed_delivered_and_recorded(backend: Backend) {
    let receiver = Receiver::start().await;
    let hook = format!("{}/hook", receiver.base);
    let broken = format!("{}/status/500", receiver.base);
    let s = TestServer::start_with(backend, |config, _| {
        config.notify.allow_private_addresses = true;
        config.notify.base_url = Some("https://desk.example.com".into());
        config.notify.channels = vec![
            channel(
                json!({ "name": "ops-hook", "type": "webhook", "url": hook, "secret": SECRET }),
            ),
            channel(json!({ "name": "broken", "type": "webhook", "url": broken })),
        ];
        config.notify.rules = vec![rule(json!({
            "name": "sev1", "events": ["created"], "severities": ["SEV1"],
            "channels": ["ops-hook", "broken"]
        }))];
    })
    .await;

    let quiet = s
        .ticket(json!({ "title": "Printer jam", "kind": "incident", "severity": "SEV4" }))
        .await;
    let t = s
        .ticket(json!({ "title": "Checkout down", "kind": "incident", "severity": "SEV1" }))
        .await;
    let id = t["id"].as_i64().unwrap();
    let items = deliveries_until(&s, id, |items| {
        state_of(items, "ops-hook") == Some("delivered")
            && items.iter().any(|i| {
                i["channel"] == "broken" && i["attempts"] == 1 && i["last_error"].is_string()
            })
    })
    .await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        state_of(&items, "broken"),
        Some("pending"),
        "a retryable failure waits"
    );

    // The receiver got one signed request with the delivery's idempotency key.
    let got: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|r| r.path == "/hook")
        .collect();
    assert_eq!(got.len(), 1);
    assert!(signature_matches(&got[0].headers, &got[0].body));
    let key = format!("OPS-{id}-v1-created-ops-hook");
    assert_eq!(header(&got[0], "idempotency-key"), key);
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["ticket_key"], format!("OPS-{id}"));
    assert_eq!(body["severity"], "SEV1");
    assert_eq!(
        body["url"],
        format!("https://desk.example.com/tickets/OPS-{id}")
    );

    // Each attempt is in the ticket's history.
    let history = s.get(&format!("/api/v1/tickets/{id}/history")).await.body;
    let actions: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"notification.delivered"), "{actions:?}");
    assert!(actions.contains(&"notification.failed"), "{actions:?}");

    // A SEV4 ticket matches no rule.
    let none = s
        .get(&format!("/api/v1/tickets/{}/deliveries", quiet["id"]))
        .await;
    assert_eq!(none.body, json!([]));

    // The rules explain themselves.
    let check = s
        .post(
            "/api/v1/routing-rules/check",
            json!({ "event": "created", "ticket": format!("OPS-{}", quiet["id"]) }),
        )
        .await;
    assert_eq!(check.status, StatusCode::OK, "{}", check.body);
    assert_eq!(check.body["channels"], json!([]));
    assert!(check.body["rules"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("severity SEV4"));

    // Channels and rules through the API: admins only, secrets hidden, fields named.
    let listed = s
        .call(Method::GET, "/api/v1/channels", Some(&s.admin), None)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(!listed.body.to_string().contains(SECRET), "{}", listed.body);
    s.post(
        "/api/v1/channels",
        json!({ "name": "x", "type": "webhook", "url": hook }),
    )
    .await
    .assert_problem(403, None);
    s.call(
        Method::POST,
        "/api/v1/channels",
        Some(&s.admin),
        Some(json!({ "name": "bad", "type": "webhook", "url": "ftp://example.com" })),
    )
    .await
    .assert_problem(422, Some("url"));
    s.call(
        Method::POST,
        "/api/v1/routing-rules",
        Some(&s.admin),
        Some(json!({ "name": "r", "channels": ["nowhere"] })),
    )
    .await
    .assert_problem(422, Some("channels[0]"));
    let made = s.call(Method::POST,
        "/api/v1/channels",
        Some(&s.admin),
        Some(json!({ "name": "plain", "type": "webhook", "url": format!("{}/plain", receiver.base) })),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let made = s
        .call(
            Method::POST,
            "/api/v1/routing-rules",
            Some(&s.admin),
            Some(json!({ "name": "resolved", "events": ["resolved"], "channels": ["plain"] })),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let rules = s.get("/api/v1/routing-rules").await.body;
    assert_eq!(rules[0]["name"], "sev1");
    assert_eq!(rules[1]["name"], "resolved");

    // A test message through a channel is queued, then delivered like any other.
    let queued = s
        .call(
            Method::POST,
            "/api/v1/channels/ops-hook/test",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
    assert_eq!(queued.body["event"], "test");
    let started = Instant::now();
    loop {
        let d = s
            .get(&format!("/api/v1/deliveries/{}", queued.body["id"]))
            .await
            .body;
        if d["state"] == "delivered" {
            assert_eq!(d["attempts"], 1, "{d}");
            assert_eq!(d["attempt_log"][0]["ok"], true, "{d}");
            assert!(
                d["attempt_log"][0]["detail"]
                    .as_str()
                    .unwrap()
                    .contains("200"),
                "{d}"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Resolving announces `resolved` to the channel added through the API.
    let r = s
        .patch(
            &format!("/api/v1/tickets/{id}"),
            None,
            json!({ "status": "resolved" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    deliveries_until(&s, id, |items| {
        items.iter().any(|i| {
            i["channel"] == "plain" && i["event"] == "resolved" && i["state"] == "delivered"
        })
    })
    .await;
    s.stop().await;
}

async fn failed_deliveries_back_off_then_dead_letter_and_can_be_retried(backend: Backend) {
    let receiver = Receiver::start().await;
    let db = TestDb::new(backend).await;
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap(),
    ));
    let settings = NotifySettings {
        channels: vec![
            channel(
                json!({ "name": "flaky", "type": "webhook", "url": format!("{}/status/503", receiver.base) }),
            ),
            channel(
                json!({ "name": "gone", "type": "webhook", "url": format!("{}/status/404", receiver.base) }),
            ),
        ],
        rules: vec![rule(
            json!({ "name": "all", "channels": ["flaky", "gone"] }),
        )],
        max_attempts: 2,
        ..NotifySettings::default()
    };
    let desk =
        Desk::new(db.desk().await.db().clone(), clock.clone()).with_notify_settings(settings);
    let channels = Channels::new(HttpClient::new(true).unwrap(), clock.clone());
    let cli = Actor::cli();
    let t = desk
        .create_ticket(
            &cli,
            serde_json::from_value(
                json!({ "title": "Disk full", "kind": "incident", "severity": "SEV2" }),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let all = |desk: &Desk| {
        let desk = desk.clone();
        let id = t.id;
        async move {
            desk.deliveries(
                &Actor::cli(),
                &OutboxFilter {
                    ticket_id: Some(id),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
        }
    };

    // First attempt: 503 is retried later, 404 is dead at once.
    assert_eq!(
        opsdesk_notify::dispatcher::dispatch_once(&desk, &channels)
            .await
            .unwrap(),
        2
    );
    let items = all(&desk).await;
    let flaky = items.iter().find(|i| i.channel == "flaky").unwrap();
    let gone = items.iter().find(|i| i.channel == "gone").unwrap();
    assert_eq!(gone.state, "dead");
    assert_eq!(flaky.state, "pending");
    let wait = flaky.next_attempt_at - opsdesk_core::Clock::now(clock.as_ref());
    assert!(
        wait >= chrono::Duration::seconds(24) && wait <= chrono::Duration::seconds(36),
        "first retry after about 30 s, not {wait}"
    );
    // Not due yet: nothing is sent.
    assert_eq!(
        opsdesk_notify::dispatcher::dispatch_once(&desk, &channels)
            .await
            .unwrap(),
        0
    );
    clock.advance(chrono::Duration::seconds(40));
    assert_eq!(
        opsdesk_notify::dispatcher::dispatch_once(&desk, &channels)
            .await
            .unwrap(),
        1
    );
    let items = all(&desk).await;
    let flaky = items.iter().find(|i| i.channel == "flaky").unwrap().clone();
    assert_eq!(
        (flaky.state.as_str(), flaky.attempts),
        ("dead", 2),
        "max_attempts reached"
    );
    let dead = desk
        .deliveries(
            &cli,
            &OutboxFilter {
                state: Some("dead".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(dead.len(), 2);

    // Every attempt is recorded, with what the receiver answered.
    let (_, attempts) = desk.delivery(&cli, flaky.id).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts
            .iter()
            .all(|a| !a.ok && a.retryable && a.detail.contains("503")),
        "{attempts:?}"
    );
    assert_eq!(
        receiver
            .received()
            .iter()
            .filter(|r| r.path == "/status/503")
            .map(|r| header(r, "idempotency-key").to_owned())
            .collect::<std::collections::HashSet<_>>()
            .len(),
        1,
        "every attempt carries the same idempotency key"
    );

    // A person retries the dead letter: it is due again at once.
    let again = desk.retry_delivery(&cli, flaky.id).await.unwrap();
    assert_eq!(again.state, "pending");
    assert!(
        desk.retry_delivery(&cli, flaky.id).await.is_err(),
        "only dead letters are retried"
    );
    assert_eq!(
        opsdesk_notify::dispatcher::dispatch_once(&desk, &channels)
            .await
            .unwrap(),
        1
    );
    let history = desk.history(&cli, t.id).await.unwrap();
    let actions: Vec<&str> = history.iter().map(|e| e.action.as_str()).collect();
    for a in [
        "notification.failed",
        "notification.dead",
        "notification.retried",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    desk.db().close().await;
    db.drop_schema().await;
}

/// One webhook channel `hook` to the receiver's `/plain`, every event routed to it, and a
/// fake clock.
fn every_event_to_hook(receiver: &Receiver) -> (NotifySettings, Arc<FixedClock>) {
    let settings = NotifySettings {
        channels: vec![channel(
            json!({ "name": "hook", "type": "webhook", "url": format!("{}/plain", receiver.base) }),
        )],
        rules: vec![rule(json!({ "name": "all", "channels": ["hook"] }))],
        ..NotifySettings::default()
    };
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap(),
    ));
    (settings, clock)
}

async fn two_dispatchers_deliver_each_notification_once(backend: Backend) {
    let receiver = Receiver::start().await;
    let db = TestDb::new(backend).await;
    let (settings, clock) = every_event_to_hook(&receiver);
    // Two nodes: each its own connections to the same database, each its own dispatcher.
    let nodes: Vec<Desk> = vec![
        Desk::new(db.desk().await.db().clone(), clock.clone())
            .with_notify_settings(settings.clone()),
        Desk::new(db.desk().await.db().clone(), clock.clone()).with_notify_settings(settings),
    ];
    let tickets: Vec<_> = (0..30)
        .map(|i| {
            serde_json::from_value(
                json!({ "title": format!("Alarm {i}"), "kind": "incident", "severity": "SEV3" }),
            )
            .unwrap()
        })
        .collect();
    nodes[0]
        .create_tickets(&Actor::cli(), tickets)
        .await
        .unwrap();
    let channels = Channels::new(HttpClient::new(true).unwrap(), clock.clone());
    let mut sent = 0;
    loop {
        let (a, b) = tokio::join!(
            opsdesk_notify::dispatcher::dispatch_once(&nodes[0], &channels),
            opsdesk_notify::dispatcher::dispatch_once(&nodes[1], &channels),
        );
        let n = a.unwrap() + b.unwrap();
        if n == 0 {
            break;
        }
        sent += n;
    }
    assert_eq!(sent, 30, "each notification claimed by exactly one node");
    let keys: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| header(r, "idempotency-key").to_owned())
        .collect();
    let distinct: std::collections::HashSet<&String> = keys.iter().collect();
    assert_eq!((keys.len(), distinct.len()), (30, 30), "{keys:?}");
    let delivered = nodes[1]
        .deliveries(
            &Actor::cli(),
            &OutboxFilter {
                state: Some("delivered".into()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(delivered.len(), 30);
    assert!(delivered.iter().all(|d| d.attempts == 1));
    for node in &nodes {
        node.db().close().await;
    }
    db.drop_schema().await;
}

async fn a_claim_left_by_a_dead_node_is_sent_after_its_lease(backend: Backend) {
    let receiver = Receiver::start().await;
    let db = TestDb::new(backend).await;
    let (settings, clock) = every_event_to_hook(&receiver);
    let desk =
        Desk::new(db.desk().await.db().clone(), clock.clone()).with_notify_settings(settings);
    let t = desk
        .create_ticket(
            &Actor::cli(),
            serde_json::from_value(
                json!({ "title": "Queue backlog", "kind": "incident", "severity": "SEV2" }),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    // A node claims the delivery and dies before sending or recording anything.
    let claimed = desk.claim_deliveries(20).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let channels = Channels::new(HttpClient::new(true).unwrap(), clock.clone());
    // Within the lease nobody else takes it.
    assert_eq!(
        opsdesk_notify::dispatcher::dispatch_once(&desk, &channels)
            .await
            .unwrap(),
        0
    );
    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(
        opsdesk_notify::dispatcher::dispatch_once(&desk, &channels)
            .await
            .unwrap(),
        1
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        header(&got[0], "idempotency-key"),
        format!("OPS-{}-v1-created-hook", t.id),
        "the same key as the lost attempt would have sent"
    );
    let items = desk
        .deliveries(
            &Actor::cli(),
            &OutboxFilter {
                ticket_id: Some(t.id),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (items[0].state.as_str(), items[0].attempts),
        ("delivered", 2)
    );
    desk.db().close().await;
    db.drop_schema().await;
}

async fn webhook_urls_are_shown_masked_and_delivered_whole(backend: Backend) {
    let receiver = Receiver::start().await;
    let host = receiver.base.trim_start_matches("http://").to_owned();
    // A Slack-like URL: the secret is in the path, and here in the user info and query too.
    let url = format!(
        "http://hook-user:userinfo-secret@{host}/services/T000/B000/PATHSECRET?token=querysecret"
    );
    let secrets = [
        "userinfo-secret",
        "hook-user",
        "PATHSECRET",
        "querysecret",
        "T000",
    ];
    let masked = format!("http://{host}/***");
    let s = TestServer::start_with(backend, |config, _| {
        config.notify.allow_private_addresses = true;
    })
    .await;
    let assert_masked = |what: &str, text: &str| {
        for secret in secrets {
            assert!(!text.contains(secret), "{what} shows {secret:?}: {text}");
        }
    };

    let admin = |method: Method, path: &'static str, body: Option<Value>| {
        s.call(method, path, Some(&s.admin), body)
    };
    let r = admin(
        Method::POST,
        "/api/v1/channels",
        Some(json!({ "name": "slack", "type": "webhook", "format": "slack", "url": url })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["url"], masked.as_str());
    assert_masked("the saved channel", &r.body.to_string());

    let r = admin(Method::GET, "/api/v1/channels", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_masked("the channel list", &r.body.to_string());
    let listed = r.body.as_array().unwrap();
    let slack = listed.iter().find(|c| c["name"] == "slack").unwrap();
    assert_eq!(slack["url"], masked.as_str());

    // The audit entry, which can never be removed, shows the URL masked.
    let trail = s.audit_trail().await;
    assert_masked("the audit trail", &Value::from(trail.clone()).to_string());
    let saved = trail
        .iter()
        .find(|e| e["action"] == "channel.saved")
        .unwrap();
    assert_eq!(saved["changes"]["channel"]["after"]["url"], masked.as_str());

    // The channel still delivers to its whole URL.
    let r = admin(
        Method::POST,
        "/api/v1/routing-rules",
        Some(json!({ "name": "sev1", "events": ["created"], "severities": ["SEV1"], "channels": ["slack"] })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let t = s
        .ticket(json!({ "title": "Checkout down", "kind": "incident", "severity": "SEV1" }))
        .await;
    let id = t["id"].as_i64().unwrap();
    let items = deliveries_until(&s, id, |items| {
        state_of(items, "slack") == Some("delivered")
    })
    .await;
    assert_masked("the deliveries", &Value::from(items).to_string());
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].path,
        "/services/T000/B000/PATHSECRET?token=querysecret"
    );
    let history = s.get(&format!("/api/v1/tickets/{id}/history")).await.body;
    assert_masked("the ticket's history", &history.to_string());
    s.stop().await;
}
