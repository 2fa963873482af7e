//! Time zone data for the kiln base, from Go's own `$GOROOT/lib/time/zoneinfo.zip`.
//!
//! That archive is what Go's `time` package falls back to, pinned by the Go release, so the base
//! gets the same zones on every machine with that toolchain (a host's `/usr/share/zoneinfo`
//! depends on its tzdata package). Go writes it uncompressed ("stored"), and Go's own reader only
//! accepts that, so a small central-directory reader is enough: no zip dependency.

use std::path::Path;

use crate::error::{OciError, Result};
use crate::layer::LayerEntry;

/// Where the zones go, as in Debian and distroless.
pub const ZONEINFO_DIR: &str = "usr/share/zoneinfo";

const EOCD_SIG: u32 = 0x0605_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;

/// Layer entries for every zone in the zip at `path`: `usr/share/zoneinfo` and its subdirectories,
/// then the files (mode 0644, content from the archive, CRC-checked), sorted by path.
pub fn zoneinfo_entries(path: &Path) -> Result<Vec<LayerEntry>> {
    let data = std::fs::read(path).map_err(|source| OciError::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| OciError::Zoneinfo {
        path: path.to_path_buf(),
        reason,
    };
    let mut files = read_stored_zip(&data).map_err(bad)?;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut dirs = std::collections::BTreeSet::new();
    for (name, _) in &files {
        let mut parts: Vec<&str> = name.split('/').collect();
        parts.pop();
        for i in 1..=parts.len() {
            dirs.insert(parts[..i].join("/"));
        }
    }
    let mut out = vec![LayerEntry::dir(ZONEINFO_DIR)];
    out.extend(
        dirs.iter()
            .map(|d| LayerEntry::dir(&format!("{ZONEINFO_DIR}/{d}"))),
    );
    out.extend(
        files
            .into_iter()
            .map(|(name, bytes)| LayerEntry::bytes(&format!("{ZONEINFO_DIR}/{name}"), bytes)),
    );
    Ok(out)
}

/// `(name, content)` of every file in a zip whose entries are all stored (method 0).
fn read_stored_zip(data: &[u8]) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    let eocd = (0..=data.len().saturating_sub(22))
        .rev()
        .take(22 + 0xffff)
        .find(|&i| u32_at(data, i) == Some(EOCD_SIG))
        .ok_or("no end of central directory record (not a zip file)")?;
    let count = u16_at(data, eocd + 10).ok_or("truncated end record")?;
    let mut at = u32_at(data, eocd + 16).ok_or("truncated end record")? as usize;
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let field = |off: usize| u16_at(data, at + off).map(usize::from);
        if u32_at(data, at) != Some(CENTRAL_SIG) {
            return Err(format!("bad central directory entry at offset {at}"));
        }
        let truncated = || format!("truncated central directory entry at offset {at}");
        let method = field(10).ok_or_else(truncated)?;
        let crc = u32_at(data, at + 16).ok_or_else(truncated)?;
        let size = u32_at(data, at + 20).ok_or_else(truncated)? as usize;
        let (name_len, extra_len, comment_len) = (
            field(28).ok_or_else(truncated)?,
            field(30).ok_or_else(truncated)?,
            field(32).ok_or_else(truncated)?,
        );
        let local = u32_at(data, at + 42).ok_or_else(truncated)? as usize;
        let name = data
            .get(at + 46..at + 46 + name_len)
            .ok_or_else(truncated)?;
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| format!("entry name at offset {at} is not UTF-8"))?;
        at += 46 + name_len + extra_len + comment_len;
        if name.ends_with('/') {
            continue;
        }
        if name.starts_with('/')
            || name
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(format!("entry `{name}` is not a plain relative path"));
        }
        if method != 0 {
            return Err(format!(
                "entry `{name}` is compressed (method {method}); Go's zoneinfo.zip stores files uncompressed"
            ));
        }
        if u32_at(data, local) != Some(LOCAL_SIG) {
            return Err(format!("entry `{name}`: bad local header"));
        }
        let start = local
            + 30
            + usize::from(u16_at(data, local + 26).ok_or("truncated local header")?)
            + usize::from(u16_at(data, local + 28).ok_or("truncated local header")?);
        let body = data
            .get(start..start + size)
            .ok_or_else(|| format!("entry `{name}` runs past the end of the file"))?;
        let mut check = flate2::Crc::new();
        check.update(body);
        if check.sum() != crc {
            return Err(format!("entry `{name}` fails its CRC-32 check"));
        }
        out.push((name, body.to_vec()));
    }
    Ok(out)
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    data.get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::EntrySource;

    /// A stored zip as Go's `mkzip.go` writes it (local headers, central directory, end record).
    fn stored_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, body) in files {
            let mut crc = flate2::Crc::new();
            crc.update(body);
            let offset = out.len() as u32;
            let common = |v: &mut Vec<u8>| {
                v.extend_from_slice(&20u16.to_le_bytes()); // version needed
                v.extend_from_slice(&0u16.to_le_bytes()); // flags
                v.extend_from_slice(&0u16.to_le_bytes()); // method: stored
                v.extend_from_slice(&0u32.to_le_bytes()); // time, date
                v.extend_from_slice(&crc.sum().to_le_bytes());
                v.extend_from_slice(&(body.len() as u32).to_le_bytes());
                v.extend_from_slice(&(body.len() as u32).to_le_bytes());
                v.extend_from_slice(&(name.len() as u16).to_le_bytes());
                v.extend_from_slice(&0u16.to_le_bytes()); // extra
            };
            out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
            common(&mut out);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(body);
            central.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
            central.extend_from_slice(&20u16.to_le_bytes()); // version made by
            common(&mut central);
            central.extend_from_slice(&[0u8; 10]); // comment len, disk, attrs
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&EOCD_SIG.to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn issue_9_zones_become_sorted_entries_with_parent_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("zoneinfo.zip");
        std::fs::write(
            &zip,
            stored_zip(&[
                ("UTC", b"TZif-utc"),
                ("America/Argentina/Salta", b"TZif-s"),
                ("Europe/Paris", b"TZif-p"),
            ]),
        )
        .unwrap();
        let entries = zoneinfo_entries(&zip).unwrap();
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "usr/share/zoneinfo",
                "usr/share/zoneinfo/America",
                "usr/share/zoneinfo/America/Argentina",
                "usr/share/zoneinfo/Europe",
                "usr/share/zoneinfo/America/Argentina/Salta",
                "usr/share/zoneinfo/Europe/Paris",
                "usr/share/zoneinfo/UTC",
            ]
        );
        assert_eq!(entries[6].source, EntrySource::Bytes(b"TZif-utc".to_vec()));
    }

    /// The zones are keyed by content: the same archive at another path (another host's GOROOT)
    /// gives the same base layer, another Go release's archive a different one.
    #[test]
    fn issue_9_base_layer_keys_the_archive_content_not_its_path() {
        use crate::base::{build_kiln_base, kiln_base_entries, KilnBase};
        use crate::layer::LayerRecipe;
        use crate::store::BlobStore;
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a.zip"),
            dir.path().join("b.zip"),
            dir.path().join("c.zip"),
        );
        std::fs::write(&a, stored_zip(&[("UTC", b"TZif-utc")])).unwrap();
        std::fs::write(&b, stored_zip(&[("UTC", b"TZif-utc")])).unwrap();
        std::fs::write(&c, stored_zip(&[("UTC", b"TZif-new")])).unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let build = |zip: &Path| {
            let opts = KilnBase {
                go_zoneinfo: Some(zip.to_path_buf()),
                ..KilnBase::default()
            };
            let key = crate::cache::layer_key(
                &kiln_base_entries(&opts).unwrap(),
                &LayerRecipe::default(),
            )
            .unwrap();
            (
                key,
                build_kiln_base(&store, &opts, &LayerRecipe::default())
                    .unwrap()
                    .diff_id,
            )
        };
        let (ka, la) = build(&a);
        let (kb, lb) = build(&b);
        let (kc, lc) = build(&c);
        assert_eq!((ka, la), (kb, lb));
        assert_ne!(ka, kc);
        assert_ne!(la, lc);
        let entries = kiln_base_entries(&KilnBase::default()).unwrap();
        assert!(entries.iter().any(|e| e.path == "etc/os-release"
            && e.source == EntrySource::Bytes(crate::base::OS_RELEASE.as_bytes().to_vec())));
    }

    #[test]
    fn issue_9_broken_or_compressed_archives_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("zoneinfo.zip");
        let mut bytes = stored_zip(&[("UTC", b"TZif-utc")]);
        let body = bytes.windows(8).position(|w| w == b"TZif-utc").unwrap();
        bytes[body] = b'X';
        std::fs::write(&zip, &bytes).unwrap();
        let err = zoneinfo_entries(&zip).unwrap_err().to_string();
        assert!(err.contains("CRC-32"), "{err}");
        let mut compressed = stored_zip(&[("UTC", b"TZif-utc")]);
        compressed[8] = 8; // local method: deflate
        let cd = compressed
            .windows(4)
            .position(|w| w == CENTRAL_SIG.to_le_bytes())
            .unwrap();
        compressed[cd + 10] = 8;
        std::fs::write(&zip, &compressed).unwrap();
        let err = zoneinfo_entries(&zip).unwrap_err().to_string();
        assert!(err.contains("method 8"), "{err}");
        std::fs::write(&zip, stored_zip(&[("../etc/passwd", b"x")])).unwrap();
        assert!(zoneinfo_entries(&zip).is_err());
        std::fs::write(&zip, b"not a zip").unwrap();
        assert!(zoneinfo_entries(&zip)
            .unwrap_err()
            .to_string()
            .contains("not a zip"));
    }
}
