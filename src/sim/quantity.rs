//! Resource quantities in the canonical form the real server stores (`0.5` → `500m`,
//! `1024Mi` → `1Gi`, `1` (a number) → `"1"`).

use serde_json::Value;

const BINARY: &[(&str, u32)] = &[
    ("Ki", 1),
    ("Mi", 2),
    ("Gi", 3),
    ("Ti", 4),
    ("Pi", 5),
    ("Ei", 6),
];
const DECIMAL: &[(&str, i32)] = &[
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

/// An exact decimal: `digits × 10^exp`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Dec {
    digits: i128,
    exp: i32,
}

fn parse_number(s: &str) -> Option<Dec> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let all = format!("{int}{frac}");
    if all.len() > 30 || !all.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Dec {
        digits: all.parse().ok()?,
        exp: -(frac.len() as i32),
    })
}

/// The canonical string for a quantity, or `None` if it does not parse (left as it is).
pub fn canonical(v: &Value) -> Option<String> {
    let s = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    let (sign, body) = match s.strip_prefix('-') {
        Some(rest) => (-1i128, rest.to_string()),
        None => (1, s.trim_start_matches('+').to_string()),
    };
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suffix) = body.split_at(split);
    let mut d = parse_number(num)?;
    d.digits *= sign;
    if let Some((_, pow)) = BINARY.iter().find(|(sfx, _)| *sfx == suffix) {
        // Binary: exact when the value is a whole number of bytes, else decimal form.
        let whole = d.digits.checked_mul(1024i128.checked_pow(*pow)?)?;
        let bytes = if d.exp >= 0 {
            whole.checked_mul(10i128.checked_pow(d.exp as u32)?)?
        } else {
            let f = 10i128.checked_pow((-d.exp) as u32)?;
            if whole % f != 0 {
                return decimal(Dec {
                    digits: whole,
                    exp: d.exp,
                });
            }
            whole / f
        };
        return Some(binary(bytes));
    }
    let (_, e) = DECIMAL.iter().find(|(sfx, _)| *sfx == suffix)?;
    decimal(Dec {
        digits: d.digits,
        exp: d.exp + e,
    })
}

fn scale(d: Dec, exp: i32) -> Option<i128> {
    if d.exp >= exp {
        d.digits
            .checked_mul(10i128.checked_pow((d.exp - exp) as u32)?)
    } else {
        Some(d.digits / 10i128.checked_pow((exp - d.exp) as u32)?)
    }
}

fn binary(bytes: i128) -> String {
    if bytes == 0 {
        return "0".into();
    }
    for (sfx, pow) in BINARY.iter().rev() {
        let unit = 1024i128.pow(*pow);
        if bytes % unit == 0 {
            return format!("{}{sfx}", bytes / unit);
        }
    }
    bytes.to_string()
}

fn decimal(mut d: Dec) -> Option<String> {
    if d.digits == 0 {
        return Some("0".into());
    }
    // Below nano precision the real server rounds up.
    if d.exp < -9 {
        let f = 10i128.checked_pow((-9 - d.exp) as u32)?;
        let q = d.digits / f;
        d = Dec {
            digits: if d.digits % f == 0 {
                q
            } else {
                q + d.digits.signum()
            },
            exp: -9,
        };
    }
    while d.digits % 10 == 0 {
        d.digits /= 10;
        d.exp += 1;
    }
    // The largest suffix that keeps the mantissa whole.
    let e3 = d.exp.div_euclid(3) * 3;
    let e3 = e3.clamp(-9, 18);
    let mantissa = scale(d, e3)?;
    let sfx = DECIMAL.iter().find(|(_, e)| *e == e3).map(|(s, _)| *s)?;
    Some(format!("{mantissa}{sfx}"))
}

/// Canonicalise every quantity map this service meets in an object of a resource.
pub fn canonicalise(plural: &str, obj: &mut Value) {
    let mut maps: Vec<String> = Vec::new();
    let pod_spec = match plural {
        "pods" => Some("/spec"),
        "jobs" => Some("/spec/template/spec"),
        _ => None,
    };
    if let Some(ps) = pod_spec {
        for list in ["containers", "initContainers"] {
            let n = obj
                .pointer(&format!("{ps}/{list}"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in 0..n {
                maps.push(format!("{ps}/{list}/{i}/resources/requests"));
                maps.push(format!("{ps}/{list}/{i}/resources/limits"));
            }
        }
        maps.push(format!("{ps}/overhead"));
        let vols = obj
            .pointer(&format!("{ps}/volumes"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..vols {
            if let Some(v) = obj.pointer_mut(&format!("{ps}/volumes/{i}/emptyDir/sizeLimit"))
                && let Some(c) = canonical(v)
            {
                *v = Value::String(c);
            }
        }
    }
    if plural == "persistentvolumeclaims" {
        maps.extend(
            [
                "/spec/resources/requests",
                "/spec/resources/limits",
                "/status/capacity",
            ]
            .map(String::from),
        );
    }
    for m in maps {
        if let Some(Value::Object(q)) = obj.pointer_mut(&m) {
            for v in q.values_mut() {
                if let Some(c) = canonical(v) {
                    *v = Value::String(c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_forms() {
        let cases = [
            (json!("0.5"), "500m"),
            (json!("1000m"), "1"),
            (json!(1), "1"),
            (json!(0.25), "250m"),
            (json!("1500m"), "1500m"),
            (json!("2000k"), "2M"),
            (json!("1024Mi"), "1Gi"),
            (json!("1.5Gi"), "1536Mi"),
            (json!("10Gi"), "10Gi"),
            (json!("512Mi"), "512Mi"),
            (json!("100M"), "100M"),
            (json!("0"), "0"),
            (json!("2"), "2"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical(&input).as_deref(), Some(want), "{input}");
        }
        assert_eq!(canonical(&json!("lots")), None);
    }
}
