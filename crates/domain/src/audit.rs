//! The audit trail: every change is one entry, chained to the previous one by SHA-256.
//!
//! An entry's hash covers a canonical JSON encoding (keys sorted, no spaces, timestamps as
//! RFC 3339 UTC with microseconds) of its seq, time, actor, action, ticket id, changes and the
//! previous entry's hash. Editing, deleting or reordering any entry breaks the chain at that seq.
//!
//! The changes are stored as exactly the text their part of the hash covers, and verification
//! hashes the stored text itself ([`StoredEntry`]): an edit that keeps the meaning (spaces, a
//! key given twice) is an edit. An [`Anchor`], a seq and its hash kept outside the database,
//! also finds a chain rewritten with fresh hashes.

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
        hashed_text(&Columns {
            seq: self.seq,
            at: &format_time(self.at),
            actor: &self.actor,
            action: &self.action,
            ticket_id: self.ticket_id,
            changes: &self.changes_text(),
            prev_hash: &self.prev_hash,
        })
    }

    pub fn compute_hash(&self) -> String {
        digest(&self.canonical())
    }

    /// The changes as the database stores them: exactly their part of [`Self::canonical`].
    pub fn changes_text(&self) -> String {
        canonical_changes(&self.changes)
    }

    /// The entry's columns as they are written to the database.
    pub fn stored(&self) -> StoredEntry {
        StoredEntry {
            seq: self.seq,
            at: format_time(self.at),
            actor: self.actor.clone(),
            action: self.action.clone(),
            ticket_id: self.ticket_id,
            changes: self.changes_text(),
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        }
    }
}

fn canonical_changes(changes: &Changes) -> String {
    let mut out = String::new();
    write_canonical(&json!(changes), &mut out);
    out
}

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The columns an entry's hash covers, as stored.
struct Columns<'a> {
    seq: i64,
    at: &'a str,
    actor: &'a str,
    action: &'a str,
    ticket_id: Option<i64>,
    changes: &'a str,
    prev_hash: &'a str,
}

impl<'a> From<&'a StoredEntry> for Columns<'a> {
    fn from(e: &'a StoredEntry) -> Self {
        Columns {
            seq: e.seq,
            at: &e.at,
            actor: &e.actor,
            action: &e.action,
            ticket_id: e.ticket_id,
            changes: &e.changes,
            prev_hash: &e.prev_hash,
        }
    }
}

/// The bytes an entry's hash covers: canonical JSON (keys sorted, no spaces) with the stored
/// `changes` text in place, byte for byte.
fn hashed_text(e: &Columns<'_>) -> String {
    let text = |s: &str| Value::String(s.to_owned()).to_string();
    let ticket_id = e
        .ticket_id
        .map_or_else(|| "null".to_owned(), |id| id.to_string());
    format!(
        "{{\"action\":{},\"actor\":{},\"at\":{},\"changes\":{},\"prev_hash\":{},\"seq\":{},\"ticket_id\":{}}}",
        text(e.action),
        text(e.actor),
        text(e.at),
        e.changes,
        text(e.prev_hash),
        e.seq,
        ticket_id,
    )
}

/// An entry's columns exactly as the database holds them: the time as RFC 3339 text (how
/// SQLite stores it; PostgreSQL's timestamp written the same way) and the changes as the stored
/// JSON text, unparsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub ticket_id: Option<i64>,
    pub changes: String,
    pub prev_hash: String,
    pub hash: String,
}

impl StoredEntry {
    /// Whether the stored columns, byte for byte, are what the entry's hash covers.
    pub fn content_matches(&self) -> bool {
        if digest(&hashed_text(&self.into())) == self.hash {
            return true;
        }
        // Entries written before the changes were stored in canonical form hold them as
        // serde_json wrote them (each change's `before` first). Such an entry holds when its
        // stored text is exactly what that writer makes of the changes it reads as, and those
        // changes hash right: any other text for the same changes (spaces, a key twice) fails.
        let Ok(changes) = serde_json::from_str::<Changes>(&self.changes) else {
            return false;
        };
        if serde_json::to_string(&changes).ok().as_deref() != Some(self.changes.as_str()) {
            return false;
        }
        let canonical = canonical_changes(&changes);
        let columns = Columns {
            changes: &canonical,
            ..self.into()
        };
        digest(&hashed_text(&columns)) == self.hash
    }
}

/// An entry's seq and the hash it had, kept outside the database (mailed, or in write-once
/// storage) to check the chain against later. Written `SEQ:HASH`, as `audit verify` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
}

/// Why a text is not an anchor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an anchor: write SEQ:HASH, an entry's seq (1 or more) and its hash of 64 hex digits, as `audit verify` prints them")]
pub struct AnchorError(String);

impl std::str::FromStr for Anchor {
    type Err = AnchorError;

    fn from_str(s: &str) -> Result<Anchor, AnchorError> {
        let bad = || AnchorError(s.chars().take(100).collect());
        let (seq, hash) = s.trim().split_once(':').ok_or_else(bad)?;
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        let hash = hash.to_ascii_lowercase();
        if seq < 1 || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Anchor { seq, hash })
    }
}

impl std::fmt::Display for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
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
    #[error("entry seq {seq} does not have the anchored hash; the chain was rewritten up to it")]
    Anchor { seq: i64 },
    #[error("the chain ends at seq {last}, before the anchored seq {seq}; entries at the end were removed with the recorded head")]
    AnchorBeyondEnd { seq: i64, last: i64 },
}

impl ChainError {
    pub fn seq(&self) -> i64 {
        match self {
            ChainError::Gap { seq, .. }
            | ChainError::Link { seq }
            | ChainError::Content { seq }
            | ChainError::Anchor { seq } => *seq,
            ChainError::Truncated { last, .. } | ChainError::AnchorBeyondEnd { last, .. } => {
                last + 1
            }
        }
    }
}

/// Walks the chain in seq order, one entry at a time.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
    anchors: Vec<Anchor>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            anchors: Vec::new(),
        }
    }
}

impl ChainVerifier {
    /// A walk that also checks that each anchored entry still has its anchored hash.
    pub fn with_anchors(anchors: &[Anchor]) -> ChainVerifier {
        ChainVerifier {
            anchors: anchors.to_vec(),
            ..ChainVerifier::default()
        }
    }

    /// Checks a record as the database stores it.
    pub fn push(&mut self, record: &AuditRecord) -> Result<(), ChainError> {
        self.push_stored(&record.stored())
    }

    /// Checks an entry's stored columns: its seq follows, it links to the entry before, its
    /// stored text is what its hash covers, and it has any hash it is anchored to.
    pub fn push_stored(&mut self, entry: &StoredEntry) -> Result<(), ChainError> {
        let seq = entry.seq;
        if seq != self.expected_seq {
            return Err(ChainError::Gap {
                seq,
                expected: self.expected_seq,
            });
        }
        if entry.prev_hash != self.prev_hash {
            return Err(ChainError::Link { seq });
        }
        if !entry.content_matches() {
            return Err(ChainError::Content { seq });
        }
        if self
            .anchors
            .iter()
            .any(|a| a.seq == seq && a.hash != entry.hash)
        {
            return Err(ChainError::Anchor { seq });
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(&entry.hash);
        Ok(())
    }

    /// How many entries were checked.
    pub fn checked(&self) -> i64 {
        self.expected_seq - 1
    }

    pub fn last_hash(&self) -> &str {
        &self.prev_hash
    }

    /// Checks that the walk reached the recorded head of the chain and every anchored entry.
    pub fn finish(&self, head_seq: i64) -> Result<(), ChainError> {
        let last = self.checked();
        if last < head_seq {
            return Err(ChainError::Truncated {
                last,
                head: head_seq,
            });
        }
        if let Some(seq) = self
            .anchors
            .iter()
            .map(|a| a.seq)
            .filter(|seq| *seq > last)
            .min()
        {
            return Err(ChainError::AnchorBeyondEnd { seq, last });
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

    fn verify_stored(entries: &[StoredEntry], anchors: &[Anchor]) -> Result<i64, ChainError> {
        let mut v = ChainVerifier::with_anchors(anchors);
        for e in entries {
            v.push_stored(e)?;
        }
        v.finish(entries.len() as i64)?;
        Ok(v.checked())
    }

    fn stored(n: i64) -> Vec<StoredEntry> {
        chain(n).iter().map(AuditRecord::stored).collect()
    }

    #[test]
    fn the_stored_text_is_what_the_hash_covers() {
        let mut c = stored(3);
        assert_eq!(
            c[1].changes, r#"{"title":{"after":"t2","before":null}}"#,
            "canonical, as in the hashed text"
        );
        assert!(c[1].hash == digest(&hashed_text(&(&c[1]).into())));
        assert_eq!(verify_stored(&c, &[]), Ok(3));
        let genuine = c[1].clone();
        for edited in [
            r#"{"title": {"after": "t2", "before": null}}"#,
            r#"{"title":{"after":"t2","before":null}} "#,
            r#"{"title":{"after":"t9","before":null},"title":{"after":"t2","before":null}}"#,
            r#"{"title":{"after":"t9","after":"t2","before":null}}"#,
        ] {
            c[1].changes = edited.into();
            assert_eq!(
                verify_stored(&c, &[]),
                Err(ChainError::Content { seq: 2 }),
                "{edited}"
            );
        }
        c[1] = genuine.clone();
        c[1].at = genuine.at.replace('Z', "+00:00");
        assert_eq!(verify_stored(&c, &[]), Err(ChainError::Content { seq: 2 }));
    }

    #[test]
    fn entries_stored_before_canonical_changes_verify_exactly_as_written() {
        // How entries were written until the changes were stored canonically.
        let legacy = |r: &AuditRecord| StoredEntry {
            changes: serde_json::to_string(&r.changes).unwrap(),
            ..r.stored()
        };
        let mut records = chain(3);
        records[1].changes.insert(
            "custom".into(),
            FieldChange {
                before: json!({"z": 1, "a": [1.5, "x\u{1f}y", null], "m": {"q": true}}),
                after: json!("caf\u{e9} \"quoted\" \\ /"),
            },
        );
        records[1].hash = records[1].compute_hash();
        records[2].prev_hash = records[1].hash.clone();
        records[2].hash = records[2].compute_hash();
        let mut c: Vec<StoredEntry> = records.iter().map(legacy).collect();
        assert!(
            c[1].changes.starts_with(r#"{"custom":{"before":{"#),
            "{}",
            c[1].changes
        );
        assert_ne!(c[1].changes, records[1].changes_text());
        assert_eq!(verify_stored(&c, &[]), Ok(3));
        let genuine = c[1].changes.clone();
        for edited in [
            genuine.replacen(':', ": ", 1),
            format!(" {genuine}"),
            genuine.replacen(
                r#"{"custom":"#,
                r#"{"custom":{"before":1,"after":2},"custom":"#,
                1,
            ),
            genuine.replacen(r#""z":1"#, r#""z":2,"z":1"#, 1),
        ] {
            c[1].changes = edited.clone();
            assert_eq!(
                verify_stored(&c, &[]),
                Err(ChainError::Content { seq: 2 }),
                "{edited}"
            );
        }
    }

    #[test]
    fn anchors_hold_the_chain_to_hashes_kept_elsewhere() {
        let c = stored(4);
        let anchor = |seq: i64, hash: &str| Anchor {
            seq,
            hash: hash.to_owned(),
        };
        let right = [anchor(2, &c[1].hash), anchor(4, &c[3].hash)];
        assert_eq!(verify_stored(&c, &right), Ok(4));
        assert_eq!(
            verify_stored(&c, &[anchor(3, &c[1].hash)]),
            Err(ChainError::Anchor { seq: 3 })
        );
        assert_eq!(
            verify_stored(&c, &[anchor(7, &c[3].hash)]),
            Err(ChainError::AnchorBeyondEnd { seq: 7, last: 4 })
        );

        // A chain rewritten from seq 2 on with fresh hashes holds on its own, not against an
        // anchor taken before.
        let mut records = chain(4);
        records[1].actor = "mallory".into();
        let mut prev = records[0].hash.clone();
        for r in records.iter_mut().skip(1) {
            r.prev_hash = prev;
            r.hash = r.compute_hash();
            prev = r.hash.clone();
        }
        let rewritten: Vec<StoredEntry> = records.iter().map(AuditRecord::stored).collect();
        assert_eq!(verify_stored(&rewritten, &[]), Ok(4));
        assert_eq!(
            verify_stored(&rewritten, &right),
            Err(ChainError::Anchor { seq: 2 })
        );
    }

    #[test]
    fn anchors_read_as_printed() {
        let hash = "ab".repeat(32);
        let a: Anchor = format!("12:{hash}").parse().unwrap();
        assert_eq!(
            a,
            Anchor {
                seq: 12,
                hash: hash.clone()
            }
        );
        assert_eq!(a.to_string(), format!("12:{hash}"));
        let upper: Anchor = format!(" 12:{} ", hash.to_uppercase()).parse().unwrap();
        assert_eq!(upper, a);
        for bad in [
            String::new(),
            "12".into(),
            hash.clone(),
            format!("0:{hash}"),
            format!("-3:{hash}"),
            format!("x:{hash}"),
            format!("12:{}", &hash[1..]),
            format!("12:{hash}0"),
            format!("12:{}", "zz".repeat(32)),
        ] {
            let err = bad.parse::<Anchor>().unwrap_err().to_string();
            assert!(err.contains("SEQ:HASH"), "{bad}: {err}");
        }
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
