//! The shared library's SONAME on Linux: `libup42webhooks.so.0`, the ABI's major number (the
//! version's first non-zero part moves only with an incompatible change: abi/ and
//! tests/abi/abi_compat.rs). A C program linked with `-lup42webhooks` records that name, and a
//! library of another major is not taken for it.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libup42webhooks.so.0");
    }
}
