//! Generated files checked with the real consumers: kiln-lint for the Dockerfile and
//! .dockerignore, `systemd-analyze` for the unit, a YAML parser for the Kubernetes manifests.

use kiln_gen::{
    dockerfile, dockerignore, k8s_build_job, k8s_manifests, systemd_unit, systemd_unit_at,
    BuildJobOptions, Port, ServiceSpec,
};
use kiln_lint::{lint, DockerIgnore, LintOptions};
use serde_yaml::Value;
use std::path::Path;
use std::process::Command;

fn specs() -> Vec<ServiceSpec> {
    let base = ServiceSpec::new("api", "./cmd/api");
    let mut sub = ServiceSpec::new("billing-worker", "./cmd/worker");
    sub.module_dir = "services/billing".into();
    sub.ports = vec![Port::tcp(8080), Port::parse("9090/udp").unwrap()];
    sub.env = [
        ("LOG_LEVEL".to_string(), "debug".to_string()),
        (
            "GREETING".to_string(),
            "say \"hi\" to $USER at 100%".to_string(),
        ),
    ]
    .into();
    sub.go_version = "1.25".into();
    sub.go_image_digest = Some(format!("sha256:{}", "c".repeat(64)));
    let mut scratch = ServiceSpec::new("tiny", "example.com/tiny/cmd/tiny");
    scratch.base = "scratch".into();
    scratch.ports.clear();
    scratch.user = 10001;
    vec![base, sub, scratch]
}

#[test]
fn generated_dockerfile_lints_clean_with_generated_dockerignore() {
    for spec in specs() {
        let dir = tempfile::tempdir().unwrap();
        let df = dir.path().join("Dockerfile");
        let text = dockerfile(&spec).unwrap();
        std::fs::write(&df, &text).unwrap();
        std::fs::write(
            dir.path().join(".dockerignore"),
            dockerignore(&spec).unwrap(),
        )
        .unwrap();
        let report = lint(&df, &LintOptions::default()).unwrap();
        assert!(
            report.findings.is_empty(),
            "{}:\n{text}\n{:#?}",
            spec.name,
            report.findings
        );
        // The shape the brief asks for.
        for needle in [
            "WORKDIR /src",
            "go mod download",
            "ENV GOCACHE=/root/.cache/go-build",
            "--mount=type=cache,target=/root/.cache/go-build",
            "CGO_ENABLED=0 go build -trimpath -ldflags \"-s -w -buildid=\"",
            &format!("-o /out/{0} {1}", spec.binary, spec.package),
            &format!("COPY --from=build /out/{0} /{0}", spec.binary),
            &format!("USER {}:{}", spec.user, spec.group),
            &format!("ENTRYPOINT [\"/{}\"]", spec.binary),
        ] {
            assert!(
                text.contains(needle),
                "{} lacks {needle:?}:\n{text}",
                spec.name
            );
        }
        assert_eq!(text.matches("FROM ").count(), 2, "multi-stage");
    }
}

#[test]
fn lint_catches_a_broken_generated_dockerfile() {
    // Guard against a linter that never reports: undo one best practice, get one finding.
    let spec = &specs()[0];
    let dir = tempfile::tempdir().unwrap();
    let df = dir.path().join("Dockerfile");
    let text = dockerfile(spec).unwrap().replace("CGO_ENABLED=0 ", "");
    std::fs::write(&df, text).unwrap();
    std::fs::write(
        dir.path().join(".dockerignore"),
        dockerignore(spec).unwrap(),
    )
    .unwrap();
    let report = lint(&df, &LintOptions::default()).unwrap();
    let ids: Vec<&str> = report.findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(ids, ["KL003"]);
}

#[test]
fn env_values_survive_dockerfile_quoting() {
    let spec = &specs()[1];
    let df = kiln_lint::parse(&dockerfile(spec).unwrap()).unwrap();
    let env: Vec<String> = df
        .instructions
        .iter()
        .filter(|i| i.keyword == "ENV")
        .map(|i| i.args.text())
        .collect();
    assert!(
        env.iter()
            .any(|e| e.contains("GREETING=\"say \\\"hi\\\" to \\$USER at 100%\"")),
        "{env:?}"
    );
}

#[test]
fn generated_dockerignore_excludes_git_and_keeps_sources() {
    for spec in specs() {
        let di = DockerIgnore::parse(&dockerignore(&spec).unwrap()).unwrap();
        let m = spec.module_dir.trim_start_matches("./");
        let m = if m == "." {
            String::new()
        } else {
            format!("{m}/")
        };
        for excluded in [
            ".git",
            ".git/HEAD",
            "dist/api",
            ".idea/workspace.xml",
            "x/.env",
            "Dockerfile",
        ] {
            assert!(
                di.is_excluded(excluded),
                "{}: {excluded} should be excluded",
                spec.name
            );
        }
        assert!(di.is_excluded(&format!("{m}dist/app")));
        for kept in [
            "go.mod",
            "go.sum",
            "main.go",
            "cmd/api/main.go",
            "internal/store/db.go",
            "testdata/x.json",
        ] {
            let path = format!("{m}{kept}");
            assert!(
                !di.is_excluded(&path),
                "{}: {path} should be kept",
                spec.name
            );
        }
    }
}

fn systemd_analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze is needed for this test ({e}): apt-get install -y systemd")
        })
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    for spec in specs() {
        let dir = tempfile::tempdir().unwrap();
        // verify checks that ExecStart points at an executable file.
        let bin_dir = dir.path().join("bin");
        std::fs::create_dir(&bin_dir).unwrap();
        let bin = bin_dir.join(&spec.binary);
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let unit = dir.path().join(format!("{}.service", spec.name));
        let text = systemd_unit_at(&spec, &bin_dir).unwrap();
        std::fs::write(&unit, &text).unwrap();
        let out = systemd_analyze(&["verify", unit.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Lines about the unit itself; unrelated host units may be noisy inside containers.
        let own: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains(&format!("{}.service", spec.name)))
            .collect();
        assert!(
            out.status.success() && own.is_empty(),
            "{text}\nstatus {:?}\n{stderr}",
            out.status
        );
        // The default path is the documented one.
        assert!(systemd_unit(&spec)
            .unwrap()
            .contains(&format!("ExecStart=/usr/local/bin/{}\n", spec.binary)));
        for key in [
            "Restart=always",
            "DynamicUser=yes",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            "CapabilityBoundingSet=",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
            "SystemCallFilter=@system-service",
            "MemoryDenyWriteExecute=yes",
            "LockPersonality=yes",
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            "ProtectKernelLogs=yes",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(key)),
                "{} lacks {key}",
                spec.name
            );
        }
    }
}

#[test]
fn systemd_unit_scores_well_in_systemd_analyze_security() {
    let spec = &specs()[0];
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join(&spec.binary);
    std::fs::write(&bin, "").unwrap();
    let unit = dir.path().join(format!("{}.service", spec.name));
    std::fs::write(&unit, systemd_unit_at(spec, dir.path()).unwrap()).unwrap();
    let out = systemd_analyze(&[
        "security",
        "--offline=yes",
        "--no-pager",
        unit.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no exposure line:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    // "→ Overall exposure level for api.service: 1.2 OK :-)"
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read score from {line:?}"));
    eprintln!("systemd-analyze security exposure: {score}");
    assert!(score <= 2.0, "exposure {score} too high:\n{stdout}");
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{yaml}")))
        .collect()
}
use serde::Deserialize;

fn svc_protocols(svc: &Value) -> Vec<&str> {
    svc["spec"]["ports"]
        .as_sequence()
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p["protocol"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn k8s_manifests_parse_and_are_locked_down() {
    for spec in specs() {
        let yaml = k8s_manifests(&spec).unwrap();
        let all = docs(&yaml);
        assert_eq!(
            all.len(),
            if spec.ports.is_empty() { 1 } else { 2 },
            "{yaml}"
        );
        let dep = &all[0];
        assert_eq!(dep["kind"], "Deployment");
        assert_eq!(dep["metadata"]["name"].as_str(), Some(spec.name.as_str()));
        let pod = &dep["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["runAsUser"].as_u64(),
            Some(u64::from(spec.user))
        );
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let c = &pod["containers"][0];
        assert_eq!(c["image"].as_str(), Some(spec.image.as_str()));
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"][0], "ALL");
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
        assert!(c["resources"]["limits"]["memory"].is_string());
        assert_eq!(
            dep["spec"]["selector"]["matchLabels"],
            dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
                .as_str()
                .map(|n| {
                    let mut m = serde_yaml::Mapping::new();
                    m.insert("app.kubernetes.io/name".into(), n.into());
                    Value::Mapping(m)
                })
                .unwrap()
        );
        if let Some(first) = spec.ports.first() {
            assert_eq!(
                c["readinessProbe"]["tcpSocket"]["port"].as_u64(),
                Some(u64::from(first.number))
            );
            assert_eq!(
                c["livenessProbe"]["tcpSocket"]["port"].as_u64(),
                Some(u64::from(first.number))
            );
            let proto: Vec<&str> = svc_protocols(&all[1]);
            let want: Vec<String> = spec
                .ports
                .iter()
                .map(|p| p.protocol.as_str().to_ascii_uppercase())
                .collect();
            assert_eq!(proto, want, "{yaml}");
            let svc = &all[1];
            assert_eq!(svc["kind"], "Service");
            assert_eq!(
                svc["spec"]["ports"].as_sequence().map(Vec::len),
                Some(spec.ports.len())
            );
            assert_eq!(
                svc["spec"]["selector"],
                dep["spec"]["selector"]["matchLabels"]
            );
        }
        for (k, v) in &spec.env {
            let env = c["env"].as_sequence().unwrap();
            assert!(env
                .iter()
                .any(|e| e["name"].as_str() == Some(k) && e["value"].as_str() == Some(v)));
        }
    }
}

#[test]
fn k8s_build_job_runs_kiln_build() {
    let spec = &specs()[1];
    let opts = BuildJobOptions {
        kiln_image: "registry.example.com/kiln:0.1".into(),
        source_claim: "billing-src".into(),
        extra_args: vec!["--platform".into(), "linux/amd64,linux/arm64".into()],
    };
    let all = docs(&k8s_build_job(spec, &opts).unwrap());
    assert_eq!(all.len(), 1);
    let job = &all[0];
    assert_eq!(job["kind"], "Job");
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    assert_eq!(c["command"][0], "kiln");
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args,
        [
            "build",
            "./cmd/worker",
            "--platform",
            "linux/amd64,linux/arm64"
        ]
    );
    assert_eq!(c["workingDir"], "/workspace/services/billing");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "billing-src"
    );
}

#[test]
fn generators_reject_invalid_specs() {
    let mut spec = ServiceSpec::new("api", "./cmd/api");
    spec.base = "alpine:latest".into();
    assert!(dockerfile(&spec).is_err());
    assert!(systemd_unit(&spec).is_err());
    assert!(k8s_manifests(&spec).is_err());
    assert!(Path::new(&spec.package).is_relative());
}
