//! Configuration at a glance for admins (people, teams, tokens, workloads, AWS accounts and the
//! support plan advice, channels with "send test", routing rules, KPIs) and the audit trail
//! viewer with the chain's verification for admins and auditors.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Duration;
use opsdesk_core::audit::VerifyError;
use serde::Deserialize;

use super::{iso, query_value, render, seg, when, PageError, Shell, Visit};
use crate::AppState;

/// One cell of a table: text, and where it leads when it is a link.
pub struct Cell {
    pub text: String,
    pub href: Option<String>,
    /// A button posting to this address, labelled with the text.
    pub post: Option<String>,
    /// A chart drawn by opsdesk (escaped SVG markup), shown instead of the text.
    pub chart: Option<String>,
}

fn cell(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        href: None,
        post: None,
        chart: None,
    }
}

fn link(text: impl Into<String>, href: String) -> Cell {
    Cell {
        text: text.into(),
        href: Some(href),
        post: None,
        chart: None,
    }
}

/// A button that posts to `action`.
fn button(text: &str, action: String) -> Cell {
    Cell {
        text: text.to_owned(),
        href: None,
        post: Some(action),
        chart: None,
    }
}

fn list(items: &[String]) -> Cell {
    cell(if items.is_empty() {
        "any".to_owned()
    } else {
        items.join(", ")
    })
}

/// A section of the admin page: a titled table.
pub struct Table {
    pub id: &'static str,
    pub title: &'static str,
    pub note: String,
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    shell: Shell,
    tables: Vec<Table>,
    /// Each letter's template, to rewrite.
    letters: Vec<LetterForm>,
    notice: Option<String>,
    error: Option<String>,
    /// Roles a person may have, and roles a token may have (`ingest` too).
    people_roles: Vec<&'static str>,
    token_roles: Vec<&'static str>,
    environments: Vec<&'static str>,
    team_names: Vec<String>,
    channel_names: Vec<String>,
    /// Every channel type, with its form's fields.
    channel_types: Vec<ChannelTypeForm>,
    events: Vec<&'static str>,
    severities: Vec<&'static str>,
    /// Each plan's name and label.
    plans: Vec<(&'static str, &'static str)>,
}

/// One letter's form on the admin page.
struct LetterForm {
    kind: &'static str,
    subject: String,
    body: String,
}

/// One channel type's form on the admin page.
struct ChannelTypeForm {
    name: &'static str,
    label: &'static str,
    fields: Vec<ChannelField>,
}

struct ChannelField {
    key: &'static str,
    label: &'static str,
    hint: &'static str,
    placeholder: &'static str,
    /// `text`, `secret`, `choice` or `list`.
    control: &'static str,
    required: bool,
    choices: &'static [(&'static str, &'static str)],
}

fn channel_type_forms() -> Vec<ChannelTypeForm> {
    use opsdesk_domain::channel::spec::Input;
    opsdesk_domain::channel::TYPES
        .iter()
        .map(|t| ChannelTypeForm {
            name: t.name(),
            label: t.label(),
            fields: t
                .fields()
                .iter()
                .map(|f| {
                    let (control, required, choices) = match f.input {
                        Input::Text { required } => ("text", required, &[][..]),
                        Input::Secret => ("secret", false, &[][..]),
                        Input::Choice(choices) => ("choice", false, choices),
                        Input::List => ("list", false, &[][..]),
                    };
                    ChannelField {
                        key: f.key,
                        label: f.label,
                        hint: f.hint,
                        placeholder: f.placeholder,
                        control,
                        required,
                        choices,
                    }
                })
                .collect(),
        })
        .collect()
}

pub(super) async fn admin_page(
    state: &AppState,
    visit: Visit,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let desk = &state.desk;
    let actor = &visit.actor;
    let users = desk.users(actor).await?;
    let teams = desk.teams(actor).await?;
    let tokens = desk.list_tokens(actor).await?;
    let workloads = desk.workloads(actor).await?;
    let accounts = desk.aws_accounts(actor).await?;
    let advice = desk.support_plan_advice(actor).await?;
    let channels = desk.channels(actor).await?;
    let rules = desk.routing_rules(actor).await?;
    let kpis = desk.kpi_catalog().await?;
    // Each KPI's last 30 days, one point a day.
    let to = desk.now();
    let from = to - Duration::days(30);
    let mut charts = Vec::with_capacity(kpis.len());
    for k in &kpis {
        let series = desk
            .kpi_series_of(actor, &k.info, "", from, to, Duration::days(1))
            .await?;
        let values: Vec<Option<f64>> = series.points.iter().map(|p| p.value).collect();
        let chart = super::charts::spark(format!("{}, last 30 days", k.info.title), &values);
        charts.push(chart.render().unwrap_or_default());
    }
    let sla = desk.sla_settings();
    let escalation = desk.escalation_settings();
    let letters = desk.mail_templates(actor).await?;

    let tables = vec![
        Table {
            id: "users",
            title: "People",
            note: format!("{} people", users.len()),
            headers: vec!["Email", "Name", "Role", "Teams", "Active", "Password", ""],
            rows: users
                .iter()
                .map(|u| {
                    vec![
                        cell(&u.email),
                        cell(&u.display_name),
                        cell(u.role.as_str()),
                        cell(if u.teams.is_empty() {
                            "—".to_owned()
                        } else {
                            u.teams.join(", ")
                        }),
                        cell(if u.active { "yes" } else { "no" }),
                        cell(if u.has_password { "set" } else { "SSO only" }),
                        button(
                            if u.active { "Disable" } else { "Enable" },
                            format!(
                                "/admin/users/{}/{}",
                                seg(&u.email),
                                if u.active { "disable" } else { "enable" }
                            ),
                        ),
                    ]
                })
                .collect(),
        },
        Table {
            id: "teams",
            title: "Teams",
            note: String::new(),
            headers: vec!["Team", "Lead", "Members"],
            rows: teams
                .iter()
                .map(|t| {
                    vec![
                        link(&t.name, format!("/tickets?team={}", query_value(&t.name))),
                        cell(t.lead.clone().unwrap_or_else(|| "—".into())),
                        cell(t.members.join(", ")),
                    ]
                })
                .collect(),
        },
        Table {
            id: "tokens",
            title: "API tokens",
            note: "Secrets are shown once, when a token is made (opsdesk token create or POST /api/v1/tokens).".into(),
            headers: vec!["Name", "Role", "Made by", "Made", "Revoked", ""],
            rows: tokens
                .iter()
                .map(|t| {
                    vec![
                        cell(&t.name),
                        cell(t.role.as_str()),
                        cell(&t.created_by),
                        cell(when(&t.created_at)),
                        cell(t.revoked_at.as_ref().map(when).unwrap_or_else(|| "—".into())),
                        match t.revoked_at {
                            None => button("Revoke", format!("/admin/tokens/{}/revoke", seg(&t.name))),
                            Some(_) => cell(""),
                        },
                    ]
                })
                .collect(),
        },
        Table {
            id: "workloads",
            title: "Workloads",
            note: String::new(),
            headers: vec!["Workload", "Environment", "Team", "AWS accounts", "Regions", "Resources", ""],
            rows: workloads
                .iter()
                .map(|w| {
                    vec![
                        link(&w.name, format!("/tickets?workload={}", query_value(&w.name))),
                        cell(w.environment.as_str()),
                        cell(w.team.clone().unwrap_or_else(|| "—".into())),
                        list(&w.accounts),
                        list(&w.regions),
                        list(&w.resources),
                        button("Delete", format!("/admin/workloads/{}/delete", seg(&w.name))),
                    ]
                })
                .collect(),
        },
        Table {
            id: "aws-accounts",
            title: "AWS accounts and support plans",
            note: String::new(),
            headers: vec!["Account", "Name", "Plan", "Notice", "Advice", "Why", ""],
            rows: accounts
                .iter()
                .map(|a| {
                    let advice = advice.iter().find(|x| x.account_id == a.id);
                    vec![
                        cell(&a.id),
                        cell(&a.name),
                        cell(if a.govcloud {
                            format!("{} (GovCloud)", a.support_plan.label())
                        } else {
                            a.support_plan.label().to_owned()
                        }),
                        cell(
                            advice
                                .map(|x| {
                                    [x.notice.as_deref(), x.aws_mismatch.as_deref()]
                                        .into_iter()
                                        .flatten()
                                        .collect::<Vec<_>>()
                                        .join(" ")
                                })
                                .filter(|n| !n.is_empty())
                                .unwrap_or_else(|| "—".into()),
                        ),
                        cell(
                            advice
                                .map(|x| format!("{:?} to {}", x.change, x.recommended.as_str()))
                                .unwrap_or_else(|| "—".into()),
                        ),
                        // The notice and AWS's answer have their own column.
                        cell(
                            advice
                                .map(|x| {
                                    x.reasons
                                        .iter()
                                        .filter(|r| {
                                            Some(r.as_str()) != x.notice.as_deref()
                                                && Some(r.as_str()) != x.aws_mismatch.as_deref()
                                        })
                                        .cloned()
                                        .collect::<Vec<_>>()
                                        .join(" ")
                                })
                                .unwrap_or_default(),
                        ),
                        if a.origin == "config" {
                            cell("in the configuration file")
                        } else {
                            button("Delete", format!("/admin/aws-accounts/{}/delete", seg(&a.id)))
                        },
                    ]
                })
                .collect(),
        },
        Table {
            id: "channels",
            title: "Channels",
            note: String::new(),
            headers: vec!["Channel", "Kind", "", ""],
            rows: channels
                .iter()
                .map(|c| {
                    let kind = c.channel_type().label();
                    let test = button("Send test", format!("/admin/channels/{}/test", seg(&c.name)));
                    let delete = button("Delete", format!("/admin/channels/{}/delete", seg(&c.name)));
                    vec![cell(&c.name), cell(kind), test, delete]
                })
                .collect(),
        },
        Table {
            id: "routing-rules",
            title: "Routing rules",
            note: "Tried in order; a rule marked stop ends the search.".into(),
            headers: vec!["Rule", "Events", "Severities", "Sources", "Workloads", "Channels", "Stop", ""],
            rows: rules
                .iter()
                .map(|r| {
                    let events: Vec<String> = r.events.iter().map(|e| e.to_string()).collect();
                    let severities: Vec<String> =
                        r.severities.iter().map(|s| s.to_string()).collect();
                    vec![
                        cell(&r.name),
                        if events.is_empty() {
                            cell("any but acknowledged, reopened")
                        } else {
                            list(&events)
                        },
                        list(&severities),
                        list(&r.sources),
                        list(&r.workloads),
                        cell(r.channels.join(", ")),
                        cell(if r.stop { "yes" } else { "no" }),
                        button("Delete", format!("/admin/routing-rules/{}/delete", seg(&r.name))),
                    ]
                })
                .collect(),
        },
        Table {
            id: "sla-policies",
            title: "SLA policies",
            note: "The most specific configured policy that matches a ticket sets its targets, counted in business hours of its calendar; the built-in default-* policies apply when none matches.".into(),
            headers: vec!["Policy", "Severity", "Kind", "Workload", "First response", "Resolution", "Calendar"],
            rows: sla
                .policies
                .iter()
                .chain(opsdesk_domain::sla::default_policies().iter())
                .map(|p| {
                    vec![
                        cell(&p.name),
                        cell(p.severity.as_str()),
                        cell(p.kind.map(|k| k.as_str().to_owned()).unwrap_or_else(|| "any".into())),
                        cell(p.workload.clone().unwrap_or_else(|| "any".into())),
                        cell(super::span(f64::from(p.first_response_minutes) * 60.0)),
                        cell(super::span(f64::from(p.resolution_minutes) * 60.0)),
                        cell(p.calendar.clone().unwrap_or_else(|| "always".into())),
                    ]
                })
                .collect(),
        },
        Table {
            id: "calendars",
            title: "Business-hours calendars",
            note: String::new(),
            headers: vec!["Calendar", "Time zone", "Holidays"],
            rows: sla
                .calendars
                .iter()
                .map(|c| {
                    let spec = c.spec();
                    vec![
                        cell(spec.name),
                        cell(spec.time_zone),
                        cell(if spec.holidays.is_empty() {
                            "none".to_owned()
                        } else {
                            spec.holidays.join(", ")
                        }),
                    ]
                })
                .collect(),
        },
        Table {
            id: "escalation-policies",
            title: "Escalation policies",
            note: "An unacknowledged ticket climbs the tiers of the first policy that matches it.".into(),
            headers: vec!["Policy", "Severities", "Workloads", "Tiers"],
            rows: escalation
                .policies
                .iter()
                .map(|p| {
                    let severities: Vec<String> =
                        p.severities.iter().map(|s| s.to_string()).collect();
                    let tiers: Vec<String> = p
                        .tiers
                        .iter()
                        .map(|t| match (t.aws, &t.team, t.ack_timeout_minutes) {
                            (true, _, _) => format!("{} (AWS Support)", t.name),
                            (false, Some(team), Some(m)) => format!("{} ({team}, {m} min)", t.name),
                            (false, Some(team), None) => format!("{} ({team})", t.name),
                            (false, None, Some(m)) => format!("{} ({m} min)", t.name),
                            (false, None, None) => t.name.clone(),
                        })
                        .collect();
                    vec![
                        cell(&p.name),
                        list(&severities),
                        list(&p.workloads),
                        cell(tiers.join(" → ")),
                    ]
                })
                .collect(),
        },
        Table {
            id: "reports",
            title: "Scheduled trend reports",
            note: "opsdesk report and GET /api/v1/reports/trends make one for any period.".into(),
            headers: vec!["Report", "Every", "Channel"],
            rows: desk
                .report_schedules()
                .iter()
                .map(|r| vec![cell(&r.name), cell(r.every.as_str()), cell(&r.channel)])
                .collect(),
        },
        Table {
            id: "kpis",
            title: "KPIs",
            note: String::new(),
            headers: vec!["KPI", "Title", "Unit", "Window", "Target", "Warning", "Breach", "Last 30 days", ""],
            rows: kpis
                .iter()
                .zip(charts)
                .map(|(k, chart)| {
                    let th = |f: fn(&opsdesk_domain::kpi::Thresholds) -> f64| {
                        k.info
                            .thresholds
                            .as_ref()
                            .map(|t| super::charts::number(f(t)))
                            .unwrap_or_else(|| "—".into())
                    };
                    vec![
                        link(&k.info.name, format!("/api/v1/kpis/{}", seg(&k.info.name))),
                        cell(&k.info.title),
                        cell(k.info.unit.as_str()),
                        cell(k.info.window.to_string()),
                        cell(th(|t| t.target)),
                        cell(th(|t| t.warning)),
                        cell(th(|t| t.breach)),
                        Cell {
                            text: String::new(),
                            href: None,
                            post: None,
                            chart: Some(chart),
                        },
                        if k.info.builtin {
                            cell("built in")
                        } else {
                            button("Delete", format!("/admin/kpis/{}/delete", seg(&k.info.name)))
                        },
                    ]
                })
                .collect(),
        },
        Table {
            id: "letters",
            title: "Letters to requesters",
            note: if desk.mail_settings().letters {
                "Sent through [notify.smtp]. Placeholders: {key} {title} {name} {url} {comment} {author} {reopen_days}.".into()
            } else {
                "Letters are off: set [email] letters = true (and [notify.smtp]) to send them. Placeholders: {key} {title} {name} {url} {comment} {author} {reopen_days}.".into()
            },
            headers: vec!["Letter", "Subject", "From", ""],
            rows: letters
                .iter()
                .map(|l| {
                    vec![
                        cell(l.kind.as_str()),
                        cell(&l.subject),
                        cell(match &l.updated_by {
                            Some(by) if l.edited => format!("rewritten by {by}"),
                            _ => "the configuration".to_owned(),
                        }),
                        if l.edited {
                            button(
                                "Use the configured one",
                                format!("/admin/letters/{}/reset", l.kind),
                            )
                        } else {
                            cell("")
                        },
                    ]
                })
                .collect(),
        },
    ];
    let page = AdminPage {
        tables,
        letters: letters
            .iter()
            .map(|l| LetterForm {
                kind: l.kind.as_str(),
                subject: l.subject.clone(),
                body: l.body.clone(),
            })
            .collect(),
        notice,
        error,
        people_roles: opsdesk_domain::Role::ALL
            .iter()
            .filter(|r| r.for_people())
            .map(|r| r.as_str())
            .collect(),
        token_roles: opsdesk_domain::Role::ALL
            .iter()
            .map(|r| r.as_str())
            .collect(),
        environments: opsdesk_domain::signal::workload::Environment::ALL
            .iter()
            .map(|e| e.as_str())
            .collect(),
        team_names: teams.iter().map(|t| t.name.clone()).collect(),
        channel_names: channels.iter().map(|c| c.name.clone()).collect(),
        channel_types: channel_type_forms(),
        events: opsdesk_domain::channel::NotificationEvent::ALL
            .iter()
            .map(|e| e.as_str())
            .collect(),
        severities: opsdesk_domain::Severity::ALL
            .iter()
            .map(|s| s.as_str())
            .collect(),
        plans: opsdesk_domain::SupportPlan::ALL
            .iter()
            .map(|p| (p.as_str(), p.label()))
            .collect(),
        shell: visit.at("admin").shell,
    };
    Ok(render(status, page))
}

pub async fn index(State(state): State<AppState>, visit: Visit) -> Result<Response, PageError> {
    admin_page(&state, visit, StatusCode::OK, None, None).await
}

/// Sends a test notification through a channel and says what was queued.
pub async fn test_channel(
    State(state): State<AppState>,
    visit: Visit,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let item = state.desk.test_channel(&visit.actor, &name).await?;
    let notice = format!(
        "A test notification to {name} is queued (delivery {}); its result shows in the delivery log.",
        item.id
    );
    admin_page(&state, visit, StatusCode::OK, Some(notice), None).await
}

struct EntryView {
    seq: i64,
    iso: String,
    when: String,
    actor: String,
    action: String,
    ticket: Option<String>,
    changes: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    shell: Shell,
    entries: Vec<EntryView>,
    verified: Option<Result<String, String>>,
    older: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct AuditParams {
    /// Show the entries before this seq (newest first); the newest when absent.
    before: Option<i64>,
}

const AUDIT_PAGE: i64 = 100;

pub async fn audit(
    State(state): State<AppState>,
    visit: Visit,
    Query(p): Query<AuditParams>,
) -> Result<Response, PageError> {
    audit_page(&state, visit, p.before, false).await
}

/// Walks the whole chain (a POST: it reads every entry) and shows the newest entries with
/// the result.
pub async fn verify_audit(
    State(state): State<AppState>,
    visit: Visit,
) -> Result<Response, PageError> {
    audit_page(&state, visit, None, true).await
}

async fn audit_page(
    state: &AppState,
    visit: Visit,
    before: Option<i64>,
    verify: bool,
) -> Result<Response, PageError> {
    let desk = &state.desk;
    let before = match before {
        Some(b) => b,
        None => {
            desk.db()
                .audit_head()
                .await
                .map_err(opsdesk_core::Error::from)?
                .seq
                + 1
        }
    };
    let after = before.saturating_sub(1 + AUDIT_PAGE).max(0);
    let mut entries = desk.audit_page(&visit.actor, after, AUDIT_PAGE).await?;
    entries.retain(|e| e.seq < before);
    entries.reverse();
    let verified = if verify {
        Some(match desk.verify_audit().await {
            Ok(s) => Ok(format!(
                "The chain is intact: {} entries checked. Keep its head outside the database \
                 to check the chain against later (opsdesk audit verify --anchor {}).",
                s.entries,
                s.head_anchor()
            )),
            Err(VerifyError::Broken(e)) => Err(format!("The chain is broken: {e}")),
            Err(VerifyError::Failed(e)) => return Err(e.into()),
        })
    } else {
        None
    };
    let page = AuditPage {
        older: (after > 0).then_some(after + 1),
        entries: entries
            .iter()
            .map(|e| EntryView {
                seq: e.seq,
                iso: iso(&e.at),
                when: when(&e.at),
                actor: e.actor.clone(),
                action: e.action.clone(),
                ticket: e.ticket_id.map(opsdesk_domain::Ticket::key_for),
                changes: e
                    .changes
                    .iter()
                    .map(|(k, c)| format!("{k}: {} → {}", c.before, c.after))
                    .collect::<Vec<_>>()
                    .join("; "),
            })
            .collect(),
        verified,
        shell: visit.at("audit").shell,
    };
    Ok(render(StatusCode::OK, page))
}
