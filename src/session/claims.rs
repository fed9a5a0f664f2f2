//! The few claims a session keeps beyond its identity: those that membership and route
//! rules look at, and the user's groups. Kept as plain text lists by claim path, so the
//! cookie holds only what a rule can use (an Azure token's 20 group ids, not its 40 claims).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Claim path (`groups`, `realm_access.roles`) → its values.
pub type KeptClaims = BTreeMap<String, Vec<String>>;

/// The values at a claim name or dotted path: a string, number or boolean is one value, a
/// list gives its scalar elements; anything else gives none.
pub fn values_at(claims: &Map<String, Value>, path: &str) -> Vec<String> {
    let mut parts = path.split('.');
    let Some(first) = parts.next() else {
        return Vec::new();
    };
    let mut value = claims.get(first);
    for part in parts {
        value = value.and_then(|v| v.get(part));
    }
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
        Some(other) => scalar(other).into_iter().collect(),
        None => Vec::new(),
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The claims at `paths`, each list cut at `max_values`; paths without values are left out.
pub fn keep<'p>(
    claims: &Map<String, Value>,
    paths: impl IntoIterator<Item = &'p str>,
    max_values: usize,
) -> KeptClaims {
    paths
        .into_iter()
        .filter_map(|path| {
            let mut values = values_at(claims, path);
            values.truncate(max_values);
            (!values.is_empty()).then(|| (path.to_owned(), values))
        })
        .collect()
}

/// The groups as `X-SSO-Groups` can carry them: no value with a comma or a control
/// character (it could not be told apart or could split the header), at most `max`.
pub fn groups(claims: &Map<String, Value>, path: &str, max: usize) -> Vec<String> {
    values_at(claims, path)
        .into_iter()
        .filter(|g| !g.is_empty() && !g.contains(',') && !g.chars().any(char::is_control))
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_paths_lists_and_scalars() {
        let claims = json!({
            "email": "a@b.example",
            "groups": ["buyers", 7, true, {"x": 1}, ["nested"]],
            "realm_access": {"roles": ["admin", "user"]},
            "n": 3
        });
        let claims = claims.as_object().unwrap();
        assert_eq!(values_at(claims, "email"), ["a@b.example"]);
        assert_eq!(values_at(claims, "groups"), ["buyers", "7", "true"]);
        assert_eq!(values_at(claims, "realm_access.roles"), ["admin", "user"]);
        assert_eq!(values_at(claims, "n"), ["3"]);
        assert!(values_at(claims, "realm_access.missing").is_empty());
        assert!(values_at(claims, "email.x").is_empty());
        let kept = keep(claims, ["groups", "missing", "realm_access.roles"], 2);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept["groups"], ["buyers", "7"]);
        let odd = json!({"g": ["a,b", "ok", "x\ny", "", "two"]});
        assert_eq!(groups(odd.as_object().unwrap(), "g", 10), ["ok", "two"]);
        assert_eq!(groups(odd.as_object().unwrap(), "g", 1), ["ok"]);
    }
}
