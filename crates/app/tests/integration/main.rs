//! Integration tests: the real server on 127.0.0.1:0 and the real binary, against real SQLite
//! and real PostgreSQL (OPSDESK_TEST_POSTGRES_URL). Every scenario runs on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod access;
mod accounts;
mod admin;
mod attachments;
mod audit;
mod browser;
mod channels;
mod cli;
mod connectors;
mod connectors_jira;
mod connectors_servicenow;
mod dates;
mod email;
mod emergency;
mod escalation;
mod followups;
mod kpis;
mod notify;
mod ops;
mod pagerduty;
mod pages;
mod peers;
mod readiness;
mod readiness_pages;
mod reliability;
mod signals;
mod signin;
mod sla;
mod sns;
mod sqs;
mod sso;
mod support_cases;
mod tickets;
