//! make in a copy of the project, for the tests of make's targets (tests/operations/make_targets.rs) and of
//! the images (tests/operations/containers.rs): `make clean` and compose projects there touch nothing of the
//! checkout's or a user's.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The command's output, or a panic naming it with its output.
pub fn run(c: &mut Command, what: &str) -> Output {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What make and the image builds read, copied from the checkout into `dir` (the build output,
/// run directories and secrets stay behind); `dist` is linked to dist(), for the boards' builds.
pub fn project_copy(dir: &Path) {
    let root = crate::common::root();
    for f in [
        "Makefile",
        "Dockerfile",
        "Dockerfile.debian",
        "Dockerfile.lib",
        ".dockerignore",
        "docker-compose.yml",
        "docker-compose.debian.yml",
        "docker-compose.debian-dev.yml",
        "docker-compose.override.yml",
        "docker-compose.secret.yml",
        "docker-compose.tls.yml",
        // What make deb's packaging/deb/build.sh reads besides.
        "Cargo.toml",
        "README.md",
        "LICENSE",
    ] {
        std::fs::copy(root.join(f), dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    for d in ["lua", "openresty", "docker", "packaging", "examples"] {
        run(
            Command::new("cp").arg("-a").arg(root.join(d)).arg(dir),
            "cp",
        );
    }
    std::os::unix::fs::symlink(crate::common::dist(), dir.join("dist")).unwrap();
    // The Redis client make nginx-deps took from Debian's packages, when it is there.
    if root.join("vendor").exists() {
        std::os::unix::fs::symlink(root.join("vendor"), dir.join("vendor")).unwrap();
    }
}

/// make in the copy, hermetic: none of the caller's settings, cargo replaced by `true` (the
/// release build is ours, RELEASE_DIR), this run's ports, secret and base.
pub struct Make {
    pub dir: PathBuf,
    pub release: PathBuf,
    pub vars: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
}

impl Make {
    pub fn command(&self, target: &str) -> Command {
        let mut c = Command::new("make");
        crate::common::hermetic(&mut c)
            .current_dir(&self.dir)
            .arg("--no-print-directory")
            .args(target.split_whitespace())
            .arg("CARGO=true")
            .arg(format!("RELEASE_DIR={}", self.release.display()));
        for (k, v) in &self.vars {
            c.arg(format!("{k}={v}"));
        }
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }

    pub fn ok(&self, target: &str) -> String {
        text(&run(&mut self.command(target), &format!("make {target}")))
    }

    pub fn with_env(&self, name: &str, value: &str) -> Make {
        let mut env = self.env.clone();
        env.retain(|(k, _)| k != name);
        env.push((name.into(), value.into()));
        Make {
            dir: self.dir.clone(),
            release: self.release.clone(),
            vars: self.vars.clone(),
            env,
        }
    }

    pub fn without_env(&self, name: &str) -> Make {
        let mut m = self.with_env(name, "");
        m.env.retain(|(k, _)| k != name);
        m
    }
}

/// Stops the copy's host server (make stop) when dropped, also when a step failed.
pub struct Stop<'a>(pub &'a Make);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        let _ = self.0.command("stop").output();
    }
}

/// The release library and signing tool (what make build makes), in a target directory of its own: the `cargo test` that runs us holds the default one's lock. `UP42WH_TEST_RELEASE_DIR`
/// names a directory built before instead, with up42wh too (tests/run.sh builds the workspace's
/// release there first).
pub fn release_dir() -> PathBuf {
    if let Some(dir) = prebuilt_release() {
        return dir;
    }
    let target = crate::common::root().join("target/for-images");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(
        Command::new(cargo)
            .args(["build", "--release", "--locked", "--offline", "--quiet"])
            .args(["--lib", "--bin", "up42wh-sign", "--target-dir"])
            .arg(&target)
            .current_dir(crate::common::root()),
        "cargo build --release",
    );
    target.join("release")
}

/// `UP42WH_TEST_RELEASE_DIR`, checked: the library, the signing tool and up42wh.
fn prebuilt_release() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("UP42WH_TEST_RELEASE_DIR")?);
    for f in ["libup42webhooks.so", "up42wh-sign", "up42wh"] {
        assert!(
            dir.join(f).exists(),
            "UP42WH_TEST_RELEASE_DIR={} has {f}",
            dir.display()
        );
    }
    Some(dir)
}

/// release_dir() with the up42wh program beside the library, as the images take it (make image
/// LIB=host): its own build, so that the tests which need only the library do not wait for it.
pub fn release_dir_with_up42wh() -> PathBuf {
    if let Some(dir) = prebuilt_release() {
        return dir;
    }
    let release = release_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(
        Command::new(cargo)
            .args(["build", "--release", "--locked", "--offline", "--quiet"])
            .args(["-p", "up42wh", "--target-dir"])
            .arg(release.parent().unwrap())
            .current_dir(crate::common::root()),
        "cargo build --release -p up42wh",
    );
    release
}

impl Make {
    /// The target's output when it fails, as it must.
    pub fn fails(&self, target: &str) -> String {
        let out = self.command(target).output().unwrap();
        assert!(
            !out.status.success(),
            "make {target} succeeded:\n{}",
            text(&out)
        );
        text(&out)
    }
}
