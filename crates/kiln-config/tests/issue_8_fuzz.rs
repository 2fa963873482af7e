//! Inputs the `config` fuzz target (fuzz/fuzz_targets/config.rs) found, minimised. Each made a
//! public function of kiln-config panic; see fuzz/README.md.

use std::path::Path;

use kiln_config::{render, Config, TemplateVars};

/// `{{.ShortCommit}}` cut the commit at byte 7, which panicked when a multibyte character spans
/// that byte. The fuzzer rendered each ldflag with template values made of the ldflag itself.
#[test]
fn issue_8_fuzz_config_short_commit_multibyte() {
    let cfg = Config::parse(
        "[build]\nldflags=[\"-Xtrue\u{072c}{{}}\"]\n",
        Path::new("kiln.toml"),
    )
    .expect("the minimised input is a valid kiln.toml");
    let ldflag = &cfg.build.ldflags[0];
    let vars = TemplateVars {
        version: ldflag.clone(),
        commit: ldflag.clone(),
        date: ldflag.clone(),
        ..TemplateVars::default()
    };
    // `{{}}` is not a template kiln knows: an error, not a panic.
    let e = render(ldflag, &vars).expect_err("empty template name");
    assert_eq!(e.found, "");
    // The short commit is the first seven characters, whole.
    assert_eq!(
        render("{{.ShortCommit}}", &vars).expect("known template"),
        "-Xtrue\u{072c}"
    );
}
