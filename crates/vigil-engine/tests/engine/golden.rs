//! Golden tests: every pipeline in pipelines/ runs over the recorded input in
//! pipelines/testdata/ (one line per batch, as a stream delivers it) and must write
//! exactly its recorded output, late rows and rejections.
//!
//! After an intended change, re-record with `VIGIL_BLESS=1 cargo nextest run -p
//! vigil-engine golden` and review the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::harness::{plan, run};

fn pipelines_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines")
}

fn check(expected: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("VIGIL_BLESS").is_some() {
        std::fs::write(expected, actual).expect("write golden file");
        return;
    }
    match std::fs::read_to_string(expected) {
        Ok(want) if want == actual => {}
        Ok(want) => {
            let first = want
                .lines()
                .zip(actual.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| want.lines().count().min(actual.lines().count()));
            failures.push(format!(
                "{}: differs from line {} ({} lines expected, {} written)\n  expected: {}\n  actual:   {}",
                expected.display(),
                first + 1,
                want.lines().count(),
                actual.lines().count(),
                want.lines().nth(first).unwrap_or("<end>"),
                actual.lines().nth(first).unwrap_or("<end>"),
            ));
        }
        Err(_) => failures.push(format!(
            "{} is missing: record it with VIGIL_BLESS=1",
            expected.display()
        )),
    }
}

fn joined(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn every_shipped_pipeline_matches_its_recorded_output() {
    let dir = pipelines_dir();
    let testdata = dir.join("testdata");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("pipelines/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "pipelines/ holds the shipped pipelines");
    let mut failures = Vec::new();
    for file in files {
        let stem = file
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let p = plan(&std::fs::read_to_string(&file).expect("read pipeline"));
        let mut inputs = BTreeMap::new();
        for job in &p.jobs {
            let input = testdata.join(format!("{}.jsonl", job.source.name));
            let text = std::fs::read_to_string(&input)
                .unwrap_or_else(|_| panic!("{stem}: no recorded input {}", input.display()));
            inputs.insert(job.source.name.clone(), text);
        }
        let inputs: Vec<(&str, &str)> = inputs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = run(&p, &inputs, 1);
        for job in &p.jobs {
            let name = if p.jobs.len() == 1 {
                format!("{stem}.expected.jsonl")
            } else {
                format!("{stem}.{}.expected.jsonl", job.sink.name)
            };
            check(
                &testdata.join(name),
                &joined(r.out(&job.sink.name)),
                &mut failures,
            );
        }
        check(
            &testdata.join(format!("{stem}.late.jsonl")),
            &joined(&r.late),
            &mut failures,
        );
        let rejected: Vec<String> = r
            .rejected
            .iter()
            .map(|(table, line, reason)| format!("{table} line {line}: {reason}"))
            .collect();
        check(
            &testdata.join(format!("{stem}.rejected.txt")),
            &joined(&rejected),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
