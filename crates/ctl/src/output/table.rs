//! The `table` format: the ASCII tables etcdctl draws for member, endpoint
//! and snapshot listings. Headers are upper-cased and centred, cells are
//! right-aligned, every column as wide as its widest cell plus one space on
//! each side.

/// Renders `header` and `rows` as a table.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let border: String = widths.iter().fold(String::from("+"), |mut s, w| {
        s.push_str(&"-".repeat(w + 2));
        s.push('+');
        s
    });
    let mut out = String::new();
    out.push_str(&border);
    out.push('\n');
    out.push('|');
    for (h, w) in header.iter().zip(&widths) {
        let pad = w - h.chars().count();
        let left = pad / 2;
        out.push_str(&format!(
            " {}{}{} |",
            " ".repeat(left),
            h,
            " ".repeat(pad - left)
        ));
    }
    out.push('\n');
    out.push_str(&border);
    out.push('\n');
    for row in rows {
        out.push('|');
        for (cell, w) in row.iter().zip(&widths) {
            out.push_str(&format!(" {cell:>w$} |"));
        }
        out.push('\n');
    }
    out.push_str(&border);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_etcdctl_tables() {
        let table = super::render(
            &["endpoint", "health"],
            &[vec!["127.0.0.1:1".into(), "false".into()]],
        );
        assert_eq!(
            table,
            "+-------------+--------+\n|  ENDPOINT   | HEALTH |\n+-------------+--------+\n| 127.0.0.1:1 |  false |\n+-------------+--------+\n"
        );
    }
}
