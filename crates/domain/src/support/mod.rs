//! AWS Support: the plans (what each lets an account do on a given day, and how a ticket's
//! severity becomes a case severity), the accounts opsdesk knows, the messages AWS Support
//! takes, and which plan an account's workloads call for.
//!
//! The plan table follows AWS's published figures (see [`source`]): the plan comparison, the
//! pricing page, "Choosing a severity" and "About the AWS Support API" in the AWS Support User
//! Guide. At run time AWS's own answer for an account (DescribeSeverityLevels) wins over it.

mod advice;
mod plan;

pub use advice::*;
pub use plan::*;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validation::{FieldError, Validated, NAME_MAX};

/// AWS Support's AddCommunicationToCase takes a body of at most 8,000 characters (counted
/// here in UTF-16 units, which is never fewer than AWS counts).
pub const COMMUNICATION_MAX: usize = 8_000;
/// Room kept in each part for its "(part i of n)" heading.
const PART_HEADING_MAX: usize = 24;

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// A reply as the messages AWS Support takes: the reply itself when it fits in
/// [`COMMUNICATION_MAX`], otherwise consecutive parts headed "(part i of n)", each cut at a
/// paragraph, line or word break where one falls in its second half, so that nothing of the
/// reply is left out.
pub fn communication_parts(body: &str) -> Vec<String> {
    if utf16_len(body) <= COMMUNICATION_MAX {
        return vec![body.to_owned()];
    }
    let budget = COMMUNICATION_MAX - PART_HEADING_MAX;
    let mut chunks: Vec<&str> = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        // The longest prefix within budget, on a char boundary.
        let mut units = 0;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            units += c.len_utf16();
            if units > budget {
                end = i;
                break;
            }
        }
        let window = &rest[..end];
        let cut = if end == rest.len() {
            end
        } else {
            ["\n\n", "\n", " "]
                .iter()
                .find_map(|b| {
                    window
                        .rfind(b)
                        .map(|i| i + b.len())
                        .filter(|&i| utf16_len(&window[..i]) > budget / 2)
                })
                .unwrap_or(end)
        };
        let chunk = rest[..cut].trim_end();
        if !chunk.is_empty() {
            chunks.push(chunk);
        }
        rest = rest[cut..].trim_start();
    }
    let n = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| format!("(part {} of {n})\n\n{c}", i + 1))
        .collect()
}

/// AWS Support's CreateCase and AddCommunicationToCase take at most 10 `ccEmailAddresses`.
pub const EMAILS_MAX: usize = 10;

/// An AWS account opsdesk knows, with its support plan and whom to tell about its cases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsAccount {
    /// The 12-digit account id.
    #[schema(pattern = r"^[0-9]{12}$")]
    pub id: String,
    /// A name people recognise, 1 to 200 characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    pub support_plan: SupportPlan,
    /// Addresses of the AWS account team to keep informed of escalations; at most 10, as many
    /// as an AWS Support case can copy.
    #[serde(default)]
    pub account_team_emails: Vec<String>,
    /// An IAM role in this account that opsdesk assumes to open and follow its AWS Support
    /// cases. Without one, cases are opened with opsdesk's own credentials, which must then
    /// belong to this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_role_arn: Option<String>,
    /// The account is in AWS GovCloud (US), which keeps the Developer, Business and Enterprise
    /// On-Ramp plans after 2027-01-01. Set by itself when `support_role_arn` is an
    /// `arn:aws-us-gov:` ARN.
    #[serde(default)]
    pub govcloud: bool,
}

/// `arn:<partition>:iam::<account>:role/<path/name>` for the given account.
fn role_arn_ok(arn: &str, account: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", "aws" | "aws-cn" | "aws-us-gov", "iam", "", id, resource]
            if *id == account
                && resource.strip_prefix("role/").is_some_and(|name| {
                    !name.is_empty()
                        && name.len() <= 512
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
                })
    )
}

/// A basic shape check: `local@domain.tld`, no spaces, sane lengths. Deliverability is for
/// the mail server to judge.
fn email_ok(e: &str) -> bool {
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && local.len() <= 64
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

impl Validated for AwsAccount {
    fn validate(mut self) -> Result<Self, FieldError> {
        self.id = self.id.trim().to_owned();
        if self.id.len() != 12 || !self.id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new("id", "must be a 12-digit AWS account id"));
        }
        self.name = self.name.trim().to_owned();
        if self.name.is_empty() || self.name.chars().count() > NAME_MAX {
            return Err(FieldError::new(
                "name",
                format!("must be 1 to {NAME_MAX} characters"),
            ));
        }
        if self.name.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                "must not contain control characters",
            ));
        }
        if self.account_team_emails.len() > EMAILS_MAX {
            return Err(FieldError::new(
                "account_team_emails",
                format!(
                    "at most {EMAILS_MAX} addresses: an AWS Support case copies no more than \
                     {EMAILS_MAX}"
                ),
            ));
        }
        let mut emails: Vec<String> = Vec::with_capacity(self.account_team_emails.len());
        for (i, e) in self.account_team_emails.into_iter().enumerate() {
            let e = e.trim().to_owned();
            if !email_ok(&e) {
                return Err(FieldError::new(
                    format!("account_team_emails[{i}]"),
                    format!("`{e}` is not an email address"),
                ));
            }
            if !emails.iter().any(|x| x.eq_ignore_ascii_case(&e)) {
                emails.push(e);
            }
        }
        self.account_team_emails = emails;
        if let Some(arn) = &mut self.support_role_arn {
            *arn = arn.trim().to_owned();
            let gov_arn = arn.starts_with("arn:aws-us-gov:");
            if self.govcloud && !gov_arn && role_arn_ok(arn, &self.id) {
                return Err(FieldError::new(
                    "support_role_arn",
                    "an account in AWS GovCloud (US) has role ARNs in partition aws-us-gov \
                     (arn:aws-us-gov:iam::...)",
                ));
            }
            self.govcloud |= gov_arn;
            if !role_arn_ok(arn, &self.id) {
                return Err(FieldError::new(
                    "support_role_arn",
                    format!(
                        "must be an IAM role ARN in account {}, such as arn:aws:iam::{}:role/opsdesk-support",
                        self.id, self.id
                    ),
                ));
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SupportPlan::{Business, EnterpriseOnRamp};

    #[test]
    fn a_long_reply_is_split_into_parts_aws_takes_and_none_is_lost() {
        assert_eq!(communication_parts("Short."), ["Short."]);
        let exact = "a".repeat(COMMUNICATION_MAX);
        assert_eq!(communication_parts(&exact), vec![exact]);

        let paragraph = format!("{}.", "word ".repeat(300).trim_end());
        let long = vec![paragraph.as_str(); 20].join("\n\n");
        assert!(long.chars().count() > COMMUNICATION_MAX);
        let parts = communication_parts(&long);
        assert_eq!(
            parts.len(),
            4,
            "{:?}",
            parts.iter().map(String::len).collect::<Vec<_>>()
        );
        for (i, p) in parts.iter().enumerate() {
            assert!(p.encode_utf16().count() <= COMMUNICATION_MAX);
            assert!(
                p.starts_with(&format!("(part {} of 4)\n\n", i + 1)),
                "{p:.40}"
            );
            // Cut between paragraphs, not inside one.
            assert!(p.ends_with("word."), "{}", &p[p.len() - 20..]);
        }
        let rejoined: Vec<&str> = parts
            .iter()
            .map(|p| p.split_once("\n\n").unwrap().1)
            .collect();
        assert_eq!(rejoined.join("\n\n"), long);
    }

    proptest::proptest! {
        #[test]
        fn parts_fit_and_keep_every_word(words in proptest::collection::vec("[a-zé😀]{1,40}|\n|\n\n", 0..1200)) {
            let body = words.join(" ");
            let parts = communication_parts(&body);
            let mut kept = String::new();
            for p in &parts {
                proptest::prop_assert!(p.encode_utf16().count() <= COMMUNICATION_MAX);
                let text = if parts.len() > 1 { p.split_once("\n\n").unwrap().1 } else { p.as_str() };
                kept.push_str(text);
                kept.push(' ');
            }
            let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().concat();
            proptest::prop_assert_eq!(squash(&kept), squash(&body));
        }
    }

    proptest::proptest! {
        #[test]
        fn unbroken_text_is_cut_on_char_boundaries(n in 8_000usize..20_000) {
            let body = "é😀".repeat(n / 2);
            let parts = communication_parts(&body);
            let kept: String = parts.iter().map(|p| p.split_once("\n\n").map_or(p.as_str(), |x| x.1)).collect();
            proptest::prop_assert!(parts.iter().all(|p| p.encode_utf16().count() <= COMMUNICATION_MAX));
            proptest::prop_assert_eq!(kept, body);
        }
    }

    fn account() -> AwsAccount {
        AwsAccount {
            id: " 123456789012 ".into(),
            name: " Shop production ".into(),
            support_plan: Business,
            account_team_emails: vec!["tam@example.com".into(), "TAM@example.com".into()],
            support_role_arn: None,
            govcloud: false,
        }
    }

    #[test]
    fn account_validation_names_the_field() {
        let a = account().validate().unwrap();
        assert_eq!(a.id, "123456789012");
        assert_eq!(a.name, "Shop production");
        assert_eq!(a.account_team_emails, ["tam@example.com"]);

        for bad in ["12345678901", "1234567890123", "12345678901x", ""] {
            let mut a = account();
            a.id = bad.into();
            assert_eq!(a.validate().unwrap_err().field, "id", "{bad}");
        }
        let mut a = account();
        a.name = "  ".into();
        assert_eq!(a.validate().unwrap_err().field, "name");
        for bad in [
            "no-at.example.com",
            "a@b",
            "a b@example.com",
            "@example.com",
            "a@@example.com",
            "a@example..com",
            "a@-example.com",
        ] {
            let mut a = account();
            a.account_team_emails = vec!["ok@example.com".into(), bad.into()];
            assert_eq!(
                a.validate().unwrap_err().field,
                "account_team_emails[1]",
                "{bad}"
            );
        }
        let mut a = account();
        a.account_team_emails = (0..10).map(|i| format!("p{i}@example.com")).collect();
        assert_eq!(a.validate().unwrap().account_team_emails.len(), 10);
        let mut a = account();
        a.account_team_emails = (0..11).map(|i| format!("p{i}@example.com")).collect();
        let err = a.validate().unwrap_err();
        assert_eq!(err.field, "account_team_emails");
        assert!(err.message.contains("at most 10"), "{}", err.message);

        let mut a = account();
        a.support_role_arn = Some(" arn:aws:iam::123456789012:role/ops/opsdesk-support ".into());
        assert_eq!(
            a.validate().unwrap().support_role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/ops/opsdesk-support")
        );
        for bad in [
            "arn:aws:iam::999999999999:role/opsdesk-support",
            "arn:aws:iam::123456789012:user/opsdesk",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:sts::123456789012:role/x",
            "opsdesk-support",
        ] {
            let mut a = account();
            a.support_role_arn = Some(bad.into());
            assert_eq!(a.validate().unwrap_err().field, "support_role_arn", "{bad}");
        }
    }

    #[test]
    fn support_plan_is_read_from_text_and_named_when_wrong() {
        assert_eq!(
            SupportPlan::from_field("Enterprise On-Ramp"),
            Ok(EnterpriseOnRamp)
        );
        assert_eq!(
            SupportPlan::from_field("enterprise-on-ramp"),
            Ok(EnterpriseOnRamp)
        );
        assert_eq!(SupportPlan::from_field(" business "), Ok(Business));
        let err = SupportPlan::from_field("gold").unwrap_err();
        assert_eq!(err.field, "support_plan");
        assert!(err.message.contains("enterprise_on_ramp"));
    }

    #[test]
    fn a_govcloud_role_marks_the_account_as_govcloud() {
        let mut a = account();
        a.support_role_arn = Some("arn:aws-us-gov:iam::123456789012:role/opsdesk".into());
        assert!(a.validate().unwrap().govcloud);
        let mut a = account();
        a.govcloud = true;
        a.support_role_arn = Some("arn:aws:iam::123456789012:role/opsdesk".into());
        assert_eq!(a.validate().unwrap_err().field, "support_role_arn");
        let mut a = account();
        a.govcloud = true;
        assert!(a.validate().unwrap().govcloud);
    }

    #[test]
    fn account_json_uses_snake_case_plans() {
        let a: AwsAccount = serde_json::from_str(
            r#"{"id":"123456789012","name":"x","support_plan":"enterprise_on_ramp"}"#,
        )
        .unwrap();
        assert_eq!(a.support_plan, EnterpriseOnRamp);
        assert!(a.account_team_emails.is_empty());
        assert!(serde_json::from_str::<AwsAccount>(
            r#"{"id":"123456789012","name":"x","support_plan":"gold"}"#
        )
        .is_err());
        assert!(serde_json::from_str::<AwsAccount>(
            r#"{"id":"123456789012","name":"x","support_plan":"basic","plan":"basic"}"#
        )
        .is_err());
    }
}
