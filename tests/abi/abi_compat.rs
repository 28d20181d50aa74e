//! The library's ABI against the last release's (`abi/libup42webhooks-<version>.abi.gz`, which
//! `make abi-baseline` writes at a release): libabigail's `abidw` reads the library built for the
//! tests (its DWARF), `abidiff` compares the two. Functions may be added; a function removed or
//! changed (a struct it takes grown or reordered, a parameter retyped) breaks programs built
//! against the release, and fails here unless the version says so (its first non-zero part
//! changed: 0.2 to 0.3, 1.x to 2.0). Needs abigail-tools (make test-deps).

use std::process::Command;

/// (removed, changed, added) functions and variables from abidiff's summary lines.
fn summary(report: &str) -> Option<(u64, u64, u64)> {
    let mut total = (0, 0, 0);
    let mut seen = 0;
    for line in report.lines() {
        let Some(rest) = line
            .strip_prefix("Functions changes summary: ")
            .or_else(|| line.strip_prefix("Variables changes summary: "))
        else {
            continue;
        };
        let n = |what: &str| -> Option<u64> {
            let at = rest.find(what)?;
            rest[..at].trim().rsplit([' ', ',']).next()?.parse().ok()
        };
        total.0 += n(" Removed")?;
        total.1 += n(" Changed")?;
        total.2 += n(" Added")?;
        seen += 1;
    }
    (seen == 2).then_some(total)
}

/// "0.2" of 0.2.0, "1" of 1.4.0: what must change for a change that breaks callers.
fn breaking_part(version: &str) -> String {
    let parts: Vec<&str> = version.split('.').collect();
    match parts.first() {
        Some(&"0") => parts.iter().take(2).copied().collect::<Vec<_>>().join("."),
        Some(major) => major.to_string(),
        None => String::new(),
    }
}

#[test]
fn abidiff_summaries_are_read() {
    let report =
        "Functions changes summary: 1 Removed, 2 Changed (3 filtered out), 4 Added functions\n\
                  Variables changes summary: 0 Removed, 0 Changed, 1 Added variable\n";
    assert_eq!(summary(report), Some((1, 2, 5)));
    assert_eq!(summary("nothing"), None);
    assert_eq!(breaking_part("0.2.0"), "0.2");
    assert_eq!(breaking_part("1.4.2"), "1");
}

#[test]
fn the_abi_keeps_the_last_releases_unless_the_version_says_it_breaks() {
    let root = crate::common::root();
    let mut baselines: Vec<(Vec<u64>, std::path::PathBuf)> = std::fs::read_dir(root.join("abi"))
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.to_string();
            let v = name
                .strip_prefix("libup42webhooks-")?
                .strip_suffix(".abi.gz")?;
            let key = v
                .split('.')
                .map(|x| x.parse().ok())
                .collect::<Option<Vec<u64>>>()?;
            Some((key, p))
        })
        .collect();
    baselines.sort();
    let (version, baseline) = baselines.pop().expect("a baseline in abi/");
    let released = version
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".");
    let current = env!("CARGO_PKG_VERSION");
    let dir = crate::common::Scratch::new("abi-compat");
    let (old, new) = (dir.join("released.abi"), dir.join("current.abi"));
    let unzipped = Command::new("gzip")
        .arg("-dc")
        .arg(&baseline)
        .output()
        .unwrap();
    assert!(unzipped.status.success());
    std::fs::write(&old, unzipped.stdout).unwrap();
    let read = Command::new("abidw")
        .args(["--no-corpus-path", "--out-file"])
        .arg(&new)
        .arg(crate::common::cdylib())
        .output()
        .unwrap_or_else(|e| panic!("abidw: {e} (make test-deps installs abigail-tools)"));
    assert!(
        read.status.success(),
        "abidw: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    let diff = Command::new("abidiff")
        .arg(&old)
        .arg(&new)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&diff.stdout).into_owned();
    let (removed, changed, added) = summary(&report)
        .unwrap_or_else(|| panic!("abidiff said no summary ({:?}): {report}", diff.status));
    if breaking_part(&released) == breaking_part(current) {
        assert!(
            removed == 0 && changed == 0,
            "the ABI of {current} breaks programs built against {released} ({removed} removed, \
             {changed} changed): keep the old function and add one, or make the version say it \
             (then make abi-baseline at the release):\n{report}"
        );
    }
    eprintln!("ABI against {released}: {added} added, {removed} removed, {changed} changed");
}
