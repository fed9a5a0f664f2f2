//! Renders [`Page`]s: the templates (shipped, or the operator's from `pages.templates`),
//! the texts of the request's language, the look of the request's host. Every template is
//! rendered once per language and look when the config is loaded, so a mistake in an
//! operator's template or catalog is a config problem, not a broken page.

use std::collections::HashMap;
use std::sync::Arc;

use minijinja::value::Kwargs;
use minijinja::{context, AutoEscape, Environment, Error, ErrorKind, State, Value};

use super::catalog::{Catalog, Catalogs};
use super::look::Look;
use super::{escape, Page};
use crate::config::{PagesConfig, Problem};

/// The shipped templates, by name; `pages.templates` may replace any of them.
const SHIPPED: [(&str, &str); 11] = [
    ("base.html", include_str!("templates/base.html")),
    ("message.html", include_str!("templates/message.html")),
    ("idp_down.html", include_str!("templates/idp_down.html")),
    (
        "organization_form.html",
        include_str!("templates/organization_form.html"),
    ),
    ("idp_list.html", include_str!("templates/idp_list.html")),
    (
        "switch_organization.html",
        include_str!("templates/switch_organization.html"),
    ),
    ("forbidden.html", include_str!("templates/forbidden.html")),
    ("signed_out.html", include_str!("templates/signed_out.html")),
    (
        "confirm_logout.html",
        include_str!("templates/confirm_logout.html"),
    ),
    (
        "resubmit_form.html",
        include_str!("templates/resubmit_form.html"),
    ),
    ("sessions.html", include_str!("templates/sessions.html")),
];

/// A page ready to send.
#[derive(Debug)]
pub struct Rendered {
    pub body: String,
    /// The language it is in, for `Content-Language`.
    pub language: String,
    pub policy: String,
}

pub struct Pages {
    templates: Environment<'static>,
    /// The shipped templates, should an operator's fail at run time after all.
    shipped: Environment<'static>,
    catalogs: Arc<Catalogs>,
    default_look: Look,
    looks: HashMap<String, Look>,
}

impl Pages {
    /// Compiles the templates and catalogs of `[pages]` and renders every page in every
    /// language and look once; each problem names its key and file.
    pub fn new(config: &PagesConfig, prefix: &str) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let catalogs = match Catalogs::new(config) {
            Ok(catalogs) => Arc::new(catalogs),
            Err(found) => return Err(found),
        };
        let mut templates = environment(&catalogs);
        for (name, source) in SHIPPED {
            let own = config.templates.iter().find(|(file, _)| file == name);
            let source = own.map_or(source.to_owned(), |(_, s)| s.clone());
            if let Err(error) = templates.add_template_owned(name, source) {
                problems.push(Problem::new("pages.templates", describe(name, &error)));
            }
        }
        for (file, _) in &config.templates {
            if !SHIPPED.iter().any(|(name, _)| name == file) {
                let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
                problems.push(Problem::new(
                    "pages.templates",
                    format!(
                        "{file} is not a template of the sidecar's ({})",
                        names.join(", ")
                    ),
                ));
            }
        }
        let stylesheet_path = format!("{prefix}/pages.css");
        let hash = script_hash();
        let pages = Pages {
            templates,
            shipped: shipped_environment(&catalogs),
            default_look: Look::new(&config.look, &stylesheet_path, &hash),
            looks: (config.hosts.iter())
                .map(|(host, look)| (host.clone(), Look::new(look, &stylesheet_path, &hash)))
                .collect(),
            catalogs,
        };
        if problems.is_empty() {
            problems.extend(pages.check());
        }
        match problems.is_empty() {
            true => Ok(pages),
            false => Err(problems),
        }
    }

    /// The shipped templates and languages with no branding (tests, and the pages of a
    /// config that has no `[pages]`).
    pub fn shipped() -> Self {
        let catalogs = Arc::new(Catalogs::shipped());
        let hash = script_hash();
        Pages {
            templates: shipped_environment(&catalogs),
            shipped: shipped_environment(&catalogs),
            default_look: Look::new(&Default::default(), "/oauth2/pages.css", &hash),
            looks: HashMap::new(),
            catalogs,
        }
    }

    /// `page` for a request to `host` with `accept_language`.
    pub fn render(
        &self,
        page: &Page,
        host: Option<&str>,
        accept_language: Option<&str>,
    ) -> Rendered {
        let look = self.look(host);
        let catalog = self.catalogs.choose(accept_language);
        let body = self
            .render_with(&self.templates, page, look, catalog)
            .or_else(|error| {
                tracing::error!(template = page.template, error = %error, "page template failed; the shipped one is used");
                self.render_with(&self.shipped, page, look, catalog)
            })
            .unwrap_or_else(|error| {
                tracing::error!(template = page.template, error = %error, "shipped page template failed");
                String::from("<!DOCTYPE html><title>Error</title><p>Error</p>")
            });
        Rendered {
            body,
            language: catalog.tag.clone(),
            policy: match page.script {
                true => look.policy_with_script.clone(),
                false => look.policy.clone(),
            },
        }
    }

    /// The CSS of `pages.stylesheet` for `host`, if it has one.
    pub fn stylesheet(&self, host: Option<&str>) -> Option<Arc<str>> {
        self.look(host).stylesheet.clone()
    }

    fn look(&self, host: Option<&str>) -> &Look {
        host.and_then(|h| self.looks.get(h))
            .unwrap_or(&self.default_look)
    }

    fn render_with(
        &self,
        env: &Environment<'static>,
        page: &Page,
        look: &Look,
        catalog: &Catalog,
    ) -> Result<String, Error> {
        let values = context! {
            ..page.values.clone(),
            ..context! { lang => catalog.tag, look => look.values, style => look.style },
        };
        env.get_template(page.template)?.render(values)
    }

    /// Every sample page in every language and look; a failure names the template.
    fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let looks = std::iter::once(&self.default_look).chain(self.looks.values());
        for look in looks {
            for catalog in self.catalogs.offered() {
                for page in samples() {
                    if let Err(error) = self.render_with(&self.templates, &page, look, catalog) {
                        let problem = Problem::new(
                            "pages.templates",
                            format!(
                                "{} ({}): {}",
                                page.template,
                                catalog.tag,
                                describe(page.template, &error)
                            ),
                        );
                        if !problems.contains(&problem) {
                            problems.push(problem);
                        }
                    }
                }
            }
        }
        problems
    }
}

/// One of every page, with every optional part present once and absent once.
fn samples() -> Vec<Page> {
    use super::*;
    let form = crate::session::form::KeptForm {
        id: 1,
        path_and_query: "/checkout".into(),
        body: b"a=1".to_vec(),
        created_at: 0,
    };
    let who = SignedIn {
        name: "Ann".into(),
        email: Some("ann@example.com".into()),
        organization: "Ops".into(),
    };
    let nameless = SignedIn {
        email: None,
        ..SignedIn {
            name: "Ann".into(),
            email: None,
            organization: "Ops".into(),
        }
    };
    let others = [("Local".to_owned(), "/local".to_owned())];
    let idps = [IdpChoice {
        key: "a",
        name: "A",
    }];
    let mut all = vec![
        bad_address("r"),
        upstream_failure(502, "r"),
        upstream_failure(504, "r"),
        upstream_failure(500, "r"),
        idp_unreachable("/", "r"),
        idp_down("IdP", &others, "/", "r"),
        idp_down("IdP", &[], "/", "r"),
        form_too_large("/", "r"),
        too_many_sign_ins("r"),
        not_ours("r"),
        no_sign_in_option("Ops", "/", "r"),
        organization_form("/", "/", "", None),
        organization_form("/", "/", "x", Some(OrganizationError::Unknown)),
        idp_list("/", "/", "ops", "Ops", &idps, false),
        idp_list("/", "/", "ops", "Ops", &idps, true),
        switch_organization("Ann", "Ops", "Shop", "/", "/"),
        forbidden("Ann", "/", "r"),
        signed_out(Some("/"), Some("IdP"), "/"),
        signed_out(None, None, "/"),
        confirm_logout("/", Some(&who), "/"),
        confirm_logout("/", Some(&nameless), "/"),
        confirm_logout("/", None, "/"),
        resubmit_form(&form),
        not_from_here("/oauth2/sessions", "r"),
        sessions(&who, &[], "/oauth2/sessions"),
        sessions(
            &nameless,
            &[
                SessionRow {
                    id: "a".into(),
                    current: true,
                    browser: "Firefox on Linux".into(),
                    network: "203.0.113.0/24".into(),
                    organization: "Ops".into(),
                    identity_provider: "IdP".into(),
                    created: 1_800_000_000,
                    last_used: 1_800_000_100,
                    expires: 1_800_086_400,
                },
                SessionRow {
                    id: "b".into(),
                    current: false,
                    browser: String::new(),
                    network: String::new(),
                    organization: "Ops".into(),
                    identity_provider: "IdP".into(),
                    created: 0,
                    last_used: 0,
                    expires: 0,
                },
            ],
            "/oauth2/sessions",
        ),
    ];
    let errors = [
        crate::oidc::LoginError::Idp {
            code: Some("access_denied"),
            description: Some("no".into()),
        },
        crate::oidc::LoginError::Idp {
            code: None,
            description: None,
        },
        crate::oidc::LoginError::MissingState,
        crate::oidc::LoginError::MissingCode,
        crate::oidc::LoginError::IssuerMismatch,
        crate::oidc::LoginError::CodeRejected("x".into()),
        crate::oidc::LoginError::InvalidIdToken("x".into()),
        crate::oidc::LoginError::UnknownSigningKey,
        crate::oidc::LoginError::Unreachable("x".into()),
        crate::oidc::LoginError::BadResponse("x".into()),
        crate::oidc::LoginError::Backend("x".into()),
        crate::oidc::LoginError::BackendBusy(3),
        crate::oidc::LoginError::UnknownToShop,
        crate::oidc::LoginError::NotAMember {
            organization: "Ops".into(),
            email: Some("a@b".into()),
        },
        crate::oidc::LoginError::NotAMember {
            organization: "Ops".into(),
            email: None,
        },
        crate::oidc::LoginError::Misconfigured("x".into()),
        crate::oidc::LoginError::StepUpNotGiven,
        crate::oidc::LoginError::StepUpOtherUser,
    ];
    for (i, error) in errors.iter().enumerate() {
        let label = match i % 2 {
            0 => SIGN_IN_AGAIN,
            _ => CHOOSE_ANOTHER_ORGANIZATION,
        };
        all.push(login_failed(error, ("/", label), "r").1);
    }
    all
}

/// A template error with its line, as `check` prints it.
fn describe(name: &str, error: &Error) -> String {
    match error.line() {
        Some(line) => {
            format!("{name}, line {line}: {}", error.kind()).replace(": {}", "")
                + &error.detail().map(|d| format!(": {d}")).unwrap_or_default()
        }
        None => format!("{name}: {error}"),
    }
}

fn shipped_environment(catalogs: &Arc<Catalogs>) -> Environment<'static> {
    let mut env = environment(catalogs);
    for (name, source) in SHIPPED {
        // Shipped templates compile: `pages::engine` tests render each one.
        env.add_template(name, source).unwrap_or_default();
    }
    env
}

/// An environment with HTML escaping, strict undefined values, and `t(id, args, **more)`,
/// which gives the message `id` in the page's language.
fn environment(catalogs: &Arc<Catalogs>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            return Ok(());
        }
        match state.auto_escape() {
            AutoEscape::None => write!(out, "{value}").map_err(Error::from),
            _ if value.is_safe() => write!(out, "{value}").map_err(Error::from),
            _ => out
                .write_str(&escape(&value.to_string()))
                .map_err(Error::from),
        }
    });
    let catalogs = catalogs.clone();
    env.add_function(
        "t",
        move |state: &State, id: &str, args: Option<Value>, more: Kwargs| -> Result<Value, Error> {
            let mut values = Vec::new();
            if let Some(args) = args.filter(|a| !a.is_undefined() && !a.is_none()) {
                for key in args.try_iter()? {
                    let value = args.get_item(&key)?;
                    values.push((key.to_string(), as_html(&value)));
                }
            }
            let names: Vec<String> = more.args().map(str::to_owned).collect();
            for name in names {
                let value: Value = more.get(&name)?;
                values.push((name, as_html(&value)));
            }
            let lang = state
                .lookup("lang")
                .map(|l| l.to_string())
                .unwrap_or_default();
            let catalog = (catalogs.offered().iter()).find(|c| c.tag == lang);
            catalog
                .and_then(|c| c.text(id, &values))
                .or_else(|| catalogs.reference().text(id, &values))
                .map(Value::from_safe_string)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::UndefinedError,
                        format!("no message `{id}` (or a value it names is missing)"),
                    )
                })
        },
    );
    env
}

/// A value put into a text: escaped, unless it is HTML already (a link the look built).
fn as_html(value: &Value) -> String {
    match value.is_safe() {
        true => value.to_string(),
        false => escape(&value.to_string()),
    }
}

fn script_hash() -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(super::RESUBMIT_SCRIPT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(languages: &[&str]) -> PagesConfig {
        PagesConfig {
            languages: languages.iter().map(|s| (*s).to_owned()).collect(),
            default_language: languages[0].to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn every_shipped_page_renders_in_every_shipped_language() {
        let pages = Pages::new(&config(&["en", "de"]), "/oauth2").unwrap();
        for page in samples() {
            let de = pages.render(&page, None, Some("de"));
            assert_eq!(de.language, "de");
            assert!(de.body.starts_with("<!DOCTYPE html>\n<html lang=\"de\">"));
            assert!(!de.body.contains("Request id"), "{}", de.body);
        }
    }

    #[test]
    fn a_broken_template_is_a_config_problem_naming_it() {
        let mut broken = config(&["en"]);
        broken.templates = vec![
            ("signed_out.html".into(), "{% extends \"base.html\" %}{% block main %}{{ t(\"no-such-text\") }}{% endblock %}".into()),
            ("message.html".into(), "{% if %}".into()),
            ("extra.html".into(), "x".into()),
        ];
        let problems = Pages::new(&broken, "/oauth2").err().unwrap();
        let text: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("pages.templates: message.html, line 1")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("extra.html is not a template")),
            "{text:?}"
        );
    }

    #[test]
    fn a_template_naming_a_missing_text_is_found_by_the_check() {
        let mut broken = config(&["en"]);
        broken.templates = vec![(
            "signed_out.html".into(),
            "{% extends \"base.html\" %}{% block main %}{{ t(\"no-such-text\") }}{% endblock %}"
                .into(),
        )];
        let problems = Pages::new(&broken, "/oauth2").err().unwrap();
        assert!(
            problems[0].message.contains("no message `no-such-text`"),
            "{problems:?}"
        );
        assert!(
            problems[0].message.starts_with("signed_out.html (en)"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_host_gets_its_own_look() {
        let mut branded = config(&["en", "de"]);
        branded.look.shop_name = Some("Muster & Söhne".into());
        branded.hosts.insert(
            "admin.shop.example".into(),
            crate::config::PageLook {
                shop_name: Some("Back office".into()),
                accent_color: Some("#7a1f5c".into()),
                ..Default::default()
            },
        );
        let pages = Pages::new(&branded, "/oauth2").unwrap();
        let shop = pages
            .render(&super::super::not_ours("r"), Some("shop.example"), None)
            .body;
        assert!(
            shop.contains("<span class=\"shop\">Muster &amp; Söhne</span>"),
            "{shop}"
        );
        assert!(shop.contains("a{color:#0b5cad}"));
        let admin = pages
            .render(
                &super::super::not_ours("r"),
                Some("admin.shop.example"),
                Some("de"),
            )
            .body;
        assert!(admin.contains("Back office"));
        assert!(admin.contains("a{color:#7a1f5c}"));
        assert!(admin.contains("Nicht gefunden"));
    }
}
