//! Operational readiness: lenses (checklists in the Well-Architected custom lens format), the
//! risk their rules give an answer, the improvement plans a risky answer lists, and how answers
//! carry over from one version of a lens to the next. Pure: no storage, no clock.

pub mod builtin;
pub mod incident;
pub mod lens;
pub mod rules;
pub mod schedule;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use lens::{Lens, LensDocument, LensError, QuestionRef};
pub use rules::{Condition, ConditionError, Expr, RuleRisk};

use lens::{Choice, Question, Resource, ResourceKind};

/// The risk of one question of a review, in the Well-Architected Tool's API words.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Risk {
    High,
    Medium,
    None,
    /// Nothing selected and not marked not applicable.
    Unanswered,
    /// Marked not applicable to the workload, with a reason.
    NotApplicable,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::High => "HIGH",
            Risk::Medium => "MEDIUM",
            Risk::None => "NONE",
            Risk::Unanswered => "UNANSWERED",
            Risk::NotApplicable => "NOT_APPLICABLE",
        }
    }

    /// True for the risks that list improvement plans and become findings.
    pub fn needs_improvement(self) -> bool {
        matches!(self, Risk::High | Risk::Medium)
    }
}

impl From<RuleRisk> for Risk {
    fn from(r: RuleRisk) -> Self {
        match r {
            RuleRisk::High => Risk::High,
            RuleRisk::Medium => Risk::Medium,
            RuleRisk::None => Risk::None,
        }
    }
}

/// One answer to one question: the selected choice ids, notes, and a reason when the question
/// does not apply to the workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub choices: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_applicable: Option<String>,
}

/// Why an answer cannot be taken for a question.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("question '{question}' has no choice {}", quote_list(.choices))]
    UnknownChoices {
        question: String,
        choices: Vec<String>,
    },
    #[error("choice '{none}' means \"None of these\" and cannot be selected with {}", quote_list(.others))]
    NoneWithOthers { none: String, others: Vec<String> },
    #[error("the reason a question does not apply must not be empty")]
    EmptyReason,
}

fn quote_list(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks an answer against its question: every choice id exists, and a "None of these" choice
/// (id ending in `_no`) is selected alone. Unknown ids are all named, in sorted order.
pub fn check_answer(question: &Question, answer: &Answer) -> Result<(), AnswerError> {
    let known: BTreeSet<&str> = question.choices.iter().map(|c| c.id.as_str()).collect();
    let unknown: Vec<String> = answer
        .choices
        .iter()
        .filter(|id| !known.contains(id.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(AnswerError::UnknownChoices {
            question: question.id.clone(),
            choices: unknown,
        });
    }
    if let Some(none) = answer.choices.iter().find(|id| lens::is_none_of_these(id)) {
        let others: Vec<String> = answer
            .choices
            .iter()
            .filter(|id| *id != none)
            .cloned()
            .collect();
        if !others.is_empty() {
            return Err(AnswerError::NoneWithOthers {
                none: none.clone(),
                others,
            });
        }
    }
    if answer
        .not_applicable
        .as_deref()
        .is_some_and(|r| r.trim().is_empty())
    {
        return Err(AnswerError::EmptyReason);
    }
    Ok(())
}

/// The risk of a checked answer to a question of `lens`, as the Well-Architected Tool gives it:
/// not applicable wins over any selection (which is kept for when it applies again); nothing
/// selected is unanswered; otherwise the question's risk rules decide. Selecting only the
/// "None of these" choice is an answer, scored by the rules like any other selection.
pub fn assess(question: QuestionRef<'_>, answer: &Answer) -> Result<Risk, AnswerError> {
    check_answer(question.question, answer)?;
    if answer.not_applicable.is_some() {
        return Ok(Risk::NotApplicable);
    }
    if answer.choices.is_empty() {
        return Ok(Risk::Unanswered);
    }
    let selected: BTreeSet<&str> = answer.choices.iter().map(String::as_str).collect();
    Ok(rules::evaluate(question.rules.rules.iter().map(|(c, r)| (c, *r)), &selected).into())
}

/// What a user can do about one choice not selected in a risky answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Improvement<'a> {
    pub choice_id: &'a str,
    pub choice_title: &'a str,
    pub plan: &'a Resource,
    /// The choice's further improvement links (`additionalResources` of type IMPROVEMENT_PLAN).
    pub more: Vec<&'a lens::Link>,
}

/// The improvement plans of the choices not selected, in lens order, for a HIGH or MEDIUM risk;
/// nothing for any other risk. "None of these" choices have no plan of their own.
pub fn improvements<'a>(
    question: &'a Question,
    answer: &Answer,
    risk: Risk,
) -> Vec<Improvement<'a>> {
    if !risk.needs_improvement() {
        return Vec::new();
    }
    question
        .choices
        .iter()
        .filter(|c| !c.is_none_of_these() && !answer.choices.contains(&c.id))
        .filter_map(|c: &'a Choice| {
            c.improvement_plan.as_ref().map(|plan| Improvement {
                choice_id: &c.id,
                choice_title: &c.title,
                plan,
                more: c
                    .additional_resources
                    .iter()
                    .flatten()
                    .filter(|a| a.kind == ResourceKind::ImprovementPlan)
                    .flat_map(|a| a.content.iter())
                    .collect(),
            })
        })
        .collect()
}

/// Risk counts in the Well-Architected Tool's shape: every risk present, zero included.
pub fn risk_counts(risks: impl IntoIterator<Item = Risk>) -> BTreeMap<Risk, usize> {
    let mut counts: BTreeMap<Risk, usize> = [
        Risk::High,
        Risk::Medium,
        Risk::None,
        Risk::Unanswered,
        Risk::NotApplicable,
    ]
    .into_iter()
    .map(|r| (r, 0))
    .collect();
    for r in risks {
        *counts.entry(r).or_default() += 1;
    }
    counts
}

/// Answers moved from one version of a lens to another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CarriedAnswers {
    /// Answers by question id, for questions the new version still has. Selections keep only
    /// the choice ids the new question still has; notes and not-applicable reasons are kept.
    pub answers: BTreeMap<String, Answer>,
    /// Question ids answered before that the new version no longer has.
    pub dropped_questions: Vec<String>,
    /// (question id, choice id) selections dropped because the new question lacks the choice.
    pub dropped_choices: Vec<(String, String)>,
}

/// Matches answers given on an earlier version of a lens to the questions and choices of `new`
/// by their ids. A carried
/// selection that would break the "None of these" rule keeps only the other choices.
pub fn carry_over(new: &Lens, answers: &BTreeMap<String, Answer>) -> CarriedAnswers {
    let mut out = CarriedAnswers::default();
    for (qid, answer) in answers {
        let Some(target) = new.question(qid) else {
            out.dropped_questions.push(qid.clone());
            continue;
        };
        let known: BTreeSet<&str> = target
            .question
            .choices
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        let mut kept = Answer {
            choices: BTreeSet::new(),
            notes: answer.notes.clone(),
            not_applicable: answer.not_applicable.clone(),
        };
        for cid in &answer.choices {
            if known.contains(cid.as_str()) {
                kept.choices.insert(cid.clone());
            } else {
                out.dropped_choices.push((qid.clone(), cid.clone()));
            }
        }
        if kept.choices.len() > 1 {
            let nones: Vec<String> = kept
                .choices
                .iter()
                .filter(|c| lens::is_none_of_these(c))
                .cloned()
                .collect();
            for n in nones {
                kept.choices.remove(&n);
                out.dropped_choices.push((qid.clone(), n));
            }
        }
        out.answers.insert(qid.clone(), kept);
    }
    out
}

#[cfg(test)]
mod tests;
