//! Times at the edges of what a date can hold, sent by clients: every one is refused with a
//! 422 naming its parameter, the connection stays whole and the server keeps serving; and the
//! SQLite writer keeps serving after a change that panics.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{on_both_backends, Backend, TestDb, TestServer};

on_both_backends!(
    kpi_series_at_the_edges_of_time_are_refused,
    maintenance_listing_at_the_edges_of_time_is_refused,
    the_writer_survives_a_change_that_panics,
);

/// The earliest and latest instants a date can hold, as a query parameter value.
const EARLIEST: &str = "-262143-01-01T00:00:00Z";
const LATEST: &str = "%2B262142-12-31T23:59:59Z";

async fn still_serving(s: &TestServer) {
    let r = s.get("/api/v1/tickets").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn kpi_series_at_the_edges_of_time_are_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (query, field) in [
        (format!("to={EARLIEST}"), "to"),
        (format!("from={LATEST}"), "from"),
        (format!("from={EARLIEST}&to={LATEST}"), "from"),
        (format!("to={LATEST}&step=1w"), "to"),
        (format!("from={EARLIEST}&step=1w"), "from"),
        ("from=0001-01-01T00:00:00Z".to_owned(), "from"),
    ] {
        let r = s.get(&format!("/api/v1/kpis/mtta/series?{query}")).await;
        r.assert_problem(422, Some(field));
        still_serving(&s).await;
    }
    let r = s
        .get("/api/v1/kpis/mtta/series?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&step=1h")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["points"].as_array().unwrap().len(), 24);
    s.stop().await;
}

async fn maintenance_listing_at_the_edges_of_time_is_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (query, field) in [
        (format!("from={LATEST}"), "from"),
        (format!("to={EARLIEST}"), "to"),
        (format!("from={EARLIEST}"), "from"),
        (format!("from=2026-12-01T00:00:00Z&to={LATEST}"), "to"),
    ] {
        let r = s.get(&format!("/api/v1/maintenance?{query}")).await;
        r.assert_problem(422, Some(field));
        still_serving(&s).await;
    }
    let r = s
        .get("/api/v1/maintenance?from=2026-12-01T00:00:00Z&to=2026-12-31T00:00:00Z")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = s.get("/api/v1/maintenance").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    s.stop().await;
}

/// A change that panics fails alone: its caller hears an error, and the changes after it
/// are saved (on SQLite they go through the one writer task, which must not die with it).
async fn the_writer_survives_a_change_that_panics(backend: Backend) {
    let db = TestDb::new(backend).await;
    let desk = db.desk().await;
    let doomed = desk.clone();
    let outcome = tokio::spawn(async move {
        doomed
            .db()
            .write(
                |_tx| -> futures::future::BoxFuture<'_, Result<(), opsdesk_store::StoreError>> {
                    Box::pin(async move { panic!("a bug in one change") })
                },
            )
            .await
    })
    .await;
    match outcome {
        // SQLite: the writer caught it and failed the change.
        Ok(res) => {
            let err = res.unwrap_err().to_string();
            assert!(err.contains("failed unexpectedly"), "{err}");
        }
        // PostgreSQL: the change runs on its caller's task, which the panic ends.
        Err(e) => assert!(e.is_panic()),
    }
    let cli = opsdesk_core::Actor::cli();
    let t = desk
        .create_ticket(
            &cli,
            serde_json::from_value(
                json!({"title": "after the panic", "kind": "task", "severity": "SEV5"}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        desk.ticket(&cli, t.id).await.unwrap().title,
        "after the panic"
    );
    assert_eq!(desk.verify_audit().await.unwrap().entries, 1);
    desk.db().close().await;
    db.drop_schema().await;
}
