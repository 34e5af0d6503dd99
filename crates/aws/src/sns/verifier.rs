use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier as _;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::Sha256;
use wildmatch::WildMatch;

use super::certificate::{check_signing_cert_url, CertificateSource, SigningCertificate};
use super::trust::Trust;
use super::{SignatureVersion, SnsError, SnsMessage};

/// How SNS messages are checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnsConfig {
    /// Topic ARNs whose messages are accepted; `*` matches any run of characters
    /// (`arn:aws:sns:*:123456789012:opsdesk-*`). Empty refuses every message.
    pub topics: Vec<String>,
    /// Certificates to use instead of fetching: `SigningCertURL` to a local PEM file. Read
    /// once, when the [`Verifier`] is built; checked like fetched ones, chain included.
    pub certificates: BTreeMap<String, PathBuf>,
    /// PEM files of intermediate CA certificates that a signing certificate's chain may pass
    /// through, beside Amazon's built in: for when SNS moves to an Amazon CA this version
    /// does not carry. They are not trusted by themselves: the chain must still reach a root.
    pub intermediates: Vec<PathBuf>,
    /// PEM files of the root certificates a signing certificate must chain to, instead of the
    /// public web roots built in. Empty (the default) for Amazon SNS; for tests and
    /// SNS-compatible services with their own CA.
    pub trust_anchors: Vec<PathBuf>,
    /// How old a message may be, by its `Timestamp`.
    pub max_age_seconds: u64,
}

impl Default for SnsConfig {
    fn default() -> SnsConfig {
        SnsConfig {
            topics: Vec::new(),
            certificates: BTreeMap::new(),
            intermediates: Vec::new(),
            trust_anchors: Vec::new(),
            max_age_seconds: 3600,
        }
    }
}

/// How far ahead of our clock a message may be dated: clocks drift.
const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

/// How many fetched certificates are kept. SNS signs with one certificate per region at a
/// time, so a handful is plenty; the cap stops a flood of valid-looking URLs growing memory.
const CACHE_CAPACITY: usize = 16;

/// Checks that SNS messages come from SNS, for allowed topics, recently.
pub struct Verifier {
    topics: Vec<WildMatch>,
    max_age: TimeDelta,
    pinned: HashMap<String, Arc<SigningCertificate>>,
    trust: Trust,
    source: Arc<dyn CertificateSource>,
    cache: Mutex<HashMap<String, Arc<SigningCertificate>>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("topics", &self.topics)
            .field("max_age", &self.max_age)
            .field("pinned", &self.pinned.keys().collect::<Vec<_>>())
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Builds a verifier, reading the pinned certificates, intermediates and trust anchors now.
    ///
    /// Fails with [`SnsError::PinnedCertificate`] if a pinned URL is not an SNS certificate URL
    /// or its file is not a readable PEM certificate with an RSA key, and with
    /// [`SnsError::TrustFile`] if an intermediate or trust anchor file is not readable PEM
    /// certificates.
    pub fn new(
        config: &SnsConfig,
        source: Arc<dyn CertificateSource>,
    ) -> Result<Verifier, SnsError> {
        let mut pinned = HashMap::new();
        for (url, path) in &config.certificates {
            let pin_error = |reason: String| SnsError::PinnedCertificate {
                url: url.clone(),
                path: path.clone(),
                reason,
            };
            let checked = check_signing_cert_url(url).map_err(|e| pin_error(e.to_string()))?;
            let pem = std::fs::read(path).map_err(|e| pin_error(e.to_string()))?;
            let certificate = SigningCertificate::from_pem(&pem).map_err(pin_error)?;
            pinned.insert(checked.to_string(), Arc::new(certificate));
        }
        Ok(Verifier {
            topics: config.topics.iter().map(|t| WildMatch::new(t)).collect(),
            max_age: TimeDelta::seconds(i64::try_from(config.max_age_seconds).unwrap_or(i64::MAX)),
            pinned,
            trust: Trust::new(&config.trust_anchors, &config.intermediates)?,
            source,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The same verifier with other trust anchors and intermediates.
    #[cfg(test)]
    pub(super) fn trusting(mut self, trust: Trust) -> Verifier {
        self.trust = trust;
        self
    }

    /// Checks `msg` as of `now`: topic, age, certificate URL, certificate, its issuer, then
    /// signature.
    ///
    /// Only the certificate step may fetch, and only from a URL that passed
    /// [`check_signing_cert_url`](super::check_signing_cert_url).
    pub async fn verify(&self, msg: &SnsMessage, now: DateTime<Utc>) -> Result<(), SnsError> {
        if !self.topics.iter().any(|t| t.matches(&msg.topic_arn)) {
            return Err(SnsError::TopicNotAllowed(msg.topic_arn.clone()));
        }
        let age = now - msg.timestamp;
        if age > self.max_age {
            return Err(SnsError::TooOld {
                age,
                max_age: self.max_age,
            });
        }
        if -age > MAX_CLOCK_SKEW {
            return Err(SnsError::FromTheFuture(-age));
        }

        let url = check_signing_cert_url(&msg.signing_cert_url)?;
        let certificate = self.certificate(&url).await?;
        certificate
            .check_validity(now)
            .map_err(|reason| SnsError::CertificateInvalid {
                url: msg.signing_cert_url.clone(),
                reason,
            })?;
        self.trust
            .check(&certificate, url.host_str().unwrap_or_default(), now)
            .map_err(|reason| SnsError::CertificateUntrusted {
                url: msg.signing_cert_url.clone(),
                reason,
            })?;

        let text = msg.canonical_string()?;
        let signature = Signature::try_from(msg.signature.as_slice())
            .map_err(|_| SnsError::SignatureMismatch)?;
        let key = certificate.key.clone();
        let verified = match msg.signature_version {
            SignatureVersion::Sha1 => {
                VerifyingKey::<Sha1>::new(key).verify(text.as_bytes(), &signature)
            }
            SignatureVersion::Sha256 => {
                VerifyingKey::<Sha256>::new(key).verify(text.as_bytes(), &signature)
            }
        };
        verified.map_err(|_| SnsError::SignatureMismatch)
    }

    /// The certificate at `url`: pinned, else cached, else fetched and cached.
    async fn certificate(&self, url: &reqwest::Url) -> Result<Arc<SigningCertificate>, SnsError> {
        let key = url.as_str();
        if let Some(pinned) = self.pinned.get(key) {
            return Ok(pinned.clone());
        }
        if let Some(cached) = self.cache().get(key) {
            return Ok(cached.clone());
        }

        let pem = self.source.fetch(url).await?;
        let certificate = SigningCertificate::from_pem(&pem)
            .map(Arc::new)
            .map_err(|reason| SnsError::CertificateInvalid {
                url: key.to_owned(),
                reason,
            })?;

        let mut cache = self.cache();
        if cache.len() >= CACHE_CAPACITY && !cache.contains_key(key) {
            // Any entry will do: a certificate still in use is fetched again once.
            if let Some(evicted) = cache.keys().next().cloned() {
                cache.remove(&evicted);
            }
        }
        cache.insert(key.to_owned(), certificate.clone());
        Ok(certificate)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SigningCertificate>>> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(super) fn cached_urls(&self) -> usize {
        self.cache().len()
    }
}
