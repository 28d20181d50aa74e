//! The LuaRocks rockspec: it names every file of the Lua module and the crate's version, and
//! `luarocks make` into a tree of its own (Debian's luarocks) builds the library with cargo and
//! installs both where the tree's Lua finds them: LuaJIT loads the module and it loads the library.

use std::process::Command;

use crate::common::make::{release_dir, run};

/// The crate's version (Cargo.toml), which the rockspec's must be.
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[test]
fn luarocks_make_installs_the_module_and_the_library_where_luajit_finds_them() {
    let root = crate::common::root();
    let rockspec = root.join(format!("rockspecs/up42webhooks-{VERSION}-1.rockspec"));
    let text = std::fs::read_to_string(&rockspec).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the crate's version has a rockspec)",
            rockspec.display()
        )
    });
    assert!(text.contains(&format!("version = \"{VERSION}-1\"")));
    for entry in std::fs::read_dir(root.join("lua/up42webhooks")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let module = name.trim_end_matches(".lua");
        assert!(
            text.contains(&format!(
                "[\"up42webhooks.{module}\"] = \"lua/up42webhooks/{name}\""
            )),
            "the rockspec installs lua/up42webhooks/{name}"
        );
    }

    // The library is built where release_dir() builds it (the cargo test running us holds the
    // default target directory).
    let target = release_dir().parent().unwrap().to_path_buf();
    let tree = std::env::temp_dir().join(format!("up42wh-rocks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tree);
    let mut make = Command::new("luarocks");
    crate::common::hermetic(&mut make)
        .args(["--lua-version=5.1", "make", "--tree"])
        .arg(&tree)
        .arg(&rockspec)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&root);
    run(&mut make, "luarocks make");
    // The tree's own paths, as `luarocks path` gives them to a shell.
    let paths = |which: &str| {
        let out = run(
            Command::new("luarocks")
                .args(["--lua-version=5.1", "path", which, "--tree"])
                .arg(&tree),
            "luarocks path",
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let (path, cpath) = (paths("--lr-path"), paths("--lr-cpath"));
    let loaded = run(
        Command::new("luajit")
            .args([
                "-e",
                "local n = require('up42webhooks.native') io.write(n.version())",
            ])
            .env("LUA_PATH", format!("{};;", path.trim()))
            .env("LUA_CPATH", format!("{};;", cpath.trim())),
        "luajit loading the module",
    );
    assert_eq!(String::from_utf8_lossy(&loaded.stdout), VERSION);
    let _ = std::fs::remove_dir_all(&tree);
}
