//! Subnormal floats: the x86 flush-to-zero / denormals-are-zero mode (per thread, inherited by threads started
//! afterwards), a guard that sets it around the model's own computations and restores the caller's mode, probes
//! that tell whether a thread or libtorch's intra-op pool flushes, and flushing of stored weights.
use crate::ModelError;
use tch::{Device, Kind, Tensor};

/// MXCSR bit 15: results too small for a normal float become zero.
#[cfg(target_arch = "x86_64")]
const FLUSH_TO_ZERO: u32 = 1 << 15;
/// MXCSR bit 6: subnormal inputs are read as zero.
#[cfg(target_arch = "x86_64")]
const DENORMALS_ARE_ZERO: u32 = 1 << 6;
#[cfg(target_arch = "x86_64")]
const FLUSH_BITS: u32 = FLUSH_TO_ZERO | DENORMALS_ARE_ZERO;

#[cfg(target_arch = "x86_64")]
fn read_control() -> u32 {
    let mut value: u32 = 0;
    // SAFETY: stmxcsr stores the 32-bit MXCSR register into the given, valid and aligned location.
    unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack, preserves_flags)) };
    value
}

#[cfg(target_arch = "x86_64")]
fn write_control(value: u32) {
    // SAFETY: ldmxcsr loads MXCSR from a valid location; only the rounding-mode/flush bits we read back are changed.
    unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, preserves_flags)) };
}

/// Turns flush-to-zero and denormals-are-zero on for the calling thread. Threads it starts afterwards (gradient
/// workers, libtorch's OpenMP pool) inherit the mode, so a process calls this first thing in `main`.
pub fn enable_on_this_thread() {
    #[cfg(target_arch = "x86_64")]
    write_control(read_control() | FLUSH_BITS);
}

/// Whether the calling thread flushes subnormal results and inputs to zero.
pub fn enabled_on_this_thread() -> bool {
    #[cfg(target_arch = "x86_64")]
    return read_control() & FLUSH_BITS == FLUSH_BITS;
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Flush-to-zero for the lifetime of the guard on the calling thread; the previous mode comes back on drop (also
/// when unwinding), so a Postgres backend's own float arithmetic is never affected.
#[must_use = "the mode is restored when the guard is dropped"]
pub struct FlushToZeroGuard {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl FlushToZeroGuard {
    /// Saves the calling thread's floating-point mode and turns flushing on.
    pub fn enter() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = read_control();
            write_control(saved | FLUSH_BITS);
            Self { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Self {}
    }
}

impl Drop for FlushToZeroGuard {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        write_control(self.saved);
    }
}

/// Whether every thread of libtorch's intra-op pool flushes: an element-wise product large enough to be split
/// across the pool turns normal inputs into subnormal results (and reads subnormal inputs) on every thread, and is
/// all zeros only when each thread flushes.
pub fn libtorch_threads_flush() -> Result<bool, ModelError> {
    let elements = 1 << 20;
    let options = (Kind::Float, Device::Cpu);
    let underflowing = Tensor::f_full([elements], 1e-30, options)?.f_mul_scalar(1e-10)?;
    let subnormal_inputs = Tensor::f_full([elements], 1e-40, options)?.f_mul_scalar(1.0)?;
    let nonzero = underflowing.f_count_nonzero(None)?.f_int64_value(&[])? + subnormal_inputs.f_count_nonzero(None)?.f_int64_value(&[])?;
    Ok(nonzero == 0)
}

/// Replaces subnormal values by zero of the same sign; returns how many there were.
pub fn flush_subnormals(values: &mut [f32]) -> usize {
    let mut flushed = 0;
    for value in values.iter_mut().filter(|v| v.is_subnormal()) {
        *value = 0.0f32.copysign(*value);
        flushed += 1;
    }
    flushed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    fn rust_product_underflows() -> bool {
        black_box(1e-30f32) * black_box(1e-10f32) == 0.0
    }

    #[test]
    fn the_guard_flushes_and_restores_the_callers_mode() {
        std::thread::spawn(|| {
            assert!(!enabled_on_this_thread(), "threads start without flushing");
            assert!(!rust_product_underflows());
            {
                let _guard = FlushToZeroGuard::enter();
                assert!(enabled_on_this_thread());
                assert!(rust_product_underflows());
            }
            assert!(!enabled_on_this_thread());
            assert!(!rust_product_underflows());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn threads_started_after_enabling_inherit_the_mode() {
        std::thread::spawn(|| {
            enable_on_this_thread();
            let child = std::thread::spawn(|| (enabled_on_this_thread(), rust_product_underflows())).join().unwrap();
            assert_eq!(child, (true, true));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_pool_probe_sees_whether_the_threads_flush() {
        std::thread::spawn(|| {
            {
                let _guard = FlushToZeroGuard::enter();
                assert!(libtorch_threads_flush().unwrap());
            }
            assert!(!libtorch_threads_flush().unwrap(), "the calling thread takes a share of the work and no longer flushes");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn subnormal_weights_become_signed_zeros() {
        let mut values = [1.0, 1e-40, -1e-41, f32::MIN_POSITIVE, 0.0];
        assert_eq!(flush_subnormals(&mut values), 2);
        assert_eq!(values[..3], [1.0, 0.0, -0.0]);
        assert!(values[2].is_sign_negative());
        assert_eq!(values[3], f32::MIN_POSITIVE);
    }
}
