//! RFC 8941 serialization (section 4.1) of parsed structured fields, into a fixed buffer: RFC 9421
//! signs fields and its own parameters in their canonical serialization, not as they were sent.

use crate::buf::format_i64;
use crate::buf::Buf;
use crate::code::Code;
use crate::sf::{self, BareItem, InnerList, Member, Mode, Params};

/// An integer, or `InvalidArgument` for one RFC 8941 cannot carry (16 digits or more): a
/// verifier would refuse what we wrote.
pub(crate) fn integer<const N: usize>(n: i64, out: &mut Buf<N>) -> Result<(), Code> {
    if !(-sf::MAX_INTEGER..=sf::MAX_INTEGER).contains(&n) {
        return Err(Code::InvalidArgument);
    }
    let mut digits = [0u8; 24];
    out.push(format_i64(n, &mut digits))
}

/// A bare item, canonically: strings keep their (already minimal) escapes, byte sequences get
/// their padding, decimals lose trailing zeros.
pub(crate) fn bare_item<const N: usize>(item: &BareItem, out: &mut Buf<N>) -> Result<(), Code> {
    match *item {
        BareItem::Integer(n) => integer(n, out),
        BareItem::Decimal(thousandths) => {
            if thousandths < 0 {
                out.byte(b'-')?;
            }
            let v = thousandths.unsigned_abs();
            integer((v / 1000) as i64, out)?;
            out.byte(b'.')?;
            let frac = v % 1000;
            let digits = [
                b'0' + (frac / 100) as u8,
                b'0' + (frac / 10 % 10) as u8,
                b'0' + (frac % 10) as u8,
            ];
            let keep = if frac % 100 == 0 {
                1
            } else if frac % 10 == 0 {
                2
            } else {
                3
            };
            out.push(&digits[..keep])
        }
        BareItem::String(s) => {
            out.byte(b'"')?;
            out.push(s.0)?;
            out.byte(b'"')
        }
        BareItem::Token(t) => out.push(t),
        BareItem::ByteSeq(text) => {
            let data = text
                .strip_suffix(b"==")
                .or_else(|| text.strip_suffix(b"="))
                .unwrap_or(text);
            out.byte(b':')?;
            out.push(data)?;
            out.push(&b"=="[..(4 - data.len() % 4) % 4])?;
            out.byte(b':')
        }
        BareItem::Boolean(b) => out.push(if b { b"?1" } else { b"?0" }),
    }
}

/// One parameter: `;key`, and `=value` unless it is true.
pub fn param<const N: usize>(key: &[u8], value: &BareItem, out: &mut Buf<N>) -> Result<(), Code> {
    out.byte(b';')?;
    out.push(key)?;
    if *value != BareItem::Boolean(true) {
        out.byte(b'=')?;
        bare_item(value, out)?;
    }
    Ok(())
}

pub fn params<const N: usize>(params: &Params, out: &mut Buf<N>) -> Result<(), Code> {
    params
        .iter()
        .try_for_each(|(key, value)| param(key, &value, out))
}

pub(crate) fn inner_list<const N: usize>(
    list: &InnerList,
    list_params: &Params,
    out: &mut Buf<N>,
) -> Result<(), Code> {
    out.byte(b'(')?;
    for (i, (item, item_params)) in list.iter().enumerate() {
        if i > 0 {
            out.byte(b' ')?;
        }
        bare_item(&item, out)?;
        params(&item_params, out)?;
    }
    out.byte(b')')?;
    params(list_params, out)
}

/// A list member or dictionary value.
pub fn member<const N: usize>(m: &Member, out: &mut Buf<N>) -> Result<(), Code> {
    match m {
        Member::Item(item, p) => {
            bare_item(item, out)?;
            params(p, out)
        }
        Member::InnerList(list, p) => inner_list(list, p, out),
    }
}

/// The structured type of a field, for the `sf` parameter of RFC 9421: a verifier must know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Dictionary,
    List,
    Item,
}

/// Fields whose structured type is registered (RFC 8941 fields this signer is likely to cover).
pub(crate) fn field_type(name: &[u8]) -> Option<FieldType> {
    const DICTIONARIES: [&[u8]; 9] = [
        b"accept-signature",
        b"content-digest",
        b"example-dict",
        b"priority",
        b"repr-digest",
        b"signature",
        b"signature-input",
        b"want-content-digest",
        b"want-repr-digest",
    ];
    const LISTS: [&[u8]; 4] = [
        b"accept-ch",
        b"cache-status",
        b"example-list",
        b"proxy-status",
    ];
    const ITEMS: [&[u8]; 2] = [b"example-integer", b"example-item"];
    if DICTIONARIES.contains(&name) {
        Some(FieldType::Dictionary)
    } else if LISTS.contains(&name) {
        Some(FieldType::List)
    } else if ITEMS.contains(&name) {
        Some(FieldType::Item)
    } else {
        None
    }
}

/// Re-serializes a whole field value of a known type. A dictionary with a repeated key is refused:
/// RFC 8941 keeps the first position and the last value, which a streaming parse does not give.
pub fn field<const N: usize>(value: &[u8], kind: FieldType, out: &mut Buf<N>) -> Result<(), Code> {
    let bad = |_| Code::UnsupportedComponent;
    match kind {
        FieldType::Item => {
            let (item, p) = sf::parse_item(value).map_err(bad)?;
            bare_item(&item, out)?;
            params(&p, out)
        }
        FieldType::List => {
            let mut first = true;
            let mut result = Ok(());
            sf::for_each_list_member(value, |m| {
                if result.is_ok() {
                    if !first {
                        result = out.push(b", ");
                    }
                    first = false;
                    result = result.and_then(|()| member(&m, out));
                }
            })
            .map_err(bad)?;
            result
        }
        FieldType::Dictionary => {
            let mut keys: [&[u8]; 32] = [&[]; 32];
            let mut count = 0usize;
            let mut result = Ok(());
            sf::for_each_dict_member(value, Mode::default(), |key, m| {
                if result.is_err() {
                    return;
                }
                if keys[..count].contains(&key) || count == keys.len() {
                    result = Err(Code::UnsupportedComponent);
                    return;
                }
                keys[count] = key;
                count += 1;
                result = (|| {
                    if count > 1 {
                        out.push(b", ")?;
                    }
                    out.push(key)?;
                    match m {
                        Member::Item(BareItem::Boolean(true), p) => params(&p, out),
                        _ => {
                            out.byte(b'=')?;
                            member(&m, out)
                        }
                    }
                })();
            })
            .map_err(bad)?;
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ser(value: &str, kind: FieldType) -> Result<String, Code> {
        let mut out = Buf::<256>::default();
        field(value.as_bytes(), kind, &mut out)?;
        Ok(String::from_utf8(out.as_slice().to_vec()).unwrap())
    }

    #[test]
    fn canonical_forms() {
        use FieldType::*;
        assert_eq!(
            ser("a=1,   b=2;x=?1, c", Dictionary).unwrap(),
            "a=1, b=2;x, c"
        );
        assert_eq!(
            ser("a=(\"x\"   y);p=1.50", Dictionary).unwrap(),
            "a=(\"x\" y);p=1.5"
        );
        assert_eq!(ser(" 1.000 , :AQ:, ?0", List).unwrap(), "1.0, :AQ==:, ?0");
        assert_eq!(ser("-007;q=\"a\\\"b\"", Item).unwrap(), "-7;q=\"a\\\"b\"");
        assert_eq!(ser("a=1, a=2", Dictionary), Err(Code::UnsupportedComponent));
        assert_eq!(ser("a=", Dictionary), Err(Code::UnsupportedComponent));
        let mut small = Buf::<4>::default();
        assert_eq!(
            field(b"abcdef", FieldType::Item, &mut small),
            Err(Code::HeaderTooLarge)
        );
    }
}
