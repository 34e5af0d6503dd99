//! Email with requesters, end to end against real peers: a Dovecot IMAP inbox opsdesk reads
//! and an SMTP server (aiosmtpd) that keeps what opsdesk sends. A person writes to the support
//! inbox and gets a receipt; an agent answers in opsdesk and the person gets a threaded email;
//! the person's reply lands on the ticket once, however often it is read; an out-of-office
//! answer does nothing; a stranger's reply is held; a reply to a resolved ticket reopens it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{on_both_backends, Backend, TestServer};
use crate::peers::{Dovecot, Smtp};

on_both_backends!(
    a_conversation_by_email_lands_on_one_ticket,
    requesters_get_letters_for_requests_raised_in_the_desk,
    files_in_mail_come_with_the_ticket,
    admins_rewrite_the_letters,
    a_burst_of_mail_is_all_taken_at_once,
);

const WAIT: Duration = Duration::from_secs(30);

async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start(backend: Backend, smtp: &Smtp, imap: Option<&Dovecot>) -> TestServer {
    let smtp_port = smtp.port;
    let imap_port = imap.map(|d| d.port);
    TestServer::start_with(backend, move |config, _| {
        config.notify.base_url = Some("https://desk.example.com".into());
        config.notify.smtp = Some(
            toml::from_str(&format!(
                "host = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\nfrom = \"opsdesk <desk@desk.example.com>\"\n"
            ))
            .unwrap(),
        );
        config.email.letters = Some(true);
        config.email.reply_to = Some("support@desk.example.com".into());
        if let Some(port) = imap_port {
            config.email.inboxes = vec![toml::from_str(&format!(
                "name = \"support\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
                 username = \"support\"\npassword = \"secret\"\nmove_to = \"Taken\"\n\
                 create_requesters = true\npoll_seconds = 1\n"
            ))
            .unwrap()];
        }
    })
    .await
}

/// The ticket the mail log ties `message_id` to, once the message was taken.
async fn mail_entry(server: &TestServer, message_id: &str) -> Value {
    until(&format!("{message_id} in the mail log"), || async {
        let r = server.get("/api/v1/mail?direction=in").await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["message_id"] == message_id)
            .cloned()
    })
    .await
}

async fn letters(smtp: &Smtp, n: usize) -> Vec<Value> {
    until(&format!("{n} letters"), || async {
        let m = smtp.messages();
        (m.len() >= n).then_some(m)
    })
    .await
}

async fn resolve(server: &TestServer, key: &str) {
    let r = server
        .patch(
            &format!("/api/v1/tickets/{key}"),
            None,
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn comments(server: &TestServer, key: &str) -> Vec<Value> {
    let r = server.get(&format!("/api/v1/tickets/{key}/comments")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body.as_array().unwrap().clone()
}

async fn a_conversation_by_email_lands_on_one_ticket(backend: Backend) {
    let smtp = Smtp::start().await;
    let imap = Dovecot::start().await;
    let server = start(backend, &smtp, Some(&imap)).await;

    // A person opsdesk does not know writes to the support inbox.
    imap.deliver(
        "support",
        "From: Rob Smith <rob@example.com>\nTo: support@desk.example.com\nSubject: VPN down since 9:00\n\
         Message-ID: <first@mail.example.com>\nDate: Mon, 7 Dec 2026 09:05:00 +0000\n\n\
         The VPN refuses my password since this morning.\n\n-- \nRob Smith\nACME Ltd\n",
    )
    .await;
    let entry = mail_entry(&server, "first@mail.example.com").await;
    assert_eq!(entry["outcome"], "ticket", "{entry}");
    let id = entry["ticket_id"].as_i64().unwrap();
    let key = format!("OPS-{id}");
    let ticket = server.get(&format!("/api/v1/tickets/{key}")).await.body;
    assert_eq!(ticket["title"], "VPN down since 9:00");
    assert_eq!(ticket["requester"], "rob@example.com");
    assert_eq!(ticket["source"], "email");
    assert!(ticket["description"]
        .as_str()
        .unwrap()
        .contains("refuses my password"));
    // They became a requester, named as their mail says.
    let people = server
        .call(
            reqwest::Method::GET,
            "/api/v1/users",
            Some(&server.admin),
            None,
        )
        .await
        .body;
    let rob = people
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["email"] == "rob@example.com")
        .unwrap();
    assert_eq!(rob["role"], "requester");
    assert_eq!(rob["display_name"], "Rob Smith");
    // The inbox keeps nothing it took: it moved the message, it did not delete it.
    until("the message moved", || async {
        (imap.count("support", "INBOX").await == 0 && imap.count("support", "Taken").await == 1)
            .then_some(())
    })
    .await;

    // A receipt, threaded to their message, marked automatic, with replies to the inbox.
    let sent = letters(&smtp, 1).await;
    let receipt = &sent[0];
    assert_eq!(receipt["to"], json!(["rob@example.com"]));
    assert_eq!(receipt["subject"], format!("[{key}] VPN down since 9:00"));
    assert_eq!(receipt["in_reply_to"], "<first@mail.example.com>");
    assert_eq!(receipt["auto_submitted"], "auto-replied");
    assert_eq!(receipt["reply_to"], json!(["support@desk.example.com"]));
    let text = receipt["parts"]["text/plain"].as_str().unwrap();
    assert!(
        text.contains(&format!("https://desk.example.com/tickets/{key}")),
        "{text}"
    );

    // An agent answers publicly, then writes an internal note: only the answer goes out.
    let r = server
        .post(
            &format!("/api/v1/tickets/{key}/comments"),
            json!({"body": "Your account was locked; I unlocked it.", "public": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = server
        .post(
            &format!("/api/v1/tickets/{key}/comments"),
            json!({"body": "INTERNAL: third lockout this month", "public": false}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sent = letters(&smtp, 2).await;
    let reply = &sent[1];
    assert_eq!(reply["subject"], format!("Re: [{key}] VPN down since 9:00"));
    assert_eq!(reply["in_reply_to"], "<first@mail.example.com>");
    assert!(reply["references"]
        .as_str()
        .unwrap()
        .contains("<first@mail.example.com>"));
    assert_eq!(reply["auto_submitted"], Value::Null);
    let text = reply["parts"]["text/plain"].as_str().unwrap();
    assert!(
        text.contains("Your account was locked; I unlocked it."),
        "{text}"
    );
    let reply_id = reply["message_id"]
        .as_str()
        .unwrap()
        .trim_matches(|c| c == '<' || c == '>')
        .to_owned();

    // The person answers from their mail client: quoted history and signature are trimmed.
    let answer = format!(
        "From: rob@example.com\nTo: support@desk.example.com\nSubject: Re: [{key}] VPN down since 9:00\n\
         Message-ID: <second@mail.example.com>\nIn-Reply-To: <{reply_id}>\nReferences: <first@mail.example.com> <{reply_id}>\n\n\
         Works again, thank you!\n\nOn Mon, 7 Dec 2026 at 10:00, opsdesk <desk@desk.example.com> wrote:\n> Your account was locked; I unlocked it.\n"
    );
    imap.deliver("support", &answer).await;
    let entry = mail_entry(&server, "second@mail.example.com").await;
    assert_eq!(entry["outcome"], "comment", "{entry}");
    assert_eq!(entry["ticket_id"], id);
    // The same message again (a resend, a second copy in the inbox): taken once.
    imap.deliver("support", &answer).await;
    until("the copy moved", || async {
        (imap.count("support", "Taken").await == 3).then_some(())
    })
    .await;
    let all = comments(&server, &key).await;
    let from_rob: Vec<_> = all
        .iter()
        .filter(|c| c["author"] == "user:rob@example.com")
        .collect();
    assert_eq!(from_rob.len(), 1, "{all:?}");
    assert_eq!(from_rob[0]["body"], "Works again, thank you!");
    assert_eq!(from_rob[0]["public"], true);

    // An out-of-office answer to the reply does nothing and is never answered.
    imap.deliver(
        "support",
        &format!(
            "From: rob@example.com\nTo: support@desk.example.com\nSubject: Automatic reply: Re: [{key}] VPN down\n\
             Message-ID: <ooo@mail.example.com>\nIn-Reply-To: <{reply_id}>\nAuto-Submitted: auto-replied\n\n\
             I am out of the office until Monday.\n"
        ),
    )
    .await;
    let entry = mail_entry(&server, "ooo@mail.example.com").await;
    assert_eq!(entry["outcome"], "ignored", "{entry}");
    assert_eq!(comments(&server, &key).await.len(), all.len());

    // Someone else answering the ticket is held for an agent, not added to it.
    imap.deliver(
        "support",
        &format!(
            "From: eve@example.net\nTo: support@desk.example.com\nSubject: Re: [{key}] VPN down\n\
             Message-ID: <eve@example.net>\n\nPlease close this ticket.\n"
        ),
    )
    .await;
    let entry = mail_entry(&server, "eve@example.net").await;
    assert_eq!(entry["outcome"], "held", "{entry}");
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .contains("not its requester"),
        "{entry}"
    );
    let held = server.get("/api/v1/mail?outcome=held").await.body;
    assert_eq!(held.as_array().unwrap().len(), 1, "{held}");
    assert_eq!(comments(&server, &key).await.len(), all.len());

    // Resolved: the person is told, and a reply reopens the ticket.
    resolve(&server, &key).await;
    let sent = letters(&smtp, 3).await;
    assert_eq!(
        sent[2]["subject"],
        format!("[{key}] Resolved: VPN down since 9:00")
    );
    assert_eq!(sent[2]["auto_submitted"], "auto-generated");
    // It answers the requester's newest message: not the stranger's held one.
    assert_eq!(sent[2]["in_reply_to"], "<second@mail.example.com>");
    let resolved_id = sent[2]["message_id"]
        .as_str()
        .unwrap()
        .trim_matches(|c| c == '<' || c == '>')
        .to_owned();
    imap.deliver(
        "support",
        &format!(
            "From: rob@example.com\nTo: support@desk.example.com\nSubject: Re: [{key}] Resolved: VPN down\n\
             Message-ID: <third@mail.example.com>\nIn-Reply-To: <{resolved_id}>\n\nIt broke again.\n"
        ),
    )
    .await;
    let entry = mail_entry(&server, "third@mail.example.com").await;
    assert_eq!(entry["outcome"], "comment", "{entry}");
    let ticket = server.get(&format!("/api/v1/tickets/{key}")).await.body;
    assert_eq!(ticket["status"], "in_progress", "{ticket}");
    let history = server
        .get(&format!("/api/v1/tickets/{key}/history"))
        .await
        .body;
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["action"] == "ticket.reopened"),
        "{history}"
    );

    // Nothing more went out than the three letters: not the internal note, not an answer to
    // the out-of-office message, not to the stranger.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = smtp.messages();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(
        sent.iter().all(|m| m["to"] == json!(["rob@example.com"])),
        "{sent:?}"
    );
    assert!(!sent.iter().any(|m| m["parts"]["text/plain"]
        .as_str()
        .unwrap_or("")
        .contains("INTERNAL")));
    server.stop().await;
}

async fn requesters_get_letters_for_requests_raised_in_the_desk(backend: Backend) {
    let smtp = Smtp::start().await;
    let server = start(backend, &smtp, None).await;
    // An agent files a request for a person; the person gets a receipt.
    let t = server
        .ticket(json!({"title": "New laptop", "kind": "service_request", "severity": "SEV4", "requester": "ann@example.com"}))
        .await;
    let key = t["key"].as_str().unwrap().to_owned();
    let sent = letters(&smtp, 1).await;
    assert_eq!(sent[0]["subject"], format!("[{key}] New laptop"));
    assert_eq!(sent[0]["to"], json!(["ann@example.com"]));
    // The letter is in the ticket's delivery log, like every notification (recorded as
    // delivered just after the SMTP server has it).
    crate::emergency::eventually("the letter recorded as delivered", || async {
        let deliveries = server
            .get(&format!("/api/v1/tickets/{key}/deliveries"))
            .await
            .body;
        deliveries
            .as_array()?
            .iter()
            .find(|d| d["event"] == "letter.received" && d["state"] == "delivered")
            .cloned()
    })
    .await;

    // A person who opted out of receipts gets none, but still hears when an agent answers.
    crate::common::add_local_user(
        &server.db.desk().await,
        "bo@example.com",
        opsdesk_domain::Role::Requester,
    )
    .await;
    let (b, _) = crate::signin::sign_in(&server, "bo@example.com").await;
    let csrf = crate::signin::session_csrf(&server, &b).await;
    let r = b
        .put(server.url("/api/v1/me/receipts"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"receipts": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r: Value = b
        .get(server.url("/api/v1/me/receipts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"receipts": false}));
    let t = server
        .ticket(json!({"title": "Monitor flickers", "kind": "incident", "severity": "SEV4", "requester": "bo@example.com"}))
        .await;
    let key = t["key"].as_str().unwrap().to_owned();
    let r = server
        .post(
            &format!("/api/v1/tickets/{key}/comments"),
            json!({"body": "Try the other cable.", "public": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sent = letters(&smtp, 2).await;
    assert_eq!(sent[1]["subject"], format!("Re: [{key}] Monitor flickers"));
    assert_eq!(sent[1]["to"], json!(["bo@example.com"]));

    // Resolved; the person answers in the desk that it is not: the ticket opens again.
    resolve(&server, &key).await;
    let sent = letters(&smtp, 3).await;
    assert_eq!(
        sent[2]["subject"],
        format!("[{key}] Resolved: Monitor flickers")
    );
    let r = b
        .post(server.url(&format!("/api/v1/tickets/{key}/comments")))
        .header("x-csrf-token", &csrf)
        .json(&json!({"body": "Still flickers with the other cable.", "public": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let t = server.get(&format!("/api/v1/tickets/{key}")).await.body;
    assert_eq!(t["status"], "in_progress", "{t}");
    // Their own comment is not mailed back to them.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(smtp.messages().len(), 3);
    server.stop().await;
}

async fn files_in_mail_come_with_the_ticket(backend: Backend) {
    use base64::Engine;
    let smtp = Smtp::start().await;
    let imap = Dovecot::start().await;
    let server = start(backend, &smtp, Some(&imap)).await;
    let png = base64::engine::general_purpose::STANDARD.encode(crate::attachments::PNG);
    let zip =
        base64::engine::general_purpose::STANDARD.encode(b"PK\x03\x04\x14\x00\x00\x00\x08\x00bomb");
    imap.deliver(
        "support",
        &format!(
            "From: Rob Smith <rob@example.com>\nTo: support@desk.example.com\nSubject: Broken dashboard\n\
             Message-ID: <files@mail.example.com>\nMIME-Version: 1.0\n\
             Content-Type: multipart/mixed; boundary=\"b1\"\n\n\
             --b1\nContent-Type: text/plain; charset=utf-8\n\nThe dashboard shows nothing, see the picture.\n\
             --b1\nContent-Type: image/png; name=\"screen.png\"\nContent-Disposition: attachment; filename=\"screen.png\"\n\
             Content-Transfer-Encoding: base64\n\n{png}\n\
             --b1\nContent-Type: text/plain; name=\"readme.txt\"\nContent-Disposition: attachment; filename=\"readme.txt\"\n\
             Content-Transfer-Encoding: base64\n\n{zip}\n\
             --b1\nContent-Type: text/plain\nContent-Disposition: attachment; filename=\"../../etc/passwd\"\n\n\
             root:x:0:0\n--b1--\n"
        ),
    )
    .await;
    let entry = mail_entry(&server, "files@mail.example.com").await;
    assert_eq!(entry["outcome"], "ticket", "{entry}");
    // The file that lied about being text is named in the log; the others came.
    let reason = entry["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("readme.txt") && reason.contains("application/zip"),
        "{entry}"
    );
    let key = format!("OPS-{}", entry["ticket_id"]);
    let files = server
        .get(&format!("/api/v1/tickets/{key}/attachments"))
        .await
        .body;
    let files = files.as_array().unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(files[0]["name"], "screen.png");
    assert_eq!(files[0]["content_type"], "image/png");
    assert_eq!(files[0]["source"], "email");
    assert_eq!(files[0]["public"], true);
    // Named as what it is: a text file.
    assert_eq!(files[1]["name"], "passwd.txt");
    let res = server
        .http
        .get(server.url(&format!(
            "/api/v1/tickets/{key}/attachments/{}",
            files[0]["id"]
        )))
        .bearer_auth(&server.agent)
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), crate::attachments::PNG);
    server.stop().await;
}

async fn admins_rewrite_the_letters(backend: Backend) {
    let smtp = Smtp::start().await;
    let server = start(backend, &smtp, None).await;
    let admin = |m: reqwest::Method, path: &'static str, body: Option<Value>| {
        server.call(m, path, Some(&server.admin), body)
    };
    let r = admin(reqwest::Method::GET, "/api/v1/mail/templates", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let kinds: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["received", "replied", "resolved"]);
    assert!(r
        .body
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["edited"] == false));
    // Only admins see or change them.
    let r = server.get("/api/v1/mail/templates").await;
    assert_eq!(r.status, 403, "{}", r.body);

    // An unknown placeholder is refused, naming where it is.
    let r = admin(
        reqwest::Method::PUT,
        "/api/v1/mail/templates/received",
        Some(json!({"subject": "[{key}] Thanks", "body": "Dear {name}, {nonsense}"})),
    )
    .await;
    r.assert_problem(422, Some("received.body"));
    let r = admin(
        reqwest::Method::PUT,
        "/api/v1/mail/templates/thanks",
        Some(json!({"subject": "x", "body": "y"})),
    )
    .await;
    r.assert_problem(404, None);
    let r = admin(
        reqwest::Method::PUT,
        "/api/v1/mail/templates/received",
        Some(json!({"subject": "[{key}] We have it: {title}", "body": "Dear {name},\n\nyour request {key} is with us.\n{url}\n"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["edited"], true);
    assert_eq!(r.body["updated_by"], "token:test-admin");

    // The next receipt is written with it.
    let t = server
        .ticket(json!({"title": "New monitor", "kind": "service_request", "severity": "SEV4", "requester": "ann@example.com"}))
        .await;
    let key = t["key"].as_str().unwrap().to_owned();
    let sent = letters(&smtp, 1).await;
    assert_eq!(
        sent[0]["subject"],
        format!("[{key}] We have it: New monitor")
    );
    assert!(
        sent[0]["parts"]["text/plain"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("your request {key} is with us")),
        "{}",
        sent[0]
    );

    // Back to the configured one; both changes are in the audit trail.
    let r = admin(
        reqwest::Method::DELETE,
        "/api/v1/mail/templates/received",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["edited"], false);
    assert_eq!(r.body["subject"], "[{key}] {title}");
    let trail = server.audit_trail().await;
    let changes = trail
        .iter()
        .filter(|e| e["action"] == "mail.template_changed")
        .count();
    assert_eq!(changes, 2);

    // The admin page rewrites them too.
    crate::common::add_local_user(
        &server.db.desk().await,
        "root@example.com",
        opsdesk_domain::Role::Admin,
    )
    .await;
    let (b, _) = crate::signin::sign_in(&server, "root@example.com").await;
    let page = server.page(&b, "/admin").await;
    assert!(
        page.contains("Letters to requesters") && page.contains("id=\"letter-resolved\""),
        "{page}"
    );
    let csrf = crate::signin::session_csrf(&server, &b).await;
    let r = b
        .post(server.url("/admin/letters/resolved"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("subject", "[{key}] Done: {title}"),
            ("body", "Solved. Reply within {reopen_days} days to reopen."),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success() || r.status().is_redirection(),
        "{}",
        r.status()
    );
    let r = admin(reqwest::Method::GET, "/api/v1/mail/templates", None).await;
    assert_eq!(r.body[2]["subject"], "[{key}] Done: {title}");
    assert_eq!(r.body[2]["updated_by"], "user:root@example.com");
    server.stop().await;
}

/// Mail that arrives while the inbox is busy taking earlier mail is taken at once too, not when
/// IDLE is next renewed.
async fn a_burst_of_mail_is_all_taken_at_once(backend: Backend) {
    let smtp = Smtp::start().await;
    let imap = Dovecot::start().await;
    let server = start(backend, &smtp, Some(&imap)).await;
    // One after another while the inbox takes them, as mail comes in a busy hour.
    let burst = 40;
    for n in 0..burst {
        imap.deliver(
            "support",
            &format!(
                "From: p{n}@example.com\nTo: support@desk.example.com\nSubject: Request {n}\n\
                 Message-ID: <burst-{n}@example.com>\n\nPlease help.\n"
            ),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    until("every message of the burst in the mail log", || async {
        let log = server
            .get("/api/v1/mail?direction=in&limit=1000")
            .await
            .body;
        let n = log
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["message_id"].as_str().unwrap_or("").starts_with("burst-"))
            .count();
        (n == burst).then_some(())
    })
    .await;
    assert_eq!(imap.count("support", "INBOX").await, 0);
    server.stop().await;
}
