use opsdesk_core::Actor;
use opsdesk_domain::Role;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{redirect, StatusCode};
use serde_json::{json, Value};

use crate::common::{on_both_backends, Backend, TestServer, PASSWORD};

on_both_backends!(
    sign_in_session_csrf_and_sign_out,
    failed_sign_ins_are_alike_audited_and_limited,
    sessions_end_when_idle_expired_or_disabled,
    two_factor_codes,
    address_limit_and_secure_cookies,
    ended_sign_in_state_is_purged,
    parallel_guesses_count_against_each_other,
    sign_on_noise_writes_nothing_when_sso_is_off,
    failed_sign_ins_keep_only_clipped_text,
    anonymous_writes_are_rate_limited_per_address,
    trusted_proxies_name_the_client,
);

/// A browser: keeps cookies, does not follow redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

async fn add_person(s: &TestServer, email: &str, role: Role) {
    let desk = s.db.desk().await;
    crate::common::add_local_user(&desk, email, role).await;
    desk.db().close().await;
}

/// Opens the sign-in page and returns the form's CSRF token.
async fn login_form(s: &TestServer, b: &reqwest::Client) -> String {
    let r = b.get(s.url("/login")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(r#"name="email""#) && html.contains(r#"name="password""#),
        "{html}"
    );
    let re = regex_lite::Regex::new(r#"name="csrf" value="([0-9a-f]{64})""#).unwrap();
    re.captures(&html).expect("a CSRF field")[1].to_owned()
}

async fn submit(
    s: &TestServer,
    b: &reqwest::Client,
    email: &str,
    password: &str,
    csrf: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut req =
        b.post(s.url("/login"))
            .form(&[("email", email), ("password", password), ("csrf", csrf)]);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("opsdesk_session=") && !c.starts_with("opsdesk_session=;"))
        .map(str::to_owned)
}

pub(crate) async fn sign_in(s: &TestServer, email: &str) -> (reqwest::Client, String) {
    let b = browser();
    let csrf = login_form(s, &b).await;
    let r = submit(s, &b, email, PASSWORD, &csrf, &[]).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    let cookie = session_cookie(r.headers()).expect("a session cookie");
    (b, cookie)
}

/// The CSRF token of the session `b` is signed in with.
pub(crate) async fn session_csrf(s: &TestServer, b: &reqwest::Client) -> String {
    let (status, me) = me(s, b).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    me["csrf_token"].as_str().unwrap().to_owned()
}

async fn me(s: &TestServer, b: &reqwest::Client) -> (StatusCode, Value) {
    let r = b.get(s.url("/api/v1/me")).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn sign_in_session_csrf_and_sign_out(backend: Backend) {
    let s = TestServer::start(backend).await;
    add_person(&s, "ana@example.com", Role::Agent).await;
    let b = browser();
    let csrf = login_form(&s, &b).await;
    let r = submit(&s, &b, "ANA@example.com", PASSWORD, &csrf, &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/");
    let cookie = session_cookie(r.headers()).unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "not Secure unless configured: {cookie}"
    );

    let home = s.page(&b, "/").await;
    assert!(
        home.contains("ana@example.com") && home.contains("agent"),
        "{home}"
    );
    let (status, who) = me(&s, &b).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["name"], "user:ana@example.com");
    let token = who["csrf_token"].as_str().unwrap().to_owned();

    // Changes on a session need its CSRF token and must come from opsdesk's own pages.
    let ticket = json!({"title": "From the browser", "kind": "task", "severity": "SEV4"});
    let r = b
        .post(s.url("/api/v1/tickets"))
        .json(&ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = b
        .post(s.url("/api/v1/tickets"))
        .header("x-csrf-token", "0".repeat(64))
        .json(&ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    for (k, v) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
    ] {
        let r = b
            .post(s.url("/api/v1/tickets"))
            .header("x-csrf-token", &token)
            .header(k, v)
            .json(&ticket)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{k}: {v}");
    }
    let r = b
        .post(s.url("/api/v1/tickets"))
        .header("x-csrf-token", &token)
        .json(&ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["requester"], Value::Null);
    let history = s
        .get(&format!("/api/v1/tickets/{}/history", created["id"]))
        .await
        .body;
    assert_eq!(history[0]["actor"], "user:ana@example.com");
    assert_eq!(
        s.count_tickets().await,
        1,
        "only the request with the right token wrote"
    );

    // A new sign-in gets a new session id.
    let (_, second) = sign_in(&s, "ana@example.com").await;
    assert_ne!(second.split(';').next(), cookie.split(';').next());

    // Sign-out needs the CSRF token too, and really ends the session.
    let r = b
        .post(s.url("/logout"))
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = b
        .post(s.url("/logout"))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/login");
    let stolen = cookie.split(';').next().unwrap().to_owned();
    let r = reqwest::Client::new()
        .get(s.url("/api/v1/me"))
        .header("cookie", &stolen)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the old cookie is dead"
    );
    let r = browser()
        .get(s.url("/"))
        .header("cookie", &stolen)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/login");

    let trail = s.audit_trail().await;
    let actions: Vec<_> = trail
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "auth.login user:ana@example.com")
            .count(),
        2,
        "{actions:?}"
    );
    assert!(
        actions.contains(&"auth.logout user:ana@example.com".to_owned()),
        "{actions:?}"
    );
    s.stop().await;
}

async fn failed_sign_ins_are_alike_audited_and_limited(backend: Backend) {
    let s = TestServer::start(backend).await;
    add_person(&s, "ana@example.com", Role::Agent).await;
    add_person(&s, "bo@example.com", Role::Agent).await;
    let desk = s.db.desk().await;
    desk.set_user_active(&Actor::cli(), "bo@example.com", false)
        .await
        .unwrap();
    desk.db().close().await;

    let b = browser();
    let csrf = login_form(&s, &b).await;
    // The form is refused without its CSRF token or from another site, before any check.
    assert_eq!(
        submit(&s, &b, "ana@example.com", PASSWORD, "", &[])
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        submit(&s, &b, "ana@example.com", PASSWORD, &"a".repeat(64), &[])
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let r = submit(
        &s,
        &b,
        "ana@example.com",
        PASSWORD,
        &csrf,
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let mut messages = Vec::new();
    for (email, password) in [
        ("ana@example.com", "wrong-password-123"),
        ("nobody@example.com", PASSWORD),
        ("bo@example.com", PASSWORD),
    ] {
        let csrf = login_form(&s, &b).await;
        let r = submit(&s, &b, email, password, &csrf, &[]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{email}");
        assert!(session_cookie(r.headers()).is_none());
        let html = r.text().await.unwrap();
        let re = regex_lite::Regex::new(r#"role="alert">([^<]*)<"#).unwrap();
        messages.push(re.captures(&html).unwrap()[1].to_owned());
    }
    assert!(
        messages.iter().all(|m| m == &messages[0]),
        "one message for every failure: {messages:?}"
    );

    let trail = s.audit_trail().await;
    let reasons: Vec<_> = trail
        .iter()
        .filter(|e| e["action"] == "auth.login_failed")
        .map(|e| {
            e["changes"]["attempt"]["after"]["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // An email no account has is not the audit trail's business: anyone can send one.
    assert_eq!(reasons, ["wrong password", "disabled"]);

    // Five failures for an account: the next try gets 429, even with the right password.
    for _ in 0..4 {
        let csrf = login_form(&s, &b).await;
        assert_eq!(
            submit(&s, &b, "ana@example.com", "wrong-password-123", &csrf, &[])
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let csrf = login_form(&s, &b).await;
    let r = submit(&s, &b, "ana@example.com", PASSWORD, &csrf, &[]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(session_cookie(r.headers()).is_none());
    s.stop().await;
}

async fn sessions_end_when_idle_expired_or_disabled(backend: Backend) {
    let s = TestServer::start(backend).await;
    add_person(&s, "ana@example.com", Role::Agent).await;
    let old = match backend {
        Backend::Sqlite => "'2020-01-01T00:00:00.000000Z'",
        Backend::Postgres => "'2020-01-01T00:00:00Z'::timestamptz",
    };

    let (b, _) = sign_in(&s, "ana@example.com").await;
    assert_eq!(me(&s, &b).await.0, StatusCode::OK);
    s.db.sql(&format!("UPDATE sessions SET last_seen_at = {old}"))
        .await
        .unwrap();
    assert_eq!(
        me(&s, &b).await.0,
        StatusCode::UNAUTHORIZED,
        "idle too long"
    );

    let (b, _) = sign_in(&s, "ana@example.com").await;
    s.db.sql(&format!("UPDATE sessions SET expires_at = {old}"))
        .await
        .unwrap();
    assert_eq!(
        me(&s, &b).await.0,
        StatusCode::UNAUTHORIZED,
        "past its absolute end"
    );

    let (b, _) = sign_in(&s, "ana@example.com").await;
    assert_eq!(me(&s, &b).await.0, StatusCode::OK);
    let r = s
        .call(
            reqwest::Method::PATCH,
            "/api/v1/users/ana@example.com",
            Some(&s.admin),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        me(&s, &b).await.0,
        StatusCode::UNAUTHORIZED,
        "disabled people are signed out at once"
    );
    s.stop().await;
}

/// The code an authenticator app shows `ahead` steps of 30 s from now.
#[allow(clippy::disallowed_methods)] // the server reads the same wall clock
fn code(secret: &str, ahead: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(now + 30 * ahead)
        .to_string()
}

async fn with_code(s: &TestServer, email: &str, code: &str) -> reqwest::Response {
    let b = browser();
    let csrf = login_form(s, &b).await;
    b.post(s.url("/login"))
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("csrf", csrf.as_str()),
            ("code", code),
        ])
        .send()
        .await
        .unwrap()
}

async fn two_factor_codes(backend: Backend) {
    let s = TestServer::start(backend).await;
    add_person(&s, "ana@example.com", Role::Agent).await;
    add_person(&s, "bo@example.com", Role::Agent).await;
    let desk = s.db.desk().await;
    let enrolled = desk
        .enroll_totp(&Actor::cli(), "ana@example.com")
        .await
        .unwrap();
    assert!(
        enrolled.url.starts_with("otpauth://totp/"),
        "{}",
        enrolled.url
    );
    desk.db().close().await;

    // With a second factor, the password alone is not enough, a code is good once.
    assert_eq!(
        with_code(&s, "ana@example.com", "").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_code(&s, "ana@example.com", "000000").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let good = code(&enrolled.secret, 0);
    assert_eq!(
        with_code(&s, "ana@example.com", &good).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        with_code(&s, "ana@example.com", &good).await.status(),
        StatusCode::UNAUTHORIZED,
        "replayed"
    );

    // Required but not set up: refused, and told why.
    let r = s
        .call(
            reqwest::Method::PATCH,
            "/api/v1/users/bo@example.com",
            Some(&s.admin),
            Some(json!({"totp_required": true})),
        )
        .await;
    assert_eq!(r.body["totp_required"], true);
    let r = with_code(&s, "bo@example.com", "").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("ask an admin"));

    // Setting it up yourself takes a confirming code.
    s.call(
        reqwest::Method::PATCH,
        "/api/v1/users/bo@example.com",
        Some(&s.admin),
        Some(json!({"totp_required": false})),
    )
    .await;
    let (b, _) = sign_in(&s, "bo@example.com").await;
    let token = me(&s, &b).await.1["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let set_up: Value = b
        .post(s.url("/api/v1/me/totp"))
        .header("x-csrf-token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = set_up["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        with_code(&s, "bo@example.com", "").await.status(),
        StatusCode::SEE_OTHER,
        "pending until confirmed"
    );
    let r = b
        .post(s.url("/api/v1/me/totp/confirm"))
        .header("x-csrf-token", &token)
        .json(&json!({"code": "123456"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = b
        .post(s.url("/api/v1/me/totp/confirm"))
        .header("x-csrf-token", &token)
        .json(&json!({"code": code(&secret, 0)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        with_code(&s, "bo@example.com", "").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Once on, a session alone cannot move it to another device.
    let r = b
        .post(s.url("/api/v1/me/totp"))
        .header("x-csrf-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        with_code(&s, "bo@example.com", &code(&secret, 1))
            .await
            .status(),
        StatusCode::SEE_OTHER
    );

    let trail = s.audit_trail().await;
    let actions: Vec<_> = trail
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "user.totp_enabled").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"user.totp_required".to_owned()));
    let methods: Vec<_> = trail
        .iter()
        .filter(|e| e["action"] == "auth.login")
        .map(|e| {
            e["changes"]["session"]["after"]["method"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(methods.contains(&"password+totp".to_owned()), "{methods:?}");
    s.stop().await;
}

async fn address_limit_and_secure_cookies(backend: Backend) {
    let s = TestServer::start_with(backend, |config, _| {
        config.auth.max_failures_per_address = 3;
        config.auth.secure_cookies = true;
    })
    .await;
    add_person(&s, "ana@example.com", Role::Agent).await;
    // Failures for different accounts from one address add up.
    for who in ["x@example.com", "y@example.com", "z@example.com"] {
        let b = browser();
        let csrf = login_form(&s, &b).await;
        assert_eq!(
            submit(&s, &b, who, "wrong-password-123", &csrf, &[])
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let b = browser();
    let csrf = login_form(&s, &b).await;
    let r = submit(&s, &b, "ana@example.com", PASSWORD, &csrf, &[]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);

    // Served over HTTPS (as configured), cookies are Secure.
    let r = browser().get(s.url("/login")).send().await.unwrap();
    let set = r
        .headers()
        .get(SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set.contains("Secure") && set.contains("HttpOnly"), "{set}");
    s.stop().await;
}

async fn ended_sign_in_state_is_purged(backend: Backend) {
    let s = TestServer::start(backend).await;
    add_person(&s, "ana@example.com", Role::Agent).await;
    let (live, _) = sign_in(&s, "ana@example.com").await;
    let (old, _) = sign_in(&s, "ana@example.com").await;
    let b = browser();
    let csrf = login_form(&s, &b).await;
    submit(&s, &b, "ana@example.com", "wrong-password-123", &csrf, &[]).await;
    let then = match backend {
        Backend::Sqlite => "'2020-01-01T00:00:00.000000Z'",
        Backend::Postgres => "'2020-01-01T00:00:00Z'::timestamptz",
    };
    // The newer session and the failure are made to look long ago.
    let oldest = "(SELECT id_hash FROM sessions ORDER BY created_at DESC LIMIT 1)";
    s.db.sql(&format!(
        "UPDATE sessions SET last_seen_at = {then} WHERE id_hash = {oldest}"
    ))
    .await
    .unwrap();
    s.db.sql(&format!("UPDATE login_failures SET at = {then}"))
        .await
        .unwrap();

    let desk = s.db.desk().await;
    assert_eq!(desk.purge_sign_in_state().await.unwrap(), (1, 1, 0));
    assert_eq!(desk.purge_sign_in_state().await.unwrap(), (0, 0, 0));
    desk.db().close().await;
    assert_eq!(
        me(&s, &live).await.0,
        StatusCode::OK,
        "a live session stays"
    );
    assert_eq!(me(&s, &old).await.0, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

async fn parallel_guesses_count_against_each_other(backend: Backend) {
    let s = TestServer::start(backend).await;
    add_person(&s, "ana@example.com", Role::Agent).await;
    let mut forms = Vec::new();
    for _ in 0..10 {
        let b = browser();
        let csrf = login_form(&s, &b).await;
        forms.push((b, csrf));
    }
    let guesses = forms
        .iter()
        .map(|(b, csrf)| submit(&s, b, "ana@example.com", "wrong-password-123", csrf, &[]));
    let answers = futures::future::join_all(guesses).await;
    let codes: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(codes.iter().filter(|c| **c == 401).count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 5, "{codes:?}");
    let b = browser();
    let csrf = login_form(&s, &b).await;
    assert_eq!(
        submit(&s, &b, "ana@example.com", PASSWORD, &csrf, &[])
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    s.stop().await;
}

/// A text far longer than anything opsdesk keeps of what strangers send.
fn huge(len: usize) -> String {
    "x".repeat(len)
}

async fn sign_on_noise_writes_nothing_when_sso_is_off(backend: Backend) {
    let s = TestServer::start(backend).await;
    let head = s.audit_head().await;
    let b = browser();
    let noise = format!(
        "/auth/oidc/callback?error=x&error_description={}",
        huge(60 * 1024)
    );
    for _ in 0..3 {
        let r = b.get(s.url(&noise)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(r.text().await.unwrap().contains("not set up"));
        let r = b.get(s.url("/auth/oidc/start")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(
        s.audit_head().await,
        head,
        "nothing reaches the audit trail while single sign-on is off"
    );
    s.stop().await;
}

async fn failed_sign_ins_keep_only_clipped_text(backend: Backend) {
    let s = TestServer::start(backend).await;
    let b = browser();
    let csrf = login_form(&s, &b).await;
    let head = s.audit_head().await;
    let email = format!("{}@example.com", huge(100 * 1024));
    let r = submit(&s, &b, &email, "wrong-password-123", &csrf, &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.audit_head().await,
        head,
        "a sign-in to no account writes nothing to the audit trail"
    );
    // The failure table keeps the attempt, clipped too.
    assert_eq!(
        s.db.sql("UPDATE login_failures SET email = email WHERE length(email) > 256")
            .await
            .unwrap(),
        0,
        "no long email in the failure table"
    );
    assert_eq!(
        s.db.sql("UPDATE login_failures SET email = email")
            .await
            .unwrap(),
        1
    );
    s.stop().await;
}

async fn anonymous_writes_are_rate_limited_per_address(backend: Backend) {
    let s = TestServer::start(backend).await;
    let head = s.audit_head().await;
    let b = browser();
    // Sixty sign-in posts a minute from one address are let through (here refused for their
    // missing CSRF token, which writes nothing)...
    for i in 0..60 {
        let r = b
            .post(s.url("/login"))
            .form(&[
                ("email", "ana@example.com"),
                ("password", "x"),
                ("csrf", ""),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "request {i}");
    }
    // ...then every endpoint anyone may call that writes says 429 for the rest of the minute.
    let r = b
        .post(s.url("/login"))
        .form(&[
            ("email", "ana@example.com"),
            ("password", "x"),
            ("csrf", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    for path in [
        "/auth/oidc/start",
        "/auth/oidc/callback?error=x&error_description=y",
    ] {
        let r = b.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    let r = b
        .post(s.url("/setup"))
        .form(&[
            ("token", "odk_x"),
            ("email", "a@example.com"),
            ("password", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(s.audit_head().await, head);
    s.stop().await;
}

/// The configuration with `server.trusted_proxies` set, as a TOML file would set it.
fn trusting(config: &mut opsdesk::config::Config, proxies: &str) {
    use figment::providers::{Format, Serialized, Toml};
    *config = figment::Figment::from(Serialized::defaults(config.clone()))
        .merge(Toml::string(&format!(
            "[server]\ntrusted_proxies = {proxies}"
        )))
        .extract()
        .unwrap();
}

async fn fail_from(s: &TestServer, header: (&str, &str), email: &str) -> StatusCode {
    let b = browser();
    let csrf = login_form(s, &b).await;
    submit(s, &b, email, "wrong-password-123", &csrf, &[header])
        .await
        .status()
}

async fn trusted_proxies_name_the_client(backend: Backend) {
    let s = TestServer::start_with(backend, |config, _| {
        config.auth.max_failures_per_address = 3;
        trusting(config, r#"["127.0.0.1/32"]"#);
    })
    .await;
    for who in [
        "ana@example.com",
        "x@example.com",
        "y@example.com",
        "z@example.com",
    ] {
        add_person(&s, who, Role::Agent).await;
    }
    // Behind the load balancer: the client wrote the first hop itself; the balancer appended
    // the address it saw.
    let a = ("x-forwarded-for", "203.0.113.50, 198.51.100.7");
    for who in ["x@example.com", "y@example.com", "z@example.com"] {
        assert_eq!(fail_from(&s, a, who).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        fail_from(&s, a, "w@example.com").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Other clients behind the same balancer are not locked out by the first.
    let c = ("forwarded", r#"for="198.51.100.9";proto=https"#);
    assert_eq!(
        fail_from(&s, c, "x@example.com").await,
        StatusCode::UNAUTHORIZED
    );
    let b = browser();
    let csrf = login_form(&s, &b).await;
    let r = submit(
        &s,
        &b,
        "ana@example.com",
        PASSWORD,
        &csrf,
        &[("x-forwarded-for", "198.51.100.8")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let trail = s.audit_trail().await;
    let clients = |action: &str| -> Vec<String> {
        trail
            .iter()
            .filter(|e| e["action"] == action)
            .map(|e| {
                let after = &e["changes"]["attempt"]["after"];
                let after = if after.is_null() {
                    &e["changes"]["session"]["after"]
                } else {
                    after
                };
                after["client"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(
        clients("auth.login_failed"),
        [
            "198.51.100.7",
            "198.51.100.7",
            "198.51.100.7",
            "198.51.100.9"
        ]
    );
    assert_eq!(clients("auth.login"), ["198.51.100.8"]);
    s.stop().await;

    // Not from a trusted proxy: the header is anyone's word, and ignored.
    let s = TestServer::start_with(backend, |config, _| {
        config.auth.max_failures_per_address = 3;
    })
    .await;
    for who in ["x@example.com", "y@example.com", "z@example.com"] {
        add_person(&s, who, Role::Agent).await;
    }
    for (i, who) in ["x@example.com", "y@example.com", "z@example.com"]
        .into_iter()
        .enumerate()
    {
        let spoofed = format!("198.51.100.{}", 20 + i);
        assert_eq!(
            fail_from(&s, ("x-forwarded-for", spoofed.as_str()), who).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        fail_from(&s, ("x-forwarded-for", "198.51.100.30"), "w@example.com").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let trail = s.audit_trail().await;
    let failed: Vec<_> = trail
        .iter()
        .filter(|e| e["action"] == "auth.login_failed")
        .collect();
    assert_eq!(failed.len(), 3);
    assert!(failed
        .iter()
        .all(|e| e["changes"]["attempt"]["after"]["client"] == "127.0.0.1"));
    s.stop().await;
}
