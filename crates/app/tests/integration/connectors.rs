//! The Request Tracker connector against a real Request Tracker 5: tickets pushed and linked,
//! comments and status both ways exactly once, opsdesk's own changes not taken back, an
//! outage caught up, a change made on both sides kept as a conflict, and tickets made in RT
//! imported.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{add_local_user, on_both_backends, Backend, TestServer};
use crate::emergency::eventually;
use crate::peers::RequestTracker;
use opsdesk_domain::Role;

on_both_backends!(
    tickets_sync_both_ways_with_request_tracker,
    rt_tickets_are_imported_with_their_history_and_webhooks_bring_changes_at_once,
    rt_priorities_and_queues_follow_the_maps,
);

async fn rt_server(backend: Backend, rt: &RequestTracker) -> TestServer {
    let url = rt.url.clone();
    TestServer::start_with(backend, move |c, _| {
        c.connectors = vec![toml::from_str(&format!(
            "name = \"rt\"\ntype = \"request_tracker\"\nurl = \"{url}\"\n\
             username = \"opsdesk\"\npassword = \"password-opsdesk\"\nqueue = \"General\"\n\
             poll_seconds = 1\nimport_new = true\n[create_for]\nseverities = [\"SEV1\"]\n"
        ))
        .unwrap()];
    })
    .await
}

/// The ticket's first link with another system (the connector tests link to one each).
pub(crate) async fn link_of(s: &TestServer, id: i64) -> Option<Value> {
    let links = s.get(&format!("/api/v1/tickets/{id}/external")).await.body;
    links.as_array()?.first().cloned()
}

/// The remote id of the ticket's link, once the connector has made the remote ticket.
pub(crate) async fn remote_id(s: &TestServer, id: i64) -> String {
    eventually("the remote ticket to be made", || async {
        link_of(s, id).await?["remote_id"]
            .as_str()
            .map(str::to_owned)
    })
    .await
}

/// The ticket's comments, oldest first.
pub(crate) async fn comments(s: &TestServer, id: i64) -> Vec<Value> {
    s.get(&format!("/api/v1/tickets/{id}/comments"))
        .await
        .body
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub(crate) async fn ticket(s: &TestServer, id: i64) -> Value {
    s.get(&format!("/api/v1/tickets/{id}")).await.body
}

async fn tickets_sync_both_ways_with_request_tracker(backend: Backend) {
    let mut rt = RequestTracker::start().await;
    let s = rt_server(backend, &rt).await;

    // The connector is listed, its password never shown.
    let listed = s.get("/api/v1/connectors").await.body;
    assert_eq!(listed[0]["name"], "rt");
    assert_eq!(listed[0]["password"], "***");

    // A SEV1 ticket goes to RT by itself, with its key in the subject.
    let r = s
        .post(
            "/api/v1/tickets",
            json!({"title": "Checkout is down", "description": "500s everywhere", "kind": "incident", "severity": "SEV1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sev1 = r.body["id"].as_i64().unwrap();
    let key = r.body["key"].as_str().unwrap().to_owned();
    let rt1 = remote_id(&s, sev1).await;
    let t = rt.ticket(&rt1).await;
    assert_eq!(t["Subject"], format!("[{key}] Checkout is down"));
    assert_eq!(t["Priority"], "90");
    assert_eq!(rt.messages(&rt1, "Create").await, vec!["500s everywhere"]);
    let link = link_of(&s, sev1).await.unwrap();
    assert_eq!(link["state"], "linked");
    assert_eq!(
        link["remote_url"],
        format!("{}/Ticket/Display.html?id={rt1}", rt.url)
    );

    // A SEV3 ticket is not pushed by itself; pushed by hand it is, once.
    let r = s
        .post(
            "/api/v1/tickets",
            json!({"title": "New laptop for Bo", "kind": "service_request", "severity": "SEV3"}),
        )
        .await;
    let sev3 = r.body["id"].as_i64().unwrap();
    let key3 = r.body["key"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(link_of(&s, sev3).await.is_none());
    let pushed = s
        .post(
            &format!("/api/v1/tickets/{sev3}/external"),
            json!({"connector": "rt"}),
        )
        .await;
    assert_eq!(pushed.status, 201, "{}", pushed.body);
    let rt3 = pushed.body["remote_id"]
        .as_str()
        .expect("made at once")
        .to_owned();
    let again = s
        .post(
            &format!("/api/v1/tickets/{sev3}/external"),
            json!({"connector": "rt"}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["remote_id"], rt3.as_str());
    let unknown = s
        .post(
            &format!("/api/v1/tickets/{sev3}/external"),
            json!({"connector": "jira"}),
        )
        .await;
    unknown.assert_problem(422, Some("connector"));
    // A requester-less viewer may look but not push.
    let r = s
        .call(
            Method::POST,
            &format!("/api/v1/tickets/{sev3}/external"),
            Some(&s.viewer),
            Some(json!({"connector": "rt"})),
        )
        .await;
    assert_eq!(r.status, 403);

    // Acknowledged here while RT still shows it new: open there.
    let r = s
        .patch(
            &format!("/api/v1/tickets/{sev3}"),
            None,
            json!({"status": "acknowledged"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("the laptop request open in RT", || async {
        (rt.ticket(&rt3).await["Status"] == "open").then_some(())
    })
    .await;
    assert_eq!(link_of(&s, sev3).await.unwrap()["detail"], "");

    // Replies and internal notes go to RT as correspondence and comments.
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
    eventually("the reply and the note in RT", || async {
        let c = rt.messages(&rt1, "Correspond").await;
        let n = rt.messages(&rt1, "Comment").await;
        (c == ["We are on it"] && n == ["Looks like the database"]).then_some(())
    })
    .await;

    // Alice answers in RT: a public comment, once; her note stays internal.
    rt.call(
        "alice",
        Method::POST,
        &format!("ticket/{rt1}/correspond"),
        Some(json!({"Content": "Disk replaced", "ContentType": "text/plain"})),
    )
    .await;
    rt.call(
        "alice",
        Method::POST,
        &format!("ticket/{rt1}/comment"),
        Some(json!({"Content": "Vendor ticket 7781", "ContentType": "text/plain"})),
    )
    .await;
    let mirrored = eventually("Alice's messages in opsdesk", || async {
        let c = comments(&s, sev1).await;
        (c.len() >= 4).then_some(c)
    })
    .await;
    let from_alice: Vec<(&str, bool)> = mirrored
        .iter()
        .filter(|c| c["author"] == "rt:alice")
        .map(|c| (c["body"].as_str().unwrap(), c["public"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        from_alice,
        [("Disk replaced", true), ("Vendor ticket 7781", false)]
    );
    // Several passes later, still once each, and opsdesk's own messages did not come back.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let c = comments(&s, sev1).await;
    assert_eq!(c.len(), 4, "{c:#?}");
    assert_eq!(rt.messages(&rt1, "Correspond").await.len(), 2);

    // Resolved in RT: resolved in opsdesk, by Alice.
    rt.call(
        "alice",
        Method::PUT,
        &format!("ticket/{rt1}"),
        Some(json!({"Status": "resolved"})),
    )
    .await;
    eventually("the ticket resolved", || async {
        let t = s.get(&format!("/api/v1/tickets/{sev1}")).await.body;
        (t["status"] == "resolved").then_some(())
    })
    .await;
    let history = s.get(&format!("/api/v1/tickets/{sev1}/history")).await.body;
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["actor"] == "rt:alice" && h["changes"]["status"]["after"] == "resolved"),
        "{history:#}"
    );

    // Reopened in opsdesk: open in RT.
    let r = s
        .patch(
            &format!("/api/v1/tickets/{sev1}"),
            None,
            json!({"status": "in_progress"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("the RT ticket open again", || async {
        (rt.ticket(&rt1).await["Status"] == "open").then_some(())
    })
    .await;

    // RT is down while the ticket changes: nothing is lost, and it arrives once RT is back.
    // Meanwhile the laptop request's title changes here, and then in RT too.
    rt.stop();
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
    let failing = eventually("the links to say RT cannot be reached", || async {
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
    rt.run().await;
    rt.call(
        "alice",
        Method::PUT,
        &format!("ticket/{rt3}"),
        Some(json!({"Subject": format!("[{key3}] New laptops for Bo and Cy")})),
    )
    .await;
    s.post(
        &format!("/api/v1/tickets/{sev3}/external"),
        json!({"connector": "rt"}),
    )
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
    // Neither side was overwritten, and the ticket says so once.
    let t = s.get(&format!("/api/v1/tickets/{sev3}")).await.body;
    assert_eq!(t["title"], "New laptop for Bo (14 inch)");
    assert_eq!(
        rt.ticket(&rt3).await["Subject"],
        format!("[{key3}] New laptops for Bo and Cy")
    );
    let notes: Vec<Value> = comments(&s, sev3)
        .await
        .into_iter()
        .filter(|c| c["body"].as_str().unwrap().starts_with("conflict") && c["public"] == false)
        .collect();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    // A person settles it by giving opsdesk RT's title: the conflict is over, RT unchanged.
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
        rt.ticket(&rt3).await["Subject"],
        format!("[{key3}] New laptops for Bo and Cy")
    );
    // The retry waits 30 s after the first failure; pushed again by hand, it does not wait.
    s.post(
        &format!("/api/v1/tickets/{sev1}/external"),
        json!({"connector": "rt"}),
    )
    .await;
    let hurried = s
        .get(&format!("/api/v1/tickets/{sev1}/external"))
        .await
        .body;
    assert_eq!(hurried[0]["remote_id"], rt1.as_str());
    let done = eventually("the message sent after the outage", || async {
        let c = rt.messages(&rt1, "Correspond").await;
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

    // Made in RT by Alice: imported as an opsdesk ticket, linked to it.
    let made = rt
        .call("alice", Method::POST, "ticket", Some(json!({"Queue": "General", "Subject": "VPN drops every hour", "Content": "Since Monday.", "ContentType": "text/plain", "Priority": 70})))
        .await;
    let rt_new = made["id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| made["id"].to_string());
    let imported = eventually("the RT ticket imported", || async {
        let list = s.get("/api/v1/tickets?q=VPN").await.body;
        list["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(imported["title"], "VPN drops every hour");
    assert_eq!(imported["severity"], "SEV2");
    let id = imported["id"].as_i64().unwrap();
    let t = s.get(&format!("/api/v1/tickets/{id}")).await.body;
    assert_eq!(t["description"], "Since Monday.");
    assert_eq!(link_of(&s, id).await.unwrap()["remote_id"], rt_new.as_str());
    // Once only, however many passes see it.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let list = s.get("/api/v1/tickets?q=VPN").await.body;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // A title longer than RT keeps: the subject is cut to RT's 200 characters, and the link
    // goes on syncing (a reply still arrives).
    let long_title = format!("Disk {}", "x".repeat(290));
    let r = s
        .post(
            "/api/v1/tickets",
            json!({"title": long_title, "kind": "incident", "severity": "SEV1"}),
        )
        .await;
    let long = r.body["id"].as_i64().unwrap();
    let rt_long = remote_id(&s, long).await;
    assert_eq!(
        rt.ticket(&rt_long).await["Subject"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        200
    );
    s.post(
        &format!("/api/v1/tickets/{long}/comments"),
        json!({"body": "Long one, looking", "public": true}),
    )
    .await;
    eventually("the reply on the long-titled ticket in RT", || async {
        (rt.messages(&rt_long, "Correspond").await == ["Long one, looking"]).then_some(())
    })
    .await;
    let l = link_of(&s, long).await.unwrap();
    assert_eq!(
        (l["attempts"].as_i64(), l["detail"].as_str()),
        (Some(0), Some("")),
        "{l:#}"
    );

    // On the ticket page, staff see the RT ticket and send another ticket from there.
    let desk = s.db.desk().await;
    add_local_user(&desk, "ana@example.com", Role::Agent).await;
    let (ana, _) = crate::signin::sign_in(&s, "ana@example.com").await;
    let page = ana
        .get(s.url(&format!("/tickets/{key}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("In other systems"), "{page}");
    assert!(
        page.contains(&format!("{}/Ticket/Display.html?id={rt1}", rt.url)),
        "{page}"
    );
    let r = s
        .post(
            "/api/v1/tickets",
            json!({"title": "Printer toner", "kind": "service_request", "severity": "SEV4"}),
        )
        .await;
    let sev4 = r.body["id"].as_i64().unwrap();
    let key4 = r.body["key"].as_str().unwrap().to_owned();
    let csrf = crate::signin::session_csrf(&s, &ana).await;
    let r = ana
        .post(s.url(&format!("/tickets/{key4}/external")))
        .form(&[("csrf", csrf.as_str()), ("connector", "rt")])
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success() || r.status().is_redirection(),
        "{}",
        r.status()
    );
    let rt4 = remote_id(&s, sev4).await;
    assert_eq!(
        rt.ticket(&rt4).await["Subject"],
        format!("[{key4}] Printer toner")
    );
}

const WEBHOOK_SECRET: &str = "rt-webhook-secret-0123456789";

fn rt_id(made: &Value) -> String {
    made["id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| made["id"].to_string())
}

async fn rt_tickets_are_imported_with_their_history_and_webhooks_bring_changes_at_once(
    backend: Backend,
) {
    let rt = RequestTracker::start().await;
    // Tickets that were in RT before opsdesk: one open with a reply and a comment, one
    // resolved.
    let vpn = rt_id(&rt
        .call("alice", Method::POST, "ticket", Some(json!({"Queue": "General", "Subject": "VPN drops every hour", "Content": "Since Monday.", "ContentType": "text/plain", "Priority": 70})))
        .await);
    rt.call(
        "alice",
        Method::POST,
        &format!("ticket/{vpn}/correspond"),
        Some(json!({"Content": "Which client version?", "ContentType": "text/plain"})),
    )
    .await;
    rt.call(
        "alice",
        Method::POST,
        &format!("ticket/{vpn}/comment"),
        Some(json!({"Content": "Probably the new firewall", "ContentType": "text/plain"})),
    )
    .await;
    let mouse = rt_id(&rt
        .call("alice", Method::POST, "ticket", Some(json!({"Queue": "General", "Subject": "Mouse broken", "Content": "Left button.", "ContentType": "text/plain", "Priority": 10})))
        .await);
    rt.call(
        "alice",
        Method::PUT,
        &format!("ticket/{mouse}"),
        Some(json!({"Status": "resolved"})),
    )
    .await;

    let connector = format!(
        "[[connectors]]\nname = \"rt\"\ntype = \"request_tracker\"\nurl = \"{}\"\n\
         username = \"opsdesk\"\npassword = \"password-opsdesk\"\nqueue = \"General\"\n\
         poll_seconds = 3600\nimport_new = true\nwebhook_secret = \"{WEBHOOK_SECRET}\"\n",
        rt.url
    );
    let for_server = connector.clone();
    let s = TestServer::start_with(backend, move |c, _| {
        #[derive(serde::Deserialize)]
        struct Connectors {
            connectors: Vec<opsdesk_domain::connector::ConnectorSpec>,
        }
        c.connectors = toml::from_str::<Connectors>(&for_server)
            .unwrap()
            .connectors;
    })
    .await;

    // `opsdesk import rt`, next to the running server, on the same database.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opsdesk.toml");
    std::fs::write(&config, &connector).unwrap();
    let import = |args: Vec<String>| {
        let mut cmd = crate::cli::opsdesk(dir.path(), &s.db.url);
        cmd.arg("--config").arg(&config).arg("import").args(args);
        tokio::task::spawn_blocking(move || {
            let out = cmd.output().unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let args = || {
        vec![
            "rt".to_owned(),
            "--connector".into(),
            "rt".into(),
            "--query".into(),
            format!("Queue = 'General' AND (id = {vpn} OR id = {mouse})"),
        ]
    };
    let (code, out, err) = import(args()).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("imported 2, unchanged 0, skipped 0"),
        "{out}{err}"
    );
    assert!(
        err.contains(&format!("Request Tracker ticket {vpn}: imported as OPS-")),
        "{err}"
    );

    let list = s.get("/api/v1/tickets?q=VPN").await.body;
    let t = list["items"][0].clone();
    assert_eq!(t["title"], "VPN drops every hour");
    assert_eq!(t["severity"], "SEV2");
    assert_eq!(t["source"], "import.request_tracker");
    let id = t["id"].as_i64().unwrap();
    let full = s.get(&format!("/api/v1/tickets/{id}")).await.body;
    assert_eq!(full["description"], "Since Monday.");
    // The conversation, with RT's authors and times.
    let cs = comments(&s, id).await;
    let seen: Vec<(&str, &str, bool)> = cs
        .iter()
        .map(|c| {
            (
                c["author"].as_str().unwrap(),
                c["body"].as_str().unwrap(),
                c["public"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("rt:alice", "Which client version?", true),
            ("rt:alice", "Probably the new firewall", false)
        ]
    );
    let history = rt
        .call(
            "root",
            Method::GET,
            &format!("ticket/{vpn}/history?fields=Type,Created&per_page=100"),
            None,
        )
        .await;
    let rt_times: Vec<chrono::DateTime<chrono::Utc>> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["Type"] == "Correspond")
        .map(|t| t["Created"].as_str().unwrap().parse().unwrap())
        .collect();
    let replied: chrono::DateTime<chrono::Utc> =
        cs[0]["created_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(replied, rt_times[0]);
    // The audit trail says it was imported, from where, and who made it there.
    let audit = s.get(&format!("/api/v1/tickets/{id}/history")).await.body;
    let imported = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["action"] == "ticket.imported")
        .unwrap_or_else(|| panic!("{audit:#}"));
    assert_eq!(
        imported["changes"]["imported_from"]["after"]["id"],
        vpn.as_str()
    );
    assert_eq!(
        imported["changes"]["imported_from"]["after"]["created_by"],
        "rt:alice"
    );
    assert_eq!(link_of(&s, id).await.unwrap()["remote_id"], vpn.as_str());
    let m = s.get("/api/v1/tickets?q=Mouse").await.body;
    assert_eq!(m["items"][0]["status"], "resolved");
    assert_eq!(m["items"][0]["severity"], "SEV5");

    // Again: nothing changes.
    let (code, out, err) = import(args()).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("imported 0, unchanged 2, skipped 0"),
        "{out}{err}"
    );
    assert_eq!(comments(&s, id).await.len(), 2);
    // Nothing imported went back to RT.
    assert_eq!(
        rt.messages(&vpn, "Correspond").await,
        vec!["Which client version?"]
    );

    // The webhook: with polling an hour apart, a reply in RT arrives when the scrip calls.
    let hook = s.url("/api/v1/connectors/rt/webhook");
    let call = |secret: &'static str, body: Value| {
        s.http
            .post(hook.clone())
            .header("X-Opsdesk-Webhook-Secret", secret)
            .json(&body)
            .send()
    };
    // The synced link settles first (the import's links are due at once).
    eventually("the imported link synced", || async {
        link_of(&s, id).await?["last_synced_at"]
            .as_str()
            .map(|_| ())
    })
    .await;
    rt.call(
        "alice",
        Method::POST,
        &format!("ticket/{vpn}/correspond"),
        Some(json!({"Content": "3.2.1 on Windows", "ContentType": "text/plain"})),
    )
    .await;
    let r = call("wrong-secret", json!({"ticket": vpn})).await.unwrap();
    assert_eq!(r.status(), 403);
    let r = call(WEBHOOK_SECRET, json!({"nothing": 1})).await.unwrap();
    assert_eq!(r.status(), 403);
    let r = s
        .http
        .post(s.url("/api/v1/connectors/nope/webhook"))
        .header("X-Opsdesk-Webhook-Secret", WEBHOOK_SECRET)
        .json(&json!({"ticket": vpn}))
        .send()
        .await
        .unwrap();
    // Refused like a wrong secret: which connectors exist is not told.
    assert_eq!(r.status(), 403);
    let r = call(
        WEBHOOK_SECRET,
        json!({"ticket": vpn.parse::<i64>().unwrap()}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let started = std::time::Instant::now();
    eventually("the reply brought by the webhook", || async {
        comments(&s, id)
            .await
            .iter()
            .any(|c| c["body"] == "3.2.1 on Windows")
            .then_some(())
    })
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // Called twice for the same change: still once.
    let r = call(WEBHOOK_SECRET, json!({"ticket": vpn})).await.unwrap();
    assert_eq!(r.status(), 202);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        comments(&s, id)
            .await
            .iter()
            .filter(|c| c["body"] == "3.2.1 on Windows")
            .count(),
        1
    );

    // A ticket made in RT now: the webhook brings it in at once (import_new).
    let printer = rt_id(&rt
        .call("alice", Method::POST, "ticket", Some(json!({"Queue": "General", "Subject": "Printer jammed", "Content": "Floor 2.", "ContentType": "text/plain", "Priority": 30})))
        .await);
    let r = call(WEBHOOK_SECRET, json!({"ticket": printer}))
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let p = eventually("the printer ticket imported by the webhook", || async {
        s.get("/api/v1/tickets?q=Printer").await.body["items"]
            .as_array()?
            .first()
            .cloned()
    })
    .await;
    assert_eq!(p["severity"], "SEV4");
}

/// A site where 1 is RT's most urgent priority and payments has a queue of its own: tickets
/// go to the team's queue with the mapped priority, and a priority set in RT or a ticket made in
/// the payments queue is read back through the same maps.
async fn rt_priorities_and_queues_follow_the_maps(backend: Backend) {
    let rt = RequestTracker::start().await;
    let queue = rt
        .call(
            "root",
            Method::POST,
            "queue",
            Some(json!({"Name": "Payments"})),
        )
        .await;
    let payments_queue = rt_id(&queue);
    let url = rt.url.clone();
    let s = TestServer::start_with(backend, move |c, _| {
        c.connectors = vec![toml::from_str(&format!(
            "name = \"rt\"\ntype = \"request_tracker\"\nurl = \"{url}\"\n\
             username = \"opsdesk\"\npassword = \"password-opsdesk\"\nqueue = \"General\"\n\
             poll_seconds = 1\nimport_new = true\n[create_for]\nseverities = [\"SEV2\"]\n\
             [priority_map]\nSEV1 = \"1\"\nSEV2 = \"2\"\nSEV3 = \"3\"\nSEV4 = \"4\"\nSEV5 = \"5\"\n\
             [team_map]\npayments = \"Payments\"\n"
        ))
        .unwrap()];
    })
    .await;

    // A payments SEV2: in the Payments queue at priority 2.
    let r = s
        .post(
            "/api/v1/tickets",
            json!({"title": "Card payments fail", "kind": "incident", "severity": "SEV2", "team": "payments"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_i64().unwrap();
    let rt_ticket = remote_id(&s, id).await;
    let t = rt.ticket(&rt_ticket).await;
    assert_eq!(rt_id(&t["Queue"]), payments_queue, "{t:#}");
    assert_eq!(t["Priority"].to_string().trim_matches('"'), "2");

    // Alice makes it priority 1 in RT: SEV1 in opsdesk.
    rt.call(
        "alice",
        Method::PUT,
        &format!("ticket/{rt_ticket}"),
        Some(json!({"Priority": 1})),
    )
    .await;
    eventually("priority 1 arrives as SEV1", || async {
        (ticket(&s, id).await["severity"] == "SEV1").then_some(())
    })
    .await;

    // A ticket Alice makes in the Payments queue at priority 4: a payments SEV4 in opsdesk.
    rt.call("alice", Method::POST, "ticket", Some(json!({"Queue": "Payments", "Subject": "Refund stuck", "Content": "Since Friday.", "ContentType": "text/plain", "Priority": 4})))
        .await;
    let imported = eventually("the Payments ticket imported", || async {
        let list = s.get("/api/v1/tickets?q=Refund").await.body;
        list["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(imported["team"], "payments", "{imported:#}");
    assert_eq!(imported["severity"], "SEV4");
}
