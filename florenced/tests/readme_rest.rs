//! The README's REST service section, run as written: its serve command (the
//! debug build in place of `./target/release/florenced`, on an ephemeral port)
//! and every `curl` command of the block that follows, with the daemon's
//! address in place of `127.0.0.1:11438`, each through `sh -c` from the
//! checkout's root like a user's shell.

mod common;

use std::process::Command;

use common::{Spawn, root};

/// The shell blocks of the README's section `heading`, each as its command
/// lines (continuations joined, comment lines and trailing comments dropped).
fn section_commands(heading: &str) -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading:?} in the README"));
    let section = &readme[start + 1..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |i| i + 1)];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(l) = lines.next() {
        if l.trim() != "```sh" {
            continue;
        }
        let mut commands = Vec::new();
        let mut pending = String::new();
        for l in lines.by_ref() {
            let l = l.trim();
            if l == "```" {
                break;
            }
            if pending.is_empty() && (l.is_empty() || l.starts_with('#')) {
                continue;
            }
            if let Some(head) = l.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            pending.push_str(l);
            let command = pending.split("  #").next().unwrap().trim().to_owned();
            commands.push(command);
            pending.clear();
        }
        blocks.push(commands);
    }
    blocks
}

#[test]
fn the_readmes_serve_and_curl_commands_answer() {
    let blocks = section_commands("## The REST service (florenced)");
    assert!(
        blocks.len() >= 2,
        "a serve block and a curl block: {blocks:?}"
    );
    let serve: Vec<&str> = blocks[0][0].split_whitespace().collect();
    assert_eq!(serve[0], "./target/release/florenced", "{serve:?}");
    let mut spawn = Spawn::new();
    spawn.args = serve[1..].iter().map(|a| a.to_string()).collect();
    spawn
        .args
        .extend(["--port", "0", "--threads", "1", "--log-format", "json"].map(String::from));
    let daemon = spawn.ready();

    let curls = &blocks[1];
    assert!(curls.len() >= 5, "the README's curl commands: {curls:?}");
    for line in curls {
        assert!(line.starts_with("curl "), "not a curl command: {line}");
        assert!(line.contains("http://127.0.0.1:11438/"), "{line}");
        let command = line.replace("127.0.0.1:11438", &daemon.addr.to_string());
        let out = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(root())
            .output()
            .expect("sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{line}\nfailed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{line}\nanswered no JSON ({e}): {stdout}"));
        assert!(
            answer.get("error").is_none(),
            "{line}\nanswered an error: {answer}"
        );
        let expected = if line.contains("/v1/caption") {
            "caption"
        } else if line.contains("/v1/tasks/") {
            "result"
        } else if line.contains("/health") {
            "status"
        } else if line.contains("/metrics") {
            "requests_total"
        } else {
            panic!("a curl command this test does not know: {line}")
        };
        assert!(
            answer.get(expected).is_some(),
            "{line}\nno {expected:?} in {answer}"
        );
    }
}
