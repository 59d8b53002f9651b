//! The README's two commands set a machine up themselves: `scripts/setup`
//! (which `scripts/demo` and `scripts/test-all` run first) is idempotent and
//! stops with a plain message when a package cannot be installed.

use std::{
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
    process::{Command, Output},
};

use pieper_e2e::BoxError;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default()
}

/// Writes an executable shell script `name` into `dir`.
fn stub(dir: &Path, name: &str, body: &str) -> Result<(), BoxError> {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/bash\n{body}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Stand-ins for `apt-get` and `sudo` that log every call to `calls` and
/// fail the way apt-get fails for a package it cannot find.
fn failing_installers(dir: &Path, calls: &Path) -> Result<(), BoxError> {
    let log = calls.display();
    stub(
        dir,
        "apt-get",
        &format!(
            "echo \"apt-get $*\" >> {log}\n\
             [ \"$1\" = update ] && exit 0\n\
             echo 'E: Unable to locate package' >&2\nexit 100"
        ),
    )?;
    stub(
        dir,
        "sudo",
        &format!("echo \"sudo $*\" >> {log}\nexec \"$@\""),
    )
}

fn installed_packages() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${Version}\n"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn setup_run_twice_changes_nothing_the_second_time() -> Result<(), BoxError> {
    let setup = repo().join("scripts/setup");
    let first = Command::new(&setup).args(["--for", "tests"]).output()?;
    assert!(first.status.success(), "first run: {}", text(&first));

    // The second run may not even try to install: apt-get and sudo are
    // replaced by stand-ins that record any call and fail.
    let stubs = tempfile::tempdir()?;
    let calls = stubs.path().join("calls.log");
    failing_installers(stubs.path(), &calls)?;
    let path = format!(
        "{}:{}",
        stubs.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let before = installed_packages();
    let second = Command::new(&setup)
        .args(["--for", "tests"])
        .env("PATH", path)
        .output()?;
    assert!(second.status.success(), "second run: {}", text(&second));
    assert!(
        text(&second).contains("nothing to install"),
        "second run said: {}",
        text(&second)
    );
    assert!(
        !calls.exists(),
        "the second run called an installer: {}",
        std::fs::read_to_string(&calls).unwrap_or_default()
    );
    assert_eq!(installed_packages(), before, "the package list changed");
    Ok(())
}

#[test]
fn a_package_that_cannot_be_installed_stops_the_demo_with_a_clear_message() -> Result<(), BoxError>
{
    // A machine with a shell and cargo but no C compiler, whose package
    // manager cannot install one (the OpenSSL headers are there: the
    // README's setup installed them before the tests).
    let bin = tempfile::tempdir()?;
    let calls = bin.path().join("calls.log");
    failing_installers(bin.path(), &calls)?;
    for tool in ["bash", "id", "ls", "dirname", "env"] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .ok_or_else(|| format!("{tool} not found"))?;
        symlink(found, bin.path().join(tool))?;
    }
    // cargo is there, but must never be asked to build.
    stub(
        bin.path(),
        "cargo",
        &format!("echo \"cargo $*\" >> {}\nexit 1", calls.display()),
    )?;

    let demo = Command::new("bash")
        .arg(repo().join("scripts/demo"))
        .env("PATH", bin.path())
        .output()?;
    let said = text(&demo);
    assert_eq!(demo.status.code(), Some(1), "{said}");
    assert!(
        said.contains("setup: could not install gcc libc6-dev"),
        "{said}"
    );
    assert!(said.contains("install them by hand"), "{said}");
    let log = std::fs::read_to_string(&calls)?;
    assert!(log.contains("apt-get install"), "{log}");
    assert!(!log.contains("cargo build"), "the demo built anyway: {log}");
    Ok(())
}

#[test]
fn setup_refuses_an_unknown_purpose() -> Result<(), BoxError> {
    let out = Command::new(repo().join("scripts/setup"))
        .args(["--for", "everything"])
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--for takes 'demo' or 'tests'"));
    Ok(())
}
