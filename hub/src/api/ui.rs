//! The web UI: static files from `ui/`, embedded in the binary (no build step, no CDN).
//!
//! Every file is a row of [`FILES`] with its content type. `/` and paths that look like app
//! routes (no file extension, not under `/api/`) are answered with `index.html`, so a reload or a
//! shared link opens the app; the app itself routes by the URL's hash. Every answer carries an
//! ETag and `Cache-Control: no-cache`: browsers keep the files and revalidate them (a `304` when
//! unchanged), so a new hub version shows at once. `/sw.js` (the service worker, served at the
//! root so its scope is the whole app) gets a version, a hash of every file, put in its text so
//! that a new UI replaces the old offline cache.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";
const MANIFEST: &str = "application/manifest+json";

macro_rules! ui_file {
    ($path:literal, $ct:expr) => {
        ($path, $ct, include_bytes!(concat!("../../../ui/", $path)) as &[u8])
    };
}

/// Every embedded file: path (relative to `ui/`), content type, bytes. A test checks that this
/// lists exactly the files under `ui/` (besides the tooling: `*.mjs`, `*.md`).
pub static FILES: &[(&str, &str, &[u8])] = &[
    ui_file!("index.html", HTML),
    ui_file!("manifest.webmanifest", MANIFEST),
    ui_file!("sw.js", JS),
    ui_file!("css/app.css", CSS),
    ui_file!("icons/icon.svg", SVG),
    ui_file!("icons/maskable.svg", SVG),
    ui_file!("i18n/en.js", JS),
    ui_file!("i18n/zh.js", JS),
    ui_file!("js/api.js", JS),
    ui_file!("js/app.js", JS),
    ui_file!("js/chart.js", JS),
    ui_file!("js/controls.js", JS),
    ui_file!("js/dom.js", JS),
    ui_file!("js/i18n.js", JS),
    ui_file!("js/live.js", JS),
    ui_file!("js/say.js", JS),
    ui_file!("js/ui.js", JS),
    ui_file!("js/vocab.js", JS),
    ui_file!("js/screens/auth.js", JS),
    ui_file!("js/screens/autoform.js", JS),
    ui_file!("js/screens/automations.js", JS),
    ui_file!("js/screens/device.js", JS),
    ui_file!("js/screens/discovery.js", JS),
    ui_file!("js/screens/home.js", JS),
    ui_file!("js/screens/plugins.js", JS),
    ui_file!("js/screens/scenes.js", JS),
    ui_file!("js/screens/settings.js", JS),
];

/// The placeholder in `sw.js` replaced by [`VERSION`].
const VERSION_PLACEHOLDER: &str = "@@VERSION@@";

/// A hash of every file: the service worker's cache version.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h = Sha256::new();
    for (path, _, bytes) in FILES {
        h.update(path.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    hex(&h.finalize()[..8])
});

/// A file as served: path, content type, body, ETag.
type Served = (&'static str, &'static str, Vec<u8>, String);

/// The served bodies (sw.js with its version filled in) and their ETags, by path.
static SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(path, ct, bytes)| {
            let body = if *path == "sw.js" {
                String::from_utf8_lossy(bytes).replace(VERSION_PLACEHOLDER, &VERSION).into_bytes()
            } else {
                bytes.to_vec()
            };
            let etag = format!("\"{}\"", hex(&Sha256::digest(&body)[..8]));
            (*path, *ct, body, etag)
        })
        .collect()
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which file answers `path` (the URL path without its leading `/`): the file itself, or
/// `index.html` for `/` and app routes. `None` for a missing file or anything under `api/`.
pub fn resolve(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("index.html");
    }
    if let Some((p, _, _)) = FILES.iter().find(|(p, _, _)| *p == path) {
        return Some(p);
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    let api = path == "api" || path.starts_with("api/");
    if api || last.contains('.') { None } else { Some("index.html") }
}

fn etag_matches(header: Option<&str>, etag: &str) -> bool {
    header.is_some_and(|h| h.split(',').any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*"))
}

/// The answer for `path`, given the request's `If-None-Match`.
pub fn file(path: &str, if_none_match: Option<&str>) -> Response {
    let Some(name) = resolve(path) else {
        return warp::Reply::into_response(warp::reply::with_status("not found", StatusCode::NOT_FOUND));
    };
    let Some((_, ct, body, etag)) = SERVED.iter().find(|(p, ..)| *p == name) else {
        return warp::Reply::into_response(warp::reply::with_status("not found", StatusCode::NOT_FOUND));
    };
    let mut r = if etag_matches(if_none_match, etag) {
        warp::Reply::into_response(StatusCode::NOT_MODIFIED)
    } else {
        let mut r = warp::Reply::into_response(body.clone());
        if let Ok(v) = ct.parse() {
            r.headers_mut().insert("content-type", v);
        }
        r
    };
    let headers = r.headers_mut();
    for (k, v) in [("cache-control", "no-cache"), ("etag", etag.as_str()), ("x-content-type-options", "nosniff")] {
        if let Ok(v) = v.parse() {
            headers.insert(k, v);
        }
    }
    r
}

/// `GET /`, `GET /<file>` and app routes (also `HEAD`).
pub fn filter() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::get()
        .or(warp::head())
        .unify()
        .and(warp::path::tail())
        .and(warp::header::optional::<String>("if-none-match"))
        .map(|tail: warp::path::Tail, inm: Option<String>| file(tail.as_str(), inm.as_deref()))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn ui_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui")
    }

    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }

    fn text(path: &str) -> &'static str {
        let (_, _, bytes) = FILES.iter().find(|(p, _, _)| *p == path).unwrap();
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn every_file_under_ui_is_served_and_nothing_else() {
        let mut on_disk = Vec::new();
        walk(&ui_dir(), &ui_dir(), &mut on_disk);
        on_disk.retain(|p| !p.ends_with(".mjs") && !p.ends_with(".md"));
        on_disk.sort();
        let mut served: Vec<String> = FILES.iter().map(|(p, _, _)| (*p).to_owned()).collect();
        served.sort();
        assert_eq!(on_disk, served, "ui/ and FILES differ: add the file to FILES in hub/src/api/ui.rs");
    }

    #[test]
    fn content_types_follow_extensions() {
        for (path, ct, _) in FILES {
            let want = match path.rsplit('.').next().unwrap() {
                "html" => HTML,
                "js" => JS,
                "css" => CSS,
                "svg" => SVG,
                "webmanifest" => MANIFEST,
                other => panic!("no content type for .{other} ({path})"),
            };
            assert_eq!(*ct, want, "{path}");
        }
    }

    #[test]
    fn the_service_worker_caches_every_shell_file() {
        let sw = text("sw.js");
        assert!(sw.contains(VERSION_PLACEHOLDER));
        for (path, _, _) in FILES {
            if *path != "sw.js" {
                assert!(sw.contains(&format!("\"/{path}\"")), "sw.js does not cache /{path}");
            }
        }
        let served = String::from_utf8(SERVED.iter().find(|(p, ..)| *p == "sw.js").unwrap().2.clone()).unwrap();
        assert!(!served.contains(VERSION_PLACEHOLDER) && served.contains(VERSION.as_str()));
    }

    #[test]
    fn app_routes_get_the_shell_and_the_api_never_does() {
        assert_eq!(resolve(""), Some("index.html"));
        assert_eq!(resolve("js/app.js"), Some("js/app.js"));
        assert_eq!(resolve("device/demo:lamp"), Some("index.html"));
        assert_eq!(resolve("automations"), Some("index.html"));
        assert_eq!(resolve("missing.js"), None);
        assert_eq!(resolve("js/missing.js"), None);
        assert_eq!(resolve("api/v1/nothing"), None);
        assert_eq!(resolve("api"), None);
    }

    #[test]
    fn answers_revalidate_with_etags() {
        let r = file("", None);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], HTML);
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        let again = file("index.html", Some(&etag));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(file("index.html", Some("\"other\"")).status(), StatusCode::OK);
        assert_eq!(file("nope.css", None).status(), StatusCode::NOT_FOUND);
    }

    /// The UI renders data as text and runs under a CSP without inline script or style.
    #[test]
    fn the_ui_has_no_inline_script_and_no_html_sinks() {
        let html = text("index.html").to_lowercase();
        for bad in ["<script>", " style=", "javascript:", " onload=", " onclick=", "<style"] {
            assert!(!html.contains(bad), "index.html contains `{bad}`");
        }
        assert!(html.contains("<title>hearth</title>"));
        for (path, _, bytes) in FILES.iter().filter(|(p, _, _)| p.ends_with(".js")) {
            let js = std::str::from_utf8(bytes).unwrap();
            for bad in [
                ".innerHTML",
                ".outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "setAttribute(\"style\"",
            ] {
                assert!(!js.contains(bad), "{path} uses `{bad}`: build elements with textContent instead");
            }
        }
    }

    #[test]
    fn the_ui_stays_small() {
        let total: usize = FILES.iter().map(|(_, _, b)| b.len()).sum();
        // Most of it is the two languages' texts (each about 50 KB).
        assert!(total < 320 * 1024, "the UI is {total} bytes; keep it under 320 KB");
    }
}
