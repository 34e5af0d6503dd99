//! Real programs the server talks to: moto standing in for AWS, Prometheus Alertmanager and
//! an SMTP server (aiosmtpd) that keeps what it receives. Each runs on a free port of 127.0.0.1 and is killed when dropped. A missing program fails
//! the test: scripts/test installs them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{on_both_backends, Backend, TestServer};

/// How long a peer may take to answer after it was started.
const STARTUP: Duration = Duration::from_secs(60);

/// A free TCP port on 127.0.0.1 (free when asked; peers start right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A started program whose output goes to a log file, killed on drop.
struct Process {
    name: &'static str,
    child: Child,
    log: std::path::PathBuf,
}

impl Process {
    fn spawn(name: &'static str, command: &mut Command, dir: &Path, hint: &str) -> Process {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        // A process group of its own: servers that fork workers (RT's, Dovecot's) are
        // stopped whole.
        let child = std::os::unix::process::CommandExt::process_group(command, 0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}; {hint}"));
        Process { name, child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `url` until it answers 200; panics with the program's output if it exits or
    /// does not answer in time.
    async fn wait_ready(&mut self, url: &str, hint: &str) {
        let http = reqwest::Client::new();
        self.wait_until(url, hint, || {
            let req = http.get(url).send();
            async move { req.await.is_ok_and(|r| r.status().is_success()) }
        })
        .await
    }

    /// Waits until the program on `port` greets a new connection with `220` (SMTP).
    async fn wait_greeting(&mut self, port: u16, hint: &str) {
        self.wait_banner(port, b"220", hint).await
    }

    /// Waits until the program on `port` greets a new connection with `banner`.
    async fn wait_banner(&mut self, port: u16, banner: &'static [u8], hint: &str) {
        use tokio::io::AsyncReadExt as _;
        self.wait_until(&format!("port {port}"), hint, || async move {
            let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                return false;
            };
            let mut greeting = vec![0u8; banner.len()];
            stream.read_exact(&mut greeting).await.is_ok() && greeting == banner
        })
        .await
    }

    /// Retries `ready` until it holds; panics with the program's output if it exits first or
    /// `STARTUP` passes.
    async fn wait_until<F, Fut>(&mut self, what: &str, hint: &str, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited ({status}) before it answered; {hint}\n{}",
                    self.name,
                    self.output()
                );
            }
            if ready().await {
                return;
            }
            if started.elapsed() > STARTUP {
                panic!(
                    "{} did not answer on {what} within {STARTUP:?}\n{}",
                    self.name,
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's server: SQS, SNS, EventBridge and the rest of AWS in one process, accepting any
/// credentials.
pub struct Moto {
    pub endpoint: String,
    _process: Process,
    _dir: tempfile::TempDir,
}

impl Moto {
    pub async fn start() -> Moto {
        const HINT: &str = "moto is needed: pip install 'moto[server]' (scripts/test does)";
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut process = Process::spawn(
            "moto",
            Command::new("python3").args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]),
            dir.path(),
            HINT,
        );
        let endpoint = format!("http://127.0.0.1:{port}");
        process
            .wait_ready(&format!("{endpoint}/moto-api/"), HINT)
            .await;
        Moto {
            endpoint,
            _process: process,
            _dir: dir,
        }
    }

    /// An AWS SDK configuration for this moto, with test credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await
    }

    /// A new SNS topic `topic` with a new SQS queue `queue` subscribed to it (raw delivery off:
    /// the queue gets SNS's JSON envelope). The topic's ARN and the queue's URL.
    pub async fn topic_into_queue(&self, topic: &str, queue: &str) -> (String, String) {
        let sdk = self.sdk_config().await;
        let sns = aws_sdk_sns::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let topic_arn = sns
            .create_topic()
            .name(topic)
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap();
        let queue_url = sqs
            .create_queue()
            .queue_name(queue)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let queue_arn = queue_arn(&sqs, &queue_url).await;
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .send()
            .await
            .unwrap();
        (topic_arn, queue_url)
    }
}

/// An SMTP server (aiosmtpd, no TLS, no authentication) that saves every message it
/// receives, with its envelope and the message as Python's email package parses it.
pub struct Smtp {
    pub port: u16,
    process: Process,
    mail: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl Smtp {
    pub async fn start() -> Smtp {
        const HINT: &str = "aiosmtpd is needed: pip install aiosmtpd (scripts/test does)";
        let dir = tempfile::tempdir().unwrap();
        let mail = tempfile::tempdir().unwrap();
        let port = free_port();
        let handler = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp");
        let mut process = Process::spawn(
            "aiosmtpd",
            Command::new("python3")
                .env("PYTHONPATH", &handler)
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "save_mail.SaveMail"])
                .arg(mail.path()),
            dir.path(),
            HINT,
        );
        process.wait_greeting(port, HINT).await;
        Smtp {
            port,
            process,
            mail,
            _dir: dir,
        }
    }

    /// The messages received so far, in order: what save_mail.py wrote for each.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.mail.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// What aiosmtpd logged, for a test's panic message.
    pub fn log(&self) -> String {
        self.process.output()
    }
}

/// An IMAP server (Dovecot, no TLS, any user with the password `secret`) with throwaway
/// Maildir mailboxes, for the inbox tests.
pub struct Dovecot {
    pub port: u16,
    process: Process,
    _dir: tempfile::TempDir,
}

impl Dovecot {
    pub async fn start() -> Dovecot {
        const HINT: &str = "Dovecot is needed: apt-get install dovecot-imapd (scripts/test does)";
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["run", "state", "mail", "home"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        // Dovecot will not keep mail as root: mailboxes belong to nobody.
        for d in ["mail", "home"] {
            std::os::unix::fs::chown(root.join(d), Some(65534), Some(65534)).unwrap();
        }
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let port = free_port();
        let root = root.display();
        let config = format!(
            "base_dir = {root}/run\nstate_dir = {root}/state\nlog_path = /dev/stderr\n\
             protocols = imap\nlisten = 127.0.0.1\nssl = no\ndisable_plaintext_auth = no\n\
             auth_mechanisms = plain login\nmail_location = maildir:{root}/mail/%u\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n\
             passdb {{\n  driver = static\n  args = password=secret\n}}\n\
             userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home={root}/home/%u\n}}\n"
        );
        let path = dir.path().join("dovecot.conf");
        std::fs::write(&path, config).unwrap();
        let mut process = Process::spawn(
            "dovecot",
            Command::new("dovecot").arg("-F").arg("-c").arg(&path),
            dir.path(),
            HINT,
        );
        process.wait_banner(port, b"* OK", HINT).await;
        Dovecot {
            port,
            process,
            _dir: dir,
        }
    }

    async fn session(&self, user: &str) -> async_imap::Session<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let mut client = async_imap::Client::new(tcp);
        client.read_response().await.unwrap().unwrap();
        client
            .login(user, "secret")
            .await
            .map_err(|(e, _)| e)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log()))
    }

    /// Delivers `raw` to `user`'s INBOX, as a mail server would.
    pub async fn deliver(&self, user: &str, raw: &str) {
        let mut s = self.session(user).await;
        s.append("INBOX", None, None, raw.replace('\n', "\r\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log()));
        s.logout().await.unwrap();
    }

    /// How many messages `user`'s `folder` holds (0 when there is no such folder).
    pub async fn count(&self, user: &str, folder: &str) -> u32 {
        let mut s = self.session(user).await;
        let n = match s.examine(folder).await {
            Ok(m) => m.exists,
            Err(_) => 0,
        };
        s.logout().await.unwrap();
        n
    }

    pub fn log(&self) -> String {
        self.process.output()
    }
}

/// Prometheus Alertmanager with one webhook receiver, grouping each alert on its own and
/// sending at once, so tests see notifications within a second or two.
pub struct Alertmanager {
    pub base: String,
    http: reqwest::Client,
    process: Process,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager sending every alert, and its resolution, to `webhook_url` with
    /// `Authorization: Bearer <bearer_token>`.
    pub async fn start(webhook_url: &str, bearer_token: &str) -> Alertmanager {
        const HINT: &str =
            "Alertmanager is needed: apt-get install prometheus-alertmanager (scripts/test does)";
        let dir = tempfile::tempdir().unwrap();
        // JSON is YAML, and serde_json escapes the URL and the token.
        let config = json!({
            "route": {
                "receiver": "opsdesk",
                "group_by": ["..."],
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [{
                "name": "opsdesk",
                "webhook_configs": [{
                    "url": webhook_url,
                    "send_resolved": true,
                    "http_config": {
                        "authorization": { "type": "Bearer", "credentials": bearer_token },
                    },
                }],
            }],
        });
        let config_file = dir.path().join("alertmanager.yml");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let storage = dir.path().join("data");
        std::fs::create_dir(&storage).unwrap();
        let port = free_port();
        let mut process = Process::spawn(
            "prometheus-alertmanager",
            Command::new("prometheus-alertmanager").args([
                format!("--config.file={}", config_file.display()),
                format!("--storage.path={}", storage.display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                // No cluster: no gossip port, and no wait for peers before sending.
                "--cluster.listen-address=".to_owned(),
            ]),
            dir.path(),
            HINT,
        );
        let base = format!("http://127.0.0.1:{port}");
        process.wait_ready(&format!("{base}/-/ready"), HINT).await;
        Alertmanager {
            base,
            http: reqwest::Client::new(),
            process,
            _dir: dir,
        }
    }

    /// What Alertmanager logged: why a notification failed, for a test's panic message.
    pub fn log(&self) -> String {
        self.process.output()
    }

    /// Posts alerts (a JSON array in the API v2 shape) as Prometheus would.
    pub async fn post_alerts(&self, alerts: Value) {
        let r = self
            .http
            .post(format!("{}/api/v2/alerts", self.base))
            .json(&alerts)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(
            status.is_success(),
            "Alertmanager refused the alerts: {status} {}",
            r.text().await.unwrap_or_default()
        );
    }
}

// The peers at work: a real Alertmanager notifying the server's webhook.
on_both_backends!(alertmanager_opens_and_resolves_a_ticket);

async fn alertmanager_opens_and_resolves_a_ticket(backend: Backend) {
    let s = TestServer::start(backend).await.with_ingest_token().await;
    let am = Alertmanager::start(&s.url("/api/v1/ingest/alertmanager"), &s.ingest).await;
    let alert = |ends_at: Option<&str>| {
        let mut a = json!({
            "labels": { "alertname": "HighErrorRate", "severity": "critical", "service": "checkout" },
            "annotations": { "summary": "Checkout 5xx above 5%" },
            "startsAt": "2026-11-23T10:00:00Z",
            "generatorURL": "http://prometheus.example/graph?g0.expr=rate",
        });
        if let Some(t) = ends_at {
            a["endsAt"] = json!(t);
        }
        json!([a])
    };
    // The one Alertmanager ticket, once it is open (or resolved).
    let ticket = |resolved: bool| {
        let (s, am) = (&s, &am);
        async move {
            for _ in 0..150 {
                let r = s.get("/api/v1/tickets?source=alertmanager").await;
                assert_eq!(r.status, reqwest::StatusCode::OK, "{}", r.body);
                let items = r.body["items"].as_array().unwrap().clone();
                assert!(items.len() <= 1, "{items:?}");
                if items
                    .first()
                    .is_some_and(|t| (t["status"] == "resolved") == resolved)
                {
                    return items[0].clone();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            panic!(
                "no ticket from Alertmanager (resolved: {resolved}) within 30 s\n{}",
                am.log()
            );
        }
    };

    am.post_alerts(alert(None)).await;
    let opened = ticket(false).await;
    assert_eq!(opened["title"], "Checkout 5xx above 5%");
    assert_eq!(opened["severity"], "SEV2");
    am.post_alerts(alert(Some("2026-11-23T10:30:00Z"))).await;
    let resolved = ticket(true).await;
    assert_eq!(resolved["id"], opened["id"]);
    drop(am);
    s.stop().await;
}

/// The ARN of the SQS queue at `url`.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone()
}

/// Request Tracker 5 (Debian's `request-tracker5` with `rt5-db-sqlite`), run by its own
/// standalone server on a free port with a database of its own, copied from the one the
/// package made. Users `opsdesk` (the connector's) and `alice` (a person working in RT), each
/// with the password `password-<name>`; root's is `password`.
pub struct RequestTracker {
    pub url: String,
    pub port: u16,
    http: reqwest::Client,
    process: Option<Process>,
    dir: tempfile::TempDir,
}

const RT_HINT: &str = "Request Tracker 5 is needed: apt-get install request-tracker5 \
                       rt5-db-sqlite rt5-standalone (scripts/test does)";
const RT_LIB: &str = "/usr/share/request-tracker5/lib";
const RT_SERVER: &str = "/usr/share/request-tracker5/libexec/rt-server";
const RT_PACKAGE_DB: &str = "/var/lib/dbconfig-common/sqlite3/request-tracker5/rtdb";

/// The package's database with the test users added, made once per test run.
static RT_TEMPLATE: std::sync::LazyLock<tempfile::TempDir> = std::sync::LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rtdb");
    std::fs::copy(RT_PACKAGE_DB, &db).unwrap_or_else(|e| panic!("{RT_PACKAGE_DB}: {e}; {RT_HINT}"));
    let conf = rt_config(dir.path(), &db, 0);
    let script = dir.path().join("users.pl");
    std::fs::write(
        &script,
        format!(
            "use strict; use warnings; use lib '{RT_LIB}'; use RT; RT::LoadConfig(); RT::Init();\n\
             for my $name (@ARGV) {{\n\
               my $u = RT::User->new(RT->SystemUser);\n\
               my ($ok, $msg) = $u->Create(Name => $name, Password => \"password-$name\",\n\
                 EmailAddress => \"$name\\@example.com\", RealName => ucfirst($name), Privileged => 1);\n\
               die \"user $name: $msg\\n\" unless $ok;\n\
               ($ok, $msg) = $u->PrincipalObj->GrantRight(Right => 'SuperUser', Object => $RT::System);\n\
               die \"right for $name: $msg\\n\" unless $ok;\n\
             }}\n"
        ),
    )
    .unwrap();
    let out = Command::new("perl")
        .arg(&script)
        .args(["opsdesk", "alice"])
        .env("RT_SITE_CONFIG", conf.join("RT_SiteConfig.pm"))
        .env("RT_SITE_CONFIG_DIR", &conf)
        .output()
        .unwrap_or_else(|e| panic!("perl: {e}; {RT_HINT}"));
    assert!(
        out.status.success(),
        "adding RT's test users failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
});

/// RT's site configuration for a database at `db` served on `port`, in `dir/conf`.
fn rt_config(dir: &Path, db: &Path, port: u16) -> std::path::PathBuf {
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("RT_SiteConfig.pm"),
        format!(
            "Set($rtname, 'opsdesk-test');\nSet($Organization, 'opsdesk.test');\n\
             Set($DatabaseType, 'SQLite');\nSet($DatabaseName, '{}');\n\
             Set($WebPath, '');\nSet($WebDomain, '127.0.0.1');\nSet($WebPort, {port});\n\
             Set($WebBaseURL, 'http://127.0.0.1:{port}');\n\
             Set($LogToSTDERR, 'warning');\nSet($LogToSyslog, undef);\nSet($LogToFile, undef);\n\
             Set($MailCommand, 'testfile');\nSet($Timezone, 'UTC');\n1;\n",
            db.display()
        ),
    )
    .unwrap();
    conf
}

impl RequestTracker {
    pub async fn start() -> RequestTracker {
        let template = RT_TEMPLATE.path().join("rtdb");
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("rtdb");
        std::fs::copy(&template, &db).unwrap();
        let port = free_port();
        let mut rt = RequestTracker {
            url: format!("http://127.0.0.1:{port}"),
            port,
            http: reqwest::Client::new(),
            process: None,
            dir,
        };
        rt.run().await;
        rt
    }

    /// Starts the server (again, after [`RequestTracker::stop`]) on the same port and database.
    pub async fn run(&mut self) {
        let db = self.dir.path().join("rtdb");
        let conf = rt_config(self.dir.path(), &db, self.port);
        let mut process = Process::spawn(
            "rt-server",
            Command::new(RT_SERVER)
                .arg("--port")
                .arg(self.port.to_string())
                .env("RT_SITE_CONFIG", conf.join("RT_SiteConfig.pm"))
                .env("RT_SITE_CONFIG_DIR", &conf),
            self.dir.path(),
            RT_HINT,
        );
        let http = self.http.clone();
        let url = format!("{}/REST/2.0/queues/all", self.url);
        process
            .wait_until(&url, RT_HINT, || {
                let req = http.get(&url).basic_auth("root", Some("password")).send();
                async move { req.await.is_ok_and(|r| r.status().is_success()) }
            })
            .await;
        self.process = Some(process);
    }

    /// Stops the server, as an outage would.
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// A REST 2.0 call as `user`; the JSON answer, panicking with RT's log on a non-2xx.
    pub async fn call(
        &self,
        user: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let password = if user == "root" {
            "password".to_owned()
        } else {
            format!("password-{user}")
        };
        let mut req = self
            .http
            .request(method, format!("{}/REST/2.0/{path}", self.url))
            .basic_auth(user, Some(password));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(
            status.is_success(),
            "RT {path}: {status} {text}\n{}",
            self.log()
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A ticket's fields.
    pub async fn ticket(&self, id: &str) -> Value {
        self.call("root", reqwest::Method::GET, &format!("ticket/{id}"), None)
            .await
    }

    /// The texts of a ticket's messages of `kind` (`Correspond`, `Comment` or `Create`),
    /// oldest first.
    pub async fn messages(&self, id: &str, kind: &str) -> Vec<String> {
        let history = self
            .call(
                "root",
                reqwest::Method::GET,
                &format!("ticket/{id}/history?fields=Type&per_page=100"),
                None,
            )
            .await;
        let mut out = Vec::new();
        for t in history["items"].as_array().unwrap() {
            if t["Type"] != kind {
                continue;
            }
            let tid = t["id"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| t["id"].to_string());
            let parts = self
                .call(
                    "root",
                    reqwest::Method::GET,
                    &format!("transaction/{tid}/attachments?fields=Content,ContentType"),
                    None,
                )
                .await;
            let text = parts["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["ContentType"] == "text/plain")
                .and_then(|p| p["Content"].as_str())
                .unwrap_or_default()
                .to_owned();
            out.push(text);
        }
        out
    }

    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(Process::output)
            .unwrap_or_default()
    }
}

/// A local stand-in for a vendor's API that cannot run here (Jira Cloud, ServiceNow): a
/// Python program under `tests/standins/`, strict about the published request shapes. It
/// answers `GET /_standin/health` once ready; its other `/_standin/` paths are the test's
/// controls, documented in the program.
pub struct StandIn {
    pub url: String,
    process: Process,
    _dir: tempfile::TempDir,
}

impl StandIn {
    /// Starts `tests/standins/<program>.py --port <free port>` with `args` after it.
    pub async fn start(program: &'static str, args: &[&str]) -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/standins")
            .join(format!("{program}.py"));
        let hint = "python3 is needed (scripts/test installs it)";
        let mut process = Process::spawn(
            program,
            Command::new("python3")
                .arg(&script)
                .arg("--port")
                .arg(port.to_string())
                .args(args),
            dir.path(),
            hint,
        );
        let url = format!("http://127.0.0.1:{port}");
        process
            .wait_ready(&format!("{url}/_standin/health"), hint)
            .await;
        StandIn {
            url,
            process,
            _dir: dir,
        }
    }

    /// What the stand-in printed (each request it refused, with why).
    pub fn log(&self) -> String {
        self.process.output()
    }
}
