//! Kubernetes resource quantities (`500m`, `1Gi`, `10240Mi`, `1e3`), parsed exactly.
//!
//! The service uses them so that bad configuration is refused at start-up and the plan can
//! tell `10Gi` and `10240Mi` apart from a real change; the simulated cluster uses the same
//! parser to store quantities in the canonical form the real API server stores
//! ([`Quantity::canonical`]: `0.5` → `500m`, `1024Mi` → `1Gi`).

use std::{cmp::Ordering, fmt, hash, str::FromStr};

/// A parsed quantity, held exactly as a whole number of nano-units, with the notation it
/// was written in. Equality and order compare the amount only (`1k == 1e3`).
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

/// The notation of a quantity, which its canonical form keeps (as the API server does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Powers of 1024: `Ki`, `Mi`, `Gi`, ...
    BinarySi,
    /// Powers of 1000 by suffix: `m`, `k`, `M`, ..., or no suffix.
    DecimalSi,
    /// Powers of ten by exponent: `1e3`, `5E-3`.
    DecimalExponent,
}

impl Default for Quantity {
    /// Zero.
    fn default() -> Self {
        Self::from_units(0)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl hash::Hash for Quantity {
    fn hash<H: hash::Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
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
            format: Format::BinarySi,
        }
    }

    /// The notation the quantity was written in.
    pub fn format(self) -> Format {
        self.format
    }

    /// The form the Kubernetes API server stores: the largest suffix of the quantity's own
    /// notation that keeps the number whole (`1024Mi` → `1Gi`, `0.5` → `500m`,
    /// `2000k` → `2M`). A binary quantity that is not a whole number of units, or lies
    /// strictly between -1024 and 1024, is written in decimal notation.
    pub fn canonical(self) -> String {
        if self.nanos == 0 {
            return "0".to_owned();
        }
        if self.format == Format::BinarySi && self.nanos % NANO == 0 {
            let units = self.nanos / NANO;
            if units.abs() >= 1024 {
                return binary(units);
            }
        }
        decimal(self.nanos, self.format == Format::DecimalExponent)
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
            format: self.format,
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
    let format = match suffix {
        s if s.ends_with('i') => Format::BinarySi,
        s if s.starts_with(['e', 'E']) => Format::DecimalExponent,
        _ => Format::DecimalSi,
    };
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
    // NB: below nano precision the API server rounds away from zero.
    let scale = frac_scale.checked_mul(div)?;
    let nanos = numerator / scale + i128::from(numerator % scale != 0);
    Some(Quantity {
        nanos: sign * nanos,
        format,
    })
}

const BINARY: [(&str, u32); 6] = [
    ("Ei", 6),
    ("Pi", 5),
    ("Ti", 4),
    ("Gi", 3),
    ("Mi", 2),
    ("Ki", 1),
];

/// `units` with the largest binary suffix that divides it.
fn binary(units: i128) -> String {
    for (suffix, power) in BINARY {
        let size = 1i128 << (10 * power);
        if units % size == 0 {
            return format!("{}{suffix}", units / size);
        }
    }
    units.to_string()
}

const DECIMAL: [(i32, &str); 10] = [
    (18, "E"),
    (15, "P"),
    (12, "T"),
    (9, "G"),
    (6, "M"),
    (3, "k"),
    (0, ""),
    (-3, "m"),
    (-6, "u"),
    (-9, "n"),
];

/// `nanos` with the largest power of 1000 that keeps the number whole, as a suffix or, in
/// `exponent` notation, as `e<power>`.
fn decimal(nanos: i128, exponent: bool) -> String {
    let (mut digits, mut exp) = (nanos, -9i32);
    while digits % 10 == 0 && exp < 18 {
        digits /= 10;
        exp += 1;
    }
    let e3 = exp.div_euclid(3) * 3;
    let mantissa = digits * 10i128.pow((exp - e3).unsigned_abs());
    if exponent {
        return if e3 == 0 {
            mantissa.to_string()
        } else {
            format!("{mantissa}e{e3}")
        };
    }
    let suffix = DECIMAL
        .iter()
        .find(|(power, _)| *power == e3)
        .map_or("", |(_, suffix)| suffix);
    format!("{mantissa}{suffix}")
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

    #[test]
    fn canonical_forms_are_the_api_servers() {
        for (input, want) in [
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1", "1"),
            ("0.25", "250m"),
            ("1500m", "1500m"),
            ("2000k", "2M"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("10Gi", "10Gi"),
            ("512Mi", "512Mi"),
            ("0.5Ki", "512"),
            ("100M", "100M"),
            ("0", "0"),
            ("0Gi", "0"),
            ("2", "2"),
            ("-2Gi", "-2Gi"),
            ("1.5n", "2n"),
            ("1e3", "1e3"),
            ("1500e0", "1500"),
            ("12e6", "12e6"),
        ] {
            assert_eq!(q(input).canonical(), want, "{input}");
        }
    }
}
