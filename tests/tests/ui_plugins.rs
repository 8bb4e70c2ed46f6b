//! The plugins screen of the web UI in headless Chromium against the real binary: an
//! administrator finds it from Settings, sees the installed plugins, enables one (it runs and its
//! device appears), enters settings the plugin's schema refuses (the hub's message shows beside
//! the form) and then ones it takes, enables a plugin that panics (it ends quarantined, its
//! traceback shown as text) and disables the first again. A member sees no plugins at all, and
//! a hub without plugins says where to put them, in Chinese too.
//!
//! The plugins are `tests/plugins/misbehave.py` (which ignores its settings); the hub runs with
//! `HEARTH_PLUGIN_TIMING=fast`, so a panicking plugin is quarantined within seconds. Every wait
//! is for a condition, never a fixed time; screenshots land under `target/ui-screenshots/<test>/`.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_tests::Hub;
use hearth_tests::browser::{Browser, Options};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);
const OWNER: &str = "owner";
const PASSWORD: &str = "correct horse battery";
/// A demo home whose own simulation is quiet (one tick an hour).
const QUIET_DEMO: &str = "[adapters.demo]\nenabled = true\ninterval_secs = 3600\n";
/// A schema with a number and a choice, to build the settings form from.
const SCHEMA: &str = "[config.interval_secs]\ntype = \"integer\"\ndefault = 30\nmin = 1\nmax = 3600\n\
    description = \"Seconds between two readings.\"\n\
    [config.mode]\ntype = \"enum\"\nvalues = [\"a\", \"b\"]\ndefault = \"a\"\n";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// Installs plugin `id` into the hub's plugins directory: `misbehave.py MODE` with [`SCHEMA`].
fn install(hub: &Hub, id: &str, name: &str, mode: &str) {
    let dir = hub.data_dir.join("plugins").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let script = root().join("tests/plugins/misbehave.py");
    std::fs::write(
        dir.join("plugin.toml"),
        format!(
            "id = \"{id}\"\nname = \"{name}\"\nversion = \"1.2.3\"\nprotocol = 1\n\
             description = \"A test plugin that runs in mode {mode}.\"\n\
             command = [\"python3\", {:?}, \"{mode}\"]\n{SCHEMA}",
            script.display().to_string()
        ),
    )
    .unwrap();
}

fn start() -> (Hub, String) {
    let hub = Hub::start_with_config_env(QUIET_DEMO, &[("HEARTH_PLUGIN_TIMING", "fast")]);
    let token = hub.onboard();
    (hub, token)
}

fn login_token(hub: &Hub, name: &str, password: &str) -> String {
    let a = hub.post("/api/v1/auth/login", None, json!({"name": name, "password": password}));
    assert_eq!(a.status, 200, "login of {name}: {}", a.text);
    a.body["token"].as_str().unwrap().to_owned()
}

/// A browser with a session of its own (a cookie on the hub's origin), on the home screen.
fn signed_in(hub: &Hub, options: Options, session: &str) -> Browser {
    let b = options.start();
    b.sign_in_with_session(hub, session);
    b.find("[data-testid=home-screen]");
    b
}

/// Clicks a link of the navigation and waits for the screen's marker.
fn navigate(b: &Browser, nav: &str, screen: &str) {
    b.find(&format!("[data-testid=nav-{nav}]")).click();
    b.find(&format!("[data-testid={screen}]"));
}

/// Settings, then its link to the plugins screen.
fn open_plugins(b: &Browser) {
    navigate(b, "settings", "settings-screen");
    b.find("[data-testid=plugins-section] [data-testid=plugins-link]").click();
    b.find("[data-testid=plugins-screen]");
    assert!(b.url().ends_with("#/plugins"), "{}", b.url());
}

fn row(id: &str) -> String {
    format!("[data-testid=plugin-row][data-plugin-id={id}]")
}

/// Waits until plugin `id`'s row says `state`, in its data and in its badge's words.
fn wait_state(b: &Browser, id: &str, state: &str, words: &str) {
    b.wait_for(T, || (b.attr(&row(id), "data-state") == json!(state)).then_some(()));
    b.wait_text_is(&format!("{} [data-testid=plugin-state]", row(id)), words);
}

fn plugin(hub: &Hub, token: &str, id: &str) -> Value {
    hub.get(&format!("/api/v1/plugins/{id}"), Some(token)).body
}

/// Fails on console errors besides the signed-out `GET /api/v1/auth/me` (401) of the first visit
/// and the `also` the test expects, and on a text missing from the dictionaries.
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

#[test]
fn an_administrator_enables_configures_and_disables_plugins_and_sees_a_quarantined_ones_stderr() {
    let (hub, token) = start();
    install(&hub, "steady", "Steady test plugin", "normal");
    install(&hub, "panicky", "Panicky test plugin", "panic");
    let b = signed_in(&hub, Browser::options(), &login_token(&hub, OWNER, PASSWORD));
    open_plugins(&b);

    // Both listed, disabled, with their names, versions and the plugins directory.
    for (id, name) in [("steady", "Steady test plugin"), ("panicky", "Panicky test plugin")] {
        wait_state(&b, id, "disabled", "Disabled");
        b.wait_text_is(&format!("{} [data-testid=plugin-name]", row(id)), name);
        b.wait_text(&format!("{} [data-testid=plugin-version]", row(id)), "1.2.3");
        assert_eq!(b.attr(&format!("{} [data-testid=plugin-enabled]", row(id)), "aria-checked"), json!("false"));
    }
    let dir = hub.data_dir.join("plugins").display().to_string();
    b.wait_text("[data-testid=plugins-dir]", &dir);
    b.screenshot("plugins-disabled");

    // Enabled by its switch: it runs, and its device arrives.
    b.find(&format!("{} [data-testid=plugin-enabled]", row("steady"))).click();
    wait_state(&b, "steady", "running", "Running");
    assert_eq!(b.attr(&format!("{} [data-testid=plugin-enabled]", row("steady")), "aria-checked"), json!("true"));
    hub.wait_for(T, || (hub.get("/api/v1/devices/steady:thing-1", Some(&token)).status == 200).then_some(()));

    // The settings form, built from the schema: a whole number from 1 to 3600, default 30 shown
    // as its placeholder, and a choice.
    b.find(&format!("{} [data-testid=plugin-config] summary", row("steady"))).click();
    let interval = format!("{} [data-testid=plugin-setting][data-key=interval_secs]", row("steady"));
    let mode = format!("{} [data-testid=plugin-setting][data-key=mode]", row("steady"));
    let field = b.find(&interval);
    assert_eq!(field.attr("type").as_deref(), Some("number"));
    assert_eq!(field.attr("min").as_deref(), Some("1"));
    assert_eq!(field.attr("max").as_deref(), Some("3600"));
    assert_eq!(field.attr("placeholder").as_deref(), Some("30"));
    assert_eq!(b.find(&mode).value(), "", "no choice entered: the default applies");

    // A value the schema refuses: the hub's message, naming the setting, beside the form.
    field.clear();
    field.send_keys("0");
    b.find(&format!("{} [data-testid=plugin-config-save]", row("steady"))).click();
    let error = b.wait_text(&format!("{} [data-testid=plugin-config-error]", row("steady")), "interval_secs");
    let message = error.text();
    assert!(message.contains("from 1 to 3600, not 0"), "{message}");
    assert_eq!(plugin(&hub, &token, "steady")["config"], json!({}), "nothing stored");
    b.screenshot("plugins-invalid-config");

    // Values it takes: saved as the whole object, the error gone.
    let field = b.find(&interval);
    field.clear();
    field.send_keys("15");
    b.find(&mode).set_value("b");
    b.find(&format!("{} [data-testid=plugin-config-save]", row("steady"))).click();
    hub.wait_for(T, || {
        (plugin(&hub, &token, "steady")["config"] == json!({"interval_secs": 15, "mode": "b"})).then_some(())
    });
    b.wait_gone(&format!("{} [data-testid=plugin-config-error]", row("steady")));
    assert_eq!(b.find(&interval).value(), "15");
    assert_eq!(b.find(&mode).value(), "b");
    wait_state(&b, "steady", "running", "Running");

    // The panicking one: restarted until quarantined, its traceback shown as text, and a way to
    // start it afresh.
    b.find(&format!("{} [data-testid=plugin-enabled]", row("panicky"))).click();
    wait_state(&b, "panicky", "quarantined", "Quarantined");
    let stderr = format!("{} [data-testid=plugin-stderr]", row("panicky"));
    b.wait_text(&stderr, "Traceback");
    b.wait_text(&stderr, "RuntimeError: misbehave: panicking on purpose");
    assert_eq!(b.find(&stderr).prop("tagName"), json!("PRE"));
    b.wait_text(&format!("{} [data-testid=plugin-reason]", row("panicky")), "crashed 5 times");
    b.wait_text(&format!("{} [data-testid=plugin-counts]", row("panicky")), "Crashes: 5");
    assert!(b.find(&format!("{} [data-testid=plugin-enable-again]", row("panicky"))).is_displayed());
    b.screenshot("plugins-quarantined");

    // Disabled by its switch: it says so.
    b.find(&format!("{} [data-testid=plugin-enabled]", row("steady"))).click();
    wait_state(&b, "steady", "disabled", "Disabled");
    assert_eq!(plugin(&hub, &token, "steady")["enabled"], false);
    assert_eq!(b.attr(&format!("{} [data-testid=plugin-enabled]", row("steady")), "aria-checked"), json!("false"));
    // The refused settings answered 400, which Chrome logs as a failed request.
    assert_quiet_console(&b, &["/api/v1/plugins/steady/config"]);
}

#[test]
fn a_member_sees_no_plugins() {
    let (hub, token) = start();
    install(&hub, "steady", "Steady test plugin", "normal");
    let member = hub.member(&token, "kid");
    let b = signed_in(&hub, Browser::options(), &member);
    navigate(&b, "settings", "settings-screen");
    b.wait_text_is("[data-testid=account-role]", "Member");
    b.find("[data-testid=adapters-section]");
    for admin_only in ["plugins-section", "plugins-link"] {
        assert!(b.try_find(&format!("[data-testid={admin_only}]")).is_none(), "a member sees {admin_only}");
    }
    b.exec("location.hash = '#/plugins'", &[]);
    b.find("[data-testid=forbidden]");
    assert!(b.try_find("[data-testid=plugins-screen]").is_none());
    assert!(b.try_find("[data-testid=plugin-row]").is_none());
    assert_quiet_console(&b, &[]);
}

#[test]
fn without_plugins_the_screen_says_where_to_put_them_in_chinese_too() {
    let (hub, _) = start();
    let dir = hub.data_dir.join("plugins").display().to_string();
    let b = signed_in(&hub, Browser::options().lang("zh-CN,zh"), &login_token(&hub, OWNER, PASSWORD));
    open_plugins(&b);
    let empty = b.wait_text("[data-testid=plugins-empty]", &dir);
    let text = empty.text();
    assert!(text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "not in Chinese: {text}");
    assert!(b.try_find("[data-testid=plugin-row]").is_none());
    b.screenshot("plugins-empty-zh");
    assert_quiet_console(&b, &[]);
}
