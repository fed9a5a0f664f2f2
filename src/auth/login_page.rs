//! The login page: plain HTML forms that work without JavaScript.

use crate::pages::{escape, page};

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
    let error = error_banner(error);
    page(
        "Sign in",
        &format!(
            "<h1>Sign in</h1>{error}\
<form method=\"get\" action=\"{action}\">\
<input type=\"hidden\" name=\"rd\" value=\"{rd}\">\
<label for=\"org\">Organization</label>\
<input id=\"org\" name=\"org\" type=\"text\" value=\"{prefill}\" required autofocus autocomplete=\"organization\">\
<p class=\"hint\">The name of the company or organization you work for.</p>\
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
