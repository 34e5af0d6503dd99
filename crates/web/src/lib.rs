//! The HTTP face of opsdesk: the web app, the REST API under /api/v1 with its OpenAPI
//! document, and the operational endpoints /healthz, /readyz and /metrics.

pub mod api;
mod auth;
pub mod client;
mod error;
mod json;
mod ops;
mod pages;
mod params;
pub mod policy;
pub mod sso;
pub mod throttle;
mod ui;
mod upload;

use std::future::Future;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use opsdesk_core::Desk;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use ops::metrics_handle;

/// Requests larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub desk: Desk,
    /// Mark cookies Secure (set when opsdesk is reached over HTTPS).
    pub secure_cookies: bool,
    /// The identity provider for single sign-on, when one is set up.
    pub sso: Option<std::sync::Arc<sso::Sso>>,
    /// Turn local passwords off: people sign in with SSO only.
    pub sso_only: bool,
    /// Amazon SNS HTTP(S) subscriptions, when set up.
    pub sns: Option<std::sync::Arc<api::sns::SnsIngest>>,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers name the client.
    pub trusted_proxies: std::sync::Arc<[ipnet::IpNet]>,
    /// Per-address limit on sign-in, setup and single sign-on requests.
    pub sign_in_limiter: std::sync::Arc<throttle::AddressLimiter>,
    /// How this node names itself in job leases (shown by /metrics).
    pub node: std::sync::Arc<str>,
}

/// Sign-in, setup and single sign-on requests one address may make per minute by default.
pub const SIGN_IN_REQUESTS_PER_MINUTE: u32 = 60;

impl AppState {
    pub fn new(desk: Desk) -> AppState {
        AppState {
            desk,
            secure_cookies: false,
            sso: None,
            sso_only: false,
            sns: None,
            trusted_proxies: std::sync::Arc::from(Vec::new()),
            sign_in_limiter: std::sync::Arc::new(throttle::AddressLimiter::per_minute(
                SIGN_IN_REQUESTS_PER_MINUTE,
            )),
            node: std::sync::Arc::from("opsdesk"),
        }
    }
}

/// Builds the whole router: API, OpenAPI document, operations endpoints and layers.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api::split();
    let openapi = std::sync::Arc::new(openapi);
    Router::new()
        .merge(api)
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = openapi.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .merge(ops::routes())
        .merge(ui::routes())
        .merge(pages::routes())
        .merge(sso::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            policy::enforce,
        ))
        .route_layer(axum::middleware::from_fn(ops::track_metrics))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(pages::security_headers))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The OpenAPI document, as served at /api/v1/openapi.json.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::split().1
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
