//! The few HTML pages the sidecar shows itself, with all their texts. Plain HTML with
//! inline CSS, no scripts (but for the one that posts a kept form again, in `session/form.rs`).

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
pub fn sentence(text: &str) -> String {
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

const STYLE: &str =
    "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}\
main{max-width:32rem;margin:4rem auto;background:#fff;padding:2rem 2.5rem;border-radius:8px;\
box-shadow:0 1px 4px rgba(0,0,0,.12)}h1{font-size:1.4rem;margin-top:0}\
p{line-height:1.5}a{color:#0b5cad}.id,.hint{color:#6b7280;font-size:.85rem}\
label{display:block;font-weight:600;margin:1rem 0 .3rem}\
input[type=text]{width:100%;box-sizing:border-box;padding:.55rem;font-size:1rem;border:1px solid #6b7280;border-radius:4px}\
button{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem;border:0;border-radius:4px;background:#0b5cad;color:#fff;cursor:pointer}\
button.idp{width:100%;margin:.3rem 0;text-align:left}form{margin:0}\
.error{background:#fde8e8;color:#8a1c1c;padding:.6rem .8rem;border-radius:4px}";

/// A complete page around `body_html`, which the caller has escaped.
pub fn page(title: &str, body_html: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head><body><main>{body_html}</main></body></html>\n",
        title = escape(title)
    )
}

/// `400` for a request address that cannot be made canonical (`/a/%2e%2e/b`, `\\`, ...).
pub fn bad_address(request_id: &str) -> String {
    message(
        "Bad request",
        "The address of this request is not valid.",
        Some(("/", "Go to the shop")),
        request_id,
    )
}

/// The page for a request the shop could not answer (`502`, `504`) or that failed here.
pub fn upstream_failure(status: u16, request_id: &str) -> String {
    let (title, text) = match status {
        504 => (
            "The shop is not answering",
            "The shop did not answer in time. Please try again in a moment.",
        ),
        502 => (
            "The shop is not reachable",
            "The shop could not be reached. Please try again in a moment.",
        ),
        _ => (
            "Something went wrong",
            "The request could not be completed. Please try again.",
        ),
    };
    message(title, text, None, request_id)
}

/// `503` when a session's token ran out and the IdP cannot be reached to renew it.
pub fn idp_unreachable(retry: &str, request_id: &str) -> String {
    message(
        "The identity provider is not reachable",
        "Your sign-in has run out and your organization's identity provider cannot be reached to renew it. Please sign in again in a moment.",
        Some((retry, "Sign in again")),
        request_id,
    )
}

/// `503` for a sign-in at an IdP that is down: its name, the other ways in (name, link),
/// and a link to try it again.
pub fn idp_down(idp: &str, others: &[(String, String)], retry: &str, request_id: &str) -> String {
    let mut body = format!(
        "<h1>{title}</h1><p>{idp} cannot be reached at the moment, so you were not sent there.</p>",
        title = escape("The sign-in service is not available"),
        idp = escape(idp),
    );
    if !others.is_empty() {
        body.push_str("<p>You can sign in another way:</p><ul>");
        for (name, link) in others {
            body.push_str(&format!(
                "<li><a href=\"{}\">{}</a></li>",
                escape(link),
                escape(name)
            ));
        }
        body.push_str("</ul>");
    }
    body.push_str(&format!(
        "<p><a href=\"{}\">Try {} again</a></p><p class=\"id\">Request id: {}</p>",
        escape(retry),
        escape(idp),
        escape(request_id)
    ));
    page("The sign-in service is not available", &body)
}

/// `401` for a form posted after the session ended that is too large to keep.
pub fn form_too_large(login: &str, request_id: &str) -> String {
    message(
        "Your session has expired",
        "Please sign in again and send the form once more; it was too large to keep.",
        Some((login, "Sign in again")),
        request_id,
    )
}

/// `429` for too many sign-ins from one client.
pub fn too_many_sign_ins(request_id: &str) -> String {
    message(
        "Too many sign-in attempts",
        "There were too many sign-in attempts from your network. Please wait a minute and try again.",
        None,
        request_id,
    )
}

/// `404` under the sidecar's own prefix.
pub fn not_ours(request_id: &str) -> String {
    message(
        "Not found",
        "This address belongs to the sign-in service and does not exist.",
        Some(("/", "Go to the shop")),
        request_id,
    )
}

/// `503` at sign-in for an organization without any sign-in option.
pub fn no_sign_in_option(organization: &str, start: &str, request_id: &str) -> String {
    message(
        "Sign-in is not available",
        &format!("No sign-in option is set up for {organization}. Please contact the shop."),
        Some((start, "Choose another organization")),
        request_id,
    )
}

/// A page that explains a failure: what happened, what to do, and the request id for support.
pub fn message(title: &str, text: &str, link: Option<(&str, &str)>, request_id: &str) -> String {
    let link = link
        .map(|(href, label)| format!("<p><a href=\"{}\">{}</a></p>", escape(href), escape(label)))
        .unwrap_or_default();
    page(
        title,
        &format!(
            "<h1>{}</h1><p>{}</p>{link}<p class=\"id\">Request id: {}</p>",
            escape(title),
            escape(text),
            escape(request_id)
        ),
    )
}

// The sign-in pages: plain HTML forms that work without JavaScript.

pub struct IdpChoice<'a> {
    pub key: &'a str,
    pub name: &'a str,
}

fn error_banner(error: Option<&str>) -> String {
    error
        .map(|e| {
            format!(
                "<p class=\"error\" role=\"alert\" id=\"error\">{}</p>",
                escape(e)
            )
        })
        .unwrap_or_default()
}

/// Step one: which organization do you belong to?
pub fn organization_form(
    action: &str,
    return_to: &str,
    prefill: &str,
    error: Option<&str>,
) -> String {
    // The hint and any error are read out with the field (WCAG 1.3.1, 3.3.1).
    let (described_by, invalid) = match error {
        Some(_) => ("org-hint error", " aria-invalid=\"true\""),
        None => ("org-hint", ""),
    };
    let error = error_banner(error);
    page(
        "Sign in",
        &format!(
            "<h1>Sign in</h1>{error}\
<form method=\"get\" action=\"{action}\">\
<input type=\"hidden\" name=\"rd\" value=\"{rd}\">\
<label for=\"org\">Organization</label>\
<input id=\"org\" name=\"org\" type=\"text\" value=\"{prefill}\" required autofocus autocomplete=\"organization\" aria-describedby=\"{described_by}\"{invalid}>\
<p class=\"hint\" id=\"org-hint\">The name of the company or organization you work for.</p>\
<button type=\"submit\">Continue</button></form>",
            action = escape(action),
            rd = escape(return_to),
            prefill = escape(prefill),
        ),
    )
}

/// Step two: one button per identity provider of the organization.
pub fn idp_list(
    action: &str,
    return_to: &str,
    org_key: &str,
    org_name: &str,
    idps: &[IdpChoice<'_>],
    error: Option<&str>,
) -> String {
    let error = error_banner(error);
    let buttons: String = idps
        .iter()
        .map(|idp| {
            format!(
                "<form method=\"get\" action=\"{action}\">\
<input type=\"hidden\" name=\"rd\" value=\"{rd}\"><input type=\"hidden\" name=\"org\" value=\"{org}\">\
<input type=\"hidden\" name=\"idp\" value=\"{key}\">\
<button type=\"submit\" class=\"idp\" id=\"idp-{key}\">{name}</button></form>",
                action = escape(action),
                rd = escape(return_to),
                org = escape(org_key),
                key = escape(idp.key),
                name = escape(idp.name),
            )
        })
        .collect();
    page(
        "Sign in",
        &format!(
            "<h1>Sign in to {org}</h1>{error}<p>Choose how you want to sign in:</p>{buttons}\
<p class=\"hint\"><a href=\"{action}?rd={rd_q}\">Not {org}? Choose another organization</a></p>",
            org = escape(org_name),
            action = escape(action),
            rd_q =
                escape(&form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()),
        ),
    )
}

/// Signing in for another organization than the one signed in for: switch, or stay.
pub fn switch_organization(
    who: &str,
    current: &str,
    wanted: &str,
    switch: &str,
    stay: &str,
) -> String {
    page(
        "Switch organization",
        &format!(
            "<h1>Sign in for {wanted}?</h1>\
<p id=\"current\">You are signed in as <strong>{who}</strong> for <strong>{current}</strong>. Signing in for {wanted} ends that session in this browser.</p>\
<p><a href=\"{switch}\" id=\"switch\">Sign in for {wanted}</a></p>\
<p><a href=\"{stay}\" id=\"stay\">Stay signed in for {current}</a></p>",
            who = escape(who),
            current = escape(current),
            wanted = escape(wanted),
            switch = escape(switch),
            stay = escape(stay),
        ),
    )
}

/// The `403` page of a route whose `allow` rules do not admit the signed-in user, with a
/// way to sign out and in as someone else.
pub fn forbidden(who: &str, logout_path: &str, request_id: &str) -> String {
    page(
        "No access",
        &format!(
            "<h1>You do not have access to this page</h1>\
<p>You are signed in as <strong>{who}</strong>, and this account may not open it.</p>\
<form method=\"post\" action=\"{logout}\"><button type=\"submit\" id=\"switch-account\">Sign in as someone else</button></form>\
<p class=\"id\">Request id: {id}</p>",
            who = escape(who),
            logout = escape(logout_path),
            id = escape(request_id),
        ),
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
/// session lives on (`LOCAL`), so signing in again may not ask for a password.
pub fn signed_out(start_path: &str, idp_still_signed_in: Option<&str>, shop: &str) -> String {
    let idp_note = match idp_still_signed_in {
        Some(idp) => format!(
            "<p id=\"idp-session\">You are still signed in at <strong>{idp}</strong>, so signing in again may not ask for your password. To end that too, sign out at {idp}, or close the browser.</p>",
            idp = escape(idp)
        ),
        None => String::new(),
    };
    page(
        "Signed out",
        &format!(
            "<h1>You are signed out</h1><p>You have been signed out of the shop.</p>{idp_note}<p><a href=\"{start}\">Sign in again</a> · <a href=\"{shop}\">Back to the shop</a></p>",
            start = escape(start_path),
            shop = escape(shop),
        ),
    )
}

/// `/oauth2/logout` reached from another site: ask before signing out, saying who is
/// signed in where, with a way to stay.
pub fn confirm_logout(logout_path: &str, who: Option<&SignedIn>, stay: &str) -> String {
    let who = match who {
        Some(who) => {
            let email = (who.email.as_deref())
                .map(|e| format!(" ({})", escape(e)))
                .unwrap_or_default();
            format!(
                "<p id=\"who\">You are signed in as <strong>{name}</strong>{email} for <strong>{org}</strong>.</p>",
                name = escape(&who.name),
                org = escape(&who.organization),
            )
        }
        None => String::new(),
    };
    page(
        "Sign out",
        &format!(
            "<h1>Sign out?</h1>{who}<form method=\"post\" action=\"{logout}\"><button type=\"submit\" id=\"logout\">Sign out</button></form><p><a href=\"{stay}\" id=\"stay\">Stay signed in</a></p>",
            logout = escape(logout_path),
            stay = escape(stay),
        ),
    )
}

/// The status and page of a failed sign-in: what went wrong in the title, the error's
/// own words below it, and `retry` (link, label).
pub fn login_failed(error: &LoginError, retry: (&str, &str), request_id: &str) -> (u16, String) {
    let (status, title) = match error {
        LoginError::Idp {
            code: Some("access_denied"),
            ..
        } => (403, "Sign-in was cancelled or denied"),
        // Anyone can send an error to the callback: a 4xx, never a 5xx.
        LoginError::Idp { .. } => (400, "The identity provider refused the sign-in"),
        LoginError::MissingState | LoginError::StateMismatch => {
            (400, "Sign-in expired or came from another browser")
        }
        LoginError::MissingCode | LoginError::IssuerMismatch => {
            (400, "This sign-in link is no longer valid")
        }
        LoginError::CodeRejected(_) => (400, "This sign-in link is no longer valid"),
        LoginError::InvalidIdToken(_) | LoginError::UnknownSigningKey => {
            (401, "Your identity could not be verified")
        }
        LoginError::Unreachable(_) => (503, "The identity provider is not available"),
        LoginError::BadResponse(_) => (502, "The identity provider sent an answer we cannot read"),
        LoginError::Backend(_) => (502, "The shop could not complete your sign-in"),
        LoginError::BackendBusy(_) => (429, "The shop is busy"),
        LoginError::NotAMember { .. } => (403, "You are not a member of this organization"),
        LoginError::UnknownToShop => (403, "Your account is not known to the shop"),
        LoginError::Misconfigured(_) => (500, "Sign-in is not set up correctly"),
        LoginError::StepUpNotGiven => (
            403,
            "The identity provider did not give the stronger sign-in",
        ),
        LoginError::StepUpOtherUser => (403, "Someone else signed in"),
    };
    let text = sentence(&error.to_string());
    (status, message(title, &text, Some(retry), request_id))
}

/// The page that posts a kept form again, at once, to where it was posted.
pub fn resubmit_form(form: &crate::session::form::KeptForm) -> String {
    let fields: String = form_urlencoded::parse(&form.body)
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(&name),
                escape(&value)
            )
        })
        .collect();
    page(
        "Sending your form",
        &format!(
            "<h1>Sending your form</h1><p>You are signed in again; your form is being sent.</p>\
<form method=\"post\" action=\"{action}\">{fields}<button type=\"submit\">Send the form</button></form>\
<script>{RESUBMIT_SCRIPT}</script>",
            action = escape(&form.path_and_query),
        ),
    )
}

/// The only script of the form page; allowed by its hash in the page's CSP.
pub const RESUBMIT_SCRIPT: &str = "document.forms[0].submit();";

/// The form page's `Content-Security-Policy`: the sidecar's usual one, plus exactly that
/// script and form submission to the shop's own origin.
pub fn resubmit_policy() -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let hash =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(RESUBMIT_SCRIPT));
    format!(
        "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_organization_field_names_its_hint_and_error() {
        let plain = super::organization_form("/oauth2/start", "/", "", None);
        assert!(plain.contains("aria-describedby=\"org-hint\""), "{plain}");
        assert!(!plain.contains("aria-invalid"));
        let wrong = super::organization_form("/oauth2/start", "/", "x", Some("Unknown"));
        assert!(wrong.contains("aria-describedby=\"org-hint error\" aria-invalid=\"true\""));
        assert!(wrong.contains("id=\"error\""));
        // The field's border against white: 4.8:1 (WCAG 1.4.11 wants 3:1; #9ca3af was 2.5:1).
        assert!(super::STYLE.contains("border:1px solid #6b7280"));
    }

    use super::*;

    #[test]
    fn escapes_everything_that_matters() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn message_page_escapes_inputs() {
        let html = message("Oops", "<script>", Some(("/x?a=1&b=2", "Retry")), "id<1>");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("href=\"/x?a=1&amp;b=2\""));
        assert!(html.contains("id&lt;1&gt;"));
        assert!(!html.contains("<script>"));
    }
}
