//! Byte sizes as people type them (`16GiB`, `1.5GB`, `512M`, `123456`) and as reports print
//! them. Binary suffixes (KiB, MiB, GiB, TiB; K, M, G, T alone mean the same) are powers of
//! 1024; decimal ones (kB, MB, GB, TB) powers of 1000; a bare number is bytes.

use std::fmt;
use std::str::FromStr;

/// A number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let unit = unit.trim();
        let scale: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            _ => return Err(format!("'{s}': unknown unit '{unit}' (expected B, KiB, MiB, GiB, TiB, kB, MB, GB or TB)")),
        };
        let value: f64 = number.parse().map_err(|_| format!("'{s}' is not a size (e.g. 16GiB, 1.5GB, 512MiB)"))?;
        let bytes = value * scale as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(format!("'{s}' is too large"));
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl fmt::Display for ByteSize {
    /// Binary units with two decimals: `16.00 GiB`, `13.19 MiB`, `512 B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        match UNITS.iter().find(|(_, size)| self.0 >= *size) {
            Some((name, size)) => write!(f, "{:.2} {name}", self.0 as f64 / *size as f64),
            None => write!(f, "{} B", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_decimal_and_bare_sizes() {
        let p = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(p("16GiB"), Ok(16 << 30));
        assert_eq!(p("16G"), Ok(16 << 30));
        assert_eq!(p("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(p("512MiB"), Ok(512 << 20));
        assert_eq!(p("123456"), Ok(123_456));
        assert_eq!(p("2kb"), Ok(2000));
        assert!(p("16 GiBs").unwrap_err().contains("unknown unit"));
        assert!(p("GiB").unwrap_err().contains("is not a size"));
        assert!(p("1e30TB").is_err());
    }

    #[test]
    fn prints_binary_units() {
        assert_eq!(ByteSize(16 << 30).to_string(), "16.00 GiB");
        assert_eq!(ByteSize(13_190_400).to_string(), "12.58 MiB");
        assert_eq!(ByteSize(512).to_string(), "512 B");
    }
}
