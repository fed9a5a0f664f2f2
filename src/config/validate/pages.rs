//! `[pages]`: the shop's look (name, logo, colour, contact, stylesheet, per host), its
//! templates and its languages. Files are read here; `crate::pages` compiles them.

use std::sync::Arc;

use super::*;

/// The languages whose messages ship with the sidecar.
pub const SHIPPED_LANGUAGES: [&str; 2] = ["en", "de"];

/// A stylesheet larger than this is a mistake (a bundle of the whole shop's CSS).
const MAX_STYLESHEET_BYTES: u64 = 256 * 1024;

/// WCAG 2.1 AA (1.4.3): white text on the accent colour (buttons), and the accent colour
/// on white (links), need 4.5:1.
const MIN_CONTRAST: f64 = 4.5;

impl Validator {
    pub(super) fn pages(&mut self, raw: raw::RawPages) -> PagesConfig {
        let look = self.page_look(
            "pages",
            raw::RawPageLook {
                shop_name: raw.shop_name,
                logo_url: raw.logo_url,
                accent_color: raw.accent_color,
                support_contact: raw.support_contact,
                stylesheet: raw.stylesheet,
            },
            &PageLook::default(),
        );
        let mut hosts = BTreeMap::new();
        for (host, raw_look) in raw.hosts.unwrap_or_default() {
            let key = format!("pages.hosts.\"{host}\"");
            match crate::host::canonical_name(&host) {
                Ok(name) => {
                    let host_look = self.page_look(&key, raw_look, &look);
                    hosts.insert(name, host_look);
                }
                Err(problem) => self.problem(key, format!("not a host name: {problem}")),
            }
        }
        let templates = match raw.templates {
            Some(dir) => self.files_in("pages.templates", &dir, "html"),
            None => Vec::new(),
        };
        let messages: Vec<(String, String, String)> = match raw.messages {
            Some(dir) => (self.files_in("pages.messages", &dir, "ftl").into_iter())
                .filter_map(|(file, source)| {
                    let tag = file.trim_end_matches(".ftl");
                    match tag.parse::<unic_langid::LanguageIdentifier>() {
                        Ok(id) => Some((id.to_string(), file, source)),
                        Err(_) => {
                            self.problem(
                                "pages.messages",
                                format!("{file}: the file name must be a language tag (de.ftl, fr-CH.ftl)"),
                            );
                            None
                        }
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        let has_catalog = |tag: &str| {
            SHIPPED_LANGUAGES.contains(&tag) || messages.iter().any(|(t, _, _)| t == tag)
        };
        let mut languages = Vec::new();
        for tag in raw
            .languages
            .unwrap_or_else(|| SHIPPED_LANGUAGES.iter().map(|s| (*s).to_owned()).collect())
        {
            match tag.parse::<unic_langid::LanguageIdentifier>() {
                Ok(id) if has_catalog(&id.to_string()) => languages.push(id.to_string()),
                Ok(id) => self.problem(
                    "pages.languages",
                    format!("\"{id}\" has no messages: add {id}.ftl to pages.messages"),
                ),
                Err(_) => self.problem(
                    "pages.languages",
                    format!("\"{tag}\" is not a language tag"),
                ),
            }
        }
        if languages.is_empty() && self.problems.iter().all(|p| p.key != "pages.languages") {
            self.problem("pages.languages", "names no language");
        }
        let default_language = match raw.default_language {
            Some(tag) => match tag.parse::<unic_langid::LanguageIdentifier>() {
                Ok(id) if languages.contains(&id.to_string()) => id.to_string(),
                _ => {
                    self.problem(
                        "pages.default_language",
                        format!(
                            "\"{tag}\" is not one of pages.languages ({})",
                            languages.join(", ")
                        ),
                    );
                    languages
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "en".to_owned())
                }
            },
            None => languages
                .first()
                .cloned()
                .unwrap_or_else(|| "en".to_owned()),
        };
        PagesConfig {
            look,
            hosts,
            templates,
            messages,
            default_language,
            languages,
        }
    }

    /// One look; keys it leaves unset come from `inherited`.
    fn page_look(&mut self, at: &str, raw: raw::RawPageLook, inherited: &PageLook) -> PageLook {
        let shop_name = raw.shop_name.and_then(|name| {
            let name = name.trim().to_owned();
            match name.chars().count() {
                1..=80 if !name.chars().any(char::is_control) => Some(name),
                _ => {
                    self.problem(
                        format!("{at}.shop_name"),
                        "must be 1 to 80 characters of text",
                    );
                    None
                }
            }
        });
        let logo_url = raw.logo_url.and_then(|url| match logo_url_problem(&url) {
            None => Some(url),
            Some(problem) => {
                self.problem(format!("{at}.logo_url"), problem);
                None
            }
        });
        let accent_color = raw
            .accent_color
            .and_then(|color| match accent_problem(&color) {
                None => Some(color.to_ascii_lowercase()),
                Some(problem) => {
                    self.problem(format!("{at}.accent_color"), problem);
                    None
                }
            });
        let support_contact = raw.support_contact.and_then(|contact| {
            let contact = contact.trim().to_owned();
            match contact.chars().count() {
                1..=200 if !contact.chars().any(char::is_control) => Some(contact),
                _ => {
                    self.problem(
                        format!("{at}.support_contact"),
                        "must be an e-mail address, an https:// URL or a line of text",
                    );
                    None
                }
            }
        });
        let stylesheet = raw.stylesheet.and_then(|file| {
            let key = format!("{at}.stylesheet");
            match std::fs::metadata(&file) {
                Ok(meta) if meta.len() > MAX_STYLESHEET_BYTES => {
                    self.problem(key, format!("{file} is larger than 256 KiB"));
                    None
                }
                Ok(_) => match std::fs::read_to_string(&file) {
                    Ok(css) if css.to_ascii_lowercase().contains("</style") => {
                        self.problem(key, format!("{file}: not a stylesheet"));
                        None
                    }
                    Ok(css) => Some(Arc::<str>::from(css)),
                    Err(error) => {
                        self.problem(key, format!("cannot read {file}: {error}"));
                        None
                    }
                },
                Err(error) => {
                    self.problem(key, format!("cannot read {file}: {error}"));
                    None
                }
            }
        });
        PageLook {
            shop_name: shop_name.or_else(|| inherited.shop_name.clone()),
            logo_url: logo_url.or_else(|| inherited.logo_url.clone()),
            accent_color: accent_color.or_else(|| inherited.accent_color.clone()),
            support_contact: support_contact.or_else(|| inherited.support_contact.clone()),
            stylesheet: stylesheet.or_else(|| inherited.stylesheet.clone()),
        }
    }

    /// (file name, text) of each `*.{extension}` file in `dir`, sorted by name.
    fn files_in(&mut self, key: &str, dir: &str, extension: &str) -> Vec<(String, String)> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => {
                self.problem(key, format!("cannot read the directory {dir}: {error}"));
                return Vec::new();
            }
        };
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != extension) || !path.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            match std::fs::read_to_string(&path) {
                Ok(text) => files.push((name, text)),
                Err(error) => self.problem(key, format!("cannot read {}: {error}", path.display())),
            }
        }
        files.sort();
        files
    }

    /// A look for a host no route names is never used.
    pub(super) fn note_page_hosts(&mut self, pages: &PagesConfig, routes: &[Route]) {
        for host in pages.hosts.keys() {
            if !routes
                .iter()
                .any(|r| r.host.as_deref() == Some(host.as_str()))
            {
                self.warnings.push(format!(
                    "pages.hosts.\"{host}\": no route names this host; its look is still used for requests to it"
                ));
            }
        }
    }
}

/// Why a logo address cannot be used, if it cannot: an `https://` URL, or an absolute path
/// on the shop's own origin.
fn logo_url_problem(url: &str) -> Option<String> {
    if url.starts_with('/') && !url.starts_with("//") {
        return (url.contains(['"', '\'', '<', '>', '\\', ' '])).then(|| {
            "a path on the shop must not contain quotes, spaces or angle brackets".to_owned()
        });
    }
    match Url::parse(url) {
        Ok(parsed) if parsed.scheme() == "https" && parsed.host().is_some() => None,
        _ => Some("must be an https:// URL or a path on the shop (/static/logo.svg)".to_owned()),
    }
}

/// Why an accent colour cannot be used, if it cannot.
fn accent_problem(color: &str) -> Option<String> {
    let Some(rgb) = parse_hex_color(color) else {
        return Some("must be a colour as #rrggbb".to_owned());
    };
    let ratio = contrast(rgb, (255, 255, 255));
    (ratio < MIN_CONTRAST).then(|| {
        format!(
            "white text on {color} has a contrast of {ratio:.1}:1; WCAG AA needs {MIN_CONTRAST}:1 (choose a darker colour)"
        )
    })
}

fn parse_hex_color(color: &str) -> Option<(u8, u8, u8)> {
    let hex = color.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some((channel(0)?, channel(2)?, channel(4)?))
}

/// WCAG 2.1's contrast ratio of two sRGB colours.
fn contrast(a: (u8, u8, u8), b: (u8, u8, u8)) -> f64 {
    fn luminance((r, g, b): (u8, u8, u8)) -> f64 {
        let linear = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    }
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accent_colours_must_carry_white_text() {
        assert!(accent_problem("#0b5cad").is_none());
        assert!(accent_problem("#7a1f5c").is_none());
        let light = accent_problem("#ffcc00").unwrap();
        assert!(light.contains("contrast of 1.5:1"), "{light}");
        assert!(accent_problem("red").is_some());
        assert!(accent_problem("#0b5cad; } body { x").is_some());
    }

    #[test]
    fn logos_come_from_https_or_the_shop() {
        assert!(logo_url_problem("https://cdn.shop.example/logo.svg").is_none());
        assert!(logo_url_problem("/static/logo.svg").is_none());
        assert!(logo_url_problem("//evil.example/x.svg").is_some());
        assert!(logo_url_problem("http://cdn.shop.example/logo.svg").is_some());
        assert!(logo_url_problem("javascript:alert(1)").is_some());
        assert!(logo_url_problem("/a\" onerror=\"x").is_some());
    }
}
