//! Whether a signing certificate was issued by Amazon: a chain from it to a trusted root, and
//! a name SNS signs as.
//!
//! SNS serves only the signing (leaf) certificate at `SigningCertURL`, so the intermediate CA
//! that issued it has to come from somewhere else. Amazon's intermediates for these
//! certificates are built in (see `intermediates/`), more can be configured, and the chain is
//! built by rustls-webpki, the same code that checks TLS server certificates for reqwest.
//! The leaf's "CA Issuers" URL is not fetched: it is plain HTTP on another host, a second
//! network dependency for every new certificate that air-gapped and pinned setups could not
//! meet; Amazon's intermediates change seldom (these four run to 2030), and one this version
//! lacks shows as a refusal naming the issuer, fixed by configuring it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use x509_cert::der::Encode as _;

use super::certificate::{pem_certificates, SigningCertificate};
use super::SnsError;

/// Amazon Trust Services' RSA 2048 intermediates M01 to M04 (each issued by Amazon Root CA 1,
/// valid until August 2030), which issue Amazon's public TLS certificates, SNS's signing
/// certificates among them (M01 issued the one in `testdata/`).
const AMAZON_INTERMEDIATES: [(&str, &str); 4] = [
    (
        "amazon-rsa-2048-m01.pem",
        include_str!("intermediates/amazon-rsa-2048-m01.pem"),
    ),
    (
        "amazon-rsa-2048-m02.pem",
        include_str!("intermediates/amazon-rsa-2048-m02.pem"),
    ),
    (
        "amazon-rsa-2048-m03.pem",
        include_str!("intermediates/amazon-rsa-2048-m03.pem"),
    ),
    (
        "amazon-rsa-2048-m04.pem",
        include_str!("intermediates/amazon-rsa-2048-m04.pem"),
    ),
];

/// The name SNS signing certificates are issued to in every commercial region; a certificate
/// issued to the `SigningCertURL`'s own host (`sns.<region>.amazonaws.com[.cn]`) passes too.
const SNS_NAME: &str = "sns.amazonaws.com";

/// What a signing certificate must chain to, and what the chain may pass through.
pub(super) struct Trust {
    anchors: Vec<TrustAnchor<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    /// Whether `anchors` are the built-in public roots, for messages and `Debug`.
    public_roots: bool,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("anchors", &self.anchors.len())
            .field("public_roots", &self.public_roots)
            .field("intermediates", &self.intermediates.len())
            .finish()
    }
}

impl Trust {
    /// The public web roots (Mozilla's list, as webpki-roots carries it) unless `anchor_files`
    /// name roots to use instead; Amazon's intermediates plus those in `intermediate_files`.
    ///
    /// Fails with [`SnsError::TrustFile`] if a file cannot be read or holds no usable
    /// certificate.
    pub(super) fn new(
        anchor_files: &[PathBuf],
        intermediate_files: &[PathBuf],
    ) -> Result<Trust, SnsError> {
        let read = |paths: &[PathBuf]| {
            paths
                .iter()
                .map(|path| {
                    std::fs::read(path)
                        .map(|pem| (path.clone(), pem))
                        .map_err(|e| trust_file(path, e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Trust::from_pems(&read(anchor_files)?, &read(intermediate_files)?)
    }

    /// [`Trust::new`] over PEM documents already read, each with the path it came from.
    pub(super) fn from_pems(
        anchor_pems: &[(PathBuf, Vec<u8>)],
        intermediate_pems: &[(PathBuf, Vec<u8>)],
    ) -> Result<Trust, SnsError> {
        let mut intermediates = Vec::new();
        for (name, pem) in AMAZON_INTERMEDIATES {
            let path = Path::new("(built in)").join(name);
            intermediates.extend(certificates(&path, pem.as_bytes())?);
        }
        for (path, pem) in intermediate_pems {
            intermediates.extend(certificates(path, pem)?);
        }
        if anchor_pems.is_empty() {
            return Ok(Trust {
                anchors: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                intermediates,
                public_roots: true,
            });
        }
        let mut anchors = Vec::new();
        for (path, pem) in anchor_pems {
            for der in certificates(path, pem)? {
                let anchor = webpki::anchor_from_trusted_cert(&der)
                    .map_err(|e| trust_file(path, format!("not a usable root certificate: {e}")))?;
                anchors.push(anchor.to_owned());
            }
        }
        Ok(Trust {
            anchors,
            intermediates,
            public_roots: false,
        })
    }

    /// Checks at `now` that `certificate` chains to a trust anchor through known intermediates,
    /// may serve as a TLS server certificate (as Amazon issues them), and is issued to
    /// `sns.amazonaws.com` or to `url_host`; the error is a reason for a message.
    pub(super) fn check(
        &self,
        certificate: &SigningCertificate,
        url_host: &str,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let leaf = webpki::EndEntityCert::try_from(&certificate.der)
            .map_err(|e| format!("it cannot be read to check its issuer: {e}"))?;
        let mut intermediates = certificate.chain.clone();
        intermediates.extend(self.intermediates.iter().cloned());
        let time = UnixTime::since_unix_epoch(Duration::from_secs(
            u64::try_from(now.timestamp()).unwrap_or(0),
        ));
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &intermediates,
            time,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| self.chain_reason(&e, &certificate.issuer))?;

        let named = [SNS_NAME, url_host].into_iter().any(|name| {
            ServerName::try_from(name)
                .is_ok_and(|name| leaf.verify_is_valid_for_subject_name(&name).is_ok())
        });
        if !named {
            return Err(format!(
                "it is issued to neither {SNS_NAME} nor {url_host}, so not to Amazon SNS"
            ));
        }
        Ok(())
    }

    fn chain_reason(&self, error: &webpki::Error, issuer: &str) -> String {
        let roots = if self.public_roots {
            "the public roots"
        } else {
            "the configured trust_anchors"
        };
        match error {
            webpki::Error::UnknownIssuer => format!(
                "its issuer ({issuer}) does not chain to {roots}; if Amazon SNS has moved to an \
                 intermediate CA this version does not carry, add that CA to \
                 [ingest.sns] intermediates"
            ),
            webpki::Error::CaUsedAsEndEntity => {
                format!("it is a CA certificate (issuer {issuer}), not a signing certificate")
            }
            other => format!("its chain to {roots} (issuer {issuer}) is refused: {other}"),
        }
    }
}

/// Every certificate of a PEM document, as DER; at least one.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, SnsError> {
    let parsed = pem_certificates(pem)
        .map_err(|e| trust_file(path, format!("not PEM X.509 certificates: {e}")))?;
    if parsed.is_empty() {
        return Err(trust_file(path, "it holds no certificate".to_owned()));
    }
    parsed
        .iter()
        .map(|c| {
            c.to_der()
                .map(CertificateDer::from)
                .map_err(|e| trust_file(path, format!("cannot encode a certificate: {e}")))
        })
        .collect()
}

fn trust_file(path: &Path, reason: String) -> SnsError {
    SnsError::TrustFile {
        path: path.to_path_buf(),
        reason,
    }
}
