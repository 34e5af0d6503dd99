//! The web app's pages over HTTP: security headers, CSRF, role checks identical to the API,
//! stale versions, escaping, the ticket page's parts swapped in by htmx, bulk actions and the
//! similar-request hint.

use opsdesk_domain::Role;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{add_local_user, around_now, on_both_backends, Backend, TestServer, PASSWORD};

on_both_backends!(
    pages_are_protected_and_refuse_what_the_api_refuses,
    ticket_page_changes_need_the_version_shown,
    ticket_page_forms_sent_with_htmx_swap_only_the_parts_they_change,
    queue_filters_pages_and_bulk_actions,
    first_admin_account_is_made_in_the_browser_on_a_new_database,
    admins_manage_people_teams_tokens_and_workloads,
    trend_report_page_covers_a_period,
    requesters_raise_requests_in_the_portal,
);

/// A browser-like client signed in as `email`, with the session's CSRF token.
pub(crate) async fn signed_in(s: &TestServer, email: &str) -> (reqwest::Client, String) {
    let b = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = s.page(&b, "/login").await;
    let csrf = csrf_in(&page);
    let r = b
        .post(s.url("/login"))
        .form(&[("email", email), ("password", PASSWORD), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    let me: serde_json::Value = b
        .get(s.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (b, me["csrf_token"].as_str().unwrap().to_owned())
}

fn csrf_in(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

pub(crate) async fn post_form(
    s: &TestServer,
    b: &reqwest::Client,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let r = b.post(s.url(path)).form(form).send().await.unwrap();
    let status = r.status();
    let location = r
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, r.text().await.unwrap())
}

async fn pages_are_protected_and_refuse_what_the_api_refuses(backend: Backend) {
    let s = TestServer::start(backend).await;
    let desk = s.db.desk().await;
    add_local_user(&desk, "vic@example.com", Role::Viewer).await;
    add_local_user(&desk, "ana@example.com", Role::Agent).await;
    desk.db().close().await;
    let t = s
        .ticket(
            json!({"title": "<b>bold</b> & \"quoted\"", "kind": "task", "severity": "SEV4",
                       "description": "[click](javascript:alert(1)) <script>x()</script>"}),
        )
        .await;
    let key = t["key"].as_str().unwrap();

    // Without a session every page sends the visitor to sign in; the assets are public.
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/",
        "/tickets",
        "/tickets/new",
        &format!("/tickets/{key}"),
        "/admin",
    ] {
        let r = anon.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers()[LOCATION], "/login", "{path}");
    }
    for (asset, kind) in [
        ("app.css", "text/css"),
        ("app.js", "text/javascript"),
        ("htmx.min.js", "text/javascript"),
    ] {
        let r = anon
            .get(s.url(&format!("/assets/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
    }
    assert_eq!(
        anon.get(s.url("/assets/nope.js"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    // Every answer forbids inline script and framing.
    let (viewer, viewer_csrf) = signed_in(&s, "vic@example.com").await;
    let r = viewer
        .get(s.url(&format!("/tickets/{key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    assert!(
        !html.contains("<script>x()"),
        "markup in a description is escaped"
    );
    assert!(
        html.contains("&#60;b&#62;bold&#60;/b&#62; &#38; &#34;quoted&#34;")
            && !html.contains("<b>bold"),
        "{html}"
    );
    assert!(
        !html.contains("href=\"javascript:"),
        "a script link is neutralised"
    );
    // Only opsdesk's two scripts (htmx and its own), both from files.
    assert_eq!(html.matches("<script").count(), 2, "{html}");
    // A viewer reads but has no controls, and a change is refused as the API refuses it.
    assert!(!html.contains("id=\"change-form\""));
    let (status, _, body) = post_form(
        &s,
        &viewer,
        &format!("/tickets/{key}/change"),
        &[
            ("csrf", &viewer_csrf),
            ("version", "1"),
            ("status", "acknowledged"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("the viewer role cannot do this"), "{body}");
    let r = viewer.get(s.url("/admin")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.text().await.unwrap().contains("<html"),
        "a person gets a page, not JSON"
    );

    // A form without the session's CSRF token, or sent from another site, changes nothing.
    let (agent, agent_csrf) = signed_in(&s, "ana@example.com").await;
    for csrf in ["", "0000"] {
        let (status, _, body) = post_form(
            &s,
            &agent,
            &format!("/tickets/{key}/comments"),
            &[("csrf", csrf), ("body", "forged")],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("CSRF"), "{body}");
    }
    let r = agent
        .post(s.url(&format!("/tickets/{key}/comments")))
        .header("origin", "https://evil.example")
        .form(&[("csrf", agent_csrf.as_str()), ("body", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let comments = s.get(&format!("/api/v1/tickets/{key}/comments")).await;
    assert_eq!(
        comments.body.as_array().unwrap().len(),
        0,
        "nothing was written"
    );

    // With the token the same reply goes through, and an internal note stays internal.
    let (status, location, _) = post_form(
        &s,
        &agent,
        &format!("/tickets/{key}/comments"),
        &[
            ("csrf", &agent_csrf),
            ("body", "Looking **now**"),
            ("visibility", "internal"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("/tickets/{key}"));
    let comments = s.get(&format!("/api/v1/tickets/{key}/comments")).await;
    assert_eq!(comments.body[0]["public"], false);
    assert_eq!(comments.body[0]["author"], "user:ana@example.com");
    let page = s.page(&agent, &format!("/tickets/{key}")).await;
    assert!(page.contains("Looking <strong>now</strong>") && page.contains("internal note"));
    s.stop().await;
}

async fn ticket_page_changes_need_the_version_shown(backend: Backend) {
    let s = TestServer::start(backend).await;
    let desk = s.db.desk().await;
    add_local_user(&desk, "ana@example.com", Role::Agent).await;
    desk.db().close().await;
    // Every new ticket is announced through a webhook (that answers nothing).
    let hook = json!({"name": "ops-hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"});
    let r = s
        .call(Method::POST, "/api/v1/channels", Some(&s.admin), Some(hook))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let rule = json!({"name": "all", "channels": ["ops-hook"]});
    let r = s
        .call(
            Method::POST,
            "/api/v1/routing-rules",
            Some(&s.admin),
            Some(rule),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (agent, csrf) = signed_in(&s, "ana@example.com").await;

    // The new request form: a bad severity is named, a good request opens a ticket.
    let (status, _, body) = post_form(
        &s,
        &agent,
        "/tickets/new",
        &[
            ("csrf", &csrf),
            ("title", "VPN down"),
            ("kind", "incident"),
            ("severity", "SEV9"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("severity: choose one of SEV1") && body.contains("VPN down"),
        "{body}"
    );
    let (status, _, body) = post_form(
        &s,
        &agent,
        "/tickets/new",
        &[
            ("csrf", &csrf),
            ("title", ""),
            ("kind", "incident"),
            ("severity", "SEV2"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("title:"), "{body}");
    let (status, location, _) = post_form(
        &s,
        &agent,
        "/tickets/new",
        &[
            ("csrf", &csrf),
            ("title", "VPN down"),
            ("kind", "incident"),
            ("severity", "SEV2"),
            ("description", "since 09:00"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let key = location.strip_prefix("/tickets/").unwrap().to_owned();
    let t = s.get(&format!("/api/v1/tickets/{key}")).await.body;
    assert_eq!(
        (t["severity"].as_str(), t["source"].as_str()),
        (Some("SEV2"), Some("web"))
    );
    assert_eq!(t["requester"], "ana@example.com");
    let page = s.page(&agent, &format!("/tickets/{key}")).await;
    assert!(
        page.contains("Notifications") && page.contains("→ ops-hook"),
        "the delivery log: {page}"
    );

    // A change made from a page showing version 1 after the ticket moved on is refused.
    let path = format!("/tickets/{key}/change");
    let (status, _, _) = post_form(
        &s,
        &agent,
        &path,
        &[
            ("csrf", &csrf),
            ("version", "1"),
            ("status", "acknowledged"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, body) = post_form(
        &s,
        &agent,
        &path,
        &[("csrf", &csrf), ("version", "1"), ("severity", "SEV5")],
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert!(body.contains("read it again"), "{body}");
    assert_eq!(
        s.get(&format!("/api/v1/tickets/{key}")).await.body["severity"],
        "SEV2"
    );
    // A transition the workflow does not allow is explained.
    let (status, _, body) = post_form(
        &s,
        &agent,
        &path,
        &[("csrf", &csrf), ("version", "2"), ("status", "new")],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body.contains("cannot go from acknowledged to new"),
        "{body}"
    );
    // Assign and clear the assignee.
    for (value, expected) in [
        ("ana@example.com", json!("ana@example.com")),
        ("", json!(null)),
    ] {
        let version = s.get(&format!("/api/v1/tickets/{key}")).await.body["version"].to_string();
        let (status, _, body) = post_form(
            &s,
            &agent,
            &path,
            &[("csrf", &csrf), ("version", &version), ("assignee", value)],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        assert_eq!(
            s.get(&format!("/api/v1/tickets/{key}")).await.body["assignee"],
            expected
        );
    }
    // Links: to another ticket, not to itself, and removed again.
    let other = s
        .ticket(json!({"title": "VPN concentrator reboot", "kind": "task", "severity": "SEV4"}))
        .await;
    let other_key = other["key"].as_str().unwrap();
    let (status, _, body) = post_form(
        &s,
        &agent,
        &format!("/tickets/{key}/links"),
        &[
            ("csrf", &csrf),
            ("kind", "caused_by"),
            ("target", other_key),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let links = s.get(&format!("/api/v1/tickets/{key}/links")).await.body;
    assert_eq!(links[0]["kind"], "caused_by");
    let page = s.page(&agent, &format!("/tickets/{key}")).await;
    assert!(
        page.contains(&format!(r#"caused by <a href="/tickets/{other_key}">"#)),
        "{page}"
    );
    let (status, _, body) = post_form(
        &s,
        &agent,
        &format!("/tickets/{key}/links"),
        &[("csrf", &csrf), ("kind", "relates_to"), ("target", &key)],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("a ticket cannot link to itself"), "{body}");
    let link_id = links[0]["id"].to_string();
    let (status, _, _) = post_form(
        &s,
        &agent,
        &format!("/tickets/{key}/links/{link_id}/delete"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let links = s.get(&format!("/api/v1/tickets/{key}/links")).await.body;
    assert_eq!(links, json!([]));

    let workload = json!({"name": "checkout", "environment": "production"});
    let r = s
        .call(
            Method::POST,
            "/api/v1/workloads",
            Some(&s.admin),
            Some(workload),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // The dashboard's calendar shows a maintenance window planned for tomorrow.
    let created = chrono::DateTime::parse_from_rfc3339(t["created_at"].as_str().unwrap()).unwrap();
    let start = created + chrono::Duration::days(1);
    let end = start + chrono::Duration::hours(2);
    let plan = json!({"workload": "checkout", "title": "Core switch firmware", "start": start.to_rfc3339(), "end": end.to_rfc3339()});
    let r = s.post("/api/v1/maintenance", plan).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let dashboard = s.page(&agent, "/").await;
    let calendar = dashboard.split("id=\"maintenance\"").nth(1).unwrap();
    assert!(calendar.contains("Core switch firmware"), "{calendar}");

    // AWS Health issues on production workloads, and only those, are on the dashboard.
    for (title, workload) in [
        ("EC2 degraded in eu-west-1", json!("checkout")),
        ("Lambda notice", json!(null)),
    ] {
        s.ticket(
            json!({"title": title, "kind": "incident", "severity": "SEV2",
                        "source": "aws.health", "workload": workload}),
        )
        .await;
    }
    let dashboard = s.page(&agent, "/").await;
    let health = dashboard
        .split("id=\"health\"")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .unwrap();
    assert!(health.contains("EC2 degraded in eu-west-1"), "{health}");
    assert!(!health.contains("Lambda notice"), "{health}");

    // Escalating with no policy says how to get one.
    let (status, _, body) = post_form(
        &s,
        &agent,
        &format!("/tickets/{key}/escalate"),
        &[("csrf", &csrf), ("to", "next")],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("no escalation policy applies"), "{body}");
    s.stop().await;
}

/// Posts a form as htmx does (with `HX-Request`); returns the status and the answer.
async fn post_htmx(
    s: &TestServer,
    b: &reqwest::Client,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, String) {
    let r = b
        .post(s.url(path))
        .header("hx-request", "true")
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn version_of(s: &TestServer, key: &str) -> String {
    s.get(&format!("/api/v1/tickets/{key}")).await.body["version"].to_string()
}

/// The part of an htmx answer swapped in for the element `id`: from its opening tag to the next
/// part's.
fn part<'a>(answer: &'a str, id: &str) -> &'a str {
    let oob = r#"hx-swap-oob="true""#;
    let own = format!(r#"id="{id}" {oob}"#);
    let at = answer
        .find(&own)
        .unwrap_or_else(|| panic!("no part {id} in {answer}"));
    let start = answer[..at].rfind('<').unwrap();
    let after = at + own.len();
    let end = answer[after..]
        .find(oob)
        .and_then(|next| answer[..after + next].rfind('<'))
        .unwrap_or(answer.len());
    &answer[start..end]
}

async fn ticket_page_forms_sent_with_htmx_swap_only_the_parts_they_change(backend: Backend) {
    let s = TestServer::start(backend).await;
    let desk = s.db.desk().await;
    add_local_user(&desk, "ana@example.com", Role::Agent).await;
    add_local_user(&desk, "rita@example.com", Role::Requester).await;
    desk.db().close().await;
    let t = s
        .ticket(
            json!({"title": "Checkout errors", "kind": "incident", "severity": "SEV3",
                       "requester": "rita@example.com"}),
        )
        .await;
    let key = t["key"].as_str().unwrap().to_owned();
    let (agent, csrf) = signed_in(&s, "ana@example.com").await;
    let page = format!("/tickets/{key}");
    let comments = format!("/tickets/{key}/comments");
    let change = format!("/tickets/{key}/change");

    // Without script, a reply and a change still post, redirect and show on the page.
    let (status, location, _) = post_form(
        &s,
        &agent,
        &comments,
        &[("csrf", &csrf), ("body", "Looking into it")],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, page.as_str())
    );
    let v = version_of(&s, &key).await;
    let (status, location, _) = post_form(
        &s,
        &agent,
        &change,
        &[("csrf", &csrf), ("version", &v), ("severity", "SEV2")],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, page.as_str())
    );
    let html = s.page(&agent, &page).await;
    assert!(
        html.contains("<html") && html.contains("Looking into it"),
        "{html}"
    );
    assert!(
        html.contains(r#"id="field-severity">SEV2</span>"#),
        "{html}"
    );
    assert!(html.contains("default-sev2 (always)"), "the clocks: {html}");
    assert!(
        !html.contains("hx-swap-oob"),
        "the page lays its parts out: {html}"
    );

    // With htmx, a reply answers with the conversation, its box empty, and the fields, whose
    // forms must send the version the reply moved; not the clocks, which it leaves alone.
    let (status, answer) = post_htmx(
        &s,
        &agent,
        &comments,
        &[
            ("csrf", &csrf),
            ("body", "Rolled back **v42**"),
            ("visibility", "internal"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(!answer.contains("<html"), "{answer}");
    let conversation = part(&answer, "ticket-conversation");
    assert!(
        conversation.contains("Rolled back <strong>v42</strong>")
            && conversation.contains("internal note")
            && conversation
                .contains(r#"<textarea id="comment-body" name="body" required></textarea>"#),
        "{conversation}"
    );
    assert!(
        conversation.contains("commented"),
        "the timeline: {conversation}"
    );
    assert!(
        !answer.contains("ticket-clocks") && !answer.contains("h-sla"),
        "{answer}"
    );
    let v = version_of(&s, &key).await;
    assert!(
        part(&answer, "ticket-edit").contains(&format!(r#"name="version" value="{v}""#)),
        "{answer}"
    );

    // A field change answers with the fields and the clocks it moved, and the timeline.
    let (status, answer) = post_htmx(
        &s,
        &agent,
        &change,
        &[
            ("csrf", &csrf),
            ("version", &v),
            ("severity", "SEV1"),
            ("assignee", "ana@example.com"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(!answer.contains("<html"), "{answer}");
    assert!(answer.contains(&format!("<title>{key} Checkout errors · opsdesk</title>")));
    let fields = part(&answer, "ticket-fields");
    assert!(
        fields.contains(r#"id="field-severity">SEV1</span>"#)
            && fields.contains(r#"id="field-assignee">ana@example.com</dd>"#),
        "{fields}"
    );
    assert!(
        part(&answer, "ticket-edit").contains(r#"<option value="SEV1" selected>"#),
        "{answer}"
    );
    let clocks = part(&answer, "ticket-clocks");
    assert!(clocks.contains("default-sev1 (always)"), "{clocks}");
    let conversation = part(&answer, "ticket-conversation");
    assert!(
        conversation.contains("severity:") && conversation.contains("<ins>SEV1</ins>"),
        "{conversation}"
    );
    assert_eq!(
        s.get(&format!("/api/v1/tickets/{key}")).await.body["severity"],
        "SEV1"
    );

    // A refused change comes back inside the part its form lives in, as 200 for htmx to swap.
    let (status, answer) = post_htmx(
        &s,
        &agent,
        &change,
        &[("csrf", &csrf), ("version", &v), ("severity", "SEV4")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        !answer.contains("<html") && !answer.contains("page-error"),
        "{answer}"
    );
    let edit = part(&answer, "ticket-edit");
    assert!(
        edit.contains(r#"id="fields-error""#) && edit.contains("read it again"),
        "{edit}"
    );
    assert!(
        part(&answer, "ticket-fields").contains(r#"id="field-severity">SEV1</span>"#),
        "the ticket as it is now: {answer}"
    );
    assert!(!answer.contains("ticket-clocks"), "{answer}");
    assert_eq!(
        s.get(&format!("/api/v1/tickets/{key}")).await.body["severity"],
        "SEV1"
    );
    let (status, answer) = post_htmx(
        &s,
        &agent,
        &format!("/tickets/{key}/links"),
        &[("csrf", &csrf), ("kind", "relates_to"), ("target", &key)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let links = part(&answer, "ticket-links");
    assert!(
        links.contains(r#"id="links-error""#)
            && links.contains("a ticket cannot link to itself")
            && links.contains(&format!(r#"name="target" value="{key}""#)),
        "{links}"
    );
    // A requester's internal note is refused inside the conversation, the draft kept; the
    // portal's conversation has no timeline.
    let (rita, rita_csrf) = signed_in(&s, "rita@example.com").await;
    let (status, answer) = post_htmx(
        &s,
        &rita,
        &comments,
        &[
            ("csrf", &rita_csrf),
            ("body", "psst <b>x</b>"),
            ("visibility", "internal"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let conversation = part(&answer, "ticket-conversation");
    assert!(
        conversation.contains(r#"id="conversation-error""#)
            && conversation.contains("a requester&#39;s comments are public")
            && conversation.contains("required>psst &#60;b&#62;x&#60;/b&#62;</textarea>"),
        "{conversation}"
    );
    assert!(
        !conversation.contains("Rolled back") && !conversation.contains("h-timeline"),
        "{conversation}"
    );
    let listed = s.get(&format!("/api/v1/tickets/{key}/comments")).await.body;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    s.stop().await;
}

async fn queue_filters_pages_and_bulk_actions(backend: Backend) {
    let s = TestServer::start(backend).await;
    let desk = s.db.desk().await;
    add_local_user(&desk, "ana@example.com", Role::Agent).await;
    desk.db().close().await;
    let mut keys = Vec::new();
    for i in 0..7 {
        let sev = if i % 2 == 0 { "SEV2" } else { "SEV4" };
        let t = s
            .ticket(json!({"title": format!("Printer {i} jammed"), "kind": "incident", "severity": sev}))
            .await;
        keys.push(t["key"].as_str().unwrap().to_owned());
    }
    let (agent, csrf) = signed_in(&s, "ana@example.com").await;

    let page = s.page(&agent, "/tickets?severity=SEV2&limit=3").await;
    let rows = page.matches("name=\"id\"").count();
    assert_eq!(rows, 3, "a page of three");
    assert!(
        !page.contains("Printer 1 jammed"),
        "SEV4 tickets are filtered out"
    );
    let next = page
        .split("id=\"next-page\"")
        .next()
        .and_then(|p| p.rsplit("href=\"").next())
        .unwrap();
    let next = next.split('"').next().unwrap().replace("&#38;", "&");
    let second = s.page(&agent, &next).await;
    assert_eq!(
        second.matches("name=\"id\"").count(),
        1,
        "the fourth SEV2 ticket"
    );
    assert!(second.contains("Printer 0 jammed"), "oldest last: {next}");

    let custom = s.page(&agent, "/tickets?status=new,acknowledged").await;
    assert!(
        custom.contains(r#"<option value="new,acknowledged" selected>"#),
        "a value no option names stays chosen"
    );
    let bad = agent
        .get(s.url("/tickets?severity=SEV9"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text().await.unwrap().contains("unknown severity"));

    let found = s
        .page(&agent, "/tickets/similar?title=printer%203%20jam")
        .await;
    assert!(
        found.contains(&keys[3]) && found.contains("Printer 3 jammed"),
        "{found}"
    );
    let none = s.page(&agent, "/tickets/similar?title=%3C%3E").await;
    assert!(none.trim().is_empty(), "{none}");

    // A saved view comes back for its owner only, without its paging.
    let (status, location, body) = post_form(
        &s,
        &agent,
        "/tickets/views",
        &[
            ("csrf", &csrf),
            ("name", "Urgent printers"),
            ("query", "severity=SEV2&q=printer&cursor=abc"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location, "/tickets?severity=SEV2&q=printer");
    let page = s.page(&agent, "/tickets").await;
    assert!(
        page.contains(r#"href="/tickets?severity=SEV2&#38;q=printer">Urgent printers</a>"#),
        "{page}"
    );
    let (status, _, body) = post_form(
        &s,
        &agent,
        "/tickets/views",
        &[
            ("csrf", &csrf),
            ("name", "Broken"),
            ("query", "severity=SEV9"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("unknown severity"), "{body}");
    let desk = s.db.desk().await;
    add_local_user(&desk, "bo@example.com", Role::Agent).await;
    desk.db().close().await;
    let (other, other_csrf) = signed_in(&s, "bo@example.com").await;
    assert!(!s.page(&other, "/tickets").await.contains("Urgent printers"));
    let view_id = page
        .split("action=\"/tickets/views/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let delete = format!("/tickets/views/{view_id}/delete");
    let (status, _, _) = post_form(&s, &other, &delete, &[("csrf", &other_csrf)]).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "someone else's view is not theirs to delete"
    );
    let (status, _, _) = post_form(&s, &agent, &delete, &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(!s.page(&agent, "/tickets").await.contains("Urgent printers"));

    // Assign three tickets at once, then try a move the workflow refuses for one of them.
    let mut form: Vec<(&str, &str)> = vec![
        ("csrf", &csrf),
        ("action", "assign"),
        ("assignee", "ana@example.com"),
        ("back", "severity=SEV2"),
    ];
    for k in &keys[0..3] {
        form.push(("id", k));
    }
    let (status, location, body) = post_form(&s, &agent, "/tickets/bulk", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location, "/tickets?severity=SEV2");
    for k in &keys[0..3] {
        assert_eq!(
            s.get(&format!("/api/v1/tickets/{k}")).await.body["assignee"],
            "ana@example.com"
        );
    }
    s.patch(
        &format!("/api/v1/tickets/{}", keys[4]),
        None,
        json!({"status": "resolved"}),
    )
    .await;
    let form = vec![
        ("csrf", csrf.as_str()),
        ("action", "status"),
        ("status", "closed"),
        ("id", keys[4].as_str()),
        ("id", keys[5].as_str()),
    ];
    let (status, _, body) = post_form(&s, &agent, "/tickets/bulk", &form).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body.contains("1 of 2 tickets changed") && body.contains(&keys[5]),
        "{body}"
    );
    // The way back is the queue's own query string; anything else is dropped, never followed.
    for (back, expected) in [
        (
            "severity=SEV2\r\nSet-Cookie: x=1",
            "/tickets?severity=SEV2%0D%0ASet-Cookie%3A+x%3D1",
        ),
        ("severity=SEV2&next=//evil.example", "/tickets?"),
    ] {
        let form = vec![
            ("csrf", csrf.as_str()),
            ("action", "assign"),
            ("assignee", ""),
            ("id", keys[0].as_str()),
            ("back", back),
        ];
        let (status, location, body) = post_form(&s, &agent, "/tickets/bulk", &form).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        assert_eq!(location, expected);
    }
    assert_eq!(
        s.get(&format!("/api/v1/tickets/{}", keys[4])).await.body["status"],
        "closed"
    );
    assert_eq!(
        s.get(&format!("/api/v1/tickets/{}", keys[5])).await.body["status"],
        "new"
    );
    s.stop().await;
}

async fn first_admin_account_is_made_in_the_browser_on_a_new_database(backend: Backend) {
    let s = TestServer::start(backend).await;
    let b = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert!(s.page(&b, "/login").await.contains("/setup"));
    let setup = |token: String, password: &'static str| {
        let b = b.clone();
        let url = s.url("/setup");
        async move {
            let r = b
                .post(url)
                .form(&[
                    ("token", token.as_str()),
                    ("email", "first@example.com"),
                    ("password", password),
                ])
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    // Only the admin token proves the operator.
    for token in ["odk_wrong".to_owned(), s.viewer.clone()] {
        let (status, body) = setup(token, PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body.contains("not a valid admin API token"), "{body}");
    }
    let (status, body) = setup(s.admin.clone(), "short").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("password"), "{body}");
    assert!(s
        .call(Method::GET, "/api/v1/users", Some(&s.admin), None)
        .await
        .body
        .as_array()
        .unwrap()
        .is_empty());

    let (status, _) = setup(s.admin.clone(), PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (admin, _) = signed_in(&s, "first@example.com").await;
    assert!(s.page(&admin, "/admin").await.contains("first@example.com"));
    // Once someone has an account the page is gone.
    let r = b.get(s.url("/setup")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(!s.page(&b, "/login").await.contains("/setup"));
    let (status, _) = setup(s.admin.clone(), "another-long-passphrase-9").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        s.call(Method::GET, "/api/v1/users", Some(&s.admin), None)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    s.stop().await;
}

async fn admins_manage_people_teams_tokens_and_workloads(backend: Backend) {
    let s = TestServer::start(backend).await;
    let desk = s.db.desk().await;
    add_local_user(&desk, "root@example.com", Role::Admin).await;
    add_local_user(&desk, "ana@example.com", Role::Agent).await;
    desk.db().close().await;
    let (admin, csrf) = signed_in(&s, "root@example.com").await;
    let api = |path: &'static str| s.call(Method::GET, path, Some(&s.admin), None);

    // People: add, refuse a bad role, change a role, disable and enable.
    let (status, _, body) = post_form(
        &s,
        &admin,
        "/admin/users",
        &[
            ("csrf", &csrf),
            ("email", "bo@example.com"),
            ("name", "Bo"),
            ("role", "agent"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("bo@example.com can now sign in as agent"),
        "{body}"
    );
    signed_in(&s, "bo@example.com").await;
    let (status, _, body) = post_form(
        &s,
        &admin,
        "/admin/users",
        &[
            ("csrf", &csrf),
            ("email", "cy@example.com"),
            ("role", "ingest"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body.contains("role: the ingest role is for API tokens only"),
        "{body}"
    );
    let (status, _, body) = post_form(
        &s,
        &admin,
        "/admin/users/role",
        &[
            ("csrf", &csrf),
            ("email", "bo@example.com"),
            ("role", "lead"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let users = api("/api/v1/users").await.body;
    let bo = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "bo@example.com")
        .unwrap()
        .clone();
    assert_eq!(bo["role"], "lead");
    let (status, _, _) = post_form(
        &s,
        &admin,
        "/admin/users/bo@example.com/disable",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let users = api("/api/v1/users").await.body;
    assert!(users
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["email"] == "bo@example.com" && u["active"] == false));
    let (status, _, _) = post_form(
        &s,
        &admin,
        "/admin/users/bo@example.com/enable",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // An address is one path segment, whatever the email holds.
    for email in ["alice@example.com", "%61lice@example.com"] {
        let (status, _, body) = post_form(
            &s,
            &admin,
            "/admin/users",
            &[("csrf", &csrf), ("email", email), ("role", "viewer")],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let page = s.page(&admin, "/admin").await;
    let action = "/admin/users/%2561lice%40example%2Ecom/disable";
    assert!(page.contains(action), "{page}");
    let (status, _, _) = post_form(&s, &admin, action, &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::OK);
    let users = api("/api/v1/users").await.body;
    let active = |email: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap()["active"]
            .clone()
    };
    assert_eq!(
        (active("%61lice@example.com"), active("alice@example.com")),
        (json!(false), json!(true))
    );

    // Teams and their members.
    let (status, _, body) = post_form(
        &s,
        &admin,
        "/admin/teams",
        &[("csrf", &csrf), ("name", "sre"), ("lead", "bo@example.com")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = post_form(
        &s,
        &admin,
        "/admin/teams/members",
        &[
            ("csrf", &csrf),
            ("team", "sre"),
            ("email", "ana@example.com"),
            ("change", "add"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let teams = api("/api/v1/teams").await.body;
    assert_eq!(
        teams[0]["members"],
        json!(["ana@example.com", "bo@example.com"]),
        "the lead is a member too: {teams}"
    );
    let (status, _, _) = post_form(
        &s,
        &admin,
        "/admin/teams/members",
        &[
            ("csrf", &csrf),
            ("team", "sre"),
            ("email", "ana@example.com"),
            ("change", "remove"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let teams = api("/api/v1/teams").await.body;
    assert_eq!(teams[0]["members"], json!(["bo@example.com"]), "{teams}");

    // Tokens: the secret is shown once, works, and stops working when revoked.
    let (status, _, body) = post_form(
        &s,
        &admin,
        "/admin/tokens",
        &[("csrf", &csrf), ("name", "grafana"), ("role", "viewer")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at = body.find("odk_").expect("the secret, shown once");
    let secret: String = body[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let r = s
        .call(Method::GET, "/api/v1/tickets", Some(&secret), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !s.page(&admin, "/admin").await.contains(&secret),
        "never shown again"
    );
    let (status, _, _) = post_form(
        &s,
        &admin,
        "/admin/tokens/grafana/revoke",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let r = s
        .call(Method::GET, "/api/v1/tickets", Some(&secret), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Workloads.
    let (status, _, body) = post_form(
        &s,
        &admin,
        "/admin/workloads",
        &[
            ("csrf", &csrf),
            ("name", "orders"),
            ("environment", "production"),
            ("team", "sre"),
            ("accounts", "111111111111, 222222222222"),
            ("regions", "eu-west-1"),
            ("resources", "arn:aws:rds:*:*:db:orders-*"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let w = s.get("/api/v1/workloads/orders").await.body;
    assert_eq!(w["accounts"], json!(["111111111111", "222222222222"]));
    assert_eq!(w["environment"], "production");
    let (status, _, body) = post_form(
        &s,
        &admin,
        "/admin/workloads",
        &[("csrf", &csrf), ("name", "shop"), ("environment", "prod")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("environment: expected one of production"),
        "{body}"
    );
    let (status, _, _) = post_form(
        &s,
        &admin,
        "/admin/workloads/orders/delete",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.get("/api/v1/workloads/orders").await.status,
        StatusCode::NOT_FOUND
    );

    // Channels, routing rules and AWS accounts from their fields; KPIs as the JSON the API
    // takes.
    type Fields<'a> = Vec<(&'a str, &'a str)>;
    let forms: [(&str, Fields, &str); 5] = [
        (
            "/admin/channels",
            vec![
                ("name", "ops-webhook"),
                ("type", "webhook"),
                ("url", "https://hooks.example.com/opsdesk"),
                ("format", ""),
                ("secret", ""),
                ("to", "ignored@example.com"),
                ("topic_arn", ""),
            ],
            "Channel ops-webhook is saved",
        ),
        (
            "/admin/channels",
            vec![
                ("name", "payments-oncall"),
                ("type", "pagerduty"),
                ("routing_key", "R0123456789ABCDEF0123456789ABCDE"),
                ("url", ""),
            ],
            "Channel payments-oncall is saved",
        ),
        (
            "/admin/routing-rules",
            vec![
                ("name", "sev1-to-ops"),
                ("events", "created"),
                ("events", "escalated"),
                ("severities", "SEV1"),
                ("sources", "aws.health, web"),
                ("workloads", ""),
                ("channels", "ops-webhook"),
                ("stop", "on"),
            ],
            "Routing rule sev1-to-ops is saved",
        ),
        (
            "/admin/kpis",
            vec![(
                "spec",
                r#"{"name": "major_incident_share", "over": "tickets", "aggregate": "ratio", "filter": {"kinds": ["incident"]}, "numerator": {"severities": ["SEV1", "SEV2"]}, "target": 10, "warning": 20, "breach": 30, "scope": ["team"]}"#,
            )],
            "KPI major_incident_share is saved",
        ),
        (
            "/admin/aws-accounts",
            vec![
                ("id", "123456789012"),
                ("name", "production"),
                ("support_plan", "business"),
                ("account_team_emails", "tam@example.com"),
                ("support_role_arn", ""),
            ],
            "AWS account 123456789012 is saved with the business plan",
        ),
    ];
    for (path, fields, saved) in forms {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        let (status, _, body) = post_form(&s, &admin, path, &form).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(body.contains(saved), "{path}: {body}");
    }
    let rules = s
        .call(Method::GET, "/api/v1/routing-rules", Some(&s.admin), None)
        .await
        .body;
    let rule = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "sev1-to-ops")
        .unwrap()
        .clone();
    assert_eq!(rule["events"], json!(["created", "escalated"]), "{rule}");
    assert_eq!(rule["sources"], json!(["aws.health", "web"]), "{rule}");
    assert_eq!(
        (rule["channels"].clone(), rule["stop"].clone()),
        (json!(["ops-webhook"]), json!(true))
    );
    let channels = s
        .call(Method::GET, "/api/v1/channels", Some(&s.admin), None)
        .await
        .body;
    assert!(
        !channels.to_string().contains("ignored@example.com"),
        "only the webhook's fields: {channels}"
    );
    let account = api("/api/v1/aws-accounts/123456789012").await.body;
    assert_eq!(account["support_plan"], "business");
    assert_eq!(account["account_team_emails"], json!(["tam@example.com"]));
    let page = s.page(&admin, "/admin").await;
    assert!(page.contains("major_incident_share") && page.contains("ops-webhook"));
    // Every channel type has its form, and a PagerDuty key is never shown back.
    for form in [
        "save-channel-webhook",
        "save-channel-email",
        "save-channel-sns",
        "save-channel-pagerduty",
    ] {
        assert!(page.contains(form), "{form}");
    }
    assert!(page.contains("payments-oncall") && page.contains("PagerDuty"));
    assert!(!page.contains("R0123456789ABCDEF0123456789ABCDE"));
    assert!(!channels
        .to_string()
        .contains("R0123456789ABCDEF0123456789ABCDE"));
    for (form, field) in [
        (vec![("name", "half"), ("type", "pager")], "type:"),
        (
            vec![("name", "half"), ("type", "webhook"), ("url", "not a url")],
            "url",
        ),
    ] {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend(form);
        let (status, _, body) = post_form(&s, &admin, "/admin/channels", &all).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.contains(field), "the field at fault is named: {body}");
    }
    for (path, gone) in [
        (
            "/admin/routing-rules/sev1-to-ops/delete",
            "Routing rule sev1-to-ops is deleted",
        ),
        (
            "/admin/channels/ops-webhook/delete",
            "Channel ops-webhook is deleted",
        ),
        (
            "/admin/kpis/major_incident_share/delete",
            "KPI major_incident_share is deleted",
        ),
        (
            "/admin/aws-accounts/123456789012/delete",
            "AWS account 123456789012 is deleted",
        ),
    ] {
        let (status, _, body) = post_form(&s, &admin, path, &[("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(body.contains(gone), "{path}: {body}");
    }
    assert_eq!(
        api("/api/v1/aws-accounts/123456789012").await.status,
        StatusCode::NOT_FOUND
    );
    let (status, _, body) =
        post_form(&s, &admin, "/admin/kpis/mtta/delete", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::CONFLICT, "a built-in KPI stays: {body}");

    // None of it is open to an agent.
    let (agent, agent_csrf) = signed_in(&s, "ana@example.com").await;
    let (status, _, _) = post_form(
        &s,
        &agent,
        "/admin/tokens",
        &[("csrf", &agent_csrf), ("name", "mine"), ("role", "admin")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    s.stop().await;
}

async fn trend_report_page_covers_a_period(backend: Backend) {
    let s = TestServer::start(backend).await;
    let desk = s.db.desk().await;
    add_local_user(&desk, "ana@example.com", Role::Agent).await;
    add_local_user(&desk, "rita@example.com", Role::Requester).await;
    desk.db().close().await;
    for (title, sev) in [
        ("Queue stuck", "SEV2"),
        ("Queue stuck again", "SEV2"),
        ("Typo", "SEV5"),
    ] {
        s.ticket(json!({"title": title, "kind": "incident", "severity": sev}))
            .await;
    }
    let (agent, _) = signed_in(&s, "ana@example.com").await;
    let period = around_now();
    let page = s.page(&agent, &format!("/reports?period={period}")).await;
    assert!(page.contains("Tickets created: 3"), "{page}");
    assert!(page.contains("<title>SEV2: 2</title>"), "{page}");
    assert!(page.contains("Mean time to acknowledge"), "{page}");
    let r = agent
        .get(s.url("/reports?period=yesterday"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("period:"));
    assert!(
        s.page(&agent, "/reports").await.contains("Trend report"),
        "last week by default"
    );
    // Reports cover every ticket: not for requesters, as in the API.
    let (requester, _) = signed_in(&s, "rita@example.com").await;
    // A requester's portal pages through all of their requests.
    let many: Vec<_> = (0..51)
        .map(|i| {
            json!({"title": format!("Laptop {i}"), "kind": "service_request",
                        "severity": "SEV5", "requester": "rita@example.com"})
        })
        .collect();
    let r = s
        .call(
            Method::POST,
            "/api/v1/tickets/batch",
            Some(&s.admin),
            Some(json!(many)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let first = s.page(&requester, "/").await;
    assert_eq!(first.matches("<tr><td><a href=\"/tickets/").count(), 50);
    let older = first
        .split("href=\"/?cursor=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let second = s.page(&requester, &format!("/?cursor={older}")).await;
    assert_eq!(second.matches("<tr><td><a href=\"/tickets/").count(), 1);
    assert!(second.contains("Laptop 0"), "oldest last");
    let r = requester.get(s.url("/reports")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    s.stop().await;
}

async fn requesters_raise_requests_in_the_portal(backend: Backend) {
    let s = TestServer::start(backend).await;
    let desk = s.db.desk().await;
    add_local_user(&desk, "rita@example.com", Role::Requester).await;
    desk.db().close().await;
    let arn = "arn:aws:rds:eu-west-1:111122223333:db:checkout-main";
    let r = s
        .call(
            Method::POST,
            "/api/v1/workloads",
            Some(&s.admin),
            Some(json!({"name": "checkout", "environment": "production",
                        "accounts": ["111122223333"], "resources": [arn]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (rita, csrf) = signed_in(&s, "rita@example.com").await;

    let portal = s.page(&rita, "/").await;
    assert!(portal.contains("My requests"), "{portal}");
    // The form offers the workloads by name, and nothing else of them.
    let form = s.page(&rita, "/tickets/new").await;
    assert!(
        form.contains(r#"<option value="checkout">checkout</option>"#),
        "{form}"
    );
    assert!(!form.contains("111122223333"), "{form}");

    // Fields the form does not have are not taken, even when a crafted post sends them.
    let (status, location, body) = post_form(
        &s,
        &rita,
        "/tickets/new",
        &[
            ("csrf", &csrf),
            ("title", "Checkout is slow"),
            ("kind", "incident"),
            ("severity", "SEV3"),
            ("workload", "checkout"),
            ("assignee", "root"),
            ("team", "payments"),
            ("source", "aws.health"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let key = location.strip_prefix("/tickets/").unwrap().to_owned();
    let t = s.get(&format!("/api/v1/tickets/{key}")).await.body;
    assert_eq!(t["requester"], "rita@example.com", "{t}");
    assert_eq!(t["source"], "web", "{t}");
    assert_eq!(t["workload"], "checkout", "{t}");
    assert_eq!(t["assignee"], serde_json::Value::Null, "{t}");
    let page = s.page(&rita, &format!("/tickets/{key}")).await;
    assert!(page.contains("Checkout is slow"), "{page}");
    assert!(s.page(&rita, "/").await.contains(key.as_str()));

    // A public reply is theirs to post; an internal note is not, and nothing is stored.
    let path = format!("/tickets/{key}/comments");
    let (status, _, _) =
        post_form(&s, &rita, &path, &[("csrf", &csrf), ("body", "Still slow")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = post_form(
        &s,
        &rita,
        &path,
        &[
            ("csrf", &csrf),
            ("body", "psst"),
            ("visibility", "internal"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let comments = s.get(&format!("/api/v1/tickets/{key}/comments")).await.body;
    let bodies: Vec<_> = comments
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["body"].as_str().unwrap(), c["public"].as_bool().unwrap()))
        .collect();
    assert_eq!(bodies, [("Still slow", true)]);
    s.stop().await;
}
