//! ECDSA P-256 keys in cosign's file formats.
//!
//! Public keys are SPKI `PUBLIC KEY` PEM. Private keys are PKCS#8 DER encrypted the way
//! cosign (sigstore's `encrypted` package) does it, so either tool can read the other's
//! keys: PEM label `ENCRYPTED SIGSTORE PRIVATE KEY` around a JSON document
//! `{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":b64},
//!   "cipher":{"name":"nacl/secretbox","nonce":b64},"ciphertext":b64}`
//! where the secretbox key is scrypt(password, salt) and the ciphertext is
//! NaCl secretbox (Poly1305 tag first) of the PKCS#8 DER.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde::{Deserialize, Serialize};

use crate::error::{AttestError, Result};

/// PEM label cosign 2.x writes for encrypted private keys.
pub const ENCRYPTED_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label older cosign releases wrote; still accepted when loading.
pub const LEGACY_ENCRYPTED_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

const SCRYPT_N: u64 = 32_768;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
// Refuse absurd work factors from a file: they would hang the build (cosign itself
// writes 32768 or 65536).
const SCRYPT_MAX_LOG_N: u8 = 20;

/// A signing key (ECDSA P-256).
#[derive(Clone)]
pub struct PrivateKey(pub(crate) SigningKey);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// A verification key (ECDSA P-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(pub(crate) VerifyingKey);

impl PrivateKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Result<Self> {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| AttestError::Random {
                reason: e.to_string(),
            })?;
            // Rejection sampling: the few 32-byte values outside the scalar field are retried.
            if let Ok(k) = SigningKey::from_slice(&bytes) {
                return Ok(Self(k));
            }
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.0.verifying_key())
    }

    /// Encrypts the key with `password` in cosign's format (PEM text).
    pub fn to_encrypted_pem(&self, password: &[u8]) -> Result<String> {
        let der = self
            .0
            .to_pkcs8_der()
            .map_err(|e| AttestError::MalformedPrivateKey {
                name: "generated key".into(),
                reason: e.to_string(),
            })?;
        let mut salt = [0u8; 32];
        let mut nonce = [0u8; 24];
        for buf in [&mut salt[..], &mut nonce[..]] {
            getrandom::fill(buf).map_err(|e| AttestError::Random {
                reason: e.to_string(),
            })?;
        }
        let key = derive_key(
            password,
            &salt,
            SCRYPT_N,
            SCRYPT_R,
            SCRYPT_P,
            "generated key",
        )?;
        let ciphertext = XSalsa20Poly1305::new(&key.into())
            .encrypt(&nonce.into(), der.as_bytes())
            .map_err(|_| AttestError::MalformedPrivateKey {
                name: "generated key".into(),
                reason: "encryption failed".into(),
            })?;
        let doc = EncryptedKey {
            kdf: Kdf {
                name: "scrypt".into(),
                params: KdfParams {
                    n: SCRYPT_N,
                    r: SCRYPT_R,
                    p: SCRYPT_P,
                },
                salt: B64.encode(salt),
            },
            cipher: Cipher {
                name: "nacl/secretbox".into(),
                nonce: B64.encode(nonce),
            },
            ciphertext: B64.encode(ciphertext),
        };
        let json = serde_json::to_vec(&doc)?;
        pem_rfc7468::encode_string(ENCRYPTED_KEY_LABEL, pem_rfc7468::LineEnding::LF, &json).map_err(
            |e| AttestError::MalformedPrivateKey {
                name: "generated key".into(),
                reason: e.to_string(),
            },
        )
    }
}

impl PublicKey {
    /// SPKI `PUBLIC KEY` PEM, as cosign writes `cosign.pub`.
    pub fn to_pem(&self) -> Result<String> {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| AttestError::MalformedPublicKey {
                reason: e.to_string(),
            })
    }

    /// SPKI DER bytes.
    pub fn to_der(&self) -> Result<Vec<u8>> {
        self.0
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|e| AttestError::MalformedPublicKey {
                reason: e.to_string(),
            })
    }

    /// A stable key id: hex SHA-256 of the SPKI DER.
    pub fn key_id(&self) -> Result<String> {
        Ok(kiln_types::Digest::of_bytes(&self.to_der()?).hex())
    }
}

#[derive(Serialize, Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

#[derive(Serialize, Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

fn derive_key(
    password: &[u8],
    salt: &[u8],
    n: u64,
    r: u32,
    p: u32,
    name: &str,
) -> Result<[u8; 32]> {
    let bad = |reason: String| AttestError::MalformedPrivateKey {
        name: name.to_owned(),
        reason,
    };
    if !n.is_power_of_two() || n < 2 {
        return Err(bad(format!("scrypt N={n} is not a power of two")));
    }
    let log_n =
        u8::try_from(n.trailing_zeros()).map_err(|_| bad(format!("scrypt N={n} too large")))?;
    if log_n > SCRYPT_MAX_LOG_N || r > 32 || p > 16 {
        return Err(bad(format!(
            "scrypt parameters N={n} r={r} p={p} are too expensive"
        )));
    }
    let params =
        scrypt::Params::new(log_n, r, p).map_err(|e| bad(format!("scrypt parameters: {e}")))?;
    let mut out = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut out).map_err(|e| bad(format!("scrypt: {e}")))?;
    Ok(out)
}

/// Generates a key pair: (encrypted private key PEM, public key PEM).
pub fn generate_keypair(password: &[u8]) -> Result<(String, String)> {
    let key = PrivateKey::generate()?;
    Ok((key.to_encrypted_pem(password)?, key.public_key().to_pem()?))
}

/// Loads an encrypted private key; errors name the file as `kiln.key`.
pub fn load_private_key(pem: &[u8], password: &[u8]) -> Result<PrivateKey> {
    load_private_key_named(pem, password, "kiln.key")
}

/// Loads an encrypted private key from a file; errors name the file.
pub fn load_private_key_file(path: &Path, password: &[u8]) -> Result<PrivateKey> {
    let pem = std::fs::read(path).map_err(|source| AttestError::Io {
        path: path.to_owned(),
        source,
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    load_private_key_named(&pem, password, &name)
}

/// Loads an encrypted private key, naming it `name` in errors.
pub fn load_private_key_named(pem: &[u8], password: &[u8], name: &str) -> Result<PrivateKey> {
    let bad = |reason: String| AttestError::MalformedPrivateKey {
        name: name.to_owned(),
        reason,
    };
    let (label, body) = pem_rfc7468::decode_vec(pem).map_err(|e| bad(format!("not PEM: {e}")))?;
    if label != ENCRYPTED_KEY_LABEL && label != LEGACY_ENCRYPTED_KEY_LABEL {
        return Err(bad(format!("unexpected PEM label {label:?}")));
    }
    let doc: EncryptedKey =
        serde_json::from_slice(&body).map_err(|e| bad(format!("bad key document: {e}")))?;
    if doc.kdf.name != "scrypt" {
        return Err(bad(format!("unsupported kdf {:?}", doc.kdf.name)));
    }
    if doc.cipher.name != "nacl/secretbox" {
        return Err(bad(format!("unsupported cipher {:?}", doc.cipher.name)));
    }
    let decode = |what: &str, s: &str| {
        B64.decode(s)
            .map_err(|e| bad(format!("{what} is not base64: {e}")))
    };
    let salt = decode("salt", &doc.kdf.salt)?;
    let nonce = decode("nonce", &doc.cipher.nonce)?;
    let ciphertext = decode("ciphertext", &doc.ciphertext)?;
    let nonce: [u8; 24] = nonce
        .try_into()
        .map_err(|_| bad("nonce is not 24 bytes".into()))?;
    let p = &doc.kdf.params;
    let key = derive_key(password, &salt, p.n, p.r, p.p, name)?;
    // secretbox authenticates, so a wrong password shows up as a failed decryption.
    let der = XSalsa20Poly1305::new(&key.into())
        .decrypt(&nonce.into(), ciphertext.as_slice())
        .map_err(|_| AttestError::WrongPassword {
            name: name.to_owned(),
        })?;
    let sk = SigningKey::from_pkcs8_der(&der).map_err(|e| {
        bad(format!(
            "decrypted key is not a PKCS#8 ECDSA P-256 key: {e}"
        ))
    })?;
    Ok(PrivateKey(sk))
}

/// Loads a `PUBLIC KEY` PEM (ECDSA P-256).
pub fn load_public_key(pem: &[u8]) -> Result<PublicKey> {
    let text = std::str::from_utf8(pem).map_err(|_| AttestError::MalformedPublicKey {
        reason: "not UTF-8 text".into(),
    })?;
    VerifyingKey::from_public_key_pem(text.trim())
        .map(PublicKey)
        .map_err(|e| AttestError::MalformedPublicKey {
            reason: e.to_string(),
        })
}

/// Writes `<prefix>.key` (mode 0600) and `<prefix>.pub`, never overwriting existing files.
///
/// Both paths are checked before anything is written, so a refusal leaves no half pair.
pub fn write_keypair(prefix: &Path, password: &[u8]) -> Result<(PathBuf, PathBuf)> {
    let key_path = with_suffix(prefix, "key");
    let pub_path = with_suffix(prefix, "pub");
    for p in [&key_path, &pub_path] {
        if p.symlink_metadata().is_ok() {
            return Err(AttestError::KeyExists { path: p.clone() });
        }
    }
    let (private_pem, public_pem) = generate_keypair(password)?;
    write_new(&key_path, private_pem.as_bytes(), true)?;
    if let Err(e) = write_new(&pub_path, public_pem.as_bytes(), false) {
        // Do not leave a private key whose public half is missing.
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    Ok((key_path, pub_path))
}

fn with_suffix(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            AttestError::KeyExists {
                path: path.to_owned(),
            }
        } else {
            AttestError::Io {
                path: path.to_owned(),
                source,
            }
        }
    };
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}
