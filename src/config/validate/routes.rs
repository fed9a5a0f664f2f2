//! `[[routes]]`: prefixes, auth modes, pinned organizations, rules, preflights.

use super::*;

impl Validator {
    pub(super) fn routes(
        &mut self,
        raw: Vec<RawRoute>,
        orgs: &BTreeMap<String, Organization>,
        own_prefix: &str,
    ) -> Vec<Route> {
        let mut routes: Vec<(usize, Route)> = Vec::new();
        for (i, route) in raw.into_iter().enumerate() {
            let path = format!("routes[{i}]");
            // Every field is checked, even after a bad one: an operator sees all of a
            // route's mistakes at once. A route with a bad prefix or mode is left out.
            let path_prefix = match route.path_prefix {
                Some(p) if p.starts_with('/') => Some(p),
                Some(_) => {
                    self.problem(format!("{path}.path_prefix"), "must start with /");
                    None
                }
                None => {
                    self.problem(
                        format!("{path}.path_prefix"),
                        "missing (use \"/\" for everything)",
                    );
                    None
                }
            };
            let auth = self.choice(
                &format!("{path}.auth"),
                route.auth.as_deref(),
                AuthMode::Required,
            );
            if let Some(org) = &route.organization {
                if !orgs.contains_key(org) {
                    let defined: Vec<_> = orgs.keys().map(String::as_str).collect();
                    self.problem(
                        format!("{path}.organization"),
                        format!(
                            "\"{org}\" is not defined in [organizations]{}",
                            suggest(org, &defined)
                        ),
                    );
                }
            }
            let allow = self.rules(&format!("{path}.allow"), route.allow);
            let preflight = self
                .choice(
                    &format!("{path}.preflight"),
                    route.preflight.as_deref(),
                    Preflight::Forward,
                )
                .unwrap_or_default();
            let step_up = self.step_up(&path, route.acr_values, route.max_age);
            let (Some(path_prefix), Some(auth)) = (path_prefix, auth) else {
                continue;
            };
            if step_up.is_some() && !auth.needs_sign_in() {
                self.problem(
                    format!("{path}.acr_values"),
                    format!(
                        "acr_values and max_age need auth = \"required\" or \"api\": a {} route never asks anyone to sign in",
                        auth.as_str()
                    ),
                );
            }
            if path_prefix.starts_with(own_prefix) {
                self.warnings.push(format!(
                    "{path}.path_prefix: {path_prefix} lies under the sidecar's own {own_prefix}/ endpoints, which answer first"
                ));
            }
            if !allow.is_empty() && !auth.needs_sign_in() {
                self.problem(
                    format!("{path}.allow"),
                    format!(
                        "needs auth = \"required\" or \"api\": a{} {} route lets everyone in",
                        if auth == AuthMode::Optional { "n" } else { "" },
                        auth.as_str()
                    ),
                );
            }
            // Stored as the router compares it: the canonical name a request's host gets.
            // A route with a bad host is left out: host-less, it would match every host.
            let host = match route
                .host
                .map(|h| crate::host::canonical_name(&h).map_err(|e| (h, e)))
            {
                None => None,
                Some(Ok(name)) => Some(name),
                Some(Err((h, problem))) => {
                    self.problem(format!("{path}.host"), format!("\"{h}\": {problem}"));
                    continue;
                }
            };
            let new = Route {
                host,
                path_prefix,
                auth,
                organization: route.organization,
                allow,
                preflight,
                step_up,
            };
            if let Some((j, earlier)) = routes.iter().find(|(_, earlier)| shadows(earlier, &new)) {
                let what = if earlier.host == new.host && earlier.path_prefix == new.path_prefix {
                    "duplicate of"
                } else {
                    "unreachable: every request it matches is taken by"
                };
                self.problem(
                    format!("{path}.path_prefix"),
                    format!(
                        "{what} routes[{j}] (host {}, path_prefix {})",
                        earlier.host.as_deref().unwrap_or("any"),
                        earlier.path_prefix
                    ),
                );
                continue;
            }
            routes.push((i, new));
        }
        routes.into_iter().map(|(_, r)| r).collect()
    }

    /// `acr_values` and `max_age` of a route. The values go into `WWW-Authenticate` and
    /// the IdP's query as they are, so they are tokens: visible ASCII without quotes,
    /// backslashes or spaces.
    fn step_up(
        &mut self,
        path: &str,
        acr_values: Option<Vec<String>>,
        max_age: Option<toml::Value>,
    ) -> Option<StepUp> {
        let key = format!("{path}.acr_values");
        let acr_values = acr_values.unwrap_or_default();
        for value in &acr_values {
            let token = !value.is_empty()
                && value.len() <= 256
                && value
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
            if !token {
                self.problem(
                    &key,
                    format!("{value:?} is not an acr value (visible ASCII, no spaces, quotes or backslashes)"),
                );
            }
        }
        let max_age =
            max_age.map(|v| self.duration(&format!("{path}.max_age"), Some(v), Duration::ZERO));
        if acr_values.is_empty() && max_age.is_none() {
            return None;
        }
        Some(StepUp {
            acr_values,
            max_age,
        })
    }
}
