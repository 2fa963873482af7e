//! SPDX 2.3 JSON writer.
//!
//! Shape: one package for the subject (image or binary), one per Go executable, one per
//! compiled Go module (the main module included), one per Go standard library version
//! (`pkg:golang/stdlib@1.26.8`, as syft writes it), one for the base image and one per
//! base-image file. Files are
//! modelled as packages with purpose `FILE` because SPDX 2.3 `files` entries require a
//! SHA1 checksum, which kiln does not compute. Identifiers are derived from names and
//! content so the same input always gives the same bytes.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::error::Result;
use crate::model::{
    go_version_label, h1_to_sha256_hex, module_key, oci_purl, short_hash, stdlib_purl,
    unique_go_versions, unique_modules, CreationInfo, GoModule, SbomSubject, SubjectKind,
};

/// Media type of SPDX JSON documents (used as OCI artifact type).
pub const SPDX_MEDIA_TYPE: &str = "application/spdx+json";

const NOASSERTION: &str = "NOASSERTION";

/// Deterministic SPDX identifier: a readable part plus a short hash of the identity,
/// because sanitising alone could map two names to the same id.
pub(crate) fn spdx_id(kind: &str, readable: &str, identity: &[&str]) -> String {
    let clean: String = readable
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut parts = vec![kind];
    parts.extend_from_slice(identity);
    format!("SPDXRef-{kind}-{clean}-{}", short_hash(&parts))
}

/// The readable part names what the package describes, so it agrees with `name` and
/// `versionInfo`: the replacement module for a module replacement, `-local` for a local
/// directory (which has no version); the hash covers original and replacement.
pub(crate) fn module_spdx_id(m: &GoModule) -> String {
    let (p, v, ep, ev) = module_key(m);
    let readable = match (m.module_replacement(), &m.replace) {
        (Some(r), _) => format!("{}-{}", r.path, r.version),
        (None, Some(_)) => format!("{p}-local"),
        (None, None) => match m.known_version() {
            Some(v) => format!("{p}-{v}"),
            None => p.clone(),
        },
    };
    spdx_id("gomod", &readable, &[&p, &v, &ep, &ev])
}

/// Identifier of the Go standard library package of one toolchain version.
pub(crate) fn stdlib_spdx_id(go_version: &str) -> String {
    spdx_id("stdlib", go_version, &["stdlib", go_version])
}

fn stdlib_package(go_version: &str) -> Value {
    json!({
        "SPDXID": stdlib_spdx_id(go_version),
        "name": "stdlib",
        "versionInfo": go_version,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": "LIBRARY",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": stdlib_purl(go_version),
        }],
        "comment": "the Go standard library compiled into the executables",
    })
}

fn module_package(m: &GoModule, is_main: bool) -> Result<Value> {
    let eff = m.effective();
    let mut pkg = json!({
        "SPDXID": module_spdx_id(m),
        "name": m.sbom_name(),
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": if is_main { "SOURCE" } else { "LIBRARY" },
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": m.purl(),
        }],
    });
    if let Some(v) = eff.known_version() {
        pkg["versionInfo"] = json!(v);
    }
    let mut comments = Vec::new();
    if let Some(sum) = &eff.sum {
        pkg["checksums"] = json!([{
            "algorithm": "SHA256",
            "checksumValue": h1_to_sha256_hex(&eff.path, sum)?,
        }]);
        comments.push(format!(
            "SHA256 is the go.sum hash {sum} (base64 of the SHA-256 of Go's dirhash summary) in hex"
        ));
    }
    match (m.module_replacement(), &m.replace) {
        (Some(_), _) => comments.push(
            format!("replaces {} {}", m.path, m.version)
                .trim_end()
                .to_owned(),
        ),
        (None, Some(r)) => comments.push(format!("replaced by local directory {}", r.path)),
        (None, None) => {}
    }
    if !comments.is_empty() {
        pkg["comment"] = json!(comments.join("; "));
    }
    Ok(pkg)
}

fn relationship(a: &str, kind: &str, b: &str) -> (String, String, String) {
    (a.to_owned(), kind.to_owned(), b.to_owned())
}

/// Builds the SPDX 2.3 document for `subject` as a JSON value.
///
/// `namespace` must be a unique absolute URI without `#`; see [`default_namespace`].
pub fn to_spdx(subject: &SbomSubject, creation: &CreationInfo, namespace: &str) -> Result<Value> {
    let digest_hex = subject.digest.hex();
    let is_image = subject.kind == SubjectKind::Image;
    let root_id = spdx_id(
        if is_image { "image" } else { "binary" },
        &subject.name,
        &[&subject.name, &digest_hex],
    );
    let mut packages = Vec::new();
    let mut rels: BTreeSet<(String, String, String)> = BTreeSet::new();
    rels.insert(relationship("SPDXRef-DOCUMENT", "DESCRIBES", &root_id));

    let mut root = json!({
        "SPDXID": root_id,
        "name": subject.name,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": if is_image { "CONTAINER" } else { "APPLICATION" },
        "checksums": [{"algorithm": "SHA256", "checksumValue": digest_hex}],
    });
    if let Some(v) = &subject.version {
        root["versionInfo"] = json!(v);
    }
    if let Some(p) = &subject.platform {
        root["comment"] = json!(format!("platform {p}"));
    }
    if is_image {
        root["externalRefs"] = json!([{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": oci_purl(&subject.name, &subject.digest, subject.platform.as_ref()),
        }]);
    }
    packages.push(root);

    for bin in &subject.binaries {
        // A binary subject whose only executable is itself gets no second package.
        let bin_id = if !is_image && bin.sha256 == subject.digest {
            root_id.clone()
        } else {
            let id = spdx_id(
                "bin",
                &bin.path_in_image,
                &[&bin.path_in_image, &bin.sha256.hex()],
            );
            let mut pkg = json!({
                "SPDXID": id,
                "name": bin.path_in_image,
                "downloadLocation": NOASSERTION,
                "filesAnalyzed": false,
                "licenseConcluded": NOASSERTION,
                "licenseDeclared": NOASSERTION,
                "copyrightText": NOASSERTION,
                "primaryPackagePurpose": "APPLICATION",
                "checksums": [{"algorithm": "SHA256", "checksumValue": bin.sha256.hex()}],
            });
            if let Some(v) = bin.main_module.known_version() {
                pkg["versionInfo"] = json!(v);
            }
            packages.push(pkg);
            rels.insert(relationship(&root_id, "CONTAINS", &id));
            id
        };
        // Build settings have no SPDX field; a comment keeps them human-readable.
        let settings: Vec<String> = bin
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let comment = format!("built with {}; {}", bin.go_version, settings.join(" "));
        if let Some(pkg) = packages.iter_mut().find(|p| p["SPDXID"] == json!(bin_id)) {
            let prev = pkg
                .get("comment")
                .and_then(Value::as_str)
                .map(str::to_owned);
            pkg["comment"] = json!(match prev {
                Some(p) => format!("{p}; {}", comment.trim_end_matches("; ")),
                None => comment.trim_end_matches("; ").to_owned(),
            });
        }
        let main_id = module_spdx_id(&bin.main_module);
        rels.insert(relationship(&bin_id, "CONTAINS", &main_id));
        let std_id = stdlib_spdx_id(go_version_label(&bin.go_version));
        rels.insert(relationship(&bin_id, "CONTAINS", &std_id));
        rels.insert(relationship(&main_id, "DEPENDS_ON", &std_id));
        for dep in &bin.deps {
            let dep_id = module_spdx_id(dep);
            rels.insert(relationship(&bin_id, "CONTAINS", &dep_id));
            rels.insert(relationship(&main_id, "DEPENDS_ON", &dep_id));
        }
    }

    let mains: BTreeSet<(String, String, String, String)> = subject
        .binaries
        .iter()
        .map(|b| module_key(&b.main_module))
        .collect();
    for m in unique_modules(subject) {
        packages.push(module_package(m, mains.contains(&module_key(m)))?);
    }
    for go in unique_go_versions(subject) {
        packages.push(stdlib_package(go));
    }

    if let Some(base) = &subject.base {
        let base_id = spdx_id("base", &base.name, &[&base.name, &base.digest.hex()]);
        packages.push(json!({
            "SPDXID": base_id,
            "name": base.name,
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": false,
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": NOASSERTION,
            "copyrightText": NOASSERTION,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [{"algorithm": "SHA256", "checksumValue": base.digest.hex()}],
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": oci_purl(&base.name, &base.digest, subject.platform.as_ref()),
            }],
        }));
        rels.insert(relationship(&root_id, "DESCENDANT_OF", &base_id));
        let mut files = base.files.clone();
        files.sort();
        for (path, sha) in &files {
            let id = spdx_id("file", path, &[&base.digest.hex(), path, &sha.hex()]);
            packages.push(json!({
                "SPDXID": id,
                "name": path,
                "downloadLocation": NOASSERTION,
                "filesAnalyzed": false,
                "licenseConcluded": NOASSERTION,
                "licenseDeclared": NOASSERTION,
                "copyrightText": NOASSERTION,
                "primaryPackagePurpose": "FILE",
                "checksums": [{"algorithm": "SHA256", "checksumValue": sha.hex()}],
            }));
            rels.insert(relationship(&base_id, "CONTAINS", &id));
        }
    }

    let relationships: Vec<Value> = rels
        .into_iter()
        .map(
            |(a, k, b)| json!({"spdxElementId": a, "relationshipType": k, "relatedSpdxElement": b}),
        )
        .collect();
    let name = match &subject.version {
        Some(v) => format!("{}:{v}", subject.name),
        None => subject.name.clone(),
    };
    Ok(json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": namespace,
        "creationInfo": {
            "created": creation.created,
            "creators": [format!("Tool: {}", creation.tool)],
        },
        "packages": packages,
        "relationships": relationships,
    }))
}

/// [`to_spdx`] serialised as pretty JSON bytes (with a trailing newline).
pub fn to_spdx_bytes(
    subject: &SbomSubject,
    creation: &CreationInfo,
    namespace: &str,
) -> Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(&to_spdx(subject, creation, namespace)?)?;
    out.push(b'\n');
    Ok(out)
}

/// A unique, deterministic document namespace for a subject: the same subject always
/// gets the same namespace, so re-running kiln reproduces the SBOM byte for byte.
pub fn default_namespace(subject: &SbomSubject) -> String {
    let clean: String = subject
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "https://github.com/kiln-build/kiln/spdx/{clean}-{}",
        subject.digest.hex()
    )
}
