//! Printing API answers: aligned columns, or the JSON itself.
use std::io::Write;

use serde_json::Value;

use super::client::Output;

/// Prints `value` (one item or a page of `items`) with `columns`.
pub fn print(output: Output, value: &Value, columns: &[&str]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if output == Output::Json {
        return writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }
    let rows: Vec<&Value> = match value.get("items").and_then(Value::as_array) {
        Some(items) => items.iter().collect(),
        None if value.is_null() => Vec::new(),
        None => vec![value],
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(&row[*c])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].len())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| {
        values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(
        out,
        "{}",
        line(columns.iter().map(|c| c.to_uppercase()).collect())
    )?;
    for row in cells {
        writeln!(out, "{}", line(row))?;
    }
    if let Some(total) = value.get("total") {
        writeln!(out, "({} of {total})", rows.len())?;
    }
    Ok(())
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}
