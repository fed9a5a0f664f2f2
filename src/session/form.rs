//! A form whose session ran out while it was being filled in: its `POST` is kept (sealed in
//! a cookie only the sidecar's endpoints receive) across the sign-in and submitted again
//! afterwards by an auto-submitting page, as mod_auth_openidc's `OIDCPreservePost` does.

use serde::{Deserialize, Serialize};

/// How long a kept form waits for the sign-in to finish.
pub const KEPT_FORM_TTL_SECS: i64 = 600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptForm {
    /// Random: ties the form to the sign-in started for it ([`super::pending::PendingLogin::kept_form`]).
    pub id: u64,
    /// Where it was posted: the sign-in returns there.
    pub path_and_query: String,
    /// The `application/x-www-form-urlencoded` body.
    pub body: Vec<u8>,
    pub created_at: i64,
}

impl KeptForm {
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        super::model::deflate_after(Vec::new(), &postcard::to_stdvec(self).ok()?)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(&super::model::inflate(bytes)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_forms_round_trip_and_resubmit_escaped() {
        let form = KeptForm {
            path_and_query: "/INTERSHOP/web/WFS/x?a=1&b=\"2".into(),
            body: b"description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&note=caf%C3%A9+au+lait"
                .to_vec(),
            created_at: 5,
            id: 7,
        };
        assert_eq!(
            KeptForm::from_bytes(&form.to_bytes().unwrap()).unwrap(),
            form
        );
        let rendered =
            crate::pages::Pages::shipped().render(&crate::pages::resubmit_form(&form), None, None);
        let page = rendered.body;
        assert!(
            page.contains("name=\"description\" value=\"&lt;script&gt;alert(1)&lt;/script&gt;\""),
            "{page}"
        );
        assert!(page.contains("value=\"café au lait\""));
        assert!(
            page.contains("action=\"/INTERSHOP/web/WFS/x?a=1&amp;b=&quot;2\""),
            "{page}"
        );
        assert!(rendered.policy.contains("script-src 'sha256-"));
    }
}
