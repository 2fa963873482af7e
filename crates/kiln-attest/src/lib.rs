//! Supply-chain documents for kiln: SBOMs, provenance, signatures and policy.
//!
//! kiln's flow is discover -> plan -> key -> cache -> execute -> verify -> package ->
//! **attest** -> publish -> record. This crate is the *attest* step (and the checking half
//! of `kiln verify`): it turns what earlier steps learned about a build (Go build info of
//! each binary, the image digest, the base image) into
//!
//! - SBOMs: SPDX 2.3 ([`to_spdx`]) and CycloneDX 1.6 ([`to_cyclonedx`]) JSON,
//! - SLSA v1 provenance in an in-toto Statement v1 ([`provenance_statement`]),
//! - DSSE envelopes ([`sign_envelope`], [`verify_envelope`]),
//! - Sigstore bundles as cosign 3 stores them, verified with a key ([`Bundle`]),
//! - cosign-compatible keys ([`generate_keypair`], [`load_private_key`]) and signatures
//!   ([`simple_signing_payload`], [`sign_payload`], [`verify_signature`]),
//! - the OCI objects cosign stores them in ([`signature_manifest`],
//!   [`attestation_manifest`], [`referrer_manifest`], [`cosign_tag`]),
//! - policy evaluation ([`Policy`], [`evaluate`]).
//!
//! It is pure data and crypto: no network and no printing. The registry crate pushes the
//! bytes produced here.
//!
//! ```
//! use kiln_attest::{generate_keypair, load_private_key, load_public_key, sign_payload,
//!     simple_signing_payload, verify_signature, verify_simple_signing};
//! use kiln_types::Digest;
//!
//! let (private_pem, public_pem) = generate_keypair(b"secret").unwrap();
//! let key = load_private_key(private_pem.as_bytes(), b"secret").unwrap();
//! let digest = Digest::of_bytes(b"manifest");
//! let payload = simple_signing_payload("registry.example/app", &digest);
//! let sig = sign_payload(&key, &payload);
//! let public = load_public_key(public_pem.as_bytes()).unwrap();
//! verify_signature(&public, &payload, &sig).unwrap();
//! verify_simple_signing(&payload, &digest).unwrap();
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bundle;
mod cosign;
mod cyclonedx;
mod dsse;
mod error;
mod keys;
mod model;
mod policy;
mod provenance;
mod sign;
mod spdx;

pub use bundle::{
    Bundle, BundleContent, HashOutput, MessageSignature, PublicKeyHint, VerificationMaterial,
    BUNDLE_PREDICATE_TYPE_ANNOTATION, COSIGN_SIGN_PREDICATE_TYPE, SIGSTORE_BUNDLE_MEDIA_TYPE,
};
pub use cosign::{
    attestation_manifest, cosign_tag, referrer_manifest, signature_image, signature_manifest,
    sigstore_bundle, simple_signing_payload, verify_simple_signing, Blob, Descriptor, OciArtifact,
    SignedLayer, SimpleSigning, BUNDLE_CONTENT_ANNOTATION, COSIGN_SIGNATURE_TYPE,
    OCI_CONFIG_MEDIA_TYPE, OCI_EMPTY_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE,
    PREDICATE_TYPE_ANNOTATION, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE,
};
pub use cyclonedx::{
    serial_number, to_cyclonedx, to_cyclonedx_bytes, uuid_v5, CYCLONEDX_MEDIA_TYPE,
    UUID_NAMESPACE_URL,
};
pub use dsse::{
    pae, sign_envelope, verify_envelope, Envelope, EnvelopeSignature, DSSE_ENVELOPE_MEDIA_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
};
pub use error::{AttestError, Result};
pub use keys::{
    generate_keypair, load_private_key, load_private_key_file, load_private_key_named,
    load_public_key, write_keypair, PrivateKey, PublicKey, ENCRYPTED_KEY_LABEL,
    LEGACY_ENCRYPTED_KEY_LABEL,
};
pub use model::{
    format_rfc3339, go_purl, go_version_number, h1_to_sha256_hex, now_epoch, oci_purl, stdlib_purl,
    BaseImageInfo, BinaryInfo, CreationInfo, GoModule, SbomSubject, SubjectKind,
};
pub use policy::{evaluate, is_root_user, BinaryFact, Facts, ModuleFact, Policy, Violation};
pub use provenance::{
    provenance_statement, statement, ProvenanceInput, BUILTIN_BASE_NAME, KILN_BUILD_TYPE,
    SLSA_PROVENANCE_V1, STATEMENT_TYPE,
};
pub use sign::{sign_payload, verify_signature};
pub use spdx::{default_namespace, to_spdx, to_spdx_bytes, SPDX_MEDIA_TYPE};
