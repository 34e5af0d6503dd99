//! Plan advice: which AWS Support plan an account's workloads call for, among the plans that
//! exist on the day of the advice.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::plan::{duration, plan_notice, plan_or_higher};
use super::{AwsAccount, CaseSeverity, PlanChange, SupportPlan, Target};
use crate::signal::workload::Environment;

/// Technical cases an account opened in the last 90 days, by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseCounts {
    #[serde(default)]
    pub low: u32,
    #[serde(default)]
    pub normal: u32,
    #[serde(default)]
    pub high: u32,
    #[serde(default)]
    pub urgent: u32,
    #[serde(default)]
    pub critical: u32,
}

impl CaseCounts {
    pub fn get(&self, sev: CaseSeverity) -> u32 {
        match sev {
            CaseSeverity::Low => self.low,
            CaseSeverity::Normal => self.normal,
            CaseSeverity::High => self.high,
            CaseSeverity::Urgent => self.urgent,
            CaseSeverity::Critical => self.critical,
        }
    }

    /// Cases at `sev` or above.
    pub fn at_least(&self, sev: CaseSeverity) -> u64 {
        CaseSeverity::ALL
            .iter()
            .filter(|s| **s >= sev)
            .map(|s| u64::from(self.get(*s)))
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.at_least(CaseSeverity::Low)
    }
}

/// The most technical cases in 90 days for which a plan without around-the-clock cases
/// (Developer, while it lasts) is still advised. An opsdesk rule of thumb, not an AWS figure.
pub const FEW_CASES_90_DAYS: u64 = 10;

/// What plan advice looks at for one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdviceInput {
    pub account: AwsAccount,
    /// The environment of each workload running in the account.
    #[serde(default)]
    pub workload_environments: Vec<Environment>,
    /// The fastest first response, in minutes, that the SLA policies of those workloads'
    /// tickets need; `None` when no policy sets one.
    #[serde(default)]
    pub sla_first_response_minutes: Option<u32>,
    #[serde(default)]
    pub cases_90_days: CaseCounts,
}

/// Which support plan an account's workloads call for, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Advice {
    pub account_id: String,
    pub current: SupportPlan,
    pub recommended: SupportPlan,
    pub change: PlanChange,
    /// Plain sentences, one per rule that applied.
    pub reasons: Vec<String>,
    /// Whether the current plan answers within the SLA's first-response need, around the
    /// clock. True when no SLA sets one.
    pub meets_sla: bool,
    /// Why the current plan cannot meet the SLA, when it cannot.
    pub sla_gap: Option<String>,
    /// The current plan's fastest first response.
    pub current_fastest: Option<Target>,
    /// The recommended plan's published minimum monthly charge, in US dollars; AWS charges
    /// by usage above it.
    pub recommended_minimum_usd: u32,
    /// What the account should know about its plan ending, when it does.
    pub notice: Option<String>,
    /// When what AWS offers the account (DescribeSeverityLevels) does not fit the configured
    /// plan: what it offers and which plans would fit. Filled in by whoever asked AWS.
    pub aws_mismatch: Option<String>,
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Why `plan` cannot answer within `need` minutes around the clock, and which plan of
/// `ladder` would.
fn sla_gap(plan: SupportPlan, need: u32, ladder: &[SupportPlan]) -> Option<String> {
    let need_text = duration(need, "");
    let best = plan.fastest_first_response();
    if best.is_some_and(|(_, t)| t.within(need)) {
        return None;
    }
    let plan_part = match best {
        None => format!("the {} plan cannot open technical cases", plan.label()),
        Some((sev, t)) if t.business_hours => format!(
            "the {} plan answers at best within {t} ({}, {sev}), counted in business hours only",
            plan.label(),
            sev.label()
        ),
        Some((sev, t)) => {
            let mut s = format!(
                "the {} plan answers at best within {t} ({}, {sev})",
                plan.label(),
                sev.label()
            );
            if sev < CaseSeverity::Critical {
                s.push_str(&format!(
                    "; {} ({}) is not available on {}",
                    CaseSeverity::Critical.label(),
                    CaseSeverity::Critical,
                    plan.label()
                ));
            }
            s
        }
    };
    let fix = match SupportPlan::lowest_answering_within(need, ladder) {
        Some(p) => format!("{} is needed", plan_or_higher(p, ladder)),
        None => "no AWS Support plan answers that fast, so the first response must come from \
                 your own on-call"
            .to_owned(),
    };
    Some(format!(
        "SLA policies need a first response within {need_text}, but {plan_part}; {fix}."
    ))
}

/// "$29", "$5,500".
fn dollars(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + 2);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("${out}")
}

/// Recommends a support plan for one account on `day`, among the plans it can hold then and
/// for the next 90 days ([`SupportPlan::ladder`]). The recommendation is the highest plan any
/// of these rules asks for:
///
/// 1. No workloads and no technical cases in 90 days: Basic.
/// 2. No production workloads and few technical cases (at most [`FEW_CASES_90_DAYS`], none
///    above normal): the lowest plan with technical cases (Developer while it lasts, Business
///    Support+ after). More cases, or any at high or above: the lowest plan with cases around
///    the clock (Business, then Business Support+).
/// 3. Any production workload: the lowest plan with the AWS Support API and production
///    system down cases, so opsdesk can open cases itself.
/// 4. An SLA first-response need: the lowest plan whose fastest target meets it around the
///    clock. Below the fastest plan's target, that plan is advised and the gap is named.
///
/// The reasons name the recommended plan's published minimum monthly charge; AWS charges by
/// usage above it. An account on a plan that ends is told what AWS does then.
pub fn advise(input: &AdviceInput, day: NaiveDate) -> Advice {
    let current = input.account.support_plan;
    let govcloud = input.account.govcloud;
    let ladder = SupportPlan::ladder(day, govcloud);
    let in_effect = current.in_effect(day, govcloud);
    let lowest = |want: &dyn Fn(SupportPlan) -> bool| {
        ladder
            .iter()
            .copied()
            .find(|p| want(*p))
            .unwrap_or(SupportPlan::Enterprise)
    };
    let with_cases = lowest(&|p| p.allows_cases());
    let around_the_clock = lowest(&|p| {
        p.has_api()
            && p.allows(CaseSeverity::Urgent)
            && p.first_response(CaseSeverity::Urgent)
                .is_some_and(|t| !t.business_hours)
    });
    let workloads = input.workload_environments.len() as u64;
    let production = input
        .workload_environments
        .iter()
        .filter(|e| **e == Environment::Production)
        .count() as u64;
    let cases = input.cases_90_days.total();
    let serious = input.cases_90_days.at_least(CaseSeverity::High);
    let mut recommended = SupportPlan::Basic;
    let mut reasons = Vec::new();

    if workloads == 0 && cases == 0 {
        reasons.push(
            "No workloads and no technical cases in the last 90 days: Basic covers account \
             and billing questions."
                .to_owned(),
        );
    } else if production == 0 {
        let case_text = plural(cases, "technical case", "technical cases");
        if serious > 0 {
            recommended = around_the_clock;
            reasons.push(format!(
                "{} at high severity or above in the last 90 days: {} allows up to urgent, \
                 answered around the clock.",
                plural(serious, "case", "cases"),
                around_the_clock.label()
            ));
        } else if cases > FEW_CASES_90_DAYS && with_cases < around_the_clock {
            recommended = around_the_clock;
            reasons.push(format!(
                "{case_text} in the last 90 days is more than the {FEW_CASES_90_DAYS} {} suits \
                 ({}); {} answers around the clock for any number of contacts.",
                with_cases.label(),
                with_cases.case_access(),
                around_the_clock.label()
            ));
        } else {
            recommended = with_cases;
            reasons.push(format!(
                "No production workloads and {case_text} in the last 90 days: {} gives {}.",
                with_cases.label(),
                with_cases.case_access()
            ));
        }
    }

    if production > 0 {
        recommended = recommended.max(around_the_clock);
        reasons.push(format!(
            "{} in this account: {} is the lowest plan with the AWS Support API, so opsdesk \
             can open and follow cases itself, and it answers production system down within \
             {} around the clock.",
            plural(
                production,
                "production workload runs",
                "production workloads run"
            ),
            around_the_clock.label(),
            around_the_clock
                .first_response(CaseSeverity::Urgent)
                .map_or_else(|| "1 hour".to_owned(), |t| t.to_string())
        ));
    }

    if let Some(need) = input.sla_first_response_minutes {
        let need_text = duration(need, "");
        match SupportPlan::lowest_answering_within(need, &ladder) {
            Some(plan) => {
                recommended = recommended.max(plan);
                if let Some((sev, t)) = plan.fastest_first_response() {
                    reasons.push(format!(
                        "SLA policies need a first response within {need_text}: {} is the \
                         lowest plan that answers that fast around the clock ({} within {t}).",
                        plan.label(),
                        sev.label()
                    ));
                }
            }
            None => {
                let fastest = ladder
                    .iter()
                    .copied()
                    .filter_map(|p| p.fastest_first_response().map(|(_, t)| (p, t)))
                    .filter(|(_, t)| !t.business_hours)
                    .min_by_key(|(p, t)| (t.minutes, *p));
                let (plan, t) =
                    fastest.unwrap_or((SupportPlan::Enterprise, Target::around_the_clock(15)));
                recommended = recommended.max(plan);
                reasons.push(format!(
                    "SLA policies need a first response within {need_text}: no AWS Support \
                     plan answers that fast ({}, the fastest, answers business-critical system \
                     down within {t}), so your own on-call has to give the first response.",
                    plan.label()
                ));
            }
        }
    }

    let notice = plan_notice(current, day, govcloud);
    // Compared with what the account holds in effect: once a plan has ended, the plan AWS
    // moves it to or offers.
    let change = match recommended.cmp(&in_effect) {
        std::cmp::Ordering::Equal => PlanChange::Keep,
        std::cmp::Ordering::Greater => PlanChange::Upgrade,
        std::cmp::Ordering::Less => PlanChange::Downgrade,
    };
    let held = if in_effect == current {
        format!("The current {} plan", current.label())
    } else {
        format!(
            "The {} plan, which AWS {} in place of {},",
            in_effect.label(),
            current.successor().map_or("offers", |(_, verb)| verb),
            current.label()
        )
    };
    reasons.push(match change {
        PlanChange::Keep => format!("{held} matches what these rules ask for."),
        PlanChange::Upgrade => format!(
            "{held} is below what these rules ask for; move to {}.",
            recommended.label()
        ),
        PlanChange::Downgrade => format!(
            "{held} provides more than these rules ask for; {} would cover them. Keep {} if \
             you rely on what only it provides, such as its technical account manager or \
             proactive programs.",
            recommended.label(),
            in_effect.label()
        ),
    });
    if let Some(notice) = &notice {
        reasons.push(notice.clone());
    }
    if recommended != SupportPlan::Basic {
        reasons.push(format!(
            "{} starts at {} a month (the published minimum; AWS charges a share of the \
             account's usage above it).",
            recommended.label(),
            dollars(recommended.minimum_monthly_usd())
        ));
    }

    let gap = input
        .sla_first_response_minutes
        .and_then(|need| sla_gap(in_effect, need, &ladder));
    Advice {
        account_id: input.account.id.clone(),
        current,
        recommended,
        change,
        reasons,
        meets_sla: gap.is_none(),
        sla_gap: gap,
        current_fastest: in_effect.fastest_first_response().map(|(_, t)| t),
        recommended_minimum_usd: recommended.minimum_monthly_usd(),
        notice,
        aws_mismatch: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Environment::{Development, Production, Staging};
    use SupportPlan::{
        Basic, Business, BusinessSupportPlus, Developer, Enterprise, EnterpriseOnRamp,
        UnifiedOperations,
    };

    /// A day when all seven plans exist and none ends within 90 days.
    const MID_2026: &str = "2026-06-01";
    const AFTER: &str = "2027-01-01";

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn clock(minutes: u32) -> Option<Target> {
        Some(Target::around_the_clock(minutes))
    }

    fn input(
        plan: SupportPlan,
        envs: &[Environment],
        sla: Option<u32>,
        cases: CaseCounts,
    ) -> AdviceInput {
        AdviceInput {
            account: AwsAccount {
                id: "123456789012".into(),
                name: "Shop production".into(),
                support_plan: plan,
                account_team_emails: Vec::new(),
                support_role_arn: None,
                govcloud: false,
            },
            workload_environments: envs.to_vec(),
            sla_first_response_minutes: sla,
            cases_90_days: cases,
        }
    }

    fn none() -> CaseCounts {
        CaseCounts::default()
    }

    #[test]
    fn nothing_running_and_no_cases_advises_basic() {
        for on in [MID_2026, AFTER] {
            let a = advise(&input(Basic, &[], None, none()), day(on));
            assert_eq!(a.recommended, Basic);
            assert_eq!(a.change, PlanChange::Keep);
            assert!(a.meets_sla);
            assert_eq!(a.sla_gap, None);
            assert!(a.reasons[0].starts_with("No workloads and no technical cases"));
            assert_eq!(a.notice, None);
        }
    }

    #[test]
    fn non_production_with_few_cases_advises_the_lowest_plan_with_cases() {
        let cases = CaseCounts {
            low: 3,
            normal: 2,
            ..none()
        };
        let a = advise(
            &input(Basic, &[Staging, Development], None, cases),
            day(MID_2026),
        );
        assert_eq!(a.recommended, Developer);
        assert_eq!(a.change, PlanChange::Upgrade);
        assert!(
            a.reasons[0].contains("5 technical cases"),
            "{:?}",
            a.reasons
        );
        // After 2027 Developer is gone: Business Support+ is the lowest plan with cases.
        let a = advise(&input(Basic, &[Staging], None, cases), day(AFTER));
        assert_eq!(a.recommended, BusinessSupportPlus);
        assert!(a
            .reasons
            .iter()
            .any(|r| r.contains("Business Support+ starts at $29 a month")));
        // Cases without any registered workload still call for technical support.
        let one = CaseCounts { low: 1, ..none() };
        assert_eq!(
            advise(&input(Basic, &[], None, one), day(MID_2026)).recommended,
            Developer
        );
    }

    #[test]
    fn many_or_serious_non_production_cases_advise_cases_around_the_clock() {
        let many = CaseCounts {
            normal: 11,
            ..none()
        };
        let a = advise(&input(Developer, &[Staging], None, many), day(MID_2026));
        assert_eq!(a.recommended, Business);
        assert!(a.reasons[0].contains("more than the 10"), "{:?}", a.reasons);

        let serious = CaseCounts { high: 1, ..none() };
        let a = advise(
            &input(Developer, &[Development], None, serious),
            day(MID_2026),
        );
        assert_eq!(a.recommended, Business);
        assert!(a.reasons[0].starts_with("1 case at high severity"));
        let a = advise(&input(Developer, &[Development], None, serious), day(AFTER));
        assert_eq!(a.recommended, BusinessSupportPlus);
    }

    #[test]
    fn production_advises_the_lowest_plan_with_the_api() {
        let a = advise(
            &input(Developer, &[Production, Staging], None, none()),
            day(MID_2026),
        );
        assert_eq!(a.recommended, Business);
        assert_eq!(a.change, PlanChange::Upgrade);
        assert!(a
            .reasons
            .iter()
            .any(|r| r.starts_with("1 production workload runs")));
        assert!(a.meets_sla, "no SLA need was given");
        let a = advise(&input(Developer, &[Production], None, none()), day(AFTER));
        assert_eq!(a.recommended, BusinessSupportPlus);
    }

    #[test]
    fn sla_needs_pick_the_lowest_plan_fast_enough_on_the_day() {
        for (on, need, plan) in [
            (MID_2026, 240, Business),
            (MID_2026, 60, Business),
            (MID_2026, 59, BusinessSupportPlus),
            (MID_2026, 30, BusinessSupportPlus),
            (MID_2026, 29, Enterprise),
            (MID_2026, 15, Enterprise),
            (MID_2026, 5, UnifiedOperations),
            (AFTER, 60, BusinessSupportPlus),
            (AFTER, 30, BusinessSupportPlus),
            (AFTER, 15, Enterprise),
            (AFTER, 5, UnifiedOperations),
        ] {
            let a = advise(&input(Business, &[Production], Some(need), none()), day(on));
            assert_eq!(a.recommended, plan, "{on} {need}");
        }
        // In GovCloud the five plans it keeps are all there is.
        let mut gov = input(Business, &[Production], Some(30), none());
        gov.account.govcloud = true;
        assert_eq!(advise(&gov, day(AFTER)).recommended, EnterpriseOnRamp);
    }

    #[test]
    fn business_cannot_meet_a_15_minute_sla() {
        let a = advise(
            &input(Business, &[Production], Some(15), none()),
            day(MID_2026),
        );
        assert!(!a.meets_sla);
        assert_eq!(a.recommended, Enterprise);
        assert_eq!(a.current_fastest, clock(60));
        assert_eq!(
            a.sla_gap.as_deref(),
            Some(
                "SLA policies need a first response within 15 minutes, but the Business plan \
                 answers at best within 1 hour (production system down, urgent); \
                 business-critical system down (critical) is not available on Business; \
                 Enterprise or Unified Operations is needed."
            )
        );
    }

    #[test]
    fn business_hours_targets_never_meet_an_sla() {
        let a = advise(
            &input(Developer, &[Staging], Some(7 * 24 * 60), none()),
            day(MID_2026),
        );
        assert!(!a.meets_sla);
        assert_eq!(a.recommended, Business);
        assert!(a.sla_gap.unwrap().contains("business hours only"));
        let a = advise(&input(Basic, &[], Some(60), none()), day(MID_2026));
        assert!(a.sla_gap.unwrap().contains("cannot open technical cases"));
    }

    #[test]
    fn faster_than_any_plan_is_named_even_on_the_fastest() {
        let a = advise(
            &input(UnifiedOperations, &[Production], Some(2), none()),
            day(AFTER),
        );
        assert_eq!(a.recommended, UnifiedOperations);
        assert_eq!(a.change, PlanChange::Keep);
        assert!(!a.meets_sla);
        assert!(a.sla_gap.unwrap().contains("your own on-call"));
        assert!(
            a.reasons.iter().any(|r| r.contains("within 5 minutes")),
            "{:?}",
            a.reasons
        );
    }

    #[test]
    fn more_than_needed_advises_a_lower_plan_and_names_its_minimum() {
        let a = advise(
            &input(Enterprise, &[Development], None, none()),
            day(MID_2026),
        );
        assert_eq!(a.recommended, Developer);
        assert_eq!(a.change, PlanChange::Downgrade);
        let text = a.reasons.join(" ");
        assert!(text.contains("Keep Enterprise if you rely on"));
        assert!(text.contains("Developer starts at $29 a month"), "{text}");
        assert_eq!(a.recommended_minimum_usd, 29);
    }

    #[test]
    fn accounts_on_ending_plans_are_told_and_moved_on() {
        // In December 2026 advice no longer points at plans that end on 1 January.
        let a = advise(
            &input(Business, &[Production], Some(60), none()),
            day("2026-12-07"),
        );
        assert_eq!(a.recommended, BusinessSupportPlus);
        assert_eq!(a.change, PlanChange::Upgrade);
        let notice = a.notice.clone().unwrap();
        assert!(
            notice.contains("AWS ends the Business plan on 2027-01-01"),
            "{notice}"
        );
        assert!(a.reasons.contains(&notice));
        // After the end, an account still configured Enterprise On-Ramp is judged as
        // Enterprise, which AWS moves it to.
        let a = advise(
            &input(EnterpriseOnRamp, &[Production], Some(15), none()),
            day(AFTER),
        );
        assert_eq!(a.recommended, Enterprise);
        assert!(a.meets_sla, "{:?}", a.sla_gap);
        assert!(a.notice.unwrap().contains("ended on 2027-01-01"));
        // Judged against Enterprise, which AWS moved it to: nothing running advises Basic as a
        // downgrade, production with a 15-minute need keeps it, on either side of midnight
        // where the plan is the same.
        let a = advise(&input(EnterpriseOnRamp, &[], None, none()), day(AFTER));
        assert_eq!((a.recommended, a.change), (Basic, PlanChange::Downgrade));
        assert!(
            a.reasons.iter().any(|r| r.starts_with(
                "The Enterprise plan, which AWS moves it to in place of Enterprise On-Ramp,"
            )),
            "{:?}",
            a.reasons
        );
        let a = advise(
            &input(EnterpriseOnRamp, &[Production], Some(15), none()),
            day(AFTER),
        );
        assert_eq!((a.recommended, a.change), (Enterprise, PlanChange::Keep));
        let a = advise(
            &input(Business, &[Production], Some(60), none()),
            day(AFTER),
        );
        assert_eq!(
            (a.recommended, a.change),
            (BusinessSupportPlus, PlanChange::Keep)
        );
        // Nothing ended is ever recommended after the end.
        for plan in SupportPlan::ALL {
            for envs in [&[][..], &[Production][..], &[Staging][..]] {
                for sla in [None, Some(5), Some(60), Some(24 * 60)] {
                    for cases in [
                        none(),
                        CaseCounts {
                            normal: 30,
                            ..none()
                        },
                        CaseCounts { low: 1, ..none() },
                    ] {
                        let r = advise(&input(*plan, envs, sla, cases), day(AFTER)).recommended;
                        assert!(r.available_on(day(AFTER), false), "{plan} -> {r}");
                    }
                }
            }
        }
    }

    #[test]
    fn advice_serialises_for_the_api() {
        let a = advise(
            &input(Business, &[Production], Some(60), none()),
            day(MID_2026),
        );
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["recommended"], "business");
        assert_eq!(v["change"], "keep");
        assert_eq!(v["meets_sla"], true);
        assert_eq!(v["current_fastest"]["minutes"], 60);
        assert_eq!(v["recommended_minimum_usd"], 100);
    }
}
