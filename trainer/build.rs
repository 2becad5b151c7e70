//! Lets the trainer binary find libtorch through an rpath (torch-sys sets none), so it runs without
//! LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let libtorch = std::env::var("LIBTORCH").expect("LIBTORCH must point at libtorch (see scripts/bootstrap.sh)");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch}/lib");
}
