//! The checks of a downloaded file: its length, and the CRC32C and MD5 the storage host states in
//! `x-goog-hash` (`crc32c=<base64 of 4 bytes, big-endian>,md5=<base64 of 16 bytes>`), computed
//! while the bytes arrive so that nothing is read twice.

use base64::Engine;
use md5::{Digest, Md5};

/// What the storage host said the object's hashes are (either may be absent: a composite object
/// has no MD5).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stated {
    pub crc32c: Option<[u8; 4]>,
    pub md5: Option<[u8; 16]>,
}

/// `x-goog-hash` headers (one or several, each a comma-separated list); unknown names and
/// malformed values are left out.
pub fn stated<'a>(headers: impl Iterator<Item = &'a str>) -> Stated {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut s = Stated::default();
    for h in headers {
        for part in h.split(',') {
            let Some((name, value)) = part.trim().split_once('=') else {
                continue;
            };
            let Ok(bytes) = b64.decode(value.trim()) else {
                continue;
            };
            match name.trim() {
                "crc32c" => s.crc32c = bytes.try_into().ok(),
                "md5" => s.md5 = bytes.try_into().ok(),
                _ => {}
            }
        }
    }
    s
}

/// Running hashes of a file's first `len` bytes.
#[derive(Clone)]
pub struct Running {
    pub len: u64,
    crc: u32,
    md5: Md5,
}

impl Default for Running {
    fn default() -> Self {
        Running {
            len: 0,
            crc: 0,
            md5: Md5::new(),
        }
    }
}

/// A file's hashes, as the manifest lists them (hex) and as they compare with `Stated`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sums {
    pub crc32c: [u8; 4],
    pub md5: [u8; 16],
}

impl Running {
    pub fn update(&mut self, bytes: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.md5.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// The MD5 half taken out, to be run on a thread of its own (it costs ten times the
    /// CRC32C); `update_crc` goes on with the rest, and `join` puts them together again.
    pub fn split_md5(&mut self) -> Md5 {
        std::mem::take(&mut self.md5)
    }

    /// The length and the CRC32C only (the MD5 is with `split_md5`'s thread).
    pub fn update_crc(&mut self, bytes: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.len += bytes.len() as u64;
    }

    pub fn join(&mut self, md5: Md5) {
        self.md5 = md5;
    }

    pub fn sums(&self) -> Sums {
        Sums {
            crc32c: self.crc.to_be_bytes(),
            md5: self.md5.clone().finalize().into(),
        }
    }

    /// The hashes of a file already on disk (a part an earlier run left, a file it completed).
    pub fn of_file(path: &std::path::Path) -> std::io::Result<Running> {
        use std::io::Read;
        let mut f = std::fs::File::open(path)?;
        let mut r = Running::default();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(r);
            }
            r.update(&buf[..n]);
        }
    }
}

impl Sums {
    /// The names of the stated hashes these do not match ("crc32c", "md5").
    pub fn mismatches(&self, stated: &Stated) -> Vec<&'static str> {
        let mut bad = Vec::new();
        if stated.crc32c.is_some_and(|c| c != self.crc32c) {
            bad.push("crc32c");
        }
        if stated.md5.is_some_and(|m| m != self.md5) {
            bad.push("md5");
        }
        bad
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stated_hashes_of_gcs_and_the_hashes_of_bytes_agree() {
        // RFC 3720's CRC32C check value: "123456789" -> e3069283.
        let mut r = Running::default();
        r.update(b"1234");
        let mut md5 = r.split_md5();
        r.update_crc(b"56789");
        md5.update(b"56789");
        r.join(md5);
        let sums = r.sums();
        assert_eq!(hex(&sums.crc32c), "e3069283");
        assert_eq!(hex(&sums.md5), "25f9e794323b453885f5181f1b624d0b");
        let b64 = base64::engine::general_purpose::STANDARD;
        let header = format!(
            "crc32c={}, md5={}",
            b64.encode(sums.crc32c),
            b64.encode(sums.md5)
        );
        let s = stated([header.as_str()].into_iter());
        assert!(sums.mismatches(&s).is_empty());
        let wrong = stated(["crc32c=AAAAAA==", "md5=not-base64!"].into_iter());
        assert_eq!(wrong.md5, None);
        assert_eq!(sums.mismatches(&wrong), ["crc32c"]);
        assert_eq!(stated(std::iter::empty()), Stated::default());
    }
}
