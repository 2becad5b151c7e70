//! Building SQL text for SPI queries: literal quoting for values that cannot be passed as parameters here.

/// A string as a SQL literal ('O''Brien').
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
