//! Latency samples and the summary a run prints.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

/// How many failure messages a run keeps to show.
const KEEP_ERRORS: usize = 5;

/// Latencies of the requests that succeeded, and the failures.
#[derive(Default)]
pub struct Samples {
    micros: Vec<u64>,
    pub errors: u64,
    pub first_errors: Vec<String>,
}

impl Samples {
    pub fn ok(&mut self, latency: Duration) {
        self.micros
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn failed(&mut self, why: String) {
        self.errors += 1;
        if self.first_errors.len() < KEEP_ERRORS {
            self.first_errors.push(why);
        }
    }

    /// The samples of every worker together.
    pub fn merged(all: impl IntoIterator<Item = Samples>) -> Samples {
        let mut out = Samples::default();
        for s in all {
            out.merge(s);
        }
        out
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
        for e in other.first_errors {
            if self.first_errors.len() < KEEP_ERRORS {
                self.first_errors.push(e);
            }
        }
    }

    /// Requests that succeeded.
    pub fn ok_count(&self) -> u64 {
        self.micros.len() as u64
    }

    /// Requests made, successful or not.
    pub fn count(&self) -> u64 {
        self.micros.len() as u64 + self.errors
    }

    fn summary(&self) -> Summary {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        Summary {
            ok: sorted.len() as u64,
            errors: self.errors,
            p50: percentile(&sorted, 50.0),
            p95: percentile(&sorted, 95.0),
            p99: percentile(&sorted, 99.0),
            max: sorted.last().copied().unwrap_or(0),
        }
    }
}

/// Nearest-rank percentile of sorted values; 0 for none.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .unwrap_or(0)
}

struct Summary {
    ok: u64,
    errors: u64,
    p50: u64,
    p95: u64,
    p99: u64,
    max: u64,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl Summary {
    fn to_json(&self) -> Value {
        json!({
            "ok": self.ok,
            "errors": self.errors,
            "p50_ms": ms(self.p50),
            "p95_ms": ms(self.p95),
            "p99_ms": ms(self.p99),
            "max_ms": ms(self.max),
        })
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// What a command measured.
pub struct Report {
    pub command: &'static str,
    pub concurrency: usize,
    /// Requests the run was asked to make, and made.
    pub planned: u64,
    pub done: u64,
    pub elapsed: Duration,
    /// Tickets created, when the command creates them.
    pub tickets: Option<u64>,
    /// Bytes of files moved, when the command moves them.
    pub bytes: Option<u64>,
    /// Latency per request type, in the order they are printed.
    pub groups: Vec<(&'static str, Samples)>,
    pub stopped_early: bool,
    pub first_errors: Vec<String>,
}

impl Report {
    pub fn new(
        command: &'static str,
        concurrency: usize,
        planned: u64,
        elapsed: Duration,
        groups: Vec<(&'static str, Samples)>,
    ) -> Report {
        let done = groups.iter().map(|(_, s)| s.count()).sum();
        let first_errors = groups
            .iter()
            .flat_map(|(_, s)| s.first_errors.iter().cloned())
            .take(KEEP_ERRORS)
            .collect();
        Report {
            command,
            concurrency,
            planned,
            done,
            elapsed,
            tickets: None,
            bytes: None,
            groups,
            stopped_early: done < planned,
            first_errors,
        }
    }

    pub fn errors(&self) -> u64 {
        self.groups.iter().map(|(_, s)| s.errors).sum()
    }

    /// True when every planned request was made and answered with 2xx.
    pub fn passed(&self) -> bool {
        self.errors() == 0 && !self.stopped_early
    }

    fn per_second(&self, n: u64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            n as f64 / secs
        } else {
            0.0
        }
    }

    /// All requests together, first, then each type when there is more than one.
    fn rows(&self) -> Vec<(&'static str, Summary)> {
        let mut all = Samples::default();
        for (_, s) in &self.groups {
            all.micros.extend_from_slice(&s.micros);
            all.errors += s.errors;
        }
        let mut rows = vec![("all", all.summary())];
        if self.groups.len() > 1 {
            rows.extend(self.groups.iter().map(|(name, s)| (*name, s.summary())));
        }
        rows
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} of {} requests, concurrency {}, {:.2} s",
            self.command,
            self.done,
            self.planned,
            self.concurrency,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(out, "throughput: {:.1} req/s", self.per_second(self.done));
        if let Some(t) = self.tickets {
            let _ = writeln!(
                out,
                "tickets: {t} created, {:.1} tickets/s",
                self.per_second(t)
            );
        }
        if let Some(b) = self.bytes {
            let _ = writeln!(
                out,
                "files: {:.1} MiB moved, {:.1} MiB/s",
                b as f64 / MIB,
                self.per_second(b) / MIB
            );
        }
        let _ = writeln!(out, "errors: {}", self.errors());
        let _ = writeln!(
            out,
            "{:<16} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "ok", "errors", "p50", "p95", "p99", "max"
        );
        for (name, s) in self.rows() {
            let _ = writeln!(
                out,
                "{:<16} {:>8} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                name,
                s.ok,
                s.errors,
                ms(s.p50),
                ms(s.p95),
                ms(s.p99),
                ms(s.max)
            );
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let latency: serde_json::Map<String, Value> = self
            .rows()
            .into_iter()
            .map(|(name, s)| (name.to_owned(), s.to_json()))
            .collect();
        json!({
            "command": self.command,
            "concurrency": self.concurrency,
            "planned": self.planned,
            "done": self.done,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "requests_per_s": self.per_second(self.done),
            "tickets": self.tickets,
            "tickets_per_s": self.tickets.map(|t| self.per_second(t)),
            "mib_per_s": self.bytes.map(|b| self.per_second(b) / MIB),
            "errors": self.errors(),
            "stopped_early": self.stopped_early,
            "latency": latency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn a_failure_or_a_short_run_fails_the_report() {
        let mut s = Samples::default();
        s.ok(Duration::from_millis(2));
        let r = Report::new("x", 1, 1, Duration::from_secs(1), vec![("all", s)]);
        assert!(r.passed());

        let mut s = Samples::default();
        s.failed("500".into());
        let r = Report::new("x", 1, 1, Duration::from_secs(1), vec![("all", s)]);
        assert!(!r.passed());

        let r = Report::new(
            "x",
            1,
            2,
            Duration::from_secs(1),
            vec![("all", Samples::default())],
        );
        assert!(r.stopped_early && !r.passed());
    }
}
