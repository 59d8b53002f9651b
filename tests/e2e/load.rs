//! The load harness itself works: a small run loses and doubles nothing.
//! (Its speed figures are for `pieper-load` runs, not for tests.)

use std::process::Command;

use pieper_e2e::TestResult;

#[test]
fn a_small_load_run_delivers_everything_exactly_once() -> TestResult {
    let out = Command::new(env!("CARGO_BIN_EXE_pieper-load"))
        .args(["--devices", "12", "--messages", "150", "--rate", "0"])
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("delivered: 1650 of 1650"), "{text}");
    assert!(text.contains("lost:      0"), "{text}");
    assert!(text.contains("duplicated: 0"), "{text}");
    for figure in ["envelopes/s", "deliveries/s", "p50", "p99"] {
        assert!(text.contains(figure), "{text}");
    }
    Ok(())
}
