//! The real Lua module, loaded in LuaJIT (vendored, through mlua) with a small fake `ngx`
//! (tests/lua/fake_ngx.lua) and calling the real library through the FFI. cjson is provided by
//! serde_json: Debian's cjson.so cannot be loaded into a statically linked LuaJIT.

use mlua::{Function, Lua, LuaSerdeExt, Table, Value};
use up42webhooks::format_rfc3339;

const SECRET: &str = "lua-test-secret";
const NOW: i64 = 1_700_000_000;

/// What the replay index at `path` (as the receiver opened it, with the default settings) says
/// of a claim of `id` with a body digest of 32 `digest` bytes, now; a new claim is given up again.
fn remembered(lua: &Lua, path: &std::path::Path, id: &str, digest: char) -> String {
    lua.load(format!(
        r#"local native = require "up42webhooks.native"
           local index = assert(native.index_open("{}", 1000000, 3 * 86400))
           local outcome = assert(native.index_claim(index, "{id}", ("{digest}"):rep(32), fake.now, 30))
           if outcome == "new" then native.index_cancel(index) end
           return outcome"#,
        path.display()
    ))
    .eval()
    .unwrap()
}

static PREFIXES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A Lua state with the fake ngx, cjson, and the module's paths; returns it and the fake.
fn setup() -> (Lua, Table) {
    let lua = unsafe { Lua::unsafe_new() }; // the module needs the FFI
    let lib_dir = crate::common::cdylib().parent().unwrap().to_path_buf();
    let package: Table = lua.globals().get("package").unwrap();
    package
        .set(
            "path",
            format!(
                "{}/lua/?.lua;{}/tests/lua/?.lua",
                crate::common::root().display(),
                crate::common::root().display()
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
    // Hermetic: the module reads its settings from fake.env, never from the shell that runs us.
    lua.load("fake.env = {} os.getenv = function(k) return fake.env[k] end")
        .exec()
        .unwrap();
    // nginx's prefix: where the replay index of a store without a journal goes.
    let prefix = journal_dir(&format!(
        "prefix-{}",
        PREFIXES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    fake.set("prefix", format!("{}/", prefix.display()))
        .unwrap();
    // The directory lives as long as the Lua state.
    lua.set_app_data(prefix);
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
    for (i, (n, v)) in crate::common::signed_headers(body.as_bytes(), secret, NOW)
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

/// A GET from loopback on the admin listener.
fn local_admin_get(lua: &Lua) -> Table {
    lua.load("return { method = 'GET', remote_addr = '127.0.0.1', listener = 'admin' }")
        .eval()
        .unwrap()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// configure{} with the test secret, in memory only unless `extra` gives a journal.
fn configure(lua: &Lua, extra: &str) {
    let journal = if extra.contains("journal") {
        ""
    } else {
        ", journal = false"
    };
    lua.load(format!(
        "require('up42webhooks').configure{{ secrets = {{ '{SECRET}' }} {journal} {extra} }}"
    ))
    .exec()
    .unwrap();
}

/// The error `lua` (a configure{} call) fails with.
fn configure_error(lua: &Lua, code: &str) -> String {
    lua.load(code).exec().unwrap_err().to_string()
}

#[test]
fn configure_refuses_to_run_without_a_secret_or_its_dicts() {
    let (lua, _) = setup();
    dicts(&lua, 100);
    let err = configure_error(&lua, "require('up42webhooks').configure{}");
    assert!(err.contains("no webhook secret configured"), "{err}");
    let err = configure_error(
        &lua,
        "require('up42webhooks').configure{ secret = 's', dict = 'nope' }",
    );
    assert!(
        err.contains("lua_shared_dict nope is not declared"),
        "{err}"
    );
    let err = configure_error(
        &lua,
        "require('up42webhooks').configure{ secret_file = '/nonexistent/secret' }",
    );
    assert!(
        err.contains("cannot read the secret file /nonexistent/secret"),
        "{err}"
    );
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

    let (status, text, _) = run(&lua, "stats", local_admin_get(&lua));
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
    dicts(&lua, 2); // two events (the key counter and the count are in the dedup dict)
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
    let (_, dump, _) = run(&lua, "dump", local_admin_get(&lua));
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
    // On the admin listener unless `listener` says otherwise; `peer` is the TCP peer when
    // set_real_ip_from gave nginx another client address.
    let get = |handler: &str, args: &str, remote: &str, extra: &str, auth: Option<&str>| {
        let r: Table = lua
            .load(format!("return {{ method = 'GET', args = {{ {args} }}, remote_addr = '{remote}', {extra} headers = {{ {} }} }}",
                auth.map(|a| format!("{{'Authorization', '{a}'}}")).unwrap_or_default()))
            .eval()
            .unwrap();
        run(&lua, handler, r)
    };
    const ADMIN: &str = "listener = 'admin',";
    let dump =
        |args: &str, remote: &str, auth: Option<&str>| get("dump", args, remote, ADMIN, auth);
    let (status, text, _) = dump("", "127.0.0.1", None);
    assert_eq!(status, 200);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].contains(r#""messageId":"a""#) && lines[2].contains(r#""messageId":"c""#));
    assert_eq!(json(lines[3])["number_webhooks_received"], 3);
    assert_eq!(
        dump("status = 'FAILED'", "127.0.0.9", None)
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
    for handler in ["dump", "stats"] {
        // A private address is not a local one (Docker's bridge, a LAN): it needs the token.
        for remote in [
            "10.1.2.3",
            "172.17.0.1",
            "192.168.1.20",
            "203.0.113.9",
            "::2",
        ] {
            let (status, text, _) = get(handler, "", remote, ADMIN, None);
            assert_eq!(status, 403, "{handler} from {remote}");
            assert_eq!(json(&text)["error"], "forbidden");
            assert_eq!(get(handler, "", remote, ADMIN, Some("Bearer nope")).0, 403);
            assert_eq!(get(handler, "", remote, ADMIN, Some("Bearer tok")).0, 200);
        }
        // Outside the admin listener loopback grants nothing: a tunnel connects from there.
        assert_eq!(get(handler, "", "127.0.0.1", "", None).0, 403, "{handler}");
        assert_eq!(get(handler, "", "127.0.0.1", "", Some("Bearer tok")).0, 200);
        // A loopback peer that set_real_ip_from says stands for a remote client is remote, and a
        // header cannot make a remote peer local.
        let forwarded = "listener = 'admin', peer = '127.0.0.1',";
        assert_eq!(get(handler, "", "203.0.113.9", forwarded, None).0, 403);
        let forged = "listener = 'admin', peer = '203.0.113.9',";
        assert_eq!(get(handler, "", "127.0.0.1", forged, None).0, 403);
    }
    let token_logged: bool = lua
        .load("for _, l in ipairs(fake.logs) do if l[2]:find('Bearer', 1, true) then return true end end return false")
        .eval()
        .unwrap();
    assert!(!token_logged, "no log line has the Authorization header");

    let same: bool = lua
        .load("local m = require 'up42webhooks' return m.set_key_value_webhook == m.receive and m.dump_webhooks == m.dump")
        .eval()
        .unwrap();
    assert!(same);
    let r: Table = lua
        .load("return { method = 'GET', listener = 'admin' }")
        .eval()
        .unwrap();
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
        .load("return { method = 'GET', args = {}, remote_addr = '127.0.0.1', listener = 'admin', headers = {} }")
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

#[test]
fn a_compressed_line_is_read_back_and_a_damaged_one_is_an_error_not_a_gap() {
    let (lua, _) = setup();
    dicts(&lua, 100);
    configure(&lua, "");
    // A body that compresses: stored as an LZ4 block, dumped as it was sent.
    let padded = body("padded", "FAILED", false).replacen(
        '{',
        &format!(r#"{{"pad":"{}","#, "p".repeat(600)),
        1,
    );
    assert_eq!(run(&lua, "receive", delivery(&lua, &padded, SECRET)).0, 200);
    let stored: mlua::LuaString = lua
        .load("return require('fake_ngx').ngx.shared.received_webhooks:get(1)")
        .eval()
        .unwrap();
    let stored = stored.as_bytes().to_vec();
    assert!(stored[0] == b'F' && stored.len() < 550, "{stored:?}");
    let admin = || -> Table {
        lua.load("return { method = 'GET', args = {}, remote_addr = '127.0.0.1', listener = 'admin', headers = {} }")
            .eval()
            .unwrap()
    };
    let (status, text, _) = run(&lua, "dump", admin());
    assert_eq!(status, 200);
    assert_eq!(text.lines().next().unwrap(), padded);
    // The same record with its block cut short: the dump says it cannot read the store, rather
    // than leave the event out and count it.
    lua.load(format!(
        "local d = require('fake_ngx').ngx.shared.received_webhooks d:set(1, d:get(1):sub(1, {}))",
        stored.len() - 20
    ))
    .exec()
    .unwrap();
    let (status, text, _) = run(&lua, "dump", admin());
    assert_eq!(status, 503, "{text}");
    assert_eq!(json(text.trim())["error"], "store_unavailable");
}

#[test]
fn address_lists_match_networks_loopback_and_the_gateway() {
    let (lua, _) = setup();
    // A container's routing table: the default route's gateway is 172.18.0.1 (little-endian hex).
    let route = std::env::temp_dir().join(format!("up42wh-route-{}", std::process::id()));
    std::fs::write(
        &route,
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
         eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n",
    )
    .unwrap();
    let check = |list: &str, addr: &str| -> bool {
        lua.load(format!(
            "local a = require 'up42webhooks.addr' return a.contains(assert(a.new({list}, '{}')), '{addr}')",
            route.display()
        ))
        .eval()
        .unwrap()
    };
    for (list, addr, expected) in [
        ("'loopback'", "127.0.0.1", true),
        ("'loopback'", "127.255.0.3", true),
        ("'loopback'", "::1", true),
        ("'loopback'", "::ffff:127.0.0.1", true),
        ("'loopback'", "unix:", true),
        ("'loopback'", "128.0.0.1", false),
        ("'loopback'", "10.0.0.1", false),
        ("'loopback'", "::2", false),
        ("'loopback'", "fe80::1", false),
        ("'loopback'", "not an address", false),
        ("'10.0.0.0/8, 192.0.2.7'", "10.200.3.4", true),
        ("'10.0.0.0/8, 192.0.2.7'", "11.0.0.0", false),
        ("'10.0.0.0/8, 192.0.2.7'", "192.0.2.7", true),
        ("'10.0.0.0/8, 192.0.2.7'", "192.0.2.8", false),
        ("{ '192.0.2.128/25' }", "192.0.2.127", false),
        ("{ '192.0.2.128/25' }", "192.0.2.255", true),
        ("{ '0.0.0.0/0' }", "198.51.100.1", true),
        ("'gateway'", "172.18.0.1", true),
        ("'gateway'", "172.18.0.2", false),
        ("'gateway'", "127.0.0.1", false),
        ("'2001:DB8::1'", "2001:db8::1", true),
    ] {
        assert_eq!(check(list, addr), expected, "{addr} in {list}");
    }
    for bad in [
        "'10.0.0.0/33'",
        "'300.1.1.1'",
        "'somehost'",
        "'2001:db8::/32'",
    ] {
        let err: String = lua
            .load(format!(
                "return select(2, require('up42webhooks.addr').new({bad}))"
            ))
            .eval()
            .unwrap();
        assert!(err.contains("not an address or network"), "{bad}: {err}");
    }
    let missing: String = lua
        .load("return select(2, require('up42webhooks.addr').new('gateway', '/nonexistent/route'))")
        .eval()
        .unwrap();
    assert!(missing.contains("no default gateway"), "{missing}");
    std::fs::remove_file(&route).unwrap();
}

#[test]
fn the_signed_scheme_and_authority_come_from_settings_or_a_trusted_proxy() {
    let (lua, _) = setup();
    dicts(&lua, 100);
    // (configure{} extras, request fields) -> what RFC 9421 verification is given.
    let origin = |settings: &str, request: &str| -> (String, String) {
        lua.load(format!(
            "local addr = require 'up42webhooks.addr'
             local s = {settings}
             local c = {{ scheme = s.scheme, authority = s.authority,
                          trusted_proxies = s.proxies and assert(addr.new(s.proxies)) }}
             fake.request{{ {request} }}
             return require('up42webhooks.origin').of_request(c, s.sender or {{}})"
        ))
        .eval()
        .unwrap()
    };
    let via = |peer: &str, headers: &str| {
        format!("remote_addr = '{peer}', scheme = 'http', headers = {{ {{'Host', '127.0.0.1:9888'}}, {headers} }}")
    };
    let fwd = "{'X-Forwarded-Proto', 'https'}, {'X-Forwarded-Host', 'hooks.example.com'}";
    let std7239 = r#"{'Forwarded', 'for=198.51.100.1;proto=http;host=evil.example, for="[2001:db8::1]";Proto=HTTPS;host="hooks.example.com:8443"'}"#;
    let repeated = "{'X-Forwarded-Proto', 'http, https'}, {'X-Forwarded-Host', 'forged.example, hooks.example.com'}";
    let junk = "{'X-Forwarded-Proto', 'gopher'}, {'X-Forwarded-Host', 'a b/c'}";
    let trust = "{ proxies = 'loopback' }";
    let fixed = "{ scheme = 'https', authority = 'fixed.example', proxies = 'loopback' }";
    let per_sender = "{ scheme = 'https', authority = 'fixed.example', sender = { authority = 'ubiops.example' } }";
    let nginx_sees = ("http", "127.0.0.1:9888");
    for (why, settings, request, expected) in [
        ("nothing configured: the request as nginx sees it, whatever the headers claim",
            "{}", via("127.0.0.1", fwd), nginx_sees),
        ("a trusted proxy's X-Forwarded-* headers",
            trust, via("127.0.0.1", fwd), ("https", "hooks.example.com")),
        ("a trusted proxy's RFC 7239 element (the last one)",
            trust, via("127.0.0.1", std7239), ("https", "hooks.example.com:8443")),
        ("repeated headers and lists: the last value, which the nearest proxy wrote",
            trust, via("127.0.0.1", repeated), ("https", "hooks.example.com")),
        ("anyone else's headers are ignored",
            trust, via("203.0.113.5", fwd), nginx_sees),
        ("values that are not a scheme or a host are ignored",
            trust, via("127.0.0.1", junk), nginx_sees),
        ("the TCP peer decides, not an address set_real_ip_from took from a header",
            trust, format!("peer = '203.0.113.5', {}", via("127.0.0.1", fwd)), nginx_sees),
        ("configured values win over headers",
            fixed, via("127.0.0.1", fwd), ("https", "fixed.example")),
        ("a sender's own value wins over configure{}'s",
            per_sender, via("127.0.0.1", ""), ("https", "ubiops.example")),
        ("direct TLS: nginx's own scheme",
            "{}", "remote_addr = '198.51.100.7', scheme = 'https', headers = { {'Host', 'hooks.example.com'} }".to_string(),
            ("https", "hooks.example.com")),
    ] {
        let (scheme, authority) = origin(settings, &request);
        assert_eq!((scheme.as_str(), authority.as_str()), expected, "{why}");
    }
}

#[test]
fn configure_reads_the_exposure_settings_and_refuses_bad_ones() {
    let (lua, _) = setup();
    dicts(&lua, 100);
    // From the environment (nginx's env directive), as make serve passes them.
    lua.load("fake.env.UP42_WEBHOOK_PUBLIC_URL = 'https://hooks.example.com:8443' fake.env.UP42_WEBHOOK_TRUSTED_PROXIES = '127.0.0.1, ::1' fake.env.UP42_WEBHOOK_ADMIN_ALLOW = 'loopback'")
        .exec()
        .unwrap();
    configure(&lua, "");
    // Names with and without a port, IPv6 literals, commas or spaces between them.
    let parsed: bool = lua
        .load(
            "local h = require('up42webhooks.hosts').new('Admin.Example.test, tunnel.example:8080 [::1]:9 tunnel.example:8081')
             return h['admin.example.test'] == true and h['tunnel.example'][8080] and h['tunnel.example'][8081]
                 and h['tunnel.example'][80] == nil and h['[::1]'][9] and h['other.example'] == nil",
        )
        .eval()
        .unwrap();
    assert!(parsed, "admin_hosts entries");
    for (var, value, message) in [
        (
            "UP42_WEBHOOK_PUBLIC_URL",
            "hooks.example.com",
            "public_url: not an http",
        ),
        (
            "UP42_WEBHOOK_TRUSTED_PROXIES",
            "proxy.local",
            "trusted_proxies: not an address",
        ),
        (
            "UP42_WEBHOOK_ADMIN_ALLOW",
            "lan",
            "admin_allow: not an address",
        ),
        (
            "UP42_WEBHOOK_ADMIN_HOSTS",
            "admin.example:99999",
            "UP42_WEBHOOK_ADMIN_HOSTS: not a host name or name:port: admin.example:99999",
        ),
        (
            "UP42_WEBHOOK_ADMIN_HOSTS",
            "a..example",
            "UP42_WEBHOOK_ADMIN_HOSTS: not a host name",
        ),
    ] {
        let err = lua
            .load(format!(
                "local old = fake.env.{var} fake.env.{var} = '{value}'
                 local ok, err = pcall(require('up42webhooks').configure, {{ secret = 's' }})
                 fake.env.{var} = old
                 return err"
            ))
            .eval::<String>()
            .unwrap();
        assert!(err.contains(message), "{var}={value}: {err}");
    }
    for (setting, message) in [
        (
            "public_url = 'ftp://x'",
            "public_url: not an http:// or https:// URL",
        ),
        (
            "public_url = 'https://x/path'",
            "public_url: not an http:// or https:// URL",
        ),
        (
            "trusted_proxies = 'proxy.local'",
            "trusted_proxies: not an address or network",
        ),
        (
            "admin_allow = { '10.0.0.0/40' }",
            "admin_allow: not an address or network",
        ),
        (
            "admin_hosts = 'hooks.example/admin'",
            "configure{admin_hosts}: not a host name or name:port: hooks.example/admin",
        ),
        (
            "admin_hosts = '.example'",
            "configure{admin_hosts}: not a host name",
        ),
    ] {
        let err = lua
            .load(format!(
                "require('up42webhooks').configure{{ secret = 's', {setting} }}"
            ))
            .exec()
            .unwrap_err()
            .to_string();
        assert!(err.contains(message), "{setting}: {err}");
    }
}

#[test]
fn up42_is_a_sender_of_its_own_name_and_no_other_sender_takes_it() {
    let (lua, _) = setup();
    dicts(&lua, 100);
    // UP42 configured as a sender, without a top-level secret: receive() is UP42's.
    lua.load(format!(
        "require('up42webhooks').configure{{ journal = false, \
         senders = {{ up42 = {{ profile = 'up42', secrets = {{ 'old-secret', '{SECRET}' }} }} }} }}"
    ))
    .exec()
    .unwrap();
    let (status, text, _) = run(
        &lua,
        "receive",
        delivery(&lua, &body("m-1", "SUCCEEDED", true), SECRET),
    );
    assert_eq!(status, 200, "{text}");
    let (status, _, _) = run(
        &lua,
        "receive",
        delivery(&lua, &body("m-2", "SUCCEEDED", true), "wrong"),
    );
    assert_eq!(status, 401);
    // Counted by the secret that verified, its dedup id without a prefix, as before.
    let (counted, prefix): (i64, String) = lua
        .load("return fake.ngx.shared.webhooks_stats:get('stored_with_secret_1'), fake.prefix")
        .eval()
        .unwrap();
    assert_eq!(counted, 1);
    let index = std::path::Path::new(&prefix).join("replay.index");
    assert_eq!(remembered(&lua, &index, "m:m-1", 'x'), "id_conflict");
    for settings in [
        "senders = { up42 = { profile = 'github', secret = 'x' } }",
        "secret = 's', senders = { up42 = { profile = 'up42', secret = 'x' } }",
    ] {
        let err = lua
            .load(format!("require('up42webhooks').configure{{ {settings} }}"))
            .exec()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sender up42: the name is UP42's"),
            "{settings}: {err}"
        );
    }
}

#[test]
fn message_options_carry_the_up42_freshness_settings() {
    let (lua, _) = setup();
    let (age, refuse, default_age, default_refuse): (i64, bool, i64, bool) = lua
        .load(
            "local native = require 'up42webhooks.native'
             local late = assert(native.new_message_options('up42',
                 { timestamp_max_age = 259200, refuse_unsigned_times = false })).cdata
             local plain = assert(native.new_message_options('up42', {})).cdata
             return tonumber(late.timestamp_max_age), late.refuse_unsigned_times,
                    tonumber(plain.timestamp_max_age), plain.refuse_unsigned_times",
        )
        .eval()
        .unwrap();
    assert_eq!((age, refuse), (259_200, false));
    assert_eq!(
        (default_age, default_refuse),
        (300, true),
        "the library's defaults"
    );
}

/// A journal directory of the test's own.
fn journal_dir(name: &str) -> crate::common::Scratch {
    crate::common::Scratch::new(&format!("lua-journal-{name}"))
}

#[test]
fn replay_applies_drops_cancels_and_retries_as_the_live_store_did() {
    let dir = journal_dir("replay");
    let (lua, _) = setup();
    dicts(&lua, 1000);
    // Records as a live store writes them: 1 stored; 2 stored then cancelled (its delivery was
    // answered 503); 3 the same delivery as 1, written again after a crash hid 1's answer; 4 and
    // 5 stored; a drop (acknowledgement) up to 4; 6 past retention.
    let stats: Table = lua
        .load(format!(
            r#"
            local native = require "up42webhooks.native"
            local R = native.RECORD
            local w = assert(native.journal_open("{dir}", 1))
            local d1, d2 = ("a"):rep(32), ("b"):rep(32)
            local now = fake.now
            local function event(key, id, digest, t)
                assert(native.journal_append(w, R.event, 0, key, t or now, digest, id,
                    "job.status\tFAILED\tfalse", '{{"k":' .. key .. '}}'))
            end
            event(1, "m:one", d1)
            event(2, "m:two", d2)
            assert(native.journal_append(w, R.cancel, 0, 2, now))
            event(3, "m:one", d1)
            event(4, "m:four", d2)
            event(5, "m:five", d2)
            assert(native.journal_append(w, R.drop, 1, 4, now))
            event(6, "m:old", d2, now - 8 * 24 * 3600)
            event(7, "m:seven", d2)
            -- Two days ago: 8 then its crash-time rewrite 9, five seconds apart (one is kept),
            -- and 10 and 11, four days apart, more than the replay horizon (three days): a
            -- re-delivery the live store took as new, both kept.
            event(8, "m:eight", d1, now - 2 * 86400)
            event(9, "m:eight", d1, now - 2 * 86400 + 5)
            event(10, "m:ten", d1, now - 6 * 86400)
            event(11, "m:ten", d1, now - 2 * 86400)
            require("up42webhooks").configure{{ secrets = {{ "s" }}, journal = {{ dir = "{dir}" }} }}
            return fake.ngx.shared.webhooks_stats.data
            "#,
            dir = dir.display()
        ))
        .eval()
        .unwrap();
    assert_eq!(stats.get::<i64>("journal_replayed_events").unwrap(), 5);
    assert_eq!(stats.get::<i64>("expired").unwrap(), 1);
    let (status, text, _) = run(&lua, "dump", local_admin_get(&lua));
    assert_eq!(status, 200);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            r#"{"k":5}"#,
            r#"{"k":7}"#,
            r#"{"k":9}"#,
            r#"{"k":10}"#,
            r#"{"k":11}"#,
            r#"{"number_webhooks_received":5,"next":11,"acknowledged":{"default":4}}"#
        ]
    );
    // The key counter goes on after the highest key; the ids of the replay horizon are in the
    // index, whatever became of their events (m:one and m:four acknowledged, m:ten stored twice,
    // last two days ago); not m:old (eight days ago) nor the cancelled m:two.
    let n: i64 = lua
        .load("return fake.ngx.shared.webhooks_seen:get('n')")
        .eval()
        .unwrap();
    assert_eq!(n, 11);
    let index = dir.join("replay.index");
    for (id, digest, outcome) in [
        ("m:one", 'a', "duplicate"),
        ("m:one", 'b', "id_conflict"),
        ("m:four", 'b', "duplicate"),
        ("m:ten", 'a', "duplicate"),
        ("m:eight", 'a', "duplicate"),
        ("m:two", 'b', "new"),
        ("m:old", 'b', "new"),
    ] {
        assert_eq!(remembered(&lua, &index, id, digest), outcome, "{id}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ids_a_lowered_capacity_cannot_hold_are_said_at_start() {
    let dir = journal_dir("not-kept");
    let (lua, _) = setup();
    dicts(&lua, 1000);
    // Two deliveries stored today; the capacity is now 3, one id a window.
    let counted: i64 = lua
        .load(format!(
            r#"
            local native = require "up42webhooks.native"
            local w = assert(native.journal_open("{dir}", 1))
            for key, id in ipairs{{ "m:a", "m:b" }} do
                assert(native.journal_append(w, native.RECORD.event, 0, key, fake.now - 60,
                    ("d"):rep(32), id, "job.status	FAILED	false", '{{"k":' .. key .. '}}'))
            end
            require("up42webhooks").configure{{ secrets = {{ "s" }}, dedup_capacity = 3,
                                                journal = {{ dir = "{dir}" }} }}
            return fake.ngx.shared.webhooks_stats:get("replay_index_not_kept")
            "#,
            dir = dir.display()
        ))
        .eval()
        .unwrap();
    assert_eq!(counted, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_reload_that_upgrades_the_module_moves_the_key_counter_above_the_old_one() {
    let (lua, _) = setup();
    dicts(&lua, 100);
    // The events dict as the version before kept it: its own key counter and count.
    lua.load(
        "fake.ngx.shared.received_webhooks:set('n', 50) \
         fake.ngx.shared.received_webhooks:set('count', 7)",
    )
    .exec()
    .unwrap();
    configure(&lua, "");
    let (status, text, _) = run(
        &lua,
        "receive",
        delivery(&lua, &body("up-1", "X", false), SECRET),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)["key"], 10051, "{text}");
    let count: i64 = lua
        .load("return fake.ngx.shared.webhooks_seen:get('count')")
        .eval()
        .unwrap();
    assert_eq!(count, 8, "the old count, and the new event");
}

#[test]
fn segments_rotate_and_retention_removes_the_ones_no_longer_needed() {
    let dir = journal_dir("segments");
    let (lua, fake) = setup();
    dicts(&lua, 1000);
    configure(
        &lua,
        &format!(
            ", journal = {{ dir = '{}', segment_size = 4096 }}",
            dir.display()
        ),
    );
    for i in 0..40 {
        let (status, _, _) = run(
            &lua,
            "receive",
            delivery(&lua, &body(&format!("s{i}"), "X", false), SECRET),
        );
        assert_eq!(status, 200);
    }
    let usage = up42webhooks::journal::usage(&dir).unwrap();
    assert!(usage.segments >= 3, "{usage:?}");
    // Acknowledge the first 30 (nothing goes), then let retention run an hour later: the
    // acknowledged ones are past acked_max_age (here the dedup window), and their segments go.
    let ack: Table = lua
        .load("return { method = 'POST', remote_addr = '127.0.0.1', listener = 'admin', args = { upto = '30' } }")
        .eval()
        .unwrap();
    let (status, text, _) = run(&lua, "ack", ack);
    assert_eq!((status, json(&text)["acked"].as_u64()), (200, Some(30)));
    fake.set("now", NOW + 3600).unwrap();
    let removed: i64 = lua
        .load(format!(
            "local store = require('up42webhooks.store').new{{ dict = 'received_webhooks', \
                 dedup_dict = 'webhooks_seen', stats_dict = 'webhooks_stats', dedup_ttl = 720, \
                 pending_ttl = 30, retention = {{ max_age = 7 * 86400, acked_max_age = 720 }}, \
                 journal = {{ dir = '{}', fsync = 'interval', segment_size = 4096 }} }} \
                 return assert(store:trim(fake.now))",
            dir.display()
        ))
        .eval()
        .unwrap();
    assert_eq!(removed, 30, "the acknowledged ones, past acked_max_age");
    let after = up42webhooks::journal::usage(&dir).unwrap();
    assert!(after.segments < usage.segments, "{after:?} after {usage:?}");
    // The acknowledgement's record may have opened the next segment; the one in use stays.
    assert!(
        after.last_segment >= usage.last_segment
            && dir
                .join(format!("events.{:06}.log", after.last_segment))
                .exists(),
        "the current segment stays: {after:?}"
    );

    // A new start replays what is left: events 31 to 40, and the watermark written again.
    let (lua2, _) = setup();
    dicts(&lua2, 1000);
    configure(
        &lua2,
        &format!(", journal = {{ dir = '{}' }}", dir.display()),
    );
    let (_, text, _) = run(&lua2, "dump", local_admin_get(&lua2));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 11, "{text}");
    assert!(lines[0].contains(r#""messageId":"s30""#), "{}", lines[0]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_binding_refuses_a_library_of_another_version() {
    let (lua, _) = setup();
    // The binding's version is the crate's: a release changes both.
    let version: String = lua
        .load("return require('up42webhooks.native')._VERSION")
        .eval()
        .unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    // It loaded, so the library it found is that version; another is refused with both named.
    let (ok, err): (Option<bool>, Option<String>) = lua
        .load("return require('up42webhooks.native').check_version('0.0.9')")
        .eval()
        .unwrap();
    assert_eq!(ok, None);
    let err = err.unwrap();
    assert!(
        err.contains("libup42webhooks 0.0.9")
            && err.contains(&format!("this Lua module is {version}")),
        "{err}"
    );
    assert!(lua
        .load("return require('up42webhooks.native').check_version(require('up42webhooks.native').version())")
        .eval::<bool>()
        .unwrap());
}

#[test]
fn named_consumers_without_a_journal_and_their_configuration() {
    let (lua, _) = setup();
    dicts(&lua, 100);
    for (list, says) in [
        ("{ 'a b' }", "a consumer's name is 1 to 64"),
        ("{ 'a', 'a' }", "a is named twice"),
        ("'a'", "a list of names"),
    ] {
        let err = configure_error(
            &lua,
            &format!(
                "require('up42webhooks').configure{{ secret = '{SECRET}', consumers = {list} }}"
            ),
        );
        assert!(err.contains(says), "{list}: {err}");
    }
    configure(&lua, ", consumers = { 'a', 'b' }");
    for i in 0..3 {
        let body = body(&format!("mem-{i}"), "FAILED", false);
        assert_eq!(run(&lua, "receive", delivery(&lua, &body, SECRET)).0, 200);
    }
    let admin = |args: &str, method: &str| -> Table {
        lua.load(format!(
            "return {{ method = '{method}', remote_addr = '127.0.0.1', listener = 'admin', headers = {{}}, args = {args} }}"
        ))
        .eval()
        .unwrap()
    };
    let (status, text, _) = run(&lua, "ack", admin("{ upto = '3' }", "POST"));
    assert_eq!(
        (status, json(&text)["error"].as_str()),
        (400, Some("consumer_required")),
        "{text}"
    );
    let (status, text, _) = run(&lua, "ack", admin("{ upto = '2', consumer = 'a' }", "POST"));
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        (
            json(&text)["acked"].as_u64(),
            json(&text)["consumer"].as_str()
        ),
        (Some(2), Some("a"))
    );
    let (_, text, _) = run(&lua, "dump", admin("{ consumer = 'a' }", "GET"));
    assert_eq!(
        text.lines().count(),
        2,
        "one event after a's position, and the count: {text}"
    );
    let (_, text, _) = run(&lua, "ack", admin("{ upto = '1', consumer = 'b' }", "POST"));
    assert_eq!(json(&text)["acked"].as_u64(), Some(1), "{text}");
    let (_, text, _) = run(&lua, "dump", admin("{}", "GET"));
    assert_eq!(
        text.lines().last(),
        Some(r#"{"number_webhooks_received":3,"next":3,"acknowledged":{"a":2,"b":1}}"#),
        "every event stays, each consumer's position said: {text}"
    );
}
