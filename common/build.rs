//! Records the git revision for `/status`, and rebuilds when a migration is added or changed
//! (`sqlx::migrate!` embeds them, but on stable Rust cannot ask to be rerun for a new file).
fn main() {
    let rev = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SECONDWIND_GIT_REVISION={rev}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
    for database in ["public", "phi", "consent"] {
        println!("cargo:rerun-if-changed=../migrations/{database}");
    }
}
