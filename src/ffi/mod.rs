//! The C ABI. Every function is wrapped in a panic boundary, takes byte strings as pointer + length,
//! checks its pointers for NULL and writes its outputs only when it returns `UP42WH_RESULT_OK`.
//! `include/up42webhooks.h` is generated from these files by cbindgen. This file holds what every
//! family of calls shares (the panic boundary, byte strings, the version and result names); each
//! family has its file: `up42` (keys and UP42 verification), `sign`, `message` (key rings and the
//! other senders), `journal`, `record` (the store's records).
#![allow(non_camel_case_types)]

use core::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::code::Code;

mod journal;
mod message;
mod record;
mod sign;
mod up42;

pub use crate::headers::up42wh_header;
pub use journal::*;
pub use message::*;
pub use record::*;
pub use sign::*;
pub use up42::*;

/// A byte string.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct up42wh_slice {
    pub ptr: *const u8,
    pub len: usize,
}

/// Runs `f` inside the panic boundary: a panic becomes `Code::Panic`, never an unwind into C.
pub fn guard(f: impl FnOnce() -> Result<(), Code>) -> Code {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => Code::Ok,
        Ok(Err(code)) => code,
        Err(_) => Code::Panic,
    }
}

/// A byte string from C: NULL is accepted only with length 0.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` readable bytes that outlive `'a`.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Code> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Code::NullArgument);
    }
    if len > isize::MAX as usize {
        return Err(Code::InvalidArgument);
    }
    Ok(core::slice::from_raw_parts(ptr, len))
}

/// The library version, a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn up42wh_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The stable snake_case name of a result code (e.g. `digest_mismatch`), a static NUL-terminated
/// string; `unknown` for a value that is no code.
#[no_mangle]
pub extern "C" fn up42wh_result_name(code: u32) -> *const c_char {
    Code::from_u32(code)
        .map_or(c"unknown", Code::c_name)
        .as_ptr()
}

/// A short English sentence for a result code, a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn up42wh_result_message(code: u32) -> *const c_char {
    Code::from_u32(code)
        .map_or(c"unknown result code", Code::c_message)
        .as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_code() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let code = guard(|| panic!("boom"));
        std::panic::set_hook(prev);
        assert_eq!(code, Code::Panic);
        assert_eq!(guard(|| Ok(())), Code::Ok);
        assert_eq!(guard(|| Err(Code::Stale)), Code::Stale);
    }
}
