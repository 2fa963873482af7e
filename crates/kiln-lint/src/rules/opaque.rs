//! KL014: build steps kiln-lint cannot see into (`make build`, `./build.sh`, `goreleaser`).
//!
//! The go build flags of such a step live in a Makefile or script, so the rules about them stay
//! silent. Saying nothing would read as "checked and fine"; this rule says which checks were not
//! possible, and leaves out the ones the visible environment already settles.

use super::gobuild::{
    cache_mount_problem, cgo_on_because, debug_info_kept, needs_static, shipped_stages, GoBuild,
};
use super::Ctx;

/// KL014: a shipped Go build stage runs a build driver or script.
pub(crate) fn opaque_steps(ctx: &mut Ctx<'_>, steps: &[GoBuild]) {
    let df = ctx.df;
    if steps.is_empty() {
        return;
    }
    let shipped = shipped_stages(df);
    let final_image = df.final_stage().map(|s| df.root_image(s));
    let static_final = final_image
        .as_ref()
        .filter(|i| needs_static(&i.name))
        .map(|i| i.name.clone());
    for step in steps {
        crate::work::tick(1);
        let Some(cmd) = &step.opaque else { continue };
        if !step.go_toolchain || !shipped.contains(&step.stage) {
            continue;
        }
        let builder = df.stages[step.root_stage].image();
        let mut unchecked = vec![];
        if let Some(base) = &static_final {
            if cgo_on_because(step, &builder).is_some() {
                unchecked.push(format!("KL003 (cgo off for the `{base}` final image)"));
            }
        }
        if !step.trimpath {
            unchecked.push("KL004 (-trimpath)".to_string());
        }
        if debug_info_kept(step, None).is_some() {
            unchecked.push("KL005 (-s in -ldflags)".to_string());
        }
        unchecked.push("KL006 (no -a)".to_string());
        if cache_mount_problem(step).is_some() {
            unchecked.push("KL013 (build cache mount)".to_string());
        }
        ctx.at("KL014", step.ins, format!(
            "`{cmd}` builds through a Makefile or script that kiln-lint cannot see into: if it runs `go build`, these rules could not be checked: {}",
            unchecked.join(", ")),
            "run `go build` in the RUN itself (`RUN CGO_ENABLED=0 go build -trimpath -ldflags \"-s -w\" ...`), or set what you can where kiln-lint sees it (`ENV CGO_ENABLED=0 GOFLAGS=-trimpath`); once checked by hand, silence it with `# kiln-lint ignore=KL014`");
    }
}
