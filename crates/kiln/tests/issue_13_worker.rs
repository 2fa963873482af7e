//! Issue 13: `kiln worker` serving a real BuildGrid 0.9.1 (with PostgreSQL, from
//! kiln-test-support's `BuildGridExec`). The test is the REAPI client: it uploads a small Action
//! with `kiln_remote::ReapiClient`, calls `Execute` and checks the result the worker produced.

use std::process::Command;
use std::time::{Duration, Instant};

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::longrunning::operation;
use kiln_remote::{Fetched, ReapiClient, RemoteCache};
use kiln_test_support::buildgrid::BuildGridExec;
use kiln_test_support::worker::KilnWorker;
use kiln_types::Digest;
use prost::Message;

/// The `kiln worker` harness, as the other remote tests use it.
struct WorkerProc;

impl WorkerProc {
    fn start(addr: &str, bot_id: &str, extra: &[&str]) -> KilnWorker {
        KilnWorker::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_kiln")),
            addr,
            bot_id,
            extra,
        )
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn digest_of(bytes: &[u8]) -> re::Digest {
    re::Digest {
        hash: Digest::of_bytes(bytes).hex(),
        size_bytes: bytes.len() as i64,
    }
}

/// The local Go's platform properties, as `kiln worker` advertises them by default.
fn local_platform() -> Vec<(String, String)> {
    kiln_worker::go_platform(std::path::Path::new("go")).expect("go on PATH")
}

/// Uploads an action running `script` over an input root holding `in.txt`, whose output is
/// `out/out.txt`; returns its digest.
async fn upload_action(
    client: &ReapiClient,
    script: &str,
    platform: &[(String, String)],
) -> re::Digest {
    let input = format!("hello from {script}\n").into_bytes();
    let root = re::Directory {
        files: vec![re::FileNode {
            name: "in.txt".into(),
            digest: Some(digest_of(&input)),
            is_executable: false,
            node_properties: None,
        }],
        ..Default::default()
    };
    let mut props: Vec<re::platform::Property> = platform
        .iter()
        .map(|(name, value)| re::platform::Property {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    props.sort_by(|a, b| a.name.cmp(&b.name));
    let command = re::Command {
        arguments: vec!["/bin/sh".into(), "-c".into(), script.into()],
        environment_variables: vec![re::command::EnvironmentVariable {
            name: "PATH".into(),
            value: "/usr/bin:/bin".into(),
        }],
        output_paths: vec!["out/out.txt".into()],
        ..Default::default()
    };
    let action = re::Action {
        command_digest: Some(digest_of(&command.encode_to_vec())),
        input_root_digest: Some(digest_of(&root.encode_to_vec())),
        platform: Some(re::Platform { properties: props }),
        do_not_cache: true,
        ..Default::default()
    };
    let blobs: Vec<(re::Digest, Vec<u8>)> = [
        input,
        root.encode_to_vec(),
        command.encode_to_vec(),
        action.encode_to_vec(),
    ]
    .into_iter()
    .map(|b| (digest_of(&b), b))
    .collect();
    client.batch_update(&blobs).await.expect("upload action");
    digest_of(&action.encode_to_vec())
}

/// Calls Execute and follows the operation until it is done or `within` passed (None).
async fn execute(addr: &str, action: re::Digest, within: Duration) -> Option<re::ExecuteResponse> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    let mut exec = re::execution_client::ExecutionClient::new(channel);
    let req = re::ExecuteRequest {
        action_digest: Some(action),
        skip_cache_lookup: true,
        digest_function: re::digest_function::Value::Sha256 as i32,
        ..Default::default()
    };
    let follow = async {
        let mut stream = exec.execute(req).await.expect("Execute").into_inner();
        let mut name = String::new();
        loop {
            match stream.message().await {
                Ok(Some(op)) => {
                    name = op.name.clone();
                    if op.done {
                        return match op.result.expect("a done operation has a result") {
                            operation::Result::Response(any) => {
                                re::ExecuteResponse::decode(any.value.as_slice())
                                    .expect("ExecuteResponse")
                            }
                            operation::Result::Error(s) => panic!("operation failed: {s:?}"),
                        };
                    }
                }
                // The stream ended or broke before the end: follow the same operation again.
                _ => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    stream = exec
                        .wait_execution(re::WaitExecutionRequest { name: name.clone() })
                        .await
                        .expect("WaitExecution")
                        .into_inner();
                }
            }
        }
    };
    tokio::time::timeout(within, follow).await.ok()
}

async fn read_blob(client: &ReapiClient, d: &re::Digest) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("blob");
    let digest = Digest::from_hex(&d.hash).expect("sha256");
    let fetched = client
        .download(&digest, d.size_bytes as u64, &dest)
        .await
        .expect("download");
    assert_eq!(fetched, Fetched::Done);
    std::fs::read(dest).expect("read blob")
}

fn client(addr: &str) -> ReapiClient {
    ReapiClient::new(RemoteCache::new(&format!("grpc://{addr}")).expect("url")).expect("client")
}

/// Checks that `resp` is a successful run by `worker` whose out.txt holds the input.
async fn assert_copied(
    client: &ReapiClient,
    resp: &re::ExecuteResponse,
    script: &str,
    worker: &str,
) {
    assert_eq!(
        resp.status.as_ref().map(|s| s.code).unwrap_or(0),
        0,
        "{resp:?}"
    );
    let result = resp.result.as_ref().expect("an ActionResult");
    assert_eq!(result.exit_code, 0, "{result:?}");
    assert_eq!(
        result
            .execution_metadata
            .as_ref()
            .map(|m| m.worker.as_str()),
        Some(worker)
    );
    let out = result
        .output_files
        .iter()
        .find(|f| f.path == "out/out.txt")
        .unwrap_or_else(|| panic!("no out/out.txt in {result:?}"));
    let bytes = read_blob(client, out.digest.as_ref().expect("digest")).await;
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        format!("hello from {script}\n")
    );
}

/// Uploads a file with the given content and returns its FileNode.
fn file_node(name: &str, content: &[u8], blobs: &mut Vec<(re::Digest, Vec<u8>)>) -> re::FileNode {
    blobs.push((digest_of(content), content.to_vec()));
    re::FileNode {
        name: name.into(),
        digest: Some(digest_of(content)),
        is_executable: false,
        node_properties: None,
    }
}

/// An input root built from `(path, content)` pairs (paths with `/` make directories); every
/// Directory and file goes into `blobs`. Returns the root's digest.
fn tree(files: &[(&str, &[u8])], blobs: &mut Vec<(re::Digest, Vec<u8>)>) -> re::Digest {
    use std::collections::BTreeMap;
    let mut here: BTreeMap<&str, &[u8]> = BTreeMap::new();
    let mut below: BTreeMap<&str, Vec<(&str, &[u8])>> = BTreeMap::new();
    for (path, content) in files {
        match path.split_once('/') {
            Some((dir, rest)) => below.entry(dir).or_default().push((rest, content)),
            None => {
                here.insert(path, content);
            }
        }
    }
    let dir = re::Directory {
        files: here
            .into_iter()
            .map(|(name, content)| file_node(name, content, blobs))
            .collect(),
        directories: below
            .into_iter()
            .map(|(name, sub)| re::DirectoryNode {
                name: name.into(),
                digest: Some(tree(&sub, blobs)),
            })
            .collect(),
        ..Default::default()
    };
    let bytes = dir.encode_to_vec();
    let digest = digest_of(&bytes);
    blobs.push((digest.clone(), bytes));
    digest
}

/// Uploads an action running `sh -c script` with exactly `env`, over the input root `files`,
/// on the local Go's platform, with outputs `outputs`; returns its digest.
async fn upload_script(
    client: &ReapiClient,
    script: &str,
    env: &[(&str, &str)],
    files: &[(&str, &[u8])],
    outputs: &[&str],
) -> re::Digest {
    let mut blobs = Vec::new();
    let root = tree(files, &mut blobs);
    let command = re::Command {
        arguments: vec!["/bin/sh".into(), "-c".into(), script.into()],
        environment_variables: env
            .iter()
            .map(|(k, v)| re::command::EnvironmentVariable {
                name: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        output_paths: outputs.iter().map(|o| o.to_string()).collect(),
        ..Default::default()
    };
    let mut props: Vec<re::platform::Property> = local_platform()
        .into_iter()
        .map(|(name, value)| re::platform::Property { name, value })
        .collect();
    props.sort_by(|a, b| a.name.cmp(&b.name));
    let action = re::Action {
        command_digest: Some(digest_of(&command.encode_to_vec())),
        input_root_digest: Some(root),
        platform: Some(re::Platform { properties: props }),
        do_not_cache: true,
        ..Default::default()
    };
    for b in [command.encode_to_vec(), action.encode_to_vec()] {
        blobs.push((digest_of(&b), b));
    }
    client.batch_update(&blobs).await.expect("upload action");
    digest_of(&action.encode_to_vec())
}

/// Runs `action` to completion and returns its result, failing with the worker's log and the
/// action's stderr when it did not exit 0.
async fn run_ok(
    client: &ReapiClient,
    addr: &str,
    action: re::Digest,
    worker: &KilnWorker,
) -> re::ActionResult {
    let resp = execute(addr, action, Duration::from_secs(600))
        .await
        .unwrap_or_else(|| panic!("no result\nworker:\n{}", worker.log()));
    let result = resp.result.expect("an ActionResult");
    if result.exit_code != 0 {
        let stderr = match &result.stderr_digest {
            Some(d) => String::from_utf8_lossy(&read_blob(client, d).await).into_owned(),
            None => String::new(),
        };
        panic!(
            "the action failed ({}): {stderr}\nworker:\n{}",
            result.exit_code,
            worker.log()
        );
    }
    result
}

async fn output(client: &ReapiClient, result: &re::ActionResult, path: &str) -> Vec<u8> {
    let file = result
        .output_files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no {path} in {result:?}"));
    read_blob(client, file.digest.as_ref().expect("digest")).await
}

/// The environment the client's Go actions carry (the contract with kiln's remote executor):
/// the toolchain from /kiln/go, caches inside the input root, no network, and the marker.
const GO_ENV: &[(&str, &str)] = &[
    ("CGO_ENABLED", "0"),
    ("GOCACHE", "/kiln/input/.cache/go-build"),
    ("GOENV", "off"),
    ("GOFLAGS", "-mod=mod"),
    ("GOMODCACHE", "/kiln/input/.cache/gomod"),
    ("GOPATH", "/kiln/input/.cache/gopath"),
    ("GOPROXY", "off"),
    ("GOTOOLCHAIN", "local"),
    ("HOME", "/kiln/input/.cache/home"),
    ("KILN_GOCACHEPROG", "worker"),
    (
        "PATH",
        "/kiln/go/bin:/usr/local/go/bin:/usr/lib/go/bin:/usr/bin:/bin",
    ),
];

/// The lease line `worker: lease L: go packages: G gets (A local hits, R remote hits, ...` of a
/// worker's log: (gets, local hits, remote hits, puts).
fn go_package_counts(log: &str) -> (u64, u64, u64, u64) {
    let line = log
        .lines()
        .rfind(|l| l.contains("go packages:"))
        .unwrap_or_else(|| panic!("no go packages line in:\n{log}"));
    let numbers: Vec<u64> = line
        .split("go packages:")
        .nth(1)
        .expect("counts")
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("number"))
        .collect();
    (numbers[0], numbers[1], numbers[2], numbers[4])
}

const GO_MOD: &[u8] = b"module example.com/shop\n\ngo 1.24\n";
const GREET_GO: &[u8] =
    b"package greet\n\nimport \"strings\"\n\nfunc Hello(who string) string { return \"hello, \" + strings.ToUpper(who) }\n";

/// Uploads an action running `script` over a module with the `greet` package and `main_go` as
/// `cmd/app`, whose output is `out/app`.
async fn upload_app(client: &ReapiClient, script: &str, main_go: &[u8]) -> re::Digest {
    upload_script(
        client,
        script,
        GO_ENV,
        &[
            ("go.mod", GO_MOD),
            ("greet/greet.go", GREET_GO),
            ("cmd/app/main.go", main_go),
        ],
        &["out/app"],
    )
    .await
}

/// Runs the copying action of [`upload_action`] on the engine and checks that `bot` (the worker
/// `worker`) ran it within `within`; `after` names what happened before, for the failure message.
fn copy_runs_on(bg: &BuildGridExec, worker: &KilnWorker, bot: &str, within: Duration, after: &str) {
    rt().block_on(async {
        let client = client(&bg.addr);
        let script = "cat in.txt > out/out.txt";
        let action = upload_action(&client, script, &local_platform()).await;
        let resp = execute(&bg.addr, action, within).await.unwrap_or_else(|| {
            panic!(
                "no result after {after}\nworker:\n{}\nbgd:\n{}",
                worker.log(),
                bg.log()
            )
        });
        assert_copied(&client, &resp, script, bot).await;
    });
}

/// Runs a binary an action built; its stdout.
fn run_binary(binary: &[u8]) -> String {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("built");
    std::fs::write(&path, binary).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let ran = Command::new(&path).output().expect("run the built binary");
    String::from_utf8_lossy(&ran.stdout).into_owned()
}

/// The tests that run BuildGrid, in one module so `.ci/run` can run them beside the rest
/// (`--skip buildgrid::` there, this file alone here).
mod buildgrid {
    use super::*;

    #[test]
    fn issue_13_worker_runs_an_action_for_buildgrid() {
        let bg = BuildGridExec::start();
        let worker = WorkerProc::start(&bg.addr, "bot-a", &[]);
        worker.wait_for("session");
        rt().block_on(async {
            let client = client(&bg.addr);
            let script = "cat in.txt > out/out.txt; echo done; echo warn >&2";
            let action = upload_action(&client, script, &local_platform()).await;
            let resp = execute(&bg.addr, action, Duration::from_secs(120))
                .await
                .unwrap_or_else(|| {
                    panic!("no result\nworker:\n{}\nbgd:\n{}", worker.log(), bg.log())
                });
            assert_copied(&client, &resp, script, "bot-a").await;
            let result = resp.result.expect("result");
            let stdout = read_blob(&client, result.stdout_digest.as_ref().expect("stdout")).await;
            assert_eq!(stdout, b"done\n");
            let stderr = read_blob(&client, result.stderr_digest.as_ref().expect("stderr")).await;
            assert_eq!(stderr, b"warn\n");
        });
    }

    #[test]
    fn issue_13_a_worker_with_another_go_never_gets_the_action() {
        let bg = BuildGridExec::start();
        let wrong = WorkerProc::start(
            &bg.addr,
            "bot-other-go",
            &["--platform", "kiln-go-version=go1.0"],
        );
        wrong.wait_for("session");
        rt().block_on(async {
            let client = client(&bg.addr);
            let script = "cat in.txt > out/out.txt";
            let action = upload_action(&client, script, &local_platform()).await;
            // With only the mismatched worker, the action stays queued.
            assert!(
                execute(&bg.addr, action.clone(), Duration::from_secs(15))
                    .await
                    .is_none(),
                "the action ran on a worker with another Go:\n{}",
                wrong.log()
            );
            let right = WorkerProc::start(&bg.addr, "bot-right-go", &[]);
            let resp = execute(&bg.addr, action, Duration::from_secs(120))
                .await
                .unwrap_or_else(|| {
                    panic!("no result\nworker:\n{}\nbgd:\n{}", right.log(), bg.log())
                });
            assert_copied(&client, &resp, script, "bot-right-go").await;
            assert!(!wrong.log().contains("running action"), "{}", wrong.log());
        });
    }

    #[test]
    fn issue_13_a_killed_worker_s_action_is_finished_by_another() {
        let bg = BuildGridExec::start();
        let mut first = WorkerProc::start(&bg.addr, "bot-killed", &[]);
        first.wait_for("session");
        rt().block_on(async {
            let client = client(&bg.addr);
            let script = "sleep 5; cat in.txt > out/out.txt";
            let action = upload_action(&client, script, &local_platform()).await;
            let addr = bg.addr.clone();
            let pending =
                tokio::spawn(async move { execute(&addr, action, Duration::from_secs(240)).await });
            first.wait_for("running action");
            first.kill();
            let second = WorkerProc::start(&bg.addr, "bot-second", &[]);
            let resp = pending.await.expect("execute task").unwrap_or_else(|| {
                panic!(
                    "no result\nsecond worker:\n{}\nbgd:\n{}",
                    second.log(),
                    bg.log()
                )
            });
            assert_copied(&client, &resp, script, "bot-second").await;
        });
    }

    #[test]
    fn issue_13_worker_survives_the_engine_restarting() {
        let mut bg = BuildGridExec::start();
        let worker = WorkerProc::start(&bg.addr, "bot-restart", &[]);
        worker.wait_for("session");
        bg.restart();
        copy_runs_on(
            &bg,
            &worker,
            "bot-restart",
            Duration::from_secs(180),
            "a restart",
        );
    }

    #[test]
    fn issue_13_worker_runs_go_build_with_a_read_only_goroot() {
        let goroot = String::from_utf8(
            Command::new("go")
                .args(["env", "GOROOT"])
                .output()
                .expect("go env GOROOT")
                .stdout,
        )
        .expect("utf-8")
        .trim()
        .to_string();
        let bg = BuildGridExec::start();
        // The toolchain appears at /opt/go inside the sandbox, read-only.
        let worker = WorkerProc::start(
            &bg.addr,
            "bot-go",
            &["--bind-ro", &format!("{goroot}:/opt/go")],
        );
        worker.wait_for("session");
        rt().block_on(async {
            let client = client(&bg.addr);
            let mut blobs = Vec::new();
            let root = re::Directory {
                files: vec![
                    file_node("go.mod", b"module example.com/hello\n\ngo 1.22\n", &mut blobs),
                    file_node(
                        "main.go",
                        b"package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello from the worker\") }\n",
                        &mut blobs,
                    ),
                ],
                ..Default::default()
            };
            let env = [
                ("CGO_ENABLED", "0"),
                ("GOCACHE", "/tmp/gocache"),
                ("GOFLAGS", "-mod=mod"),
                ("GOPATH", "/tmp/gopath"),
                ("GOPROXY", "off"),
                ("GOROOT", "/opt/go"),
                ("GOTOOLCHAIN", "local"),
                ("HOME", "/tmp"),
                ("PATH", "/opt/go/bin:/usr/bin:/bin"),
            ];
            let command = re::Command {
                arguments: ["go", "build", "-trimpath", "-o", "out/hello", "."].map(String::from).to_vec(),
                environment_variables: env
                    .iter()
                    .map(|(k, v)| re::command::EnvironmentVariable {
                        name: k.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                output_paths: vec!["out/hello".into()],
                ..Default::default()
            };
            let mut props: Vec<re::platform::Property> = local_platform()
                .into_iter()
                .map(|(name, value)| re::platform::Property { name, value })
                .collect();
            props.sort_by(|a, b| a.name.cmp(&b.name));
            let action = re::Action {
                command_digest: Some(digest_of(&command.encode_to_vec())),
                input_root_digest: Some(digest_of(&root.encode_to_vec())),
                platform: Some(re::Platform { properties: props }),
                do_not_cache: true,
                ..Default::default()
            };
            for b in [root.encode_to_vec(), command.encode_to_vec(), action.encode_to_vec()] {
                blobs.push((digest_of(&b), b));
            }
            client.batch_update(&blobs).await.expect("upload");
            let resp = execute(&bg.addr, digest_of(&action.encode_to_vec()), Duration::from_secs(400))
                .await
                .unwrap_or_else(|| panic!("no result\nworker:\n{}", worker.log()));
            let result = resp.result.expect("result");
            if result.exit_code != 0 {
                let stderr = match &result.stderr_digest {
                    Some(d) => String::from_utf8_lossy(&read_blob(&client, d).await).into_owned(),
                    None => String::new(),
                };
                panic!("go build failed ({}): {stderr}", result.exit_code);
            }
            let out = result.output_files.iter().find(|f| f.path == "out/hello").expect("out/hello");
            assert!(out.is_executable);
            let binary = read_blob(&client, out.digest.as_ref().expect("digest")).await;
            assert_eq!(run_binary(&binary), "hello from the worker\n");
        });
    }

    #[test]
    fn issue_13_worker_runs_its_go_at_kiln_go_and_keeps_the_env_exact() {
        let bg = BuildGridExec::start();
        // No --bind-ro: the worker's own Go appears at /kiln/go.
        let worker = WorkerProc::start(&bg.addr, "bot-kiln-go", &[]);
        worker.wait_for("session");
        let host_version = String::from_utf8(
            Command::new("go")
                .arg("version")
                .output()
                .expect("go version")
                .stdout,
        )
        .expect("utf-8");
        rt().block_on(async {
            let client = client(&bg.addr);
            let script = "go version > out/version.txt; env | sort > out/env.txt";
            // Without the marker: the Command's environment and nothing else (bwrap and sh add PWD).
            let env = [("PATH", "/kiln/go/bin:/usr/bin:/bin"), ("ANSWER", "42")];
            let action = upload_script(&client, script, &env, &[], &["out/version.txt", "out/env.txt"]).await;
            let result = run_ok(&client, &bg.addr, action, &worker).await;
            let version = output(&client, &result, "out/version.txt").await;
            assert_eq!(String::from_utf8_lossy(&version), host_version);
            let seen = String::from_utf8(output(&client, &result, "out/env.txt").await).expect("utf-8");
            assert_eq!(
                seen,
                "ANSWER=42\nPATH=/kiln/go/bin:/usr/bin:/bin\nPWD=/kiln/input\n",
                "the environment is not exactly the Command's"
            );
            // With the marker, the worker adds GOCACHEPROG (and only that).
            let env = [
                ("PATH", "/kiln/go/bin:/usr/bin:/bin"),
                ("KILN_GOCACHEPROG", "worker"),
            ];
            let action = upload_script(&client, script, &env, &[], &["out/version.txt", "out/env.txt"]).await;
            let result = run_ok(&client, &bg.addr, action, &worker).await;
            let seen = String::from_utf8(output(&client, &result, "out/env.txt").await).expect("utf-8");
            assert_eq!(
                seen,
                "GOCACHEPROG=/kiln/bin/kiln gocacheprog --connect /kiln/gocache/sock\nKILN_GOCACHEPROG=worker\nPATH=/kiln/go/bin:/usr/bin:/bin\nPWD=/kiln/input\n"
            );
        });
    }

    #[test]
    fn issue_13_go_packages_built_on_one_worker_are_remote_hits_on_another() {
        let bg = BuildGridExec::start();
        let script = "go build -trimpath -o out/app ./cmd/app";
        let mut a = WorkerProc::start(&bg.addr, "bot-go-a", &[]);
        a.wait_for("session");
        rt().block_on(async {
            let client = client(&bg.addr);
            let first = upload_app(&client, script, b"package main\n\nimport (\n\t\"fmt\"\n\t\"example.com/shop/greet\"\n)\n\nfunc main() { fmt.Println(greet.Hello(\"a\")) }\n").await;
            run_ok(&client, &bg.addr, first, &a).await;
            let (gets, _, _, puts) = go_package_counts(&a.log());
            assert!(gets > 0 && puts > 0, "worker A did not use the cache:\n{}", a.log());
        });
        a.kill();

        // Another worker, with an empty local tier: a different program importing the same package.
        let b = WorkerProc::start(&bg.addr, "bot-go-b", &[]);
        b.wait_for("session");
        rt().block_on(async {
            let client = client(&bg.addr);
            let second = upload_app(&client, script, b"package main\n\nimport (\n\t\"fmt\"\n\t\"example.com/shop/greet\"\n)\n\nfunc main() { fmt.Println(greet.Hello(\"b\") + \"!\") }\n").await;
            let result = run_ok(&client, &bg.addr, second, &b).await;
            let (gets, local, remote, _) = go_package_counts(&b.log());
            eprintln!("worker B: {gets} gets, {local} local hits, {remote} remote hits");
            assert_eq!(local, 0, "worker B's local tier was not empty:\n{}", b.log());
            assert!(remote > 0, "no remote hits on worker B:\n{}", b.log());
            let binary = output(&client, &result, "out/app").await;
            assert_eq!(run_binary(&binary), "hello, B!\n");
        });
    }

    #[test]
    fn issue_13_a_cancelled_operation_kills_the_sandbox() {
        use bazel_remote_apis::google::longrunning::{
            operations_client::OperationsClient, CancelOperationRequest,
        };
        let bg = BuildGridExec::start();
        let worker = WorkerProc::start(&bg.addr, "bot-cancel", &[]);
        worker.wait_for("session");
        rt().block_on(async {
            let client = client(&bg.addr);
            let env = [("PATH", "/usr/bin:/bin")];
            let action = upload_script(&client, "sleep 600", &env, &[], &[]).await;
            let channel = tonic::transport::Channel::from_shared(format!("http://{}", bg.addr))
                .expect("uri")
                .connect_lazy();
            let mut exec = re::execution_client::ExecutionClient::new(channel.clone());
            let mut stream = exec
                .execute(re::ExecuteRequest {
                    action_digest: Some(action),
                    skip_cache_lookup: true,
                    digest_function: re::digest_function::Value::Sha256 as i32,
                    ..Default::default()
                })
                .await
                .expect("Execute")
                .into_inner();
            let name = stream
                .message()
                .await
                .expect("operation")
                .expect("a first operation message")
                .name;
            let lease_line = "running action";
            let deadline = Instant::now() + Duration::from_secs(120);
            while !worker.log().contains(lease_line) {
                assert!(Instant::now() < deadline, "the sleep never started");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // BuildGrid answers UNAVAILABLE ("failed to lock the bot") while the bot holds its
            // session row in a long poll: a transient answer, asked again as kiln's client does.
            let mut tries = 0;
            loop {
                match OperationsClient::new(channel.clone())
                    .cancel_operation(CancelOperationRequest { name: name.clone() })
                    .await
                {
                    Ok(_) => break,
                    Err(s) if s.code() == tonic::Code::Unavailable && tries < 20 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(s) => panic!("CancelOperation: {s:?}"),
                }
            }
        });
        worker.wait_for("cancelled by the engine, sandbox killed");
        // The worker is free again: the next action runs on it.
        copy_runs_on(
            &bg,
            &worker,
            "bot-cancel",
            Duration::from_secs(120),
            "a cancel",
        );
    }

    /// Runs two actions with the same three input files on a worker started with `extra`;
    /// returns the worker's `inputs:` line of each, and the worker.
    fn two_actions_with_the_same_inputs(extra: &[&str]) -> ([String; 2], KilnWorker) {
        let bg = BuildGridExec::start();
        let worker = WorkerProc::start(&bg.addr, "bot-inputs", extra);
        worker.wait_for("session");
        let files: &[(&str, &[u8])] = &[
            ("go.mod", GO_MOD),
            ("greet/greet.go", GREET_GO),
            ("notes.txt", b"shared input\n"),
        ];
        let env = [("PATH", "/usr/bin:/bin")];
        let mut lines = [String::new(), String::new()];
        rt().block_on(async {
            let client = client(&bg.addr);
            for (n, script) in [
                "cat go.mod greet/greet.go > out/all.txt",
                "cat notes.txt greet/greet.go > out/all.txt",
            ]
            .into_iter()
            .enumerate()
            {
                let action = upload_script(&client, script, &env, files, &["out/all.txt"]).await;
                run_ok(&client, &bg.addr, action, &worker).await;
                let log = worker.log();
                let line = log
                    .lines()
                    .filter(|l| l.contains(": inputs: "))
                    .nth(n)
                    .unwrap_or_else(|| panic!("no inputs line for action {n}:\n{log}"));
                lines[n] = line.to_string();
            }
        });
        (lines, worker)
    }

    #[test]
    fn issue_13_a_second_action_with_the_same_inputs_downloads_nothing() {
        let ([first, second], _worker) = two_actions_with_the_same_inputs(&[]);
        // The first action's three small files come in one batch call.
        assert!(
            first.ends_with("inputs: 3 files downloaded (1 batch calls), 0 from the local cache"),
            "{first}"
        );
        assert!(
            second.ends_with("inputs: 0 files downloaded (0 batch calls), 3 from the local cache"),
            "{second}"
        );
    }

    /// `--cache-size` bounds what the worker keeps between actions: with 0, the inputs the first
    /// action cached are removed before the second starts, which downloads them again.
    #[test]
    fn worker_keeps_its_caches_within_cache_size() {
        let ([first, second], worker) = two_actions_with_the_same_inputs(&["--cache-size", "0"]);
        for line in [&first, &second] {
            assert!(
                line.ends_with(
                    "inputs: 3 files downloaded (1 batch calls), 0 from the local cache"
                ),
                "{line}\n{}",
                worker.log()
            );
        }
        let log = worker.log();
        assert!(
            log.contains("caches trimmed: 3 files"),
            "no trim reported:\n{log}"
        );
    }
}
