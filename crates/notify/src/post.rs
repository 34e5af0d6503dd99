//! The HTTP transport: a POST a channel type rendered ([`Post`]), through the guarded
//! [`HttpClient`], which refuses private addresses unless they are allowed.
//!
//! A 2xx answer is a delivery. 408, 429, 5xx and network errors are worth retrying (a 429 or
//! 503 `Retry-After` is passed on); any other answer, redirects included, is not. Errors
//! name the URL as the channel type shows it (webhook URLs carry tokens in their path).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use opsdesk_core::Clock;
use opsdesk_domain::channel::spec::Post;
use opsdesk_domain::channel::truncate;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::StatusCode;

use crate::http::{refusal, HttpClient, HttpError};
use crate::{Receipt, SendError};

/// At most this much of an error response is quoted in the error.
const QUOTED_BODY_MAX: usize = 300;

/// Sends HTTP POSTs.
#[derive(Clone)]
pub struct Http {
    http: HttpClient,
    clock: Arc<dyn Clock>,
}

impl Http {
    pub fn new(http: HttpClient, clock: Arc<dyn Clock>) -> Http {
        Http { http, clock }
    }

    /// Sends `post`; the answer decides delivered, retry or give up.
    pub async fn send(&self, post: Post) -> Result<Receipt, SendError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &post.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SendError::permanent(format!("header {name}: not a header name")))?;
            headers.insert(name.clone(), header_value(name.as_str(), value)?);
        }
        let where_to = post.shown_url;
        let secrets = post.secrets;
        let request = self.http.post(&post.url).map_err(|e| match e {
            HttpError::Refused(r) => SendError::permanent(r.to_string()),
            e => SendError::permanent(format!("{where_to}: {e}")),
        })?;
        let response = request
            .headers(headers)
            .body(post.body)
            .send()
            .await
            .map_err(|e| {
                if let Some(r) = refusal(&e) {
                    return SendError::permanent(r.to_string());
                }
                // The URL may hold a token (Slack's do): it stays out of errors and logs.
                let e = e.without_url();
                if e.is_builder() {
                    return SendError::permanent(format!(
                        "{where_to}: {}",
                        hide(&secrets, error_chain(&e))
                    ));
                }
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "cannot connect"
                } else {
                    "request failed"
                };
                SendError::retryable(format!(
                    "{where_to}: {what}: {}",
                    hide(&secrets, error_chain(&e))
                ))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(Receipt {
                detail: format!("HTTP {}", status.as_u16()),
            });
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, self.clock.now()));
        let quoted = hide(&secrets, quote_body(response).await);
        let message = if quoted.is_empty() {
            format!("{where_to} answered HTTP {status}")
        } else {
            format!("{where_to} answered HTTP {status}: {quoted}")
        };
        Err(SendError {
            message,
            retryable: is_retryable(status),
            retry_after,
        })
    }
}

/// `text` with every secret in it replaced by `<redacted>`.
fn hide(secrets: &[String], mut text: String) -> String {
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), opsdesk_domain::credentials::REDACTED);
        }
    }
    text
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, SendError> {
    HeaderValue::from_str(value)
        .map_err(|_| SendError::permanent(format!("header {name}: not a valid header value")))
}

/// The error and its causes on one line (reqwest's own message hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// 408, 429 and 5xx are worth another try; other answers will not change.
pub fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value.trim()).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

/// The start of an error response, on one line, for the delivery record.
async fn quote_body(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < QUOTED_BODY_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let one_line: String = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    truncate(&one_line, QUOTED_BODY_MAX)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn secrets_are_hidden_in_quoted_answers() {
        let secrets = vec!["R0123456789ABCDEF0123456789ABCDE".to_owned(), String::new()];
        assert_eq!(
            hide(
                &secrets,
                "bad key R0123456789ABCDEF0123456789ABCDE in body".to_owned()
            ),
            "bad key <redacted> in body"
        );
        assert_eq!(hide(&secrets, "nothing".to_owned()), "nothing");
    }

    #[test]
    fn retryable_answers() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [301, 302, 400, 401, 403, 404, 410, 413, 422] {
            assert!(!is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 27, 0).unwrap();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(retry_after("soon", now), None);
    }
}
