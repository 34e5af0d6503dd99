use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{on_both_backends, Backend, TestServer};

on_both_backends!(
    health_readiness_and_metrics,
    openapi_document_covers_every_route
);

async fn health_readiness_and_metrics(backend: Backend) {
    let s = TestServer::start(backend).await;
    for path in ["/healthz", "/readyz"] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let t = s
        .ticket(json!({"title": "EBS latency", "kind": "incident", "severity": "SEV3"}))
        .await;
    s.patch(
        &format!("/api/v1/tickets/{}", t["id"]),
        None,
        json!({"status": "acknowledged"}),
    )
    .await;
    s.ticket(json!({"title": "Another", "kind": "task", "severity": "SEV5"}))
        .await;
    s.call(Method::GET, "/api/v1/tickets", None, None).await;

    let text = s.metrics().await;
    assert!(
        text.contains("opsdesk_tickets{status=\"acknowledged\"} 1"),
        "{text}"
    );
    assert!(text.contains("opsdesk_tickets{status=\"new\"} 1"), "{text}");
    assert!(
        text.contains("opsdesk_tickets{status=\"closed\"} 0"),
        "{text}"
    );
    assert!(
        text.contains(
            "http_requests_total{method=\"POST\",route=\"/api/v1/tickets\",status=\"201\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("route=\"/api/v1/tickets/{id}\",status=\"200\""),
        "{text}"
    );
    assert!(text.contains("status=\"401\""), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "{text}"
    );
    s.stop().await;
}

async fn openapi_document_covers_every_route(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .assert_problem(401, None);
    let doc = s
        .call(Method::GET, "/api/v1/openapi.json", Some(&s.viewer), None)
        .await
        .body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/tickets",
        "/api/v1/tickets/batch",
        "/api/v1/tickets/{id}",
        "/api/v1/tickets/{id}/comments",
        "/api/v1/tickets/{id}/links",
        "/api/v1/tickets/{id}/links/{link_id}",
        "/api/v1/tickets/{id}/history",
        "/api/v1/tokens",
        "/api/v1/tokens/{name}",
        "/api/v1/audit",
        "/api/v1/audit/verify",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Ticket"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // Every documented operation refuses a request without a token.
    let mut checked = 0;
    for (path, item) in paths {
        for method in ["get", "post", "patch", "delete", "put"] {
            if item.get(method).is_none() {
                continue;
            }
            let concrete = path
                .replace("{id}", "1")
                .replace("{link_id}", "1")
                .replace("{name}", "x");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = s.call(m, &concrete, None, Some(json!({}))).await;
            if item[method]["security"] == json!([{}]) {
                // SNS and other ticketing systems cannot send a token: SNS signs its
                // messages, a connector's webhook call carries its secret; one without is
                // refused.
                assert!(
                    ["/api/v1/ingest/sns", "/api/v1/connectors/{name}/webhook"]
                        .contains(&path.as_str()),
                    "{path} is open without a token"
                );
                assert!(r.status.is_client_error(), "{method} {path}: {}", r.status);
            } else {
                assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} operations documented");
    s.stop().await;
}
