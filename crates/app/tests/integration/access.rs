use std::collections::HashMap;

use opsdesk_core::Actor;
use opsdesk_domain::Role;
use opsdesk_web::policy::{access, Access, NON_API_ROUTES};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{on_both_backends, Backend, TestServer};

on_both_backends!(
    every_route_has_a_policy_and_every_role_gets_it,
    requesters_see_and_comment_on_their_own_tickets_only,
    requesters_read_no_inventory_but_the_workload_names,
    requesters_set_only_what_they_report,
    people_and_teams,
    the_last_active_admin_cannot_be_disabled_or_demoted,
);

/// Everything a requester reaches beyond the public routes: their own tickets and what they
/// need to raise one. Nothing of the organisation (teams, workloads, accounts, maintenance,
/// signals, AWS cases, KPIs, reports).
const REQUESTER_REACHES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/api/v1/me/receipts"),
    ("PUT", "/api/v1/me/receipts"),
    ("POST", "/logout"),
    ("GET", "/tickets"),
    ("GET", "/tickets/similar"),
    ("POST", "/tickets/views"),
    ("POST", "/tickets/views/{id}/delete"),
    ("GET", "/tickets/new"),
    ("POST", "/tickets/new"),
    ("GET", "/tickets/{id}"),
    ("POST", "/tickets/{id}/comments"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/me"),
    ("POST", "/api/v1/me/totp"),
    ("POST", "/api/v1/me/totp/confirm"),
    ("GET", "/api/v1/tickets"),
    ("POST", "/api/v1/tickets"),
    ("GET", "/api/v1/tickets/{id}"),
    ("GET", "/api/v1/tickets/{id}/comments"),
    ("POST", "/api/v1/tickets/{id}/comments"),
    ("GET", "/api/v1/tickets/{id}/links"),
    ("GET", "/api/v1/tickets/{id}/attachments"),
    ("POST", "/api/v1/tickets/{id}/attachments"),
    ("GET", "/api/v1/tickets/{id}/attachments/{attachment_id}"),
    // The handler refuses a requester: audit entries hold internal notes.
    ("GET", "/api/v1/tickets/{id}/history"),
    ("GET", "/api/v1/tickets/{id}/sla"),
    ("GET", "/api/v1/workload-names"),
];

/// One token per role.
async fn tokens_for_every_role(s: &TestServer) -> HashMap<Role, String> {
    let desk = s.db.desk().await;
    let mut tokens = HashMap::new();
    for role in Role::ALL {
        let (_, secret) = desk
            .create_token(&Actor::cli(), &format!("every-{role}"), role)
            .await
            .unwrap();
        tokens.insert(role, secret);
    }
    desk.db().close().await;
    tokens
}

async fn every_route_has_a_policy_and_every_role_gets_it(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.ticket(json!({"title": "seed", "kind": "task", "severity": "SEV5"}))
        .await;
    let tokens = tokens_for_every_role(&s).await;
    let doc = s
        .call(Method::GET, "/api/v1/openapi.json", Some(&s.admin), None)
        .await
        .body;
    let mut routes: Vec<(String, String)> = NON_API_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                routes.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(routes.len() >= 25, "only {} routes found", routes.len());

    // The table as a requester meets it.
    let mut reached: Vec<(&str, &str)> = routes
        .iter()
        .filter(|(m, p)| {
            let m = Method::from_bytes(m.as_bytes()).unwrap();
            match access(&m, p) {
                Some(Access::SignedIn) => true,
                Some(Access::Needs(permission)) => Role::Requester.allows(permission),
                Some(Access::Public) | None => false,
            }
        })
        .map(|(m, p)| (m.as_str(), p.as_str()))
        .collect();
    reached.sort();
    let mut expected = REQUESTER_REACHES.to_vec();
    expected.sort();
    assert_eq!(reached, expected, "what a requester reaches");

    for (method, path) in &routes {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let policy =
            access(&m, path).unwrap_or_else(|| panic!("{method} {path} has no access policy"));
        let concrete = path
            .replace("{id}", "1")
            .replace("{link_id}", "999")
            .replace("{attachment_id}", "999")
            .replace("{kind}", "received")
            .replace("{name}", "nobody")
            .replace("{email}", "nobody@example.com");
        for role in Role::ALL {
            let r = s
                .call(m.clone(), &concrete, Some(&tokens[&role]), Some(json!({})))
                .await;
            let refused_by_policy =
                r.status == StatusCode::FORBIDDEN && r.body["code"] == "role_not_allowed";
            match policy {
                Access::SignedIn if role == Role::Ingest => assert!(
                    refused_by_policy,
                    "{method} {path}: an ingest token does nothing but ingest: {} {}",
                    r.status, r.body
                ),
                Access::Public | Access::SignedIn => assert!(
                    !refused_by_policy && r.status != 401,
                    "{method} {path} as {role}: {}",
                    r.status
                ),
                Access::Needs(p) if role.allows(p) => assert!(
                    !refused_by_policy && r.status != 401,
                    "{method} {path} as {role} should pass the policy: {} {}",
                    r.status,
                    r.body
                ),
                Access::Needs(_) => assert!(
                    refused_by_policy,
                    "{method} {path} as {role} should be refused: {} {}",
                    r.status, r.body
                ),
            }
        }
        if policy != Access::Public {
            let r = s.call(m.clone(), &concrete, None, None).await;
            if path.starts_with("/api/") {
                assert_eq!(
                    r.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} without a token"
                );
            } else {
                // A page sends a stranger to the sign-in form.
                assert!(
                    r.body
                        .as_str()
                        .is_some_and(|b| b.contains("Sign in to opsdesk")),
                    "{method} {path}: {}",
                    r.body
                );
            }
        }
    }
    s.stop().await;
}

async fn requesters_see_and_comment_on_their_own_tickets_only(backend: Backend) {
    let s = TestServer::start(backend).await;
    let desk = s.db.desk().await;
    let (_, ana) = desk
        .create_token(&Actor::cli(), "ana", Role::Requester)
        .await
        .unwrap();
    let (_, bo) = desk
        .create_token(&Actor::cli(), "bo", Role::Requester)
        .await
        .unwrap();
    desk.db().close().await;

    s.call(Method::POST, "/api/v1/tickets", Some(&ana), Some(json!({"title": "VPN broken", "kind": "incident", "severity": "SEV3", "requester": "someone-else"})))
        .await
        .assert_problem(422, Some("requester"));
    let mine = s
        .call(
            Method::POST,
            "/api/v1/tickets",
            Some(&ana),
            Some(json!({"title": "VPN broken", "kind": "incident", "severity": "SEV3"})),
        )
        .await;
    assert_eq!(mine.status, StatusCode::CREATED, "{}", mine.body);
    assert_eq!(
        mine.body["requester"], "token:ana",
        "a requester raises tickets for themself"
    );
    let id = mine.body["id"].as_i64().unwrap();
    let other = s
        .ticket(json!({"title": "Agent's own work", "kind": "task", "severity": "SEV4"}))
        .await;
    let path = format!("/api/v1/tickets/{id}");

    let list = s
        .call(Method::GET, "/api/v1/tickets", Some(&ana), None)
        .await
        .body;
    let ids: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [id]);
    assert!(s
        .call(Method::GET, "/api/v1/tickets", Some(&bo), None)
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .is_empty());
    s.call(
        Method::GET,
        &format!("/api/v1/tickets/{}", other["id"]),
        Some(&ana),
        None,
    )
    .await
    .assert_problem(404, None);
    s.call(Method::GET, &path, Some(&bo), None)
        .await
        .assert_problem(404, None);
    assert_eq!(
        s.call(Method::GET, &path, Some(&ana), None).await.status,
        StatusCode::OK
    );

    // Public comments on their own ticket only; internal notes stay hidden from them.
    s.post(
        &format!("{path}/comments"),
        json!({"body": "internal note", "public": false}),
    )
    .await;
    s.post(&format!("{path}/comments"), json!({"body": "We are on it"}))
        .await;
    let r = s
        .call(
            Method::POST,
            &format!("{path}/comments"),
            Some(&ana),
            Some(json!({"body": "Thanks"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    s.call(
        Method::POST,
        &format!("{path}/comments"),
        Some(&ana),
        Some(json!({"body": "x", "public": false})),
    )
    .await
    .assert_problem(403, None);
    s.call(
        Method::POST,
        &format!("{path}/comments"),
        Some(&bo),
        Some(json!({"body": "me too"})),
    )
    .await
    .assert_problem(404, None);
    let seen: Vec<_> = s
        .call(Method::GET, &format!("{path}/comments"), Some(&ana), None)
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, ["We are on it", "Thanks"]);
    assert_eq!(
        s.get(&format!("{path}/comments"))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Searching cannot reveal words of internal comments either.
    let hits = |token: String| {
        let s = &s;
        async move {
            let r = s
                .call(
                    Method::GET,
                    "/api/v1/tickets?q=internal",
                    Some(&token),
                    None,
                )
                .await;
            r.body["items"].as_array().unwrap().len()
        }
    };
    assert_eq!(hits(s.agent.clone()).await, 1);
    assert_eq!(hits(ana.clone()).await, 0);

    s.call(Method::GET, &format!("{path}/history"), Some(&ana), None)
        .await
        .assert_problem(403, None);
    let r = s
        .call(
            Method::PATCH,
            &path,
            Some(&ana),
            Some(json!({"status": "resolved"})),
        )
        .await;
    r.assert_problem(403, None);
    assert_eq!(r.body["code"], "role_not_allowed");
    s.stop().await;
}

/// How many tickets and audit entries are stored.
async fn stored(s: &TestServer) -> (usize, i64) {
    (s.count_tickets().await, s.audit_head().await)
}

/// A requester token named `name`.
async fn requester_token(s: &TestServer, name: &str) -> String {
    let desk = s.db.desk().await;
    let (_, secret) = desk
        .create_token(&Actor::cli(), name, Role::Requester)
        .await
        .unwrap();
    desk.db().close().await;
    secret
}

async fn requesters_read_no_inventory_but_the_workload_names(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = |m: Method, path: &'static str, body: Value| {
        let s = &s;
        async move {
            let r = s.call(m, path, Some(&s.admin), Some(body)).await;
            assert!(r.status.is_success(), "{path}: {} {}", r.status, r.body);
        }
    };
    admin(
        Method::POST,
        "/api/v1/users",
        json!({"email": "pat@example.com", "role": "agent"}),
    )
    .await;
    admin(
        Method::POST,
        "/api/v1/teams",
        json!({"name": "payments", "lead": "pat@example.com"}),
    )
    .await;
    let arn = "arn:aws:rds:eu-west-1:111122223333:db:checkout-main";
    admin(
        Method::POST,
        "/api/v1/workloads",
        json!({"name": "checkout", "environment": "production", "team": "payments",
               "accounts": ["111122223333"], "resources": [arn]}),
    )
    .await;
    admin(
        Method::POST,
        "/api/v1/aws-accounts",
        json!({"id": "111122223333", "name": "Payments prod", "support_plan": "business",
               "account_team_emails": ["tam@example.com"]}),
    )
    .await;
    admin(
        Method::POST,
        "/api/v1/maintenance",
        json!({"workload": "checkout", "title": "Patch the checkout database",
               "start": "2026-12-08T01:00:00Z", "end": "2026-12-08T02:00:00Z"}),
    )
    .await;
    let rita = requester_token(&s, "rita").await;
    let mine = s
        .call(
            Method::POST,
            "/api/v1/tickets",
            Some(&rita),
            Some(json!({"title": "Checkout is slow", "kind": "incident",
                        "severity": "SEV3", "workload": "checkout"})),
        )
        .await;
    assert_eq!(mine.status, StatusCode::CREATED, "{}", mine.body);
    let id = mine.body["id"].as_i64().unwrap();

    let secrets = [
        "pat@example.com",
        "tam@example.com",
        "111122223333",
        arn,
        "Patch the checkout",
    ];
    let inventory = [
        "/api/v1/aws-accounts".to_owned(),
        "/api/v1/aws-accounts/111122223333".to_owned(),
        "/api/v1/teams".to_owned(),
        "/api/v1/workloads".to_owned(),
        "/api/v1/workloads/checkout".to_owned(),
        "/api/v1/maintenance?from=2026-12-01T00:00:00Z".to_owned(),
        "/api/v1/support-plans".to_owned(),
        "/api/v1/support-plans/advice".to_owned(),
        "/api/v1/kpis".to_owned(),
        "/api/v1/kpi-definitions".to_owned(),
        format!("/api/v1/tickets/{id}/signals"),
        format!("/api/v1/tickets/{id}/escalation"),
    ];
    for path in &inventory {
        let r = s.call(Method::GET, path, Some(&rita), None).await;
        r.assert_problem(403, None);
        assert_eq!(r.body["code"], "role_not_allowed", "{path}: {}", r.body);
        for secret in secrets {
            assert!(!r.body.to_string().contains(secret), "{path}: {}", r.body);
        }
        // Staff still read it, read-only roles included.
        let r = s.call(Method::GET, path, Some(&s.viewer), None).await;
        assert_eq!(r.status, StatusCode::OK, "{path} as viewer: {}", r.body);
    }
    let r = s
        .call(Method::GET, "/api/v1/teams", Some(&s.viewer), None)
        .await;
    assert!(r.body.to_string().contains("pat@example.com"), "{}", r.body);

    // What the new request form needs: the names, and nothing else of the workloads.
    let names = s
        .call(Method::GET, "/api/v1/workload-names", Some(&rita), None)
        .await;
    assert_eq!(names.status, StatusCode::OK, "{}", names.body);
    assert_eq!(names.body, json!(["checkout"]));
    let names = s
        .call(Method::GET, "/api/v1/workload-names", Some(&s.agent), None)
        .await;
    assert_eq!(names.body, json!(["checkout"]));
    // Their own ticket stays theirs to read.
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/tickets/{id}"),
            Some(&rita),
            None,
        )
        .await;
    assert_eq!(r.body["workload"], "checkout", "{}", r.body);
    s.stop().await;
}

async fn requesters_set_only_what_they_report(backend: Backend) {
    let s = TestServer::start(backend).await;
    let rita = requester_token(&s, "rita").await;
    let report = || {
        json!({"title": "Printer jammed", "kind": "service_request", "severity": "SEV4",
               "description": "Floor 3", "workload": "office"})
    };
    let before = stored(&s).await;

    // The request of the security review: routing, escalation and the source steered.
    let mut forged = report();
    forged["assignee"] = json!("root");
    forged["team"] = json!("payments");
    forged["source"] = json!("aws.health");
    let r = s
        .call(Method::POST, "/api/v1/tickets", Some(&rita), Some(forged))
        .await;
    r.assert_problem(422, Some("assignee"));
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("title, kind, severity, workload, description"),
        "{}",
        r.body
    );
    for (field, value) in [
        ("requester", json!("someone@example.com")),
        ("assignee", json!("root")),
        ("team", json!("payments")),
        ("tags", json!(["vip"])),
        ("source", json!("aws.health")),
        ("dedup_key", json!("health:ec2:1")),
    ] {
        let mut body = report();
        body[field] = value;
        s.call(Method::POST, "/api/v1/tickets", Some(&rita), Some(body))
            .await
            .assert_problem(422, Some(field));
        assert_eq!(stored(&s).await, before, "{field}: nothing is stored");
    }
    // Nor by the batch path.
    s.call(
        Method::POST,
        "/api/v1/tickets/batch",
        Some(&rita),
        Some(json!([report()])),
    )
    .await
    .assert_problem(403, None);
    assert_eq!(stored(&s).await, before);

    // What they report is taken; who asks is them, where it came from is the desk's.
    let mut blank = report();
    blank["assignee"] = json!("");
    blank["tags"] = json!([]);
    let r = s
        .call(Method::POST, "/api/v1/tickets", Some(&rita), Some(blank))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    for (field, value) in [
        ("title", json!("Printer jammed")),
        ("kind", json!("service_request")),
        ("severity", json!("SEV4")),
        ("description", json!("Floor 3")),
        ("workload", json!("office")),
        ("requester", json!("token:rita")),
        ("assignee", Value::Null),
        ("source", json!("manual")),
        ("dedup_key", Value::Null),
        ("tags", json!([])),
    ] {
        assert_eq!(r.body[field], value, "{field}: {}", r.body);
    }

    // Staff still set every field, on one ticket and in a batch.
    let mut full = report();
    full["requester"] = json!("someone@example.com");
    full["assignee"] = json!("root");
    full["team"] = json!("payments");
    full["tags"] = json!(["vip"]);
    full["source"] = json!("aws.health");
    full["dedup_key"] = json!("health:ec2:1");
    let t = s.ticket(full.clone()).await;
    for field in [
        "requester",
        "assignee",
        "team",
        "tags",
        "source",
        "dedup_key",
    ] {
        assert_eq!(t[field], full[field], "{field}: {t}");
    }
    full["dedup_key"] = json!("health:ec2:2");
    let r = s
        .call(
            Method::POST,
            "/api/v1/tickets/batch",
            Some(&s.admin),
            Some(json!([full])),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["ids"][0].as_i64().unwrap();
    let t = s.get(&format!("/api/v1/tickets/{id}")).await.body;
    assert_eq!(
        (&t["assignee"], &t["source"]),
        (&json!("root"), &json!("aws.health"))
    );
    s.stop().await;
}

async fn people_and_teams(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = |m: Method, path: &str, body: Option<Value>| {
        let path = path.to_owned();
        let s = &s;
        async move { s.call(m, &path, Some(&s.admin), body).await }
    };
    let sre = admin(Method::POST, "/api/v1/teams", Some(json!({"name": "sre"}))).await;
    assert_eq!(sre.status, StatusCode::CREATED, "{}", sre.body);
    admin(Method::POST, "/api/v1/teams", Some(json!({"name": "sre"})))
        .await
        .assert_problem(409, None);

    let ana = admin(Method::POST, "/api/v1/users", Some(json!({"email": " Ana@Example.com ", "role": "lead", "teams": ["sre"], "password": "plum-tractor-velvet-42"}))).await;
    assert_eq!(ana.status, StatusCode::CREATED, "{}", ana.body);
    assert_eq!(ana.body["email"], "ana@example.com");
    assert_eq!(ana.body["display_name"], "ana");
    assert_eq!(ana.body["teams"], json!(["sre"]));
    assert_eq!(ana.body["has_password"], true);
    assert!(
        !ana.body.to_string().contains("argon2"),
        "no password hash in answers"
    );

    for (body, field) in [
        (json!({"email": "ANA@example.com", "role": "agent"}), None),
        (
            json!({"email": "not-an-email", "role": "agent"}),
            Some("email"),
        ),
        (
            json!({"email": "b@example.com", "role": "ingest"}),
            Some("role"),
        ),
        (
            json!({"email": "b@example.com", "role": "root"}),
            Some("role"),
        ),
        (
            json!({"email": "b@example.com", "role": "agent", "password": "short"}),
            Some("password"),
        ),
        (
            json!({"email": "b@example.com", "role": "agent", "password": "Password1234"}),
            Some("password"),
        ),
        (
            json!({"email": "b@example.com", "role": "agent", "teams": ["nope"]}),
            Some("teams[0]"),
        ),
    ] {
        let r = admin(Method::POST, "/api/v1/users", Some(body)).await;
        match field {
            None => r.assert_problem(409, None),
            Some(f) => r.assert_problem(422, Some(f)),
        }
    }
    admin(
        Method::POST,
        "/api/v1/users",
        Some(json!({"email": "bo@example.com", "role": "agent"})),
    )
    .await;
    admin(
        Method::POST,
        "/api/v1/teams",
        Some(json!({"name": "dba", "lead": "bo@example.com"})),
    )
    .await;
    let platform = admin(
        Method::POST,
        "/api/v1/teams",
        Some(json!({"name": "platform", "lead": "ana@example.com"})),
    )
    .await;
    assert_eq!(
        platform.body["lead"], "ana@example.com",
        "{}",
        platform.body
    );
    assert_eq!(platform.body["members"], json!(["ana@example.com"]));

    let r = admin(
        Method::PATCH,
        "/api/v1/users/BO@example.com",
        Some(json!({"role": "auditor"})),
    )
    .await;
    assert_eq!(r.body["role"], "auditor", "{}", r.body);
    let r = admin(
        Method::PATCH,
        "/api/v1/users/bo@example.com",
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!(r.body["active"], false);
    admin(Method::GET, "/api/v1/users/nobody@example.com", None)
        .await
        .assert_problem(404, None);
    let users = admin(Method::GET, "/api/v1/users", None).await.body;
    assert_eq!(users.as_array().unwrap().len(), 2);
    admin(
        Method::POST,
        "/api/v1/teams",
        Some(json!({"name": "x", "lead": "ghost@example.com"})),
    )
    .await
    .assert_problem(422, Some("lead"));
    admin(
        Method::POST,
        "/api/v1/teams",
        Some(json!({"name": "bad/name"})),
    )
    .await
    .assert_problem(422, Some("name"));

    // A lead manages their own team's members, not another's.
    let desk = s.db.desk().await;
    let lead = Actor::new("user:ana@example.com", Role::Lead);
    desk.set_team_member(&lead, "platform", "bo@example.com", true)
        .await
        .unwrap();
    for team in ["dba", "sre"] {
        assert!(
            matches!(
                desk.set_team_member(&lead, team, "ana@example.com", true)
                    .await,
                Err(opsdesk_core::Error::Forbidden(_))
            ),
            "{team}"
        );
    }
    let teams = s.get("/api/v1/teams").await.body;
    let platform = teams
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "platform")
        .unwrap();
    assert_eq!(
        platform["members"],
        json!(["ana@example.com", "bo@example.com"])
    );
    let r = admin(
        Method::DELETE,
        "/api/v1/teams/platform/members/bo@example.com",
        None,
    )
    .await;
    assert_eq!(r.body["members"], json!(["ana@example.com"]));

    // Every change to people is in the audit trail.
    let trail = admin(Method::GET, "/api/v1/audit?limit=1000", None)
        .await
        .body;
    let actions: Vec<_> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for action in [
        "team.created",
        "user.created",
        "user.role_changed",
        "user.disabled",
        "team.member_added",
        "team.member_removed",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} missing from {actions:?}"
        );
    }
    let changed = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user.role_changed")
        .unwrap();
    assert_eq!(
        changed["changes"]["role"],
        json!({"before": "agent", "after": "auditor"})
    );
    assert_eq!(
        desk.verify_audit().await.unwrap().entries as usize,
        actions.len()
    );
    desk.db().close().await;
    s.stop().await;
}

async fn the_last_active_admin_cannot_be_disabled_or_demoted(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = |m: Method, path: &str, body: Option<Value>| {
        let path = path.to_owned();
        let s = &s;
        async move { s.call(m, &path, Some(&s.admin), body).await }
    };
    for email in ["ada@example.com", "max@example.com"] {
        let r = admin(
            Method::POST,
            "/api/v1/users",
            Some(json!({"email": email, "role": "admin", "password": "plum-tractor-velvet-42"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let ada = "/api/v1/users/ada@example.com";
    let max = "/api/v1/users/max@example.com";
    let r = admin(Method::PATCH, ada, Some(json!({"role": "agent"}))).await;
    assert_eq!(r.body["role"], "agent", "{}", r.body);
    // Max is now the only active admin among people.
    admin(Method::PATCH, max, Some(json!({"active": false})))
        .await
        .assert_problem(409, None);
    let r = admin(Method::PATCH, max, Some(json!({"role": "lead"}))).await;
    r.assert_problem(409, None);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("last active admin"),
        "{}",
        r.body
    );
    let still = admin(Method::GET, max, None).await;
    assert_eq!(still.body["role"], "admin");
    assert_eq!(still.body["active"], true);
    // With a second admin again, either may go.
    let r = admin(Method::PATCH, ada, Some(json!({"role": "admin"}))).await;
    assert_eq!(r.body["role"], "admin", "{}", r.body);
    let r = admin(Method::PATCH, max, Some(json!({"active": false}))).await;
    assert_eq!(r.body["active"], false, "{}", r.body);
    // A disabled admin does not count: Ada is the last one now.
    admin(Method::PATCH, ada, Some(json!({"active": false})))
        .await
        .assert_problem(409, None);
    s.stop().await;
}
