//! Issue 9, items 7-9: `kiln lint` findings are true for the file at hand, `kiln lint --json` works,
//! and `kiln gen` uses kiln.toml's image settings with placeholders nobody can mistake for digests.
//! Everything runs through the real `kiln` binary.

mod common;

use common::{dump, shop, stdout, Repo};

const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

/// Rule ids of every finding in `kiln lint --json` output.
fn rules(v: &serde_json::Value) -> Vec<String> {
    v["reports"]
        .as_array()
        .expect("reports")
        .iter()
        .flat_map(|r| r["findings"].as_array().expect("findings").iter())
        .map(|f| f["rule"].as_str().expect("rule").to_string())
        .collect()
}

/// The user's case from the issue: an alpine builder without a C compiler, `-ldflags=-s`, the
/// cache mount at root's default GOCACHE, named copies and no .dockerignore. Every old finding on
/// it was false.
fn alpine_builder() -> String {
    format!(
        "FROM golang:1.26-alpine@{D} AS build\nWORKDIR /src\nCOPY go.mod go.sum ./\nRUN --mount=type=cache,target=/go/pkg/mod go mod download\nCOPY cmd/ ./cmd/\nRUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \\\n    go build -trimpath -ldflags=-s -o /out/app ./cmd/app\nFROM scratch\nCOPY --from=build /out/app /app\nUSER 65532:65532\nENTRYPOINT [\"/app\"]\n"
    )
}

#[test]
fn issue_9_lint_json_flag_is_accepted() {
    let repo = Repo::new();
    repo.write(
        "Dockerfile",
        "FROM golang:1.26\nCOPY . .\nRUN go build -o /app .\n",
    );
    let with_flag = repo.kiln(&["lint", "--json", "Dockerfile"]);
    assert_eq!(with_flag.status.code(), Some(1), "{}", dump(&with_flag));
    let v: serde_json::Value = serde_json::from_str(&stdout(&with_flag)).expect("JSON");
    assert!(rules(&v).contains(&"KL001".to_string()), "{v:#}");
    assert_eq!(v["exit_code"], 1);
    let with_format = repo.kiln(&["lint", "--format", "json", "Dockerfile"]);
    assert_eq!(stdout(&with_flag), stdout(&with_format));
    // Both spellings at once agree; --json with another format is a usage error, not a guess.
    let both = repo.kiln(&["lint", "--json", "--format", "json", "Dockerfile"]);
    assert_eq!(stdout(&both), stdout(&with_format), "{}", dump(&both));
    let clash = repo.kiln(&["lint", "--json", "--format", "sarif", "Dockerfile"]);
    assert_eq!(clash.status.code(), Some(2), "{}", dump(&clash));
    let err = String::from_utf8_lossy(&clash.stderr);
    assert!(err.contains("--json") && err.contains("hint:"), "{err}");
}

#[test]
fn issue_9_lint_false_positives_are_gone() {
    let repo = Repo::new();
    repo.write("Dockerfile", &alpine_builder());
    let out = repo.kiln(&["lint", "--json", "--severity", "info"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(rules(&v), Vec::<String>::new(), "{v:#}");
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));

    // The same file with each premise changed gets the finding back, with the reason.
    let cases = [
        (
            "go build -trimpath",
            "apk add --no-cache gcc musl-dev && go build -trimpath",
            "KL003",
            "installs a C compiler",
        ),
        ("-ldflags=-s", "-ldflags='-s -w=0'", "KL005", "-w=0"),
        (
            "golang:1.26-alpine",
            "golang:1.21-alpine",
            "KL005",
            "Go 1.21",
        ),
        ("COPY cmd/ ./cmd/", "COPY . .", "KL010", "no .dockerignore"),
        (
            "WORKDIR /src",
            "WORKDIR /src\nENV GOCACHE=/tmp/gocache",
            "KL013",
            "GOCACHE is set to `/tmp/gocache`",
        ),
    ];
    for (from, to, rule, why) in cases {
        let text = alpine_builder().replacen(from, to, 1);
        assert_ne!(text, alpine_builder(), "{from} not in the fixture");
        repo.write("Dockerfile", &text);
        let out = repo.kiln(&["lint", "--json", "--severity", "info"]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        let finding = v["reports"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == rule)
            .unwrap_or_else(|| panic!("{to}: no {rule}: {v:#}"));
        let message = finding["message"].as_str().unwrap();
        assert!(message.contains(why), "{to}: {message}");
    }
}

#[test]
fn issue_9_lint_says_when_the_build_step_is_opaque() {
    let repo = Repo::new();
    repo.write(
        "Dockerfile",
        &format!(
            "FROM golang:1.26@{D} AS build\nWORKDIR /src\nCOPY . .\nRUN make build\nFROM scratch\nCOPY --from=build /src/bin/app /app\nUSER 65532\n"
        ),
    )
    .write(".dockerignore", ".git\n");
    let out = repo.kiln(&["lint"]);
    // Info level: reported, but not a failure at the default threshold.
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Dockerfile:4: info[KL014] opaque-build-step: `make build`"),
        "{text}"
    );
    assert!(
        text.contains("KL003 (cgo off for the `scratch` final image)") && text.contains("KL004"),
        "{text}"
    );
    let out = repo.kiln(&["lint", "--severity", "info"]);
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
}

#[test]
fn issue_9_gen_uses_image_settings() {
    let repo = shop();
    repo.write(
        "kiln.toml",
        "[image]\nrepository = \"ghcr.io/acme\"\ntag = \"v2.0.0\"\nuser = \"1000:2000\"\nports = [8080, \"9090/udp\"]\nenv = { TZ = \"UTC\" }\n\n[services.worker.image]\nports = []\n",
    );
    let out = repo.kiln(&["gen", "dockerfile", "api"]);
    assert!(out.status.success(), "{}", dump(&out));
    let df = stdout(&out);
    for needle in [
        "EXPOSE 8080 9090/udp\n",
        "USER 1000:2000\n",
        "ENV TZ=\"UTC\"\n",
        "FROM golang:1.22@sha256:REPLACE_ME_WITH_THE_REAL_DIGEST AS build",
        "# PLACEHOLDER: replace sha256:REPLACE_ME_WITH_THE_REAL_DIGEST below with the digest of golang:1.22",
    ] {
        assert!(df.contains(needle), "{needle:?} missing:\n{df}");
    }
    assert!(!df.contains("only help when GOCACHE"), "{df}");
    // A service whose ports are configured empty exposes nothing.
    let worker = stdout(&repo.kiln(&["gen", "dockerfile", "worker"]));
    assert!(!worker.contains("EXPOSE"), "{worker}");

    let out = repo.kiln(&["gen", "k8s", "api"]);
    assert!(out.status.success(), "{}", dump(&out));
    let k8s = stdout(&out);
    for needle in [
        "image: \"ghcr.io/acme/api:v2.0.0\"",
        "containerPort: 8080\n              protocol: TCP",
        "containerPort: 9090\n              protocol: UDP",
        "kind: Service",
        "port: 9090\n      targetPort: \"port-1\"\n      protocol: UDP",
        "runAsUser: 1000\n        runAsGroup: 2000",
    ] {
        assert!(k8s.contains(needle), "{needle:?} missing:\n{k8s}");
    }
    assert!(
        !k8s.contains("registry.example.com") && !k8s.contains("PLACEHOLDER"),
        "{k8s}"
    );

    // The generated Dockerfiles still pass every rule, info included.
    assert!(repo
        .kiln(&["gen", "dockerfile", "--write"])
        .status
        .success());
    assert!(repo
        .kiln(&["gen", "dockerignore", "--write"])
        .status
        .success());
    let out = repo.kiln(&["lint", "--json", "--severity", "info"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(rules(&v), Vec::<String>::new(), "{v:#}");
}

#[test]
fn issue_9_gen_without_repository_says_the_image_is_a_placeholder() {
    let repo = shop();
    repo.git(&["init", "-q"]);
    repo.git(&["add", "."]);
    repo.git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-qm",
        "init",
    ]);
    repo.git(&["tag", "v1.4.0"]);
    repo.write(
        "kiln.toml",
        "[image]\nbase = \"alpine:3.20\"\n\n[services.api.image]\nentrypoint = [\"/usr/local/bin/api\", \"serve\"]\n",
    );
    let out = repo.kiln(&["gen", "k8s", "api"]);
    assert!(out.status.success(), "{}", dump(&out));
    let k8s = stdout(&out);
    // The tag kiln image would give it (the git version), under an obviously fake registry.
    assert!(
        k8s.contains("# PLACEHOLDER image: set `repository`")
            && k8s.contains("image: \"registry.example.com/api:v1.4.0"),
        "{k8s}"
    );
    // No ports configured: none guessed, so no Service.
    assert!(!k8s.contains("kind: Service"), "{k8s}");

    let out = repo.kiln(&["gen", "dockerfile", "api"]);
    assert!(out.status.success(), "{}", dump(&out));
    let df = stdout(&out);
    // An unpinned configured base gets the placeholder digest and the command to find the real one.
    assert!(
        df.contains("FROM alpine:3.20@sha256:REPLACE_ME_WITH_THE_REAL_DIGEST\n")
            && df.contains("docker://alpine:3.20"),
        "{df}"
    );
    // Settings the files cannot carry are said, not dropped silently.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`entrypoint` of service `api` is not carried"),
        "{}",
        dump(&out)
    );
}
