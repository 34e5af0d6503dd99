//! Request Tracker and the RT connector, against a local RT (`scripts/local-rt`):
//! - `rt-fill` makes tickets in RT, each with a reply and a comment, as a person would;
//! - `rt-read` reads tickets through RT's REST 2.0 API exactly as `opsdesk import rt` does
//!   (the search, each ticket's transactions, each message's transaction and attachments),
//!   one at a time: RT's own rate, which the import's is compared with;
//! - `rt-sync` measures sync lag on one linked ticket: a reply made in opsdesk until RT has
//!   it, and a reply made in RT until opsdesk has it.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use reqwest::{Client, Method, Url};
use serde_json::{json, Value};

use crate::stats::{Report, Samples};
use crate::target::Target;

/// How long one lag sample may take before it counts as failed.
const SAMPLE_LIMIT: Duration = Duration::from_secs(60);
/// How often each side is asked whether the reply has arrived.
const LOOK_EVERY: Duration = Duration::from_millis(20);

#[derive(Args, Clone)]
pub struct RtArgs {
    /// RT's address (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    pub rt_url: String,
    /// The RT user who plays the person working in RT.
    #[arg(long, default_value = "alice")]
    pub rt_user: String,
    #[arg(
        long,
        env = "OPSDESK_BENCH_RT_PASSWORD",
        hide_env_values = true,
        default_value = "password-alice"
    )]
    pub rt_password: String,
    #[arg(long, default_value = "General")]
    pub queue: String,
}

#[derive(Args)]
pub struct RtFillArgs {
    #[command(flatten)]
    pub rt: RtArgs,
    /// Tickets to make.
    #[arg(long, default_value_t = 200)]
    pub tickets: u64,
}

#[derive(Args)]
pub struct RtReadArgs {
    #[command(flatten)]
    pub rt: RtArgs,
    /// The TicketSQL the import is given.
    #[arg(long)]
    pub query: String,
}

#[derive(Args)]
pub struct RtSyncArgs {
    #[command(flatten)]
    pub rt: RtArgs,
    /// The connector's name in the server's configuration.
    #[arg(long, default_value = "rt")]
    pub connector: String,
    /// Replies each way.
    #[arg(long, default_value_t = 20)]
    pub samples: u64,
}

/// RT's REST 2.0 API as one user.
struct Rt {
    http: Client,
    api: Url,
    user: String,
    password: String,
}

impl Rt {
    fn new(a: &RtArgs) -> anyhow::Result<Rt> {
        let base = Url::parse(&a.rt_url).with_context(|| format!("--rt-url {:?}", a.rt_url))?;
        let host = base.host_str().unwrap_or_default();
        if !(host == "127.0.0.1" || host == "localhost" || host == "[::1]") {
            bail!("--rt-url must point at a loopback address");
        }
        let api = Url::parse(&format!("{}/REST/2.0/", a.rt_url.trim_end_matches('/')))?;
        Ok(Rt {
            http: Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()?,
            api,
            user: a.rt_user.clone(),
            password: a.rt_password.clone(),
        })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), self.api.join(path)?)
            .basic_auth(&self.user, Some(&self.password));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("RT {method} {path}"))?;
        let status = res.status();
        let text = res.text().await?;
        if !status.is_success() {
            bail!(
                "RT {method} {path}: {status}: {}",
                text.chars().take(300).collect::<String>()
            );
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn create(&self, queue: &str, subject: &str, content: &str) -> anyhow::Result<String> {
        let made = self
            .call(
                Method::POST,
                "ticket",
                Some(json!({"Queue": queue, "Subject": subject, "Content": content, "ContentType": "text/plain"})),
            )
            .await?;
        id_of(&made["id"]).context("RT made a ticket without an id")
    }

    async fn message(&self, id: &str, kind: &str, content: &str) -> anyhow::Result<()> {
        self.call(
            Method::POST,
            &format!("ticket/{id}/{kind}"),
            Some(json!({"Content": content, "ContentType": "text/plain"})),
        )
        .await
        .map(drop)
    }

    /// How many correspondence transactions the ticket has.
    async fn replies(&self, id: &str) -> anyhow::Result<u64> {
        let filter = json!([
            {"field": "ObjectType", "value": "RT::Ticket"},
            {"field": "ObjectId", "value": id.parse::<i64>()?},
            {"field": "Type", "value": "Correspond"}
        ]);
        let answer = self
            .call(
                Method::POST,
                "transactions?per_page=1&fields=Type",
                Some(filter),
            )
            .await?;
        answer["total"]
            .as_u64()
            .context("RT's search answer has no total")
    }
}

fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `rt-fill`: one request per ticket, reply and comment; the figure is RT's rate of making them.
pub async fn fill(a: &RtFillArgs, limit: Duration) -> anyhow::Result<Report> {
    let rt = Rt::new(&a.rt)?;
    let started = Instant::now();
    let mut samples = Samples::default();
    for i in 0..a.tickets {
        if started.elapsed() > limit {
            break;
        }
        let t0 = Instant::now();
        let made = async {
            let id = rt
                .create(
                    &a.rt.queue,
                    &format!("Bench ticket {i}"),
                    "Made by opsdesk-bench rt-fill.",
                )
                .await?;
            rt.message(&id, "correspond", &format!("Reply on ticket {i}"))
                .await?;
            rt.message(&id, "comment", &format!("Note on ticket {i}"))
                .await
        }
        .await;
        match made {
            Ok(()) => samples.ok(t0.elapsed()),
            Err(e) => samples.failed(format!("{e:#}")),
        }
    }
    let mut report = Report::new(
        "rt-fill",
        1,
        a.tickets,
        started.elapsed(),
        vec![("ticket", samples)],
    );
    report.tickets = Some(report.done);
    Ok(report)
}

/// `rt-read`: the calls `opsdesk import rt` makes, without opsdesk.
pub async fn read(a: &RtReadArgs, limit: Duration) -> anyhow::Result<Report> {
    let rt = Rt::new(&a.rt)?;
    let started = Instant::now();
    let mut samples = Samples::default();
    let mut page = 1;
    let mut planned = 0;
    loop {
        let q: String = url::form_urlencoded::byte_serialize(a.query.as_bytes()).collect();
        let answer = rt
            .call(
                Method::GET,
                &format!("tickets?query={q}&fields=Subject,Status,Priority,Creator,Queue,LastUpdatedBy&orderby=id&order=ASC&per_page=100&page={page}"),
                None,
            )
            .await?;
        let items = answer["items"].as_array().cloned().unwrap_or_default();
        planned += items.len() as u64;
        for t in &items {
            if started.elapsed() > limit {
                break;
            }
            let t0 = Instant::now();
            match read_one(&rt, t).await {
                Ok(()) => samples.ok(t0.elapsed()),
                Err(e) => samples.failed(format!("{e:#}")),
            }
        }
        let pages = answer["pages"].as_u64().unwrap_or(1);
        if items.len() < 100 || page >= pages {
            break;
        }
        page += 1;
    }
    // One sample per ticket read: the throughput line is tickets read per second.
    Ok(Report::new(
        "rt-read",
        1,
        planned,
        started.elapsed(),
        vec![("ticket", samples)],
    ))
}

async fn read_one(rt: &Rt, t: &Value) -> anyhow::Result<()> {
    let id: i64 = id_of(&t["id"]).context("no id")?.parse()?;
    let filter = json!([
        {"field": "ObjectType", "value": "RT::Ticket"},
        {"field": "ObjectId", "value": id}
    ]);
    let items = rt
        .call(
            Method::POST,
            "transactions?fields=Type,Creator,Created&orderby=id&order=ASC&per_page=100&page=1",
            Some(filter),
        )
        .await?;
    for tr in items["items"].as_array().into_iter().flatten() {
        if !matches!(
            tr["Type"].as_str(),
            Some("Create" | "Correspond" | "Comment")
        ) {
            continue;
        }
        let tid = id_of(&tr["id"]).context("no transaction id")?;
        let full = rt
            .call(Method::GET, &format!("transaction/{tid}"), None)
            .await?;
        for link in full["_hyperlinks"].as_array().into_iter().flatten() {
            if link["ref"] == "attachment" {
                if let Some(aid) = link["_url"].as_str().and_then(|u| u.rsplit('/').next()) {
                    rt.call(Method::GET, &format!("attachment/{aid}"), None)
                        .await?;
                }
            }
        }
    }
    Ok(())
}

/// Asks `arrived` until it says yes, and counts the time since `t0` as a sample (or a failure
/// after [`SAMPLE_LIMIT`]).
async fn arrival<F, Fut>(
    samples: &mut Samples,
    t0: Instant,
    side: &str,
    mut arrived: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    loop {
        if arrived().await? {
            samples.ok(t0.elapsed());
            return Ok(());
        }
        if t0.elapsed() > SAMPLE_LIMIT {
            samples.failed(format!(
                "{side} did not have the reply within {SAMPLE_LIMIT:?}"
            ));
            return Ok(());
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// `rt-sync`: lag each way on one ticket linked to RT.
pub async fn sync(target: &Target, a: &RtSyncArgs, limit: Duration) -> anyhow::Result<Report> {
    let rt = Rt::new(&a.rt)?;
    let made = target
        .post_json(
            target.url("/api/v1/tickets")?,
            serde_json::to_vec(
                &json!({"title": "opsdesk-bench rt-sync", "kind": "incident", "severity": "SEV4"}),
            )?,
        )
        .await
        .body
        .map_err(|e| anyhow::anyhow!("POST /api/v1/tickets: {e}"))?;
    let ticket: Value = serde_json::from_slice(&made)?;
    let id = ticket["id"].as_i64().context("no ticket id")?;
    let linked = target
        .post_json(
            target.url(&format!("/api/v1/tickets/{id}/external"))?,
            serde_json::to_vec(&json!({"connector": a.connector}))?,
        )
        .await
        .body
        .map_err(|e| anyhow::anyhow!("POST /api/v1/tickets/{id}/external: {e}"))?;
    let link: Value = serde_json::from_slice(&linked)?;
    let remote = id_of(&link["remote_id"])
        .with_context(|| format!("the link has no RT ticket yet: {}", link["detail"]))?;
    let comments_url = target.url(&format!("/api/v1/tickets/{id}/comments"))?;
    let comments = || async {
        let body = target
            .get(comments_url.clone(), &[])
            .await
            .body
            .map_err(|e| anyhow::anyhow!("GET comments: {e}"))?;
        let list: Value = serde_json::from_slice(&body)?;
        anyhow::Ok(list.as_array().map_or(0, Vec::len))
    };
    let started = Instant::now();
    let (mut out, mut back) = (Samples::default(), Samples::default());
    for i in 0..a.samples {
        if started.elapsed() > limit {
            break;
        }
        // opsdesk -> RT.
        let before = rt.replies(&remote).await?;
        let t0 = Instant::now();
        let sent = target
            .post_json(
                comments_url.clone(),
                serde_json::to_vec(
                    &json!({"body": format!("lag sample {i} from opsdesk"), "public": true}),
                )?,
            )
            .await;
        match sent.body {
            Err(e) => out.failed(e),
            Ok(_) => {
                let arrived = || async { Ok(rt.replies(&remote).await? > before) };
                arrival(&mut out, t0, &format!("sample {i}: RT"), arrived).await?;
            }
        }
        // RT -> opsdesk.
        let before = comments().await?;
        let t0 = Instant::now();
        rt.message(&remote, "correspond", &format!("lag sample {i} from RT"))
            .await?;
        let arrived = || async { Ok(comments().await? > before) };
        arrival(&mut back, t0, &format!("sample {i}: opsdesk"), arrived).await?;
    }
    Ok(Report::new(
        "rt-sync",
        1,
        a.samples * 2,
        started.elapsed(),
        vec![("opsdesk to RT", out), ("RT to opsdesk", back)],
    ))
}
