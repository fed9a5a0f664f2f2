//! Replicas sharing state through a real Redis (Debian `redis-server` on a free loopback
//! port): two sso-sidecar processes, one OpenID provider, one upstream. Back-channel logout
//! at one replica ends the session at the other, a refresh racing at both replicas reaches
//! the provider once, server-side sessions work end to end, and killing Redis mid-run
//! loses no request. Sentinel and cluster topologies are tested the same way.

mod common;

use std::time::Duration;

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
min_access_token_lifetime_left = "{min_left}"
max_clock_skew = "0s"
# Generous for a loaded CI machine: a refresh the client gave up on may still have
# rotated the token at the provider, and the other replica would then replay it.
http_timeout = "5s"

[session]
keys = ["{session_key}"]
secure = false

[store]
kind = "redis"
url = "{redis_url}"
cluster = {redis_cluster}
key_prefix = "test:"
timeout = "1s"
server_side_sessions = {server_side}

[identity_providers.kc]
type = "oidc"
name = "Keycloak"
issuer = "{issuer}"
client_id = "shop"
client_secret = "shop-secret"

[organizations.inSPIRED]
external_name = "inSPIRED"
identity_providers = ["kc"]
logout_policy = "LOCAL"

[[routes]]
path_prefix = "/account/"
auth = "required"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

/// Sidecar replicas sharing a Redis of kind `R` (one server, sentinels, a cluster).
struct Cluster<R = RedisServer> {
    redis: R,
    idp: Idp,
    upstream: Upstream,
    replicas: Vec<Sidecar>,
    config: String,
    /// Ports the provider knows, for a replica started later.
    spare: Ports,
}

/// A provider that knows `count` replicas (plus one spare for a late starter), Redis, and
/// the replicas.
fn cluster(count: usize, access_ttl: u64, min_left: &str, server_side: bool) -> Cluster {
    let redis = RedisServer::start();
    let url = redis.url();
    cluster_on(redis, &url, false, count, access_ttl, min_left, server_side)
}

fn cluster_on<R>(
    redis: R,
    redis_url: &str,
    redis_cluster: bool,
    count: usize,
    access_ttl: u64,
    min_left: &str,
    server_side: bool,
) -> Cluster<R> {
    let upstream = Upstream::start();
    let ports: Vec<Ports> = (0..count + 1).map(|_| Ports::new()).collect();
    let idp = Idp::start(json!({
        "ttl": {"AccessToken": access_ttl},
        "rotateRefreshToken": true,
        "clients": [{
            "client_id": "shop",
            "client_secret": "shop-secret",
            "redirect_uris": ports.iter().map(|p| p.callback()).collect::<Vec<_>>(),
            "post_logout_redirect_uris": ports.iter().map(|p| format!("{}/", p.origin())).collect::<Vec<_>>(),
        }],
    }));
    let config = CONFIG
        .replace("{issuer}", &idp.issuer)
        .replace("{redis_url}", redis_url)
        .replace("{redis_cluster}", &redis_cluster.to_string())
        .replace("{min_left}", min_left)
        .replace("{server_side}", if server_side { "true" } else { "false" });
    let mut cluster = Cluster {
        redis,
        idp,
        upstream,
        replicas: Vec::new(),
        config,
        spare: ports[count],
    };
    for p in &ports[..count] {
        cluster.add_replica(*p);
    }
    cluster
}

impl<R> Cluster<R> {
    fn add_replica(&mut self, ports: Ports) {
        let sidecar = Sidecar::start_on(ports, &self.config, &self.upstream.url(), &[]);
        sidecar.wait_idps_ready();
        self.replicas.push(sidecar);
    }

    fn sign_in(&self, replica: usize, browser: &Browser, user: &str) {
        let sidecar = &self.replicas[replica];
        let to_idp = browser.get(&format!(
            "{}?org=inSPIRED&rd=%2Faccount%2F",
            sidecar.url("/oauth2/start")
        ));
        assert_eq!(to_idp.status, 302, "{to_idp:?}");
        let callback = browser.sign_in_at_idp(to_idp, user, &sidecar.url("/"));
        let back = browser.get(&callback);
        assert_eq!(back.status, 302, "{back:?}\n{}", sidecar.log());
    }

    fn refresh_grants(&self) -> u64 {
        self.idp.stats()["grants"]["refresh_token"]
            .as_u64()
            .unwrap_or(0)
    }
}

/// GET `path` at a replica with the session cookie (as a browser would send it).
fn get_with_cookie(sidecar: &Sidecar, path: &str, cookie: &str) -> reqwest::blocking::Response {
    client()
        .get(sidecar.url(path))
        .header("Cookie", format!("_sso_session={cookie}"))
        .header("Accept", "text/html")
        .send()
        .unwrap()
}

/// Polls until `check` holds (shared state travels asynchronously), for at most 3 s.
fn eventually(what: &str, check: impl FnMut() -> bool) {
    eventually_within(what, 3, check)
}

#[test]
fn backchannel_logout_at_one_replica_ends_the_session_at_the_other() {
    let mut c = cluster(2, 3600, "3m", false);
    let browser = Browser::new();
    c.sign_in(0, &browser, "alice");
    let cookie = browser
        .cookie(&c.replicas[0].url("/"), "_sso_session")
        .unwrap();
    for replica in &c.replicas {
        assert_eq!(get_with_cookie(replica, "/account/", &cookie).status(), 200);
    }

    // The IdP tells replica 1 (its load balancer picked that one) that alice signed out.
    let token = c.idp.logout_token(json!({"sub": "alice"}));
    let post = |replica: &Sidecar| {
        client()
            .post(replica.url("/oauth2/backchannel-logout"))
            .form(&[("logout_token", token.as_str())])
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(post(&c.replicas[1]), 200);
    eventually("replica 0 ends the session", || {
        get_with_cookie(&c.replicas[0], "/account/", &cookie).status() == 302
    });
    assert_eq!(
        get_with_cookie(&c.replicas[1], "/account/", &cookie).status(),
        302
    );
    // The same logout token replayed at the other replica is recognised.
    assert_eq!(post(&c.replicas[0]), 400);

    // A replica that starts later learns the revocation from Redis.
    let spare = c.spare;
    c.add_replica(spare);
    assert_eq!(
        get_with_cookie(&c.replicas[2], "/account/", &cookie).status(),
        302
    );
    assert_eq!(
        c.replicas[0].metric("sso_sidecar_store_errors_total{op=\"publish\"}"),
        0.0
    );
}

#[test]
fn a_refresh_racing_at_two_replicas_reaches_the_provider_once() {
    let c = cluster(2, 5, "3s", false);
    let browser = Browser::new();
    c.sign_in(0, &browser, "bob");
    let cookie = browser
        .cookie(&c.replicas[0].url("/"), "_sso_session")
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500)); // inside min_access_token_lifetime_left
    assert_eq!(c.refresh_grants(), 0);

    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let replica = &c.replicas[i % 2];
                let cookie = cookie.clone();
                scope.spawn(move || {
                    get_with_cookie(replica, "/account/data", &cookie)
                        .status()
                        .as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let logs = || {
        let logs: Vec<String> = c.replicas.iter().map(Sidecar::log).collect();
        logs.join("\n---- next replica ----\n")
    };
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{statuses:?}\n{}\n{}",
        c.idp.stats(),
        logs()
    );
    assert_eq!(
        c.refresh_grants(),
        1,
        "one refresh at the provider for both replicas\n{}",
        logs()
    );
    assert!(
        c.idp.stats()["grant_errors"]
            .as_object()
            .unwrap()
            .is_empty(),
        "the rotated refresh token was never replayed: {}",
        c.idp.stats()
    );
    let coalesced: f64 = c
        .replicas
        .iter()
        .map(|r| r.metric("sso_sidecar_token_refresh_coalesced_total{idp=\"kc\"}"))
        .sum();
    assert!(coalesced >= 39.0, "{coalesced}");
}

#[test]
fn server_side_sessions_keep_the_cookie_small_and_work_at_every_replica() {
    let c = cluster(2, 3600, "3m", true);
    let browser = Browser::new();
    c.sign_in(0, &browser, "carol");
    let cookie = browser
        .cookie(&c.replicas[0].url("/"), "_sso_session")
        .unwrap();
    assert!(
        cookie.len() < 200,
        "the cookie holds only a reference: {} bytes",
        cookie.len()
    );
    assert!(browser
        .cookie(&c.replicas[0].url("/"), "_sso_session_1")
        .is_none());
    let keys = c.redis.cli(&["--scan", "--pattern", "test:session:*"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    let stored = c.redis.cli(&["get", keys.trim()]);
    assert!(
        !stored.contains("carol"),
        "sessions are sealed in Redis too"
    );

    for replica in &c.replicas {
        let response = get_with_cookie(replica, "/account/orders", &cookie);
        assert_eq!(response.status(), 200);
        assert_eq!(c.upstream.last().header("x-sso-subject"), Some("carol"));
    }
    let me: serde_json::Value = client()
        .get(c.replicas[1].url("/oauth2/userinfo"))
        .header("Cookie", format!("_sso_session={cookie}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["subject"], "carol");

    // A tampered reference is "not signed in", not an error.
    let mut tampered = cookie.clone().into_bytes();
    tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        get_with_cookie(&c.replicas[1], "/account/", &tampered).status(),
        302
    );

    // Logout at one replica removes the session from Redis: gone at the other one too.
    let logout = client()
        .post(c.replicas[0].url("/oauth2/logout"))
        .header("Cookie", format!("_sso_session={cookie}"))
        .header("Origin", c.replicas[0].url(""))
        .send()
        .unwrap();
    assert!(
        logout.status().is_success() || logout.status().is_redirection(),
        "{logout:?}"
    );
    assert_eq!(
        c.redis
            .cli(&["--scan", "--pattern", "test:session:*"])
            .trim(),
        ""
    );
    assert_eq!(
        get_with_cookie(&c.replicas[1], "/account/", &cookie).status(),
        302
    );
}

#[test]
fn requests_keep_succeeding_when_redis_dies() {
    let mut c = cluster(2, 4, "2s", false);
    let browser = Browser::new();
    c.sign_in(0, &browser, "dave");
    let mut cookie = browser
        .cookie(&c.replicas[0].url("/"), "_sso_session")
        .unwrap();
    assert_eq!(
        get_with_cookie(&c.replicas[1], "/account/", &cookie).status(),
        200
    );

    c.redis.kill();
    // Plain requests, a refresh (the token is inside min_left after 2 s) and a new login.
    // The client keeps the cookie it is given, as a browser does: without Redis a replica
    // cannot hand its refresh to the others, so a stale cookie at another replica would
    // replay the rotated refresh token.
    std::thread::sleep(Duration::from_millis(2200));
    for i in 0..20 {
        let response = get_with_cookie(&c.replicas[i % 2], "/account/data", &cookie);
        assert_eq!(response.status(), 200, "request {i} with Redis down");
        let renewed = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("_sso_session="))
            .map(|v| v.split(';').next().unwrap().to_owned());
        if let Some(renewed) = renewed {
            cookie = renewed;
        }
    }
    assert!(c.refresh_grants() >= 1);
    let other = Browser::new();
    c.sign_in(1, &other, "erin");
    assert_eq!(other.get(&c.replicas[1].url("/account/")).status, 200);
    let failures: f64 = ["get", "set", "set_nx"]
        .iter()
        .map(|op| c.replicas[0].metric(&format!("sso_sidecar_store_errors_total{{op=\"{op}\"}}")))
        .sum();
    assert!(
        failures >= 1.0,
        "the outage is counted\n{}",
        c.replicas[0].log()
    );
}

#[test]
fn server_side_sessions_fall_back_to_cookies_while_redis_is_down() {
    let mut c = cluster(1, 3600, "3m", true);
    c.redis.kill();
    let browser = Browser::new();
    c.sign_in(0, &browser, "frank");
    assert_eq!(browser.get(&c.replicas[0].url("/account/")).status, 200);
    assert_eq!(c.upstream.last().header("x-sso-subject"), Some("frank"));
    let cookie = browser
        .cookie(&c.replicas[0].url("/"), "_sso_session")
        .unwrap();
    assert!(cookie.len() > 200, "the whole session went into the cookie");
}

/// Issue 14: kept revocations were loaded with a SCAN over the whole keyspace and one GET
/// per key inside one 250 ms call; past a few hundred keys it timed out silently and a
/// replica started after a deploy accepted every revoked cookie. Now they live in one hash
/// read in batches; `/readyz` says when they are loaded.
#[test]
fn a_late_replica_loads_revocations_among_50000_other_keys() {
    let mut c = cluster(1, 3600, "3m", false);
    let browser = Browser::new();
    c.sign_in(0, &browser, "zoe");
    let cookie = browser
        .cookie(&c.replicas[0].url("/"), "_sso_session")
        .unwrap();
    let token = c.idp.logout_token(json!({"sub": "zoe"}));
    let status = client()
        .post(c.replicas[0].url("/oauth2/backchannel-logout"))
        .form(&[("logout_token", token.as_str())])
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    // Unrelated keys under the same prefix: other deployments' data, sessions, locks.
    let filled = c.redis.cli(&[
        "EVAL",
        "for i = 1, 50000 do redis.call('SET', KEYS[1] .. i, 'unrelated value ' .. i) end return 1",
        "1",
        "test:unrelated:",
    ]);
    assert_eq!(filled.trim(), "1");
    assert!(c.redis.cli(&["DBSIZE"]).trim().parse::<u64>().unwrap() > 50_000);

    let spare = c.spare;
    c.add_replica(spare);
    let late = &c.replicas[1];
    assert_eq!(get_with_cookie(late, "/account/", &cookie).status(), 302);
    let ready: serde_json::Value = client()
        .get(late.admin_url("/readyz"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ready["revocations"], "loaded", "{ready}");
    assert_eq!(
        late.metric("sso_sidecar_store_errors_total{op=\"hscan\"}"),
        0.0
    );
}

/// Back-channel logout for `sub` at `replica`; the IdP's answer status.
fn backchannel_logout<R>(c: &Cluster<R>, replica: usize, sub: &str) -> u16 {
    let token = c.idp.logout_token(json!({ "sub": sub }));
    client()
        .post(c.replicas[replica].url("/oauth2/backchannel-logout"))
        .form(&[("logout_token", token.as_str())])
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// Signs `user` in at replica 0 and returns the session cookie.
fn signed_in<R>(c: &Cluster<R>, user: &str) -> String {
    let browser = Browser::new();
    c.sign_in(0, &browser, user);
    browser
        .cookie(&c.replicas[0].url("/"), "_sso_session")
        .unwrap()
}

/// Redis Sentinel (`redis+sentinel://`): the master dies while requests flow; revocations
/// made before, during and after the failover all reach every replica, including one that
/// starts afterwards, and no request fails.
#[test]
fn a_sentinel_failover_under_load_loses_no_revocation() {
    let sentinels = RedisSentinels::start();
    let url = sentinels.url();
    let mut c = cluster_on(sentinels, &url, false, 2, 3600, "3m", false);
    let users = ["before", "during", "after", "kept"];
    let cookies: Vec<String> = users.iter().map(|u| signed_in(&c, u)).collect();
    let shown = |c: &Cluster<RedisSentinels>, replica: usize, user: usize| {
        get_with_cookie(&c.replicas[replica], "/account/", &cookies[user]).status()
    };

    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && ok < 20_000 {
                let status = shown(&c, 1, 3);
                if status == 200 {
                    ok += 1;
                } else {
                    failed.push(status);
                }
            }
            (ok, failed)
        });
        assert_eq!(backchannel_logout(&c, 0, "before"), 200);
        c.redis.master.crash();
        // Redis has no master now: the revocation holds here and waits to be shared.
        assert_eq!(backchannel_logout(&c, 0, "during"), 200);
        let replica = c.redis.replica.port;
        eventually_within("the sentinels promote the replica", 30, || {
            c.redis.master_port() == Some(replica)
        });
        assert_eq!(backchannel_logout(&c, 1, "after"), 200);
        for (replica, user) in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)] {
            eventually_within(
                &format!("replica {replica} ends {}", users[user]),
                15,
                || shown(&c, replica, user) == 302,
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (ok, failed) = load.join().unwrap();
        assert!(ok > 0 && failed.is_empty(), "{ok} ok, failed: {failed:?}");
    });

    // A replica started after the failover reads all three from the new master.
    let spare = c.spare;
    c.add_replica(spare);
    for (user, name) in users.iter().enumerate().take(3) {
        assert_eq!(shown(&c, 2, user), 302, "{name}");
    }
    assert_eq!(shown(&c, 2, 3), 200);
    assert_eq!(shown(&c, 0, 3), 200);
    let kept = c.redis.replica.cli(&["HLEN", "test:revocations"]);
    assert_eq!(kept.trim(), "3", "kept revocations on the new master");
}

/// Redis Cluster (`store.cluster = true`): logout at one replica reaches the other through
/// the cluster's pub/sub, the logout-token replay check works across replicas, and a late
/// replica reads the kept revocations from the node holding them.
#[test]
fn a_redis_cluster_shares_revocations_and_logout_tokens() {
    let redis = RedisCluster::start();
    let url = redis.url();
    let mut c = cluster_on(redis, &url, true, 2, 3600, "3m", false);
    let alice = signed_in(&c, "alice");
    let bob = signed_in(&c, "bob");
    assert_eq!(
        get_with_cookie(&c.replicas[1], "/account/", &alice).status(),
        200
    );
    assert_eq!(backchannel_logout(&c, 1, "alice"), 200);
    eventually("replica 0 ends alice's session", || {
        get_with_cookie(&c.replicas[0], "/account/", &alice).status() == 302
    });
    // The replayed logout token is recognised at the other replica, through the cluster.
    let token = c.idp.logout_token(json!({"sub": "bob", "jti": "once"}));
    for (replica, expected) in [(0, 200), (1, 400)] {
        let status = client()
            .post(c.replicas[replica].url("/oauth2/backchannel-logout"))
            .form(&[("logout_token", token.as_str())])
            .send()
            .unwrap()
            .status();
        assert_eq!(status, expected);
    }
    let spare = c.spare;
    c.add_replica(spare);
    for (cookie, name) in [(&alice, "alice"), (&bob, "bob")] {
        assert_eq!(
            get_with_cookie(&c.replicas[2], "/account/", cookie).status(),
            302,
            "{name} at the late replica"
        );
    }
    for replica in &c.replicas {
        let errors: f64 = ["set", "set_nx", "hset", "hscan", "publish", "subscribe"]
            .iter()
            .map(|op| replica.metric(&format!("sso_sidecar_store_errors_total{{op=\"{op}\"}}")))
            .sum();
        assert_eq!(errors, 0.0, "{}", replica.log());
    }
}

/// Polls until `check` holds, for at most `seconds`.
fn eventually_within(what: &str, seconds: u64, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {seconds} s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `/oauth2/sessions` across replicas (issue 33): a session signed in at one replica is
/// listed at the other, and ending it there signs it out everywhere.
#[test]
fn sessions_are_listed_and_ended_at_any_replica() {
    let c = cluster(2, 3600, "3m", false);
    let laptop = Browser::new();
    c.sign_in(0, &laptop, "erin");
    let phone = Browser::new();
    c.sign_in(1, &phone, "erin");
    let laptop_cookie = laptop
        .cookie(&c.replicas[0].url("/"), "_sso_session")
        .unwrap();
    let phone_cookie = phone
        .cookie(&c.replicas[1].url("/"), "_sso_session")
        .unwrap();
    let list = |replica: usize, cookie: &str| -> serde_json::Value {
        get_with_cookie(&c.replicas[replica], "/oauth2/sessions?format=json", cookie)
            .json()
            .unwrap()
    };
    // The laptop, at replica 1, sees both (each signed in at another replica).
    let seen = list(1, &laptop_cookie);
    assert_eq!(seen["sessions"].as_array().unwrap().len(), 2, "{seen}");
    let phone_id = list(0, &phone_cookie)["current"]
        .as_str()
        .unwrap()
        .to_owned();

    // Ended from the laptop at replica 0: the phone is out at replica 0 too, and its
    // tokens (which replica 1 holds a sealed copy of in Redis) are revoked at the IdP by
    // replica 0 at once.
    let ended = client()
        .post(c.replicas[0].url("/oauth2/sessions"))
        .header("Cookie", format!("_sso_session={laptop_cookie}"))
        .form(&[("end", phone_id.as_str())])
        .send()
        .unwrap();
    assert_eq!(ended.status(), 303);
    let revoked =
        "sso_sidecar_token_revocations_total{idp=\"kc\",outcome=\"ok\",token=\"refresh_token\"}";
    // Before the phone comes back.
    eventually("replica 0 revokes the phone's refresh token", || {
        c.replicas[0].metric(revoked) == 1.0
    });
    eventually("replica 0 ends the phone's session", || {
        get_with_cookie(&c.replicas[0], "/account/", &phone_cookie).status() == 302
    });
    assert_eq!(
        get_with_cookie(&c.replicas[0], "/account/", &laptop_cookie).status(),
        200
    );
    assert_eq!(
        list(0, &laptop_cookie)["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
