//! OpenID Connect single sign-on: authorization code flow with PKCE and a nonce, against a
//! provider found by discovery from its issuer URL. The ID token's signature (from the
//! provider's JWKS), issuer, audience, expiry and nonce are all checked before anyone is let in.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{CoreClient, CoreIdToken, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse,
};
use opsdesk_core::sso::{SsoIdentity, SsoMapping};
use opsdesk_core::Desk;
use serde::Deserialize;

use crate::ui::SESSION_COOKIE;
use crate::AppState;

const FLOW_COOKIE: &str = "opsdesk_sso";

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What an operator configures.
#[derive(Clone)]
pub struct SsoSettings {
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// Where the provider sends people back: `<opsdesk URL>/auth/oidc/callback`.
    pub redirect_url: String,
    pub scopes: Vec<String>,
    /// The ID token claim that lists a person's groups.
    pub groups_claim: String,
    pub mapping: SsoMapping,
}

impl std::fmt::Debug for SsoSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoSettings")
            .field("issuer_url", &self.issuer_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("redirect_url", &self.redirect_url)
            .finish_non_exhaustive()
    }
}

/// A provider opsdesk trusts, as found by discovery.
pub struct Sso {
    client: Client,
    http: reqwest::Client,
    settings: SsoSettings,
}

impl Sso {
    /// Reads the provider's discovery document and keys.
    pub async fn discover(settings: SsoSettings) -> Result<Sso, String> {
        // No redirects: a provider answers its own endpoints.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let issuer =
            IssuerUrl::new(settings.issuer_url.clone()).map_err(|e| format!("issuer URL: {e}"))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| format!("discovery at {} failed: {e}", settings.issuer_url))?;
        let redirect = RedirectUrl::new(settings.redirect_url.clone())
            .map_err(|e| format!("redirect URL: {e}"))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(settings.client_id.clone()),
            Some(ClientSecret::new(settings.client_secret.clone())),
        )
        .set_redirect_uri(redirect);
        Ok(Sso {
            client,
            http,
            settings,
        })
    }

    /// Checks an ID token as sent by the provider: signature, issuer, audience, expiry (by
    /// opsdesk's clock) and nonce; then reads who it names.
    pub fn verify_id_token(
        &self,
        desk: &Desk,
        jwt: &str,
        nonce: &str,
    ) -> Result<SsoIdentity, String> {
        let token = CoreIdToken::from_str(jwt).map_err(|e| format!("unreadable ID token: {e}"))?;
        let clock = desk.clone();
        let verifier = self
            .client
            .id_token_verifier()
            .set_time_fn(move || clock.now());
        let claims = token
            .claims(&verifier, &Nonce::new(nonce.to_owned()))
            .map_err(|e| format!("ID token refused: {e}"))?;
        let email = claims
            .email()
            .map(|e| e.as_str().to_owned())
            .ok_or("the ID token has no email claim")?;
        if claims.email_verified() == Some(false) {
            return Err("the provider has not verified this email".into());
        }
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned());
        // The signature is verified, so the payload's other claims can be read as they are.
        let payload = jwt
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .unwrap_or_default();
        let groups = match &payload[&self.settings.groups_claim] {
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect(),
            serde_json::Value::String(one) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(SsoIdentity {
            issuer: claims.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            email,
            email_verified: claims.email_verified(),
            name,
            groups,
        })
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/oidc/start", get(start))
        .route("/auth/oidc/callback", get(callback))
}

fn flow_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build((FLOW_COOKIE, value))
        .http_only(true)
        .secure(state.secure_cookies)
        // Lax: the provider sends the browser back with a top-level GET.
        .same_site(SameSite::Lax)
        .path("/auth/oidc")
        .build()
}

/// Sends the browser to the provider.
async fn start(State(state): State<AppState>, jar: CookieJar) -> Response {
    let Some(sso) = state.sso.clone() else {
        return crate::ui::login_error(
            &state,
            jar,
            axum::http::StatusCode::NOT_FOUND,
            "single sign-on is not set up",
        );
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = sso.client.authorize_url(
        AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in &sso.settings.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, csrf, nonce) = request.set_pkce_challenge(challenge).url();
    if let Err(e) = state
        .desk
        .sso_begin(csrf.secret(), nonce.secret(), verifier.secret())
        .await
    {
        tracing::error!(error = %e, "cannot start single sign-on");
        return crate::ui::login_error(
            &state,
            jar,
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "single sign-on failed; try again",
        );
    }
    let jar = jar.add(flow_cookie(&state, csrf.secret().clone()));
    (jar, Redirect::to(url.as_str())).into_response()
}

#[derive(Debug, Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The provider sends the browser back here with a code, or an error.
async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Query(back): Query<Callback>,
) -> Response {
    let client = peer.ip().to_string();
    match finish(&state, &jar, back, &client).await {
        Ok(secret) => {
            let session = Cookie::build((SESSION_COOKIE, secret))
                .http_only(true)
                .secure(state.secure_cookies)
                .same_site(SameSite::Lax)
                .path("/")
                .build();
            let jar = jar
                .remove(Cookie::build(FLOW_COOKIE).path("/auth/oidc").build())
                .add(session);
            (jar, Redirect::to("/")).into_response()
        }
        Err((status, reason)) => {
            if let Err(e) = state.desk.sso_refused(&reason, &client).await {
                tracing::error!(error = %e, "cannot record a refused sign-on");
            }
            let jar = jar.remove(Cookie::build(FLOW_COOKIE).path("/auth/oidc").build());
            crate::ui::login_error(&state, jar, status, "single sign-on was refused; try again")
        }
    }
}

type Refusal = (axum::http::StatusCode, String);

async fn finish(
    state: &AppState,
    jar: &CookieJar,
    back: Callback,
    client: &str,
) -> Result<String, Refusal> {
    use axum::http::StatusCode as S;
    let sso: Arc<Sso> = state
        .sso
        .clone()
        .ok_or((S::NOT_FOUND, "single sign-on is not set up".to_owned()))?;
    if let Some(error) = back.error {
        return Err((
            S::UNAUTHORIZED,
            format!(
                "the provider said {error}: {}",
                back.error_description.unwrap_or_default()
            ),
        ));
    }
    let returned = back.state.ok_or((S::BAD_REQUEST, "no state".to_owned()))?;
    // The flow must come back to the browser that started it.
    let started = jar
        .get(FLOW_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if started.is_empty() || started != returned {
        return Err((S::FORBIDDEN, "state mismatch".to_owned()));
    }
    let (nonce, verifier) = state
        .desk
        .sso_resume(&returned)
        .await
        .map_err(|e| (S::INTERNAL_SERVER_ERROR, e.to_string()))?
        .ok_or((S::FORBIDDEN, "unknown or expired state".to_owned()))?;
    let code = back.code.ok_or((S::BAD_REQUEST, "no code".to_owned()))?;
    let token = sso
        .client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| (S::INTERNAL_SERVER_ERROR, e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&sso.http)
        .await
        .map_err(|e| (S::UNAUTHORIZED, format!("code exchange failed: {e}")))?;
    let id_token = token
        .id_token()
        .ok_or((S::UNAUTHORIZED, "no ID token".to_owned()))?;
    let who = sso
        .verify_id_token(&state.desk, &id_token.to_string(), &nonce)
        .map_err(|e| (S::UNAUTHORIZED, e))?;
    let session = state
        .desk
        .login_sso(who, &sso.settings.mapping, client)
        .await
        .map_err(|e| (S::UNAUTHORIZED, e.to_string()))?;
    Ok(session.secret)
}
