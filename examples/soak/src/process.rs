//! The two services as real child processes: started with their environment, logs in a
//! file, stopped with SIGTERM (graceful) or SIGKILL (a crash), resident memory read from
//! `/proc/<pid>/status`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where the binaries are looked for: the directory of the running executable, or its parent
/// when that is `deps/` (a test binary): `target/<profile>/`.
pub fn default_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    }
}

/// The path of binary `name` in `bin_dir`, or an error that says how to build it.
pub(crate) fn binary(bin_dir: &Path, name: &str) -> Result<PathBuf, String> {
    let bin = bin_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is missing: build it first with `cargo build -p {name}` (same profile as the \
             soak driver; `--release` for release), or run `cargo test --workspace`, which \
             builds every binary",
            bin.display()
        ))
    }
}

/// A running service; killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub(crate) struct Service {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Starts `bin` with exactly `env` (plus `PATH`), output appended to `log`.
    pub(crate) fn spawn(
        name: &str,
        bin: &Path,
        env: &[(&'static str, String)],
        log: PathBuf,
    ) -> Result<Self, String> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("open {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("open {}: {e}", log.display()))?;
        let child = Command::new(bin)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            // As in examples/docker-compose.yml: glibc's malloc otherwise gives each of the
            // runtime's threads its own arena, and resident memory creeps up for minutes
            // as load moves between threads, which would hide a real leak in the RSS check.
            .env("MALLOC_ARENA_MAX", "2")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("start {}: {e}", bin.display()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `lines` lines of its log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// An error if the process has exited.
    pub(crate) fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} (pid {}) exited unexpectedly ({status}); log tail:\n{}",
                self.name,
                self.pid(),
                self.log_tail(30)
            )),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// Sends SIGTERM, as Kubernetes does before it replaces a pod.
    pub(crate) fn sigterm(&self) -> Result<(), String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map_err(|e| format!("run kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -TERM {} failed: {status}", self.pid()))
        }
    }

    /// SIGKILL, no drain: a crash.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status, if the process has exited.
    pub(crate) fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits (polling, at most `timeout`) for the process to exit.
    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!(
            "{} (pid {}) did not exit within {timeout:?} of SIGTERM; log tail:\n{}",
            self.name,
            self.pid(),
            self.log_tail(30)
        ))
    }

    /// Anonymous resident memory in KiB (`RssAnon`), if readable.
    pub(crate) fn anon_kib(&self) -> Option<u64> {
        anon_kib(self.pid())
    }

    /// Resident memory in KiB (`VmRSS`), if readable.
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `VmRSS` of process `pid` in KiB, from `/proc/<pid>/status` (Linux): all its resident
/// pages, the executable's code included.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// `RssAnon` of process `pid` in KiB, from `/proc/<pid>/status` (Linux): its resident
/// anonymous pages (heap, stacks, anonymous maps), where a leak shows. Unlike `VmRSS` it
/// leaves out the file-backed pages of the executable, which grow as code paths run for the
/// first time (a fault phase's error paths) and are reclaimable: in a debug build they are
/// most of `VmRSS`.
pub fn anon_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "RssAnon:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_rss_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            let kib = rss_kib(std::process::id()).unwrap();
            assert!(kib > 100, "{kib} KiB");
            let anon = anon_kib(std::process::id()).unwrap();
            assert!(anon > 0 && anon <= kib, "{anon} of {kib} KiB");
        }
    }

    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let err = binary(Path::new("/nonexistent"), "order-service").unwrap_err();
        assert!(err.contains("cargo build -p order-service"), "{err}");
    }
}
