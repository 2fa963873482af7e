//! What the C side of a cgo build reads beyond the package files kiln hashes: the headers the C
//! compiler includes (system ones, `-I` directories outside the package, pkg-config's) and the
//! objects and libraries the external linker opens.
//!
//! Go's own build cache does not hash these, so a changed `/usr/include/foo.h` or `libfoo.a`
//! would otherwise give the old binary back. kiln asks the C toolchain itself, with the flags go
//! will pass it, every run:
//!
//! - headers: `CC <flags> -M -MG` over each cgo preamble (fed on stdin from the package directory,
//!   where go's quoted includes resolve too) and over the package's C, C++, Objective-C and
//!   assembly files. The preprocessor's answer is the include search as this machine resolves it,
//!   so a header that starts to shadow another changes the list, and with it the key;
//! - link inputs: a trial link of an empty program with every `#cgo LDFLAGS`, pkg-config's
//!   `--libs`, `CGO_LDFLAGS` and `-extldflags`, traced (`-Wl,-t`), which names every crt object,
//!   linker script, archive and shared library the linker would open;
//! - the compiler's own passes (`cc1`, `cc1plus`, `collect2`) and `ld`, which `--version` of the
//!   driver does not pin.
//!
//! Anything the scan cannot answer (a compiler that fails on the flags, pkg-config that does not
//! know a package) is returned as an error, and the caller makes the action uncacheable.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The C compiler invocation for one language of one package.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Compile {
    /// The compiler command, split (`CC` may carry flags: `clang -m32`).
    pub cc: Vec<String>,
    /// Preprocessor and compiler flags in go's order.
    pub flags: Vec<String>,
}

/// The headers `compile` includes from `dir` for the preamble text `stdin` and the `files`
/// (relative to `dir`), as absolute paths. A header the preprocessor cannot find is returned as
/// it was written; it does not exist and is keyed as absent.
pub(crate) fn headers(
    compile: &Compile,
    dir: &Path,
    stdin: Option<(&str, &str)>,
    files: &[String],
    env: &BTreeMap<String, String>,
) -> Result<BTreeSet<PathBuf>, String> {
    let mut found = BTreeSet::new();
    // The preamble (on stdin, `-x` applies to it) and the files (one rule each; the compiler
    // picks each file's language by its extension) take one run each.
    let mut runs: Vec<(Vec<String>, Option<&str>)> = Vec::new();
    if let Some((lang, text)) = stdin {
        runs.push((vec!["-x".into(), lang.into(), "-".into()], Some(text)));
    }
    if !files.is_empty() {
        runs.push((files.to_vec(), None));
    }
    for (input, text) in runs {
        let mut args: Vec<String> = compile.cc[1..].to_vec();
        args.extend(compile.flags.iter().cloned());
        // go compiles every C file of a package with the package directory on the include path.
        args.push("-I".into());
        args.push(dir.display().to_string());
        // `-w`: the preambles of several files share one run, and a warning between them must
        // not become an error under a `-Werror` in the flags.
        args.extend(["-M".into(), "-MG".into(), "-w".into()]);
        args.extend(input);
        let out = run(&compile.cc[0], &args, dir, env, text)?;
        for dep in make_dependencies(&out) {
            let p = PathBuf::from(&dep);
            found.insert(if p.is_absolute() { p } else { dir.join(p) });
        }
    }
    Ok(found)
}

/// Every file the linker opens when `cc` links an empty program with `ldflags`: crt objects,
/// linker scripts, archives and shared libraries, by the path the linker printed.
pub(crate) fn link_inputs(
    cc: &[String],
    ldflags: &[String],
    env: &BTreeMap<String, String>,
) -> Result<BTreeSet<PathBuf>, String> {
    let scratch = tempfile::tempdir().map_err(|e| format!("cannot create a scratch dir: {e}"))?;
    let main = scratch.path().join("main.c");
    std::fs::write(&main, "int main(void) { return 0; }\n")
        .map_err(|e| format!("cannot write {}: {e}", main.display()))?;
    let mut args: Vec<String> = cc[1..].to_vec();
    args.extend([
        "-o".into(),
        scratch.path().join("a.out").display().to_string(),
        main.display().to_string(),
    ]);
    args.extend(ldflags.iter().cloned());
    args.push("-Wl,-t".into());
    let out = run(&cc[0], &args, scratch.path(), env, None)?;
    let opened: BTreeSet<PathBuf> = link_trace(&out)
        .into_iter()
        .filter(|p| !p.starts_with(scratch.path()) && p.is_file())
        .collect();
    if opened.is_empty() {
        return Err(format!(
            "`{} -Wl,-t` named no file the linker opened",
            cc.join(" ")
        ));
    }
    Ok(opened)
}

/// The compiler's own programs that its `--version` does not pin: the passes it runs and the
/// linker, resolved through `-print-prog-name`. Names it cannot resolve are left out (clang runs
/// its passes in-process).
pub(crate) fn passes(cc: &[String], env: &BTreeMap<String, String>) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    for prog in ["cc1", "cc1plus", "collect2", "ld"] {
        let mut args: Vec<String> = cc[1..].to_vec();
        args.push(format!("-print-prog-name={prog}"));
        let Ok(out) = run(&cc[0], &args, Path::new("/"), env, None) else {
            continue;
        };
        let name = out.trim();
        let path = if Path::new(name).is_absolute() {
            Some(PathBuf::from(name))
        } else {
            crate::sources::resolve(name, env.get("PATH").map(String::as_str).unwrap_or(""))
        };
        if let Some(p) = path.filter(|p| p.is_file()) {
            found.insert(p);
        }
    }
    found
}

/// `pkg-config <what> -- <names>` as go runs it, split into flags.
pub(crate) fn pkg_config(
    program: &[String],
    what: &str,
    names: &[String],
    dir: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    let mut args: Vec<String> = program[1..].to_vec();
    args.push(what.into());
    args.push("--".into());
    args.extend(names.iter().cloned());
    let out = run(&program[0], &args, dir, env, None)?;
    split_quoted(&out)
}

fn run(
    program: &str,
    args: &[String],
    dir: &Path,
    env: &BTreeMap<String, String>,
    stdin: Option<&str>,
) -> Result<String, String> {
    let shown = || format!("{program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", shown()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("cannot feed `{}`: {e}", shown()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot run `{}`: {e}", shown()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("").trim();
        return Err(format!("`{}` failed ({}): {first}", shown(), out.status));
    }
    // The linker's trace goes to stdout with GNU ld and to stderr with some others.
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(text)
}

/// The prerequisites of make rules as `-M` prints them (`target: dep dep \` continued lines,
/// `\ ` for a space in a name). Targets are left out.
pub(crate) fn make_dependencies(out: &str) -> Vec<String> {
    let joined = out.replace("\\\n", " ");
    let mut deps = Vec::new();
    for line in joined.lines() {
        // A rule's target ends at the first `: ` (a colon in a Windows drive letter has no
        // space after it).
        let Some(at) = line
            .find(": ")
            .or_else(|| line.strip_suffix(':').map(str::len))
        else {
            continue;
        };
        let mut word = String::new();
        let mut chars = line[at + 1..].chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => {
                    word.push(' ');
                    chars.next();
                }
                ' ' | '\t' => {
                    if !word.is_empty() {
                        deps.push(std::mem::take(&mut word));
                    }
                }
                _ => word.push(c),
            }
        }
        if !word.is_empty() {
            deps.push(word);
        }
    }
    deps
}

/// The files a linker trace (`-t`) names: one per line, an archive member as
/// `archive(member)` or `(archive)member`, some linkers prefixing `-lname (path)`.
pub(crate) fn link_trace(out: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for line in out.lines() {
        let line = line.trim();
        let path = if let Some(open) = line.find('(') {
            let inner = &line[open + 1..];
            let close = inner.find(')').unwrap_or(inner.len());
            if line.starts_with('(') || line.starts_with("-l") {
                &inner[..close]
            } else {
                &line[..open]
            }
        } else {
            line
        };
        if path.starts_with('/') && !path.contains(": ") {
            files.push(PathBuf::from(path));
        }
    }
    files
}

/// The preamble of a cgo file: the comment right before `import "C"` (also when "C" sits in an
/// import group), without `#cgo` lines, which the C compiler never sees. `None` without one.
pub(crate) fn preamble(src: &str) -> Option<String> {
    let lines: Vec<&str> = src.lines().collect();
    let at = lines.iter().position(|l| {
        let t = l.trim();
        let t = t.strip_prefix("import").map(str::trim_start).unwrap_or(t);
        t == "\"C\"" || t.starts_with("\"C\" ") || t.starts_with("\"C\"//")
    })?;
    let mut start = at;
    let mut in_block = false;
    while start > 0 {
        let prev = lines[start - 1].trim();
        if in_block {
            start -= 1;
            if prev.starts_with("/*") {
                in_block = false;
            }
            continue;
        }
        if prev.starts_with("//") {
            start -= 1;
        } else if prev.ends_with("*/") {
            start -= 1;
            in_block = !prev.starts_with("/*");
        } else {
            break;
        }
    }
    if start == at {
        return None;
    }
    let mut text = String::new();
    let mut block = false;
    for l in &lines[start..at] {
        let mut l = *l;
        let t = l.trim_start();
        if !block {
            if let Some(rest) = t.strip_prefix("//") {
                l = rest;
            } else if let Some(rest) = t.strip_prefix("/*") {
                block = true;
                l = rest;
            }
        }
        if block {
            if let Some(end) = l.rfind("*/") {
                l = &l[..end];
                block = false;
            }
        }
        if !l.trim_start().starts_with("#cgo") {
            text.push_str(l);
        }
        text.push('\n');
    }
    Some(text)
}

/// Splits a flag list the way go splits `CGO_*FLAGS` and `CC`: on white space, with single and
/// double quotes grouping.
pub(crate) fn split_quoted(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unterminated quote in `{s}`"));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// The `-extldflags` value inside `-ldflags` arguments, split. go takes the last one.
pub(crate) fn extldflags(args: &[String]) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    for a in args {
        let Some(ld) = a
            .strip_prefix("-ldflags=")
            .or_else(|| a.strip_prefix("--ldflags="))
        else {
            continue;
        };
        let words = split_quoted(ld)?;
        let mut it = words.iter();
        while let Some(w) = it.next() {
            let w = w.trim_start_matches('-');
            if let Some(v) = w.strip_prefix("extldflags=") {
                found = split_quoted(v)?;
            } else if w == "extldflags" {
                found = split_quoted(it.next().map(String::as_str).unwrap_or(""))?;
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_gcc() -> BTreeMap<String, String> {
        let path = std::env::var("PATH").unwrap_or_default();
        assert!(
            crate::sources::resolve("gcc", &path).is_some(),
            "this test needs gcc on PATH: install it (Debian/Ubuntu: apt-get install gcc)"
        );
        BTreeMap::from([("PATH".to_string(), path)])
    }

    #[test]
    fn headers_links_and_passes_come_from_the_real_compiler() {
        let env = real_gcc();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("inc")).unwrap();
        std::fs::write(dir.path().join("inc/a.h"), "#include \"b.h\"\n").unwrap();
        std::fs::write(dir.path().join("inc/b.h"), "").unwrap();
        std::fs::write(dir.path().join("x.c"), "#include \"local.h\"\n").unwrap();
        std::fs::write(dir.path().join("local.h"), "").unwrap();
        let gcc = |flags: Vec<String>| Compile {
            cc: vec!["gcc".into()],
            flags,
        };
        let c = gcc(vec![format!("-I{}", dir.path().join("inc").display())]);
        let preamble = "#include <a.h>\n#include <stdio.h>\n#include \"missing.h\"\n";
        std::fs::write(dir.path().join("y.c"), "#include <inc/b.h>\n").unwrap();
        let found = headers(
            &c,
            dir.path(),
            Some(("c", preamble)),
            &["x.c".into(), "y.c".into()],
            &env,
        )
        .unwrap();
        for want in ["inc/a.h", "inc/b.h", "local.h", "missing.h", "x.c", "y.c"] {
            assert!(found.contains(&dir.path().join(want)), "{want}: {found:?}");
        }
        assert!(found.iter().any(|p| p.ends_with("stdio.h")), "{found:?}");
        let bad = headers(
            &gcc(vec!["--no-such-flag".into()]),
            dir.path(),
            Some(("c", preamble)),
            &[],
            &env,
        );
        assert!(bad.unwrap_err().contains("--no-such-flag"));
        // Two files' preambles in one run may redefine a macro: a warning, never an error.
        let redefined = "#define A 1\n#define A 2\n#include <stdio.h>\n";
        let found = headers(
            &gcc(vec!["-Werror".into()]),
            dir.path(),
            Some(("c", redefined)),
            &[],
            &env,
        )
        .unwrap();
        assert!(found.iter().any(|p| p.ends_with("stdio.h")), "{found:?}");

        let linked = link_inputs(&["gcc".into()], &["-lm".into()], &env).unwrap();
        assert!(
            linked.iter().any(|p| p.to_string_lossy().contains("libm")),
            "{linked:?}"
        );
        assert!(link_inputs(&["gcc".into()], &["-lno_such_library_kiln".into()], &env).is_err());
        let passes = passes(&["gcc".into()], &env);
        assert!(passes.iter().any(|p| p.ends_with("cc1")), "{passes:?}");
    }

    #[test]
    fn make_dependencies_reads_continuations_and_escaped_spaces() {
        let out = "-: /usr/include/stdio.h \\\n /usr/include/features.h x.h \\\n my\\ dir/y.h\n\n";
        assert_eq!(
            make_dependencies(out),
            [
                "/usr/include/stdio.h",
                "/usr/include/features.h",
                "x.h",
                "my dir/y.h"
            ]
        );
        // Two rules (a file compiled with its own target name).
        let out = "a.o: a.c a.h\nb.o: b.c /usr/include/b.h\n";
        assert_eq!(
            make_dependencies(out),
            ["a.c", "a.h", "b.c", "/usr/include/b.h"]
        );
    }

    #[test]
    fn link_trace_names_files_archives_and_members() {
        let out = "/usr/bin/ld: mode elf_x86_64\n\
                   /usr/lib/x86_64-linux-gnu/crti.o\n\
                   /usr/lib/x86_64-linux-gnu/libc_nonshared.a(atexit.oS)\n\
                   (/usr/lib/libfoo.a)foo.o\n\
                   -lm (/usr/lib/libm.so)\n\
                   /tmp/cc123.o\n";
        assert_eq!(
            link_trace(out),
            [
                PathBuf::from("/usr/lib/x86_64-linux-gnu/crti.o"),
                PathBuf::from("/usr/lib/x86_64-linux-gnu/libc_nonshared.a"),
                PathBuf::from("/usr/lib/libfoo.a"),
                PathBuf::from("/usr/lib/libm.so"),
                PathBuf::from("/tmp/cc123.o"),
            ]
        );
    }

    #[test]
    fn preamble_is_the_comment_right_before_import_c() {
        let src = "package p\n\n// #cgo CFLAGS: -I/opt/x\n// #include <zlib.h>\n// #include \"local.h\"\nimport \"C\"\n";
        assert_eq!(
            preamble(src).unwrap(),
            "\n #include <zlib.h>\n #include \"local.h\"\n"
        );
        let src = "package p\n\n/*\n#cgo LDFLAGS: -lz\n#include <zlib.h>\nint f(void) { return 1; }\n*/\nimport \"C\"\n";
        assert_eq!(
            preamble(src).unwrap(),
            "\n\n#include <zlib.h>\nint f(void) { return 1; }\n\n"
        );
        let src = "package p\n\nimport (\n\t\"fmt\"\n\n\t/* #include <a.h> */\n\t\"C\"\n)\n";
        assert_eq!(preamble(src).unwrap(), " #include <a.h> \n");
        // A blank line separates the comment from the import: no preamble.
        assert_eq!(
            preamble("package p\n\n// #include <a.h>\n\nimport \"C\"\n"),
            None
        );
        assert_eq!(preamble("package p\n\nimport \"fmt\"\n"), None);
    }

    #[test]
    fn split_quoted_groups_quotes_and_refuses_an_open_one() {
        assert_eq!(
            split_quoted("  -O2 -I'/a b' \"-DX=1 2\"  -g").unwrap(),
            ["-O2", "-I/a b", "-DX=1 2", "-g"]
        );
        assert_eq!(split_quoted("''").unwrap(), [""]);
        assert!(split_quoted("-I'/a").is_err());
    }

    #[test]
    fn extldflags_is_read_from_either_form() {
        let args = [
            "-trimpath".to_string(),
            "-ldflags=-s -w -extldflags '-static -lm'".into(),
        ];
        assert_eq!(extldflags(&args).unwrap(), ["-static", "-lm"]);
        let args = ["-ldflags=-extldflags=-static".to_string()];
        assert_eq!(extldflags(&args).unwrap(), ["-static"]);
        assert!(extldflags(&["-ldflags=-s".to_string()]).unwrap().is_empty());
    }
}
