//! What the daemon shows of itself while it runs: Prometheus metrics on an opt-in TCP address
//! (`--metrics 127.0.0.1:9188`, `GET /metrics`), and a unix control socket (`--control PATH`)
//! that `host-sim stats` reads.
//!
//! A small HTTP/1.0 responder of our own rather than a server crate: it answers one `GET` per
//! connection with a few kilobytes of text, which needs neither async nor a router, and keeps
//! the daemon's dependencies (and its attack surface) to what it uses.
//!
//! Guarantees: both listeners are read-only (nothing sent to them changes the daemon); each runs
//! on its own thread, answers one request per connection within a 2 s read limit and 8 KiB of
//! request, and stops when the [`Servers`] value is dropped; the control socket is made mode
//! 0600 and removed at exit, and a socket left by a dead process is replaced, while one a
//! running process listens on is refused.

use crate::daemon::Options;
use crate::export::Export;
use crate::metrics::{Exposition, GuardCounters, LinkMetrics, label, write_histogram};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The exports and links a scrape reports, as the supervisor last set them.
#[derive(Debug)]
pub struct Registry {
    exports: Mutex<Vec<Arc<Export>>>,
    links: Mutex<Vec<Arc<LinkMetrics>>>,
    /// Refusals of the double-export guards.
    pub guards: GuardCounters,
    started: Instant,
    started_at: SystemTime,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::new()
    }
}

impl Registry {
    /// An empty registry, started now.
    pub fn new() -> Registry {
        Registry {
            exports: Mutex::new(Vec::new()),
            links: Mutex::new(Vec::new()),
            guards: GuardCounters::default(),
            started: Instant::now(),
            started_at: SystemTime::now(),
        }
    }

    /// Replaces what is reported.
    pub fn set(&self, exports: Vec<Arc<Export>>, mut links: Vec<Arc<LinkMetrics>>) {
        links.sort_by(|a, b| a.name.cmp(&b.name));
        *self.exports.lock().unwrap_or_else(|p| p.into_inner()) = exports;
        *self.links.lock().unwrap_or_else(|p| p.into_inner()) = links;
    }

    fn snapshot(&self) -> (Vec<Arc<Export>>, Vec<Arc<LinkMetrics>>) {
        (
            self.exports
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            self.links.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        )
    }

    /// Everything, in Prometheus' text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let (exports, links) = self.snapshot();
        let mut out = Exposition::default();
        out.sample("vblade_rs_up", "gauge", "1 while host-sim runs", "", 1.0);
        let since = self
            .started_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        out.sample(
            "vblade_rs_start_time_seconds",
            "gauge",
            "when host-sim started (Unix time)",
            "",
            since,
        );
        for export in &exports {
            let spec = export.spec();
            let labels = format!(
                "export=\"{}\",file=\"{}\"",
                label(&spec.name()),
                label(&spec.file.to_string_lossy())
            );
            let stats = *export.target().stats();
            #[allow(clippy::cast_precision_loss)]
            let engine = [
                ("frames", "frames the engine saw", stats.frames),
                ("replies", "replies the engine built", stats.replies),
                (
                    "dropped_frames",
                    "frames that got no reply (not for us, masked, malformed, stale)",
                    stats.dropped,
                ),
                (
                    "aoe_errors",
                    "replies with an AoE error code",
                    stats.aoe_errors,
                ),
                ("ata_errors", "ATA replies with ERR", stats.ata_errors),
                (
                    "disk_errors",
                    "disk operations that failed",
                    stats.disk_errors,
                ),
            ];
            for (name, help, value) in engine {
                #[allow(clippy::cast_precision_loss)]
                out.sample(
                    &format!("vblade_rs_export_{name}_total"),
                    "counter",
                    help,
                    &labels,
                    value as f64,
                );
            }
            let m = export.metrics();
            for (op, count) in [
                ("read", m.reads.get()),
                ("write", m.writes.get()),
                ("flush", m.flushes.get()),
            ] {
                #[allow(clippy::cast_precision_loss)]
                out.sample(
                    "vblade_rs_export_requests_total",
                    "counter",
                    "disk requests answered with success, by operation (rate() is IOPS)",
                    &format!("{labels},op=\"{op}\""),
                    count as f64,
                );
            }
            for (direction, bytes) in [
                ("read", m.read_bytes.get()),
                ("write", m.written_bytes.get()),
            ] {
                #[allow(clippy::cast_precision_loss)]
                out.sample(
                    "vblade_rs_export_bytes_total",
                    "counter",
                    "octets moved between the disk and the network",
                    &format!("{labels},direction=\"{direction}\""),
                    bytes as f64,
                );
            }
            let errors = m
                .io_errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for (kind, count) in errors {
                #[allow(clippy::cast_precision_loss)]
                out.sample(
                    "vblade_rs_export_io_errors_total",
                    "counter",
                    "storage errors, by kind",
                    &format!("{labels},kind=\"{}\"", label(&kind)),
                    count as f64,
                );
            }
            #[allow(clippy::cast_precision_loss)]
            let gauges = [
                (
                    "vblade_rs_export_in_flight",
                    "disk requests in flight",
                    m.in_flight.get() as f64,
                ),
                (
                    "vblade_rs_export_iops",
                    "disk requests completed per second over the last second",
                    m.iops.get() as f64,
                ),
            ];
            for (name, help, value) in gauges {
                out.sample(name, "gauge", help, &labels, value);
            }
            #[allow(clippy::cast_precision_loss)]
            let counters = [
                (
                    "vblade_rs_export_pool_drops_total",
                    "requests dropped for lack of a frame buffer",
                    m.pool_drops.get(),
                ),
                (
                    "vblade_rs_export_handover_drops_total",
                    "frames dropped while a reload replaced the export",
                    m.handover_drops.get(),
                ),
                (
                    "vblade_rs_export_state_saves_total",
                    "target state saves",
                    m.state_saves.get(),
                ),
                (
                    "vblade_rs_export_state_save_failures_total",
                    "target state saves that failed (the reply was withheld)",
                    m.state_save_failures.get(),
                ),
                (
                    "vblade_rs_export_duplicate_events_total",
                    "probes that found another target with this shelf.slot",
                    m.duplicate_events.get(),
                ),
            ];
            for (name, help, value) in counters {
                #[allow(clippy::cast_precision_loss)]
                out.sample(name, "counter", help, &labels, value as f64);
            }
            write_histogram(
                &mut out,
                "vblade_rs_export_latency_seconds",
                "from a request's arrival to its reply's send",
                &labels,
                &m.latency,
            );
        }
        for link in &links {
            let labels = format!("link=\"{}\"", label(&link.name));
            out.sample(
                "vblade_rs_link_up",
                "gauge",
                "1 while the link is open and working",
                &labels,
                if link.up.load(Ordering::Relaxed) {
                    1.0
                } else {
                    0.0
                },
            );
            let counters = [
                ("frames", "frames received", link.frames.get()),
                (
                    "replies",
                    "replies and announcements sent",
                    link.replies.get(),
                ),
                (
                    "kernel_drops",
                    "frames the kernel dropped (receive buffer or ring full)",
                    link.kernel_drops.get(),
                ),
                ("send_errors", "sends that failed", link.send_errors.get()),
                (
                    "reopens",
                    "times the link failed and was opened again",
                    link.reopens.get(),
                ),
            ];
            for (name, help, value) in counters {
                #[allow(clippy::cast_precision_loss)]
                out.sample(
                    &format!("vblade_rs_link_{name}_total"),
                    "counter",
                    help,
                    &labels,
                    value as f64,
                );
            }
            for (export, state) in link.states() {
                out.sample(
                    "vblade_rs_link_export_state",
                    "gauge",
                    "an export's state on a link: waiting, probing, serving or conflict",
                    &format!(
                        "{labels},export=\"{}\",state=\"{}\"",
                        label(&export),
                        state.name()
                    ),
                    1.0,
                );
            }
        }
        for (guard, count) in self.guards.counts() {
            #[allow(clippy::cast_precision_loss)]
            out.sample(
                "vblade_rs_guard_refusals_total",
                "counter",
                "exports refused by a double-export guard",
                &format!("guard=\"{guard}\""),
                count as f64,
            );
        }
        out.finish()
    }

    /// A table for a person (`host-sim stats`).
    pub fn table(&self) -> String {
        let (exports, links) = self.snapshot();
        let up = self.started.elapsed().as_secs();
        let mut out = format!(
            "host-sim {}, pid {}, up {}h{:02}m{:02}s\n\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            up / 3600,
            up / 60 % 60,
            up % 60
        );
        out.push_str(&format!(
            "{:<8} {:>10} {:>7} {:>10} {:>10} {:>9} {:>9} {:>6} {:>7} {:>6}  file\n",
            "export",
            "requests",
            "iops",
            "read MB",
            "written MB",
            "p50",
            "p99",
            "queued",
            "errors",
            "saves"
        ));
        for export in &exports {
            let m = export.metrics();
            let stats = *export.target().stats();
            let quantile = |q| match m.latency.quantile_bound(q) {
                None => "-".to_owned(),
                Some(None) => ">1s".to_owned(),
                Some(Some(bound)) if bound < Duration::from_millis(1) => {
                    format!("<{}us", bound.as_micros())
                }
                Some(Some(bound)) => format!("<{}ms", bound.as_millis()),
            };
            #[allow(clippy::cast_precision_loss)]
            out.push_str(&format!(
                "{:<8} {:>10} {:>7} {:>10.1} {:>10.1} {:>9} {:>9} {:>6} {:>7} {:>6}  {}\n",
                export.spec().name(),
                m.requests(),
                m.iops.get(),
                m.read_bytes.get() as f64 / 1e6,
                m.written_bytes.get() as f64 / 1e6,
                quantile(0.5),
                quantile(0.99),
                m.in_flight.get(),
                stats.aoe_errors + stats.ata_errors + stats.disk_errors,
                m.state_saves.get(),
                export.spec().file.display()
            ));
        }
        out.push_str(&format!(
            "\n{:<12} {:>5} {:>10} {:>10} {:>8} {:>8} {:>7}  exports\n",
            "link", "up", "frames", "replies", "k-drops", "s-errors", "reopens"
        ));
        for link in &links {
            let states: Vec<String> = link
                .states()
                .into_iter()
                .map(|(export, state)| format!("{export} {}", state.name()))
                .collect();
            out.push_str(&format!(
                "{:<12} {:>5} {:>10} {:>10} {:>8} {:>8} {:>7}  {}\n",
                link.name,
                if link.up.load(Ordering::Relaxed) {
                    "yes"
                } else {
                    "no"
                },
                link.frames.get(),
                link.replies.get(),
                link.kernel_drops.get(),
                link.send_errors.get(),
                link.reopens.get(),
                states.join(", ")
            ));
        }
        let guards = self.guards.counts();
        if !guards.is_empty() {
            let text: Vec<String> = guards.iter().map(|(g, n)| format!("{g} {n}")).collect();
            out.push_str(&format!("\nguard refusals: {}\n", text.join(", ")));
        }
        out
    }
}

/// The running listeners; dropping it stops them (and removes the control socket).
#[derive(Debug)]
pub struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    socket: Option<PathBuf>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        if let Some(path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How often the listeners look at their stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(100);
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest request read.
const REQUEST_LIMIT: usize = 8192;

/// Reads a request until its end marker, the limit or the timeout.
fn read_request(stream: &mut dyn std::io::Read, end: &[u8]) -> Vec<u8> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while request.len() < REQUEST_LIMIT && !request.windows(end.len()).any(|w| w == end) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    request
}

/// The HTTP response to a request.
pub fn http_response(request: &[u8], registry: &Registry) -> Vec<u8> {
    let line = String::from_utf8_lossy(request);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, kind, body) = match (method, target) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            registry.prometheus(),
        ),
        ("GET", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "host-sim: metrics at /metrics\n".to_owned(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        ),
    };
    let mut response = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body.as_bytes());
    response
}

/// The control socket's answer to `command` (`stats`, `metrics`).
pub fn control_response(command: &str, registry: &Registry) -> String {
    match command.trim() {
        "stats" => registry.table(),
        "metrics" => registry.prometheus(),
        other => format!("unknown command {other:?}: stats or metrics\n"),
    }
}

fn serve_http(listener: std::net::TcpListener, registry: Arc<Registry>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
                let request = read_request(&mut stream, b"\r\n\r\n");
                let _ = stream.write_all(&http_response(&request, &registry));
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
            }
            Err(error) => {
                log::warn!("metrics: {error}");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

fn serve_control(
    listener: std::os::unix::net::UnixListener,
    registry: Arc<Registry>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
                let request = read_request(&mut stream, b"\n");
                let command = String::from_utf8_lossy(&request).into_owned();
                let _ = stream.write_all(control_response(&command, &registry).as_bytes());
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
            }
            Err(error) => {
                log::warn!("control socket: {error}");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

/// Binds the control socket at `path`: replaces a socket nobody listens on, refuses one a
/// running process listens on, makes the directory if needed, and sets mode 0600.
fn bind_control(path: &Path) -> Result<std::os::unix::net::UnixListener, String> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|error| format!("cannot make {}: {error}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "control socket {} is in use by a running host-sim",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|error| format!("cannot replace {}: {error}", path.display()))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .map_err(|error| format!("cannot listen on {}: {error}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|error| format!("cannot protect {}: {error}", path.display()))?;
    Ok(listener)
}

/// Starts the metrics listener and the control socket the options ask for.
///
/// # Errors
/// When an address or socket cannot be bound (one line).
pub fn start(options: &Options, registry: &Arc<Registry>) -> Result<Servers, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut servers = Servers {
        stop: Arc::clone(&stop),
        threads: Vec::new(),
        socket: None,
    };
    if let Some(address) = options.metrics {
        let listener = std::net::TcpListener::bind(address)
            .map_err(|error| format!("cannot serve metrics on {address}: {error}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|error| format!("metrics on {address}: {error}"))?;
        let (registry, stop) = (Arc::clone(registry), Arc::clone(&stop));
        servers.threads.push(
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || serve_http(listener, registry, stop))
                .map_err(|error| format!("cannot start a thread: {error}"))?,
        );
        log::info!("metrics on http://{address}/metrics");
    }
    if let Some(path) = &options.control {
        let listener = bind_control(path)?;
        servers.socket = Some(path.clone());
        listener
            .set_nonblocking(true)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        let (registry, stop) = (Arc::clone(registry), Arc::clone(&stop));
        servers.threads.push(
            std::thread::Builder::new()
                .name("control".into())
                .spawn(move || serve_control(listener, registry, stop))
                .map_err(|error| format!("cannot start a thread: {error}"))?,
        );
        log::info!("control socket {} (host-sim stats)", path.display());
    }
    Ok(servers)
}

/// `host-sim stats`: asks the daemon behind `socket` for its table (or metrics).
///
/// # Errors
/// When no host-sim answers there.
pub fn stats(socket: &Path, prometheus: bool) -> Result<String, String> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).map_err(|error| {
        format!(
            "no host-sim answers on {} ({error}); is it running with --control {}?",
            socket.display(),
            socket.display()
        )
    })?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let command = if prometheus { "metrics\n" } else { "stats\n" };
    stream
        .write_all(command.as_bytes())
        .map_err(|error| format!("{}: {error}", socket.display()))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|error| format!("{}: {error}", socket.display()))?;
    Ok(answer)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::metrics::ExportOnLink;
    use crate::spec::{ExportSpec, StatePresets};
    use aoe_net::LinkSpec;
    use aoe_storage::file::DiskOptions;
    use aoe_storage::mem::MemStorage;

    fn registry() -> Arc<Registry> {
        let spec = ExportSpec {
            shelf: 1,
            slot: 2,
            links: vec![LinkSpec::packet("eth1")],
            file: "/srv/disk \"a\".img".into(),
            buffer_count: 16,
            disk: DiskOptions::default(),
            mac_mask: vec![],
            state: StatePresets::default(),
            ha: crate::spec::Ha::None,
        };
        let export = Arc::new(Export::with_storage(spec, Arc::new(MemStorage::new(64))).unwrap());
        export.metrics().reads.add(7);
        export.metrics().read_bytes.add(7 * 1024);
        export.metrics().latency.record(Duration::from_micros(80));
        export.metrics().io_error("media error");
        let link = Arc::new(LinkMetrics::new("eth1"));
        link.frames.add(9);
        link.set_state("e1.2", ExportOnLink::Serving);
        let registry = Arc::new(Registry::new());
        registry.set(vec![export], vec![link]);
        registry.guards.refused("file_lock");
        registry
    }

    #[test]
    fn metrics_cover_exports_links_and_guards() {
        let text = registry().prometheus();
        let export = "export=\"e1.2\",file=\"/srv/disk \\\"a\\\".img\"";
        for line in [
            "vblade_rs_up 1".to_owned(),
            format!("vblade_rs_export_requests_total{{{export},op=\"read\"}} 7"),
            format!("vblade_rs_export_bytes_total{{{export},direction=\"read\"}} 7168"),
            format!("vblade_rs_export_io_errors_total{{{export},kind=\"media error\"}} 1"),
            format!("vblade_rs_export_latency_seconds_bucket{{{export},le=\"0.0001\"}} 1"),
            format!("vblade_rs_export_in_flight{{{export}}} 0"),
            "vblade_rs_link_frames_total{link=\"eth1\"} 9".to_owned(),
            "vblade_rs_link_export_state{link=\"eth1\",export=\"e1.2\",state=\"serving\"} 1"
                .to_owned(),
            "vblade_rs_guard_refusals_total{guard=\"file_lock\"} 1".to_owned(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        // Every sample line is NAME{LABELS} VALUE or NAME VALUE, with a number for value.
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            let value = sample.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{sample}");
        }
    }

    #[test]
    fn the_http_responder_answers_get_metrics_only() {
        let registry = registry();
        let response = http_response(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &registry);
        let text = String::from_utf8(response).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        assert!(body.contains("vblade_rs_export_requests_total"));
        let text =
            String::from_utf8(http_response(b"GET /other HTTP/1.1\r\n\r\n", &registry)).unwrap();
        assert!(text.starts_with("HTTP/1.0 404"));
        let text =
            String::from_utf8(http_response(b"POST /metrics HTTP/1.1\r\n\r\n", &registry)).unwrap();
        assert!(text.starts_with("HTTP/1.0 405"));
    }

    #[test]
    fn the_control_socket_serves_stats_and_refuses_a_second_daemon() {
        let scratch = aoe_testkit::scratch::Scratch::new("control");
        let path = scratch.dir.join("run/control.sock");
        let registry = registry();
        let options = Options {
            control: Some(path.clone()),
            metrics: Some("127.0.0.1:0".parse().unwrap()),
            ..Options::default()
        };
        let servers = start(&options, &registry).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let table = stats(&path, false).unwrap();
        assert!(table.starts_with("host-sim "), "{table}");
        let row = table.lines().find(|l| l.starts_with("e1.2 ")).unwrap();
        assert!(
            row.contains("<100us") && row.contains("/srv/disk"),
            "{table}"
        );
        assert!(
            table.contains("eth1") && table.contains("e1.2 serving"),
            "{table}"
        );
        assert!(table.contains("guard refusals: file_lock 1"), "{table}");
        let metrics = stats(&path, true).unwrap();
        assert!(metrics.starts_with("# HELP vblade_rs_up"), "{metrics}");
        // A second daemon may not take the socket of a running one.
        let error = start(&options, &registry).unwrap_err();
        assert!(error.contains("in use by a running host-sim"), "{error}");
        drop(servers);
        assert!(!path.exists(), "removed at exit");
        let error = stats(&path, false).unwrap_err();
        assert!(error.contains("no host-sim answers"), "{error}");
    }
}
