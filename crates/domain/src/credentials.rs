//! Credentials that arrive inside data opsdesk keeps: tokens and passwords in signal payloads,
//! secrets in webhook URLs. They are taken out before anything is stored or shown, so that no
//! stored payload, audit entry, export or API answer carries one.
//!
//! The same rule is written in SQL by the migration that scrubbed payloads stored before it
//! (`20261207000015_scrub_signal_credentials`); change both together.

use serde_json::Value;

/// What a credential's value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Fragments of field names that hold credentials, compared without case, `-`, `_`, `.` or
/// spaces: `routing_key`, `Authorization`, `x-api-key`, `client_secret`, `password`...
const CREDENTIAL_PARTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "routingkey",
    "integrationkey",
    "servicekey",
    "authorization",
    "credential",
    "privatekey",
    "sessionkey",
    "signingkey",
    "cookie",
];

/// Field names that hold credentials only when they are the whole name.
const CREDENTIAL_NAMES: &[&str] = &["auth", "pass", "pwd"];

/// The name as compared: lower case, without `-`, `_`, `.` and spaces.
fn normalised(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// True for a field (or header) name that holds a credential. Every key of every payload on
/// the ingest path is asked, so a short ASCII name (nearly all of them) is compared from a
/// buffer on the stack rather than a new string.
pub fn is_credential_name(name: &str) -> bool {
    let mut buf = [0u8; 64];
    let mut len = 0;
    for b in name.bytes() {
        if matches!(b, b'-' | b'_' | b'.' | b' ') {
            continue;
        }
        if !b.is_ascii() || len == buf.len() {
            return holds_credential(&normalised(name));
        }
        buf[len] = b.to_ascii_lowercase();
        len += 1;
    }
    std::str::from_utf8(&buf[..len]).is_ok_and(holds_credential)
}

fn holds_credential(normalised: &str) -> bool {
    CREDENTIAL_PARTS.iter().any(|p| normalised.contains(p))
        || CREDENTIAL_NAMES.contains(&normalised)
}

/// True for a text that is itself a credential: an HTTP `Bearer` or `Basic` authorization.
fn is_credential_text(s: &str) -> bool {
    let starts = |prefix: &[u8]| {
        s.as_bytes()
            .get(..prefix.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(prefix))
    };
    starts(b"bearer ") || starts(b"basic ")
}

/// The name of a name/value pair (`{"name": "Authorization", "value": "..."}`, AWS tags'
/// `{"Key": ..., "Value": ...}`), when the object is one.
fn pair_name(map: &serde_json::Map<String, Value>) -> Option<&str> {
    ["name", "Name", "key", "Key"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str))
}

/// Replaces, at any depth, the value of every credential field, the value of every
/// name/value pair that names one, and every `Bearer` / `Basic` text with [`REDACTED`].
/// Nulls stay null, so that "no credential" still reads as such.
pub fn strip(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let pair_holds_credential = pair_name(map).is_some_and(is_credential_name);
            for (key, v) in map.iter_mut() {
                let is_pair_value =
                    pair_holds_credential && matches!(key.as_str(), "value" | "Value");
                if !v.is_null() && (is_credential_name(key) || is_pair_value) {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    strip(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        Value::String(s) if is_credential_text(s) => *s = REDACTED.to_owned(),
        _ => {}
    }
}

/// [`strip`] on a copy.
pub fn stripped(value: &Value) -> Value {
    let mut v = value.clone();
    strip(&mut v);
    v
}

/// A URL as it may be shown: scheme, host and port only, with path, query, fragment and user
/// info replaced by `***` (`https://hooks.slack.com/***`): webhook URLs carry their secret
/// there (Slack's path, `?token=`, `user:pass@`). A URL with nothing after the host is shown
/// as it is; anything that is not a URL is not shown.
pub fn masked_url(raw: &str) -> String {
    let Ok(u) = url::Url::parse(raw.trim()) else {
        return "<not a URL>".to_owned();
    };
    let host = u.host_str().unwrap_or("");
    let origin = match u.port() {
        Some(port) => format!("{}://{host}:{port}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    };
    let bare = matches!(u.path(), "" | "/")
        && u.query().is_none()
        && u.fragment().is_none()
        && u.username().is_empty()
        && u.password().is_none();
    if bare {
        format!("{origin}/")
    } else {
        format!("{origin}/***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        #[test]
        fn names_are_judged_alike_from_the_stack_and_from_a_string(
            name in "(?i)[a-z_. -]{0,80}(token|pass|auth|Ä|é)?[a-z_.-]{0,10}",
        ) {
            prop_assert_eq!(is_credential_name(&name), holds_credential(&normalised(&name)));
        }
    }

    #[test]
    fn names_of_credentials_are_recognised_however_written() {
        for name in [
            "routing_key",
            "Authorization",
            "x-api-key",
            "X-API-KEY",
            "apiKey",
            "client_secret",
            "SecretAccessKey",
            "password",
            "db.password",
            "access_token",
            "refreshToken",
            "integration_key",
            "service_key",
            "Cookie",
            "auth",
            "pwd",
        ] {
            assert!(is_credential_name(name), "{name}");
        }
        for name in [
            "summary",
            "dedup_key",
            "severity",
            "author",
            "key",
            "Key",
            "passenger_count",
            "eventArn",
            "fingerprint",
        ] {
            assert!(!is_credential_name(name), "{name}");
        }
    }

    #[test]
    fn strip_replaces_credentials_at_any_depth_and_keeps_the_rest() {
        let mut v = json!({
            "routing_key": "R0UT1NG",
            "event_action": "trigger",
            "dedup_key": "disk/db-1",
            "payload": {
                "summary": "Disk full",
                "custom_details": {
                    "db": { "password": "hunter2", "host": "db-1" },
                    "headers": [
                        { "name": "Authorization", "value": "Bearer abc" },
                        { "name": "Accept", "value": "text/plain" }
                    ],
                    "tags": [{ "Key": "api_token", "Value": "t0k" }, { "Key": "team", "Value": "db" }],
                    "note": "Basic dXNlcjpwYXNz",
                    "token": null
                }
            }
        });
        strip(&mut v);
        assert_eq!(
            v,
            json!({
                "routing_key": REDACTED,
                "event_action": "trigger",
                "dedup_key": "disk/db-1",
                "payload": {
                    "summary": "Disk full",
                    "custom_details": {
                        "db": { "password": REDACTED, "host": "db-1" },
                        "headers": [
                            { "name": "Authorization", "value": REDACTED },
                            { "name": "Accept", "value": "text/plain" }
                        ],
                        "tags": [{ "Key": "api_token", "Value": REDACTED }, { "Key": "team", "Value": "db" }],
                        "note": REDACTED,
                        "token": null
                    }
                }
            })
        );
    }

    #[test]
    fn a_credential_holding_an_object_is_replaced_whole() {
        let mut v = json!({ "credentials": { "user": "u", "key": "k" }, "n": [1, 2] });
        strip(&mut v);
        assert_eq!(v, json!({ "credentials": REDACTED, "n": [1, 2] }));
        let again = stripped(&v);
        assert_eq!(again, v, "stripping twice changes nothing");
    }

    #[test]
    fn urls_show_only_scheme_host_and_port() {
        assert_eq!(
            masked_url("https://hooks.slack.com/services/T000/B000/SECRET"),
            "https://hooks.slack.com/***"
        );
        assert_eq!(
            masked_url("https://user:pass@hooks.example.com:8443/x?token=abc"),
            "https://hooks.example.com:8443/***"
        );
        assert_eq!(
            masked_url("https://user@hooks.example.com/"),
            "https://hooks.example.com/***"
        );
        assert_eq!(
            masked_url("https://hooks.example.com/?sig=abc"),
            "https://hooks.example.com/***"
        );
        assert_eq!(
            masked_url("https://hooks.example.com"),
            "https://hooks.example.com/"
        );
        assert_eq!(masked_url("not a url secret"), "<not a URL>");
    }
}
