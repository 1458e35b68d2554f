//! CIDR blocks, as NetworkPolicy ipBlocks take them: enough to tell whether one block
//! lies inside another (IPv4 and IPv6).

use ipnet::IpNet;

/// A parsed CIDR block, its address masked to the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block(IpNet);

impl Block {
    /// Parses `a.b.c.d/n` or `x::y/n`; `None` when it is not a CIDR block.
    pub fn parse(text: &str) -> Option<Self> {
        text.parse::<IpNet>().ok().map(|net| Self(net.trunc()))
    }

    /// True when every address of `self` is in `outer` (equal blocks included).
    pub fn within(&self, outer: &Block) -> bool {
        outer.0.contains(&self.0)
    }
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
