//! Accounts a household shares, end to end against the real binary over real HTTP and
//! WebSocket: session cookies and their cross-site guard, login throttling, session expiry,
//! password changes, members limited to areas, administrators' routes, the last administrator,
//! the audit log, backups, and the headers every response carries.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hearth::api::routes::{Access, ROUTES};
use hearth_tests::{Answer, Hub, Ws};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(15);
const OWNER_PASSWORD: &str = "correct horse battery";

fn login(hub: &Hub, name: &str, password: &str) -> Answer {
    hub.post("/api/v1/auth/login", None, json!({"name": name, "password": password}))
}

fn login_from(hub: &Hub, name: &str, password: &str, client: &str) -> Answer {
    let body = json!({"name": name, "password": password});
    hub.request_with("POST", "/api/v1/auth/login", &[("x-forwarded-for", client)], Some(&body))
}

fn session(hub: &Hub, name: &str, password: &str) -> String {
    let a = login(hub, name, password);
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["token"].as_str().unwrap().to_owned()
}

/// Adds an account through the API as `admin`.
fn add_user(hub: &Hub, admin: &str, name: &str, role: &str, areas: Value) -> Answer {
    let a = hub.post(
        "/api/v1/users",
        Some(admin),
        json!({"name": name, "password": format!("{name}-passphrase"), "role": role, "areas": areas}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    a
}

fn audit(hub: &Hub, token: &str) -> Vec<Value> {
    let a = hub.get("/api/v1/audit?limit=500", Some(token));
    assert_eq!(a.status, 200, "{}", a.text);
    a.body.as_array().unwrap().clone()
}

fn demo_hub() -> (Hub, String) {
    let hub = Hub::start_with_config("[adapters.demo]\nenabled = true\ninterval_secs = 3600\n", &[]);
    let token = hub.onboard();
    hub.wait_for(T, || {
        let d = hub.get("/api/v1/devices", Some(&token)).body;
        (d.as_array().map_or(0, Vec::len) >= 13).then_some(())
    });
    (hub, token)
}

#[test]
fn login_sets_a_session_cookie_that_works_and_is_guarded_against_cross_site_requests() {
    let hub = Hub::start(&[]);
    let origin = hub.origin();
    // Onboarding sets the cookie too, and says who signed in.
    let first = hub.post("/api/v1/onboarding", None, json!({"name": "owner", "password": OWNER_PASSWORD}));
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.body["user"], json!({"name": "owner", "role": "admin", "admin": true, "areas": []}));
    assert!(first.cookie("hearth_session").is_some(), "{:?}", first.headers);

    let a = login(&hub, "owner", OWNER_PASSWORD);
    assert_eq!(a.status, 200, "{}", a.text);
    let token = a.body["token"].as_str().unwrap().to_owned();
    assert_eq!(a.body["user"], json!({"name": "owner", "role": "admin", "admin": true, "areas": []}));
    let set = a.set_cookie("hearth_session").unwrap();
    assert_eq!(set, format!("hearth_session={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000"));
    let cookie = a.cookie("hearth_session").unwrap();
    // Behind a TLS-terminating proxy the cookie is Secure.
    let tls = hub.request_with(
        "POST",
        "/api/v1/auth/login",
        &[("x-forwarded-proto", "https")],
        Some(&json!({"name": "owner", "password": OWNER_PASSWORD})),
    );
    assert!(tls.set_cookie("hearth_session").unwrap().ends_with("; Secure"), "{:?}", tls.headers);

    // The cookie authenticates reads.
    let me = hub.request_with("GET", "/api/v1/auth/me", &[("cookie", &cookie)], None);
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!((me.body["name"].as_str(), me.body["role"].as_str()), (Some("owner"), Some("admin")));
    assert_eq!(me.body["areas"], json!([]));

    // A state change with the cookie needs this hub's own Origin (or Referer).
    let area = json!({"name": "Porch"});
    for headers in [
        vec![("cookie", cookie.as_str())],
        vec![("cookie", cookie.as_str()), ("origin", "http://evil.example")],
        vec![("cookie", cookie.as_str()), ("origin", "null")],
        vec![("cookie", cookie.as_str()), ("referer", "http://evil.example/page")],
    ] {
        let a = hub.request_with("POST", "/api/v1/areas", &headers, Some(&area));
        assert_eq!((a.status, a.body["error"]["code"].as_str()), (403, Some("cross_site")), "{headers:?}: {}", a.text);
    }
    let ok = hub.request_with("POST", "/api/v1/areas", &[("cookie", &cookie), ("origin", &origin)], Some(&area));
    assert_eq!(ok.status, 201, "{}", ok.text);
    let referer = format!("{origin}/settings");
    let ok = hub.request_with(
        "PATCH",
        "/api/v1/areas/porch",
        &[("cookie", &cookie), ("referer", &referer)],
        Some(&json!({"order": 3})),
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
    // A bearer token is not ambient: no Origin needed.
    let bearer = hub.post("/api/v1/areas", Some(&token), json!({"name": "Attic"}));
    assert_eq!(bearer.status, 201, "{}", bearer.text);

    // Login from a page of another origin is refused; from our own, or without Origin, it works.
    let creds = json!({"name": "owner", "password": OWNER_PASSWORD});
    let evil = hub.request_with("POST", "/api/v1/auth/login", &[("origin", "http://evil.example")], Some(&creds));
    assert_eq!((evil.status, evil.body["error"]["code"].as_str()), (403, Some("cross_site")));
    let own = hub.request_with("POST", "/api/v1/auth/login", &[("origin", &origin)], Some(&creds));
    assert_eq!(own.status, 200, "{}", own.text);

    // A cookie carries sessions only, not API tokens.
    let (_, out, _) = hub.cli(&["token", "create", "--user", "owner"], None);
    let api = out.lines().last().unwrap().to_owned();
    let in_cookie = format!("hearth_session={api}");
    assert_eq!(hub.request_with("GET", "/api/v1/auth/me", &[("cookie", &in_cookie)], None).status, 401);

    // Logout (a state change: Origin needed) revokes the session and clears the cookie.
    let out = hub.request_with("POST", "/api/v1/auth/logout", &[("cookie", &cookie)], None);
    assert_eq!(out.status, 403, "{}", out.text);
    let out = hub.request_with("POST", "/api/v1/auth/logout", &[("cookie", &cookie), ("origin", &origin)], None);
    assert_eq!(out.status, 204, "{}", out.text);
    let cleared = out.set_cookie("hearth_session").unwrap();
    assert!(cleared.starts_with("hearth_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(hub.request_with("GET", "/api/v1/auth/me", &[("cookie", &cookie)], None).status, 401);
    assert_eq!(hub.get("/api/v1/auth/me", Some(&token)).status, 401, "the cookie's token is the same session");
}

#[test]
fn sessions_expire_and_expired_ones_are_refused_and_deleted() {
    let hub = Hub::start_with_config("[http]\nsession_ttl_secs = 2\nsecure_cookies = true\n", &[]);
    hub.onboard();
    let a = login(&hub, "owner", OWNER_PASSWORD);
    let set = a.set_cookie("hearth_session").unwrap();
    assert!(set.contains("Max-Age=2") && set.ends_with("; Secure"), "{set}");
    let token = a.body["token"].as_str().unwrap().to_owned();
    let (_, out, _) = hub.cli(&["token", "create", "--user", "owner"], None);
    let api = out.lines().last().unwrap().to_owned();
    assert_eq!(hub.get("/api/v1/auth/me", Some(&token)).status, 200);
    let list = hub.get("/api/v1/tokens", Some(&api)).body;
    let mine = list.as_array().unwrap().iter().find(|t| t["kind"] == "session").unwrap().clone();
    assert!(mine["expires_at"].is_string(), "{list}");

    let refused = hub.wait_for(T, || {
        let a = hub.get("/api/v1/auth/me", Some(&token));
        (a.status == 401).then_some(a)
    });
    assert_eq!(refused.body["error"]["code"], "unauthorized");
    let db = rusqlite::Connection::open(hub.db_path()).unwrap();
    let sessions =
        || -> i64 { db.query_row("SELECT COUNT(*) FROM tokens WHERE kind = 'session'", [], |r| r.get(0)).unwrap() };
    assert_eq!(sessions(), 1, "the refused session is deleted; onboarding's, never shown again, is left");
    let cookie = format!("hearth_session={token}");
    assert_eq!(hub.request_with("GET", "/api/v1/auth/me", &[("cookie", &cookie)], None).status, 401);
    // API tokens do not expire; a new login works, and removes every expired session.
    assert_eq!(hub.get("/api/v1/auth/me", Some(&api)).status, 200);
    session(&hub, "owner", OWNER_PASSWORD);
    assert_eq!(sessions(), 1, "only the new session is left");
}

#[test]
fn logins_are_throttled_per_account_and_lockouts_expire_and_double() {
    let hub = Hub::start_with_config(
        "[http]\nlogin_max_failures = 3\nlogin_ip_max_failures = 100\nlogin_lockout_secs = 3\nlogin_lockout_max_secs = 6\n",
        &[],
    );
    let admin = hub.onboard();
    add_user(&hub, &admin, "guest", "member", json!([]));
    for _ in 0..2 {
        assert_eq!(login(&hub, "owner", "wrong password").status, 401);
    }
    // The third failure locks the account: even the right password is refused, unchecked.
    let third = login(&hub, "owner", "wrong password");
    assert_eq!((third.status, third.body["error"]["code"].as_str()), (401, Some("login_failed")));
    let locked = login(&hub, "OWNER", OWNER_PASSWORD);
    assert_eq!(locked.status, 429, "{}", locked.text);
    assert_eq!(locked.body["error"]["code"], "too_many_attempts");
    let secs = locked.body["error"]["details"]["retry_after_secs"].as_u64().unwrap();
    assert!((2..=3).contains(&secs), "{}", locked.text);
    assert_eq!(locked.header("retry-after"), Some(secs.to_string().as_str()));
    // Another account is not locked.
    assert_eq!(login(&hub, "guest", "guest-passphrase").status, 200);

    // Once the lockout is over, failures count again; the second lockout lasts twice as long.
    hub.wait_for(T, || (login(&hub, "owner", "still wrong").status == 401).then_some(()));
    assert_eq!(login(&hub, "owner", "still wrong").status, 401);
    assert_eq!(login(&hub, "owner", "still wrong").status, 401);
    let again = login(&hub, "owner", OWNER_PASSWORD);
    assert_eq!(again.status, 429, "{}", again.text);
    let secs = again.body["error"]["details"]["retry_after_secs"].as_u64().unwrap();
    assert!((5..=6).contains(&secs), "twice as long: {}", again.text);
    // It expires (the cap is 6 s): the owner gets back in, and the count starts again.
    hub.wait_for(T, || (login(&hub, "owner", OWNER_PASSWORD).status == 200).then_some(()));
    assert_eq!(login(&hub, "owner", "wrong password").status, 401);
    assert_eq!(login(&hub, "owner", "wrong password").status, 401);
    assert_eq!(login(&hub, "owner", OWNER_PASSWORD).status, 200, "a success reset the count");

    // The audit log has the failures and the lockout, from the TCP peer (X-Forwarded-For is not
    // believed from a peer that is not a trusted proxy).
    assert_eq!(login_from(&hub, "owner", "wrong password", "198.51.100.1").status, 401);
    let log = audit(&hub, &admin);
    let last_failure = log.iter().find(|e| e["action"] == "auth.login_failed").unwrap();
    assert_eq!(last_failure["ip"], "127.0.0.1");
    assert_eq!(last_failure["actor"], "owner");
    assert!(log.iter().any(|e| e["action"] == "auth.lockout" && e["target"] == "owner"), "{log:?}");
}

#[test]
fn logins_are_throttled_per_client_address_behind_a_trusted_proxy() {
    let hub = Hub::start_with_config(
        "[http]\nlogin_max_failures = 100\nlogin_ip_max_failures = 3\nlogin_lockout_secs = 3\n\
         trusted_proxies = [\"127.0.0.1\"]\n",
        &[],
    );
    let admin = hub.onboard();
    let attacker = "203.0.113.7";
    for name in ["alice", "bob", "owner"] {
        assert_eq!(login_from(&hub, name, "guess-guess", attacker).status, 401);
    }
    let locked = login_from(&hub, "owner", OWNER_PASSWORD, attacker);
    assert_eq!(locked.status, 429, "{}", locked.text);
    assert_eq!(locked.body["error"]["details"]["scope"], "address");
    assert!(locked.header("retry-after").is_some());
    // Other clients behind the same proxy are not locked out.
    assert_eq!(login_from(&hub, "owner", OWNER_PASSWORD, "203.0.113.8").status, 200);
    // The lockout expires.
    hub.wait_for(T, || (login_from(&hub, "owner", OWNER_PASSWORD, attacker).status == 200).then_some(()));

    let log = audit(&hub, &admin);
    let failures: Vec<&Value> = log.iter().filter(|e| e["action"] == "auth.login_failed").collect();
    assert_eq!(failures.len(), 3, "{log:?}");
    assert!(failures.iter().all(|e| e["ip"] == attacker), "{failures:?}");
    // Unknown names are not recorded (they may be passwords typed into the wrong field).
    assert_eq!(failures.iter().filter(|e| e["actor"].is_null()).count(), 2);
    assert!(log.iter().any(|e| e["action"] == "auth.lockout" && e["target"] == attacker), "{log:?}");
}

#[test]
fn a_password_change_checks_the_current_one_and_ends_the_other_sessions() {
    let hub = Hub::start(&[]);
    hub.onboard();
    let a = session(&hub, "owner", OWNER_PASSWORD);
    let b = session(&hub, "owner", OWNER_PASSWORD);
    let (_, out, _) = hub.cli(&["token", "create", "--user", "owner"], None);
    let api = out.lines().last().unwrap().to_owned();

    let path = "/api/v1/auth/password";
    let wrong = hub.post(path, Some(&a), json!({"current": "not my password", "new": "a new passphrase"}));
    assert_eq!((wrong.status, wrong.body["error"]["code"].as_str()), (403, Some("wrong_password")));
    let short = hub.post(path, Some(&a), json!({"current": OWNER_PASSWORD, "new": "short"}));
    assert_eq!((short.status, short.body["error"]["code"].as_str()), (400, Some("invalid_account")));
    let garbage = hub.post(path, Some(&a), json!({"password": "x"}));
    assert_eq!(garbage.status, 400);
    let ok = hub.post(path, Some(&a), json!({"current": OWNER_PASSWORD, "new": "a new passphrase"}));
    assert_eq!(ok.status, 204, "{}", ok.text);

    assert_eq!(hub.get("/api/v1/auth/me", Some(&a)).status, 200, "the session that changed it stays");
    assert_eq!(hub.get("/api/v1/auth/me", Some(&b)).status, 401, "other sessions end");
    assert_eq!(hub.get("/api/v1/auth/me", Some(&api)).status, 200, "API tokens stay");
    assert_eq!(login(&hub, "owner", OWNER_PASSWORD).status, 401);
    assert_eq!(login(&hub, "owner", "a new passphrase").status, 200);
}

#[test]
fn members_see_and_control_only_their_areas() {
    let (hub, admin) = demo_hub();
    let refused = hub.post(
        "/api/v1/users",
        Some(&admin),
        json!({"name": "kid", "password": "kid-passphrase", "role": "member", "areas": ["attic"]}),
    );
    assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (400, Some("unknown_area")));
    let bad_role =
        hub.post("/api/v1/users", Some(&admin), json!({"name": "kid", "password": "kid-passphrase", "role": "owner"}));
    assert_eq!((bad_role.status, bad_role.body["error"]["code"].as_str()), (400, Some("invalid_role")));
    let added = add_user(&hub, &admin, "kid", "member", json!(["kitchen"]));
    assert_eq!(added.body["role"], "member");
    assert_eq!(added.body["areas"], json!(["kitchen"]));
    let kid = session(&hub, "kid", "kid-passphrase");
    assert_eq!(
        hub.get("/api/v1/auth/me", Some(&kid)).body,
        json!({"user_id": 2, "name": "kid", "role": "member", "admin": false, "areas": ["kitchen"]})
    );

    // Devices and areas: the kitchen only.
    let devices = hub.get("/api/v1/devices", Some(&kid)).body;
    let devices = devices.as_array().unwrap();
    assert!(!devices.is_empty());
    assert!(devices.iter().all(|d| d["area"] == "kitchen"), "{devices:?}");
    let areas = hub.get("/api/v1/areas", Some(&kid)).body;
    assert_eq!(areas.as_array().unwrap().iter().map(|a| a["id"].clone()).collect::<Vec<_>>(), [json!("kitchen")]);
    // Other devices are as absent as devices that do not exist.
    let other = hub.get("/api/v1/devices/demo:living_lamp", Some(&kid));
    let none = hub.get("/api/v1/devices/demo:no_such_thing", Some(&kid));
    assert_eq!((other.status, other.body["error"]["code"].as_str()), (404, Some("not_found")));
    assert_eq!(none.status, 404);
    let on = json!({"set": {"state": true}});
    assert_eq!(hub.post("/api/v1/devices/demo:living_lamp/commands", Some(&kid), on.clone()).status, 404);
    assert_eq!(hub.get("/api/v1/devices/demo:living_lamp/history", Some(&kid)).status, 404);
    assert_eq!(hub.get("/api/v1/devices/demo:kitchen_light", Some(&kid)).status, 200);
    assert_eq!(hub.get("/api/v1/devices/demo:kitchen_light/history", Some(&kid)).status, 200);

    // The WebSocket, authenticated by the session cookie: the kitchen only, snapshot and events.
    let cookie = format!("hearth_session={kid}");
    let origin = hub.origin();
    let mut ws = Ws::connect_with(hub.http, &[("cookie", &cookie), ("origin", &origin)]).unwrap();
    ws.send(json!({"type": "auth"}));
    let ok = ws.recv_type("auth_ok", T);
    assert_eq!(ok["user"]["role"], "member");
    ws.send(json!({"type": "subscribe"}));
    let snapshot = ws.recv_type("snapshot", T);
    let seen = snapshot["devices"].as_array().unwrap();
    assert_eq!(seen.len(), devices.len());
    assert!(seen.iter().all(|d| d["area"] == "kitchen"), "{snapshot}");
    assert_eq!(snapshot["areas"].as_array().unwrap().len(), 1);
    ws.send(json!({"type": "command", "id": 1, "device": "demo:living_lamp", "set": {"state": true}}));
    let r = ws.recv_type("result", T);
    assert_eq!((r["ok"].clone(), r["error"]["code"].clone()), (json!(false), json!("not_found")));
    // The owner changes the living room, then the kitchen: the member hears only the kitchen.
    let before = hub.get("/api/v1/devices/demo:living_lamp", Some(&admin)).body["state"]["state"]["value"].clone();
    let flip = json!({"set": {"state": before != json!(true)}});
    assert_eq!(hub.post("/api/v1/devices/demo:living_lamp/commands", Some(&admin), flip).status, 202);
    hub.wait_for(T, || {
        let v = hub.get("/api/v1/devices/demo:living_lamp", Some(&admin)).body["state"]["state"]["value"].clone();
        (v != before).then_some(())
    });
    let kitchen =
        hub.get("/api/v1/devices/demo:kitchen_light", Some(&kid)).body["state"]["brightness"]["value"].clone();
    let target = if kitchen == json!(33.0) { 34.0 } else { 33.0 };
    let set = json!({"set": {"state": true, "brightness": target}});
    assert_eq!(hub.post("/api/v1/devices/demo:kitchen_light/commands", Some(&kid), set).status, 202);
    let mut others = Vec::new();
    ws.recv_until(T, |m| {
        if m["type"] == "event" && m["event"]["device"] != "demo:kitchen_light" {
            others.push(m.clone());
        }
        m["type"] == "event" && m["event"]["device"] == "demo:kitchen_light" && m["event"]["feature"] == "brightness"
    });
    let kitchen_ids: Vec<&Value> = devices.iter().map(|d| &d["id"]).collect();
    assert!(
        others.iter().all(|m| m["event"]["device"].is_null() || kitchen_ids.contains(&&m["event"]["device"])),
        "{others:?}"
    );

    // Scenes: only those wholly within the member's areas.
    let evening = hub.post(
        "/api/v1/scenes",
        Some(&admin),
        json!({"name": "Evening", "devices": {"demo:living_lamp": {"state": true}, "demo:kitchen_light": {"state": false}}}),
    );
    assert_eq!(evening.status, 201, "{}", evening.text);
    let cooking = hub.post(
        "/api/v1/scenes",
        Some(&admin),
        json!({"name": "Cooking", "devices": {"demo:kitchen_light": {"state": true}}}),
    );
    assert_eq!(cooking.status, 201, "{}", cooking.text);
    let scenes = hub.get("/api/v1/scenes", Some(&kid)).body;
    assert_eq!(scenes.as_array().unwrap().iter().map(|s| s["id"].clone()).collect::<Vec<_>>(), [json!("cooking")]);
    assert_eq!(hub.get("/api/v1/scenes", Some(&admin)).body.as_array().unwrap().len(), 2);
    assert_eq!(hub.get("/api/v1/scenes/evening", Some(&kid)).status, 404);
    assert_eq!(hub.post("/api/v1/scenes/evening/apply", Some(&kid), json!({})).status, 404);
    let applied = hub.post("/api/v1/scenes/cooking/apply", Some(&kid), json!({}));
    assert_eq!(applied.status, 200, "{}", applied.text);

    // No areas means every area.
    let patch = hub.request("PATCH", "/api/v1/users/kid", Some(&admin), Some(&json!({"areas": []})));
    assert_eq!(patch.status, 200, "{}", patch.text);
    assert_eq!(hub.get("/api/v1/devices", Some(&kid)).body.as_array().unwrap().len(), 13);
    assert_eq!(hub.get("/api/v1/devices/demo:living_lamp", Some(&kid)).status, 200);
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "x")
        .replace("{name}", "owner")
        .replace("{action}", "y")
        .replace("{run}", "1")
        .replace("{version}", "1")
}

#[test]
fn every_admin_route_answers_403_to_a_member_and_members_keep_their_own_routes() {
    let hub = Hub::start(&[]);
    let admin = hub.onboard();
    add_user(&hub, &admin, "guest", "member", json!([]));
    let member = session(&hub, "guest", "guest-passphrase");
    // What members must not do is marked Admin in the table.
    for (method, path) in [
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("PATCH", "/api/v1/users/{name}"),
        ("DELETE", "/api/v1/users/{name}"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens/{id}"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/backup"),
        ("POST", "/api/v1/adapters/{id}/actions/{action}"),
        ("POST", "/api/v1/automations"),
        ("PUT", "/api/v1/automations/{id}"),
        ("DELETE", "/api/v1/automations/{id}"),
        ("POST", "/api/v1/automations/{id}/enable"),
        ("POST", "/api/v1/automations/{id}/disable"),
        ("POST", "/api/v1/automations/import"),
        ("POST", "/api/v1/automations/{id}/rollback"),
        ("POST", "/api/v1/automations/{id}/trigger"),
        ("POST", "/api/v1/automations/validate"),
        ("POST", "/api/v1/scenes"),
        ("PUT", "/api/v1/scenes/{id}"),
        ("DELETE", "/api/v1/scenes/{id}"),
        ("POST", "/api/v1/areas"),
        ("PATCH", "/api/v1/areas/{id}"),
        ("DELETE", "/api/v1/areas/{id}"),
        ("PATCH", "/api/v1/devices/{id}"),
        ("DELETE", "/api/v1/devices/{id}"),
    ] {
        let row = ROUTES.iter().find(|r| r.method == method && r.path == path).unwrap();
        assert_eq!(row.access, Access::Admin, "{method} {path}");
    }
    for route in ROUTES.iter().filter(|r| r.access == Access::Admin) {
        let body = (route.method != "GET" && route.method != "DELETE").then(|| json!({}));
        let a = hub.request(route.method, &concrete(route.path), Some(&member), body.as_ref());
        assert_eq!(a.status, 403, "{} {}: {}", route.method, route.path, a.text);
        assert_eq!(a.body["error"]["code"], "forbidden");
    }
    // Members' own routes are not refused (they may fail for other reasons, like a missing id).
    for route in ROUTES.iter().filter(|r| r.access == Access::User && r.path != "/api/v1/auth/logout") {
        let body = (route.method != "GET" && route.method != "DELETE").then(|| json!({}));
        let a = hub.request(route.method, &concrete(route.path), Some(&member), body.as_ref());
        assert!(a.status != 401 && a.status != 403, "{} {}: {} {}", route.method, route.path, a.status, a.text);
    }
    // Nothing the member did changed the owner.
    assert_eq!(hub.get("/api/v1/auth/me", Some(&admin)).body["role"], "admin");
}

#[test]
fn accounts_are_managed_by_administrators_and_the_last_one_stays() {
    let hub = Hub::start(&[]);
    let owner = hub.onboard();
    let gone = hub.request("DELETE", "/api/v1/users/owner", Some(&owner), None);
    assert_eq!((gone.status, gone.body["error"]["code"].as_str()), (409, Some("last_admin")));
    let demote = hub.request("PATCH", "/api/v1/users/owner", Some(&owner), Some(&json!({"role": "member"})));
    assert_eq!((demote.status, demote.body["error"]["code"].as_str()), (409, Some("last_admin")));
    let empty = hub.request("PATCH", "/api/v1/users/owner", Some(&owner), Some(&json!({})));
    assert_eq!(empty.status, 400);
    let nobody = hub.request("PATCH", "/api/v1/users/nobody", Some(&owner), Some(&json!({"role": "admin"})));
    assert_eq!(nobody.status, 404);
    let dup =
        hub.post("/api/v1/users", Some(&owner), json!({"name": "OWNER", "password": "long enough", "role": "admin"}));
    assert_eq!(dup.status, 409);
    let weak = hub.post("/api/v1/users", Some(&owner), json!({"name": "x", "password": "short", "role": "admin"}));
    assert_eq!((weak.status, weak.body["error"]["code"].as_str()), (400, Some("invalid_account")));

    add_user(&hub, &owner, "second", "admin", json!([]));
    let users = hub.get("/api/v1/users", Some(&owner)).body;
    let names: Vec<(String, String)> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["name"].as_str().unwrap().to_owned(), u["role"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(names, [("owner".to_owned(), "admin".to_owned()), ("second".to_owned(), "admin".to_owned())]);
    assert!(users[0]["created_at"].is_string() && users[0]["areas"] == json!([]), "{users}");

    // With a second administrator, the owner may step down: its powers end at once.
    let demote = hub.request("PATCH", "/api/v1/users/owner", Some(&owner), Some(&json!({"role": "member"})));
    assert_eq!(demote.status, 200, "{}", demote.text);
    assert_eq!(demote.body["role"], "member");
    assert_eq!(hub.get("/api/v1/users", Some(&owner)).status, 403);
    let second = session(&hub, "second", "second-passphrase");
    let gone = hub.request("DELETE", "/api/v1/users/second", Some(&second), None);
    assert_eq!(gone.status, 409, "now `second` is the last administrator");
    // An administrator setting a password ends that account's sessions.
    let reset =
        hub.request("PATCH", "/api/v1/users/owner", Some(&second), Some(&json!({"password": "reset passphrase"})));
    assert_eq!(reset.status, 200, "{}", reset.text);
    assert_eq!(hub.get("/api/v1/auth/me", Some(&owner)).status, 401);
    assert_eq!(login(&hub, "owner", "reset passphrase").status, 200);
    assert_eq!(hub.request("DELETE", "/api/v1/users/owner", Some(&second), None).status, 204);
    assert_eq!(login(&hub, "owner", "reset passphrase").status, 401);

    // API tokens: created (shown once), listed without secrets, revoked.
    let created = hub.post("/api/v1/tokens", Some(&second), json!({"name": "home assistant"}));
    assert_eq!(created.status, 201, "{}", created.text);
    let secret = created.body["token"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_i64().unwrap();
    assert_eq!(hub.get("/api/v1/auth/me", Some(&secret)).body["name"], "second");
    let list = hub.get("/api/v1/tokens", Some(&second));
    assert!(!list.text.contains(&secret) && !list.text.contains(&second), "no secrets in the list");
    let row = list.body.as_array().unwrap().iter().find(|t| t["id"] == id).unwrap().clone();
    assert_eq!(
        (row["user"].as_str(), row["name"].as_str(), row["kind"].as_str()),
        (Some("second"), Some("home assistant"), Some("api"))
    );
    assert!(row["expires_at"].is_null() && row["created_at"].is_string(), "{row}");
    assert_eq!(hub.post("/api/v1/tokens", Some(&second), json!({"name": ""})).status, 400);
    assert_eq!(hub.request("DELETE", &format!("/api/v1/tokens/{id}"), Some(&second), None).status, 204);
    assert_eq!(hub.get("/api/v1/auth/me", Some(&secret)).status, 401);
    assert_eq!(hub.request("DELETE", &format!("/api/v1/tokens/{id}"), Some(&second), None).status, 404);
    assert_eq!(hub.request("DELETE", "/api/v1/tokens/abc", Some(&second), None).status, 404);

    // The command line: members by default, roles listed.
    let (ok, _, err) = hub.cli(&["user", "add", "carol", "--password-stdin"], Some("carols-passphrase\n"));
    assert!(ok, "{err}");
    let (ok, _, err) = hub.cli(&["user", "add", "dave", "--member", "--password-stdin"], Some("daves-passphrase\n"));
    assert!(ok, "{err}");
    let (ok, _, _) = hub.cli(&["user", "add", "erin", "--admin", "--member", "--password-stdin"], Some("x\n"));
    assert!(!ok, "--admin and --member conflict");
    let (_, out, _) = hub.cli(&["user", "list"], None);
    assert!(
        out.contains("carol\tmember\t") && out.contains("dave\tmember\t") && out.contains("second\tadmin\t"),
        "{out}"
    );
    let (ok, _, err) = hub.cli(&["user", "remove", "second"], None);
    assert!(!ok && err.contains("last administrator"), "{err}");
}

#[test]
fn the_audit_log_records_logins_and_admin_actions_without_secrets() {
    let (hub, owner) = demo_hub();
    assert_eq!(login(&hub, "owner", "wrong-password-123").status, 401);
    // A password typed into the name field must not be recorded.
    assert_eq!(login(&hub, "correct-horse-battery", "x").status, 401);
    let session_token = session(&hub, "owner", OWNER_PASSWORD);
    add_user(&hub, &owner, "kid", "member", json!(["kitchen"]));
    let patch = hub.request("PATCH", "/api/v1/users/kid", Some(&owner), Some(&json!({"password": "kids-new-secret"})));
    assert_eq!(patch.status, 200);
    let token = hub.post("/api/v1/tokens", Some(&owner), json!({"name": "script"}));
    let token_id = token.body["id"].as_i64().unwrap();
    let token_secret = token.body["token"].as_str().unwrap().to_owned();
    hub.request("DELETE", &format!("/api/v1/tokens/{token_id}"), Some(&owner), None);
    let automation = hub.post(
        "/api/v1/automations",
        Some(&owner),
        json!({"id": "garage", "name": "Garage", "triggers": [{"webhook": {"id": "garage"}}],
               "actions": [{"notify": {"message": "The garage opened."}}]}),
    );
    assert_eq!(automation.status, 201, "{}", automation.text);
    assert_eq!(hub.post("/api/v1/automations/garage/disable", Some(&owner), json!({})).status, 200);
    assert_eq!(hub.request("DELETE", "/api/v1/automations/garage", Some(&owner), None).status, 204);
    let scene = hub.post(
        "/api/v1/scenes",
        Some(&owner),
        json!({"name": "Cooking", "devices": {"demo:kitchen_light": {"state": true}}}),
    );
    assert_eq!(scene.status, 201);
    let action = hub.post(
        "/api/v1/adapters/demo/actions/simulate",
        Some(&owner),
        json!({"device": "hall_button", "event": "single"}),
    );
    assert_eq!(action.status, 200, "{}", action.text);
    assert_eq!(hub.get("/api/v1/backup", Some(&owner)).status, 200);
    hub.post("/api/v1/auth/logout", Some(&session_token), json!({}));
    // A failed action is not an action.
    assert_eq!(hub.request("DELETE", "/api/v1/scenes/nothing", Some(&owner), None).status, 404);

    let log = audit(&hub, &owner);
    let find = |action: &str| -> Value {
        log.iter().find(|e| e["action"] == action).unwrap_or_else(|| panic!("no `{action}` in {log:#?}")).clone()
    };
    let login_ok = find("auth.login");
    assert_eq!((login_ok["actor"].as_str(), login_ok["ip"].as_str()), (Some("owner"), Some("127.0.0.1")));
    assert!(login_ok["at"].is_string());
    let failures: Vec<&Value> = log.iter().filter(|e| e["action"] == "auth.login_failed").collect();
    assert_eq!(failures.len(), 2);
    assert!(failures.iter().all(|e| e["ip"] == "127.0.0.1"));
    assert_eq!(find("user.add")["target"], "kid");
    assert_eq!(find("user.add")["detail"], "role member; areas kitchen");
    assert_eq!(find("user.change")["detail"], "password set, sessions ended");
    assert_eq!(find("token.create")["target"], token_id.to_string());
    assert_eq!(find("token.revoke")["target"], token_id.to_string());
    assert_eq!(find("automation.create")["target"], "garage");
    assert_eq!(find("automation.create")["detail"], "version 1");
    assert_eq!(find("automation.disable")["target"], "garage");
    assert_eq!(find("automation.delete")["target"], "garage");
    assert_eq!(find("scene.create")["target"], "cooking");
    assert_eq!(find("adapter.action")["target"], "demo/simulate");
    assert_eq!(find("backup")["actor"], "owner");
    assert_eq!(find("auth.logout")["actor"], "owner");
    assert!(log.iter().all(|e| e["action"] != "scene.delete"));
    assert!(log[0]["id"].as_i64() > log[1]["id"].as_i64(), "newest first");

    let text = serde_json::to_string(&log).unwrap();
    for secret in [
        OWNER_PASSWORD,
        "wrong-password-123",
        "correct-horse-battery",
        "kid-passphrase",
        "kids-new-secret",
        &token_secret,
        &session_token,
        &owner,
    ] {
        assert!(!text.contains(secret), "the audit log holds a secret: {secret}");
    }
    assert!(!hub.log().contains("wrong-password-123") && !hub.log().contains("correct-horse-battery"));
    assert_eq!(hub.get("/api/v1/audit?limit=2", Some(&owner)).body.as_array().unwrap().len(), 2);
    assert_eq!(hub.get("/api/v1/audit?limit=0", Some(&owner)).status, 400);
    assert_eq!(hub.get("/api/v1/audit?since=1", Some(&owner)).status, 400);
}

#[test]
fn a_backup_is_a_consistent_sqlite_copy() {
    let hub = Hub::start(&[]);
    let token = hub.onboard();
    let a = hub.get("/api/v1/backup", Some(&token));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("content-type"), Some("application/x-tar"));
    let disposition = a.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"hearth-backup-20") && disposition.ends_with(".hearth-backup\"")
    );
    assert_eq!(
        disposition.len(),
        "attachment; filename=\"hearth-backup-2026-01-01.hearth-backup\"".len(),
        "{disposition}"
    );
    // The archive (hub/src/backup.rs) is a tar file: the manifest, then the database.
    assert!(a.bytes.starts_with(b"manifest.json\0"));
    let size = |h: &[u8]| usize::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap(), 8).unwrap();
    let db_header = 512 + size(&a.bytes[..512]).div_ceil(512) * 512;
    assert!(a.bytes[db_header..].starts_with(b"hearth.db\0"));
    let db_bytes = &a.bytes[db_header + 512..db_header + 512 + size(&a.bytes[db_header..])];
    assert!(db_bytes.starts_with(b"SQLite format 3\0"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    std::fs::write(&file, db_bytes).unwrap();
    let db = rusqlite::Connection::open(&file).unwrap();
    let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let owner: String = db.query_row("SELECT name FROM users", [], |r| r.get(0)).unwrap();
    assert_eq!(owner, "owner");
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, hearth::store::migrations::LATEST);
    // Nothing is left behind in the data directory.
    let left: Vec<_> = std::fs::read_dir(&hub.data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("backup") || n.contains("snapshot"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn every_response_carries_the_security_headers() {
    let hub = Hub::start(&[]);
    let token = hub.onboard();
    let csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
               manifest-src 'self'; worker-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; \
               object-src 'none'";
    for (path, token, status) in [
        ("/", None, 200),
        ("/healthz", None, 200),
        ("/api/v1/devices", None, 401),
        ("/api/v1/devices", Some(token.as_str()), 200),
        ("/api/v1/nothing-here", Some(token.as_str()), 404),
    ] {
        let a = hub.get(path, token);
        assert_eq!(a.status, status, "{path}: {}", a.text);
        assert_eq!(a.header("content-security-policy"), Some(csp), "{path}");
        assert_eq!(a.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(a.header("referrer-policy"), Some("no-referrer"), "{path}");
    }
}

#[test]
fn the_websocket_checks_its_origin_and_accepts_the_session_cookie() {
    let hub = Hub::start(&[]);
    hub.onboard();
    let origin = hub.origin();
    assert_eq!(Ws::connect_with(hub.http, &[("origin", "http://evil.example")]).err(), Some(403));
    assert_eq!(Ws::connect_with(hub.http, &[("origin", "http://127.0.0.1:1")]).err(), Some(403));

    let token = session(&hub, "owner", OWNER_PASSWORD);
    let cookie = format!("hearth_session={token}");
    // The cookie of the upgrade request authenticates `{"type": "auth"}` without a token.
    let mut ws = Ws::connect_with(hub.http, &[("origin", &origin), ("cookie", &cookie)]).unwrap();
    ws.send(json!({"type": "auth"}));
    assert_eq!(ws.recv_type("auth_ok", T)["user"]["name"], "owner");
    // Without a cookie (or a token) it fails; a token in the message still works.
    let mut ws = Ws::connect_with(hub.http, &[("origin", &origin)]).unwrap();
    ws.send(json!({"type": "auth"}));
    assert_eq!(ws.recv(T).unwrap()["type"], "auth_failed");
    let mut ws = Ws::connect_with(hub.http, &[("origin", &origin)]).unwrap();
    ws.send(json!({"type": "auth", "token": token}));
    assert_eq!(ws.recv(T).unwrap()["type"], "auth_ok");
    // A revoked session is refused.
    assert_eq!(hub.post("/api/v1/auth/logout", Some(&token), json!({})).status, 204);
    let mut ws = Ws::connect_with(hub.http, &[("origin", &origin), ("cookie", &cookie)]).unwrap();
    ws.send(json!({"type": "auth"}));
    assert_eq!(ws.recv(T).unwrap()["type"], "auth_failed");
}
