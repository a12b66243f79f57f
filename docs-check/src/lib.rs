//! What the documentation tests read from README.md and the book's chapters
//! (`docs/src/*.md`): fenced code blocks and the command lines in them, links,
//! and the anchors headings get. Parsed as CommonMark by pulldown-cmark, so a
//! `#` inside a code block is not a heading and a link inside one is not a link.
//!
//! The tests are in `tests/`: `links.rs` (relative links and `#anchors`
//! resolve), `commands.rs` (every command line is mapped to the test or
//! script that runs it), `layout.rs` (the layout chapter against the tree),
//! `book.rs` (mdbook builds the book).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

/// The checkout's root (this crate sits one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("docs-check sits inside the checkout")
        .to_path_buf()
}

/// The book's chapters folder.
pub fn book_src() -> PathBuf {
    root().join("docs/src")
}

/// README.md, pipelines/README.md (the examples' commands) and every chapter
/// of the book, sorted.
pub fn documents() -> io::Result<Vec<PathBuf>> {
    let mut docs = vec![root().join("README.md"), root().join("pipelines/README.md")];
    let mut chapters = Vec::new();
    for entry in std::fs::read_dir(book_src())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            chapters.push(path);
        }
    }
    chapters.sort();
    docs.extend(chapters);
    Ok(docs)
}

/// `path` relative to the checkout, for messages.
pub fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A fenced code block: its language (the info string's first word, `""`
/// when it has none), the line its fence opens on, and its text.
#[derive(Debug, Clone)]
pub struct CodeBlock {
    pub lang: String,
    pub line: usize,
    pub text: String,
}

impl CodeBlock {
    /// A block whose lines are commands to run: `sh`, `bash`, `shell`.
    pub fn is_shell(&self) -> bool {
        matches!(self.lang.as_str(), "sh" | "bash" | "shell")
    }
}

/// A link or image target, and the line it is on.
#[derive(Debug, Clone)]
pub struct Link {
    pub target: String,
    pub line: usize,
}

/// What one Markdown file holds that the tests check.
#[derive(Debug, Default)]
pub struct Document {
    pub code_blocks: Vec<CodeBlock>,
    pub links: Vec<Link>,
    /// The anchor of every heading, in order, as GitHub and mdbook make them.
    pub anchors: Vec<String>,
}

/// Parses `path`.
pub fn read(path: &Path) -> io::Result<Document> {
    let text = std::fs::read_to_string(path)?;
    Ok(parse(&text))
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses Markdown text.
pub fn parse(text: &str) -> Document {
    let mut doc = Document::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut block: Option<CodeBlock> = None;
    let mut heading: Option<String> = None;
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(kind)) => {
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => {
                        info.split_whitespace().next().unwrap_or("").to_owned()
                    }
                    // An indented block has no language: it is reported as
                    // one without, like an unlabelled fence.
                    CodeBlockKind::Indented => String::new(),
                };
                block = Some(CodeBlock {
                    lang,
                    line: line_of(text, range.start),
                    text: String::new(),
                });
            }
            Event::End(TagEnd::CodeBlock) => doc.code_blocks.extend(block.take()),
            Event::Start(Tag::Heading { .. }) => {
                heading = Some(String::new());
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = heading.take() {
                    let base = anchor_of(&h);
                    let n = seen.entry(base.clone()).or_insert(0);
                    doc.anchors
                        .push(if *n == 0 { base } else { format!("{base}-{n}") });
                    *n += 1;
                }
            }
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                doc.links.push(Link {
                    target: dest_url.to_string(),
                    line: line_of(text, range.start),
                });
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(b) = block.as_mut() {
                    b.text.push_str(&t);
                } else if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            _ => {}
        }
    }
    doc
}

/// A heading's anchor: lower case, letters, digits, `-` and `_` kept, each
/// space a `-`, everything else dropped (GitHub's rule and mdbook's
/// `normalize_id`; both then suffix repeats with `-1`, `-2`, ...).
pub fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_lowercase().collect::<String>())
            } else if c.is_whitespace() {
                Some("-".to_owned())
            } else {
                None
            }
        })
        .collect()
}

/// The command lines of a shell block: lines continued with `\` joined,
/// comment lines dropped, a trailing comment (`  # ...`, or ` # ` after the
/// command) cut, runs of spaces made one.
pub fn commands(block: &CodeBlock) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for raw in block.text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let command = cut_comment(&pending);
        if !command.is_empty() {
            out.push(command);
        }
        pending.clear();
    }
    if !pending.trim().is_empty() {
        out.push(cut_comment(&pending));
    }
    out
}

fn cut_comment(line: &str) -> String {
    let cut = [line.find("  #"), line.find(" # ")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(line.len());
    line[..cut].split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_github_and_mdbook() {
        assert_eq!(anchor_of("Raspberry Pi 5 + Hailo"), "raspberry-pi-5--hailo");
        assert_eq!(
            anchor_of("The REST service (florenced)"),
            "the-rest-service-florenced"
        );
        let doc = parse("# A\n\n## A\n\n## `x.rs` and y\n");
        assert_eq!(doc.anchors, ["a", "a-1", "xrs-and-y"]);
    }

    #[test]
    fn commands_join_continuations_and_drop_comments() {
        let doc = parse(
            "```sh\n# a comment\nfoo a \\\n   b  # trailing\nbar x # note\n\n```\n\
             ```text\nnot a command\n```\n",
        );
        assert_eq!(doc.code_blocks.len(), 2);
        assert!(doc.code_blocks[0].is_shell() && !doc.code_blocks[1].is_shell());
        assert_eq!(commands(&doc.code_blocks[0]), ["foo a b", "bar x"]);
    }

    #[test]
    fn links_inside_code_are_not_links() {
        let doc = parse("[a](x.md#b) `[c](d)`\n\n```sh\n[e](f)\n```\n");
        let targets: Vec<_> = doc.links.iter().map(|l| l.target.as_str()).collect();
        assert_eq!(targets, ["x.md#b"]);
    }
}
