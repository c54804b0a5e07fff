//! CPU and memory of the processes under test, from /proc.

#[allow(unused_imports)]
use super::*;

/// The processes whose CPU is counted: the three services and the postmaster.
#[derive(Clone)]
pub(crate) struct Pids(Vec<(String, u32)>);

impl Pids {
    pub(crate) fn parse(s: &str) -> Result<Self> {
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (name, pid) = part.split_once('=').ok_or_else(|| anyhow!("LOAD_PIDS: `{part}` is not name=pid"))?;
            out.push((name.to_owned(), pid.parse().with_context(|| format!("LOAD_PIDS: {part}"))?));
        }
        if out.is_empty() {
            bail!("LOAD_PIDS names no process");
        }
        Ok(Self(out))
    }

    /// CPU ticks so far of each named process; for `postgres`, the postmaster, every backend it
    /// runs and every backend that has exited.
    pub(crate) fn ticks(&self) -> BTreeMap<String, u64> {
        self.0
            .iter()
            .map(|(name, pid)| {
                let ticks = if name == "postgres" { tree_ticks(*pid) } else { stat(*pid).map_or(0, |s| s.ticks) };
                (name.clone(), ticks)
            })
            .collect()
    }

    /// How many processes the postmaster runs now.
    pub(crate) fn postgres_backends(&self) -> usize {
        let Some((_, root)) = self.0.iter().find(|(name, _)| name == "postgres") else { return 0 };
        children(*root).len()
    }

    pub(crate) fn rss_kib(&self) -> BTreeMap<String, u64> {
        self.0.iter().filter(|(name, _)| name != "postgres").map(|(name, pid)| (name.clone(), rss_kib(*pid))).collect()
    }
}

pub(crate) struct Stat {
    pub(crate) ppid: u32,
    /// utime + stime.
    pub(crate) ticks: u64,
    /// cutime + cstime: children that have exited and been waited for.
    pub(crate) children: u64,
}

pub(crate) fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are fixed.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some(Stat { ppid: n(1) as u32, ticks: n(11) + n(12), children: n(13) + n(14) })
}

/// The live children of `root`, with their stats.
pub(crate) fn children(root: u32) -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter_map(stat)
        .filter(|s| s.ppid == root)
        .collect()
}

pub(crate) fn tree_ticks(root: u32) -> u64 {
    stat(root).map_or(0, |s| s.ticks + s.children) + children(root).iter().map(|s| s.ticks).sum::<u64>()
}

pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU milliseconds per request of each process between two readings.
pub(crate) fn cpu_ms_per(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    requests: usize,
    hz: f64,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(name, t)| {
            let used = t.saturating_sub(*before.get(name).unwrap_or(&0)) as f64;
            (name.clone(), round3(used * 1000.0 / hz / requests.max(1) as f64))
        })
        .collect()
}
