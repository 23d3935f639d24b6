//! The dashboard's files, compiled into the binary (`include_str!`): plain HTML, CSS and
//! JavaScript with no framework and no build step, so the page works offline, from any
//! install, exactly as reviewed in `crates/api/src/ui/assets/`.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The app shell (`/ui/`).
pub const INDEX: &str = include_str!("assets/index.html");
/// The login page (`/ui/login`); `<!--MESSAGE-->` is where a refusal is said.
pub const LOGIN: &str = include_str!("assets/login.html");

/// One static file under `/ui/static/`.
#[derive(Debug)]
pub struct Asset {
    /// Its name in the URL.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its content.
    pub body: &'static str,
    etag: OnceLock<String>,
}

impl Asset {
    const fn new(name: &'static str, content_type: &'static str, body: &'static str) -> Self {
        Self {
            name,
            content_type,
            body,
            etag: OnceLock::new(),
        }
    }

    /// A strong ETag from the content, so a browser revalidates instead of downloading.
    pub fn etag(&self) -> &str {
        self.etag.get_or_init(|| {
            let d = Sha256::digest(self.body.as_bytes());
            let hex: String = d.iter().take(12).map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
    }
}

static FILES: [Asset; 3] = [
    Asset::new(
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    Asset::new(
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/charts.js"),
    ),
    Asset::new(
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
];

/// The static file called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Asset> {
    FILES.iter().find(|a| a.name == name)
}

/// Every static file.
pub fn all() -> &'static [Asset] {
    &FILES
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ` onclick=`, ` onload=` …: an attribute starting with "on" followed by letters and `=`.
    fn has_inline_handler(page: &str) -> bool {
        page.match_indices(" on").any(|(i, _)| {
            let rest = &page[i + 3..];
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        })
    }

    #[test]
    fn no_inline_script_or_style_and_nothing_from_elsewhere() {
        for page in [INDEX, LOGIN] {
            assert!(!page.contains("<script>"), "inline script");
            assert!(!page.contains("style="), "inline style");
            assert!(!has_inline_handler(page), "an inline event handler");
            assert!(
                !page.contains("http://") && !page.contains("https://"),
                "external URL"
            );
        }
        for a in all() {
            assert!(
                !a.body.contains("http://") && !a.body.contains("https://"),
                "{}",
                a.name
            );
            assert!(!a.body.contains("eval("), "{}", a.name);
            assert!(
                !a.body.contains("innerHTML"),
                "{}: build nodes, not HTML strings",
                a.name
            );
        }
        assert!(LOGIN.contains("<!--MESSAGE-->"));
        assert!(find("app.js").is_some_and(|a| a.etag().len() == 26));
        assert!(find("../lib.rs").is_none());
    }
}
