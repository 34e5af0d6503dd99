//! The server under test: one loopback base URL, one token, one keep-alive client.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Client, Url};

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Target {
    client: Client,
    base: Url,
    bearer: String,
}

/// What one timed request gave back.
pub struct Reply {
    pub latency: Duration,
    /// The body on a 2xx answer; otherwise why the request failed.
    pub body: Result<Vec<u8>, String>,
}

impl Target {
    /// Refuses any URL that is not plain HTTP(S) to a loopback host: the benchmark only loads a
    /// server on this machine.
    pub fn new(url: &str, token: &str, concurrency: usize) -> anyhow::Result<Target> {
        let base = Url::parse(url).with_context(|| format!("--url {url:?}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            bail!("--url must be http:// or https://");
        }
        let host = base.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            bail!("--url must point at a loopback address (127.0.0.1, ::1 or localhost)");
        }
        let client = Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(concurrency.max(1))
            .tcp_nodelay(true)
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Target {
            client,
            base,
            bearer: format!("Bearer {token}"),
        })
    }

    /// The keep-alive client, for requests the helpers here do not make.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The `Authorization` header's value.
    pub fn bearer(&self) -> &str {
        &self.bearer
    }

    /// An address on the server under test.
    pub fn url(&self, path: &str) -> anyhow::Result<Url> {
        Ok(self.base.join(path)?)
    }

    /// Fails early, with the server's answer, when the URL or the token is wrong.
    pub async fn check(&self) -> anyhow::Result<()> {
        let url = self.url("/api/v1/tickets")?;
        let reply = self.get(url, &[("limit", "1")]).await;
        reply
            .body
            .map(drop)
            .map_err(|e| anyhow::anyhow!("GET /api/v1/tickets: {e}"))
    }

    /// POSTs an already serialised JSON body and times it until the whole answer is read.
    pub async fn post_json(&self, url: Url, body: Vec<u8>) -> Reply {
        let req = self
            .client
            .post(url)
            .header(AUTHORIZATION, &self.bearer)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        timed(req).await
    }

    pub async fn get(&self, url: Url, query: &[(&str, &str)]) -> Reply {
        let req = self
            .client
            .get(url)
            .header(AUTHORIZATION, &self.bearer)
            .query(query);
        timed(req).await
    }
}

async fn timed(req: reqwest::RequestBuilder) -> Reply {
    let start = Instant::now();
    let body = async {
        let res = req.send().await.map_err(|e| format!("{e}"))?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| format!("{e}"))?;
        if status.is_success() {
            Ok(bytes.to_vec())
        } else {
            let text = String::from_utf8_lossy(&bytes);
            let text: String = text.chars().take(300).collect();
            Err(format!("{status}: {text}"))
        }
    }
    .await;
    Reply {
        latency: start.elapsed(),
        body,
    }
}
