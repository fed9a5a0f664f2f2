//! What mod_auth_openidc speaks, against the real provider requiring it (issue 31): client
//! authentication by `private_key_jwt` and `client_secret_jwt`, pushed authorization
//! requests, DPoP-bound tokens (with the provider's nonces), resource indicators.

mod common;

use base64::Engine as _;
use common::nginx::Nginx;
use common::*;
use serde_json::json;

const CONFIG: &str = r#"
[server]
listen = "{listen}"
upstream = "{upstream}"
public_url = "{public_url}"

[admin]
listen = "{admin}"

[oidc]
remote = "supported"
{oidc}

[session]
keys = ["{session_key}"]
secure = false

[headers]
forward_access_token = true

[identity_providers.kc]
type = "oidc"
name = "Company login"
issuer = "{issuer}"
client_id = "shop"
{idp}

[organizations.Shop]
external_name = "Shop"
identity_providers = ["kc"]

[[routes]]
path_prefix = "/"
auth = "required"
"#;

/// The provider's client `shop` with `metadata` on top of what every test client has.
fn idp_client(ports: Ports, metadata: serde_json::Value) -> serde_json::Value {
    let mut client = json!({
        "client_id": "shop",
        "redirect_uris": [ports.callback()],
        "post_logout_redirect_uris": [format!("{}/", ports.origin())],
    });
    client
        .as_object_mut()
        .unwrap()
        .extend(metadata.as_object().unwrap().clone());
    client
}

fn start_sidecar(
    ports: Ports,
    idp: &Idp,
    upstream: &Upstream,
    oidc: &str,
    settings: &str,
    env: &[(&str, &str)],
) -> Sidecar {
    let config = CONFIG
        .replace("{issuer}", &idp.issuer)
        .replace("{oidc}", oidc)
        .replace("{idp}", settings);
    Sidecar::start_on(ports, &config, &upstream.url(), env)
}

/// A fresh P-256 key as PKCS#8 PEM, as `openssl genpkey` writes it.
fn p256_pem() -> String {
    rcgen::KeyPair::generate().unwrap().serialize_pem()
}

/// "FAPI 2.0 style": the provider requires pushed authorization requests, DPoP-bound
/// tokens with its own nonces, and `private_key_jwt` with the keys the sidecar publishes.
/// A sign-in, a refresh and a logout all pass; the bound access token never goes upstream.
#[test]
fn a_fapi_style_client_signs_in_refreshes_and_logs_out() {
    let ports = Ports::new();
    let idp = Idp::for_sidecar(
        ports,
        json!({
            "requirePar": true,
            "dpopNonce": true,
            // Profile claims only from userinfo: that call too needs the DPoP proof.
            "idTokenClaims": "minimal",
            "clients": [idp_client(ports, json!({
                "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_signing_alg": "ES256",
                "jwks_uri": format!("{}/oauth2/client-jwks", ports.origin()),
                "dpop_bound_access_tokens": true,
                "require_pushed_authorization_requests": true,
            }))],
        }),
    );
    let upstream = Upstream::start();
    let (signing, spare) = (p256_pem(), p256_pem());
    let sidecar = start_sidecar(
        ports,
        &idp,
        &upstream,
        // Every request refreshes.
        "min_access_token_lifetime_left = \"2h\"",
        "token_endpoint_auth = \"private_key_jwt\"\nclient_signing_key = [\"env:CLIENT_KEY\", \"env:SPARE_KEY\"]\npushed_authorization = \"always\"\ndpop = true",
        &[("CLIENT_KEY", &signing), ("SPARE_KEY", &spare)],
    );
    sidecar.wait_idps_ready();

    // Both keys are published, public parts only; the provider fetches them from here.
    let jwks: serde_json::Value = client()
        .get(sidecar.url("/oauth2/client-jwks"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{jwks}");
    assert!(
        keys.iter()
            .all(|k| k["kty"] == "EC" && k.get("d").is_none()),
        "{jwks}"
    );

    // The browser carries only a reference to the pushed request.
    let browser = Browser::new();
    let to_idp = browser.get(&sidecar.url("/oauth2/start?rd=%2Faccount"));
    let authorize = to_idp.location.clone().unwrap();
    assert!(authorize.contains("request_uri=urn"), "{authorize}");
    assert!(!authorize.contains("code_challenge"), "{authorize}");
    let callback = browser.sign_in_at_idp(to_idp, "fiona", &sidecar.url("/"));
    let landed = browser.follow(browser.get(&callback));
    assert_eq!(landed.status, 200, "{landed:?}\n{}", sidecar.log());
    let seen = upstream.last();
    assert_eq!(seen.header("x-sso-subject"), Some("fiona"));
    // From userinfo, called with the DPoP-bound token and a proof.
    assert_eq!(seen.header("x-sso-email"), Some("fiona@example.com"));
    assert_eq!(
        seen.header("authorization"),
        None,
        "a DPoP-bound token is never forwarded"
    );

    // The next request refreshes: the refresh token is bound too, and works only with the
    // session's key (on any replica: the key is sealed in the cookie).
    assert_eq!(browser.get(&sidecar.url("/account")).status, 200);
    let stats = idp.stats();
    assert_eq!(stats["par"], 1, "{stats}");
    assert!(
        stats["grants"]["refresh_token"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert!(
        stats["dpop"].as_u64().unwrap() >= 2,
        "code and refresh with proofs: {stats}"
    );
    assert!(
        stats["client_auth"]["private_key_jwt"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    // The first proof had no nonce: the provider asked for one, once; the cached nonce
    // served the refreshes.
    assert_eq!(
        stats["grant_errors"],
        json!({"authorization_code:use_dpop_nonce": 1}),
        "no refusals but the nonce challenge: {stats}"
    );

    // Logout revokes the refresh token, authenticated the same way.
    let out = browser.post_form(&sidecar.url("/oauth2/logout"), &[]);
    assert!(out.status < 400, "{out:?}");
    let revoked =
        "sso_sidecar_token_revocations_total{idp=\"kc\",outcome=\"ok\",token=\"refresh_token\"}";
    assert_eq!(
        sidecar.metric_reaching(revoked, 1.0),
        1.0,
        "{}",
        sidecar.log()
    );
    assert!(idp.stats()["revocations"].as_u64().unwrap() >= 1);
    assert_eq!(
        browser.get(&sidecar.url("/account")).status,
        302,
        "signed out"
    );
}

/// `client_secret_jwt` and resource indicators: the access token the shop gets is for the
/// resource asked for.
#[test]
fn client_secret_jwt_and_resource_indicators() {
    let ports = Ports::new();
    let secret = "a-client-secret-long-enough-for-hs256-0123456789";
    let idp = Idp::for_sidecar(
        ports,
        json!({
            "resources": ["https://api.shop.example"],
            "clients": [idp_client(ports, json!({
                "client_secret": secret,
                "token_endpoint_auth_method": "client_secret_jwt",
            }))],
        }),
    );
    let upstream = Upstream::start();
    let sidecar = start_sidecar(
        ports,
        &idp,
        &upstream,
        "",
        &format!(
            "client_secret = \"{secret}\"\ntoken_endpoint_auth = \"client_secret_jwt\"\nresource = [\"https://api.shop.example\"]\npushed_authorization = \"never\""
        ),
        &[],
    );
    sidecar.wait_idps_ready();
    let browser = Browser::new();
    let to_idp = browser.get(&sidecar.url("/oauth2/start?rd=%2F"));
    assert!(
        to_idp
            .location
            .as_deref()
            .unwrap()
            .contains("resource=https%3A%2F%2Fapi.shop.example"),
        "{to_idp:?}"
    );
    let callback = browser.sign_in_at_idp(to_idp, "gus", &sidecar.url("/"));
    assert_eq!(browser.follow(browser.get(&callback)).status, 200);
    let forwarded = upstream.last().header("authorization").unwrap().to_owned();
    let token = forwarded.strip_prefix("Bearer ").unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], "https://api.shop.example", "{claims}");
    let stats = idp.stats();
    assert_eq!(stats["client_auth"]["client_secret_jwt"], 1, "{stats}");
    assert_eq!(stats["resources"][0], "https://api.shop.example", "{stats}");
    assert_eq!(stats["par"], 0);
}

/// A client the provider holds to `private_key_jwt` cannot get in with a key it does not
/// know: the sign-in fails with a page that says so, and nothing reaches the shop.
#[test]
fn a_signing_key_the_provider_does_not_know_gets_no_tokens() {
    let ports = Ports::new();
    let registered = p256_pem();
    // The provider knows only the registered key's public part (inline JWKS).
    let public = {
        let key = rcgen::KeyPair::from_pem(&registered).unwrap();
        let point = key.public_key_raw();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])})
    };
    let idp = Idp::for_sidecar(
        ports,
        json!({
            "clients": [idp_client(ports, json!({
                "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_signing_alg": "ES256",
                "jwks": {"keys": [public]},
            }))],
        }),
    );
    let upstream = Upstream::start();
    let sidecar = start_sidecar(
        ports,
        &idp,
        &upstream,
        "",
        "token_endpoint_auth = \"private_key_jwt\"\nclient_signing_key = \"env:CLIENT_KEY\"",
        &[("CLIENT_KEY", &p256_pem())],
    );
    sidecar.wait_idps_ready();
    let browser = Browser::new();
    let to_idp = browser.get(&sidecar.url("/oauth2/start?rd=%2F"));
    // PAR (offered, so used) already authenticates the client: the push is refused.
    let page = browser.follow(to_idp);
    assert!(page.status >= 400 && page.status < 600, "{page:?}");
    assert!(
        page.body.contains("Sign-in is not set up correctly"),
        "{}",
        page.body
    );
    assert!(upstream.seen().is_empty());
    assert_eq!(idp.stats()["par"], 0);
}

/// `tls_client_auth` (RFC 8705): the provider, behind nginx terminating TLS, takes only the
/// client certificate as the client's proof, and binds the access tokens to it (userinfo
/// then needs the certificate too). Without the certificate the code is worth nothing.
#[test]
fn tls_client_auth_with_certificate_bound_tokens() {
    let pki = common::pki::Pki::new();
    let (server_cert, server_key) = pki.issue("idp", &["127.0.0.1"]);
    let (client_cert, client_key) = pki.issue("client", &["shop.example"]);
    let tls_port = free_port();
    let ports = Ports::new();
    let idp = Idp::for_sidecar(
        ports,
        json!({
            "issuerOrigin": format!("https://127.0.0.1:{tls_port}"),
            "mtlsHeader": true,
            "idTokenClaims": "minimal",
            "clients": [idp_client(ports, json!({
                "token_endpoint_auth_method": "tls_client_auth",
                "tls_client_auth_subject_dn": "CN=sso-sidecar test client",
                "tls_client_certificate_bound_access_tokens": true,
            }))],
        }),
    );
    let _nginx = Nginx::start_servers_on(
        tls_port,
        &format!(
            "server {{ listen 127.0.0.1:{tls_port} ssl; ssl_certificate {server_cert}; ssl_certificate_key {server_key};
               ssl_verify_client optional; ssl_client_certificate {ca};
               location / {{ proxy_pass http://127.0.0.1:{idp_port};
                 proxy_set_header Host $http_host;
                 proxy_set_header X-Forwarded-Proto https;
                 proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
                 proxy_set_header X-SSL-Client-Verify $ssl_client_verify; }} }}",
            ca = pki.ca_path(),
            idp_port = idp.port,
        ),
    );
    let upstream = Upstream::start();
    let settings = |with_certificate: bool| {
        let mut text = format!(
            "ca_file = \"{}\"\npushed_authorization = \"never\"\n",
            pki.ca_path()
        );
        text.push_str(&match with_certificate {
            true => format!(
                "token_endpoint_auth = \"tls_client_auth\"\nclient_certificate = \"{client_cert}\"\nclient_certificate_key = \"file:{client_key}\""
            ),
            // Another way in for the same client, which the provider does not allow it.
            false => "token_endpoint_auth = \"client_secret_post\"\nclient_secret = \"guessed\"".to_owned(),
        });
        text
    };
    let sidecar = start_sidecar(ports, &idp, &upstream, "", &settings(true), &[]);
    sidecar.wait_idps_ready();
    let browser = Browser::trusting(&pki.ca_pem);
    let to_idp = browser.get(&sidecar.url("/oauth2/start?rd=%2F"));
    let callback = browser.sign_in_at_idp(to_idp, "hanna", &sidecar.url("/"));
    let landed = browser.follow(browser.get(&callback));
    assert_eq!(landed.status, 200, "{landed:?}\n{}", sidecar.log());
    let seen = upstream.last();
    assert_eq!(seen.header("x-sso-subject"), Some("hanna"));
    // From userinfo, which takes the certificate-bound token only with the certificate.
    assert_eq!(seen.header("x-sso-email"), Some("hanna@example.com"));

    // The same client without its certificate: the provider does not take anything else.
    drop(sidecar);
    let sidecar = start_sidecar(ports, &idp, &upstream, "", &settings(false), &[]);
    sidecar.wait_idps_ready();
    let browser = Browser::trusting(&pki.ca_pem);
    let to_idp = browser.get(&sidecar.url("/oauth2/start?rd=%2F"));
    let callback = browser.sign_in_at_idp(to_idp, "hanna", &sidecar.url("/"));
    let refused = browser.get(&callback);
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.body.contains("invalid_client"), "{}", refused.body);
}
