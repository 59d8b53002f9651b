//! Runs the independent FHIR validator (HAPI FHIR's FhirInstanceValidator
//! with the Nictiz profiles, in `../shared/fhir/validator`) on files and
//! returns its report lines per file.

use std::{path::Path, process::Command};

pub(super) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Validates `files` (against `profile`, or `none`: each resource's own
/// `meta.profile` and base R4); returns (exit code, report text).
pub(super) fn validate(
    profile: &str,
    files: &[&Path],
) -> Result<(Option<i32>, String), Box<dyn std::error::Error>> {
    let shared = std::env::var("PIEPER_SHARED")
        .unwrap_or_else(|_| format!("{}/../../shared", env!("CARGO_MANIFEST_DIR")));
    let pom = format!("{shared}/fhir/validator/pom.xml");
    assert!(
        Path::new(&pom).exists(),
        "{pom} is missing: the shared folder must sit beside the project"
    );
    // One run at a time: parallel tests would compile the validator into
    // the same target folder at once, and one may find it half written.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _running = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir()?;
    let report = dir.path().join("report.txt");
    let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let output = Command::new("mvn")
        .args(["-B", "-q", "-f", &pom, "compile", "exec:java"])
        .arg(format!("-Dexec.args={profile} {}", list.join(" ")))
        .arg(format!("-Dfhir.report={}", report.display()))
        .output()?;
    let text = std::fs::read_to_string(&report).map_err(|e| {
        format!(
            "the validator wrote no report ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    Ok((output.status.code(), text))
}

/// The ERROR and FATAL lines about `file`.
pub(super) fn errors<'a>(report: &'a str, file: &Path) -> Vec<&'a str> {
    let name = format!("{} ", file.display());
    report
        .lines()
        .filter(|l| (l.starts_with("ERROR ") || l.starts_with("FATAL ")) && l.contains(&name))
        .collect()
}
