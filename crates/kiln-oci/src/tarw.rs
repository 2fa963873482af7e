//! A minimal, deterministic tar writer.
//!
//! Headers are built by hand rather than through the `tar` crate because its deterministic mode pins
//! the mtime to a 2006 constant, and reproducible images need `SOURCE_DATE_EPOCH` (or 0). Only what
//! images need is written: directories, regular files and symlinks in ustar format, with a PAX
//! extended header when a name, link target or number does not fit.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;

/// The kind of a tar entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink,
}

/// Metadata of one tar entry.
#[derive(Clone, Debug)]
pub(crate) struct Header<'a> {
    /// Relative path without leading `/` and without trailing `/`.
    pub path: &'a str,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
    pub link: &'a str,
}

/// Writes tar entries to `W`, keeping track of nothing but the stream itself.
pub(crate) struct TarWriter<W: Write> {
    inner: W,
}

impl<W: Write> TarWriter<W> {
    pub fn new(inner: W) -> Self {
        Self { inner }
    }

    /// Writes a header; for files the caller must then write exactly `size` bytes via
    /// [`TarWriter::write_data`].
    pub fn header(&mut self, h: &Header<'_>) -> io::Result<()> {
        let mut name = h.path.to_string();
        if h.kind == Kind::Dir {
            name.push('/');
        }
        let mut pax = Vec::new();
        if name.len() > 100 {
            pax_record(&mut pax, "path", &name);
        }
        if h.link.len() > 100 {
            pax_record(&mut pax, "linkpath", h.link);
        }
        let size = if h.kind == Kind::File { h.size } else { 0 };
        if size > 0o77777777777 {
            pax_record(&mut pax, "size", &size.to_string());
        }
        if h.uid > 0o7777777 {
            pax_record(&mut pax, "uid", &h.uid.to_string());
        }
        if h.gid > 0o7777777 {
            pax_record(&mut pax, "gid", &h.gid.to_string());
        }
        if !pax.is_empty() {
            // The PAX header's own name is informational; derive it from the path so output stays
            // a pure function of the entry.
            let pax_name = format!(
                "PaxHeaders/{}",
                truncate(h.path.rsplit('/').next().unwrap_or(""), 80)
            );
            let block = ustar_block(&pax_name, b'x', 0o644, 0, 0, pax.len() as u64, h.mtime, "");
            self.inner.write_all(&block)?;
            self.write_data(&mut &pax[..], pax.len() as u64)?;
        }
        let type_flag = match h.kind {
            Kind::Dir => b'5',
            Kind::File => b'0',
            Kind::Symlink => b'2',
        };
        let block = ustar_block(
            truncate(&name, 100),
            type_flag,
            h.mode,
            h.uid.min(0o7777777),
            h.gid.min(0o7777777),
            size.min(0o77777777777),
            h.mtime,
            truncate(h.link, 100),
        );
        self.inner.write_all(&block)
    }

    /// Copies exactly `size` bytes of entry data and pads to the block size. Returns the number of
    /// bytes the reader actually yielded (up to `size + 1`) so callers can detect changed files.
    pub fn write_data(&mut self, reader: &mut dyn Read, size: u64) -> io::Result<u64> {
        let copied = io::copy(&mut reader.take(size), &mut self.inner)?;
        if copied < size {
            return Ok(copied);
        }
        // One extra byte tells a file that grew from one that matched.
        let mut probe = [0u8; 1];
        let extra = reader.read(&mut probe)? as u64;
        let pad = (BLOCK - (size as usize % BLOCK)) % BLOCK;
        self.inner.write_all(&[0u8; BLOCK][..pad])?;
        Ok(copied + extra)
    }

    /// Writes the end-of-archive marker and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.inner.write_all(&[0u8; BLOCK * 2])?;
        Ok(self.inner)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &str) {
    // The length prefix counts itself, so find the fixed point.
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}={value}\n").as_bytes());
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

#[allow(clippy::too_many_arguments)]
fn ustar_block(
    name: &str,
    type_flag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: &str,
) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut b[100..108], u64::from(mode));
    octal(&mut b[108..116], uid);
    octal(&mut b[116..124], gid);
    octal(&mut b[124..136], size);
    octal(&mut b[136..148], mtime);
    b[156] = type_flag;
    b[157..157 + link.len()].copy_from_slice(link.as_bytes());
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    // uname/gname stay empty on purpose: names resolve differently per image, ids do not.
    octal(&mut b[329..337], 0);
    octal(&mut b[337..345], 0);
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, "path", &"a".repeat(93));
        let s = String::from_utf8(v).unwrap();
        let (n, _) = s.split_once(' ').unwrap();
        assert_eq!(n.parse::<usize>().unwrap(), s.len());
    }

    #[test]
    fn long_names_round_trip_through_tar_crate() {
        let long = format!("{}/file", "d".repeat(150));
        let mut w = TarWriter::new(Vec::new());
        let data = b"hello";
        let h = Header {
            path: &long,
            kind: Kind::File,
            mode: 0o644,
            uid: 1,
            gid: 2,
            size: 5,
            mtime: 7,
            link: "",
        };
        w.header(&h).unwrap();
        assert_eq!(w.write_data(&mut &data[..], 5).unwrap(), 5);
        let link_target = "t".repeat(120);
        let h = Header {
            path: "l",
            kind: Kind::Symlink,
            mode: 0o777,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 7,
            link: &link_target,
        };
        w.header(&h).unwrap();
        let bytes = w.finish().unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut entries = ar.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str().unwrap(), long);
        assert_eq!(e.header().mtime().unwrap(), 7);
        assert_eq!(e.header().uid().unwrap(), 1);
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        let e = entries.next().unwrap().unwrap();
        assert_eq!(
            e.link_name().unwrap().unwrap().to_str().unwrap(),
            link_target
        );
        assert!(entries.next().is_none());
    }
}
