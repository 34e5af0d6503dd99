use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{json, Value};

use super::lens::*;
use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../tests/fixtures/lens/", $name))
    };
}

const MINIMAL: &str = fixture!("minimal.json");
const FULL: &str = fixture!("full.json");

fn value(json: &str) -> Value {
    serde_json::from_str(json).unwrap()
}

fn parse_value(v: &Value) -> Result<Lens, LensError> {
    Lens::parse(&v.to_string())
}

/// Asserts that `json` is rejected with an issue at `path` whose message contains `needle`.
fn assert_rejected(json: &str, path: &str, needle: &str) {
    let err = Lens::parse(json).expect_err("lens should be rejected");
    assert!(
        err.issues
            .iter()
            .any(|i| i.field == path && i.message.contains(needle)),
        "expected an issue at {path} containing {needle:?}, got:\n{err}"
    );
}

fn answer(ids: &[&str]) -> Answer {
    Answer {
        choices: ids.iter().map(|s| s.to_string()).collect(),
        ..Answer::default()
    }
}

// ----- valid lenses and round trips -----

#[test]
fn minimal_and_full_lenses_are_accepted() {
    let minimal = Lens::parse(MINIMAL).unwrap();
    assert_eq!(minimal.name(), "Minimal lens");
    assert_eq!(minimal.questions().count(), 1);
    let full = Lens::parse(FULL).unwrap();
    let q = full.question("ops_backups").unwrap();
    assert_eq!(q.pillar.id, "operationalExcellence");
    assert_eq!(q.question.choices.len(), 4);
    assert_eq!(q.rules.rules.len(), 3);
    let extra = q.question.choices[0].additional_resources.as_ref().unwrap();
    assert_eq!(extra[0].kind, ResourceKind::HelpfulResource);
    assert_eq!(extra[0].content.len(), 2);
}

#[test]
fn export_gives_back_an_equivalent_document_that_revalidates() {
    for src in [MINIMAL, FULL, builtin::OPSDESK_READINESS_JSON] {
        let first = Lens::parse(src).unwrap();
        let exported = first.export();
        let again = Lens::parse(&exported).unwrap();
        assert_eq!(again, first);
        assert_eq!(again.digest(), first.digest());
        // Same JSON value as the input: nothing lost, nothing added.
        assert_eq!(value(&exported), value(src));
        assert_eq!(Lens::parse(&first.export_pretty()).unwrap(), first);
    }
}

#[test]
fn digest_ignores_layout_but_not_content() {
    let a = Lens::parse(FULL).unwrap();
    let compact = value(FULL).to_string();
    assert_eq!(Lens::parse(&compact).unwrap().digest(), a.digest());
    let mut changed = value(FULL);
    changed["pillars"][0]["questions"][0]["title"] = json!("How are backups kept?");
    let b = parse_value(&changed).unwrap();
    assert_ne!(b.digest(), a.digest());
    assert_eq!(a.digest().len(), 64);
}

#[test]
fn builtin_lens_parses_validates_and_covers_the_issue() {
    let lens = builtin::opsdesk_readiness().unwrap();
    let doc = lens.document();
    assert!((3..=4).contains(&doc.pillars.len()));
    let n = lens.questions().count();
    assert!((20..=30).contains(&n), "{n} questions");
    for q in lens.questions() {
        let none: Vec<_> = q
            .question
            .choices
            .iter()
            .filter(|c| c.is_none_of_these())
            .collect();
        assert_eq!(
            none.len(),
            1,
            "{} needs one None of these choice",
            q.question.id
        );
        assert!(q.question.choices.len() >= 3);
        // Selecting only "None of these" is never without risk, nor is selecting nothing else.
        let risk = assess(q, &answer(&[none[0].id.as_str()])).unwrap();
        assert!(risk.needs_improvement(), "{}: {risk:?}", q.question.id);
        // Every other choice selected is no risk.
        let all: Vec<&str> = q
            .question
            .choices
            .iter()
            .filter(|c| !c.is_none_of_these())
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(
            assess(q, &answer(&all)).unwrap(),
            Risk::None,
            "{}",
            q.question.id
        );
    }
    let text = builtin::OPSDESK_READINESS_JSON.to_lowercase();
    for topic in [
        "alarm",
        "runbook",
        "failure mode",
        "on-call",
        "escalation",
        "support plan",
        "rto",
        "aws health",
        "owning team",
        "backup",
        "rpo",
        "deploy",
        "quota",
        "dependenc",
        "break-glass",
        "region",
    ] {
        assert!(text.contains(topic), "built-in lens does not cover {topic}");
    }
}

/// A public lens that the Well-Architected Tool imports (for example the AWS Labs ORR lens) can
/// be checked with OPSDESK_LENS_FILE=path; the test passes trivially without it.
#[test]
fn an_external_lens_given_by_path_imports_unchanged() {
    let Ok(path) = std::env::var("OPSDESK_LENS_FILE") else {
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let lens = Lens::parse(&text).unwrap_or_else(|e| panic!("{path}:\n{e}"));
    assert_eq!(Lens::parse(&lens.export()).unwrap(), lens);
    eprintln!("{path}: {} questions", lens.questions().count());
}

// ----- invalid fixtures, each with its path -----

#[test]
fn invalid_fixtures_name_the_path() {
    assert_rejected(
        fixture!("invalid-bad-pillar-id.json"),
        "pillars[0].id",
        "letters, digits and '_'",
    );
    assert_rejected(
        fixture!("invalid-short-choice-id.json"),
        "pillars[0].questions[0].choices[0].id",
        "3 to 64 characters",
    );
    assert_rejected(
        fixture!("invalid-unknown-key.json"),
        "pillars[0].questions[0].weight",
        "unknown field `weight`",
    );
    assert_rejected(
        fixture!("invalid-rule-unknown-choice.json"),
        "pillars[0].questions[0].riskRules[0].condition",
        "'practice_two'",
    );
    assert_rejected(
        fixture!("invalid-duplicate-question-id.json"),
        "pillars[1].questions[0].id",
        "already used by pillars[0].questions[0]",
    );
    assert_rejected(
        fixture!("invalid-duplicate-choice-id.json"),
        "pillars[0].questions[0].choices[1].id",
        "earlier choice",
    );
    assert_rejected(
        fixture!("invalid-unbalanced-parentheses.json"),
        "pillars[0].questions[0].riskRules[0].condition",
        "never closed",
    );
    assert_rejected(
        fixture!("invalid-missing-improvement-plan.json"),
        "pillars[0].questions[0].choices[0].improvementPlan",
        "is required",
    );
    assert_rejected(
        fixture!("invalid-schema-version.json"),
        "schemaVersion",
        "2021-11-01",
    );
}

#[test]
fn shape_errors_name_the_path() {
    let mut v = value(MINIMAL);
    v["pillars"][0]["questions"][0]["riskRules"][0]["risk"] = json!("LOW_RISK");
    let err = parse_value(&v).unwrap_err();
    assert!(
        err.names("pillars[0].questions[0].riskRules[0].risk"),
        "{err}"
    );

    let mut v = value(MINIMAL);
    v.as_object_mut().unwrap().remove("name");
    let err = parse_value(&v).unwrap_err();
    assert!(err.to_string().contains("missing field `name`"), "{err}");

    let dup = MINIMAL.replacen(
        "\"name\": \"Minimal lens\",",
        "\"name\": \"Minimal lens\", \"name\": \"Again\",",
        1,
    );
    let err = Lens::parse(&dup).unwrap_err();
    assert!(err.to_string().contains("duplicate field `name`"), "{err}");

    let err = Lens::parse("[1, 2]").unwrap_err();
    assert_eq!(err.issues.len(), 1);
    let err = Lens::parse("{not json").unwrap_err();
    assert_eq!(err.issues.len(), 1);
}

#[test]
fn keys_are_matched_without_regard_to_case_as_the_tool_does() {
    let respelled = FULL
        .replace(
            "\"url\": \"https://example.com/backups/automatic\"",
            "\"Url\": \"https://example.com/backups/automatic\"",
        )
        .replace(
            "\"displayText\": \"About backups",
            "\"DISPLAYTEXT\": \"About backups",
        );
    assert_ne!(respelled, FULL);
    let lens = Lens::parse(&respelled).unwrap();
    assert_eq!(lens, Lens::parse(FULL).unwrap());
    assert!(!lens.export().contains("\"Url\""));
    // A key spelled two ways in one object is still a repeated key.
    let twice = MINIMAL.replacen(
        "\"name\": \"Minimal lens\",",
        "\"name\": \"Minimal lens\", \"Name\": \"Again\",",
        1,
    );
    assert!(Lens::parse(&twice)
        .unwrap_err()
        .to_string()
        .contains("Name"));
    // A repeated key is caught even when another key needs respelling.
    let repeated = respelled.replacen(
        "\"title\": \"Restores are tested\",",
        "\"title\": \"Restores are tested\", \"title\": \"Again\",",
        1,
    );
    assert_ne!(repeated, respelled);
    let err = Lens::parse(&repeated).unwrap_err();
    assert!(err.names("pillars[0].questions[0].choices[2]"), "{err}");
    assert!(err.to_string().contains("duplicate field `title`"), "{err}");
    // Other unknown keys are still refused.
    assert_rejected(
        fixture!("invalid-unknown-key.json"),
        "pillars[0].questions[0].weight",
        "unknown field",
    );
}

#[test]
fn every_issue_is_reported_not_only_the_first() {
    let mut v = value(MINIMAL);
    v["name"] = json!("");
    v["pillars"][0]["id"] = json!("x");
    v["pillars"][0]["questions"][0]["title"] = json!("t".repeat(TITLE_MAX + 1));
    let err = parse_value(&v).unwrap_err();
    assert!(err.names("name"));
    assert!(err.names("pillars[0].id"));
    assert!(err.names("pillars[0].questions[0].title"));
}

fn with_choices(n: usize) -> Value {
    let mut v = value(MINIMAL);
    let choices: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("choice_{i}"), "title": "A practice", "improvementPlan": {"displayText": "Do it."}}))
        .collect();
    v["pillars"][0]["questions"][0]["choices"] = Value::Array(choices);
    v
}

#[test]
fn each_limit_is_enforced_at_its_edge() {
    type Edit = fn(&mut Value, usize);
    let cases: Vec<(&str, usize, Edit, &str)> = vec![
        (
            "pillars",
            PILLARS_MAX,
            |v, n| {
                let p = v["pillars"][0].clone();
                v["pillars"] = Value::Array(
                    (0..n)
                        .map(|i| {
                            let mut p = p.clone();
                            p["id"] = json!(format!("pillar_{i}"));
                            p["questions"][0]["id"] = json!(format!("question_{i}"));
                            p
                        })
                        .collect(),
                );
            },
            "pillars",
        ),
        (
            "questions",
            QUESTIONS_PER_PILLAR_MAX,
            |v, n| {
                let q = v["pillars"][0]["questions"][0].clone();
                v["pillars"][0]["questions"] = Value::Array(
                    (0..n)
                        .map(|i| {
                            let mut q = q.clone();
                            q["id"] = json!(format!("question_{i}"));
                            q
                        })
                        .collect(),
                );
            },
            "pillars[0].questions",
        ),
        (
            "choices",
            CHOICES_PER_QUESTION_MAX,
            |v, n| {
                v["pillars"][0]["questions"][0]["choices"] =
                    with_choices(n)["pillars"][0]["questions"][0]["choices"].clone();
                v["pillars"][0]["questions"][0]["riskRules"] =
                    json!([{"condition": "default", "risk": "HIGH_RISK"}]);
            },
            "pillars[0].questions[0].choices",
        ),
        (
            "rules",
            RULES_PER_QUESTION_MAX,
            |v, n| {
                let risks = ["HIGH_RISK", "MEDIUM_RISK", "NO_RISK", "HIGH_RISK"];
                v["pillars"][0]["questions"][0]["riskRules"] = Value::Array(
                    (0..n)
                        .map(|i| json!({"condition": "practice_one", "risk": risks[i]}))
                        .collect(),
                );
            },
            "pillars[0].questions[0].riskRules",
        ),
        (
            "lens name",
            NAME_MAX,
            |v, n| v["name"] = json!("n".repeat(n)),
            "name",
        ),
        (
            "lens description",
            DESCRIPTION_MAX,
            |v, n| v["description"] = json!("d".repeat(n)),
            "description",
        ),
        (
            "pillar name",
            NAME_MAX,
            |v, n| v["pillars"][0]["name"] = json!("p".repeat(n)),
            "pillars[0].name",
        ),
        (
            "question title",
            TITLE_MAX,
            |v, n| v["pillars"][0]["questions"][0]["title"] = json!("é".repeat(n)),
            "pillars[0].questions[0].title",
        ),
        (
            "question description",
            DESCRIPTION_MAX,
            |v, n| v["pillars"][0]["questions"][0]["description"] = json!("d".repeat(n)),
            "pillars[0].questions[0].description",
        ),
        (
            "choice title",
            TITLE_MAX,
            |v, n| v["pillars"][0]["questions"][0]["choices"][0]["title"] = json!("c".repeat(n)),
            "pillars[0].questions[0].choices[0].title",
        ),
        (
            "improvement plan text",
            DISPLAY_TEXT_MAX,
            |v, n| {
                v["pillars"][0]["questions"][0]["choices"][0]["improvementPlan"]["displayText"] =
                    json!("i".repeat(n))
            },
            "pillars[0].questions[0].choices[0].improvementPlan.displayText",
        ),
        (
            "pillar id",
            *ID_LEN.end(),
            |v, n| v["pillars"][0]["id"] = json!("p".repeat(n)),
            "pillars[0].id",
        ),
        (
            "question id",
            *ID_LEN.end(),
            |v, n| v["pillars"][0]["questions"][0]["id"] = json!("q".repeat(n)),
            "pillars[0].questions[0].id",
        ),
        (
            "choice id",
            *CHOICE_ID_LEN.end(),
            |v, n| {
                let id = "c".repeat(n);
                v["pillars"][0]["questions"][0]["choices"][0]["id"] = json!(id);
                v["pillars"][0]["questions"][0]["riskRules"] = json!([{"condition": id, "risk": "NO_RISK"}, {"condition": "default", "risk": "HIGH_RISK"}]);
            },
            "pillars[0].questions[0].choices[0].id",
        ),
        (
            "additional links",
            ADDITIONAL_CONTENT_MAX,
            |v, n| {
                v["pillars"][0]["questions"][0]["choices"][0]["additionalResources"] = json!([{
                    "type": "IMPROVEMENT_PLAN",
                    "content": (0..n).map(|i| json!({"displayText": "More", "url": format!("https://example.com/{i}")})).collect::<Vec<_>>()
                }]);
            },
            "pillars[0].questions[0].choices[0].additionalResources[0].content",
        ),
    ];
    for (what, max, edit, path) in cases {
        let mut at = value(MINIMAL);
        edit(&mut at, max);
        if let Err(e) = parse_value(&at) {
            panic!("{what}: {max} must be accepted:\n{e}");
        }
        let mut over = value(MINIMAL);
        edit(&mut over, max + 1);
        let err = parse_value(&over).expect_err(what);
        assert!(
            err.names(path),
            "{what}: expected an issue at {path}, got:\n{err}"
        );
    }
}

#[test]
fn lower_limits_and_id_syntax() {
    let mut v = value(MINIMAL);
    v["pillars"][0]["questions"] = json!([]);
    assert!(parse_value(&v).unwrap_err().names("pillars[0].questions"));

    let mut v = value(MINIMAL);
    v["pillars"][0]["questions"][0]["riskRules"] = json!([]);
    assert!(parse_value(&v)
        .unwrap_err()
        .names("pillars[0].questions[0].riskRules"));

    for bad in ["ab", "has space", "dash-id", "ünï", "dot.id"] {
        let mut v = value(MINIMAL);
        v["pillars"][0]["questions"][0]["id"] = json!(bad);
        assert!(
            parse_value(&v)
                .unwrap_err()
                .names("pillars[0].questions[0].id"),
            "{bad}"
        );
    }
    let mut v = value(MINIMAL);
    v["pillars"][0]["questions"][0]["choices"][0]["id"] = json!("default");
    assert!(parse_value(&v)
        .unwrap_err()
        .names("pillars[0].questions[0].choices[0].id"));
}

#[test]
fn rules_repeat_neither_a_risk_nor_default() {
    let mut v = value(MINIMAL);
    v["pillars"][0]["questions"][0]["riskRules"] = json!([
        {"condition": "practice_one", "risk": "NO_RISK"},
        {"condition": "!practice_one", "risk": "NO_RISK"}
    ]);
    assert_rejected(
        &v.to_string(),
        "pillars[0].questions[0].riskRules[1].risk",
        "one rule per risk",
    );
    let mut v = value(MINIMAL);
    v["pillars"][0]["questions"][0]["riskRules"] = json!([
        {"condition": "default", "risk": "NO_RISK"},
        {"condition": "default", "risk": "HIGH_RISK"}
    ]);
    assert_rejected(
        &v.to_string(),
        "pillars[0].questions[0].riskRules[1].condition",
        "one \"default\"",
    );
    let mut v = value(MINIMAL);
    v["pillars"][0]["questions"][0]["riskRules"][0]["condition"] = json!(" ");
    assert_rejected(
        &v.to_string(),
        "pillars[0].questions[0].riskRules[0].condition",
        "is empty",
    );
}

#[test]
fn a_question_may_have_no_default_rule() {
    let mut v = value(MINIMAL);
    v["pillars"][0]["questions"][0]["riskRules"] =
        json!([{"condition": "practice_one", "risk": "MEDIUM_RISK"}]);
    let lens = parse_value(&v).unwrap();
    let q = lens.question("question_one").unwrap();
    assert_eq!(assess(q, &answer(&["practice_one"])).unwrap(), Risk::Medium);
}

#[test]
fn urls_must_be_absolute_http() {
    let mut v = value(FULL);
    v["pillars"][0]["questions"][0]["helpfulResource"]["url"] = json!("/relative/page");
    assert_rejected(
        &v.to_string(),
        "pillars[0].questions[0].helpfulResource.url",
        "http",
    );
    let mut v = value(FULL);
    v["pillars"][0]["questions"][0]["choices"][0]["additionalResources"][1]["content"][0]["url"] =
        json!("javascript:alert(1)");
    assert_rejected(
        &v.to_string(),
        "pillars[0].questions[0].choices[0].additionalResources[1].content[0].url",
        "http",
    );
    let mut v = value(FULL);
    v["pillars"][0]["questions"][0]["choices"][0]["additionalResources"][1]["type"] =
        json!("HELPFUL_RESOURCE");
    assert_rejected(
        &v.to_string(),
        "pillars[0].questions[0].choices[0].additionalResources[1].type",
        "earlier entry",
    );
}

#[test]
fn documents_over_500_kb_are_refused_before_reading() {
    let mut v = value(MINIMAL);
    v["description"] = json!("x".repeat(DOCUMENT_MAX_BYTES));
    let err = parse_value(&v).unwrap_err();
    assert_eq!(err.issues.len(), 1);
    assert!(err.names("(document)"), "{err}");
    assert!(err.to_string().contains("500 KB"));
}

// ----- risk, answers, improvement plans -----

fn full_lens() -> Lens {
    Lens::parse(FULL).unwrap()
}

#[test]
fn risk_follows_the_rules_and_the_question_states() {
    let lens = full_lens();
    let q = lens.question("ops_backups").unwrap();
    let all = ["backups_automatic", "backups_isolated", "backups_tested"];
    assert_eq!(assess(q, &answer(&all)).unwrap(), Risk::None);
    assert_eq!(
        assess(q, &answer(&["backups_isolated"])).unwrap(),
        Risk::Medium
    );
    assert_eq!(assess(q, &answer(&["backups_tested"])).unwrap(), Risk::High);
    assert_eq!(assess(q, &answer(&["backups_no"])).unwrap(), Risk::High);
    assert_eq!(assess(q, &answer(&[])).unwrap(), Risk::Unanswered);
    let na = Answer {
        not_applicable: Some("No data is stored".into()),
        ..answer(&["backups_tested"])
    };
    assert_eq!(assess(q, &na).unwrap(), Risk::NotApplicable);
    let na_empty = Answer {
        not_applicable: Some(String::new()),
        ..answer(&[])
    };
    assert_eq!(assess(q, &na_empty).unwrap_err(), AnswerError::EmptyReason);
}

#[test]
fn unknown_choices_are_all_named_and_none_of_these_stands_alone() {
    let lens = full_lens();
    let q = lens.question("ops_backups").unwrap();
    let err = assess(q, &answer(&["zeta", "alpha", "backups_tested"])).unwrap_err();
    assert_eq!(
        err,
        AnswerError::UnknownChoices {
            question: "ops_backups".into(),
            choices: vec!["alpha".into(), "zeta".into()]
        }
    );
    assert!(err.to_string().contains("'alpha', 'zeta'"), "{err}");
    let err = assess(q, &answer(&["backups_no", "backups_tested"])).unwrap_err();
    assert!(matches!(err, AnswerError::NoneWithOthers { .. }));
    assert!(err.to_string().contains("'backups_tested'"), "{err}");
}

#[test]
fn improvement_plans_list_the_choices_not_selected_for_risky_answers() {
    let lens = full_lens();
    let q = lens.question("ops_backups").unwrap();
    let a = answer(&["backups_isolated"]);
    let risk = assess(q, &a).unwrap();
    let plans = improvements(q.question, &a, risk);
    let ids: Vec<&str> = plans.iter().map(|p| p.choice_id).collect();
    assert_eq!(ids, ["backups_automatic", "backups_tested"]);
    assert_eq!(
        plans[0].plan.display_text,
        "Put each data store in a backup plan."
    );
    assert_eq!(plans[0].more.len(), 1);
    assert_eq!(plans[0].more[0].url, "https://example.com/improve/1");

    let none = answer(&["backups_no"]);
    let plans = improvements(q.question, &none, assess(q, &none).unwrap());
    assert_eq!(plans.len(), 3, "None of these lists every practice's plan");

    let all = answer(&["backups_automatic", "backups_isolated", "backups_tested"]);
    assert!(improvements(q.question, &all, Risk::None).is_empty());
    assert!(improvements(q.question, &answer(&[]), Risk::Unanswered).is_empty());
    assert!(improvements(q.question, &answer(&[]), Risk::NotApplicable).is_empty());
}

#[test]
fn risk_counts_hold_every_risk() {
    let counts = risk_counts([Risk::High, Risk::High, Risk::NotApplicable]);
    assert_eq!(counts.len(), 5);
    assert_eq!(counts[&Risk::High], 2);
    assert_eq!(counts[&Risk::Medium], 0);
    assert_eq!(counts[&Risk::NotApplicable], 1);
    assert_eq!(
        serde_json::to_value(Risk::NotApplicable).unwrap(),
        json!("NOT_APPLICABLE")
    );
}

#[test]
fn answers_carry_over_by_question_and_choice_ids() {
    let old = full_lens();
    let mut v = value(FULL);
    // The new version drops choice backups_tested, adds backups_watched, and adds a question.
    let q = &mut v["pillars"][0]["questions"][0];
    q["choices"][2]["id"] = json!("backups_watched");
    q["riskRules"][0]["condition"] =
        json!("backups_automatic && backups_isolated && backups_watched");
    let mut extra = q.clone();
    extra["id"] = json!("ops_restores");
    v["pillars"][0]["questions"]
        .as_array_mut()
        .unwrap()
        .push(extra);
    let new = parse_value(&v).unwrap();
    assert_ne!(old.digest(), new.digest());

    let mut answers = BTreeMap::new();
    answers.insert(
        "ops_backups".to_string(),
        Answer {
            notes: Some("Checked in March".into()),
            ..answer(&["backups_automatic", "backups_tested"])
        },
    );
    answers.insert("retired_question".to_string(), answer(&["x_y_z"]));
    let carried = carry_over(&new, &answers);
    let kept = &carried.answers["ops_backups"];
    assert_eq!(
        kept.choices,
        BTreeSet::from(["backups_automatic".to_string()])
    );
    assert_eq!(kept.notes.as_deref(), Some("Checked in March"));
    assert_eq!(
        carried.dropped_choices,
        [("ops_backups".to_string(), "backups_tested".to_string())]
    );
    assert_eq!(carried.dropped_questions, ["retired_question"]);
    assert!(!carried.answers.contains_key("ops_restores"));
    // The carried answer is valid on the new version and scored by its rules.
    let q = new.question("ops_backups").unwrap();
    assert_eq!(assess(q, kept).unwrap(), Risk::Medium);
}

// ----- property tests -----

/// The reference: a tree the test builds itself, printed with explicit parentheses and judged
/// by plain recursion over a truth table.
#[derive(Debug, Clone)]
enum Ref {
    Id(usize),
    Not(Box<Ref>),
    And(Box<Ref>, Box<Ref>),
    Or(Box<Ref>, Box<Ref>),
}

const IDS: [&str; 4] = ["alpha", "beta_2", "gamma3", "none_no"];

impl Ref {
    fn truth(&self, row: u32) -> bool {
        match self {
            Ref::Id(i) => row & (1 << i) != 0,
            Ref::Not(e) => !e.truth(row),
            Ref::And(a, b) => a.truth(row) && b.truth(row),
            Ref::Or(a, b) => a.truth(row) || b.truth(row),
        }
    }

    fn text(&self, spaced: bool) -> String {
        let (and, or) = if spaced {
            (" && ", " || ")
        } else {
            ("&&", "||")
        };
        match self {
            Ref::Id(i) => IDS[*i].to_string(),
            Ref::Not(e) => format!("!({})", e.text(spaced)),
            Ref::And(a, b) => format!("({}){and}({})", a.text(spaced), b.text(spaced)),
            Ref::Or(a, b) => format!("({}){or}({})", a.text(spaced), b.text(spaced)),
        }
    }
}

fn reference() -> impl Strategy<Value = Ref> {
    let leaf = (0..IDS.len()).prop_map(Ref::Id);
    leaf.prop_recursive(5, 40, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Ref::Not(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Ref::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Ref::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn selection(row: u32) -> BTreeSet<&'static str> {
    (0..IDS.len())
        .filter(|i| row & (1 << i) != 0)
        .map(|i| IDS[i])
        .collect()
}

fn expr(c: Condition) -> Expr {
    match c {
        Condition::Expr(e) => e,
        Condition::Default => panic!("not an expression"),
    }
}

proptest! {
    #[test]
    fn parsed_expressions_agree_with_the_truth_table(r in reference(), spaced in any::<bool>()) {
        let parsed = expr(Condition::parse_for(&r.text(spaced), IDS).unwrap());
        for row in 0..(1u32 << IDS.len()) {
            prop_assert_eq!(parsed.holds(&selection(row)), r.truth(row), "row {}", row);
        }
    }

    #[test]
    fn printing_then_parsing_gives_the_same_expression(r in reference()) {
        let parsed = expr(Condition::parse(&r.text(true)).unwrap());
        let printed = parsed.to_string();
        let again = expr(Condition::parse(&printed).unwrap());
        prop_assert_eq!(&again, &parsed, "{}", printed);
        for row in 0..(1u32 << IDS.len()) {
            prop_assert_eq!(again.holds(&selection(row)), r.truth(row));
        }
    }

    #[test]
    fn rule_lists_give_the_first_listed_risk_that_holds_else_default(
        rules in proptest::collection::vec((reference(), 0usize..3), 0..3),
        default in proptest::option::of(0usize..3),
        default_first in any::<bool>(),
        row in 0u32..16,
    ) {
        let risks = [RuleRisk::High, RuleRisk::Medium, RuleRisk::None];
        let mut parsed: Vec<(Condition, RuleRisk)> = rules
            .iter()
            .map(|(r, k)| (Condition::parse(&r.text(false)).unwrap(), risks[*k]))
            .collect();
        if let Some(d) = default {
            let at = if default_first { 0 } else { parsed.len() };
            parsed.insert(at, (Condition::Default, risks[d]));
        }
        let expected = rules
            .iter()
            .find(|(r, _)| r.truth(row))
            .map(|(_, k)| risks[*k])
            .or(default.map(|d| risks[d]))
            .unwrap_or(RuleRisk::None);
        let got = rules::evaluate(parsed.iter().map(|(c, k)| (c, *k)), &selection(row));
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn conditions_never_panic_on_any_text(text in "[a-z_!&|() \\-]{0,40}") {
        let _ = Condition::parse_for(&text, IDS);
    }

    #[test]
    fn lens_parsing_never_panics_on_mangled_documents(cut in 0usize..MINIMAL.len(), byte in any::<u8>()) {
        let mut bytes = MINIMAL.as_bytes().to_vec();
        bytes[cut] = byte;
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = Lens::parse(&text);
        }
    }
}
