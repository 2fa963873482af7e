//! DSSE (Dead Simple Signing Envelope) v1 with ECDSA P-256 / SHA-256.
//!
//! The signature covers the pre-authentication encoding
//! `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body` (lengths in ASCII decimal bytes),
//! never the base64 text, so the payload type is bound to the signature.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::{AttestError, Result};
use crate::keys::{PrivateKey, PublicKey};
use crate::sign::{sign_bytes_der, verify_bytes};

/// Payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Media type of a DSSE envelope stored as an OCI layer.
pub const DSSE_ENVELOPE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// A DSSE envelope as JSON: payload base64, payload type, signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Standard base64 of the payload bytes.
    pub payload: String,
    /// Type of the payload, e.g. [`IN_TOTO_PAYLOAD_TYPE`].
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// One entry per signer.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Key hint. The DSSE spec makes it optional and unauthenticated: cosign 2 writes `""`,
    /// cosign 3 leaves it out, so it is parsed when present and never trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// Standard base64 of the DER ECDSA signature over the PAE.
    pub sig: String,
}

/// DSSE v1 pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` into a new envelope with an empty key id (as cosign does).
pub fn sign_envelope(key: &PrivateKey, payload_type: &str, payload: &[u8]) -> Envelope {
    let sig = sign_bytes_der(key, &pae(payload_type, payload));
    Envelope {
        payload: B64.encode(payload),
        payload_type: payload_type.to_owned(),
        signatures: vec![EnvelopeSignature {
            // An empty key id, as cosign 2 writes for key-file signatures: keeps kiln's
            // envelopes byte-identical to before keyid became optional.
            keyid: Some(String::new()),
            sig: B64.encode(sig),
        }],
    }
}

impl Envelope {
    /// The decoded payload bytes.
    pub fn payload_bytes(&self) -> Result<Vec<u8>> {
        B64.decode(&self.payload)
            .map_err(|e| AttestError::MalformedEnvelope {
                reason: format!("payload is not base64: {e}"),
            })
    }

    /// Parses an envelope from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| AttestError::MalformedEnvelope {
            reason: e.to_string(),
        })
    }

    /// Compact JSON bytes.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }
}

/// Verifies that at least one signature of `env` was made by `key` over a payload of type
/// `expected_type`; returns the payload bytes.
///
/// Every signature is tried whatever its `keyid`: the key id is an unauthenticated hint, so
/// a missing or different one neither selects nor rejects a signature.
pub fn verify_envelope(key: &PublicKey, env: &Envelope, expected_type: &str) -> Result<Vec<u8>> {
    if env.payload_type != expected_type {
        return Err(AttestError::MalformedEnvelope {
            reason: format!(
                "payload type is {:?}, expected {expected_type:?}",
                env.payload_type
            ),
        });
    }
    if env.signatures.is_empty() {
        return Err(AttestError::MalformedEnvelope {
            reason: "no signatures".into(),
        });
    }
    let payload = env.payload_bytes()?;
    let message = pae(&env.payload_type, &payload);
    let mut last = AttestError::BadSignature;
    for s in &env.signatures {
        match verify_bytes(key, &message, &s.sig) {
            Ok(()) => return Ok(payload),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_spec_example() {
        // The worked example of the DSSE protocol specification.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
        // Lengths count bytes, not characters.
        assert_eq!(
            pae("t", "é".as_bytes()),
            "DSSEv1 1 t 2 é".as_bytes().to_vec()
        );
    }

    #[test]
    fn envelope_round_trip_and_tamper() {
        let key = PrivateKey::generate().unwrap();
        let env = sign_envelope(&key, IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}");
        let parsed = Envelope::from_json(&env.to_json().unwrap()).unwrap();
        assert_eq!(
            verify_envelope(&key.public_key(), &parsed, IN_TOTO_PAYLOAD_TYPE).unwrap(),
            b"{\"a\":1}"
        );
        let mut changed = parsed.clone();
        changed.payload = B64.encode(b"{\"a\":2}");
        assert!(matches!(
            verify_envelope(&key.public_key(), &changed, IN_TOTO_PAYLOAD_TYPE),
            Err(AttestError::BadSignature)
        ));
        // Changing the type changes the PAE, so the signature must fail, not just the check.
        let mut retyped = parsed.clone();
        retyped.payload_type = "text/plain".into();
        assert!(matches!(
            verify_envelope(&key.public_key(), &retyped, "text/plain"),
            Err(AttestError::BadSignature)
        ));
        let other = PrivateKey::generate().unwrap();
        assert!(matches!(
            verify_envelope(&other.public_key(), &parsed, IN_TOTO_PAYLOAD_TYPE),
            Err(AttestError::BadSignature)
        ));
    }

    #[test]
    fn keyid_is_optional_and_only_a_hint() {
        let key = PrivateKey::generate().unwrap();
        let signed = sign_envelope(&key, IN_TOTO_PAYLOAD_TYPE, b"{}");
        // As cosign 3 writes it: no keyid at all.
        let json = format!(
            r#"{{"payload":"{}","payloadType":"{IN_TOTO_PAYLOAD_TYPE}","signatures":[{{"sig":"{}"}}]}}"#,
            signed.payload, signed.signatures[0].sig
        );
        let env = Envelope::from_json(json.as_bytes()).unwrap();
        assert_eq!(env.signatures[0].keyid, None);
        assert_eq!(
            verify_envelope(&key.public_key(), &env, IN_TOTO_PAYLOAD_TYPE).unwrap(),
            b"{}"
        );
        assert!(!String::from_utf8(env.to_json().unwrap())
            .unwrap()
            .contains("keyid"));
        // A keyid naming some other key does not stop the signature from verifying.
        let mut hinted = env.clone();
        hinted.signatures[0].keyid = Some("SHA256:not-this-key".into());
        assert!(verify_envelope(&key.public_key(), &hinted, IN_TOTO_PAYLOAD_TYPE).is_ok());
        // kiln's own envelopes keep the empty keyid cosign 2 writes.
        assert!(String::from_utf8(signed.to_json().unwrap())
            .unwrap()
            .contains(r#""keyid":"""#));
    }
}
