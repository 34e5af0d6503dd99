//! Jira Cloud through its platform REST API v3 (`/rest/api/3/`): issues of one project, their
//! comments, and the server's clock for what changed.
//!
//! Jira keeps no stream of changes a client can page through by a growing number, so title,
//! status and priority are read from the issue as it is (the core compares them with what was
//! last synced) and [`RemoteSystem::changes`] brings comments only, their ids (which grow
//! across the whole site) as the cursor. Positions in the change stream are the server's clock
//! in epoch milliseconds, read from `serverInfo`, so the two servers' clocks never meet.
//! Texts go both ways as Atlassian Document Format.

use std::sync::Arc;

use chrono::DateTime;
use opsdesk_core::connectors::{
    Created, RemoteChange, RemoteChangeKind, RemoteError, RemoteFields, RemoteNew, RemoteSystem,
    RemoteTicket,
};
use opsdesk_domain::connector::{ConnectorSpec, JIRA_PRIORITIES};
use opsdesk_domain::Severity;
use reqwest::{Method, Url};
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;

pub use crate::http::BuildError;
use crate::http::{api_base, basic, encode, Api};

/// Issues and comments asked for per page (Jira's most for a search that reads fields).
const PAGE: usize = 100;
/// Pages read per look, so that one look is bounded.
const PAGES_PER_LOOK: usize = 10;
/// The most characters Jira keeps in a rich text field (a description, a comment); counted
/// here on the document as sent, the stricter reading.
const RICH_TEXT_MAX: usize = 32_767;
/// The comment property that marks a comment opsdesk wrote.
const OWN_PROPERTY: &str = "opsdesk";
/// Jira Service Management's comment property that makes a comment internal.
const INTERNAL_PROPERTY: &str = "sd.public.comment";
/// The issue fields a ticket is read from.
const TICKET_FIELDS: &str = "summary,status,priority,creator,project,issuetype";
/// The issue fields whose changes a person makes show who changed the ticket last.
const SYNCED_FIELDS: [&str; 3] = ["summary", "status", "priority"];

pub struct Jira {
    spec: ConnectorSpec,
    api_client: Api,
    /// `<url>/rest/api/3/`.
    api: Url,
    /// The account opsdesk acts as, read once.
    account_id: OnceCell<String>,
}

impl std::fmt::Debug for Jira {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jira")
            .field("spec", &self.spec)
            .field("api", &self.api.as_str())
            .finish()
    }
}

impl Jira {
    pub fn new(spec: ConnectorSpec) -> Result<Arc<Jira>, BuildError> {
        spec.check().map_err(|e| BuildError(e.to_string()))?;
        let api = api_base(&spec.name, &spec.url, "/rest/api/3/")?;
        // Jira Cloud takes the account's email and an API token (the spec refuses a password).
        let header = basic(
            spec.username.as_deref().unwrap_or_default(),
            spec.token.as_deref().unwrap_or_default(),
        );
        let api_client = Api::new(&spec.name, spec.kind.label(), &header, jira_message)?;
        Ok(Arc::new(Jira {
            spec,
            api_client,
            api,
            account_id: OnceCell::new(),
        }))
    }

    fn url(&self, path: &str) -> Result<Url, RemoteError> {
        crate::http::join(&self.api, path)
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, RemoteError> {
        self.api_client.call(method, url, body).await
    }

    /// The account opsdesk acts as: its own changes are the ones it authored.
    async fn account_id(&self) -> Result<&str, RemoteError> {
        self.account_id
            .get_or_try_init(|| async {
                let me = self.call(Method::GET, self.url("myself")?, None).await?;
                me["accountId"]
                    .as_str()
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        RemoteError::Unavailable(
                            "Jira answered /myself without an accountId".into(),
                        )
                    })
            })
            .await
            .map(String::as_str)
    }

    /// Jira's clock now, in epoch milliseconds.
    async fn server_time(&self) -> Result<i64, RemoteError> {
        let info = self
            .call(Method::GET, self.url("serverInfo")?, None)
            .await?;
        info["serverTime"]
            .as_str()
            .and_then(epoch_ms)
            .ok_or_else(|| {
                RemoteError::Unavailable("Jira answered /serverInfo without a serverTime".into())
            })
    }

    /// The issues `jql` finds, with `fields`, at most `pages` pages; and whether that was all.
    async fn search(
        &self,
        jql: &str,
        fields: &[&str],
        pages: usize,
    ) -> Result<(Vec<Value>, bool), RemoteError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..pages {
            let mut body = json!({ "jql": jql, "fields": fields, "maxResults": PAGE });
            if let Some(t) = &token {
                body["nextPageToken"] = json!(t);
            }
            let answer = self
                .call(Method::POST, self.url("search/jql")?, Some(&body))
                .await?;
            out.extend(answer["issues"].as_array().cloned().unwrap_or_default());
            token = answer["nextPageToken"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if answer["isLast"].as_bool().unwrap_or(true) || token.is_none() {
                return Ok((out, true));
            }
        }
        Ok((out, false))
    }

    /// The issue with the fields a ticket is read from, and who changed them last.
    async fn read_ticket(&self, id: &str) -> Result<RemoteTicket, RemoteError> {
        let mut url = self.url(&format!("issue/{}", encode(id)))?;
        url.query_pairs_mut()
            .append_pair("fields", TICKET_FIELDS)
            .append_pair("expand", "changelog");
        let issue = self.call(Method::GET, url, None).await?;
        let mut histories = issue["changelog"]["histories"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let total = issue["changelog"]["total"]
            .as_u64()
            .and_then(|t| usize::try_from(t).ok())
            .unwrap_or(0);
        if total > histories.len() {
            // The issue carries part of its changelog: the newest page is read on its own.
            let mut url = self.url(&format!("issue/{}/changelog", encode(id)))?;
            url.query_pairs_mut()
                .append_pair("startAt", &total.saturating_sub(PAGE).to_string())
                .append_pair("maxResults", &PAGE.to_string());
            let page = self.call(Method::GET, url, None).await?;
            histories = page["values"].as_array().cloned().unwrap_or_default();
        }
        let account = self.account_id().await?.to_owned();
        let mut ticket = self.ticket_of(&issue, &account)?;
        ticket.updated_by = last_changed_by(&histories, &account);
        Ok(ticket)
    }

    fn ticket_of(&self, issue: &Value, account: &str) -> Result<RemoteTicket, RemoteError> {
        let id = text_of(&issue["id"]).ok_or_else(|| {
            RemoteError::Unavailable("Jira answered an issue without an id".into())
        })?;
        let key = issue["key"].as_str().unwrap_or(&id);
        let fields = &issue["fields"];
        Ok(RemoteTicket {
            url: format!(
                "{}/browse/{}",
                self.spec.url.trim_end_matches('/'),
                encode(key)
            ),
            subject: fields["summary"].as_str().unwrap_or_default().to_owned(),
            status: fields["status"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            priority: priority_rank(
                &self.spec,
                fields["priority"]["name"].as_str().unwrap_or_default(),
            ),
            by_us: fields["creator"]["accountId"].as_str() == Some(account),
            in_queue: fields["project"]["key"]
                .as_str()
                .is_some_and(|k| self.spec.places().iter().any(|p| p.eq_ignore_ascii_case(k))),
            place: fields["project"]["key"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            category: fields["issuetype"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            updated_by: String::new(),
            id,
        })
    }

    /// Moves the issue to the status named `to` by the transition that leads there.
    async fn transition(&self, id: &str, to: &str) -> Result<(), RemoteError> {
        let url = self.url(&format!("issue/{}/transitions", encode(id)))?;
        let answer = self.call(Method::GET, url.clone(), None).await?;
        let transitions = answer["transitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let target = |t: &Value| t["to"]["name"].as_str().unwrap_or_default().to_owned();
        if let Some(t) = transitions
            .iter()
            .find(|t| target(t).eq_ignore_ascii_case(to.trim()))
        {
            let transition_id = text_of(&t["id"]).unwrap_or_default();
            let body = json!({ "transition": { "id": transition_id } });
            self.call(Method::POST, url, Some(&body)).await?;
            return Ok(());
        }
        // A workflow offers no transition into the status an issue is in already.
        let now = self.read_ticket(id).await?;
        if now.status.eq_ignore_ascii_case(to.trim()) {
            return Ok(());
        }
        let available: Vec<String> = transitions.iter().map(target).collect();
        Err(RemoteError::Refused(format!(
            "Jira issue {id} ({}) has no transition to {to:?}; its workflow offers {} \
             (map opsdesk's statuses to these with status_map)",
            now.status,
            if available.is_empty() {
                "none".to_owned()
            } else {
                available.join(", ")
            }
        )))
    }

    /// The issue's comments after comment `after`, oldest first: pages are read newest first
    /// until one reaches `after`.
    async fn comments_after(&self, id: &str, after: i64) -> Result<Vec<Value>, RemoteError> {
        let mut out = Vec::new();
        for page in 0..PAGES_PER_LOOK {
            let mut url = self.url(&format!("issue/{}/comment", encode(id)))?;
            url.query_pairs_mut()
                .append_pair("startAt", &(page * PAGE).to_string())
                .append_pair("maxResults", &PAGE.to_string())
                .append_pair("orderBy", "-created")
                .append_pair("expand", "properties");
            let answer = self.call(Method::GET, url, None).await?;
            let comments = answer["comments"].as_array().cloned().unwrap_or_default();
            let count = comments.len();
            let mut reached = false;
            for c in comments {
                match comment_id(&c) {
                    Some(n) if n > after => out.push((n, c)),
                    _ => reached = true,
                }
            }
            let total = answer["total"].as_u64().unwrap_or(0);
            let read = u64::try_from((page + 1) * PAGE).unwrap_or(u64::MAX);
            if reached || count < PAGE || read >= total {
                break;
            }
            if page + 1 == PAGES_PER_LOOK {
                tracing::warn!(
                    connector = %self.spec.name,
                    issue = %id,
                    "more new comments than one look reads; the oldest of them are skipped"
                );
            }
        }
        out.sort_by_key(|(n, _)| *n);
        Ok(out.into_iter().map(|(_, c)| c).collect())
    }
}

/// Jira's own words in an error answer: `errorMessages`, then `errors` by field.
fn jira_message(answer: &Value) -> String {
    let mut parts: Vec<String> = answer["errorMessages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if let Some(errors) = answer["errors"].as_object() {
        for (field, why) in errors {
            let why = why.as_str().map_or_else(|| why.to_string(), str::to_owned);
            parts.push(format!("{field}: {why}"));
        }
    }
    parts.join("; ")
}

/// An id as Jira sends them all: a string (of digits, for issues and comments).
fn text_of(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

fn comment_id(c: &Value) -> Option<i64> {
    text_of(&c["id"]).and_then(|id| id.parse().ok())
}

/// A time as Jira writes it (`2026-12-08T10:15:30.123+0000`) in epoch milliseconds.
fn epoch_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Jira's priority name for opsdesk's 1 to 5: the connector's `priority_map`, else Jira's
/// default priorities.
fn priority_name(spec: &ConnectorSpec, p: i64) -> String {
    spec.priority_label(spec.severity(p))
}

/// 1 to 5 for a priority name; one neither the map nor Jira's defaults name counts as
/// Medium (SEV3).
fn priority_rank(spec: &ConnectorSpec, name: &str) -> i64 {
    spec.severity_of_label(name)
        .or_else(|| {
            JIRA_PRIORITIES
                .iter()
                .position(|p| p.eq_ignore_ascii_case(name.trim()))
                .map(|i| Severity::ALL[i])
        })
        .unwrap_or(Severity::Sev3)
        .rank()
}

/// The JQL for the projects tickets are created in: `project in ("A", "B")`.
fn projects_jql(spec: &ConnectorSpec) -> String {
    let keys: Vec<String> = spec.places().iter().map(|p| jql_string(p)).collect();
    format!("project in ({})", keys.join(", "))
}

/// A JQL string literal.
fn jql_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A summary Jira takes: one line (a line break is refused), at most 255 characters.
fn summary(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(opsdesk_domain::connector::ConnectorType::Jira.subject_max())
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Who made the newest change to title, status or priority that opsdesk did not make: its
/// display name, else its account id; "" when no one else did.
fn last_changed_by(histories: &[Value], own: &str) -> String {
    histories
        .iter()
        .filter(|h| h["author"]["accountId"].as_str() != Some(own))
        .filter(|h| {
            h["items"].as_array().is_some_and(|items| {
                items.iter().any(|i| {
                    let field = i["fieldId"].as_str().or_else(|| i["field"].as_str());
                    field.is_some_and(|f| SYNCED_FIELDS.contains(&f))
                })
            })
        })
        .max_by_key(|h| {
            (
                h["created"].as_str().and_then(epoch_ms).unwrap_or(0),
                text_of(&h["id"])
                    .and_then(|id| id.parse::<i64>().ok())
                    .unwrap_or(0),
            )
        })
        .map(|h| person(&h["author"]))
        .unwrap_or_default()
}

/// How a Jira user is named on opsdesk's side.
fn person(user: &Value) -> String {
    user["displayName"]
        .as_str()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| user["accountId"].as_str())
        .unwrap_or("unknown")
        .trim()
        .to_owned()
}

/// The value of the comment's property `key`, if it carries one.
fn has_property<'a>(c: &'a Value, key: &str) -> Option<&'a Value> {
    c["properties"]
        .as_array()?
        .iter()
        .find(|p| p["key"].as_str() == Some(key))
        .map(|p| &p["value"])
}

/// Whether customers see a comment: not when Jira Service Management marks it internal.
fn is_public(c: &Value) -> bool {
    let internal = has_property(c, INTERNAL_PROPERTY)
        .is_some_and(|v| v["internal"].as_bool() == Some(true) || v["internal"] == "true");
    !internal && c["jsdPublic"].as_bool() != Some(false)
}

/// Plain text as an Atlassian document: a paragraph per block of lines (blank lines between
/// blocks), a hard break between the lines of a block. Jira refuses an empty text node, so
/// there is none.
fn document(text: &str) -> Value {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut content = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    for line in text.split('\n').chain(std::iter::once("")) {
        let line: String = line
            .chars()
            .filter(|c| !c.is_control() || *c == '\t')
            .collect();
        if line.trim().is_empty() {
            if !lines.is_empty() {
                let mut inline = Vec::new();
                for (i, l) in lines.drain(..).enumerate() {
                    if i > 0 {
                        inline.push(json!({ "type": "hardBreak" }));
                    }
                    inline.push(json!({ "type": "text", "text": l }));
                }
                content.push(json!({ "type": "paragraph", "content": inline }));
            }
        } else {
            lines.push(line);
        }
    }
    json!({ "type": "doc", "version": 1, "content": content })
}

/// [`document`], cut so that Jira keeps it (the rest is in opsdesk).
fn rich_text(text: &str) -> Value {
    let mut doc = document(text);
    let mut keep = text.chars().count();
    while doc.to_string().chars().count() > RICH_TEXT_MAX && keep > 0 {
        keep = keep * 9 / 10;
        let cut: String = text.chars().take(keep).collect();
        doc = document(&format!(
            "{cut}\n\n(Cut here: Jira keeps {RICH_TEXT_MAX} characters. The whole text is in opsdesk.)"
        ));
    }
    doc
}

/// Inline nodes: their text runs on in the line that holds them.
const INLINE: [&str; 9] = [
    "text",
    "hardBreak",
    "mention",
    "emoji",
    "inlineCard",
    "date",
    "status",
    "mediaInline",
    "placeholder",
];

/// An Atlassian document as plain text: blocks apart by a blank line, list items and table
/// rows a line each, hard breaks as line breaks, mentions, emoji and cards by their text.
fn plain_text(node: &Value) -> String {
    let kind = node["type"].as_str().unwrap_or_default();
    let attr = |name: &str| node["attrs"][name].as_str().unwrap_or_default().to_owned();
    match kind {
        "text" => return node["text"].as_str().unwrap_or_default().to_owned(),
        "hardBreak" => return "\n".to_owned(),
        "mention" | "status" | "placeholder" => return attr("text"),
        "emoji" => {
            let text = attr("text");
            return if text.is_empty() {
                attr("shortName")
            } else {
                text
            };
        }
        "inlineCard" | "blockCard" | "embedCard" => return attr("url"),
        "date" => {
            return attr("timestamp")
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_millis)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        }
        "rule" => return "---".to_owned(),
        _ => {}
    }
    let children: &[Value] = node["content"].as_array().map_or(&[], Vec::as_slice);
    if children
        .iter()
        .all(|c| INLINE.contains(&c["type"].as_str().unwrap_or_default()))
    {
        return children.iter().map(plain_text).collect();
    }
    let parts = children.iter().enumerate().map(|(i, c)| {
        let text = plain_text(c);
        match kind {
            "bulletList" => format!("- {}", text.replace('\n', "\n  ")),
            "orderedList" => {
                let first = node["attrs"]["order"].as_i64().unwrap_or(1);
                let n = first.saturating_add(i64::try_from(i).unwrap_or(0));
                format!("{n}. {}", text.replace('\n', "\n   "))
            }
            _ => text,
        }
    });
    let separator = match kind {
        "bulletList" | "orderedList" | "listItem" | "taskList" | "decisionList" | "table" => "\n",
        "tableRow" => " | ",
        _ => "\n\n",
    };
    parts
        .filter(|p| !p.trim().is_empty())
        .collect::<Vec<_>>()
        .join(separator)
}

#[async_trait::async_trait]
impl RemoteSystem for Jira {
    fn spec(&self) -> &ConnectorSpec {
        &self.spec
    }

    async fn find(&self, key: &str) -> Result<Option<RemoteTicket>, RemoteError> {
        // The key as a phrase: Jira's text search leaves out the brackets anyway, and outside
        // a phrase they are query syntax. What it finds is checked exactly below.
        let jql = format!(
            "{} AND summary ~ {}",
            projects_jql(&self.spec),
            jql_string(&format!("\"{key}\""))
        );
        let (issues, _) = self
            .search(
                &jql,
                &[
                    "summary",
                    "status",
                    "priority",
                    "creator",
                    "project",
                    "issuetype",
                ],
                PAGES_PER_LOOK,
            )
            .await?;
        let account = self.account_id().await?.to_owned();
        let prefix = format!("[{key}] ");
        let mut ours: Vec<RemoteTicket> = Vec::new();
        for issue in &issues {
            let t = self.ticket_of(issue, &account)?;
            if t.by_us && t.subject.starts_with(&prefix) {
                ours.push(t);
            }
        }
        // The first one made, should an interrupted pass have made two.
        let first = ours
            .into_iter()
            .min_by_key(|t| t.id.parse::<i64>().unwrap_or(i64::MAX));
        Ok(first)
    }

    async fn create(&self, t: &RemoteNew) -> Result<RemoteTicket, RemoteError> {
        let mut fields = json!({
            "project": { "key": t.place.as_deref().unwrap_or(self.spec.queue.trim()) },
            "summary": summary(&t.subject),
            "issuetype": {
                "name": t
                    .category
                    .as_deref()
                    .or(self.spec.issue_type.as_deref())
                    .unwrap_or("Task")
            },
            "priority": { "name": priority_name(&self.spec, t.priority) },
        });
        if !t.description.trim().is_empty() {
            fields["description"] = rich_text(&t.description);
        }
        let made = self
            .call(
                Method::POST,
                self.url("issue")?,
                Some(&json!({ "fields": fields })),
            )
            .await?;
        let id = text_of(&made["id"]).ok_or_else(|| {
            RemoteError::Unavailable("Jira created an issue but sent no id".into())
        })?;
        let now = self.read_ticket(&id).await?;
        if now.status.eq_ignore_ascii_case(t.status.trim()) {
            return Ok(now);
        }
        // An issue begins in its workflow's first status; the ticket's is reached by a
        // transition. One the workflow lacks leaves the issue where it began.
        match self.transition(&id, &t.status).await {
            Ok(()) => self.read_ticket(&id).await,
            Err(RemoteError::Refused(why)) => {
                tracing::warn!(connector = %self.spec.name, issue = %id, error = %why, "the new issue keeps its first status");
                Ok(now)
            }
            Err(e) => Err(e),
        }
    }

    async fn ticket(&self, id: &str) -> Result<RemoteTicket, RemoteError> {
        self.read_ticket(id).await
    }

    async fn update(&self, id: &str, f: &RemoteFields) -> Result<(), RemoteError> {
        let mut fields = Map::new();
        if let Some(s) = &f.subject {
            fields.insert("summary".into(), json!(summary(s)));
        }
        if let Some(p) = f.priority {
            fields.insert(
                "priority".into(),
                json!({ "name": priority_name(&self.spec, p) }),
            );
        }
        if !fields.is_empty() {
            let url = self.url(&format!("issue/{}", encode(id)))?;
            self.call(Method::PUT, url, Some(&json!({ "fields": fields })))
                .await?;
        }
        // Jira sets a status by a transition only.
        if let Some(status) = &f.status {
            self.transition(id, status).await?;
        }
        // What Jira holds now tells whether it took it (a validator or a screen may not).
        let now = self.read_ticket(id).await?;
        let kept = |what: &str, value: &str| {
            RemoteError::Refused(format!("Jira issue {id} kept its {what} ({value})"))
        };
        if f.status
            .as_ref()
            .is_some_and(|s| !now.status.eq_ignore_ascii_case(s.trim()))
        {
            return Err(kept("status", &now.status));
        }
        if f.subject
            .as_ref()
            .is_some_and(|s| summary(s) != now.subject.trim())
        {
            return Err(kept("summary", &now.subject));
        }
        if f.priority.is_some_and(|p| {
            priority_rank(&self.spec, &priority_name(&self.spec, p)) != now.priority
        }) {
            return Err(kept("priority", &priority_name(&self.spec, now.priority)));
        }
        Ok(())
    }

    async fn message(&self, id: &str, body: &str, public: bool) -> Result<(), RemoteError> {
        if body.trim().is_empty() {
            // Jira refuses an empty comment, and there is nothing to say.
            return Ok(());
        }
        let mut properties = vec![json!({ "key": OWN_PROPERTY, "value": { "from": "opsdesk" } })];
        if !public {
            properties.push(json!({ "key": INTERNAL_PROPERTY, "value": { "internal": true } }));
        }
        let url = self.url(&format!("issue/{}/comment", encode(id)))?;
        let comment = json!({ "body": rich_text(body), "properties": properties });
        self.call(Method::POST, url, Some(&comment)).await?;
        Ok(())
    }

    async fn changes(&self, id: &str, after: i64) -> Result<Vec<RemoteChange>, RemoteError> {
        let account = self.account_id().await?.to_owned();
        let comments = self.comments_after(id, after).await?;
        Ok(comments
            .iter()
            .filter_map(|c| {
                let by_us = has_property(c, OWN_PROPERTY).is_some()
                    || c["author"]["accountId"].as_str() == Some(account.as_str());
                Some(RemoteChange {
                    id: comment_id(c)?,
                    by_us,
                    author: person(&c["author"]),
                    kind: RemoteChangeKind::Message {
                        public: is_public(c),
                        body: plain_text(&c["body"]),
                    },
                })
            })
            .collect())
    }

    async fn created(&self, id: &str) -> Result<Option<Created>, RemoteError> {
        let mut url = self.url(&format!("issue/{}", encode(id)))?;
        url.query_pairs_mut()
            .append_pair("fields", "created,description");
        let issue = self.call(Method::GET, url, None).await?;
        let Some(at) = issue["fields"]["created"].as_str().and_then(epoch_ms) else {
            return Ok(None);
        };
        Ok(Some(Created {
            at,
            // Comment ids are not times: every comment of the issue came after its creation.
            cursor: 0,
            description: plain_text(&issue["fields"]["description"]),
        }))
    }

    /// Jira's changelog is no stream to page through by a cursor: title, status and
    /// priority are read from the issue, and `changes` brings comments only.
    fn fields_by_state(&self) -> bool {
        true
    }

    fn webhook(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<Vec<String>, RemoteError> {
        crate::webhook::hub_signature(&self.spec, header, body)?;
        // Jira may deliver one event twice (the same X-Atlassian-Webhook-Identifier): harmless,
        // since the call only hurries the issue's sync.
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| RemoteError::Refused(format!("the body is not JSON: {e}")))?;
        // Issue and comment events carry the issue; others (a project's, a user's) name none.
        Ok(text_of(&v["issue"]["id"]).into_iter().collect())
    }

    async fn newest_change(&self) -> Result<i64, RemoteError> {
        self.server_time().await
    }

    async fn changed_after(&self, after: i64) -> Result<(Vec<String>, i64), RemoteError> {
        let now = self.server_time().await?;
        // A relative date, since JQL reads an absolute one in the user's time zone; in whole
        // minutes rounded up, and one more for the calls' own time.
        let minutes = (now.saturating_sub(after).max(0) + 59_999) / 60_000 + 1;
        let jql = format!(
            "{} AND updated >= \"-{minutes}m\" ORDER BY updated ASC",
            projects_jql(&self.spec)
        );
        let (issues, complete) = self.search(&jql, &["updated"], PAGES_PER_LOOK).await?;
        let mut ids: Vec<String> = Vec::new();
        for issue in &issues {
            if let Some(id) = text_of(&issue["id"]) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        // Cut short, the next look goes on from the last issue read; when that would not move
        // it on (more issues changed within a minute than a look reads), past that minute:
        // linked issues missed are still looked at every 30 polls.
        let newest = if complete {
            now
        } else {
            let last = issues
                .last()
                .and_then(|i| i["fields"]["updated"].as_str())
                .and_then(epoch_ms);
            match last.filter(|l| *l > after + 60_000) {
                Some(l) => l,
                None => {
                    // The next window starts a minute or two before this: it moves on past
                    // the crowded minute without dropping what came after it.
                    tracing::warn!(connector = %self.spec.name, "more issues changed within a minute than a look reads; going on past that minute");
                    (after + 120_000).min(now)
                }
            }
        };
        Ok((ids, newest.max(after)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ConnectorSpec {
        serde_json::from_value(json!({
            "name": "jira", "type": "jira", "url": "https://example.atlassian.net/",
            "username": "opsdesk@example.com", "token": "tok-secret-123", "queue": "SUP",
            "webhook_secret": "0123456789abcdef0123"
        }))
        .unwrap()
    }

    #[test]
    fn text_goes_to_adf_and_back() {
        let doc = document("We are on it.\nRolling back.\n\n\nDone by 10:00\r\n");
        assert_eq!(
            doc,
            json!({"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [
                    {"type": "text", "text": "We are on it."},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "Rolling back."}
                ]},
                {"type": "paragraph", "content": [{"type": "text", "text": "Done by 10:00"}]}
            ]})
        );
        assert_eq!(
            plain_text(&doc),
            "We are on it.\nRolling back.\n\nDone by 10:00"
        );
        assert_eq!(
            document("  \n\n"),
            json!({"type": "doc", "version": 1, "content": []})
        );
        assert_eq!(plain_text(&Value::Null), "");
    }

    #[test]
    fn adf_written_by_people_reads_as_text() {
        let doc = json!({"type": "doc", "version": 1, "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Cause"}]},
            {"type": "paragraph", "content": [
                {"type": "mention", "attrs": {"id": "acct-1", "text": "@Bo"}},
                {"type": "text", "text": " look "},
                {"type": "emoji", "attrs": {"shortName": ":eyes:", "text": "👀"}}
            ]},
            {"type": "bulletList", "content": [
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "disk"}]}]},
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "cpu"}]}]}
            ]},
            {"type": "codeBlock", "content": [{"type": "text", "text": "df -h"}]},
            {"type": "paragraph"}
        ]});
        assert_eq!(
            plain_text(&doc),
            "Cause\n\n@Bo look 👀\n\n- disk\n- cpu\n\ndf -h"
        );
    }

    #[test]
    fn long_texts_are_cut_to_what_jira_keeps() {
        let doc = rich_text(&"line\n".repeat(20_000));
        assert!(doc.to_string().chars().count() <= RICH_TEXT_MAX);
        assert!(plain_text(&doc).ends_with("The whole text is in opsdesk.)"));
        let short = rich_text("short");
        assert_eq!(plain_text(&short), "short");
    }

    #[test]
    fn priorities_times_and_jql() {
        let s = spec();
        assert_eq!(priority_name(&s, 1), "Highest");
        assert_eq!(priority_name(&s, 9), "Lowest");
        assert_eq!(priority_rank(&s, "low"), 4);
        assert_eq!(priority_rank(&s, "Blocker"), 3);
        let mut mapped = spec();
        mapped.priority_map.insert(Severity::Sev1, "Blocker".into());
        mapped
            .priority_map
            .insert(Severity::Sev2, "Critical".into());
        assert_eq!(mapped.check(), Ok(()));
        assert_eq!(priority_name(&mapped, 2), "Critical");
        assert_eq!(priority_rank(&mapped, "blocker"), 1);
        // A default name the map moved elsewhere still reads as its default severity.
        assert_eq!(priority_rank(&mapped, "Highest"), 1);
        assert_eq!(projects_jql(&mapped), "project in (\"SUP\")");
        mapped.team_map.insert("payments".into(), "PAY".into());
        assert_eq!(projects_jql(&mapped), "project in (\"SUP\", \"PAY\")");
        for p in 1..=5 {
            assert_eq!(priority_rank(&s, &priority_name(&s, p)), p);
        }
        assert_eq!(
            epoch_ms("2026-12-08T10:15:30.123+0000"),
            Some(1_796_724_930_123)
        );
        assert_eq!(
            epoch_ms("2026-12-08T11:15:30.123+0100"),
            epoch_ms("2026-12-08T10:15:30.123+0000")
        );
        assert_eq!(epoch_ms("yesterday"), None);
        assert_eq!(jql_string("S\"U\\P"), "\"S\\\"U\\\\P\"");
        assert_eq!(summary("[OPS-1] two\nlines "), "[OPS-1] two lines");
        assert_eq!(summary(&"x".repeat(300)).chars().count(), 255);
    }

    #[test]
    fn comments_tell_who_and_whether_public() {
        let internal =
            json!({"properties": [{"key": "sd.public.comment", "value": {"internal": true}}]});
        assert!(!is_public(&internal));
        assert!(!is_public(&json!({"jsdPublic": false})));
        assert!(is_public(&json!({"jsdPublic": true, "properties": []})));
        assert_eq!(
            person(&json!({"accountId": "acct-1", "displayName": "Alice"})),
            "Alice"
        );
        assert_eq!(person(&json!({"accountId": "acct-1"})), "acct-1");
        let histories = vec![
            json!({"id": "1", "author": {"accountId": "acct-alice", "displayName": "Alice"}, "created": "2026-12-08T10:00:00.000+0000", "items": [{"field": "status", "fieldId": "status"}]}),
            json!({"id": "2", "author": {"accountId": "acct-bo", "displayName": "Bo"}, "created": "2026-12-08T10:05:00.000+0000", "items": [{"field": "labels", "fieldId": "labels"}]}),
            json!({"id": "3", "author": {"accountId": "acct-me", "displayName": "Opsdesk"}, "created": "2026-12-08T10:06:00.000+0000", "items": [{"field": "priority", "fieldId": "priority"}]}),
        ];
        assert_eq!(last_changed_by(&histories, "acct-me"), "Alice");
        assert_eq!(last_changed_by(&[], "acct-me"), "");
    }

    #[test]
    fn errors_read_in_jiras_words_and_debug_hides_the_token() {
        let answer = json!({"errorMessages": ["Transition id '31' is not valid for this issue."], "errors": {"summary": "Summary must be less than 255 characters."}});
        assert_eq!(
            jira_message(&answer),
            "Transition id '31' is not valid for this issue.; summary: Summary must be less than 255 characters."
        );
        let jira = Jira::new(spec()).unwrap();
        let shown = format!("{jira:?}");
        assert!(!shown.contains("tok-secret-123"), "{shown}");
        assert!(
            shown.contains("https://example.atlassian.net/rest/api/3/"),
            "{shown}"
        );
        let mut no_queue = spec();
        no_queue.queue = " ".into();
        assert!(Jira::new(no_queue).is_err());
    }

    #[test]
    fn webhooks_are_checked_and_name_the_issue() {
        use hmac::{Hmac, Mac};
        let jira = Jira::new(spec()).unwrap();
        let body = br#"{"webhookEvent":"comment_created","comment":{"id":"10001"},"issue":{"id":"10002","key":"SUP-3"}}"#;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"0123456789abcdef0123").unwrap();
        mac.update(body);
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let h = move |name: &str| (name == "x-hub-signature").then(|| sig.clone());
        assert_eq!(jira.webhook(&h, body).unwrap(), vec!["10002".to_owned()]);
        assert!(jira.webhook(&h, br#"{"issue":{"id":"10003"}}"#).is_err());
        assert!(jira.webhook(&|_: &str| None, body).is_err());
    }
}
