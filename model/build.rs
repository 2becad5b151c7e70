//! Compiles the small C++ shim that asks libtorch for its build configuration, and lets this crate's
//! tests find libtorch through an rpath (torch-sys sets none).
use std::{env, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-changed=csrc/torch_info.cpp");
    let libtorch = PathBuf::from(env::var("LIBTORCH").expect("LIBTORCH must point at libtorch (see scripts/bootstrap.sh)"));
    let cxx11_abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(libtorch.join("include"))
        .include(libtorch.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", cxx11_abi.as_str())
        .file("csrc/torch_info.cpp")
        .compile("recsys_torch_info");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", libtorch.join("lib").display());
}
