use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{on_both_backends, Backend, TestServer};

on_both_backends!(
    create_read_and_list,
    bad_input_is_refused_and_writes_nothing,
    access_by_token_and_role,
    status_workflow_is_enforced,
    stale_updates_get_412_and_never_lose_a_change,
    comments_and_links,
    search_filters_sort_and_pages,
    patch_sets_and_clears_fields,
    batch_creates_all_or_none,
);

fn incident(title: &str) -> Value {
    json!({ "title": title, "kind": "incident", "severity": "SEV3" })
}

async fn create_read_and_list(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = s
        .post(
            "/api/v1/tickets",
            json!({
                "title": "  Checkout API returns 502  ",
                "description": "Since **09:40** UTC",
                "kind": "incident",
                "severity": "SEV2",
                "requester": "ana@example.com",
                "team": "payments",
                "workload": "checkout",
                "tags": ["Prod", "api", "prod"],
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let t = r.body;
    let id = t["id"].as_i64().unwrap();
    assert_eq!(t["key"], format!("OPS-{id}"));
    assert_eq!(t["title"], "Checkout API returns 502");
    assert_eq!(t["status"], "new");
    assert_eq!(t["source"], "manual");
    assert_eq!(t["dedup_key"], Value::Null);
    assert_eq!(t["tags"], json!(["api", "prod"]));
    assert_eq!(t["version"], 1);
    assert_eq!(r.headers["etag"], "\"1\"");
    assert_eq!(
        r.headers["location"],
        format!("/api/v1/tickets/{id}").as_str()
    );

    for path in [
        format!("/api/v1/tickets/{id}"),
        format!("/api/v1/tickets/OPS-{id}"),
    ] {
        let got = s.get(&path).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, t);
        assert_eq!(got.header("etag"), "\"1\"");
    }
    s.get("/api/v1/tickets/OPS-999999")
        .await
        .assert_problem(404, None);
    s.get("/api/v1/tickets/not-a-key")
        .await
        .assert_problem(404, None);

    let list = s.get("/api/v1/tickets").await;
    assert_eq!(list.body["items"], json!([t]));
    assert!(list.body.get("next_cursor").is_none());
    s.stop().await;
}

async fn bad_input_is_refused_and_writes_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let head = s.audit_head().await;
    let raw = |body: &'static str| {
        s.http
            .post(s.url("/api/v1/tickets"))
            .bearer_auth(&s.agent)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = raw("{\"title\": ").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(raw("not json").await.unwrap().status(), 400);

    let cases = [
        (
            json!({"title": 5, "kind": "incident", "severity": "SEV3"}),
            "title",
        ),
        (
            json!({"title": "x", "kind": "incident", "severity": "SEV3", "colour": "red"}),
            "colour",
        ),
        (
            json!({"title": "", "kind": "incident", "severity": "SEV3"}),
            "title",
        ),
        (
            json!({"title": "   ", "kind": "incident", "severity": "SEV3"}),
            "title",
        ),
        (
            json!({"title": "x".repeat(301), "kind": "incident", "severity": "SEV3"}),
            "title",
        ),
        (
            json!({"title": "x", "kind": "incident", "severity": "SEV0"}),
            "severity",
        ),
        (
            json!({"title": "x", "kind": "outage", "severity": "SEV3"}),
            "kind",
        ),
        (json!({"title": "x", "severity": "SEV3"}), "kind"),
        (
            json!({"title": "x", "kind": "task", "severity": "SEV3", "tags": ["ok", "no spaces"]}),
            "tags[1]",
        ),
        (
            json!({"title": "x", "kind": "task", "severity": "SEV3", "tags": "prod"}),
            "tags",
        ),
        (
            json!({"title": "x", "kind": "task", "severity": "SEV3", "source": "Bad Source"}),
            "source",
        ),
        (
            json!({"title": "a\u{0}b", "kind": "task", "severity": "SEV3"}),
            "title",
        ),
        (
            json!({"title": "x", "kind": "task", "severity": "SEV3", "description": "nul\u{0}"}),
            "description",
        ),
    ];
    for (body, field) in cases {
        s.post("/api/v1/tickets", body)
            .await
            .assert_problem(422, Some(field));
    }
    // 300 characters is the limit, counted in characters, not bytes.
    let ok = s
        .post(
            "/api/v1/tickets",
            json!({"title": "é".repeat(300), "kind": "task", "severity": "SEV5"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let id = ok.body["id"].as_i64().unwrap();
    let after_create = s.audit_head().await;
    assert_eq!(after_create, head + 1);

    let big = json!({"title": "x", "kind": "task", "severity": "SEV3", "description": "a".repeat(1024 * 1024)});
    s.post("/api/v1/tickets", big)
        .await
        .assert_problem(413, None);

    let path = format!("/api/v1/tickets/{id}");
    s.patch(&path, None, json!({"status": "archived"}))
        .await
        .assert_problem(422, Some("status"));
    s.patch(&path, None, json!({"title": null}))
        .await
        .assert_problem(422, Some("title"));
    s.patch(&path, None, json!({"version": 3}))
        .await
        .assert_problem(422, Some("version"));
    s.patch(&path, Some("\"x\""), json!({"title": "y"}))
        .await
        .assert_problem(422, Some("If-Match"));
    s.patch(&path, None, json!({"status": "closed"}))
        .await
        .assert_problem(409, None);
    s.patch(&path, Some("\"7\""), json!({"title": "y"}))
        .await
        .assert_problem(412, None);
    s.post(&format!("{path}/comments"), json!({"body": "  "}))
        .await
        .assert_problem(422, Some("body"));
    s.post(
        &format!("{path}/links"),
        json!({"kind": "blocks", "target": "OPS-1"}),
    )
    .await
    .assert_problem(422, Some("kind"));
    let text = s
        .http
        .post(s.url("/api/v1/tickets"))
        .bearer_auth(&s.agent)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    s.get("/api/v1/tickets?status=open")
        .await
        .assert_problem(422, Some("status"));
    s.get("/api/v1/tickets?limit=0")
        .await
        .assert_problem(422, Some("limit"));
    s.get("/api/v1/tickets?sort=colour")
        .await
        .assert_problem(422, Some("sort"));
    s.get("/api/v1/tickets?cursor=garbage")
        .await
        .assert_problem(422, Some("cursor"));
    s.get("/api/v1/tickets?colour=red")
        .await
        .assert_problem(422, None);

    assert_eq!(
        s.audit_head().await,
        after_create,
        "a refused request wrote an audit entry"
    );
    assert_eq!(s.count_tickets().await, 1);
    let t = s.get(&path).await.body;
    assert_eq!(
        (t["version"].as_i64(), t["status"].as_str()),
        (Some(1), Some("new"))
    );
    s.stop().await;
}

async fn access_by_token_and_role(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = s.ticket(incident("Queue backlog")).await;
    let path = format!("/api/v1/tickets/{}", t["id"]);
    let head = s.audit_head().await;

    for token in [None, Some("odk_not-a-real-token"), Some("garbage")] {
        s.call(Method::GET, "/api/v1/tickets", token, None)
            .await
            .assert_problem(401, None);
    }
    let r = s.call(Method::GET, "/api/v1/tickets", None, None).await;
    assert_eq!(r.header("www-authenticate"), "Bearer");
    let raw = s
        .http
        .get(s.url("/api/v1/tickets"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);

    // A viewer reads everything and writes nothing, even with a bad body.
    assert_eq!(
        s.call(Method::GET, &path, Some(&s.viewer), None)
            .await
            .status,
        StatusCode::OK
    );
    s.call(
        Method::POST,
        "/api/v1/tickets",
        Some(&s.viewer),
        Some(incident("x")),
    )
    .await
    .assert_problem(403, None);
    s.call(
        Method::POST,
        "/api/v1/tickets",
        Some(&s.viewer),
        Some(json!({"bad": 1})),
    )
    .await
    .assert_problem(403, None);
    s.call(
        Method::PATCH,
        &path,
        Some(&s.viewer),
        Some(json!({"title": "y"})),
    )
    .await
    .assert_problem(403, None);
    s.call(
        Method::POST,
        &format!("{path}/comments"),
        Some(&s.viewer),
        Some(json!({"body": "hi"})),
    )
    .await
    .assert_problem(403, None);
    assert_eq!(s.audit_head().await, head);

    // Admins write too; a token revoked elsewhere stops working within 2 s (the server's
    // token cache), and at once when revoked through this server (tests/admin.rs).
    assert_eq!(
        s.call(
            Method::POST,
            "/api/v1/tickets",
            Some(&s.admin),
            Some(incident("by admin"))
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let desk = s.db.desk().await;
    desk.revoke_token(&opsdesk_core::Actor::cli(), "test-agent")
        .await
        .unwrap();
    desk.db().close().await;
    let revoked_at = std::time::Instant::now();
    loop {
        let r = s
            .call(Method::GET, "/api/v1/tickets", Some(&s.agent), None)
            .await;
        if r.status == StatusCode::FORBIDDEN {
            r.assert_problem(403, None);
            break;
        }
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(3),
            "the revoked token still works after 3 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    s.stop().await;
}

async fn status_workflow_is_enforced(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = s.ticket(incident("Lambda throttling")).await;
    let path = format!("/api/v1/tickets/{}", t["key"].as_str().unwrap());

    let step = |status: &'static str| s.patch(&path, None, json!({ "status": status }));
    let r = step("acknowledged").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["acknowledged_at"], r.body["updated_at"]);
    let r = step("new").await;
    r.assert_problem(409, None);
    assert!(
        r.body["detail"].as_str().unwrap().contains("acknowledged"),
        "{}",
        r.body
    );
    assert_eq!(step("in_progress").await.status, StatusCode::OK);
    assert_eq!(step("pending").await.status, StatusCode::OK);
    assert_eq!(step("in_progress").await.status, StatusCode::OK);
    let resolved = step("resolved").await.body;
    assert_eq!(resolved["resolved_at"], resolved["updated_at"]);
    let closed = step("closed").await.body;
    assert_eq!(closed["closed_at"], closed["updated_at"]);
    step("resolved").await.assert_problem(409, None);
    let reopened = step("in_progress").await.body;
    assert_eq!(reopened["status"], "in_progress");
    assert_eq!(
        (
            reopened["resolved_at"].clone(),
            reopened["closed_at"].clone()
        ),
        (Value::Null, Value::Null)
    );
    assert_eq!(reopened["acknowledged_at"], r_ack(&resolved));
    assert_eq!(reopened["version"], 8);

    let history = s.get(&format!("{path}/history")).await.body;
    let statuses: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["changes"]["status"]["after"].as_str())
        .collect();
    assert_eq!(
        statuses,
        [
            "new",
            "acknowledged",
            "in_progress",
            "pending",
            "in_progress",
            "resolved",
            "closed",
            "in_progress"
        ]
    );
    s.stop().await;
}

fn r_ack(t: &Value) -> Value {
    t["acknowledged_at"].clone()
}

async fn stale_updates_get_412_and_never_lose_a_change(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = s.ticket(incident("RDS failover")).await;
    let path = format!("/api/v1/tickets/{}", t["id"]);

    let first = s
        .patch(&path, Some("\"1\""), json!({"assignee": "ana"}))
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("etag"), "\"2\"");
    let second = s
        .patch(&path, Some("\"1\""), json!({"assignee": "bo"}))
        .await;
    second.assert_problem(412, None);
    assert_eq!(second.body["current_version"], 2);
    assert_eq!(s.get(&path).await.body["assignee"], "ana");
    // Weak and bare forms of the ETag are understood too.
    assert_eq!(
        s.patch(&path, Some("W/\"2\""), json!({"team": "dba"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        s.patch(&path, Some("3"), json!({"severity": "SEV1"}))
            .await
            .status,
        StatusCode::OK
    );

    // Many writers race from the same version: exactly one wins, the rest are told.
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let http = s.http.clone();
            let url = s.url(&path);
            let token = s.agent.clone();
            tokio::spawn(async move {
                http.patch(url)
                    .bearer_auth(token)
                    .header("if-match", "\"4\"")
                    .json(&json!({ "assignee": format!("racer-{i}") }))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap().as_u16());
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 412).count(), 11, "{codes:?}");
    let now = s.get(&path).await.body;
    assert_eq!(now["version"], 5);
    let history = s.get(&format!("{path}/history")).await.body;
    assert_eq!(history.as_array().unwrap().len(), 5);
    s.stop().await;
}

async fn comments_and_links(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.ticket(incident("API errors")).await;
    let b = s.ticket(incident("API errors again")).await;
    let (a_path, b_key) = (
        format!("/api/v1/tickets/{}", a["id"]),
        b["key"].as_str().unwrap().to_owned(),
    );

    let c = s
        .post(
            &format!("{a_path}/comments"),
            json!({"body": "Rolled back **v42**", "public": false}),
        )
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.body);
    assert_eq!(c.body["public"], false);
    assert!(c.body["author"].as_str().unwrap().starts_with("token:"));
    s.post(&format!("{a_path}/comments"), json!({"body": "Fixed"}))
        .await;
    let comments = s.get(&format!("{a_path}/comments")).await.body;
    let bodies: Vec<_> = comments
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["Rolled back **v42**", "Fixed"]);
    assert_eq!(comments[1]["public"], true);
    let after = s.get(&a_path).await;
    assert_eq!(
        after.body["version"], 3,
        "a comment is a change to the ticket"
    );

    let link = s
        .post(
            &format!("{a_path}/links"),
            json!({"kind": "duplicates", "target": b_key}),
        )
        .await;
    assert_eq!(link.status, StatusCode::CREATED, "{}", link.body);
    assert_eq!(link.body["kind"], "duplicates");
    assert_eq!(link.body["target_id"], b["id"]);
    s.post(
        &format!("{a_path}/links"),
        json!({"kind": "duplicates", "target": b_key}),
    )
    .await
    .assert_problem(409, None);
    assert_eq!(
        s.post(
            &format!("{a_path}/links"),
            json!({"kind": "relates_to", "target": b_key})
        )
        .await
        .status,
        StatusCode::CREATED
    );
    s.post(
        &format!("{a_path}/links"),
        json!({"kind": "caused_by", "target": "OPS-999999"}),
    )
    .await
    .assert_problem(422, Some("target"));
    s.post(
        &format!("{a_path}/links"),
        json!({"kind": "caused_by", "target": a["key"]}),
    )
    .await
    .assert_problem(422, Some("target"));
    s.post("/api/v1/tickets/OPS-999999/comments", json!({"body": "x"}))
        .await
        .assert_problem(404, None);

    // Both ends see the link.
    let from_b = s.get(&format!("/api/v1/tickets/{b_key}/links")).await.body;
    assert_eq!(from_b.as_array().unwrap().len(), 2);
    let link_id = link.body["id"].as_i64().unwrap();
    let del = s
        .call(
            Method::DELETE,
            &format!("{a_path}/links/{link_id}"),
            Some(&s.agent),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    s.call(
        Method::DELETE,
        &format!("{a_path}/links/{link_id}"),
        Some(&s.agent),
        None,
    )
    .await
    .assert_problem(404, None);
    let kinds: Vec<_> = s
        .get(&format!("{a_path}/links"))
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("relates_to")]);

    let actions: Vec<_> = s
        .get(&format!("{a_path}/history"))
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "ticket.created",
            "ticket.commented",
            "ticket.commented",
            "ticket.linked",
            "ticket.linked",
            "ticket.unlinked"
        ]
    );
    s.stop().await;
}

async fn search_filters_sort_and_pages(backend: Backend) {
    let s = TestServer::start(backend).await;
    let specs = [
        (
            "Disk full on db-1",
            "The volume filled with logs",
            "SEV2",
            "incident",
            "dba",
            &["prod", "db"][..],
        ),
        (
            "Latency spike in checkout",
            "p99 above 2s after deploy",
            "SEV1",
            "incident",
            "payments",
            &["prod"][..],
        ),
        (
            "New laptop for Ana",
            "MacBook please",
            "SEV5",
            "service_request",
            "it",
            &[][..],
        ),
        (
            "How do I rotate keys?",
            "KMS question",
            "SEV4",
            "question",
            "security",
            &["kms"][..],
        ),
        (
            "Patch bastion hosts",
            "monthly patching",
            "SEV4",
            "task",
            "platform",
            &["prod"][..],
        ),
    ];
    let mut ids = Vec::new();
    for (title, desc, sev, kind, team, tags) in specs {
        let t = s
            .ticket(json!({"title": title, "description": desc, "severity": sev, "kind": kind, "team": team, "tags": tags}))
            .await;
        ids.push(t["id"].as_i64().unwrap());
    }
    s.post(
        &format!("/api/v1/tickets/{}/comments", ids[4]),
        json!({"body": "waiting for the maintenance window"}),
    )
    .await;
    s.patch(
        &format!("/api/v1/tickets/{}", ids[1]),
        None,
        json!({"status": "acknowledged"}),
    )
    .await;

    let found = |query: String| {
        let s = &s;
        async move {
            let r = s.get(&format!("/api/v1/tickets?{query}")).await;
            assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    // Full text covers title, description and comments, with stemming and prefixes.
    assert_eq!(found("q=disk".into()).await, [ids[0]]);
    assert_eq!(found("q=logs%20volume".into()).await, [ids[0]]);
    assert_eq!(found("q=maintenance".into()).await, [ids[4]]);
    assert_eq!(found("q=patching".into()).await, [ids[4]]);
    assert_eq!(found("q=latenc*".into()).await, [ids[1]]);
    assert_eq!(found("q=nothing-like-this".into()).await, Vec::<i64>::new());
    assert_eq!(
        found("q=disk&team=payments".into()).await,
        Vec::<i64>::new()
    );
    // Search syntax in the input is taken as text, never as an operator or an error.
    for q in [
        "-",
        "*",
        "\"",
        "'",
        "a*",
        "disk OR",
        "NEAR(disk",
        "the",
        "ñandú",
        "col:val",
        "a&b|c",
        "%27%3B--",
        "🚀",
        "x*y*",
        "disk\u{0}",
    ] {
        let r = s
            .http
            .get(s.url("/api/v1/tickets"))
            .query(&[("q", q)])
            .bearer_auth(&s.agent)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "q={q:?}: {}", r.text().await.unwrap());
    }
    // Filters.
    assert_eq!(found("status=acknowledged".into()).await, [ids[1]]);
    assert_eq!(found("severity=SEV1,sev2".into()).await, [ids[1], ids[0]]);
    assert_eq!(found("kind=question,task".into()).await, [ids[4], ids[3]]);
    assert_eq!(found("tag=prod".into()).await, [ids[4], ids[1], ids[0]]);
    assert_eq!(found("tag=prod&team=dba".into()).await, [ids[0]]);
    assert_eq!(
        found("source=manual&limit=2".into()).await,
        [ids[4], ids[3]]
    );
    // Sorts.
    assert_eq!(found("sort=created".into()).await, ids);
    assert_eq!(
        found("sort=severity".into()).await,
        [ids[1], ids[0], ids[3], ids[4], ids[2]]
    );
    assert_eq!(found("sort=-updated&limit=1".into()).await, [ids[1]]);

    // Cursor pages walk every ticket once, in order, for each sort.
    for sort in [
        "-created",
        "created",
        "severity",
        "-severity",
        "-updated",
        "updated",
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let mut q = format!("/api/v1/tickets?limit=2&sort={sort}");
            if let Some(c) = &cursor {
                q.push_str(&format!("&cursor={c}"));
            }
            let page = s.get(&q).await.body;
            seen.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["id"].as_i64().unwrap()),
            );
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        let all = found(format!("sort={sort}")).await;
        assert_eq!(seen, all, "paging with sort {sort}");
        assert_eq!(seen.len(), 5);
    }
    s.stop().await;
}

async fn patch_sets_and_clears_fields(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = s.ticket(json!({"title": "VPN down", "kind": "incident", "severity": "SEV2", "assignee": "ana", "team": "net", "tags": ["vpn"]})).await;
    let path = format!("/api/v1/tickets/{}", t["id"]);
    let r = s.patch(&path, None, json!({"assignee": null, "title": "VPN down in eu-west-1", "tags": ["vpn", "eu"], "kind": "task", "workload": "remote-access"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["assignee"], Value::Null);
    assert_eq!(r.body["team"], "net");
    assert_eq!(r.body["tags"], json!(["eu", "vpn"]));
    assert_eq!(r.body["workload"], "remote-access");
    // A patch that changes nothing is not a change.
    let same = s.patch(&path, None, json!({"team": "net"})).await;
    assert_eq!(same.body["version"], 2);
    let history = s.get(&format!("{path}/history")).await.body;
    assert_eq!(history.as_array().unwrap().len(), 2);
    let changes = &history[1]["changes"];
    assert_eq!(changes["assignee"], json!({"before": "ana", "after": null}));
    assert_eq!(
        changes["title"],
        json!({"before": "VPN down", "after": "VPN down in eu-west-1"})
    );
    assert!(changes.get("team").is_none());
    assert_eq!(history[1]["actor"], "token:test-agent");
    assert_eq!(history[1]["prev_hash"], history[0]["hash"]);
    assert_eq!(
        s.get("/api/v1/tickets?tag=eu").await.body["items"][0]["id"],
        t["id"]
    );
    assert_eq!(
        s.get("/api/v1/tickets?q=eu-west").await.body["items"][0]["id"],
        t["id"]
    );
    // A tag taken off is gone from the tag filter; the one kept stays.
    let r = s.patch(&path, None, json!({"tags": ["eu"]})).await;
    assert_eq!(r.body["tags"], json!(["eu"]), "{}", r.body);
    assert_eq!(
        s.get("/api/v1/tickets?tag=vpn").await.body["items"],
        json!([])
    );
    assert_eq!(
        s.get("/api/v1/tickets?tag=eu").await.body["items"][0]["id"],
        t["id"]
    );
    s.stop().await;
}

async fn batch_creates_all_or_none(backend: Backend) {
    let s = TestServer::start(backend).await;
    let head = s.audit_head().await;
    let bad = json!([incident("one"), {"title": "", "kind": "task", "severity": "SEV5"}, incident("three")]);
    s.post("/api/v1/tickets/batch", bad)
        .await
        .assert_problem(422, Some("[1].title"));
    assert_eq!(s.count_tickets().await, 0);
    assert_eq!(s.audit_head().await, head);

    let too_many = Value::Array((0..1001).map(|i| incident(&format!("t{i}"))).collect());
    s.post("/api/v1/tickets/batch", too_many)
        .await
        .assert_problem(422, None);

    let ok = s
        .post(
            "/api/v1/tickets/batch",
            json!([incident("a"), incident("b")]),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    let ids: Vec<i64> = ok.body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        s.get(&format!("/api/v1/tickets/{}", ids[1])).await.body["title"],
        "b"
    );
    assert_eq!(s.audit_head().await, head + 2, "one audit entry per ticket");
    s.call(
        Method::POST,
        "/api/v1/tickets/batch",
        Some(&s.viewer),
        Some(json!([])),
    )
    .await
    .assert_problem(403, None);
    s.stop().await;
}
