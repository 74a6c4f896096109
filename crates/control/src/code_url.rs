//! `Code.Location`: a time-limited download link for a function's package, like
//! the presigned S3 URL Lambda returns. The link is a path on this server carrying
//! an expiry and an HMAC over (digest, expiry) made with a key only the server holds.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How long a download link stays valid (Lambda's links last 10 minutes).
pub const LINK_TTL_S: i64 = 600;

/// The path prefix of download links.
pub const PATH_PREFIX: &str = "/lambent/code/";

#[derive(Clone)]
pub struct CodeUrlSigner {
    key: [u8; 32],
}

impl CodeUrlSigner {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, digest_hex: &str, expires: i64) -> String {
        let mut m = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        m.update(digest_hex.as_bytes());
        m.update(b"\n");
        m.update(expires.to_string().as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// Path and query of a link valid until `now_s + LINK_TTL_S`.
    pub fn link(&self, digest_hex: &str, now_s: i64) -> String {
        let expires = now_s + LINK_TTL_S;
        format!(
            "{PATH_PREFIX}{digest_hex}.zip?Expires={expires}&Signature={}",
            self.mac(digest_hex, expires)
        )
    }

    /// Whether a link's expiry and signature are good at `now_s`.
    pub fn check(&self, digest_hex: &str, expires: i64, signature: &str, now_s: i64) -> bool {
        now_s <= expires
            && bool::from(
                self.mac(digest_hex, expires)
                    .as_bytes()
                    .ct_eq(signature.as_bytes()),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_expire_and_cannot_be_forged() {
        let s = CodeUrlSigner::new([7; 32]);
        let link = s.link("abcd", 1000);
        let (path, query) = link.split_once('?').unwrap();
        assert_eq!(path, "/lambent/code/abcd.zip");
        let sig = query.split("Signature=").nth(1).unwrap();
        assert!(s.check("abcd", 1600, sig, 1000));
        assert!(s.check("abcd", 1600, sig, 1600));
        assert!(!s.check("abcd", 1600, sig, 1601), "expired");
        assert!(!s.check("abce", 1600, sig, 1000), "other digest");
        assert!(!s.check("abcd", 1700, sig, 1000), "extended expiry");
        assert!(
            !CodeUrlSigner::new([8; 32]).check("abcd", 1600, sig, 1000),
            "other key"
        );
    }
}
