//! The web UI: static files from `ui/`, embedded in the binary (no build step, no CDN).

use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

/// Every embedded file: path, content type, bytes.
pub static FILES: &[(&str, &str, &[u8])] = &[
    ("index.html", "text/html; charset=utf-8", include_bytes!("../../../ui/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../../ui/app.js")),
    ("style.css", "text/css; charset=utf-8", include_bytes!("../../../ui/style.css")),
];

fn file(path: &str) -> Response {
    let path = if path.is_empty() { "index.html" } else { path };
    match FILES.iter().find(|(p, _, _)| *p == path) {
        Some((_, ct, bytes)) => {
            let mut r = warp::Reply::into_response(warp::reply::with_header(*bytes, "content-type", *ct));
            if let Ok(v) = "no-cache".parse() {
                r.headers_mut().insert("cache-control", v);
            }
            r
        }
        None => warp::Reply::into_response(warp::reply::with_status("not found", StatusCode::NOT_FOUND)),
    }
}

/// `GET /` and `GET /<file>`.
pub fn filter() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::get().and(warp::path::tail()).map(|tail: warp::path::Tail| file(tail.as_str()))
}
