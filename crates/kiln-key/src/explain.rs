//! "Why did this rebuild?": the difference between the key inputs of two builds of one target.
//!
//! The comparison is generic over the canonical encoding: both records are flattened to
//! `path -> value` pairs (`env.GOAMD64`, `packages.example.com/m/lib.files.a.go`, ...) and
//! compared, so any input the key covers can be explained without a line of code per field.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{KeyInputs, PackageInput, Prepared};

/// What is remembered about one build of a target: its inputs plus the package details behind the
/// digests, so a changed package can be narrowed down to the changed file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExplainRecord {
    /// The key inputs.
    pub inputs: KeyInputs,
    /// The packages behind `inputs.packages`.
    pub packages: BTreeMap<String, Arc<PackageInput>>,
}

impl From<&Prepared> for ExplainRecord {
    fn from(p: &Prepared) -> Self {
        Self {
            inputs: p.inputs.clone(),
            packages: p.packages.clone(),
        }
    }
}

/// One difference between two builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The input, as a dotted path (`env.GOAMD64`, `packages.fmt.files.print.go`).
    pub input: String,
    /// The earlier value; `None` when the input is new.
    pub before: Option<String>,
    /// The current value; `None` when the input is gone.
    pub after: Option<String>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.before, &self.after) {
            (None, Some(a)) => write!(f, "{} added ({})", self.input, short(a)),
            (Some(b), None) => write!(f, "{} removed (was {})", self.input, short(b)),
            (Some(b), Some(a)) => write!(f, "{}: {} -> {}", self.input, short(b), short(a)),
            (None, None) => write!(f, "{}", self.input),
        }
    }
}

fn short(v: &str) -> String {
    // Hashes are 64 hex digits; 12 are enough to tell two apart in a message.
    if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("{}…", &v[..12])
    } else if v.chars().count() > 120 {
        format!("{}…", v.chars().take(120).collect::<String>())
    } else {
        v.to_string()
    }
}

/// The inputs that differ between `before` and `after`, most specific first: a package whose
/// digest changed is shown by its changed files when both records have its details.
pub fn differences(before: &ExplainRecord, after: &ExplainRecord) -> Vec<Difference> {
    let mut a = BTreeMap::new();
    let mut b = BTreeMap::new();
    flatten(
        "",
        &serde_json::to_value(&before.inputs).unwrap_or_default(),
        &mut a,
    );
    flatten(
        "",
        &serde_json::to_value(&after.inputs).unwrap_or_default(),
        &mut b,
    );
    let mut out = Vec::new();
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x == y {
            continue;
        }
        if let (Some(pkg), Some(_), Some(_)) = (k.strip_prefix("packages."), x, y) {
            if let (Some(p0), Some(p1)) = (before.packages.get(pkg), after.packages.get(pkg)) {
                let mut f0 = BTreeMap::new();
                let mut f1 = BTreeMap::new();
                flatten("", &serde_json::to_value(p0).unwrap_or_default(), &mut f0);
                flatten("", &serde_json::to_value(p1).unwrap_or_default(), &mut f1);
                let inner: BTreeSet<&String> = f0.keys().chain(f1.keys()).collect();
                for i in inner {
                    if f0.get(i) != f1.get(i) {
                        out.push(Difference {
                            input: format!("package {pkg}: {i}"),
                            before: f0.get(i).cloned(),
                            after: f1.get(i).cloned(),
                        });
                    }
                }
                continue;
            }
        }
        out.push(Difference {
            input: k.clone(),
            before: x.cloned(),
            after: y.cloned(),
        });
    }
    out
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                flatten(&join(k), v, out);
            }
        }
        // Argument lists are compared whole: a flag moving is one change, not a cascade.
        serde_json::Value::Array(items) => {
            out.insert(
                prefix.to_string(),
                serde_json::Value::Array(items.clone()).to_string(),
            );
        }
        serde_json::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        serde_json::Value::Null => {
            out.insert(prefix.to_string(), "absent".into());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::tests::base;
    use crate::FileHash;

    fn record(inputs: KeyInputs, files: &[(&str, u8)]) -> ExplainRecord {
        let pkg = PackageInput {
            origin: "main example.com/m".into(),
            dir: "cmd/api".into(),
            files: files
                .iter()
                .map(|(n, b)| (n.to_string(), FileHash([*b; 32])))
                .collect(),
        };
        let mut inputs = inputs;
        inputs
            .packages
            .insert("example.com/m/cmd/api".into(), pkg.digest());
        ExplainRecord {
            inputs,
            packages: BTreeMap::from([("example.com/m/cmd/api".into(), Arc::new(pkg))]),
        }
    }

    #[test]
    fn equal_records_have_no_differences() {
        let r = record(base(), &[("main.go", 1)]);
        assert!(differences(&r, &r).is_empty());
    }

    #[test]
    fn env_change_is_named() {
        let a = record(base(), &[("main.go", 1)]);
        let mut i = base();
        i.env.insert("GOAMD64".into(), "v3".into());
        let b = record(i, &[("main.go", 1)]);
        let d = differences(&a, &b);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].input, "env.GOAMD64");
        assert_eq!(d[0].to_string(), "env.GOAMD64 added (v3)");
    }

    #[test]
    fn changed_package_is_narrowed_to_its_file() {
        let a = record(base(), &[("main.go", 1), ("util.go", 1)]);
        let b = record(base(), &[("main.go", 1), ("util.go", 2)]);
        let d = differences(&a, &b);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].input, "package example.com/m/cmd/api: files.util.go");
    }

    #[test]
    fn args_are_compared_whole() {
        let a = record(base(), &[("main.go", 1)]);
        let mut i = base();
        i.args.push("-race".into());
        let d = differences(&a, &record(i, &[("main.go", 1)]));
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].input, "args");
    }
}
