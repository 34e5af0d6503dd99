//! Amazon SNS messages delivered to an HTTP(S) endpoint, and the check that SNS sent them.
//!
//! SNS posts a JSON document for every notification and for every subscription change. Anyone
//! can post the same shape, so a message is trusted only after [`Verifier::verify`] has checked,
//! in this order and without network access for the first three:
//!
//! 1. its `TopicArn` is on the configured allow-list ([`SnsConfig::topics`]);
//! 2. its `Timestamp` is at most [`SnsConfig::max_age_seconds`] old and at most
//!    five minutes in the future;
//! 3. its `SigningCertURL` is `https://sns.<region>.amazonaws.com[.cn]/….pem`, nothing else;
//! 4. the certificate at that URL (pinned in [`SnsConfig::certificates`], else cached, else
//!    fetched through a [`CertificateSource`]) is valid at `now`;
//! 5. that certificate was issued by Amazon: it chains, through Amazon's intermediate CAs
//!    (built in, or added in [`SnsConfig::intermediates`]), to a public root (or to
//!    [`SnsConfig::trust_anchors`] when set), valid at `now`, and is issued to
//!    `sns.amazonaws.com` or to the URL's host. Pinned certificates are checked the same way;
//! 6. its `Signature` is an RSA PKCS#1 v1.5 signature by that certificate's key over the
//!    [canonical string](SnsMessage::canonical_string), with SHA-1 for `SignatureVersion` 1
//!    and SHA-256 for 2.
//!
//! ```no_run
//! # async fn example(body: &[u8], now: chrono::DateTime<chrono::Utc>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use opsdesk_aws::sns::{HttpsCertificateSource, SnsConfig, SnsMessage, Verifier};
//!
//! let config = SnsConfig {
//!     topics: vec!["arn:aws:sns:*:123456789012:opsdesk-*".to_owned()],
//!     ..SnsConfig::default()
//! };
//! let verifier = Verifier::new(&config, Arc::new(HttpsCertificateSource::new()?))?;
//! let message = SnsMessage::parse(body)?;
//! verifier.verify(&message, now).await?;
//! # Ok(()) }
//! ```

mod certificate;
mod message;
pub mod publish;
mod trust;
mod verifier;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use chrono::TimeDelta;

pub use certificate::{
    check_signing_cert_url, check_subscribe_url, CertificateSource, HttpsCertificateSource,
};
pub use message::{MessageType, SignatureVersion, SnsMessage};
pub use publish::{PublishError, SnsPublisher};
pub use verifier::{SnsConfig, Verifier};

/// Why an SNS message was refused.
///
/// [`SnsError::Malformed`] is the sender's mistake (HTTP 400);
/// [`SnsError::CertificateUnavailable`] is a failure to reach SNS (HTTP 502, worth a retry by
/// SNS); [`SnsError::PinnedCertificate`] and [`SnsError::TrustFile`] only come from
/// [`Verifier::new`]; every other variant
/// means the message is not to be trusted (HTTP 403). [`SnsError::reason`] names the variant
/// for a metrics label.
#[derive(Debug, thiserror::Error)]
pub enum SnsError {
    /// The body is not an SNS message: bad JSON, or a field missing or of the wrong form.
    #[error("not an SNS message: {0}")]
    Malformed(String),
    /// `SigningCertURL` is not an SNS certificate URL; nothing was fetched.
    #[error("SigningCertURL {url} is refused: {reason}")]
    CertificateUrl { url: String, reason: String },
    /// `TopicArn` matches no entry of the allow-list.
    #[error("topic {0} is not on the allow-list")]
    TopicNotAllowed(String),
    /// `Timestamp` is older than the configured maximum age.
    #[error("message is {} old, more than the {} accepted", span(*.age), span(*.max_age))]
    TooOld { age: TimeDelta, max_age: TimeDelta },
    /// `Timestamp` is further in the future than clocks drift.
    #[error("message is dated {} in the future", span(*.0))]
    FromTheFuture(TimeDelta),
    /// The signing certificate could not be fetched.
    #[error("signing certificate {url} could not be fetched: {reason}")]
    CertificateUnavailable { url: String, reason: String },
    /// The signing certificate is not a usable RSA certificate, or not valid at `now`.
    #[error("signing certificate {url} is refused: {reason}")]
    CertificateInvalid { url: String, reason: String },
    /// The signing certificate was not issued by Amazon to SNS: no chain to a trusted root
    /// through known intermediates, or not issued to an SNS name.
    #[error("signing certificate {url} is not trusted as Amazon SNS's: {reason}")]
    CertificateUntrusted { url: String, reason: String },
    /// The signature was not made by the certificate's key over this message.
    #[error("signature does not match")]
    SignatureMismatch,
    /// A certificate pinned in the configuration cannot be used.
    #[error("pinned certificate {} for {url} cannot be used: {reason}", .path.display())]
    PinnedCertificate {
        url: String,
        path: PathBuf,
        reason: String,
    },
    /// A trust anchor or intermediate certificate file in the configuration cannot be used.
    #[error("certificate file {} for the SNS certificate chain cannot be used: {reason}", .path.display())]
    TrustFile { path: PathBuf, reason: String },
}

impl SnsError {
    /// A short, stable name of the variant, for metrics labels and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            SnsError::Malformed(_) => "malformed",
            SnsError::CertificateUrl { .. } => "certificate_url",
            SnsError::TopicNotAllowed(_) => "topic_not_allowed",
            SnsError::TooOld { .. } => "too_old",
            SnsError::FromTheFuture(_) => "from_the_future",
            SnsError::CertificateUnavailable { .. } => "certificate_unavailable",
            SnsError::CertificateInvalid { .. } => "certificate_invalid",
            SnsError::CertificateUntrusted { .. } => "certificate_untrusted",
            SnsError::SignatureMismatch => "signature_mismatch",
            SnsError::PinnedCertificate { .. } => "pinned_certificate",
            SnsError::TrustFile { .. } => "trust_file",
        }
    }
}

/// A duration as a person says it: "45 seconds", "12 minutes", "2 hours", "3 days".
fn span(d: TimeDelta) -> String {
    let seconds = d.num_seconds().unsigned_abs();
    match seconds {
        1 => "1 second".to_owned(),
        s if s < 120 => format!("{s} seconds"),
        s if s < 120 * 60 => format!("{} minutes", s / 60),
        s if s < 48 * 3600 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}
