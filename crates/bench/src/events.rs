//! `events`: signals in through `POST /api/v1/events`, as EventBridge API destinations send
//! them: AWS Health events and CloudWatch alarm state changes about a fixed pool of problems,
//! most of them new updates of a problem and a share of them exact repeats.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use crate::payload::{Dice, SERVICES, SYMPTOMS};
use crate::run::{workers, Budget};
use crate::stats::{Report, Samples};
use crate::target::Target;

/// The most events one request carries; 100 events are about 130 KB, well under the 1 MiB body
/// limit.
const BATCH_MAX: u64 = 500;
/// Recent events each worker keeps to repeat exactly.
const KEEP_SENT: usize = 256;
/// Update times count up one second per event from this instant (Mon, 23 Nov 2026 00:00 UTC),
/// so that every new update carries a time no other event has.
const FIRST_UPDATE: i64 = 1_795_392_000;
const REGIONS: &[&str] = &["us-east-1", "us-west-2", "eu-west-1", "eu-central-1"];
const ACCOUNTS: &[&str] = &["111122223333", "444455556666", "777788889999"];
const WORKLOADS: &[&str] = &[
    "orders-api",
    "payments-core",
    "checkout-web",
    "search-cluster",
];

#[derive(Args)]
pub struct EventsArgs {
    /// Events to send in all.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Events per request: 1 sends one event object, more sends a JSON array (up to 500).
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// Requests sent at the same time, each on its own keep-alive connection.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Distinct problems (dedup keys); half AWS Health events, half CloudWatch alarms.
    #[arg(long, default_value_t = 2000)]
    pub problems: u64,
    /// Share of events, 0 to 1, that repeat an event already sent, byte for byte.
    #[arg(long, default_value_t = 0.1)]
    pub repeat_share: f64,
}

/// What the server said it did with the events, by effect (`created`, `occurrence`,
/// `duplicate`, ...), and how many events the answered requests carried.
#[derive(Default)]
pub struct Tally {
    pub events: u64,
    pub effects: BTreeMap<String, u64>,
    elapsed: Duration,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.events += other.events;
        for (k, v) in other.effects {
            *self.effects.entry(k).or_default() += v;
        }
    }

    fn per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.events as f64 / secs
        } else {
            0.0
        }
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "events: {} accepted, {:.1} events/s",
            self.events,
            self.per_second()
        );
        let effects: Vec<String> = self
            .effects
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "effects: {}", effects.join(", "));
        out
    }

    /// Adds `events`, `events_per_s` and `effects` to the JSON summary.
    pub fn add_to(&self, summary: &mut Value) {
        summary["events"] = json!(self.events);
        summary["events_per_s"] = json!(self.per_second());
        summary["effects"] = json!(self.effects);
    }
}

pub async fn run(
    target: &Target,
    args: &EventsArgs,
    seed: u64,
    limit: Duration,
) -> anyhow::Result<(Report, Tally)> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(
        (1..=BATCH_MAX).contains(&args.batch),
        "--batch must be between 1 and {BATCH_MAX}"
    );
    anyhow::ensure!(args.problems > 0, "--problems must be at least 1");
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.repeat_share),
        "--repeat-share must be between 0 and 1"
    );
    let url = target.url("/api/v1/events")?;
    check(target, &url).await?;
    let (count, batch, problems) = (args.events, args.batch, args.problems);
    // Out of a million, so that shares such as 0.1 are exact.
    let repeat_per_million = (args.repeat_share * 1_000_000.0).round() as usize;
    let requests = count.div_ceil(batch);
    let budget = Budget::new(requests, limit);
    let (results, elapsed) = workers(args.concurrency, |i| {
        let target = target.clone();
        let url = url.clone();
        let budget = budget.clone();
        async move {
            let mut dice = Dice::new(seed, (2 << 32) + i as u64);
            let mut samples = Samples::default();
            let mut tally = Tally::default();
            let mut sent: Vec<Value> = Vec::with_capacity(KEEP_SENT);
            let mut next_slot = 0;
            while let Some(n) = budget.take() {
                let first = n.saturating_mul(batch);
                let size = batch.min(count.saturating_sub(first));
                let mut events = Vec::with_capacity(size as usize);
                for number in first..first + size {
                    let repeat = !sent.is_empty() && dice.below(1_000_000) < repeat_per_million;
                    let event = if repeat {
                        sent.get(dice.below(sent.len()))
                            .cloned()
                            .unwrap_or_default()
                    } else {
                        let problem = dice.below(problems as usize) as u64;
                        let event = make_event(&mut dice, seed, problem, number);
                        if sent.len() < KEEP_SENT {
                            sent.push(event.clone());
                        } else if let Some(slot) = sent.get_mut(next_slot) {
                            *slot = event.clone();
                        }
                        next_slot = (next_slot + 1) % KEEP_SENT;
                        event
                    };
                    events.push(event);
                }
                let body = if let (1, Some(one)) = (batch, events.first()) {
                    serde_json::to_vec(one)
                } else {
                    serde_json::to_vec(&events)
                };
                let body = match body {
                    Ok(b) => b,
                    Err(e) => {
                        samples.failed(format!("cannot encode events: {e}"));
                        continue;
                    }
                };
                let reply = target.post_json(url.clone(), body).await;
                match reply.body {
                    Ok(bytes) => {
                        samples.ok(reply.latency);
                        count_effects(&bytes, size, &mut tally);
                    }
                    Err(e) => samples.failed(e),
                }
            }
            (samples, tally)
        }
    })
    .await?;
    let mut all = Samples::default();
    let mut tally = Tally::default();
    for (s, t) in results {
        all.merge(s);
        tally.merge(t);
    }
    tally.elapsed = elapsed;
    let report = Report::new(
        "events",
        args.concurrency,
        requests,
        elapsed,
        vec![(if batch == 1 { "event" } else { "batch" }, all)],
    );
    Ok((report, tally))
}

/// Fails early when the URL or the token is wrong. An empty array is refused with 422 only
/// once the token has been accepted for ingest, and stores nothing.
async fn check(target: &Target, url: &reqwest::Url) -> anyhow::Result<()> {
    match target.post_json(url.clone(), b"[]".to_vec()).await.body {
        Err(e) if e.starts_with("422") => Ok(()),
        Err(e) => anyhow::bail!("POST /api/v1/events: {e}"),
        Ok(_) => anyhow::bail!("POST /api/v1/events took an empty array; expected 422"),
    }
}

/// Counts the `results[].effect` of a 202 answer.
fn count_effects(bytes: &[u8], size: u64, tally: &mut Tally) {
    let answer: Value = serde_json::from_slice(bytes).unwrap_or_default();
    tally.events += answer["accepted"].as_u64().unwrap_or(size);
    for r in answer["results"].as_array().into_iter().flatten() {
        let effect = r["effect"].as_str().unwrap_or("unknown");
        *tally.effects.entry(effect.to_owned()).or_default() += 1;
    }
}

/// A new update of `problem`, the `number`-th event of the run: even problems are AWS Health
/// issues, odd ones CloudWatch alarms. Its update time is `number` seconds after
/// [`FIRST_UPDATE`], unique in the run.
fn make_event(dice: &mut Dice, seed: u64, problem: u64, number: u64) -> Value {
    let p = problem as usize;
    let region = REGIONS[p % REGIONS.len()];
    let account = ACCOUNTS[p % ACCOUNTS.len()];
    let service = SERVICES[p % SERVICES.len()];
    let symptom = SYMPTOMS[p % SYMPTOMS.len()];
    let at = FIRST_UPDATE + number as i64;
    let id = format!("bench-{seed}-{number}");
    if problem.is_multiple_of(2) {
        let svc = service.to_ascii_uppercase();
        let code = format!("AWS_{svc}_OPERATIONAL_ISSUE");
        let status = if dice.chance(5) { "closed" } else { "open" };
        let description = format!(
            "We are investigating increased {symptom} for {service} in the {region} region. \
             Update {number}."
        );
        json!({
            "version": "0",
            "id": id,
            "detail-type": "AWS Health Event",
            "source": "aws.health",
            "account": account,
            "time": iso8601(at, false),
            "region": region,
            "resources": [format!("i-0bench{problem:012x}")],
            "detail": {
                "eventArn": format!("arn:aws:health:{region}::event/{svc}/{code}/{code}_B{seed}_{problem}"),
                "service": svc,
                "eventTypeCode": code,
                "eventTypeCategory": "issue",
                "eventScopeCode": "ACCOUNT_SPECIFIC",
                "communicationId": format!("{seed:016x}{problem:016x}"),
                "startTime": rfc1123(FIRST_UPDATE),
                "lastUpdatedTime": rfc1123(at),
                "statusCode": status,
                "eventRegion": region,
                "eventDescription": [{ "language": "en_US", "latestDescription": description }],
                "affectedEntities": [{
                    "entityValue": format!("arn:aws:ec2:{region}:{account}:instance/i-0bench{problem:012x}")
                }],
                "affectedAccount": account
            }
        })
    } else {
        let workload = WORKLOADS[p % WORKLOADS.len()];
        let name = format!("{workload}-{service}-{symptom}-{problem}");
        let state = if dice.chance(10) { "OK" } else { "ALARM" };
        json!({
            "version": "0",
            "id": id,
            "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch",
            "account": account,
            "time": iso8601(at, false),
            "region": region,
            "resources": [format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}")],
            "detail": {
                "alarmName": name,
                "configuration": { "description": format!("{service} {symptom} above threshold for 5 minutes") },
                "previousState": {
                    "value": if state == "OK" { "ALARM" } else { "OK" },
                    "timestamp": iso8601(at - 60, true),
                    "reason": "Threshold not crossed"
                },
                "state": {
                    "value": state,
                    "timestamp": iso8601(at, true),
                    "reason": format!("Threshold Crossed: 1 datapoint [{}.2] was greater than the threshold (1.0).", 2 + dice.below(50))
                }
            }
        })
    }
}

/// (year, month, day, hour, minute, second, weekday with Sunday 0) of seconds since 1970 UTC.
fn civil(secs: i64) -> (i64, u32, u32, i64, i64, i64, usize) {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = (days + 4).rem_euclid(7) as usize;
    (
        year,
        month,
        day,
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        weekday,
    )
}

/// `Mon, 23 Nov 2026 06:10:00 GMT`, as AWS Health writes its times.
fn rfc1123(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, wd) = civil(secs);
    format!(
        "{}, {d:02} {} {y} {h:02}:{mi:02}:{s:02} GMT",
        DAYS[wd],
        MONTHS[(mo - 1) as usize]
    )
}

/// `2026-11-23T09:00:00Z`, or `2026-11-23T09:00:00.000+0000` as CloudWatch alarms write it.
fn iso8601(secs: i64, alarm: bool) -> String {
    let (y, mo, d, h, mi, s, _) = civil(secs);
    let zone = if alarm { ".000+0000" } else { "Z" };
    format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{zone}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_aws_writes_them() {
        assert_eq!(rfc1123(FIRST_UPDATE), "Mon, 23 Nov 2026 00:00:00 GMT");
        assert_eq!(
            rfc1123(FIRST_UPDATE + 6 * 3600 + 600),
            "Mon, 23 Nov 2026 06:10:00 GMT"
        );
        assert_eq!(rfc1123(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(rfc1123(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            iso8601(FIRST_UPDATE + 9 * 3600, true),
            "2026-11-23T09:00:00.000+0000"
        );
        assert_eq!(
            iso8601(FIRST_UPDATE + 86_400 * 9, false),
            "2026-12-02T00:00:00Z"
        );
    }

    #[test]
    fn same_seed_same_events_and_one_dedup_key_per_problem() {
        let a = make_event(&mut Dice::new(3, 0), 3, 4, 10);
        let b = make_event(&mut Dice::new(3, 0), 3, 4, 10);
        assert_eq!(a, b);
        let later = make_event(&mut Dice::new(3, 0), 3, 4, 11);
        assert_eq!(a["detail"]["eventArn"], later["detail"]["eventArn"]);
        assert_ne!(
            a["detail"]["lastUpdatedTime"],
            later["detail"]["lastUpdatedTime"]
        );
        let alarm = make_event(&mut Dice::new(3, 0), 3, 5, 10);
        assert_eq!(alarm["detail-type"], "CloudWatch Alarm State Change");
        assert_eq!(alarm["source"], "aws.cloudwatch");
    }

    #[test]
    fn a_batch_of_the_largest_events_fits_in_one_body() {
        let mut d = Dice::new(1, 0);
        let batch: Vec<Value> = (0..BATCH_MAX)
            .map(|n| make_event(&mut d, u64::MAX, 1_000_000 + n % 2, 100_000_000 + n))
            .collect();
        let bytes = serde_json::to_vec(&batch).unwrap().len();
        assert!(bytes < 1024 * 1024, "{bytes} bytes");
    }
}
