//! The real Lua module, loaded in LuaJIT (vendored, through mlua) with a small fake `ngx`
//! (tests/lua/fake_ngx.lua) and calling the real library through the FFI. cjson is provided by
//! serde_json: Debian's cjson.so cannot be loaded into a statically linked LuaJIT.

mod common;

use mlua::{Function, Lua, LuaSerdeExt, Table, Value};
use up42webhooks::format_rfc3339;

const SECRET: &str = "lua-test-secret";
const NOW: i64 = 1_700_000_000;

/// A Lua state with the fake ngx, cjson, and the module's paths; returns it and the fake.
fn setup() -> (Lua, Table) {
    let lua = unsafe { Lua::unsafe_new() }; // the module needs the FFI
    let lib_dir = common::cdylib().parent().unwrap().to_path_buf();
    let package: Table = lua.globals().get("package").unwrap();
    package
        .set(
            "path",
            format!(
                "{}/lua/?.lua;{}/tests/lua/?.lua",
                common::root().display(),
                common::root().display()
            ),
        )
        .unwrap();
    package
        .set("cpath", format!("{}/?.so", lib_dir.display()))
        .unwrap();

    let cjson = lua.create_table().unwrap();
    let decode = lua
        .create_function(|lua, text: mlua::LuaString| {
            match serde_json::from_slice::<serde_json::Value>(&text.as_bytes()) {
                Ok(v) => Ok((lua.to_value(&v)?, Value::Nil)),
                Err(e) => Ok((Value::Nil, Value::String(lua.create_string(e.to_string())?))),
            }
        })
        .unwrap();
    let encode = lua
        .create_function(|lua, v: Value| {
            let json: serde_json::Value = lua.from_value(v)?;
            Ok(json.to_string())
        })
        .unwrap();
    cjson.set("decode", decode).unwrap();
    cjson.set("encode", encode).unwrap();
    let preload: Table = package.get("preload").unwrap();
    let cjson_key = lua.create_registry_value(cjson).unwrap();
    preload
        .set(
            "cjson.safe",
            lua.create_function(move |lua, ()| lua.registry_value::<Table>(&cjson_key))
                .unwrap(),
        )
        .unwrap();

    let fake: Table = lua.load("return require 'fake_ngx'").eval().unwrap();
    fake.set("now", NOW).unwrap();
    lua.globals()
        .set("ngx", fake.get::<Table>("ngx").unwrap())
        .unwrap();
    lua.globals().set("fake", fake.clone()).unwrap();
    (lua, fake)
}

fn dicts(lua: &Lua, events_capacity: usize) {
    lua.load(format!(
        "fake.new_dict('received_webhooks', {events_capacity}); fake.new_dict('webhooks_seen', 100); fake.new_dict('webhooks_stats', 100)"
    ))
    .exec()
    .unwrap();
}

fn body(id: &str, status: &str, live: bool) -> String {
    format!(
        r#"{{"event":"job.status","liveMode":{live},"messageId":"{id}","timestamp":"{}","body":{{"jobId":"j","status":"{status}"}}}}"#,
        format_rfc3339(NOW)
    )
}

/// Runs `handler` of the module on a request; returns status, body and response headers.
fn run(lua: &Lua, handler: &str, request: Table) -> (u16, String, Table) {
    let fake: Table = lua.globals().get("fake").unwrap();
    fake.get::<Function>("request")
        .unwrap()
        .call::<()>(request)
        .unwrap();
    let m: Table = lua.load("return require 'up42webhooks'").eval().unwrap();
    let h: Function = m.get(handler).unwrap();
    fake.get::<Function>("run")
        .unwrap()
        .call::<(u16, String, Table)>(h)
        .unwrap()
}

fn delivery(lua: &Lua, body: &str, secret: &str) -> Table {
    let headers = lua.create_table().unwrap();
    for (i, (n, v)) in common::signed_headers(body.as_bytes(), secret, NOW)
        .into_iter()
        .enumerate()
    {
        headers
            .set(i + 1, lua.create_sequence_from([n, v]).unwrap())
            .unwrap();
    }
    let r = lua.create_table().unwrap();
    r.set("method", "POST").unwrap();
    r.set("headers", headers).unwrap();
    r.set("body", body).unwrap();
    r
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn configure(lua: &Lua, extra: &str) {
    lua.load(format!(
        "require('up42webhooks').configure{{ secrets = {{ '{SECRET}' }} {extra} }}"
    ))
    .exec()
    .unwrap();
}

#[test]
fn configure_refuses_to_run_without_a_secret_or_its_dicts() {
    let (lua, _) = setup();
    dicts(&lua, 100);
    let err = lua
        .load("require('up42webhooks').configure{}")
        .exec()
        .unwrap_err()
        .to_string();
    assert!(err.contains("no webhook secret configured"), "{err}");
    let err = lua
        .load("require('up42webhooks').configure{ secret = 's', dict = 'nope' }")
        .exec()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lua_shared_dict nope is not declared"),
        "{err}"
    );
    let err = lua
        .load("require('up42webhooks').configure{ secret_file = '/nonexistent/secret' }")
        .exec()
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read secret file"), "{err}");
}

#[test]
fn receive_verifies_deduplicates_and_stores() {
    let (lua, fake) = setup();
    dicts(&lua, 100);
    let globals_before: Vec<String> = lua
        .load("local t = {} for k in pairs(_G) do t[#t+1] = k end return t")
        .eval()
        .unwrap();
    configure(&lua, "");

    let d = delivery(&lua, &body("m1", "FAILED", false), SECRET);
    let (status, text, _) = run(&lua, "receive", d.clone());
    assert_eq!(
        (status, json(&text)["key"].as_u64()),
        (200, Some(1)),
        "{text}"
    );
    let (status, text, _) = run(&lua, "receive", d);
    assert_eq!(status, 200);
    assert!(text.contains("duplicate"), "{text}");

    // A body nginx spooled to a file is read from there.
    let spooled = delivery(&lua, &body("m2", "SUCCEEDED", true), SECRET);
    let file = std::env::temp_dir().join(format!("up42wh-lua-body-{}", std::process::id()));
    std::fs::write(&file, body("m2", "SUCCEEDED", true)).unwrap();
    spooled.set("body_file", file.to_str().unwrap()).unwrap();
    let (status, text, _) = run(&lua, "receive", spooled);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(
        (status, json(&text)["key"].as_u64()),
        (200, Some(2)),
        "{text}"
    );

    // Failures: status, stable reason, a warn line with the client, never the secret.
    let (status, text, _) = run(
        &lua,
        "receive",
        delivery(&lua, &body("m3", "X", false), "wrong"),
    );
    assert_eq!(
        (status, json(&text)["error"].as_str()),
        (401, Some("signature_mismatch"))
    );
    let get = delivery(&lua, &body("m4", "X", false), SECRET);
    get.set("method", "GET").unwrap();
    assert_eq!(run(&lua, "receive", get).0, 405);
    let big = delivery(&lua, &body("m5", "X", false), SECRET);
    let headers: Table = big.get("headers").unwrap();
    headers
        .push(
            lua.create_sequence_from(["Content-Length", "2000000"])
                .unwrap(),
        )
        .unwrap();
    assert_eq!(run(&lua, "receive", big).0, 413);
    let logs: Vec<Vec<Value>> = fake
        .get::<Table>("logs")
        .unwrap()
        .sequence_values()
        .map(|l| l.unwrap())
        .collect::<Vec<Table>>()
        .into_iter()
        .map(|t| t.sequence_values().map(|v| v.unwrap()).collect())
        .collect();
    let text: Vec<String> = logs
        .iter()
        .map(|l| l[1].to_string().unwrap_or_default())
        .collect();
    assert!(
        text.iter()
            .any(|l| l.contains("rejected delivery: signature_mismatch, client 127.0.0.1")),
        "{text:?}"
    );
    assert!(!text.iter().any(|l| l.contains(SECRET)));

    let (status, text, _) = run(&lua, "stats", lua.create_table().unwrap());
    let stats = json(&text);
    assert_eq!(status, 200);
    assert_eq!(
        (
            stats["counters"]["stored"].as_u64(),
            stats["counters"]["duplicate"].as_u64()
        ),
        (Some(2), Some(1))
    );

    let globals_after: Vec<String> = lua
        .load("local t = {} for k in pairs(_G) do t[#t+1] = k end return t")
        .eval()
        .unwrap();
    let mut new: Vec<_> = globals_after
        .iter()
        .filter(|g| !globals_before.contains(g))
        .collect();
    new.sort();
    assert!(new.is_empty(), "the module made globals: {new:?}");
}

#[test]
fn a_full_store_refuses_with_503_and_lets_the_retry_through() {
    let (lua, _) = setup();
    dicts(&lua, 3); // the counter and two events
    configure(&lua, ", retry_after = 7");
    for i in 0..2 {
        assert_eq!(
            run(
                &lua,
                "receive",
                delivery(&lua, &body(&format!("f{i}"), "X", false), SECRET)
            )
            .0,
            200
        );
    }
    let third = delivery(&lua, &body("f2", "X", false), SECRET);
    let (status, _, headers) = run(&lua, "receive", third.clone());
    assert_eq!(status, 503);
    assert_eq!(headers.get::<i64>("Retry-After").unwrap(), 7);
    assert_eq!(
        run(&lua, "receive", third).0,
        503,
        "a refused delivery is not remembered as seen"
    );
    let (_, dump, _) = run(&lua, "dump", lua.create_table().unwrap());
    assert_eq!(
        dump.lines().count(),
        3,
        "both stored events and the count: {dump}"
    );
}

#[test]
fn dump_filters_access_and_the_original_names() {
    let (lua, _) = setup();
    dicts(&lua, 100);
    configure(&lua, ", admin_token = 'tok'");
    for (id, status, live) in [
        ("a", "FAILED", false),
        ("b", "SUCCEEDED", true),
        ("c", "FAILED", true),
    ] {
        assert_eq!(
            run(
                &lua,
                "receive",
                delivery(&lua, &body(id, status, live), SECRET)
            )
            .0,
            200
        );
    }
    let dump = |args: &str, remote: &str, auth: Option<&str>| {
        let r: Table = lua
            .load(format!("return {{ method = 'GET', args = {{ {args} }}, remote_addr = '{remote}', headers = {{ {} }} }}",
                auth.map(|a| format!("{{'Authorization', '{a}'}}")).unwrap_or_default()))
            .eval()
            .unwrap();
        run(&lua, "dump", r)
    };
    let (status, text, _) = dump("", "127.0.0.1", None);
    assert_eq!(status, 200);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].contains(r#""messageId":"a""#) && lines[2].contains(r#""messageId":"c""#));
    assert_eq!(json(lines[3])["number_webhooks_received"], 3);
    assert_eq!(
        dump("status = 'FAILED'", "10.1.2.3", None)
            .1
            .lines()
            .count(),
        3
    );
    assert_eq!(
        dump("live = 'true', status = 'FAILED'", "::1", None)
            .1
            .lines()
            .count(),
        2
    );
    assert_eq!(dump("since = '2'", "127.0.0.1", None).1.lines().count(), 2);
    assert_eq!(dump("", "203.0.113.9", None).0, 403);
    assert_eq!(dump("", "203.0.113.9", Some("Bearer nope")).0, 403);
    assert_eq!(dump("", "203.0.113.9", Some("Bearer tok")).0, 200);

    let same: bool = lua
        .load("local m = require 'up42webhooks' return m.set_key_value_webhook == m.receive and m.dump_webhooks == m.dump")
        .eval()
        .unwrap();
    assert!(same);
    let r: Table = lua.load("return { method = 'GET' }").eval().unwrap();
    lua.load("fake.request(...)").call::<()>(r).unwrap();
    let count: String = lua
        .load("return require('up42webhooks').dump_cardinality()")
        .eval()
        .unwrap();
    assert_eq!(json(&count)["number_webhooks_received"], 3);
    let notifiable: (bool, bool) = lua
        .load(
            r#"local m = require 'up42webhooks'
                 return m.is_notifiable{ event = "job.status", body = { status = "FAILED" } },
                        m.is_notifiable{ event = "job.status", body = { status = "RUNNING" } }"#,
        )
        .eval()
        .unwrap();
    assert_eq!(notifiable, (true, false));
}

#[test]
fn a_multi_line_body_is_stored_as_one_dump_line() {
    let (lua, _) = setup();
    dicts(&lua, 100);
    configure(&lua, "");
    let one = body("lines", "FAILED", false);
    // The same event pretty-printed with LF, CRLF and tabs between its tokens.
    let pretty = one.replacen('{', "{\n\t", 1).replacen(",", ",\r\n\t", 2);
    assert!(pretty.contains('\n') && pretty.contains('\r') && pretty.contains('\t'));
    assert_eq!(run(&lua, "receive", delivery(&lua, &pretty, SECRET)).0, 200);
    let r: Table = lua
        .load("return { method = 'GET', args = {}, remote_addr = '127.0.0.1', headers = {} }")
        .eval()
        .unwrap();
    let (status, text, _) = run(&lua, "dump", r);
    assert_eq!(status, 200);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let expected: String = pretty
        .chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .collect();
    assert_eq!(lines[0], expected);
    assert_eq!(json(lines[1])["number_webhooks_received"], 1);
}
