//! Pure types and rules of opsdesk: tickets, severities, the status workflow, access roles,
//! readiness lenses and the audit hash chain. No IO, no async and no clock reads: time is always a parameter.

pub mod access;
pub mod attachment;
pub mod audit;
pub mod change;
pub mod channel;
pub mod connector;
pub mod credentials;
pub mod escalation;
pub mod intake;
pub mod kpi;
pub mod mail;
pub mod rate_limit;
pub mod readiness;
pub mod report;
pub mod routing;
pub mod signal;
pub mod sla;
pub mod sso;
pub mod support;
pub mod text;
pub mod ticket;
pub mod validation;

pub use access::{NewUser, Permission, Role, Team, TokenSummary, User};
pub use audit::{AuditEntry, AuditRecord, ChainError};
pub use signal::workload::{Environment, NewWorkload, Workload};
pub use signal::{Signal, SignalState};
pub use sla::{
    Calendar, CalendarSpec, ClockState, Deadline, Pause, SlaClock, SlaPolicy, TicketTimes,
    WeeklyHours,
};
pub use support::{
    Advice, AdviceInput, AwsAccount, CapSource, CaseContext, CaseCounts, CaseDecision,
    CaseSeverity, PlanChange, SupportPlan, Target,
};
pub use ticket::{
    Comment, Kind, LinkKind, Severity, Status, Ticket, TicketLink, Transition, TransitionError,
};
pub use validation::{FieldError, NewComment, NewLink, NewTicket, TicketPatch, Validated};
