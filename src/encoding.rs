//! Hex and base64 decoding, as the verifiers need them: no allocation, and strict.

/// The value of a hex digit, either case.
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Values of the standard base64 alphabet; 0xff for other bytes.
static BASE64_VALUE: [u8; 256] = {
    let mut t = [0xff; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Decodes base64 `text` into `out`; the decoded length. Padding is optional (RFC 8941 asks parsers
/// to allow its absence); non-zero bits after the last byte are refused, as the base64 crate does.
/// A table-driven loop rather than the base64 crate: this runs twice per verification on ~44
/// bytes, where the crate's general decoder costs more than the rest of the parsing.
pub(crate) fn decode_b64(text: &[u8], out: &mut [u8]) -> Option<usize> {
    let data = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    if (data.len() != text.len() && !text.len().is_multiple_of(4)) || data.len() % 4 == 1 {
        return None;
    }
    let len = data.len() / 4 * 3 + (data.len() % 4).saturating_sub(1);
    let out = out.get_mut(..len)?;
    // Invalid bytes map to 0xff: OR-ing every looked-up value flags any of them at the end.
    let mut bad = 0u8;
    let (quads, rest) = data.as_chunks::<4>();
    let (triples, _) = out.as_chunks_mut::<3>();
    for (quad, triple) in quads.iter().zip(triples.iter_mut()) {
        let v = quad.map(|b| BASE64_VALUE[usize::from(b)]);
        bad |= v[0] | v[1] | v[2] | v[3];
        let n =
            u32::from(v[0]) << 18 | u32::from(v[1]) << 12 | u32::from(v[2]) << 6 | u32::from(v[3]);
        let [_, x, y, z] = n.to_be_bytes();
        *triple = [x, y, z];
    }
    let tail = &mut out[quads.len() * 3..];
    let v: [u8; 3] =
        core::array::from_fn(|i| rest.get(i).map_or(0, |&b| BASE64_VALUE[usize::from(b)]));
    bad |= v[0] | v[1] | v[2];
    let n =
        u32::from(v[0] & 0x3f) << 18 | u32::from(v[1] & 0x3f) << 12 | u32::from(v[2] & 0x3f) << 6;
    let bytes = n.to_be_bytes();
    match rest.len() {
        0 => {}
        // The bits past the last whole byte must be zero.
        2 if bytes[2] == 0 => tail[0] = bytes[1],
        3 if bytes[3] == 0 => tail.copy_from_slice(&bytes[1..3]),
        _ => return None,
    }
    (bad & 0x80 == 0).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use proptest::prelude::*;

    /// The base64 crate, with padding optional but, when present, complete (it would also take a
    /// partial `AQ=`, which RFC 8941 lengths and our decoder refuse).
    fn reference(text: &[u8]) -> Option<Vec<u8>> {
        if text.contains(&b'=') && !text.len().is_multiple_of(4) {
            return None;
        }
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        engine.decode(text).ok()
    }

    fn ours(text: &[u8]) -> Option<Vec<u8>> {
        let mut out = [0u8; 96];
        decode_b64(text, &mut out).map(|n| out[..n].to_vec())
    }

    proptest! {
        #[test]
        fn decoder_agrees_with_the_base64_crate(text in "[A-Za-z0-9+/=]{0,12}|[A-Za-z0-9+/]{0,100}={0,3}|.{0,8}") {
            prop_assert_eq!(ours(text.as_bytes()), reference(text.as_bytes()));
        }

        #[test]
        fn decoder_round_trips(data in prop::collection::vec(any::<u8>(), 0..70)) {
            let text = base64::engine::general_purpose::STANDARD.encode(&data);
            prop_assert_eq!(ours(text.as_bytes()), Some(data.clone()));
            prop_assert_eq!(ours(text.trim_end_matches('=').as_bytes()), Some(data));
        }
    }

    #[test]
    fn decoder_refuses_what_it_should() {
        for bad in "A AB= AAAA= A=== iZ== AB!D AAA=A =AAA".split(' ') {
            assert_eq!(ours(bad.as_bytes()), None, "{bad}");
        }
        let mut small = [0u8; 2];
        assert_eq!(decode_b64(b"AAAA", &mut small), None);
    }
}
