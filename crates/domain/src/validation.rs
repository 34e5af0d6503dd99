//! Input rules for tickets, comments and links. Every rule names the field it rejects.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::ticket::{Kind, LinkKind, Severity, Status};

pub const TITLE_MAX: usize = 300;
pub const DESCRIPTION_MAX: usize = 100_000;
pub const COMMENT_MAX: usize = 100_000;
pub const NAME_MAX: usize = 200;
pub const TAG_MAX: usize = 64;
pub const TAGS_MAX: usize = 50;
pub const DEDUP_KEY_MAX: usize = 512;

/// The years a time sent from outside may fall in. Both databases and every date computed
/// from such a time (a default window, a step, a due time) stay far inside what they can hold.
pub const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

/// Checks a time sent from outside (a query parameter, a field of a body): its year must be in
/// [`YEARS`]. The error names `field`.
pub fn check_time(
    field: &str,
    t: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, FieldError> {
    use chrono::Datelike;
    if YEARS.contains(&t.year()) {
        Ok(t)
    } else {
        Err(FieldError::new(
            field,
            format!(
                "must fall in the years {} to {}",
                YEARS.start(),
                YEARS.end()
            ),
        ))
    }
}

/// An input that breaks a rule, with the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error, for item `i` of an array.
    pub fn within(self, i: usize) -> Self {
        FieldError {
            field: format!("[{i}].{}", self.field),
            message: self.message,
        }
    }
}

/// An input that passed its rules.
pub trait Validated: Sized {
    fn validate(self) -> Result<Self, FieldError>;
}

/// Distinguishes a field sent as `null` (Some(None)) from one not sent (None).
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// Reads a field that may be left out but not sent as `null`.
pub fn present<'de, T, D>(de: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(de).map(Some)
}

/// Tags as the document shows them: the letters and digits of any script are taken, the
/// document names the ASCII ones.
fn tags_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[A-Za-z0-9_.:/-]{1,64}$")),
        )
        .max_items(Some(TAGS_MAX))
        .build()
}

/// A new ticket as a client sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// 1 to 300 characters, not all spaces; no control characters.
    #[schema(
        max_length = 300,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub title: String,
    /// Markdown; line breaks and tabs are the only control characters allowed.
    #[serde(default)]
    #[schema(
        max_length = 100000,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub description: String,
    pub kind: Kind,
    pub severity: Severity,
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub requester: Option<String>,
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub assignee: Option<String>,
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub team: Option<String>,
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub workload: Option<String>,
    /// Up to 50; each 1 to 64 of letters, digits and `- _ . : /`, kept in lower case.
    #[serde(default)]
    #[schema(schema_with = tags_schema)]
    pub tags: Vec<String>,
    /// Where the ticket came from; `manual` when not given.
    #[serde(default)]
    #[schema(pattern = r"^[a-z0-9_.-]{0,64}$")]
    pub source: Option<String>,
    #[serde(default)]
    #[schema(
        max_length = 512,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub dedup_key: Option<String>,
}

/// A change to a ticket: only the fields sent are changed; `null` clears an optional field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPatch {
    // Fields that may be left out but not sent as `null` are not nullable in the document.
    #[serde(default, deserialize_with = "present")]
    #[schema(
        nullable = false,
        max_length = 300,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(
        nullable = false,
        max_length = 100_000,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub kind: Option<Kind>,
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub severity: Option<Severity>,
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub status: Option<Status>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub requester: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub assignee: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub team: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub workload: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = tags_schema)]
    pub tags: Option<Vec<String>>,
}

impl TicketPatch {
    pub fn is_empty(&self) -> bool {
        *self == TicketPatch::default()
    }
}

/// A new comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    /// Markdown, 1 to 100,000 characters, not all spaces.
    #[schema(
        max_length = 100_000,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub body: String,
    /// Public comments are visible to the requester. Defaults to true.
    #[serde(default = "default_true")]
    pub public: bool,
}

fn default_true() -> bool {
    true
}

/// A new link from this ticket to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    pub kind: LinkKind,
    /// The other ticket: id or key.
    #[schema(pattern = r"^\s*([Oo][Pp][Ss]-)?0*[1-9][0-9]{0,17}\s*$")]
    pub target: String,
}

fn title(field: &str, s: String) -> Result<String, FieldError> {
    let t = s.trim().to_owned();
    if t.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    no_control(field, &t)?;
    max_chars(field, t, TITLE_MAX)
}

/// One-line text: no control characters at all.
fn no_control(field: &str, s: &str) -> Result<(), FieldError> {
    if s.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Multi-line text: line breaks and tabs, but no other control characters (NUL least of all).
fn text(field: &str, s: String, max: usize) -> Result<String, FieldError> {
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters other than line breaks and tabs",
        ));
    }
    max_chars(field, s, max)
}

fn max_chars(field: &str, s: String, max: usize) -> Result<String, FieldError> {
    if s.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(s)
}

/// A short optional name (assignee, team...): trimmed, empty means not set.
fn name(field: &str, s: Option<String>) -> Result<Option<String>, FieldError> {
    match s.map(|s| s.trim().to_owned()) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => {
            if s.chars().any(char::is_control) {
                return Err(FieldError::new(
                    field,
                    "must not contain control characters",
                ));
            }
            max_chars(field, s, NAME_MAX).map(Some)
        }
    }
}

fn tags(tags: Vec<String>) -> Result<Vec<String>, FieldError> {
    if tags.len() > TAGS_MAX {
        return Err(FieldError::new(
            "tags",
            format!("at most {TAGS_MAX} tags are allowed"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for (i, tag) in tags.into_iter().enumerate() {
        let tag = tag.trim().to_lowercase();
        let field = format!("tags[{i}]");
        if tag.is_empty() || tag.chars().count() > TAG_MAX {
            return Err(FieldError::new(
                field,
                format!("a tag has 1 to {TAG_MAX} characters"),
            ));
        }
        if !tag
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
        {
            return Err(FieldError::new(
                field,
                "a tag may hold letters, digits and - _ . : / only",
            ));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    out.sort();
    Ok(out)
}

fn source(s: Option<String>) -> Result<String, FieldError> {
    let s = s.map(|s| s.trim().to_owned()).unwrap_or_default();
    if s.is_empty() {
        return Ok("manual".to_owned());
    }
    if s.len() > 64
        || !s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        })
    {
        return Err(FieldError::new(
            "source",
            "must be 1 to 64 of a-z, 0-9, _ - .",
        ));
    }
    Ok(s)
}

impl Validated for NewTicket {
    fn validate(self) -> Result<Self, FieldError> {
        let dedup_key = match self.dedup_key {
            Some(k) if k.trim().is_empty() => {
                return Err(FieldError::new("dedup_key", "must not be empty when given"))
            }
            Some(k) => {
                no_control("dedup_key", &k)?;
                Some(max_chars("dedup_key", k, DEDUP_KEY_MAX)?)
            }
            None => None,
        };
        Ok(NewTicket {
            title: title("title", self.title)?,
            description: text("description", self.description, DESCRIPTION_MAX)?,
            kind: self.kind,
            severity: self.severity,
            requester: name("requester", self.requester)?,
            assignee: name("assignee", self.assignee)?,
            team: name("team", self.team)?,
            workload: name("workload", self.workload)?,
            tags: tags(self.tags)?,
            source: Some(source(self.source)?),
            dedup_key,
        })
    }
}

impl Validated for TicketPatch {
    fn validate(self) -> Result<Self, FieldError> {
        let opt = |field: &str, v: Option<Option<String>>| match v {
            None => Ok(None),
            Some(v) => name(field, v).map(Some),
        };
        Ok(TicketPatch {
            title: self.title.map(|t| title("title", t)).transpose()?,
            description: self
                .description
                .map(|d| text("description", d, DESCRIPTION_MAX))
                .transpose()?,
            kind: self.kind,
            severity: self.severity,
            status: self.status,
            requester: opt("requester", self.requester)?,
            assignee: opt("assignee", self.assignee)?,
            team: opt("team", self.team)?,
            workload: opt("workload", self.workload)?,
            tags: self.tags.map(tags).transpose()?,
        })
    }
}

impl Validated for NewComment {
    fn validate(self) -> Result<Self, FieldError> {
        if self.body.trim().is_empty() {
            return Err(FieldError::new("body", "must not be empty"));
        }
        Ok(NewComment {
            body: text("body", self.body, COMMENT_MAX)?,
            public: self.public,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_from_outside_stay_within_the_years_both_databases_hold() {
        use chrono::{DateTime, TimeZone, Utc};
        let ok = Utc.with_ymd_and_hms(2026, 12, 7, 1, 0, 0).unwrap();
        assert_eq!(check_time("from", ok), Ok(ok));
        let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(check_time("to", last), Ok(last));
        for t in [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
        ] {
            assert_eq!(check_time("to", t).unwrap_err().field, "to");
        }
    }

    fn ticket(title: &str) -> NewTicket {
        NewTicket {
            title: title.into(),
            description: String::new(),
            kind: Kind::Incident,
            severity: Severity::Sev3,
            requester: None,
            assignee: Some("  ".into()),
            team: None,
            workload: None,
            tags: vec!["Prod".into(), "db".into(), "prod".into()],
            source: None,
            dedup_key: None,
        }
    }

    #[test]
    fn title_rules_name_the_field() {
        assert_eq!(ticket("  ").validate().unwrap_err().field, "title");
        let long = "x".repeat(301);
        let err = ticket(&long).validate().unwrap_err();
        assert_eq!(err.field, "title");
        assert!(ticket(&"é".repeat(300)).validate().is_ok());
    }

    #[test]
    fn normalises_tags_names_and_source() {
        let t = ticket(" Disk full ").validate().unwrap();
        assert_eq!(t.title, "Disk full");
        assert_eq!(t.tags, ["db", "prod"]);
        assert_eq!(t.assignee, None);
        assert_eq!(t.source.as_deref(), Some("manual"));
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(ticket("a\u{0}b").validate().unwrap_err().field, "title");
        let mut t = ticket("ok");
        t.description = "line one\nline\ttwo\r\n".into();
        assert!(t.clone().validate().is_ok());
        t.description = "nul \u{0}".into();
        assert_eq!(t.validate().unwrap_err().field, "description");
        let mut t = ticket("ok");
        t.team = Some("a\nb".into());
        assert_eq!(t.validate().unwrap_err().field, "team");
    }

    #[test]
    fn bad_tag_is_named_by_index() {
        let mut t = ticket("x");
        t.tags = vec!["ok".into(), "not ok".into()];
        assert_eq!(t.validate().unwrap_err().field, "tags[1]");
    }

    #[test]
    fn patch_tells_null_from_absent() {
        let p: TicketPatch = serde_json::from_str(r#"{"assignee":null}"#).unwrap();
        assert_eq!(p.assignee, Some(None));
        let p: TicketPatch = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(p.assignee, None);
        assert!(p.is_empty());
        assert!(serde_json::from_str::<TicketPatch>(r#"{"title":null}"#).is_err());
        assert!(serde_json::from_str::<TicketPatch>(r#"{"status":null}"#).is_err());
    }
}
