//! The web app in a real browser: headless Chromium driven through ChromeDriver (WebDriver).
//! Screenshots of the main pages are saved under target/screenshots/<backend>/.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use opsdesk_domain::Role;
use serde_json::json;

use crate::common::{add_local_user, around_now, on_both_backends, Backend, TestServer, PASSWORD};

on_both_backends!(
    people_work_a_request_from_start_to_end_in_the_browser,
    a_readiness_review_is_answered_in_the_browser,
    a_screenshot_goes_with_a_new_request_and_the_agent_downloads_it,
);

/// ChromeDriver on a port of its own, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed (Debian: chromium-driver); scripts/test installs it");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver { child, url }
    }

    async fn browser(&self) -> Client {
        self.browser_with(&[]).await
    }

    async fn browser_with(&self, extra: &[&str]) -> Client {
        self.browser_saving_to(extra, None).await
    }

    /// A browser that saves downloads in `downloads`, without asking.
    async fn browser_saving_to(
        &self,
        extra: &[&str],
        downloads: Option<&std::path::Path>,
    ) -> Client {
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1400,1100",
        ];
        args.extend_from_slice(extra);
        let mut caps = serde_json::Map::new();
        let mut options = json!({ "binary": "/usr/bin/chromium", "args": args });
        if let Some(dir) = downloads {
            options["prefs"] = json!({
                "download.default_directory": dir.display().to_string(),
                "download.prompt_for_download": false,
            });
        }
        caps.insert("goog:chromeOptions".into(), options);

        // Two TLS back-ends are linked in; the WebDriver client (plain HTTP here) needs one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        ClientBuilder::rustls()
            .expect("a TLS set-up for the WebDriver client")
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session from chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshots(backend: Backend) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target
        .join("screenshots")
        .join(format!("{backend:?}").to_lowercase());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, dir: &std::path::Path, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Waits until the element's text satisfies `ok`: a click that submits a form leaves the old
/// page in place until the new one arrives, and both may hold the element.
async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never matched; last text: {last:?}");
}

async fn fill(c: &Client, css: &str, value: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Whether the page still holds the mark left on it: no navigation has loaded another since.
async fn same_page(c: &Client) -> bool {
    c.execute("return window.samePage === true", vec![])
        .await
        .unwrap()
        == json!(true)
}

async fn sign_in(c: &Client, s: &TestServer, email: &str) {
    c.goto(&s.url("/login")).await.unwrap();
    fill(c, "#email", email).await;
    // The keyboard alone: Enter in the password field signs in.
    fill(c, "#password", &format!("{PASSWORD}\u{E007}")).await;
    c.wait()
        .for_element(Locator::Css("header.top"))
        .await
        .unwrap();
    assert!(text(c, "header.top .who").await.contains(email));
}

async fn sign_out(c: &Client) {
    click(c, "form[action='/logout'] button").await;
    c.wait().for_element(Locator::Css("#email")).await.unwrap();
}

async fn people_work_a_request_from_start_to_end_in_the_browser(backend: Backend) {
    let s = TestServer::start_with(backend, |config, _| {
        config.escalation.policies = vec![serde_json::from_value(json!({
            "name": "standard",
            "tiers": [
                {"name": "L1", "team": "service-desk", "ack_timeout_minutes": 30},
                {"name": "L2", "team": "sre", "ack_timeout_minutes": 60},
            ],
        }))
        .unwrap()];
    })
    .await;
    let desk = s.db.desk().await;
    add_local_user(&desk, "rita@example.com", Role::Requester).await;
    add_local_user(&desk, "ana@example.com", Role::Agent).await;
    add_local_user(&desk, "root@example.com", Role::Admin).await;
    let dir = screenshots(backend);
    let driver = Driver::start().await;
    let c = driver.browser().await;

    // Signing in.
    c.goto(&s.url("/")).await.unwrap();
    c.wait().for_element(Locator::Css("#email")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    shot(&c, &dir, "login").await;

    // A requester raises a request through the portal. Its title holds markup.
    sign_in(&c, &s, "rita@example.com").await;
    assert_eq!(text(&c, "h1").await, "My requests");
    click(&c, "#new-request").await;
    c.wait()
        .for_element(Locator::Css("#new-ticket"))
        .await
        .unwrap();
    let title = r#"<script>window.pwned = 1</script> Disk full on db-1"#;
    fill(&c, "#title", title).await;
    c.find(Locator::Css("#severity"))
        .await
        .unwrap()
        .select_by_value("SEV3")
        .await
        .unwrap();
    fill(
        &c,
        "#description",
        "The **data** volume is at 99%.\n\n<img src=x onerror=\"window.pwned = 2\">",
    )
    .await;
    shot(&c, &dir, "new-request").await;
    click(&c, "#create").await;
    c.wait()
        .for_element(Locator::Css("#ticket-title"))
        .await
        .unwrap();
    let key = c
        .current_url()
        .await
        .unwrap()
        .path()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(key.starts_with("OPS-"), "{key}");
    // The markup is shown as text and runs nothing.
    assert!(text(&c, "#ticket-title").await.contains(title));
    assert!(text(&c, ".comment-body").await.contains("<img src=x"));
    let pwned = c
        .execute("return window.pwned === undefined", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, json!(true), "markup in a ticket ran as script");
    assert_eq!(text(&c, "#field-status").await, "new");
    // A requester sees no staff controls and may not open admin pages.
    assert!(c.find(Locator::Css("#change-form")).await.is_err());
    c.goto(&s.url("/admin")).await.unwrap();
    let refused = text(&c, "main").await;
    assert!(
        refused.contains("Forbidden") && refused.contains("requester role cannot"),
        "{refused}"
    );
    c.goto(&s.url("/")).await.unwrap();
    assert!(text(&c, "#my-tickets").await.contains(&key));
    shot(&c, &dir, "portal").await;
    sign_out(&c).await;

    // The KPIs are evaluated with the open request in them.
    desk.evaluate_kpis(true).await.unwrap();

    // An agent sees it on the dashboard and in the queue.
    sign_in(&c, &s, "ana@example.com").await;
    assert_eq!(text(&c, "h1").await, "Dashboard");
    let tiles = c.find_all(Locator::Css("#kpi-tiles .tile")).await.unwrap();
    assert!(tiles.len() >= 13, "{} KPI tiles", tiles.len());
    assert!(text(&c, "#kpi-backlog .value").await.starts_with('1'));
    let bars = c
        .find_all(Locator::Css("#backlog-severity svg rect.bar"))
        .await
        .unwrap();
    assert_eq!(bars.len(), 5, "one bar per severity");
    let sev3 = c
        .find(Locator::Css("#backlog-severity svg rect.sev-SEV3"))
        .await
        .unwrap();
    let height: f64 = sev3.attr("height").await.unwrap().unwrap().parse().unwrap();
    assert!(
        height > 100.0,
        "the one open SEV3 ticket is the tallest bar: {height}"
    );
    let sev1: f64 = c
        .find(Locator::Css("#backlog-severity svg rect.sev-SEV1"))
        .await
        .unwrap()
        .attr("height")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sev1, 0.0);
    assert!(text(&c, "#backlog-severity").await.contains("1 open"));
    shot(&c, &dir, "dashboard").await;

    // The new request form suggests open requests like the one being typed: htmx at work
    // under the Content-Security-Policy.
    c.goto(&s.url("/tickets/new")).await.unwrap();
    fill(&c, "#title", "disk full").await;
    wait_text(&c, "#similar", |t| t.contains(key.as_str())).await;

    let period = around_now();
    c.goto(&s.url(&format!("/reports?period={period}")))
        .await
        .unwrap();
    assert!(text(&c, "#volume").await.contains("Tickets created: 1"));
    shot(&c, &dir, "report").await;

    c.goto(&s.url("/tickets?q=disk&status=new,acknowledged,in_progress,pending"))
        .await
        .unwrap();
    let queue = text(&c, "#queue").await;
    assert!(
        queue.contains(&key) && queue.contains("Disk full on db-1"),
        "{queue}"
    );
    shot(&c, &dir, "queue").await;
    click(&c, &format!("#queue a[href='/tickets/{key}']")).await;
    c.wait()
        .for_element(Locator::Css("#acknowledge"))
        .await
        .unwrap();

    // Acknowledge, comment, escalate and resolve: htmx swaps in the parts each changes, so the
    // page is never loaded again and a mark left on it stays.
    c.execute("window.samePage = true", vec![]).await.unwrap();
    click(&c, "#acknowledge").await;
    wait_text(&c, "#field-status", |t| t == "acknowledged").await;
    fill(&c, "#comment-body", "Grew the volume to **200 GiB**.").await;
    click(&c, "#send-comment").await;
    wait_text(&c, "#comments", |t| {
        t.contains("Grew the volume to 200 GiB.")
    })
    .await;
    assert!(same_page(&c).await, "the reply reloaded the page");
    let draft = c
        .find(Locator::Css("#comment-body"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(draft.as_deref(), Some(""), "the reply box is cleared");
    let local = c
        .find(Locator::Css("#comments li:last-child time"))
        .await
        .unwrap()
        .attr("data-local")
        .await
        .unwrap();
    assert_eq!(local.as_deref(), Some("1"), "the new reply's time is local");
    wait_text(&c, "#timeline", |t| t.contains("commented")).await;
    fill(&c, "#escalate-reason", "needs the database team").await;
    click(&c, "#escalate").await;
    wait_text(&c, "#field-tier", |t| t.contains("L2")).await;
    assert!(c.find(Locator::Css("#page-error")).await.is_err());
    assert!(c.find(Locator::Css("#fields-error")).await.is_err());
    // Inline edit: the title loses its markup.
    click(&c, "details.wide summary").await;
    fill(&c, "#edit-title", "Disk full on db-1").await;
    click(&c, "#save-changes").await;
    wait_text(&c, "#ticket-title", |t| {
        t == "OPS-1 Disk full on db-1"
            || (t.ends_with(" Disk full on db-1") && !t.contains("script"))
    })
    .await;
    click(&c, "#resolve").await;
    wait_text(&c, "#field-status", |t| t == "resolved").await;
    assert!(same_page(&c).await, "a change reloaded the page");

    // The timeline shows each step, who took it, and what changed.
    let timeline = text(&c, "#timeline").await;
    for step in [
        "user:rita@example.com opened the ticket",
        "user:ana@example.com",
        "commented",
        "escalated",
        "acknowledged",
        "resolved",
    ] {
        assert!(
            timeline.contains(step),
            "timeline lacks {step:?}:\n{timeline}"
        );
    }
    assert!(
        timeline.contains("status:") && timeline.contains("title:"),
        "{timeline}"
    );
    // Editing the title leaves the description, typed in a textarea, as it was.
    assert_eq!(timeline.matches("description:").count(), 1, "{timeline}");
    // The whole ticket page, timeline included.
    c.set_window_size(1400, 2400).await.unwrap();
    shot(&c, &dir, "ticket").await;
    c.set_window_size(1400, 1100).await.unwrap();

    // Signed out behind the page's back (the session cookie gone): a reply sent with htmx
    // takes the person to sign in instead of doing nothing.
    c.delete_all_cookies().await.unwrap();
    fill(&c, "#comment-body", "Anyone there?").await;
    click(&c, "#send-comment").await;
    c.wait().for_element(Locator::Css("#email")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));

    // An admin sees the configuration and verifies the audit chain.
    sign_in(&c, &s, "root@example.com").await;
    c.goto(&s.url("/admin")).await.unwrap();
    let users = text(&c, "#users").await;
    assert!(
        users.contains("rita@example.com") && users.contains("requester"),
        "{users}"
    );
    assert!(text(&c, "#kpis").await.contains("mtta"));
    assert!(text(&c, "#sla-policies").await.contains("default-sev3"));
    let tiers = text(&c, "#escalation-policies").await;
    assert!(
        tiers.contains("L1 (service-desk, 30 min) → L2 (sre, 60 min)"),
        "{tiers}"
    );
    let kpi_charts = c.find_all(Locator::Css("#kpis .spark svg")).await.unwrap();
    assert!(
        kpi_charts.len() >= 13,
        "a chart per KPI: {}",
        kpi_charts.len()
    );
    shot(&c, &dir, "admin").await;
    c.goto(&s.url("/admin/audit")).await.unwrap();
    click(&c, "#verify").await;
    wait_text(&c, "#chain-result", |t| t.contains("The chain is intact")).await;
    assert!(text(&c, "#audit").await.contains(&key));
    shot(&c, &dir, "audit").await;

    c.close().await.unwrap();

    // The same pages in dark mode.
    let dark = driver.browser_with(&["--force-dark-mode"]).await;
    sign_in(&dark, &s, "ana@example.com").await;
    let background = dark
        .execute(
            "return getComputedStyle(document.body).backgroundColor",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(background, json!("rgb(20, 23, 28)"), "the dark palette");
    shot(&dark, &dir, "dashboard-dark").await;
    dark.goto(&s.url(&format!("/tickets/{key}"))).await.unwrap();
    shot(&dark, &dir, "ticket-dark").await;
    dark.close().await.unwrap();
    desk.db().close().await;
    s.stop().await;
}

/// Waits until the API's answer at `path` is what `check` wants.
async fn wait_api(s: &TestServer, path: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        last = s.get(path).await.body;
        if check(&last) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never matched: {last}");
}

async fn a_readiness_review_is_answered_in_the_browser(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = s
        .call(
            reqwest::Method::POST,
            "/api/v1/workloads",
            Some(&s.admin),
            Some(json!({"name": "shop", "environment": "production"})),
        )
        .await;
    assert_eq!(r.status, reqwest::StatusCode::CREATED, "{}", r.body);
    let desk = s.db.desk().await;
    add_local_user(&desk, "ana@example.com", Role::Agent).await;
    let dir = screenshots(backend);
    let driver = Driver::start().await;
    let c = driver.browser().await;
    sign_in(&c, &s, "ana@example.com").await;

    // From the navigation to a new review of the workload.
    click(&c, "header.top nav a[href='/readiness']").await;
    c.wait()
        .for_element(Locator::Css("#start-review"))
        .await
        .unwrap();
    c.find(Locator::Css("#workload"))
        .await
        .unwrap()
        .select_by_value("shop")
        .await
        .unwrap();
    click(&c, "#start-review button[type='submit']").await;
    let title = wait_text(&c, "h1", |t| t.starts_with("Review ")).await;
    let id: i64 = title
        .trim_start_matches("Review ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let review = s.get(&format!("/api/v1/reviews/{id}")).await.body;
    let unanswered = review["risk_counts"]["UNANSWERED"].as_u64().unwrap();
    let first = &review["pillars"][0]["questions"][0];
    let second = &review["pillars"][0]["questions"][1];
    let (q1, q2) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );

    // Ticking "None of these" saves at once; the risk and the counts change in place.
    let none = first["choices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["none_of_these"] == json!(true))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    click(&c, &format!("#q-{q1} input[value='{none}']")).await;
    let risk = wait_text(&c, &format!("#q-{q1} .badge.risk"), |t| t != "UNANSWERED").await;
    assert!(risk == "HIGH" || risk == "MEDIUM", "{risk}");
    let left = (unanswered - 1).to_string();
    wait_text(&c, "#count-unanswered", |t| t == left).await;
    wait_text(&c, &format!("#q-{q1} .plans"), |t| t.contains("To improve")).await;

    // Every practice of the next question: no risk.
    let practices: Vec<String> = second["choices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["none_of_these"] != json!(true))
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    for p in &practices {
        click(&c, &format!("#q-{q2} input[value='{p}']")).await;
        // Each tick is saved and the question swapped in anew before the next.
        let n = practices.iter().position(|x| x == p).unwrap() + 1;
        wait_api(&s, &format!("/api/v1/reviews/{id}"), |r| {
            r["pillars"][0]["questions"][1]["answer"]["choices"]
                .as_array()
                .is_some_and(|a| a.len() == n)
        })
        .await;
        let css = format!("#q-{q2} input[name='choice']:checked");
        for _ in 0..100 {
            if c.find_all(Locator::Css(&css)).await.unwrap().len() == n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    wait_text(&c, &format!("#q-{q2} .badge.risk"), |t| t == "NONE").await;

    // Notes are saved when the field is left.
    fill(&c, &format!("#notes-{q1}"), "Runbooks live in the wiki").await;
    click(&c, "h1").await;
    wait_api(&s, &format!("/api/v1/reviews/{id}"), |r| {
        r["pillars"][0]["questions"][0]["answer"]["notes"] == json!("Runbooks live in the wiki")
    })
    .await;
    shot(&c, &dir, "review").await;

    // The workload's page lists the finding; the report prints the answers.
    c.goto(&s.url("/workloads/shop/readiness")).await.unwrap();
    wait_text(&c, &format!("#finding-{q1}"), |t| t.contains(&risk)).await;
    shot(&c, &dir, "workload-readiness").await;
    c.goto(&s.url(&format!("/reviews/{id}/report")))
        .await
        .unwrap();
    wait_text(&c, "h1", |t| t.contains("Readiness review")).await;
    shot(&c, &dir, "review-report").await;

    // A resolved SEV1 opens its post-incident review; saving the report from the browser
    // without touching the timeline keeps it drawn from the records.
    let t = s
        .ticket(json!({"title": "Checkout down", "kind": "incident", "severity": "SEV1", "workload": "shop"}))
        .await;
    let ticket = t["id"].as_i64().unwrap();
    let r = s
        .patch(
            &format!("/api/v1/tickets/{ticket}"),
            None,
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(r.status, reqwest::StatusCode::OK, "{}", r.body);
    let pir = s
        .get(&format!(
            "/api/v1/reviews?ticket={ticket}&kind=post_incident"
        ))
        .await
        .body[0]["id"]
        .as_i64()
        .expect("a post-incident review");
    c.goto(&s.url(&format!("/tickets/OPS-{ticket}")))
        .await
        .unwrap();
    click(&c, "#incident-review-link").await;
    wait_text(&c, "h1", |t| t.contains("Checkout down")).await;
    fill(&c, "#what_happened", "The pool ran dry").await;
    click(&c, "#save-report").await;
    wait_api(&s, &format!("/api/v1/reviews/{pir}/incident"), |r| {
        r["report"]["what_happened"] == json!("The pool ran dry")
    })
    .await;
    let api = s.get(&format!("/api/v1/reviews/{pir}/incident")).await.body;
    assert_eq!(api["timeline_generated"], json!(true), "{api}");
    wait_text(&c, "#what_happened", |t| t.contains("The pool ran dry")).await;
    shot(&c, &dir, "post-incident-review").await;
}

async fn a_screenshot_goes_with_a_new_request_and_the_agent_downloads_it(backend: Backend) {
    let s = TestServer::start(backend).await;
    let desk = s.db.desk().await;
    add_local_user(&desk, "rita@example.com", Role::Requester).await;
    add_local_user(&desk, "ana@example.com", Role::Agent).await;
    let dir = screenshots(backend);
    let files = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let driver = Driver::start().await;
    let c = driver.browser_saving_to(&[], Some(downloads.path())).await;

    // The requester takes a screenshot of what she sees and sends it with her request.
    sign_in(&c, &s, "rita@example.com").await;
    c.goto(&s.url("/tickets/new")).await.unwrap();
    let screenshot = c.screenshot().await.unwrap();
    assert!(screenshot.starts_with(b"\x89PNG"));
    let path = files.path().join("what I see.png");
    std::fs::write(&path, &screenshot).unwrap();
    fill(&c, "#title", "The new request form looks odd").await;
    c.find(Locator::Css("#files"))
        .await
        .unwrap()
        .send_keys(&path.display().to_string())
        .await
        .unwrap();
    click(&c, "#create").await;
    c.wait()
        .for_element(Locator::Css("#ticket-title"))
        .await
        .unwrap();
    let listed = text(&c, "table#files").await;
    assert!(listed.contains("what I see.png"), "{listed}");
    shot(&c, &dir, "ticket-with-file").await;
    let key = c
        .current_url()
        .await
        .unwrap()
        .path()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    sign_out(&c).await;

    // The agent opens the ticket and downloads the file: the same bytes.
    sign_in(&c, &s, "ana@example.com").await;
    c.goto(&s.url(&format!("/tickets/{key}"))).await.unwrap();
    click(&c, "table#files a[download]").await;
    let saved = downloads.path().join("what I see.png");
    let mut got = None;
    for _ in 0..100 {
        if let Ok(bytes) = std::fs::read(&saved) {
            if bytes.len() == screenshot.len() {
                got = Some(bytes);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listing: Vec<_> = std::fs::read_dir(downloads.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let got = got.unwrap_or_else(|| panic!("no download; the folder holds {listing:?}"));
    assert_eq!(got, screenshot);
    // The download is in the ticket's history, with who and what.
    let history = s.get(&format!("/api/v1/tickets/{key}/history")).await.body;
    let downloaded = history
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "attachment.downloaded")
        .cloned()
        .unwrap_or_default();
    assert_eq!(downloaded["actor"], "user:ana@example.com", "{history}");
    c.close().await.unwrap();
    s.stop().await;
}
