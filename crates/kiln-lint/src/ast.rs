//! The parsed shape of a Dockerfile: instructions with their source spans, grouped into stages.

use serde::Serialize;
use std::collections::BTreeMap;

/// Where a node sits in the Dockerfile: 1-based lines (inclusive) and the 1-based start column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    /// First line of the node.
    pub start_line: usize,
    /// Last line of the node (continuations and heredoc bodies included).
    pub end_line: usize,
    /// Column of the node's first character on `start_line`.
    pub start_col: usize,
}

/// A `--name=value` (or bare `--name`) flag given before an instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// Flag name without the leading dashes, e.g. `mount`, `from`, `platform`.
    pub name: String,
    /// The value after `=`; `None` for a bare boolean flag such as `--link`.
    pub value: Option<String>,
}

impl Flag {
    /// Splits a comma-separated flag value (`type=cache,target=/x`) into key/value pairs, as
    /// `--mount` uses it. Keys without `=` map to an empty string.
    pub fn kv_pairs(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for part in self.value.as_deref().unwrap_or("").split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            match part.split_once('=') {
                Some((k, v)) => out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string()),
                None => out.insert(part.to_ascii_lowercase(), String::new()),
            };
        }
        out
    }
}

/// The arguments of an instruction after its flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", content = "value", rename_all = "lowercase")]
pub enum Args {
    /// Shell form: the raw text (continuations joined), run through `/bin/sh -c` for RUN/CMD.
    Shell(String),
    /// Exec (JSON) form: `["/app", "--flag"]`.
    Exec(Vec<String>),
}

impl Args {
    /// The arguments as one string (exec-form elements joined by spaces).
    pub fn text(&self) -> String {
        match self {
            Args::Shell(s) => s.clone(),
            Args::Exec(v) => v.join(" "),
        }
    }
}

/// A here-document attached to an instruction (`RUN <<EOF` ... `EOF`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// Delimiter word, without quotes.
    pub delimiter: String,
    /// `<<-`: leading tabs are stripped from the body and the terminator.
    pub strip_tabs: bool,
    /// The delimiter was quoted: the body is taken literally, without variable expansion.
    pub quoted: bool,
    /// Body lines joined with `\n` (terminating line excluded), with a trailing newline.
    pub content: String,
    /// Lines of the body plus terminator.
    pub span: Span,
}

/// One Dockerfile instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// Upper-cased keyword: `FROM`, `RUN`, `COPY` ...
    pub keyword: String,
    /// Flags before the arguments (`--mount=...`, `--from=...`).
    pub flags: Vec<Flag>,
    /// Arguments after the flags.
    pub args: Args,
    /// Here-documents opened on this instruction's line, in order.
    pub heredocs: Vec<Heredoc>,
    /// Lines and start column in the source, heredoc bodies included.
    pub span: Span,
    /// Index of the stage this instruction belongs to; `None` for global `ARG`s before the first `FROM`.
    pub stage: Option<usize>,
    /// Rule ids disabled for this instruction by a preceding `# kiln-lint ignore=` comment.
    pub ignored_rules: Vec<String>,
}

impl Instruction {
    /// All flags called `name` (case-insensitive).
    pub fn flags_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Flag> + 'a {
        self.flags
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
    }

    /// The value of the first flag called `name`.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .find_map(|f| f.value.as_deref())
    }
}

/// An image reference as written after `FROM`, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    /// Repository including registry and path, e.g. `golang` or `gcr.io/distroless/static-debian12`.
    pub name: String,
    /// Tag after `:`, if any.
    pub tag: Option<String>,
    /// Digest after `@` (`sha256:...`), if any.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Splits `registry:port/path/name:tag@sha256:...`; a `:` before the last `/` is a port.
    pub fn parse(reference: &str) -> ImageRef {
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (reference, None),
        };
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (
                rest[..slash + i].to_string(),
                Some(rest[slash + i + 1..].to_string()),
            ),
            None => (rest.to_string(), None),
        };
        ImageRef { name, tag, digest }
    }

    /// Last path component of the repository, lower-cased: `golang` for `docker.io/library/golang`.
    pub fn short_name(&self) -> String {
        self.name
            .rsplit('/')
            .next()
            .unwrap_or(&self.name)
            .to_ascii_lowercase()
    }
}

/// A build stage: one `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// Position of the stage (0-based).
    pub index: usize,
    /// Name given with `AS name`, lower-cased as BuildKit treats it.
    pub name: Option<String>,
    /// The base as written, e.g. `golang:${GO_VERSION}`.
    pub base_raw: String,
    /// The base after expanding global `ARG`s.
    pub base: String,
    /// If the base names an earlier stage, its index.
    pub parent_stage: Option<usize>,
    /// Value of `--platform=`, if given.
    pub platform: Option<String>,
    /// Index of the `FROM` instruction in [`Dockerfile::instructions`].
    pub from_instruction: usize,
    /// Indexes of the stage's instructions (FROM included) in [`Dockerfile::instructions`].
    pub instructions: Vec<usize>,
}

impl Stage {
    /// The base image split into name, tag and digest (meaningless when `parent_stage` is set).
    pub fn image(&self) -> ImageRef {
        ImageRef::parse(&self.base)
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    /// Parser directives from the top of the file (`syntax`, `escape`, `check`), keys lower-cased.
    pub directives: BTreeMap<String, String>,
    /// The escape character in force (`\` or `` ` ``).
    pub escape: char,
    /// All instructions in file order.
    pub instructions: Vec<Instruction>,
    /// Build stages in order; the last one is the image that gets shipped.
    pub stages: Vec<Stage>,
    /// Global `ARG` defaults (declared before the first `FROM`), used to expand `FROM` lines.
    pub global_args: BTreeMap<String, Option<String>>,
    /// Rule ids disabled for the whole file by `# kiln-lint ignore-file=`.
    pub ignored_rules_file: Vec<String>,
}

impl Dockerfile {
    /// The final (shipped) stage, if the file has any stage.
    pub fn final_stage(&self) -> Option<&Stage> {
        self.stages.last()
    }

    /// The instructions of one stage, FROM included.
    pub fn stage_instructions<'a>(
        &'a self,
        stage: &'a Stage,
    ) -> impl Iterator<Item = &'a Instruction> + 'a {
        stage.instructions.iter().map(|&i| {
            crate::work::tick(1);
            &self.instructions[i]
        })
    }

    /// The chain of stages from `stage` up through its `FROM <stage>` parents (nearest first).
    pub fn lineage<'a>(&'a self, stage: &'a Stage) -> Vec<&'a Stage> {
        let mut out = vec![];
        let mut cur = Some(stage);
        while let Some(s) = cur {
            crate::work::tick(1);
            out.push(s);
            cur = s.parent_stage.and_then(|p| self.stages.get(p));
            if out.len() > self.stages.len() {
                break;
            }
        }
        out
    }

    /// The root image of a stage after following `FROM <stage>` links.
    pub fn root_image(&self, stage: &Stage) -> ImageRef {
        let chain = self.lineage(stage);
        chain.last().map_or_else(|| stage.image(), |s| s.image())
    }
}
