//! OpenID Connect single sign-on: authorization code flow with PKCE and a nonce, against a
//! provider found by discovery from its issuer URL. The ID token's signature (from the
//! provider's JWKS), issuer, audience, expiry and nonce are all checked before anyone is let in.

use std::str::FromStr;

use axum::extract::{Query, State};
use axum::http::StatusCode;
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
use opsdesk_core::sso::{SsoIdentity, SsoMapping, SsoOutcome};
use opsdesk_core::{Desk, Error};
use opsdesk_domain::text::clip;
use serde::Deserialize;

use crate::client::ClientAddr;
use crate::ui::{login_error, over_limit, SESSION_COOKIE, TOO_MANY_REQUESTS};
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
async fn start(State(state): State<AppState>, client: ClientAddr, jar: CookieJar) -> Response {
    if over_limit(&state, client, "/auth/oidc/start") {
        return login_error(
            &state,
            jar,
            StatusCode::TOO_MANY_REQUESTS,
            TOO_MANY_REQUESTS,
        );
    }
    let Some(sso) = state.sso.clone() else {
        return login_error(&state, jar, StatusCode::NOT_FOUND, SSO_OFF);
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
    match state
        .desk
        .sso_begin(csrf.secret(), nonce.secret(), verifier.secret())
        .await
    {
        Ok(()) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot start single sign-on");
            return login_error(
                &state,
                jar,
                StatusCode::INTERNAL_SERVER_ERROR,
                "single sign-on failed; try again",
            );
        }
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
    client: ClientAddr,
    jar: CookieJar,
    Query(back): Query<Callback>,
) -> Response {
    if over_limit(&state, client, "/auth/oidc/callback") {
        return login_error(
            &state,
            jar,
            StatusCode::TOO_MANY_REQUESTS,
            TOO_MANY_REQUESTS,
        );
    }
    let client = client.to_string();
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
        Err(refusal) => {
            match refusal.kept {
                Kept::Audit => {
                    if let Err(e) = state.desk.sso_refused(&refusal.reason, &client).await {
                        tracing::error!(error = %e, "cannot record a refused sign-on");
                    }
                }
                Kept::Log => {
                    let reason = clip(&refusal.reason);
                    tracing::info!(reason, client, "single sign-on callback refused");
                }
                Kept::Audited => {}
            }
            let jar = jar.remove(Cookie::build(FLOW_COOKIE).path("/auth/oidc").build());
            login_error(&state, jar, refusal.status, refusal.message)
        }
    }
}

const SSO_OFF: &str = "single sign-on is not set up";
const REFUSED: &str = "single sign-on was refused; try again";

/// Where the reason for a refused callback goes. Only a sign-on this browser started with
/// opsdesk reaches the audit trail; anything else anyone can send is noise for the log.
enum Kept {
    Audit,
    Log,
    /// Recorded already by the use case that refused it.
    Audited,
}

struct Refusal {
    status: StatusCode,
    /// For the audit trail or the log (clipped on the way).
    reason: String,
    kept: Kept,
    /// For the person.
    message: &'static str,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>, kept: Kept) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
            kept,
            message: REFUSED,
        }
    }
}

async fn finish(
    state: &AppState,
    jar: &CookieJar,
    back: Callback,
    client: &str,
) -> Result<String, Refusal> {
    use StatusCode as S;
    let Some(sso) = state.sso.clone() else {
        return Err(Refusal {
            message: SSO_OFF,
            ..Refusal::new(S::NOT_FOUND, SSO_OFF, Kept::Log)
        });
    };
    // The flow must come back to the browser that started it, with the state it was given.
    let started = jar
        .get(FLOW_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let returned = back.state.unwrap_or_default();
    if started.is_empty() || !crate::ui::same_secret(&started, &returned) {
        return Err(Refusal::new(
            S::FORBIDDEN,
            "no sign-on started by this browser with this state",
            Kept::Log,
        ));
    }
    let (nonce, verifier) = match state.desk.sso_resume(&returned).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Err(Refusal::new(
                S::FORBIDDEN,
                "unknown, used or expired state",
                Kept::Log,
            ))
        }
        Err(e) => {
            return Err(Refusal::new(
                S::INTERNAL_SERVER_ERROR,
                e.to_string(),
                Kept::Log,
            ))
        }
    };
    if let Some(error) = back.error {
        let said = format!(
            "the provider said {error}: {}",
            back.error_description.unwrap_or_default()
        );
        return Err(Refusal::new(S::UNAUTHORIZED, said, Kept::Audit));
    }
    let code = back
        .code
        .ok_or_else(|| Refusal::new(S::BAD_REQUEST, "no code", Kept::Audit))?;
    let token = sso
        .client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| Refusal::new(S::INTERNAL_SERVER_ERROR, e.to_string(), Kept::Audit))?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&sso.http)
        .await
        .map_err(|e| {
            Refusal::new(
                S::UNAUTHORIZED,
                format!("code exchange failed: {e}"),
                Kept::Audit,
            )
        })?;
    let id_token = token
        .id_token()
        .ok_or_else(|| Refusal::new(S::UNAUTHORIZED, "no ID token", Kept::Audit))?;
    let who = sso
        .verify_id_token(&state.desk, &id_token.to_string(), &nonce)
        .map_err(|e| Refusal::new(S::UNAUTHORIZED, e, Kept::Audit))?;
    match state
        .desk
        .login_sso(who, &sso.settings.mapping, client)
        .await
    {
        Ok(SsoOutcome::SignedIn(session)) => Ok(session.secret),
        Ok(SsoOutcome::Refused(why)) => Err(Refusal {
            message: why.message(),
            ..Refusal::new(S::UNAUTHORIZED, why.reason(), Kept::Audited)
        }),
        Err(e @ Error::Invalid(_)) => {
            Err(Refusal::new(S::UNAUTHORIZED, e.to_string(), Kept::Audit))
        }
        Err(e) => {
            tracing::error!(error = %e, "single sign-on failed");
            Err(Refusal::new(
                S::INTERNAL_SERVER_ERROR,
                e.to_string(),
                Kept::Log,
            ))
        }
    }
}
