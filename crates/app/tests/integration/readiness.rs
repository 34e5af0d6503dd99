//! Readiness: lenses imported and exported, reviews started, answered, frozen in milestones
//! and upgraded to a newer lens version, through the API and the CLI, on both backends.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::cli::opsdesk;
use crate::common::{on_both_backends, Backend, TestDb, TestServer};

on_both_backends!(
    lenses_import_list_and_export,
    a_bad_lens_is_refused_with_its_json_path,
    answers_change_risks_and_counts,
    a_milestone_stays_frozen_while_answers_change,
    an_upgrade_carries_answers_and_says_what_was_dropped,
    who_may_do_what,
    lens_and_review_commands,
);

const BUILTIN: &str = include_str!("../../../domain/src/readiness/opsdesk-readiness.json");
const FULL: &str = include_str!("../../../domain/tests/fixtures/lens/full.json");

/// The fixture lens with a second question, `ops_oncall`.
fn fixture_v1() -> Value {
    let mut lens: Value = serde_json::from_str(FULL).unwrap();
    lens["name"] = json!("Backups and on-call");
    lens["pillars"][0]["questions"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "id": "ops_oncall",
            "title": "Is someone on call?",
            "choices": [
                { "id": "oncall_rota", "title": "A rota covers every hour",
                  "improvementPlan": { "displayText": "Set up a rota." } },
                { "id": "oncall_no", "title": "None of these" }
            ],
            "riskRules": [
                { "condition": "oncall_rota", "risk": "NO_RISK" },
                { "condition": "default", "risk": "HIGH_RISK" }
            ]
        }));
    lens
}

/// The next version: `ops_oncall` is gone, and so is the choice `backups_isolated`.
fn fixture_v2() -> Value {
    let mut lens: Value = serde_json::from_str(FULL).unwrap();
    lens["name"] = json!("Backups and on-call");
    let q = &mut lens["pillars"][0]["questions"][0];
    q["choices"]
        .as_array_mut()
        .unwrap()
        .retain(|c| c["id"] != "backups_isolated");
    q["riskRules"] = json!([
        { "condition": "backups_automatic && backups_tested", "risk": "NO_RISK" },
        { "condition": "backups_automatic && !backups_no", "risk": "MEDIUM_RISK" },
        { "condition": "default", "risk": "HIGH_RISK" }
    ]);
    lens
}

async fn as_admin(
    s: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> crate::common::Reply {
    s.call(method, path, Some(&s.admin), body).await
}

async fn add_workload(s: &TestServer, name: &str) {
    let r = as_admin(
        s,
        Method::POST,
        "/api/v1/workloads",
        Some(json!({ "name": name, "environment": "production", "accounts": ["111122223333"] })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

async fn import(s: &TestServer, lens: &Value) -> Value {
    let r = as_admin(s, Method::POST, "/api/v1/lenses", Some(lens.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

async fn start(s: &TestServer, workload: &str, lens: Option<&str>) -> Value {
    let mut body = json!({ "workload": workload });
    if let Some(l) = lens {
        body["lens"] = json!(l);
    }
    let r = s.post("/api/v1/reviews", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

async fn answer(s: &TestServer, review: i64, question: &str, body: Value) -> crate::common::Reply {
    s.call(
        Method::PUT,
        &format!("/api/v1/reviews/{review}/answers/{question}"),
        Some(&s.agent),
        Some(body),
    )
    .await
}

fn question<'a>(review: &'a Value, id: &str) -> &'a Value {
    review["pillars"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["questions"].as_array().unwrap())
        .find(|q| q["id"] == id)
        .unwrap()
}

async fn lenses_import_list_and_export(backend: Backend) {
    let s = TestServer::start(backend).await;
    // The built-in lens is there without an import.
    let r = s.get("/api/v1/lenses").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", r.body);
    assert_eq!(list[0]["id"], "opsdesk-readiness");
    assert_eq!(list[0]["builtin"], true);
    assert_eq!(list[0]["questions"], 24);
    let builtin_digest = list[0]["latest"]["digest"].as_str().unwrap().to_owned();

    // Importing the built-in document again (spacing aside) stores nothing new.
    let doc: Value = serde_json::from_str(BUILTIN).unwrap();
    let r = as_admin(&s, Method::POST, "/api/v1/lenses", Some(doc)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], "opsdesk-readiness");
    assert_eq!(r.body["new_version"], false);
    assert_eq!(r.body["digest"], builtin_digest.as_str());

    // A fixture lens is a new lens, with an id from its name.
    let imported = import(&s, &fixture_v1()).await;
    assert_eq!(imported["id"], "backups-and-on-call");
    assert_eq!(imported["version"], 1);
    assert_eq!(imported["new_version"], true);
    let r = s.get("/api/v1/lenses").await;
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    let r = s.get("/api/v1/lenses/backups-and-on-call").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["questions"], 2);
    assert_eq!(r.body["versions"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["versions"][0]["imported_by"], "token:test-admin");

    // Export gives back an equivalent document.
    let r = s
        .get("/api/v1/lenses/backups-and-on-call?format=lens-json")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.header("content-type").starts_with("application/json"));
    assert_eq!(r.body, fixture_v1());
    let r = s
        .get("/api/v1/lenses/opsdesk-readiness?format=lens-json")
        .await;
    assert_eq!(r.body, serde_json::from_str::<Value>(BUILTIN).unwrap());

    // A second version under the same name.
    let v2 = import(&s, &fixture_v2()).await;
    assert_eq!(v2["id"], "backups-and-on-call");
    assert_eq!(v2["version"], 2);
    let r = s.get("/api/v1/lenses/backups-and-on-call").await;
    assert_eq!(r.body["latest"]["version"], 2);
    assert_eq!(r.body["questions"], 1);
    let r = s
        .get("/api/v1/lenses/backups-and-on-call?format=lens-json&version=1")
        .await;
    assert_eq!(r.body, fixture_v1());
    let r = s.get("/api/v1/lenses/nope").await;
    r.assert_problem(404, None);
    let r = s
        .get("/api/v1/lenses/backups-and-on-call?format=lens-json&version=9")
        .await;
    r.assert_problem(404, None);

    let actions: Vec<String> = s
        .audit_trail()
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "lens.imported").count(),
        2,
        "{actions:?}"
    );
    s.stop().await;
}

async fn a_bad_lens_is_refused_with_its_json_path(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut bad = fixture_v1();
    bad["pillars"][0]["questions"][1]["choices"][0]["id"] = json!("a-b");
    let r = as_admin(&s, Method::POST, "/api/v1/lenses", Some(bad)).await;
    r.assert_problem(422, Some("pillars[0].questions[1].choices[0].id"));
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("pillars[0].questions[1].choices[0].id"),
        "{}",
        r.body
    );
    let mut bad = fixture_v1();
    bad["pillars"][0]["questions"][1]["riskRules"][0]["condition"] = json!("oncall_rota && zz");
    let r = as_admin(&s, Method::POST, "/api/v1/lenses", Some(bad)).await;
    r.assert_problem(422, Some("pillars[0].questions[1].riskRules[0].condition"));
    // Not JSON at all.
    let r = s
        .http
        .post(s.url("/api/v1/lenses"))
        .bearer_auth(&s.admin)
        .header("content-type", "application/json")
        .body("{\"schemaVersion\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Nothing was stored.
    let r = s.get("/api/v1/lenses").await;
    assert_eq!(r.body.as_array().unwrap().len(), 1, "{}", r.body);
    s.stop().await;
}

async fn answers_change_risks_and_counts(backend: Backend) {
    let s = TestServer::start(backend).await;
    add_workload(&s, "checkout").await;
    // The workload must exist; the lens too.
    let r = s
        .post("/api/v1/reviews", json!({ "workload": "nowhere" }))
        .await;
    r.assert_problem(422, Some("workload"));
    let r = s
        .post(
            "/api/v1/reviews",
            json!({ "workload": "checkout", "lens": "nope" }),
        )
        .await;
    r.assert_problem(422, Some("lens"));

    // The built-in lens by default: everything unanswered.
    let review = start(&s, "checkout", None).await;
    let id = review["id"].as_i64().unwrap();
    assert_eq!(review["lens"], "opsdesk-readiness");
    assert_eq!(review["kind"], "manual");
    assert_eq!(review["risk_counts"]["UNANSWERED"], 24);
    assert_eq!(review["risk_counts"]["HIGH"], 0);
    assert_eq!(review["pillars"].as_array().unwrap().len(), 4);

    // "None of these": HIGH, with the improvement plans of every practice.
    let r = answer(
        &s,
        id,
        "det_alarms",
        json!({ "choices": ["det_alarms_no"], "notes": "nothing yet" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["risk"], "HIGH");
    let plans: Vec<&str> = r.body["improvement_plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["choice_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        plans,
        [
            "det_alarms_customer",
            "det_alarms_routed",
            "det_alarms_tested"
        ]
    );

    // The key practice only: MEDIUM, plans for what is missing.
    let r = answer(
        &s,
        id,
        "det_alarms",
        json!({ "choices": ["det_alarms_routed"], "notes": null, "not_applicable": null }),
    )
    .await;
    assert_eq!(r.body["risk"], "MEDIUM", "{}", r.body);
    assert_eq!(r.body["improvement_plans"].as_array().unwrap().len(), 2);

    // Another question not applicable.
    let r = answer(
        &s,
        id,
        "det_noise",
        json!({ "choices": [], "not_applicable": "no pager for this one" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["risk"], "NOT_APPLICABLE");

    let r = s.get(&format!("/api/v1/reviews/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["risk_counts"]["MEDIUM"], 1);
    assert_eq!(r.body["risk_counts"]["NOT_APPLICABLE"], 1);
    assert_eq!(r.body["risk_counts"]["UNANSWERED"], 22);
    let q = question(&r.body, "det_alarms");
    assert_eq!(q["risk"], "MEDIUM");
    assert_eq!(q["answer"]["choices"], json!(["det_alarms_routed"]));
    assert_eq!(q["answer"]["updated_by"], "token:test-agent");
    let pillar = &r.body["pillars"][0];
    assert_eq!(pillar["risk_counts"]["MEDIUM"], 1);

    // All three practices: no risk, no plans.
    let r = answer(
        &s,
        id,
        "det_alarms",
        json!({ "choices": ["det_alarms_customer", "det_alarms_routed", "det_alarms_tested"] }),
    )
    .await;
    assert_eq!(r.body["risk"], "NONE");
    assert_eq!(r.body["improvement_plans"], json!([]));

    // Unknown choices are all named, and nothing changes.
    let r = answer(
        &s,
        id,
        "det_alarms",
        json!({ "choices": ["zz_top", "det_alarms_routed", "aa_first"] }),
    )
    .await;
    r.assert_problem(422, Some("choices"));
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("'aa_first'") && detail.contains("'zz_top'"),
        "{detail}"
    );
    let r = answer(
        &s,
        id,
        "det_alarms",
        json!({ "choices": ["det_alarms_no", "det_alarms_routed"] }),
    )
    .await;
    r.assert_problem(422, Some("choices"));
    let r = answer(&s, id, "det_alarms", json!({ "not_applicable": "  " })).await;
    r.assert_problem(422, Some("not_applicable"));
    let r = answer(&s, id, "no_such_question", json!({ "choices": [] })).await;
    r.assert_problem(404, None);
    let r = answer(&s, 999_999, "det_alarms", json!({ "choices": [] })).await;
    r.assert_problem(404, None);
    let r = s.get(&format!("/api/v1/reviews/{id}")).await;
    assert_eq!(question(&r.body, "det_alarms")["risk"], "NONE");

    // Listed, filtered.
    let r = s.get("/api/v1/reviews?workload=checkout&kind=manual").await;
    assert_eq!(r.body.as_array().unwrap().len(), 1, "{}", r.body);
    let r = s.get("/api/v1/reviews?kind=post_incident").await;
    assert_eq!(r.body, json!([]));
    let r = s.get("/api/v1/reviews?kind=sometimes").await;
    r.assert_problem(422, Some("kind"));

    // Every answer change is in the audit trail, with before and after.
    let trail = s.audit_trail().await;
    let answered: Vec<&Value> = trail
        .iter()
        .filter(|e| e["action"] == "review.answered")
        .collect();
    assert_eq!(answered.len(), 4, "{trail:?}");
    let last = answered.last().unwrap();
    assert_eq!(last["actor"], "token:test-agent");
    let change = &last["changes"]["answer"];
    assert_eq!(change["before"]["choices"], json!(["det_alarms_routed"]));
    assert_eq!(change["after"]["risk"], "NONE");
    assert!(trail.iter().any(|e| e["action"] == "review.started"));
    s.stop().await;
}

async fn a_milestone_stays_frozen_while_answers_change(backend: Backend) {
    let s = TestServer::start(backend).await;
    add_workload(&s, "checkout").await;
    let id = start(&s, "checkout", None).await["id"].as_i64().unwrap();
    answer(
        &s,
        id,
        "det_alarms",
        json!({ "choices": ["det_alarms_no"] }),
    )
    .await;
    let r = s
        .post(
            &format!("/api/v1/reviews/{id}/milestones"),
            json!({ "name": "before launch" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["number"], 1);
    assert_eq!(r.body["risk_counts"]["HIGH"], 1);
    assert_eq!(r.body["answers"].as_array().unwrap().len(), 24);

    // Answers change after it; the milestone does not.
    answer(
        &s,
        id,
        "det_alarms",
        json!({ "choices": ["det_alarms_customer", "det_alarms_routed", "det_alarms_tested"] }),
    )
    .await;
    let r = s.get(&format!("/api/v1/reviews/{id}/milestones/1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["name"], "before launch");
    assert_eq!(r.body["risk_counts"]["HIGH"], 1);
    let frozen = r.body["answers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["question_id"] == "det_alarms")
        .unwrap();
    assert_eq!(frozen["choices"], json!(["det_alarms_no"]));
    assert_eq!(frozen["risk"], "HIGH");
    let r = s.get(&format!("/api/v1/reviews/{id}")).await;
    assert_eq!(r.body["risk_counts"]["HIGH"], 0);
    assert_eq!(r.body["milestones"][0]["name"], "before launch");

    // Names are unique in a review; a second milestone takes the next number.
    let r = s
        .post(
            &format!("/api/v1/reviews/{id}/milestones"),
            json!({ "name": "before launch" }),
        )
        .await;
    r.assert_problem(409, None);
    let r = s
        .post(
            &format!("/api/v1/reviews/{id}/milestones"),
            json!({ "name": "" }),
        )
        .await;
    r.assert_problem(422, Some("name"));
    let r = s
        .post(
            &format!("/api/v1/reviews/{id}/milestones"),
            json!({ "name": "after launch" }),
        )
        .await;
    assert_eq!(r.body["number"], 2);
    assert_eq!(r.body["risk_counts"]["NONE"], 1);
    let r = s.get(&format!("/api/v1/reviews/{id}/milestones/3")).await;
    r.assert_problem(404, None);
    let trail = s.audit_trail().await;
    assert_eq!(
        trail
            .iter()
            .filter(|e| e["action"] == "review.milestone")
            .count(),
        2
    );
    s.stop().await;
}

async fn an_upgrade_carries_answers_and_says_what_was_dropped(backend: Backend) {
    let s = TestServer::start(backend).await;
    add_workload(&s, "checkout").await;
    import(&s, &fixture_v1()).await;
    let review = start(&s, "checkout", Some("backups-and-on-call")).await;
    let id = review["id"].as_i64().unwrap();
    assert_eq!(review["lens_version"], 1);
    let r = answer(
        &s,
        id,
        "ops_backups",
        json!({ "choices": ["backups_automatic", "backups_isolated"], "notes": "daily" }),
    )
    .await;
    assert_eq!(r.body["risk"], "MEDIUM", "{}", r.body);
    answer(&s, id, "ops_oncall", json!({ "choices": ["oncall_rota"] })).await;

    // Nothing newer yet: the review stays as it is.
    let r = s
        .post(&format!("/api/v1/reviews/{id}/upgrade"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["to_version"], 1);

    import(&s, &fixture_v2()).await;
    // A review started now gets version 2; this one keeps version 1 until upgraded.
    let r = s.get(&format!("/api/v1/reviews/{id}")).await;
    assert_eq!(r.body["lens_version"], 1);
    let r = s
        .post(
            &format!("/api/v1/reviews/{id}/upgrade"),
            json!({ "version": 7 }),
        )
        .await;
    r.assert_problem(422, Some("version"));

    let r = s
        .post(&format!("/api/v1/reviews/{id}/upgrade"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["from_version"], 1);
    assert_eq!(r.body["to_version"], 2);
    assert_eq!(r.body["dropped_questions"], json!(["ops_oncall"]));
    assert_eq!(
        r.body["dropped_choices"],
        json!([{ "question_id": "ops_backups", "choice_id": "backups_isolated" }])
    );
    let review = &r.body["review"];
    assert_eq!(review["lens_version"], 2);
    let q = question(review, "ops_backups");
    assert_eq!(q["answer"]["choices"], json!(["backups_automatic"]));
    assert_eq!(q["answer"]["notes"], "daily");
    // Scored by the new version's rules.
    assert_eq!(q["risk"], "MEDIUM");
    assert_eq!(review["risk_counts"]["MEDIUM"], 1);
    assert_eq!(
        review["pillars"][0]["questions"].as_array().unwrap().len(),
        1
    );

    // Back to an older version is refused.
    let r = s
        .post(
            &format!("/api/v1/reviews/{id}/upgrade"),
            json!({ "version": 1 }),
        )
        .await;
    r.assert_problem(422, Some("version"));
    let trail = s.audit_trail().await;
    let up = trail
        .iter()
        .find(|e| e["action"] == "review.upgraded")
        .unwrap();
    assert_eq!(up["changes"]["lens_version"]["after"]["version"], 2);
    s.stop().await;
}

async fn who_may_do_what(backend: Backend) {
    let s = TestServer::start(backend).await;
    add_workload(&s, "checkout").await;
    // Agents cannot import lenses; viewers cannot start reviews but read them.
    let r = s
        .call(
            Method::POST,
            "/api/v1/lenses",
            Some(&s.agent),
            Some(fixture_v1()),
        )
        .await;
    r.assert_problem(403, None);
    let r = s
        .call(
            Method::POST,
            "/api/v1/reviews",
            Some(&s.viewer),
            Some(json!({ "workload": "checkout" })),
        )
        .await;
    r.assert_problem(403, None);
    let id = start(&s, "checkout", None).await["id"].as_i64().unwrap();
    let r = s
        .call(
            Method::PUT,
            &format!("/api/v1/reviews/{id}/answers/det_alarms"),
            Some(&s.viewer),
            Some(json!({ "choices": ["det_alarms_no"] })),
        )
        .await;
    r.assert_problem(403, None);
    // Viewers read reviews and lenses.
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/reviews/{id}"),
            Some(&s.viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], id);
    let r = s
        .call(Method::GET, "/api/v1/lenses", Some(&s.viewer), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    s.stop().await;
}

fn run(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

async fn lens_and_review_commands(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let desk = db.desk().await;
    desk.save_workload(
        &opsdesk_core::Actor::cli(),
        serde_json::from_value(json!({ "name": "checkout", "environment": "production", "accounts": ["111122223333"] }))
            .unwrap(),
    )
    .await
    .unwrap();
    desk.db().close().await;

    let file = dir.path().join("lens.json");
    std::fs::write(&file, serde_json::to_string_pretty(&fixture_v1()).unwrap()).unwrap();
    let (code, out, err) =
        run(opsdesk(dir.path(), &db.url).args(["lens", "import", file.to_str().unwrap()]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("imported lens backups-and-on-call"), "{out}");
    let (code, out, err) =
        run(opsdesk(dir.path(), &db.url).args(["lens", "import", file.to_str().unwrap()]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("already has this document as version 1"),
        "{out}"
    );

    let (code, out, err) =
        run(opsdesk(dir.path(), &db.url).args(["lens", "export", "backups-and-on-call"]));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), fixture_v1());

    let mut bad = fixture_v1();
    bad["schemaVersion"] = json!("2020-01-01");
    std::fs::write(&file, bad.to_string()).unwrap();
    let (code, out, err) =
        run(opsdesk(dir.path(), &db.url).args(["lens", "import", file.to_str().unwrap()]));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("schemaVersion"), "{err}");

    let (code, out, err) =
        run(opsdesk(dir.path(), &db.url).args(["review", "start", "--workload", "nowhere"]));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--workload"), "{err}");
    let (code, out, err) = run(opsdesk(dir.path(), &db.url).args([
        "review",
        "start",
        "--workload",
        "checkout",
        "--lens",
        "backups-and-on-call",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("started review 1 of checkout"), "{out}");

    let desk = db.desk().await;
    desk.answer_question(
        &opsdesk_core::Actor::cli(),
        1,
        "ops_backups",
        serde_json::from_value(
            json!({ "choices": ["backups_automatic"], "notes": "nightly | hourly" }),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    desk.db().close().await;

    let (code, out, err) = run(opsdesk(dir.path(), &db.url).args(["review", "report", "1"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("# Readiness review 1: checkout"), "{out}");
    assert!(out.contains("## Operational excellence"), "{out}");
    assert!(
        out.contains("### How are backups handled? (MEDIUM)"),
        "{out}"
    );
    assert!(out.contains("Notes: nightly \\| hourly"), "{out}");
    assert!(
        out.contains("- Restores are tested: Test a restore twice a year."),
        "{out}"
    );
    assert!(
        out.contains("### Is someone on call? (UNANSWERED)"),
        "{out}"
    );
    assert!(
        out.contains("HIGH 0 · MEDIUM 1 · NONE 0 · UNANSWERED 1"),
        "{out}"
    );
    let (code, out, err) =
        run(opsdesk(dir.path(), &db.url).args(["review", "report", "1", "--format", "json"]));
    assert_eq!(code, 0, "{out}{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["risk_counts"]["MEDIUM"], 1);
    let (code, _, err) = run(opsdesk(dir.path(), &db.url).args(["review", "report", "9"]));
    assert_eq!(code, 2);
    assert!(err.contains("review 9 not found"), "{err}");
    db.drop_schema().await;
}
