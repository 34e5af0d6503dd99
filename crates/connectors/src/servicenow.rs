//! ServiceNow incidents through the Table API (`/api/now/table/`).
//!
//! An opsdesk ticket is an incident whose `correlation_id` is the ticket's key (`OPS-12`), so
//! an incident an interrupted pass made is found again. Title, state and priority are read
//! from the incident as it is ([`RemoteSystem::fields_by_state`]): ServiceNow keeps no change
//! stream the Table API reads cheaply, but its journal (`sys_journal_field`) holds every
//! comment (public) and work note (internal), and those are the changes read one by one.
//!
//! **The journal cursor.** Journal entries carry a creation time to the second and a `sys_id`
//! that does not grow, so a change's id is made of both: `second * 1000 + its place among the
//! entries of that second, ordered by sys_id`. An entry is taken only once its second is over
//! by the server's clock (the `Date` of the answer) less [`SETTLE_SECONDS`], so that an entry
//! committed late still finds its second unread; the next read starts at the second after the
//! cursor's.
//!
//! **Time zones.** A real instance reads a date in an encoded query (`sys_created_on>=2026-...`
//! and `javascript:gs.dateGenerate(...)` alike) in the session user's time zone, which
//! opsdesk does not know. So no absolute time is ever sent: the reads ask for
//! `javascript:gs.minutesAgoStart(N)`, N being the minutes since the cursor by the server's
//! clock (estimated from the `Date` of the last answer and the time passed since), rounded up
//! and one more, and the exact cut is made here on the UTC values `sysparm_display_value=false`
//! answers with.
//!
//! **Priority** is computed by ServiceNow from impact and urgency: a severity is written as
//! the pair `priority_map` gives, else the pair its default matrix turns into the severity's
//! priority, and read back by the pair (a pair neither names reads as the computed priority).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, NaiveDateTime, Utc};
use opsdesk_core::connectors::{
    Created, RemoteChange, RemoteChangeKind, RemoteError, RemoteFields, RemoteNew, RemoteSystem,
    RemoteTicket,
};
use opsdesk_domain::connector::ConnectorSpec;
use opsdesk_domain::Ticket;
use reqwest::header::DATE;
use reqwest::{Method, Url};
use serde_json::{json, Map, Value};

pub use crate::http::BuildError;
use crate::http::{api_base, basic, Answer, Api};

/// Records asked for per page.
const PAGE: usize = 100;
/// Pages read per look, so that one look is bounded.
const PAGES_PER_LOOK: usize = 10;
/// How long a journal second must be over by the server's clock before its entries are taken.
const SETTLE_SECONDS: i64 = 3;
/// The incident fields opsdesk reads.
const INCIDENT_FIELDS: &str = "sys_id,short_description,state,priority,impact,urgency,category,\
     assignment_group,sys_created_by,sys_updated_by";
/// The journal fields opsdesk reads.
const JOURNAL_FIELDS: &str = "sys_id,element,value,sys_created_on,sys_created_by";
/// `correlation_display` of the incidents opsdesk makes.
const CORRELATION_DISPLAY: &str = "opsdesk";
/// The resolution code sent when `close_code` is not set.
const DEFAULT_CLOSE_CODE: &str = "Solution provided";
/// The resolution notes sent with a resolved or closed incident.
const CLOSE_NOTES: &str = "Resolved in opsdesk.";
/// The on-hold reason sent with On Hold: Awaiting Caller.
const HOLD_REASON: &str = "1";

pub struct ServiceNow {
    spec: ConnectorSpec,
    api_client: Api,
    /// `<url>/api/now/table/`.
    api: Url,
    /// The server's time by the `Date` of the last answer, and when it came.
    last_date: Mutex<Option<(i64, Instant)>>,
}

impl std::fmt::Debug for ServiceNow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNow")
            .field("spec", &self.spec)
            .field("api", &self.api.as_str())
            .finish()
    }
}

/// One journal entry, as the cursor orders it.
struct Entry {
    second: i64,
    sys_id: String,
    public: bool,
    body: String,
    author: String,
}

impl ServiceNow {
    pub fn new(spec: ConnectorSpec) -> Result<Arc<ServiceNow>, BuildError> {
        spec.check().map_err(|e| BuildError(e.to_string()))?;
        let api = api_base(&spec.name, &spec.url, "/api/now/table/")?;
        let username = spec.username.clone().unwrap_or_default();
        let header = match spec.token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => format!("Bearer {token}"),
            None => basic(&username, spec.password.as_deref().unwrap_or_default()),
        };
        let api_client = Api::new(&spec.name, spec.kind.label(), &header, |answer| {
            let e = &answer["error"];
            [e["message"].as_str(), e["detail"].as_str()]
                .into_iter()
                .flatten()
                .filter(|s| !s.trim().is_empty())
                .collect::<Vec<_>>()
                .join(": ")
        })?;
        Ok(Arc::new(ServiceNow {
            spec,
            api_client,
            api,
            last_date: Mutex::new(None),
        }))
    }

    fn username(&self) -> &str {
        self.spec.username.as_deref().unwrap_or_default()
    }

    /// `<table>[/<sys_id>]` with the parameters every call sends: raw UTC values, no links.
    fn url(&self, path: &str, fields: &str) -> Result<Url, RemoteError> {
        let mut url = crate::http::join(&self.api, path)?;
        url.query_pairs_mut()
            .append_pair("sysparm_fields", fields)
            .append_pair("sysparm_display_value", "false")
            .append_pair("sysparm_exclude_reference_link", "true");
        Ok(url)
    }

    /// One call; the server's time of its answer is kept for [`Self::minutes_since`].
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<(Value, i64), RemoteError> {
        let Answer { body, headers } = self.api_client.call_with_headers(method, url, body).await?;
        let date = headers
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.timestamp())
            .ok_or_else(|| {
                RemoteError::Unavailable("ServiceNow answered without a Date header".into())
            })?;
        if let Ok(mut last) = self.last_date.lock() {
            *last = Some((date, Instant::now()));
        }
        Ok((body, date))
    }

    /// A record of `table`.
    async fn record(&self, table: &str, sys_id: &str, fields: &str) -> Result<Value, RemoteError> {
        let url = self.url(&format!("{table}/{}", checked_sys_id(sys_id)?), fields)?;
        let (answer, _) = self.call(Method::GET, url, None).await?;
        Ok(answer["result"].clone())
    }

    /// The records of `table` an encoded query matches, at most `pages` pages of them (whether
    /// there may be more says the bool), and the server's time of the last answer.
    async fn records(
        &self,
        table: &str,
        query: &str,
        fields: &str,
        pages: usize,
    ) -> Result<(Vec<Value>, bool, i64), RemoteError> {
        let mut out = Vec::new();
        let mut date = 0;
        for page in 0..pages {
            let mut url = self.url(table, fields)?;
            url.query_pairs_mut()
                .append_pair("sysparm_query", query)
                .append_pair("sysparm_limit", &PAGE.to_string())
                .append_pair("sysparm_offset", &(page * PAGE).to_string());
            let (answer, at) = self.call(Method::GET, url, None).await?;
            date = at;
            let items = answer["result"].as_array().cloned().unwrap_or_default();
            let full = items.len() >= PAGE;
            out.extend(items);
            if !full {
                return Ok((out, false, date));
            }
        }
        Ok((out, true, date))
    }

    /// Whole minutes (rounded up, and one more) from `after` (epoch seconds) to the server's
    /// time now: `gs.minutesAgoStart` of it starts before `after` whatever the session's time
    /// zone.
    async fn minutes_since(&self, after: i64) -> Result<i64, RemoteError> {
        let known = self.last_date.lock().ok().and_then(|last| *last);
        let now = match known {
            Some((date, seen)) => {
                // The Date header is cut to the second: one more.
                date + i64::try_from(seen.elapsed().as_secs()).unwrap_or(i64::MAX / 2) + 1
            }
            None => self.newest_change().await? / 1000 + 1,
        };
        let seconds = now.saturating_sub(after).max(0);
        Ok(seconds / 60 + i64::from(seconds % 60 != 0) + 1)
    }

    fn ticket_of(&self, t: &Value) -> Result<RemoteTicket, RemoteError> {
        let id = text(&t["sys_id"]);
        if id.is_empty() {
            return Err(RemoteError::Unavailable(
                "ServiceNow answered an incident without a sys_id".into(),
            ));
        }
        // The severity whose impact and urgency these are (the connector's `priority_map`,
        // else the default matrix's pairs); another pair reads as the priority ServiceNow
        // computed from it. A missing priority must not read as P1.
        let pair = format!(
            "{},{}",
            text(&t["impact"]).trim(),
            text(&t["urgency"]).trim()
        );
        let priority = match self.spec.severity_of_label(&pair) {
            Some(s) => s.rank(),
            None => text(&t["priority"]).trim().parse().map_err(|_| {
                RemoteError::Unavailable(format!("ServiceNow incident {id} has no priority"))
            })?,
        };
        Ok(RemoteTicket {
            url: format!(
                "{}/nav_to.do?uri=incident.do?sys_id={id}",
                self.spec.url.trim_end_matches('/')
            ),
            subject: text(&t["short_description"]).to_owned(),
            status: text(&t["state"]).trim().to_owned(),
            priority,
            by_us: text(&t["sys_created_by"]).eq_ignore_ascii_case(self.username()),
            in_queue: true,
            place: text(&t["assignment_group"]).trim().to_owned(),
            category: text(&t["category"]).trim().to_owned(),
            // opsdesk's own last change (a comment it wrote) says nothing of who changed a
            // field before: unknown then.
            updated_by: Some(text(&t["sys_updated_by"]))
                .filter(|u| !u.eq_ignore_ascii_case(self.username()))
                .unwrap_or_default()
                .to_owned(),
            id: id.to_owned(),
        })
    }

    /// The state and what ServiceNow requires with it: a resolution code and notes to resolve
    /// or close, a reason to put on hold.
    fn state_fields(&self, state: &str, body: &mut Map<String, Value>) {
        body.insert("state".into(), json!(state));
        match state.trim() {
            "6" | "7" => {
                let code = self
                    .spec
                    .close_code
                    .as_deref()
                    .filter(|c| !c.trim().is_empty())
                    .unwrap_or(DEFAULT_CLOSE_CODE);
                body.insert("close_code".into(), json!(code));
                body.insert("close_notes".into(), json!(CLOSE_NOTES));
            }
            "3" => {
                body.insert("hold_reason".into(), json!(HOLD_REASON));
            }
            _ => {}
        }
    }

    /// The journal entries of the incident after the cursor `after`, whose seconds are over,
    /// oldest first with their ids.
    async fn journal(&self, sys_id: &str, after: i64) -> Result<Vec<(i64, Entry)>, RemoteError> {
        let sys_id = checked_sys_id(sys_id)?;
        let after_second = after.max(0) / 1000;
        let mut query = format!("element_id={sys_id}^elementINcomments,work_notes");
        if after > 0 {
            let minutes = self.minutes_since(after_second + 1).await?;
            query.push_str(&format!(
                "^sys_created_on>=javascript:gs.minutesAgoStart({minutes})"
            ));
        }
        query.push_str("^ORDERBYsys_created_on^ORDERBYsys_id");
        let (items, more, date) = self
            .records("sys_journal_field", &query, JOURNAL_FIELDS, PAGES_PER_LOOK)
            .await?;
        let mut entries: Vec<Entry> = items
            .iter()
            .filter_map(|e| {
                Some(Entry {
                    second: utc_time(&e["sys_created_on"])?.timestamp(),
                    sys_id: text(&e["sys_id"]).to_owned(),
                    public: match text(&e["element"]) {
                        "comments" => true,
                        "work_notes" => false,
                        _ => return None,
                    },
                    body: text(&e["value"]).to_owned(),
                    author: text(&e["sys_created_by"]).to_owned(),
                })
            })
            .filter(|e| e.second > after_second && e.second < date - SETTLE_SECONDS)
            .collect();
        entries.sort_by(|a, b| (a.second, &a.sys_id).cmp(&(b.second, &b.sys_id)));
        if more {
            // The last second read may go on in the next page: it is read whole next time
            // (unless it is all there is).
            let last = entries.last().map(|e| e.second);
            if entries.iter().any(|e| Some(e.second) != last) {
                entries.retain(|e| Some(e.second) != last);
            }
        }
        Ok(number_entries(entries))
    }
}

/// The entries (ordered by second and sys_id) with their ids: `second * 1000 + place`.
fn number_entries(entries: Vec<Entry>) -> Vec<(i64, Entry)> {
    let mut out: Vec<(i64, Entry)> = Vec::with_capacity(entries.len());
    let mut place = 0;
    for e in entries {
        place = match out.last() {
            Some((_, prev)) if prev.second == e.second => (place + 1).min(999),
            _ => 0,
        };
        out.push((e.second.saturating_mul(1000).saturating_add(place), e));
    }
    out
}

/// A string field (ServiceNow sends values as strings); empty when absent.
fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// A time as ServiceNow's raw values give it: `2026-12-08 10:15:30`, in UTC.
fn utc_time(v: &Value) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(v.as_str()?.trim(), "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

/// A sys_id: 32 hexadecimal digits (so it is safe in a path and an encoded query).
fn checked_sys_id(id: &str) -> Result<&str, RemoteError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id)
    } else {
        Err(RemoteError::Refused(format!(
            "{id:?} is not a ServiceNow sys_id"
        )))
    }
}

/// A value in an encoded query, where `^` would start another condition.
fn query_value(v: &str) -> Result<&str, RemoteError> {
    if v.is_empty() || v.contains(['^', '\n', '\r']) {
        Err(RemoteError::Refused(format!(
            "{v:?} cannot be looked up in a ServiceNow encoded query"
        )))
    } else {
        Ok(v)
    }
}

/// The opsdesk key a subject starts with (`[OPS-12] title`).
fn key_of(subject: &str) -> Option<&str> {
    let (key, _) = subject.trim().strip_prefix('[')?.split_once(']')?;
    (key.starts_with("OPS-") && Ticket::parse_ref(key).is_some()).then_some(key)
}

/// The impact and urgency written for opsdesk's 1 to 5: the connector's `priority_map`, else
/// the pair ServiceNow's default priority matrix turns into that priority.
fn impact_urgency(spec: &ConnectorSpec, priority: i64) -> (String, String) {
    let (i, u) =
        opsdesk_domain::connector::impact_urgency(&spec.priority_label(spec.severity(priority)))
            .unwrap_or((3, 3));
    (i.to_string(), u.to_string())
}

#[async_trait::async_trait]
impl RemoteSystem for ServiceNow {
    fn spec(&self) -> &ConnectorSpec {
        &self.spec
    }

    async fn find(&self, key: &str) -> Result<Option<RemoteTicket>, RemoteError> {
        let query = format!(
            "correlation_id={}^sys_created_by={}^ORDERBYsys_created_on",
            query_value(key)?,
            query_value(self.username())?
        );
        let (items, _, _) = self.records("incident", &query, INCIDENT_FIELDS, 1).await?;
        items.first().map(|t| self.ticket_of(t)).transpose()
    }

    async fn create(&self, t: &RemoteNew) -> Result<RemoteTicket, RemoteError> {
        let (impact, urgency) = impact_urgency(&self.spec, t.priority);
        let mut body = Map::new();
        if let Some(group) = &t.place {
            body.insert("assignment_group".into(), json!(group));
        }
        if let Some(category) = &t.category {
            body.insert("category".into(), json!(category));
        }
        body.insert("short_description".into(), json!(t.subject));
        body.insert("description".into(), json!(t.description));
        body.insert("impact".into(), json!(impact));
        body.insert("urgency".into(), json!(urgency));
        if let Some(key) = key_of(&t.subject) {
            body.insert("correlation_id".into(), json!(key));
            body.insert("correlation_display".into(), json!(CORRELATION_DISPLAY));
        }
        self.state_fields(&t.status, &mut body);
        let url = self.url("incident", INCIDENT_FIELDS)?;
        let (made, _) = self
            .call(Method::POST, url, Some(&Value::Object(body)))
            .await?;
        self.ticket_of(&made["result"])
    }

    async fn ticket(&self, id: &str) -> Result<RemoteTicket, RemoteError> {
        let t = self.record("incident", id, INCIDENT_FIELDS).await?;
        self.ticket_of(&t)
    }

    async fn update(&self, id: &str, f: &RemoteFields) -> Result<(), RemoteError> {
        if *f == RemoteFields::default() {
            return Ok(());
        }
        let mut body = Map::new();
        if let Some(s) = &f.subject {
            body.insert("short_description".into(), json!(s));
        }
        if let Some(s) = &f.status {
            self.state_fields(s, &mut body);
        }
        if let Some(p) = f.priority {
            let (impact, urgency) = impact_urgency(&self.spec, p);
            body.insert("impact".into(), json!(impact));
            body.insert("urgency".into(), json!(urgency));
        }
        let url = self.url(
            &format!("incident/{}", checked_sys_id(id)?),
            INCIDENT_FIELDS,
        )?;
        let (answer, _) = self
            .call(Method::PATCH, url, Some(&Value::Object(body)))
            .await?;
        // A business rule may undo what was sent: what the incident holds now tells.
        let now = self.ticket_of(&answer["result"])?;
        let kept = |what: &str, value: &str| {
            RemoteError::Refused(format!(
                "ServiceNow incident {id} kept its {what} ({value})"
            ))
        };
        if f.status.as_ref().is_some_and(|s| now.status != s.trim()) {
            return Err(kept("state", &now.status));
        }
        if f.subject
            .as_ref()
            .is_some_and(|s| now.subject.trim() != s.trim())
        {
            return Err(kept("short description", &now.subject));
        }
        if f.priority.is_some_and(|p| now.priority != p) {
            return Err(kept(
                "priority (its priority lookup rules differ from the default matrix)",
                &now.priority.to_string(),
            ));
        }
        Ok(())
    }

    async fn message(&self, id: &str, body: &str, public: bool) -> Result<(), RemoteError> {
        let field = if public { "comments" } else { "work_notes" };
        let url = self.url(&format!("incident/{}", checked_sys_id(id)?), "sys_id")?;
        self.call(Method::PATCH, url, Some(&json!({ field: body })))
            .await?;
        Ok(())
    }

    async fn changes(&self, id: &str, after: i64) -> Result<Vec<RemoteChange>, RemoteError> {
        let entries = self.journal(id, after).await?;
        Ok(entries
            .into_iter()
            .map(|(id, e)| RemoteChange {
                id,
                by_us: e.author.eq_ignore_ascii_case(self.username()),
                author: e.author,
                kind: RemoteChangeKind::Message {
                    public: e.public,
                    body: e.body,
                },
            })
            .collect())
    }

    async fn created(&self, id: &str) -> Result<Option<Created>, RemoteError> {
        let t = self
            .record("incident", id, "sys_created_on,description")
            .await?;
        let at = utc_time(&t["sys_created_on"]).ok_or_else(|| {
            RemoteError::Unavailable(format!("ServiceNow incident {id} has no sys_created_on"))
        })?;
        Ok(Some(Created {
            at: at.timestamp_millis(),
            cursor: 0,
            description: text(&t["description"]).to_owned(),
        }))
    }

    fn fields_by_state(&self) -> bool {
        true
    }

    fn webhook(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<Vec<String>, RemoteError> {
        crate::webhook::shared_secret(&self.spec, header)?;
        // The business rule in docs/connectors.md sends {"sys_id": "<incident>"}.
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| RemoteError::Refused(format!("the body is not JSON: {e}")))?;
        let id = checked_sys_id(text(&v["sys_id"])).map_err(|_| {
            RemoteError::Refused(
                "the body names no ServiceNow incident: {\"sys_id\": \"<sys_id>\"}".into(),
            )
        })?;
        Ok(vec![id.to_owned()])
    }

    async fn newest_change(&self) -> Result<i64, RemoteError> {
        let mut url = self.url("incident", "sys_id")?;
        url.query_pairs_mut().append_pair("sysparm_limit", "1");
        let (_, date) = self.call(Method::GET, url, None).await?;
        Ok(date.saturating_mul(1000))
    }

    async fn changed_after(&self, after: i64) -> Result<(Vec<String>, i64), RemoteError> {
        let minutes = self.minutes_since(after.max(0) / 1000).await?;
        let query = format!(
            "sys_updated_on>=javascript:gs.minutesAgoStart({minutes})^ORDERBYsys_updated_on^ORDERBYsys_id"
        );
        let (items, more, date) = self
            .records("incident", &query, "sys_id,sys_updated_on", PAGES_PER_LOOK)
            .await?;
        let mut ids: Vec<String> = Vec::new();
        for t in &items {
            let id = text(&t["sys_id"]);
            if !id.is_empty() && !ids.iter().any(|i| i == id) {
                ids.push(id.to_owned());
            }
        }
        let mut newest = date.saturating_mul(1000);
        if more {
            // Not all read: the next look goes on from the last change read (or, when a
            // minute holds more than a look reads, from now: linked incidents are still
            // looked at every 30 polls).
            let last = items
                .last()
                .and_then(|t| utc_time(&t["sys_updated_on"]))
                .map(|t| (t.timestamp() - 1) * 1000);
            if let Some(last) = last.filter(|l| *l > after + 60_000) {
                newest = last;
            }
        }
        Ok((ids, newest.max(after)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ConnectorSpec {
        serde_json::from_value(json!({
            "name": "sn", "type": "servicenow", "url": "https://example.service-now.com",
            "username": "opsdesk", "password": "pw-secret", "queue": "incident"
        }))
        .unwrap()
    }

    fn entry(second: i64, sys_id: &str) -> Entry {
        Entry {
            second,
            sys_id: sys_id.into(),
            public: true,
            body: String::new(),
            author: String::new(),
        }
    }

    #[test]
    fn journal_entries_are_numbered_by_second_and_place() {
        let ids: Vec<i64> = number_entries(vec![
            entry(100, "a"),
            entry(100, "b"),
            entry(101, "0"),
            entry(103, "c"),
            entry(103, "d"),
            entry(103, "e"),
        ])
        .into_iter()
        .map(|(id, _)| id)
        .collect();
        assert_eq!(ids, [100_000, 100_001, 101_000, 103_000, 103_001, 103_002]);
        let crowded: Vec<Entry> = (0..1200).map(|i| entry(7, &format!("{i:04}"))).collect();
        let last = number_entries(crowded).last().map(|(id, _)| *id);
        assert_eq!(last, Some(7_999));
    }

    #[test]
    fn priorities_are_written_as_impact_and_urgency() {
        // ServiceNow's default matrix: impact x urgency -> priority.
        let matrix = |i: &str, u: &str| match (i, u) {
            ("1", "1") => 1,
            ("1", "2") | ("2", "1") => 2,
            ("1", "3") | ("2", "2") | ("3", "1") => 3,
            ("2", "3") | ("3", "2") => 4,
            _ => 5,
        };
        let s = spec();
        for p in 1..=5 {
            let (i, u) = impact_urgency(&s, p);
            assert_eq!(matrix(&i, &u), p);
        }
        assert_eq!(impact_urgency(&s, 0), ("1".into(), "1".into()));
        assert_eq!(impact_urgency(&s, 9), ("3".into(), "3".into()));
        // A map of the site's own: written as mapped, read back by the pair.
        let mut mapped = spec();
        mapped
            .priority_map
            .insert(opsdesk_domain::Severity::Sev3, "1,3".into());
        assert_eq!(mapped.check(), Ok(()));
        assert_eq!(impact_urgency(&mapped, 3), ("1".into(), "3".into()));
        assert_eq!(
            mapped.severity_of_label(" 1, 3"),
            Some(opsdesk_domain::Severity::Sev3)
        );
        assert_eq!(mapped.severity_of_label("2,2"), None);
        mapped
            .priority_map
            .insert(opsdesk_domain::Severity::Sev4, "1,3".into());
        assert!(mapped.check().is_err());
    }

    #[test]
    fn keys_ids_and_times_are_read_strictly() {
        assert_eq!(key_of("[OPS-12] Disk full"), Some("OPS-12"));
        assert_eq!(key_of("[12] Disk full"), None);
        assert_eq!(key_of("Disk full"), None);
        assert!(checked_sys_id("46d44a5dc0a8010e0075ef2e94f2d2c8").is_ok());
        assert!(checked_sys_id("../incident").is_err());
        assert!(query_value("OPS-1^ORsys_id!=x").is_err());
        assert_eq!(
            utc_time(&json!("2026-12-08 10:15:30")).map(|t| t.timestamp()),
            Some(1_796_724_930)
        );
        assert_eq!(utc_time(&json!("08.12.2026 10:15")), None);
    }

    #[test]
    fn secrets_stay_out_of_debug_and_webhooks_name_an_incident() {
        let spec: ConnectorSpec = serde_json::from_value(json!({
            "name": "servicenow", "type": "servicenow", "url": "https://example.service-now.com",
            "username": "opsdesk", "password": "hunter2-secret", "queue": "incident",
            "webhook_secret": "0123456789abcdef0123"
        }))
        .unwrap();
        let sn = ServiceNow::new(spec).unwrap();
        let shown = format!("{sn:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(!shown.contains("0123456789abcdef0123"), "{shown}");
        let secret = |name: &str| {
            (name == crate::webhook::SECRET_HEADER).then(|| "0123456789abcdef0123".to_owned())
        };
        let id = "46d44a5dc0a8010e0075ef2e94f2d2c8";
        let body = format!("{{\"sys_id\": \"{id}\"}}");
        assert_eq!(
            sn.webhook(&secret, body.as_bytes()),
            Ok(vec![id.to_owned()])
        );
        assert!(sn.webhook(&|_: &str| None, body.as_bytes()).is_err());
        assert!(sn.webhook(&secret, b"{\"sys_id\": \"x\"}").is_err());
        assert!(sn.webhook(&secret, b"not json").is_err());
    }
}
