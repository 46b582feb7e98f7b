//! Child processes of a test, stopped by their own PID.
//!
//! Guarantees: a [`Proc`] is killed (SIGKILL to its own PID, nothing else) and reaped when it
//! is dropped, also when an assertion failed; what it printed on stdout and stderr is kept for
//! the failure message.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child process killed (by its PID) and reaped on drop.
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
    name: String,
    output: String,
    /// Lines of stdout and stderr read while it runs ([`Proc::spawn_watched`]).
    lines: Option<Arc<Mutex<Vec<String>>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Proc {
    /// Spawns `command` with stdout and stderr captured.
    pub fn spawn(mut command: Command, name: &str) -> Proc {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            child: Some(child),
            name: name.to_owned(),
            output: String::new(),
            lines: None,
            readers: Vec::new(),
        }
    }

    /// Spawns `command` and reads its stdout and stderr line by line while it runs, so that a
    /// test can look at its log ([`Proc::log`], [`Proc::wait_for_line`]) without stopping it.
    pub fn spawn_watched(command: Command, name: &str) -> Proc {
        use std::io::BufRead as _;
        let mut proc = Proc::spawn(command, name);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = proc
            .take_stdout()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        let stderr = proc
            .take_stderr()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let sink = Arc::clone(&lines);
            proc.readers.push(std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            }));
        }
        proc.lines = Some(lines);
        proc
    }

    /// The lines a watched process printed so far (stdout and stderr, each in order).
    pub fn log(&self) -> Vec<String> {
        self.lines.as_ref().map_or_else(Vec::new, |lines| {
            lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
        })
    }

    /// Waits up to `limit` for a line of a watched process that contains `needle`; returns it.
    /// Panics with the log so far when none came (or the process exited first).
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> String {
        self.wait_for_nth_line(needle, 1, limit)
    }

    /// Like [`wait_for_line`](Self::wait_for_line), for the `nth` (from 1) such line.
    pub fn wait_for_nth_line(&mut self, needle: &str, nth: usize, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self
                .log()
                .into_iter()
                .filter(|line| line.contains(needle))
                .nth(nth.saturating_sub(1))
            {
                return line;
            }
            let exited = self.try_exit();
            assert!(
                exited.is_none() && start.elapsed() < limit,
                "{}: no line with {needle:?} within {limit:?} (exit: {exited:?}); log:\n{}",
                self.name,
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process ID.
    pub fn pid(&self) -> i32 {
        let id = self.child.as_ref().map_or(0, Child::id);
        i32::try_from(id).unwrap_or(0)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory preconditions; the PID is our own child, not yet reaped.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill {} {}", signal, self.name);
    }

    /// The exit status if it has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits up to `limit` for the process to exit and returns its status and output.
    pub fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_exit() {
                let child = self.child.take().expect("a child");
                let out = child.wait_with_output().expect("collect output");
                self.output = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                let watched = self.finish_watch();
                self.output.push_str(&watched);
                return (status, self.output.clone());
            }
            assert!(
                start.elapsed() < limit,
                "{} did not exit within {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process, then returns what it printed.
    pub fn output(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            if let Ok(out) = child.wait_with_output() {
                self.output = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let watched = self.finish_watch();
            self.output.push_str(&watched);
        }
        self.output.clone()
    }

    /// For a watched process that ended: waits for its readers, returns every line it printed.
    fn finish_watch(&mut self) -> String {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let mut text = self.log().join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        text
    }

    /// The child's stderr, to read its log while it runs (taken once).
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.as_mut()?.stderr.take()
    }

    /// The child's stdout, to read it while it runs (taken once).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.as_mut()?.stdout.take()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The path of a binary of this workspace (`host-sim`, `aoe`), built for the same profile as
/// the running test: beside the test's own `target/<profile>` directory. Built with
/// `cargo build --bin NAME` first if it is not there yet.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("a test binary lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command.args(["build", "--bin", name]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            command.arg("--release");
        }
        let status = command.status().expect("run cargo build");
        assert!(status.success(), "cargo build --bin {name} failed");
    }
    path
}
