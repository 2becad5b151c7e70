//! Lets the extension's shared object (and its test binaries) find libtorch through an rpath: torch-sys sets none,
//! and Postgres backends must load libtorch without LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let libtorch = std::env::var("LIBTORCH").expect("LIBTORCH must point at libtorch (see scripts/bootstrap.sh)");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch}/lib");
}
