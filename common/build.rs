//! Rebuilds when a migration is added or changed: `sqlx::migrate!` embeds them, but on stable
//! Rust cannot ask to be rerun for a new file.
fn main() {
    for database in ["public", "phi", "consent"] {
        println!("cargo:rerun-if-changed=../migrations/{database}");
    }
}
