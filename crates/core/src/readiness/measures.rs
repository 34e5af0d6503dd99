//! The readiness KPIs: open risks per workload, time since the last review, overdue action
//! items, and post-incident reviews completed on time.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use opsdesk_domain::kpi::{Builtin, Dimension, Scope, Tally};
use opsdesk_store::{ActionItemFilter, ReviewFilter};

use super::ItemState;
use crate::kpis::{into_scopes, sums};
use crate::{Desk, Result};

impl Desk {
    pub(crate) async fn readiness_kpi(
        &self,
        b: Builtin,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
        dims: &[Dimension],
    ) -> Result<BTreeMap<Scope, Option<f64>>> {
        let mut by: BTreeMap<Scope, Tally> = BTreeMap::new();
        into_scopes(&mut by, dims, &[], Tally::default());
        match b {
            Builtin::ReadinessRisks => {
                // The newest review of each workload, of any kind, that has an answer: a
                // review just opened does not hide what the one before found.
                let mut seen: HashSet<String> = HashSet::new();
                for r in self.db().reviews(&ReviewFilter::default()).await? {
                    if seen.contains(&r.workload) {
                        continue;
                    }
                    let (workload, id) = (r.workload, r.id);
                    let review = self.read_review(id).await?;
                    let c = review.risk_counts;
                    if c.high + c.medium + c.none + c.not_applicable == 0 {
                        continue;
                    }
                    seen.insert(workload.clone());
                    let verified: Vec<String> = self
                        .review_items(id)
                        .await?
                        .into_iter()
                        .filter(|a| a.state == ItemState::Verified)
                        .filter_map(|a| a.question)
                        .collect();
                    let open = review
                        .pillars
                        .iter()
                        .flat_map(|p| p.questions.iter())
                        .filter(|q| q.risk.needs_improvement() && !verified.contains(&q.id))
                        .count();
                    into_scopes(
                        &mut by,
                        dims,
                        &[(Dimension::Workload, Some(&workload))],
                        Tally {
                            n: 1.0,
                            sum: open as f64,
                        },
                    );
                }
                Ok(sums(by))
            }
            Builtin::SinceReview => {
                let last = self.db().last_reviewed().await?;
                let mut out: BTreeMap<Scope, Option<f64>> = BTreeMap::new();
                let mut longest: Option<f64> = None;
                for w in self.db().workloads().await? {
                    let since = last
                        .iter()
                        .find(|(name, _)| *name == w.name)
                        .map(|(_, t)| *t)
                        .unwrap_or(w.created_at);
                    let seconds = (now - since).num_seconds().max(0) as f64;
                    longest = Some(longest.map_or(seconds, |l: f64| l.max(seconds)));
                    if dims.contains(&Dimension::Workload) {
                        out.insert(
                            Scope::of(Dimension::Workload, w.name.clone()),
                            Some(seconds),
                        );
                    }
                }
                out.insert(Scope::overall(), longest);
                Ok(out)
            }
            Builtin::ActionItemsOverdue => {
                let open = self
                    .db()
                    .action_items(&ActionItemFilter {
                        open: true,
                        ..ActionItemFilter::default()
                    })
                    .await?;
                for a in self.items_of(open).await? {
                    if a.overdue {
                        into_scopes(
                            &mut by,
                            dims,
                            &[
                                (Dimension::Workload, Some(&a.workload)),
                                (Dimension::Team, a.team.as_deref()),
                            ],
                            Tally { n: 1.0, sum: 1.0 },
                        );
                    }
                }
                Ok(sums(by))
            }
            Builtin::IncidentReviewsOnTime => {
                let days = Duration::days(i64::from(self.settings.readiness.post_incident_days));
                for f in self.db().incident_review_facts(from).await? {
                    let due = f.resolved_at.unwrap_or(f.opened_at) + days;
                    let on_time = match f.completed_at {
                        Some(done) => done <= due,
                        None if now > due => false,
                        // Still within its days: not counted yet.
                        None => continue,
                    };
                    into_scopes(
                        &mut by,
                        dims,
                        &[
                            (Dimension::Workload, Some(&f.workload)),
                            (Dimension::Team, f.team.as_deref()),
                        ],
                        Tally {
                            n: 1.0,
                            sum: if on_time { 1.0 } else { 0.0 },
                        },
                    );
                }
                Ok(by.into_iter().map(|(s, t)| (s, t.percent())).collect())
            }
            _ => Ok(sums(by)),
        }
    }
}
