//! `query`: the lists and searches people run on the desk, newest first unless sorted.

use std::time::Duration;

use clap::Args;
use serde_json::Value;

use crate::payload::{Dice, SERVICES, SYMPTOMS, TAGS, TEAMS};
use crate::run::{workers, Budget};
use crate::stats::{Report, Samples};
use crate::target::Target;

#[derive(Args)]
pub struct QueryArgs {
    /// Requests to make, second pages included.
    #[arg(long, default_value_t = 10_000)]
    pub requests: u64,
    /// Clients asking at the same time.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Page size, 1 to 200.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// One kind of list request; the mix draws each first page with the same chance.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Query {
    /// No filter, newest first.
    Newest,
    /// `status=new`.
    Status,
    /// Several statuses at once: the open tickets.
    StatusOpen,
    Severity,
    Team,
    Tag,
    /// `q` with one vocabulary word.
    SearchOne,
    /// `q` with a service and a symptom: both must match.
    SearchTwo,
    /// `sort=severity`: SEV1 first.
    SortSeverity,
    /// The page after a first page of another kind, through `next_cursor`.
    NextPage,
}

const FIRST_PAGES: [Query; 9] = [
    Query::Newest,
    Query::Status,
    Query::StatusOpen,
    Query::Severity,
    Query::Team,
    Query::Tag,
    Query::SearchOne,
    Query::SearchTwo,
    Query::SortSeverity,
];
const ALL: [Query; 10] = [
    Query::Newest,
    Query::Status,
    Query::StatusOpen,
    Query::Severity,
    Query::Team,
    Query::Tag,
    Query::SearchOne,
    Query::SearchTwo,
    Query::SortSeverity,
    Query::NextPage,
];

impl Query {
    fn name(self) -> &'static str {
        match self {
            Query::Newest => "newest",
            Query::Status => "status",
            Query::StatusOpen => "status_open",
            Query::Severity => "severity",
            Query::Team => "team",
            Query::Tag => "tag",
            Query::SearchOne => "q_one_word",
            Query::SearchTwo => "q_two_words",
            Query::SortSeverity => "sort_severity",
            Query::NextPage => "next_page",
        }
    }

    fn index(self) -> usize {
        ALL.iter().position(|q| *q == self).unwrap_or(0)
    }

    /// The query string of a first page of this kind.
    fn params(self, dice: &mut Dice) -> Vec<(&'static str, String)> {
        let word = |dice: &mut Dice| {
            if dice.chance(50) {
                dice.pick(SERVICES)
            } else {
                dice.pick(SYMPTOMS)
            }
        };
        match self {
            Query::Newest | Query::NextPage => vec![],
            Query::Status => vec![("status", "new".into())],
            Query::StatusOpen => vec![("status", "new,acknowledged,in_progress,pending".into())],
            Query::Severity => {
                vec![(
                    "severity",
                    dice.pick(&["SEV1", "SEV2", "SEV3", "SEV4", "SEV5"]).into(),
                )]
            }
            Query::Team => vec![("team", dice.pick(TEAMS).into())],
            Query::Tag => vec![("tag", dice.pick(TAGS).into())],
            Query::SearchOne => vec![("q", word(dice).into())],
            Query::SearchTwo => vec![(
                "q",
                format!("{} {}", dice.pick(SERVICES), dice.pick(SYMPTOMS)),
            )],
            Query::SortSeverity => vec![("sort", "severity".into())],
        }
    }
}

/// The `next_cursor` of a ticket list, or why the answer is not a ticket list.
fn next_cursor(body: &[u8]) -> Result<Option<String>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if !v.get("items").is_some_and(Value::is_array) {
        return Err("the answer has no items list".into());
    }
    Ok(v.get("next_cursor")
        .and_then(Value::as_str)
        .map(str::to_owned))
}

pub async fn run(
    target: &Target,
    args: &QueryArgs,
    seed: u64,
    limit: Duration,
) -> anyhow::Result<Report> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(
        (1..=200).contains(&args.limit),
        "--limit must be between 1 and 200"
    );
    let url = target.url("/api/v1/tickets")?;
    let budget = Budget::new(args.requests, limit);
    let page_size = args.limit.to_string();
    let (results, elapsed) = workers(args.concurrency, |i| {
        let target = target.clone();
        let url = url.clone();
        let budget = budget.clone();
        let page_size = page_size.clone();
        async move {
            let mut dice = Dice::new(seed, (2 << 32) + i as u64);
            let mut samples: Vec<Samples> = ALL.iter().map(|_| Samples::default()).collect();
            let mut record = |kind: Query, reply: crate::target::Reply| -> Option<String> {
                let s = samples.get_mut(kind.index())?;
                match reply.body.and_then(|b| next_cursor(&b)) {
                    Ok(cursor) => {
                        s.ok(reply.latency);
                        cursor
                    }
                    Err(e) => {
                        s.failed(format!("{}: {e}", kind.name()));
                        None
                    }
                }
            };
            while budget.take().is_some() {
                let pick = *ALL.get(dice.below(ALL.len())).unwrap_or(&Query::Newest);
                let first = if pick == Query::NextPage {
                    *FIRST_PAGES
                        .get(dice.below(FIRST_PAGES.len()))
                        .unwrap_or(&Query::Newest)
                } else {
                    pick
                };
                let mut params = first.params(&mut dice);
                params.push(("limit", page_size.clone()));
                let query: Vec<(&str, &str)> =
                    params.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let reply = target.get(url.clone(), &query).await;
                let cursor = record(first, reply);
                if pick != Query::NextPage {
                    continue;
                }
                // The second page only when there is one and the budget allows another request.
                let Some(cursor) = cursor else { continue };
                if budget.take().is_none() {
                    break;
                }
                let mut query = query;
                query.push(("cursor", cursor.as_str()));
                let reply = target.get(url.clone(), &query).await;
                record(Query::NextPage, reply);
            }
            samples
        }
    })
    .await?;
    let mut groups: Vec<(&'static str, Samples)> =
        ALL.iter().map(|q| (q.name(), Samples::default())).collect();
    for worker in results {
        for (group, s) in groups.iter_mut().zip(worker) {
            group.1.merge(s);
        }
    }
    Ok(Report::new(
        "query",
        args.concurrency,
        args.requests,
        elapsed,
        groups,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cursor_of_a_ticket_list() {
        assert_eq!(
            next_cursor(br#"{"items":[],"next_cursor":"abc"}"#),
            Ok(Some("abc".into()))
        );
        assert_eq!(next_cursor(br#"{"items":[]}"#), Ok(None));
        assert!(next_cursor(br#"{"title":"x"}"#).is_err());
    }

    #[test]
    fn every_kind_has_its_own_row() {
        for (i, q) in ALL.iter().enumerate() {
            assert_eq!(q.index(), i);
        }
    }
}
