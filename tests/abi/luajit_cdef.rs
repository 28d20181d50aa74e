//! LuaJIT (vendored, through mlua) accepts the generated cdef block, lays the structs out as Rust
//! does, and verifies a reference vector through the FFI: the declarations the Lua module uses are
//! right, not only textually in sync with the header.

use mlua::Lua;
use up42webhooks::ffi::up42wh_signed as Signed;
use up42webhooks::ffi::{
    up42wh_header, up42wh_options, up42wh_sign_options, up42wh_slice, up42wh_verified,
};
use up42webhooks::ffi::{up42wh_journal_stats, up42wh_record};
use up42webhooks::ffi::{up42wh_message_options, up42wh_message_verified, up42wh_request};

#[test]
fn luajit_loads_the_cdef_and_verifies_through_the_ffi() {
    let lua = unsafe { Lua::unsafe_new() }; // the FFI is an "unsafe" standard library for mlua
    let cdef =
        std::fs::read_to_string(crate::common::root().join("lua/up42webhooks/cdef.lua")).unwrap();
    let v = crate::common::up42_vectors()
        .into_iter()
        .find(|v| v.name == "1k SHA-256 plain article")
        .unwrap();

    let globals = lua.globals();
    globals
        .set("CDEF", lua.load(&cdef).eval::<String>().unwrap())
        .unwrap();
    globals
        .set("LIB", crate::common::cdylib().to_str().unwrap())
        .unwrap();
    globals
        .set("SECRET", lua.create_string(&v.secrets[0]).unwrap())
        .unwrap();
    globals
        .set("RAW", lua.create_string(v.raw()).unwrap())
        .unwrap();
    globals
        .set("BODY", lua.create_string(&v.body).unwrap())
        .unwrap();
    globals.set("NOW", v.now).unwrap();

    let sizes: Vec<usize> = lua
        .load(
            r#"
            local ffi = require "ffi"
            ffi.cdef(CDEF)
            return ffi.sizeof("up42wh_slice"), ffi.sizeof("up42wh_header"), ffi.sizeof("up42wh_options"),
                   ffi.sizeof("up42wh_verified"), ffi.sizeof("up42wh_sign_options"), ffi.sizeof("up42wh_signed"),
                   ffi.offsetof("up42wh_verified", "body_sha256"), ffi.offsetof("up42wh_signed", "signature_len"),
                   ffi.sizeof("up42wh_request"), ffi.sizeof("up42wh_message_options"),
                   ffi.offsetof("up42wh_message_options", "max_age"), ffi.offsetof("up42wh_message_options", "require_digest"),
                   ffi.sizeof("up42wh_message_verified"), ffi.offsetof("up42wh_message_verified", "expires"),
                   ffi.offsetof("up42wh_message_verified", "nonce"), ffi.offsetof("up42wh_message_verified", "nonce_len"),
                   ffi.sizeof("up42wh_record"), ffi.offsetof("up42wh_record", "key"),
                   ffi.offsetof("up42wh_record", "digest"), ffi.offsetof("up42wh_record", "body"),
                   ffi.sizeof("up42wh_journal_stats"), ffi.offsetof("up42wh_journal_stats", "bytes"),
                   ffi.offsetof("up42wh_journal_stats", "max_time")
        "#,
        )
        .eval::<mlua::MultiValue>()
        .unwrap()
        .into_iter()
        .map(|x| x.as_number().or(x.as_integer().map(|i| i as f64)).unwrap() as usize)
        .collect();
    use std::mem::{offset_of, size_of};
    assert_eq!(
        sizes,
        [
            size_of::<up42wh_slice>(),
            size_of::<up42wh_header>(),
            size_of::<up42wh_options>(),
            size_of::<up42wh_verified>(),
            size_of::<up42wh_sign_options>(),
            size_of::<Signed>(),
            offset_of!(up42wh_verified, body_sha256),
            offset_of!(Signed, signature_len),
            size_of::<up42wh_request>(),
            size_of::<up42wh_message_options>(),
            offset_of!(up42wh_message_options, max_age),
            offset_of!(up42wh_message_options, require_digest),
            size_of::<up42wh_message_verified>(),
            offset_of!(up42wh_message_verified, expires),
            offset_of!(up42wh_message_verified, nonce),
            offset_of!(up42wh_message_verified, nonce_len),
            size_of::<up42wh_record>(),
            offset_of!(up42wh_record, key),
            offset_of!(up42wh_record, digest),
            offset_of!(up42wh_record, body),
            size_of::<up42wh_journal_stats>(),
            offset_of!(up42wh_journal_stats, bytes),
            offset_of!(up42wh_journal_stats, max_time),
        ]
    );

    let (name, created, key_index, tampered): (String, i64, i64, String) = lua
        .load(
            r#"
            local ffi = require "ffi"
            -- Kept in a global: a collected clib unloads the .so before the key's finalizer runs
            -- (the Lua module keeps its clib in an upvalue for the same reason).
            UP42WH = ffi.load(LIB)
            local C = UP42WH
            local secret = ffi.new("up42wh_slice[1]", {{ffi.cast("const uint8_t *", SECRET), #SECRET}})
            local key = ffi.new("up42wh_key *[1]")
            assert(C.up42wh_key_new(secret, 1, key) == C.UP42WH_RESULT_OK)
            key = ffi.gc(key[0], C.up42wh_key_free)
            local out = ffi.new("up42wh_verified")
            local rc = C.up42wh_verify_raw(key, RAW, #RAW, BODY, #BODY, NOW, nil, out)
            local bad = C.up42wh_verify_raw(key, RAW, #RAW, BODY:sub(2), #BODY - 1, NOW, nil, nil)
            return ffi.string(C.up42wh_result_name(rc)), tonumber(out.created), tonumber(out.key_index),
                   ffi.string(C.up42wh_result_name(bad))
        "#,
        )
        .eval()
        .unwrap();
    assert_eq!(
        (name.as_str(), created, key_index),
        ("ok", 1_700_000_000, 0)
    );
    assert_eq!(tampered, "digest_mismatch");
}
