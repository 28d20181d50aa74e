//! Runs a Lua script in LuaJIT (vendored, through mlua) with the FFI: `make bench` uses it for
//! benches/ffi_vs_openssl.lua. Debian's `luajit` package would replace the LuaJIT that its nginx
//! Lua module needs, so the benchmark does not depend on it.
//!     cargo run --release --example lua_bench -- SCRIPT [ARGS...]

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let script = args.next().ok_or("usage: lua_bench SCRIPT [ARGS...]")?;
    let lua = unsafe { mlua::Lua::unsafe_new() }; // the script needs the FFI
    let arg = lua.create_table()?;
    arg.set(0, script.as_str())?;
    for (i, a) in args.enumerate() {
        arg.set(i + 1, a)?;
    }
    lua.globals().set("arg", arg)?;
    lua.load(std::fs::read_to_string(&script)?)
        .set_name(format!("@{script}"))
        .exec()?;
    Ok(())
}
