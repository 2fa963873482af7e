//! CycloneDX 1.6 JSON writer.
//!
//! Same content as the SPDX document: the subject as `metadata.component`, one component
//! per Go executable, per compiled module (main module included), per Go standard library
//! version and for the base image (with its files nested), and a dependency graph
//! subject -> executables -> main module -> dependencies and stdlib.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use sha1::{Digest as _, Sha1};

use crate::error::Result;
use crate::model::{
    go_version_label, h1_to_sha256_hex, oci_purl, stdlib_purl, unique_go_versions, unique_modules,
    BinaryInfo, CreationInfo, GoModule, SbomSubject, SubjectKind,
};
use crate::spdx::{module_spdx_id, spdx_id, stdlib_spdx_id};

/// Media type of CycloneDX JSON documents (used as OCI artifact type).
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

/// RFC 4122 name-based UUID (version 5, SHA-1) rendered as `xxxxxxxx-xxxx-5xxx-yxxx-xxxxxxxxxxxx`.
pub fn uuid_v5(namespace: &[u8; 16], name: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(namespace);
    h.update(name);
    let sum = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&sum[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

/// The RFC 4122 URL namespace (`6ba7b811-9dad-11d1-80b4-00c04fd430c8`).
pub const UUID_NAMESPACE_URL: [u8; 16] = [
    0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
];

/// Deterministic `urn:uuid:` serial number: UUIDv5 of `kiln:cyclonedx:<name>@<digest>`,
/// so rebuilding the same subject reproduces the BOM byte for byte.
pub fn serial_number(subject: &SbomSubject) -> String {
    let name = format!("kiln:cyclonedx:{}@{}", subject.name, subject.digest);
    format!("urn:uuid:{}", uuid_v5(&UUID_NAMESPACE_URL, name.as_bytes()))
}

/// A `bom-ref` from the SPDX identifier of the same element, without the `SPDXRef-` prefix:
/// the two documents stay easy to correlate, and CycloneDX refs do not pretend to be SPDX ids.
fn bom_ref(spdx_id: &str) -> String {
    spdx_id
        .strip_prefix("SPDXRef-")
        .unwrap_or(spdx_id)
        .to_owned()
}

fn stdlib_component(go_version: &str) -> Value {
    json!({
        "type": "library",
        "bom-ref": bom_ref(&stdlib_spdx_id(go_version)),
        "name": "stdlib",
        "version": go_version,
        "purl": stdlib_purl(go_version),
        "description": "the Go standard library compiled into the executables",
    })
}

fn prop(name: &str, value: impl Into<String>) -> Value {
    json!({"name": name, "value": value.into()})
}

fn binary_properties(bin: &BinaryInfo) -> Vec<Value> {
    let mut props = vec![
        prop("kiln:go:version", bin.go_version.clone()),
        prop("kiln:path", bin.path_in_image.clone()),
    ];
    for (k, v) in &bin.settings {
        props.push(prop(&format!("kiln:go:build:{k}"), v.clone()));
    }
    props
}

fn module_component(m: &GoModule) -> Result<Value> {
    let eff = m.effective();
    let mut c = json!({
        "type": "library",
        "bom-ref": bom_ref(&module_spdx_id(m)),
        "name": m.sbom_name(),
        "purl": m.purl(),
    });
    if let Some(v) = eff.known_version() {
        c["version"] = json!(v);
    }
    let mut props = Vec::new();
    if let Some(sum) = &eff.sum {
        c["hashes"] = json!([{"alg": "SHA-256", "content": h1_to_sha256_hex(&eff.path, sum)?}]);
        props.push(prop("kiln:go:sum", sum.clone()));
    }
    match (m.module_replacement(), &m.replace) {
        (Some(_), _) => props.push(prop(
            "kiln:go:replaces",
            format!("{} {}", m.path, m.version).trim_end(),
        )),
        (None, Some(r)) => props.push(prop("kiln:go:replace", r.path.clone())),
        (None, None) => {}
    }
    if !props.is_empty() {
        c["properties"] = json!(props);
    }
    Ok(c)
}

/// Builds the CycloneDX 1.6 document for `subject` as a JSON value.
pub fn to_cyclonedx(subject: &SbomSubject, creation: &CreationInfo) -> Result<Value> {
    let is_image = subject.kind == SubjectKind::Image;
    let digest_hex = subject.digest.hex();
    let root_ref = bom_ref(&spdx_id(
        if is_image { "image" } else { "binary" },
        &subject.name,
        &[&subject.name, &digest_hex],
    ));
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    deps.entry(root_ref.clone()).or_default();

    let mut root = json!({
        "type": if is_image { "container" } else { "application" },
        "bom-ref": root_ref,
        "name": subject.name,
        "hashes": [{"alg": "SHA-256", "content": digest_hex}],
    });
    if let Some(v) = &subject.version {
        root["version"] = json!(v);
    }
    if is_image {
        root["purl"] = json!(oci_purl(
            &subject.name,
            &subject.digest,
            subject.platform.as_ref()
        ));
    }
    let mut root_props = Vec::new();
    if let Some(p) = &subject.platform {
        root_props.push(prop("kiln:platform", p.to_string()));
    }

    let mut components = Vec::new();
    for bin in &subject.binaries {
        let bin_ref = if !is_image && bin.sha256 == subject.digest {
            root_props.extend(binary_properties(bin));
            root_ref.clone()
        } else {
            let r = bom_ref(&spdx_id(
                "bin",
                &bin.path_in_image,
                &[&bin.path_in_image, &bin.sha256.hex()],
            ));
            let mut c = json!({
                "type": "application",
                "bom-ref": r,
                "name": bin.path_in_image,
                "hashes": [{"alg": "SHA-256", "content": bin.sha256.hex()}],
                "properties": binary_properties(bin),
            });
            if let Some(v) = bin.main_module.known_version() {
                c["version"] = json!(v);
            }
            components.push(c);
            deps.entry(root_ref.clone()).or_default().insert(r.clone());
            r
        };
        let main_ref = bom_ref(&module_spdx_id(&bin.main_module));
        let std_ref = bom_ref(&stdlib_spdx_id(go_version_label(&bin.go_version)));
        deps.entry(bin_ref).or_default().insert(main_ref.clone());
        let main_deps = deps.entry(main_ref).or_default();
        main_deps.insert(std_ref.clone());
        for dep in &bin.deps {
            main_deps.insert(bom_ref(&module_spdx_id(dep)));
        }
        for dep in &bin.deps {
            deps.entry(bom_ref(&module_spdx_id(dep))).or_default();
        }
        deps.entry(std_ref).or_default();
    }
    if !root_props.is_empty() {
        root["properties"] = json!(root_props);
    }
    for m in unique_modules(subject) {
        components.push(module_component(m)?);
    }
    for go in unique_go_versions(subject) {
        components.push(stdlib_component(go));
    }

    if let Some(base) = &subject.base {
        let base_ref = bom_ref(&spdx_id(
            "base",
            &base.name,
            &[&base.name, &base.digest.hex()],
        ));
        let mut files = base.files.clone();
        files.sort();
        let nested: Vec<Value> = files
            .iter()
            .map(|(path, sha)| {
                json!({
                    "type": "file",
                    "bom-ref": bom_ref(&spdx_id("file", path, &[&base.digest.hex(), path, &sha.hex()])),
                    "name": path,
                    "hashes": [{"alg": "SHA-256", "content": sha.hex()}],
                })
            })
            .collect();
        let mut c = json!({
            "type": "container",
            "bom-ref": base_ref,
            "name": base.name,
            "hashes": [{"alg": "SHA-256", "content": base.digest.hex()}],
            "purl": oci_purl(&base.name, &base.digest, subject.platform.as_ref()),
        });
        if !nested.is_empty() {
            c["components"] = json!(nested);
        }
        components.push(c);
        deps.entry(root_ref.clone())
            .or_default()
            .insert(base_ref.clone());
        deps.entry(base_ref).or_default();
    }

    let dependencies: Vec<Value> = deps
        .into_iter()
        .map(|(r, on)| json!({"ref": r, "dependsOn": on.into_iter().collect::<Vec<_>>()}))
        .collect();
    let (tool_name, tool_version) = creation.tool_name_version();
    let mut tool = json!({"type": "application", "name": tool_name});
    if let Some(v) = tool_version {
        tool["version"] = json!(v);
    }
    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial_number(subject),
        "version": 1,
        "metadata": {
            "timestamp": creation.created,
            "tools": {"components": [tool]},
            "component": root,
        },
        "components": components,
        "dependencies": dependencies,
    }))
}

/// [`to_cyclonedx`] serialised as pretty JSON bytes (with a trailing newline).
pub fn to_cyclonedx_bytes(subject: &SbomSubject, creation: &CreationInfo) -> Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(&to_cyclonedx(subject, creation)?)?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v5_known_answer() {
        // Python: uuid.uuid5(uuid.NAMESPACE_URL, "https://example.com")
        assert_eq!(
            uuid_v5(&UUID_NAMESPACE_URL, b"https://example.com"),
            "4fd35a71-71ef-5a55-a9d9-aa75c889a6d0"
        );
    }
}
