//! A host's look, ready for every page: the values templates see, the inline style with
//! the accent colour, and the `Content-Security-Policy` that lets exactly its logo and
//! stylesheet in.

use std::sync::Arc;

use minijinja::{context, Value};

use crate::config::PageLook;

/// The shipped style; `ACCENT` is replaced by the look's accent colour.
const STYLE: &str =
    "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}\
header{max-width:32rem;margin:2rem auto 0;display:flex;align-items:center;gap:.75rem;padding:0 1rem}\
header .logo{max-height:2.5rem;max-width:10rem}header .shop{font-weight:600;font-size:1.1rem}\
main{max-width:32rem;margin:2rem auto;background:#fff;padding:2rem 2.5rem;border-radius:8px;\
box-shadow:0 1px 4px rgba(0,0,0,.12)}h1{font-size:1.4rem;margin-top:0}\
footer{max-width:32rem;margin:0 auto 2rem;padding:0 1rem;color:#4b5563;font-size:.9rem}\
p{line-height:1.5}a{color:ACCENT}.id,.hint,.detail{color:#6b7280;font-size:.85rem}\
label{display:block;font-weight:600;margin:1rem 0 .3rem}\
input[type=text]{width:100%;box-sizing:border-box;padding:.55rem;font-size:1rem;border:1px solid #6b7280;border-radius:4px}\
button{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem;border:0;border-radius:4px;background:ACCENT;color:#fff;cursor:pointer}\
button.idp{width:100%;margin:.3rem 0;text-align:left}form{margin:0}\
ul.sessions{list-style:none;padding:0}ul.sessions li{border-top:1px solid #e5e7eb;padding:.8rem 0}\
button.secondary{background:#fff;color:ACCENT;border:1px solid ACCENT;margin-top:.5rem;padding:.35rem .8rem;font-size:.9rem}\
.error{background:#fde8e8;color:#8a1c1c;padding:.6rem .8rem;border-radius:4px}\
@media (max-width:36rem){main{margin:1rem .5rem;padding:1.25rem}}";

/// The accent colour where none is set: 6.4:1 against white.
const DEFAULT_ACCENT: &str = "#0b5cad";

/// One host's look, prepared once per config.
pub struct Look {
    /// What templates see as `look`.
    pub values: Value,
    /// The inline `<style>`.
    pub style: Value,
    /// The pages' CSP without and with the kept form's script.
    pub policy: String,
    pub policy_with_script: String,
    /// `pages.stylesheet`'s CSS, served at `<prefix>/pages.css`.
    pub stylesheet: Option<Arc<str>>,
}

impl Look {
    pub fn new(look: &PageLook, stylesheet_path: &str, script_hash: &str) -> Self {
        let stylesheet_href = look.stylesheet.as_ref().map(|css| {
            // The content's hash in the address: a changed file is fetched again at once.
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(css.as_bytes());
            let version: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            format!("{stylesheet_path}?v={version}")
        });
        let values = context! {
            shop_name => look.shop_name,
            logo_url => look.logo_url,
            support_contact => look.support_contact.as_deref().map(contact_html),
            stylesheet => stylesheet_href,
        };
        let accent = look.accent_color.as_deref().unwrap_or(DEFAULT_ACCENT);
        let style = Value::from_safe_string(STYLE.replace("ACCENT", accent));
        let logo_origin = (look.logo_url.as_deref())
            .and_then(|url| url::Url::parse(url).ok())
            .map(|url| url.origin().ascii_serialization());
        let images = match logo_origin {
            Some(origin) => format!("img-src 'self' data: {origin}"),
            None => "img-src 'self' data:".to_owned(),
        };
        let styles = match look.stylesheet {
            Some(_) => "style-src 'self' 'unsafe-inline'",
            None => "style-src 'unsafe-inline'",
        };
        let policy = format!(
            "default-src 'none'; {styles}; {images}; frame-ancestors 'none'; base-uri 'none'"
        );
        let policy_with_script = format!(
            "default-src 'none'; script-src 'sha256-{script_hash}'; {styles}; {images}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        );
        Look {
            values,
            style,
            policy,
            policy_with_script,
            stylesheet: look.stylesheet.clone(),
        }
    }
}

/// The support contact as HTML: a `mailto:` or web link where it is one, else its text.
fn contact_html(contact: &str) -> Value {
    let escaped = super::escape(contact);
    let is_email = contact.contains('@')
        && !contact.contains([' ', ':', '/'])
        && contact.split('@').all(|part| !part.is_empty());
    let html = if is_email {
        format!("<a href=\"mailto:{escaped}\">{escaped}</a>")
    } else if contact.starts_with("https://") && url::Url::parse(contact).is_ok() {
        format!("<a href=\"{escaped}\">{escaped}</a>")
    } else {
        escaped
    };
    Value::from_safe_string(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_become_links_only_when_they_are_addresses() {
        assert_eq!(
            contact_html("help@shop.example").to_string(),
            "<a href=\"mailto:help@shop.example\">help@shop.example</a>"
        );
        assert_eq!(
            contact_html("https://shop.example/help").to_string(),
            "<a href=\"https://shop.example/help\">https://shop.example/help</a>"
        );
        assert_eq!(
            contact_html("+49 30 1234 <b>").to_string(),
            "+49 30 1234 &lt;b&gt;"
        );
        assert_eq!(
            contact_html("javascript:alert(1)").to_string(),
            "javascript:alert(1)"
        );
    }

    #[test]
    fn the_policy_admits_exactly_the_logo_origin_and_the_stylesheet() {
        let look = PageLook {
            logo_url: Some("https://cdn.shop.example/img/logo.svg".into()),
            stylesheet: Some(Arc::from("main{}")),
            ..Default::default()
        };
        let prepared = Look::new(&look, "/oauth2/pages.css", "abc");
        assert!(prepared
            .policy
            .contains("img-src 'self' data: https://cdn.shop.example;"));
        assert!(prepared.policy.contains("style-src 'self' 'unsafe-inline'"));
        assert!(!prepared.policy.contains("script-src"));
        assert!(prepared
            .policy_with_script
            .contains("script-src 'sha256-abc'"));
        let plain = Look::new(&PageLook::default(), "/oauth2/pages.css", "abc");
        assert!(plain
            .policy
            .contains("style-src 'unsafe-inline'; img-src 'self' data:;"));
    }
}
