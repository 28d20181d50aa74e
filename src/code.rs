//! Result codes: one list for the Rust API and the C ABI (exported as `up42wh_result`).

use core::ffi::CStr;

/// Why a call failed, or `Ok`. Values are stable: a code keeps its number forever and a retired one is
/// never reused. The Rust API returns `Result<T, Code>` and never uses `Code::Ok` as an error.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL (or a NULL pointer came with a non-zero length).
    NullArgument = 1,
    /// The library panicked; this is a bug, and the call had no effect.
    Panic = 2,
    /// An argument is out of range (empty or too many secrets, a bad label, key id or option).
    InvalidArgument = 3,
    /// The body is longer than the configured maximum.
    BodyTooLarge = 4,
    /// The header block has a line that is not a header field.
    MalformedHeaders = 5,
    /// A header field the verifier reads is longer than it accepts (after joining repeats).
    HeaderTooLarge = 6,
    /// No `Signature-Input` header.
    MissingSignatureInput = 7,
    /// `Signature-Input` is not a valid structured-field dictionary of signature parameters.
    MalformedSignatureInput = 8,
    /// `Signature-Input` has no signature with the configured label.
    UnknownLabel = 9,
    /// No `Signature` header.
    MissingSignature = 10,
    /// `Signature` is malformed, or its value is not a base64 HMAC-SHA256 tag.
    MalformedSignature = 11,
    /// The label is in `Signature-Input` but not in `Signature`.
    SignatureLabelMissing = 12,
    /// The `alg` parameter names an algorithm this verifier does not accept (UP42: only
    /// `hmac-sha256`).
    UnsupportedAlg = 13,
    /// A covered component is not one this verifier accepts: for UP42 anything but a plain field, for
    /// RFC 9421 an unknown derived component or parameter, or a field of unknown structured type.
    UnsupportedComponent = 14,
    /// A component is listed twice in the covered components.
    DuplicateComponent = 15,
    /// A covered header field is not in the request.
    MissingComponent = 16,
    /// The signature has no `created` parameter.
    MissingCreated = 17,
    /// `content-digest` is not among the covered components, so the body would not be authenticated.
    DigestNotCovered = 18,
    /// No `Content-Digest` header.
    DigestMissing = 19,
    /// `Content-Digest` is malformed, or a digest has the wrong length.
    MalformedDigest = 20,
    /// `Content-Digest` has no `sha-256` or `sha-512` member.
    UnsupportedDigest = 21,
    /// A digest in `Content-Digest` does not match the body.
    DigestMismatch = 22,
    /// The HMAC matches none of the configured secrets.
    SignatureMismatch = 23,
    /// The signature or timestamp is older than the tolerance.
    Stale = 24,
    /// The signature or timestamp lies further in the future than the allowance.
    Future = 25,
    /// The signature's `expires` time has passed.
    Expired = 26,
    /// The timestamp is not an RFC 3339 date-time.
    MalformedTimestamp = 27,
    /// No configured key has the signature's `keyid` (or it has none and there are several keys).
    UnknownKey = 28,
    /// The signature's `alg` parameter names another algorithm than its key's.
    AlgMismatch = 29,
    /// A covered value has a byte that a signature base cannot carry (non-ASCII or a control).
    NonAsciiBase = 30,
    /// The signature does not cover a component that the configuration requires.
    RequiredComponentNotCovered = 31,
    /// The journal could not be opened, read or written (`up42wh_journal_errno` has the reason).
    JournalIo = 32,
    /// A journal reader has no more records (not a failure: the end of the journal).
    JournalEnd = 33,
    /// The signature header carries more signatures than a verifier checks (a bound on the work an
    /// unauthenticated request can cause).
    TooManySignatures = 34,
    /// The body is not exactly one JSON object (RFC 8259: well formed, UTF-8, nothing after it, at
    /// most 512 levels deep).
    NotJsonObject = 35,
    /// A member the receiver reads (`event`, `messageId`, `timestamp`, `status`, ...) appears twice.
    DuplicateField = 36,
    /// A member the receiver reads is too long, or of a type it cannot use.
    InvalidField = 37,
    /// A struct passed by pointer says a size (its `size` field) this library does not know: a
    /// caller built against another version's header.
    StructSize = 38,
}

impl Code {
    /// Every code, in numeric order.
    pub const ALL: [Code; 39] = [
        Code::Ok,
        Code::NullArgument,
        Code::Panic,
        Code::InvalidArgument,
        Code::BodyTooLarge,
        Code::MalformedHeaders,
        Code::HeaderTooLarge,
        Code::MissingSignatureInput,
        Code::MalformedSignatureInput,
        Code::UnknownLabel,
        Code::MissingSignature,
        Code::MalformedSignature,
        Code::SignatureLabelMissing,
        Code::UnsupportedAlg,
        Code::UnsupportedComponent,
        Code::DuplicateComponent,
        Code::MissingComponent,
        Code::MissingCreated,
        Code::DigestNotCovered,
        Code::DigestMissing,
        Code::MalformedDigest,
        Code::UnsupportedDigest,
        Code::DigestMismatch,
        Code::SignatureMismatch,
        Code::Stale,
        Code::Future,
        Code::Expired,
        Code::MalformedTimestamp,
        Code::UnknownKey,
        Code::AlgMismatch,
        Code::NonAsciiBase,
        Code::RequiredComponentNotCovered,
        Code::JournalIo,
        Code::JournalEnd,
        Code::TooManySignatures,
        Code::NotJsonObject,
        Code::DuplicateField,
        Code::InvalidField,
        Code::StructSize,
    ];

    pub(crate) fn from_u32(n: u32) -> Option<Code> {
        Code::ALL.get(n as usize).copied()
    }

    /// A stable snake_case name, for logs and API error bodies.
    pub fn name(self) -> &'static str {
        self.c_name().to_str().unwrap_or("")
    }

    /// A short sentence saying what went wrong.
    pub fn message(self) -> &'static str {
        self.c_message().to_str().unwrap_or("")
    }

    pub(crate) fn c_name(self) -> &'static CStr {
        self.texts().0
    }

    pub(crate) fn c_message(self) -> &'static CStr {
        self.texts().1
    }

    fn texts(self) -> (&'static CStr, &'static CStr) {
        match self {
            Code::Ok => (c"ok", c"verified"),
            Code::NullArgument => (c"null_argument", c"a required argument was NULL"),
            Code::Panic => (c"panic", c"internal error in the verifier"),
            Code::InvalidArgument => (c"invalid_argument", c"an argument is out of range"),
            Code::BodyTooLarge => (c"body_too_large", c"the body is larger than allowed"),
            Code::MalformedHeaders => (
                c"malformed_headers",
                c"the header block has a malformed line",
            ),
            Code::HeaderTooLarge => (c"header_too_large", c"a signature header is too long"),
            Code::MissingSignatureInput => {
                (c"missing_signature_input", c"no Signature-Input header")
            }
            Code::MalformedSignatureInput => (
                c"malformed_signature_input",
                c"Signature-Input is malformed",
            ),
            Code::UnknownLabel => (
                c"unknown_label",
                c"Signature-Input has no signature with the expected label",
            ),
            Code::MissingSignature => (c"missing_signature", c"no Signature header"),
            Code::MalformedSignature => (c"malformed_signature", c"Signature is malformed"),
            Code::SignatureLabelMissing => (
                c"signature_label_missing",
                c"Signature has no value for the label",
            ),
            Code::UnsupportedAlg => (
                c"unsupported_alg",
                c"the signature algorithm is not accepted",
            ),
            Code::UnsupportedComponent => (
                c"unsupported_component",
                c"a covered component is not accepted",
            ),
            Code::DuplicateComponent => (
                c"duplicate_component",
                c"a covered component is listed twice",
            ),
            Code::MissingComponent => (
                c"missing_component",
                c"a covered component is missing from the request",
            ),
            Code::MissingCreated => (c"missing_created", c"the signature has no created time"),
            Code::DigestNotCovered => (
                c"digest_not_covered",
                c"the signature does not cover content-digest",
            ),
            Code::DigestMissing => (c"digest_missing", c"no Content-Digest header"),
            Code::MalformedDigest => (c"malformed_digest", c"Content-Digest is malformed"),
            Code::UnsupportedDigest => (
                c"unsupported_digest",
                c"Content-Digest has no sha-256 or sha-512 digest",
            ),
            Code::DigestMismatch => (
                c"digest_mismatch",
                c"the body does not match Content-Digest",
            ),
            Code::SignatureMismatch => (c"signature_mismatch", c"the signature does not match"),
            Code::Stale => (c"stale", c"the signature or timestamp is too old"),
            Code::Future => (c"future", c"the signature or timestamp is in the future"),
            Code::Expired => (c"expired", c"the signature has expired"),
            Code::MalformedTimestamp => (c"malformed_timestamp", c"the timestamp is not RFC 3339"),
            Code::UnknownKey => (
                c"unknown_key",
                c"no configured key has the signature's keyid",
            ),
            Code::AlgMismatch => (c"alg_mismatch", c"the alg parameter does not match the key"),
            Code::NonAsciiBase => (
                c"non_ascii_base",
                c"a covered value has a byte a signature base cannot carry",
            ),
            Code::RequiredComponentNotCovered => (
                c"required_component_not_covered",
                c"the signature does not cover a required component",
            ),
            Code::JournalIo => (
                c"journal_io",
                c"the journal could not be opened, read or written",
            ),
            Code::JournalEnd => (c"journal_end", c"no more records in the journal"),
            Code::TooManySignatures => (
                c"too_many_signatures",
                c"the request carries more signatures than are checked",
            ),
            Code::NotJsonObject => (c"not_json_object", c"the body is not a JSON object"),
            Code::DuplicateField => (
                c"duplicate_field",
                c"a member the receiver reads appears twice in the body",
            ),
            Code::InvalidField => (
                c"invalid_field",
                c"a member the receiver reads is too long or of the wrong type",
            ),
            Code::StructSize => (
                c"struct_size",
                c"a struct's size is not one this library knows (built against another header)",
            ),
        }
    }
}

impl core::fmt::Display for Code {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Code {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_dense_and_names_are_unique() {
        for (i, c) in Code::ALL.iter().enumerate() {
            assert_eq!(*c as u32 as usize, i);
            assert_eq!(Code::from_u32(i as u32), Some(*c));
        }
        assert_eq!(Code::from_u32(Code::ALL.len() as u32), None);
        let mut names: Vec<_> = Code::ALL.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
    }
}
