//! A SEV1 on a production workload, end to end against the real server: a CloudWatch alarm
//! arrives through EventBridge, opens a SEV1 ticket on the production workload, and within
//! seconds the on-call webhook hears of it, the development team's SNS topic and the AWS
//! account team's mailbox hear of the escalation, and an AWS Support case is open (moto).
//! Resolving the ticket resolves the case.

use std::time::{Duration, Instant};

use opsdesk::config::Config;
use opsdesk_notify::{SmtpSettings, SmtpTls};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::channels::{header, signature_matches, Receiver, SECRET};
use crate::common::{on_both_backends, Backend, TestServer};
use crate::peers::{Moto, Smtp};

on_both_backends!(
    sev1_on_production_reaches_people_and_aws_support,
    escalate_api_answers_with_problems,
);

const ACCOUNT: &str = "123456789012";

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// Polls `probe` every 100 ms until it returns something, for at most 20 seconds.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "waited 20 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn alarm(name: &str) -> Value {
    json!({
        "version": "0",
        "id": format!("cw-{name}-alarm"),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "time": "2026-11-24T10:00:00Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:{name}")],
        "detail": {
            "alarmName": name,
            "configuration": { "description": "Checkout 5xx above 5% for 3 minutes" },
            "previousState": { "value": "OK", "timestamp": "2026-11-24T09:50:00.000+0000", "reason": "ok" },
            "state": { "value": "ALARM", "timestamp": "2026-11-24T10:00:00.000+0000",
                       "reason": "Threshold Crossed: 3 datapoints were greater than the threshold (5.0)." }
        }
    })
}

/// The production setup the README shows: who hears what, and the account's plan.
fn configure(config: &mut Config, receiver: &str, smtp_port: u16, topic_arn: &str) {
    config.notify.allow_private_addresses = true;
    config.notify.first_backoff_seconds = 1;
    config.notify.smtp = Some(SmtpSettings {
        host: "127.0.0.1".into(),
        port: Some(smtp_port),
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "opsdesk <opsdesk@example.com>".into(),
    });
    config.notify.channels = vec![
        from(
            json!({"name": "oncall", "type": "webhook", "url": format!("{receiver}/hook"), "secret": SECRET}),
        ),
        from(json!({"name": "dev-team-sns", "type": "sns", "topic_arn": topic_arn})),
        from(json!({"name": "aws-account-team", "type": "email", "to": ["ops-lead@example.com"]})),
    ];
    config.notify.rules = vec![from(json!({
        "name": "production-emergencies", "events": ["created"],
        "severities": ["SEV1", "SEV2"], "environments": ["production"], "channels": ["oncall"],
    }))];
    config.escalation.aws.notify_channels = vec!["dev-team-sns".into()];
    config.escalation.aws.account_team_channel = Some("aws-account-team".into());
    config.aws.accounts = vec![from(json!({
        "id": ACCOUNT, "name": "shop-prod", "support_plan": "enterprise",
        "account_team_emails": ["tam@example.com"],
    }))];
    config.ingest.rules = vec![from(json!({
        "source": "aws.cloudwatch", "title": "CloudWatch alarm prod-* is ALARM", "severity": "SEV1",
    }))];
}

async fn sev1_on_production_reaches_people_and_aws_support(backend: Backend) {
    let moto = Moto::start().await;
    // The server's SNS publisher and AWS Support client read the SDK's environment.
    std::env::set_var("AWS_ENDPOINT_URL", &moto.endpoint);
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let support = aws_sdk_support::Client::new(&sdk);
    let (topic, queue_url) = moto.topic_into_queue("dev-team", "dev-team-inbox").await;
    let smtp = Smtp::start().await;
    let receiver = Receiver::start().await;

    let s = TestServer::start_with(backend, |config, _| {
        configure(config, &receiver.base, smtp.port, &topic)
    })
    .await
    .with_ingest_token()
    .await;
    let r = s
        .call(
            reqwest::Method::POST,
            "/api/v1/workloads",
            Some(&s.admin),
            Some(
                json!({"name": "checkout", "environment": "production", "team": "payments",
                        "accounts": [ACCOUNT]}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // The alarm, as an EventBridge API destination posts it.
    let r = s
        .http
        .post(s.url("/api/v1/events"))
        .bearer_auth(&s.ingest)
        .json(&alarm("prod-checkout-5xx"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let answer: Value = r.json().await.unwrap();
    let id = answer["tickets"][0].as_i64().unwrap();
    let ticket = s.get(&format!("/api/v1/tickets/{id}")).await.body;
    assert_eq!(ticket["severity"], "SEV1");
    assert_eq!(ticket["workload"], "checkout");
    let key = ticket["key"].as_str().unwrap().to_owned();

    // On call: the signed webhook for the new ticket.
    let hook = eventually("the on-call webhook", || async {
        receiver.received().into_iter().find(|r| r.path == "/hook")
    })
    .await;
    assert!(signature_matches(&hook.headers, &hook.body));
    assert_eq!(header(&hook, "x-opsdesk-event"), "created");
    let body: Value = serde_json::from_slice(&hook.body).unwrap();
    assert_eq!(body["ticket_key"], key.as_str());

    // The AWS Support case, opened at critical (Enterprise allows it) in the account, with the
    // account team copied.
    let case = eventually("the AWS case to open", || async {
        let r = s.get(&format!("/api/v1/tickets/{id}/escalation")).await;
        let case = r.body["aws_case"].clone();
        (case["state"] == "opened").then_some(case)
    })
    .await;
    assert_eq!(case["account_id"], ACCOUNT);
    assert_eq!(case["severity"], "critical");
    let case_id = case["case_id"].as_str().unwrap().to_owned();
    let cases = support
        .describe_cases()
        .case_id_list(&case_id)
        .include_resolved_cases(true)
        .send()
        .await
        .unwrap();
    let aws_case = &cases.cases()[0];
    // moto moves a case's severity one step on every DescribeCases (the case worker has read
    // it back already), so the severity sent is checked on opsdesk's record above.
    assert_eq!(aws_case.cc_email_addresses(), ["tam@example.com"]);
    assert!(
        aws_case
            .subject()
            .unwrap()
            .starts_with(&format!("[{key}][SEV1] CloudWatch alarm prod-checkout-5xx")),
        "{:?}",
        aws_case.subject()
    );

    // The development team's topic, in the same step: an `escalated` message they can filter.
    let message = eventually("the SNS message", || async {
        sqs.receive_message()
            .queue_url(&queue_url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
            .into_iter()
            .next()
    })
    .await;
    let envelope: Value = serde_json::from_str(message.body().unwrap()).unwrap();
    assert_eq!(
        envelope["MessageAttributes"]["event"],
        json!({"Type": "String", "Value": "escalated"})
    );
    assert_eq!(
        envelope["MessageAttributes"]["environment"],
        json!({"Type": "String", "Value": "production"})
    );
    assert!(envelope["Subject"].as_str().unwrap().contains(&key));

    // The AWS account team's mailbox, with the channel's own address.
    let mail = eventually("the account team's email", || async {
        smtp.messages().into_iter().next()
    })
    .await;
    assert_eq!(
        mail["rcpt_tos"],
        json!(["ops-lead@example.com", "tam@example.com"]),
        "{}",
        smtp.log()
    );
    assert!(mail["subject"].as_str().unwrap().contains(&key), "{mail}");

    // The timeline tells the story.
    let history = s.get(&format!("/api/v1/tickets/{id}/history")).await.body;
    let actions: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "ticket.created",
        "ticket.escalated",
        "ticket.aws_case_opened",
    ] {
        assert!(actions.contains(&expected), "{expected} not in {actions:?}");
    }
    let delivered = eventually("three deliveries", || async {
        let items = s
            .get(&format!("/api/v1/tickets/{id}/deliveries"))
            .await
            .body;
        let items = items.as_array().unwrap().clone();
        (items.len() == 3 && items.iter().all(|i| i["state"] == "delivered")).then_some(items)
    })
    .await;
    let mut channels: Vec<&str> = delivered
        .iter()
        .map(|i| i["channel"].as_str().unwrap())
        .collect();
    channels.sort();
    assert_eq!(channels, ["aws-account-team", "dev-team-sns", "oncall"]);

    // Resolving the ticket resolves the case.
    let r = s
        .patch(
            &format!("/api/v1/tickets/{id}"),
            None,
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    eventually("the AWS case to be resolved", || async {
        let r = s.get(&format!("/api/v1/tickets/{id}/escalation")).await;
        (r.body["aws_case"]["state"] == "resolved").then_some(())
    })
    .await;
    let cases = support
        .describe_cases()
        .case_id_list(&case_id)
        .include_resolved_cases(true)
        .send()
        .await
        .unwrap();
    assert!(!cases.cases().is_empty());
    let history = s.get(&format!("/api/v1/tickets/{id}/history")).await.body;
    assert!(history
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "ticket.aws_case_resolved"));
    s.stop().await;
}

async fn escalate_api_answers_with_problems(backend: Backend) {
    let s = TestServer::start_with(backend, |config, _| {
        config.aws.accounts = vec![
            from(json!({"id": "111111111111", "name": "a", "support_plan": "business"})),
            from(json!({"id": "222222222222", "name": "b", "support_plan": "basic"})),
        ];
    })
    .await;
    let t = s
        .ticket(json!({"title": "Quota question", "kind": "question", "severity": "SEV4"}))
        .await;
    let id = t["id"].as_i64().unwrap();
    let path = format!("/api/v1/tickets/{id}/escalate");

    // Two accounts, none named: the field is named.
    s.post(&path, json!({"to": "aws"}))
        .await
        .assert_problem(422, Some("account"));
    s.post(&path, json!({"to": "next"}))
        .await
        .assert_problem(409, None);
    s.post(&path, json!({"to": "sideways"}))
        .await
        .assert_problem(422, None);
    let r = s
        .call(
            reqwest::Method::POST,
            &path,
            Some(&s.viewer),
            Some(json!({"to": "aws"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Basic plan: no case, and the answer says why.
    let r = s
        .post(
            &path,
            json!({"to": "aws", "account": "222222222222", "reason": "quota"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["aws_case"]["state"], "unavailable");
    assert!(r.body["aws_case"]["detail"]
        .as_str()
        .unwrap()
        .contains("Basic plan has no technical cases"));
    assert_eq!(
        r.body["ticket"]["version"],
        t["version"].as_i64().unwrap() + 1
    );
    let r = s.get(&format!("/api/v1/tickets/{id}/escalation")).await;
    assert_eq!(r.body["aws_case"]["state"], "unavailable");
    s.stop().await;
}
