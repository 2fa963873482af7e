//! Rules about `go build` invocations: where they run, with which environment and flags.

use super::Ctx;
use crate::ast::{Args, Dockerfile, Instruction};
use crate::parser::{arg_pairs, env_pairs};
use crate::shell::{commands, split_words};
use std::collections::{BTreeMap, BTreeSet};

/// Default GOCACHE for root in the official golang image.
const DEFAULT_GOCACHE: &str = "/root/.cache/go-build";

/// One `go build`/`go install` found in a RUN instruction.
#[derive(Debug, Clone, Default)]
pub(crate) struct GoBuild {
    /// Instruction index.
    pub ins: usize,
    /// Stage index.
    pub stage: usize,
    pub cgo_disabled: bool,
    pub static_extld: bool,
    pub trimpath: bool,
    pub strip_s: bool,
    pub strip_w: bool,
    pub force_all: bool,
    pub vendor: bool,
    /// GOCACHE if set explicitly (ENV, ARG, export or prefix assignment).
    pub gocache: Option<String>,
    /// Whether a `--mount=type=cache` of the RUN targets the GOCACHE in effect (or the default).
    pub gocache_mounted: bool,
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
const TRACKED: &[&str] = &["CGO_ENABLED", "GOCACHE", "GOFLAGS"];

/// The tracked part of an environment.
type Env = BTreeMap<String, String>;

fn set_tracked(env: &mut Env, k: &str, v: &str) {
    if TRACKED.contains(&k) {
        env.insert(k.to_string(), v.to_string());
    }
}

/// Applies an ENV or ARG instruction (ARG without a value takes the global default).
fn apply_env_instruction(df: &Dockerfile, ins: &Instruction, env: &mut Env) {
    match ins.keyword.as_str() {
        "ENV" => {
            for (k, v) in env_pairs(&ins.args.text()).unwrap_or_default() {
                set_tracked(env, &k, &v);
            }
        }
        "ARG" => {
            for (k, v) in arg_pairs(&ins.args.text()).unwrap_or_default() {
                let v = v.or_else(|| df.global_args.get(&k).cloned().flatten());
                if let Some(v) = v {
                    set_tracked(env, &k, &v);
                }
            }
        }
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
    for stage in &df.stages {
        let mut env = stage
            .parent_stage
            .and_then(|p| end_env.get(p))
            .cloned()
            .unwrap_or_default();
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
                        mounts: &mounts,
                    };
                    scan_command(&words, &mut script_env, &found, &mut out);
                }
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
    /// Targets of the RUN's cache mounts.
    mounts: &'a BTreeSet<String>,
}

fn is_assignment(w: &str) -> bool {
    w.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn scan_command(words: &[String], env: &mut Env, at: &Found<'_>, out: &mut Vec<GoBuild>) {
    let mut local = env.clone();
    let mut i = 0;
    // `export A=1` lasts for the rest of the script; `A=1 cmd` and `env A=1 cmd` for one command.
    if words.first().map(String::as_str) == Some("export") {
        for w in &words[1..] {
            if let Some((k, v)) = w.split_once('=') {
                set_tracked(env, k, v);
            }
        }
        return;
    }
    while i < words.len() && (is_assignment(&words[i]) || words[i] == "env") {
        if let Some((k, v)) = words[i].split_once('=') {
            set_tracked(&mut local, k, v);
        }
        i += 1;
    }
    if i == words.len() {
        // Bare assignments persist in the shell.
        env.extend(local);
        return;
    }
    let cmd = &words[i..];
    let is_go = cmd[0].rsplit('/').next() == Some("go");
    if !is_go || cmd.len() < 2 {
        return;
    }
    if cmd[1] == "env" && cmd.get(2).map(String::as_str) == Some("-w") {
        for w in &cmd[3..] {
            if let Some((k, v)) = w.split_once('=') {
                set_tracked(env, k, v);
            }
        }
        return;
    }
    if cmd[1] != "build" && cmd[1] != "install" {
        return;
    }
    let gocache = local.get("GOCACHE").cloned();
    let cache_dir = gocache
        .as_deref()
        .unwrap_or(DEFAULT_GOCACHE)
        .trim_end_matches('/');
    let mut b = GoBuild {
        ins: at.idx,
        stage: at.stage,
        cgo_disabled: local.get("CGO_ENABLED").map(String::as_str) == Some("0"),
        gocache_mounted: at.mounts.contains(cache_dir),
        gocache,
        ..GoBuild::default()
    };
    if let Some(goflags) = local.get("GOFLAGS") {
        let words: Vec<String> = goflags.split_whitespace().map(str::to_string).collect();
        apply_flags(&words, &mut b);
    }
    apply_flags(&cmd[2..], &mut b);
    out.push(b);
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
            "-s" | "-s=true" => b.strip_s = true,
            "-w" | "-w=true" => b.strip_w = true,
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
fn shipped_stages(df: &Dockerfile) -> BTreeSet<usize> {
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
fn shorten(cmd: &str) -> String {
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

/// KL003-KL006 and KL013: environment and flags of each build.
pub(crate) fn build_flags(ctx: &mut Ctx<'_>, builds: &[GoBuild]) {
    let df = ctx.df;
    let shipped = shipped_stages(df);
    let final_image = df.final_stage().map(|s| df.root_image(s));
    let static_final = final_image.as_ref().is_some_and(|i| needs_static(&i.name));
    // One RUN can hold many builds: shorten its text once, not once per build.
    let mut shown: Option<(usize, String)> = None;
    for b in builds {
        crate::work::tick(1);
        let ships = shipped.contains(&b.stage);
        let cmd = match &shown {
            Some((i, c)) if *i == b.ins => c.clone(),
            _ => {
                let c = shorten(&df.instructions[b.ins].args.text());
                shown = Some((b.ins, c.clone()));
                c
            }
        };
        if ships && static_final && !b.cgo_disabled && !b.static_extld {
            let base = final_image
                .as_ref()
                .map_or(String::new(), |i| i.name.clone());
            ctx.at("KL003", b.ins, format!(
                "`go build` runs with cgo enabled (the default where gcc is installed) but the final image `{base}` has no C library: a binary that uses net or os/user links dynamically and fails with `no such file or directory`"),
                "set CGO_ENABLED=0 for the build (`RUN CGO_ENABLED=0 go build ...` or `ENV CGO_ENABLED=0` in the build stage)");
        }
        if ships && !b.trimpath {
            ctx.at("KL004", b.ins, format!("`{cmd}`: no -trimpath, so absolute build paths are embedded in the binary (leaks paths, breaks reproducibility)"),
                "add -trimpath to `go build`");
        }
        if ships && !(b.strip_s && b.strip_w) {
            let missing = match (b.strip_s, b.strip_w) {
                (false, false) => "-s -w",
                (false, true) => "-s",
                _ => "-w",
            };
            ctx.at("KL005", b.ins, format!("`{cmd}`: the linker keeps symbol table and DWARF data (missing {missing} in -ldflags), making the shipped binary ~25-30% larger"),
                "add -ldflags \"-s -w\" (merge into an existing -ldflags value: `-ldflags \"-s -w -X main.version=...\"`)");
        }
        if b.force_all {
            ctx.at("KL006", b.ins, "`go build -a` rebuilds every package including the standard library on every build and defeats the build cache; it was once used to force static builds but CGO_ENABLED=0 is enough".to_string(),
                "remove -a; use CGO_ENABLED=0 for a static binary");
        }
        let (gocache, mounted) = (&b.gocache, b.gocache_mounted);
        if gocache.is_none() || !mounted {
            let what = match (gocache.is_some(), mounted) {
                (false, false) => "no cache mount for the Go build cache and GOCACHE is not set",
                (false, true) => "the cache mount is there but GOCACHE is not set explicitly, so the build may not use it",
                _ => "GOCACHE is set but not mounted as a cache",
            };
            ctx.at("KL013", b.ins, format!("`go build`: {what}; every image build recompiles all packages (measured ~14 s vs 1.1 s with a warm cache for a small service)"),
                "add `ENV GOCACHE=/root/.cache/go-build` and `RUN --mount=type=cache,target=/root/.cache/go-build --mount=type=cache,target=/go/pkg/mod go build ...`");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{lint_str, LintOptions};

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

    /// Rule ids reported for a build stage `body` shipped in a scratch image.
    fn ids(body: &str) -> Vec<String> {
        let text = format!(
            "FROM golang:1.26@{D} AS build\n{body}\nFROM scratch\nCOPY --from=build /app /app\nUSER 1\n"
        );
        let r = lint_str(&text, None, &LintOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        r.findings.into_iter().map(|f| f.rule).collect()
    }

    const GOOD_FLAGS: &str = "-trimpath -ldflags=\"-s -w\"";

    #[test]
    fn heredoc_scripts_are_analysed() {
        let found = ids("ENV GOCACHE=/c\nRUN --mount=type=cache,target=/c <<EOF\nset -e\ngo build -o /app .\nEOF");
        assert!(found.contains(&"KL003".to_string()), "{found:?}");
        assert!(found.contains(&"KL004".to_string()));
    }

    #[test]
    fn cgo_disabled_in_every_spelling() {
        for body in [
            format!("RUN CGO_ENABLED=0 go build {GOOD_FLAGS} -o /app ."),
            format!("ENV CGO_ENABLED=0\nRUN go build {GOOD_FLAGS} -o /app ."),
            format!("ARG CGO_ENABLED=0\nRUN go build {GOOD_FLAGS} -o /app ."),
            format!("RUN export CGO_ENABLED=0 && go build {GOOD_FLAGS} -o /app ."),
            format!("RUN go env -w CGO_ENABLED=0 && go build {GOOD_FLAGS} -o /app ."),
            format!("RUN env CGO_ENABLED=0 /usr/local/go/bin/go build {GOOD_FLAGS} -o /app ."),
            format!("RUN [\"sh\", \"-c\", \"CGO_ENABLED=0 go build {} -o /app .\"]", GOOD_FLAGS.replace('"', "\\\"")),
            "RUN go build -trimpath -ldflags '-s -w -linkmode external -extldflags \"-static\"' -o /app .".to_string(),
        ] {
            let found = ids(&body);
            assert!(!found.contains(&"KL003".to_string()), "{body}: {found:?}");
            assert!(!found.contains(&"KL004".to_string()), "{body}: {found:?}");
            assert!(!found.contains(&"KL005".to_string()), "{body}: {found:?}");
        }
    }

    #[test]
    fn cgo_state_from_parent_stage_env() {
        let text = format!(
            "FROM golang:1.26@{D} AS base\nENV CGO_ENABLED=0\nFROM base AS build\nRUN go build -o /app .\nFROM scratch\nCOPY --from=build /app /app\nUSER 1\n"
        );
        let r = lint_str(&text, None, &LintOptions::default()).unwrap();
        assert!(
            !r.findings.iter().any(|f| f.rule == "KL003"),
            "{:#?}",
            r.findings
        );
    }

    #[test]
    fn ldflags_spellings() {
        for (flags, want_kl005) in [
            ("-ldflags=\"-s -w\"", false),
            ("-ldflags '-w -s -X main.v=1'", false),
            ("-ldflags=all=\"-s -w\"", false),
            ("--ldflags \"-s -w\"", false),
            ("-ldflags \"-s\"", true),
            ("-ldflags \"-X main.v=1\"", true),
            ("", true),
        ] {
            let found = ids(&format!(
                "RUN CGO_ENABLED=0 go build -trimpath {flags} -o /app ."
            ));
            assert_eq!(
                found.contains(&"KL005".to_string()),
                want_kl005,
                "{flags}: {found:?}"
            );
        }
    }

    #[test]
    fn flags_after_the_package_do_not_count_and_a_is_found() {
        let found = ids("RUN CGO_ENABLED=0 go build -o /app . -trimpath");
        assert!(found.contains(&"KL004".to_string()));
        let found = ids(&format!(
            "RUN CGO_ENABLED=0 go build -a {GOOD_FLAGS} -o /app ."
        ));
        assert!(found.contains(&"KL006".to_string()));
        let found = ids(&format!(
            "RUN CGO_ENABLED=0 go build -o /app -a=false {GOOD_FLAGS} ."
        ));
        assert!(!found.contains(&"KL006".to_string()), "{found:?}");
    }

    #[test]
    fn builds_not_shipped_are_not_held_to_release_flags() {
        let text = format!(
            "FROM golang:1.26@{D} AS tools\nRUN go build -o /gen ./tools/gen\nFROM golang:1.26@{D} AS build\nRUN CGO_ENABLED=0 go build {GOOD_FLAGS} -o /app .\nFROM scratch\nCOPY --from=build /app /app\nUSER 1\n"
        );
        let r = lint_str(&text, None, &LintOptions::default()).unwrap();
        let on_line_2: Vec<&str> = r
            .findings
            .iter()
            .filter(|f| f.line == 2)
            .map(|f| f.rule.as_str())
            .collect();
        assert_eq!(on_line_2, ["KL013"], "{:#?}", r.findings);
    }

    #[test]
    fn cache_mount_must_match_gocache() {
        let base = format!("CGO_ENABLED=0 go build {GOOD_FLAGS} -o /app .");
        let cases = [
            (format!("ENV GOCACHE=/root/.cache/go-build\nRUN --mount=type=cache,target=/root/.cache/go-build {base}"), false),
            (format!("RUN --mount=type=cache,target=/root/.cache/go-build {base}"), true),
            (format!("ENV GOCACHE=/gocache\nRUN --mount=type=cache,target=/root/.cache/go-build {base}"), true),
            (format!("RUN --mount=type=cache,target=/gc GOCACHE=/gc {base}"), false),
            (format!("ENV GOCACHE=/gc\nRUN {base}"), true),
        ];
        for (body, want) in cases {
            let found = ids(&body);
            assert_eq!(
                found.contains(&"KL013".to_string()),
                want,
                "{body}: {found:?}"
            );
        }
    }

    #[test]
    fn vendored_builds_skip_module_order_rule() {
        let found = ids(&format!(
            "COPY . .\nRUN CGO_ENABLED=0 go build -mod=vendor {GOOD_FLAGS} -o /app ."
        ));
        assert!(!found.contains(&"KL002".to_string()), "{found:?}");
        let found = ids(&format!(
            "COPY . .\nRUN CGO_ENABLED=0 go build {GOOD_FLAGS} -o /app ."
        ));
        assert!(found.contains(&"KL002".to_string()), "{found:?}");
    }
}
