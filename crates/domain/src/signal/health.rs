//! AWS Health events, from EventBridge (`aws.health`) or from the Health API poller.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{clip, receipt_key, Fields, Page, Signal, SignalState, Window, HEALTH};
use crate::validation::FieldError;

/// The EventBridge `detail-type` of abuse reports: AWS says resources of the account were
/// seen abusing others, and may suspend the account unless someone answers.
pub const ABUSE_DETAIL_TYPE: &str = "AWS Health Abuse Event";

/// The signal `kind` of abuse reports.
pub const ABUSE: &str = "abuse";

/// A Health event in the words of the Health API, whichever way it arrived.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HealthEvent {
    pub arn: String,
    pub service: Option<String>,
    pub type_code: Option<String>,
    /// `issue`, `scheduledChange`, `accountNotification`, `investigation`.
    pub category: String,
    /// `open`, `closed`, `upcoming`.
    pub status: String,
    pub region: Option<String>,
    pub affected_account: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub last_updated: Option<DateTime<Utc>>,
    pub description: String,
    /// Affected resources (entity values) with their tags.
    pub entities: Vec<(String, std::collections::BTreeMap<String, String>)>,
    /// `ACTION_REQUIRED`, `ACTION_MAY_BE_REQUIRED`, `INFORMATIONAL`.
    pub actionability: Option<String>,
    /// `OPERATIONS`, `SECURITY`, `BILLING`.
    pub personas: Vec<String>,
    /// Which page this is, for an event split over several EventBridge messages.
    pub page: Option<Page>,
    /// An abuse report (`AWS Health Abuse Event`) rather than an ordinary event.
    pub abuse: bool,
}

impl HealthEvent {
    /// The signal for this event. `fallback_time` stands in when AWS sent no update time.
    pub fn into_signal(self, raw: Value, fallback_time: DateTime<Utc>) -> Signal {
        let occurred_at = self.last_updated.or(self.start).unwrap_or(fallback_time);
        let account = self.affected_account.clone().unwrap_or_default();
        let dedup_key = format!("{}|{account}", self.arn);
        let updated = occurred_at.to_rfc3339();
        // Every page but the first is news of its own; the first keeps the key an unsplit
        // event has, so that the poller's reading of the same update is a repeat of it.
        let receipt = match self.page.as_ref().filter(|p| p.number > 1) {
            Some(p) => receipt_key(
                HEALTH,
                &[&dedup_key, &self.status, &updated, &p.number.to_string()],
            ),
            None => receipt_key(HEALTH, &[&dedup_key, &self.status, &updated]),
        };
        let state = if self.status.eq_ignore_ascii_case("closed") {
            SignalState::Resolved
        } else {
            SignalState::Firing
        };
        let window = (self.category == "scheduledChange")
            .then_some(self.start)
            .flatten()
            .map(|start| Window {
                start,
                end: self.end,
            });
        let type_code = self
            .type_code
            .clone()
            .unwrap_or_else(|| self.category.clone());
        let title = match &self.service {
            _ if self.abuse => format!("AWS Health abuse report: {}", readable(&type_code)),
            Some(service) => format!("AWS Health: {service} {}", readable(&type_code)),
            None => format!("AWS Health: {}", readable(&type_code)),
        };
        let mut personas = self.personas;
        if self.abuse && !personas.iter().any(|p| p == "SECURITY") {
            personas.push("SECURITY".to_owned());
        }
        let body = if self.abuse {
            abuse_body(&self.description, &self.entities)
        } else {
            self.description
        };
        let mut tags = std::collections::BTreeMap::new();
        let mut resources = Vec::with_capacity(self.entities.len());
        for (entity, entity_tags) in self.entities {
            resources.push(entity);
            tags.extend(entity_tags);
        }
        Signal {
            source: HEALTH.to_owned(),
            receipt_key: receipt,
            dedup_key,
            state,
            kind: if self.abuse {
                ABUSE.to_owned()
            } else {
                self.category
            },
            category: self.type_code,
            severity: None,
            account: self.affected_account,
            region: self.region,
            service: self.service,
            resources,
            tags,
            title: clip(&title, 300),
            body,
            occurred_at,
            window,
            savings: None,
            actionability: self.actionability,
            personas,
            page: self.page,
            classified: true,
            raw,
        }
    }
}

/// What AWS reported and about which resources: what the person answering AWS needs.
fn abuse_body(
    description: &str,
    entities: &[(String, std::collections::BTreeMap<String, String>)],
) -> String {
    let mut body = String::new();
    if !description.is_empty() {
        body.push_str(description);
        body.push_str("\n\n");
    }
    body.push_str(
        "AWS reports abuse from resources of this account. Answer AWS Trust & Safety, \
         or AWS may restrict or suspend the account.",
    );
    if !entities.is_empty() {
        body.push_str("\n\nReported resources:");
        for (entity, _) in entities.iter().take(50) {
            body.push_str("\n- ");
            body.push_str(entity);
        }
        if entities.len() > 50 {
            body.push_str(&format!("\n- and {} more", entities.len() - 50));
        }
    }
    body
}

/// `AWS_EC2_OPERATIONAL_ISSUE` -> `operational issue` (the service is said separately).
fn readable(type_code: &str) -> String {
    let words: Vec<&str> = type_code.split('_').filter(|w| !w.is_empty()).collect();
    let skip = if words.first() == Some(&"AWS") { 2 } else { 0 };
    let rest: Vec<String> = words
        .iter()
        .skip(skip.min(words.len().saturating_sub(1)))
        .map(|w| w.to_lowercase())
        .collect();
    rest.join(" ")
}

/// The `detail` of an EventBridge `AWS Health Event`.
pub(crate) fn from_eventbridge(
    event: &Fields<'_>,
    received_at: DateTime<Utc>,
) -> Result<Signal, FieldError> {
    let detail = event.obj("detail")?;
    let description = detail
        .array("eventDescription")?
        .iter()
        .filter_map(|d| d.get("latestDescription").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n\n");
    let mut entities = Vec::new();
    for (i, e) in detail.array("affectedEntities")?.iter().enumerate() {
        let e = Fields::new(e, format!("detail.affectedEntities[{i}]"))?;
        if let Some(value) = e.opt_str("entityValue")? {
            entities.push((value.to_owned(), e.string_map("tags")));
        }
    }
    if entities.is_empty() {
        entities = event
            .array("resources")?
            .iter()
            .filter_map(Value::as_str)
            .map(|r| (r.to_owned(), Default::default()))
            .collect();
    }
    // An abuse report, whether its detail-type or its service says so.
    let abuse = event.opt_str("detail-type")? == Some(ABUSE_DETAIL_TYPE)
        || detail.opt_str("service")? == Some("ABUSE");
    // Personas only route and tag the news: one AWS may add in a shape opsdesk does not read
    // is passed over rather than losing the event (the raw payload keeps it).
    let personas: Vec<String> = detail
        .array("personas")?
        .iter()
        .filter_map(|p| p.as_str().map(str::trim).filter(|p| !p.is_empty()))
        .map(|p| clip(p, 64))
        .collect();
    let health = HealthEvent {
        arn: detail.str("eventArn")?.to_owned(),
        service: detail.opt_str("service")?.map(str::to_owned),
        type_code: detail.opt_str("eventTypeCode")?.map(str::to_owned),
        category: if abuse {
            detail
                .opt_str("eventTypeCategory")?
                .unwrap_or("issue")
                .to_owned()
        } else {
            detail.str("eventTypeCategory")?.to_owned()
        },
        status: detail.opt_str("statusCode")?.unwrap_or("open").to_owned(),
        region: detail
            .opt_str("eventRegion")?
            .or(event.opt_str("region")?)
            .map(str::to_owned),
        affected_account: detail
            .opt_str("affectedAccount")?
            .or(event.opt_str("account")?)
            .map(str::to_owned),
        start: detail.opt_time("startTime")?,
        end: detail.opt_time("endTime")?,
        last_updated: detail.opt_time("lastUpdatedTime")?,
        description,
        entities,
        actionability: detail
            .opt_str("actionability")?
            .map(|a| clip(a.trim(), 64))
            .filter(|a| !a.is_empty()),
        personas,
        page: page(&detail)?,
        abuse,
    };
    let fallback = event.opt_time("time")?.unwrap_or(received_at);
    Ok(health.into_signal(event.value().clone(), fallback))
}

/// A number AWS may send as a string (`"page": "2"`) or as a number.
fn page_number(detail: &Fields<'_>, key: &str) -> Result<Option<u32>, FieldError> {
    let bad = || FieldError::new(format!("detail.{key}"), "must be a page number from 1");
    let n = match detail.value().get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<u32>().map_err(|_| bad())?,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(bad)?,
        Some(_) => return Err(bad()),
    };
    if n == 0 {
        return Err(bad());
    }
    Ok(Some(n))
}

/// `detail.page` / `detail.totalPages` with the `communicationId` they share.
fn page(detail: &Fields<'_>) -> Result<Option<Page>, FieldError> {
    let (number, total) = match (
        page_number(detail, "page")?,
        page_number(detail, "totalPages")?,
    ) {
        (None, None) => return Ok(None),
        (Some(n), Some(t)) if n <= t => (n, t),
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                "detail.page",
                "must not be above detail.totalPages",
            ))
        }
        (Some(_), None) => {
            return Err(FieldError::new(
                "detail.totalPages",
                "is required with detail.page",
            ))
        }
        (None, Some(_)) => {
            return Err(FieldError::new(
                "detail.page",
                "is required with detail.totalPages",
            ))
        }
    };
    // Each page's communicationId is the communication's, suffixed with `-` and the page.
    let suffix = format!("-{number}");
    let communication = match detail.opt_str("communicationId")? {
        Some(id) => id.strip_suffix(&suffix).unwrap_or(id).to_owned(),
        // Without one, the pages of one update share its time.
        None => detail
            .opt_str("lastUpdatedTime")?
            .unwrap_or_default()
            .to_owned(),
    };
    Ok(Some(Page {
        communication: clip(&communication, 200),
        number,
        total,
    }))
}

/// AWS Health: events through EventBridge (the Health API poller brings the same signals).
pub struct AwsHealth;

impl super::source::Source for AwsHealth {
    fn name(&self) -> &'static str {
        HEALTH
    }

    fn detail_types(&self) -> Option<&'static [&'static str]> {
        Some(&[])
    }

    fn read_event(
        &self,
        event: &Value,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Signal>, FieldError> {
        super::source::one_signal(event, received_at, from_eventbridge)
    }

    /// Scheduled changes and account notifications are planned work.
    fn kind_for(&self, s: &Signal) -> crate::ticket::Kind {
        match s.kind.as_str() {
            "scheduledChange" | "accountNotification" => crate::ticket::Kind::Task,
            _ => crate::ticket::Kind::Incident,
        }
    }

    /// An abuse report is a security matter.
    fn ticket_tags(&self, s: &Signal) -> &'static [&'static str] {
        if s.kind == ABUSE {
            &["security"]
        } else {
            &[]
        }
    }

    /// A maintenance window expects the workload's own alarms, never an abuse report against
    /// the account.
    fn expected_in_maintenance(&self, s: &Signal) -> bool {
        s.kind != ABUSE
    }

    /// Scheduled changes announce AWS's maintenance.
    fn keeps_windows(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::signal::Pages;
    use serde_json::json;

    /// The signal of one event.
    fn from_event(v: &Value, at: DateTime<Utc>) -> Result<Signal, FieldError> {
        crate::signal::eventbridge::from_event(v, at).map(|mut signals| signals.remove(0))
    }

    const MANAGEMENT: &str = "123456789012";
    const MEMBER: &str = "210987654321";
    const ARN: &str = "arn:aws:health:us-east-1::event/EC2/AWS_EC2_INSTANCE_STORE_DRIVE_PERFORMANCE_DEGRADED/AWS_EC2_INSTANCE_STORE_DRIVE_PERFORMANCE_DEGRADED_1a2b3c";

    fn now() -> DateTime<Utc> {
        "2026-12-01T12:00:00Z".parse().unwrap()
    }

    /// One page of an event as the AWS Health EventBridge schema reference shows it.
    fn page(page: Value, total: Value, entities: &[&str]) -> Value {
        let n = page
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| page.to_string());
        json!({
            "version": "0",
            "id": format!("7bf73129-1428-4cd3-a780-95db273d160{n}"),
            "detail-type": "AWS Health Event",
            "source": "aws.health",
            "account": MANAGEMENT,
            "time": "2026-12-01T06:27:57Z",
            "region": "us-east-1",
            "resources": entities,
            "detail": {
                "eventArn": ARN,
                "service": "EC2",
                "eventTypeCode": "AWS_EC2_INSTANCE_STORE_DRIVE_PERFORMANCE_DEGRADED",
                "eventTypeCategory": "issue",
                "eventScopeCode": "ACCOUNT_SPECIFIC",
                "communicationId": format!("01b0993207d81a09dcd552ebd1e633e36cf1f09a-{n}"),
                "startTime": "Tue, 1 Dec 2026 06:27:57 GMT",
                "lastUpdatedTime": "Tue, 1 Dec 2026 06:27:57 GMT",
                "statusCode": "open",
                "eventRegion": "us-east-1",
                "eventDescription": [{
                    "language": "en_US",
                    "latestDescription": "The instance store drives of your instances have degraded performance."
                }],
                "eventMetadata": {},
                "affectedEntities": entities.iter().map(|e| json!({"entityValue": e, "tags": {}})).collect::<Vec<_>>(),
                "affectedAccount": MEMBER,
                "actionability": "ACTION_REQUIRED",
                "personas": ["OPERATIONS"],
                "page": page,
                "totalPages": total
            }
        })
    }

    #[test]
    fn pages_are_read_as_strings_or_numbers_and_keep_their_own_receipts() {
        let one = from_event(&page(json!("1"), json!("2"), &["i-1"]), now()).unwrap();
        let two = from_event(&page(json!(2), json!(2), &["i-2"]), now()).unwrap();
        let p1 = one.page.clone().unwrap();
        assert_eq!((p1.number, p1.total), (1, 2));
        assert_eq!(p1.communication, "01b0993207d81a09dcd552ebd1e633e36cf1f09a");
        assert_eq!(two.page.as_ref().unwrap().communication, p1.communication);
        assert_eq!(one.dedup_key, two.dedup_key);
        assert_ne!(
            one.receipt_key, two.receipt_key,
            "page 2 is not a repeat of page 1"
        );
        // A repeat of a page is the same news.
        let again = from_event(&page(json!("2"), json!("2"), &["i-2"]), now()).unwrap();
        assert_eq!(again.receipt_key, two.receipt_key);

        // Page 1 keeps the key an unsplit event has: the poller's reading is a repeat of it.
        let mut whole = page(json!("1"), json!("2"), &["i-1"]);
        let detail = whole["detail"].as_object_mut().unwrap();
        detail.remove("page");
        detail.remove("totalPages");
        let whole = from_event(&whole, now()).unwrap();
        assert_eq!(whole.receipt_key, one.receipt_key);
        assert_eq!(whole.page, None);
    }

    #[test]
    fn pages_merge_their_entities_in_any_order() {
        let one = from_event(&page(json!("1"), json!("2"), &["i-1", "i-2"]), now()).unwrap();
        let two = from_event(&page(json!("2"), json!("2"), &["i-3"]), now()).unwrap();
        for (first, second) in [(&one, &two), (&two, &one)] {
            let (after_first, continues) = Pages::after(None, first).unwrap();
            assert!(!continues);
            assert!(!after_first.complete());
            let (after_both, continues) = Pages::after(Some(&after_first), second).unwrap();
            assert!(continues, "the second page continues the first");
            assert!(after_both.complete());
            assert_eq!(after_both.received, vec![1, 2]);
            let mut merged = after_both.merged(second).resources;
            merged.sort();
            assert_eq!(merged, ["i-1", "i-2", "i-3"]);
        }
        // A single-page event is not merged with anything.
        let single = from_event(&page(json!("1"), json!("1"), &["i-1"]), now()).unwrap();
        assert!(Pages::after(None, &single).is_none());
        // A page of a later communication starts afresh.
        let (p, _) = Pages::after(None, &one).unwrap();
        let mut later = two.clone();
        later.page.as_mut().unwrap().communication = "another".into();
        let (fresh, continues) = Pages::after(Some(&p), &later).unwrap();
        assert!(!continues);
        assert_eq!(fresh.received, vec![2]);
    }

    #[test]
    fn bad_page_numbers_are_named() {
        for (p, t, field) in [
            (json!("x"), json!("2"), "detail.page"),
            (json!(0), json!(2), "detail.page"),
            (json!("3"), json!("2"), "detail.page"),
            (json!("1"), json!(null), "detail.totalPages"),
            (json!("1"), json!(-2), "detail.totalPages"),
        ] {
            let err = from_event(&page(p.clone(), t.clone(), &[]), now()).unwrap_err();
            assert_eq!(err.field, field, "{p} of {t}");
        }
    }

    #[test]
    fn actionability_personas_and_the_affected_account_are_read() {
        let s = from_event(&page(json!("1"), json!("1"), &["i-1"]), now()).unwrap();
        assert_eq!(s.actionability.as_deref(), Some("ACTION_REQUIRED"));
        assert_eq!(s.personas, ["OPERATIONS"]);
        // Received in the management account, about a member account: the member's.
        assert_eq!(s.account.as_deref(), Some(MEMBER));
        assert_eq!(s.dedup_key, format!("{ARN}|{MEMBER}"));
        assert_eq!(s.region.as_deref(), Some("us-east-1"));

        // A persona in a shape opsdesk does not read is passed over; the event is kept.
        let mut odd = page(json!("1"), json!("1"), &[]);
        odd["detail"]["personas"] = json!(["SECURITY", 7, ""]);
        assert_eq!(from_event(&odd, now()).unwrap().personas, ["SECURITY"]);
    }

    /// An abuse report as AWS Health sends it (no status or update time).
    fn abuse() -> Value {
        json!({
            "version": "0",
            "id": "121345678-1234-1234-1234-123456789012",
            "detail-type": "AWS Health Abuse Event",
            "source": "aws.health",
            "account": MEMBER,
            "time": "2026-11-27T01:30:00Z",
            "region": "global",
            "resources": [
                "arn:aws:ec2:us-east-1:210987654321:instance/i-1234",
                "arn:aws:ec2:us-east-1:210987654321:instance/i-4567"
            ],
            "detail": {
                "eventArn": "arn:aws:health:global::event/AWS_ABUSE_DOS_REPORT_3223324344_3243_234_34_34",
                "service": "ABUSE",
                "eventTypeCode": "AWS_ABUSE_DOS_REPORT",
                "eventTypeCategory": "issue",
                "startTime": "Fri, 27 Nov 2026 01:30:00 GMT",
                "eventDescription": [{
                    "language": "en_US",
                    "latestDescription": "Denial of Service (DOS) attack has been reported to have been caused by AWS resources in your account."
                }],
                "affectedEntities": [
                    {"entityValue": "arn:aws:ec2:us-east-1:210987654321:instance/i-1234"},
                    {"entityValue": "arn:aws:ec2:us-east-1:210987654321:instance/i-4567"}
                ]
            }
        })
    }

    #[test]
    fn abuse_reports_are_security_news_with_their_details() {
        let s = from_event(&abuse(), now()).unwrap();
        assert!(s.classified);
        assert_eq!(s.kind, ABUSE);
        assert_eq!(s.category.as_deref(), Some("AWS_ABUSE_DOS_REPORT"));
        assert_eq!(s.personas, ["SECURITY"]);
        assert_eq!(s.title, "AWS Health abuse report: dos report");
        assert!(s.body.starts_with("Denial of Service (DOS) attack"));
        assert!(s
            .body
            .contains("- arn:aws:ec2:us-east-1:210987654321:instance/i-4567"));
        assert!(s.body.contains("suspend"));
        assert_eq!(s.account.as_deref(), Some(MEMBER));
        assert_eq!(s.state, SignalState::Firing);
        assert_eq!(s.resources.len(), 2);
    }

    #[test]
    fn an_abuse_report_is_never_expected_and_is_tagged_security() {
        use crate::signal::source::Source;
        let abuse = from_event(&abuse(), now()).unwrap();
        assert!(!AwsHealth.expected_in_maintenance(&abuse));
        assert_eq!(AwsHealth.ticket_tags(&abuse), ["security"]);
        let issue = from_event(&page(json!("1"), json!("1"), &["i-1"]), now()).unwrap();
        assert!(AwsHealth.expected_in_maintenance(&issue));
        assert!(AwsHealth.ticket_tags(&issue).is_empty());
        assert!(AwsHealth.keeps_windows());
    }

    #[test]
    fn type_codes_read_as_words() {
        assert_eq!(readable("AWS_EC2_OPERATIONAL_ISSUE"), "operational issue");
        assert_eq!(readable("issue"), "issue");
    }
}
