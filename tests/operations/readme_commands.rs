//! Every shell block of the README's operator sections (everything before "## Settings") runs here,
//! taken from the README itself, in order, in one bash, in a copy of the project (make's cargo
//! replaced by a release build made here, tests/common/make.rs), against a real receiver and a real
//! redis-server. Where a ```text block follows a block, each of its lines must appear in that
//! block's output, in order (`...` stands for any text). A block marked `sh no-run: <why>` needs
//! what this machine cannot give (an UP42 account, a public DNS name, a registry, systemd): it is
//! checked for syntax only. The quick start's block is marked `sh quickstart`: its first command
//! runs here, its second is `make test`, which is what CI runs (.ci/run).
//!
//! The README's ports (9888, 9889 and Redis's 6379) become free ports in the commands and their
//! expected output; nothing else of a block is changed.

use crate::common::make::{project_copy, release_dir};
use crate::common::nginx::free_port;
use crate::common::redis::Redis;
use crate::common::Scratch;
use std::process::Command;

#[derive(Debug)]
struct Block {
    /// What follows ```sh: "", "quickstart" or "no-run: why".
    kind: String,
    code: String,
    expect: Option<String>,
    line: usize,
}

/// The fenced blocks before "## Settings": each ```sh one, with the ```text block after it.
fn blocks(readme: &str) -> Vec<Block> {
    let operator = &readme[..readme.find("\n## Settings").expect("a Settings section")];
    let mut out: Vec<Block> = Vec::new();
    let mut lines = operator.lines().enumerate().peekable();
    let mut last_was_sh = false;
    while let Some((n, line)) = lines.next() {
        let trimmed = line.trim_start();
        let Some(info) = trimmed.strip_prefix("```") else {
            if !trimmed.is_empty() {
                last_was_sh = false;
            }
            continue;
        };
        let indent = line.len() - trimmed.len();
        let mut body = String::new();
        for (_, l) in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            body.push_str(l.get(indent..).unwrap_or(l.trim_start()));
            body.push('\n');
        }
        let info = info.trim();
        if info == "sh" || info.starts_with("sh ") {
            out.push(Block {
                kind: info[2..].trim().to_string(),
                code: body,
                expect: None,
                line: n + 1,
            });
            last_was_sh = true;
        } else if info == "text" && last_was_sh {
            out.last_mut().unwrap().expect = Some(body);
            last_was_sh = false;
        } else {
            panic!(
                "README line {}: a ```{info} block in the operator sections (sh or text only)",
                n + 1
            );
        }
    }
    out
}

/// An expected line as a pattern: `...` is any text, the rest literal.
fn matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    let mut rest = line;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part) && (part.is_empty() || rest.len() >= part.len());
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

#[test]
fn every_operator_command_in_the_readme_runs_and_shows_what_it_says() {
    let readme = std::fs::read_to_string(crate::common::root().join("README.md")).unwrap();
    let all = blocks(&readme);
    assert!(all.len() >= 10, "{all:?}");

    // Syntax only, for what needs the outside world; each says what it needs.
    for b in all.iter().filter(|b| b.kind.starts_with("no-run")) {
        assert!(
            b.kind.len() > "no-run: ".len() && b.kind.starts_with("no-run: "),
            "README line {}: say what the block needs: ```sh no-run: <why>",
            b.line
        );
        let out = Command::new("bash")
            .args(["-n", "-c", &b.code])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "README line {}: bash -n: {}",
            b.line,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The quick start: exactly two commands, the second the one CI runs.
    let quick: Vec<&Block> = all.iter().filter(|b| b.kind == "quickstart").collect();
    assert_eq!(quick.len(), 1, "one quick start block");
    let commands: Vec<&str> = quick[0].code.lines().collect();
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert_eq!(commands[0], "make secret serve");
    assert_eq!(commands[1], "make test");
    let ci = std::fs::read_to_string(crate::common::root().join(".ci/run")).unwrap();
    assert_eq!(
        ci.lines().rev().find(|l| !l.trim().is_empty()),
        Some("make test")
    );

    let copy = Scratch::new("make-readme");
    project_copy(copy.path());
    let release = release_dir();
    let (port, admin) = (free_port(), free_port());
    let redis = Redis::start("readme");
    let redis_port = redis.port;
    // `make` here is the real one with cargo replaced and this run's ports.
    let shim = copy.path().join("bin");
    std::fs::create_dir_all(&shim).unwrap();
    let real_make = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v make"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::fs::write(
        shim.join("make"),
        format!(
            "#!/bin/sh\nexec {} CARGO=true RELEASE_DIR={} PORT={port} ADMIN_PORT={admin} \"$@\"\n",
            real_make.trim(),
            release.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        shim.join("make"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let ports = |s: &str| {
        s.replace("9888", &port.to_string())
            .replace("9889", &admin.to_string())
            .replace("6379", &redis_port.to_string())
    };

    let runnable: Vec<(&Block, String)> = all
        .iter()
        .filter(|b| !b.kind.starts_with("no-run"))
        .map(|b| {
            let code = if b.kind == "quickstart" {
                format!("{}\n", b.code.lines().next().unwrap())
            } else {
                b.code.clone()
            };
            assert!(
                b.kind.is_empty() || b.kind == "quickstart",
                "README line {}: ```sh {}",
                b.line,
                b.kind
            );
            (b, ports(&code))
        })
        .collect();
    let mut script = String::from("set -eo pipefail\nexec 2>&1\n");
    for (i, (_, code)) in runnable.iter().enumerate() {
        script.push_str(&format!("printf '\\n@@block {i}\\n'\n{code}"));
    }
    script.push_str("printf '\\n@@end\\n'\n");
    let mut bash = Command::new("timeout");
    crate::common::hermetic(&mut bash)
        .args(["180", "bash", "-c", &script])
        .current_dir(copy.path())
        .env(
            "PATH",
            format!("{}:{}", shim.display(), std::env::var("PATH").unwrap()),
        );
    let out = bash.output().unwrap();
    let mut stop = Command::new(shim.join("make"));
    let _ = crate::common::hermetic(&mut stop)
        .arg("stop")
        .current_dir(copy.path())
        .output();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();

    let mut outputs: Vec<String> = vec![String::new(); runnable.len()];
    let mut current: Option<usize> = None;
    let mut ended = false;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("@@block ") {
            current = Some(n.parse().unwrap());
        } else if line == "@@end" {
            ended = true;
        } else if let Some(i) = current {
            outputs[i].push_str(line);
            outputs[i].push('\n');
        }
    }
    assert!(
        ended && out.status.success(),
        "README line {}: the block failed ({}):\n{}\n---\n{}",
        current.map_or(0, |i| runnable[i].0.line),
        out.status,
        current.map_or("", |i| runnable[i].1.as_str()),
        current.map_or(text.as_str(), |i| outputs[i].as_str())
    );
    for (i, (b, _)) in runnable.iter().enumerate() {
        let Some(expect) = &b.expect else { continue };
        let got: Vec<&str> = outputs[i].lines().collect();
        let mut at = 0;
        for want in ports(expect).lines() {
            match got[at..].iter().position(|l| matches(want, l)) {
                Some(p) => at += p + 1,
                None => panic!(
                    "README line {}: expected a line {want:?} (in order) in:\n{}",
                    b.line, outputs[i]
                ),
            }
        }
    }
}

#[test]
fn expected_output_patterns() {
    assert!(matches("a...c", "abbbc"));
    assert!(matches("...x...", "axb"));
    assert!(matches("exact", "exact"));
    assert!(!matches("exact", "exactly"));
    assert!(!matches("a...c", "abd"));
    assert!(matches("{...\"next\":1...}", "{\"number\":2,\"next\":1}"));
}
