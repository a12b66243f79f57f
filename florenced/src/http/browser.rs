//! What a web page may make a visitor's browser do with florenced.
//!
//! - DNS rebinding: a page on `evil.example` that re-points its name at
//!   127.0.0.1 reaches a loopback daemon as "same origin" and can read the
//!   answers. Its requests carry `Host: evil.example`, so a daemon listening
//!   on loopback answers only Host values that name loopback (`localhost`,
//!   `*.localhost`, 127.0.0.0/8, `[::1]`) or are listed in
//!   `http.allowed_hosts`; a non-empty list is enforced on any address.
//!   Others get 421 Misdirected Request: RFC 9110 §15.5.20 has it for a request
//!   "directed at a server that is unable or unwilling to produce an
//!   authoritative response for the target URI", which is the case, and it
//!   tells a legitimate client that another name may work; 403 would claim a
//!   permission decision on a resource this server does not serve at all.
//!   An HTTP/1.1 request without Host is 400, as RFC 9112 §3.2 requires.
//! - Cross-site requests: a page may POST a form or `text/plain` anywhere
//!   without a preflight. JSON is read only with a JSON media type (415
//!   otherwise, `body::BodyKind`), and `multipart/form-data`, which the
//!   compatible API must take, is refused like any request whose `Origin`
//!   is neither this service's own (the /docs page) nor listed in
//!   `http.cors_allow_origins`: 403. Clients outside browsers send no Origin.
//! - CORS is off unless `http.cors_allow_origins` lists origins (tower-http's
//!   `CorsLayer`); then those pages may call the API and read the answers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Http;
use crate::http::error::ApiError;

pub struct Guard {
    /// None: any Host is answered.
    hosts: Option<Vec<String>>,
    origins: Vec<String>,
    any_origin: bool,
}

impl Guard {
    pub fn new(http: &Http, listening: SocketAddr) -> Guard {
        let listed: Vec<String> = http
            .allowed_hosts
            .iter()
            .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        let check = (listening.ip().is_loopback() || !listed.is_empty())
            && !listed.iter().any(|h| h == "*");
        Guard {
            hosts: check.then_some(listed),
            origins: http
                .cors_allow_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
            any_origin: http.cors_allow_origins.iter().any(|o| o == "*"),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let Some(listed) = &self.hosts else {
            return true;
        };
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        loopback_name(&name) || listed.contains(&name)
    }

    fn origin_allowed(&self, origin: &str, authority: Option<&str>) -> bool {
        let origin = origin.to_ascii_lowercase();
        let own = authority.is_some_and(|a| {
            origin
                .strip_prefix("http://")
                .is_some_and(|rest| rest == a.to_ascii_lowercase())
        });
        own || self.any_origin || self.origins.contains(&origin)
    }
}

/// The name in a Host value or URI authority, without port or IPv6 brackets.
fn host_name(authority: &str) -> &str {
    let a = authority.trim();
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match a.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => a,
    }
}

/// Names that can only mean this machine, whatever DNS says.
fn loopback_name(name: &str) -> bool {
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// The request's authority: the absolute URI's, else the Host header's.
fn authority(req: &Request) -> Option<String> {
    if let Some(a) = req.uri().authority() {
        return Some(a.as_str().to_owned());
    }
    req.headers()
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
}

/// The Host and Origin checks, before any route.
pub async fn guard(State(g): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let authority = authority(&req);
    match &authority {
        None if g.hosts.is_some() && req.version() != Version::HTTP_10 => {
            return ApiError::bad_request("an HTTP/1.1 request needs a Host header")
                .into_response();
        }
        Some(a) if !g.host_allowed(host_name(a)) => {
            return ApiError::misdirected(a).into_response();
        }
        _ => {}
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
        if !g.origin_allowed(&origin, authority.as_deref()) {
            return ApiError::forbidden_origin(&origin).into_response();
        }
    }
    next.run(req).await
}

/// CORS for the configured origins; None when there are none.
pub fn cors(http: &Http) -> Option<CorsLayer> {
    if http.cors_allow_origins.is_empty() {
        return None;
    }
    let origin = if http.cors_allow_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            http.cors_allow_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let named = |names: &[&'static str]| -> Vec<HeaderName> {
        names.iter().map(|n| HeaderName::from_static(n)).collect()
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(named(&[
                "content-type",
                "authorization",
                "x-api-key",
                "x-request-id",
            ]))
            .expose_headers(named(&[
                "x-request-id",
                "x-queue-time",
                "x-inference-time",
                "retry-after",
            ]))
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(hosts: &[&str], listening: &str) -> Guard {
        let http = Http {
            allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            cors_allow_origins: vec!["https://app.example".into()],
            ..Http::default()
        };
        Guard::new(&http, listening.parse().unwrap())
    }

    #[test]
    fn loopback_listeners_answer_loopback_names_and_listed_ones() {
        let g = guard(&["camera.local"], "127.0.0.1:11438");
        for host in [
            "localhost:11438",
            "LOCALHOST",
            "api.localhost:80",
            "127.0.0.1:11438",
            "127.8.9.10",
            "[::1]:11438",
            "[::ffff:127.0.0.1]",
            "camera.local:11438",
            "camera.local.",
        ] {
            assert!(g.host_allowed(host_name(host)), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:11438",
            "localhost.evil.example",
            "192.168.1.5:11438",
            "[::2]",
            "",
        ] {
            assert!(!g.host_allowed(host_name(host)), "{host}");
        }
        assert!(guard(&[], "0.0.0.0:1").host_allowed("evil.example"));
        assert!(!guard(&["camera.local"], "0.0.0.0:1").host_allowed("evil.example"));
        assert!(guard(&["*"], "127.0.0.1:1").host_allowed("evil.example"));
    }

    #[test]
    fn origins_are_this_service_or_listed() {
        let g = guard(&[], "127.0.0.1:11438");
        assert!(g.origin_allowed("http://127.0.0.1:11438", Some("127.0.0.1:11438")));
        assert!(g.origin_allowed("https://app.example", Some("127.0.0.1:11438")));
        assert!(!g.origin_allowed("https://evil.example", Some("127.0.0.1:11438")));
        assert!(!g.origin_allowed("null", Some("127.0.0.1:11438")));
        assert!(!g.origin_allowed("http://127.0.0.1:11438", None));
    }
}
