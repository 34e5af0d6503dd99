//! Amazon SNS HTTP(S) subscriptions: every message's signature is checked before anything
//! else; subscriptions are confirmed automatically; notifications carry CloudWatch alarms or
//! EventBridge events.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use opsdesk_aws::sns::{check_subscribe_url, MessageType, SnsError, SnsMessage, Verifier};
use opsdesk_core::Actor;
use opsdesk_domain::Role;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::signals::{ingest, Accepted};
use crate::error::Problem;
use crate::{ApiError, AppState};

/// What opsdesk needs to take SNS messages.
pub struct SnsIngest {
    pub verifier: Verifier,
    /// Confirms subscriptions (GET SubscribeURL); redirects are not followed.
    pub http: reqwest::Client,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_sns))
}

/// The answer to an SNS message.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnsAnswer {
    /// `Notification`, `SubscriptionConfirmation` or `UnsubscribeConfirmation`.
    pub r#type: String,
    /// For notifications: what their signals did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signals: Option<Accepted>,
    /// For subscription confirmations: confirmed with SNS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// For an Amazon SES receipt: what the message became (`ticket`, `comment`, `held`,
    /// `ignored`, `refused`, or `seen` when it was taken before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail: Option<String>,
}

fn sns_refused(e: SnsError) -> ApiError {
    metrics::counter!("opsdesk_ingest_refused_total", "input" => "sns", "reason" => e.reason())
        .increment(1);
    tracing::warn!(input = "sns", reason = e.reason(), error = %e, "SNS message refused");
    match e {
        SnsError::Malformed(m) => ApiError::Malformed(m),
        e @ SnsError::CertificateUnavailable { .. } => ApiError::Upstream(e.to_string()),
        other => ApiError::Forbidden(other.to_string()),
    }
}

/// Take a message from an SNS HTTP(S) subscription. The signature (SignatureVersion 1 or 2)
/// is verified with the certificate at SigningCertURL, which must be on an
/// `sns.<region>.amazonaws.com` host and issued by Amazon to SNS (its chain reaches a public
/// root through Amazon's intermediate CAs); the topic must be on `ingest.sns.topics`; messages older
/// than an hour are refused. SubscriptionConfirmation is confirmed at once.
#[utoipa::path(
    post,
    path = "/api/v1/ingest/sns",
    tag = "signals",
    request_body(content = Object, description = "An SNS message, as SNS posts it"),
    responses(
        (status = 200, description = "Taken and committed", body = SnsAnswer),
        (status = 400, description = "Not an SNS message", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Signature, certificate (URL, or not issued by Amazon to SNS), topic or age refused", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "SNS ingest is not set up (no topic in `ingest.sns.topics`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The notification holds no alarm or event opsdesk reads", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The certificate could not be fetched, or SNS refused the confirmation", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
async fn post_sns(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<SnsAnswer>), ApiError> {
    let Some(sns) = state.sns.clone() else {
        return Err(ApiError::NotFound(
            "SNS ingest is not set up: list topics in ingest.sns.topics".into(),
        ));
    };
    let msg = SnsMessage::parse(&body).map_err(sns_refused)?;
    sns.verifier
        .verify(&msg, state.desk.now())
        .await
        .map_err(sns_refused)?;
    let kind = msg.kind.as_str().to_owned();
    match msg.kind {
        MessageType::SubscriptionConfirmation => {
            confirm(&sns, &msg).await?;
            tracing::info!(topic = %msg.topic_arn, "SNS subscription confirmed");
            Ok((
                StatusCode::OK,
                Json(SnsAnswer {
                    r#type: kind,
                    signals: None,
                    confirmed: Some(true),
                    mail: None,
                }),
            ))
        }
        MessageType::UnsubscribeConfirmation => {
            tracing::warn!(topic = %msg.topic_arn, "SNS subscription ended by its topic owner");
            Ok((
                StatusCode::OK,
                Json(SnsAnswer {
                    r#type: kind,
                    signals: None,
                    confirmed: None,
                    mail: None,
                }),
            ))
        }
        MessageType::Notification => {
            let inner: serde_json::Value = serde_json::from_str(&msg.message).map_err(|_| {
                sns_refused_invalid(
                    "Message",
                    "is not JSON: opsdesk reads CloudWatch alarms, EventBridge events and SES receipts",
                )
            })?;
            if opsdesk_domain::mail::ses::is_receipt(&inner) {
                let outcome = take_ses_mail(&state, &msg.topic_arn, &inner).await?;
                return Ok((
                    StatusCode::OK,
                    Json(SnsAnswer {
                        r#type: kind,
                        signals: None,
                        confirmed: None,
                        mail: Some(outcome.as_str().to_owned()),
                    }),
                ));
            }
            let signals = opsdesk_domain::signal::from_payload(&inner, state.desk.now())
                .map_err(|e| sns_refused_invalid(&format!("Message.{}", e.field), &e.message))?;
            let topic = msg.topic_arn.rsplit(':').next().unwrap_or("sns");
            let actor = Actor::new(format!("sns:{topic}"), Role::Ingest);
            let outcomes = ingest(&state, &actor, "sns", signals).await?;
            Ok((
                StatusCode::OK,
                Json(SnsAnswer {
                    r#type: kind,
                    signals: Some(Accepted::from_outcomes(outcomes)),
                    confirmed: None,
                    mail: None,
                }),
            ))
        }
    }
}

/// Takes the message an SES receipt rule published: once, whichever node SNS reaches.
async fn take_ses_mail(
    state: &AppState,
    topic: &str,
    inner: &serde_json::Value,
) -> Result<opsdesk_core::mail::MailOutcome, ApiError> {
    use opsdesk_aws::ses::SesError;
    match opsdesk_aws::ses::take(&state.desk, topic, inner).await {
        Ok(outcome) => Ok(outcome),
        Err(SesError::Refused { field, message }) => Err(sns_refused_invalid(&field, &message)),
        // SNS delivers again: the object may not be readable yet, or S3 may be down.
        Err(SesError::Unavailable(why)) => Err(ApiError::Upstream(why)),
        Err(SesError::Desk(e)) => Err(e.into()),
    }
}

fn sns_refused_invalid(field: &str, message: &str) -> ApiError {
    super::signals::refused("sns", ApiError::invalid(field, message))
}

async fn confirm(sns: &Arc<SnsIngest>, msg: &SnsMessage) -> Result<(), ApiError> {
    let url = msg
        .subscribe_url
        .as_deref()
        .ok_or_else(|| sns_refused(SnsError::Malformed("SubscribeURL is missing".into())))?;
    let url = check_subscribe_url(url).map_err(sns_refused)?;
    let answer = sns
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| ApiError::Upstream(format!("could not confirm the subscription: {e}")))?;
    if !answer.status().is_success() {
        return Err(ApiError::Upstream(format!(
            "SNS refused the subscription confirmation: {}",
            answer.status()
        )));
    }
    Ok(())
}
