//! AWS accounts with their support plan, the plan table and plan advice, through the API.

use opsdesk_domain::{AwsAccount, SupportPlan};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{on_both_backends, Backend, TestServer};

on_both_backends!(
    accounts_crud,
    bad_accounts_are_refused_with_the_field_named,
    configured_accounts_are_listed_and_protected,
    plan_table_follows_the_published_figures,
    advice_follows_the_accounts_workloads,
);

const PROD: &str = "111122223333";
const STAGING: &str = "444455556666";

fn account(id: &str, plan: &str) -> Value {
    json!({
        "id": id,
        "name": format!("account {id}"),
        "support_plan": plan,
        "account_team_emails": ["tam@example.com"]
    })
}

impl TestServer {
    async fn admin_call(&self, m: Method, path: &str, body: Option<Value>) -> crate::common::Reply {
        self.call(m, path, Some(&self.admin), body).await
    }
}

async fn accounts_crud(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = s
        .admin_call(
            Method::POST,
            "/api/v1/aws-accounts",
            Some(account(PROD, "business")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["origin"], "api");
    assert_eq!(r.body["support_plan"], "business");
    assert!(r.body["created_by"]
        .as_str()
        .is_some_and(|b| b.contains("test-admin")));
    s.admin_call(
        Method::POST,
        "/api/v1/aws-accounts",
        Some(account(PROD, "business")),
    )
    .await
    .assert_problem(409, None);

    // A viewer and an agent read accounts but cannot change them.
    for token in [&s.viewer, &s.agent] {
        s.call(
            Method::POST,
            "/api/v1/aws-accounts",
            Some(token),
            Some(account(STAGING, "developer")),
        )
        .await
        .assert_problem(403, None);
        let path = format!("/api/v1/aws-accounts/{PROD}");
        s.call(Method::DELETE, &path, Some(token), None)
            .await
            .assert_problem(403, None);
        let r = s.call(Method::GET, &path, Some(token), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["name"], format!("account {PROD}"));
    }

    let mut changed = account(PROD, "enterprise_on_ramp");
    changed["name"] = json!("payments-prod");
    let path = format!("/api/v1/aws-accounts/{PROD}");
    let r = s.admin_call(Method::PUT, &path, Some(changed)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["support_plan"], "enterprise_on_ramp");
    let list = s.get("/api/v1/aws-accounts").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body.as_array().unwrap().len(), 1, "{}", list.body);
    assert_eq!(list.body[0]["name"], "payments-prod");

    // The URL and the body must name the same account.
    s.admin_call(
        Method::PUT,
        &format!("/api/v1/aws-accounts/{STAGING}"),
        Some(account(PROD, "basic")),
    )
    .await
    .assert_problem(422, Some("id"));

    let r = s.admin_call(Method::DELETE, &path, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    s.get(&path).await.assert_problem(404, None);
    s.admin_call(Method::DELETE, &path, None)
        .await
        .assert_problem(404, None);
    assert_eq!(s.get("/api/v1/aws-accounts").await.body, json!([]));

    let entries = s.audit_trail().await;
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("aws_account."))
        .collect();
    assert_eq!(
        actions,
        [
            "aws_account.saved",
            "aws_account.saved",
            "aws_account.deleted"
        ]
    );
    s.stop().await;
}

async fn a_support_role_is_kept_and_shown(s: &TestServer) {
    let mut with_role = account(STAGING, "business");
    let role = format!("arn:aws:iam::{STAGING}:role/opsdesk-support");
    with_role["support_role_arn"] = json!(role);
    let r = s
        .admin_call(Method::POST, "/api/v1/aws-accounts", Some(with_role))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = s.get(&format!("/api/v1/aws-accounts/{STAGING}")).await;
    assert_eq!(r.body["support_role_arn"], json!(role));
}

async fn bad_accounts_are_refused_with_the_field_named(backend: Backend) {
    let s = TestServer::start(backend).await;
    let post = |body: Value| s.admin_call(Method::POST, "/api/v1/aws-accounts", Some(body));
    post(account("1234", "business"))
        .await
        .assert_problem(422, Some("id"));
    post(account("12345678901a", "business"))
        .await
        .assert_problem(422, Some("id"));
    let mut bad_email = account(PROD, "business");
    bad_email["account_team_emails"] = json!(["not an address"]);
    post(bad_email)
        .await
        .assert_problem(422, Some("account_team_emails[0]"));
    // An AWS Support case copies at most 10 addresses.
    let mut crowded = account(PROD, "business");
    crowded["account_team_emails"] = json!((0..11)
        .map(|i| format!("tam{i}@example.com"))
        .collect::<Vec<_>>());
    post(crowded)
        .await
        .assert_problem(422, Some("account_team_emails"));
    post(account(PROD, "gold"))
        .await
        .assert_problem(422, Some("support_plan"));
    let mut blank = account(PROD, "business");
    blank["name"] = json!("  ");
    post(blank).await.assert_problem(422, Some("name"));
    let mut unknown = account(PROD, "business");
    unknown["plan"] = json!("business");
    post(unknown).await.assert_problem(422, Some("plan"));
    let mut foreign_role = account(PROD, "business");
    foreign_role["support_role_arn"] = json!("arn:aws:iam::999999999999:role/opsdesk-support");
    post(foreign_role)
        .await
        .assert_problem(422, Some("support_role_arn"));
    // Nothing was stored, and nothing audited.
    assert_eq!(s.get("/api/v1/aws-accounts").await.body, json!([]));
    assert!(!s.audit_trail().await.iter().any(|e| e["action"]
        .as_str()
        .is_some_and(|a| a.starts_with("aws_account"))));
    a_support_role_is_kept_and_shown(&s).await;
    s.stop().await;
}

async fn configured_accounts_are_listed_and_protected(backend: Backend) {
    let s = TestServer::start_with(backend, |config, _| {
        config.aws.accounts = vec![AwsAccount {
            id: PROD.into(),
            name: "payments-prod".into(),
            support_plan: SupportPlan::Enterprise,
            account_team_emails: vec!["tam@example.com".into()],
            support_role_arn: None,
            govcloud: false,
        }];
    })
    .await;
    let r = s
        .admin_call(
            Method::POST,
            "/api/v1/aws-accounts",
            Some(account(STAGING, "developer")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // Configured accounts come first, then those added through the API.
    let list = s.get("/api/v1/aws-accounts").await.body;
    let ids: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap(), a["origin"].as_str().unwrap()))
        .collect();
    assert_eq!(ids, [(PROD, "config"), (STAGING, "api")]);
    let one = s.get(&format!("/api/v1/aws-accounts/{PROD}")).await;
    assert_eq!(one.body["support_plan"], "enterprise");
    assert_eq!(one.body["created_by"], Value::Null);

    // The configuration file is their only source: the API refuses to change them.
    let path = format!("/api/v1/aws-accounts/{PROD}");
    for (m, p, body) in [
        (
            Method::POST,
            "/api/v1/aws-accounts",
            Some(account(PROD, "basic")),
        ),
        (Method::PUT, path.as_str(), Some(account(PROD, "basic"))),
        (Method::DELETE, path.as_str(), None),
    ] {
        let r = s.admin_call(m, p, body).await;
        r.assert_problem(409, None);
        assert!(
            r.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("aws.accounts")),
            "{}",
            r.body
        );
    }
    assert_eq!(
        s.get(&path).await.body["support_plan"],
        "enterprise",
        "unchanged"
    );
    s.stop().await;
}

async fn plan_table_follows_the_published_figures(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = s
        .call(Method::GET, "/api/v1/support-plans", Some(&s.viewer), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let plans = r.body["plans"].as_array().unwrap();
    let names: Vec<&str> = plans.iter().map(|p| p["plan"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "basic",
            "developer",
            "business",
            "business_support_plus",
            "enterprise_on_ramp",
            "enterprise",
            "unified_operations"
        ]
    );
    let basic = &plans[0];
    assert_eq!(
        (
            &basic["allows_cases"],
            &basic["has_api"],
            &basic["max_severity"]
        ),
        (&json!(false), &json!(false), &Value::Null)
    );
    let developer = &plans[1];
    assert_eq!(developer["has_api"], false);
    assert_eq!(developer["max_severity"], "normal");
    assert_eq!(
        developer["first_response"][1],
        json!({"severity": "normal", "label": "system impaired",
               "target": {"minutes": 720, "business_hours": true}})
    );
    let business = &plans[2];
    assert_eq!(business["has_api"], true);
    assert_eq!(business["max_severity"], "urgent");
    assert_eq!(business["first_response"][3]["target"]["minutes"], 60);
    assert_eq!(business["first_response"][4]["target"], Value::Null);
    // Critical first responses: Business Support+ and Enterprise On-Ramp 30 minutes,
    // Enterprise 15, Unified Operations 5.
    for (i, minutes) in [(3, 30), (4, 30), (5, 15), (6, 5)] {
        assert_eq!(
            plans[i]["first_response"][4]["target"]["minutes"], minutes,
            "{}",
            plans[i]
        );
    }
    // Which plans can be held today, and what follows those that end.
    let today = opsdesk_core::Clock::now(&opsdesk_core::SystemClock).date_naive();
    let before_2027 = today < "2027-01-01".parse().unwrap();
    for (i, ends) in [
        (1, true),
        (2, true),
        (3, false),
        (4, true),
        (5, false),
        (6, false),
    ] {
        let p = &plans[i];
        assert_eq!(
            p["ends_on"],
            if ends {
                json!("2027-01-01")
            } else {
                Value::Null
            },
            "{p}"
        );
        assert_eq!(p["available_today"], json!(!ends || before_2027), "{p}");
        assert_eq!(
            p["available_today_in_govcloud"],
            json!(i != 3 && i != 6),
            "{p}"
        );
    }
    assert_eq!(business["successor"], "business_support_plus");
    assert_eq!(plans[4]["successor"], "enterprise");
    assert_eq!(plans[3]["minimum_monthly_usd"], 29);
    assert!(plans[3]["disputed"]
        .as_str()
        .is_some_and(|d| d.contains("Choosing a severity")));
    assert_eq!(plans[5]["disputed"], Value::Null);
    let urls: Vec<&str> = r.body["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["url"].as_str().unwrap())
        .collect();
    assert!(
        urls.contains(&"https://aws.amazon.com/premiumsupport/plans/"),
        "{urls:?}"
    );
    s.stop().await;
}

async fn advice_follows_the_accounts_workloads(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (id, plan) in [(PROD, "developer"), (STAGING, "business")] {
        let r = s
            .admin_call(
                Method::POST,
                "/api/v1/aws-accounts",
                Some(account(id, plan)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    for (name, env, id) in [
        ("checkout", "production", PROD),
        ("checkout-staging", "staging", STAGING),
        ("search-staging", "staging", STAGING),
    ] {
        let r = s
            .admin_call(
                Method::POST,
                "/api/v1/workloads",
                Some(json!({"name": name, "environment": env, "accounts": [id]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let r = s
        .call(
            Method::GET,
            "/api/v1/support-plans/advice",
            Some(&s.viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let advice = r.body.as_array().unwrap();
    assert_eq!(advice.len(), 2, "{}", r.body);

    // Advice recommends only plans that exist today and 90 days on: from October 2026 that
    // leaves Basic, Business Support+, Enterprise and Unified Operations.
    // Production on Developer: at least Business Support+, and the 15-minute SEV1 target is
    // not met; the notice says what happens to Developer.
    let prod = &advice[0];
    assert_eq!(prod["account_id"], PROD);
    assert_eq!(prod["current"], "developer");
    let rank = |p: &Value| SupportPlan::parse(p.as_str().unwrap()).unwrap();
    assert!(
        rank(&prod["recommended"]) >= SupportPlan::BusinessSupportPlus,
        "{prod}"
    );
    assert_eq!(prod["change"], "upgrade");
    assert_eq!(prod["meets_sla"], false);
    assert!(prod["sla_gap"].as_str().is_some_and(|g| !g.is_empty()));
    assert!(
        prod["notice"]
            .as_str()
            .is_some_and(|n| n.contains("Developer plan")
                && n.contains("2027-01-01")
                && n.contains("Business Support+")),
        "{prod}"
    );

    // Only staging and no cases on Business: the lowest plan with technical cases that
    // carries on, with its published minimum.
    let staging = &advice[1];
    assert_eq!(staging["account_id"], STAGING);
    assert_eq!(staging["recommended"], "business_support_plus", "{staging}");
    assert_eq!(staging["recommended_minimum_usd"], 29);
    assert_eq!(staging["meets_sla"], true);
    let reasons = staging["reasons"].as_array().unwrap();
    assert!(
        reasons[0]
            .as_str()
            .is_some_and(|r| r.starts_with("No production workloads")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r
            .as_str()
            .is_some_and(|r| r.contains("starts at $29 a month"))),
        "{reasons:?}"
    );

    // A case at high severity in staging: the recommendation stays a plan with cases around
    // the clock, and the reasons say why.
    let t = s
        .ticket(json!({"title": "Replica lag", "kind": "incident", "severity": "SEV3"}))
        .await;
    let r = s
        .post(
            &format!("/api/v1/tickets/{}/escalate", t["id"]),
            json!({"to": "aws", "account": STAGING}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = s
        .call(
            Method::GET,
            "/api/v1/support-plans/advice",
            Some(&s.viewer),
            None,
        )
        .await;
    let staging = &r.body.as_array().unwrap()[1];
    assert_eq!(staging["recommended"], "business_support_plus", "{staging}");
    assert!(
        staging["reasons"][0]
            .as_str()
            .is_some_and(|r| r.starts_with("1 case at high severity or above")),
        "{staging}"
    );
    s.stop().await;
}
