//! CI-native output: GitHub Actions workflow-command annotations and the Markdown job summary.
//!
//! Active only when [`Env`] says `GITHUB_ACTIONS=true`. Annotations go to stderr (the runner reads
//! workflow commands from both streams, and stdout must stay clean for `--json`); the summary is
//! appended to `$GITHUB_STEP_SUMMARY`. The library crates return data (build reports, lint
//! reports, push results); turning it into GitHub's formats happens here, in the binary.

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_build::BuildReport;
use kiln_config::Env;
use kiln_image::{PackageReport, PushResult};

use crate::table::{human_ms, human_size};

/// `error`, `warning` or `notice`, GitHub's annotation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fails the check run's view of the file.
    Error,
    /// Shown, not failing.
    Warning,
    /// Informational.
    Notice,
}

impl Level {
    fn command(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
        }
    }
}

/// One annotation: a message, optionally placed on a file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Level.
    pub level: Level,
    /// File relative to the working directory (the repository root in a usual workflow).
    pub file: Option<String>,
    /// 1-based line.
    pub line: Option<u64>,
    /// Last line, for findings spanning several.
    pub end_line: Option<u64>,
    /// 1-based column.
    pub col: Option<u64>,
    /// Short title shown above the message.
    pub title: Option<String>,
    /// The message (may span lines).
    pub message: String,
}

impl Annotation {
    fn new(level: Level, title: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            level,
            file: None,
            line: None,
            end_line: None,
            col: None,
            title: Some(title.into()),
            message: message.into(),
        }
    }

    /// The workflow command line, escaped as the runner expects: `%`, CR and LF in the message;
    /// additionally `:` and `,` in property values.
    pub fn to_command(&self) -> String {
        let mut props = Vec::new();
        if let Some(f) = &self.file {
            props.push(format!("file={}", escape_property(f)));
        }
        if let Some(l) = self.line {
            props.push(format!("line={l}"));
        }
        if let Some(l) = self.end_line.filter(|e| Some(*e) != self.line) {
            props.push(format!("endLine={l}"));
        }
        if let Some(c) = self.col {
            props.push(format!("col={c}"));
        }
        if let Some(t) = &self.title {
            props.push(format!("title={}", escape_property(t)));
        }
        let props = if props.is_empty() {
            String::new()
        } else {
            format!(" {}", props.join(","))
        };
        format!(
            "::{}{props}::{}",
            self.level.command(),
            escape_data(self.message.trim_end())
        )
    }
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The CI integration of one kiln run; does nothing outside GitHub Actions.
#[derive(Debug, Clone)]
pub struct Ci {
    github: bool,
    summary: Option<PathBuf>,
    cwd: PathBuf,
}

impl Ci {
    /// From the environment resolved once at start-up.
    pub fn new(env: &Env) -> Self {
        Self {
            github: env.github_actions,
            summary: env.github_step_summary.clone(),
            cwd: env.cwd.clone(),
        }
    }

    /// Writes annotations to stderr when running under GitHub Actions.
    pub fn annotate(&self, annotations: &[Annotation]) {
        if !self.github {
            return;
        }
        let mut err = std::io::stderr().lock();
        for a in annotations {
            let _ = writeln!(err, "{}", a.to_command());
        }
    }

    /// An error that stops kiln (exit 2): one annotation without a file.
    pub fn error(&self, message: &str) {
        self.annotate(&[Annotation::new(Level::Error, "kiln", message)]);
    }

    /// Annotations for every failed target of a build: one per compiler diagnostic placed on its
    /// file and line, or one for the target (verification failures, link errors).
    pub fn build_failures(&self, report: &BuildReport, project_root: &Path) {
        if !self.github {
            return;
        }
        let mut all = Vec::new();
        for t in report.failures() {
            let text = t.error.as_deref().unwrap_or_default();
            all.extend(target_annotations(
                &t.label(),
                text,
                project_root,
                &self.cwd,
            ));
        }
        self.annotate(&all);
    }

    /// Annotations for lint findings, each on its Dockerfile lines.
    pub fn lint_findings(&self, reports: &[kiln_lint::Report]) {
        if !self.github {
            return;
        }
        let all: Vec<_> = reports
            .iter()
            .flat_map(|r| &r.findings)
            .map(lint_annotation)
            .collect();
        self.annotate(&all);
    }

    /// Appends `markdown` to the job summary file; failing to write only costs the summary, so
    /// it is a warning.
    pub fn summary(&self, markdown: &str) {
        let Some(path) = &self.summary else {
            return;
        };
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(markdown.as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "{} cannot append the job summary to {}: {e}",
                console::style("warning:").yellow().bold(),
                path.display()
            );
        }
    }
}

/// A compiler diagnostic line: `path/file.go:LINE[:COL]: message`.
fn parse_diagnostic(line: &str) -> Option<(&str, u64, Option<u64>, &str)> {
    let go = line.find(".go:")?;
    let file = &line[..go + 3];
    if file.is_empty() || file.contains(' ') && !file.starts_with('/') {
        return None;
    }
    let rest = &line[go + 4..];
    let (num, rest) = rest.split_once(':')?;
    let line_no = num.parse().ok()?;
    let (col, msg) = match rest.split_once(':') {
        Some((c, m)) if c.parse::<u64>().is_ok() => (c.parse().ok(), m),
        _ => (None, rest),
    };
    let msg = msg.trim();
    (!msg.is_empty()).then_some((file, line_no, col, msg))
}

/// Annotations of one failed target (see [`Ci::build_failures`]). Paths go prints relative to the
/// project root are made relative to `cwd`, where the workflow runs kiln.
pub fn target_annotations(
    label: &str,
    error: &str,
    project_root: &Path,
    cwd: &Path,
) -> Vec<Annotation> {
    let title = format!("kiln build {label}");
    let mut out: Vec<Annotation> = error
        .lines()
        .filter_map(parse_diagnostic)
        .map(|(file, line, col, msg)| {
            let abs = project_root.join(file.trim_start_matches("./"));
            let shown = abs
                .strip_prefix(cwd)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| abs.display().to_string());
            Annotation {
                level: Level::Error,
                file: Some(shown),
                line: Some(line),
                end_line: None,
                col,
                title: Some(title.clone()),
                message: msg.to_string(),
            }
        })
        .collect();
    if out.is_empty() {
        out.push(Annotation::new(Level::Error, title, error));
    }
    out
}

/// A failed check of `kiln verify IMAGE` (signature, SBOM, provenance, static binaries, policy).
pub fn verify_check_annotation(image: &str, check: &str, detail: &str) -> Annotation {
    Annotation::new(
        Level::Error,
        format!("kiln verify {image}: {check}"),
        detail,
    )
}

/// One lint finding as an annotation on its Dockerfile lines.
pub fn lint_annotation(f: &kiln_lint::Finding) -> Annotation {
    Annotation {
        level: match f.severity {
            kiln_lint::Severity::Error => Level::Error,
            kiln_lint::Severity::Warning => Level::Warning,
            kiln_lint::Severity::Info => Level::Notice,
        },
        file: Some(f.file.clone()),
        line: Some(f.line as u64),
        end_line: Some(f.end_line as u64),
        col: None,
        title: Some(format!("{} {}", f.rule, f.name)),
        message: format!("{}\nhint: {}", f.message, f.hint),
    }
}

/// `|` would end a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The job summary of `kiln build` (also the build part of `kiln image`).
pub fn build_summary_markdown(command: &str, report: &BuildReport) -> String {
    let failed = report.failures().count();
    let cached = report.targets.iter().filter(|t| t.ok() && t.cached).count();
    let mut md = format!(
        "### {command}: {} target(s), {} built, {cached} from cache, {failed} failed\n\n",
        report.targets.len(),
        report.targets.len() - failed - cached,
    );
    md.push_str("| target | size | static | cached | time | status |\n| --- | ---: | --- | --- | ---: | --- |\n");
    for t in &report.targets {
        md.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            cell(&t.label()),
            t.size.map(human_size).unwrap_or_else(|| "-".into()),
            match t.is_static {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            },
            if t.cached { "yes" } else { "no" },
            human_ms(t.duration_ms),
            if t.ok() { "ok" } else { "**FAILED**" },
        ));
    }
    md.push_str(&format!(
        "\n{} go invocation(s), {}; Go {}, kiln {}\n\n",
        report.go_invocations,
        human_ms(report.duration_ms),
        cell(&report.go_version),
        cell(&report.kiln_version),
    ));
    md
}

/// The image and push part of `kiln image`'s job summary.
pub fn image_summary_markdown(packed: &PackageReport, pushes: &[PushResult]) -> String {
    let mut md = String::from(
        "| image | platform | binary | total (compressed) | manifest |\n| --- | --- | ---: | ---: | --- |\n",
    );
    for i in &packed.images {
        for p in &i.platforms {
            md.push_str(&format!(
                "| `{}` | {} | {} | {} | `{}` |\n",
                cell(&i.layout_ref),
                p.platform,
                human_size(p.binary.size),
                human_size(p.size.total_compressed),
                p.manifest.digest,
            ));
        }
    }
    if !pushes.is_empty() {
        md.push_str("\n| pushed | digest | uploaded | mounted | already there |\n| --- | --- | ---: | ---: | ---: |\n");
        for p in pushes {
            md.push_str(&format!(
                "| `{}` | `{}` | {} ({}) | {} | {} |\n",
                cell(&p.reference),
                p.digest,
                p.uploaded,
                human_size(p.bytes_sent),
                p.mounted,
                p.skipped,
            ));
        }
    }
    md.push('\n');
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_9_compile_errors_become_file_annotations() {
        let err = "# example.com/m/cmd/app\ncmd/app/main.go:3:23: undefined: undefinedThing\n./cmd/app/x.go:7: syntax error: unexpected }\nnote: module requires Go 1.99";
        let a = target_annotations(
            "app linux/amd64",
            err,
            Path::new("/w/repo/mod"),
            Path::new("/w/repo"),
        );
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!(
            a[0].to_command(),
            "::error file=mod/cmd/app/main.go,line=3,col=23,title=kiln build app linux/amd64::undefined: undefinedThing"
        );
        assert_eq!(a[1].file.as_deref(), Some("mod/cmd/app/x.go"));
        assert_eq!((a[1].line, a[1].col), (Some(7), None));
        assert_eq!(a[1].message, "syntax error: unexpected }");
    }

    #[test]
    fn issue_9_verification_failure_is_one_annotation_with_the_whole_text() {
        let err = "verification failed: dynamically linked: interpreter /lib64/ld-linux-x86-64.so.2\nhint: build with CGO_ENABLED=0";
        let a = target_annotations("native linux/amd64", err, Path::new("/r"), Path::new("/r"));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].file, None);
        assert_eq!(
            a[0].to_command(),
            "::error title=kiln build native linux/amd64::verification failed: dynamically linked: interpreter /lib64/ld-linux-x86-64.so.2%0Ahint: build with CGO_ENABLED=0"
        );
    }

    #[test]
    fn issue_9_failed_image_check_names_image_and_check() {
        let a =
            verify_check_annotation("reg/team/api:v1", "signature", "no signature for sha256:ab");
        assert_eq!(
            a.to_command(),
            "::error title=kiln verify reg/team/api%3Av1%3A signature::no signature for sha256:ab"
        );
    }

    #[test]
    fn issue_9_annotation_escaping() {
        let a = Annotation {
            level: Level::Warning,
            file: Some("a,b:c.Dockerfile".into()),
            line: Some(4),
            end_line: Some(6),
            col: None,
            title: Some("KL005 x".into()),
            message: "100% sure\r\nnext\n".into(),
        };
        assert_eq!(
            a.to_command(),
            "::warning file=a%2Cb%3Ac.Dockerfile,line=4,endLine=6,title=KL005 x::100%25 sure%0D%0Anext"
        );
    }

    #[test]
    fn diagnostics_need_a_go_file_and_a_line() {
        assert_eq!(
            parse_diagnostic("main.go:1:2: x"),
            Some(("main.go", 1, Some(2), "x"))
        );
        assert_eq!(parse_diagnostic("main.go: x"), None);
        assert_eq!(parse_diagnostic("go: downloading x"), None);
        assert_eq!(parse_diagnostic("cannot find main.go:x: y"), None);
    }
}
