//! RFC 8941 structured-field parsing without allocation.
//!
//! Values borrow from the input: strings keep their escaped text, byte sequences their base64 text,
//! parameters and inner lists the span they were parsed from (re-read on iteration, already validated).
//! Dictionary and parameter lookups return the *last* member with a key, as RFC 8941 says duplicates do.

/// The largest magnitude of an RFC 8941 integer (section 3.3.1: at most 15 digits).
pub(crate) const MAX_INTEGER: i64 = 999_999_999_999_999;

/// Why a field failed to parse: the byte offset and a short static reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SfError {
    pub at: usize,
    pub what: &'static str,
}

/// A bare item. Decimals are kept in thousandths: RFC 8941 allows at most three fractional digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareItem<'a> {
    Integer(i64),
    Decimal(i64),
    String(SfStr<'a>),
    Token(&'a [u8]),
    /// The base64 text between the colons (alphabet and padding placement checked).
    ByteSeq(&'a [u8]),
    Boolean(bool),
}

impl<'a> BareItem<'a> {
    /// The text of a string or a token (strings compared after unescaping).
    pub(crate) fn text_eq(&self, want: &[u8]) -> bool {
        match self {
            BareItem::String(s) => s.eq_bytes(want),
            BareItem::Token(t) => *t == want,
            _ => false,
        }
    }
}

/// A string item as it appears between the quotes, escapes still in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SfStr<'a>(pub &'a [u8]);

impl<'a> SfStr<'a> {
    /// The unescaped bytes, one at a time.
    pub fn bytes(&self) -> impl Iterator<Item = u8> + 'a {
        let mut escaped = false;
        self.0.iter().filter_map(move |&b| {
            if !escaped && b == b'\\' {
                escaped = true;
                None
            } else {
                escaped = false;
                Some(b)
            }
        })
    }

    pub(crate) fn eq_bytes(&self, want: &[u8]) -> bool {
        self.bytes().eq(want.iter().copied())
    }
}

/// How lenient a dictionary parse is, for senders that bend RFC 8941.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mode {
    /// Accept upper-case letters in member keys (UP42 sends `SHA-256=` in Content-Digest).
    pub upper_keys: bool,
    /// Accept a member value written as bare base64 (UP42 sends `up42-sig=<base64>` in Signature);
    /// it is returned as a byte sequence.
    pub plain_base64: bool,
}

/// Parameters: the validated span that starts at the first `;` (possibly empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params<'a>(&'a [u8]);

impl<'a> Params<'a> {
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter(Cursor::new(self.0))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub struct ParamIter<'a>(Cursor<'a>);

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a [u8], BareItem<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.param().ok().flatten()
    }
}

/// An inner list: the validated span between the parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InnerList<'a>(&'a [u8]);

impl<'a> InnerList<'a> {
    pub fn iter(&self) -> InnerIter<'a> {
        InnerIter(Cursor::new(self.0))
    }
}

pub struct InnerIter<'a>(Cursor<'a>);

impl<'a> Iterator for InnerIter<'a> {
    type Item = (BareItem<'a>, Params<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let c = &mut self.0;
        c.skip_sp();
        if c.at_end() {
            return None;
        }
        let item = c.bare_item(false).ok()?;
        let params = c.params().ok()?;
        Some((item, params))
    }
}

/// A list member or dictionary value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member<'a> {
    Item(BareItem<'a>, Params<'a>),
    InnerList(InnerList<'a>, Params<'a>),
}

impl<'a> Member<'a> {
    pub fn params(&self) -> Params<'a> {
        match self {
            Member::Item(_, p) | Member::InnerList(_, p) => *p,
        }
    }
}

/// Parse a whole dictionary field and return the last member whose key equals `key`
/// (ASCII case-insensitively when `mode.upper_keys`). The whole field must be valid.
pub(crate) fn dict_get<'a>(
    input: &'a [u8],
    key: &[u8],
    mode: Mode,
) -> Result<Option<Member<'a>>, SfError> {
    let mut found = None;
    for_each_dict_member(input, mode, |k, m| {
        let hit = if mode.upper_keys {
            k.eq_ignore_ascii_case(key)
        } else {
            k == key
        };
        if hit {
            found = Some(m);
        }
    })?;
    Ok(found)
}

/// Parse a whole dictionary field, calling `f` for every member in order (duplicates included).
pub fn for_each_dict_member<'a>(
    input: &'a [u8],
    mode: Mode,
    mut f: impl FnMut(&'a [u8], Member<'a>),
) -> Result<(), SfError> {
    each_member(input, |c| {
        let key = c.key(mode.upper_keys)?;
        let member = if c.eat(b'=') {
            c.member(mode.plain_base64)?
        } else {
            Member::Item(BareItem::Boolean(true), c.params()?)
        };
        f(key, member);
        Ok(())
    })
}

/// The members of a list or dictionary field: `read` parses one at the cursor; an empty field
/// has none.
fn each_member<'a>(
    input: &'a [u8],
    mut read: impl FnMut(&mut Cursor<'a>) -> Result<(), SfError>,
) -> Result<(), SfError> {
    let mut c = Cursor::new(input);
    c.skip_sp();
    if c.at_end() {
        return Ok(());
    }
    loop {
        read(&mut c)?;
        if c.list_separator()? {
            return Ok(());
        }
    }
}

/// Parse a whole list field, calling `f` for every member in order.
pub fn for_each_list_member<'a>(
    input: &'a [u8],
    mut f: impl FnMut(Member<'a>),
) -> Result<(), SfError> {
    each_member(input, |c| {
        f(c.member(false)?);
        Ok(())
    })
}

/// Parse a whole item field.
pub fn parse_item(input: &[u8]) -> Result<(BareItem<'_>, Params<'_>), SfError> {
    let mut c = Cursor::new(input);
    c.skip_sp();
    let item = c.bare_item(false)?;
    let params = c.params()?;
    c.skip_sp();
    if !c.at_end() {
        return Err(c.err("unexpected character after item"));
    }
    Ok((item, params))
}

/// Can `data` characters of the base64 alphabet followed by `pad` `=` be whole base64 groups?
/// Padding may be left off, as RFC 8941 asks parsers to allow.
fn base64_lengths_ok(data: usize, pad: usize) -> bool {
    match pad {
        0 => data % 4 != 1,
        1 | 2 => (data + pad).is_multiple_of(4),
        _ => false,
    }
}

/// Is `key` a valid RFC 8941 key (lowercase, as parameters and strict dictionaries require)?
pub(crate) fn valid_key(key: &[u8]) -> bool {
    let mut c = Cursor::new(key);
    c.key(false).is_ok() && c.at_end()
}

#[derive(Debug, Clone)]
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

/// A byte class as a table, built at compile time: the parser's inner loops test one entry per byte.
macro_rules! class {
    (|$b:ident| $e:expr) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            t[i] = $e;
            i += 1;
        }
        t
    }};
}

/// RFC 9110 `tchar`: the bytes of a token and of a field name.
pub(crate) static TCHAR: [bool; 256] = class!(|b| b.is_ascii_alphanumeric()
    || matches!(
        b,
        b'!' | b'#'
            | b'$'
            | b'%'
            | b'&'
            | b'\''
            | b'*'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~'
    ));
static TOKEN: [bool; 256] = class!(|b| TCHAR[b as usize] || b == b':' || b == b'/');
static KEY: [bool; 256] = class!(|b| b.is_ascii_lowercase()
    || b.is_ascii_digit()
    || matches!(b, b'_' | b'-' | b'.' | b'*'));
static KEY_UPPER: [bool; 256] = class!(|b| KEY[b as usize] || b.is_ascii_uppercase());
static BASE64: [bool; 256] = class!(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
/// String bytes that need no further look: printable ASCII but the quote and the backslash.
static PLAIN_STRING: [bool; 256] = class!(|b| b >= 0x20 && b <= 0x7e && b != b'"' && b != b'\\');
static DIGIT: [bool; 256] = class!(|b| b.is_ascii_digit());
static SP: [bool; 256] = class!(|b| b == b' ');
static OWS: [bool; 256] = class!(|b| b == b' ' || b == b'\t');
static PAD: [bool; 256] = class!(|b| b == b'=');

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8]) -> Self {
        Cursor { s, i: 0 }
    }
    fn err(&self, what: &'static str) -> SfError {
        SfError { at: self.i, what }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Consumes the bytes of `class` here and returns them.
    fn skip_while(&mut self, class: &[bool; 256]) -> &'a [u8] {
        let rest = self.s.get(self.i..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&b| !class[usize::from(b)])
            .unwrap_or(rest.len());
        self.i += n;
        &rest[..n]
    }
    fn skip_sp(&mut self) {
        self.skip_while(&SP);
    }
    fn skip_ows(&mut self) {
        self.skip_while(&OWS);
    }

    /// After a list or dictionary member: `true` at the end of the field, `false` after a comma that
    /// another member follows.
    fn list_separator(&mut self) -> Result<bool, SfError> {
        self.skip_ows();
        if self.at_end() {
            return Ok(true);
        }
        if !self.eat(b',') {
            return Err(self.err("expected ',' between members"));
        }
        self.skip_ows();
        if self.at_end() {
            return Err(self.err("trailing comma"));
        }
        Ok(false)
    }

    fn key(&mut self, upper: bool) -> Result<&'a [u8], SfError> {
        let lower_start = |b: u8| b.is_ascii_lowercase() || b == b'*';
        match self.peek() {
            Some(b) if lower_start(b) || (upper && b.is_ascii_uppercase()) => {}
            _ => return Err(self.err("key must start with a lowercase letter or '*'")),
        }
        Ok(self.skip_while(if upper { &KEY_UPPER } else { &KEY }))
    }

    fn member(&mut self, plain_base64: bool) -> Result<Member<'a>, SfError> {
        if self.peek() == Some(b'(') {
            let list = self.inner_list()?;
            return Ok(Member::InnerList(list, self.params()?));
        }
        let item = self.bare_item(plain_base64)?;
        Ok(Member::Item(item, self.params()?))
    }

    fn inner_list(&mut self) -> Result<InnerList<'a>, SfError> {
        self.i += 1; // '('
        let start = self.i;
        loop {
            self.skip_sp();
            if self.peek() == Some(b')') {
                let span = &self.s[start..self.i];
                self.i += 1;
                return Ok(InnerList(span));
            }
            if self.at_end() {
                return Err(self.err("inner list not closed"));
            }
            self.bare_item(false)?;
            self.params()?;
            match self.peek() {
                Some(b' ') | Some(b')') => {}
                _ => return Err(self.err("inner list items must be separated by a space")),
            }
        }
    }

    /// Parses the parameters that follow here; returns their span.
    fn params(&mut self) -> Result<Params<'a>, SfError> {
        let start = self.i;
        while self.param()?.is_some() {}
        Ok(Params(&self.s[start..self.i]))
    }

    fn param(&mut self) -> Result<Option<(&'a [u8], BareItem<'a>)>, SfError> {
        if !self.eat(b';') {
            return Ok(None);
        }
        self.skip_sp();
        let key = self.key(false)?;
        let value = if self.eat(b'=') {
            self.bare_item(false)?
        } else {
            BareItem::Boolean(true)
        };
        Ok(Some((key, value)))
    }

    fn bare_item(&mut self, plain_base64: bool) -> Result<BareItem<'a>, SfError> {
        if plain_base64 && self.peek() != Some(b':') {
            return self.plain_base64();
        }
        match self.peek() {
            Some(b'-') | Some(b'0'..=b'9') => self.number(),
            Some(b'"') => self.string(),
            Some(b':') => self.byte_seq(),
            Some(b'?') => self.boolean(),
            Some(b) if b.is_ascii_alphabetic() || b == b'*' => {
                Ok(BareItem::Token(self.skip_while(&TOKEN)))
            }
            _ => Err(self.err("not the start of an item")),
        }
    }

    fn number(&mut self) -> Result<BareItem<'a>, SfError> {
        let negative = self.eat(b'-');
        let int = self.skip_while(&DIGIT);
        if int.is_empty() {
            return Err(self.err("number without digits"));
        }
        let value = |digits: &[u8]| {
            digits
                .iter()
                .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'))
        };
        let sign = if negative { -1 } else { 1 };
        if !self.eat(b'.') {
            if int.len() > 15 {
                return Err(self.err("integer has more than 15 digits"));
            }
            return Ok(BareItem::Integer(sign * value(int)));
        }
        if int.len() > 12 {
            return Err(self.err("decimal has more than 12 integer digits"));
        }
        let frac = self.skip_while(&DIGIT);
        if frac.is_empty() || frac.len() > 3 {
            return Err(self.err("decimal needs 1 to 3 fractional digits"));
        }
        let scale = [100, 10, 1][frac.len() - 1];
        Ok(BareItem::Decimal(
            sign * (value(int) * 1000 + value(frac) * scale),
        ))
    }

    fn string(&mut self) -> Result<BareItem<'a>, SfError> {
        self.i += 1; // '"'
        let start = self.i;
        loop {
            self.skip_while(&PLAIN_STRING);
            match self.peek() {
                None => return Err(self.err("string not closed")),
                Some(b'"') => {
                    let text = &self.s[start..self.i];
                    self.i += 1;
                    return Ok(BareItem::String(SfStr(text)));
                }
                Some(b'\\') => {
                    self.i += 1;
                    if !matches!(self.peek(), Some(b'"') | Some(b'\\')) {
                        return Err(self.err("bad escape in string"));
                    }
                    self.i += 1;
                }
                Some(_) => return Err(self.err("string holds a byte outside printable ASCII")),
            }
        }
    }

    fn byte_seq(&mut self) -> Result<BareItem<'a>, SfError> {
        self.i += 1; // ':'
        let text = self.base64_text()?;
        if !self.eat(b':') {
            return Err(self.err("byte sequence not closed, or not base64"));
        }
        Ok(BareItem::ByteSeq(text))
    }

    fn plain_base64(&mut self) -> Result<BareItem<'a>, SfError> {
        let text = self.base64_text()?;
        if text.is_empty() {
            return Err(self.err("value is not base64"));
        }
        Ok(BareItem::ByteSeq(text))
    }

    /// Base64 alphabet then `=` padding, checked in the one pass that finds their ends.
    fn base64_text(&mut self) -> Result<&'a [u8], SfError> {
        let start = self.i;
        let data = self.skip_while(&BASE64).len();
        let pad = self.skip_while(&PAD).len();
        if !base64_lengths_ok(data, pad) {
            return Err(self.err("base64 of impossible length or padding"));
        }
        Ok(&self.s[start..self.i])
    }

    fn boolean(&mut self) -> Result<BareItem<'a>, SfError> {
        self.i += 1; // '?'
        let value = match self.peek() {
            Some(b'1') => true,
            Some(b'0') => false,
            _ => return Err(self.err("boolean must be ?0 or ?1")),
        };
        self.i += 1;
        Ok(BareItem::Boolean(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_base64_values_and_byte_sequences_agree() {
        let mode = Mode {
            plain_base64: true,
            ..Mode::default()
        };
        let plain = dict_get(
            b"up42-sig=nnP6Cj3juj0gU6PRBYSzhmuPywSzD9waycLbCyc1RZU=",
            b"up42-sig",
            mode,
        );
        let seq = dict_get(
            b"up42-sig=:nnP6Cj3juj0gU6PRBYSzhmuPywSzD9waycLbCyc1RZU=:",
            b"up42-sig",
            mode,
        );
        let want = BareItem::ByteSeq(b"nnP6Cj3juj0gU6PRBYSzhmuPywSzD9waycLbCyc1RZU=");
        assert!(matches!(plain, Ok(Some(Member::Item(i, _))) if i == want));
        assert!(matches!(seq, Ok(Some(Member::Item(i, _))) if i == want));
        assert!(dict_get(b"up42-sig=nnP6Cj3j!", b"up42-sig", mode).is_err());
    }

    #[test]
    fn duplicate_keys_last_wins_and_upper_keys_only_when_asked() {
        let m = dict_get(b"a=1, b=2, a=3", b"a", Mode::default()).unwrap();
        assert!(matches!(m, Some(Member::Item(BareItem::Integer(3), _))));
        assert!(dict_get(b"SHA-256=:AA==:", b"sha-256", Mode::default()).is_err());
        let up = Mode {
            upper_keys: true,
            ..Mode::default()
        };
        assert!(dict_get(b"SHA-256=:AA==:", b"sha-256", up)
            .unwrap()
            .is_some());
    }

    #[test]
    fn string_escapes_unescape() {
        let (item, _) = parse_item(br#""a\"b\\c""#).unwrap();
        assert!(item.text_eq(br#"a"b\c"#));
        assert!(parse_item(br#""a\x""#).is_err());
    }
}
