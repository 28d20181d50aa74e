//! The library's reference (docs/library.md) must match the code: the result codes (their names,
//! in their numeric order, and how many) and the functions the C header exports.

mod common;

use up42webhooks::Code;

fn readme() -> String {
    std::fs::read_to_string(common::root().join("docs/library.md")).unwrap()
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
    let header = std::fs::read_to_string(common::root().join("include/up42webhooks.h")).unwrap();
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
