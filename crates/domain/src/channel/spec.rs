//! Channel types and the channels made of them.
//!
//! A channel type ([`ChannelType`]) is one file that says everything opsdesk knows about one
//! way of telling people: the settings its channels take (their schema, checked by
//! [`ChannelType::validate`]), which of them are secret ([`ChannelType::redact`]), how a
//! channel is described in a list ([`ChannelType::summary`]), the fields of its form on the
//! admin page ([`ChannelType::FIELDS`]) and what a notification becomes on the wire
//! ([`ChannelType::render`]). The sending itself is one of three transports (an HTTP POST,
//! an email, an SNS publish) that the notify crate runs; a type picks one in its
//! [`Outgoing`].
//!
//! [`TYPES`] lists every type. The API, the configuration file, `opsdesk channel list` and
//! the admin page are driven from it, so adding a channel type is a new file beside this one
//! and its entry in `channel_types!` (which lists it in [`TYPES`]).
//!
//! A [`ChannelSpec`] is one named channel: a type and its settings, read and written flat,
//! tagged by `type`, in TOML and JSON alike:
//!
//! ```toml
//! [[notify.channels]]
//! name = "ops-sns"
//! type = "sns"
//! topic_arn = "arn:aws:sns:eu-west-1:123456789012:opsdesk"
//! ```

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use super::{Notification, TYPES};
use crate::validation::FieldError;

/// The channel type called `name`.
pub fn channel_type(name: &str) -> Option<&'static dyn AnyChannelType> {
    TYPES.iter().copied().find(|t| t.name() == name)
}

/// One field of a channel type's form on the admin page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormField {
    /// The setting it fills in (the key in TOML and JSON).
    pub key: &'static str,
    pub label: &'static str,
    pub input: Input,
    /// Shown beside the label, e.g. `(default: the topic's)`.
    pub hint: &'static str,
    pub placeholder: &'static str,
}

/// How a form field is filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// One line of text; left out when empty unless `required`.
    Text { required: bool },
    /// A secret: never shown back, left out when empty.
    Secret,
    /// One of these (value, label) pairs; the empty value leaves the setting out.
    Choice(&'static [(&'static str, &'static str)]),
    /// A list, separated by commas or spaces.
    List,
}

/// What a notification becomes for one channel, for a transport to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// An HTTP POST through the guarded client. A 2xx answer is a delivery; 408, 429 and
    /// 5xx are worth a retry.
    Post(Post),
    /// An email through the configured SMTP server to these addresses, and to the
    /// notification's own recipients.
    Email { to: Vec<String>, cc: Vec<String> },
    /// A message published to an SNS topic.
    Sns(SnsPublish),
    /// Nothing to send: this channel type has nothing to say about this event (the reason
    /// is recorded as the delivery's outcome).
    Nothing(String),
}

/// An HTTP POST.
#[derive(Clone, PartialEq)]
pub struct Post {
    pub url: String,
    /// The URL as errors and logs may show it (webhook URLs carry tokens in their path).
    pub shown_url: String,
    /// `Content-Type` and the type's own headers.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Secrets the request carries (a key in the body, a header value): a receiver's answer
    /// quoted in an error has them replaced by `<redacted>`.
    pub secrets: Vec<String>,
}

impl fmt::Debug for Post {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Post")
            .field("url", &self.shown_url)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// A message for an SNS topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsPublish {
    pub topic_arn: String,
    /// The region to publish in.
    pub region: Option<String>,
    pub subject: String,
    pub message: String,
    /// Message attributes subscriptions filter on.
    pub attributes: Vec<(&'static str, String)>,
}

/// One attempt at a delivery.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The same on every attempt of one delivery: receivers deduplicate on it.
    pub idempotency_key: &'a str,
    pub now: DateTime<Utc>,
}

/// One way of telling people. See the module's documentation.
pub trait ChannelType: Send + Sync + 'static {
    /// A channel's settings beside `name` and `type`. Deserializing it checks the shape
    /// (unknown fields refused); [`ChannelType::validate`] checks the values.
    type Settings: Serialize + DeserializeOwned + ToSchema + Clone + PartialEq + Send + Sync;

    /// The `type` in TOML and JSON: lowercase letters.
    const NAME: &'static str;
    /// As people read it: `Amazon SNS`.
    const LABEL: &'static str;
    /// The admin page's form, in order. Settings not in it are set through the API or the
    /// configuration file.
    const FIELDS: &'static [FormField];
    /// Whether it reaches people by email, so that an AWS account team can be mailed
    /// through it.
    const EMAILS_PEOPLE: bool = false;
    /// Whether it carries scheduled trend reports.
    const CARRIES_REPORTS: bool = false;
    /// Whether it keeps state per ticket (an alert that is open until resolved), so that a
    /// ticket it was told about is followed to its acknowledgement and resolution whatever
    /// the routing rules say of those events.
    const FOLLOWS_TICKETS: bool = false;

    /// Checks the settings; the error names the bad field. May tidy them (trim, dedup).
    fn validate(settings: Self::Settings) -> Result<Self::Settings, FieldError>;

    /// The settings as they may be shown or recorded: secrets replaced by `<redacted>`,
    /// URLs that carry tokens masked. The default shows them as they are.
    fn redact(settings: &mut Self::Settings) {
        let _ = settings;
    }

    /// Where it sends, on one line, with nothing secret: a topic, a masked URL, addresses.
    fn summary(settings: &Self::Settings) -> String;

    /// What `n` becomes for a channel of these settings.
    fn render(
        settings: &Self::Settings,
        n: &Notification,
        attempt: Attempt<'_>,
    ) -> Result<Outgoing, String>;
}

/// A [`ChannelType`] behind a reference: what [`TYPES`] lists.
pub trait AnyChannelType: Send + Sync {
    fn name(&self) -> &'static str;
    fn label(&self) -> &'static str;
    fn fields(&self) -> &'static [FormField];
    fn emails_people(&self) -> bool;
    fn carries_reports(&self) -> bool;
    fn follows_tickets(&self) -> bool;
    /// Reads settings (without `name` and `type`); the error is serde's.
    fn read(&self, settings: Value) -> Result<Map<String, Value>, String>;
    fn validate(&self, settings: Map<String, Value>) -> Result<Map<String, Value>, FieldError>;
    fn redact(&self, settings: &mut Map<String, Value>);
    fn summary(&self, settings: &Map<String, Value>) -> String;
    fn render(
        &self,
        settings: &Map<String, Value>,
        n: &Notification,
        attempt: Attempt<'_>,
    ) -> Result<Outgoing, String>;
    /// The settings' schema, an object.
    fn schema(&self) -> RefOr<Schema>;
    /// Schemas the settings' schema refers to.
    fn schemas(&self, out: &mut Vec<(String, RefOr<Schema>)>);
}

/// A [`ChannelType`] as an [`AnyChannelType`].
pub struct Registered<T>(PhantomData<fn() -> T>);

impl<T> Registered<T> {
    pub const NEW: Registered<T> = Registered(PhantomData);
}

fn typed<T: DeserializeOwned>(settings: &Map<String, Value>) -> Result<T, String> {
    T::deserialize(Value::Object(settings.clone())).map_err(|e| e.to_string())
}

fn untyped<T: Serialize>(settings: &T) -> Map<String, Value> {
    match serde_json::to_value(settings) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

impl<T: ChannelType> AnyChannelType for Registered<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn label(&self) -> &'static str {
        T::LABEL
    }

    fn fields(&self) -> &'static [FormField] {
        T::FIELDS
    }

    fn emails_people(&self) -> bool {
        T::EMAILS_PEOPLE
    }

    fn carries_reports(&self) -> bool {
        T::CARRIES_REPORTS
    }

    fn follows_tickets(&self) -> bool {
        T::FOLLOWS_TICKETS
    }

    fn read(&self, settings: Value) -> Result<Map<String, Value>, String> {
        let settings: T::Settings = serde_json::from_value(settings).map_err(|e| e.to_string())?;
        Ok(untyped(&settings))
    }

    fn validate(&self, settings: Map<String, Value>) -> Result<Map<String, Value>, FieldError> {
        let settings = typed::<T::Settings>(&settings).map_err(|e| FieldError::new("type", e))?;
        Ok(untyped(&T::validate(settings)?))
    }

    fn redact(&self, settings: &mut Map<String, Value>) {
        match typed::<T::Settings>(settings) {
            Ok(mut s) => {
                T::redact(&mut s);
                *settings = untyped(&s);
            }
            // Settings that no longer read as their type show nothing.
            Err(_) => settings.clear(),
        }
    }

    fn summary(&self, settings: &Map<String, Value>) -> String {
        typed::<T::Settings>(settings)
            .map(|s| T::summary(&s))
            .unwrap_or_default()
    }

    fn render(
        &self,
        settings: &Map<String, Value>,
        n: &Notification,
        attempt: Attempt<'_>,
    ) -> Result<Outgoing, String> {
        T::render(&typed::<T::Settings>(settings)?, n, attempt)
    }

    fn schema(&self) -> RefOr<Schema> {
        <T::Settings as utoipa::PartialSchema>::schema()
    }

    fn schemas(&self, out: &mut Vec<(String, RefOr<Schema>)>) {
        <T::Settings as ToSchema>::schemas(out)
    }
}

pub const CHANNEL_NAME_MAX: usize = 64;

/// One named destination for notifications: its type and that type's settings.
#[derive(Clone)]
pub struct ChannelSpec {
    /// Unique; letters, digits, `-`, `_` and `.`.
    pub name: String,
    kind: &'static dyn AnyChannelType,
    /// Read as the type's settings (the shape checked), without `name` and `type`.
    settings: Map<String, Value>,
}

impl PartialEq for ChannelSpec {
    fn eq(&self, other: &ChannelSpec) -> bool {
        self.name == other.name
            && self.kind.name() == other.kind.name()
            && self.settings == other.settings
    }
}

impl Eq for ChannelSpec {}

/// Shows the channel redacted: secrets and URL paths never reach a log.
impl fmt::Debug for ChannelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.redacted();
        f.debug_struct("ChannelSpec")
            .field("name", &shown.name)
            .field("type", &shown.kind.name())
            .field("settings", &shown.settings)
            .finish()
    }
}

impl ChannelSpec {
    /// Its type.
    pub fn channel_type(&self) -> &'static dyn AnyChannelType {
        self.kind
    }

    /// Its type's name: `sns`, `webhook`, `email`, `pagerduty`.
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }

    /// Its settings as its type reads them, or `None` when `T` is not its type.
    pub fn settings<T: ChannelType>(&self) -> Option<T::Settings> {
        (self.kind.name() == T::NAME)
            .then(|| typed::<T::Settings>(&self.settings).ok())
            .flatten()
    }

    /// Where it sends, on one line, with nothing secret.
    pub fn summary(&self) -> String {
        self.kind.summary(&self.settings)
    }

    /// What `n` becomes for this channel.
    pub fn render(&self, n: &Notification, attempt: Attempt<'_>) -> Result<Outgoing, String> {
        self.kind.render(&self.settings, n, attempt)
    }

    /// The same channel as it may be shown or recorded in the audit trail: its secrets
    /// replaced by `<redacted>`, URLs that carry tokens masked
    /// (`https://hooks.slack.com/***`). Only the dispatcher reads the channel whole.
    pub fn redacted(&self) -> ChannelSpec {
        let mut c = self.clone();
        self.kind.redact(&mut c.settings);
        c
    }

    /// Checks the name and the settings; the error names the bad field. Trims names,
    /// addresses and URLs.
    pub fn validate(mut self) -> Result<ChannelSpec, FieldError> {
        self.name = self.name.trim().to_owned();
        let name_ok = !self.name.is_empty()
            && self.name.len() <= CHANNEL_NAME_MAX
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !name_ok {
            return Err(FieldError::new(
                "name",
                format!("must be 1 to {CHANNEL_NAME_MAX} letters, digits, `-`, `_` or `.`"),
            ));
        }
        self.settings = self.kind.validate(self.settings)?;
        Ok(self)
    }

    fn to_map(&self) -> Map<String, Value> {
        let mut map = self.settings.clone();
        map.insert("name".into(), Value::String(self.name.clone()));
        map.insert("type".into(), Value::String(self.kind.name().into()));
        map
    }
}

/// A channel as read: its `type` read first (so an unknown type is the `type` field's
/// error), its settings as they come.
#[derive(Deserialize)]
struct Wire {
    name: String,
    #[serde(rename = "type")]
    kind: TypeName,
    #[serde(flatten)]
    settings: Map<String, Value>,
}

struct TypeName(&'static dyn AnyChannelType);

impl<'de> Deserialize<'de> for TypeName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match channel_type(&name) {
            Some(kind) => Ok(TypeName(kind)),
            None => {
                let known: Vec<String> = TYPES.iter().map(|t| format!("`{}`", t.name())).collect();
                Err(serde::de::Error::custom(format!(
                    "unknown channel type `{name}`, expected one of {}",
                    known.join(", ")
                )))
            }
        }
    }
}

impl Serialize for ChannelSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ChannelSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        Ok(ChannelSpec {
            name: wire.name,
            kind: wire.kind.0,
            settings: wire
                .kind
                .0
                .read(Value::Object(wire.settings))
                .map_err(serde::de::Error::custom)?,
        })
    }
}

const NAME_PATTERN: &str = r"^[A-Za-z0-9._-]{1,64}$";

/// One type's settings with `name` and `type` beside them.
fn type_schema(kind: &dyn AnyChannelType) -> RefOr<Schema> {
    let name = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(NAME_PATTERN))
        .description(Some("Unique; letters, digits, `-`, `_` and `.`."));
    let tag = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([kind.name()]));
    match kind.schema() {
        RefOr::T(Schema::Object(mut object)) => {
            object.properties.insert("name".into(), name.build().into());
            object.properties.insert("type".into(), tag.build().into());
            object.required.splice(0..0, ["name".into(), "type".into()]);
            object.description = Some(format!("A {} channel.", kind.label()));
            RefOr::T(Schema::Object(object))
        }
        _ => ObjectBuilder::new()
            .property("name", name)
            .property("type", tag)
            .required("name")
            .required("type")
            .into(),
    }
}

impl utoipa::PartialSchema for ChannelSpec {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new().description(Some(
            "A notification channel: `name`, `type` and that type's settings.",
        ));
        for kind in TYPES {
            one_of = one_of.item(type_schema(*kind));
        }
        one_of.into()
    }
}

impl ToSchema for ChannelSpec {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ChannelSpec")
    }

    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        for kind in TYPES {
            kind.schemas(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::channel::email::Email;
    use crate::channel::sns::Sns;
    use crate::channel::webhook::Webhook;
    use crate::channel::{is_email, SnsTarget, WebhookFormat};

    #[test]
    fn a_channel_as_shown_cannot_be_saved_back() {
        let spec: ChannelSpec = serde_json::from_value(serde_json::json!({
            "name":"slack","type":"webhook",
            "url":"https://hooks.slack.com/services/T000/B000/SECRETPATH",
            "secret":"very-secret-signing-key",
            "headers":{"Authorization":"token-value"}
        }))
        .unwrap();
        let spec = spec.validate().unwrap();
        let shown = serde_json::to_value(spec.redacted()).unwrap();
        let back = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut v = serde_json::to_value(&spec).unwrap();
            change(&mut v);
            serde_json::from_value::<ChannelSpec>(v)
                .unwrap()
                .validate()
                .map(|_| ())
                .map_err(|e| e.field)
        };
        assert_eq!(
            back(&|v| v["url"] = shown["url"].clone()),
            Err("url".to_owned())
        );
        assert_eq!(
            back(&|v| v["secret"] = shown["secret"].clone()),
            Err("secret".to_owned())
        );
        assert_eq!(
            back(&|v| v["headers"]["Authorization"] = shown["headers"]["Authorization"].clone()),
            Err("headers.Authorization".to_owned())
        );
        assert_eq!(back(&|_| ()), Ok(()));
    }

    const TOML: &str = r#"
[[notify.channels]]
name = "ops-sns"
type = "sns"
topic_arn = "arn:aws:sns:eu-west-1:123456789012:opsdesk"

[[notify.channels]]
name = "chatops"
type = "webhook"
url = "https://hooks.slack.com/services/T000/B000/XXXX"
format = "slack"

[[notify.channels]]
name = "receiver"
type = "webhook"
url = "https://hooks.example.com/opsdesk"
secret = "0123456789abcdef0123"
headers = { Authorization = "Bearer abc" }

[[notify.channels]]
name = "oncall-mail"
type = "email"
to = ["oncall@example.com"]
cc = ["lead@example.com"]
"#;

    #[derive(Deserialize)]
    struct Config {
        notify: Notify,
    }

    #[derive(Deserialize)]
    struct Notify {
        channels: Vec<ChannelSpec>,
    }

    #[test]
    fn channels_read_from_toml() {
        let c: Config = toml::from_str(TOML).unwrap();
        let channels: Vec<ChannelSpec> = c
            .notify
            .channels
            .into_iter()
            .map(|c| c.validate().unwrap())
            .collect();
        assert_eq!(channels[0].name, "ops-sns");
        let sns = channels[0].settings::<Sns>().unwrap();
        assert_eq!(
            sns,
            SnsTarget {
                topic_arn: "arn:aws:sns:eu-west-1:123456789012:opsdesk".into(),
                region: None,
            }
        );
        assert_eq!(sns.publish_region(), Some("eu-west-1"));
        assert!(channels[0].settings::<Webhook>().is_none());
        let slack = channels[1].settings::<Webhook>().unwrap();
        assert_eq!(slack.format, WebhookFormat::Slack);
        assert_eq!(slack.secret, None);
        let generic = channels[2].settings::<Webhook>().unwrap();
        assert_eq!(generic.format, WebhookFormat::Generic);
        assert_eq!(generic.headers["Authorization"], "Bearer abc");
        assert_eq!(channels[3].kind_name(), "email");
    }

    #[test]
    fn channels_round_trip_as_json() {
        let c: Config = toml::from_str(TOML).unwrap();
        for spec in c.notify.channels {
            let json = serde_json::to_value(&spec).unwrap();
            assert_eq!(json["type"], spec.kind_name());
            assert_eq!(json["name"], spec.name.as_str());
            assert_eq!(serde_json::from_value::<ChannelSpec>(json).unwrap(), spec);
        }
    }

    #[test]
    fn unknown_type_and_fields_are_refused() {
        let err = serde_json::from_str::<ChannelSpec>(r#"{"name":"x","type":"pager"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown channel type `pager`"), "{err}");
        assert!(
            err.contains("`webhook`, `email`, `sns`, `pagerduty`"),
            "{err}"
        );
        let err = serde_json::from_str::<ChannelSpec>(r#"{"name":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `type`"), "{err}");
        let err = serde_json::from_str::<ChannelSpec>(
            r#"{"name":"x","type":"email","to":["a@example.com"],"bcc":[]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `bcc`"), "{err}");
        let err = toml::from_str::<Config>("[[notify.channels]]\nname = \"x\"\ntype = \"sms\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown channel type `sms`"), "{err}");
    }

    fn spec(json: serde_json::Value) -> Result<ChannelSpec, FieldError> {
        serde_json::from_value::<ChannelSpec>(json)
            .unwrap()
            .validate()
    }

    #[test]
    fn topic_arns_are_checked() {
        let sns = |arn: &str| spec(serde_json::json!({"name":"s","type":"sns","topic_arn":arn}));
        for ok in [
            "arn:aws:sns:eu-west-1:123456789012:opsdesk",
            "arn:aws-cn:sns:cn-north-1:123456789012:ops_desk-1",
            "arn:aws-us-gov:sns:us-gov-west-1:123456789012:alerts.fifo",
            " arn:aws:sns:us-east-1:123456789012:a ",
        ] {
            assert!(sns(ok).is_ok(), "{ok}");
        }
        for bad in [
            "arn:aws:sqs:eu-west-1:123456789012:opsdesk",
            "arn:aws:sns:eu-west-1:12345678901:opsdesk",
            "arn:aws:sns:eu-west-1:123456789012:",
            "arn:aws:sns::123456789012:opsdesk",
            "arn:aws:sns:eu-west-1:123456789012:ops:desk",
            "arn:azure:sns:eu-west-1:123456789012:opsdesk",
            "arn:aws:sns:eu-west-1:123456789012:ops desk",
            "https://sns.eu-west-1.amazonaws.com/",
        ] {
            assert_eq!(sns(bad).unwrap_err().field, "topic_arn", "{bad}");
        }
        let err = spec(serde_json::json!({
            "name":"s","type":"sns",
            "topic_arn":"arn:aws:sns:eu-west-1:123456789012:opsdesk","region":"EU West"
        }))
        .unwrap_err();
        assert_eq!(err.field, "region");
    }

    #[test]
    fn webhook_settings_are_checked() {
        let hook = |extra: serde_json::Value| {
            let mut v =
                serde_json::json!({"name":"h","type":"webhook","url":"https://example.com/hook"});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            spec(v)
        };
        assert!(hook(serde_json::json!({})).is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "https://",
            "http://exa mple.com/",
        ] {
            assert_eq!(
                hook(serde_json::json!({ "url": bad })).unwrap_err().field,
                "url",
                "{bad}"
            );
        }
        assert_eq!(
            hook(serde_json::json!({"secret":"short"}))
                .unwrap_err()
                .field,
            "secret"
        );
        assert_eq!(
            hook(serde_json::json!({"headers":{"X-Opsdesk-Signature":"x"}}))
                .unwrap_err()
                .field,
            "headers.X-Opsdesk-Signature"
        );
        assert_eq!(
            hook(serde_json::json!({"headers":{"Bad Name":"x"}}))
                .unwrap_err()
                .field,
            "headers.Bad Name"
        );
        assert_eq!(
            hook(serde_json::json!({"headers":{"X-Ok":"a\r\nInjected: yes"}}))
                .unwrap_err()
                .field,
            "headers.X-Ok"
        );
        let err = serde_json::from_value::<ChannelSpec>(serde_json::json!({
            "name":"h","type":"webhook","url":"https://example.com","format":"discord"
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown variant `discord`"), "{err}");
    }

    #[test]
    fn debug_hides_secrets_and_url_paths() {
        let spec = spec(serde_json::json!({
            "name":"h","type":"webhook",
            "url":"https://hooks.slack.com/services/T000/B000/SECRETPATH",
            "secret":"very-secret-signing-key",
            "headers":{"Authorization":"Bearer token-value"}
        }))
        .unwrap();
        let debug = format!("{spec:?}");
        for secret in ["SECRETPATH", "very-secret-signing-key", "token-value"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("https://hooks.slack.com/***"), "{debug}");
        assert!(debug.contains("Authorization"), "{debug}");
        let shown = serde_json::to_string(&spec.redacted()).unwrap();
        for secret in ["SECRETPATH", "very-secret-signing-key", "token-value"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("https://hooks.slack.com/***"), "{shown}");
    }

    #[test]
    fn email_addresses_are_checked_by_position() {
        let mail = |to: serde_json::Value, cc: serde_json::Value| {
            spec(serde_json::json!({"name":"m","type":"email","to":to,"cc":cc}))
        };
        let err = mail(
            serde_json::json!(["ops@example.com", "not an address"]),
            serde_json::json!([]),
        )
        .unwrap_err();
        assert_eq!(err.field, "to[1]");
        let err = mail(
            serde_json::json!(["ops@example.com"]),
            serde_json::json!(["lead@@example.com"]),
        )
        .unwrap_err();
        assert_eq!(err.field, "cc[0]");
        assert_eq!(
            mail(serde_json::json!([]), serde_json::json!([]))
                .unwrap_err()
                .field,
            "to"
        );
        let ok = mail(
            serde_json::json!([
                " ops@example.com",
                "OPS@example.com",
                "a.b+tag@mail.example.org"
            ]),
            serde_json::json!([]),
        )
        .unwrap();
        let e = ok.settings::<Email>().unwrap();
        assert_eq!(e.to, ["ops@example.com", "a.b+tag@mail.example.org"]);
        for bad in [
            "@example.com",
            "a@",
            "a@-x.com",
            "a b@example.com",
            "a@exa_mple.com",
            ".a@example.com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn channel_names_are_checked() {
        let err = spec(serde_json::json!({"name":"ops sns","type":"email","to":["a@example.com"]}))
            .unwrap_err();
        assert_eq!(err.field, "name");
    }
}
