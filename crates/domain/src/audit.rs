//! The audit trail: every change is one entry, chained to the previous one by SHA-256.
//!
//! An entry's hash covers a canonical JSON encoding (keys sorted, no spaces, timestamps as
//! RFC 3339 UTC with microseconds) of its seq, time, actor, action, ticket id, changes and the
//! previous entry's hash. Editing, deleting or reordering any entry breaks the chain at that seq.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// The hash the first entry points back to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One changed field: what it was and what it became (`null` for "not set").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    pub before: Value,
    pub after: Value,
}

/// Changed fields by name.
pub type Changes = BTreeMap<String, FieldChange>;

/// The changes of one field.
pub fn one_change(field: &str, before: Value, after: Value) -> Changes {
    let mut c = Changes::new();
    c.insert(field.to_owned(), FieldChange { before, after });
    c
}

/// A change about to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub ticket_id: Option<i64>,
    pub changes: Changes,
}

/// A recorded entry, as stored and as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub ticket_id: Option<i64>,
    #[schema(value_type = Object)]
    pub changes: Changes,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// Seals the entry as number `seq` after the entry whose hash is `prev_hash`.
    pub fn seal(self, seq: i64, prev_hash: &str) -> AuditRecord {
        let mut record = AuditRecord {
            seq,
            at: self.at,
            actor: self.actor,
            action: self.action,
            ticket_id: self.ticket_id,
            changes: self.changes,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        record
    }
}

impl AuditRecord {
    /// The canonical bytes the hash covers.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        write_canonical(
            &json!({
                "seq": self.seq,
                "at": format_time(self.at),
                "actor": self.actor,
                "action": self.action,
                "ticket_id": self.ticket_id,
                "changes": self.changes,
                "prev_hash": self.prev_hash,
            }),
            &mut out,
        );
        out
    }

    pub fn compute_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical().as_bytes()))
    }
}

/// JSON with every object's keys in byte order and no spaces. Written out here rather than left
/// to serde_json's map, whose order depends on a crate feature that any dependency can turn on.
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(item) = map.get(k) {
                    write_canonical(item, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Timestamps are kept to the microsecond, the finest both databases store exactly.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Why the chain is broken, naming the first bad entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("entry seq {seq}: expected seq {expected}; entries are missing or reordered")]
    Gap { seq: i64, expected: i64 },
    #[error("entry seq {seq}: prev_hash does not match the hash of the entry before it")]
    Link { seq: i64 },
    #[error("entry seq {seq}: hash does not match its content; the entry was edited")]
    Content { seq: i64 },
    #[error("the chain ends at seq {last} but the recorded head is seq {head}; entries at the end were removed")]
    Truncated { last: i64, head: i64 },
}

impl ChainError {
    pub fn seq(&self) -> i64 {
        match self {
            ChainError::Gap { seq, .. }
            | ChainError::Link { seq }
            | ChainError::Content { seq } => *seq,
            ChainError::Truncated { last, .. } => last + 1,
        }
    }
}

/// Walks the chain in seq order, one record at a time.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
        }
    }
}

impl ChainVerifier {
    pub fn push(&mut self, record: &AuditRecord) -> Result<(), ChainError> {
        if record.seq != self.expected_seq {
            return Err(ChainError::Gap {
                seq: record.seq,
                expected: self.expected_seq,
            });
        }
        if record.prev_hash != self.prev_hash {
            return Err(ChainError::Link { seq: record.seq });
        }
        if record.compute_hash() != record.hash {
            return Err(ChainError::Content { seq: record.seq });
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(&record.hash);
        Ok(())
    }

    /// How many entries were checked.
    pub fn checked(&self) -> i64 {
        self.expected_seq - 1
    }

    pub fn last_hash(&self) -> &str {
        &self.prev_hash
    }

    /// Checks that the walk reached the recorded head of the chain.
    pub fn finish(&self, head_seq: i64) -> Result<(), ChainError> {
        if self.checked() < head_seq {
            return Err(ChainError::Truncated {
                last: self.checked(),
                head: head_seq,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let mut changes = Changes::new();
                changes.insert(
                    "title".into(),
                    FieldChange {
                        before: Value::Null,
                        after: json!(format!("t{seq}")),
                    },
                );
                let entry = AuditEntry {
                    at: Utc.timestamp_opt(1_700_000_000 + seq, 123_456_000).unwrap(),
                    actor: "token:ci".into(),
                    action: "ticket.created".into(),
                    ticket_id: Some(seq),
                    changes,
                };
                let rec = entry.seal(seq, &prev);
                prev = rec.hash.clone();
                rec
            })
            .collect()
    }

    fn verify(records: &[AuditRecord], head: i64) -> Result<i64, ChainError> {
        let mut v = ChainVerifier::default();
        for r in records {
            v.push(r)?;
        }
        v.finish(head)?;
        Ok(v.checked())
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(5), 5), Ok(5));
    }

    #[test]
    fn edit_is_found_at_its_seq() {
        let mut c = chain(5);
        c[2].actor = "someone else".into();
        assert_eq!(verify(&c, 5).unwrap_err(), ChainError::Content { seq: 3 });
    }

    #[test]
    fn deletion_is_found_at_the_gap() {
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(
            verify(&c, 5).unwrap_err(),
            ChainError::Gap {
                seq: 3,
                expected: 2
            }
        );
    }

    #[test]
    fn reorder_is_found() {
        let mut c = chain(5);
        c.swap(1, 2);
        assert_eq!(verify(&c, 5).unwrap_err().seq(), 3);
    }

    #[test]
    fn renumbered_chain_breaks_its_links() {
        let mut c = chain(5);
        c.remove(1);
        for (i, r) in c.iter_mut().enumerate() {
            r.seq = i as i64 + 1;
        }
        // Renumbering changes the content of every entry after the gap.
        assert_eq!(verify(&c, 4).unwrap_err(), ChainError::Link { seq: 2 });
    }

    #[test]
    fn truncation_is_found_against_the_head() {
        let c = chain(5);
        assert_eq!(
            verify(&c[..3], 5).unwrap_err(),
            ChainError::Truncated { last: 3, head: 5 }
        );
    }

    #[test]
    fn canonical_encoding_is_stable() {
        let c = chain(1);
        assert_eq!(
            c[0].canonical(),
            r#"{"action":"ticket.created","actor":"token:ci","at":"2023-11-14T22:13:21.123456Z","changes":{"title":{"after":"t1","before":null}},"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","seq":1,"ticket_id":1}"#
        );
    }
}
