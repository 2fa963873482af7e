//! Cross-implementation check with Go's standard library, which is what cosign is built
//! on: Go verifies kiln's signatures and DSSE envelopes, re-encodes the simple-signing
//! payload byte for byte, and signs something kiln must verify.
//!
//! Needs the Go toolchain (`/usr/local/go/bin/go`, `go` on PATH, or `KILN_GO`); no network.

use std::path::PathBuf;
use std::process::Command;

use kiln_attest::{
    load_public_key, sign_envelope, sign_payload, simple_signing_payload, verify_signature,
    PrivateKey, IN_TOTO_PAYLOAD_TYPE,
};
use kiln_types::Digest;

fn go() -> PathBuf {
    if let Some(p) = std::env::var_os("KILN_GO") {
        return p.into();
    }
    let default = PathBuf::from("/usr/local/go/bin/go");
    if default.exists() {
        return default;
    }
    PathBuf::from("go")
}

#[test]
fn go_stdlib_agrees_with_kiln() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate().unwrap();
    let digest = Digest::of_bytes(b"manifest");
    // `&` exercises Go's HTML-safe escaping, which kiln mirrors.
    let payload = simple_signing_payload("registry.example/a&b", &digest);
    std::fs::write(
        dir.path().join("kiln.pub"),
        key.public_key().to_pem().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("payload.json"), &payload).unwrap();
    std::fs::write(dir.path().join("payload.sig"), sign_payload(&key, &payload)).unwrap();
    let env = sign_envelope(
        &key,
        IN_TOTO_PAYLOAD_TYPE,
        br#"{"_type":"https://in-toto.io/Statement/v1"}"#,
    );
    std::fs::write(dir.path().join("envelope.json"), env.to_json().unwrap()).unwrap();

    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/interop.go");
    let out = Command::new(go())
        .arg("run")
        .arg(&src)
        .arg(dir.path())
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GO111MODULE", "on")
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run the Go toolchain ({e}); install Go to /usr/local/go or set KILN_GO")
        });
    assert!(
        out.status.success(),
        "Go interop failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");

    let go_payload = std::fs::read(dir.path().join("go-payload.json")).unwrap();
    assert_eq!(
        String::from_utf8(go_payload).unwrap(),
        String::from_utf8(payload).unwrap(),
        "Go's encoder must produce the same payload bytes"
    );

    let go_pub = load_public_key(&std::fs::read(dir.path().join("go.pub")).unwrap()).unwrap();
    let go_sig = std::fs::read_to_string(dir.path().join("go.sig")).unwrap();
    verify_signature(&go_pub, b"signed by go", &go_sig).unwrap();
    assert!(verify_signature(&go_pub, b"signed by rust", &go_sig).is_err());
}
