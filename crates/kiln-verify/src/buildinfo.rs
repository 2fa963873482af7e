//! Go build info: the module list and build settings the Go linker embeds in every binary.
//!
//! Layout (Go's `debug/buildinfo`): a 32-byte header that starts with the magic
//! `\xff Go buildinf:` on a 16-byte boundary, byte 14 the pointer size, byte 15 flags (bit 0
//! big-endian, bit 1 inline strings). Since Go 1.18 two uvarint-prefixed strings follow the header
//! (Go version, module info); older binaries store two pointers to Go string headers instead.

use serde::{Deserialize, Serialize};

use std::fmt;

use crate::quote::{quote, unquote, unquote_prefix};
use crate::VerifyError;

/// The 14 bytes that start the build info header.
pub(crate) const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const ALIGN: usize = 16;
/// Go only searches this far into the data region; so do we, to stay fast on huge sections.
const SEARCH_LIMIT: usize = 64 * 1024;
const FLAG_BIG_ENDIAN: u8 = 0x1;
const FLAG_INLINE: u8 = 0x2;
/// Module info is wrapped in 16 bytes of random-looking sentinel on each side.
const SENTINEL_LEN: usize = 16;
/// Pointer-format strings longer than this are treated as corrupt instead of being read.
const MAX_POINTER_STRING: u64 = 16 << 20;

/// One Go module as recorded in build info (`mod`, `dep` and `=>` lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Module path, e.g. `golang.org/x/net`.
    pub path: String,
    /// Version, e.g. `v0.31.0`; `(devel)` for the main module, empty for a directory replacement.
    pub version: String,
    /// `go.sum` hash (`h1:...`); absent for the main module and directory replacements.
    pub sum: Option<String>,
    /// What this module was replaced with by a `replace` directive.
    pub replace: Option<Box<Module>>,
}

/// One `build` line: a `go build` flag or environment setting (`-trimpath`, `CGO_ENABLED`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSetting {
    /// Setting name, e.g. `CGO_ENABLED`, `-ldflags`, `vcs.revision`.
    pub key: String,
    /// Setting value, already unquoted.
    pub value: String,
}

/// The Go build info of a binary: toolchain version, main package, modules and build settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoBuildInfo {
    /// Toolchain that built the binary, e.g. `go1.26.8`.
    pub go_version: String,
    /// Import path of the main package (`path` line); empty if absent.
    pub path: String,
    /// The main module; its path is empty when the binary was built outside a module.
    pub main: Module,
    /// Dependency modules in the order the linker recorded them (sorted by path).
    pub deps: Vec<Module>,
    /// Build settings in recorded order.
    pub settings: Vec<BuildSetting>,
}

impl GoBuildInfo {
    /// Parses module info text (the lines `go version -m` shows) for a binary built by
    /// `go_version`. Sentinels around the text are stripped when present.
    pub fn from_modinfo(go_version: &str, modinfo: &[u8]) -> Result<Self, VerifyError> {
        let text = std::str::from_utf8(strip_sentinels(modinfo))
            .map_err(|e| bad(format!("module info is not UTF-8: {e}")))?;
        let mut info = GoBuildInfo {
            go_version: go_version.to_owned(),
            path: String::new(),
            main: Module::empty(),
            deps: Vec::new(),
            settings: Vec::new(),
        };
        // Index of the module a following `=>` line replaces: None = nothing, Some(None) = main.
        let mut last: Option<Option<usize>> = None;
        for (n, line) in text.lines().enumerate() {
            let line_err =
                |msg: String| bad(format!("module info line {}: {msg}: {line:?}", n + 1));
            let Some((word, rest)) = line.split_once('\t') else {
                continue; // blank or unknown lines are skipped, as Go does
            };
            match word {
                "go" if info.go_version.is_empty() => rest.clone_into(&mut info.go_version),
                "path" => rest.clone_into(&mut info.path),
                "mod" => {
                    info.main = module_line(rest).map_err(line_err)?;
                    last = Some(None);
                }
                "dep" => {
                    info.deps.push(module_line(rest).map_err(line_err)?);
                    last = Some(Some(info.deps.len() - 1));
                }
                "=>" => {
                    let replacement = module_line(rest).map_err(&line_err)?;
                    let target = match last.take() {
                        Some(None) => &mut info.main,
                        Some(Some(i)) => info
                            .deps
                            .get_mut(i)
                            .ok_or_else(|| line_err("internal: lost dependency".into()))?,
                        None => {
                            return Err(line_err("replacement without a module before it".into()))
                        }
                    };
                    target.replace = Some(Box::new(replacement));
                }
                "build" => {
                    info.settings.push(build_line(rest).map_err(line_err)?);
                    last = None;
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// The value of build setting `key`, if recorded.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    /// Whether cgo was enabled (`CGO_ENABLED` setting); `None` if not recorded.
    pub fn cgo_enabled(&self) -> Option<bool> {
        match self.setting("CGO_ENABLED")? {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        }
    }

    /// Target OS (`GOOS` setting).
    pub fn goos(&self) -> Option<&str> {
        self.setting("GOOS")
    }

    /// Target architecture (`GOARCH` setting).
    pub fn goarch(&self) -> Option<&str> {
        self.setting("GOARCH")
    }

    /// Whether the binary was built with `-trimpath` (no build-machine paths inside).
    pub fn trimpath(&self) -> bool {
        self.setting("-trimpath") == Some("true")
    }
}

/// Renders the text Go's `debug.BuildInfo.String()` produces (what `go version -m` shows), byte
/// for byte, including Go's quirk of an empty line after each `=>` line.
impl fmt::Display for GoBuildInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn module(f: &mut fmt::Formatter<'_>, word: &str, m: &Module) -> fmt::Result {
            write!(f, "{word}\t{}\t{}", m.path, m.version)?;
            match &m.replace {
                None => write!(f, "\t{}", m.sum.as_deref().unwrap_or_default())?,
                Some(rep) => {
                    writeln!(f)?;
                    module(f, "=>", rep)?;
                }
            }
            writeln!(f)
        }
        if !self.go_version.is_empty() {
            writeln!(f, "go\t{}", self.go_version)?;
        }
        if !self.path.is_empty() {
            writeln!(f, "path\t{}", self.path)?;
        }
        if self.main != Module::empty() {
            module(f, "mod", &self.main)?;
        }
        for dep in &self.deps {
            module(f, "dep", dep)?;
        }
        let needs_quote = |s: &str, extra: &[char]| {
            s.contains([' ', '\t', '\r', '\n', '"', '`']) || s.contains(extra)
        };
        for BuildSetting { key, value } in &self.settings {
            let key = if key.is_empty() || needs_quote(key, &['=']) {
                quote(key)
            } else {
                key.clone()
            };
            let value = if needs_quote(value, &[]) {
                quote(value)
            } else {
                value.clone()
            };
            writeln!(f, "build\t{key}={value}")?;
        }
        Ok(())
    }
}

impl Module {
    fn empty() -> Self {
        Module {
            path: String::new(),
            version: String::new(),
            sum: None,
            replace: None,
        }
    }
}

/// Where the header says the version and module strings are.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Header<'a> {
    /// Go >= 1.18: strings stored right after the header.
    Inline {
        version: &'a [u8],
        modinfo: &'a [u8],
    },
    /// Go < 1.18: virtual addresses of two Go string headers.
    Pointers {
        ptr_size: usize,
        big_endian: bool,
        version_addr: u64,
        modinfo_addr: u64,
    },
}

/// How much of a region [`find_offset`] needs: the searched window plus room for a header that
/// starts at its last aligned offset.
pub(crate) const SEARCH_WINDOW: usize = SEARCH_LIMIT + HEADER_LEN;

/// Finds the build info header in a region (the start of the data section Go puts it in) of
/// `region_len` bytes, given its first [`SEARCH_WINDOW`] bytes (all of it when shorter) in
/// `prefix`, and returns the header's offset. Only the prefix is needed, so a caller reading
/// from a file never has to load a whole data segment.
pub(crate) fn find_offset(prefix: &[u8], region_len: u64) -> Option<usize> {
    let limit = prefix.len().min(SEARCH_LIMIT);
    (0..limit).step_by(ALIGN).find(|&off| {
        prefix[off..].starts_with(MAGIC) && region_len - off as u64 >= HEADER_LEN as u64
    })
}

/// Finds the build info header in a whole `region` and returns the bytes from the header on.
#[cfg(test)]
pub(crate) fn find(region: &[u8]) -> Option<&[u8]> {
    find_offset(region, region.len() as u64).map(|off| &region[off..])
}

/// Reads the bytes from the header on that [`parse_header`] looks at: the header and, in the
/// inline format, the two uvarint-prefixed strings after it. `read(n)` returns the first `n` bytes
/// from the header on, or all `available` ones when fewer; `None` means an I/O failure.
///
/// `parse_header` gives the same result on this prefix as on everything up to the end of the
/// region: a string that runs past the end fails either way, and a uvarint is never longer than
/// 10 bytes.
pub(crate) fn read_blob<'a>(
    available: usize,
    read: &dyn Fn(usize) -> Option<&'a [u8]>,
) -> Option<&'a [u8]> {
    const MAX_UVARINT: usize = 10;
    let head = read(HEADER_LEN)?;
    if head.len() < HEADER_LEN || head[15] & FLAG_INLINE == 0 {
        return Some(head); // truncated, or the pointer format: 32 bytes are all there is
    }
    let mut need = HEADER_LEN;
    for _ in 0..2 {
        let blob = read(need.saturating_add(MAX_UVARINT))?;
        let Some((len, used)) = blob.get(need..).and_then(uvarint) else {
            return Some(blob);
        };
        need = need
            .saturating_add(used)
            .saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        if need > available {
            return Some(blob); // the string runs past the region: rejected on any prefix
        }
    }
    read(need)
}

/// Decodes the header at the start of `blob` (as returned by [`find`]).
pub(crate) fn parse_header(blob: &[u8]) -> Result<Header<'_>, VerifyError> {
    if blob.len() < HEADER_LEN || !blob.starts_with(MAGIC) {
        return Err(bad("build info header missing or truncated".into()));
    }
    let ptr_size = usize::from(blob[14]);
    let flags = blob[15];
    if flags & FLAG_INLINE != 0 {
        let rest = &blob[HEADER_LEN..];
        let (version, rest) =
            uvarint_string(rest).ok_or_else(|| bad("Go version string truncated".into()))?;
        // Go treats a missing module string as "no module info", not as corruption.
        let modinfo = uvarint_string(rest).map_or(&[][..], |(m, _)| m);
        if version.is_empty() {
            return Err(bad("empty Go version in build info".into()));
        }
        return Ok(Header::Inline { version, modinfo });
    }
    if ptr_size != 4 && ptr_size != 8 {
        return Err(bad(format!(
            "unsupported pointer size {ptr_size} in build info"
        )));
    }
    let big_endian = flags & FLAG_BIG_ENDIAN != 0;
    let version_addr = read_ptr(&blob[16..], ptr_size, big_endian)
        .ok_or_else(|| bad("build info pointers truncated".into()))?;
    let modinfo_addr = read_ptr(&blob[16 + ptr_size..], ptr_size, big_endian)
        .ok_or_else(|| bad("build info pointers truncated".into()))?;
    Ok(Header::Pointers {
        ptr_size,
        big_endian,
        version_addr,
        modinfo_addr,
    })
}

/// Reads build info from a header, following pointers (old format) through `read_mem`, which maps
/// a virtual address and length to file bytes.
pub(crate) fn decode<'a>(
    header: &Header<'a>,
    read_mem: &dyn Fn(u64, u64) -> Option<&'a [u8]>,
) -> Result<GoBuildInfo, VerifyError> {
    let (version, modinfo) = match *header {
        Header::Inline { version, modinfo } => (version, modinfo),
        Header::Pointers {
            ptr_size,
            big_endian,
            version_addr,
            modinfo_addr,
        } => {
            let read_string = |addr: u64| -> Result<&'a [u8], VerifyError> {
                let unreadable = || bad(format!("cannot read Go string header at {addr:#x}"));
                let hdr = read_mem(addr, 2 * ptr_size as u64).ok_or_else(unreadable)?;
                let data = read_ptr(hdr, ptr_size, big_endian).ok_or_else(unreadable)?;
                let len = read_ptr(
                    hdr.get(ptr_size..).unwrap_or_default(),
                    ptr_size,
                    big_endian,
                )
                .ok_or_else(unreadable)?;
                if len == 0 {
                    return Ok(&[]);
                }
                if len > MAX_POINTER_STRING {
                    return Err(bad(format!("implausible string length {len} at {addr:#x}")));
                }
                read_mem(data, len).ok_or_else(unreadable)
            };
            (read_string(version_addr)?, read_string(modinfo_addr)?)
        }
    };
    let version = std::str::from_utf8(version)
        .map_err(|_| bad("Go version in build info is not UTF-8".into()))?;
    if version.is_empty() {
        return Err(bad("empty Go version in build info".into()));
    }
    GoBuildInfo::from_modinfo(version, modinfo)
}

/// Removes the 16-byte sentinels Go wraps module info in, on bytes, before any UTF-8 decoding
/// (the sentinels are not UTF-8).
pub(crate) fn strip_sentinels(modinfo: &[u8]) -> &[u8] {
    let n = modinfo.len();
    if n > 2 * SENTINEL_LEN && modinfo[n - SENTINEL_LEN - 1] == b'\n' {
        &modinfo[SENTINEL_LEN..n - SENTINEL_LEN]
    } else {
        modinfo
    }
}

fn bad(message: String) -> VerifyError {
    VerifyError::BuildInfo { message }
}

fn uvarint_string(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, used) = uvarint(data)?;
    let rest = &data[used..];
    let len = usize::try_from(len).ok().filter(|&l| l <= rest.len())?;
    Some(rest.split_at(len))
}

/// Go's `binary.Uvarint`: little-endian base-128, at most 10 bytes.
fn uvarint(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in data.iter().enumerate().take(10) {
        if i == 9 && b > 1 {
            return None; // overflows u64
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn read_ptr(data: &[u8], ptr_size: usize, big_endian: bool) -> Option<u64> {
    let bytes = data.get(..ptr_size)?;
    let fold = |acc: u64, &b: &u8| (acc << 8) | u64::from(b);
    Some(if big_endian {
        bytes.iter().fold(0, fold)
    } else {
        bytes.iter().rev().fold(0, fold)
    })
}

/// `path\tversion[\tsum]` (what follows `mod\t`, `dep\t` or `=>\t`).
fn module_line(rest: &str) -> Result<Module, String> {
    let fields: Vec<&str> = rest.split('\t').collect();
    let (path, version, sum) = match fields.as_slice() {
        [path, version] => (*path, *version, None),
        [path, version, sum] => (*path, *version, Some(*sum).filter(|s| !s.is_empty())),
        _ => return Err(format!("expected 2 or 3 columns, got {}", fields.len())),
    };
    if path.is_empty() {
        return Err("empty module path".into());
    }
    Ok(Module {
        path: path.to_owned(),
        version: version.to_owned(),
        sum: sum.map(str::to_owned),
        replace: None,
    })
}

/// `K=V` with Go-quoted K (when it holds `=` or blanks) and V (when it holds blanks or quotes).
fn build_line(kv: &str) -> Result<BuildSetting, String> {
    let (key, raw_value) = match kv.as_bytes().first() {
        None => return Err("empty build setting".into()),
        Some(b'=') => return Err("empty build setting key".into()),
        Some(b'"' | b'`') => {
            let (key, used) = unquote_prefix(kv).map_err(|e| e.0)?;
            let raw_value = kv[used..]
                .strip_prefix('=')
                .ok_or("missing '=' after quoted key")?;
            (key, raw_value)
        }
        Some(_) => {
            let (key, value) = kv.split_once('=').ok_or("missing '='")?;
            (key.to_owned(), value)
        }
    };
    let value = match raw_value.as_bytes().first() {
        Some(b'"' | b'`') => unquote(raw_value).map_err(|e| e.0)?,
        _ => raw_value.to_owned(),
    };
    Ok(BuildSetting { key, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTINEL_START: &[u8; 16] = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
    const SENTINEL_END: &[u8; 16] = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2";

    const MODINFO: &str = "path\texample.com/app/cmd/app\n\
        mod\texample.com/app\t(devel)\t\n\
        dep\texample.com/dep\tv0.0.0\n\
        =>\t../dep\t\t\n\
        dep\tgolang.org/x/sys\tv0.30.0\th1:abc=\n\
        build\t-buildmode=exe\n\
        build\t-ldflags=\"-s -w -X \\\"main.v=1 2\\\"\"\n\
        build\t\"we=ird\"=`raw value`\n\
        build\tCGO_ENABLED=0\n\
        build\tGOARCH=amd64\n\
        build\tGOOS=linux\n\
        build\t-trimpath=true\n";

    fn wrapped(text: &str) -> Vec<u8> {
        [&SENTINEL_START[..], text.as_bytes(), &SENTINEL_END[..]].concat()
    }

    fn inline_blob(version: &str, modinfo: &[u8]) -> Vec<u8> {
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&[8, FLAG_INLINE]);
        blob.resize(HEADER_LEN, 0);
        for s in [version.as_bytes(), modinfo] {
            let mut n = s.len();
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                blob.push(if n == 0 { byte } else { byte | 0x80 });
                if n == 0 {
                    break;
                }
            }
            blob.extend_from_slice(s);
        }
        blob
    }

    #[test]
    fn parses_modules_replacements_and_settings() {
        let info = GoBuildInfo::from_modinfo("go1.26.8", &wrapped(MODINFO)).unwrap();
        assert_eq!(info.go_version, "go1.26.8");
        assert_eq!(info.path, "example.com/app/cmd/app");
        assert_eq!(info.main.path, "example.com/app");
        assert_eq!(info.main.version, "(devel)");
        assert_eq!(info.main.sum, None);
        assert_eq!(info.deps.len(), 2);
        let dep = &info.deps[0];
        assert_eq!(
            (dep.path.as_str(), dep.version.as_str()),
            ("example.com/dep", "v0.0.0")
        );
        let rep = dep.replace.as_deref().unwrap();
        assert_eq!(
            (rep.path.as_str(), rep.version.as_str(), &rep.sum),
            ("../dep", "", &None)
        );
        assert_eq!(info.deps[1].sum.as_deref(), Some("h1:abc="));
        assert!(info.deps[1].replace.is_none());
        assert_eq!(info.setting("-ldflags"), Some("-s -w -X \"main.v=1 2\""));
        assert_eq!(info.setting("we=ird"), Some("raw value"));
        assert_eq!(info.cgo_enabled(), Some(false));
        assert_eq!((info.goos(), info.goarch()), (Some("linux"), Some("amd64")));
        assert!(info.trimpath());
    }

    #[test]
    fn display_reproduces_go_text() {
        let info = GoBuildInfo::from_modinfo("go1.26.8", MODINFO.as_bytes()).unwrap();
        let text = info.to_string();
        // Go quotes with "..." only, and leaves an empty line after each `=>` line.
        let go_form = MODINFO
            .replace("\t\t\n", "\t\t\n\n")
            .replace("`raw value`", "\"raw value\"");
        let expected = format!("go\tgo1.26.8\n{go_form}");
        assert_eq!(text, expected);
        let reparsed = GoBuildInfo::from_modinfo("", text.as_bytes()).unwrap();
        assert_eq!(reparsed, info);
    }

    #[test]
    fn sentinels_are_stripped_on_bytes_only_when_present() {
        let body = b"path\tx\nmod\tx\t(devel)\t\n";
        assert_eq!(
            strip_sentinels(&wrapped(std::str::from_utf8(body).unwrap())),
            body
        );
        assert_eq!(strip_sentinels(body), body);
        // Too short to hold two sentinels plus a newline: untouched.
        let short = [&SENTINEL_START[..], b"\n", &SENTINEL_END[..15]].concat();
        assert_eq!(strip_sentinels(&short), &short[..]);
    }

    #[test]
    fn finds_aligned_header_only() {
        let blob = inline_blob("go1.22.0", &wrapped(MODINFO));
        let mut region = vec![0u8; 48];
        region[3..17].copy_from_slice(MAGIC); // unaligned decoy
        region.extend_from_slice(&blob);
        let found = find(&region).unwrap();
        assert_eq!(found.len(), blob.len());
        let Header::Inline { version, modinfo } = parse_header(found).unwrap() else {
            panic!("expected inline header");
        };
        assert_eq!(version, b"go1.22.0");
        let info = GoBuildInfo::from_modinfo("go1.22.0", modinfo).unwrap();
        assert_eq!(info.deps.len(), 2);
    }

    /// `read_blob` must give `parse_header` exactly what it needs: the same outcome as the whole
    /// rest of the region, for every cut of a valid blob and for lengths that overrun it.
    #[test]
    fn read_blob_prefix_parses_like_the_whole_region() {
        let mut blob = inline_blob("go1.22.0", &wrapped(MODINFO));
        blob.extend_from_slice(&[0xaa; 100]); // the rest of the section
        let mut huge_version = blob.clone();
        huge_version[HEADER_LEN..HEADER_LEN + 3].copy_from_slice(&[0xff, 0xff, 0x7f]);
        let mut endless_uvarint = blob.clone();
        endless_uvarint[HEADER_LEN..HEADER_LEN + 12].fill(0x80);
        for region in [blob, huge_version, endless_uvarint] {
            for len in 0..=region.len() {
                let whole = &region[..len];
                let read = |n: usize| Some(&whole[..n.min(len)]);
                let prefix = read_blob(len, &read).unwrap();
                assert!(whole.starts_with(prefix));
                let expected = format!("{:?}", parse_header(whole));
                assert_eq!(
                    format!("{:?}", parse_header(prefix)),
                    expected,
                    "cut at {len}"
                );
            }
        }
    }

    #[test]
    fn pointer_format_reads_through_memory() {
        // Header at 0x1000 pointing at two 64-bit big-endian string headers at 0x2000/0x2010.
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&[8, FLAG_BIG_ENDIAN]);
        blob.extend_from_slice(&0x2000u64.to_be_bytes());
        blob.extend_from_slice(&0x2010u64.to_be_bytes());
        let modinfo = wrapped(MODINFO);
        let mut mem = vec![0u8; 0x100];
        mem[0..8].copy_from_slice(&0x2040u64.to_be_bytes());
        mem[8..16].copy_from_slice(&8u64.to_be_bytes());
        mem[16..24].copy_from_slice(&0x2050u64.to_be_bytes());
        mem[24..32].copy_from_slice(&(modinfo.len() as u64).to_be_bytes());
        mem[0x40..0x48].copy_from_slice(b"go1.16.3");
        mem.truncate(0x50);
        mem.extend_from_slice(&modinfo);
        let read = |addr: u64, len: u64| -> Option<&[u8]> {
            let start = usize::try_from(addr.checked_sub(0x2000)?).ok()?;
            mem.get(start..start + usize::try_from(len).ok()?)
        };
        let header = parse_header(&blob).unwrap();
        let info = decode(&header, &read).unwrap();
        assert_eq!(info.go_version, "go1.16.3");
        assert_eq!(info.main.path, "example.com/app");
        // A pointer into nowhere is an error, not a panic.
        let Header::Pointers {
            ptr_size,
            big_endian,
            ..
        } = header
        else {
            panic!()
        };
        let broken = Header::Pointers {
            ptr_size,
            big_endian,
            version_addr: 0x9999,
            modinfo_addr: 0,
        };
        assert!(decode(&broken, &read).is_err());
    }

    #[test]
    fn malformed_module_info_is_an_error() {
        for bad_text in [
            "=>\tx\tv1\t\n",
            "mod\tx\n",
            "dep\tx\tv1\th1:\textra\n",
            "mod\t\tv1\n",
            "build\t=x\n",
            "build\tnoequals\n",
            "build\t\"unterminated=1\n",
            "build\t\"k\"x\n",
            "build\tk=\"bad\\q\"\n",
            "mod\tx\tv1\n=>\ty\tv2\t\n=>\tz\tv3\t\n",
        ] {
            assert!(
                GoBuildInfo::from_modinfo("go1.26.0", bad_text.as_bytes()).is_err(),
                "{bad_text:?} should be rejected"
            );
        }
        assert!(GoBuildInfo::from_modinfo("go1.26.0", b"mod\t\xff\tv1\n").is_err());
    }

    #[test]
    fn truncated_and_garbage_headers_never_panic() {
        let blob = inline_blob("go1.26.8", &wrapped(MODINFO));
        for cut in 0..blob.len() {
            let part = &blob[..cut];
            if let Ok(header) = parse_header(part) {
                // Truncating the module string only loses module info; the version must survive.
                let info = decode(&header, &|_, _| None).unwrap();
                assert_eq!(info.go_version, "go1.26.8");
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut junk = MAGIC.to_vec();
            for _ in 0..64 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                junk.push(seed as u8);
            }
            if let Ok(header) = parse_header(&junk) {
                let _ = decode(&header, &|_, _| None);
            }
        }
        assert!(parse_header(b"\xff Go buildinf:").is_err());
        assert_eq!(uvarint(&[0xff; 11]), None);
        assert_eq!(uvarint(&[0x80]), None);
        assert_eq!(uvarint(&[0x96, 0x01]), Some((150, 2)));
    }
}
