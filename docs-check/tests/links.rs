//! Every relative link and `#anchor` in README.md and the book's chapters
//! resolves: the file or folder exists, and an anchor into a Markdown file is
//! one of its headings. Links in the book stay inside `docs/src`, so they work
//! both on the forge and in the built book (mdbook turns `x.md` into `x.html`).
//! External links are listed, never fetched (the tests have no network).

use std::collections::BTreeSet;
use std::path::Path;

use docs_check::{book_src, documents, read, shown};

#[test]
fn relative_links_and_anchors_resolve() {
    let mut broken = Vec::new();
    let mut external = BTreeSet::new();
    for doc in documents().expect("README.md and docs/src readable") {
        let parsed = read(&doc).expect("a readable Markdown file");
        let in_book = doc.starts_with(book_src());
        for link in &parsed.links {
            let at = format!("{}:{}: {}", shown(&doc), link.line, link.target);
            let t = link.target.as_str();
            if t.contains("://") || t.starts_with("mailto:") {
                external.insert(t.to_owned());
                continue;
            }
            let (path, anchor) = match t.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (t, None),
            };
            let dir = doc.parent().expect("a file has a folder");
            let target = if path.is_empty() {
                doc.clone()
            } else {
                normalise(&dir.join(path))
            };
            if !target.exists() {
                broken.push(format!("{at}: no such file or folder"));
                continue;
            }
            if in_book && !target.starts_with(book_src()) {
                broken.push(format!(
                    "{at}: leaves docs/src, so it breaks in the built book"
                ));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if target.extension().is_none_or(|e| e != "md") {
                broken.push(format!("{at}: an anchor into a file that is not Markdown"));
                continue;
            }
            let anchors = read(&target).expect("a readable Markdown file").anchors;
            if !anchors.iter().any(|a| a == anchor) {
                broken.push(format!(
                    "{at}: no heading with anchor #{anchor} in {} (it has: {})",
                    shown(&target),
                    anchors.join(", ")
                ));
            }
        }
    }
    for url in &external {
        println!("external link, not fetched: {url}");
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// `a/b/../c` as `a/c`, without touching the file system (a missing file
/// must still be reported by its path).
fn normalise(path: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
