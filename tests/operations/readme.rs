//! The reference tables must match the code: docs/library.md's result codes (their names, in their
//! numeric order, and how many) and the functions the C header exports; docs/settings.md (every
//! configure{} option and environment variable).

use up42webhooks::Code;

fn readme() -> String {
    std::fs::read_to_string(crate::common::root().join("docs/library.md")).unwrap()
}

#[test]
fn the_result_codes_are_listed_in_order_with_their_count() {
    let text = readme();
    let start = text
        .find("Result codes: ")
        .expect("a Result codes paragraph");
    let para = &text[start..text[start..].find("\n\n").map_or(text.len(), |e| start + e)];
    let names: Vec<&str> = para
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(
        names, codes,
        "docs/library.md's result codes, in numeric order"
    );
    let last = Code::ALL.len() - 1;
    assert!(
        para.replace('\n', " ")
            .contains(&format!("(numbered 0 to {last} in this order)")),
        "{para}"
    );
}

#[test]
fn every_exported_function_is_in_the_c_abi_table() {
    let header =
        std::fs::read_to_string(crate::common::root().join("include/up42webhooks.h")).unwrap();
    let text = readme();
    // A declared function is a name followed by its parameter list.
    let mut exported: Vec<&str> = header
        .split('(')
        .filter_map(|before| {
            before
                .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
        })
        .filter(|w| w.starts_with("up42wh_"))
        .collect();
    exported.sort_unstable();
    exported.dedup();
    assert!(exported.len() >= 28, "{exported:?}");
    let table = &text[text.find("## The C ABI").unwrap()..];
    for f in exported {
        assert!(
            table.contains(&format!("`{f}(")),
            "{f} is not in docs/library.md's C ABI table"
        );
    }
}

/// The identifiers that stand as keys at the top level of the Lua table starting at `start`.
fn table_keys(lua: &str, start: &str) -> Vec<String> {
    let from = lua.find(start).unwrap_or_else(|| panic!("{start}")) + start.len();
    let mut keys = Vec::new();
    let mut depth = 1;
    let mut word = String::new();
    let mut chars = lua[from..].chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                // A comment, to the end of its line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                }
            }
            _ => {}
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if depth == 1 && c == '=' && !word.is_empty() {
            keys.push(word.clone());
        }
        if !c.is_whitespace() {
            word.clear();
        }
    }
    keys
}

/// docs/settings.md's tables name every configure{} option and every environment variable the
/// module, the config and the images read.
#[test]
fn the_settings_tables_name_every_option_and_variable() {
    let settings = std::fs::read_to_string(crate::common::root().join("docs/settings.md")).unwrap();
    let config =
        std::fs::read_to_string(crate::common::root().join("lua/up42webhooks/config.lua")).unwrap();
    let mut options = table_keys(&config, "local DEFAULTS = {");
    options.extend(table_keys(&config, "local OPTIONS = {"));
    assert!(
        options.len() > 25 && options.contains(&"secret_file".to_string()),
        "{options:?}"
    );
    for o in &options {
        assert!(
            settings.contains(&format!("`{o}`")),
            "the settings do not name `{o}`"
        );
    }
    let mut sources = String::new();
    for dir in ["lua", "lua/up42webhooks", "openresty"] {
        for e in std::fs::read_dir(crate::common::root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                sources.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    for f in [
        "Makefile",
        "Dockerfile",
        "Dockerfile.debian",
        "docker-compose.yml",
        "docker-compose.secret.yml",
        "docker-compose.tls.yml",
    ] {
        sources.push_str(&std::fs::read_to_string(crate::common::root().join(f)).unwrap());
    }
    let mut vars: Vec<&str> = sources
        .match_indices("UP42_WEBHOOK_")
        .map(|(at, _)| {
            let rest = &sources[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            rest[..end].trim_end_matches('_')
        })
        // `UP42_WEBHOOK_*`, the family (make serve remembers every one of it), is no setting.
        .filter(|v| *v != "UP42_WEBHOOK")
        .collect();
    vars.sort_unstable();
    vars.dedup();
    assert!(vars.len() >= 15, "{vars:?}");
    for v in vars {
        assert!(
            settings.contains(&format!("`{v}`")),
            "the settings do not name `{v}`"
        );
    }
}
