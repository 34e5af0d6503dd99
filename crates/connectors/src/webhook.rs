//! Checks of the calls other systems make to opsdesk's connector webhook.

use hmac::{Hmac, Mac};
use opsdesk_core::connectors::RemoteError;
use opsdesk_domain::connector::ConnectorSpec;
use sha2::Sha256;

/// The header an RT scrip or a ServiceNow business rule sends the connector's
/// `webhook_secret` in.
pub const SECRET_HEADER: &str = "x-opsdesk-webhook-secret";

fn secret(spec: &ConnectorSpec) -> Result<&str, RemoteError> {
    spec.webhook_secret
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            RemoteError::Refused(format!(
                "the webhook of connector {:?} is off: it has no webhook_secret",
                spec.name
            ))
        })
}

/// The call carries the connector's secret in [`SECRET_HEADER`] (compared in constant time).
pub fn shared_secret(
    spec: &ConnectorSpec,
    header: &dyn Fn(&str) -> Option<String>,
) -> Result<(), RemoteError> {
    let expected = secret(spec)?;
    let given = header(SECRET_HEADER).unwrap_or_default();
    // Both through the same keyed hash, compared by the MAC's constant-time check.
    let tag = |v: &str| -> Result<Hmac<Sha256>, RemoteError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"opsdesk webhook secret check")
            .map_err(|e| RemoteError::Refused(e.to_string()))?;
        mac.update(v.as_bytes());
        Ok(mac)
    };
    let want = tag(expected)?.finalize().into_bytes();
    tag(given.trim())?
        .verify_slice(&want)
        .map_err(|_| RemoteError::Refused(format!("{SECRET_HEADER} is missing or wrong")))
}

/// The call carries `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>` keyed with the
/// connector's secret (Jira's webhooks, WebSub's scheme).
pub fn hub_signature(
    spec: &ConnectorSpec,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
) -> Result<(), RemoteError> {
    let expected = secret(spec)?;
    let given = header("x-hub-signature").unwrap_or_default();
    let Some(hex_sig) = given.trim().strip_prefix("sha256=") else {
        return Err(RemoteError::Refused(
            "X-Hub-Signature is missing or not sha256=<hex>".into(),
        ));
    };
    let sig = hex::decode(hex_sig)
        .map_err(|_| RemoteError::Refused("X-Hub-Signature is not hex".into()))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(expected.as_bytes())
        .map_err(|e| RemoteError::Refused(e.to_string()))?;
    mac.update(body);
    mac.verify_slice(&sig)
        .map_err(|_| RemoteError::Refused("X-Hub-Signature does not match the body".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(secret: Option<&str>) -> ConnectorSpec {
        serde_json::from_value(serde_json::json!({
            "name": "rt", "type": "request_tracker", "url": "https://rt.example.com",
            "username": "opsdesk", "token": "abc", "queue": "General",
            "webhook_secret": secret
        }))
        .unwrap()
    }

    #[test]
    fn secrets_and_signatures_are_checked() {
        let s = spec(Some("0123456789abcdef0123"));
        let with =
            |v: &'static str| move |name: &str| (name == SECRET_HEADER).then(|| v.to_owned());
        assert!(shared_secret(&s, &with("0123456789abcdef0123")).is_ok());
        assert!(shared_secret(&s, &with("0123456789abcdef0124")).is_err());
        assert!(shared_secret(&s, &|_: &str| None).is_err());
        assert!(shared_secret(&spec(None), &with("x")).is_err());

        let body = br#"{"webhookEvent":"jira:issue_updated"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef0123").unwrap();
        mac.update(body);
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let h = move |name: &str| (name == "x-hub-signature").then(|| sig.clone());
        assert!(hub_signature(&s, &h, body).is_ok());
        assert!(hub_signature(&s, &h, b"{}").is_err());
        assert!(hub_signature(&s, &|_: &str| Some("sha1=00".into()), body).is_err());
    }
}
