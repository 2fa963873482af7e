//! `kiln_affected::affected` on a real git repository with the real Go toolchain.

mod common;

use common::{affected_in, monorepo, names, run_in, worktree};
use kiln_affected::{AffectedError, AffectedRequest, Reason};

#[test]
fn leaf_package_change_affects_only_its_service() {
    let r = monorepo();
    r.write(
        "internal/billing/billing.go",
        "package billing\n\n// Price in cents.\nfunc Price() int { return 120 }\n",
    );
    r.commit("raise prices");
    let a = r.affected(&worktree());
    assert_eq!(names(&a), vec!["api"]);
    assert_eq!(a.base, "main");
    assert!(
        a.merge_base.is_some() && !a.everything && a.warnings.is_empty(),
        "{a:#?}"
    );
    assert_eq!(
        a.services[0].reasons,
        vec![Reason::File {
            file: "internal/billing/billing.go".into(),
            package: "example.com/shop/internal/billing".into()
        }]
    );
    assert_eq!(a.unaffected, vec!["tool", "worker"]);
}

#[test]
fn shared_package_and_embedded_file_affect_every_importer() {
    let r = monorepo();
    r.write("internal/greet/message.txt", "bonjour\n");
    r.commit("french");
    let a = r.affected(&worktree());
    assert_eq!(names(&a), vec!["api", "worker"]);
    for s in &a.services {
        assert!(
            s.reasons.contains(&Reason::File {
                file: "internal/greet/message.txt".into(),
                package: "example.com/shop/internal/greet".into()
            }),
            "{s:#?}"
        );
    }
    assert_eq!(a.unaffected, vec!["tool"]);

    // The same through the Go file of the shared package, compared against an explicit base.
    r.write("internal/greet/greet.go", "package greet\n\nimport _ \"embed\"\n\n//go:embed message.txt\nvar message string\n\n// Message is the greeting.\nfunc Message() string { return \"> \" + message }\n");
    r.commit("prefix");
    let a = r.affected(&AffectedRequest {
        base: Some("HEAD~1".into()),
        head: Some("HEAD".into()),
    });
    assert_eq!(names(&a), vec!["api", "worker"]);
    assert_eq!(a.changed, vec!["internal/greet/greet.go"]);
}

#[test]
fn module_version_bump_affects_only_services_compiling_that_module() {
    let r = monorepo();
    r.run("go", &["get", "example.com/dep@v1.1.0"]);
    r.commit("bump dep");
    let a = r.affected(&worktree());
    assert_eq!(a.changed, vec!["go.mod", "go.sum"]);
    assert_eq!(names(&a), vec!["worker"], "{a:#?}");
    let reasons = &a.services[0].reasons;
    assert!(
        reasons.contains(&Reason::Module {
            file: "go.mod".into(),
            module: "example.com/dep".into(),
            old: Some("v1.0.0".into()),
            new: Some("v1.1.0".into())
        }),
        "{reasons:#?}"
    );
    assert!(reasons
        .iter()
        .any(|r| matches!(r, Reason::Module { file, .. } if file == "go.sum")));

    // A module only tests use: go.mod and go.sum change, no binary does.
    r.run("go", &["get", "example.com/testonly@v1.1.0"]);
    r.commit("bump testonly");
    let a = r.affected(&AffectedRequest {
        base: Some("HEAD~1".into()),
        head: None,
    });
    assert_eq!(a.changed, vec!["go.mod", "go.sum"]);
    assert!(a.services.is_empty(), "{a:#?}");
    assert_eq!(a.ignored, vec!["go.mod", "go.sum"]);
}

#[test]
fn go_line_change_affects_every_service_of_the_module() {
    let r = monorepo();
    let gomod = std::fs::read_to_string(r.path().join("go.mod")).unwrap();
    r.write("go.mod", &gomod.replace("go 1.22", "go 1.23"));
    let a = r.affected(&worktree());
    assert_eq!(names(&a), vec!["api", "tool", "worker"]);
    assert!(a.services.iter().all(|s| s
        .reasons
        .iter()
        .any(|r| matches!(r, Reason::ModuleFile { why, .. } if why.contains("go line")))));
}

#[test]
fn kiln_toml_changes_affect_the_changed_sections() {
    let r = monorepo();
    let toml = std::fs::read_to_string(r.path().join("kiln.toml")).unwrap();
    r.write(
        "kiln.toml",
        &toml.replace("MODE = \"batch\"", "MODE = \"stream\""),
    );
    r.commit("worker mode");
    let a = r.affected(&worktree());
    assert_eq!(names(&a), vec!["worker"]);
    assert_eq!(
        a.services[0].reasons,
        vec![Reason::Config {
            section: "services.worker".into()
        }]
    );

    // Comments and formatting are not changes; [build] affects everyone.
    r.write(
        "kiln.toml",
        &format!(
            "# a comment\n{}",
            toml.replace("MODE = \"batch\"", "MODE = \"stream\"")
        ),
    );
    let a = r.affected(&AffectedRequest {
        base: Some("HEAD".into()),
        head: None,
    });
    assert!(a.services.is_empty(), "{a:#?}");
    r.write(
        "kiln.toml",
        &toml.replace("[build]\n", "[build]\ntrimpath = true\n"),
    );
    let a = r.affected(&AffectedRequest {
        base: Some("HEAD".into()),
        head: None,
    });
    assert_eq!(names(&a), vec!["api", "tool", "worker"]);
}

#[test]
fn readme_tests_and_undeclared_files_affect_nothing_but_data_files_do() {
    let r = monorepo();
    r.write("README.md", "# shop\n\nMore words.\n")
        .write("internal/billing/billing_test.go", "package billing\n")
        .write("configs/other.yaml", "x: 2\n");
    r.commit("docs");
    let a = r.affected(&worktree());
    assert!(a.services.is_empty(), "{a:#?}");
    assert_eq!(a.changed.len(), 3);
    assert_eq!(a.ignored, a.changed);
    assert_eq!(a.unaffected, vec!["api", "tool", "worker"]);

    r.write("configs/api/app.yaml", "port: 9090\n");
    let a = r.affected(&worktree());
    assert_eq!(names(&a), vec!["api"]);
    assert!(a.services[0].reasons.contains(&Reason::Data {
        file: "configs/api/app.yaml".into(),
        pattern: "configs/api/*.yaml".into()
    }));
}

#[test]
fn uncommitted_untracked_and_deleted_files_count() {
    let r = monorepo();
    // Untracked new Go file in the shared package.
    r.write(
        "internal/greet/extra.go",
        "package greet\n\n// Extra is new.\nfunc Extra() {}\n",
    );
    let a = r.affected(&worktree());
    assert_eq!(a.changed, vec!["internal/greet/extra.go"]);
    assert_eq!(names(&a), vec!["api", "worker"]);
    // Against HEAD as the head revision the untracked file does not exist.
    let a = r.affected(&AffectedRequest {
        base: None,
        head: Some("HEAD".into()),
    });
    assert!(a.changed.is_empty() && a.services.is_empty(), "{a:#?}");

    // A staged deletion: the file is gone from the graph, its directory still names the package.
    std::fs::remove_file(r.path().join("internal/greet/extra.go")).unwrap();
    r.write(
        "internal/billing/tax.go",
        "package billing\n\nfunc tax() int { return 1 }\n",
    );
    r.commit("tax");
    std::fs::remove_file(r.path().join("internal/billing/tax.go")).unwrap();
    r.git(&["add", "-A"]);
    let a = r.affected(&AffectedRequest {
        base: Some("HEAD".into()),
        head: None,
    });
    assert_eq!(a.changed, vec!["internal/billing/tax.go"]);
    assert_eq!(names(&a), vec!["api"]);

    // A rename counts on both sides.
    r.commit("drop tax");
    r.git(&[
        "mv",
        "internal/billing/billing.go",
        "internal/billing/price.go",
    ]);
    let a = r.affected(&AffectedRequest {
        base: Some("HEAD".into()),
        head: None,
    });
    assert_eq!(
        a.changed,
        vec!["internal/billing/billing.go", "internal/billing/price.go"]
    );
    assert_eq!(names(&a), vec!["api"]);
}

#[test]
fn shallow_clone_without_the_base_means_everything_with_a_warning() {
    let r = monorepo();
    r.write("README.md", "# only docs changed\n");
    r.commit("docs");
    // The source's own HEAD is main, like a hosted repository's default branch.
    r.git(&["checkout", "-q", "main"]);
    let clone = tempfile::tempdir().unwrap();
    let url = format!("file://{}", r.path().display());
    let dest = clone.path().join("c");
    run_in(
        clone.path(),
        "git",
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            "--branch",
            "feature",
            &url,
            dest.to_str().unwrap(),
        ],
    );
    let a = affected_in(&dest, &worktree());
    assert!(a.everything, "{a:#?}");
    assert_eq!(names(&a), vec!["api", "tool", "worker"]);
    assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
    assert!(
        a.warnings[0].contains("shallow") && a.warnings[0].contains("hint:"),
        "{}",
        a.warnings[0]
    );
    assert!(a
        .services
        .iter()
        .all(|s| matches!(s.reasons[..], [Reason::BaseMissing { .. }])));

    let a = affected_in(
        &dest,
        &AffectedRequest {
            base: Some("HEAD~1".into()),
            head: None,
        },
    );
    assert!(a.everything && a.services.len() == 3, "{a:#?}");
    // The full clone knows the answer: nothing.
    r.git(&["checkout", "-q", "feature"]);
    assert!(r.affected(&worktree()).services.is_empty());
}

#[test]
fn errors_name_the_cause_and_a_fix() {
    let r = monorepo();
    let plan_dir = tempfile::tempdir().unwrap();
    std::fs::write(plan_dir.path().join("go.mod"), "module x\n\ngo 1.22\n").unwrap();
    std::fs::write(
        plan_dir.path().join("main.go"),
        "package main\n\nfunc main() {}\n",
    )
    .unwrap();
    let project =
        kiln_discover::Project::open(std::path::Path::new("go"), plan_dir.path()).unwrap();
    let config = kiln_config::Config::default();
    let plan = kiln_plan::plan(
        &project,
        &config,
        &kiln_plan::PlanRequest {
            jobs: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let e = kiln_affected::affected(&plan, &config, &worktree()).unwrap_err();
    assert!(matches!(e, AffectedError::NotAGitRepository { .. }), "{e}");
    assert!(e.to_string().contains("hint:"), "{e}");

    let e = kiln_affected::changes(
        r.path(),
        &AffectedRequest {
            base: Some("no-such-branch".into()),
            head: None,
        },
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("no-such-branch") && e.to_string().contains("git fetch"),
        "{e}"
    );
}
