//! IPv4 CIDR blocks: parsing, containment, overlap and the subnet layout arithmetic.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network in CIDR notation with no host bits set, e.g. `10.0.0.0/16`. Serialized
/// as that text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    base: u32,
    prefix: u8,
}

impl Ipv4Cidr {
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    fn last(&self) -> u32 {
        (u64::from(self.base) + self.size() - 1) as u32
    }

    /// True when the two blocks share at least one address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.base <= other.last() && other.base <= self.last()
    }

    /// True when `other` lies entirely inside `self`.
    pub fn contains(&self, other: &Ipv4Cidr) -> bool {
        self.base <= other.base && other.last() <= self.last()
    }

    /// The `index`-th block of prefix length `prefix` inside this one, if it fits.
    pub fn nth_subnet(&self, prefix: u8, index: u32) -> Option<Ipv4Cidr> {
        if prefix < self.prefix || prefix > 32 {
            return None;
        }
        let count = 1u64 << (prefix - self.prefix);
        if u64::from(index) >= count {
            return None;
        }
        let step = 1u64 << (32 - u32::from(prefix));
        let base = u64::from(self.base) + step * u64::from(index);
        Some(Ipv4Cidr {
            base: base as u32,
            prefix,
        })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl serde::Serialize for Ipv4Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not a CIDR block: expected a.b.c.d/n"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not a CIDR block: `{addr}` is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("`{s}` is not a CIDR block: prefix must be 0..=32"))?;
        let base = u32::from(addr);
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        if base & !mask != 0 {
            return Err(format!(
                "`{s}` has host bits set: did you mean {}/{prefix}?",
                Ipv4Addr::from(base & mask)
            ));
        }
        Ok(Ipv4Cidr { base, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(c("10.0.0.0/16").to_string(), "10.0.0.0/16");
        assert!("10.0.0.1/16"
            .parse::<Ipv4Cidr>()
            .unwrap_err()
            .contains("10.0.0.0/16"));
        assert!("10.0.0.0".parse::<Ipv4Cidr>().is_err());
        assert!("10.0.0.0/33".parse::<Ipv4Cidr>().is_err());
        assert!("300.0.0.0/8".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn overlap_and_containment() {
        assert!(c("10.0.0.0/16").overlaps(&c("10.0.5.0/24")));
        assert!(!c("10.0.0.0/24").overlaps(&c("10.0.1.0/24")));
        assert!(c("10.0.0.0/16").contains(&c("10.0.255.192/26")));
        assert!(!c("10.0.0.0/16").contains(&c("10.1.0.0/24")));
    }

    #[test]
    fn nth_subnet() {
        let vpc = c("10.0.0.0/16");
        assert_eq!(vpc.nth_subnet(24, 3), Some(c("10.0.3.0/24")));
        assert_eq!(vpc.nth_subnet(26, 49), Some(c("10.0.12.64/26")));
        assert_eq!(vpc.nth_subnet(24, 256), None);
        assert_eq!(c("10.0.0.0/20").nth_subnet(24, 15), Some(c("10.0.15.0/24")));
    }
}
