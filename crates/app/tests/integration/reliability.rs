//! Notifications survive a crash and a second node: `opsdesk serve` killed with SIGKILL while
//! webhooks are in flight and started again loses none and sends each again under the same
//! `Idempotency-Key`; two nodes on one PostgreSQL send each notification once
//! (docs/notifications.md, "Delivery"); three nodes lease each job that runs on one node at a
//! time to one of them, and a survivor takes a dead holder's jobs over within one lease; a node
//! whose PostgreSQL goes away answers 503 with Retry-After and recovers by itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::cli::opsdesk;
use crate::common::{on_both_backends, Backend, TestDb};
use crate::peers::free_port;

on_both_backends!(
    sigkill_while_delivering_loses_nothing,
    sigkill_while_ingesting_keeps_every_acknowledged_event_once,
);

/// How long a node may take to start, and the deliveries to arrive.
const PATIENCE: Duration = Duration::from_secs(60);
/// The header that tells which node sent a request (each node's config sets its own).
const NODE_HEADER: &str = "x-test-node";

/// One request the receiver took.
#[derive(Debug, Clone)]
struct Received {
    key: String,
    node: String,
    body: Bytes,
    /// Whether the receiver got to answer: a request whose sender went away first was cut
    /// off, and counts as not delivered.
    answered: bool,
}

#[derive(Default)]
struct Inbox {
    delay: Duration,
    received: Mutex<Vec<Received>>,
    /// Requests taken and not yet answered.
    open: AtomicUsize,
}

/// Counts a request as open until its handler ends, answered or dropped.
struct Open<'a>(&'a AtomicUsize);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A webhook receiver on 127.0.0.1 that keeps every request and answers 200 after `delay`,
/// so that a sender can be stopped while requests are open.
struct Receiver {
    base: String,
    inbox: Arc<Inbox>,
}

impl Receiver {
    async fn start(delay: Duration) -> Receiver {
        let inbox = Arc::new(Inbox {
            delay,
            ..Inbox::default()
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(take))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { base, inbox }
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().unwrap().clone()
    }

    fn open(&self) -> usize {
        self.inbox.open.load(Ordering::SeqCst)
    }

    /// Every request, by idempotency key.
    fn by_key(&self) -> BTreeMap<String, Vec<Received>> {
        let mut keys: BTreeMap<String, Vec<Received>> = BTreeMap::new();
        for r in self.received() {
            keys.entry(r.key.clone()).or_default().push(r);
        }
        keys
    }
}

async fn take(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let index = {
        let mut received = inbox.received.lock().unwrap();
        received.push(Received {
            key: header("idempotency-key"),
            node: header(NODE_HEADER),
            body,
            answered: false,
        });
        received.len() - 1
    };
    inbox.open.fetch_add(1, Ordering::SeqCst);
    let _open = Open(&inbox.open);
    // Dropped here when the sender closes the connection first.
    tokio::time::sleep(inbox.delay).await;
    inbox.received.lock().unwrap()[index].answered = true;
    StatusCode::OK
}

/// A config file for one node: every new ticket goes to the receiver's `/hook`, with a header
/// naming the node.
fn write_config(dir: &Path, node: &str, hook: &str, lease_seconds: u64) -> PathBuf {
    let path = dir.join(format!("{node}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[notify]
allow_private_addresses = true
lease_seconds = {lease_seconds}
first_backoff_seconds = 1
max_backoff_seconds = 2

[[notify.channels]]
name = "hook"
type = "webhook"
url = "{hook}/hook"
headers = {{ "{NODE_HEADER}" = "{node}" }}

[[notify.rules]]
name = "every-new-ticket"
events = ["created"]
channels = ["hook"]
"#
        ),
    )
    .unwrap();
    path
}

/// An `opsdesk serve` process whose stdout (the log, and the first token of a new database)
/// is read line by line; killed with SIGKILL when dropped.
struct Node {
    child: Child,
    base: String,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Node {
    async fn start(dir: &Path, config: &Path, db_url: &str) -> Node {
        let port = free_port();
        let mut child = opsdesk(dir, db_url)
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env("OPSDESK_BIND", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node = Node {
            child,
            base: format!("http://127.0.0.1:{port}"),
            lines,
            seen: Vec::new(),
        };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, node.lines.recv()).await {
                Ok(Some(line)) => {
                    let ready = line.contains("listening on http://");
                    node.seen.push(line);
                    if ready {
                        return node;
                    }
                }
                Ok(None) => panic!("opsdesk serve exited while starting:\n{}", node.log()),
                Err(_) => panic!("opsdesk serve did not start in time:\n{}", node.log()),
            }
        }
    }

    /// The admin API token a new database prints once.
    fn first_token(&self) -> Option<String> {
        self.seen.iter().find(|l| l.starts_with("odk_")).cloned()
    }

    /// What the node printed so far.
    fn log(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// SIGTERM, and the wait for a clean stop.
    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }

    /// SIGKILL: no shutdown, no chance to record what was in flight.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{status}"
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 20 ms until it holds or `limit` passes; the error is the last reason
/// it gave for not holding yet.
async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    loop {
        let why = match check().await {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if started.elapsed() > limit {
            return Err(format!("still not so after {limit:?}: {why}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates `count` tickets through `base`, one at a time, until done or a request fails.
/// Returns the ids answered 201 and whether a request failed (its ticket may or may not have
/// been committed).
async fn create_tickets(
    base: String,
    token: String,
    label: &str,
    count: usize,
) -> (Vec<i64>, bool) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..count {
        let sent = http
            .post(format!("{base}/api/v1/tickets"))
            .bearer_auth(&token)
            .json(&json!({"title": format!("{label} {i}"), "severity": "SEV3", "kind": "incident"}))
            .send()
            .await;
        let Ok(r) = sent else { return (ids, true) };
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        let Ok(ticket) = r.json::<Value>().await else {
            return (ids, true);
        };
        ids.push(ticket["id"].as_i64().unwrap());
    }
    (ids, false)
}

async fn get_json(base: &str, token: &str, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

/// The ids of every ticket in the database.
async fn ticket_ids(base: &str, token: &str) -> BTreeSet<i64> {
    let list = get_json(base, token, "/api/v1/tickets?limit=200").await;
    assert!(list["next_cursor"].is_null(), "more than one page");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect()
}

/// Every delivery (outbox row), by idempotency key.
async fn deliveries(base: &str, token: &str) -> BTreeMap<String, Value> {
    let list = get_json(base, token, "/api/v1/deliveries?limit=1000").await;
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| (d["idempotency_key"].as_str().unwrap().to_owned(), d.clone()))
        .collect()
}

/// The idempotency key of a new ticket's notification through the channel `hook`.
fn created_key(id: i64) -> String {
    format!("OPS-{id}-v1-created-hook")
}

/// Whether the receiver answered a request for every expected key and no delivery is left
/// pending.
async fn all_delivered(
    hook: &Receiver,
    base: &str,
    token: &str,
    expected: &BTreeSet<String>,
) -> Result<(), String> {
    let got = hook.by_key();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|k| !got.get(*k).is_some_and(|r| r.iter().any(|r| r.answered)))
        .collect();
    if !missing.is_empty() {
        return Err(format!("the receiver has not answered {missing:?}"));
    }
    let rows = deliveries(base, token).await;
    let unsettled: Vec<(&String, &Value)> = rows
        .iter()
        .filter(|(_, d)| d["state"] == "pending")
        .map(|(k, d)| (k, &d["attempts"]))
        .collect();
    if !unsettled.is_empty() {
        return Err(format!("pending (key, attempts): {unsettled:?}"));
    }
    Ok(())
}

/// Tickets created while the first node runs (fewer if it is killed first), then after the
/// restart.
const TICKETS: usize = 40;
const AFTER_RESTART: usize = 10;

async fn sigkill_while_delivering_loses_nothing(backend: Backend) {
    let started = Instant::now();
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    // Slow answers keep a claimed batch open long enough to be killed in the middle of it.
    let hook = Receiver::start(Duration::from_millis(400)).await;
    let lease = 2;
    let first = write_config(dir.path(), "first", &hook.base, lease);
    let mut node = Node::start(dir.path(), &first, &db.url).await;
    let token = node.first_token().expect("a new database prints a token");

    let creating = tokio::spawn(create_tickets(
        node.base.clone(),
        token.clone(),
        "before the crash",
        TICKETS,
    ));
    let ready = wait_until(PATIENCE, || async {
        let (seen, open) = (hook.received().len(), hook.open());
        if seen >= 5 && open > 0 {
            Ok(())
        } else {
            Err(format!("{seen} requests received, {open} open"))
        }
    })
    .await;
    if let Err(e) = ready {
        panic!("no delivery in flight to kill: {e}\n{}", node.log());
    }
    let (open_at_kill, seen_at_kill) = (hook.open(), hook.received().len());
    node.kill();
    let (mut confirmed, lost_answer) = creating.await.unwrap();
    eprintln!(
        "killed after {:?}: {} tickets confirmed, a creation cut off: {lost_answer}; \
         the receiver had {seen_at_kill} requests, {open_at_kill} unanswered",
        started.elapsed(),
        confirmed.len()
    );

    // The same database, a new process; more tickets join the deliveries left behind.
    let restarted = write_config(dir.path(), "restarted", &hook.base, lease);
    let mut node = Node::start(dir.path(), &restarted, &db.url).await;
    assert_eq!(node.first_token(), None, "the database is not new");
    let (more, failed) = create_tickets(
        node.base.clone(),
        token.clone(),
        "after the restart",
        AFTER_RESTART,
    )
    .await;
    assert!(!failed);
    confirmed.extend(more);

    // Committed: what the database holds. A creation cut off by the kill may or may not be.
    let committed = ticket_ids(&node.base, &token).await;
    let confirmed: BTreeSet<i64> = confirmed.into_iter().collect();
    assert!(
        confirmed.is_subset(&committed),
        "{confirmed:?} {committed:?}"
    );
    assert!(committed.len() <= confirmed.len() + usize::from(lost_answer));
    let expected: BTreeSet<String> = committed.iter().map(|id| created_key(*id)).collect();

    let done = wait_until(PATIENCE, || {
        all_delivered(&hook, &node.base, &token, &expected)
    })
    .await;
    if let Err(e) = done {
        panic!("notifications lost: {e}\n{}", node.log());
    }
    eprintln!("all delivered after {:?}", started.elapsed());

    // Every committed notification arrived, and nothing else.
    let got = hook.by_key();
    let keys: BTreeSet<String> = got.keys().cloned().collect();
    assert_eq!(keys, expected, "keys received vs committed tickets");
    // A notification sent again is the same message under the same key.
    let mut keys_of_ticket: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for (key, requests) in &got {
        for r in requests {
            assert_eq!(r.body, requests[0].body, "{key} sent with another body");
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["delivery_id"], key.as_str(), "{body}");
            keys_of_ticket
                .entry(body["ticket_id"].as_i64().unwrap())
                .or_default()
                .insert(key.clone());
        }
    }
    for (ticket, keys) in &keys_of_ticket {
        assert_eq!(keys.len(), 1, "ticket {ticket} announced under {keys:?}");
    }
    // The kill cut deliveries off mid-send: the restarted node sent those again.
    let resent: Vec<&String> = got
        .iter()
        .filter(|(_, r)| r.len() > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(
        !resent.is_empty(),
        "nothing was sent twice: the kill hit no delivery in flight"
    );
    for key in &resent {
        let senders: Vec<&str> = got[*key].iter().map(|r| r.node.as_str()).collect();
        assert_eq!(senders.first(), Some(&"first"), "{key}: {senders:?}");
        assert_eq!(senders.last(), Some(&"restarted"), "{key}: {senders:?}");
    }

    // The outbox agrees: one row per committed ticket, each delivered, every send counted.
    let rows = deliveries(&node.base, &token).await;
    let row_keys: BTreeSet<String> = rows.keys().cloned().collect();
    assert_eq!(row_keys, expected);
    for (key, row) in &rows {
        assert_eq!(row["state"], "delivered", "{row}");
        let sends = u64::try_from(got[key].len()).unwrap();
        assert!(row["attempts"].as_u64().unwrap() >= sends, "{row}");
    }
    let dead = get_json(&node.base, &token, "/api/v1/deliveries?state=dead").await;
    assert_eq!(dead, json!([]));
    eprintln!(
        "{} tickets, {} sent twice, {:?} in all",
        expected.len(),
        resent.len(),
        started.elapsed()
    );
    node.kill();
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_deliver_each_once() {
    const PER_NODE: usize = 50;
    let started = Instant::now();
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    // A short wait per request keeps both dispatchers busy at once.
    let hook = Receiver::start(Duration::from_millis(50)).await;
    // The default lease: no node dies here, so no delivery may be sent twice.
    let config_a = write_config(dir.path(), "a", &hook.base, 60);
    let config_b = write_config(dir.path(), "b", &hook.base, 60);
    let mut a = Node::start(dir.path(), &config_a, &db.url).await;
    let token = a.first_token().expect("a new database prints a token");
    let mut b = Node::start(dir.path(), &config_b, &db.url).await;
    assert_eq!(b.first_token(), None, "one database, one first token");

    let through_a = tokio::spawn(create_tickets(
        a.base.clone(),
        token.clone(),
        "through a",
        PER_NODE,
    ));
    let through_b = tokio::spawn(create_tickets(
        b.base.clone(),
        token.clone(),
        "through b",
        PER_NODE,
    ));
    let mut ids = Vec::new();
    for created in [through_a.await.unwrap(), through_b.await.unwrap()] {
        assert!(!created.1, "a ticket was not created");
        ids.extend(created.0);
    }
    let committed = ticket_ids(&a.base, &token).await;
    assert_eq!(committed, ids.iter().copied().collect());
    assert_eq!(committed.len(), 2 * PER_NODE);
    let expected: BTreeSet<String> = committed.iter().map(|id| created_key(*id)).collect();

    let done = wait_until(PATIENCE, || {
        all_delivered(&hook, &a.base, &token, &expected)
    })
    .await;
    if let Err(e) = done {
        panic!("{e}\nnode a:\n{}\nnode b:\n{}", a.log(), b.log());
    }
    // Nothing is pending, so nothing more will be sent once open requests are answered.
    wait_until(PATIENCE, || async {
        match hook.open() {
            0 => Ok(()),
            n => Err(format!("{n} requests open")),
        }
    })
    .await
    .unwrap();

    let got = hook.by_key();
    let keys: BTreeSet<String> = got.keys().cloned().collect();
    assert_eq!(keys, expected);
    let twice: BTreeMap<&String, Vec<&str>> = got
        .iter()
        .filter(|(_, r)| r.len() > 1)
        .map(|(k, r)| (k, r.iter().map(|r| r.node.as_str()).collect()))
        .collect();
    assert!(twice.is_empty(), "sent more than once (by node): {twice:?}");
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for r in got.values().flatten() {
        *per_node.entry(r.node.clone()).or_default() += 1;
    }
    assert!(
        per_node.get("a").is_some_and(|n| *n > 0) && per_node.get("b").is_some_and(|n| *n > 0),
        "both nodes must have sent some for the test to mean anything: {per_node:?}"
    );
    for (key, row) in deliveries(&b.base, &token).await {
        assert_eq!(row["state"], "delivered", "{row}");
        assert_eq!(row["attempts"], 1, "{key} claimed more than once: {row}");
    }
    eprintln!(
        "{} notifications, sent by node: {per_node:?}, in {:?}",
        expected.len(),
        started.elapsed()
    );
    a.kill();
    b.kill();
    db.drop_schema().await;
}

/// The jobs every node asks to run, one node at a time.
const LEASED_JOBS: [&str; 6] = [
    "aws_support_cases",
    "clock_watcher",
    "kpis_and_reports",
    "readiness",
    "retention",
    "sign_in_purge",
];

/// The jobs `node` says it holds (`opsdesk_job_held` in its /metrics).
async fn held_jobs(node: &Node, token: &str) -> Result<BTreeSet<String>, String> {
    let r = reqwest::Client::new()
        .get(format!("{}/metrics", node.base))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let text = r.text().await.map_err(|e| e.to_string())?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("opsdesk_job_held{job=\""))
        .filter_map(|l| l.split_once("\"}").filter(|(_, v)| v.trim() == "1"))
        .map(|(job, _)| job.to_owned())
        .collect())
}

/// Which nodes (by index) hold each job, once every leased job is held by some node.
async fn all_jobs_held(
    nodes: &[Node],
    token: &str,
    limit: Duration,
) -> BTreeMap<String, Vec<usize>> {
    let started = Instant::now();
    loop {
        let mut by_job: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, n) in nodes.iter().enumerate() {
            for job in held_jobs(n, token).await.unwrap_or_default() {
                by_job.entry(job).or_default().push(i);
            }
        }
        let jobs: BTreeSet<&str> = by_job.keys().map(String::as_str).collect();
        if jobs == LEASED_JOBS.iter().copied().collect() {
            return by_job;
        }
        assert!(
            started.elapsed() < limit,
            "after {limit:?} the jobs held are {by_job:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_lease_each_job_to_one_and_a_survivor_takes_over() {
    // Long enough that a renewal late on a loaded machine does not move a lease.
    const LEASE: u64 = 5;
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!("[server]\nnode_name = \"{name}\"\njob_lease_secs = {LEASE}\n"),
        )
        .unwrap();
        nodes.push(Node::start(dir.path(), &config, &db.url).await);
    }
    let token = nodes[0]
        .first_token()
        .expect("a new database prints a token");

    // Each job is held by exactly one of the three, and /metrics on every node says which.
    let by_job = all_jobs_held(&nodes, &token, Duration::from_secs(4 * LEASE)).await;
    for (job, held_by) in &by_job {
        assert_eq!(held_by.len(), 1, "{job} held by {held_by:?}");
    }
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", nodes[2].base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let holder = ["a", "b", "c"][by_job["clock_watcher"][0]];
    assert!(
        metrics.contains(&format!(
            "opsdesk_job_lease{{job=\"clock_watcher\",node=\"{holder}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("opsdesk_node{node=\"c\"} 1"), "{metrics}");

    // The clock watcher's holder dies: a survivor runs it within a lease and a renewal.
    let dead = by_job["clock_watcher"][0];
    nodes[dead].kill();
    let killed = Instant::now();
    let survivors: Vec<Node> = nodes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != dead)
        .map(|(_, n)| n)
        .collect();
    let after = all_jobs_held(&survivors, &token, Duration::from_secs(4 * LEASE)).await;
    let took = killed.elapsed();
    for (job, held_by) in &after {
        assert_eq!(held_by.len(), 1, "{job} held by {held_by:?} after the kill");
    }
    assert!(
        took <= Duration::from_secs(2 * LEASE),
        "taken over after {took:?}, more than a lease and a renewal"
    );
    let mut survivors = survivors;
    let taker = after["clock_watcher"][0];
    let log = survivors[taker].log();
    assert!(
        log.lines()
            .any(|l| l.contains("this node runs the job") && l.contains("clock_watcher")),
        "{log}"
    );
    // The clock watcher's new holder stops cleanly: it gives its leases up, and the last node
    // takes them at its next ask (a third of a lease), not a lease later.
    survivors[taker].terminate();
    let stopped = Instant::now();
    let last: Vec<Node> = survivors
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != taker)
        .map(|(_, n)| n)
        .collect();
    all_jobs_held(&last, &token, Duration::from_secs(4 * LEASE)).await;
    let handed = stopped.elapsed();
    assert!(
        handed < Duration::from_secs(LEASE),
        "taken {handed:?} after a clean stop: the leases were not given up"
    );
    eprintln!(
        "jobs before the kill: {by_job:?}; after, in {took:?}: {after:?}; after a clean stop, in {handed:?}"
    );
    drop(last);
    db.drop_schema().await;
}

/// A TCP proxy to the local PostgreSQL that can be cut (every connection dropped, new ones
/// closed at once) and restored, as a database restart or failover looks to a node.
struct CuttableProxy {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl CuttableProxy {
    async fn start(to: &'static str) -> CuttableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (up2, open2) = (up.clone(), open.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                open2.lock().unwrap().push(task);
            }
        });
        CuttableProxy { port, up, open }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_503_while_postgres_is_away_and_recovers_by_itself() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = CuttableProxy::start("127.0.0.1:5432").await;
    let base_url = std::env::var("OPSDESK_TEST_POSTGRES_URL").unwrap();
    assert!(base_url.contains("127.0.0.1:5432"), "{base_url}");
    let url = db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "[server]\nnode_name = \"a\"\n").unwrap();
    let mut node = Node::start(dir.path(), &config, &url).await;
    let token = node.first_token().unwrap();
    let (before, failed) = create_tickets(node.base.clone(), token.clone(), "before", 10).await;
    assert!(!failed);

    // PostgreSQL goes away: /readyz says so within its 2 s, and a write is answered 503 with
    // Retry-After (after the pool's wait), never 500.
    proxy.cut();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let asked = Instant::now();
    let r = http
        .get(format!("{}/readyz", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "{:?}",
        asked.elapsed()
    );
    assert!(r.headers().contains_key("retry-after"));
    let r = http
        .post(format!("{}/api/v1/tickets", node.base))
        .bearer_auth(&token)
        .json(&json!({"title": "while away", "severity": "SEV3", "kind": "incident"}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let retry = r.headers().get("retry-after").cloned();
    let body = r.text().await.unwrap();
    assert_eq!(status, 503, "{body}\n{}", node.log());
    assert_eq!(retry.unwrap(), "5");
    assert!(body.contains("database_unavailable"), "{body}");

    // Back: the node recovers without a restart and loses nothing it acknowledged.
    proxy.restore();
    let back = Instant::now();
    wait_until(Duration::from_secs(30), || {
        let http = http.clone();
        let url = format!("{}/readyz", node.base);
        async move {
            match http.get(url).send().await {
                Ok(r) if r.status() == 200 => Ok(()),
                Ok(r) => Err(r.status().to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await
    .unwrap();
    let recovered = back.elapsed();
    let (after, failed) = create_tickets(node.base.clone(), token.clone(), "after", 10).await;
    assert!(!failed);
    let ids = ticket_ids(&node.base, &token).await;
    for id in before.iter().chain(&after) {
        assert!(ids.contains(id), "ticket {id} acknowledged but missing");
    }
    // The write refused while the database was away made nothing.
    assert_eq!(ids.len(), 20, "{ids:?}");
    eprintln!("ready again {recovered:?} after PostgreSQL came back");
    node.kill();
    db.drop_schema().await;
}

/// An EventBridge CloudWatch alarm event for the alarm `crash-{n}`, with an id of its own.
fn crash_alarm(n: usize) -> Value {
    let mut event = crate::signals::alarm_event(
        &format!("crash-{n}"),
        "ALARM",
        "2026-12-08T09:00:00.000+0000",
    );
    event["id"] = json!(format!("crash-event-{n}"));
    event
}

/// Posts `events` one by one, until done or a request fails; the numbers of the events answered
/// 202 (committed) and whether one was cut off.
async fn post_events(base: String, token: String, events: Vec<usize>) -> (Vec<usize>, bool) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut acked = Vec::new();
    for n in events {
        let sent = http
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(&token)
            .json(&crash_alarm(n))
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == 202 => acked.push(n),
            Ok(r) => panic!(
                "event {n}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(_) => return (acked, true),
        }
    }
    (acked, false)
}

/// Whether a ticket title names the alarm `name` (as a word: crash-1 is not crash-10).
fn names(title: &str, name: &str) -> bool {
    title
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .any(|w| w == name)
}

/// An API token made with `opsdesk token create` on the database at `url`.
fn cli_token(dir: &Path, url: &str, name: &str, role: &str) -> String {
    let o = opsdesk(dir, url)
        .args(["token", "create", "--name", name, "--role", role])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned()
}

/// The tickets' titles, each as often as it occurs.
async fn ticket_titles(base: &str, token: &str) -> BTreeMap<String, usize> {
    let mut titles = BTreeMap::new();
    for t in all_tickets(base, token).await {
        *titles
            .entry(t["title"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    titles
}

/// SIGKILL while four clients post alarm events: after a restart every event answered 202 has
/// its ticket exactly once, the audit chain verifies, and EventBridge's redelivery of every
/// event (as it retries what it did not see answered) adds nothing.
async fn sigkill_while_ingesting_keeps_every_acknowledged_event_once(backend: Backend) {
    const EVENTS: usize = 2_000;
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let ingest = cli_token(dir.path(), &db.url, "monitor", "ingest");
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "").unwrap();
    let mut node = Node::start(dir.path(), &config, &db.url).await;

    let clients: Vec<_> = (0..4)
        .map(|c| {
            let events: Vec<usize> = (0..EVENTS).filter(|n| n % 4 == c).collect();
            tokio::spawn(post_events(node.base.clone(), ingest.clone(), events))
        })
        .collect();
    let started = Instant::now();
    let enough = wait_until(PATIENCE, || async {
        let n = reqwest::Client::new()
            .get(format!("{}/metrics", node.base))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?
            .lines()
            .filter(|l| l.starts_with("opsdesk_signals_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        if n >= 300.0 {
            Ok(())
        } else {
            Err(format!("{n} signals taken"))
        }
    })
    .await;
    if let Err(e) = enough {
        panic!("ingest did not get going: {e}\n{}", node.log());
    }
    node.kill();
    let mut acked = Vec::new();
    let mut cut = 0;
    for c in clients {
        let (a, was_cut) = c.await.unwrap();
        acked.extend(a);
        cut += usize::from(was_cut);
    }
    assert!(acked.len() < EVENTS, "killed after every event was taken");
    eprintln!(
        "killed after {:?}: {} events acknowledged, {cut} requests cut off",
        started.elapsed(),
        acked.len()
    );

    // Restarted on the same database: every acknowledged event's ticket, once.
    let mut node = Node::start(dir.path(), &config, &db.url).await;
    let reader = cli_token(dir.path(), &db.url, "reader", "viewer");
    let titles = ticket_titles(&node.base, &reader).await;
    let doubled: Vec<_> = titles.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "tickets made twice: {doubled:?}");
    for n in &acked {
        let name = format!("crash-{n}");
        assert!(
            titles.keys().any(|t| names(t, &name)),
            "event {n} was acknowledged but its ticket is missing"
        );
    }
    let before = titles.len();

    // EventBridge delivers every event again: nothing new.
    let (again, cut) = post_events(node.base.clone(), ingest.clone(), (0..EVENTS).collect()).await;
    assert!(!cut);
    assert_eq!(again.len(), EVENTS);
    let titles = ticket_titles(&node.base, &reader).await;
    assert!(titles.values().all(|n| *n == 1));
    assert_eq!(titles.len(), EVENTS, "every event has its ticket, once");
    assert!(before <= EVENTS);
    node.kill();
    let (code, out, _) = {
        let o = opsdesk(dir.path(), &db.url)
            .args(["audit", "verify"])
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8(o.stdout).unwrap(), ())
    };
    assert_eq!(code, Some(0), "{out}");
    db.drop_schema().await;
}

/// SIGKILL of `opsdesk migrate` at moments spread over a new database's migrations: each
/// migration is one transaction, so the next start completes them and the desk works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_migration_is_completed_by_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let total = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../store/migrations/sqlite"
    ))
    .unwrap()
    .count() as i64;
    // How long a whole migration takes here, so the kills land across it.
    let whole = {
        let url = format!("sqlite://{}", dir.path().join("timing.db").display());
        let started = Instant::now();
        let o = opsdesk(dir.path(), &url).arg("migrate").output().unwrap();
        assert!(o.status.success());
        started.elapsed()
    };
    let mut cut_midway = 0;
    let mut tries = 0;
    while tries < 12 || (cut_midway < 2 && tries < 40) {
        let i = tries;
        tries += 1;
        let delay = whole.mul_f64(((i % 12) as f64 + 0.5) / 12.0);
        let file = dir.path().join(format!("desk-{i}.db"));
        let url = format!("sqlite://{}", file.display());
        let mut child = opsdesk(dir.path(), &url)
            .arg("migrate")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        if file.exists() {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
            pool.close().await;
            if applied > 0 && applied < total {
                cut_midway += 1;
            }
        }
        // The next start completes the migrations, and the desk works.
        let o = opsdesk(dir.path(), &url).arg("migrate").output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = opsdesk(dir.path(), &url)
            .args(["team", "add", "--name", "after"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = opsdesk(dir.path(), &url)
            .args(["audit", "verify"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    }
    assert!(
        cut_midway > 0,
        "no kill landed between two migrations (a whole one takes {whole:?}): the test proves \
         nothing on this machine"
    );
    eprintln!(
        "{cut_midway} of {tries} kills landed between migrations (a whole one takes {whole:?})"
    );
}

/// A small file system of its own (tmpfs), unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (scripts/test runs as root in CI): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { path }
    }

    fn grow(&self, size: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// SQLite on a disk that fills up: writes are answered 503 with Retry-After (never 500), reads
/// go on, nothing acknowledged is lost, and once there is space again the node takes writes
/// without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_writes_resume_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path().join("disk"), "4m");
    let url = format!("sqlite://{}", disk.path.join("opsdesk.db").display());
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "").unwrap();
    let mut node = Node::start(&disk.path, &config, &url).await;
    let token = node.first_token().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let create = |i: usize| {
        http.post(format!("{}/api/v1/tickets", node.base))
            .bearer_auth(&token)
            .json(&json!({
                "title": format!("filling {i}"),
                "description": format!("{i} ").repeat(4_000),
                "severity": "SEV4", "kind": "task",
            }))
            .send()
    };
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..2_000 {
        let r = create(i).await.unwrap();
        if r.status() == 201 {
            acked.push(r.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
            continue;
        }
        let retry = r.headers().get("retry-after").cloned();
        refused = Some((r.status(), retry, r.text().await.unwrap()));
        break;
    }
    let Some((status, retry, body)) = refused else {
        panic!("2,000 tickets fitted on the small disk: the test proves nothing");
    };
    assert_eq!(status, 503, "{body}\n{}", node.log());
    assert!(retry.is_some(), "{body}");
    assert!(!acked.is_empty());
    // Still full: refused again the same way; reads go on.
    let r = create(100_000).await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, 503, "{body}\n{}", node.log());
    let r = http
        .get(format!("{}/api/v1/tickets?limit=1", node.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Space returns: writes resume without a restart.
    disk.grow("64m");
    let resumed = Instant::now();
    let mut after = None;
    while resumed.elapsed() < PATIENCE {
        let r = create(200_000).await.unwrap();
        if r.status() == 201 {
            after = Some(r.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after =
        after.unwrap_or_else(|| panic!("no write taken after the disk grew\n{}", node.log()));
    let present: BTreeSet<i64> = all_tickets(&node.base, &token)
        .await
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    for id in acked.iter().chain([&after]) {
        assert!(
            present.contains(id),
            "ticket {id} was acknowledged but is missing"
        );
    }
    eprintln!(
        "{} tickets before the disk was full, refused with 503, writes again {:?} after it grew",
        acked.len(),
        resumed.elapsed()
    );
    node.kill();
    let o = opsdesk(dir.path(), &url)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

/// Every ticket, all pages.
async fn all_tickets(base: &str, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/tickets?limit=200&cursor={c}"),
            None => "/api/v1/tickets?limit=200".to_owned(),
        };
        let page = get_json(base, token, &path).await;
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// Three nodes on one PostgreSQL under mixed load (tickets through the API and alarm events
/// through every node, a webhook for every new ticket); one is killed with SIGKILL in the
/// middle. Afterwards: no ticket twice, every acknowledged ticket and event there, every
/// committed notification received (by idempotency key), and the leased jobs run on a
/// survivor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_under_mixed_load_lose_nothing_when_one_is_killed() {
    const TICKETS_PER_NODE: usize = 30;
    const EVENTS_PER_NODE: usize = 60;
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(Duration::from_millis(20)).await;
    let ingest = cli_token(dir.path(), &db.url, "monitor", "ingest");
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let config = write_config(dir.path(), name, &hook.base, 2);
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!(
            "\n[server]\nnode_name = \"{name}\"\njob_lease_secs = 5\n"
        ));
        std::fs::write(&config, text).unwrap();
        nodes.push(Node::start(dir.path(), &config, &db.url).await);
    }
    let token = cli_token(dir.path(), &db.url, "admin", "admin");

    let mut creating = Vec::new();
    let mut posting = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        creating.push(tokio::spawn(create_tickets(
            node.base.clone(),
            token.clone(),
            ["through a", "through b", "through c"][i],
            TICKETS_PER_NODE,
        )));
        let events: Vec<usize> = (i * EVENTS_PER_NODE..(i + 1) * EVENTS_PER_NODE).collect();
        posting.push(tokio::spawn(post_events(
            node.base.clone(),
            ingest.clone(),
            events,
        )));
    }
    // Killed once deliveries are under way.
    let going = wait_until(PATIENCE, || async {
        match hook.received().len() {
            n if n >= 30 => Ok(()),
            n => Err(format!("{n} webhooks received")),
        }
    })
    .await;
    if let Err(e) = going {
        panic!("the load did not get going: {e}");
    }
    // The node running the leased jobs dies.
    let before = all_jobs_held(&nodes, &token, Duration::from_secs(15)).await;
    let victim = before["clock_watcher"][0];
    nodes[victim].kill();
    let mut acked_tickets = Vec::new();
    for c in creating {
        acked_tickets.extend(c.await.unwrap().0);
    }
    let mut acked_events = Vec::new();
    for p in posting {
        acked_events.extend(p.await.unwrap().0);
    }
    let survivors: Vec<Node> = nodes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, n)| n)
        .collect();

    // No ticket twice; every acknowledged ticket and alarm there.
    let tickets = all_tickets(&survivors[0].base, &token).await;
    let titles = ticket_titles(&survivors[0].base, &token).await;
    let doubled: Vec<_> = titles.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "tickets made twice: {doubled:?}");
    let ids: BTreeSet<i64> = tickets.iter().map(|t| t["id"].as_i64().unwrap()).collect();
    for id in &acked_tickets {
        assert!(ids.contains(id), "ticket {id} acknowledged but missing");
    }
    for n in &acked_events {
        let name = format!("crash-{n}");
        assert!(
            titles.keys().any(|t| names(t, &name)),
            "event {n} acknowledged but its ticket is missing"
        );
    }

    // Every committed ticket's notification arrives (a request cut off by the kill is sent
    // again under the same key), and none is left pending.
    let expected: BTreeSet<String> = ids.iter().map(|id| created_key(*id)).collect();
    let done = wait_until(PATIENCE, || {
        all_delivered(&hook, &survivors[0].base, &token, &expected)
    })
    .await;
    if let Err(e) = done {
        panic!("{e}");
    }
    let got: BTreeSet<String> = hook.by_key().keys().cloned().collect();
    assert_eq!(got, expected, "notifications for tickets that do not exist");

    // The leased jobs run on the survivors.
    let held = all_jobs_held(&survivors, &token, Duration::from_secs(15)).await;
    eprintln!(
        "{} tickets ({} acknowledged through the API, {} alarm events), {} notifications; jobs after the kill: {held:?}",
        ids.len(),
        acked_tickets.len(),
        acked_events.len(),
        expected.len()
    );
    drop(survivors);
    let o = opsdesk(dir.path(), &db.url)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    db.drop_schema().await;
}
