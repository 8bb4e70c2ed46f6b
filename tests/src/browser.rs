//! A small W3C WebDriver client for UI tests: drives Debian's headless Chromium through its
//! `chromedriver`, which each [`Browser`] starts on a free port and stops when dropped.
//!
//! ```no_run
//! use hearth_tests::{Hub, browser::Browser};
//! let hub = Hub::start(&["--demo"]);
//! let b = Browser::start(360, 740); // a phone; `Browser::options()` for a language or a timeout
//! b.open(&hub, "/");
//! b.find("form input[name=name]").send_keys("owner");
//! b.wait_text("h2", "Welcome");
//! b.screenshot("onboarding"); // target/ui-screenshots/<test>/onboarding-360x740.png
//! ```
//!
//! Every method panics when something goes wrong, with a message naming what was being done and
//! what the page showed (its URL, title, the start of its text and any console errors): a panic
//! is a failed test. Finding waits (up to the browser's timeout, 15 s unless set) because the UI
//! renders asynchronously; `try_find` and `find_all` do not wait.
//!
//! The viewport is emulated exactly (CSS pixels, device scale factor 1), because a headless
//! window cannot be narrower than 500 px and loses height to invisible browser chrome. A viewport
//! narrower than 600 px is a phone: mobile layout rules and touch (`pointer: coarse`).
//!
//! Screenshots go to `target/ui-screenshots/<test>/<name>-<width>x<height>.png`, where `<test>`
//! is the running test's name (libtest and nextest name the test's thread after it), or to
//! `$HEARTH_UI_SCREENSHOTS/<test>/…` when that is set. A browser dropped while its test panics
//! saves `failure-<width>x<height>.png` there first. CI may keep the directory as an artifact.
//!
//! Requirements: `chromedriver` (Debian package `chromium-driver`) and `/usr/bin/chromium` of the
//! same major version; `tests/run` installs both. `$CHROMEDRIVER` and `$CHROMIUM` override paths.

use std::fmt;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The key under which WebDriver serialises an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How often waiting methods look again.
const POLL: Duration = Duration::from_millis(50);

/// Key codes for [`Element::send_keys`] and [`Browser::press`] (WebDriver's private-use code points).
pub mod keys {
    /// Backspace.
    pub const BACKSPACE: &str = "\u{E003}";
    /// Tab.
    pub const TAB: &str = "\u{E004}";
    /// Enter (return).
    pub const ENTER: &str = "\u{E007}";
    /// Shift (held until the end of the sequence in `send_keys`).
    pub const SHIFT: &str = "\u{E008}";
    /// Escape.
    pub const ESCAPE: &str = "\u{E00C}";
    /// Space.
    pub const SPACE: &str = "\u{E00D}";
    /// Arrow left.
    pub const LEFT: &str = "\u{E012}";
    /// Arrow up.
    pub const UP: &str = "\u{E013}";
    /// Arrow right.
    pub const RIGHT: &str = "\u{E014}";
    /// Arrow down.
    pub const DOWN: &str = "\u{E015}";
}

/// The size of the page's viewport in CSS pixels, and whether it emulates a phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewport {
    /// Width in CSS pixels.
    pub width: u32,
    /// Height in CSS pixels.
    pub height: u32,
    /// Mobile layout rules (the `<meta name=viewport>`, overlay scrollbars) and touch input.
    pub mobile: bool,
}

impl Viewport {
    /// The phone size of the UI's screenshots.
    pub const PHONE: Viewport = Viewport { width: 360, height: 740, mobile: true };
    /// The desktop size of the UI's screenshots.
    pub const DESKTOP: Viewport = Viewport { width: 1280, height: 800, mobile: false };

    /// A viewport of that size; narrower than 600 px it is a phone.
    pub fn new(width: u32, height: u32) -> Viewport {
        Viewport { width, height, mobile: width < 600 }
    }
}

/// How to start a [`Browser`]; from [`Browser::options`].
#[derive(Debug, Clone)]
pub struct Options {
    viewport: Viewport,
    lang: String,
    timeout: Duration,
}

impl Options {
    /// The viewport (default [`Viewport::PHONE`]).
    pub fn viewport(mut self, viewport: Viewport) -> Options {
        self.viewport = viewport;
        self
    }

    /// The viewport's size, as [`Viewport::new`].
    pub fn size(self, width: u32, height: u32) -> Options {
        self.viewport(Viewport::new(width, height))
    }

    /// The browser's languages, most preferred first, as in `Accept-Language` without weights
    /// (default `"en-US,en"`): `"zh-CN,zh"` for a Simplified Chinese browser. It sets the
    /// `Accept-Language` header, `navigator.languages` and Chromium's `--lang`.
    pub fn lang(mut self, languages: &str) -> Options {
        self.lang = languages.to_owned();
        self
    }

    /// How long finding and waiting methods wait (default 15 s).
    pub fn timeout(mut self, timeout: Duration) -> Options {
        self.timeout = timeout;
        self
    }

    /// Starts chromedriver and a browser session.
    #[track_caller]
    pub fn start(self) -> Browser {
        Browser::launch(self)
    }
}

/// A browser cookie as WebDriver reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cookie {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
    /// Path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The `Secure` attribute.
    #[serde(default)]
    pub secure: bool,
    /// The `HttpOnly` attribute.
    #[serde(default)]
    pub http_only: bool,
    /// Expiry in seconds since the epoch; `None` for a session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<u64>,
    /// `Strict`, `Lax` or `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<String>,
}

/// A line of the browser's console (or a browser-level message such as a failed request).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogEntry {
    /// `SEVERE` (errors), `WARNING`, `INFO`, `DEBUG`.
    pub level: String,
    /// The message, prefixed by Chromium with its source location.
    pub message: String,
    /// `console-api`, `javascript` (uncaught errors), `network`, `security`, …
    #[serde(default)]
    pub source: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub timestamp: u64,
}

/// An element's position and size in CSS pixels, relative to the document.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Rect {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

/// An error answered by chromedriver, or a failure to reach it.
#[derive(Debug, Clone)]
struct WdError {
    /// The WebDriver error code (`no such element`, `stale element reference`, …), or `transport`.
    error: String,
    message: String,
}

impl WdError {
    fn is(&self, code: &str) -> bool {
        self.error == code
    }
}

impl fmt::Display for WdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // chromedriver's messages repeat the code; keep its first lines, not its stack trace.
        let message: String = self.message.lines().take(3).collect::<Vec<_>>().join(" / ");
        write!(f, "{}: {}", self.error, message)
    }
}

/// The chromedriver process and the temporary directory of its browser's profile.
/// Dropping it kills chromedriver's process group, which holds the browser's processes too.
struct Driver {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        let exe = chromedriver_path();
        let mut last = String::new();
        // The free port can be taken between choosing and binding it: try a few.
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir for the browser");
            let port = crate::free_port();
            let out = File::create(dir.path().join("chromedriver.out")).expect("chromedriver output file");
            let err = out.try_clone().expect("chromedriver output file");
            let child = Command::new(&exe)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", dir.path().join("chromedriver.log").display()))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                // Its own process group, so that Drop can kill the browser with it.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}; {INSTALL}", exe.display()));
            let mut driver = Driver { child, base: format!("http://127.0.0.1:{port}"), dir };
            match driver.wait_ready() {
                Ok(()) => return driver,
                Err(e) => last = e,
            }
        }
        panic!("chromedriver ({}) did not become ready: {last}", exe.display());
    }

    /// Polls `/status` until it says ready (20 s).
    fn wait_ready(&mut self) -> Result<(), String> {
        let agent = agent(Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("it exited with {status}:\n{}", self.output()));
            }
            if let Ok(mut r) = agent.get(format!("{}/status", self.base)).call()
                && let Ok(v) = r.body_mut().read_json::<Value>()
                && v["value"]["ready"] == true
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no ready /status within 20 s:\n{}", self.output()));
            }
            pause(POLL);
        }
    }

    /// The end of what chromedriver printed.
    fn output(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("chromedriver.out")).unwrap_or_default();
        tail(&text, 2000)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-s", "KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium with one WebDriver session. Dropping it ends the session, then kills
/// chromedriver and the browser.
pub struct Browser {
    driver: Driver,
    session: String,
    agent: ureq::Agent,
    timeout: Mutex<Duration>,
    viewport: Mutex<Viewport>,
    /// Console entries read from chromedriver so far (reading them empties its buffer).
    console: Mutex<Vec<LogEntry>>,
}

impl fmt::Debug for Browser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Browser")
            .field("driver", &self.driver.base)
            .field("session", &self.session)
            .field("viewport", &self.viewport())
            .finish()
    }
}

impl Browser {
    /// Starts a browser whose viewport is `width` x `height` CSS pixels (a phone when narrower
    /// than 600), in English, waiting up to 15 s in finding methods.
    #[track_caller]
    pub fn start(width: u32, height: u32) -> Browser {
        Browser::options().size(width, height).start()
    }

    /// Options to start a browser with: viewport, languages, timeout.
    pub fn options() -> Options {
        Options { viewport: Viewport::PHONE, lang: "en-US,en".into(), timeout: Duration::from_secs(15) }
    }

    #[track_caller]
    fn launch(options: Options) -> Browser {
        let chromium = chromium_path();
        let driver = Driver::start();
        let profile = driver.dir.path().join("profile");
        let Viewport { width, height, .. } = options.viewport;
        let first_lang = options.lang.split(',').next().unwrap_or("en-US").trim().to_owned();
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-extensions".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--password-store=basic".into(),
            "--mute-audio".into(),
            format!("--user-data-dir={}", profile.display()),
            // The window only needs to hold the emulated viewport (see `set_viewport`).
            format!("--window-size={},{}", width.max(500), height + 200),
            format!("--lang={first_lang}"),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"implicit": 0, "pageLoad": 60_000, "script": 30_000},
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": args,
                "prefs": {"intl.accept_languages": options.lang},
            },
        }}});
        // Starting Chromium on a busy machine can take a while.
        let agent = agent(Duration::from_secs(120));
        let answer = call(&agent, "POST", &format!("{}/session", driver.base), Some(&capabilities));
        let session = match answer {
            Ok(v) => v["sessionId"].as_str().map(str::to_owned),
            Err(e) => panic!(
                "creating a browser session with {} failed: {e}\n(chromedriver and chromium must be of the same \
                 major version; {INSTALL})\nchromedriver said:\n{}",
                capabilities["capabilities"]["alwaysMatch"]["goog:chromeOptions"]["binary"],
                driver.output()
            ),
        }
        .expect("a session id in chromedriver's answer");
        let browser = Browser {
            driver,
            session,
            agent,
            timeout: Mutex::new(options.timeout),
            viewport: Mutex::new(options.viewport),
            console: Mutex::new(Vec::new()),
        };
        browser.set_viewport(options.viewport);
        browser
    }

    // ----- navigation -----

    /// Navigates to `url` and waits until it has loaded.
    #[track_caller]
    pub fn goto(&self, url: &str) {
        self.must(|| format!("opening {url}"), self.cmd("POST", "/url", json!({ "url": url })));
    }

    /// Navigates to `path` (e.g. `"/"`) on the hub.
    #[track_caller]
    pub fn open(&self, hub: &crate::Hub, path: &str) {
        self.goto(&format!("http://{}{path}", hub.http));
    }

    /// The current URL.
    #[track_caller]
    pub fn url(&self) -> String {
        let v = self.must(|| "reading the URL".into(), self.cmd("GET", "/url", Value::Null));
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The document's title.
    #[track_caller]
    pub fn title(&self) -> String {
        let v = self.must(|| "reading the title".into(), self.cmd("GET", "/title", Value::Null));
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Reloads the page and waits until it has loaded.
    #[track_caller]
    pub fn refresh(&self) {
        self.must(|| "reloading the page".into(), self.cmd("POST", "/refresh", json!({})));
    }

    /// Goes back in history.
    #[track_caller]
    pub fn back(&self) {
        self.must(|| "going back".into(), self.cmd("POST", "/back", json!({})));
    }

    /// The page's current DOM as HTML.
    #[track_caller]
    pub fn page_source(&self) -> String {
        let v = self.must(|| "reading the page source".into(), self.cmd("GET", "/source", Value::Null));
        v.as_str().unwrap_or_default().to_owned()
    }

    // ----- finding and waiting -----

    /// The first element matching `css`, waiting for it to exist up to the browser's timeout.
    #[track_caller]
    pub fn find(&self, css: &str) -> Element<'_> {
        self.find_from("/element", css, css)
    }

    /// The first element matching `css` now, if any.
    #[track_caller]
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        self.try_find_from("/element", css, css)
    }

    /// Every element matching `css` now (no waiting; possibly none).
    #[track_caller]
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        self.find_all_from("/elements", css, css)
    }

    /// The focused element (`document.activeElement`).
    #[track_caller]
    pub fn active(&self) -> Element<'_> {
        let v = self.must(|| "finding the focused element".into(), self.cmd("GET", "/element/active", Value::Null));
        self.element(&v, "the focused element").expect("an element reference")
    }

    /// How long finding and waiting methods wait.
    pub fn timeout(&self) -> Duration {
        *self.timeout.lock().unwrap()
    }

    /// Changes how long finding and waiting methods wait (for a slow step, or a quick failure).
    #[track_caller]
    pub fn set_timeout(&self, timeout: Duration) {
        *self.timeout.lock().unwrap() = timeout;
    }

    /// Polls `f` until it returns `Some`, for at most `timeout`; panics with the page's state.
    #[track_caller]
    pub fn wait_for<T>(&self, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
        self.wait_described(timeout, || "a condition".into(), f)
    }

    /// Polls `f` for the browser's timeout; `what` names the condition in the panic message.
    #[track_caller]
    pub fn wait_until<T>(&self, what: &str, f: impl FnMut() -> Option<T>) -> T {
        self.wait_described(self.timeout(), || what.to_owned(), f)
    }

    #[track_caller]
    fn wait_described<T>(&self, timeout: Duration, what: impl Fn() -> String, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                self.fail(&format!("waiting {timeout:?} for {}", what()), "it did not happen");
            }
            pause(POLL);
        }
    }

    /// Waits until a visible element matching `css` has text containing `expected`; returns it.
    #[track_caller]
    pub fn wait_text(&self, css: &str, expected: &str) -> Element<'_> {
        self.wait_text_matching(css, expected, false)
    }

    /// Waits until a visible element matching `css` has exactly the text `expected` (trimmed).
    #[track_caller]
    pub fn wait_text_is(&self, css: &str, expected: &str) -> Element<'_> {
        self.wait_text_matching(css, expected, true)
    }

    #[track_caller]
    fn wait_text_matching(&self, css: &str, expected: &str, exact: bool) -> Element<'_> {
        const SCRIPT: &str = "const [css, want, exact] = arguments;
            for (const el of document.querySelectorAll(css)) {
              if (!el.checkVisibility()) continue;
              const text = el.innerText.trim();
              if (exact ? text === want : text.includes(want)) return el;
            }
            return null;";
        let what = format!("`{css}` with text {} {expected:?}", if exact { "equal to" } else { "containing" });
        let deadline = Instant::now() + self.timeout();
        loop {
            let found = self.try_exec(SCRIPT, &[json!(css), json!(expected), json!(exact)]);
            match found {
                Ok(v) if !v.is_null() => return self.element(&v, css).expect("an element reference"),
                Ok(_) => {}
                Err(e) if e.is("invalid selector") || e.is("javascript error") => {
                    self.fail(&format!("waiting for {what}"), e)
                }
                Err(_) => {} // e.g. a navigation in progress: look again
            }
            if Instant::now() > deadline {
                let seen = self
                    .try_exec(
                        "return [...document.querySelectorAll(arguments[0])].slice(0, 8)
                            .map(e => (e.checkVisibility() ? '' : '(hidden) ') + JSON.stringify(e.innerText.trim().slice(0, 120)))",
                        &[json!(css)],
                    )
                    .map(|v| {
                        let texts: Vec<&str> = v.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                        if texts.is_empty() { "no element matches".to_owned() } else { texts.join(", ") }
                    })
                    .unwrap_or_else(|e| format!("(could not read: {e})"));
                self.fail(&format!("waiting {:?} for {what}", self.timeout()), format!("matching elements: {seen}"));
            }
            pause(POLL);
        }
    }

    /// Waits until no visible element matches `css`.
    #[track_caller]
    pub fn wait_gone(&self, css: &str) {
        let script = "return [...document.querySelectorAll(arguments[0])].some(e => e.checkVisibility())";
        self.wait_until(&format!("no visible `{css}`"), || {
            self.try_exec(script, &[json!(css)]).ok().filter(|v| v == &json!(false)).map(|_| ())
        });
    }

    // ----- scripts -----

    /// Runs `script` as the body of a function in the page and returns its result. `args` are
    /// its `arguments`; pass elements with [`Element::arg`]. Elements in the result are
    /// references: turn them back with [`Browser::element`].
    #[track_caller]
    pub fn exec(&self, script: &str, args: &[Value]) -> Value {
        self.must(|| format!("running the script `{}`", snippet(script, 120)), self.try_exec(script, args))
    }

    /// Runs `script` whose last argument is a callback to call with the result (up to 30 s).
    #[track_caller]
    pub fn exec_async(&self, script: &str, args: &[Value]) -> Value {
        self.must(
            || format!("running the async script `{}`", snippet(script, 120)),
            self.cmd("POST", "/execute/async", json!({ "script": script, "args": args })),
        )
    }

    fn try_exec(&self, script: &str, args: &[Value]) -> Result<Value, WdError> {
        self.cmd("POST", "/execute/sync", json!({ "script": script, "args": args }))
    }

    /// An element from a reference returned by [`Browser::exec`]; `what` describes it in messages.
    pub fn element(&self, reference: &Value, what: &str) -> Option<Element<'_>> {
        let id = reference.get(ELEMENT_KEY)?.as_str()?;
        Some(Element { browser: self, id: id.to_owned(), what: what.to_owned() })
    }

    /// Runs a Chrome DevTools Protocol command (an escape hatch: network conditions, emulation).
    #[track_caller]
    pub fn cdp(&self, command: &str, params: Value) -> Value {
        self.must(
            || format!("running the DevTools command {command}"),
            self.cmd("POST", "/goog/cdp/execute", json!({ "cmd": command, "params": params })),
        )
    }

    // ----- keyboard -----

    /// Presses and releases each key of `keys` (text or [`keys`] constants) on whatever has the
    /// focus, as a user would: `b.press(keys::TAB)`.
    #[track_caller]
    pub fn press(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [json!({"type": "keyDown", "value": c.to_string()}), json!({"type": "keyUp", "value": c.to_string()})]
            })
            .collect();
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]});
        self.must(|| format!("pressing {keys:?}"), self.cmd("POST", "/actions", body));
    }

    // ----- window and screenshots -----

    /// The current viewport.
    pub fn viewport(&self) -> Viewport {
        *self.viewport.lock().unwrap()
    }

    /// Resizes the viewport to `width` x `height` CSS pixels, as [`Viewport::new`].
    #[track_caller]
    pub fn set_window(&self, width: u32, height: u32) {
        self.set_viewport(Viewport::new(width, height));
    }

    /// Sets the viewport exactly, by device emulation in a window large enough to hold it.
    #[track_caller]
    pub fn set_viewport(&self, v: Viewport) {
        let rect = json!({"width": v.width.max(500), "height": v.height + 200});
        self.must(|| format!("resizing the window for {v:?}"), self.cmd("POST", "/window/rect", rect));
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": v.width, "height": v.height, "deviceScaleFactor": 1, "mobile": v.mobile}),
        );
        self.cdp("Emulation.setTouchEmulationEnabled", json!({"enabled": v.mobile, "maxTouchPoints": 5}));
        *self.viewport.lock().unwrap() = v;
    }

    /// Saves the viewport as `<screenshots>/<test>/<name>-<width>x<height>.png` (see the module
    /// documentation) and returns the path.
    #[track_caller]
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.viewport();
        let path = screenshot_dir().join(format!("{name}-{}x{}.png", v.width, v.height));
        self.screenshot_to(&path);
        path
    }

    /// Saves the viewport as a PNG file at `path`, creating its directories.
    #[track_caller]
    pub fn screenshot_to(&self, path: &Path) {
        let doing = || format!("taking a screenshot for {}", path.display());
        let v = self.must(doing, self.cmd("GET", "/screenshot", Value::Null));
        let png = match base64_decode(v.as_str().unwrap_or_default()) {
            Ok(png) => png,
            Err(e) => self.fail(&doing(), e),
        };
        write_file(path, &png);
    }

    // ----- cookies, console, dialogs -----

    /// The cookies visible to the current page (including HttpOnly ones).
    #[track_caller]
    pub fn cookies(&self) -> Vec<Cookie> {
        let v = self.must(|| "reading cookies".into(), self.cmd("GET", "/cookie", Value::Null));
        serde_json::from_value(v).expect("cookies as WebDriver describes them")
    }

    /// The cookie called `name` of the current page, if any.
    #[track_caller]
    pub fn cookie(&self, name: &str) -> Option<Cookie> {
        self.cookies().into_iter().find(|c| c.name == name)
    }

    /// Sets a cookie for the current page's domain (e.g. a tampered session).
    #[track_caller]
    pub fn add_cookie(&self, cookie: &Cookie) {
        let doing = || format!("adding the cookie {}", cookie.name);
        self.must(doing, self.cmd("POST", "/cookie", json!({ "cookie": cookie })));
    }

    /// Opens the hub signed in with `session` (a session token): a cookie can only be set for
    /// the page's origin, so it opens the hub first (which asks for a login), sets the session
    /// cookie (HttpOnly, SameSite=Strict, as the hub sets it) and reloads.
    #[track_caller]
    pub fn sign_in_with_session(&self, hub: &crate::Hub, session: &str) {
        self.open(hub, "/");
        self.find("[data-testid=login-form]");
        self.add_cookie(&Cookie {
            name: "hearth_session".into(),
            value: session.to_owned(),
            path: Some("/".into()),
            domain: None,
            secure: false,
            http_only: true,
            expiry: None,
            same_site: Some("Strict".into()),
        });
        self.refresh();
    }

    /// An attribute of the first element matching `css`, looked up afresh each time (the UI
    /// re-renders); `null` when there is no such element or attribute.
    #[track_caller]
    pub fn attr(&self, css: &str, name: &str) -> Value {
        self.exec(
            "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null",
            &[json!(css), json!(name)],
        )
    }

    /// Deletes every cookie of the current page's domain.
    #[track_caller]
    pub fn delete_cookies(&self) {
        self.must(|| "deleting cookies".into(), self.cmd("DELETE", "/cookie", Value::Null));
    }

    /// Every console entry since the browser started (messages, uncaught errors, failed loads).
    #[track_caller]
    pub fn console(&self) -> Vec<LogEntry> {
        if let Err(e) = self.drain_console() {
            self.fail("reading the console", e);
        }
        self.console.lock().unwrap().clone()
    }

    /// The console's errors (level `SEVERE`) since the browser started.
    #[track_caller]
    pub fn console_errors(&self) -> Vec<LogEntry> {
        self.console().into_iter().filter(|e| e.level == "SEVERE").collect()
    }

    fn drain_console(&self) -> Result<(), WdError> {
        let v = self.cmd("POST", "/se/log", json!({"type": "browser"}))?;
        let entries: Vec<LogEntry> = serde_json::from_value(v).unwrap_or_default();
        self.console.lock().unwrap().extend(entries);
        Ok(())
    }

    /// The text of an open `alert`, `confirm` or `prompt` dialog, if one is open.
    #[track_caller]
    pub fn alert_text(&self) -> Option<String> {
        match self.cmd("GET", "/alert/text", Value::Null) {
            Ok(v) => Some(v.as_str().unwrap_or_default().to_owned()),
            Err(e) if e.is("no such alert") => None,
            Err(e) => self.fail("reading an alert", e),
        }
    }

    /// Dismisses the open dialog.
    #[track_caller]
    pub fn dismiss_alert(&self) {
        self.must(|| "dismissing an alert".into(), self.cmd("POST", "/alert/dismiss", json!({})));
    }

    // ----- plumbing -----

    #[track_caller]
    fn find_from<'b>(&'b self, endpoint: &str, css: &str, what: &str) -> Element<'b> {
        let deadline = Instant::now() + self.timeout();
        loop {
            match self.cmd("POST", endpoint, json!({"using": "css selector", "value": css})) {
                Ok(v) => return self.element(&v, what).expect("an element reference"),
                Err(e) if e.is("no such element") && Instant::now() < deadline => pause(POLL),
                Err(e) if e.is("no such element") => {
                    self.fail(&format!("finding `{what}` (waited {:?})", self.timeout()), "no element matches")
                }
                Err(e) => self.fail(&format!("finding `{what}`"), e),
            }
        }
    }

    #[track_caller]
    fn try_find_from<'b>(&'b self, endpoint: &str, css: &str, what: &str) -> Option<Element<'b>> {
        match self.cmd("POST", endpoint, json!({"using": "css selector", "value": css})) {
            Ok(v) => self.element(&v, what),
            Err(e) if e.is("no such element") => None,
            Err(e) => self.fail(&format!("finding `{what}`"), e),
        }
    }

    #[track_caller]
    fn find_all_from<'b>(&'b self, endpoint: &str, css: &str, what: &str) -> Vec<Element<'b>> {
        let v = self.must(
            || format!("finding every `{what}`"),
            self.cmd("POST", endpoint, json!({"using": "css selector", "value": css})),
        );
        v.as_array().into_iter().flatten().filter_map(|r| self.element(r, what)).collect()
    }

    /// A command of this session: `path` is relative to `/session/{id}`; `body` `Null` for none.
    fn cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, WdError> {
        let url = format!("{}/session/{}{path}", self.driver.base, self.session);
        call(&self.agent, method, &url, (!body.is_null()).then_some(&body))
    }

    #[track_caller]
    fn must<T>(&self, doing: impl FnOnce() -> String, r: Result<T, WdError>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => self.fail(&doing(), e),
        }
    }

    /// Panics with what was being done, why it failed and what the page showed.
    #[track_caller]
    fn fail(&self, doing: &str, why: impl fmt::Display) -> ! {
        panic!("browser: {doing}: {why}\n{}", self.describe_page())
    }

    /// The page's URL, title, the start of its text and its console errors, as far as readable.
    fn describe_page(&self) -> String {
        const SCRIPT: &str = "return [location.href, document.title, document.readyState,
            (document.body ? document.body.innerText : document.documentElement.outerHTML).slice(0, 4000)]";
        let mut out = match self.try_exec(SCRIPT, &[]) {
            Ok(v) => {
                let s = |i: usize| v[i].as_str().unwrap_or_default().to_owned();
                let text = s(3).split_whitespace().collect::<Vec<_>>().join(" ");
                format!(
                    "page: {} (title {:?}, {}, viewport {:?})\ntext: {}",
                    s(0),
                    s(1),
                    s(2),
                    self.viewport(),
                    snippet(&text, 800)
                )
            }
            Err(e) => format!("page: (not readable: {e})"),
        };
        let _ = self.drain_console();
        let errors: Vec<String> = {
            let console = self.console.lock().unwrap();
            console.iter().filter(|e| e.level == "SEVERE").map(|e| snippet(&e.message, 300)).collect()
        };
        if !errors.is_empty() {
            let start = errors.len().saturating_sub(10);
            out.push_str(&format!("\nconsole errors:\n  {}", errors[start..].join("\n  ")));
        }
        out
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Best effort, for whoever reads the failed test's artifacts.
            let v = self.viewport();
            let path = screenshot_dir().join(format!("failure-{}x{}.png", v.width, v.height));
            if let Ok(shot) = self.cmd("GET", "/screenshot", Value::Null)
                && let Ok(png) = base64_decode(shot.as_str().unwrap_or_default())
                && std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).is_ok()
            {
                let _ = std::fs::write(&path, png);
            }
        }
        // Ends the browser gracefully; the Driver then kills whatever is left.
        let url = format!("{}/session/{}", self.driver.base, self.session);
        let _ = call(&agent(Duration::from_secs(10)), "DELETE", &url, None);
    }
}

/// An element of the page. Its methods panic when it is gone from the page ("stale"): find it
/// again after the UI re-renders it.
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
    /// How it was found (a selector), for messages.
    what: String,
}

impl fmt::Debug for Element<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Element").field("what", &self.what).field("id", &self.id).finish()
    }
}

impl<'b> Element<'b> {
    /// This element as an argument of [`Browser::exec`].
    pub fn arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    fn cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, WdError> {
        self.browser.cmd(method, &format!("/element/{}{path}", self.id), body)
    }

    #[track_caller]
    fn must<T>(&self, doing: &str, r: Result<T, WdError>) -> T {
        self.browser.must(|| format!("{doing} `{}`", self.what), r)
    }

    /// Clicks it (scrolled into view) as a user would. While another element covers it or it
    /// is not yet interactable (an animation, an overlay), tries again up to the timeout.
    #[track_caller]
    pub fn click(&self) {
        let deadline = Instant::now() + self.browser.timeout();
        loop {
            match self.cmd("POST", "/click", json!({})) {
                Ok(_) => return,
                Err(e)
                    if (e.is("element click intercepted") || e.is("element not interactable"))
                        && Instant::now() < deadline =>
                {
                    pause(POLL)
                }
                // The page re-rendered between finding and clicking (a live update): what the
                // user sees is the element found again by the same selector.
                Err(e) if e.is("stale element reference") && Instant::now() < deadline => {
                    match self.browser.try_find(&self.what) {
                        Some(fresh) => return fresh.click(),
                        None => self.browser.fail(&format!("clicking `{}`", self.what), e),
                    }
                }
                Err(e) => self.browser.fail(&format!("clicking `{}`", self.what), e),
            }
        }
    }

    /// Its rendered text (`""` when hidden).
    #[track_caller]
    pub fn text(&self) -> String {
        let v = self.must("reading the text of", self.cmd("GET", "/text", Value::Null));
        v.as_str().unwrap_or_default().to_owned()
    }

    /// An HTML attribute as written (or as reflected), `None` when absent.
    #[track_caller]
    pub fn attr(&self, name: &str) -> Option<String> {
        let v = self.must(
            &format!("reading the attribute {name} of"),
            self.cmd("GET", &format!("/attribute/{name}"), Value::Null),
        );
        v.as_str().map(str::to_owned)
    }

    /// A DOM property (`checked`, `value`, `disabled`, `outerHTML`, …) as JSON.
    #[track_caller]
    pub fn prop(&self, name: &str) -> Value {
        self.must(
            &format!("reading the property {name} of"),
            self.cmd("GET", &format!("/property/{name}"), Value::Null),
        )
    }

    /// Its current `value` (inputs, selects, text areas).
    #[track_caller]
    pub fn value(&self) -> String {
        match self.prop("value") {
            Value::String(s) => s,
            Value::Null => String::new(),
            v => v.to_string(),
        }
    }

    /// A computed CSS property (`color`, `font-size`, …).
    #[track_caller]
    pub fn css(&self, name: &str) -> String {
        let v =
            self.must(&format!("reading the style {name} of"), self.cmd("GET", &format!("/css/{name}"), Value::Null));
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Its position and size in CSS pixels (e.g. to check 44 px touch targets).
    #[track_caller]
    pub fn rect(&self) -> Rect {
        let v = self.must("reading the rectangle of", self.cmd("GET", "/rect", Value::Null));
        serde_json::from_value(v).expect("an element rectangle")
    }

    /// Empties an input or text area.
    #[track_caller]
    pub fn clear(&self) {
        self.must("clearing", self.cmd("POST", "/clear", json!({})));
    }

    /// Focuses it and types `text` (with [`keys`] constants for special keys).
    #[track_caller]
    pub fn send_keys(&self, text: &str) {
        self.must(&format!("typing {text:?} into"), self.cmd("POST", "/value", json!({ "text": text })));
    }

    /// Whether it is rendered visibly.
    #[track_caller]
    pub fn is_displayed(&self) -> bool {
        self.must("checking the visibility of", self.cmd("GET", "/displayed", Value::Null)) == true
    }

    /// Whether it is enabled (not `disabled`).
    #[track_caller]
    pub fn is_enabled(&self) -> bool {
        self.must("checking whether enabled:", self.cmd("GET", "/enabled", Value::Null)) == true
    }

    /// Whether a checkbox, radio button or option is selected.
    #[track_caller]
    pub fn is_selected(&self) -> bool {
        self.must("checking whether selected:", self.cmd("GET", "/selected", Value::Null)) == true
    }

    /// The first element matching `css` inside this one, waiting for it up to the timeout.
    #[track_caller]
    pub fn find(&self, css: &str) -> Element<'b> {
        self.browser.find_from(&format!("/element/{}/element", self.id), css, &format!("{} {css}", self.what))
    }

    /// The first element matching `css` inside this one now, if any.
    #[track_caller]
    pub fn try_find(&self, css: &str) -> Option<Element<'b>> {
        self.browser.try_find_from(&format!("/element/{}/element", self.id), css, &format!("{} {css}", self.what))
    }

    /// Every element matching `css` inside this one now.
    #[track_caller]
    pub fn find_all(&self, css: &str) -> Vec<Element<'b>> {
        self.browser.find_all_from(&format!("/element/{}/elements", self.id), css, &format!("{} {css}", self.what))
    }

    /// Sets the value of a control that cannot be typed into (range, color, date, select) by
    /// script, then dispatches `input` and `change` as a user's change would. Returns the value
    /// the control took (a range clamps and rounds to its step).
    #[track_caller]
    pub fn set_value(&self, value: &str) -> String {
        const SCRIPT: &str = "const [el, v] = arguments;
            const d = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(el), 'value');
            if (d && d.set) d.set.call(el, v); else el.value = v;
            el.dispatchEvent(new Event('input', {bubbles: true}));
            el.dispatchEvent(new Event('change', {bubbles: true}));
            return el.value;";
        let r = self.browser.try_exec(SCRIPT, &[self.arg(), json!(value)]);
        let v = self.must(&format!("setting the value {value:?} of"), r);
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Sets a range input (slider) to `value`, as [`Element::set_value`].
    #[track_caller]
    pub fn set_range(&self, value: impl fmt::Display) -> String {
        self.set_value(&value.to_string())
    }
}

// ----- helpers -----

/// What to do when chromedriver is missing.
const INSTALL: &str = "install the Debian packages chromium and chromium-driver (tests/run does; see .ci/run)";

fn chromedriver_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMEDRIVER") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("chromedriver"))
        .chain([PathBuf::from("/usr/bin/chromedriver")])
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| panic!("chromedriver not found on PATH or at /usr/bin/chromedriver: {INSTALL}"))
}

fn chromium_path() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&path).is_file(), "the browser {path} is missing: {INSTALL}");
    path
}

/// The directory of the running test's screenshots (see the module documentation).
pub fn screenshot_dir() -> PathBuf {
    let root = std::env::var_os("HEARTH_UI_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|| {
        // target/<profile>/deps/<test exe> -> target/ui-screenshots
        let exe = std::env::current_exe().expect("test executable path");
        let target = exe.ancestors().nth(3).expect("target dir");
        target.join("ui-screenshots")
    });
    let thread = std::thread::current();
    let test = match thread.name() {
        Some(name) if name != "main" => name.to_owned(),
        // A test run on the main thread: name the directory after the test binary instead.
        _ => std::env::current_exe()
            .ok()
            .and_then(|e| e.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .map(|s| s.rsplit_once('-').map_or(s.clone(), |(name, _hash)| name.to_owned()))
            .unwrap_or_else(|| "unnamed".into()),
    };
    let test: String = test
        .replace("::", ".")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
        .collect();
    root.join(test)
}

/// The width and height of a PNG file (to check a screenshot's size).
pub fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG file", path.display());
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}

fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into()
}

/// One WebDriver request; the answer's `value`, or its error.
fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<&Value>) -> Result<Value, WdError> {
    let transport = |e: ureq::Error| WdError { error: "transport".into(), message: format!("{method} {url}: {e}") };
    let mut resp = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        ("POST", Some(b)) => agent.post(url).send_json(b),
        ("POST", None) => agent.post(url).send_json(json!({})),
        _ => panic!("unsupported WebDriver method {method}"),
    }
    .map_err(transport)?;
    let status = resp.status().as_u16();
    // Screenshots are large base64 strings: allow far more than ureq's default 10 MB.
    let answer: Value = resp.body_mut().with_config().limit(512 << 20).read_json().map_err(transport)?;
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    if status >= 400 || value.get("error").is_some_and(Value::is_string) {
        return Err(WdError {
            error: value["error"].as_str().unwrap_or("unknown error").to_owned(),
            message: value["message"].as_str().unwrap_or_default().to_owned(),
        });
    }
    Ok(value)
}

/// Decodes standard base64 (WebDriver's screenshots).
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\r' | b'\n' => continue,
            _ => return Err(format!("invalid base64 byte {c:#04x}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if out.is_empty() {
        return Err("empty image".into());
    }
    Ok(out)
}

/// The start of `text`, at most `max` characters, with an ellipsis when cut.
fn snippet(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// The end of `text`, at most `max` bytes (on a character boundary).
fn tail(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

/// Waits between polls. The browser runs in other processes and these are plain test threads,
/// not the async runtime that `clippy.toml` protects from blocking sleeps.
#[allow(clippy::disallowed_methods)]
fn pause(d: Duration) {
    std::thread::sleep(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_padding_and_rejects_junk() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8h").unwrap(), b"hello!");
        assert_eq!(base64_decode("aGk=\n").unwrap(), b"hi");
        assert!(base64_decode("a$b").is_err());
    }

    #[test]
    fn snippets_cut_on_characters() {
        assert_eq!(snippet("你好世界", 2), "你好…");
        assert_eq!(snippet("abc", 5), "abc");
        assert_eq!(tail("你好", 4), "好");
    }

    #[test]
    fn narrow_viewports_are_phones() {
        assert!(Viewport::new(360, 740).mobile);
        assert!(!Viewport::new(1280, 800).mobile);
    }
}
