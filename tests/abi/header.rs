//! The committed C header and the Lua cdef block must be exactly what their generators produce.
//! `UP42WH_BLESS=1 cargo test --test abi header::` rewrites both.

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generated_header() -> String {
    let config = cbindgen::Config::from_file(root().join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(root())
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("header is UTF-8")
}

/// The header as LuaJIT's `ffi.cdef` takes it: the conditionals evaluated for a C99 compiler (no
/// `__cplusplus`, `__STDC_VERSION__` below C23, no macro defined), then no preprocessor lines,
/// comments or blank lines.
fn cdef_from_header(header: &str) -> String {
    fn condition(directive: &str) -> bool {
        let words: Vec<&str> = directive.split_whitespace().collect();
        match words.as_slice() {
            ["ifdef", _] => false,
            ["ifndef", _] => true,
            ["if", ..]
                if directive.contains("__cplusplus") || directive.contains("__STDC_VERSION__") =>
            {
                // Every such condition in the header asks for C++ or C23; LuaJIT is neither.
                assert!(
                    !directive.contains('!') && !directive.contains('<'),
                    "unexpected condition: #{directive}"
                );
                false
            }
            _ => panic!("cdef generator does not know how to evaluate #{directive}"),
        }
    }
    let mut out = String::new();
    let mut active: Vec<bool> = Vec::new();
    let mut in_comment = false;
    for line in header.lines() {
        let t = line.trim();
        if in_comment {
            in_comment = !t.ends_with("*/");
            continue;
        }
        if t.starts_with("/*") {
            in_comment = !t.ends_with("*/");
            continue;
        }
        if let Some(directive) = t.strip_prefix('#') {
            let directive = directive.trim_start();
            let word = directive.split_whitespace().next().unwrap_or("");
            match word {
                "if" | "ifdef" | "ifndef" => active.push(condition(directive)),
                "else" => {
                    let top = active.last_mut().expect("#else inside a conditional");
                    *top = !*top;
                }
                "endif" => {
                    active.pop().expect("#endif closes a conditional");
                }
                "define" | "include" => {}
                _ => panic!("unexpected directive #{directive}"),
            }
            continue;
        }
        if active.iter().all(|&a| a) && !t.is_empty() && !t.starts_with("//") {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(active.is_empty(), "unbalanced conditionals");
    out
}

fn lua_cdef_file(cdef: &str) -> String {
    format!(
        "-- The C declarations of include/up42webhooks.h for LuaJIT's ffi.cdef, which has no preprocessor.\n\
         -- Generated from the header by `UP42WH_BLESS=1 cargo test --test abi header::`; do not edit.\n\
         return [==[\n{cdef}]==]\n"
    )
}

fn check(path: PathBuf, want: &str) {
    if std::env::var_os("UP42WH_BLESS").is_some() {
        std::fs::write(&path, want).expect("write generated file");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} differs from what is generated; run `UP42WH_BLESS=1 cargo test --test abi header::`",
        path.display()
    );
}

#[test]
fn header_and_lua_cdef_match_their_generators() {
    let header = generated_header();
    assert!(
        header.contains("up42wh_verify"),
        "the header declares the ABI"
    );
    check(root().join("include/up42webhooks.h"), &header);
    check(
        root().join("lua/up42webhooks/cdef.lua"),
        &lua_cdef_file(&cdef_from_header(&header)),
    );
}

#[test]
fn cdef_drops_preprocessor_cplusplus_and_comments() {
    let h = "#ifndef X\n#define X\n/* doc\n more */\nint a;\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\
             /** one */\nint f(void);\n#if defined(__cplusplus)\n}  // extern \"C\"\n#endif\n\
             #ifndef __cplusplus\n#if __STDC_VERSION__ >= 202311L\ntypedef enum e e;\n#else\n\
             typedef uint32_t e;\n#endif\n#endif\n#endif\n";
    assert_eq!(
        cdef_from_header(h),
        "int a;\nint f(void);\ntypedef uint32_t e;\n"
    );
}
