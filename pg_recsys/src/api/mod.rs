//! The SQL surface, one file per area; each function is thin and calls into the core modules.
mod explain;
mod info;
mod models;
mod predict;
mod predict_new;
mod recommend;
mod recommend_for;
mod refresh;
mod similar;

/// `k` as a count when it lies in 1..=`max`, else 22023 with a hint asking for a number of `what` (e.g. "recommendations").
fn checked_k(k: i32, max: i32, what: &str) -> Result<usize, crate::error::RecsysError> {
    if (1..=max).contains(&k) {
        Ok(k as usize)
    } else {
        Err(crate::error::RecsysError::invalid_parameter(
            format!("k must be between 1 and {max}, got {k}"),
            format!("Ask for the number of {what} to return, e.g. 10."),
        ))
    }
}
