//! CIDR blocks, as NetworkPolicy ipBlocks take them: enough to tell whether one block
//! lies inside another (IPv4 and IPv6).

use std::net::IpAddr;

/// A parsed CIDR block, its address masked to the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    bits: u128,
    prefix: u8,
    v6: bool,
}

impl Block {
    /// Parses `a.b.c.d/n` or `x::y/n`; `None` when it is not a CIDR block.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = text.split_once('/')?;
        let prefix: u8 = prefix.parse().ok()?;
        let (bits, v6, width) = match addr.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => (u128::from(u32::from(a)), false, 32),
            IpAddr::V6(a) => (u128::from(a), true, 128),
        };
        (prefix <= width).then(|| Self {
            bits: bits & mask(prefix, width),
            prefix,
            v6,
        })
    }

    /// True when every address of `self` is in `outer` (equal blocks included).
    pub fn within(&self, outer: &Block) -> bool {
        let width = if self.v6 { 128 } else { 32 };
        self.v6 == outer.v6
            && self.prefix >= outer.prefix
            && self.bits & mask(outer.prefix, width) == outer.bits
    }
}

/// The network mask of `prefix` bits in an address of `width` bits.
fn mask(prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    all & !((1u128 << (width - prefix)) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Block {
        Block::parse(s).unwrap()
    }

    #[test]
    fn containment_follows_the_prefix() {
        assert!(b("169.254.169.254/32").within(&b("0.0.0.0/0")));
        assert!(b("10.244.3.0/24").within(&b("10.244.0.0/16")));
        assert!(b("10.244.0.0/16").within(&b("10.244.0.0/16")));
        assert!(!b("10.0.0.0/8").within(&b("10.244.0.0/16")));
        assert!(!b("192.168.0.0/16").within(&b("10.0.0.0/8")));
        assert!(!b("::/0").within(&b("0.0.0.0/0")));
        assert!(b("fd00::1/128").within(&b("fd00::/8")));
        assert_eq!(b("10.1.2.3/8"), b("10.0.0.0/8"));
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "::/129", "10.0.0.0/-1"] {
            assert!(Block::parse(bad).is_none(), "{bad}");
        }
    }
}
