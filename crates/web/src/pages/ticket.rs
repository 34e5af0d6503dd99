//! A ticket's page and the new request form. The page is laid out from parts (its fields with
//! the forms that change them, the conversation with the timeline of its audit history, SLA
//! clocks, AWS case, links, signals, notifications), each its own template read by its own
//! loader; a form sent with htmx is answered with the parts its change touched.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use opsdesk_core::{Actor, Desk};
use opsdesk_domain::audit::AuditRecord;
use opsdesk_domain::escalation::EscalateTo;
use opsdesk_domain::intake::Intake;
use opsdesk_domain::validation::{NewComment, NewLink, NewTicket, TicketPatch};
use opsdesk_domain::{Kind, LinkKind, Permission, Severity, Status, Ticket};
use opsdesk_store::{OutboxFilter, TicketClock};
use serde::Deserialize;
use serde_json::Value;

use super::{iso, markdown, message, render, span, when, PageError, Shell, Visit};
use crate::api::tickets::ticket_id;
use crate::upload::FormWithFiles;
use crate::AppState;

/// A choice in a form's select: its value, what it says, and whether it is chosen.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub(super) fn severity_choices(chosen: Option<Severity>) -> Vec<Choice> {
    Severity::ALL
        .iter()
        .map(|s| Choice {
            value: s.as_str().to_owned(),
            label: format!("{} · {}", s.as_str(), s.meaning()),
            selected: Some(*s) == chosen,
        })
        .collect()
}

fn kind_choices(chosen: Option<Kind>) -> Vec<Choice> {
    Kind::ALL
        .iter()
        .map(|k| Choice {
            value: k.as_str().to_owned(),
            label: format!("{} · {}", k.as_str().replace('_', " "), k.meaning()),
            selected: Some(*k) == chosen,
        })
        .collect()
}

// ---- the new request form ----

#[derive(Template)]
#[template(path = "new.html")]
struct NewPage {
    shell: Shell,
    error: Option<String>,
    /// The files the desk takes, for the form's `accept` and hint.
    accept: String,
    max_size: String,
    title: String,
    description: String,
    kinds: Vec<Choice>,
    severities: Vec<Choice>,
    workloads: Vec<Choice>,
}

#[derive(Debug, Default, Deserialize)]
pub struct NewForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    workload: String,
}

async fn new_page(
    state: &AppState,
    visit: Visit,
    form: NewForm,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, PageError> {
    // Names only: all a requester may learn of the workloads.
    let workloads = state.desk.workload_names(&visit.actor).await?;
    let mut workload_choices = vec![Choice {
        value: String::new(),
        label: "none / not sure".into(),
        selected: form.workload.is_empty(),
    }];
    workload_choices.extend(workloads.into_iter().map(|name| Choice {
        selected: name == form.workload,
        label: name.clone(),
        value: name,
    }));
    Ok(render(
        status,
        NewPage {
            shell: visit.at("new").shell,
            error,
            accept: state.desk.attachment_settings().policy.types.join(","),
            max_size: opsdesk_domain::attachment::readable_size(
                state.desk.attachment_settings().policy.max_bytes as i64,
            ),
            kinds: kind_choices(Kind::parse(&form.kind).or(Some(Kind::Incident))),
            severities: severity_choices(Severity::parse(&form.severity).or(Some(Severity::Sev4))),
            workloads: workload_choices,
            title: form.title,
            description: form.description,
        },
    ))
}

pub async fn new_form(State(state): State<AppState>, visit: Visit) -> Result<Response, PageError> {
    new_page(&state, visit, NewForm::default(), StatusCode::OK, None).await
}

pub async fn create(
    State(state): State<AppState>,
    visit: Visit,
    FormWithFiles { form, files }: FormWithFiles<NewForm>,
) -> Result<Response, PageError> {
    let (kind, severity) = match (Kind::parse(&form.kind), Severity::parse(&form.severity)) {
        (Some(k), Some(s)) => (k, s),
        (kind, _) => {
            let error = match kind {
                None => format!("kind: choose one of {}", Kind::names()),
                Some(_) => format!("severity: choose one of {}", Severity::names()),
            };
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return new_page(&state, visit, form, status, Some(error)).await;
        }
    };
    // The form asks for what a requester reports; the intake fills in who asks and the source.
    let input = NewTicket {
        title: form.title.clone(),
        description: lines(&form.description),
        kind,
        severity,
        requester: None,
        assignee: None,
        team: None,
        workload: Some(form.workload.trim().to_owned()).filter(|w| !w.is_empty()),
        tags: Vec::new(),
        source: None,
        dedup_key: None,
    };
    let created = state
        .desk
        .create_ticket_with_files(&visit.actor, Intake::Form, input, files)
        .await;
    match created {
        Ok(ticket) => Ok(Redirect::to(&format!("/tickets/{}", ticket.key)).into_response()),
        Err(e) => {
            let (status, text) = message(&e.into());
            new_page(&state, visit, form, status, Some(text)).await
        }
    }
}

// ---- the ticket page: parts that htmx swaps one at a time, which the full page lays out ----

struct CommentView {
    author: String,
    iso: String,
    when: String,
    html: String,
    public: bool,
    files: Vec<FileView>,
}

/// A file on the ticket, as the page lists it.
struct FileView {
    name: String,
    url: String,
    size: String,
    sha256: String,
    short_hash: String,
    content_type: String,
    public: bool,
    source: String,
    added_by: String,
    to_case: bool,
    sent_to_case: bool,
}

fn file_view(key: &str, f: &opsdesk_domain::attachment::Attachment) -> FileView {
    FileView {
        name: f.name.clone(),
        url: format!("/api/v1/tickets/{key}/attachments/{}", f.id),
        size: opsdesk_domain::attachment::readable_size(f.size),
        sha256: f.sha256.clone(),
        short_hash: f.sha256.chars().take(12).collect(),
        content_type: f.content_type.clone(),
        public: f.public,
        source: match f.source {
            opsdesk_domain::attachment::AttachmentSource::Upload => "uploaded",
            opsdesk_domain::attachment::AttachmentSource::Email => "by email",
            opsdesk_domain::attachment::AttachmentSource::AwsCase => "from the AWS case",
        }
        .into(),
        added_by: f.added_by.clone(),
        to_case: f.to_case,
        sent_to_case: f.sent_to_case_at.is_some(),
    }
}

struct ChangeView {
    field: String,
    before: String,
    after: String,
}

struct HistoryEntry {
    iso: String,
    when: String,
    actor: String,
    what: String,
    changes: Vec<ChangeView>,
    class: &'static str,
}

struct LinkView {
    id: i64,
    kind: String,
    other: String,
}

/// The ticket's twin in another system (a connector's link).
struct ExternalView {
    connector: String,
    remote_id: String,
    url: Option<String>,
    state: String,
    last_synced: String,
    /// Why the last sync failed, or a conflict.
    detail: String,
}

struct ClockView {
    name: &'static str,
    state: String,
    due: Option<(String, String)>,
    left: String,
    warning: bool,
}

struct CaseView {
    account: String,
    state: String,
    display_id: Option<String>,
    severity: String,
    aws_status: Option<String>,
    detail: String,
}

struct SignalView {
    iso: String,
    when: String,
    source: String,
    state: String,
    title: String,
}

struct OccurrenceView {
    source: String,
    dedup_key: String,
    occurrences: i64,
    first_seen: (String, String),
    last_seen: (String, String),
    flapping: bool,
}

struct DeliveryView {
    event: String,
    channel: String,
    state: String,
    attempts: i64,
    iso: String,
    when: String,
    last_error: Option<String>,
}

/// The ticket's own fields: its title, its description with the forms that change it, and the
/// details beside them. Every change from the page moves the ticket's version, which these
/// forms send back, so every htmx answer carries this part.
struct FieldsPart {
    t: Ticket,
    created: (String, String),
    updated: (String, String),
    description_html: String,
    next_statuses: Vec<String>,
    severities: Vec<Choice>,
    kinds: Vec<Choice>,
    /// The reader, for "Assign to me".
    me: String,
    /// The post-incident reviews of this incident.
    incident_reviews: Vec<i64>,
    tier: Option<String>,
    /// Why a change sent from this part's forms was refused.
    error: Option<String>,
}

/// The replies and internal notes with the reply form, and, for staff, the timeline of the
/// ticket's audit trail.
struct ConversationPart {
    key: String,
    comments: Vec<CommentView>,
    /// Every file the viewer may see, the ticket's own and its comments'.
    files: Vec<FileView>,
    /// The files the desk takes, for the form's `accept` and hint.
    accept: String,
    max_size: String,
    timeline: Vec<HistoryEntry>,
    error: Option<String>,
    /// A refused reply as it was typed, with its visibility, to send again.
    draft: String,
    internal: bool,
}

/// The SLA clocks of the policy that covers the ticket, if one does.
struct ClocksPart {
    policy: Option<String>,
    rows: Vec<ClockView>,
}

struct CasePart {
    aws: Option<CaseView>,
}

struct LinksPart {
    key: String,
    rows: Vec<LinkView>,
    /// Staff only: links with other systems, and the connectors a ticket can be sent to.
    external: Vec<ExternalView>,
    connectors: Vec<String>,
    error: Option<String>,
    /// The ticket a refused link named, as it was typed.
    target: String,
}

struct SignalsPart {
    occurrences: Vec<OccurrenceView>,
    latest: Vec<SignalView>,
}

/// The notifications the ticket caused, newest first.
struct DeliveriesPart {
    rows: Vec<DeliveryView>,
}

/// The whole page: every part where it belongs.
#[derive(Template)]
#[template(path = "ticket.html")]
struct TicketPage {
    shell: Shell,
    /// Why a form posted without htmx was refused.
    error: Option<String>,
    /// False: the parts are laid out by the page, not swapped in.
    oob: bool,
    fields: FieldsPart,
    conversation: ConversationPart,
    clocks: ClocksPart,
    case: CasePart,
    links: LinksPart,
    signals: SignalsPart,
    deliveries: DeliveriesPart,
}

/// The answer to a form sent with htmx: the parts a change touched, read again.
#[derive(Template)]
#[template(path = "ticket_parts.html")]
struct TicketParts {
    shell: Shell,
    /// True: htmx swaps each part in for the element of the same id, wherever it is.
    oob: bool,
    fields: Option<FieldsPart>,
    conversation: Option<ConversationPart>,
    clocks: Option<ClocksPart>,
    case: Option<CasePart>,
    links: Option<LinksPart>,
    deliveries: Option<DeliveriesPart>,
}

/// A part of the ticket page that a change from the page can touch.
#[derive(Debug, Clone, Copy)]
enum Part {
    Fields,
    Conversation,
    Clocks,
    Case,
    Links,
    Deliveries,
}

/// A field change: the fields, the SLA clocks (status, severity, kind and workload move them),
/// the timeline that records it, and the notifications it may send.
const CHANGED: &[Part] = &[
    Part::Fields,
    Part::Clocks,
    Part::Conversation,
    Part::Deliveries,
];
/// A reply: the conversation, and the fields, whose forms must send the version it moved.
const COMMENTED: &[Part] = &[Part::Conversation, Part::Fields];
/// An escalation: the tier, team and assignee, the AWS case it may open, the timeline and the
/// notifications.
const ESCALATED: &[Part] = &[
    Part::Fields,
    Part::Case,
    Part::Conversation,
    Part::Deliveries,
];
/// A link added or removed: the links, the fields, the timeline.
const LINKED: &[Part] = &[Part::Links, Part::Fields, Part::Conversation];

/// The part a form lives in, which shows why a change it sent was refused, with what was typed
/// where the part keeps it.
enum Home {
    Fields,
    Conversation { draft: String, internal: bool },
    Links { target: String },
}

/// Staff read the timeline, signals, clocks and AWS case; a requester reads the portal's view.
fn staff(actor: &Actor) -> bool {
    actor.role.allows(Permission::ReadInventory)
}

/// The escalation tier as people read it: `L2 (tier 2 of standard)`.
fn tier(desk: &Desk, clock: &TicketClock) -> Option<String> {
    let policy = clock.escalation_policy.as_deref()?;
    let name = clock.tier.and_then(|n| {
        let p = desk
            .escalation_settings()
            .policies
            .iter()
            .find(|p| p.name == policy)?;
        p.tiers
            .get(usize::try_from(n).ok()?)
            .map(|t| t.name.clone())
    });
    Some(match (clock.tier, name) {
        (Some(n), Some(name)) => format!("{name} (tier {} of {policy})", n + 1),
        (Some(n), None) => format!("tier {} of {policy}", n + 1),
        (None, _) => format!("{policy}, not escalated yet"),
    })
}

/// Reading the ticket first, this refuses a ticket the actor may not see.
async fn fields_part(state: &AppState, actor: &Actor, id: i64) -> Result<FieldsPart, PageError> {
    let desk = &state.desk;
    let t = desk.ticket(actor, id).await?;
    let clock = if staff(actor) {
        desk.ticket_clock(actor, id).await?
    } else {
        None
    };
    let incident_reviews = if staff(actor) && t.kind == Kind::Incident {
        let query = opsdesk_core::readiness::ReviewQuery {
            ticket: Some(id),
            kind: Some(opsdesk_core::readiness::ReviewKind::PostIncident),
            ..Default::default()
        };
        desk.list_reviews(actor, &query)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect()
    } else {
        Vec::new()
    };
    Ok(FieldsPart {
        created: stamp(&t.created_at),
        updated: stamp(&t.updated_at),
        description_html: markdown::to_html(&t.description),
        next_statuses: t
            .status
            .next()
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        severities: severity_choices(Some(t.severity)),
        kinds: kind_choices(Some(t.kind)),
        me: actor.identity().to_owned(),
        incident_reviews,
        tier: clock.as_ref().and_then(|c| tier(desk, c)),
        error: None,
        t,
    })
}

async fn conversation_part(
    state: &AppState,
    actor: &Actor,
    id: i64,
) -> Result<ConversationPart, PageError> {
    let desk = &state.desk;
    let comments = desk.comments(actor, id).await?;
    let files = desk.attachments(actor, id).await?;
    let key = Ticket::key_for(id);
    let policy = &desk.attachment_settings().policy;
    // The audit trail holds internal notes: not for requesters.
    let history = if staff(actor) {
        desk.history(actor, id).await?
    } else {
        Vec::new()
    };
    Ok(ConversationPart {
        comments: comments
            .iter()
            .map(|c| CommentView {
                author: c.author.clone(),
                iso: iso(&c.created_at),
                when: when(&c.created_at),
                html: markdown::to_html(&c.body),
                public: c.public,
                files: files
                    .iter()
                    .filter(|f| f.comment_id == Some(c.id))
                    .map(|f| file_view(&key, f))
                    .collect(),
            })
            .collect(),
        files: files.iter().map(|f| file_view(&key, f)).collect(),
        accept: policy.types.join(","),
        max_size: opsdesk_domain::attachment::readable_size(policy.max_bytes as i64),
        key,
        timeline: timeline(&history),
        error: None,
        draft: String::new(),
        internal: false,
    })
}

async fn clocks_part(state: &AppState, actor: &Actor, id: i64) -> Result<ClocksPart, PageError> {
    let sla = match state.desk.ticket_sla(actor, id, None).await {
        Ok(sla) => sla,
        // A ticket no SLA policy covers has no clocks to show; clocks that cannot be read
        // now leave the rest of the page (and a change already made) standing.
        Err(e) => {
            if !matches!(e, opsdesk_core::Error::NotFound(_)) {
                tracing::warn!(ticket = id, error = %e, "the ticket's SLA clocks could not be read");
            }
            return Ok(ClocksPart {
                policy: None,
                rows: Vec::new(),
            });
        }
    };
    let rows = [
        ("First response", &sla.first_response),
        ("Resolution", &sla.resolution),
    ]
    .into_iter()
    .map(|(name, d)| ClockView {
        name,
        state: d.state.as_str().to_owned(),
        due: d.due_at.as_ref().map(stamp),
        left: span(d.left_seconds as f64),
        warning: d.warning,
    })
    .collect();
    Ok(ClocksPart {
        policy: Some(format!("{} ({})", sla.policy, sla.calendar)),
        rows,
    })
}

async fn case_part(state: &AppState, actor: &Actor, id: i64) -> Result<CasePart, PageError> {
    let case = if staff(actor) {
        state.desk.ticket_case(actor, id).await?
    } else {
        None
    };
    Ok(CasePart {
        aws: case.map(|c| CaseView {
            account: c.account_id,
            state: c.state,
            display_id: c.display_id,
            severity: c.severity.unwrap_or(c.requested_severity),
            aws_status: c.aws_status,
            detail: c.detail,
        }),
    })
}

async fn links_part(state: &AppState, actor: &Actor, id: i64) -> Result<LinksPart, PageError> {
    let links = state.desk.links(actor, id).await?;
    let (external, connectors) = if staff(actor) {
        let external = state.desk.external_links(actor, id).await?;
        let connectors = state
            .desk
            .connectors(actor)?
            .into_iter()
            .map(|c| c.name)
            .filter(|name| !external.iter().any(|l| &l.connector == name))
            .collect();
        (external, connectors)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(LinksPart {
        key: Ticket::key_for(id),
        external: external
            .into_iter()
            .map(|l| ExternalView {
                remote_id: l.remote_id.unwrap_or_else(|| "(being made)".into()),
                url: l.remote_url,
                state: l.state,
                last_synced: l
                    .last_synced_at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "not yet".into()),
                detail: l.detail,
                connector: l.connector,
            })
            .collect(),
        connectors,
        rows: links
            .iter()
            .map(|l| {
                let (kind, other) = if l.source_id == id {
                    (l.kind.as_str().replace('_', " "), l.target_id)
                } else {
                    (
                        format!("{} (from)", l.kind.as_str().replace('_', " ")),
                        l.source_id,
                    )
                };
                LinkView {
                    id: l.id,
                    kind,
                    other: Ticket::key_for(other),
                }
            })
            .collect(),
        error: None,
        target: String::new(),
    })
}

async fn signals_part(state: &AppState, actor: &Actor, id: i64) -> Result<SignalsPart, PageError> {
    let (correlations, signals) = if staff(actor) {
        state.desk.ticket_signals(actor, id).await?
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(SignalsPart {
        occurrences: correlations
            .iter()
            .map(|c| OccurrenceView {
                source: c.source.clone(),
                dedup_key: c.dedup_key.clone(),
                occurrences: c.occurrences,
                first_seen: stamp(&c.first_seen_at),
                last_seen: stamp(&c.last_seen_at),
                flapping: c.flapping,
            })
            .collect(),
        latest: signals
            .iter()
            .take(20)
            .map(|s| SignalView {
                iso: iso(&s.received_at),
                when: when(&s.received_at),
                source: s.source.clone(),
                state: s.state.clone(),
                title: s.title.clone(),
            })
            .collect(),
    })
}

async fn deliveries_part(
    state: &AppState,
    actor: &Actor,
    id: i64,
) -> Result<DeliveriesPart, PageError> {
    let deliveries = if actor.role.allows(Permission::WriteTickets) {
        let filter = OutboxFilter {
            state: None,
            ticket_id: Some(id),
            limit: 50,
        };
        state.desk.deliveries(actor, &filter).await?
    } else {
        Vec::new()
    };
    Ok(DeliveriesPart {
        rows: deliveries
            .into_iter()
            .map(|d| DeliveryView {
                iso: iso(&d.created_at),
                when: when(&d.created_at),
                event: d.event,
                channel: d.channel,
                state: d.state,
                attempts: d.attempts,
                last_error: d.last_error,
            })
            .collect(),
    })
}

async fn ticket_page(
    state: &AppState,
    visit: Visit,
    id: i64,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, PageError> {
    let actor = &visit.actor;
    let fields = fields_part(state, actor, id).await?;
    let conversation = conversation_part(state, actor, id).await?;
    let clocks = clocks_part(state, actor, id).await?;
    let case = case_part(state, actor, id).await?;
    let links = links_part(state, actor, id).await?;
    let signals = signals_part(state, actor, id).await?;
    let deliveries = deliveries_part(state, actor, id).await?;
    let section = if visit.shell.portal {
        "dashboard"
    } else {
        "tickets"
    };
    let page = TicketPage {
        shell: visit.at(section).shell,
        error,
        oob: false,
        fields,
        conversation,
        clocks,
        case,
        links,
        signals,
        deliveries,
    };
    Ok(render(status, page))
}

pub async fn show(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = ticket_id(&id)?;
    ticket_page(&state, visit, id, StatusCode::OK, None).await
}

impl TicketParts {
    fn none(shell: Shell) -> TicketParts {
        TicketParts {
            shell,
            oob: true,
            fields: None,
            conversation: None,
            clocks: None,
            case: None,
            links: None,
            deliveries: None,
        }
    }
}

/// The answer to a change sent from the page. Without htmx: back to the page (post, redirect,
/// get), or the page again with the reason it was refused. With htmx: the parts the change
/// touched, or, refused, the part its form lives in with the reason; htmx swaps only 2xx
/// answers in, so a refusal goes out as 200 with the reason inside the part.
async fn answer(
    state: &AppState,
    visit: Visit,
    htmx: bool,
    id: i64,
    result: opsdesk_core::Result<()>,
    home: Home,
    touched: &[Part],
) -> Result<Response, PageError> {
    let refusal = result.err().map(|e| message(&e.into()));
    if !htmx {
        return match refusal {
            None => Ok(Redirect::to(&format!("/tickets/{}", Ticket::key_for(id))).into_response()),
            Some((status, text)) => ticket_page(state, visit, id, status, Some(text)).await,
        };
    }
    let Visit { actor, shell } = visit;
    let actor = &actor;
    let mut parts = TicketParts::none(shell);
    if let Some((_, reason)) = refusal {
        match home {
            Home::Fields => {
                let mut part = fields_part(state, actor, id).await?;
                part.error = Some(reason);
                parts.fields = Some(part);
            }
            Home::Conversation { draft, internal } => {
                let mut part = conversation_part(state, actor, id).await?;
                part.error = Some(reason);
                part.draft = draft;
                part.internal = internal;
                parts.conversation = Some(part);
            }
            Home::Links { target } => {
                let mut part = links_part(state, actor, id).await?;
                part.error = Some(reason);
                part.target = target;
                parts.links = Some(part);
            }
        }
        return Ok(render(StatusCode::OK, parts));
    }
    for part in touched {
        match part {
            Part::Fields => parts.fields = Some(fields_part(state, actor, id).await?),
            Part::Conversation => {
                parts.conversation = Some(conversation_part(state, actor, id).await?)
            }
            Part::Clocks => parts.clocks = Some(clocks_part(state, actor, id).await?),
            Part::Case => parts.case = Some(case_part(state, actor, id).await?),
            Part::Links => parts.links = Some(links_part(state, actor, id).await?),
            Part::Deliveries => parts.deliveries = Some(deliveries_part(state, actor, id).await?),
        }
    }
    Ok(render(StatusCode::OK, parts))
}

/// Whether htmx sent the request, to be answered with parts of the page.
fn from_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

fn stamp(t: &chrono::DateTime<chrono::Utc>) -> (String, String) {
    (iso(t), when(t))
}

/// A value of the audit trail as a person reads it.
fn shown(v: &Value) -> String {
    let text = match v {
        Value::Null => "—".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "—".to_owned(),
        Value::Array(items) => items.iter().map(shown).collect::<Vec<_>>().join(", "),
        // A comment: what was said, marked when it was internal.
        Value::Object(fields) if fields.get("body").is_some_and(Value::is_string) => {
            let body = fields
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match fields.get("public") {
                Some(Value::Bool(false)) => format!("(internal) {body}"),
                _ => body.to_owned(),
            }
        }
        other => other.to_string(),
    };
    if text.chars().count() > 300 {
        let cut: String = text.chars().take(300).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// What an audit action says in the timeline.
fn said(action: &str) -> String {
    match action {
        "ticket.created" => "opened the ticket".into(),
        "ticket.updated" => "changed".into(),
        "ticket.acknowledged" => "acknowledged".into(),
        "ticket.commented" => "commented".into(),
        "ticket.resolved" => "resolved".into(),
        "ticket.reopened" => "reopened".into(),
        "ticket.escalated" => "escalated".into(),
        "ticket.occurrence" => "saw the problem again".into(),
        "ticket.signal" => "received a signal".into(),
        "ticket.linked" => "linked".into(),
        "ticket.unlinked" => "unlinked".into(),
        "ticket.sla_warning" => "warned that an SLA target is near".into(),
        "ticket.sla_breached" => "recorded an SLA breach".into(),
        "ticket.aws_case_opened" => "opened an AWS Support case".into(),
        "ticket.aws_case_message" => "mirrored a message of the AWS Support case".into(),
        "ticket.aws_case_status" => "recorded the AWS Support case's status".into(),
        "ticket.aws_case_resolved" => "recorded the AWS Support case as resolved".into(),
        "ticket.aws_case_files" => "noted files of the AWS Support case".into(),
        "ticket.attached" => "added a file".into(),
        "attachment.downloaded" => "downloaded a file".into(),
        "attachment.changed" => "changed whether a file goes to the AWS Support case".into(),
        other => other
            .strip_prefix("ticket.")
            .unwrap_or(other)
            .replace('_', " "),
    }
}

fn timeline(history: &[AuditRecord]) -> Vec<HistoryEntry> {
    history
        .iter()
        .map(|r| {
            let (iso, when) = stamp(&r.at);
            HistoryEntry {
                iso,
                when,
                actor: r.actor.clone(),
                what: said(&r.action),
                class: match r.action.as_str() {
                    "ticket.commented" => "comment",
                    _ => "",
                },
                changes: r
                    .changes
                    .iter()
                    .map(|(field, c)| ChangeView {
                        field: field.clone(),
                        before: shown(&c.before),
                        after: shown(&c.after),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A change from the ticket page's buttons and fields. `version` is the one the page showed:
/// if the ticket changed since, nothing is written and the page says so. Fields a form sends
/// unchanged are left out, so only what the person changed is recorded.
#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    version: i64,
    status: Option<String>,
    severity: Option<String>,
    kind: Option<String>,
    title: Option<String>,
    description: Option<String>,
    /// Empty clears it.
    assignee: Option<String>,
    team: Option<String>,
    workload: Option<String>,
    /// Comma-separated.
    tags: Option<String>,
}

/// Text from a form's textarea with the line ends people typed: browsers send CRLF.
fn lines(text: &str) -> String {
    text.replace("\r\n", "\n")
}

fn parsed<T>(
    field: &str,
    raw: &Option<String>,
    parse: fn(&str) -> Option<T>,
    names: fn() -> String,
) -> Result<Option<T>, opsdesk_domain::FieldError> {
    match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse(s).map(Some).ok_or_else(|| {
            opsdesk_domain::FieldError::new(field, format!("expected one of {}", names()))
        }),
    }
}

/// The change the form asks for against the ticket as it is: only the fields that differ.
fn patch_from(form: &ChangeForm, t: &Ticket) -> Result<TicketPatch, opsdesk_domain::FieldError> {
    let mut patch = TicketPatch {
        status: parsed("status", &form.status, Status::parse, Status::names)?
            .filter(|s| *s != t.status),
        severity: parsed("severity", &form.severity, Severity::parse, Severity::names)?
            .filter(|s| *s != t.severity),
        kind: parsed("kind", &form.kind, Kind::parse, Kind::names)?.filter(|k| *k != t.kind),
        ..TicketPatch::default()
    };
    if let Some(title) = form.title.as_deref().map(str::trim) {
        if title != t.title {
            patch.title = Some(title.to_owned());
        }
    }
    if let Some(description) = &form.description {
        // Browsers send a textarea's line ends as CRLF.
        let description = lines(description);
        if description != lines(&t.description) {
            patch.description = Some(description);
        }
    }
    let optional = |v: &Option<String>, current: &Option<String>| {
        v.as_ref()
            .map(|s| Some(s.trim().to_owned()).filter(|s| !s.is_empty()))
            .filter(|new| new != current)
    };
    patch.assignee = optional(&form.assignee, &t.assignee);
    patch.team = optional(&form.team, &t.team);
    patch.workload = optional(&form.workload, &t.workload);
    if let Some(raw) = &form.tags {
        let tags: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        if tags != t.tags {
            patch.tags = Some(tags);
        }
    }
    Ok(patch)
}

pub async fn change(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ChangeForm>,
) -> Result<Response, PageError> {
    let ticket = ticket_id(&id)?;
    let current = state.desk.ticket(&visit.actor, ticket).await?;
    let result = match patch_from(&form, &current) {
        Ok(patch) if patch.is_empty() && form.version == current.version => Ok(()),
        Ok(patch) => state
            .desk
            .update_ticket(&visit.actor, ticket, Some(form.version), patch)
            .await
            .map(|_| ()),
        Err(e) => Err(e.into()),
    };
    let htmx = from_htmx(&headers);
    answer(&state, visit, htmx, ticket, result, Home::Fields, CHANGED).await
}

#[derive(Debug, Deserialize)]
pub struct CommentForm {
    #[serde(default)]
    body: String,
    /// `public` (the default) or `internal`.
    #[serde(default)]
    visibility: String,
}

pub async fn comment(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
    headers: HeaderMap,
    FormWithFiles { form, files }: FormWithFiles<CommentForm>,
) -> Result<Response, PageError> {
    let internal = form.visibility == "internal";
    let input = NewComment {
        body: lines(&form.body),
        public: !internal,
    };
    let ticket = ticket_id(&id)?;
    let result = state
        .desk
        .add_comment_with_files(&visit.actor, ticket, input, files)
        .await
        .map(|_| ());
    let home = Home::Conversation {
        draft: form.body,
        internal,
    };
    let htmx = from_htmx(&headers);
    answer(&state, visit, htmx, ticket, result, home, COMMENTED).await
}

#[derive(Debug, Deserialize)]
pub struct EscalateForm {
    /// `next` or `aws`.
    to: String,
    #[serde(default)]
    reason: String,
}

pub async fn escalate(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<EscalateForm>,
) -> Result<Response, PageError> {
    let ticket = ticket_id(&id)?;
    let to = match form.to.as_str() {
        "next" => Ok(EscalateTo::Next),
        "aws" => Ok(EscalateTo::Aws),
        other => Err(opsdesk_domain::FieldError::new(
            "to",
            format!("escalate to next or aws, not {other:?}"),
        )),
    };
    let result = match to {
        Ok(to) => {
            let reason = Some(form.reason.trim().to_owned()).filter(|r| !r.is_empty());
            state
                .desk
                .escalate(&visit.actor, ticket, to, None, reason)
                .await
                .map(|_| ())
        }
        Err(e) => Err(e.into()),
    };
    let htmx = from_htmx(&headers);
    answer(&state, visit, htmx, ticket, result, Home::Fields, ESCALATED).await
}

#[derive(Debug, Deserialize)]
pub struct LinkForm {
    /// `relates_to`, `duplicates` or `caused_by`.
    #[serde(default)]
    kind: String,
    /// The other ticket: id or key.
    #[serde(default)]
    target: String,
}

pub async fn add_link(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Result<Response, PageError> {
    let ticket = ticket_id(&id)?;
    let result = match LinkKind::parse(&form.kind) {
        Some(kind) => {
            let input = NewLink {
                kind,
                target: form.target.clone(),
            };
            state
                .desk
                .add_link(&visit.actor, ticket, input)
                .await
                .map(|_| ())
        }
        None => Err(opsdesk_domain::FieldError::new(
            "kind",
            format!("expected one of {}", LinkKind::names()),
        )
        .into()),
    };
    let home = Home::Links {
        target: form.target,
    };
    let htmx = from_htmx(&headers);
    answer(&state, visit, htmx, ticket, result, home, LINKED).await
}

#[derive(Deserialize)]
pub struct PushForm {
    #[serde(default)]
    connector: String,
}

/// Sends the ticket to a connector's system (or has its link synced again).
pub async fn push_external(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<PushForm>,
) -> Result<Response, PageError> {
    let ticket = ticket_id(&id)?;
    let result = state
        .desk
        .push_ticket(&visit.actor, ticket, &form.connector)
        .await
        .map(|_| ());
    let home = Home::Links {
        target: String::new(),
    };
    let htmx = from_htmx(&headers);
    answer(&state, visit, htmx, ticket, result, home, LINKED).await
}

pub async fn remove_link(
    State(state): State<AppState>,
    visit: Visit,
    Path((id, link)): Path<(String, i64)>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let ticket = ticket_id(&id)?;
    let result = state
        .desk
        .remove_link(&visit.actor, ticket, link)
        .await
        .map(|_| ());
    let home = Home::Links {
        target: String::new(),
    };
    let htmx = from_htmx(&headers);
    answer(&state, visit, htmx, ticket, result, home, LINKED).await
}
