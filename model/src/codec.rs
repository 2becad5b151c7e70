//! The byte layout of stored float32 tensors (safetensors weights, catalogue snapshots): little-endian, as the
//! safetensors format specifies. Copies through `bytemuck`, whatever the alignment of the bytes.
use crate::ModelError;

#[cfg(not(target_endian = "little"))]
compile_error!("stored tensors are little-endian float32 and are copied as they lie in memory: this target is big-endian");

/// The stored bytes of `values`.
pub fn f32_to_le_bytes(values: &[f32]) -> Vec<u8> {
    bytemuck::cast_slice(values).to_vec()
}

/// The values of stored bytes; an error when their length is not a whole number of float32 values.
pub fn f32_from_le_bytes(bytes: &[u8]) -> Result<Vec<f32>, ModelError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(ModelError::InvalidArgument(format!("{} bytes are not a whole number of float32 values", bytes.len())));
    }
    Ok(bytemuck::pod_collect_to_vec(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_little_endian_bytes_at_any_alignment() {
        let values = [1.5f32, -0.0, f32::MAX, 3.25e-3];
        let bytes = f32_to_le_bytes(&values);
        assert_eq!(&bytes[..4], &1.5f32.to_le_bytes());
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(f32_from_le_bytes(&shifted[1..]).unwrap(), values, "unaligned bytes are copied, not cast");
        assert!(f32_from_le_bytes(&bytes[..7]).is_err());
    }
}
