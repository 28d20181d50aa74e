//! A C program compiled against include/up42webhooks.h with -Wall -Wextra -Werror, linked to the
//! cdylib, verifies reference vectors: the header and the ABI agree.

use std::path::PathBuf;
use std::process::Command;

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn c_program_verifies_vectors_through_the_header() {
    let lib: PathBuf = crate::common::cdylib().parent().unwrap().to_path_buf();
    let exe = lib.join("c-abi-verify");
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
        .arg(crate::common::root().join("include"))
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
