//! What every connector's client does the same way: one authenticated JSON call, and the
//! error its answer stands for (down or 5xx: try again; 429: wait as told; 4xx: refused).

use std::time::Duration;

use base64::Engine as _;
use opsdesk_core::connectors::RemoteError;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a client cannot be built from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(pub String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// An HTTP client that sends one `Authorization` header with every call.
pub struct Api {
    http: reqwest::Client,
    auth: HeaderValue,
    /// The system's name in messages.
    label: &'static str,
    /// Reads the system's own words out of an error answer.
    message_of: fn(&Value) -> String,
}

/// A 2xx answer: its JSON (`Null` when empty) and headers.
pub struct Answer {
    pub body: Value,
    pub headers: HeaderMap,
}

/// The header value of basic authentication.
pub fn basic(user: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

impl Api {
    pub fn new(
        connector: &str,
        label: &'static str,
        authorization: &str,
        message_of: fn(&Value) -> String,
    ) -> Result<Api, BuildError> {
        let mut auth = HeaderValue::from_str(authorization).map_err(|_| {
            BuildError(format!(
                "connectors.{connector}: the credentials hold characters a header cannot"
            ))
        })?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BuildError(e.to_string()))?;
        Ok(Api {
            http,
            auth,
            label,
            message_of,
        })
    }

    /// One call; the JSON answer of a 2xx, otherwise the error its status stands for.
    pub async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, RemoteError> {
        Ok(self.call_with_headers(method, url, body).await?.body)
    }

    /// [`Api::call`], with the answer's headers.
    pub async fn call_with_headers(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Answer, RemoteError> {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let what = format!("{} {method} {}", self.label, url.path());
        let response = request
            .send()
            .await
            .map_err(|e| RemoteError::Unavailable(format!("{what}: {}", without_url(&e))))?;
        let status = response.status();
        let headers = response.headers().clone();
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RemoteError::Unavailable(format!("{what}: {}", without_url(&e))))?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = retry_after.unwrap_or(60).clamp(1, 3600);
            return Err(RemoteError::RateLimited(chrono::Duration::seconds(wait)));
        }
        if status.is_server_error() {
            return Err(RemoteError::Unavailable(format!("{what}: {status}")));
        }
        let answer: Value = if bytes.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(_) if !status.is_success() => Value::Null,
                Err(_) => {
                    return Err(RemoteError::Unavailable(format!(
                        "{what}: {status}, and the answer is not JSON"
                    )))
                }
            }
        };
        if !status.is_success() {
            let message = (self.message_of)(&answer);
            let why = match status {
                StatusCode::UNAUTHORIZED => {
                    "the user or its password or token is not accepted".to_owned()
                }
                StatusCode::FORBIDDEN => format!("the user may not do this ({message})"),
                _ => format!("{status}: {message}"),
            };
            return Err(RemoteError::Refused(format!("{what}: {why}")));
        }
        Ok(Answer {
            body: answer,
            headers,
        })
    }
}

/// A transport error's words without the address (which could carry a query).
pub fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url (") {
        e.truncate(i);
    }
    e
}

/// One path segment, percent-encoded.
pub fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// `url` with `path` after it (the base's own path kept).
pub fn join(base: &Url, path: &str) -> Result<Url, RemoteError> {
    base.join(path)
        .map_err(|e| RemoteError::Refused(format!("{path}: {e}")))
}

/// The base address of the API under `url`, ending in `/`.
pub fn api_base(connector: &str, url: &str, under: &str) -> Result<Url, BuildError> {
    let mut base = url.trim_end_matches('/').to_owned();
    base.push_str(under);
    Url::parse(&base).map_err(|e| BuildError(format!("connectors.{connector}.url: {e}")))
}
