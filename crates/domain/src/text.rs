//! Text that comes from outside (a request, an identity provider) on its way to storage or
//! the log. Anyone can send it, so what is kept of it is bounded.

/// The most characters of outside text that are stored or logged.
pub const OUTSIDE_TEXT_MAX: usize = 256;

/// `text` as it may be stored or logged: at most [`OUTSIDE_TEXT_MAX`] characters (the last one
/// an ellipsis when text was cut), control characters (line breaks that would forge log lines)
/// replaced by U+FFFD.
pub fn clip(text: &str) -> String {
    let clean = |c: char| if c.is_control() { '\u{fffd}' } else { c };
    if text.chars().nth(OUTSIDE_TEXT_MAX).is_none() {
        return text.chars().map(clean).collect();
    }
    let mut kept: String = text.chars().take(OUTSIDE_TEXT_MAX - 1).map(clean).collect();
    kept.push('…');
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_text_is_kept_and_long_text_cut() {
        assert_eq!(clip("ana@example.com"), "ana@example.com");
        assert_eq!(clip("a\nb"), "a\u{fffd}b");
        let long = "é".repeat(60 * 1024);
        let kept = clip(&long);
        assert_eq!(kept.chars().count(), OUTSIDE_TEXT_MAX);
        assert!(kept.ends_with('…'));
        assert_eq!(
            clip(&"x".repeat(OUTSIDE_TEXT_MAX)),
            "x".repeat(OUTSIDE_TEXT_MAX)
        );
    }

    proptest! {
        #[test]
        fn clipped_text_is_bounded_and_clean(text in ".*") {
            let kept = clip(&text);
            prop_assert!(kept.chars().count() <= OUTSIDE_TEXT_MAX);
            prop_assert!(!kept.chars().any(char::is_control));
        }
    }
}
