//! The texts of the pages in each language (Fluent message catalogs), and which language a
//! request gets (`Accept-Language` against `pages.languages`).

use std::collections::BTreeMap;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

use crate::config::{PagesConfig, Problem};

/// The catalogs shipped with the sidecar, by language tag.
const SHIPPED: [(&str, &str); 2] = [
    ("en", include_str!("messages/en.ftl")),
    ("de", include_str!("messages/de.ftl")),
];

/// The language every other is checked against: it names every message a page uses.
const REFERENCE: &str = "en";

/// One language's messages.
pub struct Catalog {
    pub tag: String,
    bundle: FluentBundle<FluentResource>,
}

impl Catalog {
    /// The message `id` with `args` filled in; `None` when this language lacks it.
    pub fn text(&self, id: &str, args: &[(String, String)]) -> Option<String> {
        let pattern = self.bundle.get_message(id)?.value()?;
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            fluent_args.set(name.clone(), FluentValue::from(value.clone()));
        }
        let mut errors = Vec::new();
        let text = self
            .bundle
            .format_pattern(pattern, Some(&fluent_args), &mut errors);
        // A missing argument leaves `{$name}` in the text; that is a template mistake.
        errors.is_empty().then(|| text.into_owned())
    }
}

/// Every offered language's catalog, and how to choose one.
pub struct Catalogs {
    /// In the order of `pages.languages`.
    offered: Vec<Catalog>,
    default: usize,
    reference: Catalog,
}

impl Catalogs {
    /// The shipped messages, overridden and extended by `pages.messages`; every problem
    /// names the file and the message.
    pub fn new(config: &PagesConfig) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let reference = build(REFERENCE, &[], &mut problems);
        let reference_ids = message_ids(SHIPPED[0].1);
        let mut offered = Vec::new();
        for tag in &config.languages {
            let own: Vec<&(String, String, String)> = (config.messages.iter())
                .filter(|(t, _, _)| t == tag)
                .collect();
            let catalog = build(tag, &own, &mut problems);
            for id in &reference_ids {
                if !catalog.bundle.has_message(id) {
                    problems.push(Problem::new(
                        "pages.messages",
                        format!("{tag}.ftl lacks the message `{id}`"),
                    ));
                }
            }
            offered.push(catalog);
        }
        let default = (config.languages.iter())
            .position(|t| *t == config.default_language)
            .unwrap_or(0);
        if offered.is_empty() {
            offered.push(build(REFERENCE, &[], &mut problems));
        }
        match problems.is_empty() {
            true => Ok(Catalogs {
                offered,
                default,
                reference,
            }),
            false => Err(problems),
        }
    }

    /// The shipped English and German, English first.
    pub fn shipped() -> Self {
        let mut problems = Vec::new();
        let offered = SHIPPED
            .iter()
            .map(|(tag, _)| build(tag, &[], &mut problems))
            .collect();
        Catalogs {
            offered,
            default: 0,
            reference: build(REFERENCE, &[], &mut problems),
        }
    }

    pub fn offered(&self) -> &[Catalog] {
        &self.offered
    }

    /// The English catalog, which names every message (a fallback for a text an
    /// operator's catalog lost since `check`).
    pub fn reference(&self) -> &Catalog {
        &self.reference
    }

    /// The language for a request's `Accept-Language`: the most preferred one offered,
    /// by exact tag, then by its language alone (`de-AT` gets `de`); else the default.
    pub fn choose(&self, accept_language: Option<&str>) -> &Catalog {
        for wanted in preferences(accept_language.unwrap_or("")) {
            let Ok(wanted) = wanted.parse::<LanguageIdentifier>() else {
                continue;
            };
            let exact = self.offered.iter().find(|c| c.tag == wanted.to_string());
            let same_language = || {
                (self.offered.iter()).find(|c| {
                    c.tag
                        .parse::<LanguageIdentifier>()
                        .is_ok_and(|id| id.language == wanted.language)
                })
            };
            if let Some(catalog) = exact.or_else(same_language) {
                return catalog;
            }
        }
        &self.offered[self.default]
    }
}

/// The language ranges of an `Accept-Language` value, most preferred first (RFC 9110
/// §12.5.4); `q=0` means "not this one", `*` adds nothing.
fn preferences(header: &str) -> Vec<&str> {
    let mut ranked: Vec<(u16, usize, &str)> = header
        .split(',')
        .take(32)
        .enumerate()
        .filter_map(|(position, item)| {
            let mut parts = item.split(';');
            let range = parts.next()?.trim();
            let quality = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1000), parse_quality)?;
            (quality > 0 && !range.is_empty() && range != "*").then_some((quality, position, range))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.into_iter().map(|(_, _, range)| range).collect()
}

/// A `qvalue` in thousandths; `None` when it is not one.
fn parse_quality(text: &str) -> Option<u16> {
    let value: f32 = text.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&value)
        .then(|| (value * 1000.0).round() as u16)
}

/// The ids of the messages in a catalog's source.
fn message_ids(source: &str) -> Vec<String> {
    let resource = match FluentResource::try_new(source.to_owned()) {
        Ok(resource) | Err((resource, _)) => resource,
    };
    resource
        .entries()
        .filter_map(|entry| match entry {
            fluent_syntax::ast::Entry::Message(message) => Some(message.id.name.to_owned()),
            _ => None,
        })
        .collect()
}

/// A language's bundle: its shipped messages (if any), then the operator's files on top.
fn build(tag: &str, own: &[&(String, String, String)], problems: &mut Vec<Problem>) -> Catalog {
    let id: LanguageIdentifier = tag.parse().unwrap_or_default();
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    // Values are put into HTML; the isolation marks around them would show as boxes in
    // some fonts and are not needed for the short texts here.
    bundle.set_use_isolating(false);
    let mut sources: BTreeMap<usize, (String, String)> = BTreeMap::new();
    if let Some((_, shipped)) = SHIPPED.iter().find(|(t, _)| *t == tag) {
        sources.insert(0, (format!("{tag}.ftl (shipped)"), (*shipped).to_owned()));
    }
    for (i, (_, file, source)) in own.iter().enumerate() {
        sources.insert(i + 1, (file.clone(), source.clone()));
    }
    for (file, source) in sources.into_values() {
        let resource = match FluentResource::try_new(source) {
            Ok(resource) => resource,
            Err((resource, errors)) => {
                for error in errors {
                    problems.push(Problem::new("pages.messages", format!("{file}: {error}")));
                }
                resource
            }
        };
        bundle.add_resource_overriding(resource);
    }
    Catalog {
        tag: tag.to_owned(),
        bundle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_offered_language() {
        let catalogs = Catalogs::shipped();
        let tag = |header: Option<&str>| catalogs.choose(header).tag.clone();
        assert_eq!(tag(None), "en");
        assert_eq!(tag(Some("de-AT,de;q=0.9,en;q=0.5")), "de");
        assert_eq!(tag(Some("fr-CH, fr;q=0.9, de;q=0.8, en;q=0.7")), "de");
        assert_eq!(tag(Some("en;q=0.4, de;q=0.8")), "de");
        assert_eq!(tag(Some("de;q=0, en")), "en");
        assert_eq!(tag(Some("*")), "en");
        assert_eq!(tag(Some("de;q=banana, en")), "en");
        assert_eq!(tag(Some(",,;;q=,\u{0}")), "en");
    }

    #[test]
    fn shipped_languages_have_every_message() {
        let config = PagesConfig {
            languages: vec!["en".into(), "de".into()],
            default_language: "en".into(),
            ..Default::default()
        };
        assert!(Catalogs::new(&config).is_ok());
    }

    #[test]
    fn a_catalog_without_a_message_is_named() {
        let config = PagesConfig {
            languages: vec!["en".into(), "fr".into()],
            default_language: "en".into(),
            messages: vec![(
                "fr".into(),
                "fr.ftl".into(),
                "sign-in-title = Connexion\nbroken = {\n".into(),
            )],
            ..Default::default()
        };
        let problems = Catalogs::new(&config).err().unwrap();
        let text: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
        assert!(
            text.iter()
                .any(|t| t == "fr.ftl lacks the message `sign-out`"),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.starts_with("fr.ftl: ")), "{text:?}");
        assert!(!text.iter().any(|t| t.contains("`sign-in-title`")));
    }
}
