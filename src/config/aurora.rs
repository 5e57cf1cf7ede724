//! Aurora PostgreSQL's default `max_connections` for an instance class (pure): AWS sets it to
//! `LEAST({DBInstanceClassMemory/9531392}, 5000)` and works it out in its user guide from the
//! class's memory in GiB times 10^9 ("db.r4.large, 15.25 GiB: LEAST((15.25*1000000000)/
//! 9531392, 5000) = 1600", rounded), which its table of defaults follows. The connections alarm
//! divides by it, so the class must be one whose memory is known here.

/// Memory of an Aurora PostgreSQL instance class, in GiB.
pub fn memory_gib(class: &str) -> Option<f64> {
    let mut parts = class.split('.');
    let (Some("db"), Some(family), Some(size), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    // Burstable classes (dev and test only).
    if family.starts_with('t') {
        return match size {
            "medium" => Some(4.0),
            "large" => Some(8.0),
            _ => None,
        };
    }
    // Memory-optimized: 8 GiB per vCPU (r; r4: 7.625), 16 GiB per vCPU (x2g).
    let per_large = match family {
        "r4" => 15.25,
        f if f.starts_with('r') => 16.0,
        f if f.starts_with("x2") => 32.0,
        _ => return None,
    };
    let factor = match size {
        "large" => 1,
        "xlarge" => 2,
        other => {
            let n: u64 = other.strip_suffix("xlarge")?.parse().ok()?;
            n * 2
        }
    };
    Some(per_large * factor as f64)
}

/// AWS's cap on the default.
const MAX: u64 = 5000;
/// Bytes of instance memory per connection in AWS's default.
const BYTES_PER_CONNECTION: f64 = 9_531_392.0;
/// AWS's equation counts a GiB of the class's memory as 10^9 bytes.
const BYTES_PER_GIB: f64 = 1_000_000_000.0;

/// The class's default `max_connections`, `None` for a class whose memory is unknown here.
pub fn max_connections(class: &str) -> Option<u64> {
    let connections = (memory_gib(class)? * BYTES_PER_GIB / BYTES_PER_CONNECTION).round();
    Some((connections as u64).min(MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_follow_memory_and_the_cap() {
        // AWS's worked example and table.
        assert_eq!(max_connections("db.r4.large"), Some(1600));
        assert_eq!(max_connections("db.r4.xlarge"), Some(3200));
        assert_eq!(max_connections("db.r4.2xlarge"), Some(5000));
        assert_eq!(max_connections("db.t4g.medium"), Some(420));
        assert_eq!(max_connections("db.r6g.large"), Some(1679));
        assert_eq!(max_connections("db.r6g.xlarge"), Some(3357));
        assert_eq!(max_connections("db.r7g.2xlarge"), Some(5000), "capped");
        assert_eq!(max_connections("db.r6i.16xlarge"), Some(5000));
        assert_eq!(memory_gib("db.r6g.16xlarge"), Some(512.0));
        assert_eq!(memory_gib("db.x2g.large"), Some(32.0));
        assert_eq!(max_connections("db.m5.large"), None);
        assert_eq!(max_connections("db.serverless"), None);
        assert_eq!(max_connections("r6g.large"), None);
    }
}
