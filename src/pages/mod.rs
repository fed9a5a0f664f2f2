//! The pages the sidecar shows itself. Each page is described here ([`Page`]: a template
//! and its values, no text); [`Pages`] renders it at the edge in the request's language and
//! the look of its host. Templates (minijinja) and texts (Fluent) ship with the sidecar;
//! `[pages]` replaces and extends both. Plain HTML with inline CSS, no scripts but the one
//! that posts a kept form again.

mod catalog;
mod engine;
mod look;

pub use engine::{Pages, Rendered};

use minijinja::{context, Value};

use crate::oidc::LoginError;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as a sentence: a capital first letter and a full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.trim().chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// A page to show: which template, with which values. Rendered by [`Pages::render`].
#[derive(Debug, Clone)]
pub struct Page {
    template: &'static str,
    values: Value,
    /// The page runs its one script (the kept form's), allowed by hash in its CSP.
    script: bool,
}

impl Page {
    fn new(template: &'static str, values: Value) -> Self {
        Page {
            template,
            values,
            script: false,
        }
    }

    pub fn template(&self) -> &'static str {
        self.template
    }
}

/// A message of the catalogs and the values it names.
fn text(id: &str, args: Value) -> Value {
    context! { id, args }
}

fn plain(id: &str) -> Value {
    text(id, context! {})
}

/// A page that explains a failure: what happened, what to do, and the request id.
fn message(title: Value, body: Value, link: Option<(&str, Value)>, request_id: &str) -> Page {
    explained(title, body, None, link, request_id)
}

/// [`message`] with a technical detail (in the words of whatever failed, untranslated).
fn explained(
    title: Value,
    body: Value,
    detail: Option<&str>,
    link: Option<(&str, Value)>,
    request_id: &str,
) -> Page {
    let link = link.map(|(href, label)| context! { href, label });
    // Words as a sentence; a bare code (`invalid_grant`) as it is.
    let detail = detail.map(|d| match d.trim().contains(' ') {
        true => sentence(d),
        false => d.trim().to_owned(),
    });
    Page::new(
        "message.html",
        context! { title, text => body, detail, link, request_id },
    )
}

/// `400` for a request address that cannot be made canonical (`/a/%2e%2e/b`, `\\`, ...).
pub fn bad_address(request_id: &str) -> Page {
    message(
        plain("bad-address-title"),
        plain("bad-address-text"),
        Some(("/", plain("go-to-shop"))),
        request_id,
    )
}

/// The page for a request the shop could not answer (`502`, `504`) or that failed here.
pub fn upstream_failure(status: u16, request_id: &str) -> Page {
    let (title, body) = match status {
        504 => ("shop-timeout-title", "shop-timeout-text"),
        502 => ("shop-unreachable-title", "shop-unreachable-text"),
        _ => ("failure-title", "failure-text"),
    };
    message(plain(title), plain(body), None, request_id)
}

/// `503` when a session's token ran out and the IdP cannot be reached to renew it.
pub fn idp_unreachable(retry: &str, request_id: &str) -> Page {
    message(
        plain("idp-unreachable-title"),
        plain("idp-unreachable-text"),
        Some((retry, plain("sign-in-again"))),
        request_id,
    )
}

/// `503` for a sign-in at an IdP that is down: its name, the other ways in (name, link),
/// and a link to try it again.
pub fn idp_down(idp: &str, others: &[(String, String)], retry: &str, request_id: &str) -> Page {
    let others: Vec<Value> = (others.iter())
        .map(|(name, href)| context! { name, href })
        .collect();
    Page::new("idp_down.html", context! { idp, others, retry, request_id })
}

/// `401` for a form posted after the session ended that is too large to keep.
pub fn form_too_large(login: &str, request_id: &str) -> Page {
    message(
        plain("session-expired-title"),
        plain("form-too-large-text"),
        Some((login, plain("sign-in-again"))),
        request_id,
    )
}

/// `429` for too many sign-ins from one client.
pub fn too_many_sign_ins(request_id: &str) -> Page {
    message(
        plain("too-many-title"),
        plain("too-many-text"),
        None,
        request_id,
    )
}

/// `404` under the sidecar's own prefix.
pub fn not_ours(request_id: &str) -> Page {
    message(
        plain("not-found-title"),
        plain("not-found-text"),
        Some(("/", plain("go-to-shop"))),
        request_id,
    )
}

/// `503` at sign-in for an organization without any sign-in option.
pub fn no_sign_in_option(organization: &str, start: &str, request_id: &str) -> Page {
    message(
        plain("no-option-title"),
        text("no-option-text", context! { org => organization }),
        Some((start, plain("choose-another-organization"))),
        request_id,
    )
}

// The sign-in pages: plain HTML forms that work without JavaScript.

pub struct IdpChoice<'a> {
    pub key: &'a str,
    pub name: &'a str,
}

/// Why the organization form is shown again.
#[derive(Debug, Clone, Copy)]
pub enum OrganizationError {
    Unknown,
}

/// Step one: which organization do you belong to?
pub fn organization_form(
    action: &str,
    return_to: &str,
    prefill: &str,
    error: Option<OrganizationError>,
) -> Page {
    let error = error.map(|e| match e {
        OrganizationError::Unknown => "unknown-organization",
    });
    Page::new(
        "organization_form.html",
        context! { action, return_to, prefill, error },
    )
}

/// Step two: one button per identity provider of the organization.
pub fn idp_list(
    action: &str,
    return_to: &str,
    org_key: &str,
    org_name: &str,
    idps: &[IdpChoice<'_>],
    unknown_choice: bool,
) -> Page {
    let idps: Vec<Value> = (idps.iter())
        .map(|idp| context! { key => idp.key, name => idp.name })
        .collect();
    let another = format!(
        "{action}?rd={}",
        form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
    );
    Page::new(
        "idp_list.html",
        context! { action, return_to, org_key, org_name, idps, another, unknown_choice },
    )
}

/// Signing in for another organization than the one signed in for: switch, or stay.
pub fn switch_organization(
    who: &str,
    current: &str,
    wanted: &str,
    switch: &str,
    stay: &str,
) -> Page {
    Page::new(
        "switch_organization.html",
        context! { who, current, wanted, switch, stay },
    )
}

/// The `403` page of a route whose `allow` rules do not admit the signed-in user, with a
/// way to sign out and in as someone else.
pub fn forbidden(who: &str, logout_path: &str, request_id: &str) -> Page {
    Page::new(
        "forbidden.html",
        context! { who, logout => logout_path, request_id },
    )
}

/// Who is signed in, as the sign-out pages name them.
pub struct SignedIn {
    pub name: String,
    pub email: Option<String>,
    /// The organization's external name.
    pub organization: String,
}

/// After a logout that does not go on to the IdP. `idp_still_signed_in`: the IdP whose own
/// session lives on (`LOCAL`), so signing in again may not ask for a password. Without
/// `start_path` (a page in the IdP's frame), no links.
pub fn signed_out(start_path: Option<&str>, idp_still_signed_in: Option<&str>, shop: &str) -> Page {
    Page::new(
        "signed_out.html",
        context! { start => start_path, idp => idp_still_signed_in, shop },
    )
}

/// `/oauth2/logout` reached from another site: ask before signing out, saying who is
/// signed in where, with a way to stay.
pub fn confirm_logout(logout_path: &str, who: Option<&SignedIn>, stay: &str) -> Page {
    let who = who.map(|who| {
        context! { name => who.name, email => who.email, organization => who.organization }
    });
    Page::new(
        "confirm_logout.html",
        context! { logout => logout_path, who, stay },
    )
}

/// One session on the sessions page.
pub struct SessionRow {
    pub id: String,
    /// The session of the browser looking at the page.
    pub current: bool,
    pub browser: String,
    pub network: String,
    pub organization: String,
    pub identity_provider: String,
    /// Unix seconds.
    pub created: i64,
    pub last_used: i64,
    /// When it ends at the latest; 0 when not known.
    pub expires: i64,
}

/// `/oauth2/sessions`: who is signed in, and each of their sessions, with a way to end
/// one, all others, or all.
pub fn sessions(who: &SignedIn, rows: &[SessionRow], action: &str) -> Page {
    let time = |at: i64| {
        chrono::DateTime::from_timestamp(at, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    };
    let rows: Vec<Value> = (rows.iter())
        .map(|row| {
            context! {
                id => row.id,
                current => row.current,
                browser => row.browser,
                network => row.network,
                organization => row.organization,
                identity_provider => row.identity_provider,
                created => time(row.created),
                last_used => time(row.last_used),
                expires => (row.expires > 0).then(|| time(row.expires)),
            }
        })
        .collect();
    let who = context! { name => who.name, email => who.email, organization => who.organization };
    let others = rows.len() > 1;
    Page::new("sessions.html", context! { who, rows, action, others })
}

/// `403` for a form that ends sessions, posted from another site.
pub fn not_from_here(sessions: &str, request_id: &str) -> Page {
    message(
        plain("not-from-here-title"),
        plain("not-from-here-text"),
        Some((sessions, plain("sessions-title"))),
        request_id,
    )
}

/// The status and page of a failed sign-in: what went wrong in the title, what happened
/// below it (with the error's technical detail where it has one), and `retry` (link,
/// label).
pub fn login_failed(error: &LoginError, retry: (&str, &str), request_id: &str) -> (u16, Page) {
    let (status, title) = match error {
        LoginError::Idp {
            code: Some("access_denied"),
            ..
        } => (403, "login-cancelled"),
        // Anyone can send an error to the callback: a 4xx, never a 5xx.
        LoginError::Idp { .. } => (400, "login-refused"),
        LoginError::MissingState | LoginError::StateMismatch => (400, "login-expired"),
        LoginError::MissingCode | LoginError::IssuerMismatch => (400, "login-link-invalid"),
        LoginError::CodeRejected(_) => (400, "login-link-invalid"),
        LoginError::InvalidIdToken(_) | LoginError::UnknownSigningKey => {
            (401, "login-not-verified")
        }
        LoginError::Unreachable(_) => (503, "login-idp-unavailable"),
        LoginError::BadResponse(_) => (502, "login-idp-unreadable"),
        LoginError::Backend(_) => (502, "login-shop-failed"),
        LoginError::BackendBusy(_) => (429, "login-shop-busy"),
        LoginError::NotAMember { .. } => (403, "login-not-member"),
        LoginError::UnknownToShop => (403, "login-unknown-to-shop"),
        LoginError::Misconfigured(_) => (500, "login-misconfigured"),
        LoginError::StepUpNotGiven => (403, "login-step-up-not-given"),
        LoginError::StepUpOtherUser => (403, "login-other-user"),
    };
    let (why, detail): (Value, Option<&str>) = match error {
        LoginError::Idp { code, description } => (
            match code {
                Some(code) => text("why-idp-refused-code", context! { code }),
                None => plain("why-idp-refused"),
            },
            description.as_deref(),
        ),
        LoginError::IssuerMismatch => (plain("why-issuer-mismatch"), None),
        LoginError::MissingState | LoginError::StateMismatch => (plain("why-expired"), None),
        LoginError::MissingCode => (plain("why-no-code"), None),
        LoginError::CodeRejected(detail) => (plain("why-code-rejected"), Some(detail)),
        LoginError::InvalidIdToken(detail) => (plain("why-token-rejected"), Some(detail)),
        LoginError::UnknownSigningKey => (plain("why-unknown-key"), None),
        LoginError::Unreachable(detail) => (plain("why-unreachable"), Some(detail)),
        LoginError::BadResponse(detail) => (plain("why-unreadable"), Some(detail)),
        LoginError::Backend(detail) => (plain("why-shop-failed"), Some(detail)),
        LoginError::BackendBusy(seconds) => (
            text("why-shop-busy", context! { seconds => seconds.to_string() }),
            None,
        ),
        LoginError::UnknownToShop => (plain("why-unknown-to-shop"), None),
        LoginError::NotAMember {
            organization,
            email: Some(email),
        } => (
            text("why-not-member", context! { email, org => organization }),
            None,
        ),
        LoginError::NotAMember { organization, .. } => (
            text("why-not-member-unnamed", context! { org => organization }),
            None,
        ),
        LoginError::Misconfigured(detail) => (plain("why-misconfigured"), Some(detail)),
        LoginError::StepUpNotGiven => (plain("why-step-up-not-given"), None),
        LoginError::StepUpOtherUser => (plain("why-other-user"), None),
    };
    let retry = Some((retry.0, plain(retry.1)));
    (
        status,
        explained(plain(title), why, detail, retry, request_id),
    )
}

/// The labels a failed sign-in's retry link may carry.
pub const SIGN_IN_AGAIN: &str = "sign-in-again";
pub const CHOOSE_ANOTHER_ORGANIZATION: &str = "choose-another-organization";

/// The page that posts a kept form again, at once, to where it was posted.
pub fn resubmit_form(form: &crate::session::form::KeptForm) -> Page {
    let fields: Vec<Value> = form_urlencoded::parse(&form.body)
        .map(|(name, value)| context! { name, value })
        .collect();
    let mut page = Page::new(
        "resubmit_form.html",
        context! {
            action => form.path_and_query,
            fields,
            script => Value::from_safe_string(RESUBMIT_SCRIPT.to_owned()),
        },
    );
    page.script = true;
    page
}

/// The only script of the form page; allowed by its hash in the page's CSP.
pub const RESUBMIT_SCRIPT: &str = "document.forms[0].submit();";

#[cfg(test)]
mod tests {
    use super::*;

    fn english(page: &Page) -> String {
        Pages::shipped().render(page, None, None).body
    }

    #[test]
    fn the_organization_field_names_its_hint_and_error() {
        let plain = english(&organization_form("/oauth2/start", "/", "", None));
        assert!(plain.contains("aria-describedby=\"org-hint\""), "{plain}");
        assert!(!plain.contains("aria-invalid"));
        let wrong = english(&organization_form(
            "/oauth2/start",
            "/",
            "x",
            Some(OrganizationError::Unknown),
        ));
        assert!(wrong.contains("aria-describedby=\"org-hint error\" aria-invalid=\"true\""));
        assert!(wrong.contains("id=\"error\""));
    }

    #[test]
    fn values_are_escaped_in_every_page_and_text() {
        let html = english(&message(
            plain("bad-address-title"),
            text("no-option-text", context! { org => "<script>x</script>" }),
            Some(("/x?a=1&b=\"2", plain("go-to-shop"))),
            "id<1>",
        ));
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("href=\"/x?a=1&amp;b=&quot;2\""), "{html}");
        assert!(html.contains("id&lt;1&gt;"));
        assert!(!html.contains("<script>"));
        // A value inside a text that carries markup of its own.
        let forbidden = english(&forbidden("<b>eve</b>", "/oauth2/logout", "r1"));
        assert!(
            forbidden.contains("<strong>&lt;b&gt;eve&lt;/b&gt;</strong>"),
            "{forbidden}"
        );
    }

    #[test]
    fn a_failed_sign_in_says_what_happened_and_keeps_the_detail() {
        let (status, page) = login_failed(
            &LoginError::CodeRejected("invalid_grant".into()),
            ("/oauth2/start", SIGN_IN_AGAIN),
            "r1",
        );
        assert_eq!(status, 400);
        let html = english(&page);
        assert!(html.contains("This sign-in link is no longer valid"));
        assert!(html.contains("The identity provider refused the authorization code."));
        assert!(html.contains("Details: invalid_grant<"), "{html}");
    }
}
