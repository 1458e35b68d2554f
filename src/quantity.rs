//! Kubernetes resource quantities (`500m`, `1Gi`, `10240Mi`, `1e3`): parsing, so that bad
//! configuration is refused at start-up and the plan can tell `10Gi` and `10240Mi` apart
//! from a real change.

use std::{cmp::Ordering, fmt, str::FromStr};

/// A parsed quantity, held exactly as a whole number of nano-units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Quantity {
    nanos: i128,
}

/// A string that is not a Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a Kubernetes quantity (expected a number with an optional suffix such as 500m, 2, 1Gi or 10Gi)"
)]
pub struct QuantityError(pub String);

const NANO: i128 = 1_000_000_000;

impl Quantity {
    /// The quantity in whole units, rounded up (bytes for memory and storage).
    pub fn ceil_units(self) -> i128 {
        let q = self.nanos.div_euclid(NANO);
        if self.nanos.rem_euclid(NANO) == 0 {
            q
        } else {
            q + 1
        }
    }

    /// True when strictly greater than zero.
    pub fn is_positive(self) -> bool {
        self.nanos > 0
    }

    /// Builds a quantity of whole units (bytes).
    pub fn from_units(units: i128) -> Self {
        Self {
            nanos: units.saturating_mul(NANO),
        }
    }

    /// Human-readable binary size (`1.5Gi`, `512Mi`, `0`), for totals shown to people.
    pub fn to_binary_si(self) -> String {
        let bytes = self.ceil_units();
        const UNITS: [(&str, i128); 5] = [
            ("Pi", 1 << 50),
            ("Ti", 1 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ];
        for (suffix, size) in UNITS {
            if bytes >= size {
                let whole = bytes / size;
                let tenths = (bytes % size) * 10 / size;
                return if tenths == 0 {
                    format!("{whole}{suffix}")
                } else {
                    format!("{whole}.{tenths}{suffix}")
                };
            }
        }
        bytes.to_string()
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;
    fn add(self, rhs: Self) -> Self {
        Self {
            nanos: self.nanos.saturating_add(rhs.nanos),
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_binary_si())
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).ok_or_else(|| QuantityError(s.to_owned()))
    }
}

fn parse(s: &str) -> Option<Quantity> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() || frac.contains('.') || frac.len() > 18 {
        return None;
    }
    let whole: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac_value: i128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let frac_scale = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    // (numerator / denominator) is the value in units before the suffix.
    let (mul, div): (i128, i128) = match suffix {
        "" => (1, 1),
        "n" => (1, NANO),
        "u" => (1, 1_000_000),
        "m" => (1, 1000),
        "k" => (1000, 1),
        "M" => (1_000_000, 1),
        "G" => (NANO, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().ok()?;
            match e.cmp(&0) {
                Ordering::Less => (1, 10i128.checked_pow(e.unsigned_abs())?),
                _ => (10i128.checked_pow(u32::try_from(e).ok()?)?, 1),
            }
        }
        _ => return None,
    };
    let numerator = whole
        .checked_mul(frac_scale)?
        .checked_add(frac_value)?
        .checked_mul(mul)?
        .checked_mul(NANO)?;
    let nanos = numerator / frac_scale / div;
    Some(Quantity {
        nanos: sign * nanos,
    })
}

/// Parses a quantity that must be greater than zero (CPU, memory, storage settings).
pub fn parse_positive(s: &str) -> Result<Quantity, QuantityError> {
    let q: Quantity = s.parse()?;
    if q.is_positive() {
        Ok(q)
    } else {
        Err(QuantityError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        s.parse().unwrap()
    }

    #[test]
    fn equal_quantities_in_different_forms_compare_equal() {
        assert_eq!(q("10Gi"), q("10240Mi"));
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q("1k"), q("1e3"));
        assert_eq!(q("1.5Gi"), q("1536Mi"));
        assert_ne!(q("1G"), q("1Gi"));
    }

    #[test]
    fn malformed_quantities_are_refused() {
        for bad in [
            "", "ten gigs", "10 Gi", "10GB", "1.2.3", "Gi", ".", "--1", "1e", "0x10",
        ] {
            assert!(bad.parse::<Quantity>().is_err(), "{bad:?}");
        }
        assert!(parse_positive("-1").is_err());
        assert!(parse_positive("0").is_err());
        assert!(parse_positive("500m").is_ok());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(q("10Gi").to_binary_si(), "10Gi");
        assert_eq!((q("1Gi") + q("512Mi")).to_string(), "1.5Gi");
        assert_eq!(q("100").to_string(), "100");
        assert_eq!(q("1500m").ceil_units(), 2);
    }
}
