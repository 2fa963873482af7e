//! `kiln.toml`: the one configuration model.
//!
//! Sits beside the flow, not in it: the binary reads `kiln.toml` once, merges command-line flags and
//! hands the result down as plain data to discover -> plan -> key -> ... . No lower crate reads files
//! or the environment for configuration on its own, so what a build used is always what this crate
//! returned.
//!
//! Settings are layered, later layers winning: `[build]` < `[platform."os/arch"]` <
//! `[services.NAME]` < `[services.NAME.platform."os/arch"]`. Maps (`env`) merge by key, lists
//! (`tags`, `flags`, `ldflags`) append, scalars (`cgo`, `trimpath`) override.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod cache;
pub mod env;
mod execute;
mod image;
mod model;
mod names;
mod template;

pub use cache::{CacheSettings, RemoteCache, RemoteEndpoint};
pub use env::{BuildDate, DateSource, Env};
pub use execute::{ExecuteSettings, Fallback, RemoteExecution};
pub use image::{
    check_image_platform, ImageFile, ImageSettings, PortSpec, Profile, ProfileLayer, ResolvedImage,
};
pub use model::{
    package_pattern_matches, BuildSettings, Config, ConfigError, ServiceConfig, Settings,
    CONFIG_FILE,
};
pub use names::{check_service_name, dedup_first_seen, MAX_SERVICE_NAME_LEN, SERVICE_NAME_RULE};
pub use template::{
    render, TemplateError, TemplateErrorKind, TemplateVars, KNOWN as KNOWN_TEMPLATES,
};
