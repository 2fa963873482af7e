//! Issue 10, writing side: what `kiln sign --attest` leaves in a registry is read by the real
//! cosign (v3, the pinned `.ci/tools.sh` build) in its default (bundle) and legacy layouts,
//! keeps other tools' attestations, and does not pile up. Every scenario runs on both kinds of registry: Debian's docker-registry (no
//! referrers API: cosign tags plus the OCI 1.1 `sha256-<hex>` fallback index) and
//! go-containerregistry's registry with the referrers API.

mod supply_support;
// Only the peers part of `support`: its registry module is already in `supply_support`.
#[path = "support/peers.rs"]
mod peers;

use std::path::Path;

use kiln_attest::cosign_tag;
use kiln_registry::{referrers_fallback_tag, Reference, Repository};
use kiln_supply::KILN_ATTACHMENT_ANNOTATION;
use kiln_types::Digest;
use peers::{cosign_ok, ReferrersRegistry};
use supply_support::*;

/// cosign flags for an offline check against a plain-HTTP loopback registry.
const OFFLINE: [&str; 3] = [
    "--insecure-ignore-tlog=true",
    "--allow-http-registry=true",
    "--allow-insecure-registry=true",
];

/// cosign 3 flags that make `sign` / `attest` write the legacy `.sig` / `.att` layout without
/// a transparency log or a signing config.
const LEGACY: [&str; 5] = [
    "--new-bundle-format=false",
    "--tlog-upload=false",
    "--use-signing-config=false",
    "--allow-http-registry=true",
    "--allow-insecure-registry=true",
];

/// kiln's referrers per image from `--attest`: plain SPDX and CycloneDX, and each of the three
/// attestations as a DSSE envelope and as a Sigstore bundle.
const ATTACH_REFERRERS: usize = 8;
/// All of kiln's referrers after `kiln sign --attest`: those plus the signature's bundle.
const KILN_REFERRERS: usize = ATTACH_REFERRERS + 1;

/// `cosign verify` and `cosign verify-attestation` of each of kiln's types pass with kiln's key,
/// both with cosign 3's defaults (bundles) and in the legacy layout.
fn cosign_verifies_kiln(pubkey: &str, image: &str, digest: &Digest) {
    for layout in [None, Some("--new-bundle-format=false")] {
        let mut args = vec!["verify", "--key", pubkey];
        args.extend(layout);
        args.extend(OFFLINE);
        args.push(image);
        let out = cosign_ok(&args);
        assert!(
            stdout(&out).contains(&digest.to_string()),
            "{}",
            stdout(&out)
        );
        for ty in ["slsaprovenance1", "spdxjson", "cyclonedx"] {
            let mut args = vec!["verify-attestation", "--key", pubkey, "--type", ty];
            args.extend(layout);
            args.extend(OFFLINE);
            args.push(image);
            cosign_ok(&args);
        }
    }
}

/// The registries under test, by host.
enum Reg {
    Plain(Registry),
    Referrers(ReferrersRegistry),
    /// Debian's docker-registry with manifest deletes disabled (`storage.delete.enabled: false`,
    /// distribution's documented default): it answers DELETE with 405.
    NoDelete(Registry),
}

impl Reg {
    fn host(&self) -> String {
        match self {
            Reg::Plain(r) => r.host(),
            Reg::Referrers(r) => r.host(),
            Reg::NoDelete(r) => r.host(),
        }
    }
    fn repo(&self, name: &str) -> Repository {
        Repository::new(self.host(), name).unwrap()
    }
    fn has_api(&self) -> bool {
        matches!(self, Reg::Referrers(_))
    }
}

/// Pushes a test image (kiln base + a Go binary with real modules) as `name:tag`.
fn push(reg: &Reg, name: &str, tag: &str, marker: &str) -> Digest {
    push_image_to(&reg.repo(name), tag, &nonroot_spec(marker))
}

/// The manifest under `tag` as JSON, or `None` when the tag does not exist.
fn manifest(repo: &Repository, tag: &str) -> Option<(Digest, serde_json::Value)> {
    let r = Reference::by_tag(repo.clone(), tag).unwrap();
    match rt().block_on(client().get_manifest(&r)) {
        Ok(m) => Some((m.digest, serde_json::from_slice(&m.bytes).unwrap())),
        Err(kiln_registry::RegistryError::NotFound { .. }) => None,
        Err(e) => panic!("reading {repo}:{tag}: {e}"),
    }
}

/// Layer media types and `predicateType` annotations of the image under `tag`.
fn layers(repo: &Repository, tag: &str) -> Vec<(String, Option<String>)> {
    let (_, m) = manifest(repo, tag).unwrap_or_else(|| panic!("{repo}:{tag} is missing"));
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap().to_owned(),
                l["annotations"]["predicateType"]
                    .as_str()
                    .map(str::to_owned),
            )
        })
        .collect()
}

/// The referrers of `digest` as the registry lists them, sorted by digest (go-containerregistry
/// lists them in map order): the API's answer, or the entries of the fallback tag index (read
/// independently of kiln's writer code).
fn referrers(reg: &Reg, repo: &Repository, digest: &Digest) -> Vec<serde_json::Value> {
    let mut list = listed_referrers(reg, repo, digest);
    list.sort_by_key(|d| d["digest"].as_str().unwrap().to_owned());
    list
}

fn listed_referrers(reg: &Reg, repo: &Repository, digest: &Digest) -> Vec<serde_json::Value> {
    if reg.has_api() {
        let url = format!("/v2/{}/referrers/{digest}", repo.name);
        let (status, body) = http_get(&reg.host(), &url);
        assert_eq!(status, 200, "{body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        doc["manifests"].as_array().unwrap().clone()
    } else {
        match manifest(repo, &referrers_fallback_tag(digest)) {
            Some((_, m)) => {
                assert_eq!(m["mediaType"], kiln_registry::media::OCI_INDEX, "{m:#}");
                assert_eq!(m["schemaVersion"], 2);
                m["manifests"].as_array().unwrap().clone()
            }
            None => Vec::new(),
        }
    }
}

/// A plain HTTP/1.0 GET to a loopback registry: `(status, body)`.
fn http_get(host: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let status = buf.split(' ').nth(1).unwrap().parse().unwrap();
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap();
    (status, body)
}

fn kiln_referrers(list: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    list.iter()
        .filter(|d| d["annotations"][KILN_ATTACHMENT_ANNOTATION].is_string())
        .collect()
}

fn keys(d: &Path) {
    kiln_ok(d, &["keygen", "--output-prefix", "kiln"]);
    // The other tool's key pair, made by cosign itself (empty password, as the harness sets).
    let out = std::process::Command::new(peers::tool("cosign"))
        .args(["generate-key-pair"])
        .current_dir(d)
        .env("COSIGN_PASSWORD", "")
        .output()
        .unwrap();
    assert!(
        out.status.success() && d.join("cosign.key").is_file(),
        "cosign generate-key-pair: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path(d: &Path, f: &str) -> String {
    d.join(f).to_str().unwrap().to_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sign_attest(d: &Path, image: &str) -> serde_json::Value {
    let out = kiln_ok(
        d,
        &["sign", image, "--key", "kiln.key", "--attest", "--json"],
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// kiln signs and attests; cosign verifies the signature and each attestation type, downloads
/// the SBOM and shows everything in `cosign tree`.
fn kiln_to_cosign(reg: Reg) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keys(d);
    let repo = reg.repo("team/app");
    let digest = push(&reg, "team/app", "v1", "kiln-to-cosign");
    let image = format!("{}/team/app@{digest}", reg.host());

    let report = sign_attest(d, &format!("{}/team/app:v1", reg.host()));
    let a = &report["attachments"];
    assert_eq!(a["referrers_api"], reg.has_api(), "{report:#}");
    assert_eq!(
        a["referrers"].as_array().unwrap().len(),
        ATTACH_REFERRERS,
        "{report:#}"
    );
    if !reg.has_api() {
        assert_eq!(
            a["referrers_detail"]["fallback_tag"],
            referrers_fallback_tag(&digest)
        );
    }

    // `.sbom` is what `cosign attach sbom` writes: exactly one layer.
    assert_eq!(
        layers(&repo, &cosign_tag(&digest, "sbom")),
        vec![("text/spdx+json".to_owned(), None)]
    );
    // cosign 3 by default (kiln's Sigstore bundle referrers) and in the legacy layout (the
    // `.sig` / `.att` tags cosign 2 reads).
    let pubkey = path(d, "kiln.pub");
    cosign_verifies_kiln(&pubkey, &image, &digest);
    // Another key fails: the checks above can fail.
    let other = path(d, "cosign.pub");
    let mut args = vec!["verify-attestation", "--key", &other, "--type", "spdxjson"];
    args.extend(OFFLINE);
    args.push(&image);
    let out = peers::cosign(&args);
    assert!(!out.status.success(), "verified with another key");
    let out = cosign_ok(&["download", "sbom", "--allow-http-registry=true", &image]);
    let sbom: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3", "{sbom:#}");

    // cosign tree: the three cosign tags and kiln's referrers (through the API, or through
    // the fallback index on docker-registry).
    let out = cosign_ok(&["tree", "--allow-http-registry=true", &image]);
    let tree = stdout(&out);
    for (what, suffix) in [
        ("Signatures", "sig"),
        ("SBOMs", "sbom"),
        ("Attestations", "att"),
    ] {
        assert!(
            tree.contains(&format!(
                "{what} for an image tag: {}:{}",
                repo,
                cosign_tag(&digest, suffix)
            )),
            "{suffix} missing from cosign tree:\n{tree}"
        );
    }
    assert_eq!(
        tree.matches("artifacts via OCI referrer").count(),
        KILN_REFERRERS,
        "cosign tree should list kiln's referrers:\n{tree}"
    );
    let listed = referrers(&reg, &repo, &digest);
    assert_eq!(kiln_referrers(&listed).len(), KILN_REFERRERS, "{listed:#?}");
    // The fallback index entries carry what `oras discover` shows: artifact type + annotations.
    if !reg.has_api() {
        let types: Vec<&str> = listed
            .iter()
            .map(|d| d["artifactType"].as_str().unwrap())
            .collect();
        for t in [
            "application/spdx+json",
            "application/vnd.cyclonedx+json",
            "application/vnd.dsse.envelope.v1+json",
            "application/vnd.dev.sigstore.bundle.v0.3+json",
        ] {
            assert!(types.contains(&t), "{t} not in {types:?}");
        }
    }

    // kiln verify reads back what it wrote.
    let out = kiln_ok(d, &["verify", &image, "--key", "kiln.pub"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn issue_10_kiln_attachments_verify_with_cosign_on_docker_registry() {
    kiln_to_cosign(Reg::Plain(Registry::start()));
}

#[test]
fn issue_10_kiln_attachments_verify_with_cosign_on_referrers_registry() {
    kiln_to_cosign(Reg::Referrers(ReferrersRegistry::start()));
}

/// cosign attaches a vulnerability attestation (legacy `.att` layer and a cosign 3 bundle
/// referrer) and a signature with its own key; `kiln sign --attest` keeps all of them, and
/// signing again adds nothing anywhere.
fn others_survive_and_nothing_piles_up(reg: Reg) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keys(d);
    let repo = reg.repo("team/svc");
    let digest = push(&reg, "team/svc", "v1", "others-survive");
    let image = format!("{}/team/svc@{digest}", reg.host());
    let cosign_key = path(d, "cosign.key");
    let cosign_pub = path(d, "cosign.pub");
    let kiln_pub = path(d, "kiln.pub");
    let vuln = d.join("vuln.json");
    std::fs::write(
        &vuln,
        br#"{"scanner":{"uri":"pkg:github/aquasecurity/trivy","version":"0.58.0","result":{}},"metadata":{"scanStartedOn":"2026-01-01T00:00:00Z","scanFinishedOn":"2026-01-01T00:00:01Z"}}"#,
    )
    .unwrap();
    let vuln = vuln.to_str().unwrap().to_owned();

    // A legacy-layout cosign signature and attestation (the `.sig`/`.att` layers kiln could drop)...
    let mut args = vec!["sign", "--key", &cosign_key];
    args.extend(LEGACY);
    args.push(&image);
    cosign_ok(&args);
    let mut args = vec![
        "attest",
        "--key",
        &cosign_key,
        "--type",
        "vuln",
        "--predicate",
        &vuln,
    ];
    args.extend(LEGACY);
    args.push(&image);
    cosign_ok(&args);
    // ...and a cosign 3 bundle attestation (a referrer kiln must not delete).
    cosign_ok(&[
        "attest",
        "--key",
        &cosign_key,
        "--type",
        "vuln",
        "--predicate",
        &vuln,
        "--tlog-upload=false",
        "--use-signing-config=false",
        "--allow-http-registry=true",
        "--allow-insecure-registry=true",
        &image,
    ]);
    let before = referrers(&reg, &repo, &digest);
    assert_eq!(before.len(), 1, "cosign's bundle referrer: {before:#?}");

    let first = sign_attest(d, &image);
    let a = &first["attachments"];
    assert_eq!(a["attestations_kept"], 1, "{first:#}");
    assert_eq!(a["referrers_detail"]["kept"], 1, "{first:#}");
    assert_eq!(first["signature"]["signatures"], 2, "{first:#}");
    let att = layers(&repo, &cosign_tag(&digest, "att"));
    let types: Vec<&str> = att.iter().filter_map(|(_, t)| t.as_deref()).collect();
    assert_eq!(
        types,
        [
            "https://cosign.sigstore.dev/attestation/vuln/v1",
            "https://spdx.dev/Document",
            "https://cyclonedx.org/bom",
            "https://slsa.dev/provenance/v1",
        ],
        "{att:?}"
    );
    assert_eq!(layers(&repo, &cosign_tag(&digest, "sig")).len(), 2);
    let after = referrers(&reg, &repo, &digest);
    assert_eq!(
        after.len(),
        1 + KILN_REFERRERS,
        "cosign's bundle + kiln's: {after:#?}"
    );
    for b in &before {
        assert!(
            after.contains(b),
            "cosign's referrer {b} is gone: {after:#?}"
        );
    }

    // Everything verifies: cosign's own signature and attestation in both layouts, and kiln's
    // with cosign 3's defaults too (a bundle among the referrers makes cosign 3 read bundles
    // only: kiln's bundle referrers are what it then finds) and in the legacy layout.
    let mut args = vec!["verify-attestation", "--key", &cosign_pub, "--type", "vuln"];
    args.extend(OFFLINE);
    args.push(&image);
    cosign_ok(&args);
    args.insert(args.len() - 1, "--new-bundle-format=false");
    cosign_ok(&args);
    let mut args = vec!["verify", "--key", &cosign_pub, "--new-bundle-format=false"];
    args.extend(OFFLINE);
    args.push(&image);
    cosign_ok(&args);
    cosign_verifies_kiln(&kiln_pub, &image, &digest);

    // Signing again: no new referrer, no new layer, the same manifests under every tag.
    let tags_before: Vec<_> = ["sig", "att", "sbom"]
        .iter()
        .map(|s| manifest(&repo, &cosign_tag(&digest, s)).unwrap().0)
        .collect();
    let fallback_before = manifest(&repo, &referrers_fallback_tag(&digest)).map(|m| m.0);
    let second = sign_attest(d, &image);
    let a2 = &second["attachments"];
    assert_eq!(a2["referrers"], a["referrers"], "{second:#}");
    assert_eq!(
        a2["referrers_detail"]["pushed"].as_array().unwrap().len(),
        0,
        "{second:#}"
    );
    assert_eq!(
        a2["referrers_detail"]["replaced"].as_array().unwrap().len(),
        0,
        "{second:#}"
    );
    let tags_after: Vec<_> = ["sig", "att", "sbom"]
        .iter()
        .map(|s| manifest(&repo, &cosign_tag(&digest, s)).unwrap().0)
        .collect();
    assert_eq!(tags_after, tags_before);
    assert_eq!(
        manifest(&repo, &referrers_fallback_tag(&digest)).map(|m| m.0),
        fallback_before
    );
    assert_eq!(referrers(&reg, &repo, &digest), after);
    // `.att` and the referrers hold the same kiln attestations (as envelopes and as bundles; the
    // signature's bundle aside).
    for key in ["predicateType", "dev.sigstore.bundle.predicateType"] {
        let listed: Vec<_> = kiln_referrers(&after)
            .iter()
            .filter_map(|d| d["annotations"][key].as_str())
            .filter(|t| *t != kiln_supply::COSIGN_SIGN_PREDICATE_TYPE)
            .map(str::to_owned)
            .collect();
        assert_eq!(listed.len(), 3, "{key}: {after:#?}");
        for t in &listed {
            assert!(types.contains(&t.as_str()), "{t} only in the referrers");
        }
    }
}

#[test]
fn issue_10_cosign_attestations_survive_and_nothing_piles_up_on_docker_registry() {
    others_survive_and_nothing_piles_up(Reg::Plain(Registry::start()));
}

#[test]
fn issue_10_cosign_attestations_survive_and_nothing_piles_up_on_referrers_registry() {
    others_survive_and_nothing_piles_up(Reg::Referrers(ReferrersRegistry::start()));
}

/// When kiln's attachments change (another build date), kiln's old referrers are replaced,
/// not added to, on both kinds of registry; cosign's stay.
fn changed_attachments_replace_kiln_referrers(reg: Reg) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keys(d);
    let repo = reg.repo("team/job");
    let digest = push(&reg, "team/job", "v1", "replace");
    let image = format!("{}/team/job@{digest}", reg.host());
    let first = sign_attest(d, &image);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["sign", &image, "--key", "kiln.key", "--attest", "--json"])
        .current_dir(d)
        .env("KILN_PASSWORD", PASSWORD)
        .env("DOCKER_CONFIG", d.join("no-docker-config"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let second: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &second["attachments"]["referrers_detail"];
    assert_eq!(
        r["replaced"].as_array().unwrap().len(),
        ATTACH_REFERRERS,
        "{second:#}"
    );
    assert_eq!(
        r["pushed"].as_array().unwrap().len(),
        ATTACH_REFERRERS,
        "{second:#}"
    );
    let listed = referrers(&reg, &repo, &digest);
    let kiln: Vec<_> = kiln_referrers(&listed)
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_owned())
        .collect();
    let now: Vec<String> = second["attachments"]["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    // Each old one is gone from the list (or, where the registry refused the delete, said so).
    let notes = r["notes"].as_array().unwrap();
    let old: Vec<&str> = first["attachments"]["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for o in &old {
        let still = kiln.iter().any(|k| k == o);
        assert!(
            !still || notes.iter().any(|n| n.as_str().unwrap().contains(o)),
            "old referrer {o} still listed without a note: {second:#}"
        );
    }
    for n in &now {
        assert!(kiln.contains(n), "{n} not listed: {listed:#?}");
    }
    assert_eq!(layers(&repo, &cosign_tag(&digest, "att")).len(), 3);
}

#[test]
fn issue_10_changed_attachments_replace_kiln_referrers_on_docker_registry() {
    changed_attachments_replace_kiln_referrers(Reg::Plain(Registry::start()));
}

/// A registry that refuses deletes: kiln still replaces its referrers in the fallback index,
/// says for each old manifest that the delete was refused, and succeeds.
#[test]
fn issue_10_refused_deletes_are_reported_not_fatal() {
    let reg = Reg::NoDelete(Registry::start_with_deletes(false));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    kiln_ok(d, &["keygen", "--output-prefix", "kiln"]);
    let repo = reg.repo("team/nodel");
    let digest = push(&reg, "team/nodel", "v1", "no-delete");
    let image = format!("{}/team/nodel@{digest}", reg.host());
    let first = sign_attest(d, &image);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["sign", &image, "--key", "kiln.key", "--attest"])
        .current_dir(d)
        .env("KILN_PASSWORD", PASSWORD)
        .env("DOCKER_CONFIG", d.join("no-docker-config"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "OCI referrers listed in the fallback index {}: {ATTACH_REFERRERS} of kiln \
             ({ATTACH_REFERRERS} new, {ATTACH_REFERRERS} replaced), 0 of others kept",
            referrers_fallback_tag(&digest)
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "warning: the registry refused to delete {ATTACH_REFERRERS} replaced referrer \
             manifest(s) of kiln (HTTP 405"
        )),
        "{stderr}"
    );
    let old: Vec<&str> = first["attachments"]["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(old.len(), ATTACH_REFERRERS);
    let listed = referrers(&reg, &repo, &digest);
    for o in &old {
        assert!(stderr.contains(o), "no warning for {o}:\n{stderr}");
        assert!(
            listed.iter().all(|d| d["digest"] != *o),
            "{o} still in the fallback index"
        );
    }
    assert_eq!(kiln_referrers(&listed).len(), KILN_REFERRERS, "{listed:#?}");
}

#[test]
fn issue_10_changed_attachments_replace_kiln_referrers_on_referrers_registry() {
    changed_attachments_replace_kiln_referrers(Reg::Referrers(ReferrersRegistry::start()));
}

/// Plain `kiln sign` (no `--attest`) with two keys: each key's signature is a `.sig` layer and a
/// cosign 3 bundle referrer, both verify with cosign 3's defaults (also beside a cosign bundle),
/// and signing again adds nothing.
fn plain_signatures_per_key(reg: Reg) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keys(d);
    kiln_ok(d, &["keygen", "--output-prefix", "second"]);
    let repo = reg.repo("team/cli");
    let digest = push(&reg, "team/cli", "v1", "plain-sign");
    let image = format!("{}/team/cli@{digest}", reg.host());
    let sign = |key: &str| -> serde_json::Value {
        let out = kiln_ok(d, &["sign", &image, "--key", key, "--json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    sign("kiln.key");
    let second = sign("second.key");
    assert_eq!(second["signatures"], 2, "{second:#}");
    assert_eq!(layers(&repo, &cosign_tag(&digest, "sig")).len(), 2);
    let listed = referrers(&reg, &repo, &digest);
    assert_eq!(
        kiln_referrers(&listed).len(),
        2,
        "one bundle per key: {listed:#?}"
    );
    // A cosign 3 bundle beside them: cosign then reads bundles only, and finds kiln's.
    let cosign_key = path(d, "cosign.key");
    cosign_ok(&[
        "sign",
        "--key",
        &cosign_key,
        "--tlog-upload=false",
        "--use-signing-config=false",
        "--allow-http-registry=true",
        "--allow-insecure-registry=true",
        &image,
    ]);
    for key in ["kiln.pub", "second.pub", "cosign.pub"] {
        let key = path(d, key);
        let mut args = vec!["verify", "--key", &key];
        args.extend(OFFLINE);
        args.push(&image);
        cosign_ok(&args);
    }
    let before = referrers(&reg, &repo, &digest);
    assert_eq!(before.len(), 3, "{before:#?}");
    let again = sign("kiln.key");
    assert_eq!(again["signatures"], 2, "{again:#}");
    assert_eq!(
        again["referrers"]["pushed"].as_array().unwrap().len(),
        0,
        "{again:#}"
    );
    assert_eq!(referrers(&reg, &repo, &digest), before);
}

#[test]
fn issue_10_plain_signatures_per_key_on_docker_registry() {
    plain_signatures_per_key(Reg::Plain(Registry::start()));
}

#[test]
fn issue_10_plain_signatures_per_key_on_referrers_registry() {
    plain_signatures_per_key(Reg::Referrers(ReferrersRegistry::start()));
}
