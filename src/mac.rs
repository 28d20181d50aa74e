//! The one HMAC type: HMAC-SHA256, whose key state is computed once per secret. (Named `mac`,
//! not `hmac`, so that it does not shadow the `hmac` crate.)

pub(crate) type HmacSha256 = hmac::Hmac<sha2::Sha256>;
