//! The schema's migrations are embedded at compile time (`refinery::embed_migrations!` in
//! `src/db.rs`); a new or changed file under `migrations/` must rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
