//! Connectors: two-way links between opsdesk tickets and tickets in another ticketing system.
//!
//! What is pure lives here: a connector's settings and their checks, and how opsdesk's
//! statuses and severities map to the other system's. The sync itself is in opsdesk-core, the
//! systems' APIs in opsdesk-connectors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ticket::{Kind, Severity, Status};

/// The systems opsdesk links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorType {
    /// Request Tracker 5, through its REST 2.0 API.
    RequestTracker,
    /// Jira Cloud, through its platform REST API v3.
    Jira,
    /// ServiceNow incidents, through its Table API.
    Servicenow,
}

impl ConnectorType {
    pub const ALL: &'static [ConnectorType] = &[
        ConnectorType::RequestTracker,
        ConnectorType::Jira,
        ConnectorType::Servicenow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorType::RequestTracker => "request_tracker",
            ConnectorType::Jira => "jira",
            ConnectorType::Servicenow => "servicenow",
        }
    }

    /// How people call the system in messages and on the ticket page.
    pub fn label(self) -> &'static str {
        match self {
            ConnectorType::RequestTracker => "Request Tracker",
            ConnectorType::Jira => "Jira",
            ConnectorType::Servicenow => "ServiceNow",
        }
    }

    /// The status the other system shows for an opsdesk status, before the connector's own
    /// `status_map`: RT's default lifecycle, Jira's default workflow (by status name),
    /// ServiceNow's incident state codes.
    pub fn default_status(self, s: Status) -> &'static str {
        match self {
            ConnectorType::RequestTracker => rt_status(s),
            ConnectorType::Jira => match s {
                Status::New => "To Do",
                Status::Acknowledged | Status::InProgress | Status::Pending => "In Progress",
                Status::Resolved | Status::Closed => "Done",
            },
            ConnectorType::Servicenow => match s {
                Status::New => "1",
                Status::Acknowledged | Status::InProgress => "2",
                Status::Pending => "3",
                Status::Resolved => "6",
                Status::Closed => "7",
            },
        }
    }

    /// The opsdesk status a status of the other system stands for, before the connector's
    /// own map; a "new" over there stands for none (opsdesk has no way back to new).
    pub fn default_status_from(self, remote: &str) -> Option<Status> {
        match self {
            ConnectorType::RequestTracker => status_from_rt(remote),
            ConnectorType::Jira => match remote.trim().to_ascii_lowercase().as_str() {
                "in progress" => Some(Status::InProgress),
                "done" | "resolved" | "closed" => Some(Status::Resolved),
                _ => None,
            },
            ConnectorType::Servicenow => match remote.trim() {
                "2" => Some(Status::InProgress),
                "3" => Some(Status::Pending),
                "6" | "8" => Some(Status::Resolved),
                "7" => Some(Status::Closed),
                _ => None,
            },
        }
    }

    /// The other system's priority for a severity: RT's 0 to 99 (bands of 20), Jira's
    /// default priorities Highest (1) to Lowest (5), ServiceNow's priority 1 to 5.
    pub fn priority(self, s: Severity) -> i64 {
        match self {
            ConnectorType::RequestTracker => rt_priority(s),
            ConnectorType::Jira | ConnectorType::Servicenow => s.rank(),
        }
    }

    /// The severity a priority of the other system stands for.
    pub fn severity(self, priority: i64) -> Severity {
        match self {
            ConnectorType::RequestTracker => severity_from_rt_priority(priority),
            ConnectorType::Jira | ConnectorType::Servicenow => {
                Severity::ALL[usize::try_from(priority.clamp(1, 5) - 1).unwrap_or(0)]
            }
        }
    }

    /// The most characters the other system keeps of a title: RT's subject (200), Jira's
    /// summary (255), ServiceNow's short description (160).
    pub fn subject_max(self) -> usize {
        match self {
            ConnectorType::RequestTracker => RT_SUBJECT_MAX,
            ConnectorType::Jira => 255,
            ConnectorType::Servicenow => 160,
        }
    }
}

/// Which new opsdesk tickets are pushed to the other system without anyone asking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CreateFor {
    /// Tickets of these severities; empty pushes none by itself.
    pub severities: Vec<Severity>,
}

/// One `[[connectors]]` entry of the configuration.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSpec {
    /// How tickets and the API name this connection: 1 to 32 of `a-z 0-9 - _`.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// The system's address, e.g. `https://rt.example.com` (RT's web path included if it has one).
    pub url: String,
    /// Basic authentication: the user opsdesk acts as (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// Never shown by the API: `***` when set.
    #[serde(default)]
    pub password: Option<String>,
    /// Token authentication instead of a password: RT, an auth token of the user opsdesk acts
    /// as; Jira Cloud, an API token of the account `username` names (its email); ServiceNow,
    /// an OAuth access token. Never shown by the API.
    #[serde(default)]
    pub token: Option<String>,
    /// Where tickets are created and taken from: RT's queue, Jira's project key, ServiceNow's
    /// table (`incident`).
    pub queue: String,
    /// Jira: the issue type of the issues opsdesk creates (`Task` when unset).
    #[serde(default)]
    pub issue_type: Option<String>,
    /// ServiceNow: the resolution code sent with a resolved or closed incident (`Solution
    /// provided` when unset; ServiceNow requires one).
    #[serde(default)]
    pub close_code: Option<String>,
    /// The shared secret the other system's calls to opsdesk's webhook carry (an RT scrip's
    /// header, Jira's HMAC signature, a ServiceNow business rule's header). Without it the
    /// webhook is off. Never shown by the API.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// How often the other side is asked what changed.
    #[serde(default = "default_poll_seconds")]
    pub poll_seconds: u64,
    /// Whether tickets made in the other system (not by opsdesk) become opsdesk tickets.
    #[serde(default)]
    pub import_new: bool,
    #[serde(default)]
    pub create_for: CreateFor,
    /// Other-side statuses mapped to opsdesk's, over the defaults (see [`status_from_rt`]).
    #[serde(default)]
    pub status_map: BTreeMap<String, Status>,
    /// opsdesk severities to the other system's priority, over the defaults: RT's number,
    /// Jira's priority name, ServiceNow's impact and urgency as `"impact,urgency"`. Read
    /// both ways, so each severity needs a priority of its own.
    #[serde(default)]
    pub priority_map: BTreeMap<Severity, String>,
    /// opsdesk kinds to Jira's issue type or ServiceNow's category: what the tickets opsdesk
    /// creates get, and the kind an imported ticket gets. RT has no kind of ticket.
    #[serde(default)]
    pub kind_map: BTreeMap<Kind, String>,
    /// opsdesk teams to RT queues, Jira project keys or ServiceNow assignment groups (sys_id):
    /// where a ticket of the team is created, and the team an imported ticket gets.
    #[serde(default)]
    pub team_map: BTreeMap<String, String>,
}

/// Names that would make the authors a connector writes (`<name>:<remote user>`) look like
/// opsdesk's own actors (`user:<email>`, `token:<name>`, `connector:<name>`, ...).
const RESERVED_NAMES: &[&str] = &[
    "user",
    "token",
    "connector",
    "cli",
    "system",
    "aws",
    "sso",
    "oidc",
    "mail",
    "email",
    "imap",
    "ses",
    "sns",
    "sqs",
    "health",
    "signal",
    "persona",
];

fn default_poll_seconds() -> u64 {
    60
}

impl std::fmt::Debug for ConnectorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("queue", &self.queue)
            .field("issue_type", &self.issue_type)
            .field("close_code", &self.close_code)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "***"),
            )
            .field("poll_seconds", &self.poll_seconds)
            .field("import_new", &self.import_new)
            .field("create_for", &self.create_for)
            .field("status_map", &self.status_map)
            .field("priority_map", &self.priority_map)
            .field("kind_map", &self.kind_map)
            .field("team_map", &self.team_map)
            .finish()
    }
}

/// A setting that cannot work, with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connectors.{field}: {message}")]
pub struct ConnectorConfigError {
    pub field: String,
    pub message: String,
}

impl ConnectorSpec {
    /// Checks what can be checked without asking the other system.
    pub fn check(&self) -> Result<(), ConnectorConfigError> {
        let fail = |field: &str, message: String| {
            Err(ConnectorConfigError {
                field: format!("{}.{field}", self.name),
                message,
            })
        };
        let name_ok = (1..=32).contains(&self.name.len())
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if RESERVED_NAMES.contains(&self.name.as_str()) {
            return Err(ConnectorConfigError {
                field: "name".into(),
                message: format!(
                    "{:?} is how opsdesk names its own actors; choose another name",
                    self.name
                ),
            });
        }
        if !name_ok {
            return Err(ConnectorConfigError {
                field: "name".into(),
                message: format!(
                    "{:?} must be 1 to 32 of lower-case letters, digits, - and _",
                    self.name
                ),
            });
        }
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                if !u.username().is_empty() || u.password().is_some() {
                    return fail(
                        "url",
                        "must not carry credentials; use username and password or token".into(),
                    );
                }
            }
            _ => {
                return fail(
                    "url",
                    format!(
                        "{:?} is not an http(s) address",
                        crate::credentials::masked_url(&self.url)
                    ),
                )
            }
        }
        let username = self.username.as_deref().unwrap_or_default().trim();
        if username.is_empty() {
            return fail(
                "username",
                "names the user opsdesk acts as; it is required".into(),
            );
        }
        let password = self.password.as_deref().is_some_and(|p| !p.is_empty());
        let token = self.token.as_deref().is_some_and(|t| !t.is_empty());
        if password == token {
            return fail(
                "password",
                "set either password or token, not both or neither".into(),
            );
        }
        if self.kind == ConnectorType::Jira && password {
            return fail(
                "token",
                "Jira Cloud takes an API token of the account username names, not its password"
                    .into(),
            );
        }
        if self.queue.trim().is_empty() {
            return fail(
                "queue",
                format!(
                    "names the {} tickets go to; it is required",
                    match self.kind {
                        ConnectorType::RequestTracker => "queue",
                        ConnectorType::Jira => "project (its key)",
                        ConnectorType::Servicenow => "table (incident)",
                    }
                ),
            );
        }
        if self.kind == ConnectorType::Servicenow && self.queue != "incident" {
            return fail(
                "queue",
                format!(
                    "{:?}: ServiceNow incidents are the table opsdesk syncs with; set \"incident\"",
                    self.queue
                ),
            );
        }
        if self.kind != ConnectorType::Jira && self.issue_type.is_some() {
            return fail("issue_type", "is a Jira setting".into());
        }
        if self.kind != ConnectorType::Servicenow && self.close_code.is_some() {
            return fail("close_code", "is a ServiceNow setting".into());
        }
        if self
            .webhook_secret
            .as_deref()
            .is_some_and(|s| s.trim() != s)
        {
            return fail(
                "webhook_secret",
                "must not begin or end with spaces or line breaks".into(),
            );
        }
        if self
            .webhook_secret
            .as_deref()
            .is_some_and(|s| s.trim().len() < 16)
        {
            return fail(
                "webhook_secret",
                "must be at least 16 characters (a random one: openssl rand -hex 24)".into(),
            );
        }
        if self.poll_seconds == 0 || self.poll_seconds > 86_400 {
            return fail("poll_seconds", "must be 1 to 86400".into());
        }
        for name in self.status_map.keys() {
            if name.trim().is_empty() {
                return fail("status_map", "a status name may not be empty".into());
            }
        }
        if let Err(message) = self.check_priority_map() {
            return fail("priority_map", message);
        }
        if !self.kind_map.is_empty() && self.kind == ConnectorType::RequestTracker {
            return fail(
                "kind_map",
                "Request Tracker tickets have no kind; route them to queues with team_map".into(),
            );
        }
        if self.kind_map.values().any(|v| v.trim().is_empty()) {
            return fail(
                "kind_map",
                format!(
                    "a {} may not be empty",
                    if self.kind == ConnectorType::Jira {
                        "issue type"
                    } else {
                        "category"
                    }
                ),
            );
        }
        for (team, place) in &self.team_map {
            if team.trim().is_empty() || place.trim().is_empty() {
                return fail(
                    "team_map",
                    "a team and the place it maps to may not be empty".into(),
                );
            }
        }
        Ok(())
    }

    /// Each severity needs a priority of its own (the map is read both ways), and RT's
    /// numbers must run one way from SEV1 to SEV5 (a number between two is read by band).
    fn check_priority_map(&self) -> Result<(), String> {
        let values: Vec<String> = Severity::ALL
            .iter()
            .map(|s| self.priority_label(*s))
            .collect();
        // Compared as the system reads them: RT's numbers, ServiceNow's pairs, Jira's names
        // without case.
        let same = |a: &str, b: &str| match self.kind {
            ConnectorType::RequestTracker => {
                match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
                    (Ok(x), Ok(y)) => x == y,
                    _ => a.trim() == b.trim(),
                }
            }
            ConnectorType::Servicenow => match (impact_urgency(a), impact_urgency(b)) {
                (Some(x), Some(y)) => x == y,
                _ => a.trim() == b.trim(),
            },
            ConnectorType::Jira => a.trim().eq_ignore_ascii_case(b.trim()),
        };
        for (i, v) in values.iter().enumerate() {
            if v.trim().is_empty() {
                return Err(format!("{} may not be empty", Severity::ALL[i]));
            }
            if values[..i].iter().any(|w| same(w, v)) {
                return Err(format!(
                    "{} and another severity both map to {v:?}; each severity needs a priority of its own",
                    Severity::ALL[i]
                ));
            }
        }
        match self.kind {
            ConnectorType::RequestTracker => {
                let numbers = values
                    .iter()
                    .map(|v| v.trim().parse::<i64>().ok().filter(|n| *n >= 0))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("Request Tracker priorities are whole numbers, 0 or more")?;
                let down = numbers.windows(2).all(|w| w[0] > w[1]);
                let up = numbers.windows(2).all(|w| w[0] < w[1]);
                if !down && !up {
                    return Err(format!(
                        "the numbers must run one way from SEV1 to SEV5 (now {numbers:?}); \
                         map all five severities"
                    ));
                }
            }
            ConnectorType::Servicenow => {
                if values.iter().any(|v| impact_urgency(v).is_none()) {
                    return Err(
                        "ServiceNow priorities are written as \"impact,urgency\", each 1 to 3"
                            .into(),
                    );
                }
            }
            ConnectorType::Jira => {}
        }
        Ok(())
    }

    /// The other system's priority for a severity as the settings name it: RT's number,
    /// Jira's priority name, ServiceNow's `"impact,urgency"`.
    pub fn priority_label(&self, s: Severity) -> String {
        if let Some(v) = self.priority_map.get(&s) {
            return v.trim().to_owned();
        }
        match self.kind {
            ConnectorType::RequestTracker => rt_priority(s).to_string(),
            ConnectorType::Jira => JIRA_PRIORITIES[rank_index(s)].to_owned(),
            ConnectorType::Servicenow => {
                let (i, u) = SERVICENOW_IMPACT_URGENCY[rank_index(s)];
                format!("{i},{u}")
            }
        }
    }

    /// The severity a priority label of the other system stands for (a Jira priority
    /// name, a ServiceNow `"impact,urgency"`), when the settings or the defaults name it.
    pub fn severity_of_label(&self, label: &str) -> Option<Severity> {
        let label = label.trim();
        let same = |a: &str| match self.kind {
            ConnectorType::Servicenow => {
                impact_urgency(a).is_some() && impact_urgency(a) == impact_urgency(label)
            }
            _ => a.trim().eq_ignore_ascii_case(label),
        };
        Severity::ALL
            .iter()
            .copied()
            .find(|s| same(&self.priority_label(*s)))
    }

    /// The number a connector carries as a ticket's priority for a severity: RT's own
    /// priority, the severity's rank (1 to 5) for Jira and ServiceNow (their clients turn it
    /// into a name or an impact and urgency with [`ConnectorSpec::priority_label`]).
    pub fn priority(&self, s: Severity) -> i64 {
        match self.kind {
            ConnectorType::RequestTracker => self
                .priority_label(s)
                .parse()
                .unwrap_or_else(|_| rt_priority(s)),
            ConnectorType::Jira | ConnectorType::Servicenow => s.rank(),
        }
    }

    /// The severity such a number stands for; an RT number between two mapped ones is read
    /// by band (with the defaults 70 to 89 is SEV2). RT's 0 (a ticket nobody gave a priority)
    /// is the least urgent, also where 1 is the most urgent.
    pub fn severity(&self, priority: i64) -> Severity {
        if self.kind != ConnectorType::RequestTracker {
            return self.kind.severity(priority);
        }
        let numbers: Vec<i64> = Severity::ALL.iter().map(|s| self.priority(*s)).collect();
        let down = numbers.first() >= numbers.last();
        if !down && priority <= 0 && numbers.first().is_some_and(|first| *first > 0) {
            return Severity::Sev5;
        }
        Severity::ALL
            .iter()
            .zip(&numbers)
            .find(|(_, n)| {
                if down {
                    priority >= **n
                } else {
                    priority <= **n
                }
            })
            .map(|(s, _)| *s)
            .unwrap_or(Severity::Sev5)
    }

    /// Where a ticket of `team` goes over there: the `team_map` entry, if any.
    pub fn place_for(&self, team: Option<&str>) -> Option<&str> {
        let team = team?.trim();
        self.team_map
            .iter()
            .find(|(t, _)| t.trim().eq_ignore_ascii_case(team))
            .map(|(_, place)| place.trim())
    }

    /// The team a place over there stands for (the first team mapped to it).
    pub fn team_for(&self, place: &str) -> Option<String> {
        let place = place.trim();
        if place.is_empty() {
            return None;
        }
        self.team_map
            .iter()
            .find(|(_, p)| p.trim().eq_ignore_ascii_case(place))
            .map(|(t, _)| t.trim().to_owned())
    }

    /// The places tickets are created in and imported from: `queue` and the `team_map`'s
    /// (RT queues, Jira projects).
    pub fn places(&self) -> Vec<String> {
        let mut out = vec![self.queue.trim().to_owned()];
        for p in self.team_map.values() {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(p.trim())) {
                out.push(p.trim().to_owned());
            }
        }
        out
    }

    /// The issue type or category a ticket of `kind` gets over there, if the map names one.
    pub fn category_for(&self, kind: Kind) -> Option<&str> {
        self.kind_map.get(&kind).map(|c| c.trim())
    }

    /// The kind a category over there stands for, `incident` when the map names none.
    pub fn kind_for(&self, category: &str) -> Kind {
        self.kind_map
            .iter()
            .find(|(_, c)| c.trim().eq_ignore_ascii_case(category.trim()))
            .map(|(k, _)| *k)
            .unwrap_or(Kind::Incident)
    }

    /// The settings as the API shows them: secrets masked.
    pub fn redacted(&self) -> ConnectorSpec {
        let mut out = self.clone();
        if out.password.is_some() {
            out.password = Some("***".into());
        }
        if out.token.is_some() {
            out.token = Some("***".into());
        }
        if out.webhook_secret.is_some() {
            out.webhook_secret = Some("***".into());
        }
        out
    }

    /// The opsdesk status a status of the other system stands for, this connector's map first.
    pub fn status_from_remote(&self, remote: &str) -> Option<Status> {
        self.status_map
            .iter()
            .find(|(name, _)| name.trim().eq_ignore_ascii_case(remote.trim()))
            .map(|(_, s)| *s)
            .or_else(|| self.kind.default_status_from(remote))
    }

    /// The status opsdesk sets over there for an opsdesk status: the system's default when it
    /// stands for that very status, otherwise the `status_map` entry that does (a workflow's
    /// "Waiting for customer" for pending), otherwise the default.
    pub fn remote_status(&self, s: Status) -> String {
        let default = self.kind.default_status(s);
        if self.status_from_remote(default) == Some(s) {
            return default.to_owned();
        }
        self.status_map
            .iter()
            .find(|(_, to)| **to == s)
            .map(|(name, _)| name.clone())
            .unwrap_or_else(|| default.to_owned())
    }

    /// Whether two statuses look the same over there (RT has one `open` for acknowledged and
    /// in progress).
    pub fn same_remote(&self, a: Status, b: Status) -> bool {
        a == b
            || self
                .remote_status(a)
                .eq_ignore_ascii_case(&self.remote_status(b))
    }

    /// Whether the other system shows `remote` for the status `s`.
    pub fn shows(&self, remote: &str, s: Status) -> bool {
        self.remote_status(s).eq_ignore_ascii_case(remote.trim())
            || self
                .status_from_remote(remote)
                .is_some_and(|t| self.same_remote(t, s))
    }

    /// The remote ticket's subject: the opsdesk key first (so people on either side find one
    /// from the other, and opsdesk finds a ticket it made before it recorded the link), cut
    /// to what the other system keeps.
    pub fn remote_subject(&self, key: &str, title: &str) -> String {
        format!("[{key}] {title}")
            .chars()
            .take(self.kind.subject_max())
            .collect()
    }
}

/// The RT status an opsdesk status is shown as (RT's default lifecycle).
pub fn rt_status(s: Status) -> &'static str {
    match s {
        Status::New => "new",
        Status::Acknowledged | Status::InProgress => "open",
        Status::Pending => "stalled",
        Status::Resolved | Status::Closed => "resolved",
    }
}

/// The opsdesk status an RT status of the default lifecycle stands for; `new` stands for none
/// (an RT ticket goes back to `new` only by hand, and opsdesk has no way back to it).
pub fn status_from_rt(s: &str) -> Option<Status> {
    match s {
        "open" => Some(Status::InProgress),
        "stalled" => Some(Status::Pending),
        "resolved" | "rejected" | "deleted" => Some(Status::Resolved),
        _ => None,
    }
}

/// Whether two statuses are the same as far as RT can tell (RT has one `open` for
/// acknowledged and in progress, one `resolved` for resolved and closed).
pub fn same_in_rt(a: Status, b: Status) -> bool {
    rt_status(a) == rt_status(b)
}

/// RT's priority (0 to 99 by default) for a severity.
pub fn rt_priority(s: Severity) -> i64 {
    match s {
        Severity::Sev1 => 90,
        Severity::Sev2 => 70,
        Severity::Sev3 => 50,
        Severity::Sev4 => 30,
        Severity::Sev5 => 10,
    }
}

/// The severity an RT priority stands for: the band it falls in.
pub fn severity_from_rt_priority(p: i64) -> Severity {
    match p {
        p if p >= 90 => Severity::Sev1,
        p if p >= 70 => Severity::Sev2,
        p if p >= 50 => Severity::Sev3,
        p if p >= 30 => Severity::Sev4,
        _ => Severity::Sev5,
    }
}

fn rank_index(s: Severity) -> usize {
    Severity::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

/// Jira's default priorities, for SEV1 to SEV5.
pub const JIRA_PRIORITIES: [&str; 5] = ["Highest", "High", "Medium", "Low", "Lowest"];

/// The impact and urgency ServiceNow's default priority matrix turns into priority 1 to 5,
/// for SEV1 to SEV5.
pub const SERVICENOW_IMPACT_URGENCY: [(u8, u8); 5] = [(1, 1), (1, 2), (2, 2), (2, 3), (3, 3)];

/// `"impact,urgency"`, each 1 to 3.
pub fn impact_urgency(label: &str) -> Option<(u8, u8)> {
    let (i, u) = label.trim().split_once(',')?;
    let read = |x: &str| x.trim().parse::<u8>().ok().filter(|n| (1..=3).contains(n));
    Some((read(i)?, read(u)?))
}

/// RT keeps at most this many characters of a subject.
pub const RT_SUBJECT_MAX: usize = 200;

/// The title a remote subject carries: without the `[OPS-n] ` opsdesk put in front.
pub fn title_from_subject(subject: &str) -> &str {
    let trimmed = subject.trim();
    if let Some(rest) = trimmed.strip_prefix('[') {
        if let Some((key, title)) = rest.split_once("] ") {
            let is_key = key.starts_with("OPS-") && crate::Ticket::parse_ref(key).is_some();
            if is_key && !title.trim().is_empty() {
                return title.trim();
            }
        }
    }
    trimmed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ConnectorSpec {
        ConnectorSpec {
            name: "rt".into(),
            kind: ConnectorType::RequestTracker,
            url: "https://rt.example.com".into(),
            username: Some("opsdesk".into()),
            password: Some("hunter2".into()),
            token: None,
            queue: "General".into(),
            issue_type: None,
            close_code: None,
            webhook_secret: None,
            poll_seconds: 60,
            import_new: false,
            create_for: CreateFor::default(),
            status_map: BTreeMap::new(),
            priority_map: BTreeMap::new(),
            kind_map: BTreeMap::new(),
            team_map: BTreeMap::new(),
        }
    }

    #[test]
    fn settings_are_checked_and_secrets_never_shown() {
        assert_eq!(spec().check(), Ok(()));
        let mut s = spec();
        s.token = Some("t".into());
        assert_eq!(s.check().unwrap_err().field, "rt.password");
        let mut s = spec();
        s.url = "https://opsdesk:pw@rt.example.com".into();
        assert!(s.check().unwrap_err().message.contains("credentials"));
        let mut s = spec();
        s.name = "RT one".into();
        assert_eq!(s.check().unwrap_err().field, "name");
        let mut s = spec();
        s.name = "user".into();
        assert!(s.check().unwrap_err().message.contains("own actors"));
        let mut s = spec();
        s.url = "ftp://rt.example.com".into();
        assert_eq!(s.check().unwrap_err().field, "rt.url");
        assert_eq!(spec().redacted().password.as_deref(), Some("***"));
        assert!(!format!("{:?}", spec()).contains("hunter2"));
        let parsed: ConnectorSpec = toml::from_str(
            "name = \"rt\"\ntype = \"request_tracker\"\nurl = \"https://rt.example.com\"\n\
             username = \"opsdesk\"\ntoken = \"abc\"\nqueue = \"General\"\n\
             [create_for]\nseverities = [\"SEV1\"]\n",
        )
        .unwrap();
        assert_eq!(parsed.poll_seconds, 60);
        assert_eq!(parsed.create_for.severities, vec![Severity::Sev1]);
        assert!(toml::from_str::<ConnectorSpec>(
            "name = \"j\"\ntype = \"jiraa\"\nurl = \"x\"\nqueue = \"q\"\n"
        )
        .is_err());
    }

    #[test]
    fn statuses_and_severities_go_both_ways() {
        for s in Status::ALL {
            let back = status_from_rt(rt_status(*s));
            // new has no way back; every other status comes back as one RT shows the same.
            if *s != Status::New {
                assert!(same_in_rt(back.unwrap(), *s), "{s}");
            }
        }
        for s in Severity::ALL {
            assert_eq!(severity_from_rt_priority(rt_priority(*s)), *s);
        }
        assert_eq!(severity_from_rt_priority(0), Severity::Sev5);
        assert_eq!(severity_from_rt_priority(99), Severity::Sev1);
        let mut s = spec();
        s.status_map.insert("waiting".into(), Status::Pending);
        assert_eq!(s.status_from_remote("waiting"), Some(Status::Pending));
        assert_eq!(s.status_from_remote("rejected"), Some(Status::Resolved));
        assert_eq!(s.status_from_remote("new"), None);
    }

    #[test]
    fn each_system_maps_statuses_both_ways_and_the_map_is_read_both_ways() {
        let mut jira = spec();
        jira.kind = ConnectorType::Jira;
        assert_eq!(jira.remote_status(Status::Pending), "In Progress");
        assert_eq!(jira.remote_status(Status::Resolved), "Done");
        assert_eq!(jira.status_from_remote("done"), Some(Status::Resolved));
        assert_eq!(jira.status_from_remote("To Do"), None);
        jira.status_map
            .insert("Waiting for customer".into(), Status::Pending);
        // A status of the workflow's own for pending: set for pending, read back as pending.
        assert_eq!(jira.remote_status(Status::Pending), "Waiting for customer");
        assert_eq!(jira.remote_status(Status::InProgress), "In Progress");
        assert!(jira.shows("waiting for customer", Status::Pending));
        assert!(!jira.same_remote(Status::Pending, Status::InProgress));
        let mut rt = spec();
        rt.status_map.insert("waiting".into(), Status::Pending);
        // RT's own stalled still stands for pending: it is what opsdesk sets.
        assert_eq!(rt.remote_status(Status::Pending), "stalled");
        assert!(rt.same_remote(Status::Acknowledged, Status::InProgress));
        let mut sn = spec();
        sn.kind = ConnectorType::Servicenow;
        sn.queue = "incident".into();
        assert_eq!(sn.remote_status(Status::Closed), "7");
        assert_eq!(sn.status_from_remote("8"), Some(Status::Resolved));
        for s in Severity::ALL {
            for kind in ConnectorType::ALL {
                assert_eq!(kind.severity(kind.priority(*s)), *s, "{kind:?} {s}");
            }
        }
        assert_eq!(ConnectorType::Jira.severity(42), Severity::Sev5);
        assert_eq!(ConnectorType::Servicenow.severity(-1), Severity::Sev1);
        sn.webhook_secret = Some("0123456789abcdef\n".into());
        assert_eq!(sn.check().unwrap_err().field, "rt.webhook_secret");
        sn.webhook_secret = Some("short".into());
        assert_eq!(sn.check().unwrap_err().field, "rt.webhook_secret");
        sn.webhook_secret = Some("0123456789abcdef".into());
        assert_eq!(sn.check(), Ok(()));
        sn.queue = "problem".into();
        assert_eq!(sn.check().unwrap_err().field, "rt.queue");
        jira.password = Some("pw".into());
        jira.token = None;
        assert_eq!(jira.check().unwrap_err().field, "rt.token");
    }

    #[test]
    fn priority_kind_and_team_maps_are_checked_and_read_both_ways() {
        // RT's defaults, read by band.
        let rt = spec();
        assert_eq!(rt.priority(Severity::Sev2), 70);
        assert_eq!(rt.severity(89), Severity::Sev2);
        assert_eq!(rt.severity(0), Severity::Sev5);
        // A site where 1 is the most urgent: the map runs the other way, still by band.
        let mut up = spec();
        for (i, s) in Severity::ALL.iter().enumerate() {
            up.priority_map.insert(*s, (i + 1).to_string());
        }
        assert_eq!(up.check(), Ok(()));
        for s in Severity::ALL {
            assert_eq!(up.severity(up.priority(*s)), *s);
        }
        // RT's 0 is a ticket nobody gave a priority: not SEV1.
        assert_eq!(up.severity(0), Severity::Sev5);
        assert_eq!(up.severity(-3), Severity::Sev5);
        assert_eq!(up.severity(99), Severity::Sev5);
        // Half a map that breaks the order, a word, or two severities on one number: refused.
        let mut half = spec();
        half.priority_map.insert(Severity::Sev1, "1".into());
        assert_eq!(half.check().unwrap_err().field, "rt.priority_map");
        half.priority_map.insert(Severity::Sev1, "high".into());
        assert!(half.check().unwrap_err().message.contains("whole numbers"));
        half.priority_map.insert(Severity::Sev1, "70".into());
        assert!(half.check().unwrap_err().message.contains("own"));
        half.priority_map.insert(Severity::Sev1, " 070".into());
        assert!(half.check().unwrap_err().message.contains("own"));
        // The TOML form.
        let parsed: ConnectorSpec = toml::from_str(
            "name = \"rt\"\ntype = \"request_tracker\"\nurl = \"https://rt.example.com\"\n\
             username = \"opsdesk\"\ntoken = \"abc\"\nqueue = \"General\"\n\
             [priority_map]\nSEV1 = \"99\"\n[team_map]\npayments = \"Payments\"\n",
        )
        .unwrap();
        assert_eq!(parsed.check(), Ok(()));
        assert_eq!(parsed.priority(Severity::Sev1), 99);
        assert_eq!(parsed.place_for(Some("Payments ")), Some("Payments"));
        assert_eq!(parsed.place_for(Some("web")), None);
        assert_eq!(parsed.team_for("payments").as_deref(), Some("payments"));
        assert_eq!(parsed.team_for(""), None);
        assert_eq!(parsed.places(), vec!["General", "Payments"]);
        // RT has no kind of ticket.
        let mut kinds = spec();
        kinds.kind_map.insert(Kind::Question, "Question".into());
        assert_eq!(kinds.check().unwrap_err().field, "rt.kind_map");
        kinds.kind = ConnectorType::Jira;
        kinds.password = None;
        kinds.token = Some("t".into());
        assert_eq!(kinds.check(), Ok(()));
        assert_eq!(kinds.category_for(Kind::Question), Some("Question"));
        assert_eq!(kinds.category_for(Kind::Task), None);
        assert_eq!(kinds.kind_for("question"), Kind::Question);
        assert_eq!(kinds.kind_for("Bug"), Kind::Incident);
        // Jira names and ServiceNow pairs.
        assert_eq!(kinds.priority_label(Severity::Sev4), "Low");
        assert_eq!(kinds.severity_of_label("lowest"), Some(Severity::Sev5));
        let mut sn = spec();
        sn.kind = ConnectorType::Servicenow;
        sn.queue = "incident".into();
        assert_eq!(sn.priority_label(Severity::Sev2), "1,2");
        sn.priority_map.insert(Severity::Sev5, "4,1".into());
        assert!(sn.check().unwrap_err().message.contains("impact,urgency"));
        // The same pair written another way is the same pair.
        sn.priority_map.insert(Severity::Sev5, " 2, 2".into());
        assert!(sn.check().unwrap_err().message.contains("own"));
        sn.priority_map.insert(Severity::Sev5, "3,2".into());
        assert_eq!(sn.check(), Ok(()));
        assert_eq!(sn.severity_of_label("3,2"), Some(Severity::Sev5));
        assert_eq!(sn.severity_of_label("3,3"), None);
    }

    #[test]
    fn subjects_carry_the_key_and_titles_come_back_without_it() {
        let subject = spec().remote_subject("OPS-42", "Disk full on db-1");
        assert_eq!(subject, "[OPS-42] Disk full on db-1");
        assert_eq!(title_from_subject(&subject), "Disk full on db-1");
        assert_eq!(title_from_subject("[not a key] x"), "[not a key] x");
        assert_eq!(title_from_subject("[42] x"), "[42] x");
        assert_eq!(title_from_subject("Printer"), "Printer");
        assert_eq!(title_from_subject("[OPS-42] "), "[OPS-42]");
        let long = spec().remote_subject("OPS-42", &"é".repeat(300));
        assert_eq!(long.chars().count(), RT_SUBJECT_MAX);
    }
}
