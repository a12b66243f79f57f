//! One file into the cache: resumed from `blobs/<etag>.incomplete` when an
//! earlier transfer was cut, checked against the Hub's digest and size, and
//! renamed to `blobs/<etag>` only when whole, so nothing half-downloaded is
//! ever used. Written here rather than taken from hf-hub: hf-hub 0.5 neither
//! verifies digests nor checks that a server honoured the Range it asked for
//! (a 200 answer to a resume is appended to the partial file), and hf-hub 1.0
//! restarts every interrupted download from zero.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use ureq::http::StatusCode;

use super::cache::RepoCache;
use super::error::{PullError, mib};
use super::hub::{FileMeta, Hub};
use super::progress::Reporter;

/// Failed attempts in a row (no byte received in between) before giving up.
const ATTEMPTS: u32 = 5;
const BUFFER: usize = 256 * 1024;

/// The digest the Hub publishes for a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Digest {
    /// An LFS file: the sha256 of its content.
    Sha256(String),
    /// A regular git file: its blob id, sha1("blob <size>\0" + content).
    GitSha1(String),
}

#[derive(Debug, Clone)]
pub struct Expected {
    pub size: u64,
    pub digest: Digest,
}

enum Hasher {
    Sha256(Sha256),
    Sha1(Sha1),
}

impl Hasher {
    fn new(expected: &Expected) -> Hasher {
        match expected.digest {
            Digest::Sha256(_) => Hasher::Sha256(Sha256::new()),
            Digest::GitSha1(_) => {
                let mut h = Sha1::new();
                h.update(format!("blob {}\0", expected.size).as_bytes());
                Hasher::Sha1(h)
            }
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha1(h) => h.update(bytes),
        }
    }

    fn hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The partial file and the digest of what it holds so far.
struct Partial {
    file: File,
    path: std::path::PathBuf,
    len: u64,
    hasher: Hasher,
}

impl Partial {
    /// Opens (or creates) the partial file and hashes the bytes already there.
    fn open(path: std::path::PathBuf, expected: &Expected) -> Result<Partial, PullError> {
        let io = |e| PullError::io(&path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut len = file.metadata().map_err(io)?.len();
        if len > expected.size {
            file.set_len(0).map_err(io)?;
            len = 0;
        }
        let mut hasher = Hasher::new(expected);
        let mut buf = vec![0u8; BUFFER];
        let mut left = len;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        while left > 0 {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            let n = n.min(left as usize);
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        Ok(Partial {
            file,
            path,
            len: len - left,
            hasher,
        })
    }

    fn restart(&mut self, expected: &Expected) -> Result<(), PullError> {
        self.file
            .set_len(0)
            .map_err(|e| PullError::io(&self.path, e))?;
        self.len = 0;
        self.hasher = Hasher::new(expected);
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), PullError> {
        self.file
            .seek(SeekFrom::Start(self.len))
            .and_then(|_| self.file.write_all(bytes))
            .map_err(|e| PullError::io(&self.path, e))?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// Whether a 206 answer starts where we asked (`Content-Range: bytes N-...`).
fn range_starts_at(resp: &ureq::http::Response<ureq::Body>, offset: u64) -> bool {
    resp.headers()
        .get("Content-Range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.trim().parse::<u64>().ok())
        == Some(offset)
}

/// Downloads `file` (metadata `meta`) into `blobs/<meta.etag>`.
pub fn fetch(
    hub: &Hub,
    cache: &RepoCache,
    file: &str,
    meta: &FileMeta,
    expected: &Expected,
    reporter: &Reporter,
) -> Result<(), PullError> {
    let blob = cache.blob(&meta.etag);
    let blobs = blob.parent().unwrap_or(cache.root()).to_path_buf();
    std::fs::create_dir_all(&blobs).map_err(|e| PullError::io(&blobs, e))?;
    let lock_path = cache.lock_path(&meta.etag);
    if let Some(dir) = lock_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| PullError::io(dir, e))?;
    }
    // The lock huggingface_hub takes too: two processes never write one blob.
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| PullError::io(&lock_path, e))?;
    if lock.try_lock().is_err() {
        reporter.info(&format!(
            "{file}: waiting for another download of it to finish"
        ));
        lock.lock().map_err(|e| PullError::io(&lock_path, e))?;
    }
    if std::fs::metadata(&blob).is_ok_and(|m| m.len() == expected.size) {
        return Ok(());
    }
    let incomplete = cache.incomplete(&meta.etag);
    let have = std::fs::metadata(&incomplete).map_or(0, |m| m.len().min(expected.size));
    let needed = expected.size - have;
    if let Some(free) = super::disk::available_bytes(&blobs)
        && free < needed
    {
        return Err(PullError::DiskFull {
            path: blobs,
            detail: format!("{file} needs {} more, {} free", mib(needed), mib(free)),
        });
    }
    let mut part = Partial::open(incomplete, expected)?;
    let mut progress = reporter.file(file, expected.size, part.len);
    match transfer(hub, file, meta, expected, &mut part, &mut progress) {
        Ok(()) => {}
        Err(e) => {
            progress.abandon();
            return Err(e);
        }
    }
    let actual = std::mem::replace(&mut part.hasher, Hasher::new(expected)).hex();
    let (algorithm, want) = match &expected.digest {
        Digest::Sha256(h) => ("sha256", h),
        Digest::GitSha1(h) => ("git blob sha1", h),
    };
    if !actual.eq_ignore_ascii_case(want) {
        progress.abandon();
        drop(part.file);
        let _ = std::fs::remove_file(&part.path);
        return Err(PullError::Corrupt {
            file: file.to_owned(),
            algorithm,
            expected: want.clone(),
            actual,
        });
    }
    part.file
        .sync_all()
        .map_err(|e| PullError::io(&part.path, e))?;
    std::fs::rename(&part.path, &blob).map_err(|e| PullError::io(&blob, e))?;
    progress.finish();
    drop(lock);
    Ok(())
}

/// Reads the file into `part` until it has `expected.size` bytes, resuming
/// with a Range request after a cut connection.
fn transfer(
    hub: &Hub,
    file: &str,
    meta: &FileMeta,
    expected: &Expected,
    part: &mut Partial,
    progress: &mut super::progress::FileProgress,
) -> Result<(), PullError> {
    let mut failures = 0;
    let mut last_cause = String::new();
    let mut buf = vec![0u8; BUFFER];
    while part.len < expected.size {
        if failures >= ATTEMPTS {
            return Err(PullError::Interrupted {
                file: file.to_owned(),
                bytes: part.len,
                cause: last_cause,
            });
        }
        if failures > 0 {
            progress.note(&format!(
                "{file}: {last_cause}; resuming at byte {}",
                part.len
            ));
            std::thread::sleep(Duration::from_secs(1));
        }
        let offset = part.len;
        let resp = match hub.get(&meta.location, offset) {
            Ok(r) => r,
            Err(PullError::Unreachable { cause, .. }) => {
                failures += 1;
                last_cause = cause;
                continue;
            }
            Err(e) => return Err(e),
        };
        match resp.status() {
            StatusCode::PARTIAL_CONTENT if offset > 0 && range_starts_at(&resp, offset) => {}
            StatusCode::OK | StatusCode::PARTIAL_CONTENT if offset == 0 => {}
            // The server ignored the Range (or answered another one): start over
            // rather than append the wrong bytes.
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {
                progress.note(&format!(
                    "{file}: the server did not resume at byte {offset}; starting over"
                ));
                part.restart(expected)?;
                progress.restart(0);
                if resp.status() == StatusCode::PARTIAL_CONTENT {
                    failures += 1;
                    last_cause = "wrong Content-Range".into();
                    continue;
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                part.restart(expected)?;
                progress.restart(0);
                failures += 1;
                last_cause = "range not satisfiable".into();
                continue;
            }
            status => {
                return Err(PullError::Http {
                    url: meta.location.clone(),
                    status: status.as_u16(),
                    message: format!("while downloading {file}"),
                });
            }
        }
        let mut reader = resp.into_body().into_reader();
        let before = part.len;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if part.len + n as u64 > expected.size {
                        let actual = part.len + n as u64;
                        drop(part.file.set_len(0));
                        let _ = std::fs::remove_file(&part.path);
                        return Err(PullError::SizeMismatch {
                            file: file.to_owned(),
                            expected: expected.size,
                            actual,
                        });
                    }
                    part.append(&buf[..n])?;
                    progress.advance(n as u64);
                }
                Err(e) => {
                    last_cause = format!("connection lost: {e}");
                    break;
                }
            }
        }
        if part.len < expected.size {
            if part.len == before {
                failures += 1;
            } else {
                failures = 1;
            }
            if last_cause.is_empty() {
                last_cause = "connection closed early".into();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_ids_hash_the_header_and_content() {
        // `git hash-object` of "hello\n".
        let expected = Expected {
            size: 6,
            digest: Digest::GitSha1("ce013625030ba8dba906f756967f9e9ca394464a".into()),
        };
        let mut h = Hasher::new(&expected);
        h.update(b"hello\n");
        assert_eq!(h.hex(), "ce013625030ba8dba906f756967f9e9ca394464a");
    }

    #[test]
    fn a_partial_file_is_hashed_as_far_as_it_goes() {
        let scratch = florence_test_support::scratch::Scratch::new("partial");
        let path = scratch.path().join("partial");
        std::fs::write(&path, b"hel").unwrap();
        let expected = Expected {
            size: 6,
            digest: Digest::Sha256(String::new()),
        };
        let mut p = Partial::open(path.clone(), &expected).unwrap();
        assert_eq!(p.len, 3);
        p.append(b"lo\n").unwrap();
        let got = std::mem::replace(&mut p.hasher, Hasher::new(&expected)).hex();
        assert_eq!(
            got,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"hello\n");
    }
}
