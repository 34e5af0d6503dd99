//! Files on tickets: what a file is called, what it is, and whether the desk takes it.
//!
//! A file is known by the SHA-256 of its bytes. Its type is what its bytes show it to be
//! (their magic numbers), checked against what the uploader declared: a zip declared as text,
//! or a page declared as a picture, is refused rather than stored under a false name.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// The largest file taken unless the configuration says otherwise.
pub const ATTACHMENT_MAX_BYTES: usize = 10 * 1024 * 1024;
/// The longest file name kept; a longer one is cut, keeping its extension.
pub const FILE_NAME_MAX: usize = 200;

/// The types taken unless the configuration says otherwise: pictures, documents, text, logs
/// and archives. Never HTML or SVG (a browser would run them).
pub const DEFAULT_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/json",
    "application/zip",
    "application/gzip",
];

/// Where a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentSource {
    /// Uploaded through the API or a page.
    Upload,
    /// Carried by an email message.
    Email,
    /// Added to the ticket's AWS Support case.
    AwsCase,
}

impl AttachmentSource {
    pub const ALL: &'static [AttachmentSource] = &[
        AttachmentSource::Upload,
        AttachmentSource::Email,
        AttachmentSource::AwsCase,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentSource::Upload => "upload",
            AttachmentSource::Email => "email",
            AttachmentSource::AwsCase => "aws_case",
        }
    }

    pub fn parse(s: &str) -> Option<AttachmentSource> {
        match s {
            "upload" => Some(AttachmentSource::Upload),
            "email" => Some(AttachmentSource::Email),
            "aws_case" => Some(AttachmentSource::AwsCase),
            _ => None,
        }
    }
}

/// A file on a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attachment {
    pub id: i64,
    pub ticket_id: i64,
    /// The comment it came with, if any.
    pub comment_id: Option<i64>,
    /// The file's name, without any folder.
    pub name: String,
    /// What its bytes are, e.g. `image/png`.
    pub content_type: String,
    pub size: i64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Whether the requester sees it (internal files are for staff only).
    pub public: bool,
    pub source: AttachmentSource,
    /// Who added it, as in the audit trail.
    pub added_by: String,
    /// Sent with the ticket's AWS Support case.
    pub to_case: bool,
    /// When it went to the AWS Support case.
    pub sent_to_case_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What the desk takes: how large, and of which types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentPolicy {
    pub max_bytes: usize,
    /// Types such as `image/png`, or a family such as `image/*`.
    pub types: Vec<String>,
}

impl Default for AttachmentPolicy {
    fn default() -> Self {
        AttachmentPolicy {
            max_bytes: ATTACHMENT_MAX_BYTES,
            types: DEFAULT_TYPES.iter().map(|t| (*t).to_owned()).collect(),
        }
    }
}

/// Why a file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the file was declared as {declared} but its content is {found}")]
    Mismatch { declared: String, found: String },
    #[error("files of type {0} are not taken here")]
    NotAllowed(String),
}

/// A file's name as the desk keeps it: no folders (`../../etc/passwd` is `passwd`), no
/// control characters or quotes, no leading dots, at most [`FILE_NAME_MAX`] characters with
/// the extension kept; `attachment` when nothing is left.
pub fn file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| {
            !c.is_control()
                && !is_format(*c)
                && !matches!(c, '"' | '<' | '>' | '|' | ':' | '*' | '?')
        })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    if cleaned.is_empty() {
        return "attachment".to_owned();
    }
    if cleaned.chars().count() <= FILE_NAME_MAX {
        return cleaned.to_owned();
    }
    let (stem, ext) = match cleaned.rsplit_once('.') {
        Some((stem, ext)) if ext.chars().count() <= 10 && !stem.is_empty() => (stem, ext),
        _ => (cleaned, ""),
    };
    let room = FILE_NAME_MAX - ext.chars().count() - usize::from(!ext.is_empty());
    let stem: String = stem.chars().take(room).collect();
    if ext.is_empty() {
        stem
    } else {
        format!("{stem}.{ext}")
    }
}

/// Invisible characters that change how a name reads (a right-to-left override makes
/// `gpj.exe` show as `exe.jpg`).
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{180E}' | '\u{3164}'
        | '\u{FEFF}' | '\u{FFA0}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}')
}

/// The extensions a type's files carry, the usual one first.
fn extensions(t: &str) -> &'static [&'static str] {
    match t {
        "image/png" => &["png"],
        "image/jpeg" => &["jpg", "jpeg"],
        "image/gif" => &["gif"],
        "image/webp" => &["webp"],
        "application/pdf" => &["pdf"],
        "text/plain" => &[
            "txt", "log", "text", "md", "conf", "cfg", "ini", "yaml", "yml", "out", "err",
        ],
        "text/csv" => &["csv"],
        "application/json" => &["json"],
        "application/zip" => &["zip"],
        "application/gzip" => &["gz", "tgz"],
        _ => &[],
    }
}

/// A file's name as it is kept for a file of type `t`: when its extension is not one of the
/// type's, the type's own is added (`report.html` sent as text is `report.html.txt`), so that
/// a downloaded file opens as what it is, never as a page or a program.
pub fn name_for_type(name: &str, t: &str) -> String {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let known = extensions(t);
    let kept = match known.first() {
        Some(_) if known.contains(&ext.as_str()) => return file_name(name),
        Some(first) => format!("{name}.{first}"),
        // A type without a known extension: a name that would open as a page or a program
        // gets `.bin`.
        None if RUNNABLE.contains(&ext.as_str()) => format!("{name}.bin"),
        None => return file_name(name),
    };
    file_name(&kept)
}

/// Extensions a system would open as a page, a script or a program.
const RUNNABLE: &[&str] = &[
    "html", "htm", "xhtml", "shtml", "svg", "svgz", "xml", "js", "mjs", "hta", "exe", "com", "bat",
    "cmd", "ps1", "psm1", "vbs", "vbe", "jse", "wsf", "wsh", "scr", "msi", "msp", "jar", "sh",
    "bash", "zsh", "command", "app", "lnk", "reg", "cpl", "dll", "py", "pl", "rb", "php",
    "desktop", "appimage", "deb", "rpm", "dmg", "pkg", "iso", "docm", "xlsm", "pptm",
];

/// Hex SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `s` is a hex SHA-256, as a stored file's key must be.
pub fn is_digest(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A media type in lower case without parameters, with common aliases to one name.
pub fn media_type(raw: &str) -> String {
    let base = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg".into(),
        "application/x-zip-compressed" | "application/x-zip" => "application/zip".into(),
        "application/x-gzip" | "application/gzip-compressed" => "application/gzip".into(),
        "text/json" => "application/json".into(),
        "text/x-log" => "text/plain".into(),
        _ => base,
    }
}

/// Types that are text: their bytes must read as UTF-8 without NULs.
fn is_text(t: &str) -> bool {
    t.starts_with("text/") || t == "application/json"
}

/// The type a file's name suggests, for text the uploader did not name a type for.
fn text_type_of_name(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "csv" => "text/csv",
        "json" => "application/json",
        _ => "text/plain",
    }
}

/// What the bytes' magic numbers show, in the desk's names.
fn sniff(bytes: &[u8]) -> Option<String> {
    infer::get(bytes).map(|t| media_type(t.mime_type()))
}

fn looks_like_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

/// Checks a file against `policy` and returns the type it is kept as. `declared` is what the
/// uploader said (a multipart part's or a MIME part's `Content-Type`), if anything.
pub fn check(
    policy: &AttachmentPolicy,
    name: &str,
    declared: Option<&str>,
    bytes: &[u8],
) -> Result<String, AttachmentError> {
    if bytes.is_empty() {
        return Err(AttachmentError::Empty);
    }
    if bytes.len() > policy.max_bytes {
        return Err(AttachmentError::TooLarge {
            size: bytes.len(),
            limit: policy.max_bytes,
        });
    }
    let declared = declared
        .map(media_type)
        .filter(|d| !d.is_empty() && d != "application/octet-stream");
    let found = sniff(bytes);
    let kept = match (declared, found) {
        (Some(d), Some(f)) if d == f => d,
        (Some(d), Some(f)) => {
            return Err(AttachmentError::Mismatch {
                declared: d,
                found: f,
            })
        }
        (None, Some(f)) => f,
        (Some(d), None) if is_text(&d) => {
            if !looks_like_text(bytes) {
                return Err(AttachmentError::Mismatch {
                    declared: d,
                    found: "binary data".into(),
                });
            }
            d
        }
        // A binary type whose bytes do not show it: a PDF that is not one, say.
        (Some(d), None) => {
            return Err(AttachmentError::Mismatch {
                declared: d,
                found: if looks_like_text(bytes) {
                    "text".into()
                } else {
                    "unrecognised binary data".into()
                },
            })
        }
        (None, None) if looks_like_text(bytes) => text_type_of_name(name).to_owned(),
        (None, None) => "application/octet-stream".to_owned(),
    };
    if !allowed(&policy.types, &kept) {
        return Err(AttachmentError::NotAllowed(kept));
    }
    Ok(kept)
}

/// Whether `t` is one of `types` (`image/*` names a family).
pub fn allowed(types: &[String], t: &str) -> bool {
    types.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        match a.strip_suffix("/*") {
            Some(family) => t.split('/').next() == Some(family),
            None => a == t,
        }
    })
}

/// The `Content-Type` a file is served with: never one a browser would run as a page.
pub fn served_type(t: &str) -> String {
    if t.starts_with("text/") {
        if t == "text/html" || t == "text/xml" || t == "text/javascript" {
            return "application/octet-stream".into();
        }
        return format!("{t}; charset=utf-8");
    }
    if t.contains("svg")
        || t.contains("html")
        || t.contains("xml")
        || t.contains("javascript")
        || !t.contains('/')
    {
        return "application/octet-stream".into();
    }
    t.to_owned()
}

/// Readable size: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn readable_size(size: i64) -> String {
    const KIB: f64 = 1024.0;
    let s = size as f64;
    if s < KIB {
        format!("{size} B")
    } else if s < KIB * KIB {
        format!("{:.1} KiB", s / KIB)
    } else {
        format!("{:.1} MiB", s / (KIB * KIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
    const ZIP: &[u8] = b"PK\x03\x04\x14\0\0\0\x08\0";

    fn policy() -> AttachmentPolicy {
        AttachmentPolicy::default()
    }

    #[test]
    fn names_lose_their_folders_and_hidden_dots() {
        assert_eq!(file_name("../../etc/passwd"), "passwd");
        assert_eq!(file_name("C:\\Users\\me\\shot.png"), "shot.png");
        assert_eq!(file_name(".bashrc"), "bashrc");
        assert_eq!(file_name("a\u{0}b\r\n\"c\".txt"), "abc.txt");
        assert_eq!(file_name("../.."), "attachment");
        assert_eq!(file_name(""), "attachment");
        let long = format!("{}.log", "x".repeat(500));
        let kept = file_name(&long);
        assert_eq!(kept.chars().count(), FILE_NAME_MAX);
        assert!(kept.ends_with(".log"));
    }

    #[test]
    fn names_end_as_what_the_file_is() {
        assert_eq!(
            name_for_type("report.html", "text/plain"),
            "report.html.txt"
        );
        assert_eq!(name_for_type("run.ps1", "text/plain"), "run.ps1.txt");
        assert_eq!(name_for_type("app.log", "text/plain"), "app.log");
        assert_eq!(name_for_type("shot.PNG", "image/png"), "shot.PNG");
        assert_eq!(name_for_type("shot", "image/png"), "shot.png");
        assert_eq!(name_for_type("photo.jpeg", "image/jpeg"), "photo.jpeg");
        assert_eq!(name_for_type("x.exe", "application/x-custom"), "x.exe.bin");
        assert_eq!(name_for_type("x.dat", "application/x-custom"), "x.dat");
        // A right-to-left override cannot disguise the extension.
        assert_eq!(file_name("invoice\u{202E}gpj.exe"), "invoicegpj.exe");
        let long = format!("{}.html", "x".repeat(300));
        let kept = name_for_type(&long, "text/plain");
        assert!(
            kept.ends_with(".txt") && kept.chars().count() <= FILE_NAME_MAX,
            "{kept}"
        );
    }

    #[test]
    fn a_picture_is_taken_as_what_its_bytes_are() {
        assert_eq!(
            check(&policy(), "s.png", Some("image/png"), PNG).unwrap(),
            "image/png"
        );
        assert_eq!(check(&policy(), "s", None, PNG).unwrap(), "image/png");
        assert_eq!(
            check(&policy(), "s", Some("application/octet-stream"), PNG).unwrap(),
            "image/png"
        );
    }

    #[test]
    fn a_zip_declared_as_text_is_refused() {
        let e = check(&policy(), "notes.txt", Some("text/plain"), ZIP).unwrap_err();
        assert_eq!(
            e,
            AttachmentError::Mismatch {
                declared: "text/plain".into(),
                found: "application/zip".into()
            }
        );
    }

    #[test]
    fn a_page_declared_as_a_picture_is_refused() {
        let e = check(
            &policy(),
            "x.png",
            Some("image/png"),
            b"<html><script>x</script>",
        )
        .unwrap_err();
        assert!(matches!(e, AttachmentError::Mismatch { .. }), "{e:?}");
    }

    #[test]
    fn text_must_be_text_and_is_named_by_its_extension() {
        assert_eq!(
            check(&policy(), "app.log", None, b"line 1\nline 2").unwrap(),
            "text/plain"
        );
        assert_eq!(
            check(&policy(), "rows.csv", None, b"a,b\n1,2").unwrap(),
            "text/csv"
        );
        assert!(check(&policy(), "x.txt", Some("text/plain"), b"a\0b").is_err());
        assert!(check(&policy(), "x.bin", None, b"\xff\xfe\0\x01").is_err());
    }

    #[test]
    fn html_and_svg_are_not_taken_by_default() {
        let e = check(&policy(), "x.svg", Some("image/svg+xml"), b"<svg></svg>").unwrap_err();
        assert!(matches!(
            e,
            AttachmentError::Mismatch { .. } | AttachmentError::NotAllowed(_)
        ));
        let e = check(&policy(), "x.html", Some("text/html"), b"<p>hi</p>").unwrap_err();
        assert_eq!(e, AttachmentError::NotAllowed("text/html".into()));
    }

    #[test]
    fn size_and_emptiness_are_checked() {
        let small = AttachmentPolicy {
            max_bytes: 4,
            ..policy()
        };
        assert_eq!(
            check(&small, "a.txt", None, b"hello").unwrap_err(),
            AttachmentError::TooLarge { size: 5, limit: 4 }
        );
        assert_eq!(
            check(&policy(), "a.txt", None, b"").unwrap_err(),
            AttachmentError::Empty
        );
    }

    #[test]
    fn families_and_aliases() {
        let images = vec!["image/*".to_owned()];
        assert!(allowed(&images, "image/webp"));
        assert!(!allowed(&images, "application/pdf"));
        assert_eq!(media_type("Image/JPG; q=1"), "image/jpeg");
    }

    #[test]
    fn nothing_is_served_as_a_page() {
        for t in [
            "text/html",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/xml",
            "weird",
        ] {
            assert_eq!(served_type(t), "application/octet-stream", "{t}");
        }
        assert_eq!(served_type("text/plain"), "text/plain; charset=utf-8");
        assert_eq!(served_type("image/png"), "image/png");
    }

    #[test]
    fn sources_read_back_as_written() {
        for s in AttachmentSource::ALL {
            assert_eq!(AttachmentSource::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn digests_are_hex_sha256() {
        let d = digest(b"abc");
        assert_eq!(
            d,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_digest(&d));
        assert!(!is_digest("../x"));
    }

    proptest! {
        #[test]
        fn names_never_hold_a_folder(raw in ".{0,400}") {
            let n = file_name(&raw);
            prop_assert!(!n.contains('/') && !n.contains('\\'));
            prop_assert!(!n.starts_with('.'));
            prop_assert!(!n.is_empty());
            prop_assert!(n.chars().count() <= FILE_NAME_MAX);
            prop_assert!(!n.chars().any(char::is_control));
        }

        #[test]
        fn check_never_panics_and_a_kept_type_is_allowed(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            declared in proptest::option::of("[a-z]{1,8}/[a-z+.*-]{1,12}"),
        ) {
            if let Ok(t) = check(&policy(), "f", declared.as_deref(), &bytes) {
                prop_assert!(allowed(&policy().types, &t));
            }
        }
    }
}
