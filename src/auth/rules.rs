//! Who may enter: organization membership and route `allow` rules, both lists of
//! [`ClaimRule`]s of which one must match. Pure functions, so every branch is tested here.

use crate::config::{ClaimRule, ClaimTest};

/// True when `rules` is empty (no restriction) or one rule matches the values that
/// `values_of` finds at its claim path.
pub fn satisfied(rules: &[ClaimRule], values_of: impl Fn(&str) -> Vec<String>) -> bool {
    rules.is_empty()
        || rules
            .iter()
            .any(|rule| matches(rule, &values_of(&rule.claim)))
}

fn matches(rule: &ClaimRule, values: &[String]) -> bool {
    match &rule.test {
        ClaimTest::AnyOf(wanted) => values.iter().any(|v| wanted.contains(v)),
        ClaimTest::EndsWith(suffixes) => values.iter().any(|v| {
            suffixes
                .iter()
                .any(|suffix| ends_with_ignoring_ascii_case(v, suffix))
        }),
    }
}

fn ends_with_ignoring_ascii_case(value: &str, suffix: &str) -> bool {
    value.len() >= suffix.len()
        && value.is_char_boundary(value.len() - suffix.len())
        && value[value.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(claim: &str, test: ClaimTest) -> ClaimRule {
        ClaimRule {
            claim: claim.into(),
            test,
        }
    }

    fn user(claim: &str) -> Vec<String> {
        match claim {
            "email" => vec!["Ann@Intershop.COM".into()],
            "groups" => vec!["buyers".into(), "staff".into()],
            "realm_access.roles" => vec!["admin".into()],
            _ => Vec::new(),
        }
    }

    #[test]
    fn any_rule_matching_is_enough() {
        let staff = rule("groups", ClaimTest::AnyOf(vec!["staff".into()]));
        let domain = rule("email", ClaimTest::EndsWith(vec!["@intershop.com".into()]));
        let nobody = rule("groups", ClaimTest::AnyOf(vec!["root".into()]));
        assert!(satisfied(&[], user));
        assert!(satisfied(std::slice::from_ref(&staff), user));
        assert!(
            satisfied(std::slice::from_ref(&domain), user),
            "suffixes ignore ASCII case"
        );
        assert!(satisfied(&[nobody.clone(), domain], user));
        assert!(!satisfied(&[nobody], user));
        let role = rule("realm_access.roles", ClaimTest::AnyOf(vec!["admin".into()]));
        assert!(satisfied(&[role], user));
    }

    #[test]
    fn exact_values_and_missing_claims() {
        let case = rule("groups", ClaimTest::AnyOf(vec!["Staff".into()]));
        assert!(!satisfied(&[case], user), "any_of is exact");
        let missing = rule("department", ClaimTest::EndsWith(vec!["x".into()]));
        assert!(!satisfied(&[missing], user));
        let multibyte = rule("email", ClaimTest::EndsWith(vec!["é.com".into()]));
        assert!(!satisfied(&[multibyte], |_| vec!["ü".into()]));
    }
}
