//! The public structured-field conformance suite (tests/sf-tests, copied with its LICENSE) run
//! against the library's RFC 8941 parser. Files for RFC 9651-only types (dates, display strings) are
//! not copied: the parser implements RFC 8941, which UP42 and RFC 9421 use.

use base64::Engine;
use serde_json::{json, Value};
use up42webhooks::sf::{self, BareItem, InnerList, Member, Mode, Params};

const FILES: &[&str] = &[
    "binary.json",
    "boolean.json",
    "dictionary.json",
    "examples.json",
    "item.json",
    "key-generated.json",
    "large-generated.json",
    "list.json",
    "listlist.json",
    "number-generated.json",
    "number.json",
    "param-dict.json",
    "param-list.json",
    "param-listlist.json",
    "string-generated.json",
    "string.json",
    "token-generated.json",
    "token.json",
];

fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = buf.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b));
        let chars = [0, 2, 4, 5, 7, 8][chunk.len()];
        for i in 0..8 {
            if i < chars {
                out.push(ALPHABET[((n >> (35 - 5 * i)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The suite's JSON form of a bare item; `None` when a byte sequence does not decode.
fn bare(item: &BareItem) -> Option<Value> {
    Some(match *item {
        BareItem::Integer(n) => json!(n),
        BareItem::Decimal(m) => json!(m as f64 / 1000.0),
        BareItem::String(s) => json!(String::from_utf8(s.bytes().collect()).ok()?),
        BareItem::Token(t) => json!({"__type": "token", "value": std::str::from_utf8(t).ok()?}),
        BareItem::ByteSeq(text) => {
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            json!({"__type": "binary", "value": base32(&engine.decode(text).ok()?)})
        }
        BareItem::Boolean(b) => json!(b),
    })
}

/// Inserts or, for a key seen before, overwrites in place: RFC 8941's rule for duplicate keys.
fn upsert(list: &mut Vec<Value>, key: &[u8], value: Value) {
    let key = String::from_utf8_lossy(key).into_owned();
    match list.iter_mut().find(|e| e[0] == json!(key)) {
        Some(e) => e[1] = value,
        None => list.push(json!([key, value])),
    }
}

fn params(p: &Params) -> Option<Value> {
    let mut list = Vec::new();
    for (k, v) in p.iter() {
        upsert(&mut list, k, bare(&v)?);
    }
    Some(Value::Array(list))
}

fn inner(list: &InnerList) -> Option<Value> {
    list.iter()
        .map(|(item, p)| Some(json!([bare(&item)?, params(&p)?])))
        .collect::<Option<Vec<_>>>()
        .map(Value::Array)
}

fn member(m: &Member) -> Option<Value> {
    match m {
        Member::Item(item, p) => Some(json!([bare(item)?, params(p)?])),
        Member::InnerList(list, p) => Some(json!([inner(list)?, params(p)?])),
    }
}

/// Parses `input` as `kind`; `None` when parsing fails.
fn parse(kind: &str, input: &[u8]) -> Option<Value> {
    match kind {
        "item" => {
            let (item, p) = sf::parse_item(input).ok()?;
            Some(json!([bare(&item)?, params(&p)?]))
        }
        "list" => {
            let mut out = Vec::new();
            sf::for_each_list_member(input, |m| out.push(member(&m))).ok()?;
            out.into_iter()
                .collect::<Option<Vec<_>>>()
                .map(Value::Array)
        }
        "dictionary" => {
            let mut out = Vec::new();
            let mut members = Vec::new();
            sf::for_each_dict_member(input, Mode::default(), |k, m| members.push((k, m))).ok()?;
            for (k, m) in members {
                upsert(&mut out, k, member(&m)?);
            }
            Some(Value::Array(out))
        }
        other => panic!("unknown header_type {other}"),
    }
}

/// Equality with numbers compared as numbers (the suite writes decimals as floats).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn structured_field_conformance_suite() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sf-tests");
    let (mut passed, mut failures) = (0usize, Vec::new());
    for file in FILES {
        let text =
            std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let cases: Vec<Value> = serde_json::from_str(&text).expect("suite JSON");
        for case in cases {
            let name = format!("{file}: {}", case["name"].as_str().unwrap_or("?"));
            let raw: Vec<&str> = case["raw"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            let input = raw.join(", ");
            let got = parse(case["header_type"].as_str().unwrap(), input.as_bytes());
            let must_fail = case["must_fail"].as_bool().unwrap_or(false);
            let can_fail = case["can_fail"].as_bool().unwrap_or(false);
            let ok = match (&got, must_fail) {
                (None, true) => true,
                (Some(_), true) => false,
                (None, false) => can_fail,
                (Some(v), false) => same(v, &case["expected"]),
            };
            if ok {
                passed += 1;
            } else {
                failures.push(format!(
                    "{name}: input {input:?} gave {got:?}, expected {}",
                    case["expected"]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        passed + failures.len(),
        failures.join("\n")
    );
    assert!(passed > 1400, "the whole suite ran ({passed} cases)");
}

#[test]
fn base32_matches_rfc4648() {
    assert_eq!(base32(b""), "");
    assert_eq!(base32(b"f"), "MY======");
    assert_eq!(base32(b"foob"), "MZXW6YQ=");
    assert_eq!(base32(b"foobar"), "MZXW6YTBOI======");
}
