//! How much memory the host can still give: Linux's `MemAvailable` (free memory plus what the
//! kernel can reclaim without swapping), so that loading a model too large for the machine is
//! refused up front instead of ending in the out-of-memory killer.

/// Bytes available, or None where the system does not say.
pub fn available() -> Option<u64> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// `MemAvailable:  123456 kB` → bytes.
fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_available_in_bytes() {
        let text = "MemTotal:       24592376 kB\nMemFree:         1024 kB\nMemAvailable:   22018124 kB\n";
        assert_eq!(parse_meminfo(text), Some(22_018_124 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_meminfo("MemAvailable: x kB\n"), None);
        #[cfg(target_os = "linux")]
        assert!(available().is_some_and(|b| b > 0));
    }
}
