use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use rand::SeedableRng;
use reqwest::Url;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha1::Sha1;
use sha2::Sha256;
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

use super::*;

const TOPIC: &str = "arn:aws:sns:us-west-2:123456789012:MyTopic";
const CERT_URL: &str = "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem";

/// The clock of every test; messages are dated a few minutes before it.
fn now() -> DateTime<Utc> {
    "2026-03-02T12:00:00Z".parse().unwrap()
}

/// Seeded so that a failure reproduces; 2048 bits because the verifier refuses less.
fn generate_key(seed: u64) -> RsaPrivateKey {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    RsaPrivateKey::new(&mut rng, 2048).unwrap()
}

static KEY: LazyLock<RsaPrivateKey> = LazyLock::new(|| generate_key(1));
static OTHER_KEY: LazyLock<RsaPrivateKey> = LazyLock::new(|| generate_key(2));
static ROOT_KEY: LazyLock<RsaPrivateKey> = LazyLock::new(|| generate_key(3));
/// The trust anchor of these tests: a root CA made here, standing in for Amazon Root CA 1.
static ROOT_PEM: LazyLock<String> = LazyLock::new(|| {
    let name = Name::from_str(ROOT_NAME).unwrap();
    build_certificate(
        Profile::Root,
        name,
        &ROOT_KEY,
        &ROOT_KEY,
        (now() - TimeDelta::days(3650), now() + TimeDelta::days(3650)),
        None,
    )
});
static CERT_PEM: LazyLock<String> = LazyLock::new(|| {
    certificate_pem(
        &KEY,
        now() - TimeDelta::days(30),
        now() + TimeDelta::days(365),
    )
});

const ROOT_NAME: &str = "CN=opsdesk test SNS root,O=opsdesk";

/// A certificate for `key`'s public key signed by `issuer_key`, with `dns_name` as its
/// subject alternative name if given.
fn build_certificate(
    profile: Profile,
    subject: Name,
    key: &RsaPrivateKey,
    issuer_key: &RsaPrivateKey,
    (from, until): (DateTime<Utc>, DateTime<Utc>),
    dns_name: Option<&str>,
) -> String {
    let at = |t: DateTime<Utc>| {
        Time::try_from(SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp() as u64)).unwrap()
    };
    let validity = Validity {
        not_before: at(from),
        not_after: at(until),
    };
    let signer = SigningKey::<Sha256>::new(issuer_key.clone());
    let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
    let mut builder = CertificateBuilder::new(
        profile,
        SerialNumber::from(42u32),
        validity,
        subject,
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
    let cert = builder.build::<rsa::pkcs1v15::Signature>().unwrap();
    cert.to_pem(LineEnding::LF).unwrap()
}

/// A signing certificate for `key` shaped like SNS's (CN and DNS name sns.amazonaws.com),
/// issued by the test root.
fn certificate_pem(key: &RsaPrivateKey, from: DateTime<Utc>, until: DateTime<Utc>) -> String {
    issued_certificate_pem(key, "sns.amazonaws.com", from, until)
}

/// A leaf certificate for `key` issued to `dns_name` by the test root.
fn issued_certificate_pem(
    key: &RsaPrivateKey,
    dns_name: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> String {
    let leaf = Profile::Leaf {
        issuer: Name::from_str(ROOT_NAME).unwrap(),
        enable_key_agreement: false,
        enable_key_encipherment: true,
    };
    let subject = Name::from_str(&format!("CN={dns_name}")).unwrap();
    build_certificate(leaf, subject, key, &ROOT_KEY, (from, until), Some(dns_name))
}

/// Trust in the test root only, as `trust_anchors = ["test-root.pem"]` gives.
fn test_trust() -> super::trust::Trust {
    let root = (PathBuf::from("test-root.pem"), ROOT_PEM.as_bytes().to_vec());
    super::trust::Trust::from_pems(&[root], &[]).unwrap()
}

/// `Verifier::new` with the test root as its trust anchor.
fn new_verifier(
    config: &SnsConfig,
    source: Arc<dyn CertificateSource>,
) -> Result<Verifier, SnsError> {
    Ok(Verifier::new(config, source)?.trusting(test_trust()))
}

/// The notification example of the SNS documentation, dated five minutes before `now()`.
fn notification() -> Value {
    json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Subject": "My First Message",
        "Message": "Hello world!",
        "Timestamp": "2026-03-02T11:55:06.655Z",
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-west-2:123456789012:MyTopic:c9135db0-26c4-47ec-8998-413945fb5a96"
    })
}

/// The subscription confirmation example of the SNS documentation.
fn subscription_confirmation() -> Value {
    json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic arn:aws:sns:us-west-2:123456789012:MyTopic.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
        "SubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
        "Timestamp": "2026-03-02T11:58:04.751Z",
        "SigningCertURL": CERT_URL
    })
}

/// Signs `fields` as SNS does, building the string to sign here rather than with the code
/// under test, and returns the body SNS would post.
fn sign(mut fields: Value, version: &str, key: &RsaPrivateKey) -> Vec<u8> {
    let order: &[&str] = if fields["Type"] == "Notification" {
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
    for name in order {
        if let Some(value) = fields.get(name).and_then(Value::as_str) {
            text.push_str(&format!("{name}\n{value}\n"));
        }
    }
    let signature = match version {
        "1" => SigningKey::<Sha1>::new(key.clone())
            .sign(text.as_bytes())
            .to_vec(),
        _ => SigningKey::<Sha256>::new(key.clone())
            .sign(text.as_bytes())
            .to_vec(),
    };
    fields["SignatureVersion"] = json!(version);
    fields["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(signature));
    serde_json::to_vec(&fields).unwrap()
}

fn parse(body: &[u8]) -> SnsMessage {
    SnsMessage::parse(body).unwrap()
}

/// Serves certificates from memory and records every fetch.
#[derive(Default)]
struct FakeSource {
    certificates: HashMap<String, Vec<u8>>,
    fetched: Mutex<Vec<String>>,
}

impl FakeSource {
    fn serving(url: &str, pem: &str) -> Arc<FakeSource> {
        let mut source = FakeSource::default();
        source
            .certificates
            .insert(url.to_owned(), pem.as_bytes().to_vec());
        Arc::new(source)
    }

    fn fetched(&self) -> Vec<String> {
        self.fetched.lock().unwrap().clone()
    }
}

#[async_trait]
impl CertificateSource for FakeSource {
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>, SnsError> {
        self.fetched.lock().unwrap().push(url.to_string());
        self.certificates.get(url.as_str()).cloned().ok_or_else(|| {
            SnsError::CertificateUnavailable {
                url: url.to_string(),
                reason: "HTTP status 404 Not Found".to_owned(),
            }
        })
    }
}

fn config() -> SnsConfig {
    SnsConfig {
        topics: vec![TOPIC.to_owned()],
        ..SnsConfig::default()
    }
}

/// A verifier for `config()` whose source serves the test certificate at `CERT_URL`.
fn verifier() -> (Verifier, Arc<FakeSource>) {
    let source = FakeSource::serving(CERT_URL, &CERT_PEM);
    (new_verifier(&config(), source.clone()).unwrap(), source)
}

async fn verify(body: &[u8]) -> Result<(), SnsError> {
    let (verifier, _) = verifier();
    verifier.verify(&parse(body), now()).await
}

#[test]
fn parses_the_aws_documentation_notification() {
    let msg = parse(&sign(notification(), "1", &KEY));
    assert_eq!(msg.kind, MessageType::Notification);
    assert_eq!(msg.message_id, "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324");
    assert_eq!(msg.topic_arn, TOPIC);
    assert_eq!(msg.subject.as_deref(), Some("My First Message"));
    assert_eq!(msg.message, "Hello world!");
    assert_eq!(
        msg.timestamp,
        "2026-03-02T11:55:06.655Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(msg.signature_version, SignatureVersion::Sha1);
    assert_eq!(msg.signature.len(), 256);
    assert_eq!(msg.signing_cert_url, CERT_URL);
    assert!(msg.unsubscribe_url.unwrap().contains("Action=Unsubscribe"));
    assert_eq!(msg.subscribe_url, None);
    assert_eq!(msg.token, None);
}

#[test]
fn parse_errors_name_the_missing_or_bad_field() {
    let error = |mutate: &dyn Fn(&mut Value)| {
        let mut fields = serde_json::from_slice::<Value>(&sign(notification(), "2", &KEY)).unwrap();
        mutate(&mut fields);
        let e = SnsMessage::parse(&serde_json::to_vec(&fields).unwrap()).unwrap_err();
        assert!(matches!(e, SnsError::Malformed(_)), "{e:?}");
        e.to_string()
    };
    let remove =
        |name: &'static str| move |f: &mut Value| drop(f.as_object_mut().unwrap().remove(name));

    for name in [
        "Type",
        "MessageId",
        "TopicArn",
        "Message",
        "Timestamp",
        "SignatureVersion",
        "Signature",
        "SigningCertURL",
    ] {
        assert_eq!(
            error(&remove(name)),
            format!("not an SNS message: field {name} is missing")
        );
    }
    assert!(error(&|f| f["Message"] = json!(5))
        .starts_with("not an SNS message: field Message is bad: invalid type: integer"));
    assert!(error(&|f| f["Timestamp"] = json!("yesterday"))
        .contains("Timestamp \"yesterday\" is not an RFC 3339 time"));
    assert!(error(&|f| f["Type"] = json!("Hello"))
        .contains("Type \"Hello\" is not an SNS message type"));
    assert!(error(&|f| f["SignatureVersion"] = json!("3"))
        .contains("SignatureVersion \"3\" is not 1 or 2"));
    assert!(error(&|f| f["Signature"] = json!("%%%")).contains("Signature is not base64"));

    let mut confirmation = subscription_confirmation();
    confirmation.as_object_mut().unwrap().remove("Token");
    let e = SnsMessage::parse(&sign(confirmation, "1", &KEY)).unwrap_err();
    assert_eq!(e.to_string(), "not an SNS message: field Token is missing");

    let e = SnsMessage::parse(b"<xml/>").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("not an SNS message: body is not a JSON object"),
        "{e}"
    );
}

#[test]
fn canonical_string_follows_the_aws_documentation() {
    let msg = parse(&sign(notification(), "1", &KEY));
    assert_eq!(
        msg.canonical_string().unwrap(),
        "Message\nHello world!\n\
         MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n\
         Subject\nMy First Message\n\
         Timestamp\n2026-03-02T11:55:06.655Z\n\
         TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n\
         Type\nNotification\n"
    );

    let mut fields = notification();
    fields.as_object_mut().unwrap().remove("Subject");
    let msg = parse(&sign(fields, "1", &KEY));
    assert!(!msg.canonical_string().unwrap().contains("Subject"));

    let mut fields = subscription_confirmation();
    fields["Message"] = json!("m");
    fields["Token"] = json!("t");
    fields["SubscribeURL"] =
        json!("https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription");
    let msg = parse(&sign(fields, "1", &KEY));
    assert_eq!(
        msg.canonical_string().unwrap(),
        "Message\nm\n\
         MessageId\n165545c9-2a5c-472c-8df2-7ff2be2b3b1b\n\
         SubscribeURL\nhttps://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription\n\
         Timestamp\n2026-03-02T11:58:04.751Z\n\
         Token\nt\n\
         TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n\
         Type\nSubscriptionConfirmation\n"
    );
}

#[tokio::test]
async fn valid_v1_notification_passes() {
    verify(&sign(notification(), "1", &KEY)).await.unwrap();
}

#[tokio::test]
async fn valid_v2_notification_passes() {
    verify(&sign(notification(), "2", &KEY)).await.unwrap();
}

#[tokio::test]
async fn notification_without_subject_passes() {
    let mut fields = notification();
    fields.as_object_mut().unwrap().remove("Subject");
    verify(&sign(fields, "2", &KEY)).await.unwrap();
}

#[tokio::test]
async fn subscription_and_unsubscribe_confirmations_pass() {
    verify(&sign(subscription_confirmation(), "1", &KEY))
        .await
        .unwrap();
    let mut fields = subscription_confirmation();
    fields["Type"] = json!("UnsubscribeConfirmation");
    verify(&sign(fields, "2", &KEY)).await.unwrap();
}

#[tokio::test]
async fn forged_message_fails() {
    for (field, value) in [
        ("Message", "Hello mallory!"),
        ("Subject", "Urgent"),
        ("Timestamp", "2026-03-02T11:55:07.655Z"),
        ("MessageId", "x"),
    ] {
        let mut fields: Value = serde_json::from_slice(&sign(notification(), "2", &KEY)).unwrap();
        fields[field] = json!(value);
        let e = verify(&serde_json::to_vec(&fields).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, SnsError::SignatureMismatch), "{field}: {e:?}");
    }
    // A subject added after signing must not be ignored either.
    let mut fields = notification();
    fields.as_object_mut().unwrap().remove("Subject");
    let mut fields: Value = serde_json::from_slice(&sign(fields, "2", &KEY)).unwrap();
    fields["Subject"] = json!("Added");
    let e = verify(&serde_json::to_vec(&fields).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "signature does not match");
}

#[tokio::test]
async fn signature_by_another_key_fails() {
    for version in ["1", "2"] {
        let e = verify(&sign(notification(), version, &OTHER_KEY))
            .await
            .unwrap_err();
        assert!(matches!(e, SnsError::SignatureMismatch), "{e:?}");
    }
}

#[tokio::test]
async fn signature_with_the_other_hash_than_its_version_fails() {
    let mut fields: Value = serde_json::from_slice(&sign(notification(), "1", &KEY)).unwrap();
    fields["SignatureVersion"] = json!("2");
    let e = verify(&serde_json::to_vec(&fields).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, SnsError::SignatureMismatch), "{e:?}");
}

#[tokio::test]
async fn certificate_urls_outside_sns_fail_before_any_fetch() {
    let cases = [
        (
            "https://evil.example.com/cert.pem",
            "host evil.example.com is not an SNS host",
        ),
        (
            "http://sns.us-west-2.amazonaws.com/cert.pem",
            "scheme http is not https",
        ),
        (
            "https://sns.us-west-2.amazonaws.com:8443/cert.pem",
            "port 8443 is not 443",
        ),
        (
            "https://user@sns.us-west-2.amazonaws.com/cert.pem",
            "it carries user info",
        ),
        (
            "https://sns.us-west-2.amazonaws.com/cert.txt",
            "path /cert.txt is not a .pem file",
        ),
        (
            "https://sns.us-west-2.amazonaws.com/cert.pem?x=1",
            "it has a query or fragment",
        ),
        (
            "https://sns.s3.amazonaws.com/cert.pem",
            "host sns.s3.amazonaws.com is not an SNS host",
        ),
        (
            "https://sns.s3-external-1.amazonaws.com/cert.pem",
            "is not an SNS host",
        ),
        (
            "https://sns.us-west-2.amazonaws.com.evil.example.com/cert.pem",
            "is not an SNS host",
        ),
        (
            "https://sns.us-west-2.amazonaws.com.cn.evil.example.com/cert.pem",
            "is not an SNS host",
        ),
        (
            "https://sqs.us-west-2.amazonaws.com/cert.pem",
            "is not an SNS host",
        ),
        (
            "https://127.0.0.1/cert.pem",
            "host 127.0.0.1 is not an SNS host",
        ),
        ("file:///etc/passwd.pem", "scheme file is not https"),
        ("not a url", "not a URL: relative URL without a base"),
    ];
    let (verifier, source) = verifier();
    for (url, reason) in cases {
        let mut fields = notification();
        fields["SigningCertURL"] = json!(url);
        let e = verifier
            .verify(&parse(&sign(fields, "2", &KEY)), now())
            .await
            .unwrap_err();
        assert!(matches!(e, SnsError::CertificateUrl { .. }), "{url}: {e:?}");
        assert!(
            e.to_string()
                .starts_with(&format!("SigningCertURL {url} is refused: ")),
            "{e}"
        );
        assert!(e.to_string().ends_with(reason), "{url}: {e}");
    }
    assert_eq!(source.fetched(), Vec::<String>::new());
}

#[test]
fn certificate_urls_of_sns_are_accepted() {
    for url in [
        CERT_URL,
        "https://sns.us-west-2.amazonaws.com:443/SimpleNotificationService-x.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem",
        "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.ap-southeast-3.amazonaws.com/SimpleNotificationService-x.pem",
    ] {
        check_signing_cert_url(url).unwrap();
    }
}

#[tokio::test]
async fn topics_not_on_the_allow_list_fail_before_any_fetch() {
    let source = FakeSource::serving(CERT_URL, &CERT_PEM);
    let msg = parse(&sign(notification(), "2", &KEY));
    for topics in [
        vec![],
        vec!["arn:aws:sns:us-west-2:123456789012:OtherTopic".to_owned()],
    ] {
        let config = SnsConfig {
            topics,
            ..SnsConfig::default()
        };
        let e = Verifier::new(&config, source.clone())
            .unwrap()
            .verify(&msg, now())
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("topic {TOPIC} is not on the allow-list")
        );
    }
    assert_eq!(source.fetched(), Vec::<String>::new());

    let config = SnsConfig {
        topics: vec!["arn:aws:sns:*:123456789012:My*".to_owned()],
        ..SnsConfig::default()
    };
    new_verifier(&config, source.clone())
        .unwrap()
        .verify(&msg, now())
        .await
        .unwrap();
}

#[tokio::test]
async fn messages_older_than_an_hour_or_from_the_future_fail() {
    let (verifier, source) = verifier();
    let msg = parse(&sign(notification(), "2", &KEY));

    let e = verifier
        .verify(&msg, msg.timestamp + TimeDelta::hours(2))
        .await
        .unwrap_err();
    assert!(matches!(e, SnsError::TooOld { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "message is 2 hours old, more than the 60 minutes accepted"
    );

    let e = verifier
        .verify(&msg, msg.timestamp - TimeDelta::minutes(10))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "message is dated 10 minutes in the future");
    assert_eq!(source.fetched(), Vec::<String>::new());

    verifier
        .verify(&msg, msg.timestamp + TimeDelta::minutes(59))
        .await
        .unwrap();
    verifier
        .verify(&msg, msg.timestamp - TimeDelta::minutes(4))
        .await
        .unwrap();
}

#[tokio::test]
async fn certificate_outside_its_validity_fails() {
    let pem = certificate_pem(
        &KEY,
        now() - TimeDelta::days(400),
        now() - TimeDelta::days(1),
    );
    let verifier = new_verifier(&config(), FakeSource::serving(CERT_URL, &pem)).unwrap();
    let e = verifier
        .verify(&parse(&sign(notification(), "2", &KEY)), now())
        .await
        .unwrap_err();
    assert!(matches!(e, SnsError::CertificateInvalid { .. }), "{e:?}");
    assert!(e.to_string().contains("it expired at 2026-03-01"), "{e}");

    let pem = certificate_pem(
        &KEY,
        now() + TimeDelta::days(1),
        now() + TimeDelta::days(400),
    );
    let verifier = new_verifier(&config(), FakeSource::serving(CERT_URL, &pem)).unwrap();
    let e = verifier
        .verify(&parse(&sign(notification(), "2", &KEY)), now())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("it is not valid before 2026-03-03"),
        "{e}"
    );
}

#[tokio::test]
async fn unusable_or_unreachable_certificate_fails() {
    let verifier = new_verifier(
        &config(),
        FakeSource::serving(CERT_URL, "<html>hello</html>"),
    )
    .unwrap();
    let e = verifier
        .verify(&parse(&sign(notification(), "2", &KEY)), now())
        .await
        .unwrap_err();
    assert!(matches!(e, SnsError::CertificateInvalid { .. }), "{e:?}");
    assert!(e.to_string().contains("not a PEM X.509 certificate"), "{e}");
    for body in ["", "\r\n\n", " "] {
        let e = new_verifier(&config(), FakeSource::serving(CERT_URL, body))
            .unwrap()
            .verify(&parse(&sign(notification(), "2", &KEY)), now())
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("not a PEM X.509 certificate"),
            "{body:?}: {e}"
        );
    }

    let verifier = new_verifier(&config(), Arc::new(FakeSource::default())).unwrap();
    let e = verifier
        .verify(&parse(&sign(notification(), "2", &KEY)), now())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "certificate_unavailable");
    assert_eq!(
        e.to_string(),
        format!("signing certificate {CERT_URL} could not be fetched: HTTP status 404 Not Found")
    );
}

#[tokio::test]
async fn pinned_certificate_is_used_without_fetching() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sns.pem");
    std::fs::write(&path, CERT_PEM.as_bytes()).unwrap();
    let config = SnsConfig {
        certificates: [(CERT_URL.to_owned(), path)].into(),
        ..config()
    };
    let source = Arc::new(FakeSource::default());
    let verifier = new_verifier(&config, source.clone()).unwrap();
    verifier
        .verify(&parse(&sign(notification(), "1", &KEY)), now())
        .await
        .unwrap();
    verifier
        .verify(&parse(&sign(subscription_confirmation(), "2", &KEY)), now())
        .await
        .unwrap();
    assert_eq!(source.fetched(), Vec::<String>::new());

    // The pinned certificate is the only one trusted for its URL.
    let e = verifier
        .verify(&parse(&sign(notification(), "2", &OTHER_KEY)), now())
        .await
        .unwrap_err();
    assert!(matches!(e, SnsError::SignatureMismatch), "{e:?}");
}

#[test]
fn unusable_pinned_certificates_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("sns.pem");
    std::fs::write(&good, CERT_PEM.as_bytes()).unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();

    let cases = [
        (
            "https://evil.example.com/x.pem",
            good.clone(),
            "is refused: host evil.example.com is not an SNS host",
        ),
        (CERT_URL, dir.path().join("missing.pem"), "No such file"),
        (CERT_URL, garbage, "not a PEM X.509 certificate"),
    ];
    for (url, path, reason) in cases {
        let config = SnsConfig {
            certificates: [(url.to_owned(), path.clone())].into(),
            ..config()
        };
        let e = Verifier::new(&config, Arc::new(FakeSource::default())).unwrap_err();
        assert!(matches!(e, SnsError::PinnedCertificate { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "pinned certificate {} for {url} cannot be used: ",
                path.display()
            )),
            "{text}"
        );
        assert!(text.contains(reason), "{text}");
    }
}

#[tokio::test]
async fn certificate_is_fetched_once_for_two_messages() {
    let (verifier, source) = verifier();
    verifier
        .verify(&parse(&sign(notification(), "1", &KEY)), now())
        .await
        .unwrap();
    verifier
        .verify(&parse(&sign(subscription_confirmation(), "2", &KEY)), now())
        .await
        .unwrap();
    assert_eq!(source.fetched(), vec![CERT_URL.to_owned()]);
}

#[tokio::test]
async fn certificate_cache_is_bounded() {
    let mut source = FakeSource::default();
    let urls: Vec<String> = (0..40)
        .map(|i| format!("https://sns.us-west-2.amazonaws.com/SimpleNotificationService-{i}.pem"))
        .collect();
    for url in &urls {
        source
            .certificates
            .insert(url.clone(), CERT_PEM.as_bytes().to_vec());
    }
    let source = Arc::new(source);
    let verifier = new_verifier(&config(), source.clone()).unwrap();
    for url in &urls {
        let mut fields = notification();
        fields["SigningCertURL"] = json!(url);
        verifier
            .verify(&parse(&sign(fields, "2", &KEY)), now())
            .await
            .unwrap();
    }
    assert_eq!(source.fetched().len(), 40);
    assert!(verifier.cached_urls() <= 16, "{}", verifier.cached_urls());
}

#[test]
fn config_has_defaults_and_refuses_unknown_keys() {
    let config: SnsConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(config, SnsConfig::default());
    assert_eq!(config.max_age_seconds, 3600);
    assert!(config.topics.is_empty());
    assert!(config.intermediates.is_empty());
    assert!(
        config.trust_anchors.is_empty(),
        "the public roots by default"
    );

    let e = serde_json::from_value::<SnsConfig>(json!({"topic": []})).unwrap_err();
    assert!(e.to_string().contains("unknown field `topic`"), "{e}");
}

#[tokio::test]
async fn https_source_refuses_plain_http() {
    let source = HttpsCertificateSource::new().unwrap();
    let url: Url = "http://127.0.0.1:9/SimpleNotificationService-x.pem"
        .parse()
        .unwrap();
    let e = source.fetch(&url).await.unwrap_err();
    assert_eq!(e.reason(), "certificate_unavailable", "{e}");
}

const REAL_TOPIC: &str = "arn:aws:sns:eu-central-1:466136624261:ses";
const REAL_CERT_URL: &str = "https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-60eadc530605d63b8e62a523676ef735.pem";
/// The signing certificate Amazon SNS served at `REAL_CERT_URL` (issued by Amazon RSA 2048
/// M01, valid from 2023-12-14 to 2024-11-20).
const REAL_CERT_PEM: &str =
    include_str!("testdata/SimpleNotificationService-60eadc530605d63b8e62a523676ef735.pem");
/// A subscription confirmation Amazon SNS sent on 2024-08-01, signed with that certificate.
const REAL_CONFIRMATION: &str =
    include_str!("testdata/subscription-confirmation-eu-central-1.json");

/// A few minutes after `REAL_CONFIRMATION` was sent.
fn real_now() -> DateTime<Utc> {
    "2024-08-01T10:40:00Z".parse().unwrap()
}

fn real_config() -> SnsConfig {
    SnsConfig {
        topics: vec![REAL_TOPIC.to_owned()],
        ..SnsConfig::default()
    }
}

#[tokio::test]
async fn amazon_sns_certificate_chains_to_a_public_root() {
    let msg = SnsMessage::parse(REAL_CONFIRMATION.as_bytes()).unwrap();
    let source = FakeSource::serving(REAL_CERT_URL, REAL_CERT_PEM);

    // Nothing configured: the public roots and the built-in Amazon intermediates.
    let verifier = Verifier::new(&real_config(), source.clone()).unwrap();
    verifier.verify(&msg, real_now()).await.unwrap();
    assert_eq!(source.fetched(), vec![REAL_CERT_URL.to_owned()]);

    // A changed message still fails on its signature.
    let mut forged: Value = serde_json::from_str(REAL_CONFIRMATION).unwrap();
    forged["Message"] = json!("You have chosen to subscribe to another topic.");
    let e = verifier
        .verify(&parse(&serde_json::to_vec(&forged).unwrap()), real_now())
        .await
        .unwrap_err();
    assert!(matches!(e, SnsError::SignatureMismatch), "{e:?}");

    // Other trust anchors replace the public roots: Amazon's chain does not reach them.
    let e = Verifier::new(&real_config(), source.clone())
        .unwrap()
        .trusting(test_trust())
        .verify(&msg, real_now())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "certificate_untrusted");
    assert_eq!(
        e.to_string(),
        format!(
            "signing certificate {REAL_CERT_URL} is not trusted as Amazon SNS's: its issuer \
             (CN=Amazon RSA 2048 M01,O=Amazon,C=US) does not chain to the configured \
             trust_anchors; if Amazon SNS has moved to an intermediate CA this version does not \
             carry, add that CA to [ingest.sns] intermediates"
        )
    );
}

#[tokio::test]
async fn pinned_amazon_sns_certificate_is_checked_without_network() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sns.pem");
    std::fs::write(&path, REAL_CERT_PEM).unwrap();
    let config = SnsConfig {
        certificates: [(REAL_CERT_URL.to_owned(), path)].into(),
        // Old enough to reach the certificate's expiry below.
        max_age_seconds: 400 * 86_400,
        ..real_config()
    };
    let source = Arc::new(FakeSource::default());
    let verifier = Verifier::new(&config, source.clone()).unwrap();
    let msg = SnsMessage::parse(REAL_CONFIRMATION.as_bytes()).unwrap();
    verifier.verify(&msg, real_now()).await.unwrap();
    assert_eq!(source.fetched(), Vec::<String>::new());

    // Once the certificate has expired, pinning does not keep it trusted.
    let e = verifier
        .verify(&msg, "2024-11-21T00:00:00Z".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "certificate_invalid", "{e}");
}

#[tokio::test]
async fn self_signed_certificate_named_for_sns_is_refused() {
    let name = Name::from_str("CN=sns.amazonaws.com").unwrap();
    let validity = (now() - TimeDelta::days(30), now() + TimeDelta::days(365));
    let self_signed_leaf = build_certificate(
        Profile::Leaf {
            issuer: name.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: true,
        },
        name.clone(),
        &KEY,
        &KEY,
        validity,
        Some("sns.amazonaws.com"),
    );
    let self_signed_ca = build_certificate(Profile::Root, name, &KEY, &KEY, validity, None);
    let msg = parse(&sign(notification(), "2", &KEY));
    for pem in [&self_signed_leaf, &self_signed_ca] {
        let source = FakeSource::serving(CERT_URL, pem);
        // As in production (public roots) and with the test root as anchor.
        for verifier in [
            Verifier::new(&config(), source.clone()).unwrap(),
            new_verifier(&config(), source.clone()).unwrap(),
        ] {
            let e = verifier.verify(&msg, now()).await.unwrap_err();
            assert!(matches!(e, SnsError::CertificateUntrusted { .. }), "{e:?}");
            assert!(
                e.to_string().starts_with(&format!(
                    "signing certificate {CERT_URL} is not trusted as Amazon SNS's: "
                )),
                "{e}"
            );
        }
    }
    let e = new_verifier(&config(), FakeSource::serving(CERT_URL, &self_signed_leaf))
        .unwrap()
        .verify(&msg, now())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains(
            "its issuer (CN=sns.amazonaws.com) does not chain to the configured trust_anchors"
        ),
        "{e}"
    );

    // Pinned, it is refused all the same.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("self-signed.pem");
    std::fs::write(&path, &self_signed_leaf).unwrap();
    let config = SnsConfig {
        certificates: [(CERT_URL.to_owned(), path)].into(),
        ..config()
    };
    let e = Verifier::new(&config, Arc::new(FakeSource::default()))
        .unwrap()
        .verify(&msg, now())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "certificate_untrusted", "{e}");
}

#[tokio::test]
async fn certificate_not_issued_to_sns_is_refused() {
    let validity = (now() - TimeDelta::days(30), now() + TimeDelta::days(365));
    let pem = issued_certificate_pem(&KEY, "www.example.com", validity.0, validity.1);
    let e = new_verifier(&config(), FakeSource::serving(CERT_URL, &pem))
        .unwrap()
        .verify(&parse(&sign(notification(), "2", &KEY)), now())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "certificate_untrusted");
    assert!(
        e.to_string().ends_with(
            "it is issued to neither sns.amazonaws.com nor sns.us-west-2.amazonaws.com, \
             so not to Amazon SNS"
        ),
        "{e}"
    );

    // Issued to the regional host of its URL, it passes.
    let pem = issued_certificate_pem(&KEY, "sns.us-west-2.amazonaws.com", validity.0, validity.1);
    new_verifier(&config(), FakeSource::serving(CERT_URL, &pem))
        .unwrap()
        .verify(&parse(&sign(notification(), "2", &KEY)), now())
        .await
        .unwrap();
}

#[tokio::test]
async fn chain_through_a_configured_intermediate_passes() {
    const INTERMEDIATE_NAME: &str = "CN=opsdesk test SNS intermediate,O=opsdesk";
    let validity = (now() - TimeDelta::days(30), now() + TimeDelta::days(365));
    let intermediate = build_certificate(
        Profile::SubCA {
            issuer: Name::from_str(ROOT_NAME).unwrap(),
            path_len_constraint: Some(0),
        },
        Name::from_str(INTERMEDIATE_NAME).unwrap(),
        &OTHER_KEY,
        &ROOT_KEY,
        validity,
        None,
    );
    let leaf = build_certificate(
        Profile::Leaf {
            issuer: Name::from_str(INTERMEDIATE_NAME).unwrap(),
            enable_key_agreement: false,
            enable_key_encipherment: true,
        },
        Name::from_str("CN=sns.amazonaws.com").unwrap(),
        &KEY,
        &OTHER_KEY,
        validity,
        Some("sns.amazonaws.com"),
    );
    let msg = parse(&sign(notification(), "2", &KEY));

    // Without the intermediate the chain stops short, and the refusal says what to add.
    let e = new_verifier(&config(), FakeSource::serving(CERT_URL, &leaf))
        .unwrap()
        .verify(&msg, now())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "certificate_untrusted");
    assert!(
        e.to_string().contains(&format!(
            "its issuer ({INTERMEDIATE_NAME}) does not chain to the configured trust_anchors"
        )),
        "{e}"
    );
    assert!(e.to_string().contains("[ingest.sns] intermediates"), "{e}");

    // Root and intermediate configured as files: it passes.
    let dir = tempfile::tempdir().unwrap();
    let root_path = dir.path().join("root.pem");
    let intermediate_path = dir.path().join("intermediate.pem");
    std::fs::write(&root_path, ROOT_PEM.as_bytes()).unwrap();
    std::fs::write(&intermediate_path, &intermediate).unwrap();
    let configured = SnsConfig {
        trust_anchors: vec![root_path],
        intermediates: vec![intermediate_path],
        ..config()
    };
    Verifier::new(&configured, FakeSource::serving(CERT_URL, &leaf))
        .unwrap()
        .verify(&msg, now())
        .await
        .unwrap();

    // The intermediate served after the leaf in the same PEM document does as well.
    let bundle = format!("{leaf}{intermediate}");
    new_verifier(&config(), FakeSource::serving(CERT_URL, &bundle))
        .unwrap()
        .verify(&msg, now())
        .await
        .unwrap();

    // An intermediate is not an anchor: configured alone, with the public roots, it fails.
    let intermediate_only = SnsConfig {
        intermediates: configured.intermediates.clone(),
        ..config()
    };
    let e = Verifier::new(&intermediate_only, FakeSource::serving(CERT_URL, &leaf))
        .unwrap()
        .verify(&msg, now())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "certificate_untrusted", "{e}");
}

#[test]
fn unusable_trust_files_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.path().join("missing.pem");
    for (path, reason) in [
        (&missing, "No such file"),
        (&garbage, "not PEM X.509 certificates"),
        (&empty, "it holds no certificate"),
    ] {
        for config in [
            SnsConfig {
                trust_anchors: vec![path.clone()],
                ..config()
            },
            SnsConfig {
                intermediates: vec![path.clone()],
                ..config()
            },
        ] {
            let e = Verifier::new(&config, Arc::new(FakeSource::default())).unwrap_err();
            assert_eq!(e.reason(), "trust_file");
            let text = e.to_string();
            assert!(
                text.starts_with(&format!(
                    "certificate file {} for the SNS certificate chain cannot be used: ",
                    path.display()
                )),
                "{text}"
            );
            assert!(text.contains(reason), "{text}");
        }
    }
}
