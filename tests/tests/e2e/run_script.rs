//! `scripts/run --data DIR` chmods and may delete DIR: it refuses one it did not make.

use std::process::Command;

fn run_with_data(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(harness::repo_root().join("scripts/run"))
        .arg("--data")
        .arg(dir)
        .args(extra)
        .output()
        .expect("scripts/run")
}

#[test]
fn scripts_run_refuses_a_data_directory_it_did_not_make() {
    let dir = std::env::temp_dir().join(format!("secondwind-run-data-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("notes.txt"), b"someone's files").expect("file");

    let refused = run_with_data(&dir, &["--reset"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not empty and not made by scripts/run"), "{stderr}");
    assert_eq!(std::fs::read(dir.join("notes.txt")).expect("still there"), b"someone's files");

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scripts_run_rejects_unknown_arguments_before_doing_anything() {
    let dir = std::env::temp_dir().join(format!("secondwind-run-data-{}", uuid::Uuid::new_v4()));
    let out = run_with_data(&dir, &["--fast"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument --fast"));
    assert!(!dir.exists(), "nothing was created for a refused command line");
}
