//! Golden renders: tests/data/render/<case>.args holds the arguments, <case>.yaml the
//! expected manifests. UPDATE_GOLDEN=1 rewrites them; a template change shows as a diff.

use super::*;

#[test]
fn golden_renders_match() {
    let data = repo_root().join("tests/data/render");
    let mut cases: Vec<PathBuf> = fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "args"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 4,
        "expected several golden cases in {}",
        data.display()
    );
    let mut failures = Vec::new();
    for case in cases {
        let args_text = fs::read_to_string(&case).unwrap();
        let mut args: Vec<String> = args_text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        for a in &mut args {
            *a = a.replace("$DATA", data.to_str().unwrap());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out, err) = run(&refs);
        assert!(ok, "{}: {err}", case.display());
        let expected_path = case.with_extension("yaml");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            fs::write(&expected_path, &out).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != out {
            failures.push(format!(
                "{}:\n{}",
                expected_path.display(),
                line_diff(&expected, &out)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "golden renders differ (UPDATE_GOLDEN=1 to accept):\n{}",
        failures.join("\n")
    );
}

fn line_diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                out.push_str(&format!(
                    "  line {}:\n  - {}\n  + {}\n",
                    i + 1,
                    x.unwrap_or(&""),
                    y.unwrap_or(&"")
                ));
                if out.len() > 2000 {
                    break;
                }
            }
        }
    }
    out
}
