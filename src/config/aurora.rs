//! Aurora PostgreSQL's default `max_connections` for an instance class (pure): AWS sets it to
//! `LEAST({DBInstanceClassMemory/9531392}, 5000)`, memory in bytes. The connections alarm
//! divides by it, so the class must be one whose memory is known here.

/// Memory of an Aurora PostgreSQL instance class, in GiB.
pub fn memory_gib(class: &str) -> Option<u64> {
    let mut parts = class.split('.');
    let (Some("db"), Some(family), Some(size), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    // Burstable classes (dev and test only).
    if family.starts_with('t') {
        return match size {
            "medium" => Some(4),
            "large" => Some(8),
            _ => None,
        };
    }
    // Memory-optimized: 8 GiB per vCPU (r), 16 GiB per vCPU (x2g).
    let per_large = match family {
        f if f.starts_with('r') => 16,
        f if f.starts_with("x2") => 32,
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
    Some(per_large * factor)
}

/// AWS's cap on the default.
const MAX: u64 = 5000;
/// Bytes of instance memory per connection in AWS's default.
const BYTES_PER_CONNECTION: u64 = 9_531_392;

/// The class's default `max_connections`, `None` for a class whose memory is unknown here.
pub fn max_connections(class: &str) -> Option<u64> {
    let bytes = memory_gib(class)? * 1024 * 1024 * 1024;
    Some((bytes / BYTES_PER_CONNECTION).min(MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_follow_memory_and_the_cap() {
        assert_eq!(max_connections("db.t4g.medium"), Some(450));
        assert_eq!(max_connections("db.r6g.large"), Some(1802));
        assert_eq!(max_connections("db.r6g.xlarge"), Some(3604));
        assert_eq!(max_connections("db.r7g.2xlarge"), Some(5000), "capped");
        assert_eq!(max_connections("db.r6i.16xlarge"), Some(5000));
        assert_eq!(memory_gib("db.r6g.16xlarge"), Some(512));
        assert_eq!(memory_gib("db.x2g.large"), Some(32));
        assert_eq!(max_connections("db.m5.large"), None);
        assert_eq!(max_connections("db.serverless"), None);
        assert_eq!(max_connections("r6g.large"), None);
    }
}
