use std::path::PathBuf;

use kiln_config::{render, BuildSettings, TemplateError, TemplateVars};

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Discovery failed.
    #[error(transparent)]
    Discover(#[from] kiln_discover::DiscoverError),
    /// An ldflags template is wrong.
    #[error("service {service}: {source}")]
    Template {
        /// The service.
        service: String,
        /// The template error.
        source: TemplateError,
    },
    /// A flag kiln refuses.
    #[error("{origin}: `{flag}` is not allowed: {why}")]
    Refused {
        /// Where the flag came from (`GOFLAGS`, `kiln.toml [services.api] flags`, ...).
        origin: String,
        /// The flag.
        flag: String,
        /// Why, and what to do instead.
        why: &'static str,
    },
    /// Two main packages would write the same output.
    #[error("main packages {first} and {second} both map to service `{service}`\nhint: give one of them its own name in kiln.toml:\n  [services.<name>]\n  package = \"{second}\"")]
    DuplicateService {
        /// The service name.
        service: String,
        /// One package.
        first: String,
        /// The other package.
        second: String,
    },
    /// A `[services.NAME]` section names a package that is not a main package of this project.
    #[error("kiln.toml [services.{service}]: package `{package}` is not among the main packages found{}\nhint: fix the `package` value or remove the section; main packages found: {found}", source_note(.config))]
    UnknownServicePackage {
        /// The section name.
        service: String,
        /// The configured package.
        package: String,
        /// The configuration file.
        config: Option<PathBuf>,
        /// The main packages of the project, as `./dir`, comma separated.
        found: String,
    },
    /// kiln.toml's choice of services (`exclude`, `only_declared`, sections) cannot be honoured.
    #[error("{message}\nhint: {hint}")]
    Selection {
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// `kiln image` asked for a platform it cannot make an image for.
    #[error("--platform {message}")]
    ImagePlatform {
        /// Why, with a hint.
        message: String,
    },
}

fn source_note(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map(|p| format!(" (in {})", p.display()))
        .unwrap_or_default()
}

/// Flags that defeat what kiln guarantees, with the reason shown to the user.
fn refusal(flag: &str) -> Option<&'static str> {
    let name = flag
        .split('=')
        .next()
        .unwrap_or(flag)
        .trim_start_matches('-');
    match name {
        "toolexec" => Some("it runs an arbitrary program around every compile, so kiln can neither cache nor verify the result; remove it from GOFLAGS/flags"),
        "o" => Some("kiln chooses output paths (dist/<service>/<os>_<arch>/); use `--out DIR` or `[build] out`"),
        "ldflags" => Some("use the `ldflags` list in kiln.toml (it is appended after kiln's `-s -w -buildid=`), so the two do not silently override each other"),
        "tags" => Some("use the `tags` list in kiln.toml so tags are merged across sections"),
        "a" => Some("it forces a rebuild of every package and defeats Go's build cache without changing the output; remove it"),
        _ => None,
    }
}

/// Rejects flags kiln cannot honour; `origin` names where they came from for the message.
pub fn check_flags<'a>(
    origin: &str,
    flags: impl IntoIterator<Item = &'a str>,
) -> Result<(), PlanError> {
    for flag in flags {
        if let Some(why) = refusal(flag) {
            return Err(PlanError::Refused {
                origin: origin.to_string(),
                flag: flag.to_string(),
                why,
            });
        }
    }
    Ok(())
}

/// The `go build` arguments for one target, templates rendered.
pub fn go_args(
    service: &str,
    s: &BuildSettings,
    vars: &TemplateVars,
) -> Result<Vec<String>, PlanError> {
    check_flags(
        &format!("kiln.toml flags of service {service}"),
        s.flags.iter().map(String::as_str),
    )?;
    let mut args = Vec::new();
    if s.trimpath {
        args.push("-trimpath".to_string());
    }
    args.push(format!("-buildvcs={}", s.buildvcs));
    if !s.tags.is_empty() {
        args.push(format!("-tags={}", s.tags.join(",")));
    }
    args.extend(s.flags.iter().cloned());
    let mut ld: Vec<String> = Vec::new();
    if s.strip {
        ld.push("-s".into());
        ld.push("-w".into());
    }
    // An empty build id keeps the binary identical across machines and checkouts.
    ld.push("-buildid=".into());
    for l in &s.ldflags {
        ld.push(render(l, vars).map_err(|source| PlanError::Template {
            service: service.to_string(),
            source,
        })?);
    }
    args.push(format!("-ldflags={}", ld.join(" ")));
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings() -> BuildSettings {
        BuildSettings {
            env: BTreeMap::new(),
            tags: vec![],
            flags: vec![],
            ldflags: vec!["-X main.version={{.Version}}".into()],
            cgo: false,
            trimpath: true,
            strip: true,
            buildvcs: false,
        }
    }

    #[test]
    fn static_defaults() {
        let vars = TemplateVars {
            version: "v1.0.0".into(),
            commit: "abc".into(),
            date: "d".into(),
            ..TemplateVars::default()
        };
        let a = go_args("api", &settings(), &vars).unwrap();
        assert_eq!(
            a,
            vec![
                "-trimpath",
                "-buildvcs=false",
                "-ldflags=-s -w -buildid= -X main.version=1.0.0"
            ]
        );
    }

    #[test]
    fn toolexec_is_refused_everywhere() {
        let e = check_flags("GOFLAGS", ["-mod=mod", "-toolexec=/bin/true"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("GOFLAGS: `-toolexec=/bin/true` is not allowed"),
            "{e}"
        );
        let mut s = settings();
        s.flags = vec!["-toolexec".into(), "x".into()];
        assert!(go_args("api", &s, &TemplateVars::default()).is_err());
        s.flags = vec!["-a".into()];
        assert!(go_args("api", &s, &TemplateVars::default()).is_err());
    }
}
