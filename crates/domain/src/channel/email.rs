//! The email channel type: a message through the configured SMTP server to the channel's
//! addresses and to the people the event is for (an AWS account team, say).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::spec::{Attempt, ChannelType, FormField, Input, Outgoing};
use super::Notification;
use crate::validation::FieldError;

pub const RECIPIENTS_MAX: usize = 50;

/// The email channel type.
pub struct Email;

impl ChannelType for Email {
    type Settings = EmailTarget;
    const NAME: &'static str = "email";
    const LABEL: &'static str = "email";
    const EMAILS_PEOPLE: bool = true;
    const CARRIES_REPORTS: bool = true;
    const FIELDS: &'static [FormField] = &[
        FormField {
            key: "to",
            label: "To",
            input: Input::List,
            hint: "",
            placeholder: "ops@example.com, ...",
        },
        FormField {
            key: "cc",
            label: "Cc",
            input: Input::List,
            hint: "",
            placeholder: "",
        },
    ];

    fn validate(settings: EmailTarget) -> Result<EmailTarget, FieldError> {
        settings.checked()
    }

    fn summary(t: &EmailTarget) -> String {
        t.to.join(", ")
    }

    fn render(t: &EmailTarget, _: &Notification, _: Attempt<'_>) -> Result<Outgoing, String> {
        Ok(Outgoing::Email {
            to: t.to.clone(),
            cc: t.cc.clone(),
        })
    }
}

/// Email recipients.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailTarget {
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
}

impl EmailTarget {
    fn checked(mut self) -> Result<EmailTarget, FieldError> {
        fn addresses(field: &str, list: Vec<String>) -> Result<Vec<String>, FieldError> {
            let mut out: Vec<String> = Vec::with_capacity(list.len());
            for (i, a) in list.into_iter().enumerate() {
                let a = a.trim().to_owned();
                if !is_email(&a) {
                    return Err(FieldError::new(
                        format!("{field}[{i}]"),
                        format!("`{a}` is not an email address"),
                    ));
                }
                if !out.iter().any(|o| o.eq_ignore_ascii_case(&a)) {
                    out.push(a);
                }
            }
            Ok(out)
        }
        self.to = addresses("to", self.to)?;
        self.cc = addresses("cc", self.cc)?;
        if self.to.is_empty() {
            return Err(FieldError::new("to", "must name at least one address"));
        }
        if self.to.len() + self.cc.len() > RECIPIENTS_MAX {
            return Err(FieldError::new(
                "to",
                format!("at most {RECIPIENTS_MAX} recipients in to and cc together"),
            ));
        }
        Ok(self)
    }
}

/// `local@domain`: a plain address (no display name), local part of printable ASCII without
/// specials, domain of letters, digits and `-` in dot-separated labels.
pub fn is_email(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    let domain_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    local_ok && domain_ok
}
