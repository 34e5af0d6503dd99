//! Readiness in the web app over HTTP, on both backends: a review started and answered from
//! its page (htmx fragments with the new risk and counts), findings made tasks, schedules,
//! the printable report in HTML and Markdown, a post-incident review written, completed and
//! its items verified, and lens import and export for admins.

use opsdesk_domain::Role;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{add_local_user, on_both_backends, Backend, TestServer};
use crate::pages::{post_form, signed_in};

on_both_backends!(
    a_review_is_answered_and_its_findings_become_tasks_in_the_browser,
    a_post_incident_review_is_written_and_closed_in_the_browser,
    admins_import_and_export_lenses_in_the_browser,
);

const FULL: &str = include_str!("../../../domain/tests/fixtures/lens/full.json");

async fn shop(s: &TestServer) {
    let r = s
        .call(
            Method::POST,
            "/api/v1/workloads",
            Some(&s.admin),
            Some(json!({"name": "shop", "environment": "production"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// Posts a form as htmx does (the `HX-Request` header, the CSRF token in a header too).
async fn htmx(b: &reqwest::Client, s: &TestServer, csrf: &str, path: &str, form: &str) -> String {
    let r = b
        .post(s.url(path))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", csrf)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

async fn review_json(b: &reqwest::Client, s: &TestServer, id: i64) -> Value {
    b.get(s.url(&format!("/api/v1/reviews/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn a_review_is_answered_and_its_findings_become_tasks_in_the_browser(backend: Backend) {
    let s = TestServer::start(backend).await;
    shop(&s).await;
    let desk = s.db.desk().await;
    add_local_user(&desk, "ana@example.com", Role::Agent).await;
    add_local_user(&desk, "vic@example.com", Role::Viewer).await;
    let (b, csrf) = signed_in(&s, "ana@example.com").await;

    let page = s.page(&b, "/readiness").await;
    assert!(page.contains("/workloads/shop/readiness"), "{page}");
    assert!(page.contains("never reviewed"));

    // Starting a review opens it.
    let (status, to, _) = post_form(
        &s,
        &b,
        "/readiness",
        &[
            ("workload", "shop"),
            ("lens", "opsdesk-readiness"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let id: i64 = to.strip_prefix("/reviews/").unwrap().parse().unwrap();
    let page = s.page(&b, &to).await;
    let review = review_json(&b, &s, id).await;
    let total = review["risk_counts"]["UNANSWERED"].as_u64().unwrap();
    assert!(total > 5, "{review}");
    let q = &review["pillars"][0]["questions"][0];
    let qid = q["id"].as_str().unwrap();
    assert!(page.contains(&format!(r#"id="q-{qid}""#)), "{page}");
    assert!(page.contains(r#"hx-trigger="change, submit""#));

    // Ticking "None of these" saves at once: the question comes back with its risk, and the
    // counts are swapped in beside it.
    let none = q["choices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["none_of_these"] == json!(true))
        .expect("a None of these choice")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/reviews/{id}/answers/{qid}");
    let fragment = htmx(
        &b,
        &s,
        &csrf,
        &path,
        &format!("choice={none}&notes=no+runbooks"),
    )
    .await;
    let review = review_json(&b, &s, id).await;
    let risk = review["pillars"][0]["questions"][0]["risk"]
        .as_str()
        .unwrap();
    assert!(risk == "HIGH" || risk == "MEDIUM", "{review}");
    assert!(fragment.contains(&format!(">{risk}</span>")), "{fragment}");
    assert!(fragment.contains(r#"id="risk-counts" hx-swap-oob="true""#));
    assert!(fragment.contains(&format!(r#"id="count-unanswered">{}<"#, total - 1)));
    assert!(fragment.contains("no runbooks"));
    assert!(fragment.contains("Make a task"));

    // An unknown choice is refused in place and named; nothing is saved.
    let fragment = htmx(&b, &s, &csrf, &path, "choice=bogus_choice").await;
    assert!(fragment.contains("bogus_choice"), "{fragment}");
    assert!(fragment.contains(r#"class="error""#));
    assert_eq!(
        review_json(&b, &s, id).await["pillars"][0]["questions"][0]["answer"]["choices"],
        json!([none])
    );

    // Without script the form posts and comes back to the question.
    let (status, to, _) = post_form(
        &s,
        &b,
        &path,
        &[
            ("choice", none.as_str()),
            ("notes", "still none"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to, format!("/reviews/{id}#q-{qid}"));

    // A viewer reads the review but cannot answer.
    let (vb, vcsrf) = signed_in(&s, "vic@example.com").await;
    let page = s.page(&vb, &format!("/reviews/{id}")).await;
    assert!(page.contains("still none"));
    assert!(!page.contains("hx-post"));
    let (status, _, _) = post_form(&s, &vb, &path, &[("choice", &none), ("csrf", &vcsrf)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The workload's page lists the finding; one click makes it a task.
    let page = s.page(&b, "/workloads/shop/readiness").await;
    assert!(page.contains(&format!(r#"id="finding-{qid}""#)), "{page}");
    let back = "/workloads/shop/readiness";
    let (status, to, body) = post_form(
        &s,
        &b,
        &format!("/reviews/{id}/action-items"),
        &[("question", qid), ("back", back), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(to, back);
    let items: Value = b
        .get(s.url(&format!("/api/v1/action-items?review={id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = items[0]["ticket_key"].as_str().unwrap().to_owned();
    let page = s.page(&b, back).await;
    assert!(
        page.contains(&format!("Task: <a href=\"/tickets/{key}\">")),
        "{page}"
    );
    assert!(page.contains(&format!(r#"id="item-{}""#, items[0]["id"])));

    // A milestone, then the history shows it per pillar.
    let (status, _, _) = post_form(
        &s,
        &b,
        &format!("/reviews/{id}/milestones"),
        &[("name", "Before launch"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let page = s.page(&b, back).await;
    assert!(page.contains("milestone “Before launch”"), "{page}");

    // Schedules: a bad number is named; a good one shows with its due date.
    let schedules = "/workloads/shop/readiness/schedules";
    let (status, _, body) = post_form(
        &s,
        &b,
        schedules,
        &[("every_days", "often"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("every_days"), "{body}");
    let (status, _, _) =
        post_form(&s, &b, schedules, &[("every_days", "90"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let page = s.page(&b, back).await;
    assert!(
        page.contains("every 90 days after the last review"),
        "{page}"
    );

    // The report, printable and in Markdown.
    // As the page writes it: markup characters escaped.
    let title = q["title"]
        .as_str()
        .unwrap()
        .replace('&', "&#38;")
        .replace('\'', "&#39;")
        .replace('<', "&#60;");
    let page = s.page(&b, &format!("/reviews/{id}/report")).await;
    assert!(page.contains(&title) && page.contains(risk), "{page}");
    assert!(!page.contains("<nav"));
    let r = b
        .get(s.url(&format!("/reviews/{id}/report.md")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[CONTENT_TYPE].to_str().unwrap(),
        "text/markdown; charset=utf-8"
    );
    let md = r.text().await.unwrap();
    assert!(
        md.starts_with(&format!("# Readiness review {id}: shop")),
        "{md}"
    );
    assert!(md.contains(risk));

    // The overview counts the open item.
    let page = s.page(&b, "/readiness").await;
    assert!(page.contains(&format!("/reviews/{id}")), "{page}");
    assert!(!page.contains("never reviewed"));
}

/// Markup characters as the page escapes them, read back.
fn unescape(escaped: &str) -> String {
    let mut text = escaped.to_owned();
    for (entity, c) in [
        ("&#60;", "<"),
        ("&#62;", ">"),
        ("&#34;", "\""),
        ("&#39;", "'"),
    ] {
        text = text.replace(entity, c);
    }
    text.replace("&#38;", "&")
}

/// The text of a text area of a page, unescaped.
fn textarea(page: &str, id: &str) -> String {
    let start = page.find(&format!(r#"id="{id}""#)).expect(id);
    let open = start + page[start..].find('>').unwrap() + 1;
    let close = open + page[open..].find("</textarea>").unwrap();
    unescape(&page[open..close])
}

/// The value of a hidden field of a page, unescaped.
fn hidden_value(page: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let open = page.find(&marker).expect(name) + marker.len();
    let close = open + page[open..].find('"').unwrap();
    unescape(&page[open..close])
}

async fn a_post_incident_review_is_written_and_closed_in_the_browser(backend: Backend) {
    let s = TestServer::start(backend).await;
    shop(&s).await;
    let desk = s.db.desk().await;
    add_local_user(&desk, "ana@example.com", Role::Agent).await;
    let (b, csrf) = signed_in(&s, "ana@example.com").await;
    let t = s
        .ticket(json!({"title": "Checkout 5xx", "kind": "incident", "severity": "SEV1", "workload": "shop"}))
        .await;
    let ticket = t["id"].as_i64().unwrap();
    let r = s
        .patch(
            &format!("/api/v1/tickets/{ticket}"),
            None,
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = s
        .get(&format!(
            "/api/v1/reviews?ticket={ticket}&kind=post_incident"
        ))
        .await;
    let id = r.body[0]["id"].as_i64().expect("a post-incident review");
    let path = format!("/reviews/{id}/incident");

    let page = s.page(&b, &path).await;
    assert!(page.contains("Checkout 5xx"), "{page}");
    // The incident's page leads to its review, and its workload to the workload's readiness.
    let incident_page = s.page(&b, &format!("/tickets/OPS-{ticket}")).await;
    assert!(
        incident_page.contains(&format!(r#"href="{path}""#)),
        "{incident_page}"
    );
    assert!(incident_page.contains(r#"href="/workloads/shop/readiness""#));
    assert!(page.contains("Drawn from the ticket"));
    let drawn = textarea(&page, "timeline-text");
    let hidden = hidden_value(&page, "timeline_drawn");
    assert_eq!(hidden, drawn);
    assert!(drawn.lines().count() >= 2, "{drawn}");
    assert!(drawn.contains("| ticket |"), "{drawn}");

    // Completing before the report is written names what is missing.
    let (status, _, body) =
        post_form(&s, &b, &format!("{path}/complete"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("what_happened"), "{body}");

    // A bad timeline line is named and what was typed stays on the page.
    let bad = format!("{drawn}\nlast tuesday | we noticed");
    let report = |timeline: String| {
        vec![
            ("csrf", csrf.clone()),
            ("what_happened", "The pool ran dry <b>fast</b>.".to_owned()),
            ("impact", "Checkout failed for 20 minutes.".to_owned()),
            ("timeline", timeline),
            ("timeline_drawn", drawn.clone()),
            ("whys", "Pool too small\nNo alarm on saturation".to_owned()),
            ("lessons", "Alarm on pool saturation".to_owned()),
            (
                "caught_by",
                "Do you alarm on connection pool saturation?".to_owned(),
            ),
            ("proposal_title", "Is pool saturation alarmed?".to_owned()),
            (
                "practices",
                "Saturation alarm | Add an alarm at 80% of the pool".to_owned(),
            ),
        ]
    };
    let form = report(bad);
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, body) = post_form(&s, &b, &path, &fields).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("line "), "{body}");
    assert!(body.contains("last tuesday | we noticed"));
    assert!(
        body.contains("The pool ran dry &#60;b&#62;fast&#60;/b&#62;."),
        "{body}"
    );

    // Left as drawn, the timeline stays generated; a line added settles it.
    let form = report(drawn.clone());
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, to, body) = post_form(&s, &b, &path, &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(to, path);
    let api = s.get(&format!("/api/v1/reviews/{id}/incident")).await.body;
    assert_eq!(api["timeline_generated"], json!(true), "{api}");
    assert_eq!(api["report"]["whys"].as_array().unwrap().len(), 2);
    assert_eq!(
        api["report"]["proposal"]["practices"][0]["improvement_plan"],
        json!("Add an alarm at 80% of the pool")
    );

    // The review's own saves are not part of the incident; a record that arrives after the
    // page was drawn does not settle a timeline nobody edited.
    let page = s.page(&b, &path).await;
    assert_eq!(textarea(&page, "timeline-text"), drawn);
    let r = s
        .post(
            &format!("/api/v1/tickets/{ticket}/comments"),
            json!({"body": "Root cause: pool size", "public": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let form = report(drawn.clone());
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, _) = post_form(&s, &b, &path, &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let api = s.get(&format!("/api/v1/reviews/{id}/incident")).await.body;
    assert_eq!(api["timeline_generated"], json!(true), "{api}");
    assert!(
        api["timeline"]
            .to_string()
            .contains("Root cause: pool size"),
        "{api}"
    );
    let form = report(format!(
        "{drawn}\n2026-12-01 10:00 | Paged the database team"
    ));
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, _) = post_form(&s, &b, &path, &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let api = s.get(&format!("/api/v1/reviews/{id}/incident")).await.body;
    assert_eq!(api["timeline_generated"], json!(false), "{api}");
    assert!(api["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["text"] == json!("Paged the database team") && e["source"] == json!("person")));
    let page = s.page(&b, &path).await;
    assert!(page.contains("As people settled it"));
    assert!(page.contains("Waiting for an admin"), "{page}");

    // A save based on a report someone changed since is refused, and what was typed stays.
    let mut stale = report(drawn.clone());
    stale.push(("report_version", "0000000000000000".to_owned()));
    stale[1].1 = "A version typed over an older page".to_owned();
    let fields: Vec<(&str, &str)> = stale.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, body) = post_form(&s, &b, &path, &fields).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("since it was read"), "{body}");
    assert!(body.contains("A version typed over an older page"));
    let page = s.page(&b, &path).await;
    assert!(page.contains(&format!(
        r#"name="report_version" value="{}""#,
        s.get(&format!("/api/v1/reviews/{id}/incident")).await.body["report_version"]
            .as_str()
            .unwrap()
    )));

    // A lesson becomes an action item; completing then works.
    let (status, to, body) = post_form(
        &s,
        &b,
        &format!("/reviews/{id}/action-items"),
        &[
            ("title", "Alarm on pool saturation"),
            ("owner", "ana@example.com"),
            ("due", "2027-01-15"),
            ("severity", "SEV3"),
            ("back", &path),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(to, path);
    let (status, _, _) = post_form(&s, &b, &format!("{path}/complete"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let page = s.page(&b, &path).await;
    assert!(page.contains(r#"id="completed""#), "{page}");
    let item = &s
        .get(&format!("/api/v1/action-items?review={id}"))
        .await
        .body[0];
    assert_eq!(item["owner"], json!("ana@example.com"));
    assert_eq!(item["incident"], json!(format!("OPS-{ticket}")));
    assert!(page.contains(item["ticket_key"].as_str().unwrap()));

    // An item closes only with a verification note.
    let verify = format!("/action-items/{}/verify", item["id"]);
    let (status, _, body) = post_form(
        &s,
        &b,
        &verify,
        &[("note", " "), ("back", &path), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("note"), "{body}");
    let (status, to, _) = post_form(
        &s,
        &b,
        &verify,
        &[
            ("note", "Alarm fired in the load test"),
            ("back", &path),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to, path);
    let item = &s
        .get(&format!("/api/v1/action-items?review={id}"))
        .await
        .body[0];
    assert_eq!(item["state"], json!("verified"));
    assert_eq!(item["status"], json!("resolved"));
    let page = s.page(&b, &path).await;
    assert!(page.contains("Alarm fired in the load test"));

    // A form cannot send a person to another site.
    let (status, to, _) = post_form(
        &s,
        &b,
        &format!("/reviews/{id}/action-items"),
        &[
            ("title", "Runbook for pool exhaustion"),
            ("back", "//evil.example/x"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to, format!("/reviews/{id}"));
}

async fn admins_import_and_export_lenses_in_the_browser(backend: Backend) {
    let s = TestServer::start(backend).await;
    let desk = s.db.desk().await;
    add_local_user(&desk, "ana@example.com", Role::Agent).await;
    add_local_user(&desk, "root@example.com", Role::Admin).await;
    let (agent, _) = signed_in(&s, "ana@example.com").await;
    let r = agent.get(s.url("/admin/lenses")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let (b, csrf) = signed_in(&s, "root@example.com").await;
    let page = s.page(&b, "/admin/lenses").await;
    assert!(page.contains("opsdesk-readiness"), "{page}");
    let (status, _, body) = post_form(
        &s,
        &b,
        "/admin/lenses",
        &[("document", FULL), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Imported"), "{body}");
    let (_, _, body) = post_form(
        &s,
        &b,
        "/admin/lenses",
        &[("document", FULL), ("csrf", &csrf)],
    )
    .await;
    assert!(body.contains("already has this document"), "{body}");

    // A broken document is refused with the place of the fault, and kept in the form.
    let broken = FULL.replacen(
        "\"schemaVersion\": \"2021-11-01\"",
        "\"schemaVersion\": \"2019\"",
        1,
    );
    assert_ne!(broken, FULL, "the fixture names its schema version");
    let (status, _, body) = post_form(
        &s,
        &b,
        "/admin/lenses",
        &[("document", &broken), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("schemaVersion"), "{body}");
    assert!(body.contains("&#34;2019&#34;"), "{body}");

    // Export gives back the document as a file.
    let lenses: Value = b
        .get(s.url("/api/v1/lenses"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let imported = lenses
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["builtin"] == json!(false))
        .unwrap();
    let lens_id = imported["id"].as_str().unwrap();
    let r = b
        .get(s.url(&format!("/admin/lenses/{lens_id}/export?version=1")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .contains(&format!("{lens_id}-v1.json")));
    let exported: Value = r.json().await.unwrap();
    let original: Value = serde_json::from_str(FULL).unwrap();
    assert_eq!(exported["name"], original["name"]);
    assert_eq!(
        exported["pillars"].as_array().unwrap().len(),
        original["pillars"].as_array().unwrap().len()
    );
}
