//! `[organizations.*]`: IdPs per organization, members, self-administration.

use super::*;

impl Validator {
    pub(super) fn organizations(
        &mut self,
        raw: BTreeMap<String, RawOrganization>,
        idps: &BTreeMap<String, IdentityProvider>,
        declared_idps: &[String],
        remote: bool,
    ) -> BTreeMap<String, Organization> {
        let mut external_names: BTreeMap<String, String> = BTreeMap::new();
        let mut orgs = BTreeMap::new();
        for (key, org) in raw {
            let path = format!("organizations.{key}");
            if !is_simple_key(&key) {
                self.problem(&path, "key may only hold letters, digits, '_', '-' and '.'");
            }
            let external_name = match org.external_name {
                Some(name) if !name.trim().is_empty() => name,
                _ => {
                    self.problem(
                        format!("{path}.external_name"),
                        "missing (the name users type on the login page)",
                    );
                    key.clone()
                }
            };
            // The login page matches organizations case-insensitively on key and external name.
            for name in [key.to_lowercase(), external_name.to_lowercase()] {
                if let Some(other) = external_names.get(&name).filter(|other| **other != key) {
                    self.problem(
                        format!("{path}.external_name"),
                        format!("\"{name}\" is also the name of organization {other} (names must be unique, ignoring case)"),
                    );
                }
                external_names.insert(name, key.clone());
            }
            let listed = org
                .identity_providers
                .map(|l| l.items())
                .unwrap_or_else(|| vec![IMPLICIT_LOCAL_IDP.to_owned()]);
            let mut offered = Vec::new();
            for (i, idp_key) in listed.iter().enumerate() {
                match idps.get(idp_key) {
                    Some(idp) if idp.is_local() || remote => offered.push(idp_key.clone()),
                    Some(_) => {}
                    None if idp_key == IMPLICIT_LOCAL_IDP => offered.push(idp_key.clone()),
                    None if declared_idps.contains(idp_key) => {}
                    None => {
                        let defined: Vec<_> = declared_idps.iter().map(String::as_str).collect();
                        self.problem(
                            format!("{path}.identity_providers[{i}]"),
                            format!(
                                "\"{idp_key}\" is not defined in [identity_providers]{}",
                                suggest(idp_key, &defined)
                            ),
                        );
                    }
                }
            }
            let only_remote = listed
                .iter()
                .any(|k| idps.get(k).is_some_and(|idp| !idp.is_local()));
            if offered.is_empty() && !remote && only_remote {
                // As ICM does: with remote sign-in off, the organization's users sign in
                // locally at the backend.
                offered.push(IMPLICIT_LOCAL_IDP.to_owned());
                self.warnings.push(format!(
                    "{path}: oidc.remote is \"unsupported\" and none of its identity providers is local: its users sign in locally (local_login_url)"
                ));
            } else if offered.is_empty() && !listed.is_empty() {
                self.warnings.push(format!(
                    "{path}: no identity provider is offered (oidc.remote is \"unsupported\" and none is local)"
                ));
            }
            let self_administration =
                self.self_administration(&path, org.self_administration_policy);
            let logout_policy = self
                .choice(
                    &format!("{path}.logout_policy"),
                    org.logout_policy.as_deref(),
                    LogoutPolicy::External,
                )
                .unwrap_or(LogoutPolicy::External);
            let local_login_url = self
                .path_or_url(&format!("{path}.local_login_url"), org.local_login_url)
                .unwrap_or_else(|| defaults::organizations::LOCAL_LOGIN_URL.to_owned());
            let post_logout_url =
                self.path_or_url(&format!("{path}.post_logout_url"), org.post_logout_url);
            let members = self.rules(&format!("{path}.members"), org.members);
            orgs.insert(
                key.clone(),
                Organization {
                    key,
                    external_name,
                    identity_providers: offered,
                    self_administration,
                    logout_policy,
                    local_login_url,
                    post_logout_url,
                    members,
                },
            );
        }
        orgs
    }

    /// A claim name or a dotted path into nested claims (`realm_access.roles`).
    pub(super) fn claim_path(&mut self, key: &str, text: &str) -> Option<String> {
        let text = text.trim();
        if !text.is_empty() && text.split('.').all(|part| !part.is_empty()) {
            return Some(text.to_owned());
        }
        self.problem(
            key,
            "must be a claim name or a dotted path such as \"realm_access.roles\"",
        );
        None
    }

    /// `members` and `allow` lists: each rule names a claim and exactly one test.
    pub(super) fn rules(&mut self, path: &str, raw: Option<Vec<raw::RawRule>>) -> Vec<ClaimRule> {
        let mut rules = Vec::new();
        for (i, rule) in raw.unwrap_or_default().into_iter().enumerate() {
            let at = format!("{path}[{i}]");
            let claim = match rule.claim.as_deref() {
                Some(claim) => match self.claim_path(&format!("{at}.claim"), claim) {
                    Some(claim) => claim,
                    None => continue,
                },
                None => {
                    self.problem(format!("{at}.claim"), "missing (e.g. claim = \"groups\")");
                    continue;
                }
            };
            let test = match (rule.any_of, rule.ends_with) {
                (Some(values), None) => ("any_of", ClaimTest::AnyOf(values)),
                (None, Some(suffixes)) => ("ends_with", ClaimTest::EndsWith(suffixes)),
                (Some(_), Some(_)) => {
                    self.problem(&at, "has both any_of and ends_with; use two rules");
                    continue;
                }
                (None, None) => {
                    self.problem(
                        &at,
                        "needs any_of = [...] (exact values) or ends_with = [...] (suffixes)",
                    );
                    continue;
                }
            };
            let (name, values) = match &test.1 {
                ClaimTest::AnyOf(v) => (test.0, v),
                ClaimTest::EndsWith(v) => (test.0, v),
            };
            if values.is_empty() || values.iter().any(|v| v.is_empty()) {
                self.problem(
                    format!("{at}.{name}"),
                    "must list at least one value, none of them empty",
                );
                continue;
            }
            rules.push(ClaimRule {
                claim,
                test: test.1,
            });
        }
        rules
    }

    pub(super) fn self_administration(
        &mut self,
        path: &str,
        raw: Option<raw::StringList>,
    ) -> SelfAdministration {
        let items = raw.map(|l| l.items()).unwrap_or_default();
        // ICM: an empty or missing list means the default; NONE overrules everything else.
        if items.is_empty() {
            return SelfAdministration {
                create: true,
                update: true,
            };
        }
        let mut policy = SelfAdministration {
            create: false,
            update: false,
        };
        let mut none = false;
        for (i, item) in items.iter().enumerate() {
            match item.to_ascii_uppercase().as_str() {
                "CREATE" => policy.create = true,
                "UPDATE" => policy.update = true,
                "NONE" => none = true,
                _ => self.bad_enum(
                    &format!("{path}.self_administration_policy[{i}]"),
                    item,
                    &["CREATE", "UPDATE", "NONE"],
                ),
            }
        }
        if none {
            SelfAdministration {
                create: false,
                update: false,
            }
        } else {
            policy
        }
    }
}
