//! A JSON body extractor whose errors say what is wrong and where: 400 for JSON that does not
//! parse, 422 naming the field for JSON of the wrong shape, 413 for an oversized body.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::{ApiError, MAX_BODY_BYTES};

/// A JSON body. Unless `ARRAY` is set, the body must be an object: serde reads a struct from
/// an array too (`[null, null]`), which the document does not allow.
pub struct ApiJson<T, const ARRAY: bool = false>(pub T);

impl<S, T, const ARRAY: bool> FromRequest<S> for ApiJson<T, ARRAY>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !json_type {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge {
                    max: MAX_BODY_BYTES,
                }
            } else {
                ApiError::Malformed(format!("could not read the request body: {e}"))
            }
        })?;
        if !ARRAY && bytes.trim_ascii_start().starts_with(b"[") {
            return Err(ApiError::invalid("", "the body must be a JSON object"));
        }
        parse(&bytes).map(ApiJson)
    }
}

/// Parses a JSON document into `T`, classifying what went wrong.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let msg = inner.to_string();
                // serde names the missing or unknown key in its message, not in the path.
                let named = ["unknown field `", "missing field `"]
                    .iter()
                    .find_map(|p| msg.strip_prefix(p))
                    .and_then(|rest| rest.split('`').next());
                // An unknown key is already the last part of the path; a missing one is not.
                let field = match (named, path.as_str()) {
                    (Some(name), ".") => name.to_owned(),
                    (Some(name), p) if p == name || p.ends_with(&format!(".{name}")) => {
                        p.to_owned()
                    }
                    (Some(name), parent) => format!("{parent}.{name}"),
                    (None, p) => p.to_owned(),
                };
                let detail = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
                ApiError::invalid(field, detail)
            }
            _ => ApiError::Malformed(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::Malformed(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsdesk_domain::validation::{NewComment, NewTicket};

    fn field_of(body: &str) -> (u16, Option<String>) {
        match parse::<NewTicket>(body.as_bytes()) {
            Ok(_) => (200, None),
            Err(ApiError::Invalid { field, .. }) => (422, Some(field)),
            Err(ApiError::Malformed(_)) => (400, None),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn classifies_json_errors() {
        assert_eq!(field_of("{"), (400, None));
        assert_eq!(
            field_of(r#"{"title":"a","kind":"incident","severity":"SEV1"} x"#),
            (400, None)
        );
        assert_eq!(
            field_of(r#"{"title":"a","kind":"incident"}"#),
            (422, Some("severity".into()))
        );
        assert_eq!(
            field_of(r#"{"title":"a","kind":"incident","severity":"SEV9"}"#),
            (422, Some("severity".into()))
        );
        assert_eq!(
            field_of(r#"{"title":1,"kind":"incident","severity":"SEV1"}"#),
            (422, Some("title".into()))
        );
        assert_eq!(
            field_of(r#"{"title":"a","kind":"incident","severity":"SEV1","colour":1}"#),
            (422, Some("colour".into()))
        );
        assert_eq!(
            field_of(r#"{"title":"a","kind":"incident","severity":"SEV1","tags":["a",2]}"#),
            (422, Some("tags[1]".into()))
        );
        assert_eq!(
            field_of(r#"{"title":"a","kind":"incident","severity":"SEV1"}"#),
            (200, None)
        );
    }

    #[tokio::test]
    async fn an_object_body_is_not_read_from_an_array() {
        let request = |body: &'static str| {
            axum::http::Request::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(body))
                .unwrap()
        };
        let refused = ApiJson::<NewComment>::from_request(request(r#"["hi", true]"#), &()).await;
        assert!(
            matches!(&refused, Err(ApiError::Invalid { field, .. }) if field.is_empty()),
            "{:?}",
            refused.err()
        );
        let taken = ApiJson::<NewComment>::from_request(request(r#"{"body": "hi"}"#), &()).await;
        assert!(taken.is_ok());
        let list =
            ApiJson::<Vec<NewComment>, true>::from_request(request(r#"[{"body": "hi"}]"#), &())
                .await;
        assert!(list.is_ok());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse::<NewTicket>(&bytes);
            let _ = parse::<opsdesk_domain::validation::TicketPatch>(&bytes);
        }

        #[test]
        fn never_panics_on_json_like_text(s in r#"[{}\[\]":,a-z0-9 \\nulltrue.-]{0,80}"#) {
            let _ = parse::<NewTicket>(s.as_bytes());
            let _ = parse::<opsdesk_domain::validation::TicketPatch>(s.as_bytes());
        }
    }
}
