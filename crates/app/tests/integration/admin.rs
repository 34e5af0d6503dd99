use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{on_both_backends, Backend, TestServer};

on_both_backends!(tokens_over_the_api, audit_trail_over_the_api);

async fn tokens_over_the_api(backend: Backend) {
    let s = TestServer::start(backend).await;
    for token in [&s.agent, &s.viewer] {
        s.call(Method::GET, "/api/v1/tokens", Some(token), None)
            .await
            .assert_problem(403, None);
        s.call(
            Method::POST,
            "/api/v1/tokens",
            Some(token),
            Some(json!({"name": "x", "role": "admin"})),
        )
        .await
        .assert_problem(403, None);
        s.call(
            Method::DELETE,
            "/api/v1/tokens/test-admin",
            Some(token),
            None,
        )
        .await
        .assert_problem(403, None);
    }

    let admin = |m: Method, path: &'static str, body: Option<serde_json::Value>| {
        s.call(m, path, Some(&s.admin), body)
    };
    let created = admin(
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "deploy-bot", "role": "agent"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["token"]["role"], "agent");
    assert_eq!(created.body["token"]["created_by"], "token:test-admin");
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let r = s
        .call(
            Method::POST,
            "/api/v1/tickets",
            Some(&secret),
            Some(json!({"title": "via bot", "kind": "task", "severity": "SEV5"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    admin(
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "deploy-bot", "role": "viewer"})),
    )
    .await
    .assert_problem(409, None);
    admin(
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "no spaces", "role": "viewer"})),
    )
    .await
    .assert_problem(422, Some("name"));
    admin(
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "ok", "role": "root"})),
    )
    .await
    .assert_problem(422, Some("role"));

    let list = admin(Method::GET, "/api/v1/tokens", None).await;
    let names: Vec<_> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "first-admin",
            "test-admin",
            "test-agent",
            "test-viewer",
            "deploy-bot"
        ]
    );
    assert!(
        !list.body.to_string().contains("odk_"),
        "no secret in a list"
    );

    // A token cannot revoke itself: its holder would be locked out mid-task.
    admin(Method::DELETE, "/api/v1/tokens/test-admin", None)
        .await
        .assert_problem(409, None);

    let revoked = admin(Method::DELETE, "/api/v1/tokens/deploy-bot", None).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revoked_at"].is_string());
    s.call(Method::GET, "/api/v1/tickets", Some(&secret), None)
        .await
        .assert_problem(403, None);
    admin(Method::DELETE, "/api/v1/tokens/deploy-bot", None)
        .await
        .assert_problem(404, None);
    let trail = s.audit_trail().await;
    let token_events: Vec<_> = trail
        .iter()
        .filter(|e| e["changes"]["token"]["after"]["name"] == "deploy-bot")
        .map(|e| {
            format!(
                "{} by {}",
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        token_events,
        [
            "token.created by token:test-admin",
            "token.revoked by token:test-admin"
        ]
    );
    s.stop().await;
}

async fn audit_trail_over_the_api(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = s
        .ticket(json!({"title": "CloudFront 5xx", "kind": "incident", "severity": "SEV2"}))
        .await;
    s.patch(
        &format!("/api/v1/tickets/{}", t["id"]),
        None,
        json!({"status": "acknowledged"}),
    )
    .await;
    s.get("/api/v1/audit").await.assert_problem(403, None);

    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let page = s
            .call(
                Method::GET,
                &format!("/api/v1/audit?after={after}&limit=2"),
                Some(&s.admin),
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        seqs.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap()),
        );
        match page.body["next_after"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(
        seqs,
        (1..=6).collect::<Vec<_>>(),
        "4 token entries + create + update"
    );
    s.call(Method::GET, "/api/v1/audit?limit=0", Some(&s.admin), None)
        .await
        .assert_problem(422, Some("limit"));

    let v = s
        .call(Method::GET, "/api/v1/audit/verify", Some(&s.admin), None)
        .await
        .body;
    assert_eq!(
        (v["intact"].as_bool(), v["entries"].as_i64()),
        (Some(true), Some(6))
    );
    assert_eq!(v["head_hash"].as_str().unwrap().len(), 64);

    let unguard = match backend {
        Backend::Sqlite => "DROP TRIGGER audit_log_refuse_update",
        Backend::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER USER",
    };
    s.db.sql(unguard).await.unwrap();
    s.db.sql("UPDATE audit_log SET actor = 'mallory' WHERE seq = 5")
        .await
        .unwrap();
    let v = s
        .call(Method::GET, "/api/v1/audit/verify", Some(&s.admin), None)
        .await
        .body;
    assert_eq!(v["intact"], false, "{v}");
    assert_eq!(v["first_bad_seq"], 5);
    assert_eq!(v["entries"], 4);
    s.stop().await;
}
