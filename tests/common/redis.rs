//! Debian's redis-server for the tests: started on a free loopback port with its own directory,
//! the append-only file on (fsync always), stopped (as a crash) when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// redis-server in the foreground on 127.0.0.1:`port`, its data in `dir` (AOF, fsync always).
pub struct Redis {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    /// Settings after the defaults (a later one wins), and the password they set.
    extra: Vec<String>,
    password: Option<String>,
}

impl Redis {
    pub fn start(name: &str) -> Redis {
        Redis::start_with(name, &[])
    }

    pub fn start_with(name: &str, extra: &[&str]) -> Redis {
        let dir = std::env::temp_dir().join(format!("up42wh-redis-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let password = extra
            .windows(2)
            .find(|w| w[0] == "--requirepass")
            .map(|w| w[1].to_string());
        let mut r = Redis {
            port: crate::common::nginx::free_port(),
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            password,
        };
        r.run();
        r
    }

    pub fn run(&mut self) {
        use std::os::unix::process::CommandExt;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(["--daemonize", "no", "--maxmemory-policy", "noeviction"])
            .args(&self.extra)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (make test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.cli(&["PING"]).trim() == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not come up on port {}", self.port);
    }

    /// kill -9, as a crash; the AOF stays.
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// kill -9, then the same server (port, directory) with these settings after the others.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.crash();
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        self.run();
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// redis-cli's raw output of one command.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut c = Command::new("redis-cli");
        c.args(["-p", &self.port.to_string(), "--raw", "--no-auth-warning"]);
        if let Some(p) = &self.password {
            c.args(["-a", p]);
        }
        c.args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
