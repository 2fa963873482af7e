//! kiln.toml text -> `kiln_config::Config`: parse and validate, then everything the build and
//! image pipelines ask the model (resolved settings per service and platform, image settings per
//! profile, rendered ldflags templates). None of it may panic, whatever the file says.

#![no_main]

use std::path::Path;

use kiln_config::{render, Config, TemplateVars};
use kiln_types::Platform;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = Config::parse(text, Path::new("kiln.toml")) else {
        return;
    };
    let host: Platform = "linux/amd64".parse().expect("host platform");
    let root = Path::new("/repo");
    let vars = TemplateVars {
        version: "v1.2.3".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        date: "2024-01-01T00:00:00Z".into(),
        ..TemplateVars::default()
    };
    let _ = cfg.out_dir();
    // Every service the file names, plus one it does not (the defaults path).
    let services: Vec<&str> = cfg
        .services
        .keys()
        .map(String::as_str)
        .chain(["unnamed"])
        .collect();
    let profiles: Vec<Option<&str>> = std::iter::once(None)
        .chain(cfg.profiles.keys().map(|p| Some(p.as_str())))
        .chain([Some("undeclared")])
        .collect();
    for service in &services {
        // Platforms listed anywhere, and those only named by `[platform."..."]` sections.
        let mut platforms = cfg.platforms_for(service, &host);
        platforms.extend(cfg.platform.keys().filter_map(|k| k.parse().ok()));
        for platform in &platforms {
            let settings = cfg.resolve(service, platform);
            for l in &settings.ldflags {
                let _ = render(l, &vars);
                // Template values come from git, but `render` is public: odd values must not panic.
                let odd = TemplateVars {
                    version: l.clone(),
                    commit: l.clone(),
                    date: l.clone(),
                    tag: l.clone(),
                    branch: l.clone(),
                    ..TemplateVars::default()
                };
                let _ = render(l, &odd);
            }
        }
        for profile in &profiles {
            if let Ok(image) = cfg.resolve_image(service, *profile, root) {
                for f in &image.files {
                    let _ = f.mode_bits();
                }
            }
        }
        if let Some(package) = cfg
            .services
            .get(*service)
            .and_then(|s| s.package.as_deref())
        {
            let _ = cfg.service_for_package(package, package);
        }
    }
    let _ = cfg.profile_names();
});
