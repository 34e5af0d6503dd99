//! `sns`: requests by email through Amazon SES and SNS, end to end. Each message is an SES
//! receipt (the SNS action, content inline) in an SNS notification signed as SNS signs
//! (`SignatureVersion` 2, RSA with SHA-256), posted to `POST /api/v1/ingest/sns`, which checks
//! the signature against the configured certificate and trust anchor and takes the mail before
//! it answers. The figure is messages taken per second.
//!
//! SNS's own signing key is Amazon's, so `sns-keys` makes a stand-in: a root (the server's
//! `trust_anchors`), a signing certificate it issued, shaped like SNS's (the server's
//! pinned `certificates`), and the signing key this command reads. Every message is signed
//! before the clock starts, so the figure is the server's, not the signing's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use base64::Engine as _;
use clap::Args;
use reqwest::header::CONTENT_TYPE;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
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

use crate::run::{workers, Budget};
use crate::stats::{Report, Samples};
use crate::target::Target;

/// The topic SES publishes receipts to in the benchmark's configuration.
pub const TOPIC: &str = "arn:aws:sns:eu-west-1:111122223333:opsdesk-bench-mail";
/// Where the stand-in signing certificate is pinned; shaped like SNS's own addresses.
pub const CERT_URL: &str = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-00000000000000000000000000bec4c4.pem";
const ROOT_NAME: &str = "CN=opsdesk-bench SNS root,O=opsdesk";
const ROOT_FILE: &str = "root.pem";
const CERT_FILE: &str = "sns.pem";
const KEY_FILE: &str = "sns-key.pem";

#[derive(Args)]
pub struct SnsKeysArgs {
    /// Folder to write the root, the signing certificate and its key into (made if missing).
    #[arg(long)]
    pub dir: PathBuf,
}

#[derive(Args)]
pub struct SnsArgs {
    /// Messages to send.
    #[arg(long, default_value_t = 2000)]
    pub messages: u64,
    /// Requests sent at the same time, each on its own keep-alive connection.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// The folder `sns-keys` wrote, whose signing key signs the messages.
    #[arg(long)]
    pub keys: PathBuf,
}

/// A certificate for `key`, signed by `issuer_key`, valid from a day ago for a year.
fn certificate(
    profile: Profile,
    subject: &str,
    key: &RsaPrivateKey,
    issuer_key: &RsaPrivateKey,
    dns_name: Option<&str>,
) -> anyhow::Result<String> {
    #[allow(clippy::disallowed_methods)] // certificates are checked against the real clock
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let validity = Validity {
        not_before: Time::try_from(now - day)?,
        not_after: Time::try_from(now + 365 * day)?,
    };
    let signer = SigningKey::<sha2::Sha256>::new(issuer_key.clone());
    let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key())?;
    let serial = SerialNumber::from(rand::random::<u32>() & 0x7fff_ffff);
    let mut builder = CertificateBuilder::new(
        profile,
        serial,
        validity,
        Name::from_str(subject)?,
        spki,
        &signer,
    )?;
    if let Some(dns_name) = dns_name {
        let san = SubjectAltName(vec![GeneralName::DnsName(Ia5String::new(dns_name)?)]);
        builder.add_extension(&san)?;
    }
    Ok(builder
        .build::<rsa::pkcs1v15::Signature>()?
        .to_pem(LineEnding::LF)?)
}

/// Writes the stand-in root, signing certificate and key into `dir`, and returns the server
/// configuration that trusts them.
pub fn write_keys(args: &SnsKeysArgs) -> anyhow::Result<String> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    let mut rng = rand::thread_rng();
    let root_key = RsaPrivateKey::new(&mut rng, 2048)?;
    let key = RsaPrivateKey::new(&mut rng, 2048)?;
    let root = certificate(Profile::Root, ROOT_NAME, &root_key, &root_key, None)?;
    let leaf = Profile::Leaf {
        issuer: Name::from_str(ROOT_NAME)?,
        enable_key_agreement: false,
        enable_key_encipherment: true,
    };
    let signing = certificate(
        leaf,
        "CN=sns.amazonaws.com",
        &key,
        &root_key,
        Some("sns.amazonaws.com"),
    )?;
    let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("{}", path.display()))?;
        Ok(std::fs::canonicalize(&path)?)
    };
    let root_path = write(ROOT_FILE, &root)?;
    let cert_path = write(CERT_FILE, &signing)?;
    // Whoever holds the key can sign messages the configured server trusts: only its owner
    // may read it, from the start.
    let key_path = dir.join(KEY_FILE);
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let _ = std::fs::remove_file(&key_path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .with_context(|| format!("{}", key_path.display()))?;
        f.write_all(key.to_pkcs8_pem(LineEnding::LF)?.as_bytes())?;
    }
    Ok(format!(
        "# Written {root}, {cert} and {KEY_FILE}. Give the server under test:\n\
         [ingest.sns]\n\
         topics = [\"{TOPIC}\"]\n\
         trust_anchors = [\"{root}\"]\n\
         [ingest.sns.certificates]\n\
         \"{CERT_URL}\" = \"{cert}\"\n\n\
         [email]\n\
         ses_topics = [\"{TOPIC}\"]\n\
         ses_create_requesters = true\n",
        root = root_path.display(),
        cert = cert_path.display(),
    ))
}

fn read_key(dir: &Path) -> anyhow::Result<RsaPrivateKey> {
    let path = dir.join(KEY_FILE);
    let pem = std::fs::read_to_string(&path)
        .with_context(|| format!("{} (run `opsdesk-bench sns-keys` first)", path.display()))?;
    RsaPrivateKey::from_pkcs8_pem(&pem).with_context(|| format!("{}", path.display()))
}

/// The text SNS signs for a notification: each present field's name and value, one per line,
/// in this order.
fn string_to_sign(n: &Value) -> String {
    let mut text = String::new();
    for k in [
        "Message",
        "MessageId",
        "Subject",
        "Timestamp",
        "TopicArn",
        "Type",
    ] {
        if let Some(v) = n.get(k).and_then(Value::as_str) {
            let _ = write!(text, "{k}\n{v}\n");
        }
    }
    text
}

/// Message `n` of run `run`: a new request from a sender of its own, as SES's receipt
/// rule's SNS action publishes it, in a signed SNS notification.
fn notification(signer: &SigningKey<sha2::Sha256>, run: &str, n: u64, at: &str) -> String {
    let sender = format!("person{n}.{run}@bench.example.com");
    let raw = format!(
        "From: Person {n} <{sender}>\r\n\
         To: support@desk.example.com\r\n\
         Subject: Printer {n} on floor {} is jammed\r\n\
         Message-ID: <bench-{run}-{n}@bench.example.com>\r\n\
         Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         The printer shows error E{n} and will not print.\r\n\r\n-- \r\nPerson {n}\r\n",
        n % 12
    );
    let verdict = json!({"status": "PASS"});
    let receipt = json!({
        "notificationType": "Received",
        "mail": {
            "timestamp": at,
            "source": sender,
            "messageId": format!("bench{run}x{n}"),
            "destination": ["support@desk.example.com"],
            "headersTruncated": false,
            "commonHeaders": {"returnPath": sender, "from": [sender], "subject": "Printer"}
        },
        "receipt": {
            "timestamp": at,
            "processingTimeMillis": 120,
            "recipients": ["support@desk.example.com"],
            "spamVerdict": verdict, "virusVerdict": verdict, "spfVerdict": verdict,
            "dkimVerdict": verdict, "dmarcVerdict": verdict,
            "action": {"type": "SNS", "topicArn": TOPIC, "encoding": "UTF8"}
        },
        "content": raw
    });
    let mut note = json!({
        "Type": "Notification",
        "MessageId": format!("bench-{run}-{n}"),
        "TopicArn": TOPIC,
        "Subject": "Amazon SES Email Receipt Notification",
        "Message": receipt.to_string(),
        "Timestamp": at,
        "SignatureVersion": "2",
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:eu-west-1:111122223333:opsdesk-bench-mail:1"
    });
    let signature = signer.sign(string_to_sign(&note).as_bytes()).to_vec();
    note["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(signature));
    note.to_string()
}

/// What the server said it did with each message (`ticket`, `comment`, `held`, `seen`...).
#[derive(Default)]
pub struct Tally {
    pub outcomes: BTreeMap<String, u64>,
}

impl Tally {
    pub fn to_text(&self) -> String {
        let mut out = String::from("outcomes:");
        for (k, v) in &self.outcomes {
            let _ = write!(out, " {k}={v}");
        }
        out.push('\n');
        out
    }

    pub fn add_to(&self, summary: &mut Value) {
        summary["outcomes"] = json!(self.outcomes);
    }
}

pub async fn run(
    target: &Target,
    args: &SnsArgs,
    seed: u64,
    limit: Duration,
) -> anyhow::Result<(Report, Tally)> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let signer = SigningKey::<sha2::Sha256>::new(read_key(&args.keys)?);
    // Ids carry the run's start, so a second run against the same server is new mail too.
    #[allow(clippy::disallowed_methods)] // the server checks a message's age against the real clock
    let started_at = chrono::Utc::now();
    let run = format!("{seed}t{}", started_at.timestamp_millis());
    let at = started_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let bodies: std::sync::Arc<Vec<String>> = std::sync::Arc::new(
        (0..args.messages)
            .map(|n| notification(&signer, &run, n, &at))
            .collect(),
    );
    let url = target.url("/api/v1/ingest/sns")?;
    let budget = Budget::new(args.messages, limit);
    let (results, elapsed) = workers(args.concurrency, |_| {
        let budget = budget.clone();
        let bodies = bodies.clone();
        let client = target.client().clone();
        let url = url.clone();
        async move {
            let mut samples = Samples::default();
            let mut outcomes = BTreeMap::<String, u64>::new();
            while let Some(n) = budget.take() {
                let Some(body) = usize::try_from(n).ok().and_then(|i| bodies.get(i)) else {
                    break;
                };
                let sent = std::time::Instant::now();
                // SNS posts its JSON as text/plain, without a token: the signature is the proof.
                let reply = client
                    .post(url.clone())
                    .header(CONTENT_TYPE, "text/plain; charset=UTF-8")
                    .header("x-amz-sns-message-type", "Notification")
                    .body(body.clone())
                    .send()
                    .await;
                let answer = match reply {
                    Ok(r) => {
                        let status = r.status();
                        match r.bytes().await {
                            Ok(b) if status.is_success() => Ok(b),
                            Ok(b) => Err(format!("{status}: {}", String::from_utf8_lossy(&b))),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                match answer {
                    Ok(b) => {
                        samples.ok(sent.elapsed());
                        let outcome = serde_json::from_slice::<Value>(&b)
                            .ok()
                            .and_then(|v| v["mail"].as_str().map(str::to_owned))
                            .unwrap_or_else(|| "other".into());
                        *outcomes.entry(outcome).or_default() += 1;
                    }
                    Err(e) => samples.failed(e),
                }
            }
            (samples, outcomes)
        }
    })
    .await?;
    let mut tally = Tally::default();
    let mut all = Vec::new();
    for (samples, outcomes) in results {
        all.push(samples);
        for (k, v) in outcomes {
            *tally.outcomes.entry(k).or_default() += v;
        }
    }
    let posted = Samples::merged(all);
    let done = posted.count();
    let mut report = Report::new(
        "sns",
        args.concurrency,
        args.messages,
        elapsed,
        vec![("notification", posted)],
    );
    let tickets = tally.outcomes.get("ticket").copied().unwrap_or(0);
    report.tickets = Some(tickets);
    if done < args.messages {
        report.stopped_early = true;
    }
    if tickets < done {
        report
            .first_errors
            .push(format!("{tickets} of {done} messages became tickets"));
    }
    Ok((report, tally))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::VerifyingKey;
    use rsa::signature::Verifier as _;

    #[test]
    fn notifications_are_signed_over_the_fields_sns_signs() {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let signer = SigningKey::<sha2::Sha256>::new(key.clone());
        let a: Value =
            serde_json::from_str(&notification(&signer, "r", 1, "2026-12-07T10:00:00.000Z"))
                .unwrap();
        let b: Value =
            serde_json::from_str(&notification(&signer, "r", 2, "2026-12-07T10:00:00.000Z"))
                .unwrap();
        assert_ne!(a["MessageId"], b["MessageId"]);
        let signature = base64::engine::general_purpose::STANDARD
            .decode(a["Signature"].as_str().unwrap())
            .unwrap();
        // Checked over the text the server itself signs.
        let parsed = opsdesk_aws::sns::SnsMessage::parse(a.to_string().as_bytes()).unwrap();
        let canonical = parsed.canonical_string().unwrap();
        let verifier = VerifyingKey::<sha2::Sha256>::new(key.to_public_key());
        let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice()).unwrap();
        verifier.verify(canonical.as_bytes(), &signature).unwrap();
        // The receipt inside names its sender and carries the message inline.
        let receipt: Value = serde_json::from_str(a["Message"].as_str().unwrap()).unwrap();
        assert_eq!(receipt["receipt"]["action"]["type"], "SNS");
        assert!(receipt["content"]
            .as_str()
            .unwrap()
            .contains("Message-ID: <bench-r-1@bench.example.com>"));
    }

    #[test]
    fn keys_are_written_with_a_configuration_that_names_them() {
        let dir = std::env::temp_dir().join(format!("opsdesk-bench-keys-{}", std::process::id()));
        let config = write_keys(&SnsKeysArgs { dir: dir.clone() }).unwrap();
        assert!(config.contains(CERT_URL));
        assert!(config.contains("root.pem"));
        read_key(&dir).unwrap();
        let mode = std::fs::metadata(dir.join(KEY_FILE)).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert!(std::fs::read_to_string(dir.join(CERT_FILE))
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
