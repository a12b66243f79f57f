//! The layout chapter (`docs/src/layout.md`) against the tree: every file in
//! the folders it must cover is listed, and every path it lists exists.
//! A listed path is the first code span of a list item (`- `path`: what it
//! is`), written from the checkout's root; folders end in `/`.

use std::collections::BTreeSet;
use std::path::Path;

use docs_check::{book_src, root};

/// Folders whose every file the chapter lists, one line each.
const COVERED: [&str; 8] = [
    "gst-florence/src",
    "florenced/src",
    "hailo-standin",
    "seccomp-exec",
    "scripts",
    "systemd",
    "tools",
    "pipelines",
];

/// Never source: Python's byte-code caches.
fn skipped(name: &str) -> bool {
    name == "__pycache__" || name.ends_with(".pyc")
}

fn files_under(dir: &Path, out: &mut BTreeSet<String>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("a folder entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if skipped(&name) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            let rel = path.strip_prefix(root()).expect("under the root");
            out.insert(rel.to_string_lossy().into_owned());
        }
    }
}

/// The paths the chapter lists.
fn listed() -> BTreeSet<String> {
    let text = std::fs::read_to_string(book_src().join("layout.md")).expect("docs/src/layout.md");
    text.lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix("- `")?;
            Some(rest[..rest.find('`')?].to_owned())
        })
        .collect()
}

#[test]
fn layout_chapter_lists_the_tree() {
    let listed = listed();
    let mut tree = BTreeSet::new();
    for dir in COVERED {
        files_under(&root().join(dir), &mut tree);
    }
    let missing: Vec<_> = tree.iter().filter(|p| !listed.contains(*p)).collect();
    let stale: Vec<_> = listed
        .iter()
        .filter(|p| !root().join(p.trim_end_matches('/')).exists())
        .collect();
    let mut report = String::new();
    if !missing.is_empty() {
        report += "in the tree, not in docs/src/layout.md (add a line each):\n";
        for p in &missing {
            report += &format!("  - `{p}`\n");
        }
    }
    if !stale.is_empty() {
        report += "in docs/src/layout.md, not in the tree (moved or removed: update or drop):\n";
        for p in &stale {
            report += &format!("  - `{p}`\n");
        }
    }
    assert!(report.is_empty(), "{report}");
}
