//! The strict JSON reader against JSONTestSuite (tests/vectors/json-test-suite, a copy of the public
//! suite): every `y_` file is accepted, every `n_` file refused, and each `i_` file (where RFC 8259
//! lets a parser choose) gets the answer listed here, so that a change of choice is seen.

use std::fs;
use std::path::PathBuf;

use up42webhooks::json;

fn suite() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/json-test-suite/test_parsing");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(files.len() > 300, "the suite is there");
    files
}

/// What the reader does with each implementation-defined case: true accepts.
const IMPLEMENTATION_DEFINED: &[(&str, bool)] = &[
    // Numbers are checked for their grammar, never converted: any size is accepted.
    ("i_number_double_huge_neg_exp.json", true),
    ("i_number_huge_exp.json", true),
    ("i_number_neg_int_huge_exp.json", true),
    ("i_number_pos_double_huge_exp.json", true),
    ("i_number_real_neg_overflow.json", true),
    ("i_number_real_pos_overflow.json", true),
    ("i_number_real_underflow.json", true),
    ("i_number_too_big_neg_int.json", true),
    ("i_number_too_big_pos_int.json", true),
    ("i_number_very_big_negative_int.json", true),
    // An escaped surrogate must be half of a pair: a lone one decodes to no character.
    ("i_object_key_lone_2nd_surrogate.json", false),
    ("i_string_1st_surrogate_but_2nd_missing.json", false),
    ("i_string_1st_valid_surrogate_2nd_invalid.json", false),
    ("i_string_incomplete_surrogate_and_escape_valid.json", false),
    ("i_string_incomplete_surrogate_pair.json", false),
    ("i_string_incomplete_surrogates_escape_valid.json", false),
    ("i_string_invalid_lonely_surrogate.json", false),
    ("i_string_invalid_surrogate.json", false),
    ("i_string_inverted_surrogates_U+1D11E.json", false),
    ("i_string_lone_second_surrogate.json", false),
    // JSON between systems is UTF-8 (RFC 8259 section 8.1): anything else is refused, a byte order
    // mark included.
    ("i_string_UTF-16LE_with_BOM.json", false),
    ("i_string_UTF-8_invalid_sequence.json", false),
    ("i_string_UTF8_surrogate_U+D800.json", false),
    ("i_string_invalid_utf-8.json", false),
    ("i_string_iso_latin_1.json", false),
    ("i_string_lone_utf8_continuation_byte.json", false),
    ("i_string_not_in_unicode_range.json", false),
    ("i_string_overlong_sequence_2_bytes.json", false),
    ("i_string_overlong_sequence_6_bytes.json", false),
    ("i_string_overlong_sequence_6_bytes_null.json", false),
    ("i_string_truncated-utf-8.json", false),
    ("i_string_utf16BE_no_BOM.json", false),
    ("i_string_utf16LE_no_BOM.json", false),
    ("i_structure_UTF-8_BOM_empty_object.json", false),
    // Within the 512 levels accepted.
    ("i_structure_500_nested_arrays.json", true),
];

#[test]
fn accepts_every_y_file_and_refuses_every_n_file() {
    let (mut y, mut n) = (0, 0);
    for (name, doc) in suite() {
        if name.starts_with("y_") {
            assert_eq!(json::validate(&doc), Ok(()), "{name} must be accepted");
            y += 1;
        } else if name.starts_with("n_") {
            assert!(json::validate(&doc).is_err(), "{name} must be refused");
            n += 1;
        }
    }
    assert_eq!((y, n), (95, 188));
}

#[test]
fn each_i_file_gets_the_listed_answer() {
    let files: Vec<_> = suite()
        .into_iter()
        .filter(|(n, _)| n.starts_with("i_"))
        .collect();
    assert_eq!(
        files.len(),
        IMPLEMENTATION_DEFINED.len(),
        "every i_ file is listed"
    );
    for (name, doc) in files {
        let &(_, accept) = IMPLEMENTATION_DEFINED
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} is not listed"));
        assert_eq!(json::validate(&doc).is_ok(), accept, "{name}");
    }
}

#[test]
fn a_delivery_must_be_an_object() {
    // Of the accepted files, only objects are deliveries; the rest is not_json_object.
    for (name, doc) in suite() {
        if !name.starts_with("y_") {
            continue;
        }
        let first = doc.iter().find(|b| !b" \t\r\n".contains(b)).copied();
        let r = json::read_object(&doc);
        if first == Some(b'{') {
            assert!(r.is_ok(), "{name}");
        } else {
            assert_eq!(r.unwrap_err(), up42webhooks::Code::NotJsonObject, "{name}");
        }
    }
}
