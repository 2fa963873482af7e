//! Raw ECDSA P-256 / SHA-256 signatures in cosign's encoding (base64 of ASN.1 DER).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature};

use crate::error::{AttestError, Result};
use crate::keys::{PrivateKey, PublicKey};

/// DER signature of SHA-256(`message`). RFC 6979 nonces make it deterministic per key.
pub(crate) fn sign_bytes_der(key: &PrivateKey, message: &[u8]) -> Vec<u8> {
    let sig: Signature = key.0.sign(message);
    sig.to_der().as_bytes().to_vec()
}

/// Signs `payload` the way `cosign sign` does: ECDSA P-256 over SHA-256, DER, base64.
pub fn sign_payload(key: &PrivateKey, payload: &[u8]) -> String {
    B64.encode(sign_bytes_der(key, payload))
}

/// Verifies a base64 DER (or raw r||s) signature over `message`.
pub(crate) fn verify_bytes(key: &PublicKey, message: &[u8], sig_b64: &str) -> Result<()> {
    let raw = B64
        .decode(sig_b64.trim())
        .map_err(|e| AttestError::MalformedSignature {
            reason: format!("not base64: {e}"),
        })?;
    let sig = match DerSignature::from_bytes(&raw) {
        Ok(der) => Signature::try_from(der).map_err(|e| AttestError::MalformedSignature {
            reason: e.to_string(),
        })?,
        // Some tools emit the fixed 64-byte r||s form; accept it too.
        Err(_) if raw.len() == 64 => {
            Signature::from_slice(&raw).map_err(|e| AttestError::MalformedSignature {
                reason: e.to_string(),
            })?
        }
        Err(e) => {
            return Err(AttestError::MalformedSignature {
                reason: format!("not a DER ECDSA signature: {e}"),
            })
        }
    };
    key.0
        .verify(message, &sig)
        .map_err(|_| AttestError::BadSignature)
}

/// Checks a cosign-style signature (base64 DER ECDSA P-256/SHA-256) over `payload`.
///
/// Errors: [`AttestError::MalformedSignature`] when the signature cannot be decoded
/// (e.g. truncated), [`AttestError::BadSignature`] when it was made by another key or the
/// payload changed.
pub fn verify_signature(key: &PublicKey, payload: &[u8], sig_b64: &str) -> Result<()> {
    verify_bytes(key, payload, sig_b64)
}
