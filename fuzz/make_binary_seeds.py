#!/usr/bin/env python3
"""Writes the small executables in seeds/binary/ that the `binary` fuzz target starts from.

Real Go binaries are over 1 MB, far above the 64 KiB the target is fuzzed with, and a truncated
one loses its section headers and build info. So the seeds are minimal, well-formed ELF, Mach-O
and PE files (a few hundred bytes each) that carry what kiln-verify reads in a real Go binary:
program headers, an interpreter and DT_NEEDED, Mach-O load commands, a PE import table, and the
Go build info in both layouts (inline strings since Go 1.18, pointers before), with the module
info text of a real `go build` (pass a Go binary to copy its build info blob byte for byte).

    python3 fuzz/make_binary_seeds.py [GO_BINARY]

Also writes the first 4 KiB of GO_BINARY, when given, as a seed: real headers, cut short.
"""

import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "binary")
MAGIC = b"\xff Go buildinf:"
SENTINEL_START = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6"
SENTINEL_END = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2"


def modinfo(goos, goarch, cgo):
    lines = [
        "path\texample.com/hello",
        "mod\texample.com/hello\t(devel)\t",
        "dep\tgolang.org/x/sys\tv0.30.0\th1:QT4YjXjvfpGyqCkz8vF3Ex8tKfcC6Pje5j6l+4GmWlY=",
        "dep\texample.com/old\tv1.0.0",
        "=>\t../old\t",
        "build\t-buildmode=exe",
        "build\t-compiler=gc",
        'build\t-ldflags="-s -w -buildid="',
        "build\t-trimpath=true",
        f"build\tCGO_ENABLED={1 if cgo else 0}",
        f"build\tGOARCH={goarch}",
        f"build\tGOOS={goos}",
        'build\t"weird key"="quoted\\tvalue \\u00e9"',
    ]
    return SENTINEL_START + ("\n".join(lines) + "\n").encode() + SENTINEL_END


def uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def inline_blob(version, info):
    header = MAGIC + bytes([8, 0x2]) + bytes(16)
    return header + uvarint(len(version)) + version + uvarint(len(info)) + info


def real_blob(path):
    """The inline build info blob of a real Go binary, exactly as its linker wrote it."""
    data = open(path, "rb").read()
    i = data.find(MAGIC)
    while i >= 0 and i % 16:
        i = data.find(MAGIC, i + 1)
    if i < 0 or not data[i + 15] & 0x2:
        sys.exit(f"{path}: no inline Go build info")
    end = i + 32
    for _ in range(2):
        n, shift, used = 0, 0, 0
        while True:
            b = data[end + used]
            n |= (b & 0x7F) << shift
            shift += 7
            used += 1
            if b < 0x80:
                break
        end += used + n
    return data[i:end]


def pad(buf, align):
    buf.extend(bytes(-len(buf) % align))


class Elf:
    """A minimal ELF executable: one text and one data PT_LOAD, optional dynamic linking."""

    def __init__(self, bits, big, machine, osabi=0):
        self.bits, self.big, self.machine, self.osabi = bits, big, machine, osabi
        self.e = ">" if big else "<"

    def addr_fmt(self):
        return "Q" if self.bits == 64 else "I"

    def build(self, blob_at_data, *, e_type=2, interp=None, needed=(), pie_flag=False,
              sections=True, symtab=False, pointer_format=None):
        e, w = self.e, self.addr_fmt()
        ehsize = 64 if self.bits == 64 else 52
        phentsize = 56 if self.bits == 64 else 32
        shentsize = 64 if self.bits == 64 else 40
        base = 0x400000
        dynamic = bool(interp or needed or pie_flag)
        nph = 2 + (1 if interp else 0) + (1 if dynamic else 0)
        body = bytearray(bytes(ehsize + phentsize * nph))
        text_off = len(body)
        body += b"\xc3" * 16
        pad(body, 64)
        data_off = len(body)

        def vaddr(off):
            return base + off

        bi_off = len(body)
        if pointer_format:
            # Go < 1.18: the header holds addresses of two Go string headers (ptr, len).
            psize = self.bits // 8
            version, info = pointer_format
            strings_at = bi_off + 32 + 4 * psize
            ver_hdr, info_hdr = bi_off + 32, bi_off + 32 + 2 * psize
            head = MAGIC + bytes([psize, 0x1 if self.big else 0x0])
            head += struct.pack(e + w * 2, vaddr(ver_hdr), vaddr(info_hdr))
            head += bytes(32 - len(head))
            hdrs = struct.pack(e + w * 4, vaddr(strings_at), len(version),
                               vaddr(strings_at + len(version)), len(info))
            body += head + hdrs + version + info
        else:
            body += blob_at_data
        bi_len = len(body) - bi_off
        pad(body, 8)

        strtab_off = strtab_len = dyn_off = dyn_len = interp_off = 0
        if dynamic:
            strtab = bytearray(b"\0")
            needed_offs = []
            for lib in needed:
                needed_offs.append(len(strtab))
                strtab += lib.encode() + b"\0"
            strtab_off, strtab_len = len(body), len(strtab)
            body += strtab
            pad(body, 8)
            dyn_off = len(body)
            entries = [(1, o) for o in needed_offs]  # DT_NEEDED
            entries += [(5, vaddr(strtab_off)), (10, strtab_len)]  # DT_STRTAB, DT_STRSZ
            if pie_flag:
                entries.append((0x6FFFFFFB, 0x08000000))  # DT_FLAGS_1 = DF_1_PIE
            entries.append((0, 0))
            for tag, val in entries:
                body += struct.pack(e + w * 2, tag, val)
            dyn_len = len(body) - dyn_off
        if interp:
            interp_off = len(body)
            body += interp.encode() + b"\0"
        data_end = len(body)

        shdrs = []
        shoff = 0
        if sections:
            shstr = bytearray(b"\0")

            def name(s):
                off = len(shstr)
                shstr.extend(s.encode() + b"\0")
                return off

            secs = [(0, 0, 0, 0, 0, 0, 0, 0, 0)]
            # (name, type, flags, addr, offset, size, link, align, entsize)
            secs.append((name(".text"), 1, 6, vaddr(text_off), text_off, 16, 0, 16, 0))
            secs.append((name(".go.buildinfo"), 1, 3, vaddr(bi_off), bi_off, bi_len, 0, 16, 0))
            if dynamic:
                secs.append((name(".dynstr"), 3, 2, vaddr(strtab_off), strtab_off, strtab_len, 0, 1, 0))
                secs.append((name(".dynamic"), 6, 3, vaddr(dyn_off), dyn_off, dyn_len,
                             len(secs) - 1, 8, 16 if self.bits == 64 else 8))
            if symtab:
                symstr = b"\0main.main\0"
                symstr_off = len(body)
                body += symstr
                pad(body, 8)
                sym_off = len(body)
                if self.bits == 64:
                    body += bytes(24) + struct.pack(e + "IBBHQQ", 1, 0x12, 0, 1, vaddr(text_off), 1)
                    entsize = 24
                else:
                    body += bytes(16) + struct.pack(e + "IIIBBH", 1, vaddr(text_off), 1, 0x12, 0, 1)
                    entsize = 16
                secs.append((name(".strtab"), 3, 0, 0, symstr_off, len(symstr), 0, 1, 0))
                secs.append((name(".symtab"), 2, 0, 0, sym_off, 2 * entsize, len(secs) - 1, 8, entsize))
            shstrndx = len(secs)
            shstr_name = name(".shstrtab")
            shstr_off = len(body)
            body += shstr
            secs.append((shstr_name, 3, 0, 0, shstr_off, len(shstr), 0, 1, 0))
            pad(body, 8)
            shoff = len(body)
            for nm, typ, flags, addr, off, size, link, align, entsize in secs:
                if self.bits == 64:
                    body += struct.pack(e + "IIQQQQIIQQ", nm, typ, flags, addr, off, size, link, 0,
                                        align, entsize)
                else:
                    body += struct.pack(e + "IIIIIIIIII", nm, typ, flags, addr, off, size, link, 0,
                                        align, entsize)
            shdrs = secs
        else:
            shstrndx = 0

        ident = b"\x7fELF" + bytes([2 if self.bits == 64 else 1, 2 if self.big else 1, 1,
                                    self.osabi]) + bytes(8)
        entry = vaddr(text_off)
        hdr = ident + struct.pack(e + "HHI" + w + w + w + "IHHHHHH", e_type, self.machine, 1,
                                  entry, ehsize, shoff, 0, ehsize, phentsize, nph, shentsize,
                                  len(shdrs), shstrndx)
        body[:ehsize] = hdr
        phs = []
        if interp:
            phs.append((3, 4, interp_off, len(interp) + 1, 1))  # PT_INTERP
        phs.append((1, 5, 0, text_off + 16, 0x1000))  # PT_LOAD r-x
        phs.append((1, 6, data_off, data_end - data_off, 0x1000))  # PT_LOAD rw-
        if dynamic:
            phs.append((2, 6, dyn_off, dyn_len, 8))  # PT_DYNAMIC
        at = ehsize
        for typ, flags, off, size, align in phs:
            if self.bits == 64:
                ph = struct.pack(e + "IIQQQQQQ", typ, flags, off, vaddr(off), vaddr(off), size,
                                 size, align)
            else:
                ph = struct.pack(e + "IIIIIIII", typ, off, vaddr(off), vaddr(off), size, size,
                                 flags, align)
            body[at:at + phentsize] = ph
            at += phentsize
        return bytes(body)


def macho64(blob, cputype, dylibs):
    """MH_EXECUTE with __TEXT, __DATA (holding __go_buildinfo), LC_LOAD_DYLINKER and dylibs."""
    e = "<"
    cmds = []
    text_cmd_size = 72
    data_cmd_size = 72 + 80
    dylinker = b"/usr/lib/dyld\0"
    dylinker_cmd = struct.pack(e + "III", 0xE, 12 + len(dylinker) + (-(12 + len(dylinker)) % 8), 12)
    dylinker_cmd += dylinker + bytes(-(12 + len(dylinker)) % 8)
    dylib_cmds = []
    for lib in dylibs:
        name = lib.encode() + b"\0"
        size = 24 + len(name)
        size += -size % 8
        dylib_cmds.append(struct.pack(e + "IIIIII", 0xC, size, 24, 2, 0x10000, 0x10000)
                          + name + bytes(size - 24 - len(name)))
    sizeofcmds = text_cmd_size + data_cmd_size + len(dylinker_cmd) + sum(map(len, dylib_cmds))
    header_len = 32 + sizeofcmds
    text_off = header_len + (-header_len % 16)
    data_off = 0x400
    vm = 0x100000000
    body = bytearray(bytes(data_off))
    body[text_off:text_off + 4] = b"\xc0\x03\x5f\xd6"
    body += blob
    pad(body, 16)
    data_size = len(body) - data_off
    cmds.append(struct.pack(e + "II16sQQQQiiII", 0x19, text_cmd_size, b"__TEXT", vm, 0x1000, 0,
                            0x1000, 5, 5, 0, 0))
    cmds.append(struct.pack(e + "II16sQQQQiiII", 0x19, data_cmd_size, b"__DATA", vm + data_off,
                            data_size, data_off, data_size, 3, 3, 1, 0)
                + struct.pack(e + "16s16sQQIIIIIIII", b"__go_buildinfo", b"__DATA", vm + data_off,
                              len(blob), data_off, 4, 0, 0, 0, 0, 0, 0))
    cmds.append(dylinker_cmd)
    cmds.extend(dylib_cmds)
    hdr = struct.pack(e + "IiiIIIII", 0xFEEDFACF, cputype, 0, 2, len(cmds), sizeofcmds,
                      0x00200085, 0)  # MH_EXECUTE; NOUNDEFS|DYLDLINK|TWOLEVEL|PIE
    out = hdr + b"".join(cmds)
    body[:len(out)] = out
    return bytes(body)


def pe(blob, plus, machine, imports):
    """A PE image with .text and .data (the build info), and an import table for `imports`."""
    e = "<"
    file_align = sect_align = 0x200
    nsect = 2 + (1 if imports else 0)
    opt_size = 240 if plus else 224
    headers = 0x40 + 4 + 20 + opt_size + 40 * nsect
    headers += -headers % file_align
    text_rva = text_off = headers
    data_rva = data_off = text_off + file_align
    body = bytearray(bytes(headers))
    body += b"\xc3" + bytes(file_align - 1)
    body += blob
    pad(body, file_align)
    data_size = len(body) - data_off
    idata_rva = idata_off = len(body)
    idata = bytearray()
    import_dir = (0, 0)
    if imports:
        # descriptors, then for each DLL an empty lookup table and its name
        ndesc = len(imports) + 1
        names_at = 20 * ndesc
        lookup_at = names_at
        name_blobs = bytearray()
        descs = bytearray()
        for i, dll in enumerate(imports):
            thunk_rva = idata_rva + lookup_at + len(name_blobs)
            name_blobs += bytes(8 if plus else 4)
            name_rva = idata_rva + lookup_at + len(name_blobs)
            name_blobs += dll.encode() + b"\0"
            pad(name_blobs, 2)
            descs += struct.pack(e + "IIIII", thunk_rva, 0, 0, name_rva, thunk_rva)
        descs += bytes(20)
        idata = descs + name_blobs
        import_dir = (idata_rva, len(idata))
        body += idata
        pad(body, file_align)
    image_size = len(body)
    dos = b"MZ" + bytes(0x3A) + struct.pack(e + "I", 0x40)
    coff = struct.pack(e + "HHIIIHH", machine, nsect, 0, 0, 0, opt_size, 0x0022 if plus else 0x0102)
    dirs = [(0, 0)] * 16
    dirs[1] = import_dir
    if plus:
        opt = struct.pack(e + "HBBIIIII", 0x20B, 3, 0, file_align, data_size, 0, text_rva, text_rva)
        opt += struct.pack(e + "QIIHHHHHHIIIIHHQQQQII", 0x140000000, sect_align, file_align, 6, 1,
                           0, 0, 6, 1, 0, image_size, headers, 0, 3, 0x8160, 0x100000, 0x1000,
                           0x100000, 0x1000, 0, 16)
    else:
        opt = struct.pack(e + "HBBIIIIII", 0x10B, 3, 0, file_align, data_size, 0, text_rva,
                          text_rva, data_rva)
        opt += struct.pack(e + "IIIHHHHHHIIIIHHIIIIII", 0x400000, sect_align, file_align, 6, 1,
                           0, 0, 6, 1, 0, image_size, headers, 0, 3, 0x8140, 0x100000, 0x1000,
                           0x100000, 0x1000, 0, 16)
    opt += b"".join(struct.pack(e + "II", *d) for d in dirs)
    sects = struct.pack(e + "8sIIIIIIHHI", b".text", file_align, text_rva, file_align, text_off,
                        0, 0, 0, 0, 0x60000020)
    sects += struct.pack(e + "8sIIIIIIHHI", b".data", data_size, data_rva, data_size, data_off,
                         0, 0, 0, 0, 0xC0000040)
    if imports:
        sects += struct.pack(e + "8sIIIIIIHHI", b".idata", len(idata), idata_rva,
                             image_size - idata_off, idata_off, 0, 0, 0, 0, 0xC0000040)
    out = dos + b"PE\0\0" + coff + opt + sects
    body[:len(out)] = out
    return bytes(body)


def main():
    os.makedirs(OUT, exist_ok=True)
    real = sys.argv[1] if len(sys.argv) > 1 else None
    version = b"go1.26.8"
    blob = lambda goos, arch, cgo=False: inline_blob(version, modinfo(goos, arch, cgo))
    amd64 = Elf(64, False, 62)
    seeds = {
        "elf64-static": amd64.build(real_blob(real) if real else blob("linux", "amd64")),
        "elf64-static-symtab": amd64.build(blob("linux", "amd64"), symtab=True),
        "elf64-no-sections": amd64.build(blob("linux", "amd64"), sections=False),
        "elf64-dynamic": amd64.build(blob("linux", "amd64", True), e_type=3,
                                     interp="/lib64/ld-linux-x86-64.so.2",
                                     needed=("libc.so.6", "libpthread.so.0"), pie_flag=True),
        "elf64-static-pie": amd64.build(blob("linux", "amd64"), e_type=3, pie_flag=True),
        "elf64-freebsd-arm64": Elf(64, False, 183, osabi=9).build(blob("freebsd", "arm64")),
        "elf32-386-pointers": Elf(32, False, 3).build(
            b"", pointer_format=(b"go1.17.13", modinfo("linux", "386", False))),
        "elf64-ppc64-be-pointers": Elf(64, True, 21).build(
            b"", pointer_format=(b"go1.16", modinfo("linux", "ppc64", False))),
        "macho64-arm64": macho64(blob("darwin", "arm64"), 0x0100000C,
                                 ["/usr/lib/libSystem.B.dylib"]),
        "macho64-amd64-cgo": macho64(blob("darwin", "amd64", True), 0x01000007,
                                     ["/usr/lib/libSystem.B.dylib", "@rpath/libfoo.dylib"]),
        "pe32plus-amd64": pe(blob("windows", "amd64"), True, 0x8664,
                             ["kernel32.dll", "api-ms-win-core-synch-l1-2-0.dll"]),
        "pe32-386-cgo": pe(blob("windows", "386", True), False, 0x14C,
                           ["KERNEL32.dll", "libgcc_s_dw2-1.dll"]),
        "modinfo.txt": modinfo("linux", "amd64", False),
    }
    if real:
        seeds["real-go-head"] = open(real, "rb").read()[:4096]
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
