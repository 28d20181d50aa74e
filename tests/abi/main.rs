//! The library and its C ABI, in one test binary: the vectors (RFC 9421, Standard Webhooks,
//! GitHub, UP42's), the structured-field and JSON suites, result codes, the journal's format, the
//! header and cdef, the Lua module in LuaJIT, properties and the fuzz corpora.

#[path = "../common/mod.rs"]
mod common;

// libabigail reads the host's (x86_64) build only.
#[cfg(not(up42wh_qemu))]
mod abi_compat;
mod c_abi;
mod cli;
mod codes;
mod deliver;
mod fuzz_corpora;
// cbindgen is the host's (Cargo.toml): the ARM checks under qemu build without it.
#[cfg(not(up42wh_qemu))]
mod header;
mod index;
mod journal;
mod json_suite;
mod lua_module;
mod luajit_cdef;
mod no_alloc;
mod properties;
mod rfc9421;
mod senders;
mod sf_conformance;
mod up42_vectors;
