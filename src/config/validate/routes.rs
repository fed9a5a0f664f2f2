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
            let (Some(path_prefix), Some(auth)) = (path_prefix, auth) else {
                continue;
            };
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
}
