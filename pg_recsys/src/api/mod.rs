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
