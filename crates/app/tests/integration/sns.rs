//! SNS HTTP(S) subscriptions against the real server: signatures made with a certificate the
//! test issues from its own root (the configured trust anchor; the certificate is pinned, as an
//! operator can pin SNS's), forged ones, a self-signed certificate, refused hosts, topics and
//! ages.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use rand::SeedableRng;
use reqwest::StatusCode;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use x509_cert::builder::{Builder as _, CertificateBuilder, Profile};
use x509_cert::der::asn1::Ia5String;
use x509_cert::der::pem::LineEnding;
use x509_cert::der::EncodePem as _;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

use crate::common::{on_both_backends, Backend, Reply, TestServer};
use crate::signals::{alarm_event, ACCOUNT};

on_both_backends!(
    sns_messages_are_verified_then_taken,
    ses_receipts_through_sns_become_tickets_once
);

const TOPIC: &str = "arn:aws:sns:eu-west-1:111122223333:opsdesk-alarms";
const CERT_URL: &str =
    "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000000000000000000000000000000a.pem";
/// Where a self-signed certificate is pinned, to show that pinning alone does not make it trusted.
const SELF_SIGNED_URL: &str =
    "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000000000000000000000000000000b.pem";

static KEY: LazyLock<RsaPrivateKey> = LazyLock::new(|| key(7));
static ROOT_KEY: LazyLock<RsaPrivateKey> = LazyLock::new(|| key(9));

fn key(seed: u64) -> RsaPrivateKey {
    RsaPrivateKey::new(&mut rand::rngs::StdRng::seed_from_u64(seed), 2048).unwrap()
}

#[allow(clippy::disallowed_methods)] // the server checks message age against the real clock
fn now() -> DateTime<Utc> {
    Utc::now()
}

const ROOT_NAME: &str = "CN=opsdesk integration SNS root,O=opsdesk";

/// A certificate for `key` signed by `issuer_key`, issued to `dns_name` when given.
fn build_certificate(
    profile: Profile,
    subject: &str,
    key: &RsaPrivateKey,
    issuer_key: &RsaPrivateKey,
    dns_name: Option<&str>,
) -> String {
    let at = |t: DateTime<Utc>| {
        Time::try_from(SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp() as u64)).unwrap()
    };
    let validity = Validity {
        not_before: at(now() - TimeDelta::days(1)),
        not_after: at(now() + TimeDelta::days(365)),
    };
    let signer = SigningKey::<sha2::Sha256>::new(issuer_key.clone());
    let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
    let mut builder = CertificateBuilder::new(
        profile,
        SerialNumber::from(7u32),
        validity,
        Name::from_str(subject).unwrap(),
        spki,
        &signer,
    )
    .unwrap();
    if let Some(dns_name) = dns_name {
        let san = SubjectAltName(vec![GeneralName::DnsName(
            Ia5String::new(dns_name).unwrap(),
        )]);
        builder.add_extension(&san).unwrap();
    }
    builder
        .build::<rsa::pkcs1v15::Signature>()
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap()
}

/// The test's trust anchor, standing in for Amazon's root.
fn root_pem() -> String {
    build_certificate(Profile::Root, ROOT_NAME, &ROOT_KEY, &ROOT_KEY, None)
}

/// A signing certificate for `key` shaped like SNS's, issued by the test root.
fn certificate_pem(key: &RsaPrivateKey) -> String {
    let leaf = Profile::Leaf {
        issuer: Name::from_str(ROOT_NAME).unwrap(),
        enable_key_agreement: false,
        enable_key_encipherment: true,
    };
    let subject = "CN=sns.amazonaws.com";
    build_certificate(leaf, subject, key, &ROOT_KEY, Some("sns.amazonaws.com"))
}

/// A self-signed certificate for `key` with SNS's name, which nobody vouches for.
fn self_signed_pem(key: &RsaPrivateKey) -> String {
    let subject = "CN=sns.amazonaws.com";
    let leaf = Profile::Leaf {
        issuer: Name::from_str(subject).unwrap(),
        enable_key_agreement: false,
        enable_key_encipherment: true,
    };
    build_certificate(leaf, subject, key, key, Some("sns.amazonaws.com"))
}

/// Signs a message as SNS does (the string to sign is built here, not by the code under test).
fn sign(mut m: Value, version: &str, key: &RsaPrivateKey) -> Value {
    let keys: &[&str] = if m["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut text = String::new();
    for k in keys {
        if let Some(v) = m.get(*k).and_then(Value::as_str) {
            text.push_str(&format!("{k}\n{v}\n"));
        }
    }
    let signature = if version == "1" {
        SigningKey::<sha1::Sha1>::new(key.clone())
            .sign(text.as_bytes())
            .to_vec()
    } else {
        SigningKey::<sha2::Sha256>::new(key.clone())
            .sign(text.as_bytes())
            .to_vec()
    };
    m["SignatureVersion"] = json!(version);
    m["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(signature));
    m
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn notification(message: &Value, id: &str) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": id,
        "TopicArn": TOPIC,
        "Subject": "ALARM: \"prod-api-5xx\" in EU (Ireland)",
        "Message": message.to_string(),
        "Timestamp": stamp(now()),
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:eu-west-1:111122223333:opsdesk-alarms:1"
    })
}

/// The alarm notification CloudWatch publishes to SNS.
fn cloudwatch_alarm(state: &str, at: &str) -> Value {
    json!({
        "AlarmName": "prod-api-5xx",
        "AlarmDescription": "5xx above 1% for 5 minutes",
        "AWSAccountId": ACCOUNT,
        "AlarmConfigurationUpdatedTimestamp": "2026-11-01T08:00:00.000+0000",
        "NewStateValue": state,
        "NewStateReason": "Threshold Crossed: 1 out of the last 1 datapoints [3.2] was greater than the threshold (1.0).",
        "StateChangeTime": at,
        "Region": "EU (Ireland)",
        "AlarmArn": format!("arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:prod-api-5xx"),
        "OldStateValue": if state == "OK" { "ALARM" } else { "OK" },
        "Trigger": { "MetricName": "5XXError", "Namespace": "AWS/ApiGateway", "Statistic": "AVERAGE", "Threshold": 1.0 }
    })
}

async fn post(s: &TestServer, body: &Value) -> Reply {
    // SNS posts JSON as text/plain.
    let r = s
        .http
        .post(s.url("/api/v1/ingest/sns"))
        .header("content-type", "text/plain; charset=UTF-8")
        .header(
            "x-amz-sns-message-type",
            body["Type"].as_str().unwrap_or_default(),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    Reply::from(r).await
}

/// A server that takes SNS messages from the `opsdesk-*` topics signed under the test root
/// (written to `dir`), configured further by `more`.
async fn sns_server(
    backend: Backend,
    dir: &std::path::Path,
    more: impl FnOnce(&mut opsdesk::config::Config),
) -> TestServer {
    let root = dir.join("root.pem");
    std::fs::write(&root, root_pem()).unwrap();
    let pem = dir.join("sns.pem");
    std::fs::write(&pem, certificate_pem(&KEY)).unwrap();
    TestServer::start_with(backend, move |c, _| {
        c.ingest.sns.topics = vec!["arn:aws:sns:eu-west-1:111122223333:opsdesk-*".into()];
        // The trust anchor is explicit: the test root, instead of the public roots.
        c.ingest.sns.trust_anchors = vec![root];
        c.ingest.sns.certificates.insert(CERT_URL.into(), pem);
        more(c);
    })
    .await
}

async fn sns_messages_are_verified_then_taken(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let self_signed = dir.path().join("self-signed.pem");
    std::fs::write(&self_signed, self_signed_pem(&KEY)).unwrap();
    let s = sns_server(backend, dir.path(), |c| {
        c.ingest
            .sns
            .certificates
            .insert(SELF_SIGNED_URL.into(), self_signed.clone());
    })
    .await;

    // A CloudWatch alarm (signature version 1) opens a ticket...
    let alarm = sign(
        notification(
            &cloudwatch_alarm("ALARM", "2026-11-23T10:00:00.000+0000"),
            "m-1",
        ),
        "1",
        &KEY,
    );
    let r = post(&s, &alarm).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["type"], "Notification");
    assert_eq!(r.body["signals"]["results"][0]["effect"], "created");
    let id = r.body["signals"]["tickets"][0].as_i64().unwrap();
    let t = s.get(&format!("/api/v1/tickets/{id}")).await.body;
    assert_eq!(t["source"], "aws.cloudwatch");
    assert_eq!(t["severity"], "SEV3");
    // ...SNS retries the same message: no effect...
    assert_eq!(
        post(&s, &alarm).await.body["signals"]["results"][0]["effect"],
        "duplicate"
    );
    // ...and the OK notification (signature version 2) resolves it.
    let ok = sign(
        notification(
            &cloudwatch_alarm("OK", "2026-11-23T10:30:00.000+0000"),
            "m-2",
        ),
        "2",
        &KEY,
    );
    let r = post(&s, &ok).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["signals"]["results"][0]["effect"], "resolved");
    // An EventBridge event published to the topic works as well.
    let event = sign(
        notification(
            &alarm_event("prod-db-cpu", "ALARM", "2026-11-23T11:00:00.000+0000"),
            "m-3",
        ),
        "2",
        &KEY,
    );
    assert_eq!(
        post(&s, &event).await.body["signals"]["results"][0]["effect"],
        "created"
    );

    // Refused, and nothing written.
    let head = s.audit_head().await;
    let fresh = || {
        notification(
            &cloudwatch_alarm("ALARM", "2026-11-23T12:00:00.000+0000"),
            "m-4",
        )
    };
    let mut forged = sign(fresh(), "2", &KEY);
    forged["Message"] =
        json!(cloudwatch_alarm("ALARM", "2026-11-23T12:05:00.000+0000").to_string());
    let r = post(&s, &forged).await;
    r.assert_problem(403, None);
    assert!(
        r.body["detail"].as_str().unwrap().contains("signature"),
        "{}",
        r.body
    );
    post(&s, &sign(fresh(), "2", &key(8)))
        .await
        .assert_problem(403, None);
    let mut evil = fresh();
    evil["SigningCertURL"] = json!("https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem");
    let r = post(&s, &sign(evil, "2", &KEY)).await;
    r.assert_problem(403, None);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("SigningCertURL"),
        "{}",
        r.body
    );
    // Signed with the right key, but by a self-signed certificate with SNS's name.
    let mut self_signed = fresh();
    self_signed["SigningCertURL"] = json!(SELF_SIGNED_URL);
    let r = post(&s, &sign(self_signed, "2", &KEY)).await;
    r.assert_problem(403, None);
    assert!(
        r.body["detail"].as_str().unwrap().contains(
            "is not trusted as Amazon SNS's: its issuer (CN=sns.amazonaws.com) does not chain"
        ),
        "{}",
        r.body
    );
    let mut other_topic = fresh();
    other_topic["TopicArn"] = json!("arn:aws:sns:eu-west-1:999999999999:someone-else");
    post(&s, &sign(other_topic, "2", &KEY))
        .await
        .assert_problem(403, None);
    let mut old = fresh();
    old["Timestamp"] = json!(stamp(now() - TimeDelta::hours(2)));
    let r = post(&s, &sign(old, "2", &KEY)).await;
    r.assert_problem(403, None);
    assert!(
        r.body["detail"].as_str().unwrap().contains("old"),
        "{}",
        r.body
    );
    let r = post(&s, &json!({ "Type": "Notification" })).await;
    r.assert_problem(400, None);
    let not_json = sign(notification(&json!("x"), "m-5"), "2", &KEY);
    let mut not_json = not_json;
    not_json["Message"] = json!("plain text");
    let not_json = sign(not_json, "2", &KEY);
    post(&s, &not_json)
        .await
        .assert_problem(422, Some("Message"));
    assert_eq!(s.audit_head().await, head);

    // A subscription confirmation is verified, then confirmed at its SNS SubscribeURL (which
    // this machine cannot reach: the answer says so); one pointing elsewhere is refused.
    let confirm = |url: &str| {
        json!({
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92",
            "TopicArn": TOPIC,
            "Message": format!("You have chosen to subscribe to the topic {TOPIC}."),
            "SubscribeURL": url,
            "Timestamp": stamp(now()),
            "SigningCertURL": CERT_URL
        })
    };
    let r = post(&s, &sign(confirm("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=y"), "1", &KEY)).await;
    r.assert_problem(502, None);
    assert!(
        r.body["detail"].as_str().unwrap().contains("confirm"),
        "{}",
        r.body
    );
    let r = post(
        &s,
        &sign(confirm("https://metadata.internal/latest"), "1", &KEY),
    )
    .await;
    r.assert_problem(400, None);

    let metrics = s.metrics().await;
    for reason in ["signature_mismatch", "certificate_untrusted"] {
        assert!(
            metrics.contains(&format!(
                "opsdesk_ingest_refused_total{{input=\"sns\",reason=\"{reason}\"}}"
            )),
            "{metrics}"
        );
    }
    s.stop().await;
}

const MAIL_TOPIC: &str = "arn:aws:sns:eu-west-1:111122223333:opsdesk-mail";

/// An SNS notification of an SES receipt, published to `topic`, signed.
fn ses_notification(receipt: &Value, id: &str, topic: &str) -> Value {
    let mut n = notification(receipt, id);
    n["TopicArn"] = json!(topic);
    sign(n, "2", &KEY)
}

/// An SES receipt rule's SNS action, as SES publishes it (the message inline, UTF-8).
fn ses_receipt(ses_id: &str, raw: &str, dmarc: &str) -> Value {
    json!({
        "notificationType": "Received",
        "mail": {
            "timestamp": "2026-12-07T10:00:00.000Z",
            "source": "rob@example.com",
            "messageId": ses_id,
            "destination": ["support@desk.example.com"],
            "headersTruncated": false,
            "commonHeaders": {"returnPath": "rob@example.com", "from": ["rob@example.com"], "subject": "x"}
        },
        "receipt": {
            "timestamp": "2026-12-07T10:00:00.000Z",
            "processingTimeMillis": 222,
            "recipients": ["support@desk.example.com"],
            "spamVerdict": {"status": "PASS"},
            "virusVerdict": {"status": "PASS"},
            "spfVerdict": {"status": "PASS"},
            "dkimVerdict": {"status": "PASS"},
            "dmarcVerdict": {"status": dmarc},
            "dmarcPolicy": "reject",
            "action": {"type": "SNS", "topicArn": "arn:aws:sns:eu-west-1:111122223333:opsdesk-mail", "encoding": "UTF8"}
        },
        "content": raw.replace('\n', "\r\n")
    })
}

async fn ses_receipts_through_sns_become_tickets_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let moto = crate::peers::Moto::start().await;
    let sdk = moto.sdk_config().await;
    let bucket = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    bucket
        .create_bucket()
        .bucket("desk-mail")
        .send()
        .await
        .unwrap();
    // The SDK's usual chain finds these.
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    let endpoint = moto.endpoint.clone();
    let s = sns_server(backend, dir.path(), move |c| {
        c.email.ses_create_requesters = true;
        c.email.ses_topics = vec![MAIL_TOPIC.into()];
        c.email.ses_s3 = Some(
            toml::from_str(&format!(
                "buckets = [\"desk-mail\"]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n"
            ))
            .unwrap(),
        );
    })
    .await;
    let raw = "From: Rob <rob@example.com>\nTo: support@desk.example.com\nSubject: Printer on fire\nMessage-ID: <p1@example.com>\n\nSmoke everywhere.\n";
    // A receipt published to an alarm topic is not taken as mail: whoever may publish there
    // could otherwise write in anyone's name.
    let r = post(
        &s,
        &ses_notification(&ses_receipt("ses-0", raw, "PASS"), "m-ses-0", TOPIC),
    )
    .await;
    r.assert_problem(422, Some("TopicArn"));
    let first = ses_notification(&ses_receipt("ses-1", raw, "PASS"), "m-ses-1", MAIL_TOPIC);
    let r = post(&s, &first).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["mail"], "ticket", "{}", r.body);
    let mail = s.get("/api/v1/mail").await.body;
    let id = mail[0]["ticket_id"].as_i64().unwrap();
    let t = s.get(&format!("/api/v1/tickets/{id}")).await.body;
    assert_eq!(t["title"], "Printer on fire");
    assert_eq!(t["requester"], "rob@example.com");
    // SNS delivers the same message again, or a second subscription does: taken once.
    let again = ses_notification(&ses_receipt("ses-1", raw, "PASS"), "m-ses-2", MAIL_TOPIC);
    assert_eq!(post(&s, &again).await.body["mail"], "seen");
    // A reply without a DMARC pass may not speak for the requester opsdesk now knows.
    let forged = format!("From: rob@example.com\nSubject: Re: [OPS-{id}] Printer on fire\nMessage-ID: <p2@example.com>\n\nClose it.\n");
    let r = post(
        &s,
        &ses_notification(
            &ses_receipt("ses-2", &forged, "GRAY"),
            "m-ses-3",
            MAIL_TOPIC,
        ),
    )
    .await;
    assert_eq!(r.body["mail"], "held", "{}", r.body);
    let comments = s.get(&format!("/api/v1/tickets/{id}/comments")).await.body;
    assert_eq!(comments.as_array().unwrap().len(), 0, "{comments}");
    // With the DMARC pass it is a comment.
    let genuine = forged.replace("p2@", "p3@");
    let r = post(
        &s,
        &ses_notification(
            &ses_receipt("ses-3", &genuine, "PASS"),
            "m-ses-4",
            MAIL_TOPIC,
        ),
    )
    .await;
    assert_eq!(r.body["mail"], "comment", "{}", r.body);
    // A receipt rule that stores messages in S3 (those over the 150 KB an SNS action
    // carries): the notification names the object, opsdesk reads it.
    let stored = |bucket_name: &str, key: &str| {
        let mut n = ses_receipt("ses-4", "", "PASS");
        n.as_object_mut().unwrap().remove("content");
        n["receipt"]["action"] = json!({"type": "S3", "topicArn": MAIL_TOPIC,
            "bucketName": bucket_name, "objectKeyPrefix": "inbox/", "objectKey": key});
        n
    };
    // Only from the buckets configured.
    let r = post(
        &s,
        &ses_notification(&stored("other", "inbox/ses-4"), "m-ses-5", MAIL_TOPIC),
    )
    .await;
    r.assert_problem(422, Some("Message.receipt.action.bucketName"));
    // Not there (yet): SNS is asked to deliver again.
    let r = post(
        &s,
        &ses_notification(&stored("desk-mail", "inbox/ses-4"), "m-ses-6", MAIL_TOPIC),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    let big = format!(
        "From: Ann <ann@example.com>\r\nTo: support@desk.example.com\r\nSubject: Core dump attached\r\n\
         Message-ID: <big@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nThe service crashed, log attached.\r\n\
         --b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=crash.log\r\n\r\n{}\r\n--b--\r\n",
        "panic at worker 7: index out of bounds\r\n".repeat(6000)
    );
    assert!(big.len() > 150 * 1024);
    bucket
        .put_object()
        .bucket("desk-mail")
        .key("inbox/ses-4")
        .body(aws_sdk_s3::primitives::ByteStream::from(big.into_bytes()))
        .send()
        .await
        .unwrap();
    let r = post(
        &s,
        &ses_notification(&stored("desk-mail", "inbox/ses-4"), "m-ses-7", MAIL_TOPIC),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["mail"], "ticket", "{}", r.body);
    let mail = s.get("/api/v1/mail").await.body;
    let id = mail[0]["ticket_id"].as_i64().unwrap();
    let t = s.get(&format!("/api/v1/tickets/{id}")).await.body;
    assert_eq!(t["title"], "Core dump attached");
    let files = s
        .get(&format!("/api/v1/tickets/{id}/attachments"))
        .await
        .body;
    assert_eq!(files[0]["name"], "crash.log", "{files}");
    assert!(files[0]["size"].as_i64().unwrap() > 150_000, "{files}");
    // Held messages wait for an agent, who may release them: the forged-looking reply
    // becomes the sender's comment, a stranger's new message a ticket for them.
    let stranger = "From: Zoe <zoe@example.org>\nSubject: Badge does not open door 3\nMessage-ID: <z1@example.org>\n\nSince Monday.\n";
    let r = post(
        &s,
        &ses_notification(
            &ses_receipt("ses-9", stranger, "GRAY"),
            "m-ses-9",
            MAIL_TOPIC,
        ),
    )
    .await;
    assert_eq!(r.body["mail"], "held", "{}", r.body);
    let held = s.get("/api/v1/mail?outcome=held").await.body;
    let held = held.as_array().unwrap();
    assert_eq!(held.len(), 2, "{held:?}");
    let reply = held
        .iter()
        .find(|m| m["message_id"] == "p2@example.com")
        .unwrap();
    let new = held
        .iter()
        .find(|m| m["message_id"] == "z1@example.org")
        .unwrap();
    async fn release(s: &TestServer, id: &Value, token: &str) -> crate::common::Reply {
        s.call(
            reqwest::Method::POST,
            &format!("/api/v1/mail/{id}/release"),
            Some(token),
            None,
        )
        .await
    }
    let r = release(&s, &reply["id"], &s.viewer).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = release(&s, &reply["id"], &s.agent).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["outcome"], "comment");
    assert_eq!(r.body["ticket_id"], reply["ticket_id"]);
    let comments = s
        .get(&format!("/api/v1/tickets/{}/comments", reply["ticket_id"]))
        .await
        .body;
    let last = comments.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["author"], "user:rob@example.com");
    assert!(
        last["body"].as_str().unwrap().contains("Close it."),
        "{last}"
    );
    // Once only.
    let r = release(&s, &reply["id"], &s.agent).await;
    r.assert_problem(409, None);
    let r = release(&s, &new["id"], &s.agent).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["outcome"], "ticket");
    let released_ticket = r.body["ticket_id"].clone();
    // Mail that says it is from a member of staff, and was held for want of proof, is not
    // released in their name.
    crate::common::add_local_user(
        &s.db.desk().await,
        "root@example.com",
        opsdesk_domain::Role::Admin,
    )
    .await;
    let staff = "From: root@example.com\nSubject: Grant me access\nMessage-ID: <r1@example.com>\n\nPlease.\n";
    let r = post(
        &s,
        &ses_notification(
            &ses_receipt("ses-10", staff, "GRAY"),
            "m-ses-10",
            MAIL_TOPIC,
        ),
    )
    .await;
    assert_eq!(r.body["mail"], "held", "{}", r.body);
    let held = s.get("/api/v1/mail?outcome=held").await.body;
    let forged = held
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["message_id"] == "r1@example.com")
        .unwrap()
        .clone();
    let r = release(&s, &forged["id"], &s.agent).await;
    r.assert_problem(409, None);
    assert!(
        r.body["detail"].as_str().unwrap().contains("staff"),
        "{}",
        r.body
    );
    let r = s.get(&format!("/api/v1/tickets/{released_ticket}")).await;
    let t = r.body;
    assert_eq!(t["title"], "Badge does not open door 3");
    assert_eq!(t["requester"], "zoe@example.org");
    let released = s.get("/api/v1/mail?direction=in").await.body;
    let entry = released
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["message_id"] == "z1@example.org")
        .unwrap()
        .clone();
    assert_eq!(entry["outcome"], "ticket");
    assert_eq!(entry["reason"], "released by token:test-agent");
    assert!(s
        .audit_trail()
        .await
        .iter()
        .any(|e| e["action"] == "mail.released" && e["actor"] == "token:test-agent"));

    // Delivered again: read again, taken once.
    let r = post(
        &s,
        &ses_notification(&stored("desk-mail", "inbox/ses-4"), "m-ses-8", MAIL_TOPIC),
    )
    .await;
    assert_eq!(r.body["mail"], "seen", "{}", r.body);
    s.stop().await;
}
