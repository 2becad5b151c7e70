//! Lets the extension's shared object (and its test binaries) find libtorch through an rpath: torch-sys sets none,
//! and Postgres backends must load libtorch without LD_LIBRARY_PATH. The installed copy beside the extension
//! ($libdir/pg_recsys_libtorch, see scripts/lib.sh) comes first, so the extension outlives the checkout.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let libtorch = std::env::var("LIBTORCH").expect("LIBTORCH must point at libtorch (see scripts/bootstrap.sh)");
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/pg_recsys_libtorch:{libtorch}/lib");
}
