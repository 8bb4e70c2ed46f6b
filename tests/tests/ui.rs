//! The web UI in headless Chromium against the real binary with the demo home (issue 5, "How it
//! is checked"): onboarding, login, toggling a light, live updates without reload, the automation
//! form editor, Chinese, a member's limited view, names rendered as text, a lost connection that
//! recovers, complete translations and an accessibility spot check. Every check is about what a
//! user sees; screenshots land under `target/ui-screenshots/<test>/`.
//!
//! Each test starts its own hub (a quiet demo home: its simulation ticks once an hour, so only
//! the test moves things) and its own browser. Tests that are not about onboarding or login create
//! the owner through the API and hand the browser a session cookie of its own; every wait is for a
//! condition, never a fixed time.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hearth_tests::Hub;
use hearth_tests::browser::{Browser, Options, Viewport};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(15);
/// The owner `Hub::onboard` creates.
const OWNER: &str = "owner";
const PASSWORD: &str = "correct horse battery";
const SESSION_COOKIE: &str = "hearth_session";
/// A demo home whose own simulation is quiet (one tick an hour).
const QUIET_DEMO: &str = "[adapters.demo]\nenabled = true\ninterval_secs = 3600\n";
const DEMO_DEVICES: usize = 13;
const LIGHT: &str = "demo:kitchen_light";
const LAMP: &str = "demo:living_lamp";

// ----- the hub ---------------------------------------------------------------------------------

fn quiet_hub() -> Hub {
    Hub::start_with_config(QUIET_DEMO, &[])
}

fn wait_for_devices(hub: &Hub, token: &str) {
    hub.wait_for(T, || {
        let d = hub.get("/api/v1/devices", Some(token)).body;
        (d.as_array().map_or(0, Vec::len) >= DEMO_DEVICES).then_some(())
    });
}

/// A quiet demo home with its owner created through the API; the owner's session token.
fn quiet_home() -> (Hub, String) {
    let hub = quiet_hub();
    let token = hub.onboard();
    wait_for_devices(&hub, &token);
    (hub, token)
}

fn login_token(hub: &Hub, name: &str, password: &str) -> String {
    let a = hub.post("/api/v1/auth/login", None, json!({"name": name, "password": password}));
    assert_eq!(a.status, 200, "login of {name}: {}", a.text);
    a.body["token"].as_str().unwrap().to_owned()
}

fn value(hub: &Hub, token: &str, id: &str, feature: &str) -> Value {
    hub.get(&format!("/api/v1/devices/{id}"), Some(token)).body["state"][feature]["value"].clone()
}

fn wait_value(hub: &Hub, token: &str, id: &str, feature: &str, want: &Value) {
    hub.wait_for(T, || (value(hub, token, id, feature) == *want).then_some(()));
}

/// Sends `set` through the REST API with a bearer token.
fn set(hub: &Hub, token: &str, id: &str, values: Value) {
    let a = hub.post(&format!("/api/v1/devices/{id}/commands"), Some(token), json!({"set": values}));
    assert_eq!(a.status, 202, "{}", a.text);
}

fn rename(hub: &Hub, token: &str, id: &str, name: &str) {
    let a = hub.request("PATCH", &format!("/api/v1/devices/{id}"), Some(token), Some(&json!({"name": name})));
    assert_eq!(a.status, 200, "{}", a.text);
}

fn simulate(hub: &Hub, token: &str, params: Value) {
    let a = hub.post("/api/v1/adapters/demo/actions/simulate", Some(token), params);
    assert_eq!(a.status, 200, "{}", a.text);
}

// ----- the browser -----------------------------------------------------------------------------

/// A browser with a session of `name` (a login of its own, as a cookie on the hub's origin),
/// showing the home screen with every device's card. Returns the browser and its session token.
fn signed_in(hub: &Hub, options: Options, name: &str, password: &str) -> (Browser, String) {
    let token = login_token(hub, name, password);
    let b = options.start();
    b.sign_in_with_session(hub, &token);
    wait_home(&b, DEMO_DEVICES);
    (b, token)
}

/// Logs in through the login form.
fn log_in_with_form(b: &Browser, name: &str, password: &str) {
    b.find("[data-testid=login-form]");
    let field = b.find("[data-testid=login-name]");
    field.clear();
    field.send_keys(name);
    let field = b.find("[data-testid=login-password]");
    field.clear();
    field.send_keys(password);
    b.find("[data-testid=login-submit]").click();
}

/// Waits for the home screen with `n` device cards.
fn wait_home(b: &Browser, n: usize) {
    b.find("[data-testid=home-screen]");
    b.wait_until(&format!("{n} device cards on the home screen"), || {
        let count = b.exec("return document.querySelectorAll('[data-testid=device-card]').length", &[]);
        (count == json!(n)).then_some(())
    });
    assert!(b.url().ends_with("#/home"), "{}", b.url());
}

/// The card of device `id`.
fn card(id: &str) -> String {
    format!("[data-testid=device-card][data-device-id=\"{id}\"]")
}

fn wait_attr(b: &Browser, css: &str, name: &str, want: &str) {
    b.wait_until(&format!("`{css}` with {name}={want:?}"), || (b.attr(css, name) == json!(want)).then_some(()));
}

/// The `value` of the first input matching `css`.
fn input_value(b: &Browser, css: &str) -> Value {
    b.exec("const e = document.querySelector(arguments[0]); return e ? e.value : null", &[json!(css)])
}

fn wait_input_value(b: &Browser, css: &str, want: &str) {
    b.wait_until(&format!("`{css}` with the value {want:?}"), || (input_value(b, css) == json!(want)).then_some(()));
}

fn visible(b: &Browser, css: &str) -> bool {
    b.exec("return [...document.querySelectorAll(arguments[0])].some(e => e.checkVisibility())", &[json!(css)])
        == json!(true)
}

/// Clicks a link of the navigation and waits for the screen's marker.
fn navigate(b: &Browser, nav: &str, screen: &str) {
    b.find(&format!("[data-testid=nav-{nav}]")).click();
    b.find(&format!("[data-testid={screen}]"));
}

/// Fails on console errors of the page besides the signed-out `GET /api/v1/auth/me` (401) that
/// Chrome logs on every first visit (see ui/TESTIDS.md) and the `also` the test expects, and on
/// the warning `t()` logs for a text missing from the dictionaries.
fn assert_quiet_console(b: &Browser, also: &[&str]) {
    let errors: Vec<String> = b
        .console()
        .into_iter()
        .filter(|e| e.level == "SEVERE" || e.message.contains("missing translation"))
        .map(|e| e.message)
        .filter(|m| !(m.contains("/api/v1/auth/me") && m.contains("401")))
        .filter(|m| !also.iter().any(|a| m.contains(a)))
        .collect();
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
}

fn has_cjk(text: &str) -> bool {
    text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// The navigation's visible text.
fn nav_text(b: &Browser) -> String {
    b.exec("return document.getElementById('nav').innerText", &[]).as_str().unwrap_or_default().to_owned()
}

fn html_lang(b: &Browser) -> Value {
    b.exec("return document.documentElement.lang", &[])
}

// ----- the tests -------------------------------------------------------------------------------

#[test]
fn onboarding_creates_the_owner_with_an_http_only_session_and_lands_on_home() {
    let hub = quiet_hub();
    let b = Browser::options().viewport(Viewport::PHONE).start();
    b.open(&hub, "/");
    b.find("[data-testid=onboarding-form]");
    b.wait_text("h1", "Welcome");
    b.screenshot("onboarding");
    b.set_viewport(Viewport::DESKTOP);
    b.screenshot("onboarding");
    b.set_viewport(Viewport::PHONE);

    b.find("[data-testid=onboarding-name]").send_keys(OWNER);
    b.find("[data-testid=onboarding-password]").send_keys(PASSWORD);
    b.find("[data-testid=onboarding-password-confirm]").send_keys(PASSWORD);
    b.find("[data-testid=onboarding-submit]").click();
    wait_home(&b, DEMO_DEVICES);
    b.wait_text_is("[data-testid=user-name]", OWNER);

    // The session is an HttpOnly cookie, and the page keeps no token anywhere it can read.
    let cookie = b.cookie(SESSION_COOKIE).expect("a session cookie after onboarding");
    assert!(cookie.http_only, "{cookie:?}");
    assert_eq!(cookie.same_site.as_deref(), Some("Strict"), "{cookie:?}");
    let me = hub.get("/api/v1/auth/me", Some(&cookie.value));
    assert_eq!((me.status, me.body["name"].as_str(), me.body["role"].as_str()), (200, Some(OWNER), Some("admin")));
    for storage in ["localStorage", "sessionStorage"] {
        let text = b.exec(&format!("return JSON.stringify({storage})"), &[]);
        let text = text.as_str().unwrap();
        assert!(!text.contains(&cookie.value), "{storage} holds the session token: {text}");
    }
    let script_cookies = b.exec("return document.cookie", &[]);
    assert!(!script_cookies.as_str().unwrap().contains(SESSION_COOKIE), "{script_cookies}");

    b.screenshot("home");
    b.set_viewport(Viewport::DESKTOP);
    wait_home(&b, DEMO_DEVICES);
    b.screenshot("home");
    assert_quiet_console(&b, &[]);
}

#[test]
fn logging_out_and_in_again_through_the_form() {
    let (hub, _) = quiet_home();
    let (b, session) = signed_in(&hub, Browser::options(), OWNER, PASSWORD);

    navigate(&b, "settings", "settings-screen");
    b.find("[data-testid=logout]").click();
    b.find("[data-testid=login-form]");
    b.wait_until("the session cookie to be cleared", || b.cookie(SESSION_COOKIE).is_none().then_some(()));
    assert_eq!(hub.get("/api/v1/auth/me", Some(&session)).status, 401, "logging out ends the session");
    assert!(!visible(&b, "#nav"), "no navigation when signed out");

    // A wrong password is refused with a message, and nothing is signed in.
    log_in_with_form(&b, OWNER, "not the password");
    let error = b.find("[data-testid=login-error]");
    b.wait_until("a visible login error", || (error.is_displayed() && !error.text().trim().is_empty()).then_some(()));
    assert!(b.url().ends_with("#/login"), "{}", b.url());
    assert!(b.cookie(SESSION_COOKIE).is_none());
    b.screenshot("wrong-password");

    // The right one lands on home with a new session.
    log_in_with_form(&b, OWNER, PASSWORD);
    wait_home(&b, DEMO_DEVICES);
    let cookie = b.cookie(SESSION_COOKIE).expect("a session cookie after login");
    assert!(cookie.http_only && cookie.value != session, "{cookie:?}");
    b.wait_text_is("[data-testid=user-name]", OWNER);
    assert_quiet_console(
        &b,
        &["/api/v1/auth/login - Failed to load resource: the server responded with a status of 401"],
    );
}

#[test]
fn toggling_a_light_changes_its_card_and_the_device() {
    let (hub, token) = quiet_home();
    set(&hub, &token, LIGHT, json!({"state": false}));
    wait_value(&hub, &token, LIGHT, "state", &json!(false));
    let (b, _) = signed_in(&hub, Browser::options(), OWNER, PASSWORD);
    let switch = format!("{} [data-testid=toggle-state]", card(LIGHT));
    wait_attr(&b, &switch, "aria-checked", "false");

    b.find(&switch).click();
    wait_attr(&b, &switch, "aria-checked", "true");
    wait_value(&hub, &token, LIGHT, "state", &json!(true));
    b.screenshot("light-on");

    b.find(&switch).click();
    wait_attr(&b, &switch, "aria-checked", "false");
    wait_value(&hub, &token, LIGHT, "state", &json!(false));
    assert_quiet_console(&b, &[]);
}

#[test]
fn a_change_made_through_the_api_appears_on_the_open_page_without_reload() {
    let (hub, token) = quiet_home();
    set(&hub, &token, LIGHT, json!({"state": false, "brightness": 100}));
    wait_value(&hub, &token, LIGHT, "brightness", &json!(100.0));
    let (b, _) = signed_in(&hub, Browser::options(), OWNER, PASSWORD);
    let switch = format!("{} [data-testid=toggle-state]", card(LIGHT));
    let slider = format!("{} [data-testid=slider-brightness]", card(LIGHT));
    wait_attr(&b, &switch, "aria-checked", "false");
    wait_input_value(&b, &slider, "100");
    let url = b.exec("window.__marker = 1; return location.href", &[]);

    // With a bearer token.
    set(&hub, &token, LIGHT, json!({"state": true, "brightness": 30}));
    wait_attr(&b, &switch, "aria-checked", "true");
    wait_input_value(&b, &slider, "30");

    // With a session cookie and the hub's own Origin, as another browser tab would.
    let cookie = format!("{SESSION_COOKIE}={token}");
    let origin = hub.origin();
    let body = json!({"set": {"brightness": 55}});
    let path = format!("/api/v1/devices/{LIGHT}/commands");
    let a = hub.request_with("POST", &path, &[("cookie", &cookie), ("origin", &origin)], Some(&body));
    assert_eq!(a.status, 202, "{}", a.text);
    wait_input_value(&b, &slider, "55");

    assert_eq!(b.exec("return [window.__marker, location.href]", &[]), json!([1, url]), "the page was reloaded");
    b.screenshot("live");
    assert_quiet_console(&b, &[]);
}

#[test]
fn an_automation_made_in_the_form_editor_runs_and_shows_its_trace() {
    let (hub, token) = quiet_home();
    for id in [LIGHT, LAMP] {
        set(&hub, &token, id, json!({"state": false}));
        wait_value(&hub, &token, id, "state", &json!(false));
    }
    let (b, _) = signed_in(&hub, Browser::options(), OWNER, PASSWORD);

    navigate(&b, "automations", "automations-screen");
    b.find("[data-testid=automations-empty]");
    b.find("[data-testid=new-automation]").click();
    b.find("[data-testid=automation-form]");
    let name = "Hall button lights the kitchen";
    let id = "hall_button_lights_the_kitchen";
    b.find("[data-testid=automation-name]").send_keys(name);
    assert_eq!(input_value(&b, "[data-testid=automation-id]"), json!(id), "the id follows the name");

    // Trigger: a single press of the hallway button.
    b.find("[data-testid=trigger-item][data-index='0'] [data-testid=trigger-kind]").set_value("event");
    let trigger = "[data-testid=trigger-item][data-index='0'][data-kind=event]";
    b.find(&format!("{trigger} [data-testid=field-device]")).set_value("demo:hall_button");
    b.find(&format!("{trigger} [data-testid=event-single]")).click();
    // Action: the kitchen light and the living-room lamp on (the form offers what both can do).
    let action = "[data-testid=action-item][data-index='0'][data-kind=set]";
    b.find(&format!("{action} [data-testid=field-device]")).set_value(LIGHT);
    b.find(&format!("{action} [data-testid=add-device]")).click();
    b.find(&format!("{action} [data-testid=field-device][data-index='1']")).set_value(LAMP);
    b.find(&format!("{action} [data-testid=value-include-state]")).click();
    assert_eq!(input_value(&b, &format!("{action} [data-testid=value-state]")), json!("true"));
    b.screenshot("form");
    b.find("[data-testid=save-automation]").click();
    b.wait_text_is("[data-testid=automation-title]", name);

    // Saved as made.
    let saved = hub.get(&format!("/api/v1/automations/{id}"), Some(&token));
    assert_eq!(saved.status, 200, "{}", saved.text);
    let def = &saved.body["automation"];
    assert_eq!(
        def["triggers"],
        json!([{"event": {"devices": ["demo:hall_button"], "feature": "action", "events": ["single"]}}]),
        "{def}"
    );
    assert_eq!(def["actions"], json!([{"set": {"devices": [LIGHT, LAMP], "values": {"state": true}}}]), "{def}");

    // In the list.
    navigate(&b, "automations", "automations-screen");
    let row = format!("[data-testid=automation-row][data-automation-id={id}]");
    b.wait_text_is(&format!("{row} [data-testid=automation-open]"), name);
    wait_attr(&b, &format!("{row} [data-testid=automation-enabled]"), "aria-checked", "true");

    // A press turns the light on: on its card and in the API.
    navigate(&b, "home", "home-screen");
    let switch = format!("{} [data-testid=toggle-state]", card(LIGHT));
    wait_attr(&b, &switch, "aria-checked", "false");
    simulate(&hub, &token, json!({"device": "hall_button", "event": "single"}));
    wait_attr(&b, &switch, "aria-checked", "true");
    wait_value(&hub, &token, LIGHT, "state", &json!(true));
    wait_value(&hub, &token, LAMP, "state", &json!(true));

    // The run is in the automation's traces, finished, with its step.
    navigate(&b, "automations", "automations-screen");
    b.find(&format!("{row} [data-testid=automation-open]")).click();
    b.find("[data-testid=tab-traces]").click();
    b.find("[data-testid=traces] [data-testid=trace-row]");
    wait_attr(&b, "[data-testid=trace-row] [data-testid=ending]", "data-kind", "finished");
    b.screenshot("traces");
    b.find("[data-testid=trace-row] [data-testid=trace-open]").click();
    // The trace names the button and the light as the household knows them.
    let name_of =
        |id: &str| hub.get(&format!("/api/v1/devices/{id}"), Some(&token)).body["name"].as_str().unwrap().to_owned();
    b.wait_text("[data-testid=trace-trigger]", &name_of("demo:hall_button"));
    b.wait_text("[data-testid=trace-step] [data-testid=step-outcome]", &name_of(LIGHT));
    assert_quiet_console(&b, &[]);
}

/// Waits for the text of `css` to hold Chinese, and returns it.
fn chinese_text(b: &Browser, css: &str) -> String {
    b.wait_until(&format!("Chinese in {css}"), || {
        let text = b.try_find(css)?.text();
        has_cjk(&text).then_some(text)
    })
}

#[test]
fn what_the_hub_writes_is_said_in_chinese_too() {
    let (hub, token) = quiet_home();
    let light_name =
        hub.get(&format!("/api/v1/devices/{LIGHT}"), Some(&token)).body["name"].as_str().unwrap().to_owned();
    let def = json!({
        "id": "words", "name": "Words",
        "triggers": [{"event": {"devices": ["demo:hall_button"], "feature": "action", "events": ["single"]}}],
        "conditions": [{"state": {"devices": [LIGHT], "feature": "state", "is": false}}],
        "actions": [{"set": {"devices": [LIGHT], "values": {"state": true}}}, {"delay": "1s"}]
    });
    let made = hub.post("/api/v1/automations", Some(&token), def);
    assert_eq!(made.status, 201, "{}", made.text);
    set(&hub, &token, LIGHT, json!({"state": false}));
    wait_value(&hub, &token, LIGHT, "state", &json!(false));
    simulate(&hub, &token, json!({"device": "hall_button", "event": "single"}));
    let run = hub.wait_for(T, || {
        let traces = hub.get("/api/v1/automations/words/traces", Some(&token)).body;
        let t = traces.as_array()?.first()?.clone();
        (t["ending"]["kind"] == "finished").then(|| t["run"].as_u64().unwrap())
    });

    let (b, _) = signed_in(&hub, Browser::options().viewport(Viewport::PHONE).lang("zh-CN,zh"), OWNER, PASSWORD);
    assert_eq!(html_lang(&b), json!("zh-CN"));

    // The trace: what started it, the condition, each step and the ending, in Chinese, with the
    // light named as the household knows it.
    b.exec(&format!("location.hash = '#/automation/words/trace/{run}'"), &[]);
    let trigger = chinese_text(&b, "[data-testid=trace-trigger]");
    assert!(!trigger.contains("demo:hall_button: action single"), "{trigger}");
    let condition = chinese_text(&b, "[data-testid=trace-conditions] li");
    assert!(condition.contains(&light_name) && !condition.contains("wanted"), "{condition}");
    let steps: Vec<String> = b.find_all("[data-testid=step-outcome]").iter().map(|e| e.text()).collect();
    assert_eq!(steps.len(), 2, "{steps:?}");
    for step in &steps {
        assert!(has_cjk(step) && !step.contains("sent to") && !step.contains("waiting"), "{step}");
    }
    assert!(steps[0].contains(&light_name), "{steps:?}");
    let ending = chinese_text(&b, "[data-testid=ending-message]");
    assert!(!ending.contains("every action ran"), "{ending}");
    b.screenshot("trace-zh");

    // A dry run's plan.
    b.exec("location.hash = '#/automation/words'", &[]);
    b.find("[data-testid=dry-run]").click();
    let plan = chinese_text(&b, "[data-testid=dry-run-plan]");
    assert!(plan.contains(&light_name) && !plan.contains("set state"), "{plan}");

    // A definition's faults.
    b.exec("location.hash = '#/automations/new/code'", &[]);
    b.find("[data-testid=code-format-json]").click();
    let editor = b.find("[data-testid=code-editor]");
    editor.clear();
    editor.send_keys(
        r#"{"id": "broken", "name": "Broken", "triggers": [{"time": {"at": "07:00"}}], "actions": [{"set": {"devices": ["demo:nothing"], "values": {"state": true}}}]}"#,
    );
    b.find("[data-testid=save-code]").click();
    let faults = chinese_text(&b, "[data-testid=code-errors] .faults li");
    assert!(faults.contains("demo:nothing") && !faults.contains("no device"), "{faults}");
    b.screenshot("faults-zh");

    // The audit log: actions and notes.
    navigate(&b, "settings", "settings-screen");
    let created = chinese_text(&b, "[data-testid=audit-row][data-action='automation.create'] .log-what");
    assert!(!created.contains("automation.create"), "{created}");
    let login = chinese_text(&b, "[data-testid=audit-row][data-action='auth.login'] .log-what");
    assert!(!login.contains("auth.login"), "{login}");
    let note = chinese_text(&b, "[data-testid=audit-row][data-action='automation.create'] .log-origin");
    assert!(!note.contains("version"), "{note}");
    b.screenshot("audit-zh");
    // The one error: the refused definition.
    assert_quiet_console(
        &b,
        &["/api/v1/automations - Failed to load resource: the server responded with a status of 422"],
    );
}

#[test]
fn switching_to_chinese_in_settings_and_in_a_chinese_browser() {
    let (hub, _) = quiet_home();
    let (b, _) = signed_in(&hub, Browser::options(), OWNER, PASSWORD);
    assert_eq!(html_lang(&b), json!("en"));
    assert!(!has_cjk(&nav_text(&b)), "{}", nav_text(&b));

    navigate(&b, "settings", "settings-screen");
    b.find("[data-testid=lang-select]").set_value("zh-CN");
    b.wait_until("the page in Chinese", || (html_lang(&b) == json!("zh-CN")).then_some(()));
    let check = |b: &Browser| {
        b.wait_until("Chinese navigation", || has_cjk(&nav_text(b)).then_some(()));
        let nav = nav_text(b);
        assert!(!nav.chars().any(|c| c.is_ascii_alphabetic()), "English left in the navigation: {nav:?}");
        b.wait_until("a Chinese heading", || {
            let h1 = b.exec("const h = document.querySelector('main h1'); return h ? h.innerText : ''", &[]);
            has_cjk(h1.as_str().unwrap_or_default()).then_some(())
        });
    };
    check(&b);
    b.screenshot("settings-zh");

    // The choice stays after a reload.
    b.refresh();
    b.find("[data-testid=settings-screen]");
    assert_eq!(html_lang(&b), json!("zh-CN"));
    check(&b);
    navigate(&b, "home", "home-screen");
    check(&b);
    b.screenshot("home-zh");

    // A browser that prefers Chinese shows Chinese from its first page.
    let zh = Browser::options().viewport(Viewport::PHONE).lang("zh-CN,zh").start();
    zh.open(&hub, "/");
    zh.find("[data-testid=login-form]");
    zh.wait_until("the login page in Chinese", || (html_lang(&zh) == json!("zh-CN")).then_some(()));
    for css in ["h1", "[data-testid=login-submit]", "label[for]"] {
        let text = zh.find(css).text();
        assert!(has_cjk(&text), "{css}: {text:?}");
    }
    zh.screenshot("login-zh");
    log_in_with_form(&zh, OWNER, PASSWORD);
    wait_home(&zh, DEMO_DEVICES);
    check(&zh);
    let saved = zh.exec("return localStorage.getItem('hearth.lang')", &[]);
    assert_eq!(saved, Value::Null, "the language came from the browser, not a saved choice");
    assert_quiet_console(&b, &[]);
    assert_quiet_console(&zh, &[]);
}

#[test]
fn a_member_limited_to_one_area_sees_no_admin_screens() {
    let (hub, token) = quiet_home();
    let def = json!({"id": "hall_button", "name": "Hall button toggles the light",
        "triggers": [{"event": {"devices": ["demo:hall_button"], "events": ["single"]}}],
        "actions": [{"set": {"devices": [LIGHT], "toggle": ["state"]}}]});
    let a = hub.post("/api/v1/automations", Some(&token), def);
    assert_eq!(a.status, 201, "{}", a.text);
    let a = hub.post(
        "/api/v1/users",
        Some(&token),
        json!({"name": "kid", "password": "kid-passphrase", "role": "member", "areas": ["kitchen"]}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    // The kitchen's devices, as the owner sees them.
    let all = hub.get("/api/v1/devices", Some(&token)).body;
    let kitchen: BTreeSet<String> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["area"] == "kitchen")
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(kitchen.contains(LIGHT) && kitchen.len() < DEMO_DEVICES, "{kitchen:?}");

    let b = Browser::options().start();
    b.open(&hub, "/");
    log_in_with_form(&b, "kid", "kid-passphrase");
    wait_home(&b, kitchen.len());
    let shown =
        b.exec("return [...document.querySelectorAll('[data-testid=device-card]')].map(c => c.dataset.deviceId)", &[]);
    let shown: BTreeSet<String> = serde_json::from_value(shown).unwrap();
    assert_eq!(shown, kitchen);
    let areas =
        b.exec("return [...document.querySelectorAll('[data-testid=area-section]')].map(s => s.dataset.areaId)", &[]);
    assert_eq!(areas, json!(["kitchen"]));
    b.screenshot("member-home");

    // Settings: the account and the language, none of the administration.
    navigate(&b, "settings", "settings-screen");
    b.find("[data-testid=account-section]");
    b.find("[data-testid=language-section]");
    b.find("[data-testid=adapters-section]");
    b.wait_text_is("[data-testid=account-role]", "Member");
    for admin_only in
        ["users-section", "tokens-section", "backup-section", "audit-section", "areas-section", "backup-download"]
    {
        assert!(b.try_find(&format!("[data-testid={admin_only}]")).is_none(), "a member sees {admin_only}");
    }
    b.screenshot("member-settings");

    // Automations: listed, but nothing to edit, switch or run.
    navigate(&b, "automations", "automations-screen");
    let row = "[data-testid=automation-row][data-automation-id=hall_button]";
    b.find(row);
    assert!(b.try_find("[data-testid=new-automation]").is_none());
    assert!(b.try_find(&format!("{row} [data-testid=automation-enabled]")).is_none());
    assert!(b.find_all("[role=switch]").is_empty(), "a member gets no switch in the list");
    b.find(&format!("{row} [data-testid=automation-open]")).click();
    b.find("[data-testid=tab-panel-traces]");
    b.find("[data-testid=tab-code]");
    for editing in ["tab-form", "run-now", "automation-enabled", "automation-delete", "automation-form"] {
        assert!(b.try_find(&format!("[data-testid={editing}]")).is_none(), "a member sees {editing}");
    }
    b.find("[data-testid=tab-code]").click();
    let editor = b.find("[data-testid=code-editor]");
    b.wait_until("the automation's code", || (!editor.value().is_empty()).then_some(()));
    assert_eq!(editor.prop("readOnly"), json!(true));
    assert!(b.try_find("[data-testid=save-code]").is_none());
    b.exec("location.hash = '#/automations/new'", &[]);
    b.find("[data-testid=forbidden]");
    assert!(b.try_find("[data-testid=automation-form]").is_none());

    // A device of its area: controls, but no renaming, moving or removing.
    b.exec(&format!("location.hash = '#/device/{}'", LIGHT.replace(':', "%3A")), &[]);
    b.find("[data-testid=device-detail] [data-testid=toggle-state]");
    for manage in ["manage-section", "device-rename-input", "device-area-select", "device-remove"] {
        assert!(b.try_find(&format!("[data-testid={manage}]")).is_none(), "a member sees {manage}");
    }
    assert_quiet_console(&b, &[]);
}

#[test]
fn a_device_named_like_html_shows_the_text_and_runs_nothing() {
    const ALERT: &str = "<img src=x onerror=alert(1)>";
    // Would leave a trace in the page without a dialog.
    const MARK: &str = "<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>";
    let (hub, token) = quiet_home();
    let (b, _) = signed_in(&hub, Browser::options(), OWNER, PASSWORD);
    let other = "demo:living_lamp";
    rename(&hub, &token, LIGHT, ALERT);
    rename(&hub, &token, other, MARK);

    let check = |b: &Browser, scope: &str, title: &str, expected: &str| {
        b.wait_text_is(title, expected);
        // A dialog would make this command fail ("unexpected alert open").
        assert_eq!(b.alert_text(), None);
        let found = b.exec(
            "const s = document.querySelector(arguments[0]);
             return [s.querySelectorAll('img, script').length, window.__pwned === undefined]",
            &[json!(scope)],
        );
        assert_eq!(found, json!([0, true]), "markup in {scope}");
    };
    // Live, on the open home screen.
    check(&b, &card(LIGHT), &format!("{} [data-testid=device-name]", card(LIGHT)), ALERT);
    check(&b, &card(other), &format!("{} [data-testid=device-name]", card(other)), MARK);
    b.screenshot("home");

    // The device's page, also after a reload (from the first snapshot rather than an event).
    b.find(&format!("{} [data-testid=device-link]", card(LIGHT))).click();
    check(&b, "main", "[data-testid=device-title]", ALERT);
    assert!(b.title().starts_with(ALERT), "{:?}", b.title());
    b.refresh();
    check(&b, "main", "[data-testid=device-title]", ALERT);
    b.screenshot("device");
    // Renamed again while its page is open.
    const CLOSING: &str = "</h1><img src=x onerror=window.__pwned=3>";
    rename(&hub, &token, LIGHT, CLOSING);
    check(&b, "main", "[data-testid=device-title]", CLOSING);
    rename(&hub, &token, LIGHT, ALERT);
    check(&b, "main", "[data-testid=device-title]", ALERT);
    b.find("[data-testid=back]").click();
    check(&b, &card(other), &format!("{} [data-testid=device-name]", card(other)), MARK);
    // No element ever asked for the image `x`.
    let fetched = b.exec(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname).filter(p => p === '/x')",
        &[],
    );
    assert_eq!(fetched, json!([]));
    assert_quiet_console(&b, &[]);
}

#[test]
fn a_lost_connection_shows_and_recovers_by_itself() {
    let (mut hub, token) = quiet_home();
    let (b, _) = signed_in(&hub, Browser::options(), OWNER, PASSWORD);
    let banner = "[data-testid=connection-banner]";
    assert!(!visible(&b, banner));
    wait_attr(&b, &card(LIGHT), "data-availability", "online");
    let url = b.exec("window.__marker = 1; return location.href", &[]);

    // `hub.restart()` in two halves, to look at the page while the hub is down.
    assert!(hub.stop(), "the hub did not stop cleanly:\n{}", hub.log());
    b.wait_until("the connection banner", || visible(&b, banner).then_some(()));
    b.wait_text("[data-testid=connection-text]", "reconnecting");
    b.screenshot("connection-lost");
    hub.spawn();
    // Reconnection backs off (up to 8 s after a few seconds down): allow for it.
    b.wait_for(Duration::from_secs(45), || (!visible(&b, banner)).then_some(()));
    wait_attr(&b, banner, "data-state", "live");
    // The devices the stopping hub reported offline are back.
    wait_attr(&b, &card(LIGHT), "data-availability", "online");

    // Still the same page, and live: a change after the restart shows on its card.
    assert_eq!(b.exec("return [window.__marker, location.href]", &[]), json!([1, url]), "the page was reloaded");
    let switch = format!("{} [data-testid=toggle-state]", card(LIGHT));
    let slider = format!("{} [data-testid=slider-brightness]", card(LIGHT));
    set(&hub, &token, LIGHT, json!({"state": true, "brightness": 42}));
    wait_attr(&b, &switch, "aria-checked", "true");
    wait_input_value(&b, &slider, "42");
    set(&hub, &token, LIGHT, json!({"state": false}));
    wait_attr(&b, &switch, "aria-checked", "false");
    assert_quiet_console(&b, &["WebSocket connection to"]);
}

#[test]
fn translations_are_complete() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new("node")
        .arg("ui/check-i18n.mjs")
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("running node ui/check-i18n.mjs (install nodejs): {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node ui/check-i18n.mjs failed:\n{text}");
}

/// Every visible control of the phone's home screen: its accessible name and its size.
const CONTROLS: &str = r#"
const nameOf = (el) => {
  const label = (el.getAttribute('aria-label') || '').trim();
  if (label) return label;
  const by = (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean)
    .map((id) => document.getElementById(id)).filter(Boolean).map((e) => e.textContent.trim()).join(' ').trim();
  if (by) return by;
  const labels = el.labels ? [...el.labels].map((l) => l.textContent.trim()).join(' ').trim() : '';
  if (labels) return labels;
  if (el.tagName === 'INPUT') return ['button', 'submit', 'reset'].includes(el.type) ? el.value.trim() : '';
  if (el.tagName === 'SELECT') return '';
  return el.textContent.trim();
};
const describe = (el) => {
  const card = el.closest('[data-testid=device-card]');
  return `${el.tagName.toLowerCase()}${el.dataset.testid ? '[' + el.dataset.testid + ']' : ''}` +
    (el.getAttribute('role') ? `(role=${el.getAttribute('role')})` : '') + (card ? ` in ${card.dataset.deviceId}` : '');
};
const seen = [];
const offenders = [];
for (const el of document.querySelectorAll('button, input, select, textarea, [role=switch]')) {
  if (el.type === 'hidden' || !el.checkVisibility({ visibilityProperty: true })) continue;
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  seen.push(describe(el));
  const problems = [];
  if (!nameOf(el)) problems.push('no accessible name');
  if (r.width < 44 || r.height < 44) problems.push(`${Math.round(r.width)}x${Math.round(r.height)} px`);
  if (problems.length) offenders.push(`${describe(el)}: ${problems.join(', ')}`);
}
return [seen.length, offenders];
"#;

#[test]
fn home_controls_have_names_and_touch_sized_targets_on_a_phone() {
    let (hub, _) = quiet_home();
    let (b, _) = signed_in(&hub, Browser::options().viewport(Viewport::PHONE), OWNER, PASSWORD);
    // Every card's controls are built from a full snapshot.
    b.wait_until("every light's switch", || {
        let n = b.exec(
            "return document.querySelectorAll('[data-testid=device-card] [role=switch][aria-checked]').length",
            &[],
        );
        (n.as_u64() >= Some(6)).then_some(())
    });
    let result = b.exec(CONTROLS, &[]);
    let seen = result[0].as_u64().unwrap();
    assert!(seen >= 20, "only {seen} controls found on the home screen");
    let offenders: Vec<String> = serde_json::from_value(result[1].clone()).unwrap();
    assert!(offenders.is_empty(), "controls without a name or smaller than 44x44 px:\n{}", offenders.join("\n"));
    b.screenshot("home");
    assert_quiet_console(&b, &[]);
}

#[test]
fn when_a_session_ends_elsewhere_signing_in_again_returns_to_the_same_screen() {
    let (hub, _) = quiet_home();
    let (b, session) = signed_in(&hub, Browser::options(), OWNER, PASSWORD);
    navigate(&b, "automations", "automations-screen");
    // The session ends elsewhere (signed out on another device); the next request finds it gone.
    assert_eq!(hub.post("/api/v1/auth/logout", Some(&session), json!({})).status, 204);
    b.find("[data-testid=nav-scenes]").click();
    b.find("[data-testid=login-form]");
    log_in_with_form(&b, OWNER, PASSWORD);
    b.find("[data-testid=scenes-screen]");
    assert!(b.url().ends_with("#/scenes"), "back where the session ended: {}", b.url());
}

#[test]
fn found_devices_are_accepted_or_ignored_in_the_discovery_inbox() {
    let (hub, token) = quiet_home();
    let (b, _) = signed_in(&hub, Browser::options(), OWNER, PASSWORD);
    navigate(&b, "discovery", "discovery-screen");
    let entry = |key: &str| format!("[data-testid=found-entry][data-key={key}]");
    for key in ["garden_thermometer", "desk_plug", "living_tv"] {
        b.find(&format!("[data-testid=found-list] {}", entry(key)));
    }
    b.wait_text(&format!("{} [data-testid=found-transport]", entry("garden_thermometer")), "Bluetooth");
    b.find(&format!("{} [data-testid=found-unsupported]", entry("living_tv")));
    assert!(b.try_find(&format!("{} [data-testid=found-accept]", entry("living_tv"))).is_none(), "no Add for the TV");
    b.screenshot("inbox");

    // Add the thermometer: it leaves the inbox and has a card at home.
    b.find(&format!("{} [data-testid=found-accept]", entry("garden_thermometer"))).click();
    b.wait_gone(&entry("garden_thermometer"));
    hub.wait_for(T, || (hub.get("/api/v1/devices/demo:garden_thermometer", Some(&token)).status == 200).then_some(()));

    // Ignore the plug, then show it again.
    b.find(&format!("{} [data-testid=found-ignore]", entry("desk_plug"))).click();
    b.find(&format!("[data-testid=ignored-list] {}", entry("desk_plug")));
    b.find("[data-testid=ignored] summary").click();
    b.find(&format!("[data-testid=ignored-list] {} [data-testid=found-forget]", entry("desk_plug"))).click();
    b.find(&format!("[data-testid=found-list] {}", entry("desk_plug")));

    // A decision made elsewhere shows without a reload.
    let ignored = hub.post("/api/v1/inbox/demo/living_tv/ignore", Some(&token), json!({}));
    assert_eq!(ignored.status, 200, "{}", ignored.text);
    b.find(&format!("[data-testid=ignored-list] {}", entry("living_tv")));

    navigate(&b, "home", "home-screen");
    wait_home(&b, DEMO_DEVICES + 1);
    b.find(&card("demo:garden_thermometer"));
    assert_quiet_console(&b, &[]);
}

#[test]
fn a_bind_key_entered_on_the_device_page_unlocks_an_encrypted_sensor() {
    // The encrypted BTHome examples (a Shelly sensor and its bind key), every 8 s.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("encrypted.jsonl");
    let frames = [
        "41e445f3c9962b332211006c7c4519",
        "413e932cc7175f34221100553876af",
        "41ba0db07aeef6ffffffff21fd4600",
        "41de40b50e676600000000d7cb95de",
    ];
    let lines: Vec<String> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            format!(r#"{{"at": {}, "address": "54:48:E6:8F:80:A5", "service_data": {{"fcd2": "{f}"}}}}"#, i * 8)
        })
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let hub = Hub::start_with_config(
        &format!("{QUIET_DEMO}[adapters.ble]\nenabled = true\nreplay = \"{}\"\n", file.display()),
        &[],
    );
    let token = hub.onboard();
    wait_for_devices(&hub, &token);
    let (b, _) = signed_in(&hub, Browser::options(), OWNER, PASSWORD);
    hub.wait_for(T, || {
        (hub.post("/api/v1/inbox/ble/54:48:E6:8F:80:A5/accept", Some(&token), json!({})).status == 200).then_some(())
    });
    b.exec("location.hash = '#/device/ble%3A54%3A48%3AE6%3A8F%3A80%3AA5'", &[]);
    b.find("[data-testid=bind-key-section]");
    wait_attr(&b, "[data-testid=bind-key-status]", "data-set", "false");

    // A wrong key is refused with what to do; the right one is saved and never shown.
    b.find("[data-testid=bind-key-input]").send_keys("1234");
    b.find("[data-testid=bind-key-save]").click();
    b.wait_text("[data-testid=bind-key-section] [data-testid=error]", "32 hex digits");
    let input = b.find("[data-testid=bind-key-input]");
    input.clear();
    input.send_keys("231d39c1d7cc1ab1aee224cd096db932");
    b.find("[data-testid=bind-key-save]").click();
    wait_attr(&b, "[data-testid=bind-key-status]", "data-set", "true");
    assert_eq!(input_value(&b, "[data-testid=bind-key-input]"), json!(""));
    assert!(!b.page_source().contains("231d39c1d7cc1ab1aee224cd096db932"), "the key is not in the page");
    b.screenshot("bind-key");

    // The next advertisement is read: the temperature shows on the page.
    b.set_timeout(Duration::from_secs(40));
    b.wait_text("[data-testid=device-detail]", "°C");
    assert_quiet_console(
        &b,
        &[
            "/api/v1/adapters/ble/secrets/54%3A48%3AE6%3A8F%3A80%3AA5 - Failed to load resource: the server responded with a status of 400",
        ],
    );
}

/// Issue 13: stored XSS through every name a user can edit (an area, a scene, an automation, a
/// device), shown on every screen that lists it. Each name is markup that would leave a mark if
/// it ran; each screen must show the text and run nothing.
#[test]
fn every_user_editable_name_shows_as_text_on_every_screen_and_runs_nothing() {
    const AREA: &str = "<img src=x onerror=window.__pwned='area'>Attic";
    const SCENE: &str = "<script>window.__pwned='scene'</script><b>Night</b>";
    const AUTOMATION: &str = "\"><svg onload=window.__pwned='automation'>Lights";
    const DEVICE: &str = "<iframe srcdoc=\"<script>parent.__pwned='device'</script>\"></iframe>Lamp";
    let (hub, token) = quiet_home();
    let area = hub.post("/api/v1/areas", Some(&token), json!({"name": AREA}));
    assert_eq!(area.status, 201, "{}", area.text);
    let area_id = area.body["id"].as_str().unwrap().to_owned();
    let patch =
        hub.request("PATCH", &format!("/api/v1/devices/{LIGHT}"), Some(&token), Some(&json!({"area": area_id})));
    assert_eq!(patch.status, 200, "{}", patch.text);
    rename(&hub, &token, "demo:living_lamp", DEVICE);
    let scene = hub.post("/api/v1/scenes", Some(&token), json!({"name": SCENE, "devices": {LIGHT: {"state": true}}}));
    assert_eq!(scene.status, 201, "{}", scene.text);
    let automation = hub.post(
        "/api/v1/automations",
        Some(&token),
        json!({"id": "xss", "name": AUTOMATION, "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
               "actions": [{"set": {"devices": [LIGHT], "toggle": ["state"]}}]}),
    );
    assert_eq!(automation.status, 201, "{}", automation.text);

    let (b, _) = signed_in(&hub, Browser::options(), OWNER, PASSWORD);
    // What a screen must show as text, and that nothing ran or was fetched.
    let check = |screen: &str, names: &[&str]| {
        for name in names {
            b.wait_until(&format!("{name:?} as text on the {screen} screen"), || {
                let text = b.exec("return document.querySelector('main').textContent", &[]);
                text.as_str().is_some_and(|t| t.contains(name)).then_some(())
            });
        }
        assert_eq!(b.alert_text(), None, "a dialog opened on the {screen} screen");
        let found = b.exec(
            "return [window.__pwned === undefined ? null : window.__pwned,
                     document.querySelectorAll('main iframe, main svg[onload], main img[src=x], main script').length,
                     performance.getEntriesByType('resource').map(e => new URL(e.name).pathname).filter(p => p === '/x')]",
            &[],
        );
        assert_eq!(found, json!([null, 0, []]), "markup from a name ran or rendered on the {screen} screen");
    };
    check("home", &[AREA, DEVICE]);
    navigate(&b, "scenes", "scenes-screen");
    check("scenes", &[SCENE]);
    navigate(&b, "automations", "automations-screen");
    check("automations", &[AUTOMATION]);
    navigate(&b, "settings", "settings-screen");
    check("settings", &[]);
    navigate(&b, "home", "home-screen");
    b.refresh();
    check("home after a reload", &[AREA, DEVICE]);
    assert_quiet_console(&b, &[]);
}
