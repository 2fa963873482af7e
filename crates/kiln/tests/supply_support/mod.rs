//! Harness for the supply-chain CLI tests: a real `docker-registry` (distribution 2.8) on
//! 127.0.0.1, a Go binary with real third-party modules served from a local `file://` module
//! proxy, and images assembled with kiln-oci and pushed with kiln-registry.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use kiln_oci::{
    assemble_image, build_kiln_base, build_layer, BaseImage, ImageConfig, KilnBase, LayerEntry,
    LayerRecipe, OciLayout, ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME,
};
use kiln_registry::{BlobUpload, Client, ClientConfig, ImageUpload, ManifestUpload, Repository};
use kiln_test_support::{main_go, GoModule};
use kiln_types::Digest;

pub const PASSWORD: &str = "correct horse battery staple";

// One registry harness for every CLI test: the image tests' one.
#[path = "../support/registry.rs"]
mod registry;
pub use registry::Registry;

/// Repository handles on the test registry.
pub trait RegistryExt {
    /// `127.0.0.1:PORT/<name>`.
    fn repo(&self, name: &str) -> Repository;
}

impl RegistryExt for Registry {
    fn repo(&self, name: &str) -> Repository {
        Repository::new(self.host(), name).unwrap()
    }
}

pub fn client() -> Client {
    Client::new(ClientConfig {
        use_docker_config: false,
        ..ClientConfig::default()
    })
    .unwrap()
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the real `kiln` binary in `dir` with the key password set and no docker config.
pub fn kiln(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_PASSWORD", PASSWORD)
        .env("DOCKER_CONFIG", dir.join("no-docker-config"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run kiln")
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs kiln and asserts success.
pub fn kiln_ok(dir: &Path, args: &[&str]) -> Output {
    let out = kiln(dir, args);
    assert!(out.status.success(), "kiln {args:?} failed: {}", text(&out));
    out
}

/// `kiln verify --json`: (exit code, report).
pub fn verify_json(
    dir: &Path,
    image: &str,
    key: &str,
    policy: Option<&Path>,
) -> (i32, serde_json::Value) {
    let mut args = vec!["verify", image, "--key", key, "--json"];
    let p;
    if let Some(policy) = policy {
        p = policy.display().to_string();
        args.extend(["--policy", p.as_str()]);
    }
    let out = kiln(dir, &args);
    let code = out.status.code().unwrap_or(-1);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("kiln verify printed no JSON ({e}): {}", text(&out)));
    (code, report)
}

/// The check named `name` in a verify report: (passed, detail).
pub fn check<'a>(report: &'a serde_json::Value, name: &str) -> Option<(bool, &'a str)> {
    report["checks"].as_array().unwrap().iter().find_map(|c| {
        (c["name"] == name).then(|| {
            (
                c["passed"].as_bool().unwrap(),
                c["detail"].as_str().unwrap(),
            )
        })
    })
}

/// A Go program built once per test process, depending on two third-party modules served
/// by a `file://` GOPROXY written here (so the go.sum `h1:` hashes are real).
pub struct GoFixture {
    pub dir: PathBuf,
    pub binary: PathBuf,
    /// (module path, version, go.sum h1 hash of the module zip).
    pub modules: Vec<(String, String, String)>,
}

pub const DEPS: [(&str, &str, &str); 2] = [
    ("example.org/dep", "v1.2.3", "Hello"),
    ("example.org/other", "v0.4.0", "Name"),
];

pub fn go_fixture() -> &'static GoFixture {
    static FIXTURE: OnceLock<GoFixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

fn build_fixture() -> GoFixture {
    kiln_test_support::require_go();
    // Kept for the whole test process (the OnceLock is never dropped).
    let dir = tempfile::tempdir().unwrap().keep();
    let proxy = dir.join("proxy");
    for (path, version, func) in DEPS {
        let name = path.rsplit('/').next().unwrap();
        GoModule::new(path)
            .go("1.21")
            .file(
                &format!("{name}.go"),
                &format!(
                    "package {name}\n\nfunc {func}() string {{ return \"{path}@{version}\" }}\n"
                ),
            )
            .publish(&proxy, version);
    }
    let app = dir.join("app");
    let mut module = GoModule::new("example.com/app").go("1.21");
    for (path, version, _) in DEPS {
        module = module.require(path, version);
    }
    module
        .file(
            "main.go",
            &main_go(
                &["fmt", "example.org/dep", "example.org/other"],
                "fmt.Println(dep.Hello(), other.Name())",
            ),
        )
        .write_to(&app);
    let binary = dir.join("app-bin");
    let out = Command::new("go")
        .args(["build", "-trimpath", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(&app)
        .env("CGO_ENABLED", "0")
        .env("GOOS", "linux")
        .env("GOARCH", "amd64")
        .env("GOPROXY", format!("file://{}", proxy.display()))
        .env("GOFLAGS", "-mod=mod -modcacherw")
        .env("GONOSUMDB", "*")
        .env("GONOSUMCHECK", "1")
        .env("GOSUMDB", "off")
        .env("GOWORK", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOMODCACHE", dir.join("modcache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sum = std::fs::read_to_string(app.join("go.sum")).unwrap();
    let modules = DEPS
        .iter()
        .map(|(path, version, _)| {
            let h1 = sum
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() == 3 && f[0] == *path && f[1] == *version).then(|| f[2].to_owned())
                })
                .unwrap_or_else(|| panic!("no go.sum line for {path} {version}:\n{sum}"));
            (path.to_string(), version.to_string(), h1)
        })
        .collect();
    GoFixture {
        dir,
        binary,
        modules,
    }
}

/// What goes into a test image.
#[derive(Clone, Default)]
pub struct ImageSpec {
    /// Config `User` ("" = root).
    pub user: String,
    /// Base image annotations (name, digest).
    pub base: Option<(String, Digest)>,
    /// Record the base as config labels (as `kiln image` does) instead of manifest annotations.
    pub base_in_labels: bool,
    /// Extra files (path in image, file on disk), e.g. a dynamic `/bin/true`.
    pub extra: Vec<(String, PathBuf)>,
    /// A marker file's content, to make otherwise equal images differ.
    pub marker: String,
}

/// Assembles an image (kiln base + `/app` from the Go fixture) into an OCI layout at
/// `layout_dir` tagged `tag`, and returns the manifest digest.
pub fn build_layout(layout_dir: &Path, tag: &str, spec: &ImageSpec) -> Digest {
    let fx = go_fixture();
    let layout = OciLayout::create(layout_dir).unwrap();
    let recipe = LayerRecipe::default().with_mtime(0);
    let kiln_base = build_kiln_base(layout.store(), &KilnBase::default(), &recipe).unwrap();
    let marker = layout_dir.join("marker.txt");
    std::fs::write(&marker, &spec.marker).unwrap();
    let mut entries = vec![
        LayerEntry::executable("/app", &fx.binary),
        LayerEntry::file("/etc/kiln-test-marker", &marker),
    ];
    for (p, f) in &spec.extra {
        entries.push(LayerEntry::executable(p, f));
    }
    let app = build_layer(layout.store(), &entries, &recipe).unwrap();
    let mut base = BTreeMap::new();
    if let Some((name, digest)) = &spec.base {
        base.insert(ANNOTATION_BASE_NAME.to_string(), name.clone());
        base.insert(ANNOTATION_BASE_DIGEST.to_string(), digest.to_string());
    }
    let (annotations, labels) = if spec.base_in_labels {
        (BTreeMap::new(), base)
    } else {
        (base, BTreeMap::new())
    };
    let config = ImageConfig {
        entrypoint: vec!["/app".into()],
        user: spec.user.clone(),
        annotations,
        labels,
        ..ImageConfig::default()
    };
    let image = assemble_image(
        layout.store(),
        &"linux/amd64".parse().unwrap(),
        &BaseImage::Kiln(kiln_base),
        &[app],
        &config,
    )
    .unwrap();
    layout.tag(tag, &image.manifest.descriptor()).unwrap();
    image.manifest.digest
}

/// Builds an image as [`build_layout`] does and pushes it as `repo:tag`.
pub fn push_image(registry: &Registry, repo: &str, tag: &str, spec: &ImageSpec) -> Digest {
    push_image_to(&registry.repo(repo), tag, spec)
}

/// [`push_image`] to any registry (the referrers-API peer too): builds the image in a scratch
/// layout, pushes its blobs and manifest under `tag` and returns the manifest digest.
pub fn push_image_to(repo: &Repository, tag: &str, spec: &ImageSpec) -> Digest {
    let dir = tempfile::tempdir().unwrap();
    let digest = build_layout(dir.path(), tag, spec);
    let layout = OciLayout::open(dir.path()).unwrap();
    let store = layout.store();
    let manifest = store.read_manifest(&digest).unwrap();
    let blobs = std::iter::once(&manifest.config)
        .chain(manifest.layers.iter())
        .map(|d| BlobUpload {
            digest: d.digest,
            size: d.size,
            path: store.path(&d.digest),
            mount_from: None,
        })
        .collect();
    let upload = ImageUpload {
        blobs,
        manifests: Vec::new(),
        root: Some(ManifestUpload {
            media_type: kiln_registry::media::OCI_MANIFEST.into(),
            bytes: std::fs::read(store.path(&digest)).unwrap(),
        }),
        tags: vec![tag.into()],
    };
    let report = rt().block_on(client().push_image(repo, &upload)).unwrap();
    assert_eq!(report.digest, Some(digest));
    digest
}

/// The image spec the issue 10 interop tests push: non-root, told apart by `marker`.
pub fn nonroot_spec(marker: &str) -> ImageSpec {
    ImageSpec {
        user: "65532".into(),
        marker: marker.into(),
        ..ImageSpec::default()
    }
}
