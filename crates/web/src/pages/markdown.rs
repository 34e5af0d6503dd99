//! Markdown from people (ticket descriptions, comments) made safe to show: raw HTML is shown as
//! text, links may only lead to web, mail or relative addresses, and images become links.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

/// Renders Markdown as HTML that runs nothing and loads nothing.
pub fn to_html(source: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(source, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        })
        | Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        other => other,
    });
    let mut html = String::with_capacity(source.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// The address itself when it leads to the web, to mail or within opsdesk; `#` otherwise
/// (`javascript:`, `data:`, ... however they are spelled).
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    // Browsers drop whitespace and control characters inside a scheme: so does this check.
    let plain: String = url
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect::<String>()
        .to_ascii_lowercase();
    let scheme_end = plain.find(':');
    let path_start = plain.find(['/', '?', '#']);
    let has_scheme = match (scheme_end, path_start) {
        (Some(colon), Some(slash)) => colon < slash,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let allowed = ["http:", "https:", "mailto:"];
    if !has_scheme || allowed.iter().any(|s| plain.starts_with(s)) {
        url
    } else {
        CowStr::Borrowed("#")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_is_shown_as_text() {
        let html =
            to_html("hello <script>alert(1)</script> <b>bold</b>\n\n<img src=x onerror=alert(1)>");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
    }

    #[test]
    fn markdown_still_formats() {
        let html =
            to_html("**bold** and `code`\n\n- one\n- two\n\n[docs](https://example.com/a?b=1&c=2)");
        assert!(html.contains("<strong>bold</strong>"), "{html}");
        assert!(html.contains("<code>code</code>"), "{html}");
        assert!(html.contains("<li>one</li>"), "{html}");
        assert!(
            html.contains(r#"<a href="https://example.com/a?b=1&amp;c=2">docs</a>"#),
            "{html}"
        );
    }

    #[test]
    fn links_cannot_run_scripts() {
        for url in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "java\tscript:alert(1)",
            " javascript:alert(1)",
            "data:text/html;base64,PHNjcmlwdD4=",
            "vbscript:msgbox",
        ] {
            let html = to_html(&format!("[x](<{url}>)"));
            assert!(html.contains(r##"<a href="#">x</a>"##), "{url}: {html}");
        }
        let html = to_html("![pixel](https://tracker.example/p.gif)");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains(r#"<a href="https://tracker.example/p.gif">pixel</a>"#),
            "{html}"
        );
        for url in ["/tickets/OPS-1", "#top", "mailto:ops@example.com", "OPS-2"] {
            let html = to_html(&format!("[x]({url})"));
            assert!(html.contains(&format!(r#"href="{url}""#)), "{url}: {html}");
        }
    }
}
