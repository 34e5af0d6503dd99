//! A custom lens in the AWS Well-Architected Tool's JSON format, read, checked and written back.
//!
//! Built to the "Lens format specification" of the AWS Well-Architected Tool User Guide
//! (<https://docs.aws.amazon.com/wellarchitected/latest/userguide/lenses-format-specification.html>),
//! `schemaVersion` "2021-11-01". Where the page leaves a limit open, the AWS Well-Architected
//! Tool API reference (`Choice`, `AdditionalResources`, `ImportLens`) and what `ImportLens` is
//! known to accept decide, so that every lens the Tool imports is read here; docs/readiness.md
//! lists the limits.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::rules::{Condition, RuleRisk};
use crate::validation::FieldError;

/// The only schema version the format has.
pub const SCHEMA_VERSION: &str = "2021-11-01";
/// A lens document may not be larger than 500 KB.
pub const DOCUMENT_MAX_BYTES: usize = 500 * 1024;
pub const NAME_MAX: usize = 128;
pub const DESCRIPTION_MAX: usize = 2048;
pub const PILLARS_MAX: usize = 10;
pub const QUESTIONS_PER_PILLAR_MAX: usize = 20;
pub const CHOICES_PER_QUESTION_MAX: usize = 15;
/// One rule per risk level at most.
pub const RULES_PER_QUESTION_MAX: usize = 3;
pub const TITLE_MAX: usize = 128;
pub const DISPLAY_TEXT_MAX: usize = 2048;
pub const URL_MAX: usize = 2048;
/// Pillar and question ids: 3 to 128 letters, digits or underscores.
pub const ID_LEN: std::ops::RangeInclusive<usize> = 3..=128;
/// Choice ids: 3 to 64 letters, digits or underscores.
pub const CHOICE_ID_LEN: std::ops::RangeInclusive<usize> = 3..=64;
/// Additional resources of one type hold at most this many links.
pub const ADDITIONAL_CONTENT_MAX: usize = 5;
/// A choice id with this ending is the question's "None of these" choice.
pub const NONE_OF_THESE_SUFFIX: &str = "_no";

/// A custom lens as its JSON document has it (field names and order as the format's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LensDocument {
    pub schema_version: String,
    pub name: String,
    pub description: String,
    pub pillars: Vec<Pillar>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pillar {
    pub id: String,
    pub name: String,
    pub questions: Vec<Question>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Question {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helpful_resource: Option<Resource>,
    pub choices: Vec<Choice>,
    pub risk_rules: Vec<RiskRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Choice {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helpful_resource: Option<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub improvement_plan: Option<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_resources: Option<Vec<AdditionalResources>>,
}

/// A text with an optional link: a helpful resource or an improvement plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resource {
    pub display_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Extra links of a choice, grouped by what they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdditionalResources {
    #[serde(rename = "type")]
    pub kind: ResourceKind,
    pub content: Vec<Link>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceKind {
    HelpfulResource,
    ImprovementPlan,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Link {
    pub display_text: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RiskRule {
    pub condition: String,
    pub risk: RuleRisk,
}

impl Choice {
    /// True for the "None of these" choice: its id ends in `_no`.
    pub fn is_none_of_these(&self) -> bool {
        is_none_of_these(&self.id)
    }
}

/// True when a choice id names a "None of these" choice.
pub fn is_none_of_these(choice_id: &str) -> bool {
    choice_id.ends_with(NONE_OF_THESE_SUFFIX)
}

/// Everything wrong with a lens document, each with the JSON path it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .issues.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct LensError {
    pub issues: Vec<FieldError>,
}

impl LensError {
    pub fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        LensError {
            issues: vec![FieldError::new(path, message)],
        }
    }

    /// True when some issue is at `path` (exactly).
    pub fn names(&self, path: &str) -> bool {
        self.issues.iter().any(|i| i.field == path)
    }
}

/// A question of a checked lens with its rules read, ready to score answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestionRules {
    pub rules: Vec<(Condition, RuleRisk)>,
}

/// A checked lens: its document, the parsed rules of every question, and a digest of its
/// content that tells two versions of a lens apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lens {
    document: LensDocument,
    rules: BTreeMap<String, QuestionRules>,
    digest: String,
}

/// Where a question sits in a lens.
#[derive(Debug, Clone, Copy)]
pub struct QuestionRef<'a> {
    pub pillar: &'a Pillar,
    pub question: &'a Question,
    pub rules: &'a QuestionRules,
}

impl Lens {
    /// Reads and checks a lens document: size, shape, unknown or repeated keys, every limit and
    /// rule of the format. All the problems found are returned, not only the first.
    pub fn parse(json: &str) -> Result<Lens, LensError> {
        if json.len() > DOCUMENT_MAX_BYTES {
            return Err(LensError::one(
                "(document)",
                format!(
                    "is {} bytes; a lens may be at most {DOCUMENT_MAX_BYTES} bytes (500 KB)",
                    json.len()
                ),
            ));
        }
        let de = &mut serde_json::Deserializer::from_str(json);
        let document = match serde_path_to_error::deserialize(de) {
            Ok(document) => document,
            Err(strict) => match respelled(json) {
                Ok(Some(value)) => serde_path_to_error::deserialize(value).map_err(shape_error)?,
                Ok(None) => return Err(shape_error(strict)),
                Err(repeated) => return Err(shape_error(repeated)),
            },
        };
        Lens::from_document(document)
    }

    /// Checks a document already in typed form.
    pub fn from_document(document: LensDocument) -> Result<Lens, LensError> {
        let (rules, issues) = check(&document);
        if !issues.is_empty() {
            return Err(LensError { issues });
        }
        let digest = digest(&document);
        Ok(Lens {
            document,
            rules,
            digest,
        })
    }

    pub fn document(&self) -> &LensDocument {
        &self.document
    }

    pub fn name(&self) -> &str {
        &self.document.name
    }

    /// Hex SHA-256 of the exported document: equal for equal content, whatever the spacing or
    /// key order of the file it was read from.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The lens as a JSON document in the format, ready for `ImportLens` or another tool.
    pub fn export(&self) -> String {
        export_document(&self.document)
    }

    /// The lens as pretty-printed JSON.
    pub fn export_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.document).unwrap_or_else(|_| self.export())
    }

    /// Every question in lens order.
    pub fn questions(&self) -> impl Iterator<Item = QuestionRef<'_>> {
        self.document.pillars.iter().flat_map(move |pillar| {
            pillar.questions.iter().filter_map(move |question| {
                self.rules.get(&question.id).map(|rules| QuestionRef {
                    pillar,
                    question,
                    rules,
                })
            })
        })
    }

    /// The question with this id.
    pub fn question(&self, id: &str) -> Option<QuestionRef<'_>> {
        self.questions().find(|q| q.question.id == id)
    }
}

fn shape_error(e: serde_path_to_error::Error<serde_json::Error>) -> LensError {
    let path = e.path().to_string();
    let path = if path == "." {
        "(document)".into()
    } else {
        path
    };
    LensError::one(path, e.into_inner().to_string())
}

/// Every key name of the format.
const KEYS: [&str; 18] = [
    "schemaVersion",
    "name",
    "description",
    "pillars",
    "id",
    "questions",
    "title",
    "helpfulResource",
    "choices",
    "riskRules",
    "improvementPlan",
    "additionalResources",
    "displayText",
    "url",
    "type",
    "content",
    "condition",
    "risk",
];

/// A JSON value read with every key of an object given once.
struct UniqueKeys(serde_json::Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(v.into()))
            }
            fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys(serde_json::Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut items = Vec::new();
                while let Some(UniqueKeys(v)) = seq.next_element()? {
                    items.push(v);
                }
                Ok(UniqueKeys(items.into()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    let UniqueKeys(v) = map.next_value()?;
                    if out.insert(key.clone(), v).is_some() {
                        return Err(serde::de::Error::custom(format!("duplicate field `{key}`")));
                    }
                }
                Ok(UniqueKeys(out.into()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The document with keys that differ from the format's only in case spelled as the format
/// spells them; None when there is no such key, or when respelling would give an object the
/// same key twice. A key given twice as written is an error.
///
/// The Well-Architected Tool matches keys without regard to case: the AWS Labs ORR lens it
/// imports has a `Url` key. The document is read strictly first; this second reading only
/// serves documents the strict one refused.
fn respelled(
    json: &str,
) -> Result<Option<serde_json::Value>, serde_path_to_error::Error<serde_json::Error>> {
    fn walk(v: &mut serde_json::Value, changed: &mut bool) -> bool {
        match v {
            serde_json::Value::Object(map) => {
                let old = std::mem::take(map);
                for (k, mut child) in old {
                    if !walk(&mut child, changed) {
                        return false;
                    }
                    let key = match KEYS.iter().find(|known| known.eq_ignore_ascii_case(&k)) {
                        Some(known) if **known != k => {
                            *changed = true;
                            (*known).to_string()
                        }
                        _ => k,
                    };
                    if map.insert(key, child).is_some() {
                        return false;
                    }
                }
                true
            }
            serde_json::Value::Array(items) => items.iter_mut().all(|i| walk(i, changed)),
            _ => true,
        }
    }
    let de = &mut serde_json::Deserializer::from_str(json);
    let UniqueKeys(mut value) = serde_path_to_error::deserialize(de)?;
    let mut changed = false;
    Ok((walk(&mut value, &mut changed) && changed).then_some(value))
}

fn export_document(document: &LensDocument) -> String {
    // Serialising plain strings, vectors and enums cannot fail; an empty string is never stored.
    serde_json::to_string(document).unwrap_or_default()
}

fn digest(document: &LensDocument) -> String {
    hex::encode(Sha256::digest(export_document(document).as_bytes()))
}

struct Checker {
    issues: Vec<FieldError>,
}

impl Checker {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.issues.push(FieldError::new(path, message));
    }

    fn text(&mut self, path: &str, value: &str, max: usize) {
        let n = value.chars().count();
        if value.trim().is_empty() {
            self.push(path, "must not be empty");
        } else if n > max {
            self.push(
                path,
                format!("must be at most {max} characters (it has {n})"),
            );
        }
    }

    fn id(&mut self, path: &str, value: &str, len: &std::ops::RangeInclusive<usize>) {
        let n = value.chars().count();
        let syntax = value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !syntax || !len.contains(&n) {
            self.push(
                path,
                format!(
                    "must be {} to {} characters of letters, digits and '_' (got \"{}\")",
                    len.start(),
                    len.end(),
                    value.chars().take(140).collect::<String>()
                ),
            );
        }
    }

    fn url(&mut self, path: &str, value: &str) {
        let n = value.chars().count();
        if n > URL_MAX {
            self.push(
                path,
                format!("must be at most {URL_MAX} characters (it has {n})"),
            );
            return;
        }
        match url::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => self.push(path, "must be an absolute http:// or https:// URL"),
        }
    }

    fn count(&mut self, path: &str, n: usize, max: usize, what: &str) {
        if n == 0 {
            self.push(path, format!("must hold at least one {what}"));
        } else if n > max {
            self.push(
                path,
                format!("must hold at most {max} {what}s (it has {n})"),
            );
        }
    }

    fn resource(&mut self, path: &str, r: &Resource) {
        self.text(
            &format!("{path}.displayText"),
            &r.display_text,
            DISPLAY_TEXT_MAX,
        );
        if let Some(url) = &r.url {
            self.url(&format!("{path}.url"), url);
        }
    }
}

fn check(doc: &LensDocument) -> (BTreeMap<String, QuestionRules>, Vec<FieldError>) {
    let mut c = Checker { issues: Vec::new() };
    let mut all_rules = BTreeMap::new();
    if doc.schema_version != SCHEMA_VERSION {
        c.push(
            "schemaVersion",
            format!(
                "must be \"{SCHEMA_VERSION}\" (got \"{}\")",
                doc.schema_version
            ),
        );
    }
    c.text("name", &doc.name, NAME_MAX);
    c.text("description", &doc.description, DESCRIPTION_MAX);
    c.count("pillars", doc.pillars.len(), PILLARS_MAX, "pillar");

    let mut pillar_ids = BTreeSet::new();
    let mut question_ids: BTreeMap<&str, String> = BTreeMap::new();
    for (pi, pillar) in doc.pillars.iter().enumerate() {
        let pp = format!("pillars[{pi}]");
        c.id(&format!("{pp}.id"), &pillar.id, &ID_LEN);
        if !pillar_ids.insert(pillar.id.as_str()) {
            c.push(
                &format!("{pp}.id"),
                format!("\"{}\" is used by an earlier pillar", pillar.id),
            );
        }
        c.text(&format!("{pp}.name"), &pillar.name, NAME_MAX);
        c.count(
            &format!("{pp}.questions"),
            pillar.questions.len(),
            QUESTIONS_PER_PILLAR_MAX,
            "question",
        );
        for (qi, q) in pillar.questions.iter().enumerate() {
            let qp = format!("{pp}.questions[{qi}]");
            c.id(&format!("{qp}.id"), &q.id, &ID_LEN);
            if let Some(first) = question_ids.get(q.id.as_str()) {
                c.push(
                    &format!("{qp}.id"),
                    format!("\"{}\" is already used by {first}", q.id),
                );
            } else {
                question_ids.insert(&q.id, qp.clone());
            }
            c.text(&format!("{qp}.title"), &q.title, TITLE_MAX);
            if let Some(d) = &q.description {
                c.text(&format!("{qp}.description"), d, DESCRIPTION_MAX);
            }
            if let Some(r) = &q.helpful_resource {
                c.resource(&format!("{qp}.helpfulResource"), r);
            }
            check_choices(&mut c, &qp, q);
            if let Some(rules) = check_rules(&mut c, &qp, q) {
                all_rules.insert(q.id.clone(), QuestionRules { rules });
            }
        }
    }
    (all_rules, c.issues)
}

fn check_choices(c: &mut Checker, qp: &str, q: &Question) {
    c.count(
        &format!("{qp}.choices"),
        q.choices.len(),
        CHOICES_PER_QUESTION_MAX,
        "choice",
    );
    let mut ids = BTreeSet::new();
    for (ci, choice) in q.choices.iter().enumerate() {
        let cp = format!("{qp}.choices[{ci}]");
        c.id(&format!("{cp}.id"), &choice.id, &CHOICE_ID_LEN);
        if choice.id == super::rules::DEFAULT_CONDITION {
            c.push(
                &format!("{cp}.id"),
                "must not be \"default\", the word of the fallback risk rule",
            );
        }
        if !ids.insert(choice.id.as_str()) {
            c.push(
                &format!("{cp}.id"),
                format!(
                    "\"{}\" is used by an earlier choice of this question",
                    choice.id
                ),
            );
        }
        c.text(&format!("{cp}.title"), &choice.title, TITLE_MAX);
        if let Some(r) = &choice.helpful_resource {
            c.resource(&format!("{cp}.helpfulResource"), r);
        }
        match &choice.improvement_plan {
            Some(r) => c.resource(&format!("{cp}.improvementPlan"), r),
            None if !choice.is_none_of_these() => c.push(
                &format!("{cp}.improvementPlan"),
                "is required (only a \"None of these\" choice, id ending in \"_no\", may leave it out)",
            ),
            None => {}
        }
        if let Some(extra) = &choice.additional_resources {
            let ap = format!("{cp}.additionalResources");
            if extra.len() > 2 {
                c.push(
                    &ap,
                    format!(
                        "must hold at most 2 entries, one per type (it has {})",
                        extra.len()
                    ),
                );
            }
            let mut kinds = BTreeSet::new();
            for (ai, a) in extra.iter().enumerate() {
                let p = format!("{ap}[{ai}]");
                if !kinds.insert(a.kind) {
                    c.push(
                        &format!("{p}.type"),
                        "is used by an earlier entry; give each type once",
                    );
                }
                c.count(
                    &format!("{p}.content"),
                    a.content.len(),
                    ADDITIONAL_CONTENT_MAX,
                    "link",
                );
                for (li, link) in a.content.iter().enumerate() {
                    let lp = format!("{p}.content[{li}]");
                    c.text(
                        &format!("{lp}.displayText"),
                        &link.display_text,
                        DISPLAY_TEXT_MAX,
                    );
                    c.url(&format!("{lp}.url"), &link.url);
                }
            }
        }
    }
}

fn check_rules(c: &mut Checker, qp: &str, q: &Question) -> Option<Vec<(Condition, RuleRisk)>> {
    let rp = format!("{qp}.riskRules");
    c.count(&rp, q.risk_rules.len(), RULES_PER_QUESTION_MAX, "rule");
    let choice_ids: BTreeSet<&str> = q.choices.iter().map(|ch| ch.id.as_str()).collect();
    let mut parsed = Vec::new();
    let mut ok = true;
    let mut risks = BTreeSet::new();
    let mut defaults = 0;
    for (ri, rule) in q.risk_rules.iter().enumerate() {
        let p = format!("{rp}[{ri}]");
        if !risks.insert(rule.risk) {
            c.push(
                &format!("{p}.risk"),
                format!(
                    "{} is given by an earlier rule; a question has one rule per risk",
                    rule.risk.as_str()
                ),
            );
        }
        match Condition::parse(&rule.condition).and_then(|cond| {
            cond.check_choices(&choice_ids)?;
            Ok(cond)
        }) {
            Ok(cond) => {
                if cond == Condition::Default {
                    defaults += 1;
                    if defaults > 1 {
                        c.push(
                            &format!("{p}.condition"),
                            "a question has one \"default\" rule at most",
                        );
                    }
                }
                parsed.push((cond, rule.risk));
            }
            Err(e) => {
                ok = false;
                c.push(&format!("{p}.condition"), e.to_string());
            }
        }
    }
    ok.then_some(parsed)
}
