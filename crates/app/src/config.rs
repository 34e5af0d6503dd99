//! Typed configuration: defaults, then a TOML file (`--config FILE` or `OPSDESK_CONFIG`), then
//! `OPSDESK_*` environment variables (`__` nests: `OPSDESK_SERVER__BIND`). Unknown keys are
//! refused with the key named. Secrets never appear in `Debug` output or logs.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::Uncased;
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub oidc: OidcConfig,
    pub ingest: IngestConfig,
    pub notify: NotifyConfig,
    pub aws: AwsConfig,
    pub sla: SlaConfig,
    pub escalation: EscalationConfig,
    pub kpis: KpiConfig,
    pub reports: ReportsConfig,
    pub readiness: ReadinessConfig,
    pub email: EmailConfig,
    pub attachments: AttachmentsConfig,
    /// `[[connectors]]`: two-way links with other ticketing systems.
    pub connectors: Vec<opsdesk_domain::connector::ConnectorSpec>,
}

/// Files on tickets (`[attachments]`): how large, of which types, and where they are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentsConfig {
    /// The largest file taken, in bytes.
    pub max_bytes: usize,
    /// The types taken, such as `image/png` or `image/*`. Files are typed by their content.
    pub types: Vec<String>,
    /// The folder files are kept in on this machine. Not set: `opsdesk-files` beside the
    /// SQLite database (or in the working folder with PostgreSQL).
    pub dir: Option<String>,
    /// `[attachments.s3]`: keep files in S3 instead, so that every node sees them.
    pub s3: Option<opsdesk_aws::files::S3FilesSettings>,
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        let policy = opsdesk_domain::attachment::AttachmentPolicy::default();
        AttachmentsConfig {
            max_bytes: policy.max_bytes,
            types: policy.types,
            dir: None,
            s3: None,
        }
    }
}

impl AttachmentsConfig {
    /// The policy, once valid; the error names the key.
    pub fn policy(&self) -> Result<opsdesk_domain::attachment::AttachmentPolicy, String> {
        if !(1..=1024 * 1024 * 1024).contains(&self.max_bytes) {
            return Err("attachments.max_bytes must be 1 to 1073741824 (1 GiB)".into());
        }
        if self.types.is_empty() {
            return Err("attachments.types: list at least one type".into());
        }
        for (i, t) in self.types.iter().enumerate() {
            let t = t.trim();
            let valid = t.split_once('/').is_some_and(|(a, b)| {
                !a.is_empty() && !b.is_empty() && !a.contains('*') && (b == "*" || !b.contains('*'))
            });
            if !valid {
                return Err(format!(
                    "attachments.types[{i}]: `{t}` is not a type such as image/png or image/*"
                ));
            }
        }
        if let Some(s3) = &self.s3 {
            s3.validate().map_err(|e| format!("attachments.s3.{e}"))?;
        }
        Ok(opsdesk_domain::attachment::AttachmentPolicy {
            max_bytes: self.max_bytes,
            types: self
                .types
                .iter()
                .map(|t| opsdesk_domain::attachment::media_type(t))
                .collect(),
        })
    }

    /// The folder of the disk store for a desk on `database_url`.
    pub fn folder(&self, database_url: &str) -> std::path::PathBuf {
        if let Some(dir) = &self.dir {
            return dir.into();
        }
        let beside = database_url
            .strip_prefix("sqlite://")
            .or_else(|| database_url.strip_prefix("sqlite:"))
            .map(|rest| rest.split('?').next().unwrap_or(rest))
            .filter(|path| !path.is_empty() && !path.contains(":memory:"))
            .and_then(|path| Path::new(path).parent().map(Path::to_path_buf));
        beside.unwrap_or_default().join("opsdesk-files")
    }
}

/// Email with requesters (`[email]`): letters out, inboxes in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// Whether requesters get letters (a receipt, agents' public replies, the resolution);
    /// needs `[notify.smtp]`. Off unless turned on.
    pub letters: Option<bool>,
    /// Where requesters' replies go: the address of an inbox opsdesk reads. Not set: the SMTP
    /// sender.
    pub reply_to: Option<String>,
    /// A requester's reply reopens a resolved ticket within this many days; later it opens a
    /// follow-up ticket linked to the old one.
    pub reopen_days: u32,
    /// Messages one sender may send in an hour; more are refused.
    pub hourly_limit: u32,
    /// `[email.templates.received]`, `.replied`, `.resolved`: subject and body of each letter.
    pub templates: opsdesk_domain::mail::LetterTemplates,
    /// `[[email.inboxes]]`: IMAP mailboxes requests are read from.
    pub inboxes: Vec<opsdesk_mail::InboxSettings>,
    /// Whether an unknown sender of a message received through Amazon SES (an SES receipt
    /// rule publishing to an SNS topic of `ingest.sns.topics`) becomes a requester; otherwise
    /// the message is held for an agent.
    pub ses_create_requesters: bool,
    /// The SNS topics (ARNs) SES receipt rules publish mail to; each must also be allowed by
    /// `ingest.sns.topics`. A receipt on any other topic is refused, so that whoever may
    /// publish to an alarm topic cannot write mail in someone's name.
    pub ses_topics: Vec<String>,
    /// `[email.ses_s3]`: the buckets SES receipt rules' S3 actions store messages in (for
    /// messages over the 150 KB an SNS action carries); a notification naming another bucket
    /// is refused.
    pub ses_s3: Option<opsdesk_core::mail::SesS3>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            letters: None,
            reply_to: None,
            reopen_days: 7,
            hourly_limit: 20,
            templates: opsdesk_domain::mail::LetterTemplates::default(),
            inboxes: Vec::new(),
            ses_create_requesters: false,
            ses_topics: Vec::new(),
            ses_s3: None,
        }
    }
}

impl EmailConfig {
    /// The settings, once valid; the error names the key.
    pub fn settings(
        &self,
        notify: &NotifyConfig,
    ) -> Result<opsdesk_core::mail::MailSettings, String> {
        let sender = match &notify.smtp {
            Some(smtp) => Some(
                smtp.sender()
                    .map_err(|e| format!("notify.smtp.{}: {}", e.field, e.message))?,
            ),
            None => None,
        };
        let letters = self.letters.unwrap_or(false);
        if letters && sender.is_none() {
            return Err("email.letters needs [notify.smtp] to send them".into());
        }
        self.reply_to()?;
        if self.reopen_days == 0 || self.reopen_days > 365 {
            return Err("email.reopen_days must be 1 to 365".into());
        }
        if self.hourly_limit == 0 {
            return Err("email.hourly_limit must be 1 or more".into());
        }
        self.templates
            .validate()
            .map_err(|e| format!("email.templates.{}: {}", e.field, e.message))?;
        if let Some(s3) = &self.ses_s3 {
            if s3.buckets.is_empty() || s3.buckets.iter().any(|b| b.trim().is_empty()) {
                return Err("email.ses_s3.buckets: name the buckets SES stores mail in".into());
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for (i, inbox) in self.inboxes.iter().enumerate() {
            inbox
                .validate()
                .map_err(|e| format!("email.inboxes[{i}].{}: {}", e.field, e.message))?;
            if names.contains(&inbox.name.as_str()) {
                return Err(format!(
                    "email.inboxes[{i}].name: {} is used twice",
                    inbox.name
                ));
            }
            names.push(&inbox.name);
        }
        Ok(opsdesk_core::mail::MailSettings {
            letters,
            domain: sender
                .map(|s| s.email.domain().to_owned())
                .unwrap_or_else(|| "opsdesk.invalid".into()),
            templates: self.templates.clone(),
            reopen_window: chrono::TimeDelta::days(i64::from(self.reopen_days)),
            hourly_limit: i64::from(self.hourly_limit),
            ses_create_requesters: self.ses_create_requesters,
            ses_topics: self.ses_topics.clone(),
            ses_s3: self.ses_s3.clone(),
        })
    }

    /// `reply_to`, parsed.
    pub fn reply_to(&self) -> Result<Option<lettre::message::Mailbox>, String> {
        self.reply_to
            .as_deref()
            .map(|r| {
                r.trim()
                    .parse::<lettre::message::Mailbox>()
                    .map_err(|e| format!("email.reply_to: `{r}` is not an address: {e}"))
            })
            .transpose()
    }
}

/// Readiness reviews after incidents and their action items (`[readiness]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadinessConfig {
    /// Incidents of these severities on a workload get a post-incident review when resolved;
    /// empty turns post-incident reviews off.
    pub post_incident_severities: Vec<opsdesk_domain::Severity>,
    /// A post-incident review is due this many days after its incident was resolved.
    pub post_incident_days: u32,
    /// An action item given no due date is due this many days after it is made.
    pub action_item_days: u32,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        let d = opsdesk_core::readiness::ReadinessSettings::default();
        ReadinessConfig {
            post_incident_severities: d.post_incident_severities,
            post_incident_days: d.post_incident_days,
            action_item_days: d.action_item_days,
        }
    }
}

impl ReadinessConfig {
    pub fn settings(&self) -> Result<opsdesk_core::readiness::ReadinessSettings, String> {
        for (key, days) in [
            ("readiness.post_incident_days", self.post_incident_days),
            ("readiness.action_item_days", self.action_item_days),
        ] {
            if days == 0 || days > 3650 {
                return Err(format!("{key} must be 1 to 3650 days"));
            }
        }
        Ok(opsdesk_core::readiness::ReadinessSettings {
            post_incident_severities: self.post_incident_severities.clone(),
            post_incident_days: self.post_incident_days,
            action_item_days: self.action_item_days,
        })
    }
}

/// Escalation tiers and the way to AWS Support (`[escalation]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationConfig {
    /// `[[escalation.policies]]`: tiers an unacknowledged ticket climbs; the first match wins.
    pub policies: Vec<opsdesk_domain::escalation::EscalationPolicy>,
    /// `[escalation.aws]`: the automatic rule, case codes and who is told.
    pub aws: opsdesk_domain::escalation::AwsEscalation,
    /// How often an open AWS Support case is read back into its ticket.
    pub case_sync_seconds: u64,
    /// Attempts at opening a case before it is marked failed.
    pub case_max_attempts: i64,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            policies: Vec::new(),
            aws: opsdesk_domain::escalation::AwsEscalation::default(),
            case_sync_seconds: 60,
            case_max_attempts: 8,
        }
    }
}

impl EscalationConfig {
    /// The settings, once policies are valid and every channel named exists in
    /// `[[notify.channels]]`; the error names the key.
    pub fn settings(
        &self,
        notify: &NotifyConfig,
    ) -> Result<opsdesk_core::escalation::EscalationSettings, String> {
        use opsdesk_domain::Validated;
        let policies = opsdesk_domain::escalation::check_policies(self.policies.clone())
            .map_err(|e| format!("escalation.policies{}: {}", e.field, e.message))?;
        let aws = self
            .aws
            .clone()
            .validate()
            .map_err(|e| format!("escalation.aws.{}: {}", e.field, e.message))?;
        let known = |c: &str| notify.channels.iter().any(|k| k.name == c);
        for (i, c) in aws.notify_channels.iter().enumerate() {
            if !known(c) {
                return Err(format!(
                    "escalation.aws.notify_channels[{i}]: there is no channel named {c} in [[notify.channels]]"
                ));
            }
        }
        if let Some(c) = &aws.account_team_channel {
            match notify.channels.iter().find(|k| &k.name == c) {
                None => {
                    return Err(format!(
                        "escalation.aws.account_team_channel: there is no channel named {c} in [[notify.channels]]"
                    ))
                }
                Some(k) if !k.channel_type().emails_people() => {
                    return Err(format!(
                        "escalation.aws.account_team_channel: {c} is not an email channel; the account team is reached by email"
                    ))
                }
                Some(_) => {}
            }
        }
        if self.case_max_attempts < 1 {
            return Err("escalation.case_max_attempts must be 1 or more".into());
        }
        let interval = i64::try_from(self.case_sync_seconds)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .filter(|d| *d >= chrono::Duration::seconds(5))
            .ok_or("escalation.case_sync_seconds must be 5 or more, and not huge")?;
        Ok(opsdesk_core::escalation::EscalationSettings {
            policies,
            aws,
            case_sync_interval: interval,
            case_max_attempts: self.case_max_attempts,
            ..Default::default()
        })
    }
}

/// Trend reports sent on a schedule (`[reports]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// `[[reports.schedules]]`: a report every week or month through an email or webhook
    /// channel.
    pub schedules: Vec<opsdesk_domain::report::ReportSchedule>,
}

impl ReportsConfig {
    /// The schedules, once each names an email or webhook channel of `[[notify.channels]]`
    /// and no name repeats; the error names the key.
    pub fn schedules(
        &self,
        notify: &NotifyConfig,
    ) -> Result<Vec<opsdesk_domain::report::ReportSchedule>, String> {
        use opsdesk_domain::Validated;
        let mut out: Vec<opsdesk_domain::report::ReportSchedule> = Vec::new();
        for (i, s) in self.schedules.iter().enumerate() {
            let s = s
                .clone()
                .validate()
                .map_err(|e| format!("reports.schedules[{i}].{}: {}", e.field, e.message))?;
            match notify.channels.iter().find(|k| k.name == s.channel) {
                None => {
                    return Err(format!(
                        "reports.schedules[{i}].channel: there is no channel named {} in [[notify.channels]]",
                        s.channel
                    ))
                }
                Some(k) if !k.channel_type().carries_reports() => {
                    return Err(format!(
                        "reports.schedules[{i}].channel: {} is not an email or webhook channel",
                        s.channel
                    ))
                }
                Some(_) => {}
            }
            if out.iter().any(|o| o.name == s.name) {
                return Err(format!(
                    "reports.schedules[{i}].name: {} is used twice",
                    s.name
                ));
            }
            out.push(s);
        }
        Ok(out)
    }
}

/// KPIs (`[kpis]`): evaluation interval, series retention, changes to the built-in KPIs and
/// custom ones (docs/kpis.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KpiConfig {
    /// How often each KPI is evaluated unless it says otherwise (`5m`).
    pub interval: opsdesk_domain::kpi::Span,
    /// How long evaluated values are kept (`400d`).
    pub retention: opsdesk_domain::kpi::Span,
    /// `[kpis.builtin.<name>]`: window, interval and thresholds of a built-in KPI.
    pub builtin: std::collections::BTreeMap<String, opsdesk_core::kpis::KpiOverride>,
    /// `[[kpis.custom]]`: KPIs of the team's own.
    pub custom: Vec<opsdesk_domain::kpi::KpiSpec>,
}

impl Default for KpiConfig {
    fn default() -> Self {
        let d = opsdesk_core::kpis::KpiSettings::default();
        KpiConfig {
            interval: d.interval,
            retention: d.retention,
            builtin: Default::default(),
            custom: Vec::new(),
        }
    }
}

impl KpiConfig {
    pub fn settings(&self) -> Result<opsdesk_core::kpis::KpiSettings, String> {
        opsdesk_core::kpis::KpiSettings::new(
            self.interval,
            self.retention,
            &self.builtin,
            self.custom.clone(),
        )
        .map_err(|e| format!("kpis.{}: {}", e.field, e.message))
    }
}

/// Business-hours calendars and SLA policies (`[sla]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlaConfig {
    pub calendars: Vec<opsdesk_domain::CalendarSpec>,
    /// Tried before the built-in policies (docs/sla.md); the most specific match wins.
    pub policies: Vec<opsdesk_domain::SlaPolicy>,
}

impl SlaConfig {
    pub fn settings(&self) -> Result<opsdesk_core::sla::SlaSettings, String> {
        use opsdesk_domain::Validated;
        let calendars = self
            .calendars
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.validate()
                    .map_err(|e| format!("sla.calendars[{i}].{}: {}", e.field, e.message))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let policies = self
            .policies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.clone()
                    .validate()
                    .map_err(|e| format!("sla.policies[{i}].{}: {}", e.field, e.message))
            })
            .collect::<Result<Vec<_>, _>>()?;
        opsdesk_core::sla::SlaSettings::new(calendars, policies)
            .map_err(|e| format!("sla.{}: {}", e.field, e.message))
    }
}

/// AWS accounts and their support plans (`[aws]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// Accounts (`[[aws.accounts]]`); more can be added through /api/v1/aws-accounts, but
    /// these cannot be changed there.
    pub accounts: Vec<opsdesk_domain::AwsAccount>,
}

impl AwsConfig {
    /// The accounts, once each is valid and no id is listed twice; the error names the key.
    pub fn accounts(&self) -> Result<Vec<opsdesk_domain::AwsAccount>, String> {
        use opsdesk_domain::Validated;
        let mut accounts: Vec<opsdesk_domain::AwsAccount> = Vec::with_capacity(self.accounts.len());
        for (i, a) in self.accounts.iter().enumerate() {
            let a = a
                .clone()
                .validate()
                .map_err(|e| format!("aws.accounts[{i}].{}: {}", e.field, e.message))?;
            if accounts.iter().any(|k| k.id == a.id) {
                return Err(format!("aws.accounts[{i}].id: {} is listed twice", a.id));
            }
            accounts.push(a);
        }
        Ok(accounts)
    }

    /// What the accounts configured with a plan that ends (or has ended) should know on
    /// `day`, one line per account, naming its key.
    pub fn plan_notices(&self, day: chrono::NaiveDate) -> Vec<String> {
        self.accounts
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                opsdesk_domain::support::plan_notice(a.support_plan, day, a.govcloud)
                    .map(|n| format!("aws.accounts[{i}] ({} {}): {n}", a.id, a.name.trim()))
            })
            .collect()
    }
}

/// Who is told about what, and how (`[notify]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Let webhooks reach loopback and private addresses (off: such URLs are refused).
    pub allow_private_addresses: bool,
    /// The address people open opsdesk at, for links in messages.
    pub base_url: Option<String>,
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: i64,
    /// The first retry waits this long; each next one twice as long, up to `max_backoff_seconds`.
    pub first_backoff_seconds: u64,
    pub max_backoff_seconds: u64,
    /// How long a node holds the deliveries it took before another node (or the same one,
    /// restarted) may send them.
    pub lease_seconds: u64,
    /// The SMTP server for email channels.
    pub smtp: Option<opsdesk_notify::SmtpSettings>,
    /// Channels (`[[notify.channels]]`); more can be added through /api/v1/channels.
    pub channels: Vec<opsdesk_domain::channel::ChannelSpec>,
    /// Routing rules (`[[notify.rules]]`), tried before those added through the API.
    pub rules: Vec<opsdesk_domain::routing::RoutingRule>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            allow_private_addresses: false,
            base_url: None,
            max_attempts: 8,
            first_backoff_seconds: 30,
            max_backoff_seconds: 3600,
            lease_seconds: 60,
            smtp: None,
            channels: Vec::new(),
            rules: Vec::new(),
        }
    }
}

impl NotifyConfig {
    /// The settings, once every channel, rule and the SMTP server are valid; the error names
    /// the key.
    pub fn settings(&self) -> Result<opsdesk_core::outbox::NotifySettings, String> {
        use opsdesk_domain::Validated;
        let mut channels = Vec::with_capacity(self.channels.len());
        for (i, c) in self.channels.iter().enumerate() {
            let c = c
                .clone()
                .validate()
                .map_err(|e| format!("notify.channels[{i}].{}: {}", e.field, e.message))?;
            if channels
                .iter()
                .any(|k: &opsdesk_domain::channel::ChannelSpec| k.name == c.name)
            {
                return Err(format!(
                    "notify.channels[{i}].name: {} is used twice",
                    c.name
                ));
            }
            channels.push(c);
        }
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, r) in self.rules.iter().enumerate() {
            let r = r
                .clone()
                .validate()
                .map_err(|e| format!("notify.rules[{i}].{}: {}", e.field, e.message))?;
            if let Some((j, c)) = r
                .channels
                .iter()
                .enumerate()
                .find(|(_, c)| !channels.iter().any(|k| &k.name == *c))
            {
                return Err(format!(
                    "notify.rules[{i}].channels[{j}]: there is no channel named {c} in [[notify.channels]]"
                ));
            }
            rules.push(r);
        }
        if let Some(smtp) = &self.smtp {
            smtp.validate()
                .map_err(|e| format!("notify.smtp.{}: {}", e.field, e.message))?;
        }
        if self.max_attempts < 1 {
            return Err("notify.max_attempts must be 1 or more".into());
        }
        let seconds = |v: u64, key: &str| {
            i64::try_from(v)
                .ok()
                .and_then(chrono::Duration::try_seconds)
                .filter(|d| *d > chrono::Duration::zero())
                .ok_or(format!("notify.{key} must be 1 or more, and not huge"))
        };
        Ok(opsdesk_core::outbox::NotifySettings {
            channels,
            rules,
            base_url: self.base_url.clone(),
            max_attempts: self.max_attempts,
            first_backoff: seconds(self.first_backoff_seconds, "first_backoff_seconds")?,
            max_backoff: seconds(self.max_backoff_seconds, "max_backoff_seconds")?,
            lease: seconds(self.lease_seconds, "lease_seconds")?,
        })
    }
}

/// How signals from AWS and monitors become tickets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// A problem that fires again this soon after its ticket was resolved reopens it.
    pub reopen_window_hours: u64,
    /// This many firing/resolved flips within `flapping_window_minutes` mark a problem flapping.
    pub flapping_changes: usize,
    pub flapping_window_minutes: u64,
    /// Signals older than this whose ticket is resolved or closed (or that have none) are
    /// deleted; 0 keeps them all. The audit trail, never pruned, keeps what each did.
    pub signal_retention_days: u64,
    /// Delivery receipts (how a repeated delivery is known) older than this are deleted: at
    /// least 1, since EventBridge retries a delivery for up to 24 hours.
    pub receipt_retention_days: u64,
    /// Severity rules, tried in order before the built-in ones.
    pub rules: Vec<opsdesk_domain::signal::rules::SeverityRule>,
    /// SQS queues to consume (`[[ingest.sqs]]`).
    pub sqs: Vec<opsdesk_aws::sqs::SqsConfig>,
    /// Amazon SNS HTTP(S) subscriptions to `/api/v1/ingest/sns`.
    pub sns: opsdesk_aws::sns::SnsConfig,
    /// The AWS Health API poller.
    pub health: opsdesk_aws::health::HealthConfig,
    /// The Trusted Advisor poller.
    pub trusted_advisor: opsdesk_aws::trusted_advisor::TrustedAdvisorConfig,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            reopen_window_hours: 24,
            flapping_changes: 4,
            flapping_window_minutes: 60,
            signal_retention_days: 180,
            receipt_retention_days: 30,
            rules: Vec::new(),
            sqs: Vec::new(),
            sns: Default::default(),
            health: Default::default(),
            trusted_advisor: Default::default(),
        }
    }
}

impl IngestConfig {
    /// How long signals and receipts are kept: (signals, `None` for ever; receipts).
    pub fn retention(&self) -> Result<(Option<chrono::Duration>, chrono::Duration), String> {
        let days = |n: u64, key: &str| {
            i64::try_from(n)
                .ok()
                .and_then(chrono::Duration::try_days)
                .ok_or(format!("ingest.{key} is too large"))
        };
        if self.receipt_retention_days < 1 {
            return Err(
                "ingest.receipt_retention_days must be at least 1: EventBridge retries \
                        a delivery for up to 24 hours"
                    .into(),
            );
        }
        let signals = match self.signal_retention_days {
            0 => None,
            n => Some(days(n, "signal_retention_days")?),
        };
        Ok((
            signals,
            days(self.receipt_retention_days, "receipt_retention_days")?,
        ))
    }

    pub fn settings(&self) -> Result<opsdesk_core::signals::IngestSettings, String> {
        if self.flapping_changes < 2 {
            return Err("ingest.flapping_changes must be at least 2".into());
        }
        let hours = i64::try_from(self.reopen_window_hours)
            .ok()
            .and_then(chrono::Duration::try_hours)
            .ok_or("ingest.reopen_window_hours is too large")?;
        let minutes = i64::try_from(self.flapping_window_minutes)
            .ok()
            .and_then(chrono::Duration::try_minutes)
            .filter(|m| *m > chrono::Duration::zero())
            .ok_or("ingest.flapping_window_minutes must be 1 or more, and not huge")?;
        Ok(opsdesk_core::signals::IngestSettings {
            rules: self.rules.clone(),
            reopen_window: hours,
            flapping_changes: self.flapping_changes,
            flapping_window: minutes,
        })
    }
}

/// Single sign-on with an OpenID Connect provider; off while `issuer_url` is empty.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// `<opsdesk URL>/auth/oidc/callback`, as registered with the provider.
    pub redirect_url: String,
    pub scopes: Vec<String>,
    /// The ID token claim that lists a person's groups.
    pub groups_claim: String,
    /// Group -> role; the strongest role among a person's groups wins.
    pub roles: std::collections::BTreeMap<String, String>,
    /// The role of people none of whose groups is in `roles`.
    pub default_role: String,
    /// Group -> team name (created when missing).
    pub teams: std::collections::BTreeMap<String, String>,
    /// Turn local passwords off: everyone signs in with SSO.
    pub sso_only: bool,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            issuer_url: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            redirect_url: String::new(),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            groups_claim: "groups".into(),
            roles: Default::default(),
            default_role: "requester".into(),
            teams: Default::default(),
            sso_only: false,
        }
    }
}

impl fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer_url", &self.issuer_url)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &if self.client_secret.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .field("redirect_url", &self.redirect_url)
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .field("roles", &self.roles)
            .field("default_role", &self.default_role)
            .field("teams", &self.teams)
            .field("sso_only", &self.sso_only)
            .finish()
    }
}

impl OidcConfig {
    /// The settings for the web layer, when single sign-on is on.
    pub fn settings(&self) -> Result<Option<opsdesk_web::sso::SsoSettings>, String> {
        use opsdesk_domain::Role;
        if self.issuer_url.trim().is_empty() {
            return Ok(None);
        }
        let role = |name: &str, key: &str| {
            Role::parse(name)
                .filter(|r| r.for_people())
                .ok_or_else(|| format!("oidc.{key}: unknown role {name:?}; expected one of: requester, agent, lead, admin, auditor, viewer"))
        };
        let mut mapping = opsdesk_core::sso::SsoMapping {
            default_role: role(&self.default_role, "default_role")?,
            ..Default::default()
        };
        for (group, name) in &self.roles {
            mapping
                .roles
                .insert(group.clone(), role(name, &format!("roles.{group}"))?);
        }
        mapping.teams = self.teams.clone();
        for (key, value) in [
            ("client_id", &self.client_id),
            ("redirect_url", &self.redirect_url),
        ] {
            if value.trim().is_empty() {
                return Err(format!("oidc.{key} must be set when oidc.issuer_url is"));
            }
        }
        Ok(Some(opsdesk_web::sso::SsoSettings {
            issuer_url: self.issuer_url.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            redirect_url: self.redirect_url.clone(),
            scopes: self.scopes.clone(),
            groups_claim: self.groups_claim.clone(),
            mapping,
        }))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Mark cookies Secure; set it when people reach opsdesk over HTTPS.
    pub secure_cookies: bool,
    /// A session unused this many minutes ends.
    pub session_idle_minutes: u32,
    /// A session ends this many hours after sign-in.
    pub session_max_hours: u32,
    /// Failed sign-ins per account, then per client address, within the window before 429.
    pub max_failures_per_account: u32,
    pub max_failures_per_address: u32,
    pub failure_window_minutes: u32,
    /// Requests per minute one client address may make to the endpoints anyone may call that
    /// write (password sign-in, first-run setup, single sign-on start and callback); then 429.
    pub sign_in_requests_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            secure_cookies: false,
            session_idle_minutes: 120,
            session_max_hours: 12,
            max_failures_per_account: 5,
            max_failures_per_address: 20,
            failure_window_minutes: 15,
            sign_in_requests_per_minute: opsdesk_web::SIGN_IN_REQUESTS_PER_MINUTE,
        }
    }
}

impl AuthConfig {
    pub fn settings(&self) -> opsdesk_core::sessions::AuthSettings {
        use chrono::TimeDelta;
        opsdesk_core::sessions::AuthSettings {
            session_idle: TimeDelta::minutes(i64::from(self.session_idle_minutes.max(1))),
            session_max: TimeDelta::hours(i64::from(self.session_max_hours.max(1))),
            max_failures_per_account: i64::from(self.max_failures_per_account.max(1)),
            max_failures_per_address: i64::from(self.max_failures_per_address.max(1)),
            failure_window: TimeDelta::minutes(i64::from(self.failure_window_minutes.max(1))),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub bind: SocketAddr,
    /// Seconds in-flight requests get to finish after SIGTERM or SIGINT.
    pub shutdown_grace_secs: u64,
    /// Proxies (CIDR blocks or addresses) whose `X-Forwarded-For` / `Forwarded` headers name
    /// the client. Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// How this node names itself in job leases and /metrics; the host name and process id
    /// when unset.
    pub node_name: Option<String>,
    /// How long a node holds a job that runs on one node at a time (the clock watcher, the AWS
    /// pollers, ...) without renewing it: another node takes the job over within this long
    /// and a third after the holder dies (at once after a clean stop). Renewed every third of
    /// it.
    pub job_lease_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shutdown_grace_secs: 30,
            trusted_proxies: Vec::new(),
            node_name: None,
            job_lease_secs: 15,
        }
    }
}

impl ServerConfig {
    /// This node's name: `node_name`, else the host name and process id.
    pub fn node_name(&self) -> String {
        if let Some(name) = self
            .node_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            return name.to_owned();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "opsdesk".into());
        format!("{host}-{}", std::process::id())
    }

    /// The trusted proxies, once each is a CIDR block or an address; the error names the key.
    pub fn trusted_proxies(&self) -> Result<Vec<opsdesk_web::client::IpNet>, String> {
        opsdesk_web::client::parse_trusted_proxies(&self.trusted_proxies)
            .map_err(|(i, e)| format!("server.trusted_proxies[{i}]: {e}"))
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`.
    pub url: String,
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://opsdesk.db".into(),
            max_connections: 10,
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &opsdesk_store::db::redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `opsdesk=debug,sqlx=warn`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Environment variables that are not configuration keys.
const NOT_CONFIG: &[&str] = &["config"];

/// Short names for the settings people set most.
fn env_key(key: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    if NOT_CONFIG.contains(&key.as_str()) || key.starts_with("test_") {
        return None;
    }
    Some(match key.as_str() {
        "bind" => "server.bind".to_owned(),
        "database_url" => "database.url".to_owned(),
        "log_format" => "log.format".to_owned(),
        "log_level" => "log.level".to_owned(),
        other => other.replace("__", "."),
    })
}

impl Config {
    /// The clients of `[[connectors]]`, each checked; names are unique.
    pub fn connector_remotes(
        &self,
    ) -> Result<Vec<Arc<dyn opsdesk_core::connectors::RemoteSystem>>, String> {
        let mut out = Vec::with_capacity(self.connectors.len());
        for (i, spec) in self.connectors.iter().enumerate() {
            if self.connectors[..i].iter().any(|c| c.name == spec.name) {
                return Err(format!(
                    "connectors[{i}].name: {:?} is used by another connector",
                    spec.name
                ));
            }
            out.push(opsdesk_connectors::remote(spec).map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    /// Loads defaults, then `file` (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(Box::new(figment::Error::from(format!(
                    "configuration file {} does not exist",
                    path.display()
                ))));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(
            Env::prefixed("OPSDESK_").filter_map(|k| env_key(k.as_str()).map(Uncased::from_owned)),
        );
        figment.extract().map_err(Box::new)
    }
}

/// A commented configuration with every key at its default.
pub const EXAMPLE: &str = include_str!("../../../opsdesk.example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_are_kept_at_least_a_day_and_signals_may_be_kept_for_ever() {
        let mut c = IngestConfig::default();
        assert_eq!(
            c.retention().unwrap(),
            (
                Some(chrono::Duration::days(180)),
                chrono::Duration::days(30)
            )
        );
        c.receipt_retention_days = 0;
        assert!(c.retention().unwrap_err().contains("24 hours"));
        c.receipt_retention_days = 2;
        c.signal_retention_days = 0;
        assert_eq!(c.retention().unwrap(), (None, chrono::Duration::days(2)));
    }

    #[test]
    fn report_schedules_need_an_email_or_webhook_channel() {
        let c: Config = toml::from_str(
            r#"
            [[notify.channels]]
            name = "ops-mail"
            type = "email"
            to = ["ops@example.com"]
            [[notify.channels]]
            name = "ops-sns"
            type = "sns"
            topic_arn = "arn:aws:sns:eu-west-1:123456789012:ops"
            [[reports.schedules]]
            name = "weekly"
            every = "week"
            channel = "ops-mail"
            "#,
        )
        .unwrap();
        assert_eq!(c.reports.schedules(&c.notify).unwrap().len(), 1);
        let mut bad = c.clone();
        bad.reports.schedules[0].channel = "ops-sns".into();
        let e = bad.reports.schedules(&bad.notify).unwrap_err();
        assert!(
            e.starts_with("reports.schedules[0].channel: ops-sns is not"),
            "{e}"
        );
        bad.reports.schedules[0].channel = "nowhere".into();
        assert!(bad.reports.schedules(&bad.notify).is_err());
        let e = toml::from_str::<Config>(
            "[[reports.schedules]]\nname = \"x\"\nevery = \"day\"\nchannel = \"c\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("every"), "{e}");
    }

    #[test]
    fn example_is_the_default() {
        let parsed: Config = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn the_readme_escalation_setup_loads() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("## Notify people and escalate to AWS Support")
            .nth(1)
            .unwrap();
        let toml_block = section
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .unwrap();
        let c: Config = toml::from_str(toml_block).unwrap();
        let escalation = c.escalation.settings(&c.notify).unwrap();
        assert!(escalation.aws.auto);
        assert_eq!(escalation.aws.notify_channels, ["dev-team-sns"]);
        assert_eq!(c.notify.settings().unwrap().channels.len(), 3);
        assert_eq!(c.aws.accounts().unwrap().len(), 1);
        c.ingest.settings().unwrap();
    }

    #[test]
    fn escalation_settings_name_the_bad_key() {
        let bad = |toml: &str| {
            let c: Config = toml::from_str(toml).unwrap();
            c.escalation.settings(&c.notify).unwrap_err()
        };
        assert!(bad("[escalation.aws]\nnotify_channels = [\"nope\"]")
            .starts_with("escalation.aws.notify_channels[0]: there is no channel named nope"));
        assert!(bad("[escalation.aws]\naccount_team_channel = \"nope\"")
            .starts_with("escalation.aws.account_team_channel"));
        assert!(bad("[[notify.channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://hooks.example.com/x\"\n[escalation.aws]\naccount_team_channel = \"hook\"")
            .contains("hook is not an email channel"));
        assert!(bad(
            "[[escalation.policies]]\nname = \"p\"\n[[escalation.policies.tiers]]\nname = \"L1\"\nteam = \"a\"\n[[escalation.policies.tiers]]\nname = \"L2\"\nteam = \"b\""
        )
        .starts_with("escalation.policies[0].tiers[0].ack_timeout_minutes"));
        assert!(bad("[escalation]\ncase_sync_seconds = 1").contains("case_sync_seconds"));
        let e = toml::from_str::<Config>("[escalation.aws]\nauto = \"yes\"").unwrap_err();
        assert!(e.to_string().contains("auto"), "{e}");
    }

    #[test]
    fn debug_redacts_the_database_password() {
        let mut c = Config::default();
        c.database.url = "postgres://ops:hunter2@db:5432/opsdesk".into();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("postgres://ops:***@db:5432/opsdesk"),
            "{shown}"
        );
    }

    #[test]
    fn notify_settings_are_checked_and_secrets_hidden() {
        let c: Config = toml::from_str(
            r#"
            [notify.smtp]
            host = "smtp.example.com"
            username = "mailer"
            password = "smtp-hunter2"
            from = "opsdesk@example.com"
            [[notify.channels]]
            name = "hook"
            type = "webhook"
            url = "https://hooks.example.com/opsdesk"
            secret = "whsec-hunter2-0123456789"
            [[notify.rules]]
            name = "all"
            channels = ["hook"]
            "#,
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let settings = c.notify.settings().unwrap();
        assert_eq!(settings.channels.len(), 1);
        assert_eq!(settings.rules[0].channels, vec!["hook"]);

        let mut bad = c.clone();
        bad.notify.rules[0].channels = vec!["hook".into(), "pager".into()];
        let e = bad.notify.settings().unwrap_err();
        assert!(e.starts_with("notify.rules[0].channels[1]"), "{e}");
        let mut bad = c;
        bad.notify.channels.push(bad.notify.channels[0].clone());
        let e = bad.notify.settings().unwrap_err();
        assert!(e.starts_with("notify.channels[1].name"), "{e}");
        let e = toml::from_str::<Config>("[[notify.channels]]\nname = \"x\"\ntype = \"pager\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pager"), "{e}");
    }

    #[test]
    fn accounts_on_ending_plans_are_warned_about_on_either_side_of_2027() {
        let c: Config = toml::from_str(
            r#"
            [[aws.accounts]]
            id = "111122223333"
            name = "payments-prod"
            support_plan = "business_support_plus"
            [[aws.accounts]]
            id = "444455556666"
            name = "legacy"
            support_plan = "enterprise_on_ramp"
            [[aws.accounts]]
            id = "777788889999"
            name = "gov"
            support_plan = "business"
            govcloud = true
            "#,
        )
        .unwrap();
        assert_eq!(c.aws.accounts().unwrap().len(), 3);
        let day = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
        let before = c.aws.plan_notices(day("2026-12-31"));
        assert_eq!(before.len(), 1, "{before:?}");
        assert!(
            before[0].starts_with("aws.accounts[1] (444455556666 legacy): AWS ends the Enterprise On-Ramp plan on 2027-01-01"),
            "{before:?}"
        );
        let after = c.aws.plan_notices(day("2027-01-01"));
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(after[0].contains("ended on 2027-01-01"), "{after:?}");
        assert!(after[0].contains("moves it to Enterprise"), "{after:?}");
        assert!(c.aws.plan_notices(day("2026-06-01")).len() == 1);
    }

    #[test]
    fn aws_accounts_are_checked_with_the_key_named() {
        let c: Config = toml::from_str(
            r#"
            [[aws.accounts]]
            id = "111122223333"
            name = "payments-prod"
            support_plan = "enterprise_on_ramp"
            [[aws.accounts]]
            id = "1234"
            name = "short"
            support_plan = "basic"
            "#,
        )
        .unwrap();
        let e = c.aws.accounts().unwrap_err();
        assert!(e.starts_with("aws.accounts[1].id:"), "{e}");
        let mut twice = c.clone();
        twice.aws.accounts[1].id = "111122223333".into();
        let e = twice.aws.accounts().unwrap_err();
        assert!(e.starts_with("aws.accounts[1].id:"), "{e}");
        let mut ok = c;
        ok.aws.accounts[1].id = "444455556666".into();
        assert_eq!(ok.aws.accounts().unwrap().len(), 2);
        let e = toml::from_str::<Config>(
            "[[aws.accounts]]\nid = \"111122223333\"\nname = \"x\"\nsupport_plan = \"gold\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gold"), "{e}");
        let team: Vec<String> = (0..11).map(|i| format!("\"tam{i}@example.com\"")).collect();
        let crowded: Config = toml::from_str(&format!(
            "[[aws.accounts]]\nid = \"111122223333\"\nname = \"x\"\nsupport_plan = \"business\"\n\
             account_team_emails = [{}]\n",
            team.join(", ")
        ))
        .unwrap();
        let e = crowded.aws.accounts().unwrap_err();
        assert!(
            e.starts_with("aws.accounts[0].account_team_emails: at most 10"),
            "{e}"
        );
    }

    #[test]
    fn sla_settings_name_the_bad_key() {
        let c: Config = toml::from_str(
            r#"
            [[sla.calendars]]
            name = "office"
            time_zone = "Europe/Berlin"
            [sla.calendars.hours]
            mon = ["09:00-17:00"]
            [[sla.policies]]
            name = "p"
            severity = "SEV2"
            first_response_minutes = 30
            resolution_minutes = 240
            calendar = "office"
            "#,
        )
        .unwrap();
        assert_eq!(c.sla.settings().unwrap().policies.len(), 1);
        let mut bad = c.clone();
        bad.sla.calendars[0].time_zone = "Mars/Olympus".into();
        let e = bad.sla.settings().unwrap_err();
        assert!(e.starts_with("sla.calendars[0].time_zone"), "{e}");
        let mut bad = c;
        bad.sla.policies[0].calendar = Some("home".into());
        let e = bad.sla.settings().unwrap_err();
        assert!(e.starts_with("sla.policies[0].calendar"), "{e}");
    }

    #[test]
    fn env_short_names_map_to_keys() {
        assert_eq!(env_key("BIND").as_deref(), Some("server.bind"));
        assert_eq!(env_key("database_url").as_deref(), Some("database.url"));
        assert_eq!(env_key("server__bind").as_deref(), Some("server.bind"));
        assert_eq!(env_key("config"), None);
        assert_eq!(env_key("test_postgres_url"), None);
    }
}
