//! Header fields a request may carry at most once.
//!
//! RFC 9112 §3.2: a server must answer 400 to a request with more than one
//! Host line. RFC 9110 §5.3 forbids repeating any field that is not a list,
//! and for the ones florenced reads, a second line leaves the request
//! ambiguous: which Host is checked against the allow-list, which
//! Content-Type says how the body is read, which credentials or Origin are
//! checked. Taking the first would let a request be judged by one line and
//! read by something else by another; so a repeat is refused with 400 before
//! any of them is looked at. (Two different Content-Length values are refused
//! by hyper with 400 before the request gets here; equal ones are one length.)

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;

/// The non-list fields florenced reads.
static SINGLE: [HeaderName; 5] = [
    header::HOST,
    header::CONTENT_TYPE,
    header::AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    header::ORIGIN,
];

/// The first field of `SINGLE` that has more than one line, with its count.
fn repeated(headers: &HeaderMap) -> Option<(&'static HeaderName, usize)> {
    SINGLE.iter().find_map(|name| {
        let n = headers.get_all(name).iter().count();
        (n > 1).then_some((name, n))
    })
}

/// Refuses a request that repeats a field of `SINGLE` (400 `bad_request`).
pub async fn refuse_repeated(req: Request, next: Next) -> Response {
    if let Some((name, n)) = repeated(req.headers()) {
        return ApiError::bad_request(format!(
            "the request has {n} {name} header lines; HTTP allows one (RFC 9112 §3.2, RFC 9110 §5.3)"
        ))
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_each_passes_and_a_second_is_named() {
        let mut h = HeaderMap::new();
        h.append(header::HOST, "localhost".parse().unwrap());
        h.append(header::ACCEPT, "a".parse().unwrap());
        h.append(header::ACCEPT, "b".parse().unwrap());
        assert_eq!(repeated(&h), None);
        h.append(header::HOST, "evil.example".parse().unwrap());
        assert_eq!(repeated(&h), Some((&header::HOST, 2)));
    }
}
