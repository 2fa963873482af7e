//! `kiln image` benchmark (`cargo bench -p kiln --bench image`), real components only, against ko
//! and the floor (issue 12). Everything pushes to a `docker-registry` on 127.0.0.1.
//!
//! Cases (`KILN_BENCH_ONLY=p1,leaf,noop,cold,pack`, default all), each printed as times and ratios
//! measured in the same run, medians of `KILN_BENCH_RUNS` (default 3) runs that alternate the
//! contenders (the order rotates every run):
//!
//! - **p1**: the generated monorepo of the build benchmark (`KILN_BENCH_SERVICES`, default 20, x
//!   linux/amd64 + linux/arm64), one shared package edited so all binaries change, then every image
//!   pushed: `kiln image --push` vs `ko build` vs the floor (`go build` of the mains per platform,
//!   warm GOCACHE, nothing packed or pushed). Peak RSS of the kiln and ko processes.
//! - **leaf**: one package of 5 services edited: kiln vs ko vs the floor.
//! - **noop**: nothing changed, everything pushed: kiln vs ko.
//! - **cold**: empty GOCACHE, empty kiln cache, a registry repository never pushed to: wall and CPU
//!   time (user+sys of the whole process tree, from `/proc/self/stat` cutime/cstime) kiln vs ko
//!   (`KILN_BENCH_COLD_RUNS`, default `KILN_BENCH_RUNS`).
//! - **pack**: a Go program embedding `KILN_BENCH_BLOB_MB` (default 100) MB of real Go binaries (the
//!   toolchain's, so it compresses like one): kiln's layer packing in-process for each compression
//!   (MB/s, compressed size, peak RSS of packing alone) vs ko's packing of the same binary, taken
//!   as `ko build` minus `go build` of the same program with the same flags and GOCACHE (the layer
//!   is already in the registry, so ko only compresses it once to learn its digest and HEADs).
//!
//! Every contender has its own copy of the repo, its own GOCACHE and its own registry repository;
//! for p1, leaf and noop (run in that order on the same workspaces) every GOCACHE starts as a copy
//! of one template warmed by the floor's build, followed by one unmeasured first run each. Flags are the same everywhere: `CGO_ENABLED=0 -trimpath
//! -buildvcs=false -ldflags "-s -w -buildid="`; ko gets them through `.ko.yaml`.
//!
//! ko is optional: `KILN_BENCH_KO=/path/to/ko` (`.ci/bench-tools.sh ko` builds the pinned v0.19.1).
//! ko's base image is kiln's own (a tiny `base` program packed by kiln on its built-in base and
//! pushed to the loopback registry first, so ko's images carry one extra ~1 MB layer that is only
//! mounted, never uploaded). Needs `go` on PATH, `git` and `apt-get install -y docker-registry`.

#[path = "../tests/support/registry.rs"]
mod registry;

#[allow(dead_code)]
#[path = "support/monorepo.rs"]
mod monorepo;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

type Res<T> = Result<T, Box<dyn std::error::Error>>;
/// A change to a workspace's repo before run N.
type Edit = dyn Fn(&Path, usize) -> Res<()>;

const PLATFORMS: [(&str, &str); 2] = [("linux", "amd64"), ("linux", "arm64")];
const LDFLAGS: &str = "-s -w -buildid=";
/// Services the leaf edit touches.
const LEAF: usize = 5;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write(root: &Path, rel: &str, content: &str) -> Res<()> {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&p, content).map_err(|e| format!("writing {}: {e}", p.display()).into())
}

struct Bench {
    services: Vec<String>,
    runs: usize,
    cold_runs: usize,
    only: Vec<String>,
    ko: Option<PathBuf>,
    reg: registry::Registry,
    clk_tck: f64,
    rows: Vec<Row>,
    pack_rows: Vec<String>,
    /// A GOCACHE warmed once by the floor's build; every warm workspace starts from a copy, so
    /// the contenders' go caches are in the same state and the standard library is compiled once.
    template: Option<tempfile::TempDir>,
    /// One warm workspace per contender (kiln, ko, floor), shared by p1, leaf and noop in turn.
    warm: Vec<(Who, Ws, String)>,
}

/// One printed table row: a case and its contenders' figures (seconds or MiB).
struct Row {
    case: String,
    kiln: f64,
    ko: Option<f64>,
    floor: Option<f64>,
    unit: &'static str,
}

/// What one measured run cost.
#[derive(Clone, Copy, Default)]
struct Sample {
    wall: f64,
    cpu: f64,
    peak_kib: u64,
}

struct Output {
    sample: Sample,
    stdout: Vec<u8>,
}

/// A contender's copy of the monorepo, with its own caches.
type Ws = monorepo::Workspace;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Kiln,
    Ko,
    Floor,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Kiln => "kiln",
            Who::Ko => "ko",
            Who::Floor => "floor",
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// user+sys of every child this process has waited for (they include their own waited-for
/// children: go's compilers, kiln's and ko's go builds), in seconds.
fn children_cpu(clk_tck: f64) -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    // Fields after the command name start at field 3 (state); cutime is 16, cstime 17.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(13) + tick(14)) / clk_tck
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn reader(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs the commands together to completion: wall time, CPU of the whole process trees, and the
/// largest peak RSS of the started processes themselves (sampled every 5 ms).
fn run(cmds: &mut [Command], clk_tck: f64) -> Res<Output> {
    let cpu0 = children_cpu(clk_tck);
    let started = Instant::now();
    let mut children: Vec<(Child, _, _)> = Vec::new();
    for c in cmds.iter_mut() {
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {c:?}: {e}"))?;
        let out = reader(child.stdout.take().ok_or("stdout")?);
        let err = reader(child.stderr.take().ok_or("stderr")?);
        children.push((child, out, err));
    }
    let mut peak = 0;
    let mut done = vec![false; children.len()];
    while done.iter().any(|d| !d) {
        for (i, (child, _, _)) in children.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            peak = peak.max(vm_hwm_kib(child.id()));
            if child.try_wait()?.is_some() {
                done[i] = true;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = started.elapsed().as_secs_f64();
    let mut stdout = Vec::new();
    for ((mut child, out, err), c) in children.into_iter().zip(cmds.iter()) {
        let status = child.wait()?;
        let o = out.join().map_err(|_| "stdout reader")?;
        let e = err.join().map_err(|_| "stderr reader")?;
        if !status.success() {
            return Err(
                format!("{c:?} failed ({status}):\n{}", String::from_utf8_lossy(&e)).into(),
            );
        }
        stdout.extend(o);
    }
    Ok(Output {
        sample: Sample {
            wall,
            cpu: children_cpu(clk_tck) - cpu0,
            peak_kib: peak,
        },
        stdout,
    })
}

fn git(root: &Path, args: &[&str]) -> Res<()> {
    let ok = Command::new("git")
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|e| format!("git (apt-get install -y git): {e}"))?
        .success();
    if ok {
        Ok(())
    } else {
        Err(format!("git {args:?} failed").into())
    }
}

impl Bench {
    fn wants(&self, case: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == case)
    }

    /// A fresh copy of the monorepo as users have it: a committed git checkout with kiln.toml and
    /// .ko.yaml.
    fn workspace(&self) -> Res<Ws> {
        let ws = Ws::create("kiln-bench-img-", &self.services)?;
        write(
            &ws.repo,
            "kiln.toml",
            "[build]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n[image]\ntag = \"bench\"\n",
        )?;
        write(&ws.repo, ".ko.yaml", &self.ko_yaml())?;
        write(&ws.repo, ".gitignore", "dist/\n")?;
        git(&ws.repo, &["init", "-q"])?;
        git(&ws.repo, &["add", "-A"])?;
        git(
            &ws.repo,
            &[
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.com",
                "commit",
                "-qm",
                "bench",
            ],
        )?;
        git(&ws.repo, &["tag", "v1.0.0"])?;
        git(
            &ws.repo,
            &["remote", "add", "origin", "https://example.com/mono.git"],
        )?;
        Ok(ws)
    }

    fn ko_yaml(&self) -> String {
        format!(
            "defaultBaseImage: {}/base/base:bench\ndefaultPlatforms: [linux/amd64, linux/arm64]\ndefaultEnv: [CGO_ENABLED=0]\ndefaultFlags: [-buildvcs=false]\ndefaultLdflags: [-s, -w, -buildid=]\n",
            self.reg.host()
        )
    }

    fn kiln_cmd(ws: &Ws, dest: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
        ws.isolate(&mut c);
        c.args(["image", "--json", "--push", dest]).args(extra);
        c
    }

    fn ko_cmd(&self, ws: &Ws, repo: &str, pkgs: &[String]) -> Res<Command> {
        let ko = self.ko.as_ref().ok_or("no ko")?;
        let mut c = Command::new(ko);
        ws.isolate(&mut c);
        c.env("KO_DOCKER_REPO", format!("{}/{repo}", self.reg.host()))
            .args([
                "build",
                "--base-import-paths",
                "--platform=linux/amd64,linux/arm64",
                "--sbom=none",
                "--insecure-registry",
                "--tags=bench",
            ])
            .args(pkgs);
        Ok(c)
    }

    fn floor_cmds(ws: &Ws, pattern: &str) -> Vec<Command> {
        PLATFORMS
            .iter()
            .map(|(os, arch)| {
                let mut c = Command::new("go");
                ws.isolate(&mut c);
                c.env("GOOS", os).env("GOARCH", arch).args([
                    "build",
                    "-trimpath",
                    "-buildvcs=false",
                    "-ldflags",
                    LDFLAGS,
                    "-o",
                    &format!("{}/{os}_{arch}/", ws.out.display()),
                    pattern,
                ]);
                c
            })
            .collect()
    }

    fn pkgs(&self) -> Vec<String> {
        self.services.iter().map(|s| format!("./cmd/{s}")).collect()
    }

    /// One run of a contender on its workspace; `repo` is its registry repository (prefix).
    fn measure(&self, who: Who, ws: &Ws, repo: &str, case: &str) -> Res<Sample> {
        let out = match who {
            Who::Kiln => {
                let dest = format!("{}/{repo}", self.reg.host());
                let o = run(&mut [Self::kiln_cmd(ws, &dest, &[])], self.clk_tck)?;
                let j: Value = serde_json::from_slice(&o.stdout)?;
                let pushed = j["push"].as_array().map_or(0, Vec::len);
                if pushed != self.services.len() {
                    return Err(format!("kiln pushed {pushed} images, not one per service").into());
                }
                let t = &j["timings"];
                eprintln!(
                    "   {case:<6} kiln  {:>7.2}s cpu {:>6.2}s rss {:>6.1} MiB  (plan {} build {} pack {} push {} ms; cache hits {}, layers packed {})",
                    o.sample.wall,
                    o.sample.cpu,
                    o.sample.peak_kib as f64 / 1024.0,
                    t["plan_ms"],
                    t["build_ms"],
                    t["package_ms"],
                    t["push_ms"],
                    j["build"]["cache_hits"],
                    j["package"]["layers_packed"]
                );
                o
            }
            Who::Ko => {
                let o = run(&mut [self.ko_cmd(ws, repo, &self.pkgs())?], self.clk_tck)?;
                let refs = String::from_utf8_lossy(&o.stdout).lines().count();
                if refs != self.services.len() {
                    return Err(format!("ko printed {refs} references, not one per service").into());
                }
                eprintln!(
                    "   {case:<6} ko    {:>7.2}s cpu {:>6.2}s rss {:>6.1} MiB",
                    o.sample.wall,
                    o.sample.cpu,
                    o.sample.peak_kib as f64 / 1024.0
                );
                o
            }
            Who::Floor => {
                let o = run(&mut Self::floor_cmds(ws, "./cmd/..."), self.clk_tck)?;
                eprintln!(
                    "   {case:<6} floor {:>7.2}s cpu {:>6.2}s",
                    o.sample.wall, o.sample.cpu
                );
                o
            }
        };
        Ok(out.sample)
    }

    fn contenders(&self, floor: bool) -> Vec<Who> {
        let mut v = vec![Who::Kiln];
        if self.ko.is_some() {
            v.push(Who::Ko);
        }
        if floor {
            v.push(Who::Floor);
        }
        v
    }

    /// Pushes a tiny program's image, on kiln's base, as ko's base image (`base/base:bench`).
    fn push_ko_base(&self) -> Res<()> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path();
        write(root, "go.mod", "module example.com/base\n\ngo 1.22\n")?;
        write(root, "cmd/base/main.go", "package main\n\nfunc main() {}\n")?;
        write(
            root,
            "kiln.toml",
            "[build]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n[image]\ntag = \"bench\"\n",
        )?;
        // Setup, not measured: the user's GOCACHE spares compiling the runtime once more.
        let gocache =
            String::from_utf8(Command::new("go").args(["env", "GOCACHE"]).output()?.stdout)?;
        let ws = Ws {
            repo: root.to_path_buf(),
            gocache: PathBuf::from(gocache.trim()),
            kiln_cache: root.join("kiln-cache"),
            out: root.join("out"),
            _tmp: tempfile::tempdir()?,
        };
        run(
            &mut [Self::kiln_cmd(
                &ws,
                &format!("{}/base/base:bench", self.reg.host()),
                &[],
            )],
            self.clk_tck,
        )?;
        Ok(())
    }

    /// The template GOCACHE, filled by the floor's build on a scratch copy of the repo.
    fn template_gocache(&mut self) -> Res<PathBuf> {
        if self.template.is_none() {
            let t = tempfile::Builder::new()
                .prefix("kiln-bench-gocache-")
                .tempdir()?;
            let mut ws = self.workspace()?;
            ws.gocache = t.path().to_path_buf();
            eprintln!("== warming the template GOCACHE (floor build, not measured)");
            run(&mut Self::floor_cmds(&ws, "./cmd/..."), self.clk_tck)?;
            self.template = Some(t);
        }
        Ok(self
            .template
            .as_ref()
            .ok_or("template")?
            .path()
            .to_path_buf())
    }

    /// The contenders' warm workspaces: a copy of the template GOCACHE and one first run each
    /// (kiln's cache filled, every image pushed).
    fn warm_workspaces(&mut self) -> Res<()> {
        if !self.warm.is_empty() {
            return Ok(());
        }
        let template = self.template_gocache()?;
        for w in self.contenders(true) {
            let ws = self.workspace()?;
            let ok = Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", template.display()))
                .arg(&ws.gocache)
                .status()?
                .success();
            if !ok {
                return Err("copying the template GOCACHE failed".into());
            }
            let repo = format!("warm-{}", w.name());
            self.measure(w, &ws, &repo, "first")?;
            self.warm.push((w, ws, repo));
        }
        Ok(())
    }

    /// `edit` before every measured run of every contender on the warm workspaces (`None`: no
    /// edit, and no floor); runs alternate and the order rotates.
    fn edit_case(&mut self, case: &str, label: &str, edit: Option<&Edit>) -> Res<()> {
        self.warm_workspaces()?;
        let picked: Vec<usize> = (0..self.warm.len())
            .filter(|i| edit.is_some() || self.warm[*i].0 != Who::Floor)
            .collect();
        let who: Vec<Who> = picked.iter().map(|i| self.warm[*i].0).collect();
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); who.len()];
        for run_i in 0..self.runs {
            for k in 0..who.len() {
                let idx = (k + run_i) % who.len();
                let (w, ws, repo) = &self.warm[picked[idx]];
                if let Some(e) = edit {
                    e(&ws.repo, run_i)?;
                }
                samples[idx].push(self.measure(*w, ws, repo, case)?);
            }
        }
        self.add_rows(label, &who, &samples, false);
        Ok(())
    }

    fn add_rows(&mut self, label: &str, who: &[Who], samples: &[Vec<Sample>], cpu: bool) {
        let med = |w: Who, f: &dyn Fn(&Sample) -> f64| -> Option<f64> {
            who.iter()
                .position(|x| *x == w)
                .map(|i| median(samples[i].iter().map(f).collect()))
        };
        let wall = |s: &Sample| s.wall;
        self.rows.push(Row {
            case: label.to_string(),
            kiln: med(Who::Kiln, &wall).unwrap_or(0.0),
            ko: med(Who::Ko, &wall),
            floor: med(Who::Floor, &wall),
            unit: "s",
        });
        if cpu {
            let c = |s: &Sample| s.cpu;
            self.rows.push(Row {
                case: format!("{label}: CPU (user+sys)"),
                kiln: med(Who::Kiln, &c).unwrap_or(0.0),
                ko: med(Who::Ko, &c),
                floor: None,
                unit: "s",
            });
        }
        let rss = |s: &Sample| s.peak_kib as f64 / 1024.0;
        if label.starts_with("P1") || cpu {
            self.rows.push(Row {
                case: format!("{label}: peak RSS of the kiln / ko process"),
                kiln: med(Who::Kiln, &rss).unwrap_or(0.0),
                ko: med(Who::Ko, &rss),
                floor: None,
                unit: "MiB",
            });
        }
    }

    fn cold_case(&mut self) -> Res<()> {
        let who = self.contenders(false);
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); who.len()];
        for run_i in 0..self.cold_runs {
            for k in 0..who.len() {
                let idx = (k + run_i) % who.len();
                let ws = self.workspace()?;
                let repo = format!("cold{run_i}-{}", who[idx].name());
                samples[idx].push(self.measure(who[idx], &ws, &repo, "cold")?);
            }
        }
        self.add_rows(
            "cold (empty GOCACHE, kiln cache and repository)",
            &who,
            &samples,
            true,
        );
        Ok(())
    }

    fn print_table(&self) {
        if !self.rows.is_empty() {
            println!();
            println!(
                "| case | kiln | ko | floor | kiln / ko | kiln / floor |\n|---|---:|---:|---:|---:|---:|"
            );
        }
        let cell = |v: Option<f64>, unit: &str| {
            v.map_or("-".to_string(), |v| {
                if unit == "s" {
                    format!("{v:.2} s")
                } else {
                    format!("{v:.1} {unit}")
                }
            })
        };
        let ratio = |a: f64, b: Option<f64>| {
            b.filter(|b| *b > 0.0)
                .map_or("-".to_string(), |b| format!("{:.2}", a / b))
        };
        for r in &self.rows {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                r.case,
                cell(Some(r.kiln), r.unit),
                cell(r.ko, r.unit),
                cell(r.floor, r.unit),
                ratio(r.kiln, r.ko),
                ratio(r.kiln, r.floor)
            );
        }
        if !self.pack_rows.is_empty() {
            println!();
            for l in &self.pack_rows {
                println!("{l}");
            }
        }
        if self.ko.is_none() {
            println!(
                "\nko rows left out: set KILN_BENCH_KO=/path/to/ko (`.ci/bench-tools.sh ko` builds the pinned ko v0.19.1)"
            );
        }
    }
}

/// Bytes of real Go binaries (the toolchain's own), cycled up to `mb` MiB, so the embedded data
/// compresses like a Go binary does.
fn go_like_blob(path: &Path, mb: usize) -> Res<()> {
    use std::io::Write as _;
    let goroot = String::from_utf8(
        Command::new("go")
            .args(["env", "GOROOT", "GOHOSTOS", "GOHOSTARCH"])
            .output()?
            .stdout,
    )?;
    let mut l = goroot.lines();
    let (root, os, arch) = (
        l.next().ok_or("GOROOT")?,
        l.next().ok_or("GOHOSTOS")?,
        l.next().ok_or("GOHOSTARCH")?,
    );
    let mut sources: Vec<PathBuf> = Vec::new();
    for d in [
        PathBuf::from(root).join("bin"),
        PathBuf::from(root).join(format!("pkg/tool/{os}_{arch}")),
    ] {
        for e in std::fs::read_dir(&d)?.flatten() {
            if e.path().is_file() {
                sources.push(e.path());
            }
        }
    }
    sources.sort();
    if sources.is_empty() {
        return Err("no Go binaries under GOROOT".into());
    }
    let want = (mb as u64) << 20;
    let mut written = 0u64;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut buf = vec![0u8; 1 << 20];
    'outer: loop {
        for s in &sources {
            let mut r = std::fs::File::open(s)?;
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                let n = n.min(usize::try_from(want - written)?);
                f.write_all(&buf[..n])?;
                written += n as u64;
                if written >= want {
                    break 'outer;
                }
            }
        }
    }
    f.flush()?;
    Ok(())
}

/// HEAD-free manifest read: the layer sizes of `repo:tag` (a single-platform image).
fn layer_sizes(host: &str, repo: &str, tag: &str) -> Res<Vec<u64>> {
    use std::io::Write as _;
    let mut s = std::net::TcpStream::connect(host)?;
    write!(
        s,
        "GET /v2/{repo}/manifests/{tag} HTTP/1.0\r\nHost: {host}\r\nAccept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json\r\n\r\n"
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp);
    let body = text.split_once("\r\n\r\n").ok_or("no HTTP body")?.1;
    let m: Value = serde_json::from_str(body)?;
    Ok(m["layers"]
        .as_array()
        .ok_or("manifest without layers")?
        .iter()
        .filter_map(|l| l["size"].as_u64())
        .collect())
}

/// P4: kiln packs the binary in-process with each compression; ko's packing is `ko build` minus
/// `go build` of the same program (its layer already pushed, so ko compresses once for the digest).
fn pack_case(b: &mut Bench) -> Res<()> {
    use kiln_oci::{build_layer, BlobStore, Compression, LayerEntry, LayerRecipe};
    let mb = env_usize("KILN_BENCH_BLOB_MB", 100);
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("repo");
    write(&root, "go.mod", "module example.com/big\n\ngo 1.22\n")?;
    write(
        &root,
        "cmd/big/main.go",
        "package main\n\nimport (\n\t_ \"embed\"\n\t\"fmt\"\n)\n\n//go:embed blob.bin\nvar blob []byte\n\nfunc main() { fmt.Println(len(blob)) }\n",
    )?;
    go_like_blob(&root.join("cmd/big/blob.bin"), mb)?;
    write(&root, ".ko.yaml", &b.ko_yaml())?;
    let ws = Ws {
        repo: root.clone(),
        gocache: tmp.path().join("gocache"),
        kiln_cache: tmp.path().join("kiln-cache"),
        out: tmp.path().join("out"),
        _tmp: tempfile::tempdir()?,
    };
    std::fs::create_dir_all(&ws.gocache)?;
    let go_build = |ws: &Ws| -> Vec<Command> {
        let mut c = Command::new("go");
        ws.isolate(&mut c);
        c.env("GOOS", "linux").env("GOARCH", "amd64").args([
            "build",
            "-trimpath",
            "-buildvcs=false",
            "-ldflags",
            LDFLAGS,
            "-o",
            &format!("{}/big", ws.out.display()),
            "./cmd/big",
        ]);
        vec![c]
    };
    // Warm GOCACHE; the binary kiln packs is this one.
    run(&mut go_build(&ws), b.clk_tck)?;
    let bin = ws.out.join("big");
    let size = std::fs::metadata(&bin)?.len() as f64 / 1e6;
    eprintln!("== pack: binary {size:.1} MB");

    let mut ko_secs = None;
    let mut ko_size = None;
    let mut ko_rss = 0;
    if let Some(ko) = b.ko.clone() {
        let ko_cmd = || -> Command {
            let mut c = Command::new(&ko);
            ws.isolate(&mut c);
            c.env("KO_DOCKER_REPO", format!("{}/pack-ko", b.reg.host()))
                .args([
                    "build",
                    "--base-import-paths",
                    "--platform=linux/amd64",
                    "--sbom=none",
                    "--insecure-registry",
                    "--tags=bench",
                    "./cmd/big",
                ]);
            c
        };
        // First push uploads the layer; later runs find it and only compute its digest.
        run(&mut [ko_cmd()], b.clk_tck)?;
        let (mut kos, mut gos) = (Vec::new(), Vec::new());
        for i in 0..b.runs {
            let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
            for o in order {
                if o == 0 {
                    let s = run(&mut [ko_cmd()], b.clk_tck)?.sample;
                    eprintln!(
                        "   pack   ko build {:.2}s rss {:.1} MiB",
                        s.wall,
                        s.peak_kib as f64 / 1024.0
                    );
                    kos.push(s.wall);
                    ko_rss = ko_rss.max(s.peak_kib);
                } else {
                    let s = run(&mut go_build(&ws), b.clk_tck)?.sample;
                    eprintln!("   pack   go build {:.2}s", s.wall);
                    gos.push(s.wall);
                }
            }
        }
        let (k, g) = (median(kos), median(gos));
        ko_secs = Some((k - g).max(0.001));
        let sizes = layer_sizes(&b.reg.host(), "pack-ko/big", "bench")?;
        ko_size = sizes.into_iter().max();
        b.pack_rows.push(format!(
            "ko: `ko build` {k:.2} s - `go build` {g:.2} s = {:.2} s packing ({:.0} MB/s), layer {:.1} MB",
            k - g,
            size / (k - g).max(0.001),
            ko_size.unwrap_or(0) as f64 / 1e6
        ));
    }

    let cases = [
        ("gzip-parallel:2 (default)", Compression::default()),
        (
            "gzip:6 (default before issue 12)",
            Compression::Gzip { level: 6 },
        ),
        ("gzip:1", Compression::Gzip { level: 1 }),
        ("gzip:2", Compression::Gzip { level: 2 }),
        ("gzip:3", Compression::Gzip { level: 3 }),
        ("gzip:4", Compression::Gzip { level: 4 }),
        ("gzip-parallel:1", Compression::GzipParallel { level: 1 }),
        ("gzip-parallel:3", Compression::GzipParallel { level: 3 }),
        ("gzip-parallel:6", Compression::GzipParallel { level: 6 }),
        (
            "zstd (3, 2 workers)",
            Compression::Zstd {
                level: 3,
                workers: 2,
            },
        ),
    ];
    let mut lines = vec![format!(
        "| packing a {size:.0} MB Go binary | time | MB/s | layer | throughput / ko's | size / ko's | peak RSS of packing |\n|---|---:|---:|---:|---:|---:|---:|"
    )];
    if let (Some(s), Some(z)) = (ko_secs, ko_size) {
        lines.push(format!(
            "| ko (gzip best speed; build minus go build) | {s:.2} s | {:.0} | {:.1} MB | 1.00 | 1.00 | {:.1} MiB (whole `ko build`) |",
            size / s,
            z as f64 / 1e6,
            ko_rss as f64 / 1024.0
        ));
    }
    for (name, c) in cases {
        let mut times = Vec::new();
        let mut layer_size = 0;
        let mut peak = 0;
        for _ in 0..b.runs {
            let dir = tempfile::tempdir()?;
            let store = BlobStore::open(dir.path().join("store"))?;
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            let t = Instant::now();
            let layer = build_layer(
                &store,
                &[LayerEntry::executable("ko-app/big", &bin)],
                &LayerRecipe::new(c),
            )?;
            times.push(t.elapsed().as_secs_f64());
            peak = peak.max(vm_hwm_kib(std::process::id()));
            layer_size = layer.descriptor.size;
        }
        let s = median(times);
        eprintln!("   pack   kiln {name}: {s:.2}s, {layer_size} bytes");
        let vs = |a: Option<String>| a.unwrap_or_else(|| "-".into());
        lines.push(format!(
            "| kiln {name} | {s:.2} s | {:.0} | {:.1} MB | {} | {} | {:.1} MiB |",
            size / s,
            layer_size as f64 / 1e6,
            vs(ko_secs.map(|k| format!("{:.2}", k / s))),
            vs(ko_size.map(|z| format!("{:.3}", layer_size as f64 / z as f64))),
            peak as f64 / 1024.0
        ));
    }
    b.pack_rows.extend(lines);
    Ok(())
}

fn leaf_edit(repo: &Path, services: &[String], n: usize) -> Res<()> {
    for s in services.iter().take(LEAF) {
        write(
            repo,
            &format!("cmd/{s}/edit.go"),
            &format!(
                "package main\n\nimport \"os\"\n\n// editTag changes on every leaf edit of the benchmark.\nvar editTag = \"edit-{n}\"\n\nfunc init() {{\n\tif os.Getenv(\"BENCH_EDIT_TAG\") != \"\" {{\n\t\tprintln(editTag)\n\t}}\n}}\n"
            ),
        )?;
    }
    Ok(())
}

fn shared_edit(repo: &Path, n: usize) -> Res<()> {
    write(
        repo,
        "internal/shared/version.go",
        &format!(
            "package shared\n\n// APIVersion is reported by every service; the benchmark changes it.\nconst APIVersion = \"2026.{}\"\n",
            n + 100
        ),
    )
}

fn main() -> Res<()> {
    // `cargo test --benches` runs this without `--bench`; only run for real with `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("image benchmark: run with `cargo bench -p kiln --bench image`");
        return Ok(());
    }
    let go_ok = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !go_ok {
        return Err("the benchmark needs Go on PATH (https://go.dev/dl)".into());
    }
    let clk_tck = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    let services = env_usize("KILN_BENCH_SERVICES", 20).max(1);
    let runs = env_usize("KILN_BENCH_RUNS", 3).max(1);
    let ko = std::env::var_os("KILN_BENCH_KO")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(k) = &ko {
        let v = Command::new(k)
            .arg("version")
            .output()
            .map_err(|e| format!("KILN_BENCH_KO={}: {e}", k.display()))?;
        eprintln!("ko {}", String::from_utf8_lossy(&v.stdout).trim());
    }
    let mut b = Bench {
        services: (1..=services).map(|i| format!("svc{i:02}")).collect(),
        runs,
        cold_runs: env_usize("KILN_BENCH_COLD_RUNS", runs).max(1),
        only: std::env::var("KILN_BENCH_ONLY")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        ko,
        reg: registry::Registry::start(),
        clk_tck,
        rows: Vec::new(),
        pack_rows: Vec::new(),
        template: None,
        warm: Vec::new(),
    };
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        eprintln!("load average at start: {}", l.trim());
    }
    if b.ko.is_some() {
        b.push_ko_base()?;
    }
    let n = b.services.len();
    if b.wants("p1") {
        b.edit_case(
            "p1",
            &format!("P1: shared package edited, {n} x 2 images pushed"),
            Some(&shared_edit),
        )?;
    }
    if b.wants("leaf") {
        let svcs = b.services.clone();
        b.edit_case(
            "leaf",
            &format!("leaf edit ({} services change)", n.min(LEAF)),
            Some(&move |repo: &Path, i: usize| leaf_edit(repo, &svcs, i)),
        )?;
    }
    if b.wants("noop") {
        b.edit_case("noop", "no-op, everything pushed", None)?;
    }
    if b.wants("cold") {
        b.cold_case()?;
    }
    if b.wants("pack") {
        pack_case(&mut b)?;
    }
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        eprintln!("load average at end: {}", l.trim());
    }
    if !b.rows.is_empty() {
        println!(
            "\n{n} services x 2 platforms, medians of {runs} alternating runs ({} cold)",
            b.cold_runs
        );
    }
    b.print_table();
    Ok(())
}
