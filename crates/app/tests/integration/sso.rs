//! Single sign-on against a real OpenID Connect provider (`oidc-provider` from npm, run by
//! the tests from crates/app/tests/oidc).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use opsdesk_core::{Desk, FixedClock};
use reqwest::header::LOCATION;
use reqwest::{redirect, Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{on_both_backends, Backend, TestServer};

on_both_backends!(
    sso_signs_people_in_and_keeps_them_up_to_date,
    sso_refuses_what_it_must,
    accounts_answer_to_one_provider_identity,
    sso_needs_a_verified_email,
    sso_never_takes_over_a_local_account,
    callbacks_not_started_here_write_nothing,
    unfinished_sign_ons_are_forgotten_at_the_next_start,
    sign_ons_in_progress_are_capped,
);

const CLIENT_ID: &str = "opsdesk-test";
const CLIENT_SECRET: &str = "test-client-secret-0123456789";
/// A second client of the same provider: its ID tokens are for another audience.
const OTHER_CLIENT: (&str, &str) = ("another-app", "another-app-secret-0123456789");

/// A running provider; stopped when dropped.
struct Provider {
    child: Child,
    issuer: String,
}

impl Provider {
    fn start(redirect_uri: &str) -> Provider {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc");
        assert!(
            std::path::Path::new(&format!("{dir}/node_modules/oidc-provider")).exists(),
            "the OpenID Connect provider is not installed: run `npm ci --prefix crates/app/tests/oidc` (scripts/test does)"
        );
        let mut child = Command::new("node")
            .arg(format!("{dir}/provider.mjs"))
            .env("OIDC_PORT", "0")
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
            .env("OIDC_REDIRECT_URI", redirect_uri)
            .env("OIDC_EXTRA_CLIENT_ID", OTHER_CLIENT.0)
            .env("OIDC_EXTRA_CLIENT_SECRET", OTHER_CLIENT.1)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node must be installed");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let issuer = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(iss) = line.strip_prefix("OIDC_ISSUER=") {
                        break iss.to_owned();
                    }
                }
                other => panic!("the provider did not start: {other:?}"),
            }
        };
        Provider { child, issuer }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(r: &reqwest::Response) -> String {
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "expected a redirect from {}",
        r.url()
    );
    r.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// Signs in at the provider after its authorization URL; returns where it sends the browser.
async fn at_provider(b: &reqwest::Client, issuer: &str, auth_url: &str, login: &str) -> String {
    let interaction = location(&b.get(auth_url).send().await.unwrap());
    assert!(interaction.starts_with("/interaction/"), "{interaction}");
    let r = b
        .post(format!("{issuer}{interaction}/login"))
        .form(&[("login", login), ("password", "any")])
        .send()
        .await
        .unwrap();
    let resume = location(&r);
    location(&b.get(resume).send().await.unwrap())
}

/// The whole flow in a browser: returns the answer of opsdesk's callback.
async fn sso(s: &TestServer, p: &Provider, b: &reqwest::Client, login: &str) -> reqwest::Response {
    let auth_url = location(&b.get(s.url("/auth/oidc/start")).send().await.unwrap());
    assert!(
        auth_url.starts_with(&format!("{}/auth?", p.issuer)),
        "{auth_url}"
    );
    assert!(
        auth_url.contains("code_challenge_method=S256") && auth_url.contains("nonce="),
        "{auth_url}"
    );
    let back = at_provider(b, &p.issuer, &auth_url, login).await;
    assert!(back.starts_with(&s.url("/auth/oidc/callback?")), "{back}");
    b.get(back).send().await.unwrap()
}

async fn start(backend: Backend, sso_only: bool) -> (TestServer, Provider) {
    let mut provider = None;
    let s = TestServer::start_with(backend, |config, base| {
        let p = Provider::start(&format!("{base}/auth/oidc/callback"));
        config.oidc.issuer_url = p.issuer.clone();
        config.oidc.client_id = CLIENT_ID.into();
        config.oidc.client_secret = CLIENT_SECRET.into();
        config.oidc.redirect_url = format!("{base}/auth/oidc/callback");
        config.oidc.scopes = vec![
            "openid".into(),
            "email".into(),
            "profile".into(),
            "groups".into(),
        ];
        config
            .oidc
            .roles
            .insert("ops-admins".into(), "admin".into());
        config.oidc.teams.insert("sre".into(), "SRE".into());
        config.oidc.sso_only = sso_only;
        provider = Some(p);
    })
    .await;
    (s, provider.unwrap())
}

async fn me(s: &TestServer, b: &reqwest::Client) -> (StatusCode, Value) {
    let r = b.get(s.url("/api/v1/me")).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn sso_signs_people_in_and_keeps_them_up_to_date(backend: Backend) {
    let (s, p) = start(backend, false).await;
    let page = browser()
        .get(s.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Sign in with SSO") && page.contains(r#"name="password""#),
        "{page}"
    );

    let ana = browser();
    let r = sso(&s, &p, &ana, "ana@example.com").await;
    assert_eq!(location(&r), "/");
    let (status, who) = me(&s, &ana).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["name"], "user:ana@example.com");
    assert_eq!(who["role"], "admin", "ops-admins maps to admin");

    let users = s
        .call(Method::GET, "/api/v1/users", Some(&s.admin), None)
        .await
        .body;
    let made = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ana@example.com")
        .unwrap()
        .clone();
    assert_eq!(made["display_name"], "Ana Silva");
    assert_eq!(made["teams"], json!(["SRE"]));
    assert_eq!(made["has_password"], false);

    let cy = browser();
    sso(&s, &p, &cy, "cy@example.com").await;
    assert_eq!(
        me(&s, &cy).await.1["role"],
        "requester",
        "no mapped group: the default role"
    );

    // A local account (with a password) keeps the role and teams set in opsdesk.
    // A local account (with a password) answers to SSO once an admin links it.
    let desk = s.db.desk().await;
    crate::common::add_local_user(&desk, "bo@example.com", opsdesk_domain::Role::Admin).await;
    desk.link_sso(
        &opsdesk_core::Actor::cli(),
        "bo@example.com",
        Some((&p.issuer, "bo")),
    )
    .await
    .unwrap();
    desk.db().close().await;

    let bo = browser();
    sso(&s, &p, &bo, "bo@example.com").await;
    assert_eq!(
        me(&s, &bo).await.1["role"],
        "admin",
        "a local account keeps its role"
    );

    // Each sign-in brings the account back in line with the provider.
    let r = s
        .call(
            Method::PATCH,
            "/api/v1/users/ana@example.com",
            Some(&s.admin),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(r.body["role"], "viewer");
    let again = browser();
    sso(&s, &p, &again, "ana@example.com").await;
    assert_eq!(me(&s, &again).await.1["role"], "admin");

    let trail = s.audit_trail().await;
    let by_sso: Vec<_> = trail
        .iter()
        .filter(|e| e["actor"] == "sso")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        by_sso,
        [
            "user.created",
            "team.created",
            "user.created",
            "user.role_changed"
        ]
    );
    let logins: Vec<_> = trail
        .iter()
        .filter(|e| e["action"] == "auth.login")
        .map(|e| e["changes"]["session"]["after"]["method"].as_str().unwrap())
        .collect();
    assert_eq!(logins, ["oidc", "oidc", "oidc", "oidc"]);
    s.stop().await;
}

/// An ID token straight from a provider, for a nonce of the test's choosing.
async fn id_token(p: &Provider, redirect_uri: &str, login: &str, nonce: &str) -> String {
    id_token_for(p, (CLIENT_ID, CLIENT_SECRET), redirect_uri, login, nonce).await
}

async fn id_token_for(
    p: &Provider,
    (client_id, client_secret): (&str, &str),
    redirect_uri: &str,
    login: &str,
    nonce: &str,
) -> String {
    let b = browser();
    let verifier = "v".repeat(50);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let auth = reqwest::Url::parse_with_params(
        &format!("{}/auth", p.issuer),
        &[
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("response_type", "code"),
            ("scope", "openid email profile groups"),
            ("state", "s"),
            ("nonce", nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let back = at_provider(&b, &p.issuer, auth.as_str(), login).await;
    let code = reqwest::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let token: Value = reqwest::Client::new()
        .post(format!("{}/token", p.issuer))
        .basic_auth(client_id, Some(client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["id_token"].as_str().unwrap().to_owned()
}

async fn sso_refuses_what_it_must(backend: Backend) {
    let (s, p) = start(backend, true).await;
    let callback = s.url("/auth/oidc/callback");

    // SSO only: no password form, and a password sign-in is refused.
    let b = browser();
    let page = s.page(&b, "/login").await;
    assert!(
        page.contains("Sign in with SSO") && !page.contains(r#"name="password""#),
        "{page}"
    );

    // State that is not the one this browser started with.
    let b = browser();
    location(&b.get(s.url("/auth/oidc/start")).send().await.unwrap());
    let r = b
        .get(format!("{callback}?code=x&state=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(me(&s, &b).await.0, StatusCode::UNAUTHORIZED);

    // A callback carried to another browser, and the same callback twice.
    let first = browser();
    let auth_url = location(&first.get(s.url("/auth/oidc/start")).send().await.unwrap());
    let back = at_provider(&first, &p.issuer, &auth_url, "ana@example.com").await;
    let other = browser();
    assert_eq!(
        other.get(&back).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(location(&first.get(&back).send().await.unwrap()), "/");
    let replay = first.get(&back).send().await.unwrap();
    assert_ne!(
        replay.status(),
        StatusCode::SEE_OTHER,
        "a state is good once"
    );

    // The provider refusing the person.
    let b = browser();
    let auth_url = location(&b.get(s.url("/auth/oidc/start")).send().await.unwrap());
    let back = at_provider(&b, &p.issuer, &auth_url, "mallory@example.com").await;
    assert!(back.contains("error=access_denied"), "{back}");
    assert_eq!(
        b.get(&back).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // A disabled person stays out. (Another admin first: the last active admin cannot be
    // disabled.)
    let keeper = s
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&s.admin),
            Some(json!({"email": "keeper@example.com", "role": "admin", "password": "plum-tractor-velvet-42"})),
        )
        .await;
    assert_eq!(keeper.status, StatusCode::CREATED, "{}", keeper.body);
    let disabled = s
        .call(
            Method::PATCH,
            "/api/v1/users/ana@example.com",
            Some(&s.admin),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    let b = browser();
    assert_eq!(
        sso(&s, &p, &b, "ana@example.com").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me(&s, &b).await.0, StatusCode::UNAUTHORIZED);

    // Only the sign-ons a browser started with opsdesk are audited: the forged state, the
    // callback carried elsewhere and the replay are only logged.
    assert_eq!(
        refusal_reasons(&s.audit_trail().await),
        ["the provider said access_denied: unknown user", "disabled"]
    );

    // The ID token itself: signature, issuer, audience, expiry and nonce are all checked.
    let settings = opsdesk::config::Config {
        oidc: {
            let mut o = opsdesk::config::Config::default().oidc;
            o.issuer_url = p.issuer.clone();
            o.client_id = CLIENT_ID.into();
            o.client_secret = CLIENT_SECRET.into();
            o.redirect_url = callback.clone();
            o
        },
        ..Default::default()
    }
    .oidc
    .settings()
    .unwrap()
    .unwrap();
    let checker = opsdesk_web::sso::Sso::discover(settings).await.unwrap();
    let desk = s.db.desk().await;
    let good = id_token(&p, &callback, "bo@example.com", "n-1").await;
    let who = checker.verify_id_token(&desk, &good, "n-1").unwrap();
    assert_eq!(
        (who.email.as_str(), who.groups.clone()),
        ("bo@example.com", vec!["requesters".to_owned()])
    );
    assert!(
        checker.verify_id_token(&desk, &good, "n-2").is_err(),
        "wrong nonce"
    );

    let parts: Vec<&str> = good.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["email"] = json!("ana@example.com");
    claims["groups"] = json!(["ops-admins"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert!(
        checker.verify_id_token(&desk, &forged, "n-1").is_err(),
        "a changed payload breaks the signature"
    );

    let other_audience = id_token_for(&p, OTHER_CLIENT, &callback, "bo@example.com", "n-1").await;
    let err = checker
        .verify_id_token(&desk, &other_audience, "n-1")
        .unwrap_err();
    assert!(
        err.to_lowercase().contains("audience"),
        "another client's token: {err}"
    );

    let elsewhere = Provider::start(&callback);
    let foreign = id_token(&elsewhere, &callback, "bo@example.com", "n-1").await;
    assert!(
        checker.verify_id_token(&desk, &foreign, "n-1").is_err(),
        "another issuer's token"
    );

    let later = Desk::new(
        desk.db().clone(),
        Arc::new(FixedClock::new(desk.now() + chrono::TimeDelta::hours(2))),
    );
    let err = checker.verify_id_token(&later, &good, "n-1").unwrap_err();
    assert!(err.to_lowercase().contains("expire"), "{err}");
    desk.db().close().await;
    s.stop().await;
}

/// Binding an account to the provider's identity: by email only when the provider verified
/// it and the account has neither a password nor a second factor, else only by an admin; once
/// bound it answers to that identity only.
async fn accounts_answer_to_one_provider_identity(backend: Backend) {
    use opsdesk_core::sso::SsoOutcome;
    use opsdesk_core::Actor;
    let db = crate::common::TestDb::new(backend).await;
    let desk = db.desk().await;
    crate::common::add_local_user(&desk, "root@example.com", opsdesk_domain::Role::Admin).await;
    let issuer = "https://idp.example.com";
    let who = |subject: &str, verified: Option<bool>| opsdesk_core::sso::SsoIdentity {
        issuer: issuer.into(),
        subject: subject.into(),
        email: "ROOT@example.com".into(),
        email_verified: verified,
        name: None,
        groups: vec![],
    };
    let mapping = opsdesk_core::sso::SsoMapping::default();
    let outcome = |o: SsoOutcome| match o {
        SsoOutcome::Refused(why) => why.reason().to_owned(),
        SsoOutcome::SignedIn(s) => format!("signed in as {} ({})", s.actor.name, s.actor.role),
    };
    for unverified in [None, Some(false)] {
        let o = desk
            .login_sso(who("attacker", unverified), &mapping, "10.0.0.1")
            .await
            .unwrap();
        assert_eq!(outcome(o), "email not verified by the provider");
    }
    let o = desk
        .login_sso(who("root-sub", Some(true)), &mapping, "10.0.0.1")
        .await
        .unwrap();
    assert_eq!(outcome(o), "local account not linked to this identity");

    // Only admins link.
    let viewer = Actor::new("user:v@example.com", opsdesk_domain::Role::Viewer);
    assert!(matches!(
        desk.link_sso(&viewer, "root@example.com", Some((issuer, "root-sub")))
            .await,
        Err(opsdesk_core::Error::Forbidden(_))
    ));
    desk.link_sso(
        &Actor::cli(),
        "root@example.com",
        Some((issuer, "root-sub")),
    )
    .await
    .unwrap();
    let o = desk
        .login_sso(who("root-sub", None), &mapping, "10.0.0.1")
        .await
        .unwrap();
    assert_eq!(
        outcome(o),
        "signed in as user:root@example.com (admin)",
        "linked: the identity is enough"
    );
    let o = desk
        .login_sso(who("other-sub", Some(true)), &mapping, "10.0.0.1")
        .await
        .unwrap();
    assert_eq!(outcome(o), "bound to another identity");
    // One identity, one account.
    crate::common::add_local_user(&desk, "other@example.com", opsdesk_domain::Role::Agent).await;
    assert!(matches!(
        desk.link_sso(
            &Actor::cli(),
            "other@example.com",
            Some((issuer, "root-sub"))
        )
        .await,
        Err(opsdesk_core::Error::Conflict(_))
    ));
    // Unlinked, the account no longer answers to it.
    desk.link_sso(&Actor::cli(), "root@example.com", None)
        .await
        .unwrap();
    let o = desk
        .login_sso(who("root-sub", Some(true)), &mapping, "10.0.0.1")
        .await
        .unwrap();
    assert_eq!(outcome(o), "local account not linked to this identity");

    // A new person with a verified email gets an account bound to their identity at once.
    let mut newcomer = who("new-sub", Some(true));
    newcomer.email = "new@example.com".into();
    let o = desk
        .login_sso(newcomer.clone(), &mapping, "10.0.0.1")
        .await
        .unwrap();
    assert_eq!(outcome(o), "signed in as user:new@example.com (requester)");
    newcomer.subject = "impostor".into();
    let o = desk
        .login_sso(newcomer, &mapping, "10.0.0.1")
        .await
        .unwrap();
    assert_eq!(outcome(o), "bound to another identity");
    let actions: Vec<String> = desk
        .db()
        .audit_page(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&"user.sso_linked".to_owned())
            && actions.contains(&"user.sso_unlinked".to_owned()),
        "{actions:?}"
    );
    desk.db().close().await;
    db.drop_schema().await;
}

/// Sign-ons in progress are bounded: past the cap, starts are refused until some finish.
async fn sign_ons_in_progress_are_capped(backend: Backend) {
    let db = crate::common::TestDb::new(backend).await;
    let desk = db
        .desk()
        .await
        .with_auth_settings(opsdesk_core::sessions::AuthSettings {
            max_sso_starts: 2,
            ..Default::default()
        });
    desk.sso_begin("state-1", "n", "v").await.unwrap();
    desk.sso_begin("state-2", "n", "v").await.unwrap();
    // Past the cap a start still works: the oldest one in progress is forgotten.
    desk.sso_begin("state-3", "n", "v").await.unwrap();
    assert!(desk.sso_resume("state-1").await.unwrap().is_none());
    assert!(desk.sso_resume("state-3").await.unwrap().is_some());
    assert!(desk.sso_resume("state-2").await.unwrap().is_some());
    desk.db().close().await;
    db.drop_schema().await;
}

/// The sign-in page's alert, as the person reads it.
async fn alert(r: reqwest::Response) -> String {
    let html = r.text().await.unwrap();
    let re = regex_lite::Regex::new(r#"role="alert">([^<]*)<"#).unwrap();
    re.captures(&html)
        .map(|c| c[1].to_owned())
        .unwrap_or_else(|| panic!("no alert on {html}"))
}

fn refusal_reasons(trail: &[Value]) -> Vec<String> {
    trail
        .iter()
        .filter(|e| e["action"] == "auth.login_failed")
        .map(|e| {
            e["changes"]["attempt"]["after"]["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

async fn sso_needs_a_verified_email(backend: Backend) {
    let (s, p) = start(backend, false).await;
    // dee's provider says her email is not verified; eve's says nothing about it.
    for login in ["dee@example.com", "eve@example.com"] {
        let b = browser();
        let r = sso(&s, &p, &b, login).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{login}");
        let said = alert(r).await;
        assert!(said.contains("not verified your email"), "{login}: {said}");
        assert_eq!(me(&s, &b).await.0, StatusCode::UNAUTHORIZED, "{login}");
    }
    let users = s
        .call(Method::GET, "/api/v1/users", Some(&s.admin), None)
        .await
        .body;
    assert_eq!(
        users,
        json!([]),
        "no account is made from an unverified email"
    );
    assert_eq!(
        refusal_reasons(&s.audit_trail().await),
        [
            "email not verified by the provider",
            "email not verified by the provider"
        ]
    );
    s.stop().await;
}

async fn sso_never_takes_over_a_local_account(backend: Backend) {
    let (s, p) = start(backend, false).await;
    // bo is the break-glass admin with a password; cy signs in with a two-factor code.
    let desk = s.db.desk().await;
    crate::common::add_local_user(&desk, "bo@example.com", opsdesk_domain::Role::Admin).await;
    desk.add_user(
        &opsdesk_core::Actor::cli(),
        opsdesk_domain::NewUser {
            email: "cy@example.com".into(),
            display_name: None,
            role: opsdesk_domain::Role::Agent,
            teams: vec![],
            password: None,
        },
    )
    .await
    .unwrap();
    desk.set_totp_required(&opsdesk_core::Actor::cli(), "cy@example.com", true)
        .await
        .unwrap();
    desk.db().close().await;

    for login in ["bo@example.com", "cy@example.com"] {
        let b = browser();
        let r = sso(&s, &p, &b, login).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{login}");
        let said = alert(r).await;
        assert!(said.contains("ask an admin to link"), "{login}: {said}");
        assert_eq!(me(&s, &b).await.0, StatusCode::UNAUTHORIZED, "{login}");
    }
    assert_eq!(
        refusal_reasons(&s.audit_trail().await),
        [
            "local account not linked to this identity",
            "local account not linked to this identity"
        ]
    );

    // An admin links bo's account to bo's identity at the provider: then SSO lets bo in, and
    // bo keeps the role set in opsdesk.
    let dir = tempfile::tempdir().unwrap();
    let out = crate::cli::opsdesk(dir.path(), &s.db.url)
        .args([
            "user",
            "link-sso",
            "--email",
            "bo@example.com",
            "--subject",
            "bo",
            "--issuer",
            &p.issuer,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = browser();
    let r = sso(&s, &p, &b, "bo@example.com").await;
    assert_eq!(location(&r), "/");
    assert_eq!(me(&s, &b).await.1["role"], "admin");
    let trail = s.audit_trail().await;
    let linked: Vec<_> = trail
        .iter()
        .filter(|e| e["action"] == "user.sso_linked")
        .collect();
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0]["actor"], "cli");
    assert_eq!(
        linked[0]["changes"]["sso"]["after"],
        json!({"issuer": p.issuer, "subject": "bo"})
    );
    s.stop().await;
}

async fn callbacks_not_started_here_write_nothing(backend: Backend) {
    let (s, p) = start(backend, false).await;
    let callback = s.url("/auth/oidc/callback");
    let description = "x".repeat(60 * 1024);
    let head = s.audit_head().await;

    // Never started by this browser, twenty times over.
    for _ in 0..20 {
        let r = browser()
            .get(format!(
                "{callback}?error=x&error_description={description}"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    // Started, but not with this state.
    let b = browser();
    location(&b.get(s.url("/auth/oidc/start")).send().await.unwrap());
    let r = b
        .get(format!(
            "{callback}?state=forged&error=x&error_description={description}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(s.audit_head().await, head, "the audit trail did not grow");

    // A sign-on this browser started, that the provider refuses, is audited once, clipped.
    let b = browser();
    let auth_url = location(&b.get(s.url("/auth/oidc/start")).send().await.unwrap());
    let state = reqwest::Url::parse(&auth_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let r = b
        .get(format!(
            "{callback}?state={state}&error=access_denied&error_description={description}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let trail = s.audit_trail().await;
    let reasons = refusal_reasons(&trail);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].starts_with("the provider said access_denied: xxx")
            && reasons[0].chars().count() <= 256,
        "{} characters kept",
        reasons[0].chars().count()
    );
    drop(p);
    s.stop().await;
}

async fn unfinished_sign_ons_are_forgotten_at_the_next_start(backend: Backend) {
    let (s, _p) = start(backend, false).await;
    for _ in 0..3 {
        location(
            &browser()
                .get(s.url("/auth/oidc/start"))
                .send()
                .await
                .unwrap(),
        );
    }
    let then = match backend {
        Backend::Sqlite => "'2020-01-01T00:00:00.000000Z'",
        Backend::Postgres => "'2020-01-01T00:00:00Z'::timestamptz",
    };
    s.db.sql(&format!("UPDATE sso_logins SET created_at = {then}"))
        .await
        .unwrap();
    location(
        &browser()
            .get(s.url("/auth/oidc/start"))
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(
        s.db.sql("UPDATE sso_logins SET nonce = nonce")
            .await
            .unwrap(),
        1,
        "only the sign-on started last is kept"
    );
    s.stop().await;
}
