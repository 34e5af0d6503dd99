//! The Jira Cloud connector against the strict local stand-in (tests/standins/jira.py): issues
//! made with their key, description and priority, comments both ways exactly once (internal
//! notes as Jira Service Management's internal comments), status by transitions, priority back
//! as severity, a 429 and an outage that lose nothing, a title changed on both sides kept as a
//! conflict, and issues made in Jira imported. People in Jira act as Alice, through the same API.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{on_both_backends, Backend, TestServer};
use crate::connectors::{comments, link_of, remote_id, ticket};
use crate::emergency::eventually;
use crate::peers::StandIn;

on_both_backends!(
    issues_sync_both_ways_with_jira_cloud,
    jira_webhooks_bring_a_comment_at_once_and_forged_calls_are_refused,
    jira_priorities_issue_types_and_projects_follow_the_maps,
);

const OPSDESK: &str = "opsdesk@example.com";
const TOKEN: &str = "tok-opsdesk";

/// The stand-in, and calls to it as Alice.
struct JiraCloud {
    standin: StandIn,
    http: reqwest::Client,
}

impl JiraCloud {
    async fn start() -> JiraCloud {
        JiraCloud::start_with(&["--project", "SUP"]).await
    }

    /// A site with the stand-in's `extra` arguments (projects, a priority scheme).
    async fn start_with(extra: &[&str]) -> JiraCloud {
        let mut args = extra.to_vec();
        args.extend([
            "--user",
            "opsdesk@example.com:tok-opsdesk",
            "--user",
            "alice@example.com:tok-alice",
        ]);
        let standin = StandIn::start("jira", &args).await;
        JiraCloud {
            standin,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self) -> &str {
        &self.standin.url
    }

    /// One call of Jira's API as Alice; the answer's JSON (`Null` when empty).
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}/rest/api/3/{path}", self.url()))
            .basic_auth("alice@example.com", Some("tok-alice"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(
            status.is_success(),
            "{method} {path}: {status} {text}\n{}",
            self.standin.log()
        );
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    async fn issue(&self, id: &str) -> Value {
        self.call(Method::GET, &format!("issue/{id}"), None).await
    }

    /// The issue's comments, oldest first, with their properties.
    async fn comments(&self, id: &str) -> Vec<Value> {
        self.call(
            Method::GET,
            &format!("issue/{id}/comment?orderBy=created&expand=properties"),
            None,
        )
        .await["comments"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The comments' texts.
    async fn comment_texts(&self, id: &str) -> Vec<String> {
        self.comments(id)
            .await
            .iter()
            .map(|c| text(&c["body"]))
            .collect()
    }

    async fn transition(&self, id: &str, to: &str) {
        let t = self
            .call(Method::GET, &format!("issue/{id}/transitions"), None)
            .await;
        let tid = t["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["to"]["name"] == to)
            .unwrap_or_else(|| panic!("no transition to {to}: {t:#}"))["id"]
            .clone();
        self.call(
            Method::POST,
            &format!("issue/{id}/transitions"),
            Some(json!({"transition": {"id": tid}})),
        )
        .await;
    }

    /// Makes the next `count` calls opsdesk makes answer `status` (0 ends it).
    async fn fail(&self, status: u16, count: u32, retry_after: u32) {
        let r = self
            .http
            .post(format!("{}/_standin/fail", self.url()))
            .json(&json!({"status": status, "count": count, "retry_after": retry_after, "user": OPSDESK}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
}

/// Shows what the stand-in refused when the test fails.
struct ShowLogOnFailure<'a>(&'a JiraCloud);

impl Drop for ShowLogOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- the Jira stand-in's log ---\n{}", self.0.standin.log());
        }
    }
}

/// The plain text of a document as the connector writes it: paragraphs of text and hard
/// breaks.
fn text(doc: &Value) -> String {
    doc["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["content"]
                .as_array()
                .map(|inline| {
                    inline
                        .iter()
                        .map(|n| match n["type"].as_str().unwrap() {
                            "text" => n["text"].as_str().unwrap().to_owned(),
                            "hardBreak" => "\n".to_owned(),
                            other => panic!("unexpected node {other}"),
                        })
                        .collect::<String>()
                })
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn doc(text: &str) -> Value {
    json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]})
}

fn property<'a>(comment: &'a Value, key: &str) -> Option<&'a Value> {
    comment["properties"]
        .as_array()?
        .iter()
        .find(|p| p["key"] == key)
        .map(|p| &p["value"])
}

async fn jira_server(backend: Backend, jira: &JiraCloud) -> TestServer {
    jira_server_polling(backend, jira, 1).await
}

const WEBHOOK_SECRET: &str = "jira-webhook-secret-0123456789";

async fn jira_server_polling(backend: Backend, jira: &JiraCloud, poll_seconds: u64) -> TestServer {
    let url = jira.url().to_owned();
    TestServer::start_with(backend, move |c, _| {
        c.connectors = vec![toml::from_str(&format!(
            "name = \"jira\"\ntype = \"jira\"\nurl = \"{url}\"\n\
             username = \"{OPSDESK}\"\ntoken = \"{TOKEN}\"\nqueue = \"SUP\"\n\
             webhook_secret = \"{WEBHOOK_SECRET}\"\n\
             poll_seconds = {poll_seconds}\nimport_new = true\n[create_for]\nseverities = [\"SEV1\"]\n"
        ))
        .unwrap()];
    })
    .await
}

async fn issues_sync_both_ways_with_jira_cloud(backend: Backend) {
    let jira = JiraCloud::start().await;
    let _log = ShowLogOnFailure(&jira);
    let s = jira_server(backend, &jira).await;

    // The connector is listed, its token and webhook secret never shown.
    let listed = s.get("/api/v1/connectors").await.body;
    assert_eq!(listed[0]["name"], "jira");
    assert_eq!(listed[0]["token"], "***");
    assert_eq!(listed[0]["webhook_secret"], "***");

    // A SEV1 ticket becomes an issue by itself: its key in the summary, the description as a
    // document, priority Highest, made by opsdesk's account.
    let r = s
        .post(
            "/api/v1/tickets",
            json!({"title": "Checkout is down", "description": "500s everywhere\nsince 10:00\n\nRollback did not help", "kind": "incident", "severity": "SEV1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sev1 = r.body["id"].as_i64().unwrap();
    let key = r.body["key"].as_str().unwrap().to_owned();
    let j1 = remote_id(&s, sev1).await;
    let issue = jira.issue(&j1).await;
    let f = &issue["fields"];
    assert_eq!(f["summary"], format!("[{key}] Checkout is down"));
    assert_eq!(f["priority"]["name"], "Highest");
    assert_eq!(f["status"]["name"], "To Do");
    assert_eq!(f["issuetype"]["name"], "Task");
    assert_eq!(f["creator"]["accountId"], "acct-opsdesk");
    assert_eq!(
        f["description"],
        json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [
                {"type": "text", "text": "500s everywhere"},
                {"type": "hardBreak"},
                {"type": "text", "text": "since 10:00"}
            ]},
            {"type": "paragraph", "content": [{"type": "text", "text": "Rollback did not help"}]}
        ]})
    );
    let link = link_of(&s, sev1).await.unwrap();
    assert_eq!(link["state"], "linked");
    assert_eq!(
        link["remote_url"],
        format!("{}/browse/{}", jira.url(), issue["key"].as_str().unwrap())
    );

    // A reply and an internal note go to Jira once each; the note as an internal comment.
    s.post(
        &format!("/api/v1/tickets/{sev1}/comments"),
        json!({"body": "We are on it", "public": true}),
    )
    .await;
    s.post(
        &format!("/api/v1/tickets/{sev1}/comments"),
        json!({"body": "Looks like the database", "public": false}),
    )
    .await;
    let sent = eventually("the reply and the note in Jira", || async {
        let c = jira.comments(&j1).await;
        (c.len() >= 2).then_some(c)
    })
    .await;
    assert_eq!(
        sent.iter().map(|c| text(&c["body"])).collect::<Vec<_>>(),
        ["We are on it", "Looks like the database"]
    );
    assert!(sent
        .iter()
        .all(|c| c["author"]["accountId"] == "acct-opsdesk" && property(c, "opsdesk").is_some()));
    assert_eq!(property(&sent[0], "sd.public.comment"), None);
    assert_eq!(
        property(&sent[1], "sd.public.comment"),
        Some(&json!({"internal": true}))
    );

    // Alice answers in Jira: her comment arrives once, public; her internal one stays internal.
    jira.call(
        Method::POST,
        &format!("issue/{j1}/comment"),
        Some(json!({"body": doc("Disk replaced")})),
    )
    .await;
    jira.call(
        Method::POST,
        &format!("issue/{j1}/comment"),
        Some(json!({"body": doc("Vendor ticket 7781"), "properties": [{"key": "sd.public.comment", "value": {"internal": true}}]})),
    )
    .await;
    let mirrored = eventually("Alice's comments in opsdesk", || async {
        let c = comments(&s, sev1).await;
        (c.len() >= 4).then_some(c)
    })
    .await;
    let from_alice: Vec<(&str, bool)> = mirrored
        .iter()
        .filter(|c| c["author"] == "jira:Alice")
        .map(|c| (c["body"].as_str().unwrap(), c["public"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        from_alice,
        [("Disk replaced", true), ("Vendor ticket 7781", false)],
        "{mirrored:#?}"
    );
    // Several passes later, still once each, and opsdesk's own did not come back.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(comments(&s, sev1).await.len(), 4);
    assert_eq!(jira.comments(&j1).await.len(), 4);

    // Alice moves the issue to Done: the ticket is resolved, by her.
    jira.transition(&j1, "Done").await;
    eventually("the ticket resolved", || async {
        (ticket(&s, sev1).await["status"] == "resolved").then_some(())
    })
    .await;
    let history = s.get(&format!("/api/v1/tickets/{sev1}/history")).await.body;
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["actor"] == "jira:Alice" && h["changes"]["status"]["after"] == "resolved"),
        "{history:#}"
    );

    // Reopened in opsdesk: back to In Progress in Jira, by a transition.
    let r = s
        .patch(
            &format!("/api/v1/tickets/{sev1}"),
            None,
            json!({"status": "in_progress"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("the issue in progress again", || async {
        (jira.issue(&j1).await["fields"]["status"]["name"] == "In Progress").then_some(())
    })
    .await;

    // Alice lowers the priority: the severity follows.
    jira.call(
        Method::PUT,
        &format!("issue/{j1}"),
        Some(json!({"fields": {"priority": {"name": "Low"}}})),
    )
    .await;
    eventually("the severity lowered", || async {
        (ticket(&s, sev1).await["severity"] == "SEV4").then_some(())
    })
    .await;

    // Jira asks opsdesk to slow down: the reply waits as told and arrives once.
    jira.fail(429, 1, 2).await;
    s.post(
        &format!("/api/v1/tickets/{sev1}/comments"),
        json!({"body": "Rate limits pass", "public": true}),
    )
    .await;
    eventually("the reply sent after the 429", || async {
        jira.comment_texts(&j1)
            .await
            .iter()
            .any(|t| t == "Rate limits pass")
            .then_some(())
    })
    .await;
    assert!(jira.standin.log().contains("injected 429"));

    // A ticket pushed by hand, to be changed on both sides while Jira is down.
    let r = s
        .post(
            "/api/v1/tickets",
            json!({"title": "New laptop for Bo", "kind": "service_request", "severity": "SEV3"}),
        )
        .await;
    let sev3 = r.body["id"].as_i64().unwrap();
    let key3 = r.body["key"].as_str().unwrap().to_owned();
    let pushed = s
        .post(
            &format!("/api/v1/tickets/{sev3}/external"),
            json!({"connector": "jira"}),
        )
        .await;
    assert_eq!(pushed.status, 201, "{}", pushed.body);
    let j3 = pushed.body["remote_id"]
        .as_str()
        .expect("made at once")
        .to_owned();
    assert_eq!(
        jira.issue(&j3).await["fields"]["priority"]["name"],
        "Medium"
    );

    // Jira answers opsdesk 503 for a while. Meanwhile a reply is written here, and the
    // laptop request's title changes here and in Jira.
    jira.fail(503, 100_000, 0).await;
    s.post(
        &format!("/api/v1/tickets/{sev1}/comments"),
        json!({"body": "Still watching the disk", "public": true}),
    )
    .await;
    let r = s
        .patch(
            &format!("/api/v1/tickets/{sev3}"),
            None,
            json!({"title": "New laptop for Bo (14 inch)"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    jira.call(
        Method::PUT,
        &format!("issue/{j3}"),
        Some(json!({"fields": {"summary": format!("[{key3}] New laptops for Bo and Cy")}})),
    )
    .await;
    let failing = eventually("the links to say Jira is unavailable", || async {
        let l = link_of(&s, sev1).await?;
        let l3 = link_of(&s, sev3).await?;
        (l["attempts"].as_i64()? > 0 && l3["attempts"].as_i64()? > 0).then_some(l)
    })
    .await;
    assert!(
        failing["detail"].as_str().unwrap().contains("503"),
        "{failing:#}"
    );
    assert!(!failing.to_string().contains(TOKEN), "{failing:#}");
    jira.fail(503, 0, 0).await;
    // The retry waits 30 s after a failure; pushed again by hand, it does not wait.
    for id in [sev1, sev3] {
        s.post(
            &format!("/api/v1/tickets/{id}/external"),
            json!({"connector": "jira"}),
        )
        .await;
    }
    let done = eventually("the reply sent after the outage", || async {
        let c = jira.comment_texts(&j1).await;
        c.iter()
            .any(|m| m == "Still watching the disk")
            .then_some(c)
    })
    .await;
    let conflicted = eventually("the title conflict to be noted", || async {
        let l = link_of(&s, sev3).await?;
        l["detail"].as_str()?.starts_with("conflict").then_some(l)
    })
    .await;
    assert!(
        conflicted["detail"].as_str().unwrap().contains("title"),
        "{conflicted:#}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let texts = jira.comment_texts(&j1).await;
    assert_eq!(
        texts
            .iter()
            .filter(|m| *m == "Still watching the disk" || *m == "Rate limits pass")
            .count(),
        2,
        "{texts:#?} (first seen: {done:#?})"
    );
    // Neither side was overwritten, and the ticket says so once.
    assert_eq!(
        ticket(&s, sev3).await["title"],
        "New laptop for Bo (14 inch)"
    );
    assert_eq!(
        jira.issue(&j3).await["fields"]["summary"],
        format!("[{key3}] New laptops for Bo and Cy")
    );
    let notes: Vec<Value> = comments(&s, sev3)
        .await
        .into_iter()
        .filter(|c| c["body"].as_str().unwrap().starts_with("conflict") && c["public"] == false)
        .collect();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    // Settled by giving opsdesk Jira's title: the conflict is over, Jira unchanged.
    s.patch(
        &format!("/api/v1/tickets/{sev3}"),
        None,
        json!({"title": "New laptops for Bo and Cy"}),
    )
    .await;
    eventually("the conflict settled", || async {
        (link_of(&s, sev3).await?["detail"] == "").then_some(())
    })
    .await;
    assert_eq!(
        jira.issue(&j3).await["fields"]["summary"],
        format!("[{key3}] New laptops for Bo and Cy")
    );

    // Made in Jira by Alice: imported as an opsdesk ticket, linked to it, once.
    let made = jira
        .call(
            Method::POST,
            "issue",
            Some(json!({"fields": {
                "project": {"key": "SUP"},
                "summary": "VPN drops every hour",
                "issuetype": {"name": "Bug"},
                "priority": {"name": "High"},
                "description": doc("Since Monday.")
            }})),
        )
        .await;
    let j_new = made["id"].as_str().unwrap().to_owned();
    let imported = eventually("the Jira issue imported", || async {
        let list = s.get("/api/v1/tickets?q=VPN").await.body;
        list["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(imported["title"], "VPN drops every hour");
    assert_eq!(imported["severity"], "SEV2");
    let id = imported["id"].as_i64().unwrap();
    assert_eq!(ticket(&s, id).await["description"], "Since Monday.");
    let link = link_of(&s, id).await.unwrap();
    assert_eq!(link["remote_id"], j_new.as_str());
    assert_eq!(
        link["remote_url"],
        format!("{}/browse/{}", jira.url(), made["key"].as_str().unwrap())
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let list = s.get("/api/v1/tickets?q=VPN").await.body;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Nothing opsdesk sent was refused by the strict stand-in.
    let log = jira.standin.log();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("refused") && l.contains(OPSDESK))
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
}

async fn jira_webhooks_bring_a_comment_at_once_and_forged_calls_are_refused(backend: Backend) {
    let jira = JiraCloud::start().await;
    let _log = ShowLogOnFailure(&jira);
    // Polling an hour apart: what arrives sooner came by the webhook.
    let s = jira_server_polling(backend, &jira, 3600).await;
    let hook = s.url("/api/v1/connectors/jira/webhook");
    let r = jira
        .http
        .post(format!("{}/_standin/webhook", jira.url()))
        .json(&json!({"url": hook, "secret": WEBHOOK_SECRET}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    let r = s
        .post(
            "/api/v1/tickets",
            json!({"title": "Disk filling on db-2", "kind": "incident", "severity": "SEV3"}),
        )
        .await;
    let id = r.body["id"].as_i64().unwrap();
    let r = s
        .post(
            &format!("/api/v1/tickets/{id}/external"),
            json!({"connector": "jira"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let issue = r.body["remote_id"].as_str().unwrap().to_owned();
    eventually("the pushed link synced", || async {
        link_of(&s, id).await?["last_synced_at"]
            .as_str()
            .map(|_| ())
    })
    .await;

    // Alice comments in Jira; Jira calls opsdesk, signed; the comment arrives at once.
    let started = std::time::Instant::now();
    jira.call(
        Method::POST,
        &format!("issue/{issue}/comment"),
        Some(json!({"body": doc("Cleared old WAL files")})),
    )
    .await;
    eventually("the comment brought by Jira's webhook", || async {
        comments(&s, id)
            .await
            .iter()
            .any(|c| c["body"] == "Cleared old WAL files" && c["author"] == "jira:Alice")
            .then_some(())
    })
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(30));

    // A call that is not signed with the secret, or whose body was changed, is refused.
    let body = json!({"webhookEvent": "comment_created", "issue": {"id": issue}}).to_string();
    let forged = |signature: &'static str| {
        s.http
            .post(hook.clone())
            .header("Content-Type", "application/json")
            .header("X-Hub-Signature", signature)
            .body(body.clone())
            .send()
    };
    assert_eq!(forged("sha256=00").await.unwrap().status(), 403);
    assert_eq!(forged("").await.unwrap().status(), 403);
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signed = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let r = s
        .http
        .post(hook.clone())
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature", signed.clone())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = s
        .http
        .post(hook)
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature", signed)
        .body(body.replace("comment_created", "comment_updated"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Delivered again: the comment is still there once.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        comments(&s, id)
            .await
            .iter()
            .filter(|c| c["body"] == "Cleared old WAL files")
            .count(),
        1
    );
}

/// A site with its own priority scheme, a project per team and Jira Service Management's issue
/// types: what opsdesk writes follows the connector's maps, and what it reads back (a priority
/// changed in Jira, an issue made there) is read through the same maps.
async fn jira_priorities_issue_types_and_projects_follow_the_maps(backend: Backend) {
    let jira = JiraCloud::start_with(&[
        "--project",
        "SUP",
        "--project",
        "PAY",
        "--priorities",
        "Blocker,Critical,Major,Minor,Trivial",
    ])
    .await;
    let _log = ShowLogOnFailure(&jira);
    let url = jira.url().to_owned();
    let s = TestServer::start_with(backend, move |c, _| {
        c.connectors = vec![toml::from_str(&format!(
            "name = \"jira\"\ntype = \"jira\"\nurl = \"{url}\"\n\
             username = \"{OPSDESK}\"\ntoken = \"{TOKEN}\"\nqueue = \"SUP\"\n\
             poll_seconds = 1\nimport_new = true\n\
             [create_for]\nseverities = [\"SEV1\", \"SEV2\"]\n\
             [priority_map]\nSEV1 = \"Blocker\"\nSEV2 = \"Critical\"\nSEV3 = \"Major\"\n\
             SEV4 = \"Minor\"\nSEV5 = \"Trivial\"\n\
             [kind_map]\nincident = \"Incident\"\nservice_request = \"Service Request\"\n\
             [team_map]\npayments = \"PAY\"\n"
        ))
        .unwrap()];
    })
    .await;
    let listed = s.get("/api/v1/connectors").await.body;
    assert_eq!(listed[0]["priority_map"]["SEV2"], "Critical");
    assert_eq!(listed[0]["team_map"]["payments"], "PAY");

    // A payments incident at SEV2: in the PAY project, priority Critical, an Incident.
    let r = s
        .post(
            "/api/v1/tickets",
            json!({"title": "Card payments fail", "kind": "incident", "severity": "SEV2", "team": "payments"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let paid = r.body["id"].as_i64().unwrap();
    let issue_id = remote_id(&s, paid).await;
    let f = jira.issue(&issue_id).await["fields"].clone();
    assert_eq!(f["project"]["key"], "PAY");
    assert_eq!(f["priority"]["name"], "Critical");
    assert_eq!(f["issuetype"]["name"], "Incident");

    // Raised to Blocker in Jira: SEV1 in opsdesk.
    jira.call(
        Method::PUT,
        &format!("issue/{issue_id}"),
        Some(json!({"fields": {"priority": {"name": "Blocker"}}})),
    )
    .await;
    eventually("the Blocker priority arrives as SEV1", || async {
        (ticket(&s, paid).await["severity"] == "SEV1").then_some(())
    })
    .await;
    // Lowered in opsdesk: Minor in Jira.
    let r = s
        .patch(
            &format!("/api/v1/tickets/{paid}"),
            None,
            json!({"severity": "SEV4"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("SEV4 arrives as Minor", || async {
        (jira.issue(&issue_id).await["fields"]["priority"]["name"] == "Minor").then_some(())
    })
    .await;

    // A question of no team, pushed by hand: the connector's project, the default issue type.
    let r = s
        .post(
            "/api/v1/tickets",
            json!({"title": "How do I rotate keys?", "kind": "question", "severity": "SEV3"}),
        )
        .await;
    let question = r.body["id"].as_i64().unwrap();
    let r = s
        .post(
            &format!("/api/v1/tickets/{question}/external"),
            json!({"connector": "jira"}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let q_issue = remote_id(&s, question).await;
    let f = jira.issue(&q_issue).await["fields"].clone();
    assert_eq!(f["project"]["key"], "SUP");
    assert_eq!(f["issuetype"]["name"], "Task");
    assert_eq!(f["priority"]["name"], "Major");

    // A service request made in PAY by Alice: imported for payments, its kind and severity
    // read through the maps.
    let made = jira
        .call(
            Method::POST,
            "issue",
            Some(json!({"fields": {
                "project": {"key": "PAY"},
                "summary": "New corporate card for Bo",
                "issuetype": {"name": "Service Request"},
                "priority": {"name": "Trivial"}
            }})),
        )
        .await;
    let key = made["key"].as_str().unwrap().to_owned();
    let imported = eventually("the PAY issue is imported", || async {
        let list = s.get("/api/v1/tickets?q=corporate").await.body;
        list["items"]
            .as_array()
            .and_then(|items| items.first().cloned())
    })
    .await;
    assert_eq!(imported["team"], "payments", "{imported:#} from {key}");
    assert_eq!(imported["kind"], "service_request");
    assert_eq!(imported["severity"], "SEV5");
}
