//! Request Tracker 5 through its REST 2.0 API (`/REST/2.0/`): tickets, correspondence and
//! comments, and transactions for what changed. The transaction ids are the cursor: they only
//! grow, so nothing depends on the two servers' clocks or time zones.

use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use opsdesk_core::connectors::{
    Created, RemoteChange, RemoteChangeKind, RemoteError, RemoteFields, RemoteHistory, RemoteNew,
    RemoteSystem, RemoteTicket,
};
use opsdesk_core::import::ImportedMessage;
use opsdesk_domain::connector::ConnectorSpec;
use reqwest::{Method, Url};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

pub use crate::http::BuildError;
use crate::http::{api_base, basic, encode, Api};

/// Transactions asked for per page (RT's most).
const PAGE: usize = 100;
/// Pages of transactions read per look, so that one look is bounded.
const PAGES_PER_LOOK: usize = 10;
/// Pages of a ticket's transactions an import reads at most (10,000 transactions).
const HISTORY_PAGES: usize = 100;
/// The fields of a ticket opsdesk reads.
const TICKET_FIELDS: &str = "Subject,Status,Priority,Creator,Queue,LastUpdatedBy";
/// The user RT makes changes as when they follow from another (a status opened by a reply).
const RT_SYSTEM: &str = "RT_System";

pub struct RequestTracker {
    spec: ConnectorSpec,
    api_client: Api,
    /// `<url>/REST/2.0/`.
    api: Url,
    /// The ids and names of the queues tickets are created in (`queue` and the `team_map`'s),
    /// read once.
    queues: OnceCell<Vec<(String, String)>>,
}

impl std::fmt::Debug for RequestTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTracker")
            .field("spec", &self.spec)
            .field("api", &self.api.as_str())
            .finish()
    }
}

impl RequestTracker {
    pub fn new(spec: ConnectorSpec) -> Result<RequestTracker, BuildError> {
        spec.check().map_err(|e| BuildError(e.to_string()))?;
        let api = api_base(&spec.name, &spec.url, "/REST/2.0/")?;
        let username = spec.username.clone().unwrap_or_default();
        let token = spec.token.as_deref().filter(|t| !t.is_empty());
        let header = match (token, &spec.password) {
            (Some(token), _) => format!("token {token}"),
            (None, password) => basic(&username, password.as_deref().unwrap_or_default()),
        };
        let api_client = Api::new(&spec.name, spec.kind.label(), &header, |answer| {
            answer["message"].as_str().unwrap_or_default().to_owned()
        })?;
        Ok(RequestTracker {
            spec,
            api_client,
            api,
            queues: OnceCell::new(),
        })
    }

    fn url(&self, path: &str) -> Result<Url, RemoteError> {
        crate::http::join(&self.api, path)
    }

    fn username(&self) -> &str {
        self.spec.username.as_deref().unwrap_or_default()
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, RemoteError> {
        self.api_client.call(method, url, body).await
    }

    async fn get(&self, path: &str) -> Result<Value, RemoteError> {
        let url = self.url(path)?;
        self.call(Method::GET, url, None).await
    }

    /// The ids and names of the queues tickets are created in.
    async fn queues(&self) -> Result<&[(String, String)], RemoteError> {
        self.queues
            .get_or_try_init(|| async {
                let mut out = Vec::new();
                let main = self.spec.queue.trim();
                for name in self.spec.places() {
                    let id = match self.get(&format!("queue/{}", encode(&name))).await {
                        Ok(q) => id_of(&q["id"]),
                        // 404, or a queue the user may not see.
                        Err(RemoteError::Refused(_)) => None,
                        Err(e) => return Err(e),
                    };
                    match id {
                        Some(id) => out.push((id, name)),
                        None if name == main => {
                            return Err(RemoteError::Refused(format!(
                                "RT has no queue {name:?} that {} may see",
                                self.username()
                            )))
                        }
                        // A team's queue that is not there: that team's tickets are refused
                        // by RT when they are pushed (the link says so); the others sync.
                        None => tracing::warn!(
                            connector = %self.spec.name,
                            queue = %name,
                            "team_map names a queue RT does not have (or the user may not see); it is left out"
                        ),
                    }
                }
                Ok(out)
            })
            .await
            .map(Vec::as_slice)
    }

    /// Transactions matching `filter` (RT's JSON search), oldest first, at most `pages` pages.
    async fn transactions(
        &self,
        filter: Value,
        fields: &str,
        pages: usize,
    ) -> Result<Vec<Value>, RemoteError> {
        let mut out = Vec::new();
        for page in 1..=pages {
            let mut url = self.url("transactions")?;
            url.query_pairs_mut()
                .append_pair("fields", fields)
                .append_pair("orderby", "id")
                .append_pair("order", "ASC")
                .append_pair("per_page", &PAGE.to_string())
                .append_pair("page", &page.to_string());
            let answer = self.call(Method::POST, url, Some(&filter)).await?;
            let items = answer["items"].as_array().cloned().unwrap_or_default();
            let last_page =
                items.len() < PAGE || answer["pages"].as_f64().is_some_and(|p| p <= page as f64);
            out.extend(items);
            if last_page {
                break;
            }
        }
        Ok(out)
    }

    /// The text of a message transaction: its first text/plain part.
    async fn message_text(&self, transaction: &str) -> Result<String, RemoteError> {
        let t = self.get(&format!("transaction/{transaction}")).await?;
        let parts: Vec<String> = t["_hyperlinks"]
            .as_array()
            .map(|links| {
                links
                    .iter()
                    .filter(|l| l["ref"] == "attachment")
                    .filter_map(|l| l["_url"].as_str())
                    .filter_map(|u| u.rsplit('/').next().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut html = false;
        for id in parts {
            let a = self.get(&format!("attachment/{}", encode(&id))).await?;
            let kind = a["ContentType"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let Some(content) = a["Content"].as_str() else {
                continue;
            };
            if kind.starts_with("text/plain") {
                let compact: String = content.split_whitespace().collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|_| {
                        RemoteError::Unavailable(format!(
                            "RT attachment {id}: content is not base64"
                        ))
                    })?;
                return Ok(String::from_utf8_lossy(&bytes).into_owned());
            }
            html |= kind.starts_with("text/html");
        }
        Ok(if html {
            "(A message written in HTML only; read it in Request Tracker.)".into()
        } else {
            String::new()
        })
    }

    fn ticket_of(
        &self,
        t: &Value,
        queues: &[(String, String)],
    ) -> Result<RemoteTicket, RemoteError> {
        let id = id_of(&t["id"])
            .ok_or_else(|| RemoteError::Unavailable("RT answered a ticket without an id".into()))?;
        let queue = id_of(&t["Queue"]["id"]);
        let place = queues
            .iter()
            .find(|(id, _)| queue.as_deref() == Some(id.as_str()))
            .map(|(_, name)| name.clone());
        Ok(RemoteTicket {
            url: self.display_url(&id),
            subject: t["Subject"].as_str().unwrap_or_default().to_owned(),
            status: t["Status"].as_str().unwrap_or_default().to_owned(),
            priority: number(&t["Priority"]).unwrap_or(0),
            by_us: t["Creator"]["id"]
                .as_str()
                .is_some_and(|c| c.eq_ignore_ascii_case(self.username())),
            in_queue: place.is_some(),
            place: place.unwrap_or_default(),
            category: String::new(),
            updated_by: t["LastUpdatedBy"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            id,
        })
    }

    /// Where people open the ticket in RT's web pages.
    fn display_url(&self, id: &str) -> String {
        format!(
            "{}/Ticket/Display.html?id={id}",
            self.spec.url.trim_end_matches('/')
        )
    }
}

/// RT sends ids and numbers as strings or numbers.
fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// A time as RT's REST 2.0 writes it (`2026-12-08T10:15:30Z`; older ones `2026-12-08
/// 10:15:30`, in UTC).
fn rt_time(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// RT's number of a ticket id opsdesk keeps as text.
fn rt_ticket_id(id: &str) -> Result<i64, RemoteError> {
    id.parse()
        .map_err(|_| RemoteError::Refused(format!("{id:?} is not an RT ticket id")))
}

/// A TicketSQL string literal.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[async_trait::async_trait]
impl RemoteSystem for RequestTracker {
    fn spec(&self) -> &ConnectorSpec {
        &self.spec
    }

    async fn find(&self, key: &str) -> Result<Option<RemoteTicket>, RemoteError> {
        // The queues RT has (a team's queue it lacks is left out of the query).
        let queues: Vec<String> = self
            .queues()
            .await?
            .iter()
            .map(|(_, name)| format!("Queue = {}", quoted(name)))
            .collect();
        let query = format!(
            "({}) AND Creator = {} AND Subject LIKE {}",
            queues.join(" OR "),
            quoted(self.username()),
            quoted(&format!("[{key}]"))
        );
        let mut url = self.url("tickets")?;
        url.query_pairs_mut()
            .append_pair("query", &query)
            .append_pair("fields", TICKET_FIELDS)
            .append_pair("orderby", "id")
            .append_pair("order", "ASC");
        let answer = self.call(Method::GET, url, None).await?;
        let prefix = format!("[{key}]");
        let queues = self.queues().await?;
        for t in answer["items"].as_array().into_iter().flatten() {
            if t["Subject"]
                .as_str()
                .is_some_and(|s| s.trim_start().starts_with(&prefix))
            {
                return self.ticket_of(t, queues).map(Some);
            }
        }
        Ok(None)
    }

    async fn create(&self, t: &RemoteNew) -> Result<RemoteTicket, RemoteError> {
        let body = json!({
            "Queue": t.place.as_deref().unwrap_or(&self.spec.queue),
            "Subject": t.subject,
            "Content": if t.description.trim().is_empty() { "(no description)" } else { t.description.as_str() },
            "ContentType": "text/plain",
            "Priority": t.priority,
            "Status": t.status,
        });
        let url = self.url("ticket")?;
        let made = self.call(Method::POST, url, Some(&body)).await?;
        let id = id_of(&made["id"])
            .ok_or_else(|| RemoteError::Unavailable("RT created a ticket but sent no id".into()))?;
        self.ticket(&id).await
    }

    async fn ticket(&self, id: &str) -> Result<RemoteTicket, RemoteError> {
        let t = self.get(&format!("ticket/{}", encode(id))).await?;
        let queues = self.queues().await?;
        self.ticket_of(&t, queues)
    }

    async fn update(&self, id: &str, f: &RemoteFields) -> Result<(), RemoteError> {
        let mut body = serde_json::Map::new();
        if let Some(s) = &f.subject {
            body.insert("Subject".into(), json!(s));
        }
        if let Some(s) = &f.status {
            body.insert("Status".into(), json!(s));
        }
        if let Some(p) = f.priority {
            body.insert("Priority".into(), json!(p));
        }
        let url = self.url(&format!("ticket/{}", encode(id)))?;
        let answer = self
            .call(Method::PUT, url, Some(&Value::Object(body)))
            .await?;
        // RT answers 200 with the messages of what it did, a refused field among them: what
        // it holds now tells.
        let now = self.ticket(id).await?;
        let kept = |what: &str| {
            let said: Vec<&str> = answer
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            RemoteError::Refused(format!(
                "RT ticket {id} kept its {what}: {}",
                said.join("; ")
            ))
        };
        if f.status.as_ref().is_some_and(|s| now.status != *s) {
            return Err(kept("status"));
        }
        let first = |s: &str| -> String {
            s.trim()
                .chars()
                .take(opsdesk_domain::connector::RT_SUBJECT_MAX)
                .collect()
        };
        if f.subject
            .as_ref()
            .is_some_and(|s| first(&now.subject) != first(s))
        {
            return Err(kept("subject"));
        }
        if f.priority.is_some_and(|p| now.priority != p) {
            return Err(kept("priority"));
        }
        Ok(())
    }

    async fn message(&self, id: &str, body: &str, public: bool) -> Result<(), RemoteError> {
        let what = if public { "correspond" } else { "comment" };
        let url = self.url(&format!("ticket/{}/{what}", encode(id)))?;
        self.call(
            Method::POST,
            url,
            Some(&json!({ "Content": body, "ContentType": "text/plain" })),
        )
        .await?;
        Ok(())
    }

    async fn changes(&self, id: &str, after: i64) -> Result<Vec<RemoteChange>, RemoteError> {
        let ticket_id = rt_ticket_id(id)?;
        let filter = json!([
            {"field": "ObjectType", "value": "RT::Ticket"},
            {"field": "ObjectId", "value": ticket_id},
            {"field": "id", "operator": ">", "value": after}
        ]);
        let items = self
            .transactions(
                filter,
                "Type,Creator,Field,OldValue,NewValue",
                PAGES_PER_LOOK,
            )
            .await?;
        let mut out = Vec::with_capacity(items.len());
        let mut previous_ours = false;
        for t in items {
            let Some(tid) = number(&t["id"]) else {
                continue;
            };
            let creator = t["Creator"]["id"].as_str().unwrap_or_default().to_owned();
            // What RT did by itself right after one of our changes (a reply that opens the
            // ticket) is ours too.
            let by_us = creator.eq_ignore_ascii_case(self.username())
                || (creator == RT_SYSTEM && previous_ours);
            previous_ours = by_us;
            let new_value = t["NewValue"].as_str().unwrap_or_default();
            let kind = match (
                t["Type"].as_str().unwrap_or_default(),
                t["Field"].as_str().unwrap_or_default(),
            ) {
                ("Correspond", _) | ("Comment", _) if !by_us => RemoteChangeKind::Message {
                    public: t["Type"] == "Correspond",
                    body: self.message_text(&tid.to_string()).await?,
                },
                ("Status", _) | ("Set", "Status") => RemoteChangeKind::Status(new_value.to_owned()),
                ("Set", "Subject") => RemoteChangeKind::Subject(new_value.to_owned()),
                ("Set", "Priority") => match number(&t["NewValue"]) {
                    Some(p) => RemoteChangeKind::Priority(p),
                    None => RemoteChangeKind::Other,
                },
                _ => RemoteChangeKind::Other,
            };
            out.push(RemoteChange {
                id: tid,
                by_us,
                author: creator,
                kind,
            });
        }
        Ok(out)
    }

    async fn created(&self, id: &str) -> Result<Option<Created>, RemoteError> {
        let ticket_id = rt_ticket_id(id)?;
        let filter = json!([
            {"field": "ObjectType", "value": "RT::Ticket"},
            {"field": "ObjectId", "value": ticket_id},
            {"field": "Type", "value": "Create"}
        ]);
        let created = self.transactions(filter, "Type", 1).await?;
        let Some(at) = created.first().and_then(|t| number(&t["id"])) else {
            return Ok(None);
        };
        Ok(Some(Created {
            at,
            cursor: at,
            description: self.message_text(&at.to_string()).await?,
        }))
    }

    async fn search(
        &self,
        query: &str,
        page: usize,
    ) -> Result<(Vec<RemoteTicket>, bool), RemoteError> {
        let mut url = self.url("tickets")?;
        url.query_pairs_mut()
            .append_pair("query", query)
            .append_pair("fields", TICKET_FIELDS)
            .append_pair("orderby", "id")
            .append_pair("order", "ASC")
            .append_pair("per_page", &PAGE.to_string())
            .append_pair("page", &page.to_string());
        let answer = self.call(Method::GET, url, None).await?;
        let queues = self.queues().await?;
        let items = answer["items"].as_array().cloned().unwrap_or_default();
        let more = answer["pages"]
            .as_f64()
            .is_some_and(|pages| pages > page as f64)
            && items.len() == PAGE;
        let tickets = items
            .iter()
            .map(|t| self.ticket_of(t, queues))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((tickets, more))
    }

    async fn history(&self, id: &str) -> Result<RemoteHistory, RemoteError> {
        let ticket_id = rt_ticket_id(id)?;
        let filter = json!([
            {"field": "ObjectType", "value": "RT::Ticket"},
            {"field": "ObjectId", "value": ticket_id}
        ]);
        let items = self
            .transactions(filter, "Type,Creator,Created", HISTORY_PAGES)
            .await?;
        let mut history = RemoteHistory {
            created_at: None,
            created_by: String::new(),
            description: String::new(),
            messages: Vec::new(),
            cursor: 0,
            status_changed_at: None,
        };
        for t in items {
            let Some(tid) = number(&t["id"]) else {
                continue;
            };
            history.cursor = history.cursor.max(tid);
            let creator = t["Creator"]["id"].as_str().unwrap_or_default().to_owned();
            let when = rt_time(&t["Created"]);
            // A time RT did not write as a time: the one before it.
            let at = when
                .or(history.messages.last().map(|m| m.at))
                .or(history.created_at)
                .unwrap_or_default();
            match t["Type"].as_str().unwrap_or_default() {
                "Create" if history.created_at.is_none() => {
                    history.created_at = when;
                    history.created_by = creator;
                    history.description = self.message_text(&tid.to_string()).await?;
                }
                "Status" => history.status_changed_at = when.or(history.status_changed_at),
                kind @ ("Correspond" | "Comment") => {
                    history.messages.push(ImportedMessage {
                        at,
                        author: creator,
                        public: kind == "Correspond",
                        body: self.message_text(&tid.to_string()).await?,
                    });
                }
                _ => {}
            }
        }
        Ok(history)
    }

    fn webhook(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<Vec<String>, RemoteError> {
        crate::webhook::shared_secret(&self.spec, header)?;
        // The scrip in docs/connectors.md sends {"ticket": <id>}.
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| RemoteError::Refused(format!("the body is not JSON: {e}")))?;
        let id = id_of(&v["ticket"])
            .filter(|id| rt_ticket_id(id).is_ok())
            .ok_or_else(|| {
                RemoteError::Refused("the body names no RT ticket: {\"ticket\": <id>}".into())
            })?;
        Ok(vec![id])
    }

    async fn newest_change(&self) -> Result<i64, RemoteError> {
        let mut url = self.url("transactions")?;
        url.query_pairs_mut()
            .append_pair("fields", "ObjectId")
            .append_pair("orderby", "id")
            .append_pair("order", "DESC")
            .append_pair("per_page", "1");
        let filter = json!([
            {"field": "ObjectType", "value": "RT::Ticket"},
            {"field": "id", "operator": ">", "value": 0}
        ]);
        let answer = self.call(Method::POST, url, Some(&filter)).await?;
        Ok(answer["items"]
            .as_array()
            .and_then(|items| items.first())
            .and_then(|t| number(&t["id"]))
            .unwrap_or(0))
    }

    async fn changed_after(&self, after: i64) -> Result<(Vec<String>, i64), RemoteError> {
        let filter = json!([
            {"field": "ObjectType", "value": "RT::Ticket"},
            {"field": "id", "operator": ">", "value": after}
        ]);
        let items = self
            .transactions(filter, "ObjectId", PAGES_PER_LOOK)
            .await?;
        let mut newest = after;
        let mut tickets: Vec<String> = Vec::new();
        for t in &items {
            if let Some(id) = number(&t["id"]) {
                newest = newest.max(id);
            }
            if let Some(ticket) = id_of(&t["ObjectId"]) {
                if !tickets.contains(&ticket) {
                    tickets.push(ticket);
                }
            }
        }
        Ok((tickets, newest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticketsql_literals_are_quoted() {
        assert_eq!(quoted("General"), "'General'");
        assert_eq!(quoted("O'Brien\\x"), "'O\\'Brien\\\\x'");
        assert_eq!(encode("IT Support/EU"), "IT%20Support%2FEU");
        assert_eq!(id_of(&json!("12")), Some("12".into()));
        assert_eq!(id_of(&json!(12)), Some("12".into()));
        assert_eq!(number(&json!("80")), Some(80));
    }
}
