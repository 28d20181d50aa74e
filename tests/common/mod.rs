//! Helpers shared by the integration tests: the reference vectors and calls through the C ABI.
#![allow(dead_code)]

pub mod make;
pub mod nginx;
pub mod redis;
pub mod senders;

use std::path::PathBuf;

use serde_json::Value;
use up42webhooks::ffi::{self, up42wh_header, up42wh_key, up42wh_slice, up42wh_verified};
use up42webhooks::Code;

/// A test's own directory, `up42wh-NAME-PID` under the system's temporary one, empty when made
/// and removed when dropped: test runs leave nothing behind (a journal's index alone is 84 MB).
/// A failing test's directory stays, named on stderr, to be looked at.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("up42wh-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the failed test's files: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where make cross put the boards' builds: `UP42WH_TEST_DIST` (make test's lane builds them into a
/// directory of its own, never the checkout's dist/), else dist/.
pub fn dist() -> PathBuf {
    std::env::var_os("UP42WH_TEST_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("dist"))
}

/// Clears from a child's environment every setting the project reads (the module's
/// UP42_WEBHOOK_* variables, the listen and TLS settings, make's ports): what the shell running the
/// tests exports, a user's own secret say, changes no test.
pub fn hermetic(c: &mut std::process::Command) -> &mut std::process::Command {
    for (name, _) in std::env::vars_os() {
        // The module's UP42_WEBHOOK_*, up42wh's UP42_* (credentials, API addresses) and its
        // UP42WH_FORWARD_* and reconcile defaults.
        let n = name.to_string_lossy();
        if n.starts_with("UP42_")
            || n.starts_with("UP42WH_FORWARD_")
            || n == "UP42WH_RECEIVER"
            || n == "UP42WH_RECONCILE_STATE"
            || n == "STATE_DIRECTORY"
        {
            c.env_remove(name);
        }
    }
    for name in [
        "LISTEN",
        "TLS_LISTEN",
        "ADMIN_LISTEN",
        "TLS_CERT",
        "TLS_KEY",
        "TLS_STAPLING",
        "RESOLVER",
        "PORT",
        "ADMIN_PORT",
        "TLS_DIR",
        "TLS_PORT",
        "ADMIN_ACCESS_LOG",
        "SECRET_FILE",
        "FORWARD",
        "FORWARD_CONFIG",
        "RECONCILE",
        "RECONCILE_EVERY",
        "SINCE",
        "DIST",
        "UP42WH_PROFILE",
        // make run's choice of image and its parts, and compose's own settings.
        "FLAVOR",
        "ARCH",
        "LIB",
        "BASE_IMAGE",
        "DEBIAN_IMAGE",
        "PROD",
        "RUN_DIR",
        "COMPOSE_PROJECT_NAME",
        "COMPOSE_FILE",
        // A make that runs the tests (make test) would make every make here its sub-make.
        "MAKEFLAGS",
        "MAKELEVEL",
        "MFLAGS",
    ] {
        c.env_remove(name);
    }
    c
}

/// The up42wh program (a workspace member), built once per test binary into a target directory of
/// its own: the `cargo test` that runs us holds the default one's lock. `UP42WH_TEST_UP42WH` names
/// one built before instead (tests/run.sh builds it beside the tests, sharing their dependencies).
pub fn up42wh() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            built(
                "UP42WH_TEST_UP42WH",
                "up42wh-for-tests",
                &["-p", "up42wh"],
                "up42wh",
            )
        })
        .clone()
}

/// What `cargo build <args>` makes as `file`, into the target directory `target_dir` of its own,
/// or the file the variable `env` names when it is set.
fn built(env: &str, target_dir: &str, args: &[&str], file: &str) -> PathBuf {
    if let Some(given) = std::env::var_os(env) {
        let given = PathBuf::from(given);
        assert!(given.exists(), "{env}={} exists", given.display());
        return given;
    }
    let target = root().join("target").join(target_dir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .arg("build")
        .args(args)
        .args(["--locked", "--offline", "--quiet", "--target-dir"])
        .arg(&target)
        .current_dir(root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {file} for the tests failed");
    let out = target.join("debug").join(file);
    assert!(out.exists(), "{} was built", out.display());
    out
}

/// Text header pairs as the byte pairs `Headers::Pairs` takes.
pub fn byte_pairs(headers: &[(String, String)]) -> Vec<(&[u8], &[u8])> {
    headers
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect()
}

/// The standard output of a child process that must have succeeded; `what` and its standard error
/// otherwise.
pub fn stdout_of(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

/// A committed vector file must be exactly what its reference signer script writes today.
pub fn assert_generated(script: &str, committed: &str, hint: &str) {
    let out = std::process::Command::new("python3")
        .arg(root().join(script))
        .output()
        .expect("python3 runs the reference signer");
    let written = stdout_of(&out, &format!("{script} ({hint})"));
    let in_git = std::fs::read_to_string(root().join(committed)).unwrap();
    assert!(
        written == in_git,
        "{committed} is stale: regenerate it with {script}"
    );
}

/// The cdylib, built for the tests that load it from C or LuaJIT. `cargo test` links the rlib and
/// does not produce the .so, so this builds it once per test binary, into a target directory of its
/// own (with its own lock, so that it does not wait for the `cargo test` that runs us).
///
/// `UP42WH_TEST_CDYLIB` names a library built elsewhere instead: the ARM runs under qemu-user
/// (`make cross-test`) load the cross-built one from dist/<target>/, and tests/run.sh the one it
/// built before the tests.
pub fn cdylib() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            built(
                "UP42WH_TEST_CDYLIB",
                "cdylib-for-tests",
                &["--lib"],
                "libup42webhooks.so",
            )
        })
        .clone()
}

/// One vector of tests/vectors/up42.json.
pub struct Vector {
    pub name: String,
    pub secrets: Vec<Vec<u8>>,
    pub body: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub now: i64,
    pub expect: String,
    pub key_index: Option<usize>,
}

impl Vector {
    pub fn pairs(&self) -> Vec<(&[u8], &[u8])> {
        self.headers.iter().map(|(n, v)| (&n[..], &v[..])).collect()
    }

    /// The headers as an HTTP/1 block, request line first, as nginx's raw_header() gives it.
    pub fn raw(&self) -> Vec<u8> {
        let mut raw = b"POST /receive-webhooks HTTP/1.1\r\n".to_vec();
        for (n, v) in &self.headers {
            raw.extend_from_slice(n);
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(v);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        raw
    }

    pub fn key(&self) -> up42webhooks::Key {
        up42webhooks::Key::new(&self.secrets).expect("vector secrets make a key")
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn bytes(v: &Value) -> Vec<u8> {
    v.as_str().expect("string").as_bytes().to_vec()
}

pub fn up42_vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(root().join("tests/vectors/up42.json")).expect("up42.json");
    let doc: Value = serde_json::from_str(&text).expect("valid JSON");
    doc["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|v| {
            let b = &v["body"];
            let body = if let Some(hex) = b["hex"].as_str() {
                unhex(hex)
            } else {
                let pattern = b["repeat"].as_str().expect("repeat").as_bytes();
                let len = b["len"].as_u64().expect("len") as usize;
                pattern.iter().copied().cycle().take(len).collect()
            };
            Vector {
                name: v["name"].as_str().expect("name").to_string(),
                secrets: v["secrets"]
                    .as_array()
                    .expect("secrets")
                    .iter()
                    .map(bytes)
                    .collect(),
                body,
                headers: v["headers"]
                    .as_array()
                    .expect("headers")
                    .iter()
                    .map(|h| (bytes(&h[0]), bytes(&h[1])))
                    .collect(),
                now: v["now"].as_i64().expect("now"),
                expect: v["expect"].as_str().expect("expect").to_string(),
                key_index: v["key_index"].as_u64().map(|n| n as usize),
            }
        })
        .collect()
}

/// A key made and freed through the C ABI.
pub struct CKey(pub *mut up42wh_key);

impl CKey {
    pub fn new<S: AsRef<[u8]>>(secrets: &[S]) -> Result<CKey, Code> {
        let slices: Vec<up42wh_slice> = secrets
            .iter()
            .map(|s| up42wh_slice {
                ptr: s.as_ref().as_ptr(),
                len: s.as_ref().len(),
            })
            .collect();
        let mut key = std::ptr::null_mut();
        let code = unsafe { ffi::up42wh_key_new(slices.as_ptr(), slices.len(), &mut key) };
        if code == Code::Ok {
            Ok(CKey(key))
        } else {
            assert!(key.is_null(), "no key is written on failure");
            Err(code)
        }
    }

    /// `up42wh_verify` with the headers as an array.
    pub fn verify(
        &self,
        headers: &[(&[u8], &[u8])],
        body: &[u8],
        now: i64,
    ) -> Result<up42wh_verified, Code> {
        let list: Vec<up42wh_header> = headers
            .iter()
            .map(|(n, v)| up42wh_header {
                name: n.as_ptr(),
                name_len: n.len(),
                value: v.as_ptr(),
                value_len: v.len(),
            })
            .collect();
        checked(|out| unsafe {
            ffi::up42wh_verify(
                self.0,
                list.as_ptr(),
                list.len(),
                body.as_ptr(),
                body.len(),
                now,
                std::ptr::null(),
                out,
            )
        })
    }

    /// `up42wh_verify_raw`.
    pub fn verify_raw(&self, raw: &[u8], body: &[u8], now: i64) -> Result<up42wh_verified, Code> {
        checked(|out| unsafe {
            ffi::up42wh_verify_raw(
                self.0,
                raw.as_ptr(),
                raw.len(),
                body.as_ptr(),
                body.len(),
                now,
                std::ptr::null(),
                out,
            )
        })
    }
}

/// Runs a verification into a marked output and checks the ABI rule that nothing is written on
/// failure.
fn checked(call: impl FnOnce(&mut up42wh_verified) -> Code) -> Result<up42wh_verified, Code> {
    let mut out = blank_verified();
    match call(&mut out) {
        Code::Ok => Ok(out),
        code => {
            assert_eq!(out.created, -1, "no output is written on failure");
            Err(code)
        }
    }
}

/// The headers of a delivery signed as UP42 does: Content-Type and the three signature fields.
pub fn signed_headers(body: &[u8], secret: &str, created: i64) -> Vec<(String, String)> {
    let key = up42webhooks::Key::new(&[secret]).expect("a key");
    let s = up42webhooks::sign(&key, body, created, &up42webhooks::SignOptions::default())
        .expect("signed");
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("ASCII header");
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("Content-Digest".into(), text(s.content_digest())),
        ("Signature-Input".into(), text(s.signature_input())),
        ("Signature".into(), text(s.signature())),
    ]
}

impl Drop for CKey {
    fn drop(&mut self) {
        unsafe { ffi::up42wh_key_free(self.0) }
    }
}

pub fn blank_verified() -> up42wh_verified {
    up42wh_verified {
        created: -1,
        expires: -1,
        has_expires: false,
        key_index: 99,
        body_sha256: [0; 32],
    }
}

/// The result of a verification as the stable name the vectors use.
pub fn outcome<T>(r: &Result<T, Code>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(c) => c.name(),
    }
}

/// A small tmpfs the test mounts (as root, as CI runs), unmounted on drop; None where mounting
/// is not allowed.
pub struct SmallDisk(PathBuf);

impl SmallDisk {
    pub fn mount(name: &str, size: &str) -> Option<SmallDisk> {
        let dir = std::env::temp_dir().join(format!("up42wh-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(SmallDisk(dir))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}
