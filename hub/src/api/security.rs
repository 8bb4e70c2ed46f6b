//! What keeps the browser side safe: the session cookie, the same-origin check of requests that
//! a cookie authenticates, the client's address (behind trusted proxies), the headers every
//! response carries, and the login throttle's settings.
//!
//! Cross-site requests: a cookie goes with every request the browser makes, whoever's page
//! made it, so a state-changing request authenticated by the cookie must show an `Origin` (or,
//! without one, a `Referer`) of this very host. `SameSite=Strict` already keeps the cookie off
//! cross-site requests in current browsers; the check is the second lock. Bearer tokens are not
//! ambient (a page cannot make the browser add them), so they need no check.

use std::net::{IpAddr, SocketAddr};

use warp::http::{HeaderMap, HeaderValue};
use warp::reply::Response;

use crate::config::{HttpConfig, IpNet};
use crate::throttle::{Limits, Throttle};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hearth_session";

/// The Content-Security-Policy of every response: no inline script or style, nothing from
/// elsewhere, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; manifest-src 'self'; worker-src 'self'; frame-ancestors 'none'; \
                       base-uri 'none'; form-action 'self'; object-src 'none'";

/// The HTTP side's security settings and the login throttle.
#[derive(Debug, Clone)]
pub struct Security {
    /// How long a login session lasts, in seconds.
    pub session_ttl_secs: i64,
    /// Always mark the cookie `Secure`.
    pub secure_cookies: bool,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Login throttling (in memory).
    pub throttle: Throttle,
}

impl Security {
    /// The settings of an `[http]` section, with a fresh throttle.
    pub fn from_config(h: &HttpConfig) -> Security {
        Security {
            session_ttl_secs: i64::try_from(h.session_ttl_secs).unwrap_or(i64::MAX / 1000),
            secure_cookies: h.secure_cookies,
            trusted_proxies: h.trusted_proxies.clone(),
            throttle: Throttle::new(Limits::from_config(h)),
        }
    }

    /// The client's address: the TCP peer, or, when the peer is a trusted proxy, the nearest
    /// address in `X-Forwarded-For` that is not a trusted proxy.
    pub fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.ip().to_canonical();
        let trusted = |ip: IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(ip) => {
                    client = ip;
                    if !trusted(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        Some(client)
    }

    /// Whether the request came over TLS (so the cookie gets `Secure`).
    pub fn tls(&self, headers: &HeaderMap) -> bool {
        self.secure_cookies
            || headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
    }

    /// `Set-Cookie` for a new session.
    pub fn session_cookie(&self, token: &str, tls: bool) -> String {
        format!(
            "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
            self.session_ttl_secs,
            if tls { "; Secure" } else { "" }
        )
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_cookie(tls: bool) -> String {
        format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}", if tls { "; Secure" } else { "" })
    }
}

impl Default for Security {
    fn default() -> Self {
        Security::from_config(&HttpConfig::default())
    }
}

/// An address in `X-Forwarded-For`: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip().to_canonical())
}

/// The value of cookie `name`, from every `Cookie` header.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// `(host, port)` of an `Origin` or a `Referer` URL; `None` when it is not an http(s) URL.
fn url_authority(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let (host, port) = split_host_port(authority)?;
    Some((host, port.unwrap_or(default)))
}

/// `host[:port]` (with `[v6]` brackets) to a lowercase host and the port, if given.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((format!("[{}]", host.to_ascii_lowercase()), port));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host.to_ascii_lowercase(), Some(port.parse().ok()?))),
        Some(_) => None,
        None => Some((s.to_ascii_lowercase(), None)),
    }
}

/// Whether the request's `Origin` (else `Referer`) names the host of its `Host` header.
/// `None` when it carries neither.
pub fn same_origin(headers: &HeaderMap) -> Option<bool> {
    let source = headers.get("origin").or_else(|| headers.get("referer"))?;
    let Some((host, port)) = source.to_str().ok().and_then(url_authority) else { return Some(false) };
    let Some((h, p)) = headers.get("host").and_then(|v| v.to_str().ok()).and_then(split_host_port) else {
        return Some(false);
    };
    // A Host without a port means the default port of whatever scheme the page used.
    Some(host == h && p.is_none_or(|p| p == port) && (p.is_some() || port == 80 || port == 443))
}

/// Whether an `Origin` header is present and names another host than `Host`.
pub fn foreign_origin(headers: &HeaderMap) -> bool {
    headers.contains_key("origin") && {
        let mut only_origin = HeaderMap::new();
        for key in ["origin", "host"] {
            if let Some(v) = headers.get(key) {
                only_origin.insert(key, v.clone());
            }
        }
        same_origin(&only_origin) == Some(false)
    }
}

/// Adds the headers every response carries.
pub fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn origins_match_the_host_with_default_ports() {
        let same = |origin: &str, host: &str| same_origin(&headers(&[("origin", origin), ("host", host)]));
        assert_eq!(same("http://hub.local:8080", "hub.local:8080"), Some(true));
        assert_eq!(same("http://HUB.local:8080", "hub.LOCAL:8080"), Some(true));
        assert_eq!(same("https://hub.example", "hub.example"), Some(true));
        assert_eq!(same("http://hub.example", "hub.example:80"), Some(true));
        assert_eq!(same("https://hub.example", "hub.example:443"), Some(true));
        assert_eq!(same("http://[::1]:8080", "[::1]:8080"), Some(true));
        assert_eq!(same("http://hub.local:8081", "hub.local:8080"), Some(false));
        assert_eq!(same("http://evil.example:8080", "hub.local:8080"), Some(false));
        assert_eq!(same("http://hub.local.evil.example", "hub.local"), Some(false));
        assert_eq!(same("null", "hub.local:8080"), Some(false));
        assert_eq!(same("http://hub.local:8080", ""), Some(false));
        let referer = headers(&[("referer", "http://hub.local:8080/settings?x=1"), ("host", "hub.local:8080")]);
        assert_eq!(same_origin(&referer), Some(true));
        assert_eq!(same_origin(&headers(&[("host", "hub.local:8080")])), None);
        assert!(foreign_origin(&headers(&[("origin", "http://evil.example"), ("host", "hub.local")])));
        assert!(!foreign_origin(&headers(&[("referer", "http://evil.example/"), ("host", "hub.local")])));
        assert!(!foreign_origin(&headers(&[("origin", "http://hub.local"), ("host", "hub.local")])));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = headers(&[("cookie", "a=1; hearth_session=hearth_abc; b=2"), ("cookie", "c=3")]);
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("hearth_abc"));
        assert_eq!(cookie(&h, "c").as_deref(), Some("3"));
        assert_eq!(cookie(&headers(&[("cookie", "hearth_session=")]), SESSION_COOKIE), None);
    }

    #[test]
    fn the_client_address_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let mut s = Security::default();
        let peer: SocketAddr = "10.0.0.2:4000".parse().expect("addr");
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7")]);
        assert_eq!(s.client_ip(Some(peer), &h), Some("10.0.0.2".parse().expect("ip")), "untrusted peer");
        s.trusted_proxies = vec!["10.0.0.0/8".parse().expect("net")];
        assert_eq!(s.client_ip(Some(peer), &h), Some("198.51.100.7".parse().expect("ip")), "the nearest hop");
        s.trusted_proxies.push("198.51.100.7".parse().expect("net"));
        assert_eq!(s.client_ip(Some(peer), &h), Some("203.0.113.9".parse().expect("ip")), "through two proxies");
        let junk = headers(&[("x-forwarded-for", "203.0.113.9, junk")]);
        assert_eq!(s.client_ip(Some(peer), &junk), Some("10.0.0.2".parse().expect("ip")));
        let port = headers(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!(s.client_ip(Some(peer), &port), Some("2001:db8::1".parse().expect("ip")));
    }

    #[test]
    fn cookies_are_secure_under_tls() {
        let s = Security::default();
        assert!(s.tls(&headers(&[("x-forwarded-proto", "https")])));
        assert!(!s.tls(&headers(&[("x-forwarded-proto", "http")])));
        let c = s.session_cookie("hearth_x", true);
        assert_eq!(c, "hearth_session=hearth_x; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000; Secure");
        assert!(!Security::clear_cookie(false).contains("Secure"));
    }
}
