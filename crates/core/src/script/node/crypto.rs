//! The native half of the `crypto` module: digests, HMACs, random bytes and RSA PKCS#1 v1.5 signatures.
//! The JavaScript half (`node.js`) collects the data of `update` calls and checks argument types; the
//! algorithms and every byte of key material stay here.

use hmac::{Hmac, Mac};
use rquickjs::{Array, Ctx, Exception, Function, Object, Result, TypedArray};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::AssociatedOid;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Digest;

use super::{bytes_of, new_bytes};

/// A digest algorithm `createHash`, `createHmac` and `createSign` accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    /// The algorithm of an OpenSSL-style name (`sha256`, `SHA-256`, `RSA-SHA256`), any case.
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let bare = lower.strip_prefix("rsa-").unwrap_or(&lower);
        Some(match bare {
            "md5" => Algorithm::Md5,
            "sha1" | "sha-1" => Algorithm::Sha1,
            "sha256" | "sha-256" | "sha2-256" => Algorithm::Sha256,
            "sha384" | "sha-384" | "sha2-384" => Algorithm::Sha384,
            "sha512" | "sha-512" | "sha2-512" => Algorithm::Sha512,
            _ => return None,
        })
    }

    /// The digest of `chunks` concatenated.
    pub fn digest<'a>(self, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
        fn run<'a, D: Digest>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
            let mut hasher = D::new();
            chunks.into_iter().for_each(|c| hasher.update(c));
            hasher.finalize().to_vec()
        }
        match self {
            Algorithm::Md5 => run::<md5::Md5>(chunks),
            Algorithm::Sha1 => run::<sha1::Sha1>(chunks),
            Algorithm::Sha256 => run::<sha2::Sha256>(chunks),
            Algorithm::Sha384 => run::<sha2::Sha384>(chunks),
            Algorithm::Sha512 => run::<sha2::Sha512>(chunks),
        }
    }

    /// The HMAC of `chunks` concatenated under `key`.
    pub fn hmac<'a>(self, key: &[u8], chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
        fn run<'a, M: Mac + hmac::digest::KeyInit>(
            key: &[u8],
            chunks: impl IntoIterator<Item = &'a [u8]>,
        ) -> Vec<u8> {
            // HMAC takes a key of any length.
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC accepts keys of any length");
            chunks.into_iter().for_each(|c| mac.update(c));
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Algorithm::Md5 => run::<Hmac<md5::Md5>>(key, chunks),
            Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, chunks),
            Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, chunks),
            Algorithm::Sha384 => run::<Hmac<sha2::Sha384>>(key, chunks),
            Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, chunks),
        }
    }
}

/// Signs `message` with an RSA private key in PEM (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`),
/// RSASSA-PKCS1-v1_5 (what `createSign('RSA-SHA256')` and JWT's RS256 use). Blinded with OS randomness.
pub fn rsa_sign(
    algorithm: Algorithm,
    pem: &str,
    message: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    fn run<D: Digest + AssociatedOid>(
        key: RsaPrivateKey,
        message: &[u8],
    ) -> std::result::Result<Vec<u8>, String> {
        let signer = SigningKey::<D>::new(key);
        let signature = signer
            .try_sign_with_rng(&mut rsa::rand_core::OsRng, message)
            .map_err(|e| format!("signing failed: {e}"))?;
        Ok(signature.to_vec())
    }
    let key = private_key(pem)?;
    match algorithm {
        Algorithm::Sha1 => run::<sha1::Sha1>(key, message),
        Algorithm::Sha256 => run::<sha2::Sha256>(key, message),
        Algorithm::Sha384 => run::<sha2::Sha384>(key, message),
        Algorithm::Sha512 => run::<sha2::Sha512>(key, message),
        Algorithm::Md5 => Err(UNSUPPORTED_SIGNATURE.into()),
    }
}

/// Verifies an RSASSA-PKCS1-v1_5 `signature` of `message` with a PEM public key (SPKI `PUBLIC KEY`,
/// PKCS#1 `RSA PUBLIC KEY`) or private key.
pub fn rsa_verify(
    algorithm: Algorithm,
    pem: &str,
    message: &[u8],
    signature: &[u8],
) -> std::result::Result<bool, String> {
    fn run<D: Digest + AssociatedOid>(key: RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = Signature::try_from(signature) else {
            return false;
        };
        VerifyingKey::<D>::new(key)
            .verify(message, &signature)
            .is_ok()
    }
    let key = public_key(pem)?;
    Ok(match algorithm {
        Algorithm::Sha1 => run::<sha1::Sha1>(key, message, signature),
        Algorithm::Sha256 => run::<sha2::Sha256>(key, message, signature),
        Algorithm::Sha384 => run::<sha2::Sha384>(key, message, signature),
        Algorithm::Sha512 => run::<sha2::Sha512>(key, message, signature),
        Algorithm::Md5 => return Err(UNSUPPORTED_SIGNATURE.into()),
    })
}

const UNSUPPORTED_SIGNATURE: &str =
    "RSA signatures are supported with sha1, sha256, sha384 and sha512";

fn private_key(pem: &str) -> std::result::Result<RsaPrivateKey, String> {
    let pem = pem.trim();
    if pem.contains("ENCRYPTED PRIVATE KEY") || pem.contains("Proc-Type: 4,ENCRYPTED") {
        return Err("encrypted private keys are not supported; pass the key unencrypted".into());
    }
    let parsed = if pem.contains("BEGIN RSA PRIVATE KEY") {
        RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| e.to_string())
    } else if pem.contains("BEGIN PRIVATE KEY") {
        RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())
    } else {
        Err("expected a PEM 'RSA PRIVATE KEY' or 'PRIVATE KEY'".to_string())
    };
    parsed.map_err(|e| format!("the private key could not be read: {e}"))
}

fn public_key(pem: &str) -> std::result::Result<RsaPublicKey, String> {
    let pem = pem.trim();
    let parsed = if pem.contains("BEGIN RSA PUBLIC KEY") {
        RsaPublicKey::from_pkcs1_pem(pem).map_err(|e| e.to_string())
    } else if pem.contains("BEGIN PUBLIC KEY") {
        RsaPublicKey::from_public_key_pem(pem).map_err(|e| e.to_string())
    } else if pem.contains("PRIVATE KEY") {
        return private_key(pem).map(|key| key.to_public_key());
    } else {
        Err("expected a PEM 'PUBLIC KEY', 'RSA PUBLIC KEY' or private key".to_string())
    };
    parsed.map_err(|e| format!("the public key could not be read: {e}"))
}

/// A version 4 UUID from OS randomness.
pub fn random_uuid() -> std::result::Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = super::buffer::encode_hex(&bytes);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// Registers `hashName`, `digest`, `hmac`, `randomBytes`, `randomUUID`, `timingSafeEqual`, `sign` and
/// `verify` on `native`. `max_bytes` bounds `randomBytes`.
pub(super) fn register<'js>(ctx: &Ctx<'js>, native: &Object<'js>, max_bytes: usize) -> Result<()> {
    native.set(
        "hashName",
        Function::new(ctx.clone(), |name: String| {
            Algorithm::from_name(&name).map(|a| format!("{a:?}").to_ascii_lowercase())
        })?,
    )?;
    native.set(
        "digest",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, name: String, key: Option<TypedArray<'js, u8>>, chunks: Array<'js>| {
                let algorithm = algorithm(&ctx, &name)?;
                let chunks = typed_chunks(&chunks)?;
                // SAFETY: no JavaScript runs while the slices are alive.
                let out = unsafe {
                    let slices = chunks.iter().map(|c| bytes_of(c));
                    match &key {
                        Some(key) => algorithm.hmac(bytes_of(key), slices),
                        None => algorithm.digest(slices),
                    }
                };
                new_bytes(&ctx, out)
            },
        )?,
    )?;
    native.set(
        "randomBytes",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, size: f64| {
            if !(0.0..=max_bytes as f64).contains(&size) || size.fract() != 0.0 {
                return Err(Exception::throw_range(
                    &ctx,
                    &format!("The value of \"size\" is out of range. It must be >= 0 && <= {max_bytes}. Received {size}"),
                ));
            }
            let mut bytes = vec![0u8; size as usize];
            getrandom::getrandom(&mut bytes)
                .map_err(|e| Exception::throw_message(&ctx, &format!("no randomness available: {e}")))?;
            new_bytes(&ctx, bytes)
        })?,
    )?;
    native.set(
        "randomUUID",
        Function::new(ctx.clone(), |ctx: Ctx<'js>| {
            random_uuid().map_err(|e| {
                Exception::throw_message(&ctx, &format!("no randomness available: {e}"))
            })
        })?,
    )?;
    native.set(
        "timingSafeEqual",
        Function::new(
            ctx.clone(),
            |a: TypedArray<'js, u8>, b: TypedArray<'js, u8>| -> bool {
                // SAFETY: no JavaScript runs while the slices are alive.
                let (a, b) = unsafe { (bytes_of(&a), bytes_of(&b)) };
                a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
            },
        )?,
    )?;
    native.set(
        "sign",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, name: String, pem: String, chunks: Array<'js>| {
                let algorithm = algorithm(&ctx, &name)?;
                let message = concat(&typed_chunks(&chunks)?);
                let signature = rsa_sign(algorithm, &pem, &message)
                    .map_err(|e| Exception::throw_message(&ctx, &e))?;
                new_bytes(&ctx, signature)
            },
        )?,
    )?;
    native.set(
        "verify",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             name: String,
             pem: String,
             chunks: Array<'js>,
             signature: TypedArray<'js, u8>| {
                let algorithm = algorithm(&ctx, &name)?;
                let message = concat(&typed_chunks(&chunks)?);
                // SAFETY: no JavaScript runs while the slice is alive.
                let signature = unsafe { bytes_of(&signature) }.to_vec();
                rsa_verify(algorithm, &pem, &message, &signature)
                    .map_err(|e| Exception::throw_message(&ctx, &e))
            },
        )?,
    )?;
    Ok(())
}

fn algorithm(ctx: &Ctx<'_>, name: &str) -> Result<Algorithm> {
    Algorithm::from_name(name)
        .ok_or_else(|| Exception::throw_message(ctx, &format!("Invalid digest: {name}")))
}

fn typed_chunks<'js>(chunks: &Array<'js>) -> Result<Vec<TypedArray<'js, u8>>> {
    chunks.iter::<TypedArray<'js, u8>>().collect()
}

fn concat(chunks: &[TypedArray<'_, u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks {
        // SAFETY: no JavaScript runs while the slice is alive.
        out.extend_from_slice(unsafe { bytes_of(chunk) });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let hex = super::super::buffer::encode_hex;
        assert_eq!(
            hex(&Algorithm::Sha256.digest([b"abc".as_slice()])),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&Algorithm::Md5.digest([b"a".as_slice(), b"bc".as_slice()])),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        // RFC 4231, test case 2.
        assert_eq!(
            hex(&Algorithm::Sha256.hmac(b"Jefe", [b"what do ya want for nothing?".as_slice()])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(Algorithm::from_name("RSA-SHA256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::from_name("whirlpool"), None);
        let uuid = random_uuid().unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
    }
}
