//! Rules about `go build` invocations: where they run, with which environment and flags.

use super::builder::{
    effective_gocache, go_version, image_has_c_compiler, installs_c_compiler, installs_go,
    is_alpine, mount_covers, runs_as_root_by_default, EffectiveCache, GoVersion,
    CGO_NEEDS_COMPILER, S_IMPLIES_W,
};
use super::Ctx;
use crate::ast::{Args, Dockerfile, ImageRef, Instruction};
use crate::parser::{arg_pairs, env_pairs};
use crate::shell::{commands, split_words};
use std::collections::{BTreeMap, BTreeSet};

/// One `go build`/`go install` found in a RUN instruction.
#[derive(Debug, Clone, Default)]
pub(crate) struct GoBuild {
    /// Instruction index.
    pub ins: usize,
    /// Stage index.
    pub stage: usize,
    /// Index of the stage whose FROM names the image this build runs in (after `FROM <stage>`
    /// links).
    pub root_stage: usize,
    /// `CGO_ENABLED` as set for the build (ENV, ARG, export, prefix, `go env -w`), if it is.
    pub cgo: Option<String>,
    /// An earlier command of the stage (or its parents) installed a C compiler.
    pub c_compiler_installed: bool,
    pub static_extld: bool,
    pub trimpath: bool,
    pub strip_s: bool,
    pub strip_w: bool,
    /// `-w=0` / `-w=false`: DWARF kept even with `-s`.
    pub keep_dwarf: bool,
    pub force_all: bool,
    pub vendor: bool,
    /// Where the go command puts its build cache for this build.
    pub gocache: EffectiveCache,
    /// How many `--mount=type=cache` flags the RUN has, and the first one's target (for
    /// messages; the list itself is not copied into every build of a RUN).
    pub mounts: (usize, Option<String>),
    /// Whether one of them holds the effective GOCACHE (`None`: the directory is not known).
    pub gocache_mounted: Option<bool>,
    /// The stage has a Go toolchain (see [`Env::go_toolchain`]).
    pub go_toolchain: bool,
    /// For a step kiln-lint cannot see into (`make build`, `./build.sh`): the command. Only the
    /// environment (GOFLAGS, CGO_ENABLED, GOCACHE) is known for it, not its flags.
    pub opaque: Option<String>,
}

/// The scripts a RUN executes: its shell text and, when the command is a heredoc fed to a shell,
/// the heredoc bodies.
pub(crate) fn run_scripts(ins: &Instruction) -> Vec<String> {
    let mut out = vec![];
    let text = match &ins.args {
        Args::Shell(s) => s.clone(),
        Args::Exec(v) => {
            // ["sh", "-c", "script"] runs the script; other exec forms are one command.
            match v.iter().position(|a| a == "-c") {
                Some(p) if p + 1 < v.len() => v[p + 1].clone(),
                _ => v.join(" "),
            }
        }
    };
    let first = text.split_whitespace().next().unwrap_or("");
    let feeds_shell = first.starts_with("<<")
        || matches!(
            first.rsplit('/').next(),
            Some("sh" | "bash" | "ash" | "dash")
        );
    out.push(text);
    if feeds_shell {
        out.extend(ins.heredocs.iter().map(|h| h.content.clone()));
    }
    out
}

/// Targets of the instruction's `--mount=type=cache` flags.
pub(crate) fn cache_targets(ins: &Instruction) -> Vec<String> {
    ins.flags_named("mount")
        .map(|f| f.kv_pairs())
        .filter(|kv| kv.get("type").map(String::as_str) == Some("cache"))
        .filter_map(|kv| {
            kv.get("target")
                .or_else(|| kv.get("dst"))
                .or_else(|| kv.get("destination"))
                .cloned()
        })
        .map(|t| t.trim_end_matches('/').to_string())
        .collect()
}

/// The variables the build rules read. Only these are tracked through ENV, ARG, `export` and
/// prefix assignments: copying every variable into every RUN's environment made a file with many
/// ENV and RUN lines quadratic.
const TRACKED: &[&str] = &[
    "CGO_ENABLED",
    "GOCACHE",
    "GOFLAGS",
    "HOME",
    "XDG_CACHE_HOME",
];

/// What a stage has set up so far that matters to `go build`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    /// The tracked variables.
    pub vars: BTreeMap<String, String>,
    /// The last `USER`, if any.
    pub user: Option<String>,
    /// A RUN installed a C compiler.
    pub c_compiler: bool,
    /// The stage has a Go toolchain: a golang image, a package install of Go, or a `go` command
    /// seen earlier.
    pub go_toolchain: bool,
}

impl Env {
    fn set(&mut self, k: &str, v: &str) {
        if TRACKED.contains(&k) {
            self.vars.insert(k.to_string(), v.to_string());
        }
    }
}

/// Applies an ENV, ARG or USER instruction (ARG without a value takes the global default).
fn apply_env_instruction(df: &Dockerfile, ins: &Instruction, env: &mut Env) {
    match ins.keyword.as_str() {
        "ENV" => {
            for (k, v) in env_pairs(&ins.args.text()).unwrap_or_default() {
                env.set(&k, &v);
            }
        }
        "ARG" => {
            for (k, v) in arg_pairs(&ins.args.text()).unwrap_or_default() {
                let v = v.or_else(|| df.global_args.get(&k).cloned().flatten());
                if let Some(v) = v {
                    env.set(&k, &v);
                }
            }
        }
        "USER" => env.user = Some(ins.args.text().trim().to_string()),
        _ => {}
    }
}

/// Finds every `go build` / `go install` in every stage.
///
/// The environment is carried forward instruction by instruction, and a stage starts from the
/// environment its parent stage ended with, so every instruction is looked at once.
pub(crate) fn find_builds(df: &Dockerfile) -> Vec<GoBuild> {
    let mut out = vec![];
    // Parents always come earlier in the file, so their end state is known when a child starts.
    let mut end_env: Vec<Env> = Vec::with_capacity(df.stages.len());
    // The stage holding each stage's root image, found through the parent's entry: walking the
    // lineage per stage made a long chain of `FROM <stage>` quadratic.
    let mut roots: Vec<usize> = Vec::with_capacity(df.stages.len());
    for stage in &df.stages {
        let root_stage = stage
            .parent_stage
            .and_then(|p| roots.get(p).copied())
            .unwrap_or(stage.index);
        roots.push(root_stage);
        let mut env = stage
            .parent_stage
            .and_then(|p| end_env.get(p))
            .cloned()
            .unwrap_or_default();
        let root = df.stages[root_stage].image();
        let root_default = runs_as_root_by_default(&root);
        env.go_toolchain |= root.short_name() == "golang";
        for &idx in &stage.instructions {
            crate::work::tick(1);
            let ins = &df.instructions[idx];
            if ins.keyword != "RUN" {
                apply_env_instruction(df, ins, &mut env);
                continue;
            }
            let mounts: BTreeSet<String> = cache_targets(ins).into_iter().collect();
            for script in run_scripts(ins) {
                let mut script_env = env.clone();
                for words in commands(&script) {
                    crate::work::tick(1);
                    let found = Found {
                        idx,
                        stage: stage.index,
                        root_stage,
                        mounts: &mounts,
                        root_default,
                    };
                    scan_command(&words, &mut script_env, &found, &mut out);
                }
                // Variables die with the RUN's shell; an installed compiler stays in the image.
                env.c_compiler |= script_env.c_compiler;
            }
        }
        end_env.push(env);
    }
    out
}

/// Where a command was found.
struct Found<'a> {
    idx: usize,
    stage: usize,
    root_stage: usize,
    /// Targets of the RUN's cache mounts.
    mounts: &'a BTreeSet<String>,
    /// Whether the stage's image runs as root without a USER.
    root_default: Option<bool>,
}

fn is_assignment(w: &str) -> bool {
    w.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn scan_command(words: &[String], env: &mut Env, at: &Found<'_>, out: &mut Vec<GoBuild>) {
    let mut local = env.vars.clone();
    let mut i = 0;
    // `export A=1` lasts for the rest of the script; `A=1 cmd` and `env A=1 cmd` for one command.
    if words.first().map(String::as_str) == Some("export") {
        for w in &words[1..] {
            if let Some((k, v)) = w.split_once('=') {
                env.set(k, v);
            }
        }
        return;
    }
    if installs_c_compiler(words) {
        env.c_compiler = true;
    }
    if installs_go(words) {
        env.go_toolchain = true;
    }
    while i < words.len() && (is_assignment(&words[i]) || words[i] == "env") {
        if let Some((k, v)) = words[i].split_once('=') {
            if TRACKED.contains(&k) {
                local.insert(k.to_string(), v.to_string());
            }
        }
        i += 1;
    }
    if i == words.len() {
        // Bare assignments persist in the shell.
        env.vars.extend(local);
        return;
    }
    let cmd = &words[i..];
    let is_go = cmd[0].rsplit('/').next() == Some("go");
    let new_build = |env: &Env, local: &BTreeMap<String, String>| {
        let gocache = effective_gocache(local, env.user.as_deref(), at.root_default);
        GoBuild {
            ins: at.idx,
            stage: at.stage,
            root_stage: at.root_stage,
            cgo: local.get("CGO_ENABLED").filter(|v| !v.is_empty()).cloned(),
            c_compiler_installed: env.c_compiler,
            mounts: (at.mounts.len(), at.mounts.first().cloned()),
            gocache_mounted: gocache.path.as_deref().map(|d| mount_covers(at.mounts, d)),
            gocache,
            go_toolchain: env.go_toolchain,
            ..GoBuild::default()
        }
    };
    if !is_go && is_opaque_build(cmd) {
        let mut b = new_build(env, &local);
        if let Some(goflags) = local.get("GOFLAGS") {
            let words: Vec<String> = goflags.split_whitespace().map(str::to_string).collect();
            apply_flags(&words, &mut b);
        }
        b.opaque = Some(shorten(&cmd.join(" ")));
        out.push(b);
        return;
    }
    if !is_go || cmd.len() < 2 {
        return;
    }
    env.go_toolchain = true;
    if cmd[1] == "env" && cmd.get(2).map(String::as_str) == Some("-w") {
        for w in &cmd[3..] {
            if let Some((k, v)) = w.split_once('=') {
                env.set(k, v);
            }
        }
        return;
    }
    if cmd[1] != "build" && cmd[1] != "install" {
        return;
    }
    let mut b = new_build(env, &local);
    if let Some(goflags) = local.get("GOFLAGS") {
        let words: Vec<String> = goflags.split_whitespace().map(str::to_string).collect();
        apply_flags(&words, &mut b);
    }
    apply_flags(&cmd[2..], &mut b);
    out.push(b);
}

/// Build drivers whose `go build` flags are written in another file.
const BUILD_DRIVERS: &[&str] = &[
    "make",
    "gmake",
    "mage",
    "task",
    "just",
    "goreleaser",
    "bazel",
    "bazelisk",
];

/// Whether a command runs a build kiln-lint cannot see into: a build driver (`make build`,
/// `goreleaser build`) or a script (`./build.sh`, `sh scripts/build.sh`, `scripts/build`).
fn is_opaque_build(cmd: &[String]) -> bool {
    let first = cmd[0].as_str();
    let base = first.rsplit('/').next().unwrap_or(first);
    if BUILD_DRIVERS.contains(&base) {
        return true;
    }
    if matches!(base, "sh" | "bash" | "ash" | "dash") {
        // `sh script.sh` runs a file; `sh -c '...'` and a bare `sh` do not name one.
        return cmd
            .get(1)
            .is_some_and(|a| !a.starts_with('-') && !a.is_empty());
    }
    // A relative path (`./build.sh`, `scripts/build`) or any `*.sh` is a script of the project.
    // Absolute paths are installed tools (`/usr/local/go/bin/go`, `/bin/true`).
    first.ends_with(".sh")
        || (first.contains('/') && !first.starts_with('/') && !first.starts_with('$'))
}

/// Flags of `go build` that take a separate value.
const VALUE_FLAGS: &[&str] = &[
    "o",
    "p",
    "C",
    "tags",
    "gcflags",
    "asmflags",
    "buildmode",
    "compiler",
    "gccgoflags",
    "installsuffix",
    "mod",
    "modfile",
    "overlay",
    "pgo",
    "pkgdir",
    "toolexec",
    "ldflags",
];

fn apply_flags(words: &[String], b: &mut GoBuild) {
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        if !w.starts_with('-') {
            break; // package list: later words are not flags
        }
        let body = w.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let value = if inline.is_none() && VALUE_FLAGS.contains(&name) {
            i += 1;
            words.get(i).cloned()
        } else {
            inline.clone()
        };
        match name {
            "trimpath" => b.trimpath = value.as_deref() != Some("false"),
            "a" => b.force_all = value.as_deref() != Some("false"),
            "mod" => b.vendor |= value.as_deref() == Some("vendor"),
            "ldflags" => apply_ldflags(value.as_deref().unwrap_or(""), b),
            _ => {}
        }
        i += 1;
    }
}

fn apply_ldflags(value: &str, b: &mut GoBuild) {
    // `-ldflags=all=-s -w` applies the flags to a package pattern: drop the pattern.
    let value = match value.split_once('=') {
        Some((pat, rest)) if !pat.starts_with('-') && !pat.contains(' ') => rest,
        _ => value,
    };
    let words = split_words(value).unwrap_or_default();
    for (i, w) in words.iter().enumerate() {
        match w.as_str() {
            "-s" | "-s=true" | "-s=1" => b.strip_s = true,
            "-s=false" | "-s=0" => b.strip_s = false,
            "-w" | "-w=true" | "-w=1" => {
                b.strip_w = true;
                b.keep_dwarf = false;
            }
            "-w=false" | "-w=0" => {
                b.strip_w = false;
                b.keep_dwarf = true;
            }
            "-extldflags" if words.get(i + 1).is_some_and(|n| n.contains("-static")) => {
                b.static_extld = true;
            }
            w if w.starts_with("-extldflags=") && w.contains("-static") => b.static_extld = true,
            _ => {}
        }
    }
}

/// Stages whose contents reach the final image: the final stage, its parents, and stages it
/// copies from (transitively).
pub(crate) fn shipped_stages(df: &Dockerfile) -> BTreeSet<usize> {
    // The first stage of a name wins, as in `FROM <name>` resolution.
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &df.stages {
        if let Some(n) = s.name.as_deref() {
            by_name.entry(n).or_insert(s.index);
        }
    }
    let mut seen = BTreeSet::new();
    let mut todo: Vec<usize> = df.final_stage().map(|s| s.index).into_iter().collect();
    while let Some(i) = todo.pop() {
        if !seen.insert(i) {
            continue;
        }
        let stage = &df.stages[i];
        if let Some(p) = stage.parent_stage {
            todo.push(p);
        }
        for ins in df.stage_instructions(stage) {
            crate::work::tick(1);
            if let Some(from) = ins.flag("from") {
                let from = from.to_ascii_lowercase();
                let hit = by_name
                    .get(from.as_str())
                    .copied()
                    .or_else(|| from.parse::<usize>().ok().filter(|&n| n < df.stages.len()));
                todo.extend(hit);
            }
        }
    }
    seen
}

/// A command for a message: at most 80 characters.
pub(crate) fn shorten(cmd: &str) -> String {
    if cmd.len() > 80 {
        format!(
            "{}...",
            &cmd[..cmd.char_indices().nth(77).map_or(cmd.len(), |(i, _)| i)]
        )
    } else {
        cmd.to_string()
    }
}

/// Whether an image has no C library that a cgo binary could use.
pub(crate) fn needs_static(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let short = name.rsplit('/').next().unwrap_or(&name);
    name == "scratch"
        || (name.contains("distroless") && name.contains("static"))
        || short == "static"
        || short == "alpine"
}

/// KL002: source copied before go.mod / go mod download.
pub(crate) fn source_before_mod(ctx: &mut Ctx<'_>, builds: &[GoBuild]) {
    let df = ctx.df;
    // Per stage: does it build, and is every build vendored.
    let mut builds_in: BTreeMap<usize, bool> = BTreeMap::new();
    for b in builds {
        let all_vendor = builds_in.entry(b.stage).or_insert(true);
        *all_vendor &= b.vendor;
    }
    for stage in &df.stages {
        if builds_in
            .get(&stage.index)
            .is_none_or(|&all_vendor| all_vendor)
        {
            continue;
        }
        let mut mod_copied = false;
        let mut broad_copy: Option<usize> = None;
        for &idx in &stage.instructions {
            crate::work::tick(1);
            let ins = &df.instructions[idx];
            match ins.keyword.as_str() {
                "COPY" | "ADD" if ins.flag("from").is_none() => {
                    let words = match &ins.args {
                        Args::Exec(v) => v.clone(),
                        Args::Shell(s) => split_words(s).unwrap_or_default(),
                    };
                    let sources = &words[..words.len().saturating_sub(1)];
                    if sources
                        .iter()
                        .any(|s| s.ends_with("go.mod") || s.ends_with("go.*"))
                    {
                        mod_copied = true;
                    } else if broad_copy.is_none() && sources.iter().any(|s| is_broad(s)) {
                        broad_copy = Some(idx);
                        if !mod_copied {
                            ctx.at("KL002", idx, format!(
                                "`{} {}` copies the source tree before go.mod/go.sum: every source edit invalidates this layer and the module download after it",
                                ins.keyword, ins.args.text()),
                                "copy go.mod and go.sum first, run `go mod download`, then `COPY . .`");
                        }
                    }
                }
                "RUN" if broad_copy.is_some() && mod_copied => {
                    let downloads = run_scripts(ins).iter().any(|s| {
                        commands(s).iter().any(|c| {
                            c.len() >= 3
                                && c[0].ends_with("go")
                                && c[1] == "mod"
                                && c[2] == "download"
                        })
                    });
                    if downloads {
                        ctx.at("KL002", idx, "`go mod download` runs after the source tree was copied: it re-runs on every source edit".to_string(),
                            "move `RUN go mod download` directly after `COPY go.mod go.sum ./`, before `COPY . .`");
                    }
                }
                _ => {}
            }
        }
    }
}

fn is_broad(src: &str) -> bool {
    let s = src.trim_start_matches("./");
    src == "." || s.is_empty() || s == "*" || s == "." || src.ends_with('/') || src.ends_with("/.")
}

/// Why a build runs with cgo on, or `None` when it does not.
pub(crate) fn cgo_on_because(b: &GoBuild, builder: &ImageRef) -> Option<String> {
    match b.cgo.as_deref() {
        Some("0") => return None,
        Some(v) => return Some(format!("CGO_ENABLED={v} is set")),
        None => {}
    }
    if b.c_compiler_installed {
        return Some("on by default: the build stage installs a C compiler".into());
    }
    if image_has_c_compiler(builder) {
        return Some(format!(
            "on by default: `{}` has a C compiler",
            builder.name
        ));
    }
    // Before Go 1.20 cgo was on whether or not a C compiler was there.
    go_version(builder)
        .filter(|&v| v < CGO_NEEDS_COMPILER)
        .map(|(ma, mi)| {
            format!("on by default in Go {ma}.{mi} even without a C compiler; Go 1.20 changed that")
        })
}

/// KL003-KL006 and KL013: environment and flags of each build.
pub(crate) fn build_flags(ctx: &mut Ctx<'_>, builds: &[GoBuild]) {
    let df = ctx.df;
    let shipped = shipped_stages(df);
    let final_image = df.final_stage().map(|s| df.root_image(s));
    let static_final = final_image.as_ref().is_some_and(|i| needs_static(&i.name));
    // One RUN can hold many builds: shorten its text once, not once per build.
    let mut shown: Option<(usize, String)> = None;
    for b in builds.iter().filter(|b| b.opaque.is_none()) {
        crate::work::tick(1);
        let ships = shipped.contains(&b.stage);
        let builder = df.stages[b.root_stage].image();
        let cmd = match &shown {
            Some((i, c)) if *i == b.ins => c.clone(),
            _ => {
                let c = shorten(&df.instructions[b.ins].args.text());
                shown = Some((b.ins, c.clone()));
                c
            }
        };
        // A musl build shipped on alpine finds its libc there.
        let same_libc = is_alpine(&builder) && final_image.as_ref().is_some_and(is_alpine);
        if ships && static_final && !same_libc && !b.static_extld {
            if let Some(why) = cgo_on_because(b, &builder) {
                let base = final_image
                    .as_ref()
                    .map_or(String::new(), |i| i.name.clone());
                ctx.at("KL003", b.ins, format!(
                    "`go build` runs with cgo enabled ({why}) but the final image `{base}` has no matching C library: a binary that uses net or os/user links dynamically and fails with `no such file or directory`"),
                    "set CGO_ENABLED=0 for the build (`RUN CGO_ENABLED=0 go build ...` or `ENV CGO_ENABLED=0` in the build stage)");
            }
        }
        if ships && !b.trimpath {
            ctx.at("KL004", b.ins, format!("`{cmd}`: no -trimpath, so absolute build paths are embedded in the binary (leaks paths, breaks reproducibility)"),
                "add -trimpath to `go build`");
        }
        if ships {
            if let Some(missing) = debug_info_kept(b, go_version(&builder)) {
                ctx.at("KL005", b.ins, format!("`{cmd}`: {missing}, making the shipped binary larger (measured for a net/http service with Go 1.26: 8.3 MB without -s, 5.8 MB with it)"),
                    "add -s to -ldflags (`-ldflags \"-s -w\"` works with every Go release; since Go 1.22 -s alone also drops DWARF); merge into an existing -ldflags value");
            }
        }
        if b.force_all {
            ctx.at("KL006", b.ins, "`go build -a` rebuilds every package including the standard library on every build and defeats the build cache; it was once used to force static builds but CGO_ENABLED=0 is enough".to_string(),
                "remove -a; use CGO_ENABLED=0 for a static binary");
        }
        if let Some((what, hint)) = cache_mount_problem(b) {
            ctx.at("KL013", b.ins, format!("`go build`: {what}, so every image build recompiles all packages (measured ~14 s vs 1.1 s with a warm cache for a small service)"), &hint);
        }
    }
}

/// KL005's complaint, if any: which of the symbol table and DWARF stay in the binary. `-s` drops
/// DWARF too from Go 1.22 on; with an unknown Go release, `-s` alone is given the benefit.
pub(crate) fn debug_info_kept(b: &GoBuild, go: Option<GoVersion>) -> Option<String> {
    if !b.strip_s {
        return Some(if b.strip_w {
            "the linker keeps the symbol table (-ldflags has -w but not -s)".to_string()
        } else {
            "the linker keeps the symbol table and DWARF data (no -s in -ldflags)".to_string()
        });
    }
    if b.keep_dwarf {
        return Some("`-w=0` keeps DWARF data although -s strips the symbol table".to_string());
    }
    match go {
        Some(v) if v < S_IMPLIES_W && !b.strip_w => Some(format!(
            "with Go {}.{} `-s` does not drop DWARF data (it does from Go 1.22): -w is missing",
            v.0, v.1
        )),
        _ => None,
    }
}

/// KL013's complaint and hint, if any. Only said when it is known: no cache mount at all, or
/// mounts that do not hold the build cache directory go will use.
pub(crate) fn cache_mount_problem(b: &GoBuild) -> Option<(String, String)> {
    let dir = b.gocache.path.as_deref();
    let hint = match dir {
        Some(d) => format!("mount the build cache where go keeps it here: `RUN --mount=type=cache,target={d} --mount=type=cache,target=/go/pkg/mod go build ...`"),
        None => "add `RUN --mount=type=cache,target=<GOCACHE> ...`, with GOCACHE set explicitly (`ENV GOCACHE=/cache/go-build`) when the user's home is not known".to_string(),
    };
    if b.mounts.0 == 0 {
        let what = match dir {
            Some(d) => format!(
                "no cache mount for the Go build cache (`{d}`: {})",
                b.gocache.why
            ),
            None => "no cache mount for the Go build cache".to_string(),
        };
        return Some((what, hint));
    }
    if b.gocache_mounted == Some(false) {
        let d = dir.unwrap_or_default();
        let first = b.mounts.1.as_deref().unwrap_or_default();
        let mounts = match b.mounts.0 {
            1 => format!("the cache mount at `{first}` does not"),
            n => format!("none of the {n} cache mounts (`{first}`, ...) does"),
        };
        return Some((
            format!(
                "{mounts} hold the Go build cache, which is `{d}` ({})",
                b.gocache.why
            ),
            hint,
        ));
    }
    None
}

#[cfg(test)]
#[path = "gobuild_tests.rs"]
mod tests;
