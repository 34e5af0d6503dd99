use opsdesk::config::Config;
use opsdesk_core::{Actor, Desk};
use opsdesk_domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

/// The local password test people get.
pub const PASSWORD: &str = "plum-tractor-velvet-42";

/// Adds a person with a local password.
pub async fn add_local_user(desk: &Desk, email: &str, role: Role) {
    desk.add_user(
        &Actor::cli(),
        opsdesk_domain::NewUser {
            email: email.into(),
            display_name: None,
            role,
            teams: vec![],
            password: Some(PASSWORD.into()),
        },
    )
    .await
    .unwrap();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed scenario (an `async fn(Backend)` in the parent module) once per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// A database of its own: a SQLite file in a temporary folder, or a PostgreSQL schema.
pub struct TestDb {
    pub url: String,
    schema: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("opsdesk.db").display());
                TestDb {
                    url,
                    schema: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let base = std::env::var("OPSDESK_TEST_POSTGRES_URL").expect(
                    "OPSDESK_TEST_POSTGRES_URL must name a PostgreSQL database for the tests \
                     (scripts/test sets it)",
                );
                let schema = format!("opsdesk_t_{}", uuid::Uuid::new_v4().simple());
                let pool = sqlx::PgPool::connect(&base).await.unwrap();
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                TestDb {
                    url,
                    schema: Some((base, schema)),
                    // Ticket files of this desk.
                    _dir: Some(tempfile::tempdir().unwrap()),
                }
            }
        }
    }

    /// Runs raw SQL against the database, as an operator with direct access would.
    pub async fn sql(&self, sql: &str) -> Result<u64, String> {
        let db = opsdesk_store::Db::connect(&self.url, &Default::default())
            .await
            .unwrap();
        let res = db.execute_raw(sql).await.map_err(|e| e.to_string());
        db.close().await;
        res
    }

    pub async fn drop_schema(&self) {
        if let Some((base, schema)) = &self.schema {
            let pool = sqlx::PgPool::connect(base).await.unwrap();
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }

    pub fn config(&self) -> Config {
        let mut config = Config::default();
        config.database.url = self.url.clone();
        config.database.max_connections = 4;
        config.server.shutdown_grace_secs = 5;
        if let (Some(dir), Some(_)) = (&self._dir, &self.schema) {
            config.attachments.dir = Some(dir.path().join("files").display().to_string());
        }
        config
    }

    pub async fn desk(&self) -> Desk {
        opsdesk::server::open_desk(&self.config()).await.unwrap()
    }
}

/// A running server with one token per role.
pub struct TestServer {
    pub base: String,
    pub admin: String,
    pub agent: String,
    pub viewer: String,
    /// A token of the `ingest` role, for signal senders, once [`TestServer::with_ingest_token`]
    /// made one.
    pub ingest: String,
    pub db: TestDb,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        TestServer::start_with(backend, |_, _| {}).await
    }

    /// Starts a server whose configuration `configure` adjusts, knowing the server's base URL.
    pub async fn start_with(
        backend: Backend,
        configure: impl FnOnce(&mut Config, &str),
    ) -> TestServer {
        let db = TestDb::new(backend).await;
        let mut config = db.config();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        configure(&mut config, &base);
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            opsdesk::server::serve(&config, listener, async move {
                let _ = rx.await;
            })
            .await
        });
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
                if r.status() == StatusCode::OK {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let desk = db.desk().await;
        let cli = Actor::cli();
        let mut tokens = Vec::new();
        for role in [Role::Admin, Role::Agent, Role::Viewer] {
            let (_, secret) = desk
                .create_token(&cli, &format!("test-{role}"), role)
                .await
                .unwrap();
            tokens.push(secret);
        }
        desk.db().close().await;
        let [admin, agent, viewer] = <[String; 3]>::try_from(tokens).unwrap();
        TestServer {
            base,
            admin,
            agent,
            viewer,
            ingest: String::new(),
            db,
            http,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Adds a token of the `ingest` role.
    pub async fn with_ingest_token(mut self) -> TestServer {
        let desk = self.db.desk().await;
        let (_, secret) = desk
            .create_token(&Actor::cli(), "test-ingest", Role::Ingest)
            .await
            .unwrap();
        desk.db().close().await;
        self.ingest = secret;
        self
    }

    /// Stops the server gracefully and removes its database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
        self.db.drop_schema().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request with a token and an optional JSON body; returns status, headers and body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Reply::from(req.send().await.unwrap()).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, Some(&self.agent), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(&self.agent), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, if_match: Option<&str>, body: Value) -> Reply {
        let mut req = self
            .http
            .patch(self.url(path))
            .bearer_auth(&self.agent)
            .json(&body);
        if let Some(tag) = if_match {
            req = req.header("if-match", tag);
        }
        Reply::from(req.send().await.unwrap()).await
    }

    /// Creates a ticket and returns it.
    pub async fn ticket(&self, body: Value) -> Value {
        let r = self.post("/api/v1/tickets", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    pub async fn count_tickets(&self) -> usize {
        let r = self.get("/api/v1/tickets?limit=200").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["items"].as_array().unwrap().len()
    }

    /// The whole audit trail, read through the API with the admin token.
    pub async fn audit_trail(&self) -> Vec<Value> {
        let r = self
            .call(
                Method::GET,
                "/api/v1/audit?limit=1000",
                Some(&self.admin),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["items"].as_array().unwrap().clone()
    }

    /// The text of a page, fetched with `client`.
    pub async fn page(&self, client: &reqwest::Client, path: &str) -> String {
        client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn audit_head(&self) -> i64 {
        let desk = self.db.desk().await;
        let head = desk.db().audit_head().await.unwrap().seq;
        desk.db().close().await;
        head
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn from(r: reqwest::Response) -> Reply {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts an RFC 9457 problem with this status and, when given, this field.
    pub fn assert_problem(&self, status: u16, field: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.header("content-type"), "application/problem+json");
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            self.body
        );
        if let Some(f) = field {
            assert_eq!(self.body["field"], f, "{}", self.body);
        }
    }
}

/// A report period from an hour ago to an hour from now, on the wall clock the server reads.
#[allow(clippy::disallowed_methods)]
pub fn around_now() -> String {
    let now = chrono::Utc::now();
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let hour = chrono::Duration::hours(1);
    format!("{}..{}", at(now - hour), at(now + hour))
}
