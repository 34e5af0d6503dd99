//! Files on tickets through the API and the pages: uploaded, listed, downloaded only by those
//! who may see them, typed by their content, refused when they lie about it, audited both
//! ways; kept on disk by default and in S3 (moto) when configured.

use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{add_local_user, on_both_backends, Backend, Reply, TestServer};
use crate::peers::Moto;
use opsdesk_domain::Role;

on_both_backends!(
    files_go_up_and_come_down_whole_and_audited,
    files_that_lie_or_are_too_large_are_refused_and_nothing_is_kept,
    requesters_see_only_their_public_files,
    files_come_with_a_new_request_and_a_reply_from_the_pages,
    files_are_kept_in_s3_when_configured,
);

/// A real 1×1 PNG.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82";
const ZIP: &[u8] = b"PK\x03\x04\x14\x00\x00\x00\x08\x00\x00\x00!\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08\x00\x00\x00bomb.txt";

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn file(name: &str, content_type: Option<&str>, bytes: &[u8]) -> Part {
    let part = Part::bytes(bytes.to_vec()).file_name(name.to_owned());
    match content_type {
        Some(t) => part.mime_str(t).unwrap(),
        None => part,
    }
}

async fn upload(s: &TestServer, token: &str, key: &str, form: Form) -> Reply {
    let r = s
        .http
        .post(s.url(&format!("/api/v1/tickets/{key}/attachments")))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    Reply::from(r).await
}

async fn download(s: &TestServer, token: &str, url: &str) -> reqwest::Response {
    s.http
        .get(s.url(url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn files(s: &TestServer, token: &str, key: &str) -> Vec<Value> {
    let r = s
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/tickets/{key}/attachments"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body.as_array().unwrap().clone()
}

async fn new_ticket(s: &TestServer) -> String {
    s.ticket(json!({"title": "Checkout fails", "kind": "incident", "severity": "SEV3"}))
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn files_go_up_and_come_down_whole_and_audited(backend: Backend) {
    let s = TestServer::start(backend).await;
    let key = new_ticket(&s).await;
    let log = b"2026-12-07T10:00:00Z ERROR checkout: timeout after 30s\n".repeat(100);
    let form = Form::new()
        .part("file", file("screen shot.png", Some("image/png"), PNG))
        .part("file", file("../../etc/app.log", None, &log))
        .text("public", "false")
        .text("to_case", "true");
    let r = upload(&s, &s.agent, &key, form).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let up = r.body.as_array().unwrap().clone();
    assert_eq!(up.len(), 2);
    assert_eq!(up[0]["name"], "screen shot.png");
    assert_eq!(up[0]["content_type"], "image/png");
    assert_eq!(up[0]["size"], PNG.len());
    assert_eq!(up[0]["sha256"], sha256(PNG));
    assert_eq!(up[0]["public"], false);
    assert_eq!(up[0]["to_case"], true);
    assert_eq!(up[0]["source"], "upload");
    assert_eq!(up[0]["added_by"], "token:test-agent");
    // The folders of a name are dropped; text without a type is typed by its content.
    assert_eq!(up[1]["name"], "app.log");
    assert_eq!(up[1]["content_type"], "text/plain");
    assert_eq!(files(&s, &s.viewer, &key).await.len(), 2);

    // Each comes back byte for byte, as a download a browser will not run.
    for (f, bytes) in [(&up[0], PNG.to_vec()), (&up[1], log.clone())] {
        let url = format!("/api/v1/tickets/{key}/attachments/{}", f["id"]);
        let res = download(&s, &s.viewer, &url).await;
        assert_eq!(res.status(), 200);
        let h = res.headers().clone();
        assert!(h["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox"));
        let body = res.bytes().await.unwrap();
        assert_eq!(body.as_ref(), bytes.as_slice());
    }
    let res = download(
        &s,
        &s.viewer,
        &format!("/api/v1/tickets/{key}/attachments/{}", up[0]["id"]),
    )
    .await;
    assert_eq!(res.headers()["content-type"], "image/png");
    let res = download(
        &s,
        &s.viewer,
        &format!("/api/v1/tickets/{key}/attachments/{}", up[1]["id"]),
    )
    .await;
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("filename*=UTF-8''app%2Elog"));

    // The audit trail holds each upload and each download: file, hash, size and who.
    let history = s.get(&format!("/api/v1/tickets/{key}/history")).await.body;
    let entries = history.as_array().unwrap();
    let attached: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "ticket.attached")
        .collect();
    assert_eq!(attached.len(), 2, "{history}");
    assert_eq!(attached[0]["actor"], "token:test-agent");
    assert_eq!(
        attached[0]["changes"]["attachment"]["after"]["sha256"],
        sha256(PNG)
    );
    assert_eq!(
        attached[0]["changes"]["attachment"]["after"]["size"],
        PNG.len()
    );
    let downloads: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "attachment.downloaded")
        .collect();
    assert_eq!(downloads.len(), 4, "{history}");
    assert!(downloads.iter().all(|d| d["actor"] == "token:test-viewer"));

    // A file can be chosen for the AWS case, or not, by staff.
    let path = format!("/api/v1/tickets/{key}/attachments/{}", up[1]["id"]);
    let r = s.patch(&path, None, json!({"to_case": true})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["to_case"], true);
    let r = s
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(&s.viewer),
            Some(json!({"to_case": false})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // A file named as a page but holding text is kept, and downloaded, as text.
    let form = Form::new().part("file", file("notes.html", Some("text/plain"), b"just text"));
    let r = upload(&s, &s.agent, &key, form).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body[0]["name"], "notes.html.txt");

    // A file sent for an internal note is internal, whatever the form says.
    let note = s
        .post(
            &format!("/api/v1/tickets/{key}/comments"),
            json!({"body": "root cause notes", "public": false}),
        )
        .await;
    assert_eq!(note.status, 201, "{}", note.body);
    let form = Form::new()
        .part("file", file("rca.txt", None, b"the cause"))
        .text("comment_id", note.body["id"].to_string());
    let r = upload(&s, &s.agent, &key, form).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body[0]["public"], false);
    assert_eq!(r.body[0]["comment_id"], note.body["id"]);

    // Unknown files and tickets are 404s.
    let r = download(
        &s,
        &s.viewer,
        &format!("/api/v1/tickets/{key}/attachments/999999"),
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = download(
        &s,
        &s.viewer,
        &format!("/api/v1/tickets/{key}/attachments/x"),
    )
    .await;
    assert_eq!(r.status(), 404);
    s.stop().await;
}

async fn files_that_lie_or_are_too_large_are_refused_and_nothing_is_kept(backend: Backend) {
    let s = TestServer::start_with(backend, |config, _| {
        config.attachments.max_bytes = 64 * 1024;
    })
    .await;
    let key = new_ticket(&s).await;

    // A zip declared as text (a zip bomb would be one), alongside a good file: all refused.
    let form = Form::new()
        .part("file", file("ok.png", Some("image/png"), PNG))
        .part("file", file("notes.txt", Some("text/plain"), ZIP));
    let r = upload(&s, &s.agent, &key, form).await;
    r.assert_problem(422, Some("files"));
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("notes.txt") && detail.contains("application/zip"),
        "{detail}"
    );
    // A page declared as a picture.
    let form = Form::new().part(
        "file",
        file(
            "cat.png",
            Some("image/png"),
            b"<html><script>alert(1)</script></html>",
        ),
    );
    upload(&s, &s.agent, &key, form)
        .await
        .assert_problem(422, Some("files"));
    // SVG and HTML are not taken.
    let form = Form::new().part("file", file("x.html", Some("text/html"), b"<p>hello</p>"));
    upload(&s, &s.agent, &key, form)
        .await
        .assert_problem(422, Some("files"));
    // Over the size limit: refused before it is all read.
    let big = vec![b'a'; 65 * 1024];
    let form = Form::new().part("file", file("big.log", None, &big));
    upload(&s, &s.agent, &key, form)
        .await
        .assert_problem(413, None);
    // A body that never gets to its parts (a preamble larger than any upload) is cut off.
    let boundary = "b0undary";
    let mut body = vec![b'x'; 3 * 1024 * 1024];
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = s
        .http
        .post(s.url(&format!("/api/v1/tickets/{key}/attachments")))
        .bearer_auth(&s.agent)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await;
    match r {
        // The rest of that body is never read: the client is told not to use the connection
        // again.
        Ok(r) => {
            assert_eq!(r.headers()["connection"], "close");
            Reply::from(r).await.assert_problem(413, None);
        }
        // Or the server's answer and close came while the client was still writing the part
        // the server will not read: the write fails, as it would for any client that sends
        // the whole body before reading.
        Err(e) => {
            let why = format!("{e:?}");
            assert!(
                why.contains("BrokenPipe") || why.contains("ConnectionReset"),
                "{why}"
            );
        }
    }
    // No file at all, and a body that is not a form.
    upload(&s, &s.agent, &key, Form::new().text("public", "true"))
        .await
        .assert_problem(422, Some("files"));
    let r = s
        .post(
            &format!("/api/v1/tickets/{key}/attachments"),
            json!({"file": "x"}),
        )
        .await;
    r.assert_problem(415, None);
    // A file for a ticket that does not exist.
    let form = Form::new().part("file", file("ok.png", Some("image/png"), PNG));
    upload(&s, &s.agent, "OPS-999999", form)
        .await
        .assert_problem(404, None);

    // Nothing was kept, and the ticket's history has no file.
    assert!(files(&s, &s.agent, &key).await.is_empty());
    let history = s.get(&format!("/api/v1/tickets/{key}/history")).await.body;
    assert!(
        !history.to_string().contains("ticket.attached"),
        "{history}"
    );
    s.stop().await;
}

async fn requesters_see_only_their_public_files(backend: Backend) {
    let s = TestServer::start(backend).await;
    let desk = s.db.desk().await;
    add_local_user(&desk, "rita@example.com", Role::Requester).await;
    add_local_user(&desk, "sam@example.com", Role::Requester).await;
    let (rita, _) = crate::signin::sign_in(&s, "rita@example.com").await;
    let (sam, _) = crate::signin::sign_in(&s, "sam@example.com").await;
    let rita_csrf = crate::signin::session_csrf(&s, &rita).await;
    let r = rita
        .post(s.url("/api/v1/tickets"))
        .header("x-csrf-token", &rita_csrf)
        .json(&json!({"title": "Laptop screen flickers", "kind": "service_request", "severity": "SEV4"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let key = r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // Her own file, on her own ticket: public.
    let send = |b: &reqwest::Client, csrf: &str, form: Form| {
        let req = b
            .post(s.url(&format!("/api/v1/tickets/{key}/attachments")))
            .header("x-csrf-token", csrf)
            .multipart(form);
        async move { Reply::from(req.send().await.unwrap()).await }
    };
    let r = send(
        &rita,
        &rita_csrf,
        Form::new().part("file", file("flicker.png", None, PNG)),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body[0]["public"], true);
    // She cannot make a file internal.
    let form = Form::new()
        .part("file", file("x.png", None, PNG))
        .text("public", "false");
    send(&rita, &rita_csrf, form)
        .await
        .assert_problem(403, None);
    // She cannot hang a file on an internal note (she does not know it is there).
    let note = s
        .post(
            &format!("/api/v1/tickets/{key}/comments"),
            json!({"body": "internal", "public": false}),
        )
        .await;
    let form = Form::new()
        .part("file", file("x.png", None, PNG))
        .text("comment_id", note.body["id"].to_string());
    send(&rita, &rita_csrf, form)
        .await
        .assert_problem(404, None);
    // Staff add an internal note's file.
    let form = Form::new()
        .part("file", file("internal.log", None, b"secret stack trace"))
        .text("public", "false");
    let r = upload(&s, &s.agent, &key, form).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let internal = r.body[0]["id"].as_i64().unwrap();

    let seen: Vec<Value> = rita
        .get(s.url(&format!("/api/v1/tickets/{key}/attachments")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["name"], "flicker.png");
    let r = rita
        .get(s.url(&format!("/api/v1/tickets/{key}/attachments/{internal}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let own = seen[0]["id"].as_i64().unwrap();
    let r = rita
        .get(s.url(&format!("/api/v1/tickets/{key}/attachments/{own}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), PNG);

    // Another requester learns nothing of her ticket or its files.
    let sam_csrf = crate::signin::session_csrf(&s, &sam).await;
    let r = sam
        .get(s.url(&format!("/api/v1/tickets/{key}/attachments/{own}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    send(
        &sam,
        &sam_csrf,
        Form::new().part("file", file("y.png", None, PNG)),
    )
    .await
    .assert_problem(404, None);
    // Without the CSRF token a session's upload is refused.
    let r = rita
        .post(s.url(&format!("/api/v1/tickets/{key}/attachments")))
        .multipart(Form::new().part("file", file("z.png", None, PNG)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    s.stop().await;
}

async fn files_come_with_a_new_request_and_a_reply_from_the_pages(backend: Backend) {
    let s = TestServer::start(backend).await;
    let desk = s.db.desk().await;
    add_local_user(&desk, "rita@example.com", Role::Requester).await;
    let (rita, _) = crate::signin::sign_in(&s, "rita@example.com").await;
    let csrf = crate::signin::session_csrf(&s, &rita).await;
    let form = page_form(&csrf, "Printer jams on floor 2")
        .part("file", file("jam.png", Some("image/png"), PNG));
    let r = rita
        .post(s.url("/tickets/new"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    let key = r.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let listed = files(&s, &s.agent, &key).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "jam.png");
    assert_eq!(listed[0]["public"], true);
    assert!(listed[0]["comment_id"].is_null());
    // The ticket page lists it with its size and hash, and links the download.
    let page = s.page(&rita, &format!("/tickets/{key}")).await;
    assert!(
        page.contains("jam.png") && page.contains(&sha256(PNG)[..12]),
        "{page}"
    );
    assert!(page.contains(&format!(
        "/api/v1/tickets/{key}/attachments/{}",
        listed[0]["id"]
    )));

    // A reply with a file: the file belongs to the comment.
    let form = Form::new()
        .text("csrf", csrf.clone())
        .text("body", "Here is the error log.")
        .part("file", file("printer.log", None, b"E42 paper jam tray 2\n"))
        // A file input left empty, as browsers send it.
        .part("file", Part::bytes(Vec::new()).file_name(""));
    let r = rita
        .post(s.url(&format!("/tickets/{key}/comments")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_redirection() || r.status().is_success(),
        "{}",
        r.status()
    );
    let listed = files(&s, &s.agent, &key).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let comments = s.get(&format!("/api/v1/tickets/{key}/comments")).await.body;
    assert_eq!(listed[1]["comment_id"], comments[0]["id"]);
    // A refused file refuses the reply: no comment is written without it.
    let form = Form::new()
        .text("csrf", csrf.clone())
        .text("body", "And the firmware")
        .part("file", file("fw.txt", Some("text/plain"), ZIP));
    let r = rita
        .post(s.url(&format!("/tickets/{key}/comments")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = r.text().await.unwrap();
    assert!(text.contains("fw.txt"), "{text}");
    let comments = s.get(&format!("/api/v1/tickets/{key}/comments")).await.body;
    assert_eq!(comments.as_array().unwrap().len(), 1);
    // Without the form's CSRF token nothing is taken.
    let form = page_form("wrong", "Another").part("file", file("a.png", None, PNG));
    let r = rita
        .post(s.url("/tickets/new"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    s.stop().await;
}

fn page_form(csrf: &str, title: &str) -> Form {
    Form::new()
        .text("csrf", csrf.to_owned())
        .text("title", title.to_owned())
        .text("kind", "incident")
        .text("severity", "SEV3")
        .text("workload", "")
        .text("description", "It jams on every page.")
}

async fn files_are_kept_in_s3_when_configured(backend: Backend) {
    let moto = Moto::start().await;
    let sdk = moto.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket("desk-files")
        .send()
        .await
        .unwrap();
    let endpoint = moto.endpoint.clone();
    // The SDK's usual chain finds these.
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    let s = TestServer::start_with(backend, move |config, _| {
        config.attachments.s3 = Some(
            toml::from_str(&format!(
                "bucket = \"desk-files\"\nprefix = \"files/\"\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n"
            ))
            .unwrap(),
        );
    })
    .await;
    let key = new_ticket(&s).await;
    let r = upload(
        &s,
        &s.agent,
        &key,
        Form::new().part("file", file("graph.png", None, PNG)),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The object is in the bucket under its hash.
    let object = s3
        .get_object()
        .bucket("desk-files")
        .key(format!("files/{}", sha256(PNG)))
        .send()
        .await
        .unwrap();
    let stored = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(stored.as_ref(), PNG);
    let res = download(
        &s,
        &s.agent,
        &format!("/api/v1/tickets/{key}/attachments/{}", r.body[0]["id"]),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), PNG);
    // A file altered in the bucket is not handed out as the original.
    s3.put_object()
        .bucket("desk-files")
        .key(format!("files/{}", sha256(PNG)))
        .body(aws_sdk_s3::primitives::ByteStream::from(
            b"tampered".to_vec(),
        ))
        .send()
        .await
        .unwrap();
    let res = download(
        &s,
        &s.agent,
        &format!("/api/v1/tickets/{key}/attachments/{}", r.body[0]["id"]),
    )
    .await;
    assert_eq!(res.status(), 500);
    s.stop().await;
}
