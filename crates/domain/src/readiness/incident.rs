//! Post-incident reviews in the shape of AWS's Correction of Error (COE): what happened, its
//! impact, a timeline, metrics, five whys and contributing factors, what went well, lessons,
//! and whether a readiness question would have caught the problem, which proposes a new
//! question for a lens. Pure: the timeline is built from records the caller reads.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::audit::AuditRecord;
use crate::readiness::lens::{
    Choice, LensDocument, Question, Resource, RiskRule, NONE_OF_THESE_SUFFIX,
};
use crate::readiness::{Lens, LensError, RuleRisk};
use crate::validation::FieldError;

/// The longest free text of a post-incident review (each field).
pub const TEXT_MAX: usize = 20_000;
/// The most entries a timeline, a list of whys, factors or lessons holds.
pub const LIST_MAX: usize = 300;
/// The longest timeline entry or list item.
pub const ITEM_MAX: usize = 2_000;
/// The most practices a proposed question lists (a lens question takes 15 choices, one of
/// which is "None of these").
pub const PRACTICES_MAX: usize = 14;

/// Where a timeline entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimelineSource {
    /// A change of the ticket: opened, status, severity, owner.
    Ticket,
    /// A signal from AWS or a monitor.
    Signal,
    /// A notification sent to a channel.
    Notification,
    /// An escalation to a tier or to AWS Support, or an SLA clock.
    Escalation,
    /// The AWS Support case: opened, its messages, its end.
    AwsCase,
    /// A comment or an internal note.
    Comment,
    /// Written by a person.
    Person,
}

/// One moment of the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    #[serde(default = "person")]
    pub source: TimelineSource,
    pub text: String,
    /// Who did it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

fn person() -> TimelineSource {
    TimelineSource::Person
}

/// What a proposed question asks and which practices answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposedQuestion {
    /// The pillar of the lens it goes in (its id); the lens's first pillar when left out.
    #[serde(default)]
    pub pillar: Option<String>,
    /// The question, 1 to 128 characters.
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The practices that answer it, each with the improvement plan for when it is missing.
    pub practices: Vec<Practice>,
}

/// One practice of a proposed question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Practice {
    pub title: String,
    pub improvement_plan: String,
}

/// The editable part of a post-incident review.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentReport {
    /// What happened, in a few paragraphs (Markdown).
    pub what_happened: String,
    /// Who and what was affected, for how long.
    pub impact: String,
    /// The timeline as people settled it; empty until edited, when the generated one is shown.
    pub timeline: Vec<TimelineEntry>,
    /// Figures that tell the story: error rates, latency, orders lost (Markdown).
    pub metrics: String,
    /// Why it happened, asked again of each answer (five whys).
    pub whys: Vec<String>,
    pub contributing_factors: Vec<String>,
    pub went_well: Vec<String>,
    pub lessons: Vec<String>,
    /// Would a readiness question have caught this? What it would have asked.
    pub caught_by: Option<String>,
    /// The question proposed for the lens.
    pub proposal: Option<ProposedQuestion>,
}

fn text(field: &str, s: &str, max: usize) -> Result<(), FieldError> {
    if s.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(FieldError::new(field, "must not hold control characters"));
    }
    Ok(())
}

fn list(field: &str, items: &[String]) -> Result<(), FieldError> {
    if items.len() > LIST_MAX {
        return Err(FieldError::new(
            field,
            format!("holds at most {LIST_MAX} items"),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        text(&format!("{field}[{i}]"), item, ITEM_MAX)?;
    }
    Ok(())
}

impl IncidentReport {
    /// Checks lengths and characters; the error names the field (`whys[2]`, `timeline[0].text`).
    pub fn check(&self) -> Result<(), FieldError> {
        for (field, s) in [
            ("what_happened", &self.what_happened),
            ("impact", &self.impact),
            ("metrics", &self.metrics),
        ] {
            text(field, s, TEXT_MAX)?;
        }
        if let Some(c) = &self.caught_by {
            text("caught_by", c, ITEM_MAX)?;
        }
        if self.timeline.len() > LIST_MAX {
            return Err(FieldError::new(
                "timeline",
                format!("holds at most {LIST_MAX} entries"),
            ));
        }
        for (i, e) in self.timeline.iter().enumerate() {
            if e.text.trim().is_empty() {
                return Err(FieldError::new(
                    format!("timeline[{i}].text"),
                    "must not be empty",
                ));
            }
            text(&format!("timeline[{i}].text"), &e.text, ITEM_MAX)?;
            if let Some(a) = &e.actor {
                text(&format!("timeline[{i}].actor"), a, 200)?;
            }
        }
        list("whys", &self.whys)?;
        list("contributing_factors", &self.contributing_factors)?;
        list("went_well", &self.went_well)?;
        list("lessons", &self.lessons)?;
        if let Some(p) = &self.proposal {
            p.check()?;
        }
        Ok(())
    }
}

impl ProposedQuestion {
    /// Checks what can be checked without the lens; `with_question` checks the rest.
    pub fn check(&self) -> Result<(), FieldError> {
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > 128 {
            return Err(FieldError::new(
                "proposal.title",
                "must be 1 to 128 characters",
            ));
        }
        text("proposal.title", title, 128)?;
        if let Some(d) = &self.description {
            text("proposal.description", d, 2048)?;
        }
        if self.practices.is_empty() || self.practices.len() > PRACTICES_MAX {
            return Err(FieldError::new(
                "proposal.practices",
                format!("must list 1 to {PRACTICES_MAX} practices"),
            ));
        }
        for (i, p) in self.practices.iter().enumerate() {
            for (field, s, max) in [
                ("title", &p.title, 128),
                ("improvement_plan", &p.improvement_plan, 2048),
            ] {
                let path = format!("proposal.practices[{i}].{field}");
                if s.trim().is_empty() {
                    return Err(FieldError::new(path, "must not be empty"));
                }
                text(&path, s, max)?;
            }
        }
        Ok(())
    }
}

/// Letters and digits of `s`, lower case, words joined by `_`, for an id.
fn id_part(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
        if out.len() >= max {
            break;
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// The lens with the proposed question added to its pillar, ids made from `incident_key`
/// (`ops_42_...`), a helpful resource linking the incident, and rules that give no risk when
/// every practice is in place, `MEDIUM` when some are, `HIGH` otherwise.
pub fn with_question(
    lens: &Lens,
    proposal: &ProposedQuestion,
    incident_key: &str,
    incident_url: Option<&str>,
) -> Result<Lens, LensError> {
    let mut doc: LensDocument = lens.document().clone();
    let pillar_index = match &proposal.pillar {
        Some(id) => doc.pillars.iter().position(|p| &p.id == id),
        None => Some(0),
    };
    let Some(pillar_index) = pillar_index.filter(|i| *i < doc.pillars.len()) else {
        return Err(LensError::one(
            "proposal.pillar",
            format!(
                "the lens has no pillar {:?}",
                proposal.pillar.as_deref().unwrap_or_default()
            ),
        ));
    };
    let mut base = format!(
        "{}_{}",
        id_part(incident_key, 20),
        id_part(&proposal.title, 40)
    );
    if base.len() < 3 {
        base = format!("q_{base}");
    }
    let mut qid = base.clone();
    let mut n = 2;
    while lens.question(&qid).is_some() {
        qid = format!("{base}_{n}");
        n += 1;
    }
    let mut choices: Vec<Choice> = proposal
        .practices
        .iter()
        .enumerate()
        .map(|(i, p)| Choice {
            id: format!(
                "{}_{}",
                id_part(&p.title, 50).chars().take(50).collect::<String>(),
                i + 1
            )
            .trim_start_matches('_')
            .to_owned(),
            title: p.title.trim().to_owned(),
            helpful_resource: None,
            improvement_plan: Some(Resource {
                display_text: p.improvement_plan.trim().to_owned(),
                url: None,
            }),
            additional_resources: None,
        })
        .collect();
    for c in &mut choices {
        if c.id.len() < 3 {
            c.id = format!("p_{}", c.id);
        }
    }
    let all = choices
        .iter()
        .map(|c| c.id.clone())
        .collect::<Vec<_>>()
        .join(" && ");
    let any = choices
        .iter()
        .map(|c| c.id.clone())
        .collect::<Vec<_>>()
        .join(" || ");
    let none_id = format!("{qid}{NONE_OF_THESE_SUFFIX}");
    let none_id = if none_id.len() > 64 {
        format!(
            "{}{NONE_OF_THESE_SUFFIX}",
            qid.chars().take(61).collect::<String>()
        )
    } else {
        none_id
    };
    choices.push(Choice {
        id: none_id.clone(),
        title: "None of these".into(),
        helpful_resource: None,
        improvement_plan: None,
        additional_resources: None,
    });
    let mut risk_rules = vec![RiskRule {
        condition: format!("({all}) && !{none_id}"),
        risk: RuleRisk::None,
    }];
    if proposal.practices.len() > 1 {
        risk_rules.push(RiskRule {
            condition: format!("({any}) && !{none_id}"),
            risk: RuleRisk::Medium,
        });
    }
    risk_rules.push(RiskRule {
        condition: "default".into(),
        risk: RuleRisk::High,
    });
    let question = Question {
        id: qid,
        title: proposal.title.trim().to_owned(),
        description: proposal
            .description
            .as_ref()
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty()),
        helpful_resource: Some(Resource {
            display_text: format!("Added after incident {incident_key}"),
            url: incident_url.map(str::to_owned),
        }),
        choices,
        risk_rules,
    };
    doc.pillars[pillar_index].questions.push(question);
    Lens::from_document(doc)
}

/// A JSON value as a short phrase: strings bare, nothing as "none".
fn phrase(v: &Value) -> String {
    let s = match v {
        Value::Null => "none".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    clip(&s, 160)
}

fn clip(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut t: String = one_line.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// The audit actions that only echo a signal, told by the signal itself.
const SIGNAL_ECHOES: &[&str] = &["ticket.signal", "ticket.occurrence", "ticket.merged"];

/// One audit entry of the incident's ticket as a timeline entry; `None` for the entries the
/// signals themselves tell and for the review's own.
pub fn from_audit(r: &AuditRecord) -> Option<TimelineEntry> {
    // The review's own work (its report, completion, proposal) is not part of the incident.
    if SIGNAL_ECHOES.contains(&r.action.as_str()) || r.action.starts_with("review.") {
        return None;
    }
    let action = r.action.strip_prefix("ticket.").unwrap_or(&r.action);
    let source = if action.starts_with("aws_case") {
        TimelineSource::AwsCase
    } else if action.starts_with("escalat") || action.starts_with("sla_") {
        TimelineSource::Escalation
    } else if action == "commented" {
        TimelineSource::Comment
    } else {
        TimelineSource::Ticket
    };
    let body = r
        .changes
        .get("comment")
        .and_then(|c| c.after.get("body"))
        .and_then(Value::as_str);
    let text = match body {
        Some(body) => {
            let public = r
                .changes
                .get("comment")
                .and_then(|c| c.after.get("public"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let what = if source == TimelineSource::AwsCase {
                action.replace('_', " ")
            } else if public {
                "reply".to_owned()
            } else {
                "internal note".to_owned()
            };
            format!("{what}: {}", clip(body, 400))
        }
        None => {
            let changes: Vec<String> = r
                .changes
                .iter()
                .map(|(field, c)| {
                    if c.before.is_null() {
                        format!("{field} {}", phrase(&c.after))
                    } else {
                        format!("{field} {} → {}", phrase(&c.before), phrase(&c.after))
                    }
                })
                .collect();
            let what = action.replace(['_', '.'], " ");
            if changes.is_empty() {
                what
            } else {
                format!("{what}: {}", clip(&changes.join("; "), 600))
            }
        }
    };
    Some(TimelineEntry {
        at: r.at,
        source,
        text,
        actor: Some(r.actor.clone()),
    })
}

/// The timeline in time order, with runs of more than three alike entries (a flapping alarm's
/// repeats, say) told as the first, the last and how many between, and at most
/// [`LIST_MAX`] entries (the earliest and the latest kept, a line saying how many are left out).
pub fn timeline(mut entries: Vec<TimelineEntry>) -> Vec<TimelineEntry> {
    entries.sort_by(|a, b| a.at.cmp(&b.at).then(a.source.cmp(&b.source)));
    let mut out: Vec<TimelineEntry> = Vec::with_capacity(entries.len());
    let mut i = 0;
    while i < entries.len() {
        let key = (entries[i].source, entries[i].text.clone());
        let mut j = i + 1;
        while j < entries.len() && (entries[j].source, &entries[j].text) == (key.0, &key.1) {
            j += 1;
        }
        let run = j - i;
        if run > 3 {
            out.push(entries[i].clone());
            let last = &entries[j - 1];
            out.push(TimelineEntry {
                at: last.at,
                source: last.source,
                text: format!(
                    "{} more times until here: {}",
                    run - 1,
                    clip(&last.text, 300)
                ),
                actor: last.actor.clone(),
            });
        } else {
            out.extend(entries[i..j].iter().cloned());
        }
        i = j;
    }
    if out.len() > LIST_MAX {
        let head = LIST_MAX / 2;
        let tail = LIST_MAX - head - 1;
        let left_out = out.len() - head - tail;
        let at = out[head].at;
        let mut kept: Vec<TimelineEntry> = out.drain(..head).collect();
        kept.push(TimelineEntry {
            at,
            source: TimelineSource::Ticket,
            text: format!("{left_out} more entries left out; the ticket's history has them all"),
            actor: None,
        });
        let rest = out.len() - tail;
        kept.extend(out.drain(rest..));
        out = kept;
    }
    out
}

/// Counts entries by source, for a summary line.
pub fn sources(entries: &[TimelineEntry]) -> BTreeMap<TimelineSource, usize> {
    let mut out = BTreeMap::new();
    for e in entries {
        *out.entry(e.source).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Changes, FieldChange};
    use crate::readiness::{assess, builtin, Answer};
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn record(action: &str, changes: Changes, t: &str) -> AuditRecord {
        AuditRecord {
            seq: 1,
            at: at(t),
            actor: "user:ana@example.com".into(),
            action: action.into(),
            ticket_id: Some(42),
            changes,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn change(field: &str, before: Value, after: Value) -> Changes {
        let mut c = Changes::new();
        c.insert(field.into(), FieldChange { before, after });
        c
    }

    #[test]
    fn audit_entries_read_as_moments_of_the_incident() {
        let status = record(
            "ticket.updated",
            change("status", json!("new"), json!("acknowledged")),
            "2026-12-01T10:05:00Z",
        );
        let e = from_audit(&status).unwrap();
        assert_eq!(e.source, TimelineSource::Ticket);
        assert_eq!(e.text, "updated: status new → acknowledged");
        let aws = record(
            "ticket.aws_case_message",
            change(
                "comment",
                Value::Null,
                json!({"id": 3, "public": false, "body": "AWS Support case message from AWS:\n\nWe are looking."}),
            ),
            "2026-12-01T10:20:00Z",
        );
        let e = from_audit(&aws).unwrap();
        assert_eq!(e.source, TimelineSource::AwsCase);
        assert!(
            e.text
                .starts_with("aws case message: AWS Support case message"),
            "{}",
            e.text
        );
        let echo = record("ticket.occurrence", Changes::new(), "2026-12-01T10:06:00Z");
        assert!(from_audit(&echo).is_none());
        // Writing the review is not part of the incident.
        let report = record(
            "review.incident_report",
            change("what_happened", Value::Null, json!("The pool ran dry")),
            "2026-12-02T09:00:00Z",
        );
        assert!(from_audit(&report).is_none());
        let escalated = record(
            "ticket.escalated",
            change("tier", Value::Null, json!(2)),
            "2026-12-01T10:30:00Z",
        );
        assert_eq!(
            from_audit(&escalated).unwrap().source,
            TimelineSource::Escalation
        );
    }

    #[test]
    fn repeats_are_told_once_and_the_timeline_stays_bounded() {
        let mut entries = Vec::new();
        for i in 0..10 {
            entries.push(TimelineEntry {
                at: at("2026-12-01T10:00:00Z") + chrono::Duration::seconds(i),
                source: TimelineSource::Signal,
                text: "aws.cloudwatch firing: 5xx".into(),
                actor: None,
            });
        }
        entries.push(TimelineEntry {
            at: at("2026-12-01T09:59:00Z"),
            source: TimelineSource::Ticket,
            text: "created".into(),
            actor: None,
        });
        let t = timeline(entries);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].text, "created");
        assert_eq!(
            t[2].text,
            "9 more times until here: aws.cloudwatch firing: 5xx"
        );
        assert_eq!(t[2].at, at("2026-12-01T10:00:09Z"));

        let many: Vec<TimelineEntry> = (0..1000)
            .map(|i| TimelineEntry {
                at: at("2026-12-01T10:00:00Z") + chrono::Duration::seconds(i),
                source: TimelineSource::Comment,
                text: format!("note {i}"),
                actor: None,
            })
            .collect();
        let t = timeline(many);
        assert_eq!(t.len(), LIST_MAX);
        assert_eq!(t[0].text, "note 0");
        assert_eq!(t[LIST_MAX - 1].text, "note 999");
        assert!(
            t[LIST_MAX / 2]
                .text
                .starts_with("701 more entries left out"),
            "{}",
            t[LIST_MAX / 2].text
        );
    }

    #[test]
    fn a_proposed_question_joins_the_lens_and_scores_like_the_others() {
        let lens = builtin::opsdesk_readiness().unwrap();
        let proposal = ProposedQuestion {
            pillar: Some(lens.document().pillars[1].id.clone()),
            title: "Do you alarm on the queue's age of oldest message?".into(),
            description: None,
            practices: vec![
                Practice {
                    title: "An alarm on ApproximateAgeOfOldestMessage".into(),
                    improvement_plan: "Add the alarm and route it to opsdesk.".into(),
                },
                Practice {
                    title: "A runbook for a stuck consumer".into(),
                    improvement_plan: "Write the runbook.".into(),
                },
            ],
        };
        proposal.check().unwrap();
        let next = with_question(
            &lens,
            &proposal,
            "OPS-42",
            Some("https://desk/tickets/OPS-42"),
        )
        .unwrap();
        assert_eq!(next.questions().count(), lens.questions().count() + 1);
        assert_ne!(next.digest(), lens.digest());
        let q = next
            .questions()
            .find(|q| q.question.title == proposal.title)
            .unwrap();
        assert!(
            q.question.id.starts_with("ops_42_do_you_alarm"),
            "{}",
            q.question.id
        );
        assert_eq!(q.pillar.id, proposal.pillar.clone().unwrap());
        let ids: Vec<String> = q.question.choices.iter().map(|c| c.id.clone()).collect();
        let pick = |n: &[usize]| Answer {
            choices: n.iter().map(|i| ids[*i].clone()).collect(),
            ..Answer::default()
        };
        assert_eq!(
            assess(q, &pick(&[0, 1])).unwrap(),
            crate::readiness::Risk::None
        );
        assert_eq!(
            assess(q, &pick(&[0])).unwrap(),
            crate::readiness::Risk::Medium
        );
        assert_eq!(
            assess(q, &pick(&[2])).unwrap(),
            crate::readiness::Risk::High
        );
        // The export reads back as the same lens.
        assert_eq!(Lens::parse(&next.export()).unwrap().digest(), next.digest());
        // The same proposal again gets its own id.
        let again = with_question(&next, &proposal, "OPS-42", None).unwrap();
        assert_eq!(again.questions().count(), next.questions().count() + 1);

        let nowhere = ProposedQuestion {
            pillar: Some("no_such_pillar".into()),
            ..proposal
        };
        let e = with_question(&lens, &nowhere, "OPS-42", None).unwrap_err();
        assert!(e.names("proposal.pillar"), "{e}");
    }

    #[test]
    fn a_report_names_the_field_that_is_wrong() {
        let mut r = IncidentReport {
            whys: vec!["ok".into(), "bad\u{7}".into()],
            ..IncidentReport::default()
        };
        assert_eq!(r.check().unwrap_err().field, "whys[1]");
        r.whys.clear();
        r.timeline.push(TimelineEntry {
            at: at("2026-12-01T10:00:00Z"),
            source: TimelineSource::Person,
            text: " ".into(),
            actor: None,
        });
        assert_eq!(r.check().unwrap_err().field, "timeline[0].text");
        r.timeline.clear();
        r.proposal = Some(ProposedQuestion {
            pillar: None,
            title: "x".into(),
            description: None,
            practices: vec![],
        });
        assert_eq!(r.check().unwrap_err().field, "proposal.practices");
        assert!(r.proposal.is_some());
    }
}
