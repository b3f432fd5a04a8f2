//! The standard `process_*` metrics (and etcd's `os_fd_*` pair), read from
//! `/proc/self` each time `/metrics` is scraped.
//!
//! Sources, all Linux procfs text:
//! - `/proc/self/stat`: user plus system CPU time and the start time, in
//!   clock ticks, and the virtual memory size in bytes;
//! - `/proc/self/status`: the resident set (`VmRSS`, in kB);
//! - `/proc/stat`: the boot time (`btime`), which turns the start tick into
//!   Unix time;
//! - `/proc/self/fd`: one entry per open descriptor;
//! - `/proc/self/limits`: the soft limits on descriptors and address space
//!   (`unlimited` is reported as 2^64, as Go's client does).
//!
//! Caveat: procfs counts CPU time in `USER_HZ` ticks, which is 100 on every
//! architecture Linux supports for userspace ABI purposes; without `sysconf`
//! (no unsafe code, no libc binding here) that constant is assumed. A source
//! that cannot be read leaves its metrics out of the scrape rather than
//! reporting zero.

use std::sync::LazyLock;

use parking_lot::Mutex;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge};

/// Clock ticks per second in procfs times (`USER_HZ`).
const TICKS_PER_SEC: f64 = 100.0;

/// What `/proc/self/stat` tells.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    /// User plus system CPU time, in ticks.
    cpu_ticks: u64,
    /// When the process started, in ticks since boot.
    start_ticks: u64,
    /// Virtual memory size in bytes.
    virtual_bytes: u64,
}

/// Parses `/proc/self/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from its closing parenthesis.
fn parse_stat(text: &str) -> Option<Stat> {
    let after_name = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(Stat {
        cpu_ticks: field(14)? + field(15)?,
        start_ticks: field(22)?,
        virtual_bytes: field(23)?,
    })
}

/// The resident set size in bytes from `/proc/self/status`.
fn parse_rss_bytes(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next()? {
        "kB" => Some(value * 1024),
        _ => None,
    }
}

/// The boot time in Unix seconds from `/proc/stat`.
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit named `name` in `/proc/self/limits`; `unlimited` is 2^64.
fn parse_soft_limit(text: &str, name: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    match line[name.len()..].split_whitespace().next()? {
        "unlimited" => Some(u64::MAX as f64),
        soft => soft.parse::<u64>().ok().map(|v| v as f64),
    }
}

/// The collector registered in the default registry.
struct ProcessCollector {
    /// `process_cpu_seconds_total`.
    cpu_seconds: Counter,
    /// `process_resident_memory_bytes`.
    resident_bytes: Gauge,
    /// `process_virtual_memory_bytes`.
    virtual_bytes: Gauge,
    /// `process_virtual_memory_max_bytes`.
    virtual_max_bytes: Gauge,
    /// `process_open_fds`.
    open_fds: Gauge,
    /// `process_max_fds`.
    max_fds: Gauge,
    /// `process_start_time_seconds`.
    start_time: Gauge,
    /// `os_fd_used` (etcd's own name for the open descriptors).
    os_fd_used: Gauge,
    /// `os_fd_limit` (etcd's own name for the descriptor limit).
    os_fd_limit: Gauge,
    /// Serializes scrapes: each sets the values, then reads them back.
    scrape: Mutex<()>,
}

impl ProcessCollector {
    /// Creates the metrics.
    fn new() -> ProcessCollector {
        let gauge = |name: &str, help: &str| Gauge::new(name, help).expect("valid gauge");
        ProcessCollector {
            cpu_seconds: Counter::new(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            )
            .expect("valid counter"),
            resident_bytes: gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ),
            virtual_bytes: gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            ),
            virtual_max_bytes: gauge(
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
            ),
            open_fds: gauge("process_open_fds", "Number of open file descriptors."),
            max_fds: gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
            ),
            start_time: gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            ),
            os_fd_used: gauge("os_fd_used", "The number of used file descriptors."),
            os_fd_limit: gauge("os_fd_limit", "The file descriptor limit."),
            scrape: Mutex::new(()),
        }
    }

    /// Reads procfs; returns the families it could fill.
    fn read(&self) -> Vec<MetricFamily> {
        let mut out = Vec::new();
        let read = |path: &str| std::fs::read_to_string(path).ok();
        if let Some(stat) = read("/proc/self/stat").as_deref().and_then(parse_stat) {
            self.cpu_seconds.reset();
            self.cpu_seconds
                .inc_by(stat.cpu_ticks as f64 / TICKS_PER_SEC);
            out.extend(self.cpu_seconds.collect());
            self.virtual_bytes.set(stat.virtual_bytes as f64);
            out.extend(self.virtual_bytes.collect());
            if let Some(boot) = read("/proc/stat").as_deref().and_then(parse_boot_time) {
                self.start_time
                    .set(boot as f64 + stat.start_ticks as f64 / TICKS_PER_SEC);
                out.extend(self.start_time.collect());
            }
        }
        if let Some(rss) = read("/proc/self/status")
            .as_deref()
            .and_then(parse_rss_bytes)
        {
            self.resident_bytes.set(rss as f64);
            out.extend(self.resident_bytes.collect());
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            let open = entries.count() as f64;
            self.open_fds.set(open);
            self.os_fd_used.set(open);
            out.extend(self.open_fds.collect());
            out.extend(self.os_fd_used.collect());
        }
        if let Some(limits) = read("/proc/self/limits") {
            if let Some(max) = parse_soft_limit(&limits, "Max open files") {
                self.max_fds.set(max);
                self.os_fd_limit.set(max);
                out.extend(self.max_fds.collect());
                out.extend(self.os_fd_limit.collect());
            }
            if let Some(max) = parse_soft_limit(&limits, "Max address space") {
                self.virtual_max_bytes.set(max);
                out.extend(self.virtual_max_bytes.collect());
            }
        }
        out
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.cpu_seconds.desc(),
            self.resident_bytes.desc(),
            self.virtual_bytes.desc(),
            self.virtual_max_bytes.desc(),
            self.open_fds.desc(),
            self.max_fds.desc(),
            self.start_time.desc(),
            self.os_fd_used.desc(),
            self.os_fd_limit.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _scrape = self.scrape.lock();
        self.read()
    }
}

/// Registers the collector once per process.
pub fn register() {
    static REGISTERED: LazyLock<()> = LazyLock::new(|| {
        if let Err(e) = prometheus::register(Box::new(ProcessCollector::new())) {
            tracing::warn!("process metrics not registered: {e}");
        }
    });
    LazyLock::force(&REGISTERED);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_end_of_the_name() {
        // A name with spaces and a parenthesis, as a thread may be named.
        let text = "4242 (etcd (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 12 0 123456 987654321 5000 18446744073709551615";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                cpu_ticks: 325,
                start_ticks: 123456,
                virtual_bytes: 987654321,
            })
        );
        assert_eq!(parse_stat("4242 (etcd) S 1 2"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn resident_size_comes_from_vmrss_in_kilobytes() {
        let text = "Name:\tetcd\nVmPeak:\t  2000 kB\nVmRSS:\t    1536 kB\nThreads:\t12\n";
        assert_eq!(parse_rss_bytes(text), Some(1536 * 1024));
        assert_eq!(parse_rss_bytes("Name:\tetcd\n"), None);
        assert_eq!(parse_rss_bytes("VmRSS:\t12 pages\n"), None);
    }

    #[test]
    fn boot_time_is_the_btime_line() {
        let text = "cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n";
        assert_eq!(parse_boot_time(text), Some(1_700_000_000));
        assert_eq!(parse_boot_time("cpu 1\n"), None);
    }

    #[test]
    fn soft_limits_are_the_first_column() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max open files            20000                1048576              files     \n\
                    Max address space         unlimited            unlimited            bytes     \n";
        assert_eq!(parse_soft_limit(text, "Max open files"), Some(20000.0));
        assert_eq!(
            parse_soft_limit(text, "Max address space"),
            Some(18446744073709551615.0)
        );
        assert_eq!(parse_soft_limit(text, "Max processes"), None);
    }

    #[test]
    fn this_process_reads_sensibly() {
        let families = ProcessCollector::new().collect();
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        let value = |name: &str| {
            let family = families.iter().find(|f| f.name() == name).unwrap();
            let metric = &family.get_metric()[0];
            match family.get_field_type() {
                prometheus::proto::MetricType::COUNTER => metric.get_counter().get_value(),
                _ => metric.get_gauge().get_value(),
            }
        };
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_resident_memory_bytes") > 1e5);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "{start} vs {now}"
        );
    }
}
