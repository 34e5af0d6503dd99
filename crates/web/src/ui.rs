//! Signing in and out. The rest of the web app is in [`crate::pages`].

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use opsdesk_core::Error;
use opsdesk_domain::rate_limit::Verdict;
use serde::Deserialize;

use crate::client::ClientAddr;
use crate::AppState;

pub const SESSION_COOKIE: &str = "opsdesk_session";
const LOGIN_CSRF_COOKIE: &str = "opsdesk_login_csrf";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/setup", get(setup_page).post(setup))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    sso: bool,
    sso_only: bool,
    /// A new database: nobody has an account yet.
    setup: bool,
}

fn cookie(
    state: &AppState,
    name: &'static str,
    value: String,
    path: &'static str,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .secure(state.secure_cookies)
        .same_site(if name == SESSION_COOKIE {
            SameSite::Lax
        } else {
            SameSite::Strict
        })
        .path(path)
        .build()
}

/// Shows the sign-in form with a fresh CSRF token, tied to a cookie (double submit).
async fn login_page(State(state): State<AppState>, jar: CookieJar) -> Response {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        if let Ok(Some(_)) = state.desk.session(c.value()).await {
            return Redirect::to("/").into_response();
        }
    }
    let setup = first_run(&state).await.unwrap_or(false);
    render(&state, jar, StatusCode::OK, "", None, setup)
}

/// The sign-in page with a message, for flows that end in a refusal.
pub fn login_error(
    state: &AppState,
    jar: CookieJar,
    status: StatusCode,
    message: &str,
) -> Response {
    render_login(state, jar, status, "", Some(message))
}

fn render_login(
    state: &AppState,
    jar: CookieJar,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> Response {
    render(state, jar, status, email, error, false)
}

fn render(
    state: &AppState,
    jar: CookieJar,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
    setup: bool,
) -> Response {
    let csrf = opsdesk_core::sessions::random_token();
    let jar = jar.add(cookie(state, LOGIN_CSRF_COOKIE, csrf.clone(), "/login"));
    let page = LoginPage {
        csrf: &csrf,
        email,
        error,
        sso: state.sso.is_some(),
        sso_only: state.sso_only,
        setup,
    };
    (jar, crate::pages::render(status, page)).into_response()
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// Refuses a request another site's page made the browser send.
pub fn cross_site(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        host,
    ) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
            !origin_host.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}

/// The answer to a request over the per-address limit of the endpoints anyone may call that
/// write (sign-in, setup, single sign-on).
pub const TOO_MANY_REQUESTS: &str = "too many requests from your address; try again in a minute";

/// Counts a request against its address's limit on those endpoints; true when it is over.
/// Only the first refusal of a minute is logged, so a flood does not flood the log.
pub fn over_limit(state: &AppState, client: ClientAddr, route: &'static str) -> bool {
    match state.sign_in_limiter.check(client.0, state.desk.now()) {
        Verdict::Admit => false,
        Verdict::Refuse { first } => {
            if first {
                tracing::warn!(%client, route, "too many sign-in requests from one address; refused for the rest of the minute");
            }
            true
        }
    }
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn login(
    State(state): State<AppState>,
    peer: ClientAddr,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    if over_limit(&state, peer, "/login") {
        return render_login(
            &state,
            jar,
            StatusCode::TOO_MANY_REQUESTS,
            "",
            Some(TOO_MANY_REQUESTS),
        );
    }
    if cross_site(&headers) {
        tracing::warn!(%peer, "cross-site sign-in refused");
        return render_login(
            &state,
            jar,
            StatusCode::FORBIDDEN,
            "",
            Some("this form must be sent from opsdesk itself"),
        );
    }
    let expected = jar
        .get(LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if expected.is_empty() || !same_secret(&expected, &form.csrf) {
        tracing::warn!(%peer, "sign-in with a missing or wrong CSRF token refused");
        return render_login(
            &state,
            jar,
            StatusCode::FORBIDDEN,
            &opsdesk_domain::text::clip(&form.email),
            Some("the form expired; please sign in again"),
        );
    }
    if state.sso_only {
        return render_login(
            &state,
            jar,
            StatusCode::FORBIDDEN,
            "",
            Some("sign in with SSO"),
        );
    }
    let code = Some(form.code.trim()).filter(|c| !c.is_empty());
    match state
        .desk
        .login(&form.email, &form.password, code, &peer.to_string())
        .await
    {
        Ok(session) => {
            // A browser-session cookie; the server ends the session on its own schedule.
            let c = cookie(&state, SESSION_COOKIE, session.secret, "/");
            let jar = jar
                .remove(Cookie::build(LOGIN_CSRF_COOKIE).path("/login").build())
                .add(c);
            (jar, Redirect::to("/")).into_response()
        }
        Err(Error::Throttled(msg)) => render_login(
            &state,
            jar,
            StatusCode::TOO_MANY_REQUESTS,
            &form.email,
            Some(&msg),
        ),
        Err(Error::Unauthorized(msg)) => render_login(
            &state,
            jar,
            StatusCode::UNAUTHORIZED,
            &form.email,
            Some(&msg),
        ),
        Err(e) => {
            tracing::error!(error = %e, "sign-in failed");
            render_login(
                &state,
                jar,
                StatusCode::INTERNAL_SERVER_ERROR,
                &form.email,
                Some("sign-in failed; try again"),
            )
        }
    }
}

/// Ends the session (the access layer has checked it and its CSRF token already).
async fn logout(State(state): State<AppState>, jar: CookieJar) -> Response {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        if let Err(e) = state.desk.logout(c.value()).await {
            tracing::error!(error = %e, "sign-out failed");
        }
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/").build());
    (jar, Redirect::to("/login")).into_response()
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage<'a> {
    email: &'a str,
    error: Option<&'a str>,
}

/// Whether nobody can sign in yet: a new database, before its first person.
async fn first_run(state: &AppState) -> Result<bool, Error> {
    Ok(!state.desk.db().has_users().await?)
}

/// The first admin account, made in the browser on a new database. The admin API token printed
/// at the first start proves the operator; once anyone has an account the page is gone.
async fn setup_page(State(state): State<AppState>) -> Response {
    match first_run(&state).await {
        Ok(true) => crate::pages::render(
            StatusCode::OK,
            SetupPage {
                email: "",
                error: None,
            },
        ),
        Ok(false) => Redirect::to("/login").into_response(),
        Err(e) => crate::pages::PageError(e.into()).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct SetupForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

async fn setup(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    Form(form): Form<SetupForm>,
) -> Response {
    let refuse = |status: StatusCode, message: &str| {
        crate::pages::render(
            status,
            SetupPage {
                email: &form.email,
                error: Some(message),
            },
        )
    };
    if over_limit(&state, client, "/setup") {
        return refuse(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_REQUESTS);
    }
    if cross_site(&headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this form must be sent from opsdesk itself",
        );
    }
    match first_run(&state).await {
        Ok(true) => {}
        Ok(false) => return Redirect::to("/login").into_response(),
        Err(e) => return crate::pages::PageError(e.into()).into_response(),
    }
    let operator = match state.desk.authenticate(form.token.trim()).await {
        Ok(Some(actor)) if actor.role == opsdesk_domain::Role::Admin => actor,
        Ok(_) => return refuse(
            StatusCode::UNAUTHORIZED,
            "that is not a valid admin API token: use the one printed when opsdesk first started",
        ),
        Err(e) => return crate::pages::PageError(e.into()).into_response(),
    };
    let person = opsdesk_domain::NewUser {
        email: form.email.clone(),
        display_name: None,
        role: opsdesk_domain::Role::Admin,
        teams: Vec::new(),
        password: Some(form.password.clone()),
    };
    match state.desk.add_user(&operator, person).await {
        Ok(_) => Redirect::to("/login").into_response(),
        Err(e) => {
            let (status, text) = crate::pages::message(&e.into());
            refuse(status, &text)
        }
    }
}
