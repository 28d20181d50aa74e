//! A C program compiled against include/up42webhooks.h with -Wall -Wextra -Werror, linked to the
//! cdylib, verifies reference vectors: the header and the ABI agree. The same program compiled
//! against the last release's header (abi/libup42webhooks-<version>.h.gz) runs against this library:
//! what callers built against the release do still works.

use std::path::PathBuf;
use std::process::Command;

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn c_program_verifies_vectors_through_the_header() {
    vectors_through(&crate::common::root().join("include"), "c-abi-verify");
}

#[test]
fn c_program_built_against_the_last_release_runs_against_this_library() {
    // The newest release's header: abi/libup42webhooks-<version>.h.gz (make abi-baseline).
    let released = std::fs::read_dir(crate::common::root().join("abi"))
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.to_string();
            let v: Vec<u64> = name
                .strip_prefix("libup42webhooks-")?
                .strip_suffix(".h.gz")?
                .split('.')
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?;
            Some((v, p))
        })
        .max()
        .expect("a release's header in abi/");
    let dir = crate::common::Scratch::new("c-abi-release");
    let header = Command::new("gzip")
        .arg("-dc")
        .arg(&released.1)
        .output()
        .unwrap();
    assert!(header.status.success());
    std::fs::write(dir.join("up42webhooks.h"), header.stdout).unwrap();
    vectors_through(&dir, "c-abi-verify-release");
}

fn vectors_through(include: &std::path::Path, name: &str) {
    // The library as make install lays it out: the file under its SONAME, the linker's name a
    // link to it.
    let built = crate::common::cdylib();
    let installed = crate::common::Scratch::new(&format!("{name}-lib"));
    let lib: PathBuf = installed.path().to_path_buf();
    std::fs::copy(&built, lib.join("libup42webhooks.so.0")).unwrap();
    std::os::unix::fs::symlink("libup42webhooks.so.0", lib.join("libup42webhooks.so")).unwrap();
    let exe = lib.join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-O1",
        ])
        .arg("-I")
        .arg(include)
        .arg(crate::common::root().join("tests/c/verify.c"))
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lup42webhooks", "-o"])
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(
        status.success(),
        "the C program compiles warning-free against the header"
    );
    // It asks for the library by its SONAME.
    let dynamic = Command::new("readelf")
        .arg("-d")
        .arg(&exe)
        .output()
        .unwrap();
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(
        dynamic.contains("Shared library: [libup42webhooks.so.0]"),
        "{dynamic}"
    );

    let vectors = crate::common::up42_vectors();
    let mut ran = 0;
    for v in vectors
        .iter()
        .filter(|v| v.secrets.len() == 1 && v.body.len() <= 4096)
    {
        let mut cmd = Command::new(&exe);
        cmd.arg(std::str::from_utf8(&v.secrets[0]).unwrap())
            .arg(hex(&v.body))
            .arg(v.now.to_string());
        for (n, val) in &v.headers {
            cmd.arg(std::str::from_utf8(n).unwrap())
                .arg(std::str::from_utf8(val).unwrap());
        }
        let text = crate::common::stdout_of(&cmd.output().unwrap(), &v.name);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], v.expect, "{} (array)", v.name);
        assert_eq!(lines[1], v.expect, "{} (raw)", v.name);
        let plain_vector =
            !v.name.contains('+') && v.headers.iter().any(|(n, _)| n == b"Content-Digest");
        if v.expect == "ok" && plain_vector {
            assert_eq!(
                lines[2], "sign-ok",
                "{}: C signing reproduces the reference headers",
                v.name
            );
        }
        ran += 1;
    }
    assert!(ran > 50, "ran {ran} vectors");
}
