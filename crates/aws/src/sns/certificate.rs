use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Url;
use rsa::pkcs8::DecodePublicKey as _;
use rsa::traits::PublicKeyParts as _;
use rsa::RsaPublicKey;
use rustls_pki_types::CertificateDer;
use x509_cert::der::Encode as _;
use x509_cert::Certificate;

use super::SnsError;

/// Where signing certificates come from when they are neither pinned nor cached.
#[async_trait]
pub trait CertificateSource: Send + Sync {
    /// Returns the PEM document at `url`, which has passed [`check_signing_cert_url`].
    ///
    /// Failures are [`SnsError::CertificateUnavailable`].
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>, SnsError>;
}

/// Fetches certificates from SNS over HTTPS with reqwest: no redirects, short timeouts, a
/// 64 KiB cap on the body.
#[derive(Debug, Clone)]
pub struct HttpsCertificateSource {
    client: reqwest::Client,
}

/// SNS certificates are about 2 KiB; anything much larger is not one.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

impl HttpsCertificateSource {
    /// A source with its own client: 5 s to connect, 10 s in all, https only, no redirects
    /// (a redirect would lead away from the URL that was checked).
    pub fn new() -> Result<HttpsCertificateSource, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .build()?;
        Ok(HttpsCertificateSource { client })
    }

    /// A source that uses `client`, for example one shared by the server. The client should
    /// not follow redirects.
    pub fn with_client(client: reqwest::Client) -> HttpsCertificateSource {
        HttpsCertificateSource { client }
    }
}

#[async_trait]
impl CertificateSource for HttpsCertificateSource {
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>, SnsError> {
        let unavailable = |reason: String| SnsError::CertificateUnavailable {
            url: url.to_string(),
            reason,
        };
        tracing::debug!(%url, "fetching SNS signing certificate");
        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP status {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_CERTIFICATE_BYTES {
                return Err(unavailable(format!(
                    "body is larger than {MAX_CERTIFICATE_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Checks that `url` is where SNS keeps its signing certificates:
/// `https://sns.<region>.amazonaws.com/<name>.pem` (or `.amazonaws.com.cn`), with no user
/// info, no port but 443, no query and no fragment.
///
/// Returns the parsed URL; the error is [`SnsError::CertificateUrl`].
pub fn check_signing_cert_url(url: &str) -> Result<Url, SnsError> {
    let refuse = |reason: String| SnsError::CertificateUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed = Url::parse(url).map_err(|e| refuse(format!("not a URL: {e}")))?;
    if parsed.scheme() != "https" {
        return Err(refuse(format!("scheme {} is not https", parsed.scheme())));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse("it carries user info".to_owned()));
    }
    // `port()` is None for an explicit :443, which the URL parser drops as the default.
    if let Some(port) = parsed.port() {
        return Err(refuse(format!("port {port} is not 443")));
    }
    let host = parsed.host_str().unwrap_or_default();
    if !is_sns_host(host) {
        return Err(refuse(format!("host {host} is not an SNS host")));
    }
    if !parsed.path().ends_with(".pem") {
        return Err(refuse(format!("path {} is not a .pem file", parsed.path())));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(refuse("it has a query or fragment".to_owned()));
    }
    Ok(parsed)
}

/// Checks that a SubscribeURL goes to SNS itself (https, an SNS host, no user info or port),
/// so that confirming a subscription can never be turned into a request elsewhere.
pub fn check_subscribe_url(url: &str) -> Result<Url, SnsError> {
    let refuse = |reason: String| SnsError::Malformed(format!("SubscribeURL {url}: {reason}"));
    let parsed = Url::parse(url).map_err(|e| refuse(format!("not a URL: {e}")))?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    if parsed.scheme() != "https"
        || !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.port().is_some()
        || !is_sns_host(&host)
    {
        return Err(refuse(format!("must be https on an SNS host, not {host}")));
    }
    Ok(parsed)
}

/// `sns.<region>.amazonaws.com` or `sns.<region>.amazonaws.com.cn`.
fn is_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"));
    region.is_some_and(is_region)
}

/// A region name such as `us-east-1` or `us-gov-west-1`. Strict on purpose: a looser match
/// would accept `sns.s3.amazonaws.com` or `sns.s3-external-1.amazonaws.com`, S3 buckets that
/// anyone can name `sns`.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return false;
    };
    first.len() == 2
        && first.bytes().all(|b| b.is_ascii_lowercase())
        && !middle.is_empty()
        && middle
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
}

/// The parts of a signing certificate the check needs.
#[derive(Debug, Clone)]
pub(super) struct SigningCertificate {
    pub(super) key: RsaPublicKey,
    pub(super) not_before: DateTime<Utc>,
    pub(super) not_after: DateTime<Utc>,
    /// The certificate itself, for the check of its chain.
    pub(super) der: CertificateDer<'static>,
    /// Its issuer's name (RFC 4514), for messages.
    pub(super) issuer: String,
    /// Any further certificates of the same PEM document, offered as intermediates.
    pub(super) chain: Vec<CertificateDer<'static>>,
}

/// Weaker keys are refused; SNS uses 2048 bits.
const MIN_KEY_BITS: usize = 2048;

impl SigningCertificate {
    /// Reads a PEM certificate with an RSA key, followed by any certificates of its chain;
    /// the error is a reason for a message.
    pub(super) fn from_pem(pem: &[u8]) -> Result<SigningCertificate, String> {
        let mut certs = pem_certificates(pem)
            .map_err(|e| format!("not a PEM X.509 certificate: {e}"))?
            .into_iter();
        let cert = certs
            .next()
            .ok_or_else(|| "not a PEM X.509 certificate: it holds none".to_owned())?;
        let der = |c: &Certificate| {
            c.to_der()
                .map(CertificateDer::from)
                .map_err(|e| format!("cannot encode the certificate: {e}"))
        };
        let chain = certs.map(|c| der(&c)).collect::<Result<Vec<_>, _>>()?;
        let tbs = &cert.tbs_certificate;
        let spki = tbs
            .subject_public_key_info
            .to_der()
            .map_err(|e| format!("bad public key: {e}"))?;
        let key = RsaPublicKey::from_public_key_der(&spki)
            .map_err(|e| format!("not an RSA public key: {e}"))?;
        let bits = key.n().bits();
        if bits < MIN_KEY_BITS {
            return Err(format!(
                "RSA key of {bits} bits is shorter than {MIN_KEY_BITS}"
            ));
        }
        let time = |t: x509_cert::time::Time| {
            let unix = t.to_unix_duration();
            i64::try_from(unix.as_secs())
                .ok()
                .and_then(|secs| DateTime::from_timestamp(secs, 0))
                .ok_or_else(|| format!("validity time {t} is out of range"))
        };
        Ok(SigningCertificate {
            key,
            not_before: time(tbs.validity.not_before)?,
            not_after: time(tbs.validity.not_after)?,
            der: der(&cert)?,
            issuer: tbs.issuer.to_string(),
            chain,
        })
    }

    /// Whether the certificate is valid at `now`; the error is a reason for a message.
    pub(super) fn check_validity(&self, now: DateTime<Utc>) -> Result<(), String> {
        if now < self.not_before {
            return Err(format!("it is not valid before {}", self.not_before));
        }
        if now > self.not_after {
            return Err(format!("it expired at {}", self.not_after));
        }
        Ok(())
    }
}

/// The certificates of a PEM document, in order; an empty list for a blank one.
pub(super) fn pem_certificates(pem: &[u8]) -> Result<Vec<Certificate>, x509_cert::der::Error> {
    // `load_pem_chain` underflows on a document that is empty once its line ends are trimmed.
    if pem.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    Certificate::load_pem_chain(pem)
}
