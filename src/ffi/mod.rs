//! The C ABI. Every function is wrapped in a panic boundary, takes byte strings as pointer + length,
//! checks its pointers for NULL and writes its outputs only when it returns `UP42WH_RESULT_OK`.
//! `include/up42webhooks.h` is generated from these files by cbindgen. This file holds what every
//! family of calls shares (the panic boundary, byte strings, the version and result names); each
//! family has its file: `up42` (keys and UP42 verification), `sign`, `message` (key rings and the
//! other senders), `journal`, `record` (the store's records), `index` (the replay index), `deliver` (one
//! delivery's path through them).
#![allow(non_camel_case_types)]
// Every raw-pointer operation in its own `unsafe {}` block with the reason it is sound, as
// rustls-ffi does: an export's body is not one big unsafe block.
#![deny(unsafe_op_in_unsafe_fn)]

use core::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::code::Code;

mod deliver;
mod index;
mod journal;
mod message;
mod record;
mod sign;
mod up42;

pub use deliver::*;
pub use index::*;
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
    // SAFETY: non-NULL, at most isize::MAX bytes, readable for 'a: the caller's promise.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// `&*ptr`, or an early `Err(Code::NullArgument)` when it is NULL.
macro_rules! try_ref {
    ($p:expr) => {
        // SAFETY: every export's contract: a non-NULL pointer argument points to a valid value of
        // its type that lives for the call.
        match unsafe { ($p).as_ref() } {
            Some(r) => r,
            None => return Err(Code::NullArgument),
        }
    };
}
pub(crate) use try_ref;

/// `&mut *ptr`, or an early `Err(Code::NullArgument)` when it is NULL.
macro_rules! try_mut {
    ($p:expr) => {
        // SAFETY: every export's contract: a non-NULL output pointer points to writable memory for
        // one value of its type, used by nothing else during the call.
        match unsafe { ($p).as_mut() } {
            Some(r) => r,
            None => return Err(Code::NullArgument),
        }
    };
}
pub(crate) use try_mut;

/// A byte string (pointer and length) from C, or an early error: NULL with a length is
/// `null_argument`.
macro_rules! try_bytes {
    ($p:expr, $n:expr) => {
        // SAFETY: every export's contract: a non-NULL byte pointer has its length readable for
        // the call.
        unsafe { $crate::ffi::bytes($p, $n) }?
    };
}
pub(crate) use try_bytes;

/// `Some(&*ptr)`, or `None` for NULL: an optional argument.
macro_rules! opt_ref {
    ($p:expr) => {
        // SAFETY: every export's contract: a non-NULL pointer argument points to a valid value of
        // its type that lives for the call.
        unsafe { ($p).as_ref() }
    };
}
pub(crate) use opt_ref;

/// `Some(&mut *ptr)`, or `None` for NULL: an optional output.
macro_rules! opt_mut {
    ($p:expr) => {
        // SAFETY: every export's contract: a non-NULL output pointer points to writable memory for
        // one value of its type, used by nothing else during the call.
        unsafe { ($p).as_mut() }
    };
}
pub(crate) use opt_mut;

/// `size`, a struct's size field as the caller's header declares it, must be the size this
/// library knows for `T`: `STRUCT_SIZE` otherwise, before anything is read or written.
pub(crate) fn sized<T>(size: usize) -> Result<(), Code> {
    if size == core::mem::size_of::<T>() {
        Ok(())
    } else {
        Err(Code::StructSize)
    }
}

/// The static C name of number `n` of a numbered enum, or NULL for a number that is none of its
/// values: what the `_name` exports answer, so that a caller lists them from 1 up to the first NULL.
pub(crate) fn name_or_null<T: TryFrom<u32>>(
    n: u32,
    name: fn(T) -> &'static core::ffi::CStr,
) -> *const core::ffi::c_char {
    T::try_from(n).map_or(core::ptr::null(), |v| name(v).as_ptr())
}

/// An opaque handle for C: the value boxed, released by `free_handle`.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Drops a handle made by `into_handle` inside the panic boundary; NULL is a no-op: every
/// `_free` export.
///
/// # Safety
/// As `free_handle`.
pub(crate) unsafe fn release<T>(p: *mut T) {
    guard(|| {
        // SAFETY: as the caller promises.
        unsafe { free_handle(p) };
        Ok(())
    });
}

/// Drops a handle made by `into_handle`; NULL is a no-op.
///
/// # Safety
/// `p` must be NULL or come from `into_handle::<T>`, not freed before and no longer in use.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: made by Box::into_raw in into_handle and not freed yet: the caller's promise.
        drop(unsafe { Box::from_raw(p) });
    }
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
