//! Notification channels against real receivers: an HTTP server that checks signatures as a
//! receiver would, an SMTP server (aiosmtpd) whose saved mail Python's email package parses,
//! and moto's SNS delivering to an SQS queue. Channels need no database, so these run once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use opsdesk_aws::sns::SnsPublisher;
use opsdesk_core::FixedClock;
use opsdesk_domain::channel::{ChannelSpec, Notification, NotificationEvent};
use opsdesk_domain::{Environment, Severity};
use opsdesk_notify::{email, Channels, HttpClient, SendError, SmtpSettings, SmtpTls};
use serde_json::{json, Value};

use crate::peers::{free_port, Moto, Smtp};

pub(crate) const SECRET: &str = "whsec-test-0123456789abcdef";

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}

fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::new(at()))
}

fn notification() -> Notification {
    Notification {
        event: NotificationEvent::Created,
        ticket_id: Some(12),
        ticket_key: Some("OPS-12".into()),
        title: "Zahlungen schlagen fehl <b>bold</b> & more".into(),
        severity: Some(Severity::Sev1),
        status: Some("new".into()),
        workload: Some("checkout".into()),
        environment: Some(Environment::Production),
        team: None,
        summary: "Error rate above 5% since 10:00.\nCustomers cannot pay.".into(),
        url: Some("https://desk.example.com/tickets/12".into()),
        at: at(),
        recipients: Vec::new(),
        report: None,
    }
}

fn spec(json: Value) -> ChannelSpec {
    serde_json::from_value::<ChannelSpec>(json)
        .unwrap()
        .validate()
        .unwrap()
}

fn channels(allow_private: bool) -> Channels {
    Channels::new(HttpClient::new(allow_private).unwrap(), clock())
}

/// One request the receiver took.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A webhook receiver on 127.0.0.1. `/hook` checks `X-Opsdesk-Signature` with [`SECRET`] as
/// the module docs of opsdesk_domain::channel::webhook tell receivers to (401 when it does not match)
/// and requires an `Idempotency-Key`; `/status/<code>` answers `<code>`; `/plain` takes
/// anything; `/services/...` (a Slack-like URL whose path is its secret) takes anything and is
/// recorded with its query. Every request is recorded.
pub(crate) struct Receiver {
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let record = |received: &Arc<Mutex<Vec<Received>>>, path: String, headers, body| {
            received.lock().unwrap().push(Received {
                path,
                headers,
                body,
            })
        };
        let app = axum::Router::new()
            .route(
                "/hook",
                post(
                    move |State(r): State<Arc<Mutex<Vec<Received>>>>,
                          headers: HeaderMap,
                          body: Bytes| async move {
                        record(&r, "/hook".into(), headers.clone(), body.clone());
                        if headers.get("idempotency-key").is_none() {
                            return (StatusCode::BAD_REQUEST, "no Idempotency-Key");
                        }
                        if !signature_matches(&headers, &body) {
                            return (StatusCode::UNAUTHORIZED, "bad signature");
                        }
                        (StatusCode::OK, "ok")
                    },
                ),
            )
            .route(
                "/status/{code}",
                post(
                    move |State(r): State<Arc<Mutex<Vec<Received>>>>,
                          Path(code): Path<u16>,
                          headers: HeaderMap,
                          body: Bytes| async move {
                        record(&r, format!("/status/{code}"), headers, body);
                        let status = StatusCode::from_u16(code).unwrap();
                        let mut reply = HeaderMap::new();
                        if code == 429 {
                            reply.insert("retry-after", "7".parse().unwrap());
                        }
                        (status, reply, format!("answered {code}\nby the test"))
                    },
                ),
            )
            .route(
                "/plain",
                post(
                    move |State(r): State<Arc<Mutex<Vec<Received>>>>,
                          headers: HeaderMap,
                          body: Bytes| async move {
                        record(&r, "/plain".into(), headers, body);
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .route(
                "/services/{*rest}",
                post(
                    move |State(r): State<Arc<Mutex<Vec<Received>>>>,
                          uri: axum::http::Uri,
                          headers: HeaderMap,
                          body: Bytes| async move {
                        let path = uri
                            .path_and_query()
                            .map(|p| p.as_str().to_owned())
                            .unwrap_or_default();
                        record(&r, path, headers, body);
                        StatusCode::OK
                    },
                ),
            )
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { base, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// The receiver's side of the signature: recomputed from the raw body, compared in constant
/// time by the hmac crate.
pub(crate) fn signature_matches(headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(header) = headers
        .get("x-opsdesk-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(expected) = hex::decode(v1) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

pub(crate) fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn webhook_delivers_signed_json_with_an_idempotency_key() {
    let receiver = Receiver::start().await;
    let hook = spec(json!({
        "name": "receiver", "type": "webhook",
        "url": format!("{}/hook", receiver.base),
        "secret": SECRET,
        "headers": { "Authorization": "Bearer receiver-token" },
    }));
    let channels = channels(true);
    let n = notification();

    let receipt = channels.send(&hook, &n, "outbox-41").await.unwrap();
    assert_eq!(receipt.detail, "HTTP 200");
    // The same delivery tried again carries the same key, so the receiver can drop it.
    channels.send(&hook, &n, "outbox-41").await.unwrap();

    let got = receiver.received();
    assert_eq!(got.len(), 2);
    let first = &got[0];
    assert_eq!(header(first, "idempotency-key"), "outbox-41");
    assert_eq!(header(&got[1], "idempotency-key"), "outbox-41");
    assert_eq!(header(first, "x-opsdesk-event"), "created");
    assert_eq!(header(first, "content-type"), "application/json");
    assert_eq!(header(first, "authorization"), "Bearer receiver-token");
    // The signing time is the clock's.
    assert!(
        header(first, "x-opsdesk-signature").starts_with(&format!("t={},v1=", at().timestamp())),
        "{}",
        header(first, "x-opsdesk-signature")
    );
    let body: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(body["delivery_id"], "outbox-41");
    assert_eq!(body["event"], "created");
    assert_eq!(body["ticket_key"], "OPS-12");
    assert_eq!(body["severity"], "SEV1");
    assert_eq!(body["environment"], "production");
    assert_eq!(body["title"], n.title.as_str());
    assert_eq!(body["at"], "2026-11-23T10:00:00Z");

    // A channel with another secret signs differently: the receiver refuses, and that
    // refusal will not change on a retry.
    let forged = spec(json!({
        "name": "forged", "type": "webhook",
        "url": format!("{}/hook", receiver.base),
        "secret": "another-secret-0123456789",
    }));
    let err = channels.send(&forged, &n, "outbox-42").await.unwrap_err();
    assert!(!err.retryable, "{err:?}");
    assert!(err.message.contains("HTTP 401"), "{err:?}");
    assert!(err.message.contains("bad signature"), "{err:?}");
}

#[tokio::test]
async fn slack_and_teams_formats_reach_the_receiver() {
    let receiver = Receiver::start().await;
    let channels = channels(true);
    let n = notification();
    for format in ["slack", "teams"] {
        let hook = spec(json!({
            "name": format, "type": "webhook", "format": format,
            "url": format!("{}/plain", receiver.base),
        }));
        let receipt = channels.send(&hook, &n, format).await.unwrap();
        assert_eq!(receipt.detail, "HTTP 204");
    }
    let got = receiver.received();
    assert!(got.iter().all(|r| r.path == "/plain"));
    let slack: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert!(slack["text"].as_str().unwrap().starts_with("[SEV1] OPS-12"));
    assert_eq!(slack["blocks"][0]["type"], "header");
    let teams: Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(teams["type"], "message");
    assert_eq!(
        teams["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(teams["attachments"][0]["content"]["type"], "AdaptiveCard");
    // No secret, no signature; the key and event are always there.
    assert!(got[0].headers.get("x-opsdesk-signature").is_none());
    assert_eq!(header(&got[1], "idempotency-key"), "teams");
}

#[tokio::test]
async fn webhook_failures_say_whether_a_retry_may_help() {
    let receiver = Receiver::start().await;
    let channels = channels(true);
    let n = notification();
    let send = |url: String| {
        let channels = channels.clone();
        let n = n.clone();
        async move {
            let hook = spec(json!({ "name": "h", "type": "webhook", "url": url }));
            channels.send(&hook, &n, "k").await.unwrap_err()
        }
    };
    let status = |code: u16| send(format!("{}/status/{code}", receiver.base));

    let err = status(500).await;
    assert!(err.retryable, "{err:?}");
    assert!(
        err.message
            .contains("HTTP 500 Internal Server Error: answered 500 by the test"),
        "{err:?}"
    );
    assert!(status(503).await.retryable);
    assert!(status(408).await.retryable);
    let busy = status(429).await;
    assert!(busy.retryable);
    assert_eq!(busy.retry_after, Some(Duration::from_secs(7)));

    let err = status(404).await;
    assert!(!err.retryable, "{err:?}");
    assert!(err.message.contains("HTTP 404"), "{err:?}");
    assert!(!status(400).await.retryable);
    assert!(!status(410).await.retryable);
    // Redirects are not followed, and following them later would not help.
    assert!(!status(302).await.retryable);

    // Nothing listens: the network may be back later.
    let err = send(format!("http://127.0.0.1:{}/hook", free_port())).await;
    assert!(err.retryable, "{err:?}");
    assert!(err.message.contains("cannot connect"), "{err:?}");
    // Only scheme, host and port are told: a webhook's path may hold its token.
    assert!(!err.message.contains("/hook"), "{err:?}");
}

#[tokio::test]
async fn the_default_client_refuses_private_addresses() {
    let receiver = Receiver::start().await;
    let guarded = channels(false);
    let n = notification();
    let port = receiver.base.rsplit(':').next().unwrap().to_owned();

    let literal = spec(json!({
        "name": "h", "type": "webhook", "url": format!("{}/plain", receiver.base),
    }));
    let err = guarded.send(&literal, &n, "k").await.unwrap_err();
    assert_eq!(
        err,
        SendError {
            message: "refused: 127.0.0.1 resolves to a private address \
                      (set notify.allow_private_addresses to allow)"
                .into(),
            retryable: false,
            retry_after: None,
        }
    );
    // A name is checked where it is resolved.
    let by_name = spec(json!({
        "name": "h", "type": "webhook", "url": format!("http://localhost:{port}/plain"),
    }));
    let err = guarded.send(&by_name, &n, "k").await.unwrap_err();
    assert!(!err.retryable);
    assert!(
        err.message
            .starts_with("refused: localhost resolves to a private address"),
        "{err:?}"
    );
    let metadata = spec(json!({
        "name": "h", "type": "webhook", "url": "http://169.254.169.254/latest/meta-data/",
    }));
    let err = guarded.send(&metadata, &n, "k").await.unwrap_err();
    assert!(
        err.message.starts_with("refused: 169.254.169.254"),
        "{err:?}"
    );
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );

    // The same receiver, allowed.
    channels(true).send(&literal, &n, "k").await.unwrap();
    assert_eq!(receiver.received().len(), 1);
}

fn smtp_settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "opsdesk <opsdesk@example.com>".into(),
    }
}

#[tokio::test]
async fn email_goes_out_as_text_and_html_with_a_stable_message_id() {
    let smtp = Smtp::start().await;
    let channels = channels(false)
        .with_smtp(&smtp_settings(smtp.port), clock())
        .unwrap();
    let mail = spec(json!({
        "name": "oncall", "type": "email",
        "to": ["oncall@example.com", "lead@example.com"],
        "cc": ["audit@example.com"],
    }));
    let n = notification();

    let receipt = channels
        .send(&mail, &n, "outbox:7:oncall")
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", smtp.log()));
    assert!(
        receipt.detail.starts_with("SMTP 250 OK saved as 0001"),
        "{receipt:?}"
    );
    channels.send(&mail, &n, "outbox:7:oncall").await.unwrap();
    channels.send(&mail, &n, "outbox:8:oncall").await.unwrap();

    let messages = smtp.messages();
    assert_eq!(messages.len(), 3);
    let m = &messages[0];
    assert_eq!(m["mail_from"], "opsdesk@example.com");
    assert_eq!(
        m["rcpt_tos"],
        json!([
            "oncall@example.com",
            "lead@example.com",
            "audit@example.com"
        ])
    );
    assert_eq!(m["from"], json!(["opsdesk@example.com"]));
    assert_eq!(m["to"], json!(["oncall@example.com", "lead@example.com"]));
    assert_eq!(m["cc"], json!(["audit@example.com"]));
    // Decoded by Python from its RFC 2047 form: the non-ASCII title survives.
    assert_eq!(
        m["subject"],
        "[SEV1] OPS-12 Zahlungen schlagen fehl <b>bold</b> & more (created)"
    );
    assert_eq!(m["subject"], n.subject().as_str());
    assert_eq!(m["auto_submitted"], "auto-generated");
    assert_eq!(m["content_type"], "multipart/alternative");
    // Lines travel as CRLF.
    let text = m["parts"]["text/plain"]
        .as_str()
        .unwrap()
        .replace("\r\n", "\n");
    assert!(
        text.contains("Error rate above 5% since 10:00.\nCustomers cannot pay."),
        "{text}"
    );
    assert!(text.contains("Link:"), "{text}");
    assert!(
        text.contains("https://desk.example.com/tickets/12"),
        "{text}"
    );
    let html = m["parts"]["text/html"]
        .as_str()
        .unwrap()
        .replace("\r\n", "\n");
    assert!(
        html.contains("Zahlungen schlagen fehl &lt;b&gt;bold&lt;/b&gt; &amp; more"),
        "{html}"
    );
    assert!(!html.contains("<b>bold</b>"), "{html}");
    assert!(html.contains("<a href=\"https://desk.example.com/tickets/12\">Open OPS-12</a>"));

    // The Message-ID follows the idempotency key: a repeat is recognisable, another
    // delivery is not taken for one.
    let from = "opsdesk@example.com".parse().unwrap();
    assert_eq!(
        m["message_id"],
        email::message_id("outbox:7:oncall", &from).as_str()
    );
    assert_eq!(messages[1]["message_id"], m["message_id"]);
    assert_ne!(messages[2]["message_id"], m["message_id"]);
}

#[tokio::test]
async fn email_failures_say_whether_a_retry_may_help() {
    let n = notification();
    let mail = spec(json!({ "name": "m", "type": "email", "to": ["oncall@example.com"] }));

    // No SMTP server listening: it may be back later.
    let down = channels(false)
        .with_smtp(&smtp_settings(free_port()), clock())
        .unwrap();
    let err = down.send(&mail, &n, "k").await.unwrap_err();
    assert!(err.retryable, "{err:?}");
    assert!(err.message.starts_with("SMTP: "), "{err:?}");

    // No [notify.smtp] at all: that does not change by waiting.
    let err = channels(false).send(&mail, &n, "k").await.unwrap_err();
    assert!(!err.retryable);
    assert_eq!(
        err.message,
        "email is not configured: set [notify.smtp] to send email"
    );
}

#[tokio::test]
async fn sns_publishes_subject_text_and_filterable_attributes() {
    let moto = Moto::start().await;
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (topic, queue_url) = moto
        .topic_into_queue("opsdesk-notifications", "pager")
        .await;

    let channels = channels(false).with_sns(SnsPublisher::new(&sdk));
    let channel = spec(json!({ "name": "ops-sns", "type": "sns", "topic_arn": topic }));
    let mut n = notification();
    // Longer than SNS takes, and not ASCII: the channel makes it fit.
    n.title = format!("Zahlungsdienst fällt aus — {}", "sehr ".repeat(30));
    let receipt = channels.send(&channel, &n, "k").await.unwrap();
    assert!(receipt.detail.starts_with("SNS message id "), "{receipt:?}");

    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(received.len(), 1);
    let envelope: Value = serde_json::from_str(received[0].body().unwrap()).unwrap();
    assert_eq!(envelope["Type"], "Notification");
    assert_eq!(envelope["TopicArn"], topic.as_str());
    assert_eq!(
        receipt.detail,
        format!("SNS message id {}", envelope["MessageId"].as_str().unwrap())
    );
    let subject = envelope["Subject"].as_str().unwrap();
    assert_eq!(subject, n.sns_subject());
    assert!(
        subject.starts_with("[SEV1] OPS-12 Zahlungsdienst f?llt aus ? sehr"),
        "{subject}"
    );
    assert!(subject.len() < 100 && subject.is_ascii(), "{subject}");
    assert_eq!(envelope["Message"], n.text().as_str());
    let attributes = &envelope["MessageAttributes"];
    let attribute = |name: &str| attributes[name].clone();
    assert_eq!(
        attribute("severity"),
        json!({ "Type": "String", "Value": "SEV1" })
    );
    assert_eq!(
        attribute("environment"),
        json!({ "Type": "String", "Value": "production" })
    );
    assert_eq!(
        attribute("workload"),
        json!({ "Type": "String", "Value": "checkout" })
    );
    assert_eq!(
        attribute("event"),
        json!({ "Type": "String", "Value": "created" })
    );
    // Unknown values are left out rather than sent empty (SNS refuses empty values).
    assert!(attributes.get("team").is_none(), "{attributes}");

    // A topic that does not exist stays missing: no retry.
    let missing = spec(json!({
        "name": "gone", "type": "sns",
        "topic_arn": topic.replace("opsdesk-notifications", "no-such-topic"),
    }));
    let err = channels.send(&missing, &n, "k").await.unwrap_err();
    assert!(!err.retryable, "{err:?}");
    assert!(
        err.message
            .starts_with("SNS publish failed: HTTP 404 NotFound: "),
        "{err:?}"
    );

    // No SNS configured at all.
    let err = self::channels(false)
        .send(&channel, &n, "k")
        .await
        .unwrap_err();
    assert!(!err.retryable);
}
