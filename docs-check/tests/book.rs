//! The book in `docs/` builds with the pinned mdbook (scripts/setup.sh
//! installs it), its SUMMARY.md lists every chapter in `docs/src` and names no
//! missing one (book.toml turns off mdbook's creation of missing chapters),
//! and every chapter comes out as a page.

use std::path::PathBuf;
use std::process::Command;

use docs_check::{book_src, root, shown};

/// mdbook from PATH, or where `cargo install` puts it.
fn mdbook() -> PathBuf {
    let in_path = Command::new("mdbook").arg("--version").output();
    if in_path.is_ok_and(|o| o.status.success()) {
        return PathBuf::from("mdbook");
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("HOME or CARGO_HOME set");
    let installed = home.join("bin/mdbook");
    assert!(
        installed.is_file(),
        "mdbook is not installed (neither on PATH nor at {}): run `bash scripts/setup.sh`",
        installed.display()
    );
    installed
}

#[test]
fn the_book_builds_with_every_chapter() {
    let summary =
        std::fs::read_to_string(book_src().join("SUMMARY.md")).expect("docs/src/SUMMARY.md");
    let listed: Vec<String> = docs_check::parse(&summary)
        .links
        .into_iter()
        .map(|l| l.target)
        .collect();
    let mut chapters = Vec::new();
    for entry in std::fs::read_dir(book_src()).expect("docs/src") {
        let name = entry
            .expect("a folder entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".md") && name != "SUMMARY.md" {
            chapters.push(name);
        }
    }
    chapters.sort();
    let unlisted: Vec<_> = chapters.iter().filter(|c| !listed.contains(c)).collect();
    assert!(
        unlisted.is_empty(),
        "chapters missing from docs/src/SUMMARY.md: {unlisted:?}"
    );

    // The README's command as written; book.toml sends the output to
    // target/book.
    let out_dir = root().join("target/book");
    let out = Command::new(mdbook())
        .args(["build", "docs"])
        .current_dir(root())
        .output()
        .expect("mdbook runs");
    assert!(
        out.status.success(),
        "mdbook build failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for chapter in &chapters {
        let page = out_dir.join(chapter.replace(".md", ".html"));
        assert!(page.is_file(), "no page {} for {chapter}", shown(&page));
    }
}
