//! What "as static as Go makes it" means on each GOOS.
//!
//! On Linux and most BSDs a `CGO_ENABLED=0` Go binary makes system calls itself: no interpreter, no
//! shared libraries. Elsewhere the OS only supports system calls through its own libraries, so the Go
//! runtime and standard library link them even without cgo (`//go:cgo_import_dynamic` in
//! `runtime/sys_openbsd.go`, `internal/poll/sendfile_solaris.go`, `runtime/sys_darwin.go`, ...).
//! The lists below are what `GOOS=x CGO_ENABLED=0 go build` of a program using `net/http` and
//! `os/user` links (checked with Go 1.26): a binary that needs exactly these still runs on any
//! installation of that OS, so it is as static as it can be there.

/// The system libraries Go links on one GOOS even with `CGO_ENABLED=0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemLinking {
    /// Go links nothing: a static binary has no interpreter and no shared libraries
    /// (linux, android, freebsd, netbsd, dragonfly, plan9, ...).
    None,
    /// darwin and ios: `/usr/lib/dyld`, libraries under `/usr/lib/` and `/System/Library/`
    /// (libSystem, libresolv, CoreFoundation, Security).
    Darwin,
    /// windows: no loader path, the core system DLLs and `api-ms-win-*` API sets.
    Windows,
    /// openbsd: `/usr/libexec/ld.so`, `libc.so` and `libpthread.so` (unversioned, as Go names them).
    OpenBsd,
    /// solaris and illumos: `/lib/amd64/ld.so.1`, `libc.so`, `libsocket.so`, `libsendfile.so`.
    Solaris,
}

impl SystemLinking {
    /// The rule for `goos` (Go's spelling).
    pub fn for_goos(goos: &str) -> Self {
        match goos {
            "darwin" | "ios" => SystemLinking::Darwin,
            "windows" => SystemLinking::Windows,
            "openbsd" => SystemLinking::OpenBsd,
            "solaris" | "illumos" => SystemLinking::Solaris,
            _ => SystemLinking::None,
        }
    }

    /// Whether the dynamic loader `path` is the one the OS provides for every Go binary.
    pub fn allows_interpreter(self, path: &str) -> bool {
        match self {
            SystemLinking::None | SystemLinking::Windows => false,
            SystemLinking::Darwin => path == "/usr/lib/dyld",
            SystemLinking::OpenBsd => path == "/usr/libexec/ld.so",
            SystemLinking::Solaris => {
                matches!(path, "/lib/amd64/ld.so.1" | "/usr/lib/amd64/ld.so.1")
            }
        }
    }

    /// Whether the shared library `lib` ships with the OS, as Go itself links it.
    pub fn allows_library(self, lib: &str) -> bool {
        match self {
            SystemLinking::None => false,
            SystemLinking::Darwin => {
                lib.starts_with("/usr/lib/") || lib.starts_with("/System/Library/")
            }
            SystemLinking::Windows => {
                let lower = lib.to_ascii_lowercase();
                lower.starts_with("api-ms-win-")
                    || lower.starts_with("ext-ms-win-")
                    || WINDOWS_SYSTEM_DLLS.contains(&lower.as_str())
            }
            SystemLinking::OpenBsd => matches!(lib, "libc.so" | "libpthread.so"),
            SystemLinking::Solaris => {
                matches!(lib, "libc.so" | "libsocket.so" | "libsendfile.so")
            }
        }
    }
}

/// Whether `lib` is a system library on `goos` that Go links itself, so needing it does not make
/// a binary less static than Go makes it there (always false on linux and the other BSDs).
pub fn is_system_library(goos: &str, lib: &str) -> bool {
    SystemLinking::for_goos(goos).allows_library(lib)
}

const WINDOWS_SYSTEM_DLLS: &[&str] = &[
    "advapi32.dll",
    "authz.dll",
    "bcrypt.dll",
    "bcryptprimitives.dll",
    "cfgmgr32.dll",
    "comctl32.dll",
    "comdlg32.dll",
    "crypt32.dll",
    "dbghelp.dll",
    "dnsapi.dll",
    "dwmapi.dll",
    "gdi32.dll",
    "imm32.dll",
    "iphlpapi.dll",
    "kernel32.dll",
    "kernelbase.dll",
    "mpr.dll",
    "msvcrt.dll",
    "mswsock.dll",
    "ncrypt.dll",
    "netapi32.dll",
    "ntdll.dll",
    "ole32.dll",
    "oleaut32.dll",
    "powrprof.dll",
    "psapi.dll",
    "rpcrt4.dll",
    "secur32.dll",
    "setupapi.dll",
    "shell32.dll",
    "shlwapi.dll",
    "ucrtbase.dll",
    "user32.dll",
    "userenv.dll",
    "uxtheme.dll",
    "version.dll",
    "winhttp.dll",
    "wininet.dll",
    "winmm.dll",
    "wintrust.dll",
    "ws2_32.dll",
    "wtsapi32.dll",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_9_each_goos_allows_only_what_go_links() {
        let openbsd = SystemLinking::for_goos("openbsd");
        assert!(openbsd.allows_interpreter("/usr/libexec/ld.so"));
        assert!(openbsd.allows_library("libc.so") && openbsd.allows_library("libpthread.so"));
        assert!(
            !openbsd.allows_library("libc.so.97.1"),
            "versioned: linked by cgo"
        );
        assert!(!openbsd.allows_library("libsqlite3.so"));
        let solaris = SystemLinking::for_goos("illumos");
        assert!(solaris.allows_interpreter("/lib/amd64/ld.so.1"));
        assert!(solaris.allows_library("libsendfile.so"));
        assert!(SystemLinking::for_goos("ios").allows_interpreter("/usr/lib/dyld"));
        assert!(!SystemLinking::for_goos("darwin").allows_library("/opt/homebrew/lib/libz.dylib"));
        assert!(is_system_library("windows", "KERNEL32.dll"));
        for goos in ["linux", "freebsd", "netbsd", "dragonfly", "android"] {
            let rule = SystemLinking::for_goos(goos);
            assert_eq!(rule, SystemLinking::None);
            assert!(
                !rule.allows_library("libc.so") && !rule.allows_interpreter("/usr/libexec/ld.so")
            );
        }
    }
}
