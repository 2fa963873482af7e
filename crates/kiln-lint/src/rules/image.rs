//! Rules about the images themselves: bases, user, context, package caches and secrets.

use super::gobuild::{cache_targets, run_scripts};
use super::{ContextIgnore, Ctx};
use crate::ast::Args;
use crate::parser::{arg_pairs, env_pairs};
use crate::shell::{commands, split_words};

/// Full operating-system images that a static Go binary does not need.
const FULL_OS: &[&str] = &[
    "ubuntu",
    "debian",
    "centos",
    "fedora",
    "rockylinux",
    "almalinux",
    "amazonlinux",
    "oraclelinux",
    "archlinux",
    "leap",
    "ubi",
    "ubi8",
    "ubi9",
    "buildpack-deps",
];

/// KL001: the final stage ships the Go toolchain.
pub(crate) fn toolchain_in_final(ctx: &mut Ctx<'_>) {
    let df = ctx.df;
    let Some(last) = df.final_stage() else { return };
    let root = df.root_image(last);
    if root.short_name() == "golang" {
        ctx.at("KL001", last.from_instruction, format!(
            "the final stage is based on `{}`: the shipped image contains the Go toolchain, sources and module cache (hundreds of MB, more attack surface)",
            last.base),
            "build in a `FROM golang:... AS build` stage and `COPY --from=build` only the binary into `FROM scratch` or distroless/static");
    }
}

/// KL007: final stage is a full OS image.
pub(crate) fn full_os_final(ctx: &mut Ctx<'_>, has_go_build: bool) {
    let df = ctx.df;
    let Some(last) = df.final_stage() else { return };
    let root = df.root_image(last);
    if has_go_build && FULL_OS.contains(&root.short_name().as_str()) {
        ctx.at("KL007", last.from_instruction, format!(
            "the final stage is based on the full OS image `{}` although it only runs a Go binary: a static binary needs no shell, package manager or libc, and each brings CVEs and size",
            last.base),
            "build with CGO_ENABLED=0 and use `FROM scratch` or `gcr.io/distroless/static-debian12` (by digest) as the final stage");
    }
}

/// KL008: base image not pinned by digest.
pub(crate) fn unpinned(ctx: &mut Ctx<'_>) {
    let df = ctx.df;
    for stage in &df.stages {
        if stage.parent_stage.is_some() || stage.base.eq_ignore_ascii_case("scratch") {
            continue;
        }
        let image = stage.image();
        if image.digest.is_some() {
            continue;
        }
        let why = match image.tag.as_deref() {
            None => format!("`{}` has no tag, so it means `latest`", stage.base),
            Some("latest") => format!("`{}` uses the moving `latest` tag", stage.base),
            Some(t) => format!(
                "`{}` uses the tag `{t}`, which can be re-pushed",
                stage.base
            ),
        };
        ctx.at("KL008", stage.from_instruction, format!(
            "{why}: without an @sha256 digest the build is not reproducible and can change without any change to this file"),
            "pin the base by digest: `FROM image:tag@sha256:<digest>` (keep the tag for readers; find the digest with `skopeo inspect docker://image:tag`)");
    }
}

/// KL009: the final stage runs as root.
pub(crate) fn root_user(ctx: &mut Ctx<'_>) {
    let df = ctx.df;
    let Some(last) = df.final_stage() else { return };
    let mut chain = df.lineage(last);
    chain.reverse();
    let last_user = chain
        .iter()
        .flat_map(|s| s.instructions.iter().copied())
        .rfind(|&i| df.instructions[i].keyword == "USER");
    match last_user {
        Some(i) => {
            let user = df.instructions[i].args.text();
            let name = user.split(':').next().unwrap_or("").trim();
            if name == "root" || name == "0" {
                ctx.at(
                    "KL009",
                    i,
                    format!("`USER {user}` makes the service run as root in the container"),
                    "run as an unprivileged user: `USER 65532:65532` (distroless `nonroot`)",
                );
            }
        }
        None => {
            let root = df.root_image(last);
            // distroless `:nonroot` tags already default to uid 65532.
            if root.tag.as_deref().is_some_and(|t| t.contains("nonroot")) {
                return;
            }
            ctx.at("KL009", last.from_instruction, "the final stage has no USER instruction, so the service runs as root in the container".to_string(),
                "add `USER 65532:65532` (or another non-root uid) to the final stage");
        }
    }
}

/// The first COPY/ADD that copies the whole build context (`COPY . .`, `COPY ./ /src/`,
/// `ADD * ./`): the only copies that bring `.git` along.
fn first_context_copy(df: &crate::ast::Dockerfile) -> Option<usize> {
    df.instructions.iter().position(|ins| {
        crate::work::tick(1);
        if !matches!(ins.keyword.as_str(), "COPY" | "ADD") || ins.flag("from").is_some() {
            return false;
        }
        let words = match &ins.args {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => split_words(s).unwrap_or_default(),
        };
        let sources = &words[..words.len().saturating_sub(1)];
        sources.iter().any(|s| {
            let s = s.trim_start_matches("./");
            matches!(s, "" | "." | "*" | "/" | "/." | ".*" | "/*")
        })
    })
}

/// KL010: the whole context is copied and .git is not excluded.
pub(crate) fn dockerignore(ctx: &mut Ctx<'_>) {
    let problem = match ctx.ignore {
        ContextIgnore::Unknown => return,
        ContextIgnore::Missing => "the build context has no .dockerignore",
        ContextIgnore::Present(di) if di.is_excluded(".git") => return,
        ContextIgnore::Present(_) => "the .dockerignore does not exclude .git",
    };
    // A Dockerfile that copies named files or directories never takes .git along.
    let Some(idx) = first_context_copy(ctx.df) else {
        return;
    };
    let ins = &ctx.df.instructions[idx];
    let message = format!(
        "`{} {}` copies the whole build context and {problem}: .git (and build outputs, editor files) land in the layer, and since .git changes with every commit this layer and every later one rebuild on every commit",
        ins.keyword,
        ins.args.text()
    );
    let hint = match ctx.ignore {
        ContextIgnore::Missing => "add a .dockerignore at the build context root with at least `.git`, `dist/` and editor directories (`kiln gen dockerignore` writes one)",
        _ => "add a line `.git` to .dockerignore (and make sure no later `!` pattern re-includes it)",
    };
    ctx.at("KL010", idx, message, hint);
}

/// KL011: package manager caches left in the final stage.
pub(crate) fn package_cache(ctx: &mut Ctx<'_>) {
    let df = ctx.df;
    let Some(last) = df.final_stage() else { return };
    for &idx in &last.instructions {
        let ins = &df.instructions[idx];
        if ins.keyword != "RUN" {
            continue;
        }
        let mounts = cache_targets(ins);
        let scripts = run_scripts(ins);
        // Searched once per RUN, not once per command: a RUN can hold many commands.
        let cleans_apk = scripts.iter().any(|s| s.contains("/var/cache/apk"))
            || mounts.iter().any(|m| m.starts_with("/var/cache/apk"));
        let cleans_apt = scripts.iter().any(|s| s.contains("/var/lib/apt/lists"))
            || mounts.iter().any(|m| m.starts_with("/var/lib/apt"));
        for script in &scripts {
            for c in commands(script) {
                crate::work::tick(1);
                let words: Vec<&str> = c.iter().map(String::as_str).collect();
                let apk_add = words.windows(2).any(|w| w == ["apk", "add"]);
                if apk_add && !words.contains(&"--no-cache") && !cleans_apk {
                    ctx.at("KL011", idx, "`apk add` without --no-cache leaves the package index in /var/cache/apk in the shipped image".to_string(),
                        "use `apk add --no-cache ...`");
                }
                let apt_install = words
                    .windows(2)
                    .any(|w| (w[0] == "apt-get" || w[0] == "apt") && w[1] == "install");
                if apt_install {
                    let mut missing = vec![];
                    if !words.contains(&"--no-install-recommends") {
                        missing.push("--no-install-recommends");
                    }
                    if !cleans_apt {
                        missing.push("`rm -rf /var/lib/apt/lists/*`");
                    }
                    if !missing.is_empty() {
                        ctx.at("KL011", idx, format!(
                            "`apt-get install` in the final stage without {}: recommended packages and the apt lists end up in the shipped image",
                            missing.join(" and ")),
                            "use `apt-get install -y --no-install-recommends ... && rm -rf /var/lib/apt/lists/*` in the same RUN");
                    }
                }
            }
        }
    }
}

const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "ACCESS_KEY",
    "CREDENTIAL",
    "AUTH_KEY",
];

/// KL012: ENV/ARG names that look like secrets.
pub(crate) fn secrets(ctx: &mut Ctx<'_>) {
    let df = ctx.df;
    for (idx, ins) in df.instructions.iter().enumerate() {
        crate::work::tick(1);
        let names: Vec<String> = match ins.keyword.as_str() {
            "ENV" => env_pairs(&ins.args.text())
                .unwrap_or_default()
                .into_iter()
                .map(|(k, _)| k)
                .collect(),
            "ARG" => arg_pairs(&ins.args.text())
                .unwrap_or_default()
                .into_iter()
                .map(|(k, _)| k)
                .collect(),
            _ => continue,
        };
        for name in names {
            let upper = name.to_ascii_uppercase();
            // A variable that names a file or path holding the secret is the right pattern.
            if ["_FILE", "_PATH", "_DIR"]
                .iter()
                .any(|s| upper.ends_with(s))
            {
                continue;
            }
            if SECRET_WORDS.iter().any(|w| upper.contains(w)) {
                ctx.at("KL012", idx, format!(
                    "{} `{name}` looks like a secret: its value is stored in the image {} for anyone who pulls it",
                    ins.keyword,
                    if ins.keyword == "ENV" { "config" } else { "history (build args are recorded)" }),
                    "pass secrets at build time with `RUN --mount=type=secret,id=name,env=NAME ...` (`docker build --secret id=name,env=NAME`) and at run time from the environment or a mounted file");
            }
        }
    }
}
