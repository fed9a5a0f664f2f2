//! commercetools' HTTP API, as the connector the external-OAuth setup needs: an API client
//! (client credentials) that finds, creates and updates customers keyed by the IdP's user
//! id, and resolves the commercetools customer id and group that introspection answers with.
//!
//! Every call is bounded by `commercetools.api.timeout` and counted in
//! `sso_sidecar_backend_calls_total{call="commercetools_*",outcome}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{CommercetoolsApiConfig, SelfAdministration};
use crate::metrics::{BackendCall, CallOutcome, Metrics};

/// A customer as the sidecar needs it: commercetools' id and the key of its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRef {
    pub id: String,
    pub group: Option<String>,
}

/// What the IdP says the customer should look like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredCustomer {
    pub key: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The customer group's key, when the user's claims map to one.
    pub group: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Network error, timeout or a 5xx: try again later.
    #[error("commercetools could not be reached: {0}")]
    Unreachable(String),
    /// A 4xx other than not-found and conflict: the request itself was refused.
    #[error("commercetools refused the request ({0})")]
    Refused(String),
    /// `409 ConcurrentModification`: the version was stale.
    #[error("the customer was changed at the same time")]
    Conflict,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No such customer and the policy does not allow creating one.
    #[error("no customer with this key, and the policy does not allow creating one")]
    Unknown,
    /// The customer could not be created (refused, unreachable, no email to create it with).
    #[error("the customer could not be created: {0}")]
    NotCreated(String),
}

/// The customer fields commercetools returns that the sync compares.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Customer {
    id: String,
    version: i64,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    customer_group: Option<Reference>,
}

#[derive(Debug, Clone, Deserialize)]
struct Reference {
    id: String,
}

/// Customers resolved recently, by key; also the ones not found, for a short while.
const CUSTOMER_CACHE: Duration = Duration::from_secs(300);
const GROUP_CACHE: Duration = Duration::from_secs(600);
/// A client-credentials token is renewed when less than this is left.
const TOKEN_RENEW_BEFORE: Duration = Duration::from_secs(120);

pub struct CommercetoolsApi {
    http: reqwest::Client,
    config: CommercetoolsApiConfig,
    project_key: String,
    metrics: Arc<Metrics>,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
    customers: Cache<String, Option<CustomerRef>>,
    /// Customer group key ↔ id, both ways.
    group_ids: Cache<String, String>,
    group_keys: Cache<String, String>,
}

impl CommercetoolsApi {
    pub fn new(
        http: reqwest::Client,
        config: CommercetoolsApiConfig,
        project_key: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        CommercetoolsApi {
            http,
            config,
            project_key,
            metrics,
            token: tokio::sync::Mutex::new(None),
            customers: bounded(CUSTOMER_CACHE),
            group_ids: bounded(GROUP_CACHE),
            group_keys: bounded(GROUP_CACHE),
        }
    }

    /// The customer with `key` as last seen here, without asking commercetools.
    pub async fn cached_customer(&self, key: &str) -> Option<Option<CustomerRef>> {
        self.customers.get(key).await
    }

    /// The customer with `key`: from the cache, else from commercetools.
    pub async fn customer(&self, key: &str) -> Result<Option<CustomerRef>, ApiError> {
        if let Some(known) = self.customers.get(key).await {
            return Ok(known);
        }
        let found = match self.customer_by_key(key).await? {
            Some(customer) => Some(self.reference(&customer).await?),
            None => None,
        };
        self.customers.insert(key.to_owned(), found.clone()).await;
        Ok(found)
    }

    /// Brings the customer in line with `desired` as `policy` allows: created when missing
    /// (`CREATE`), changed fields updated (`UPDATE`, retried once on a version conflict).
    /// An unreachable API or a refused update under `UPDATE` only is logged and the
    /// customer as it is (if known) returned.
    pub async fn sync(
        &self,
        desired: &DesiredCustomer,
        policy: SelfAdministration,
    ) -> Result<Option<CustomerRef>, SyncError> {
        let existing = match self.customer_by_key(&desired.key).await {
            Ok(existing) => existing,
            Err(error) if policy.create => return Err(SyncError::NotCreated(error.to_string())),
            Err(error) => {
                tracing::warn!(%error, "commercetools customer lookup failed; sign-in goes on");
                return Ok(None);
            }
        };
        let customer = match existing {
            None if !policy.create => return Err(SyncError::Unknown),
            None => self
                .create(desired)
                .await
                .map_err(|e| SyncError::NotCreated(e.to_string()))?,
            Some(customer) if policy.update => match self.update(customer.clone(), desired).await {
                Ok(updated) => updated,
                Err(error) => {
                    tracing::warn!(%error, "commercetools customer update failed; sign-in goes on");
                    customer
                }
            },
            Some(customer) => customer,
        };
        let reference = match self.reference(&customer).await {
            Ok(reference) => reference,
            Err(_) => CustomerRef {
                id: customer.id.clone(),
                group: None,
            },
        };
        self.customers
            .insert(desired.key.clone(), Some(reference.clone()))
            .await;
        Ok(Some(reference))
    }

    async fn create(&self, desired: &DesiredCustomer) -> Result<Customer, ApiError> {
        let Some(email) = &desired.email else {
            return Err(ApiError::Refused(
                "the IdP sent no email, which commercetools requires".into(),
            ));
        };
        let mut draft = json!({
            "key": desired.key,
            "email": email,
            "authenticationMode": "ExternalAuth",
        });
        if let Some(first) = &desired.first_name {
            draft["firstName"] = json!(first);
        }
        if let Some(last) = &desired.last_name {
            draft["lastName"] = json!(last);
        }
        if let Some(group) = &desired.group {
            draft["customerGroup"] = json!({"typeId": "customer-group", "key": group});
        }
        let answer = self
            .call(
                BackendCall::CommercetoolsCustomerCreate,
                reqwest::Method::POST,
                "customers",
                Some(&draft),
            )
            .await?
            .ok_or_else(|| ApiError::Refused("customer draft not accepted".into()))?;
        // commercetools answers with a CustomerSignInResult: `{"customer": {...}}`.
        let created: Customer =
            serde_json::from_value(answer.get("customer").cloned().unwrap_or(answer))
                .map_err(|e| ApiError::Refused(format!("unexpected answer: {e}")))?;
        // Whatever the draft's group became, the update step makes it what the claims say.
        let group_only = DesiredCustomer {
            key: desired.key.clone(),
            group: desired.group.clone(),
            ..Default::default()
        };
        self.update(created, &group_only).await
    }

    /// Applies the changed fields of `desired` (those it has a value for).
    async fn update(
        &self,
        current: Customer,
        desired: &DesiredCustomer,
    ) -> Result<Customer, ApiError> {
        let mut current = current;
        for attempt in 0..2 {
            let actions = self.actions(&current, desired).await?;
            if actions.is_empty() {
                return Ok(current);
            }
            let body = json!({"version": current.version, "actions": actions});
            let path = format!("customers/{}", current.id);
            match self
                .call(
                    BackendCall::CommercetoolsCustomerUpdate,
                    reqwest::Method::POST,
                    &path,
                    Some(&body),
                )
                .await
            {
                Ok(Some(answer)) => {
                    return serde_json::from_value(answer)
                        .map_err(|e| ApiError::Refused(format!("unexpected answer: {e}")))
                }
                Ok(None) => return Err(ApiError::Refused("customer vanished".into())),
                Err(ApiError::Conflict) if attempt == 0 => {
                    // Someone else changed it: read the current version and try once more.
                    current = self
                        .customer_by_key(&desired.key)
                        .await?
                        .ok_or_else(|| ApiError::Refused("customer vanished".into()))?;
                }
                Err(error) => return Err(error),
            }
        }
        Err(ApiError::Conflict)
    }

    async fn actions(
        &self,
        current: &Customer,
        desired: &DesiredCustomer,
    ) -> Result<Vec<Value>, ApiError> {
        let mut actions = Vec::new();
        if let Some(email) = &desired.email {
            if !current
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
            {
                actions.push(json!({"action": "changeEmail", "email": email}));
            }
        }
        if desired.first_name.is_some() && desired.first_name != current.first_name {
            actions.push(json!({"action": "setFirstName", "firstName": desired.first_name}));
        }
        if desired.last_name.is_some() && desired.last_name != current.last_name {
            actions.push(json!({"action": "setLastName", "lastName": desired.last_name}));
        }
        // A user whose claims map to no group keeps the group they have: it may have been
        // set in the Merchant Center.
        if let Some(group) = &desired.group {
            let wanted = self.group_id(group).await?;
            let has = current.customer_group.as_ref().map(|g| g.id.as_str());
            if wanted.is_some() && has != wanted.as_deref() {
                actions.push(json!({
                    "action": "setCustomerGroup",
                    "customerGroup": {"typeId": "customer-group", "key": group},
                }));
            }
        }
        Ok(actions)
    }

    async fn reference(&self, customer: &Customer) -> Result<CustomerRef, ApiError> {
        let group = match &customer.customer_group {
            Some(group) => self.group_key(&group.id).await?,
            None => None,
        };
        Ok(CustomerRef {
            id: customer.id.clone(),
            group,
        })
    }

    async fn customer_by_key(&self, key: &str) -> Result<Option<Customer>, ApiError> {
        let path = format!("customers/key={}", encode(key));
        match self
            .call(
                BackendCall::CommercetoolsCustomerGet,
                reqwest::Method::GET,
                &path,
                None,
            )
            .await?
        {
            Some(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| ApiError::Refused(format!("unexpected answer: {e}"))),
            None => Ok(None),
        }
    }

    async fn group_id(&self, key: &str) -> Result<Option<String>, ApiError> {
        if let Some(id) = self.group_ids.get(key).await {
            return Ok(Some(id));
        }
        let found = self
            .group(&format!("customer-groups/key={}", encode(key)))
            .await?;
        if found.is_none() {
            tracing::warn!(
                group = key,
                "commercetools has no customer group with this key"
            );
        }
        Ok(found.map(|(id, _)| id))
    }

    async fn group_key(&self, id: &str) -> Result<Option<String>, ApiError> {
        if let Some(key) = self.group_keys.get(id).await {
            return Ok(Some(key));
        }
        let found = self
            .group(&format!("customer-groups/{}", encode(id)))
            .await?;
        Ok(found.map(|(_, key)| key))
    }

    /// The customer group at `path` as (id, key), remembered both ways.
    async fn group(&self, path: &str) -> Result<Option<(String, String)>, ApiError> {
        let Some(group) = self
            .call(
                BackendCall::CommercetoolsGroupGet,
                reqwest::Method::GET,
                path,
                None,
            )
            .await?
        else {
            return Ok(None);
        };
        let (Some(id), Some(key)) = (group["id"].as_str(), group["key"].as_str()) else {
            return Ok(None);
        };
        let (id, key) = (id.to_owned(), key.to_owned());
        self.group_ids.insert(key.clone(), id.clone()).await;
        self.group_keys.insert(id.clone(), key.clone()).await;
        Ok(Some((id, key)))
    }

    /// Merge Cart: the anonymous cart of `anonymous_id` goes to `customer_id`, as `mode`
    /// says. commercetools takes only an anonymous cart, never another customer's.
    pub async fn merge_anonymous_cart(
        &self,
        customer_id: &str,
        anonymous_id: &str,
        mode: &str,
    ) -> Result<(), ApiError> {
        let body = json!({"anonymousId": anonymous_id, "mergeMode": mode});
        let path = format!("carts/customer-id={}/merge", encode(customer_id));
        let merged = self
            .call(
                BackendCall::CommercetoolsCartMerge,
                reqwest::Method::POST,
                &path,
                Some(&body),
            )
            .await?;
        merged
            .map(|_| ())
            .ok_or_else(|| ApiError::Refused("404".into()))
    }

    /// One API call: `None` for `404`. A `401` renews the token and tries once more.
    async fn call(
        &self,
        call: BackendCall,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, ApiError> {
        let result = self.call_once(method.clone(), path, body, false).await;
        let result = match result {
            Err(ApiError::Refused(ref status)) if status == "401" => {
                self.call_once(method, path, body, true).await
            }
            other => other,
        };
        let outcome = match &result {
            Ok(Some(_)) => CallOutcome::Ok,
            Ok(None) => CallOutcome::NotFound,
            Err(ApiError::Conflict) => CallOutcome::Conflict,
            Err(ApiError::Refused(_)) => CallOutcome::Refused,
            Err(ApiError::Unreachable(_)) => CallOutcome::Error,
        };
        self.metrics.backends.count_backend_call(call, outcome);
        result
    }

    async fn call_once(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        renew: bool,
    ) -> Result<Option<Value>, ApiError> {
        let token = self.token(renew).await?;
        let url = format!(
            "{}/{}/{path}",
            self.config.url.as_str().trim_end_matches('/'),
            self.project_key
        );
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .timeout(self.config.timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(crate::error_chain::error_chain(&e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status == reqwest::StatusCode::CONFLICT {
            return Err(ApiError::Conflict);
        }
        if status.is_server_error() {
            return Err(ApiError::Unreachable(format!("status {}", status.as_u16())));
        }
        if !status.is_success() {
            return Err(ApiError::Refused(status.as_u16().to_string()));
        }
        response
            .json()
            .await
            .map(Some)
            .map_err(|e| ApiError::Unreachable(crate::error_chain::error_chain(&e)))
    }

    /// A client-credentials token, renewed before it runs out (or at once with `renew`).
    async fn token(&self, renew: bool) -> Result<String, ApiError> {
        let mut cached = self.token.lock().await;
        if let Some((token, renew_at)) = cached.as_ref() {
            if !renew && Instant::now() < *renew_at {
                return Ok(token.clone());
            }
        }
        let url = format!(
            "{}/oauth/token",
            self.config.auth_url.as_str().trim_end_matches('/')
        );
        let response = self
            .http
            .post(url)
            .basic_auth(
                &self.config.client_id,
                Some(self.config.client_secret.expose()),
            )
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", self.config.scopes.as_str()),
            ])
            .timeout(self.config.timeout)
            .send()
            .await;
        let response = match response {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                self.metrics
                    .backends
                    .count_backend_call(BackendCall::CommercetoolsToken, CallOutcome::Refused);
                return Err(ApiError::Refused(format!(
                    "token: status {}",
                    r.status().as_u16()
                )));
            }
            Err(e) => {
                self.metrics
                    .backends
                    .count_backend_call(BackendCall::CommercetoolsToken, CallOutcome::Error);
                return Err(ApiError::Unreachable(crate::error_chain::error_chain(&e)));
            }
        };
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
            expires_in: Option<u64>,
        }
        let token: Token = response.json().await.map_err(|e| {
            self.metrics
                .backends
                .count_backend_call(BackendCall::CommercetoolsToken, CallOutcome::Error);
            ApiError::Unreachable(crate::error_chain::error_chain(&e))
        })?;
        self.metrics
            .backends
            .count_backend_call(BackendCall::CommercetoolsToken, CallOutcome::Ok);
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600).min(172_800));
        let renew_at =
            Instant::now() + lifetime.saturating_sub(TOKEN_RENEW_BEFORE.min(lifetime / 2));
        *cached = Some((token.access_token.clone(), renew_at));
        Ok(token.access_token)
    }
}

fn bounded<V: Clone + Send + Sync + 'static>(ttl: Duration) -> Cache<String, V> {
    Cache::builder()
        .max_capacity(100_000)
        .time_to_live(ttl)
        .build()
}

/// A path segment value (keys may hold any character commercetools allows).
fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}
