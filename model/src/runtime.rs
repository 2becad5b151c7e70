//! libtorch as a runtime: what version is loaded, how many intra-op threads it uses, and a probe that
//! exercises its parallel kernels. Used by the extension's `recsys_version_info()` and by tests.
use crate::ModelError;
use std::ffi::{c_char, CStr};
use tch::{Device, Kind, Tensor};

extern "C" {
    fn recsys_torch_show_config(buffer: *mut c_char, capacity: usize) -> usize;
    fn recsys_torch_parallel_info(buffer: *mut c_char, capacity: usize) -> usize;
}

/// Calls one of the C++ shims, growing the buffer until libtorch's report fits.
fn read_report(report: unsafe extern "C" fn(*mut c_char, usize) -> usize) -> String {
    let mut capacity = 4096;
    loop {
        let mut buffer = vec![0 as c_char; capacity];
        // SAFETY: the shim writes at most `capacity` bytes including the terminating NUL.
        let needed = unsafe { report(buffer.as_mut_ptr(), capacity) };
        if needed < capacity {
            // SAFETY: the shim always NUL-terminates within the buffer.
            return unsafe { CStr::from_ptr(buffer.as_ptr()) }.to_string_lossy().into_owned();
        }
        capacity = needed + 1;
    }
}

/// libtorch's build configuration as printed by `at::show_config()`.
pub fn build_config() -> String {
    read_report(recsys_torch_show_config)
}

/// libtorch's parallelism report (`at::get_parallel_info()`): thread counts and the OpenMP runtime.
///
/// Starts the OpenMP runtime: never call it in a process that will fork workers afterwards.
pub fn parallel_info() -> String {
    read_report(recsys_torch_parallel_info)
}

/// The libtorch version the loaded library reports about itself (e.g. `2.4.0`), read from its build settings.
pub fn libtorch_version() -> Option<String> {
    let config = build_config();
    let start = config.find("TORCH_VERSION=")? + "TORCH_VERSION=".len();
    let version: String = config[start..].chars().take_while(|c| !matches!(c, ',' | ' ' | '\n')).collect();
    (!version.is_empty()).then_some(version)
}

/// The number of intra-op threads libtorch uses in this process.
pub fn intra_op_threads() -> i32 {
    tch::get_num_threads()
}

/// Sets libtorch's intra-op thread count for this process.
pub fn set_intra_op_threads(threads: i32) -> Result<(), ModelError> {
    if !(1..=1024).contains(&threads) {
        return Err(ModelError::InvalidArgument(format!("thread count must be between 1 and 1024, got {threads}")));
    }
    tch::set_num_threads(threads);
    Ok(())
}

/// Multiplies two `size`×`size` matrices of ones and returns the sum of the product (`size`³).
///
/// Large sizes make libtorch split the work across its intra-op threads, so this checks that threading works
/// in the calling process (e.g. a Postgres backend forked from a postmaster that loaded libtorch).
pub fn matmul_probe(size: i64) -> Result<f64, ModelError> {
    if !(1..=8192).contains(&size) {
        return Err(ModelError::InvalidArgument(format!("matrix size must be between 1 and 8192, got {size}")));
    }
    let options = (Kind::Float, Device::Cpu);
    let a = Tensor::f_ones([size, size], options)?;
    let product = a.f_matmul(&a)?;
    let total = product.f_sum(Kind::Double)?;
    Ok(total.f_double_value(&[])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_libtorch_it_was_built_for() {
        assert_eq!(libtorch_version().as_deref(), Some("2.4.0"));
    }

    #[test]
    fn thread_count_follows_the_setting() {
        set_intra_op_threads(2).unwrap();
        assert_eq!(intra_op_threads(), 2);
        assert!(parallel_info().contains("at::get_num_threads() : 2"));
        set_intra_op_threads(1).unwrap();
        assert_eq!(intra_op_threads(), 1);
        assert!(set_intra_op_threads(0).is_err());
    }

    #[test]
    fn matmul_probe_computes_the_product() {
        assert_eq!(matmul_probe(64).unwrap(), 64f64.powi(3));
        assert!(matmul_probe(0).is_err());
    }
}
