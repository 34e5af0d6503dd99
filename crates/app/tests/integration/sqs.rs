//! Signals in through an SQS queue, with moto standing in for SQS, EventBridge and SNS: the
//! server's consumer (`[[ingest.sqs]]`) reads what an EventBridge rule and an SNS topic put
//! on the queue, deletes it once committed, and leaves what it cannot read to the queue's
//! dead-letter queue.
//!
//! What moto 5.2 does, as found: PutEvents accepts `aws.*` sources (AWS refuses them from
//! callers) and routes them through rules like any other event, so the AWS Health event below
//! takes the path a real one takes from EventBridge on. moto's envelope lacks `account`; the
//! Health `detail` names `affectedAccount`, as AWS's does. SNS wraps messages for SQS
//! subscribers (raw delivery off) in the usual JSON envelope.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use opsdesk_aws::sqs::SqsConfig;
use serde_json::{json, Value};

use crate::common::{on_both_backends, Backend, TestServer};
use crate::peers::{queue_arn, Moto};
use crate::signals::{health_event, ACCOUNT};

on_both_backends!(
    health_event_through_eventbridge_opens_one_ticket_once,
    unreadable_message_is_left_for_the_dead_letter_queue,
    cloudwatch_alarm_through_sns_opens_and_resolves_a_ticket,
    ses_mail_through_sns_into_the_queue_becomes_a_request_once,
);

/// How long the consumer may take to get a message through.
const PATIENCE: Duration = Duration::from_secs(30);

/// Waits until `check` gives a value, polling; panics naming `what` after [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// moto, with SDK clients for it, and a queue with a dead-letter queue.
struct Aws {
    moto: Moto,
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    sns: aws_sdk_sns::Client,
    queue_url: String,
    queue_arn: String,
    dlq_url: String,
}

impl Aws {
    async fn start() -> Aws {
        // The consumer takes credentials from the SDK's standard chain; moto accepts any.
        // Set before any SDK client loads them, to the same values in every test.
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        let moto = Moto::start().await;
        let sdk = moto.sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let dlq_url = sqs
            .create_queue()
            .queue_name("opsdesk-events-dlq")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let dlq_arn = queue_arn(&sqs, &dlq_url).await;
        // What a deployment sets: a redrive policy, a policy letting EventBridge and SNS
        // send, and here a short visibility timeout so that a refused message comes back soon.
        let redrive = json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2" });
        let queue_url = sqs
            .create_queue()
            .queue_name("opsdesk-events")
            .attributes(QueueAttributeName::VisibilityTimeout, "1")
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let queue_arn = queue_arn(&sqs, &queue_url).await;
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "Service": ["events.amazonaws.com", "sns.amazonaws.com"] },
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            }],
        });
        sqs.set_queue_attributes()
            .queue_url(&queue_url)
            .attributes(QueueAttributeName::Policy, policy.to_string())
            .send()
            .await
            .unwrap();
        Aws {
            events: aws_sdk_eventbridge::Client::new(&sdk),
            sns: aws_sdk_sns::Client::new(&sdk),
            sqs,
            moto,
            queue_arn,
            queue_url,
            dlq_url,
        }
    }

    /// A server consuming the queue.
    async fn server(&self, backend: Backend) -> TestServer {
        self.server_with(backend, |_| {}).await
    }

    /// A server consuming the queue, configured further by `more`.
    async fn server_with(
        &self,
        backend: Backend,
        more: impl FnOnce(&mut opsdesk::config::Config),
    ) -> TestServer {
        let mut sqs = SqsConfig::new(&self.queue_url);
        sqs.endpoint_url = Some(self.moto.endpoint.clone());
        sqs.region = Some("us-east-1".into());
        TestServer::start_with(backend, move |config, _| {
            config.ingest.sqs.push(sqs);
            more(config);
        })
        .await
    }

    /// Messages on a queue: visible, and received but not yet deleted.
    async fn messages(&self, url: &str) -> (u64, u64) {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        let n = |name| attrs[&name].parse::<u64>().unwrap();
        (
            n(QueueAttributeName::ApproximateNumberOfMessages),
            n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Waits until the consumer has deleted everything on the queue.
    async fn drained(&self) {
        eventually("the queue to be drained", || async {
            (self.messages(&self.queue_url).await == (0, 0)).then_some(())
        })
        .await;
    }

    /// Puts an event on the default bus, as AWS Health does.
    async fn put_event(&self, event: &Value) {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source(event["source"].as_str().unwrap())
            .detail_type(event["detail-type"].as_str().unwrap())
            .detail(event["detail"].to_string())
            .resources(event["resources"][0].as_str().unwrap())
            .build();
        let out = self
            .events
            .put_events()
            .entries(entry)
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_entry_count, 0, "{out:?}");
    }
}

/// The tickets of one source, newest first.
async fn tickets(s: &TestServer, source: &str) -> Vec<Value> {
    let r = s.get(&format!("/api/v1/tickets?source={source}")).await;
    assert_eq!(r.status, reqwest::StatusCode::OK, "{}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

/// The one ticket of `source`, once there is one.
async fn one_ticket(s: &TestServer, source: &str) -> Value {
    let found = eventually(&format!("a ticket from {source}"), || async {
        let t = tickets(s, source).await;
        (!t.is_empty()).then_some(t)
    })
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

async fn health_event_through_eventbridge_opens_one_ticket_once(backend: Backend) {
    let aws = Aws::start().await;
    let rule = json!({ "source": ["aws.health"], "detail-type": ["AWS Health Event"] });
    aws.events
        .put_rule()
        .name("opsdesk-health")
        .event_pattern(rule.to_string())
        .send()
        .await
        .unwrap();
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("opsdesk")
        .arn(&aws.queue_arn)
        .build()
        .unwrap();
    aws.events
        .put_targets()
        .rule("opsdesk-health")
        .targets(target)
        .send()
        .await
        .unwrap();
    let s = aws.server(backend).await;

    let open = health_event(
        "a1",
        "open",
        "Mon, 23 Nov 2026 07:00:00 GMT",
        "We are investigating increased API error rates in eu-west-1.",
    );
    aws.put_event(&open).await;
    let ticket = one_ticket(&s, "aws.health").await;
    assert_eq!(ticket["title"], "AWS Health: EC2 operational issue");
    aws.drained().await;
    let id = ticket["id"].as_i64().unwrap();

    // EventBridge delivers at least once: the same event again changes nothing.
    aws.put_event(&open).await;
    aws.drained().await;
    assert_eq!(tickets(&s, "aws.health").await.len(), 1);
    let tracked = s.problems(id).await;
    assert_eq!(tracked["problems"][0]["occurrences"], 1, "{tracked}");
    assert_eq!(tracked["signals"].as_array().unwrap().len(), 1, "{tracked}");

    let closed = health_event(
        "a2",
        "closed",
        "Mon, 23 Nov 2026 09:30:00 GMT",
        "The issue has been resolved and the service is operating normally.",
    );
    aws.put_event(&closed).await;
    eventually("the Health ticket to be resolved", || async {
        (s.ticket_by_id(id).await["status"] == "resolved").then_some(())
    })
    .await;
    aws.drained().await;
    assert_eq!(aws.messages(&aws.dlq_url).await, (0, 0));

    s.stop().await;
}

async fn unreadable_message_is_left_for_the_dead_letter_queue(backend: Backend) {
    let aws = Aws::start().await;
    let s = aws.server(backend).await;
    for body in [
        "not json".to_owned(),
        health_event(
            "b1",
            "open",
            "Mon, 23 Nov 2026 07:00:00 GMT",
            "Increased error rates.",
        )
        .to_string(),
    ] {
        aws.sqs
            .send_message()
            .queue_url(&aws.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    // The readable message is ingested and deleted whatever batch it came in.
    one_ticket(&s, "aws.health").await;
    // The other is received and refused until the redrive policy moves it, after its second
    // receive: had the consumer deleted it, it would never get there.
    eventually("the message in the dead-letter queue", || async {
        (aws.messages(&aws.dlq_url).await.0 == 1).then_some(())
    })
    .await;
    aws.drained().await;
    let dead = aws
        .sqs
        .receive_message()
        .queue_url(&aws.dlq_url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(dead[0].body(), Some("not json"));
    assert_eq!(s.count_tickets().await, 1);

    let metrics = s.page(&s.http, "/metrics").await;
    let counted = |name: &str, labels: &[&str]| {
        metrics
            .lines()
            .any(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
    };
    assert!(
        counted(
            "opsdesk_ingest_refused_total",
            &[r#"input="sqs""#, r#"reason="malformed""#]
        ),
        "{metrics}"
    );
    for result in ["refused", "ingested"] {
        let result = format!(r#"result="{result}""#);
        assert!(
            counted(
                "opsdesk_sqs_messages_total",
                &[r#"queue="opsdesk-events""#, &result]
            ),
            "{metrics}"
        );
    }
    s.stop().await;
}

/// The alarm notification CloudWatch publishes to an SNS topic.
fn alarm_notification(state: &str, old: &str, at: &str, reason: &str) -> String {
    json!({
        "AlarmName": "api-5xx",
        "AlarmDescription": "5xx above 1% for 5 minutes",
        "AWSAccountId": ACCOUNT,
        "AlarmConfigurationUpdatedTimestamp": "2026-11-01T08:00:00.000+0000",
        "NewStateValue": state,
        "NewStateReason": reason,
        "StateChangeTime": at,
        "Region": "EU (Ireland)",
        "AlarmArn": format!("arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:api-5xx"),
        "OldStateValue": old,
        "OKActions": [],
        "AlarmActions": [format!("arn:aws:sns:eu-west-1:{ACCOUNT}:opsdesk-alarms")],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": "HTTPCode_Target_5XX_Count",
            "Namespace": "AWS/ApplicationELB",
            "StatisticType": "Statistic",
            "Statistic": "SUM",
            "Unit": null,
            "Dimensions": [{ "value": "app/api/50dc6c495c0c9188", "name": "LoadBalancer" }],
            "Period": 60,
            "EvaluationPeriods": 5,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 1.0,
            "TreatMissingData": "missing",
            "EvaluateLowSampleCountPercentile": ""
        }
    })
    .to_string()
}

async fn cloudwatch_alarm_through_sns_opens_and_resolves_a_ticket(backend: Backend) {
    let aws = Aws::start().await;
    let topic = aws
        .sns
        .create_topic()
        .name("opsdesk-alarms")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    aws.sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&aws.queue_arn)
        .send()
        .await
        .unwrap();
    let s = aws.server(backend).await;
    let publish = |message: String, subject: &'static str| {
        let publish = aws
            .sns
            .publish()
            .topic_arn(&topic)
            .subject(subject)
            .message(message);
        async move { publish.send().await.unwrap() }
    };

    publish(
        alarm_notification(
            "ALARM",
            "OK",
            "2026-11-23T10:00:00.000+0000",
            "Threshold Crossed: 1 datapoint [3.2] was greater than the threshold (1.0).",
        ),
        "ALARM: \"api-5xx\" in EU (Ireland)",
    )
    .await;
    let ticket = one_ticket(&s, "aws.cloudwatch").await;
    assert_eq!(ticket["title"], "CloudWatch alarm api-5xx is ALARM");
    assert_ne!(ticket["status"], "resolved");
    let id = ticket["id"].as_i64().unwrap();

    publish(
        alarm_notification(
            "OK",
            "ALARM",
            "2026-11-23T10:20:00.000+0000",
            "Threshold Crossed: 1 datapoint [0.1] was not greater than the threshold (1.0).",
        ),
        "OK: \"api-5xx\" in EU (Ireland)",
    )
    .await;
    eventually("the alarm ticket to be resolved", || async {
        (s.ticket_by_id(id).await["status"] == "resolved").then_some(())
    })
    .await;
    aws.drained().await;
    assert_eq!(tickets(&s, "aws.cloudwatch").await.len(), 1);
    s.stop().await;
}

/// An SES receipt rule's SNS action publishes to a topic; the topic delivers to the queue
/// opsdesk reads (no HTTPS endpoint needed). The message becomes a request once, however often
/// it is delivered.
async fn ses_mail_through_sns_into_the_queue_becomes_a_request_once(backend: Backend) {
    let aws = Aws::start().await;
    let topic = aws
        .sns
        .create_topic()
        .name("opsdesk-mail")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    aws.sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&aws.queue_arn)
        .send()
        .await
        .unwrap();
    let listed = topic.clone();
    let s = aws
        .server_with(backend, move |c| {
            c.email.ses_topics = vec![listed];
            c.email.ses_create_requesters = true;
        })
        .await;
    let raw = "From: Ann <ann@example.com>\r\nTo: support@desk.example.com\r\nSubject: Shared drive is read-only\r\nMessage-ID: <q1@example.com>\r\n\r\nSince the upgrade.\r\n";
    let receipt = json!({
        "notificationType": "Received",
        "mail": {"timestamp": "2026-12-07T10:00:00.000Z", "source": "ann@example.com",
                 "messageId": "ses-q1", "destination": ["support@desk.example.com"]},
        "receipt": {"spamVerdict": {"status": "PASS"}, "virusVerdict": {"status": "PASS"},
                    "spfVerdict": {"status": "PASS"}, "dkimVerdict": {"status": "PASS"},
                    "dmarcVerdict": {"status": "PASS"},
                    "action": {"type": "SNS", "topicArn": topic, "encoding": "UTF8"}},
        "content": raw
    });
    for _ in 0..2 {
        aws.sns
            .publish()
            .topic_arn(&topic)
            .message(receipt.to_string())
            .send()
            .await
            .unwrap();
    }
    let id = eventually("the message in the mail log", || async {
        let log = s.get("/api/v1/mail?direction=in").await.body;
        log.as_array()
            .unwrap()
            .iter()
            .find(|m| m["message_id"] == "q1@example.com" && m["outcome"] == "ticket")
            .and_then(|m| m["ticket_id"].as_i64())
    })
    .await;
    let t = s.get(&format!("/api/v1/tickets/{id}")).await.body;
    assert_eq!(t["title"], "Shared drive is read-only");
    assert_eq!(t["requester"], "ann@example.com");
    aws.drained().await;
    // Both deliveries were taken off the queue; one request came of them.
    let log = s.get("/api/v1/mail?direction=in").await.body;
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    assert_eq!(s.count_tickets().await, 1);
    s.stop().await;
}
