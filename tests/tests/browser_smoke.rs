//! The WebDriver client (`hearth_tests::browser`) against headless Chromium: the real hub's UI
//! loads and is screenshotted at phone and desktop sizes, and every part of the client works on a
//! fixed page of our own (so these tests do not depend on the UI's current markup).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_tests::Hub;
use hearth_tests::browser::{Browser, Viewport, keys, png_size};
use serde_json::json;

#[test]
fn hub_ui_loads_at_phone_and_desktop_sizes() {
    let t_build = Instant::now();
    hearth_tests::hearth_bin();
    let t_build = t_build.elapsed();
    let t0 = Instant::now();
    let hub = Hub::start(&["--demo"]);
    let t_hub = t0.elapsed();
    let b = Browser::start(360, 740);
    let t_browser = t0.elapsed() - t_hub;

    b.open(&hub, "/");
    assert_eq!(b.exec("return document.readyState", &[]), json!("complete"));
    assert!(b.title().contains("Hearth"), "title {:?}", b.title());
    // A fresh hub asks for its owner (or, later, a login): some form is on screen.
    b.find("form");
    b.wait_until("a visible form", || b.find_all("form").iter().any(|f| f.is_displayed()).then_some(()));
    assert_eq!(b.exec("return [innerWidth, innerHeight]", &[]), json!([360, 740]));
    let phone = b.screenshot("first-screen");
    assert_eq!(png_size(&phone), (360, 740), "{}", phone.display());

    b.set_viewport(Viewport::DESKTOP);
    assert_eq!(b.exec("return [innerWidth, innerHeight]", &[]), json!([1280, 800]));
    let desktop = b.screenshot("first-screen");
    assert_eq!(png_size(&desktop), (1280, 800), "{}", desktop.display());
    assert!(phone.ends_with("hub_ui_loads_at_phone_and_desktop_sizes/first-screen-360x740.png"), "{}", phone.display());
    let t_total = t0.elapsed();
    drop(b);
    eprintln!(
        "building hearth {t_build:?}; then hub start {t_hub:?}, browser start {t_browser:?}, until the end {t_total:?}, \
         browser stop {:?}; screenshots in {}",
        t0.elapsed() - t_total,
        phone.parent().unwrap().display()
    );
}

/// A page exercising the client: an input, a button with a delayed effect, a range, a cookie
/// and a console error.
const FIXTURE: &str = r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Fixture</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<h1 id="greeting">你好</h1>
<form><label>Name <input name="name"></label><button id="go" type="button">Go</button></form>
<p id="out"></p>
<p id="later" hidden>Later</p>
<input id="level" type="range" min="0" max="100" step="10" value="0"><output id="level-out"></output>
<script>
document.getElementById('go').addEventListener('click', () => {
  document.getElementById('out').textContent = 'Hello, ' + document.querySelector('[name=name]').value;
  setTimeout(() => { document.getElementById('later').hidden = false; }, 500);
});
document.getElementById('level').addEventListener('change', e => {
  document.getElementById('level-out').textContent = 'changed to ' + e.target.value;
});
document.cookie = 'pref=1; SameSite=Strict; path=/';
console.error('fixture-marker');
</script>
</body></html>"#;

/// Serves `FIXTURE` for every request on a free port; records each request's Accept-Language.
fn serve_fixture() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let langs = Arc::new(Mutex::new(Vec::new()));
    let seen = langs.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("accept-language:") {
                    seen.lock().unwrap().push(v.trim().to_owned());
                }
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                FIXTURE.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(FIXTURE.as_bytes()));
        }
    });
    (url, langs)
}

#[test]
fn client_drives_a_page_in_a_chinese_browser() {
    let (url, langs) = serve_fixture();
    let b = Browser::options().viewport(Viewport::PHONE).lang("zh-CN,zh").start();
    b.goto(&url);
    assert_eq!(b.url(), url);
    assert_eq!(b.title(), "Fixture");

    // The language reaches the server and the page.
    assert_eq!(langs.lock().unwrap().first().map(String::as_str), Some("zh-cn,zh;q=0.9"));
    assert_eq!(b.exec("return navigator.languages", &[]), json!(["zh-CN", "zh"]));
    assert_eq!(b.exec("return matchMedia('(pointer: coarse)').matches", &[]), json!(true));

    // Finding, typing, clicking, waiting.
    let name = b.find("form input[name=name]");
    name.send_keys("Ada");
    assert_eq!(name.value(), "Ada");
    name.clear();
    assert_eq!(name.value(), "");
    name.send_keys("Ada");
    assert_eq!(name.attr("name").as_deref(), Some("name"));
    assert_eq!(name.attr("placeholder"), None);
    assert_eq!(name.prop("tagName"), json!("INPUT"));
    assert!(name.is_displayed() && name.is_enabled());
    assert!(!b.find("#later").is_displayed());
    b.find("form").find("button").click();
    assert_eq!(b.wait_text("#out", "Hello").text(), "Hello, Ada");
    b.wait_text_is("#later", "Later");
    assert!(b.try_find("#missing").is_none());
    assert_eq!(b.find_all("input").len(), 2);
    assert_eq!(b.find("form").find_all("button").len(), 1);
    let r = b.find("#go").rect();
    assert!(r.width > 10.0 && r.height > 10.0 && r.y > 0.0, "{r:?}");

    // Keyboard: Tab moves the focus from the field to the button.
    b.find("form input[name=name]").click();
    b.press(keys::TAB);
    assert_eq!(b.active().attr("id").as_deref(), Some("go"));

    // A slider set by script fires input and change, clamped to its range.
    let level = b.find("#level");
    assert_eq!(level.set_range(70), "70");
    b.wait_text_is("#level-out", "changed to 70");
    assert_eq!(level.set_range(250), "100");

    // Scripts with element arguments and results; cookies; the console.
    let h1 = b.find("h1");
    assert_eq!(b.exec("return arguments[0].textContent + arguments[1]", &[h1.arg(), json!("!")]), json!("你好!"));
    let again = b.exec("return document.querySelector('#greeting')", &[]);
    assert_eq!(b.element(&again, "#greeting").unwrap().text(), "你好");
    assert_eq!(b.exec("return window.__pwned === undefined", &[]), json!(true));
    let pref = b.cookie("pref").expect("the page's cookie");
    assert_eq!((pref.value.as_str(), pref.http_only, pref.same_site.as_deref()), ("1", false, Some("Strict")));
    assert!(b.console_errors().iter().any(|e| e.message.contains("fixture-marker")), "{:?}", b.console());
    assert!(b.page_source().contains("id=\"greeting\""));
    b.refresh();
    b.wait_text("h1", "你好");

    let shot = b.screenshot("fixture");
    assert_eq!(png_size(&shot), (360, 740));

    // A failure names what was being done and what the page showed.
    b.set_timeout(Duration::from_millis(300));
    let err = catch_unwind(AssertUnwindSafe(|| b.find(".no-such-thing"))).expect_err("finding nothing panics");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    for part in ["finding `.no-such-thing`", "no element matches", url.as_str(), "你好", "fixture-marker"] {
        assert!(msg.contains(part), "{part:?} missing from the message:\n{msg}");
    }
}
