//! The ServiceNow connector against the strict local stand-in (tests/standins/servicenow.py):
//! incidents made for SEV1 tickets, comments and work notes both ways exactly once, state and
//! priority both ways, rate limits and an outage caught up, a title changed on both sides kept
//! as a conflict, and incidents made in ServiceNow imported.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{on_both_backends, Backend, TestServer};
use crate::connectors::{comments, link_of, remote_id, ticket};
use crate::emergency::eventually;
use crate::peers::StandIn;

on_both_backends!(
    incidents_sync_both_ways_with_servicenow,
    a_business_rule_call_brings_a_work_note_at_once,
    impact_urgency_categories_and_groups_follow_the_maps,
);

/// The stand-in, and its Table API as its users call it.
struct ServiceNow {
    standin: StandIn,
    http: reqwest::Client,
}

impl ServiceNow {
    async fn start() -> ServiceNow {
        ServiceNow::start_with(&[]).await
    }

    /// An instance with the stand-in's `extra` arguments (groups).
    async fn start_with(extra: &[&str]) -> ServiceNow {
        let mut args = vec![
            "--user",
            "opsdesk:password-opsdesk",
            "--user",
            "alice:password-alice",
        ];
        args.extend_from_slice(extra);
        let standin = StandIn::start("servicenow", &args).await;
        ServiceNow {
            standin,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self) -> &str {
        &self.standin.url
    }

    /// A Table API call as `user` (`path` under /api/now/table/); it must succeed.
    async fn call(&self, user: &str, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/api/now/table/{path}", self.url()))
            .basic_auth(user, Some(format!("password-{user}")));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "{status}: {body}\n{}",
            self.standin.log()
        );
        body["result"].clone()
    }

    async fn incident(&self, sys_id: &str) -> Value {
        self.call("alice", Method::GET, &format!("incident/{sys_id}"), None)
            .await
    }

    async fn patch(&self, sys_id: &str, body: Value) {
        self.call(
            "alice",
            Method::PATCH,
            &format!("incident/{sys_id}"),
            Some(body),
        )
        .await;
    }

    /// The incident's comments or work notes, oldest first.
    async fn journal(&self, sys_id: &str, element: &str) -> Vec<String> {
        let path = format!(
            "sys_journal_field?sysparm_query=element_id={sys_id}%5Eelement={element}\
             %5EORDERBYsys_created_on&sysparm_fields=value"
        );
        self.call("alice", Method::GET, &path, None)
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["value"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The next calls fail as `rule` says (see the stand-in's /_standin/fail).
    async fn fail(&self, rule: Value) {
        let r = self
            .http
            .post(format!("{}/_standin/fail", self.url()))
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

async fn servicenow_server(backend: Backend, sn: &ServiceNow) -> TestServer {
    servicenow_server_polling(backend, sn, 1).await
}

const WEBHOOK_SECRET: &str = "servicenow-webhook-secret-0123";

async fn servicenow_server_polling(
    backend: Backend,
    sn: &ServiceNow,
    poll_seconds: u64,
) -> TestServer {
    let url = sn.url().to_owned();
    TestServer::start_with(backend, move |c, _| {
        c.connectors = vec![toml::from_str(&format!(
            "name = \"servicenow\"\ntype = \"servicenow\"\nurl = \"{url}\"\n\
             username = \"opsdesk\"\npassword = \"password-opsdesk\"\nqueue = \"incident\"\n\
             webhook_secret = \"{WEBHOOK_SECRET}\"\n\
             poll_seconds = {poll_seconds}\nimport_new = true\n[create_for]\nseverities = [\"SEV1\"]\n"
        ))
        .unwrap()];
    })
    .await
}

/// Pushes the ticket again by hand: synced at once, even when it waits to retry.
async fn push(s: &TestServer, id: i64) -> Value {
    let r = s
        .post(
            &format!("/api/v1/tickets/{id}/external"),
            json!({"connector": "servicenow"}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    r.body
}

async fn incidents_sync_both_ways_with_servicenow(backend: Backend) {
    let sn = ServiceNow::start().await;
    let s = servicenow_server(backend, &sn).await;

    let listed = s.get("/api/v1/connectors").await.body;
    assert_eq!(listed[0]["name"], "servicenow");
    assert_eq!(listed[0]["password"], "***");

    // A SEV1 ticket becomes an incident by itself: the key as correlation id and in the short
    // description, priority 1 as impact 1 and urgency 1.
    let r = s
        .post(
            "/api/v1/tickets",
            json!({"title": "Checkout is down", "description": "500s everywhere", "kind": "incident", "severity": "SEV1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sev1 = r.body["id"].as_i64().unwrap();
    let key = r.body["key"].as_str().unwrap().to_owned();
    let inc = remote_id(&s, sev1).await;
    let i = sn.incident(&inc).await;
    assert_eq!(i["correlation_id"], key.as_str());
    assert_eq!(i["correlation_display"], "opsdesk");
    assert_eq!(i["short_description"], format!("[{key}] Checkout is down"));
    assert_eq!(i["description"], "500s everywhere");
    assert_eq!(
        (&i["impact"], &i["urgency"], &i["priority"]),
        (&json!("1"), &json!("1"), &json!("1"))
    );
    assert_eq!(i["sys_created_by"], "opsdesk");
    let link = link_of(&s, sev1).await.unwrap();
    assert_eq!(link["state"], "linked");
    assert_eq!(
        link["remote_url"],
        format!("{}/nav_to.do?uri=incident.do?sys_id={inc}", sn.url())
    );

    // A public reply is a comment, an internal note a work note, once each.
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
    eventually("the reply and the note in ServiceNow", || async {
        let c = sn.journal(&inc, "comments").await;
        let n = sn.journal(&inc, "work_notes").await;
        (c == ["We are on it"] && n == ["Looks like the database"]).then_some(())
    })
    .await;

    // Alice answers in ServiceNow: her comment is public in opsdesk, her work note internal,
    // each once. (Entries of one second come in sys_id order, not as written: compared
    // sorted.)
    sn.patch(&inc, json!({"comments": "Disk replaced"})).await;
    sn.patch(&inc, json!({"work_notes": "Vendor ticket 7781"}))
        .await;
    let mirrored = eventually("Alice's comment and work note in opsdesk", || async {
        let c = comments(&s, sev1).await;
        (c.len() >= 4).then_some(c)
    })
    .await;
    let mut from_alice: Vec<(&str, bool)> = mirrored
        .iter()
        .filter(|c| c["author"] == "servicenow:alice")
        .map(|c| (c["body"].as_str().unwrap(), c["public"].as_bool().unwrap()))
        .collect();
    from_alice.sort();
    assert_eq!(
        from_alice,
        [("Disk replaced", true), ("Vendor ticket 7781", false)]
    );
    // Several passes later, still once each, and opsdesk's own did not come back.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let c = comments(&s, sev1).await;
    assert_eq!(c.len(), 4, "{c:#?}");
    assert_eq!(sn.journal(&inc, "comments").await.len(), 2);
    assert_eq!(sn.journal(&inc, "work_notes").await.len(), 2);

    // Alice resolves the incident (with the resolution ServiceNow requires): resolved here,
    // by her.
    sn.patch(
        &inc,
        json!({"state": "6", "close_code": "Solution provided", "close_notes": "Disk swapped"}),
    )
    .await;
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
            .any(|h| h["actor"] == "servicenow:alice"
                && h["changes"]["status"]["after"] == "resolved"),
        "{history:#}"
    );

    // Reopened in opsdesk: In Progress there.
    let r = s
        .patch(
            &format!("/api/v1/tickets/{sev1}"),
            None,
            json!({"status": "in_progress"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("the incident in progress again", || async {
        (sn.incident(&inc).await["state"] == "2").then_some(())
    })
    .await;

    // Alice lowers impact and urgency: priority 3 there, SEV3 here.
    sn.patch(&inc, json!({"impact": "2", "urgency": "2"})).await;
    eventually("the severity from ServiceNow's priority", || async {
        (ticket(&s, sev1).await["severity"] == "SEV3").then_some(())
    })
    .await;

    // Resolved in opsdesk: resolved there, with a resolution code and notes.
    let r = s
        .patch(
            &format!("/api/v1/tickets/{sev1}"),
            None,
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let resolved = eventually("the incident resolved", || async {
        let i = sn.incident(&inc).await;
        (i["state"] == "6").then_some(i)
    })
    .await;
    assert_eq!(resolved["close_code"], "Solution provided");
    assert!(!resolved["close_notes"].as_str().unwrap().is_empty());
    assert_eq!(resolved["priority"], "3");
    assert_eq!(link_of(&s, sev1).await.unwrap()["detail"], "");

    // Rate limited: the reply waits as told, and arrives once.
    sn.fail(json!({"status": 429, "count": 3, "retry_after": 1, "user": "opsdesk"}))
        .await;
    s.post(
        &format!("/api/v1/tickets/{sev1}/comments"),
        json!({"body": "Watching the disk", "public": true}),
    )
    .await;
    let sent = eventually("the reply after the rate limit", || async {
        let c = sn.journal(&inc, "comments").await;
        c.iter().any(|c| c == "Watching the disk").then_some(c)
    })
    .await;
    assert_eq!(sent.iter().filter(|c| *c == "Watching the disk").count(), 1);
    assert!(sn.standin.log().contains(" 429 "), "{}", sn.standin.log());

    // Made in ServiceNow by Alice: imported, with its priority as severity, linked to it.
    let made = sn
        .call(
            "alice",
            Method::POST,
            "incident",
            Some(json!({"short_description": "VPN drops every hour", "description": "Since Monday.", "impact": "1", "urgency": "2"})),
        )
        .await;
    let inc_new = made["sys_id"].as_str().unwrap().to_owned();
    let imported = eventually("the incident imported", || async {
        let list = s.get("/api/v1/tickets?q=VPN").await.body;
        list["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(imported["title"], "VPN drops every hour");
    assert_eq!(imported["severity"], "SEV2");
    let id = imported["id"].as_i64().unwrap();
    assert_eq!(ticket(&s, id).await["description"], "Since Monday.");
    assert_eq!(
        link_of(&s, id).await.unwrap()["remote_id"],
        inc_new.as_str()
    );
    // Once only, however many looks see it.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let list = s.get("/api/v1/tickets?q=VPN").await.body;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // A ticket pushed by hand, for the conflict below.
    let r = s
        .post(
            "/api/v1/tickets",
            json!({"title": "New laptop for Bo", "kind": "service_request", "severity": "SEV3"}),
        )
        .await;
    let sev3 = r.body["id"].as_i64().unwrap();
    let key3 = r.body["key"].as_str().unwrap().to_owned();
    let pushed = push(&s, sev3).await;
    let inc3 = pushed["remote_id"]
        .as_str()
        .expect("made at once")
        .to_owned();
    assert_eq!(sn.incident(&inc3).await["priority"], "3");

    // ServiceNow answers 503 to opsdesk for a while. Meanwhile a reply is written here, Alice
    // comments there, and the laptop request's title changes on both sides.
    sn.fail(json!({"status": 503, "count": 100000, "user": "opsdesk"}))
        .await;
    s.post(
        &format!("/api/v1/tickets/{sev1}/comments"),
        json!({"body": "Still watching the disk", "public": true}),
    )
    .await;
    sn.patch(&inc, json!({"comments": "Written during the outage"}))
        .await;
    let r = s
        .patch(
            &format!("/api/v1/tickets/{sev3}"),
            None,
            json!({"title": "New laptop for Bo (14 inch)"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    sn.patch(
        &inc3,
        json!({"short_description": format!("[{key3}] New laptops for Bo and Cy")}),
    )
    .await;
    let failing = eventually("the links to say ServiceNow fails", || async {
        let l = link_of(&s, sev1).await?;
        let l3 = link_of(&s, sev3).await?;
        (l["attempts"].as_i64()? > 0 && l3["attempts"].as_i64()? > 0).then_some(l)
    })
    .await;
    assert!(
        !failing["detail"].as_str().unwrap().is_empty(),
        "{failing:#}"
    );
    assert!(
        !failing.to_string().contains("password-opsdesk"),
        "{failing:#}"
    );
    sn.fail(json!({"count": 0})).await;
    push(&s, sev1).await;
    push(&s, sev3).await;
    let done = eventually("the reply sent after the outage", || async {
        let c = sn.journal(&inc, "comments").await;
        c.iter()
            .any(|m| m == "Still watching the disk")
            .then_some(c)
    })
    .await;
    assert_eq!(
        done.iter()
            .filter(|m| *m == "Still watching the disk")
            .count(),
        1
    );
    eventually("Alice's comment from the outage in opsdesk", || async {
        comments(&s, sev1)
            .await
            .iter()
            .any(|c| c["body"] == "Written during the outage" && c["author"] == "servicenow:alice")
            .then_some(())
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
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    // Neither side was overwritten, and the ticket says so once.
    assert_eq!(
        ticket(&s, sev3).await["title"],
        "New laptop for Bo (14 inch)"
    );
    assert_eq!(
        sn.incident(&inc3).await["short_description"],
        format!("[{key3}] New laptops for Bo and Cy")
    );
    let notes: Vec<Value> = comments(&s, sev3)
        .await
        .into_iter()
        .filter(|c| c["body"].as_str().unwrap().starts_with("conflict") && c["public"] == false)
        .collect();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    let c = comments(&s, sev1).await;
    assert_eq!(
        c.iter()
            .filter(|c| c["body"] == "Written during the outage")
            .count(),
        1,
        "{c:#?}"
    );

    // A person settles it by giving opsdesk ServiceNow's title: the conflict is over, the
    // incident unchanged.
    s.patch(
        &format!("/api/v1/tickets/{sev3}"),
        None,
        json!({"title": "New laptops for Bo and Cy"}),
    )
    .await;
    push(&s, sev3).await;
    eventually("the conflict settled", || async {
        (link_of(&s, sev3).await?["detail"] == "").then_some(())
    })
    .await;
    assert_eq!(
        sn.incident(&inc3).await["short_description"],
        format!("[{key3}] New laptops for Bo and Cy")
    );
}

/// What the business rule in docs/connectors.md sends, with polling an hour apart: what
/// arrives sooner came by the call.
async fn a_business_rule_call_brings_a_work_note_at_once(backend: Backend) {
    let sn = ServiceNow::start().await;
    let s = servicenow_server_polling(backend, &sn, 3600).await;
    let r = s
        .post(
            "/api/v1/tickets",
            json!({"title": "Certificate expires Friday", "kind": "task", "severity": "SEV3"}),
        )
        .await;
    let id = r.body["id"].as_i64().unwrap();
    let sys_id = push(&s, id).await["remote_id"].as_str().unwrap().to_owned();
    eventually("the pushed link synced", || async {
        link_of(&s, id).await?["last_synced_at"]
            .as_str()
            .map(|_| ())
    })
    .await;
    sn.patch(&sys_id, json!({"work_notes": "Renewal ordered"}))
        .await;
    let hook = s.url("/api/v1/connectors/servicenow/webhook");
    let call = |secret: &'static str| {
        s.http
            .post(hook.clone())
            .header("X-Opsdesk-Webhook-Secret", secret)
            .json(&json!({"sys_id": sys_id}))
            .send()
    };
    assert_eq!(call("not-the-secret").await.unwrap().status(), 403);
    let started = std::time::Instant::now();
    // Journal entries are taken once their second is over by ServiceNow's clock: the rule
    // may call before then, and the call is answered either way; a second call (the rule
    // fires again on the next change) brings what the first was too early for.
    loop {
        assert_eq!(call(WEBHOOK_SECRET).await.unwrap().status(), 202);
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let notes = comments(&s, id).await;
        if notes
            .iter()
            .any(|c| c["body"] == "Renewal ordered" && c["public"] == false)
        {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{notes:#?}"
        );
    }
}

/// The payments group's sys_id on the stand-in.
const PAYMENTS_GROUP: &str = "0a52d3dcd7011200f2d224837e6103f2";

/// A site's own impact and urgency per severity, a category per kind and an assignment group
/// per team: written so, and read back through the same maps (a change made in ServiceNow, an
/// incident made there).
async fn impact_urgency_categories_and_groups_follow_the_maps(backend: Backend) {
    let sn = ServiceNow::start_with(&["--group", PAYMENTS_GROUP]).await;
    let url = sn.url().to_owned();
    let s = TestServer::start_with(backend, move |c, _| {
        c.connectors = vec![toml::from_str(&format!(
            "name = \"servicenow\"\ntype = \"servicenow\"\nurl = \"{url}\"\n\
             username = \"opsdesk\"\npassword = \"password-opsdesk\"\nqueue = \"incident\"\n\
             poll_seconds = 1\nimport_new = true\n\
             [priority_map]\nSEV3 = \"2,3\"\nSEV4 = \"1,3\"\n\
             [kind_map]\nincident = \"software\"\nquestion = \"inquiry\"\n\
             [team_map]\npayments = \"{PAYMENTS_GROUP}\"\n"
        ))
        .unwrap()];
    })
    .await;

    // A payments incident at SEV3, pushed by hand: the group, the category, impact 2 and
    // urgency 3 as mapped (the default matrix would write 2 and 2; ServiceNow computes
    // priority 4 from this pair).
    let r = s
        .post(
            "/api/v1/tickets",
            json!({"title": "Refunds are slow", "kind": "incident", "severity": "SEV3", "team": "payments"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_i64().unwrap();
    push(&s, id).await;
    let inc = remote_id(&s, id).await;
    let i = sn.incident(&inc).await;
    assert_eq!(i["assignment_group"], PAYMENTS_GROUP, "{i:#}");
    assert_eq!(i["category"], "software");
    assert_eq!((&i["impact"], &i["urgency"]), (&json!("2"), &json!("3")));
    assert_eq!(i["priority"], "4");
    // Read back as SEV3 by its pair, not as the priority 4 ServiceNow computed: nothing moves.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(ticket(&s, id).await["severity"], "SEV3");
    assert_eq!(link_of(&s, id).await.unwrap()["state"], "linked");

    // Alice sets the pair SEV4 maps to (ServiceNow computes priority 3 from it): SEV4 in
    // opsdesk.
    sn.patch(&inc, json!({"impact": "1", "urgency": "3"})).await;
    eventually("impact 1, urgency 3 arrives as SEV4", || async {
        (ticket(&s, id).await["severity"] == "SEV4").then_some(())
    })
    .await;

    // An inquiry for the payments group made by Alice with the pair SEV3 maps to: imported
    // as a payments question at SEV3.
    sn.call(
        "alice",
        Method::POST,
        "incident",
        Some(json!({"short_description": "Which card for travel?", "impact": "2", "urgency": "3", "category": "inquiry", "assignment_group": PAYMENTS_GROUP})),
    )
    .await;
    let imported = eventually("the inquiry imported", || async {
        let list = s.get("/api/v1/tickets?q=travel").await.body;
        list["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(imported["team"], "payments", "{imported:#}");
    assert_eq!(imported["kind"], "question");
    assert_eq!(imported["severity"], "SEV3");
}
