//! Second stage of kiln's flow: discover -> **plan** -> key -> cache -> execute -> verify -> ...
//!
//! A [`Plan`] is the list of [`Target`]s (one per service and platform) with everything a build
//! needs spelled out: the environment, the exact `go build` arguments (static by default:
//! `CGO_ENABLED=0`, `-trimpath`, `-ldflags=-s -w -buildid=`, `-buildvcs=false`), and the import graph
//! of the build context it belongs to. Later stages never re-derive settings; what the plan says is
//! what is hashed into the key, what runs and what lands in the manifest.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod args;
pub mod flags;
mod plan;
mod select;

pub use args::{check_flags, go_args, PlanError};
pub use plan::{left_out_cgo_files, plan, plan_images, Context, Plan, PlanRequest, Target};
