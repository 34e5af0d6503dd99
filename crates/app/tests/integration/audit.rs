use serde_json::json;

use reqwest::{Method, StatusCode};

use crate::common::{on_both_backends, Backend, TestDb, TestServer};
use opsdesk_core::VerifyError;
use opsdesk_domain::audit::Anchor;
use opsdesk_domain::ChainError;

on_both_backends!(
    history_is_chained_and_verifies,
    database_refuses_to_change_the_trail,
    tampering_is_found_at_its_seq,
    a_failed_change_leaves_no_trace_among_concurrent_ones,
    edits_of_the_stored_text_that_keep_its_meaning_are_found,
    anchors_pin_the_chain_to_hashes_kept_elsewhere,
    a_trail_written_before_stored_text_hashing_still_verifies,
);

/// Makes five changes; with the four tokens made at start (seq 1-4) they are seq 5-9.
async fn some_history(s: &TestServer) -> i64 {
    let a = s
        .ticket(json!({"title": "S3 bucket public", "kind": "incident", "severity": "SEV2"}))
        .await;
    s.ticket(json!({"title": "Rotate IAM keys", "kind": "task", "severity": "SEV4"}))
        .await;
    let path = format!("/api/v1/tickets/{}", a["id"]);
    s.patch(&path, None, json!({"status": "acknowledged"}))
        .await;
    s.post(
        &format!("{path}/comments"),
        json!({"body": "Blocked public access"}),
    )
    .await;
    s.patch(&path, None, json!({"status": "resolved"})).await;
    a["id"].as_i64().unwrap()
}

async fn verify(s: &TestServer) -> Result<i64, ChainError> {
    verify_db(&s.db).await
}

async fn verify_db(db: &TestDb) -> Result<i64, ChainError> {
    verify_anchored(db, &[]).await
}

async fn verify_anchored(db: &TestDb, anchors: &[Anchor]) -> Result<i64, ChainError> {
    let desk = db.desk().await;
    let res = desk.verify_audit_anchored(anchors).await;
    desk.db().close().await;
    match res {
        Ok(summary) => Ok(summary.entries),
        Err(VerifyError::Broken(e)) => Err(e),
        Err(VerifyError::Failed(e)) => panic!("verification could not run: {e}"),
    }
}

async fn history_is_chained_and_verifies(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = some_history(&s).await;
    let history = s.get(&format!("/api/v1/tickets/{id}/history")).await.body;
    let entries = history.as_array().unwrap();
    let actions: Vec<_> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "ticket.created",
            "ticket.updated",
            "ticket.commented",
            "ticket.updated"
        ]
    );
    for e in entries {
        assert_eq!(e["ticket_id"], id);
        assert_eq!(e["hash"].as_str().unwrap().len(), 64);
        assert!(e["at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(
        entries[1]["changes"]["status"],
        json!({"before": "new", "after": "acknowledged"})
    );
    assert_eq!(
        entries[2]["changes"]["comment"]["after"]["body"],
        "Blocked public access"
    );
    // Entries are numbered across the whole trail; the ticket's are a subsequence.
    let seqs: Vec<_> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // first-admin (made at first start) + 3 test tokens + 5 ticket changes.
    assert_eq!(verify(&s).await, Ok(9));
    s.stop().await;
}

async fn database_refuses_to_change_the_trail(backend: Backend) {
    let s = TestServer::start(backend).await;
    some_history(&s).await;
    for sql in [
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 2",
        "DELETE FROM audit_log",
    ] {
        let err = s.db.sql(sql).await.unwrap_err();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    if backend == Backend::Postgres {
        let err = s.db.sql("TRUNCATE audit_log").await.unwrap_err();
        assert!(err.contains("append-only"), "{err}");
    }
    assert_eq!(verify(&s).await, Ok(9));
    s.stop().await;
}

/// SQL that switches off the append-only guard, as someone with full database access could.
fn unguard(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "DROP TRIGGER audit_log_refuse_update; DROP TRIGGER audit_log_refuse_delete;"
        }
        Backend::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER USER;",
    }
}

async fn tampering_is_found_at_its_seq(backend: Backend) {
    let s = TestServer::start(backend).await;
    some_history(&s).await;
    s.db.sql(unguard(backend)).await.unwrap();

    // Edited: the content no longer matches the hash.
    s.db.sql("UPDATE audit_log SET actor = 'mallory' WHERE seq = 6")
        .await
        .unwrap();
    assert_eq!(verify(&s).await, Err(ChainError::Content { seq: 6 }));
    s.db.sql("UPDATE audit_log SET actor = 'token:test-agent' WHERE seq = 6")
        .await
        .unwrap();
    assert_eq!(verify(&s).await, Ok(9));

    // Edited changes: a field's before/after rewritten.
    s.db.sql(
        "UPDATE audit_log SET changes = replace(changes, 'acknowledged', 'resolved') WHERE seq = 7",
    )
    .await
    .unwrap();
    assert_eq!(verify(&s).await.unwrap_err().seq(), 7);
    s.db.sql(
        "UPDATE audit_log SET changes = replace(changes, 'resolved', 'acknowledged') WHERE seq = 7",
    )
    .await
    .unwrap();
    assert_eq!(verify(&s).await, Ok(9));

    // Reordered: two entries swap places.
    s.db.sql("UPDATE audit_log SET seq = -1 WHERE seq = 8")
        .await
        .unwrap();
    s.db.sql("UPDATE audit_log SET seq = 8 WHERE seq = 9")
        .await
        .unwrap();
    s.db.sql("UPDATE audit_log SET seq = 9 WHERE seq = -1")
        .await
        .unwrap();
    assert_eq!(verify(&s).await, Err(ChainError::Link { seq: 8 }));
    s.db.sql("UPDATE audit_log SET seq = -1 WHERE seq = 9")
        .await
        .unwrap();
    s.db.sql("UPDATE audit_log SET seq = 9 WHERE seq = 8")
        .await
        .unwrap();
    s.db.sql("UPDATE audit_log SET seq = 8 WHERE seq = -1")
        .await
        .unwrap();
    assert_eq!(verify(&s).await, Ok(9));

    // Deleted from the end: the head still remembers it.
    s.db.sql("DELETE FROM audit_log WHERE seq = 9")
        .await
        .unwrap();
    assert_eq!(
        verify(&s).await,
        Err(ChainError::Truncated { last: 8, head: 9 })
    );

    // Deleted from the middle.
    s.db.sql("DELETE FROM audit_log WHERE seq = 4")
        .await
        .unwrap();
    assert_eq!(
        verify(&s).await,
        Err(ChainError::Gap {
            seq: 5,
            expected: 4
        })
    );
    s.stop().await;
}

/// Changes made at the same moment share a transaction on SQLite. One that fails after
/// writing must leave nothing behind, and every change reported as saved must be there.
async fn a_failed_change_leaves_no_trace_among_concurrent_ones(backend: Backend) {
    let db = crate::common::TestDb::new(backend).await;
    let desk = db.desk().await;
    let cli = opsdesk_core::Actor::cli();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let desk = desk.clone();
        let cli = cli.clone();
        tasks.push(tokio::spawn(async move {
            if i % 10 == 0 {
                let ticket = opsdesk_domain::Ticket::open(
                    serde_json::from_value(
                        json!({"title": format!("doomed {i}"), "kind": "task", "severity": "SEV5"}),
                    )
                    .unwrap(),
                    desk.now(),
                );
                let res: Result<(), opsdesk_store::StoreError> = desk
                    .db()
                    .write(move |tx| {
                        Box::pin(async move {
                            tx.insert_ticket(&ticket).await?;
                            Err(opsdesk_store::StoreError::Unique(
                                "refused on purpose".into(),
                            ))
                        })
                    })
                    .await;
                assert!(res.is_err());
                None
            } else {
                let input = serde_json::from_value(
                    json!({"title": format!("kept {i}"), "kind": "task", "severity": "SEV5"}),
                )
                .unwrap();
                match desk.create_ticket(&cli, input).await {
                    Ok(t) => Some(t.id),
                    // Only a change that shared the failed one's transaction may fail, and it
                    // says so.
                    Err(e) => {
                        assert!(e.to_string().contains("retry"), "{e}");
                        None
                    }
                }
            }
        }));
    }
    let mut saved = Vec::new();
    for t in tasks {
        saved.extend(t.await.unwrap());
    }
    // The writer carries on: a change after the failures is saved.
    let after = desk
        .create_ticket(
            &cli,
            serde_json::from_value(
                json!({"title": "kept after", "kind": "task", "severity": "SEV5"}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    saved.push(after.id);
    let page = desk
        .tickets(
            &opsdesk_core::Actor::cli(),
            &opsdesk_store::TicketFilter {
                limit: 200,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut stored: Vec<i64> = page.items.iter().map(|t| t.id).collect();
    stored.sort_unstable();
    saved.sort_unstable();
    assert_eq!(
        stored, saved,
        "exactly the changes reported as saved are stored"
    );
    assert!(page.items.iter().all(|t| t.title.starts_with("kept")));
    let found = desk
        .tickets(
            &opsdesk_core::Actor::cli(),
            &opsdesk_store::TicketFilter {
                q: Some("doomed".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        found.items.is_empty(),
        "the search index kept a refused ticket"
    );
    assert_eq!(
        desk.verify_audit().await.unwrap().entries,
        saved.len() as i64
    );
    desk.db().close().await;
    db.drop_schema().await;
}

/// Someone with write access to the database rewrites an entry's stored text so that it still
/// reads as the same JSON: spaces added, or a key given twice (a reader of the table sees the
/// first, a JSON parser keeps the last). What is stored is what is hashed, so both are found.
async fn edits_of_the_stored_text_that_keep_its_meaning_are_found(backend: Backend) {
    let s = TestServer::start(backend).await;
    some_history(&s).await;
    s.db.sql(unguard(backend)).await.unwrap();
    assert_eq!(verify(&s).await, Ok(9));

    // Whitespace only (seq 7 moved the ticket from new to acknowledged).
    s.db.sql("UPDATE audit_log SET changes = replace(changes, ':', ' : ') WHERE seq = 7")
        .await
        .unwrap();
    assert_eq!(verify(&s).await, Err(ChainError::Content { seq: 7 }));
    s.db.sql("UPDATE audit_log SET changes = replace(changes, ' : ', ':') WHERE seq = 7")
        .await
        .unwrap();
    assert_eq!(verify(&s).await, Ok(9));

    // A forged first copy of the key; the genuine one after it is what a parser keeps.
    s.db.sql(
        "UPDATE audit_log SET changes = \
         '{\"status\":{\"after\":\"resolved\",\"before\":\"new\"},' || substr(changes, 2) \
         WHERE seq = 7",
    )
    .await
    .unwrap();
    assert_eq!(verify(&s).await, Err(ChainError::Content { seq: 7 }));
    s.stop().await;

    // The time as text, on SQLite where it is stored as text: the same instant written
    // another way.
    if backend == Backend::Sqlite {
        let s = TestServer::start(backend).await;
        some_history(&s).await;
        s.db.sql(unguard(backend)).await.unwrap();
        s.db.sql("UPDATE audit_log SET at = replace(at, 'Z', '+00:00') WHERE seq = 6")
            .await
            .unwrap();
        assert_eq!(verify(&s).await, Err(ChainError::Content { seq: 6 }));
        s.stop().await;
    }
}

/// An anchor is a seq and the hash it had, saved outside the database. A chain rewritten
/// with fresh hashes from some entry on verifies on its own, but not against an anchor.
async fn anchors_pin_the_chain_to_hashes_kept_elsewhere(backend: Backend) {
    let s = TestServer::start(backend).await;
    some_history(&s).await;
    let r = s
        .call(Method::GET, "/api/v1/audit/verify", Some(&s.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["intact"], true);
    assert_eq!(r.body["head_seq"], 9);
    let head_hash = r.body["head_hash"].as_str().unwrap().to_owned();
    assert_eq!(r.body["anchor"], format!("9:{head_hash}"));
    let trail = s.audit_trail().await;
    let hash_of = |seq: i64| {
        trail.iter().find(|e| e["seq"] == seq).unwrap()["hash"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let anchor = |text: &str| -> Anchor { text.parse().unwrap() };

    // Right anchors pass, in the core and on the API.
    let right = [
        anchor(&format!("5:{}", hash_of(5))),
        anchor(&format!("9:{head_hash}")),
    ];
    assert_eq!(verify_anchored(&s.db, &right).await, Ok(9));
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/audit/verify?anchor=5:{}", hash_of(5)),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(r.body["intact"], true, "{}", r.body);

    // A wrong hash at the anchored seq fails there.
    let wrong = anchor(&format!("5:{}", hash_of(6)));
    assert_eq!(
        verify_anchored(&s.db, &[wrong]).await,
        Err(ChainError::Anchor { seq: 5 })
    );
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/audit/verify?anchor=5:{}", hash_of(6)),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["intact"], false);
    assert_eq!(r.body["first_bad_seq"], 5);

    // An anchor past the end: entries were cut off together with the recorded head.
    let beyond = anchor(&format!("12:{head_hash}"));
    assert_eq!(
        verify_anchored(&s.db, &[beyond]).await,
        Err(ChainError::AnchorBeyondEnd { seq: 12, last: 9 })
    );

    // Malformed anchors are refused, naming the parameter.
    for bad in [
        "5",
        "x:abc",
        "5:xyz",
        "0:",
        &format!("-1:{head_hash}"),
        &format!("5:{head_hash}00"),
    ] {
        assert!(bad.parse::<Anchor>().is_err(), "{bad}");
        s.call(
            Method::GET,
            &format!("/api/v1/audit/verify?anchor={bad}"),
            Some(&s.admin),
            None,
        )
        .await
        .assert_problem(422, Some("anchor"));
    }
    s.stop().await;
}

/// How many entries the fixture holds.
const FIXTURE_ENTRIES: i64 = 9;

/// Entries written before the stored text itself was hashed (their `changes` written with the
/// fields of each change in declaration order) are read back byte for byte as they were
/// written, and verify; an edit to one is still found.
async fn a_trail_written_before_stored_text_hashing_still_verifies(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.desk().await.db().close().await; // migrated
                                        // Made by the server as released, through the API (see the file's first lines).
    let rows = include_str!("../fixtures/audit_trail_written_by_0.1.sql");
    db.sql(rows).await.unwrap();
    assert_eq!(verify_db(&db).await, Ok(FIXTURE_ENTRIES));
    db.sql(unguard(backend)).await.unwrap();
    db.sql("UPDATE audit_log SET changes = replace(changes, '\"before\":', '\"before\": ') WHERE seq = 6")
        .await
        .unwrap();
    assert_eq!(verify_db(&db).await, Err(ChainError::Content { seq: 6 }));
    db.drop_schema().await;
}
