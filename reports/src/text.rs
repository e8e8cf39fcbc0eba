//! Values from a run shortened to a table cell.

use serde_json::Value;

/// A value as text, cut at 120 characters.
pub fn short(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}
