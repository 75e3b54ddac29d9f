//! The few DER and PEM pieces needed to recognise private key files.

use crate::KeyError;

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OID: u8 = 0x06;
pub(crate) const CONTEXT_0: u8 = 0xA0;
pub(crate) const CONTEXT_1: u8 = 0xA1;

/// rsaEncryption (1.2.840.113549.1.1.1)
pub(crate) const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-RSASSA-PSS (1.2.840.113549.1.1.10)
pub(crate) const OID_RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
/// id-ecPublicKey (1.2.840.10045.2.1)
pub(crate) const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 (1.2.840.10045.3.1.7)
pub(crate) const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// secp384r1 (1.3.132.0.34)
pub(crate) const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
/// id-Ed25519 (1.3.101.112)
pub(crate) const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
/// id-X25519 (1.3.101.110), id-Ed448 (1.3.101.113): recognised only to name them in errors.
pub(crate) const OID_X25519: &[u8] = &[0x2b, 0x65, 0x6e];
pub(crate) const OID_ED448: &[u8] = &[0x2b, 0x65, 0x71];

/// A cursor over DER bytes.
#[derive(Clone, Copy)]
pub(crate) struct Der<'a>(pub(crate) &'a [u8]);

impl<'a> Der<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// Reads one tag-length-value, returning the tag and the value.
    pub(crate) fn read(&mut self) -> Result<(u8, &'a [u8]), KeyError> {
        let malformed = || KeyError::Malformed("truncated or invalid DER");
        let (&tag, rest) = self.0.split_first().ok_or_else(malformed)?;
        let (&first, mut rest) = rest.split_first().ok_or_else(malformed)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(malformed());
            }
            let (bytes, after) = rest.split_at_checked(n).ok_or_else(malformed)?;
            rest = after;
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        let (value, after) = rest.split_at_checked(len).ok_or_else(malformed)?;
        self.0 = after;
        Ok((tag, value))
    }

    /// Reads a value that must have the given tag.
    pub(crate) fn expect(&mut self, tag: u8) -> Result<&'a [u8], KeyError> {
        match self.read()? {
            (t, value) if t == tag => Ok(value),
            _ => Err(KeyError::Malformed("unexpected DER structure")),
        }
    }
}

/// A PEM block: its label and decoded bytes.
pub(crate) struct Pem {
    pub(crate) label: String,
    pub(crate) der: zeroize::Zeroizing<Vec<u8>>,
}

/// Reads every PEM block in `text`, in order.
pub(crate) fn parse_pem(text: &str) -> Result<Vec<Pem>, KeyError> {
    use base64::Engine as _;
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after
            .find("-----")
            .ok_or(KeyError::Malformed("PEM header is not terminated"))?;
        let label = after[..label_end].to_owned();
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_start
            .find(&end_marker)
            .ok_or(KeyError::Malformed("PEM block has no matching END line"))?;
        let body = &body_start[..body_end];
        if body.contains(':') {
            // RFC 1421 headers such as `Proc-Type: 4,ENCRYPTED` (legacy encrypted keys).
            return Err(KeyError::Encrypted);
        }
        let compact: zeroize::Zeroizing<String> =
            zeroize::Zeroizing::new(body.chars().filter(|c| !c.is_whitespace()).collect());
        let der = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| KeyError::Malformed("PEM body is not valid base64"))?;
        blocks.push(Pem {
            label,
            der: zeroize::Zeroizing::new(der),
        });
        rest = &body_start[body_end + end_marker.len()..];
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        let mut d = Der(&[0x04, 0x02, 0xAA, 0xBB, 0x05, 0x00]);
        assert_eq!(d.read().unwrap(), (0x04, &[0xAA, 0xBB][..]));
        assert_eq!(d.read().unwrap(), (0x05, &[][..]));
        assert!(d.is_empty());
        let long = [&[0x04, 0x81, 0x80][..], &[0u8; 128]].concat();
        assert_eq!(Der(&long).read().unwrap().1.len(), 128);
        for bad in [
            &[0x04][..],
            &[0x04, 0x05, 0x00],
            &[0x04, 0x85, 1, 1, 1, 1, 1],
            &[0x04, 0x80],
        ] {
            assert!(Der(bad).read().is_err());
        }
    }

    #[test]
    fn pem_blocks() {
        let text = "junk\n-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n-----BEGIN X-----\nAAEC\n-----END X-----\n";
        let blocks = parse_pem(text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].label, "X");
        assert_eq!(&blocks[1].der[..], &[0, 1, 2]);
        assert!(parse_pem("-----BEGIN X-----\nAAEC\n").is_err());
        assert!(parse_pem("-----BEGIN X-----\n!!\n-----END X-----").is_err());
    }

    proptest::proptest! {
        #[test]
        fn key_loading_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), text in ".{0,200}") {
            for alg in [crate::Algorithm::RS256, crate::Algorithm::ES256, crate::Algorithm::EdDSA] {
                let _ = crate::SigningKey::from_der(&bytes, alg);
                let _ = crate::SigningKey::from_pem(&text, alg);
                let pem = format!("-----BEGIN PRIVATE KEY-----\n{text}\n-----END PRIVATE KEY-----");
                let _ = crate::SigningKey::from_pem(&pem, alg);
            }
        }
    }
}
