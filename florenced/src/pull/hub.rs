//! The Hub's HTTP API as huggingface_hub uses it: repository info with file
//! metadata (`/api/models/{repo}/revision/{rev}?blobs=true`), a file's
//! metadata from a HEAD on `/{repo}/resolve/{commit}/{file}` (`X-Repo-Commit`,
//! `X-Linked-Etag`/`ETag`, `X-Linked-Size`, `Location`), and ranged GETs.

use std::time::Duration;

use serde::Deserialize;
use ureq::http::{Response, StatusCode, Uri};

use super::error::PullError;
use super::settings::HubSettings;

/// The repository at one commit, with each file's size and digests.
#[derive(Debug, Deserialize)]
pub struct RepoInfo {
    pub sha: Option<String>,
    #[serde(default)]
    pub siblings: Vec<Sibling>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Sibling {
    pub rfilename: String,
    #[serde(default)]
    pub size: Option<u64>,
    /// The git blob id: a regular file's ETag, hence its blob name in the cache.
    #[serde(rename = "blobId", default)]
    pub blob_id: Option<String>,
    #[serde(default)]
    pub lfs: Option<Lfs>,
}

/// Git LFS metadata: the content's sha256 (an LFS file's ETag) and size.
#[derive(Debug, Clone, Deserialize)]
pub struct Lfs {
    pub sha256: String,
    pub size: u64,
}

/// What a HEAD on a file's resolve URL says.
#[derive(Debug, Clone)]
pub struct FileMeta {
    pub etag: String,
    pub commit: Option<String>,
    pub size: Option<u64>,
    /// Where the bytes are (the CDN for LFS files).
    pub location: String,
}

pub struct Hub {
    pub endpoint: String,
    token: Option<String>,
    /// Follows no redirects: a resolve URL's redirect carries the metadata.
    meta: ureq::Agent,
    /// Follows redirects (CDN hops); drops Authorization on a host change.
    data: ureq::Agent,
}

/// `quote(s, safe="/")` for paths, or with `/` encoded too for revisions.
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn header(resp: &Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
}

/// `W/"abc"` and `"abc"` are both `abc` (huggingface_hub's `_normalize_etag`).
fn normalize_etag(e: &str) -> String {
    e.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_owned()
}

/// Scheme, host and port: what decides whether a URL is still the Hub.
fn origin(url: &str) -> Option<String> {
    let u = url.parse::<Uri>().ok()?;
    Some(format!(
        "{}://{}",
        u.scheme_str()?.to_ascii_lowercase(),
        u.authority()?.as_str().to_ascii_lowercase()
    ))
}

/// `location` made absolute against the URL that answered with it.
fn absolute(base: &str, location: &str) -> Option<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_owned());
    }
    let uri = base.parse::<Uri>().ok()?;
    let (scheme, auth) = (uri.scheme_str()?, uri.authority()?);
    location
        .starts_with('/')
        .then(|| format!("{scheme}://{auth}{location}"))
}

impl Hub {
    pub fn new(settings: &HubSettings) -> Hub {
        let agent = |redirects: u32| -> ureq::Agent {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(redirects)
                .user_agent(format!(
                    "florenced/{}; hf_hub-compatible",
                    env!("CARGO_PKG_VERSION")
                ))
                .timeout_connect(Some(Duration::from_secs(20)))
                .timeout_recv_response(Some(Duration::from_secs(60)))
                // A stalled transfer fails (and resumes) instead of hanging forever.
                .timeout_per_read(Some(Duration::from_secs(60)))
                .build()
                .into()
        };
        Hub {
            endpoint: settings.endpoint.clone(),
            token: settings.token.clone(),
            meta: agent(0),
            data: agent(10),
        }
    }

    /// The token goes to the Hub itself, never to another host (a CDN URL is presigned).
    fn auth(&self, url: &str) -> Option<String> {
        let token = self.token.as_ref()?;
        (origin(url) == origin(&self.endpoint)).then(|| format!("Bearer {token}"))
    }

    fn unreachable(&self, e: ureq::Error) -> PullError {
        PullError::Unreachable {
            endpoint: self.endpoint.clone(),
            cause: e.to_string(),
        }
    }

    /// A refusal of the Hub as the error huggingface_hub would raise.
    fn refusal(
        &self,
        repo: &str,
        revision: &str,
        url: &str,
        resp: &mut Response<ureq::Body>,
    ) -> PullError {
        let code = header(resp, "X-Error-Code").unwrap_or_default();
        let message = header(resp, "X-Error-Message").unwrap_or_default();
        let status = resp.status();
        match code.as_str() {
            "RevisionNotFound" => {
                return PullError::RevisionNotFound {
                    repo: repo.to_owned(),
                    revision: revision.to_owned(),
                };
            }
            "RepoNotFound" | "RepositoryNotFound" => {
                return PullError::RepoNotFound {
                    repo: repo.to_owned(),
                    endpoint: self.endpoint.clone(),
                    with_token: self.token.is_some(),
                };
            }
            _ => {}
        }
        // The Hub answers 401 for a repository that does not exist or is private
        // without a token, unless the token itself was refused.
        if (status == StatusCode::UNAUTHORIZED && !message.contains("Invalid credentials"))
            || (status == StatusCode::NOT_FOUND && code.is_empty())
        {
            return PullError::RepoNotFound {
                repo: repo.to_owned(),
                endpoint: self.endpoint.clone(),
                with_token: self.token.is_some(),
            };
        }
        let message = if message.is_empty() {
            resp.body_mut()
                .with_config()
                .limit(64 * 1024)
                .read_to_string()
                .ok()
                .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
                .unwrap_or_default()
        } else {
            message
        };
        let message = match code.as_str() {
            "GatedRepo" => format!(
                "{message} (a gated repository: accept its conditions on the Hub, then set HF_TOKEN)"
            ),
            _ => message,
        };
        PullError::Http {
            url: url.to_owned(),
            status: status.as_u16(),
            message,
        }
    }

    /// The repository at `revision`: its commit and its files with sizes and digests.
    pub fn repo_info(&self, repo: &str, revision: &str) -> Result<RepoInfo, PullError> {
        let url = format!(
            "{}/api/models/{repo}/revision/{}?blobs=true",
            self.endpoint,
            encode(revision, false)
        );
        let mut req = self.meta.get(&url);
        if let Some(a) = self.auth(&url) {
            req = req.header("Authorization", a);
        }
        let mut resp = req.call().map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(self.refusal(repo, revision, &url, &mut resp));
        }
        resp.body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_json::<RepoInfo>()
            .map_err(|e| PullError::Protocol {
                url,
                message: format!("repository info is not the Hub's JSON: {e}"),
            })
    }

    /// HEAD on the file's resolve URL, as huggingface_hub's `get_hf_file_metadata` does.
    pub fn file_meta(&self, repo: &str, commit: &str, file: &str) -> Result<FileMeta, PullError> {
        let mut url = format!(
            "{}/{repo}/resolve/{commit}/{}",
            self.endpoint,
            encode(file, true)
        );
        for _ in 0..5 {
            let mut req = self.meta.head(&url).header("Accept-Encoding", "identity");
            if let Some(a) = self.auth(&url) {
                req = req.header("Authorization", a);
            }
            let mut resp = req.call().map_err(|e| self.unreachable(e))?;
            let status = resp.status();
            let location = header(&resp, "Location");
            // Redirects within the Hub (a renamed repository) are followed; one to
            // another origin (the CDN) carries the metadata itself and ends the walk.
            if status.is_redirection()
                && let Some(target) = location.as_deref().and_then(|l| absolute(&url, l))
                && origin(&target) == origin(&url)
            {
                url = target;
                continue;
            }
            if !status.is_success() && !status.is_redirection() {
                return Err(self.refusal(repo, commit, &url, &mut resp));
            }
            let etag = header(&resp, "X-Linked-Etag")
                .or_else(|| header(&resp, "ETag"))
                .map(|e| normalize_etag(&e))
                .filter(|e| !e.is_empty() && super::cache::is_safe_relative(e) && !e.contains('/'))
                .ok_or_else(|| PullError::Protocol {
                    url: url.clone(),
                    message: "no ETag header".into(),
                })?;
            let size = header(&resp, "X-Linked-Size")
                .or_else(|| {
                    (!status.is_redirection())
                        .then(|| header(&resp, "Content-Length"))
                        .flatten()
                })
                .and_then(|s| s.parse().ok());
            let location = match location {
                Some(l) => absolute(&url, &l).ok_or_else(|| PullError::Protocol {
                    url: url.clone(),
                    message: format!("cannot follow Location {l:?}"),
                })?,
                None => url.clone(),
            };
            return Ok(FileMeta {
                etag,
                commit: header(&resp, "X-Repo-Commit"),
                size,
                location,
            });
        }
        Err(PullError::Protocol {
            url,
            message: "too many redirects".into(),
        })
    }

    /// GET `url` from byte `offset` on (a `Range` request when resuming).
    pub fn get(&self, url: &str, offset: u64) -> Result<Response<ureq::Body>, PullError> {
        let mut req = self.data.get(url).header("Accept-Encoding", "identity");
        if offset > 0 {
            req = req.header("Range", format!("bytes={offset}-"));
        }
        if let Some(a) = self.auth(url) {
            req = req.header("Authorization", a);
        }
        req.call().map_err(|e| self.unreachable(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_quoted_as_huggingface_hub_quotes_them() {
        assert_eq!(encode("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(encode("onnx/a b.onnx", true), "onnx/a%20b.onnx");
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag("\"abc\""), "abc");
    }

    #[test]
    fn locations_resolve_against_the_answering_url() {
        assert_eq!(
            absolute("http://127.0.0.1:5/a/resolve/x", "/cdn/1").as_deref(),
            Some("http://127.0.0.1:5/cdn/1")
        );
        assert_eq!(
            absolute("http://h/a", "https://cdn/x").as_deref(),
            Some("https://cdn/x")
        );
        assert_eq!(
            origin("HTTP://127.0.0.1:5/x").as_deref(),
            Some("http://127.0.0.1:5")
        );
        assert_ne!(
            origin("http://127.0.0.1:5/x"),
            origin("http://127.0.0.1:6/x")
        );
    }
}
