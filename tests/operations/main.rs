//! Operating it, in one test binary: the make targets, the README's commands and tables, the
//! Docker files and real containers.

#[path = "../common/mod.rs"]
mod common;

mod containers;
mod docker;
mod make_targets;
mod packages;
mod readme;
mod readme_commands;
mod rockspec;
