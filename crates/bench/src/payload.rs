//! Realistic, varied tickets and query choices built from a small vocabulary of operations words.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// AWS services and parts of a system that tickets are about. One token each, so that they
/// also work as full-text query words.
pub const SERVICES: &[&str] = &[
    "rds",
    "aurora",
    "dynamodb",
    "lambda",
    "ec2",
    "eks",
    "ecs",
    "fargate",
    "s3",
    "sqs",
    "sns",
    "cloudfront",
    "alb",
    "elb",
    "nat",
    "vpc",
    "route53",
    "kinesis",
    "elasticache",
    "redis",
    "kafka",
    "opensearch",
    "efs",
    "ebs",
    "kms",
    "iam",
    "cloudwatch",
    "gateway",
    "cognito",
];

/// What goes wrong. One token each, for the same reason.
pub const SYMPTOMS: &[&str] = &[
    "latency",
    "timeout",
    "throttling",
    "errors",
    "disk",
    "cpu",
    "memory",
    "oom",
    "5xx",
    "failover",
    "outage",
    "degraded",
    "unreachable",
    "saturation",
    "backlog",
    "deadlock",
    "certificate",
    "expired",
    "quota",
    "replication",
    "lag",
    "restart",
    "crashloop",
    "leak",
    "packet",
    "dns",
    "connection",
    "refused",
    "spike",
    "permission",
    "rollback",
    "deployment",
];

const FILLER: &[&str] = &[
    "observed",
    "since",
    "customers",
    "report",
    "alarm",
    "fired",
    "p99",
    "checkout",
    "orders",
    "payments",
    "after",
    "the",
    "last",
    "release",
    "on",
    "node",
    "cluster",
    "primary",
    "replica",
    "intermittent",
    "for",
    "about",
    "minutes",
    "during",
    "peak",
    "traffic",
    "retry",
    "storm",
    "please",
    "investigate",
    "dashboard",
    "shows",
    "increase",
    "of",
    "requests",
    "queue",
    "depth",
];

const REGIONS: &[&str] = &[
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-2",
];
const ENVIRONMENTS: &[&str] = &["production", "staging", "development"];

pub const TEAMS: &[&str] = &[
    "platform", "payments", "checkout", "data", "identity", "search", "mobile", "sre",
];
const ASSIGNEES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "ken",
    "lena", "mike", "nina", "oscar", "pia", "quinn", "rosa", "sam", "tara",
];
const WORKLOADS: &[&str] = &[
    "orders-api",
    "payments-core",
    "checkout-web",
    "data-lake",
    "identity-svc",
    "search-cluster",
];
pub const TAGS: &[&str] = &[
    "prod",
    "staging",
    "customer-impact",
    "aws",
    "database",
    "network",
    "security",
    "cost",
    "capacity",
    "oncall",
    "postmortem",
    "flaky",
];
const KINDS: &[&str] = &["incident", "service_request", "question", "task"];
/// Ticket severities with their weight: most tickets are routine, few are SEV1.
const SEVERITIES: &[(&str, u32)] = &[
    ("SEV1", 2),
    ("SEV2", 8),
    ("SEV3", 25),
    ("SEV4", 40),
    ("SEV5", 25),
];
const SOURCES: &[(&str, u32)] = &[
    ("manual", 50),
    ("api", 20),
    ("cloudwatch", 15),
    ("alertmanager", 10),
    ("aws-health", 5),
];

/// A seeded source of random choices.
pub struct Dice(StdRng);

impl Dice {
    pub fn new(seed: u64, stream: u64) -> Dice {
        Dice(StdRng::seed_from_u64(
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream,
        ))
    }

    pub fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        if from.is_empty() {
            return "";
        }
        from.get(self.0.gen_range(0..from.len()))
            .copied()
            .unwrap_or_default()
    }

    fn weighted<'a>(&mut self, from: &[(&'a str, u32)]) -> &'a str {
        let total: u32 = from.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return "";
        }
        let mut roll = self.0.gen_range(0..total);
        for (v, w) in from {
            if roll < *w {
                return v;
            }
            roll -= w;
        }
        ""
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.0.gen_range(0..100) < percent
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.0.gen_range(0..n)
        }
    }

    /// A new ticket as a client would send it, about 300 to 500 bytes of JSON.
    pub fn ticket(&mut self) -> Value {
        let service = self.pick(SERVICES);
        let symptom = self.pick(SYMPTOMS);
        let region = self.pick(REGIONS);
        let kind = self.pick(KINDS);
        let title = match self.below(5) {
            0 => format!("{service} {symptom} in {region}"),
            1 => format!("High {symptom} on {service} ({})", self.pick(ENVIRONMENTS)),
            2 => format!("{service}: {symptom} after deployment"),
            3 => format!("Request: raise {service} quota in {region}"),
            _ => format!("Question about {service} {symptom}"),
        };
        let words = 8 + self.below(23);
        let mut description = format!("{service} {symptom} in {region}:");
        for _ in 0..words {
            let word = match self.below(4) {
                0 => self.pick(SERVICES),
                1 => self.pick(SYMPTOMS),
                _ => self.pick(FILLER),
            };
            description.push(' ');
            description.push_str(word);
        }
        description.push('.');
        let tag_count = self.below(4);
        let tags: Vec<&str> = (0..tag_count).map(|_| self.pick(TAGS)).collect();
        let mut ticket = json!({
            "title": title,
            "description": description,
            "kind": kind,
            "severity": self.weighted(SEVERITIES),
            "tags": tags,
            "team": self.pick(TEAMS),
            "source": self.weighted(SOURCES),
        });
        if self.chance(70) {
            ticket["assignee"] = json!(self.pick(ASSIGNEES));
        }
        if self.chance(60) {
            ticket["workload"] = json!(self.pick(WORKLOADS));
        }
        ticket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_tickets() {
        let a: Vec<Value> = (0..5)
            .map({
                let mut d = Dice::new(7, 1);
                move |_| d.ticket()
            })
            .collect();
        let b: Vec<Value> = (0..5)
            .map({
                let mut d = Dice::new(7, 1);
                move |_| d.ticket()
            })
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn a_thousand_tickets_fit_in_one_batch_body() {
        let mut d = Dice::new(1, 0);
        let batch: Vec<Value> = (0..1000).map(|_| d.ticket()).collect();
        let bytes = serde_json::to_vec(&batch).unwrap().len();
        assert!(bytes < 1024 * 1024, "{bytes} bytes");
    }

    #[test]
    fn query_words_are_single_tokens() {
        for w in SERVICES.iter().chain(SYMPTOMS) {
            assert!(w.chars().all(|c| c.is_ascii_alphanumeric()), "{w}");
        }
    }
}
