use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{on_both_backends, Backend, TestDb};

on_both_backends!(
    serve_prints_the_first_token_once_and_stops_on_sigterm,
    token_commands_work_without_a_server,
    audit_verify_and_export,
    sigterm_lets_a_request_in_flight_finish,
    user_and_team_commands,
    workload_import_is_all_or_none,
    channel_test_sends_now_and_says_what_happened,
    export_tickets_with_history_and_conversation,
    channel_urls_are_masked_in_listings_and_config_check,
    csv_exports_neutralise_formulas,
    support_plans_asks_aws_and_names_plans_that_end,
    csv_import_brings_tickets_in_once_and_reports_bad_rows_by_line,
    backup_while_serving_and_restore_that_never_overwrites,
);

pub(crate) fn opsdesk(dir: &Path, db_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_opsdesk"));
    cmd.current_dir(dir)
        .env("OPSDESK_DATABASE_URL", db_url)
        .env("OPSDESK_LOG_LEVEL", "info")
        .env_remove("OPSDESK_CONFIG")
        .env_remove("RUST_LOG");
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process whose stdout is read line by line.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(dir: &Path, db_url: &str, port: u16) -> Server {
        Server::start_with(dir, db_url, port, "text")
    }

    fn start_with(dir: &Path, db_url: &str, port: u16, log_format: &str) -> Server {
        let mut child = opsdesk(dir, db_url)
            .arg("serve")
            .env("OPSDESK_LOG_FORMAT", log_format)
            .env("OPSDESK_BIND", format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            lines,
            seen: Vec::new(),
        };
        server.wait_for("listening on http://");
        server
    }

    /// The admin API token a new database prints once.
    fn first_token(&self) -> String {
        self.seen
            .iter()
            .find(|l| l.starts_with("odk_"))
            .cloned()
            .expect("a new database prints its first token")
    }

    fn wait_for(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!("no line with {needle:?} ({e}); saw {:#?}", self.seen),
            }
        }
    }

    /// Sends SIGTERM and returns the exit code and the rest of the output.
    fn terminate(mut self) -> (i32, Vec<String>) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        // Read to the end of the output: the reader thread stops at EOF.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(line);
        }
        (status.code().unwrap_or(-1), self.seen)
    }
}

async fn serve_prints_the_first_token_once_and_stops_on_sigterm(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Server::start(dir.path(), &db.url, port);
    let token = server
        .seen
        .iter()
        .find(|l| l.starts_with("odk_"))
        .cloned()
        .expect("first token printed");
    assert_eq!(token.len(), 4 + 64, "256-bit token");

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let r = http
        .get(format!("{base}/api/v1/tickets"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let created = http
        .post(format!("{base}/api/v1/tickets"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"title": "From the first token", "kind": "task", "severity": "SEV4"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    server.seen.extend(server.lines.try_iter());
    let (code, output) = server.terminate();
    assert_eq!(code, 0, "{output:#?}");
    assert!(output.iter().any(|l| l.contains("stopped")), "{output:#?}");
    let token_lines = output.iter().filter(|l| l.contains(&token)).count();
    assert_eq!(
        token_lines, 1,
        "the token appears once, never in the log: {output:#?}"
    );

    // The second start finds tokens and prints none; this time the log is JSON.
    let server = Server::start_with(dir.path(), &db.url, port, "json");
    let listening: serde_json::Value =
        serde_json::from_str(server.seen.last().unwrap()).expect("a JSON log line");
    assert_eq!(listening["level"], "INFO");
    assert!(listening["fields"]["message"]
        .as_str()
        .unwrap()
        .starts_with("listening on"));
    let r = http
        .get(format!("{base}/api/v1/tickets"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["items"][0]["title"], "From the first token");
    let (code, output) = server.terminate();
    assert_eq!(code, 0);
    assert!(!output.iter().any(|l| l.contains("odk_")), "{output:#?}");
    db.drop_schema().await;
}

async fn token_commands_work_without_a_server(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    // A new database is migrated by the command itself.
    let (code, out, err) = run(opsdesk(dir.path(), &db.url)
        .args(["token", "create", "--name", "ci-bot", "--role", "agent"]));
    assert_eq!(code, 0, "{out}{err}");
    let secret = out.lines().last().unwrap().to_owned();
    assert!(secret.starts_with("odk_") && secret.len() == 68, "{out}");

    let (code, out, _) = run(opsdesk(dir.path(), &db.url)
        .args(["token", "create", "--name", "ci-bot", "--role", "admin"]));
    assert_ne!(code, 0);
    assert!(!out.contains("odk_"));
    let (code, _, err) = run(
        opsdesk(dir.path(), &db.url).args(["token", "create", "--name", "x", "--role", "root"])
    );
    assert_ne!(code, 0);
    assert!(err.contains("root"), "{err}");

    let (code, out, _) = run(opsdesk(dir.path(), &db.url).args(["token", "list"]));
    assert_eq!(code, 0);
    assert!(
        out.contains("ci-bot") && out.contains("agent") && out.contains("active"),
        "{out}"
    );
    assert!(
        !out.contains(&secret[4..20]),
        "the list shows no secrets: {out}"
    );

    // The token works against a server on the same database, until revoked.
    let desk = db.desk().await;
    assert_eq!(
        desk.authenticate(&secret).await.unwrap().unwrap().name,
        "token:ci-bot"
    );
    let (code, out, err) = run(opsdesk(dir.path(), &db.url).args(["token", "revoke", "ci-bot"]));
    assert_eq!(code, 0, "{out}{err}");
    // Revoked by another process: this one stops trusting the token within its 2 s cache.
    let revoked_at = std::time::Instant::now();
    while desk.authenticate(&secret).await.unwrap().is_some() {
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(3),
            "the revoked token still works after 3 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (code, _, err) = run(opsdesk(dir.path(), &db.url).args(["token", "revoke", "ci-bot"]));
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");
    let (_, out, _) = run(opsdesk(dir.path(), &db.url).args(["token", "list"]));
    assert!(out.contains("revoked"), "{out}");
    desk.db().close().await;
    db.drop_schema().await;
}

async fn audit_verify_and_export(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let desk = db.desk().await;
    let cli = opsdesk_core::Actor::cli();
    for i in 0..3 {
        desk.create_ticket(
            &cli,
            serde_json::from_value(
                serde_json::json!({"title": format!("t{i}"), "kind": "task", "severity": "SEV5"}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    }
    desk.db().close().await;

    let (code, out, err) = run(opsdesk(dir.path(), &db.url).args(["audit", "verify"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("intact: 3 entries"), "{out}");

    let (code, out, _) =
        run(opsdesk(dir.path(), &db.url).args(["audit", "export", "--format", "jsonl"]));
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["seq"], 3);
    assert_eq!(lines[2]["prev_hash"], lines[1]["hash"]);
    let file = dir.path().join("trail.jsonl");
    let (code, _, _) = run(opsdesk(dir.path(), &db.url)
        .args(["audit", "export", "--output"])
        .arg(&file));
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), out);

    // The head is printed ready to keep as an anchor, and anchors are checked.
    let head = format!("3:{}", lines[2]["hash"].as_str().unwrap());
    let (code, out, _) = run(opsdesk(dir.path(), &db.url).args(["audit", "verify"]));
    assert_eq!(code, 0);
    assert!(out.contains(&format!("--anchor {head}")), "{out}");
    let second = format!("2:{}", lines[1]["hash"].as_str().unwrap());
    let (code, out, err) = run(opsdesk(dir.path(), &db.url)
        .args(["audit", "verify", "--anchor", &second, "--anchor", &head]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 anchors match"), "{out}");
    let wrong = format!("2:{}", lines[0]["hash"].as_str().unwrap());
    let (code, out, _) =
        run(opsdesk(dir.path(), &db.url).args(["audit", "verify", "--anchor", &wrong]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 2"), "{out}");
    let (code, _, err) =
        run(opsdesk(dir.path(), &db.url).args(["audit", "verify", "--anchor", "2:nothex"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--anchor"), "{err}");
    assert!(err.contains("SEQ:HASH"), "{err}");

    let unguard = match backend {
        Backend::Sqlite => "DROP TRIGGER audit_log_refuse_update",
        Backend::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER USER",
    };
    db.sql(unguard).await.unwrap();
    db.sql("UPDATE audit_log SET changes = replace(changes, 't1', 't9') WHERE seq = 2")
        .await
        .unwrap();
    let (code, out, _) = run(opsdesk(dir.path(), &db.url).args(["audit", "verify"]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 2"), "{out}");
    db.drop_schema().await;
}

#[test]
fn configuration_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());

    let (code, example, _) = run(opsdesk(dir.path(), &url).args(["config", "example"]));
    assert_eq!(code, 0);
    assert!(
        example.contains("[database]") && example.contains("# "),
        "{example}"
    );
    let file = dir.path().join("opsdesk.toml");
    std::fs::write(&file, &example).unwrap();
    let (code, out, err) = run(opsdesk(dir.path(), &url)
        .arg("--config")
        .arg(&file)
        .args(["config", "check"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("127.0.0.1:8080"), "{out}");

    std::fs::write(&file, "[server]\nbind = \"127.0.0.1:9000\"\nbnid = \"x\"\n").unwrap();
    let (code, _, err) = run(opsdesk(dir.path(), &url)
        .arg("--config")
        .arg(&file)
        .args(["config", "check"]));
    assert_ne!(code, 0);
    assert!(err.contains("bnid"), "{err}");
    let (code, _, err) = run(opsdesk(dir.path(), &url)
        .env("OPSDESK_CONFIG", dir.path().join("missing.toml"))
        .args(["config", "check"]));
    assert_ne!(code, 0);
    assert!(err.contains("missing.toml"), "{err}");

    let (code, _, err) = run(opsdesk(dir.path(), &url)
        .env("OPSDESK_DATABSE_URL", "x")
        .args(["config", "check"]));
    assert_ne!(code, 0);
    assert!(err.to_lowercase().contains("databse_url"), "{err}");

    let (code, out, _) = run(opsdesk(dir.path(), &url)
        .env("OPSDESK_SERVER__BIND", "0.0.0.0:9999")
        .args(["config", "check"]));
    assert_eq!(code, 0);
    assert!(out.contains("0.0.0.0:9999"), "{out}");

    let (code, out, err) = run(opsdesk(dir.path(), "mysql://ops:hunter2@db/ops").args(["migrate"]));
    assert_ne!(code, 0);
    assert!(err.contains("unsupported database URL scheme"), "{err}");
    assert!(
        !err.contains("hunter2") && !out.contains("hunter2"),
        "{err}"
    );
    let (_, out, _) = run(
        opsdesk(dir.path(), "postgres://ops:hunter2@127.0.0.1:1/ops").args(["config", "check"]),
    );
    assert!(!out.contains("hunter2") && out.contains("***"), "{out}");

    let (code, out, _) = run(opsdesk(dir.path(), &url).args(["migrate"]));
    assert_eq!(code, 0);
    assert!(out.contains("up to date"), "{out}");
    assert!(dir.path().join("x.db").exists());
}

async fn sigterm_lets_a_request_in_flight_finish(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start(dir.path(), &db.url, port);
    let token = server.first_token();
    let batch: Vec<_> = (0..1000)
        .map(|i| serde_json::json!({"title": format!("bulk {i}"), "kind": "task", "severity": "SEV5", "description": "x".repeat(500)}))
        .collect();
    let request = tokio::spawn(
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/api/v1/tickets/batch"))
            .bearer_auth(&token)
            .json(&batch)
            .send(),
    );
    // Let the request reach the server, then ask it to stop while the batch is being written.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (code, output) = server.terminate();
    assert_eq!(code, 0, "{output:#?}");
    let answered = request.await.unwrap();

    let desk = db.desk().await;
    let stored = desk
        .tickets(
            &opsdesk_core::Actor::cli(),
            &opsdesk_store::TicketFilter {
                limit: 200,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let verified = desk.verify_audit().await.unwrap();
    desk.db().close().await;
    match answered {
        // Finished before the server stopped: every ticket and entry is there.
        Ok(r) => {
            eprintln!("the batch finished during shutdown");
            assert_eq!(r.status(), 201);
            assert_eq!(stored.items.len(), 200);
            assert!(stored.next_cursor.is_some());
            assert_eq!(verified.entries, 1001);
        }
        // Never reached the server: nothing of it is there.
        Err(e) => {
            assert!(stored.items.is_empty(), "half a batch was written: {e}");
            assert_eq!(verified.entries, 1);
        }
    }
    db.drop_schema().await;
}

async fn user_and_team_commands(backend: Backend) {
    use std::io::Write;
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let ok = |args: &[&str]| {
        let (code, out, err) = run(opsdesk(dir.path(), &db.url).args(args));
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out
    };
    ok(&["team", "add", "--name", "sre"]);
    let mut child = opsdesk(dir.path(), &db.url)
        .args([
            "user",
            "add",
            "--email",
            "Ana@Example.com",
            "--role",
            "agent",
            "--team",
            "sre",
            "--name",
            "Ana Silva",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"plum-tractor-velvet-42\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (code, _, err) = run(opsdesk(dir.path(), &db.url).args([
        "user",
        "add",
        "--email",
        "bo@example.com",
        "--role",
        "ingest",
    ]));
    assert_ne!(code, 0);
    assert!(err.contains("API tokens only"), "{err}");
    ok(&[
        "user",
        "add",
        "--email",
        "bo@example.com",
        "--role",
        "requester",
    ]);
    ok(&[
        "user",
        "set-role",
        "--email",
        "BO@example.com",
        "--role",
        "viewer",
    ]);
    ok(&["user", "disable", "--email", "bo@example.com"]);
    ok(&["team", "add", "--name", "dba", "--lead", "ana@example.com"]);
    ok(&[
        "team",
        "add-member",
        "--team",
        "dba",
        "--email",
        "bo@example.com",
    ]);

    let list = ok(&["user", "list"]);
    let ana = list
        .lines()
        .find(|l| l.starts_with("ana@example.com"))
        .unwrap();
    assert!(
        ana.contains("agent")
            && ana.contains("active")
            && ana.contains("yes")
            && ana.contains("dba,sre"),
        "{list}"
    );
    let bo = list
        .lines()
        .find(|l| l.starts_with("bo@example.com"))
        .unwrap();
    assert!(
        bo.contains("viewer") && bo.contains("disabled") && bo.contains("no"),
        "{list}"
    );
    let teams = ok(&["team", "list"]);
    assert!(
        teams
            .lines()
            .any(|l| l.starts_with("dba") && l.contains("ana@example.com, bo@example.com")),
        "{teams}"
    );

    let desk = db.desk().await;
    let actions: Vec<String> = desk
        .audit_page(&opsdesk_core::Actor::cli(), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} by {}", e.action, e.actor))
        .collect();
    assert_eq!(
        actions,
        [
            "team.created by cli",
            "user.created by cli",
            "user.created by cli",
            "user.role_changed by cli",
            "user.disabled by cli",
            "team.created by cli",
            "team.member_added by cli",
        ]
    );
    desk.db().close().await;
    db.drop_schema().await;
}

async fn workload_import_is_all_or_none(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workloads.toml");
    let good = r#"
[[workload]]
name = "checkout"
environment = "production"
team = "payments"
accounts = ["111122223333"]
regions = ["eu-west-1"]
resources = ["arn:aws:ec2:eu-west-1:111122223333:instance/*"]
tags = { app = "checkout" }

[[workload]]
name = "reports"
environment = "staging"
accounts = ["444455556666"]
"#;
    std::fs::write(&file, good).unwrap();
    let (code, out, err) =
        run(opsdesk(dir.path(), &db.url).args(["workload", "import", file.to_str().unwrap()]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("saved workload checkout (production)"),
        "{out}"
    );
    assert!(out.contains("saved workload reports (staging)"), "{out}");

    // One bad entry: the error names it and nothing of the file is saved.
    let bad = good
        .replace("reports", "billing")
        .replace("444455556666", "4444");
    std::fs::write(&file, bad.replace("checkout", "shop")).unwrap();
    let (code, out, err) =
        run(opsdesk(dir.path(), &db.url).args(["workload", "import", file.to_str().unwrap()]));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("workload[1].accounts[0]"), "{err}");
    std::fs::write(
        &file,
        "[[workload]]\nname = \"x\"\nenvironment = \"prod\"\n",
    )
    .unwrap();
    let (code, _, err) =
        run(opsdesk(dir.path(), &db.url).args(["workload", "import", file.to_str().unwrap()]));
    assert_eq!(code, 2);
    assert!(err.contains("unknown variant `prod`"), "{err}");

    let (code, out, _) = run(opsdesk(dir.path(), &db.url).args(["workload", "list"]));
    assert_eq!(code, 0);
    assert!(out.contains("checkout") && out.contains("reports"), "{out}");
    assert!(!out.contains("shop") && !out.contains("billing"), "{out}");
    db.drop_schema().await;
}

async fn channel_test_sends_now_and_says_what_happened(backend: Backend) {
    use crate::channels::{signature_matches, Receiver, SECRET};
    let db = TestDb::new(backend).await;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opsdesk.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[notify]
allow_private_addresses = true
[[notify.channels]]
name = "hook"
type = "webhook"
url = "{base}/hook"
secret = "{SECRET}"
[[notify.channels]]
name = "down"
type = "webhook"
url = "{base}/status/503"
[[notify.rules]]
name = "sev1-hook"
severities = ["SEV1"]
channels = ["hook"]
"#,
            base = receiver.base
        ),
    )
    .unwrap();
    let cli = |args: &'static [&'static str]| {
        let mut cmd = opsdesk(dir.path(), &db.url);
        cmd.arg("--config").arg(&config).args(args);
        tokio::task::spawn_blocking(move || run(&mut cmd))
    };
    let (code, out, err) = cli(&["channel", "test", "hook"]).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("delivered through hook: HTTP 200"), "{out}");
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert!(signature_matches(&got[0].headers, &got[0].body));

    let (code, out, err) = cli(&["channel", "test", "down"]).await.unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("may work if retried"), "{err}");
    let (code, _, err) = cli(&["channel", "test", "nowhere"]).await.unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("channel nowhere not found"), "{err}");
    let (code, out, err) = cli(&["rules", "check", "--severity", "SEV1"])
        .await
        .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("sev1-hook") && out.contains("matches"),
        "{out}"
    );
    assert!(out.contains("=> sent to hook"), "{out}");
    let (code, out, err) = cli(&["rules", "check", "--severity", "SEV4"])
        .await
        .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no: severity SEV4"), "{out}");
    assert!(out.contains("=> sent nowhere"), "{out}");
    let (code, _, err) = cli(&["rules", "check", "--event", "exploded"])
        .await
        .unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("--event"), "{err}");
    let (code, out, err) = cli(&["channel", "list"]).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hook") && out.contains("webhook"), "{out}");
    assert!(
        !out.contains(SECRET) && !out.contains("/status/503"),
        "{out}"
    );
    db.drop_schema().await;
}

async fn export_tickets_with_history_and_conversation(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let desk = db.desk().await;
    let cli = opsdesk_core::Actor::cli();
    // More than two pages (1,000 each) of tickets, a third of them on the workload "shop".
    let inputs = (0..2003)
        .map(|i| {
            let mut t = serde_json::json!({
                "title": format!("ticket {i}, \"quoted\""),
                "description": "on\ntwo lines",
                "kind": "incident", "severity": "SEV3", "tags": ["a", "b"],
            });
            if i % 3 == 0 {
                t["workload"] = serde_json::json!("shop");
            }
            serde_json::from_value(t).unwrap()
        })
        .collect();
    let ids = desk.create_tickets(&cli, inputs).await.unwrap();
    let noted = ids[1602];
    desk.add_comment(
        &cli,
        noted,
        serde_json::from_value(
            serde_json::json!({"body": "internal, with a , comma", "public": false}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    desk.add_comment(
        &cli,
        noted,
        serde_json::from_value(serde_json::json!({"body": "public reply ✓", "public": true}))
            .unwrap(),
    )
    .await
    .unwrap();
    desk.update_ticket(
        &cli,
        noted,
        None,
        serde_json::from_value(serde_json::json!({"status": "acknowledged"})).unwrap(),
    )
    .await
    .unwrap();
    desk.attach(
        &cli,
        noted,
        vec![opsdesk_core::attachments::Upload {
            name: "trace.log".into(),
            declared_type: None,
            bytes: b"stack trace".to_vec(),
        }],
        opsdesk_core::attachments::AttachOptions {
            public: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    desk.db().close().await;
    let trace_sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"stack trace"))
    };

    let (code, out, err) = run(opsdesk(dir.path(), &db.url).args(["export", "tickets"]));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2003);
    let got: Vec<i64> = lines.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(got, ids, "every ticket once, in id order");
    let one = &lines[1602];
    assert_eq!(one["key"], format!("OPS-{noted}"));
    assert_eq!(one["status"], "acknowledged");
    assert_eq!(one["comments"][0]["body"], "internal, with a , comma");
    assert_eq!(one["comments"][0]["public"], false);
    assert_eq!(one["comments"][1]["body"], "public reply ✓");
    assert_eq!(one["comments"][1]["public"], true);
    assert_eq!(one["comments"][1]["author"], "cli");
    assert!(lines[1601]["comments"].as_array().unwrap().is_empty());
    let actions: Vec<&str> = one["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "ticket.created",
            "ticket.commented",
            "ticket.commented",
            "ticket.updated",
            "ticket.attached"
        ]
    );
    // Its files, with size and hash.
    assert_eq!(one["attachments"][0]["name"], "trace.log");
    assert_eq!(one["attachments"][0]["size"], 11);
    assert_eq!(one["attachments"][0]["sha256"], trace_sha256.as_str());
    assert!(lines[1601]["attachments"].as_array().unwrap().is_empty());
    assert_eq!(
        one["history"][3]["changes"]["status"]["after"],
        "acknowledged"
    );

    // CSV: one row per ticket, quoting kept straight by a CSV reader.
    let file = dir.path().join("tickets.csv");
    let (code, _, err) = run(opsdesk(dir.path(), &db.url)
        .args([
            "export",
            "tickets",
            "--format",
            "csv",
            "--workload",
            "shop",
            "--output",
        ])
        .arg(&file));
    assert_eq!(code, 0, "{err}");
    let mut reader = csv::Reader::from_path(&file).unwrap();
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "id");
    assert_eq!(&headers[20], "history");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 668, "the tickets of workload shop");
    assert!(rows.iter().all(|r| &r[10] == "shop"));
    let row = rows.iter().find(|r| r[0] == noted.to_string()).unwrap();
    assert_eq!(&row[2], "ticket 1602, \"quoted\"");
    assert_eq!(&row[3], "on\ntwo lines");
    assert_eq!(&row[11], "a;b");
    let history: serde_json::Value = serde_json::from_str(&row[20]).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 5);
    assert_eq!(&headers[21], "attachments");
    let files: serde_json::Value = serde_json::from_str(&row[21]).unwrap();
    assert_eq!(files[0]["sha256"], trace_sha256.as_str());

    // Time filters, and a time that does not parse.
    let (code, out, _) =
        run(opsdesk(dir.path(), &db.url).args(["export", "tickets", "--since", "2999-01-01"]));
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, out, _) = run(opsdesk(dir.path(), &db.url).args([
        "export",
        "tickets",
        "--since",
        "2000-01-01T00:00:00Z",
        "--until",
        "2999-01-01",
    ]));
    assert_eq!((code, out.lines().count()), (0, 2003));
    let (code, _, err) =
        run(opsdesk(dir.path(), &db.url).args(["export", "tickets", "--until", "last tuesday"]));
    assert_ne!(code, 0);
    assert!(
        err.contains("--until \"last tuesday\" is neither an RFC 3339 time"),
        "{err}"
    );
    db.drop_schema().await;
}

async fn channel_urls_are_masked_in_listings_and_config_check(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opsdesk.toml");
    std::fs::write(
        &config,
        r#"
[[notify.channels]]
name = "slack"
type = "webhook"
format = "slack"
url = "https://hooks.slack.com/services/T000/B000/PATHSECRET"
[[notify.channels]]
name = "basic"
type = "webhook"
url = "https://hook-user:userinfo-secret@hooks.example.com/in?token=querysecret"
"#,
    )
    .unwrap();
    let cli = |args: &'static [&'static str]| {
        let mut cmd = opsdesk(dir.path(), &db.url);
        cmd.arg("--config").arg(&config).args(args);
        tokio::task::spawn_blocking(move || run(&mut cmd))
    };
    let secrets = [
        "PATHSECRET",
        "T000",
        "userinfo-secret",
        "hook-user",
        "querysecret",
    ];
    for args in [&["channel", "list"][..], &["config", "check"][..]] {
        let args: &'static [&'static str] = args;
        let (code, out, err) = cli(args).await.unwrap();
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        for secret in secrets {
            assert!(
                !out.contains(secret) && !err.contains(secret),
                "{args:?} shows {secret:?}: {out}{err}"
            );
        }
        assert!(
            out.contains("https://hooks.slack.com/***"),
            "{args:?}: {out}"
        );
        assert!(
            out.contains("https://hooks.example.com/***"),
            "{args:?}: {out}"
        );
    }
    db.drop_schema().await;
}

async fn csv_exports_neutralise_formulas(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let desk = db.desk().await;
    let cli = opsdesk_core::Actor::cli();
    let formula = r#"=HYPERLINK("http://x","y")"#;
    let inputs = vec![
        serde_json::from_value(serde_json::json!({
            "title": formula, "description": "+cmd|' /C calc'!A0",
            "kind": "incident", "severity": "SEV3", "team": "@ops", "workload": "-shop",
        }))
        .unwrap(),
        serde_json::from_value(serde_json::json!({
            "title": "-3", "kind": "question", "severity": "SEV5",
        }))
        .unwrap(),
    ];
    let ids = desk.create_tickets(&cli, inputs).await.unwrap();
    desk.db().close().await;

    // The ticket export: the cells read back as text starting with a quote.
    let file = dir.path().join("tickets.csv");
    let (code, _, err) = run(opsdesk(dir.path(), &db.url)
        .args(["export", "tickets", "--format", "csv", "--output"])
        .arg(&file));
    assert_eq!(code, 0, "{err}");
    let mut reader = csv::Reader::from_path(&file).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let row = |id: i64| rows.iter().find(|r| r[0] == id.to_string()).unwrap();
    let hostile = row(ids[0]);
    assert_eq!(&hostile[2], format!("'{formula}"));
    assert_eq!(&hostile[3], "'+cmd|' /C calc'!A0");
    assert_eq!(&hostile[9], "'@ops");
    assert_eq!(&hostile[10], "'-shop");
    assert_eq!(&row(ids[1])[2], "-3", "a plain number stays a number");

    // The trend report names teams and workloads as they were typed.
    let period = crate::common::around_now();
    let (code, out, err) =
        run(opsdesk(dir.path(), &db.url).args(["report", "--period", &period, "--format", "csv"]));
    assert_eq!(code, 0, "{err}");
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let named = |section: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| &r[0] == section)
            .map(|r| r[1].to_owned())
            .collect()
    };
    assert!(
        named("volume_by_team").contains(&"'@ops".to_owned()),
        "{out}"
    );
    assert!(
        named("volume_by_workload").contains(&"'-shop".to_owned()),
        "{out}"
    );
    db.drop_schema().await;
}

async fn support_plans_asks_aws_and_names_plans_that_end(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opsdesk.toml");
    std::fs::write(
        &config,
        r#"
[[aws.accounts]]
id = "111122223333"
name = "legacy"
support_plan = "enterprise_on_ramp"
[[aws.accounts]]
id = "444455556666"
name = "current"
support_plan = "enterprise"
"#,
    )
    .unwrap();
    // AWS cannot be reached here: nothing listens on the endpoint.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let cli = |args: &'static [&'static str]| {
        let mut cmd = opsdesk(dir.path(), &db.url);
        cmd.arg("--config")
            .arg(&config)
            .args(args)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "example-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env_remove("AWS_PROFILE");
        tokio::task::spawn_blocking(move || run(&mut cmd))
    };
    // The ending plan is named at start-up and by config check.
    let (code, out, err) = cli(&["config", "check"]).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("warning: aws.accounts[0] (111122223333 legacy):")
            && err.contains("Enterprise On-Ramp plan")
            && err.contains("2027-01-01")
            && err.contains("Enterprise"),
        "{err}"
    );
    assert!(!err.contains("aws.accounts[1]"), "{err}");

    // Without an answer from AWS the command says so for each account and fails.
    let (code, out, err) = cli(&["support-plans"]).await.unwrap();
    assert_eq!(code, 1, "{out}{err}");
    let legacy = out.lines().find(|l| l.starts_with("111122223333")).unwrap();
    assert!(legacy.contains("Enterprise On-Ramp"), "{out}");
    assert!(legacy.contains("(no answer:"), "{out}");
    assert!(
        out.contains("  AWS ends the Enterprise On-Ramp plan")
            || out.contains("  The Enterprise On-Ramp plan ended"),
        "{out}"
    );
    assert!(!out.contains("example-secret") && !err.contains("example-secret"));
    let (code, out, err) = cli(&["support-plans", "--format", "json"]).await.unwrap();
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let accounts = v["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2, "{v}");
    assert_eq!(accounts[0]["levels"], serde_json::Value::Null);
    assert!(
        accounts[0]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{v}"
    );
    assert_eq!(accounts[1]["notice"], serde_json::Value::Null);

    // The failed asks are kept, for the escalations and the admin page to see.
    let desk = db.desk().await;
    let kept = desk.db().severity_levels().await.unwrap();
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|k| k.levels.is_none() && k.error.is_some()));
    desk.db().close().await;
    db.drop_schema().await;
}

async fn csv_import_brings_tickets_in_once_and_reports_bad_rows_by_line(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("zammad.csv");
    // A header, a good row with its conversation, a row whose severity is not one, a good
    // row without an id, and a quoted field over two lines.
    std::fs::write(
        &file,
        "Number,Subject,Body,Priority,State,Customer,Created,Articles\n\
         40001,Laptop will not boot,\"Black screen\nsince the update\",high,closed,ann@example.com,2025-03-04 09:15:00,\"[{\"\"author\"\": \"\"bob\"\", \"\"body\"\": \"\"Try safe mode\"\", \"\"public\"\": true, \"\"created_at\"\": \"\"2025-03-04T10:00:00Z\"\"}]\"\n\
         40002,Printer,Out of toner,sort of bad,open,cy@example.com,2025-03-05,\n\
         ,VPN slow,From home,3,new,,,\n\
         40001,Laptop again,Same id twice,low,new,,,\n",
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let mut cmd = opsdesk(dir.path(), &db.url);
        cmd.arg("import").arg("csv").arg(&file).args(args);
        tokio::task::spawn_blocking(move || run(&mut cmd))
    };
    let map = "id=Number,title=Subject,description=Body,severity=Priority,status=State,requester=Customer,created=Created,comments=Articles";

    // A column the file lacks: refused before anything is written.
    let (code, out, err) = cli(&["--map", "title=Subject,team=Group"]).await.unwrap();
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("no column \"Group\"") && err.contains("Subject"),
        "{err}"
    );
    let (code, _, err) = cli(&["--map", "subject=Subject"]).await.unwrap();
    assert_ne!(code, 0);
    assert!(err.contains("not a ticket field"), "{err}");

    // Stop at the bad row (the default): the row before it stays imported.
    let (code, out, err) = cli(&["--map", map]).await.unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("imported 1, unchanged 0, skipped 0"), "{out}");
    assert!(err.contains("stopped at line 4: severity"), "{err}");
    assert!(err.contains("\"sort of bad\""), "{err}");

    // Skip it: the rest comes in, the first is not made twice.
    let (code, out, err) = cli(&["--map", map, "--on-error", "skip"]).await.unwrap();
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("imported 1, unchanged 1, skipped 2"), "{out}");
    assert!(out.contains("skipped line 4: severity"), "{out}");
    // A second row with an id seen in this run is a mistake in the file, said as such.
    assert!(
        out.contains("skipped line 6: id: \"40001\" is the id of line 2 too"),
        "{out}"
    );
    let (code, out, _) = cli(&["--map", map, "--on-error", "skip"]).await.unwrap();
    assert_eq!(code, 2);
    assert!(out.contains("imported 0, unchanged 2, skipped 2"), "{out}");

    let desk = db.desk().await;
    let cli_actor = opsdesk_core::Actor::cli();
    let page = desk
        .export_page(
            &cli_actor,
            &opsdesk_core::export::ExportFilter::default(),
            0,
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    let laptop = &page[0];
    assert_eq!(laptop.ticket.title, "Laptop will not boot");
    assert_eq!(laptop.ticket.description, "Black screen\nsince the update");
    assert_eq!(laptop.ticket.severity.as_str(), "SEV2");
    assert_eq!(laptop.ticket.status.as_str(), "closed");
    assert_eq!(laptop.ticket.requester.as_deref(), Some("ann@example.com"));
    assert_eq!(laptop.ticket.source, "import.csv");
    // Work done elsewhere keeps its time (reports put it in its period); open work starts now.
    assert_eq!(
        laptop.ticket.created_at.to_rfc3339(),
        "2025-03-04T09:15:00+00:00"
    );
    assert_eq!(laptop.ticket.closed_at, Some(laptop.ticket.created_at));
    assert_eq!(laptop.comments.len(), 1);
    assert_eq!(laptop.comments[0].author, "csv:bob");
    assert_eq!(laptop.comments[0].body, "Try safe mode");
    assert_eq!(
        laptop.comments[0].created_at.to_rfc3339(),
        "2025-03-04T10:00:00+00:00"
    );
    let imported = laptop
        .history
        .iter()
        .find(|h| h.action == "ticket.imported")
        .unwrap();
    let from = &imported.changes["imported_from"].after;
    assert_eq!(from["source"], "csv:zammad.csv");
    assert_eq!(from["id"], "40001");
    assert_eq!(from["created_at"], "2025-03-04T09:15:00Z");
    let vpn = &page[1];
    assert_eq!(vpn.ticket.title, "VPN slow");
    assert_eq!(vpn.ticket.severity.as_str(), "SEV3");
    assert_eq!(vpn.ticket.status.as_str(), "new");
    assert!(vpn.ticket.created_at > laptop.ticket.created_at + chrono::Duration::days(300));
    // The audit chain holds after an import.
    let (code, out, err) = {
        let mut cmd = opsdesk(dir.path(), &db.url);
        cmd.args(["audit", "verify"]);
        tokio::task::spawn_blocking(move || run(&mut cmd))
            .await
            .unwrap()
    };
    assert_eq!(code, 0, "{out}{err}");
}

/// `opsdesk backup` copies a SQLite desk while the server takes tickets, and `opsdesk restore`
/// makes a new database from the copy, never over an existing one. On PostgreSQL both say to
/// use pg_dump.
async fn backup_while_serving_and_restore_that_never_overwrites(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    if backend == Backend::Postgres {
        let (code, _, err) = run(opsdesk(dir.path(), &db.url)
            .args(["backup", "--output"])
            .arg(&copy));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("pg_dump"), "{err}");
        let (code, _, err) = run(opsdesk(dir.path(), &db.url).arg("restore").arg(&copy));
        assert_eq!(code, 2, "{err}");
        assert!(!copy.exists());
        db.drop_schema().await;
        return;
    }
    let port = free_port();
    let server = Server::start(dir.path(), &db.url, port);
    let token = server.first_token();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let token_for_create = token.clone();
    let create = move |i: usize| {
        let (http, base, token) = (http.clone(), base.clone(), token_for_create.clone());
        async move {
            let r = http
                .post(format!("{base}/api/v1/tickets"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"title": format!("Ticket {i}"), "kind": "task", "severity": "SEV4"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    };
    for i in 0..20 {
        create(i).await;
    }
    // More tickets arrive while the copy is taken.
    let writing = tokio::spawn({
        let create = create.clone();
        async move {
            for i in 20..120 {
                create(i).await;
            }
        }
    });
    let (code, out, err) = tokio::task::spawn_blocking({
        let (dir, url, copy) = (dir.path().to_owned(), db.url.clone(), copy.clone());
        move || run(opsdesk(&dir, &url).args(["backup", "--output"]).arg(&copy))
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("audit trail intact"), "{out}");
    let anchor = out
        .split("anchor ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    writing.await.unwrap();

    // An existing file is never overwritten.
    let (code, _, err) = run(opsdesk(dir.path(), &db.url)
        .args(["backup", "--output"])
        .arg(&copy));
    assert_ne!(code, 0);
    assert!(err.contains("never overwrites"), "{err}");

    // Restored into a new database: the copy's audit trail, and every ticket made before the
    // backup began.
    let restored_url = format!("sqlite://{}", dir.path().join("restored.db").display());
    let (code, out, err) = run(opsdesk(dir.path(), &restored_url).arg("restore").arg(&copy));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("head {anchor}")), "{out} / {anchor}");
    let (code, out, _) =
        run(opsdesk(dir.path(), &restored_url).args(["audit", "verify", "--anchor", &anchor]));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 anchor matches"), "{out}");
    let pool = sqlx::SqlitePool::connect(&restored_url).await.unwrap();
    let (tickets,): (i64,) = sqlx::query_as("SELECT count(*) FROM tickets")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert!((20..=120).contains(&tickets), "{tickets} tickets restored");

    // Never over a database: neither the restored one nor the live one.
    for url in [&restored_url, &db.url] {
        let (code, _, err) = run(opsdesk(dir.path(), url).arg("restore").arg(&copy));
        assert_ne!(code, 0);
        assert!(err.contains("never overwrites"), "{err}");
    }
    // A file that is no opsdesk database is refused, and nothing is left behind.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "not a database").unwrap();
    let other = dir.path().join("other.db");
    let other_url = format!("sqlite://{}", other.display());
    let (code, _, err) = run(opsdesk(dir.path(), &other_url).arg("restore").arg(&junk));
    assert_ne!(code, 0);
    assert!(err.contains("not a usable opsdesk backup"), "{err}");
    assert!(!other.exists());

    let (code, output) = server.terminate();
    assert_eq!(code, 0, "{output:#?}");
}

/// A PostgreSQL URL with `sslmode=require` connects over TLS (as Amazon RDS requires); one with
/// `sslmode=verify-full` refuses a server whose certificate it cannot trust.
#[tokio::test]
async fn postgres_connections_use_tls_when_asked() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let tls = format!("{}&sslmode=require", db.url);
    let (code, out, err) = run(opsdesk(dir.path(), &tls).arg("migrate"));
    assert_eq!(code, 0, "{out}{err}");
    // The server's own view of the connection: encrypted.
    let pool = sqlx::PgPool::connect(&tls).await.unwrap();
    let (ssl,): (bool,) =
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert!(ssl);
    // The local server's certificate is self-signed: verify-full refuses it, saying why.
    let strict = format!("{}&sslmode=verify-full", db.url);
    let (code, out, err) = run(opsdesk(dir.path(), &strict).arg("migrate"));
    assert_ne!(code, 0, "{out}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    db.drop_schema().await;
}

/// `opsdesk migrate-db --to postgres://...` copies a whole SQLite desk into an empty
/// PostgreSQL database: every table row for row, the audit trail verified on arrival with the
/// same head, new tickets numbered after the copied ones; a second run is refused.
#[tokio::test]
async fn migrate_db_copies_a_sqlite_desk_to_postgres() {
    let source = TestDb::new(Backend::Sqlite).await;
    let target = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["team", "add", "--name", "payments"],
        vec![
            "user",
            "add",
            "--email",
            "rob@example.com",
            "--role",
            "agent",
            "--team",
            "payments",
        ],
        vec!["token", "create", "--name", "monitor", "--role", "ingest"],
    ] {
        let (code, out, err) = run(opsdesk(dir.path(), &source.url).args(&args));
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
    let desk = source.desk().await;
    let cli = opsdesk_core::Actor::cli();
    let inputs = (0..40)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "title": format!("ticket {i}"), "description": "on\ntwo lines",
                "kind": "incident", "severity": "SEV3", "tags": ["a", "b"], "team": "payments",
            }))
            .unwrap()
        })
        .collect();
    let ids = desk.create_tickets(&cli, inputs).await.unwrap();
    for id in &ids[..5] {
        desk.add_comment(
            &cli,
            *id,
            serde_json::from_value(serde_json::json!({"body": "on it", "public": true})).unwrap(),
        )
        .await
        .unwrap();
        desk.update_ticket(
            &cli,
            *id,
            None,
            serde_json::from_value(serde_json::json!({"status": "acknowledged"})).unwrap(),
        )
        .await
        .unwrap();
    }
    let monitor = opsdesk_core::Actor::new("token:monitor", opsdesk_domain::Role::Ingest);
    for (state, minute) in [("ALARM", 1), ("OK", 2), ("ALARM", 3)] {
        let event = crate::signals::alarm_event(
            "prod-checkout-5xx",
            state,
            &format!("2026-12-08T09:{minute:02}:00.000+0000"),
        );
        let signals = opsdesk_domain::signal::eventbridge::from_events(&event, desk.now()).unwrap();
        desk.ingest(&monitor, signals).await.unwrap();
    }
    desk.evaluate_kpis(true).await.unwrap();
    let rob = opsdesk_core::Actor::new("user:rob@example.com", opsdesk_domain::Role::Agent);
    desk.save_view(&rob, "mine", "assignee=me").await.unwrap();
    desk.db().close().await;
    let (code, out, _) = run(opsdesk(dir.path(), &source.url).args(["audit", "verify"]));
    assert_eq!(code, 0);
    let anchor = out.rsplit("--anchor ").next().unwrap().trim().to_owned();

    let (code, out, err) =
        run(opsdesk(dir.path(), &source.url).args(["migrate-db", "--to", &target.url]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("audit trail verified on arrival"), "{out}");
    assert!(out.contains(&anchor), "{out} / {anchor}");
    // 40 tickets, and the one the alarm opened.
    assert!(err.contains("tickets: 41 rows"), "{err}");

    // Every table, row for row.
    let sqlite = sqlx::SqlitePool::connect(&source.url).await.unwrap();
    let pg = sqlx::PgPool::connect(&target.url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         AND table_name <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(&pg)
    .await
    .unwrap();
    assert!(tables.len() > 40, "{tables:?}");
    let mut nonempty = 0;
    for table in &tables {
        let count = format!("SELECT count(*) FROM {table}");
        let here: i64 = sqlx::query_scalar(&count).fetch_one(&sqlite).await.unwrap();
        let there: i64 = sqlx::query_scalar(&count).fetch_one(&pg).await.unwrap();
        assert_eq!(here, there, "{table}");
        nonempty += usize::from(here > 0);
    }
    assert!(nonempty >= 15, "only {nonempty} tables had rows");
    // Values arrive typed: a ticket as it was, searchable there.
    let (title, ack): (String, bool) =
        sqlx::query_as("SELECT title, status = 'acknowledged' FROM tickets WHERE id = $1")
            .bind(ids[0])
            .fetch_one(&pg)
            .await
            .unwrap();
    assert_eq!((title.as_str(), ack), ("ticket 0", true));
    let found: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tickets WHERE search @@ plainto_tsquery('english', 'ticket')",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(found, 40, "the 40 titled \"ticket N\"");
    sqlite.close().await;
    pg.close().await;

    // The anchor taken on SQLite holds on PostgreSQL, and the desk goes on there.
    let (code, out, _) =
        run(opsdesk(dir.path(), &target.url).args(["audit", "verify", "--anchor", &anchor]));
    assert_eq!(code, 0, "{out}");
    let desk = target.desk().await;
    let next = desk
        .create_ticket(
            &cli,
            serde_json::from_value(
                serde_json::json!({"title": "after the move", "kind": "task", "severity": "SEV4"}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    // After the 41 copied (the alarm's ticket is the 41st).
    assert_eq!(next.id, 42);
    // Tables numbered by a serial column go on too (a saved view: none copied, then one
    // after the move, with one made before it on SQLite).
    let rob = opsdesk_core::Actor::new("user:rob@example.com", opsdesk_domain::Role::Agent);
    desk.save_view(&rob, "after the move", "status=new")
        .await
        .unwrap();
    assert_eq!(desk.saved_views(&rob).await.unwrap().len(), 2);
    desk.db().close().await;

    // Not twice.
    let (code, out, err) =
        run(opsdesk(dir.path(), &source.url).args(["migrate-db", "--to", &target.url]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("not empty"), "{err}");
    target.drop_schema().await;
}
