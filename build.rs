// No build step: see [build-dependencies] in Cargo.toml (why syn is listed there).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
