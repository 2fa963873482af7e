//! Sigstore bundles (v0.3, as cosign 3 writes them by default), verified with a public key.
//!
//! A bundle carries either a DSSE envelope (`cosign sign` and `cosign attest` of an image: an
//! in-toto statement whose subject is the image digest) or a plain message signature (a blob
//! signature: ECDSA over the artifact bytes, with the artifact's SHA-256 alongside). Only the
//! key-based path is implemented: the signature is checked against the caller's key, and
//! transparency-log entries and timestamps, when present, are counted but not verified, so
//! nothing here claims a transparency-log check.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kiln_types::Digest;
use serde::Deserialize;

use crate::dsse::{verify_envelope, Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::error::{AttestError, Result};
use crate::keys::PublicKey;
use crate::sign::verify_signature;

/// Media type of a Sigstore bundle v0.3 (also the OCI artifact type cosign 3 stores it under).
pub const SIGSTORE_BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Media types of the older bundle versions, whose JSON shape is the same for key-based bundles.
const OLDER_BUNDLE_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
];
/// Predicate type of the statement `cosign sign` (bundle format) signs for an image.
pub const COSIGN_SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Manifest annotation cosign 3 puts on a bundle referrer: the predicate type inside it.
pub const BUNDLE_PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// A Sigstore bundle as JSON (fields kiln reads; unknown fields are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// `application/vnd.dev.sigstore.bundle.v0.3+json` (or an older version string).
    pub media_type: String,
    /// Key hint or certificate, transparency-log entries, timestamps.
    #[serde(default)]
    pub verification_material: VerificationMaterial,
    /// A DSSE envelope (image signatures and attestations).
    #[serde(default)]
    pub dsse_envelope: Option<Envelope>,
    /// A signature over a blob.
    #[serde(default)]
    pub message_signature: Option<MessageSignature>,
}

/// How a bundle's signature can be checked, and what was logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    /// Present for key-based signatures; the hint is unauthenticated.
    #[serde(default)]
    pub public_key: Option<PublicKeyHint>,
    /// Present for keyless (Fulcio) signatures, which kiln does not verify.
    #[serde(default)]
    pub certificate: Option<serde_json::Value>,
    /// v0.1/v0.2 spelling of the certificate.
    #[serde(default)]
    pub x509_certificate_chain: Option<serde_json::Value>,
    /// Transparency-log entries (not verified by kiln).
    #[serde(default)]
    pub tlog_entries: Vec<serde_json::Value>,
}

/// `verificationMaterial.publicKey`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PublicKeyHint {
    /// Free-form key hint (cosign leaves it empty or writes a key id).
    #[serde(default)]
    pub hint: Option<String>,
}

/// `messageSignature`: a signature over a blob, with the blob's digest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSignature {
    /// The signed blob's digest, when recorded.
    #[serde(default)]
    pub message_digest: Option<HashOutput>,
    /// Standard base64 of the DER ECDSA signature over the blob.
    pub signature: String,
}

/// A digest with its algorithm name, e.g. `SHA2_256`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HashOutput {
    /// Algorithm, e.g. `SHA2_256`.
    pub algorithm: String,
    /// Standard base64 of the digest bytes.
    pub digest: String,
}

/// What a bundle signed, once its signature verified with the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleContent {
    /// An in-toto statement (the DSSE payload, verified).
    Statement {
        /// `predicateType` of the statement.
        predicate_type: String,
        /// sha256 digests (hex) the statement's subjects name.
        subject_sha256: Vec<String>,
        /// The payload bytes.
        payload: Vec<u8>,
    },
    /// A message signature over the bytes the caller passed.
    Message {
        /// sha256 of those bytes.
        digest: Digest,
    },
}

impl Bundle {
    /// Parses a bundle and checks its media type.
    ///
    /// Errors: [`AttestError::MalformedBundle`] for anything that is not a bundle kiln can read.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let bundle: Self = serde_json::from_slice(bytes).map_err(|e| bundle_err(e.to_string()))?;
        if bundle.media_type != SIGSTORE_BUNDLE_MEDIA_TYPE
            && !OLDER_BUNDLE_MEDIA_TYPES.contains(&bundle.media_type.as_str())
        {
            return Err(bundle_err(format!(
                "media type {:?} is not a Sigstore bundle v0.1-v0.3",
                bundle.media_type
            )));
        }
        match (&bundle.dsse_envelope, &bundle.message_signature) {
            (Some(_), None) | (None, Some(_)) => Ok(bundle),
            (None, None) => Err(bundle_err(
                "it has neither a dsseEnvelope nor a messageSignature".into(),
            )),
            (Some(_), Some(_)) => Err(bundle_err(
                "it has both a dsseEnvelope and a messageSignature".into(),
            )),
        }
    }

    /// Whether the bundle was signed with a Fulcio certificate (keyless) rather than a key.
    pub fn is_keyless(&self) -> bool {
        let m = &self.verification_material;
        m.certificate.is_some() || m.x509_certificate_chain.is_some()
    }

    /// The predicate type of the DSSE statement, read without verifying anything: for saying
    /// what a bundle claims to be when it does not verify.
    pub fn claimed_predicate_type(&self) -> Option<String> {
        let env = self.dsse_envelope.as_ref()?;
        let payload = env.payload_bytes().ok()?;
        let stmt: serde_json::Value = serde_json::from_slice(&payload).ok()?;
        stmt["predicateType"].as_str().map(str::to_owned)
    }

    /// Verifies the bundle's signature with `key`, key-based only.
    ///
    /// A DSSE envelope must carry an in-toto statement signed by `key`. A message signature
    /// must be over `message` (the blob the caller expects it to sign, e.g. an image
    /// manifest's bytes); its recorded digest, if any, must be that blob's SHA-256.
    ///
    /// Errors: [`AttestError::BadSignature`] when another key signed or the content changed,
    /// [`AttestError::MalformedBundle`] / [`AttestError::MalformedEnvelope`] for unreadable
    /// content.
    pub fn verify(&self, key: &PublicKey, message: Option<&[u8]>) -> Result<BundleContent> {
        if let Some(env) = &self.dsse_envelope {
            let payload = verify_envelope(key, env, IN_TOTO_PAYLOAD_TYPE)?;
            let stmt: serde_json::Value = serde_json::from_slice(&payload)
                .map_err(|e| bundle_err(format!("DSSE payload is not JSON: {e}")))?;
            let predicate_type = stmt["predicateType"]
                .as_str()
                .ok_or_else(|| bundle_err("statement has no predicateType".into()))?
                .to_owned();
            let subject_sha256 = stmt["subject"]
                .as_array()
                .map(|subjects| {
                    subjects
                        .iter()
                        .filter_map(|s| s["digest"]["sha256"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            return Ok(BundleContent::Statement {
                predicate_type,
                subject_sha256,
                payload,
            });
        }
        let Some(sig) = &self.message_signature else {
            return Err(bundle_err(
                "it has neither a dsseEnvelope nor a messageSignature".into(),
            ));
        };
        let message = message.ok_or_else(|| {
            bundle_err("a message signature needs the signed blob, and none was given".into())
        })?;
        let digest = Digest::of_bytes(message);
        if let Some(h) = &sig.message_digest {
            if h.algorithm != "SHA2_256" {
                return Err(bundle_err(format!(
                    "message digest algorithm {} is not SHA2_256",
                    h.algorithm
                )));
            }
            let recorded = B64
                .decode(&h.digest)
                .map_err(|e| bundle_err(format!("message digest is not base64: {e}")))?;
            if hex::encode(recorded) != digest.hex() {
                return Err(bundle_err(format!(
                    "message digest is not the digest of the signed blob ({digest})"
                )));
            }
        }
        verify_signature(key, message, &sig.signature)?;
        Ok(BundleContent::Message { digest })
    }
}

fn bundle_err(reason: String) -> AttestError {
    AttestError::MalformedBundle { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsse::sign_envelope;
    use crate::keys::PrivateKey;
    use crate::sign::sign_payload;

    fn statement(predicate_type: &str, digest: &Digest) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": digest.hex()}}],
            "predicateType": predicate_type,
            "predicate": {},
        }))
        .unwrap()
    }

    /// A bundle as cosign 3 writes it for `cosign sign --key` without a transparency log
    /// (protojson: no keyid, empty hint, no tlog entries).
    fn dsse_bundle(key: &PrivateKey, payload: &[u8]) -> String {
        let env = sign_envelope(key, IN_TOTO_PAYLOAD_TYPE, payload);
        format!(
            r#"{{"mediaType":"{SIGSTORE_BUNDLE_MEDIA_TYPE}","verificationMaterial":{{"publicKey":{{"hint":""}}}},"dsseEnvelope":{{"payload":"{}","payloadType":"{IN_TOTO_PAYLOAD_TYPE}","signatures":[{{"sig":"{}"}}]}}}}"#,
            env.payload, env.signatures[0].sig
        )
    }

    #[test]
    fn dsse_bundle_verifies_with_its_key_only() {
        let key = PrivateKey::generate().unwrap();
        let image = Digest::of_bytes(b"manifest");
        let json = dsse_bundle(&key, &statement(COSIGN_SIGN_PREDICATE_TYPE, &image));
        let bundle = Bundle::from_json(json.as_bytes()).unwrap();
        assert!(!bundle.is_keyless());
        assert_eq!(
            bundle.claimed_predicate_type().as_deref(),
            Some(COSIGN_SIGN_PREDICATE_TYPE)
        );
        match bundle.verify(&key.public_key(), None).unwrap() {
            BundleContent::Statement {
                predicate_type,
                subject_sha256,
                ..
            } => {
                assert_eq!(predicate_type, COSIGN_SIGN_PREDICATE_TYPE);
                assert_eq!(subject_sha256, vec![image.hex()]);
            }
            other => panic!("{other:?}"),
        }
        let other = PrivateKey::generate().unwrap();
        assert!(matches!(
            bundle.verify(&other.public_key(), None),
            Err(AttestError::BadSignature)
        ));
    }

    #[test]
    fn tampered_dsse_payload_fails() {
        let key = PrivateKey::generate().unwrap();
        let image = Digest::of_bytes(b"manifest");
        let json = dsse_bundle(&key, &statement(COSIGN_SIGN_PREDICATE_TYPE, &image));
        let mut bundle = Bundle::from_json(json.as_bytes()).unwrap();
        let forged = statement(COSIGN_SIGN_PREDICATE_TYPE, &Digest::of_bytes(b"other"));
        if let Some(env) = bundle.dsse_envelope.as_mut() {
            env.payload = B64.encode(forged);
        }
        assert!(matches!(
            bundle.verify(&key.public_key(), None),
            Err(AttestError::BadSignature)
        ));
    }

    #[test]
    fn message_signature_is_checked_against_the_blob() {
        let key = PrivateKey::generate().unwrap();
        let blob = b"{\"schemaVersion\":2}";
        let sig = sign_payload(&key, blob);
        let digest_b64 = B64.encode(Digest::of_bytes(blob).as_raw());
        let json = format!(
            r#"{{"mediaType":"{SIGSTORE_BUNDLE_MEDIA_TYPE}","verificationMaterial":{{"publicKey":{{}},"tlogEntries":[]}},"messageSignature":{{"messageDigest":{{"algorithm":"SHA2_256","digest":"{digest_b64}"}},"signature":"{sig}"}}}}"#
        );
        let bundle = Bundle::from_json(json.as_bytes()).unwrap();
        assert_eq!(
            bundle.verify(&key.public_key(), Some(blob)).unwrap(),
            BundleContent::Message {
                digest: Digest::of_bytes(blob)
            }
        );
        // Another blob: the recorded digest does not match.
        let err = bundle
            .verify(&key.public_key(), Some(b"changed"))
            .unwrap_err();
        assert!(err.to_string().contains("not the digest"), "{err}");
        // The right blob, the wrong key.
        let other = PrivateKey::generate().unwrap();
        assert!(matches!(
            bundle.verify(&other.public_key(), Some(blob)),
            Err(AttestError::BadSignature)
        ));
        assert!(bundle.verify(&key.public_key(), None).is_err());
    }

    #[test]
    fn not_a_bundle_is_reported() {
        for (json, says) in [
            (
                r#"{"mediaType":"application/json"}"#,
                "not a Sigstore bundle",
            ),
            (
                r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#,
                "neither",
            ),
            ("[]", "malformed Sigstore bundle"),
        ] {
            let err = Bundle::from_json(json.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
        let keyless = r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":{"rawBytes":"AA=="}},"messageSignature":{"signature":"AA=="}}"#;
        assert!(Bundle::from_json(keyless.as_bytes()).unwrap().is_keyless());
    }
}
