//! The risk-rule condition language of a custom lens: choice ids joined by `&&`, `||` and `!`,
//! grouped with parentheses, or the single word `default`.
//!
//! Precedence, tightest first: `!`, `&&`, `||`; `&&` and `||` group from the left. A choice id
//! in a condition stands for "this choice is selected".

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The word that makes a rule the fallback of its question.
pub const DEFAULT_CONDITION: &str = "default";

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Applies when no other rule of the question does.
    Default,
    Expr(Expr),
}

/// A boolean expression over the selected choice ids of one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Choice(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// Why a condition could not be read. `at` is the character offset in the condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("is empty")]
    Empty,
    #[error("has an unexpected character '{found}' at {at}")]
    BadCharacter { found: char, at: usize },
    #[error("has a single '{found}' at {at}; write '&&' or '||'")]
    SingleOperator { found: char, at: usize },
    #[error("has '(' at {at} that is never closed")]
    UnclosedParen { at: usize },
    #[error("has ')' at {at} with no '(' before it")]
    UnopenedParen { at: usize },
    #[error("expects a choice id, '!' or '(' at {at}")]
    ExpectedOperand { at: usize },
    #[error("expects '&&', '||' or the end at {at}")]
    ExpectedOperator { at: usize },
    #[error("uses 'default' inside an expression at {at}; 'default' must be the whole condition")]
    DefaultInExpression { at: usize },
    #[error("names choice '{id}', which this question does not have")]
    UnknownChoice { id: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Id(String),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ConditionError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((i, Token::Open));
                i += 1;
            }
            ')' => {
                out.push((i, Token::Close));
                i += 1;
            }
            '!' => {
                out.push((i, Token::Not));
                i += 1;
            }
            '&' | '|' => {
                if chars.get(i + 1) == Some(&c) {
                    out.push((i, if c == '&' { Token::And } else { Token::Or }));
                    i += 2;
                } else {
                    return Err(ConditionError::SingleOperator { found: c, at: i });
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push((start, Token::Id(chars[start..i].iter().collect())));
            }
            other => {
                return Err(ConditionError::BadCharacter {
                    found: other,
                    at: i,
                })
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(at, _)| *at)
    }

    fn or(&mut self, depth: usize) -> Result<Expr, ConditionError> {
        let mut left = self.and(depth)?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            let right = self.and(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, ConditionError> {
        let mut left = self.unary(depth)?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            let right = self.unary(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, ConditionError> {
        let at = self.at();
        match self.tokens.get(self.pos).map(|(_, t)| t.clone()) {
            Some(Token::Not) => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary(depth)?)))
            }
            Some(Token::Open) => {
                self.pos += 1;
                let inner = self.or(depth + 1)?;
                match self.peek() {
                    Some(Token::Close) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    None => Err(ConditionError::UnclosedParen { at }),
                    Some(_) => Err(ConditionError::ExpectedOperator { at: self.at() }),
                }
            }
            Some(Token::Id(id)) if id == DEFAULT_CONDITION => {
                Err(ConditionError::DefaultInExpression { at })
            }
            Some(Token::Id(id)) => {
                self.pos += 1;
                Ok(Expr::Choice(id))
            }
            Some(Token::Close) if depth == 0 => Err(ConditionError::UnopenedParen { at }),
            _ => Err(ConditionError::ExpectedOperand { at }),
        }
    }
}

impl Condition {
    /// Reads a condition without checking its choice ids (see [`Condition::check_choices`]).
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        if text.trim().is_empty() {
            return Err(ConditionError::Empty);
        }
        if text.trim() == DEFAULT_CONDITION {
            return Ok(Condition::Default);
        }
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            end: text.chars().count(),
        };
        let expr = parser.or(0)?;
        match parser.peek() {
            None => Ok(Condition::Expr(expr)),
            Some(Token::Close) => Err(ConditionError::UnopenedParen { at: parser.at() }),
            Some(_) => Err(ConditionError::ExpectedOperator { at: parser.at() }),
        }
    }

    /// Reads a condition and checks that every choice id it names is in `choices`.
    pub fn parse_for<'a>(
        text: &str,
        choices: impl IntoIterator<Item = &'a str>,
    ) -> Result<Condition, ConditionError> {
        let condition = Condition::parse(text)?;
        condition.check_choices(&choices.into_iter().collect())?;
        Ok(condition)
    }

    /// Fails on the first choice id (in reading order) that is not in `choices`.
    pub fn check_choices(&self, choices: &BTreeSet<&str>) -> Result<(), ConditionError> {
        match self {
            Condition::Default => Ok(()),
            Condition::Expr(e) => match e.choice_ids().into_iter().find(|id| !choices.contains(id))
            {
                Some(id) => Err(ConditionError::UnknownChoice { id: id.to_string() }),
                None => Ok(()),
            },
        }
    }
}

impl Expr {
    /// True when the expression holds for this set of selected choice ids.
    pub fn holds(&self, selected: &BTreeSet<&str>) -> bool {
        match self {
            Expr::Choice(id) => selected.contains(id.as_str()),
            Expr::Not(e) => !e.holds(selected),
            Expr::And(a, b) => a.holds(selected) && b.holds(selected),
            Expr::Or(a, b) => a.holds(selected) || b.holds(selected),
        }
    }

    /// The choice ids the expression names, in reading order (repeats included).
    pub fn choice_ids(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Choice(id) => out.push(id),
            Expr::Not(e) => e.collect(out),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }

    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, parent: u8, right: bool) -> fmt::Result {
        // Precedence: Or 1, And 2, Not/Choice 3. A right operand of the same level keeps its
        // parentheses so the tree reads back with the same shape.
        let own = match self {
            Expr::Or(..) => 1,
            Expr::And(..) => 2,
            _ => 3,
        };
        if own < parent || (right && own == parent && own < 3) {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Choice(id) => write!(f, "{id}"),
            Expr::Not(e) => {
                write!(f, "!")?;
                e.fmt_operand(f, 3, false)
            }
            Expr::And(a, b) => {
                a.fmt_operand(f, 2, false)?;
                write!(f, " && ")?;
                b.fmt_operand(f, 2, true)
            }
            Expr::Or(a, b) => {
                a.fmt_operand(f, 1, false)?;
                write!(f, " || ")?;
                b.fmt_operand(f, 1, true)
            }
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Default => write!(f, "{DEFAULT_CONDITION}"),
            Condition::Expr(e) => write!(f, "{e}"),
        }
    }
}

/// The risk a rule gives, in the lens format's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RuleRisk {
    #[serde(rename = "HIGH_RISK")]
    High,
    #[serde(rename = "MEDIUM_RISK")]
    Medium,
    #[serde(rename = "NO_RISK")]
    None,
}

impl RuleRisk {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleRisk::High => "HIGH_RISK",
            RuleRisk::Medium => "MEDIUM_RISK",
            RuleRisk::None => "NO_RISK",
        }
    }
}

/// Gives the risk of a question from its rules (condition, risk) and the selected choice ids.
///
/// The rules other than `default` are tried in the order the lens lists them and the first
/// whose condition holds gives the risk; `default` applies only when none holds, wherever it
/// is listed. A question without a `default` rule whose conditions all fail has no risk.
/// This is the order the Well-Architected Tool was seen to use: with a NO_RISK rule listed
/// before a MEDIUM_RISK rule, an answer meeting both scores NO_RISK.
pub fn evaluate<'r>(
    rules: impl IntoIterator<Item = (&'r Condition, RuleRisk)>,
    selected: &BTreeSet<&str>,
) -> RuleRisk {
    let mut fallback = None;
    for (condition, risk) in rules {
        match condition {
            Condition::Default => {
                fallback.get_or_insert(risk);
            }
            Condition::Expr(e) => {
                if e.holds(selected) {
                    return risk;
                }
            }
        }
    }
    fallback.unwrap_or(RuleRisk::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set<'a>(ids: &[&'a str]) -> BTreeSet<&'a str> {
        ids.iter().copied().collect()
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let c = Condition::parse("a || b && !c").unwrap();
        assert_eq!(c.to_string(), "a || b && !c");
        let Condition::Expr(e) = c else { panic!() };
        assert!(e.holds(&set(&["a", "c"])));
        assert!(e.holds(&set(&["b"])));
        assert!(!e.holds(&set(&["b", "c"])));
    }

    #[test]
    fn parentheses_change_grouping_and_print_back() {
        let c = Condition::parse("(a || b) && !(c && d)").unwrap();
        assert_eq!(c.to_string(), "(a || b) && !(c && d)");
        let Condition::Expr(e) = c else { panic!() };
        assert!(e.holds(&set(&["b", "c"])));
        assert!(!e.holds(&set(&["b", "c", "d"])));
        assert!(!e.holds(&set(&["c"])));
    }

    #[test]
    fn default_is_only_a_whole_condition() {
        assert_eq!(Condition::parse(" default ").unwrap(), Condition::Default);
        assert_eq!(
            Condition::parse("a || default"),
            Err(ConditionError::DefaultInExpression { at: 5 })
        );
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert_eq!(Condition::parse("  "), Err(ConditionError::Empty));
        assert_eq!(
            Condition::parse("(a && b"),
            Err(ConditionError::UnclosedParen { at: 0 })
        );
        assert_eq!(
            Condition::parse("a && b)"),
            Err(ConditionError::UnopenedParen { at: 6 })
        );
        assert_eq!(
            Condition::parse(")a"),
            Err(ConditionError::UnopenedParen { at: 0 })
        );
        assert_eq!(
            Condition::parse("a & b"),
            Err(ConditionError::SingleOperator { found: '&', at: 2 })
        );
        assert_eq!(
            Condition::parse("a && "),
            Err(ConditionError::ExpectedOperand { at: 5 })
        );
        assert_eq!(
            Condition::parse("a b"),
            Err(ConditionError::ExpectedOperator { at: 2 })
        );
        assert_eq!(
            Condition::parse("a-b"),
            Err(ConditionError::BadCharacter { found: '-', at: 1 })
        );
        assert_eq!(
            Condition::parse_for("a && zz", ["a", "b"]),
            Err(ConditionError::UnknownChoice { id: "zz".into() })
        );
        let msg = ConditionError::UnknownChoice { id: "zz".into() }.to_string();
        assert!(msg.contains("'zz'"), "{msg}");
    }

    #[test]
    fn first_listed_rule_that_holds_wins_and_default_is_last() {
        let high = Condition::parse("!a").unwrap();
        let none = Condition::parse("a && b").unwrap();
        let medium = Condition::parse("a").unwrap();
        let dflt = Condition::Default;
        let rules = [
            (&dflt, RuleRisk::High),
            (&none, RuleRisk::None),
            (&medium, RuleRisk::Medium),
        ];
        assert_eq!(evaluate(rules, &set(&["a", "b"])), RuleRisk::None);
        assert_eq!(evaluate(rules, &set(&["a"])), RuleRisk::Medium);
        assert_eq!(evaluate(rules, &set(&["b"])), RuleRisk::High);
        let no_default = [(&high, RuleRisk::High)];
        assert_eq!(evaluate(no_default, &set(&["a"])), RuleRisk::None);
    }
}
