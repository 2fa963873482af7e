//! Key generation, encryption and files, including a key written by the real cosign.

use kiln_attest::{
    generate_keypair, load_private_key, load_private_key_file, load_public_key, sign_payload,
    verify_signature, write_keypair, AttestError, ENCRYPTED_KEY_LABEL,
};

const COSIGN_KEY: &str = include_str!("fixtures/cosign_generated_empty_password.key");

#[test]
fn keypair_round_trip_with_password() {
    let (private_pem, public_pem) = generate_keypair(b"hunter2").unwrap();
    assert!(private_pem.starts_with(&format!("-----BEGIN {ENCRYPTED_KEY_LABEL}-----\n")));
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));

    // The PEM body is cosign's JSON document with the parameters cosign writes.
    let body: String = private_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    use base64::Engine as _;
    let json: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["kdf"]["name"], "scrypt");
    assert_eq!(
        json["kdf"]["params"],
        serde_json::json!({"N": 32768, "r": 8, "p": 1})
    );
    assert_eq!(json["cipher"]["name"], "nacl/secretbox");
    assert_eq!(json["kdf"]["salt"].as_str().unwrap().len(), 44); // 32 bytes
    assert_eq!(json["cipher"]["nonce"].as_str().unwrap().len(), 32); // 24 bytes

    let key = load_private_key(private_pem.as_bytes(), b"hunter2").unwrap();
    let public = load_public_key(public_pem.as_bytes()).unwrap();
    assert_eq!(key.public_key(), public);
    let sig = sign_payload(&key, b"payload");
    verify_signature(&public, b"payload", &sig).unwrap();
}

#[test]
fn wrong_password_is_reported_with_hint() {
    let (private_pem, _) = generate_keypair(b"right").unwrap();
    let err = load_private_key(private_pem.as_bytes(), b"wrong").unwrap_err();
    assert!(matches!(err, AttestError::WrongPassword { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "wrong password for kiln.key (set KILN_PASSWORD)"
    );
}

#[test]
fn reads_a_key_written_by_cosign() {
    let key = load_private_key(COSIGN_KEY.as_bytes(), b"").unwrap();
    let sig = sign_payload(&key, b"hello");
    verify_signature(&key.public_key(), b"hello", &sig).unwrap();
    assert!(matches!(
        load_private_key(COSIGN_KEY.as_bytes(), b"not empty"),
        Err(AttestError::WrongPassword { .. })
    ));
}

#[test]
fn garbage_keys_are_rejected_clearly() {
    let err = load_private_key(b"not a pem", b"").unwrap_err();
    assert!(
        matches!(err, AttestError::MalformedPrivateKey { .. }),
        "{err:?}"
    );
    let (_, public_pem) = generate_keypair(b"").unwrap();
    // A public key is not a private key.
    let err = load_private_key(public_pem.as_bytes(), b"").unwrap_err();
    assert!(err.to_string().contains("PUBLIC KEY"), "{err}");
    let err = load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
        .unwrap_err();
    assert!(
        matches!(err, AttestError::MalformedPublicKey { .. }),
        "{err:?}"
    );
}

#[test]
fn write_keypair_never_overwrites_and_protects_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("kiln");
    let (key_path, pub_path) = write_keypair(&prefix, b"pw").unwrap();
    assert_eq!(key_path, dir.path().join("kiln.key"));
    assert_eq!(pub_path, dir.path().join("kiln.pub"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let before = std::fs::read(&key_path).unwrap();
    let err = write_keypair(&prefix, b"pw").unwrap_err();
    assert!(matches!(err, AttestError::KeyExists { .. }), "{err:?}");
    assert_eq!(std::fs::read(&key_path).unwrap(), before);

    // Only the public half existing must also stop it, leaving no new private key behind.
    let other = dir.path().join("other");
    std::fs::write(dir.path().join("other.pub"), b"keep").unwrap();
    assert!(matches!(
        write_keypair(&other, b"pw"),
        Err(AttestError::KeyExists { .. })
    ));
    assert!(!dir.path().join("other.key").exists());
    assert_eq!(
        std::fs::read(dir.path().join("other.pub")).unwrap(),
        b"keep"
    );

    let key = load_private_key_file(&key_path, b"pw").unwrap();
    let err = load_private_key_file(&key_path, b"nope").unwrap_err();
    assert_eq!(
        err.to_string(),
        "wrong password for kiln.key (set KILN_PASSWORD)"
    );
    let public = load_public_key(&std::fs::read(&pub_path).unwrap()).unwrap();
    assert_eq!(key.public_key(), public);
}
