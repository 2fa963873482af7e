//! Reading ELF, Mach-O and PE headers with `object`.
//!
//! Parsing is generic over [`ReadRef`]: over a byte slice for [`inspect_bytes`], and over a
//! [`ReadCache`] of the open file for [`inspect_file`], which reads only the ranges parsing asks
//! for (headers, dynamic section, load commands, import and symbol tables, the start of the Go
//! build info region), so a 150 MB binary is inspected without holding 150 MB in memory.

use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;

use kiln_types::Digest;
use object::read::elf::{Dyn, ElfFile, FileHeader, ProgramHeader};
use object::read::macho::{LoadCommandVariant, MachHeader, MachOFile};
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile};
use object::{
    elf, macho, pe, Architecture, Endianness, FileKind, LittleEndian as LE, Object, ObjectSection,
    ObjectSegment, ObjectSymbol, ReadCache, ReadRef, SectionFlags, SegmentFlags,
};

use crate::buildinfo::{self, GoBuildInfo};
use crate::platform::SystemLinking;
use crate::report::{BinaryReport, Format, Linkage};
use crate::VerifyError;

/// Inspects the binary at `path`.
///
/// The file is never held in memory whole (memory-mapping would need `unsafe`, which the
/// workspace forbids): its digest is computed by streaming it, then the parser reads only the
/// ranges it needs through a [`ReadCache`].
pub fn inspect_file(path: &Path) -> Result<BinaryReport, VerifyError> {
    let read_error = |source| VerifyError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    // Hashing first also reports an unreadable file (a directory, a permission problem) as a read
    // error before any parsing, as reading it whole used to.
    let (sha256, size) = Digest::of_reader(BufReader::new(&mut file)).map_err(read_error)?;
    file.seek(SeekFrom::Start(0)).map_err(read_error)?;
    let cache = ReadCache::new(file);
    inspect_data(&cache, size, sha256).map_err(|e| VerifyError::File {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

/// Inspects the binary at `path` whose content the caller has already verified to have `sha256`
/// and `size` (a binary just restored from the cache): the same report as [`inspect_file`]
/// without reading the whole file again. A file of another size is refused.
pub fn inspect_file_known(
    path: &Path,
    sha256: Digest,
    size: u64,
) -> Result<BinaryReport, VerifyError> {
    let read_error = |source| VerifyError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let actual = file.metadata().map_err(read_error)?.len();
    if actual != size {
        return Err(read_error(std::io::Error::other(format!(
            "expected {size} bytes, found {actual}: the file changed while kiln was reading it"
        ))));
    }
    let cache = ReadCache::new(file);
    inspect_data(&cache, size, sha256).map_err(|e| VerifyError::File {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

/// Inspects a binary held in memory.
pub fn inspect_bytes(data: &[u8]) -> Result<BinaryReport, VerifyError> {
    inspect_data(data, data.len() as u64, Digest::of_bytes(data))
}

/// Inspects the binary `data` reads from, whose `size` and `sha256` the caller computed.
fn inspect_data<'data, R: ReadRef<'data>>(
    data: R,
    size: u64,
    sha256: Digest,
) -> Result<BinaryReport, VerifyError> {
    let kind = FileKind::parse(data).map_err(|_| VerifyError::NotExecutable {
        what: describe_unknown(data),
    })?;
    let (format, mut details) = match kind {
        FileKind::Elf32 => (
            Format::Elf,
            elf_details::<elf::FileHeader32<Endianness>, _>(data)?,
        ),
        FileKind::Elf64 => (
            Format::Elf,
            elf_details::<elf::FileHeader64<Endianness>, _>(data)?,
        ),
        FileKind::MachO32 => (
            Format::Macho,
            macho_details::<macho::MachHeader32<Endianness>, _>(data)?,
        ),
        FileKind::MachO64 => (
            Format::Macho,
            macho_details::<macho::MachHeader64<Endianness>, _>(data)?,
        ),
        FileKind::Pe32 => (Format::Pe, pe_details::<pe::ImageNtHeaders32, _>(data)?),
        FileKind::Pe64 => (Format::Pe, pe_details::<pe::ImageNtHeaders64, _>(data)?),
        FileKind::MachOFat32 | FileKind::MachOFat64 => {
            return Err(VerifyError::NotExecutable {
                what: "universal (fat) Mach-O with several architectures; inspect one slice \
                       (`lipo -thin ARCH`)"
                    .into(),
            })
        }
        other => {
            return Err(VerifyError::NotExecutable {
                what: format!("{other:?} file"),
            })
        }
    };
    let file = object::File::parse(data).map_err(|e| malformed(format, e))?;

    let mut notes = std::mem::take(&mut details.notes);
    let go = match go_buildinfo(&file, data, format) {
        Ok(Some(info)) => Some(info),
        Ok(None) => {
            notes.push("no Go build info found (not built by the Go toolchain?)".into());
            None
        }
        Err(e) => {
            notes.push(e.to_string());
            None
        }
    };

    let os = go
        .as_ref()
        .and_then(GoBuildInfo::goos)
        .map_or_else(|| details.os_guess.to_owned(), str::to_owned);
    let linkage = linkage(format, &os, &details);
    let stripped = match format {
        Format::Elf => !file.sections().any(|s| s.name_bytes() == Ok(b".symtab")),
        // Go keeps undefined (imported) symbols even with -s; only defined ones say "not stripped".
        Format::Macho | Format::Pe => !file.symbols().any(|s| !s.is_undefined()),
    };

    Ok(BinaryReport {
        format,
        arch: go_arch(file.architecture(), file.is_little_endian()),
        os,
        linkage,
        interpreter: details.interpreter,
        needed: details.needed,
        stripped,
        pie: details.pie,
        size,
        sha256,
        go,
        notes,
    })
}

/// How the binary links, judged by what Go itself links on `os` (see [`SystemLinking`]): a
/// binary needing exactly the OS's own loader and libraries is [`Linkage::SystemLibs`], not static.
fn linkage(format: Format, os: &str, details: &Details) -> Linkage {
    let rule = SystemLinking::for_goos(os);
    let system_only = details
        .interpreter
        .as_deref()
        .is_none_or(|i| rule.allows_interpreter(i))
        && details.needed.iter().all(|lib| rule.allows_library(lib));
    match format {
        Format::Elf if details.elf_linkage != Linkage::Dynamic => details.elf_linkage,
        // An ELF shared object (no interpreter, no needs) stays dynamic: it is not a program.
        Format::Elf if details.interpreter.is_none() && details.needed.is_empty() => {
            Linkage::Dynamic
        }
        _ if details.interpreter.is_none() && details.needed.is_empty() => Linkage::Static,
        _ if system_only => Linkage::SystemLibs,
        _ => Linkage::Dynamic,
    }
}

/// Format-specific facts gathered before the generic pass.
struct Details {
    interpreter: Option<String>,
    needed: Vec<String>,
    pie: bool,
    /// Only meaningful for ELF; darwin/windows linkage is derived from `needed`.
    elf_linkage: Linkage,
    os_guess: &'static str,
    notes: Vec<String>,
}

fn elf_details<'data, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'data>>(
    data: R,
) -> Result<Details, VerifyError> {
    let err = |e: object::Error| malformed(Format::Elf, e);
    let file = ElfFile::<Elf, R>::parse(data).map_err(err)?;
    let endian = file.endian();
    let header = file.elf_header();
    let e_type = header.e_type(endian);
    if e_type != elf::ET_EXEC && e_type != elf::ET_DYN {
        return Err(VerifyError::NotExecutable {
            what: format!("ELF file of type {e_type} (relocatable object or core dump)"),
        });
    }
    let phdrs = file.elf_program_headers();
    let mut interpreter = None;
    let mut dynamic = None;
    for ph in phdrs {
        if let Some(interp) = ph.interpreter(endian, data).map_err(err)? {
            interpreter = Some(lossy(interp));
        }
        if let Some(dyns) = ph.dynamic(endian, data).map_err(err)? {
            dynamic = Some(dyns);
        }
    }

    let mut needed_offsets = Vec::new();
    let (mut strtab, mut strsz, mut flags_1) = (None, None, 0u64);
    for d in dynamic.unwrap_or_default() {
        let (tag, val) = (d.tag(endian), d.val(endian));
        if tag == elf::DT_NULL {
            break;
        } else if tag == elf::DT_NEEDED {
            needed_offsets.push(val);
        } else if tag == elf::DT_STRTAB {
            strtab = Some(val);
        } else if tag == elf::DT_STRSZ {
            strsz = Some(val);
        } else if tag == elf::DT_FLAGS_1 {
            flags_1 = val;
        }
    }
    // Resolve names through the segments (not section headers, which a stripper may remove).
    let mut needed = Vec::new();
    if !needed_offsets.is_empty() {
        let strings = strtab
            .and_then(|addr| {
                let len = strsz?;
                phdrs.iter().find_map(|ph| {
                    if ph.p_type(endian) != elf::PT_LOAD {
                        return None;
                    }
                    let vaddr: u64 = ph.p_vaddr(endian).into();
                    let filesz: u64 = ph.p_filesz(endian).into();
                    let offset: u64 = ph.p_offset(endian).into();
                    let rel = addr
                        .checked_sub(vaddr)
                        .filter(|r| r.saturating_add(len) <= filesz)?;
                    data.read_bytes_at(offset.checked_add(rel)?, len).ok()
                })
            })
            .ok_or_else(|| malformed(Format::Elf, "DT_NEEDED without a readable DT_STRTAB"))?;
        for off in needed_offsets {
            let name = usize::try_from(off)
                .ok()
                .and_then(|o| strings.get(o..))
                .and_then(|s| s.split(|&b| b == 0).next())
                .ok_or_else(|| malformed(Format::Elf, "DT_NEEDED name outside DT_STRTAB"))?;
            needed.push(lossy(name));
        }
    }

    let is_dyn = e_type == elf::ET_DYN;
    let flagged_pie = flags_1 & elf::DF_1_PIE.0 != 0;
    let mut notes = Vec::new();
    let elf_linkage = if interpreter.is_some() || !needed.is_empty() {
        Linkage::Dynamic
    } else if is_dyn && dynamic.is_some() && flagged_pie {
        Linkage::StaticPie
    } else if is_dyn {
        notes.push(
            "ELF shared object without interpreter or DF_1_PIE: a library, not a program".into(),
        );
        Linkage::Dynamic
    } else {
        Linkage::Static
    };
    let os_guess = match header.e_ident().os_abi {
        elf::ELFOSABI_FREEBSD => "freebsd",
        elf::ELFOSABI_NETBSD => "netbsd",
        elf::ELFOSABI_OPENBSD => "openbsd",
        elf::ELFOSABI_SOLARIS => "solaris",
        elf::ELFOSABI_AIX => "aix",
        _ => "linux",
    };
    let pie = is_dyn && (flagged_pie || interpreter.is_some());
    Ok(Details {
        interpreter,
        needed,
        pie,
        elf_linkage,
        os_guess,
        notes,
    })
}

fn macho_details<'data, Mach: MachHeader<Endian = Endianness>, R: ReadRef<'data>>(
    data: R,
) -> Result<Details, VerifyError> {
    let err = |e: object::Error| malformed(Format::Macho, e);
    let file = MachOFile::<Mach, R>::parse(data).map_err(err)?;
    let endian = file.endian();
    let mut interpreter = None;
    let mut needed = Vec::new();
    let mut commands = file.macho_load_commands().map_err(err)?;
    while let Some(cmd) = commands.next().map_err(err)? {
        if let Some(dylib) = cmd.dylib().map_err(err)? {
            needed.push(lossy(cmd.string(endian, dylib.dylib.name).map_err(err)?));
        } else if let LoadCommandVariant::LoadDylinker(d) = cmd.variant().map_err(err)? {
            interpreter = Some(lossy(cmd.string(endian, d.name).map_err(err)?));
        }
    }
    let pie = file.macho_header().flags(endian) & macho::MH_PIE == macho::MH_PIE;
    Ok(Details {
        interpreter,
        needed,
        pie,
        elf_linkage: Linkage::Dynamic,
        os_guess: "darwin",
        notes: Vec::new(),
    })
}

fn pe_details<'data, Pe: ImageNtHeaders, R: ReadRef<'data>>(
    data: R,
) -> Result<Details, VerifyError> {
    let err = |e: object::Error| malformed(Format::Pe, e);
    let file = PeFile::<Pe, R>::parse(data).map_err(err)?;
    let mut needed = Vec::new();
    if let Some(table) = file.import_table().map_err(err)? {
        let mut descriptors = table.descriptors().map_err(err)?;
        while let Some(desc) = descriptors.next().map_err(err)? {
            needed.push(lossy(table.name(desc.name.get(LE)).map_err(err)?));
        }
    }
    let dll = file.nt_headers().optional_header().dll_characteristics();
    let pie = dll & pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE
        == pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE;
    Ok(Details {
        interpreter: None,
        needed,
        pie,
        elf_linkage: Linkage::Dynamic,
        os_guess: "windows",
        notes: Vec::new(),
    })
}

/// Locates and decodes Go build info in the data section Go's linker puts it in, reading only the
/// start of that section and, for the pre-1.18 pointer format, the strings it points at.
fn go_buildinfo<'data, R: ReadRef<'data>>(
    file: &object::File<'data, R>,
    data: R,
    format: Format,
) -> Result<Option<GoBuildInfo>, VerifyError> {
    let file_len = data.len().unwrap_or(0);
    let Some((offset, len)) = buildinfo_region(file, format, file_len) else {
        return Ok(None);
    };
    // `len` is within the file, so it fits in memory's address space whenever the file does.
    let available = usize::try_from(len).unwrap_or(usize::MAX);
    let read = |skip: usize, n: usize| {
        let n = n.min(available.saturating_sub(skip));
        data.read_bytes_at(offset + skip as u64, n as u64).ok()
    };
    let Some(start) =
        read(0, buildinfo::SEARCH_WINDOW).and_then(|prefix| buildinfo::find_offset(prefix, len))
    else {
        return Ok(None);
    };
    let Some(blob) = buildinfo::read_blob(available - start, &|n| read(start, n)) else {
        return Ok(None);
    };
    let header = buildinfo::parse_header(blob)?;
    // Like `ObjectSegment::data_range`, without reading whole segments: a segment that is not
    // entirely inside the file is skipped.
    let segments: Vec<_> = file
        .segments()
        .filter_map(|seg| {
            let (seg_offset, seg_len) = seg.file_range();
            in_file((seg_offset, seg_len), file_len).map(|_| (seg.address(), seg_offset, seg_len))
        })
        .collect();
    let read_mem = |addr: u64, len: u64| {
        segments
            .iter()
            .find_map(|&(seg_addr, seg_offset, seg_len)| {
                let rel = addr.checked_sub(seg_addr)?;
                if rel.checked_add(len)? > seg_len {
                    return None;
                }
                data.read_bytes_at(seg_offset + rel, len).ok()
            })
    };
    buildinfo::decode(&header, &read_mem).map(Some)
}

/// The file range (offset, length) of the region Go's `debug/buildinfo` searches, if it exists
/// and lies inside the file (`file_len` bytes); a region without file data is empty.
fn buildinfo_region<'data, R: ReadRef<'data>>(
    file: &object::File<'data, R>,
    format: Format,
    file_len: u64,
) -> Option<(u64, u64)> {
    let section_range = |s: &object::Section<'data, '_, R>| match s.file_range() {
        Some(range) => in_file(range, file_len),
        // No file data (SHT_NOBITS, zerofill, empty PE section): `data()` reads nothing.
        None => s.data().ok().map(|_| (0, 0)),
    };
    let segment_range = |seg: &object::Segment<'data, '_, R>| in_file(seg.file_range(), file_len);
    let name: &[u8] = match format {
        Format::Elf => b".go.buildinfo",
        Format::Macho => b"__go_buildinfo",
        Format::Pe => b"",
    };
    if !name.is_empty() {
        if let Some(s) = file.sections().find(|s| s.name_bytes() == Ok(name)) {
            return section_range(&s);
        }
    }
    match format {
        // Section headers gone: Go falls back to the first writable loaded segment.
        Format::Elf => file.segments().find_map(|seg| match seg.flags() {
            SegmentFlags::Elf { p_type, p_flags }
                if p_type == elf::PT_LOAD && p_flags & elf::PF_W == elf::PF_W =>
            {
                segment_range(&seg)
            }
            _ => None,
        }),
        Format::Macho => file
            .segments()
            .find(|seg| seg.name_bytes() == Ok(Some(b"__DATA")))
            .and_then(|seg| segment_range(&seg)),
        Format::Pe => {
            let want = pe::IMAGE_SCN_CNT_INITIALIZED_DATA
                | pe::IMAGE_SCN_MEM_READ
                | pe::IMAGE_SCN_MEM_WRITE;
            let kinds = want
                | pe::IMAGE_SCN_CNT_CODE
                | pe::IMAGE_SCN_CNT_UNINITIALIZED_DATA
                | pe::IMAGE_SCN_MEM_EXECUTE;
            file.sections().find_map(|s| match s.flags() {
                SectionFlags::Coff { characteristics } if characteristics & kinds == want => {
                    section_range(&s)
                }
                _ => None,
            })
        }
    }
}

/// `range` if it lies inside a file of `file_len` bytes (where reading it whole would succeed).
fn in_file((offset, len): (u64, u64), file_len: u64) -> Option<(u64, u64)> {
    offset
        .checked_add(len)
        .filter(|&end| end <= file_len)
        .map(|_| (offset, len))
}

/// Go's GOARCH spelling of an `object` architecture.
fn go_arch(arch: Architecture, little_endian: bool) -> String {
    let name = match (arch, little_endian) {
        (Architecture::X86_64, _) => "amd64",
        (Architecture::X86_64_X32, _) => "amd64p32",
        (Architecture::I386, _) => "386",
        (Architecture::Aarch64, _) => "arm64",
        (Architecture::Arm, _) => "arm",
        (Architecture::Riscv64, _) => "riscv64",
        (Architecture::PowerPc64, true) => "ppc64le",
        (Architecture::PowerPc64, false) => "ppc64",
        (Architecture::S390x, _) => "s390x",
        (Architecture::Mips, true) => "mipsle",
        (Architecture::Mips, false) => "mips",
        (Architecture::Mips64, true) => "mips64le",
        (Architecture::Mips64, false) => "mips64",
        (Architecture::LoongArch64, _) => "loong64",
        (Architecture::Sparc64, _) => "sparc64",
        (Architecture::Wasm32, _) => "wasm",
        (other, _) => return format!("{other:?}").to_ascii_lowercase(),
    };
    name.to_owned()
}

fn describe_unknown<'data, R: ReadRef<'data>>(data: R) -> String {
    let len = data.len().unwrap_or(0);
    let head = data.read_bytes_at(0, len.min(4)).unwrap_or_default();
    if head.is_empty() {
        "empty file".into()
    } else if head.starts_with(b"#!") {
        "a script (starts with #!)".into()
    } else if head.starts_with(b"!<ar") {
        "an ar archive (static library)".into()
    } else {
        format!("unrecognised file (first bytes {head:02x?})")
    }
}

fn malformed(format: Format, e: impl std::fmt::Display) -> VerifyError {
    VerifyError::Malformed {
        format: match format {
            Format::Elf => "ELF",
            Format::Macho => "Mach-O",
            Format::Pe => "PE",
        },
        message: e.to_string(),
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
