//! Signing as the other senders do, for the end-to-end tests.

pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

pub fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The Standard Webhooks secret the receiver tests configure their `standard` sender with.
pub const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Standard Webhooks' headers for `body` with `id`, signed at `t` with `secret` (`whsec_` and
/// the key in base64): `webhook-id`, `webhook-timestamp`, `webhook-signature`.
pub fn standard_webhooks_headers(
    secret: &str,
    id: &str,
    t: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .unwrap();
    let ts = t.to_string();
    let sig = b64(&hmac_sha256(
        &key,
        &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
    ));
    vec![
        ("webhook-id".to_string(), id.to_string()),
        ("webhook-timestamp".to_string(), ts),
        ("webhook-signature".to_string(), format!("v1,{sig}")),
    ]
}

pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs a request to `path` at `authority` (https) as RFC 9421 says (the base from the library, the signature here),
/// covering the UbiOps set; `sign` makes the signature from the base.
pub fn rfc9421_request(
    authority: &str,
    path: &str,
    body: &[u8],
    created: i64,
    params: &str,
    sign: impl Fn(&[u8]) -> Vec<u8>,
) -> Vec<(String, String)> {
    use sha2::Digest;
    use up42webhooks::rfc9421::{self, Base, Request};
    let date = httpdate(created);
    let mut headers = vec![
        ("Date".to_string(), date),
        ("Content-Type".to_string(), "application/json".to_string()),
        (
            "Content-Digest".to_string(),
            format!("sha-512=:{}:", b64(&sha2::Sha512::digest(body))),
        ),
        (
            "Signature-Input".to_string(),
            format!("sig=(\"@method\" \"@authority\" \"@target-uri\" \"content-digest\" \"date\"){params}"),
        ),
        ("Signature".to_string(), "sig=:AAAA:".to_string()),
    ];
    let pairs = crate::common::byte_pairs(&headers);
    let req = Request {
        method: b"POST",
        scheme: b"https",
        authority: authority.as_bytes(),
        target: path.as_bytes(),
        headers: up42webhooks::Headers::Pairs(&pairs),
    };
    let mut base = Base::default();
    let base = rfc9421::signature_base(&req, b"sig", &mut base)
        .unwrap()
        .to_vec();
    headers[4].1 = format!("sig=:{}:", b64(&sign(&base)));
    headers
}

/// An IMF-fixdate, as the Date header carries it.
pub fn httpdate(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let rfc = up42webhooks::format_rfc3339(t); // 2024-01-16T08:12:22Z
    let (y, m, d) = (&rfc[0..4], &rfc[5..7], &rfc[8..10]);
    let weekday = DAYS[(t.div_euclid(86_400) % 7) as usize];
    let month = MONTHS[m.parse::<usize>().unwrap() - 1];
    format!("{weekday}, {d} {month} {y} {} GMT", &rfc[11..19])
}
