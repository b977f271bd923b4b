//! The one table writer of the crate: Go's `tabwriter.NewWriter(w, 5, 3, 2, ' ', 0)`, which
//! Pebble's CLI prints every table with, and the host commands' variant of it that trims the
//! spaces left at the end of a line by an empty last cell.

/// Go's tabwriter with minwidth 5 and padding 2: every column but the last is as wide as its
/// widest cell plus 2, and at least 5; the last cell of a row is never padded.
pub fn render(rows: &[Vec<String>]) -> String {
    render_with(rows, false)
}

/// [`render`] with each row's trailing whitespace removed, for the host's own tables
/// (`cairn status`, `cairn events`), whose last column (a message) is often empty.
pub fn render_trimmed(rows: &[Vec<String>]) -> String {
    render_with(rows, true)
}

fn render_with(rows: &[Vec<String>], trim: bool) -> String {
    // A cell is one line whatever a tenant put in it: control characters (newlines, escape
    // sequences) are shown escaped, so no text forges a row or drives the terminal.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| cairn_runtime::budget::escape_control(c).into_owned())
                .collect()
        })
        .collect();
    let rows = &rows[..];
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols.saturating_sub(1))
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count() + 2)
                .max()
                .unwrap_or(0)
                .max(5)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < r.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(if trim { line.trim_end() } else { &line });
        out.push('\n');
    }
    out
}

/// A row of literal cells, for table headers.
pub fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_cells_are_escaped_so_a_row_stays_one_line() {
        let t = render_trimmed(&[
            row(["Unit", "Message"]),
            row(["a/0", "ok\nevil/0  error  forged\x1b]0;title\x07"]),
        ]);
        assert_eq!(
            t,
            "Unit  Message\na/0   ok\\nevil/0  error  forged\\u{1b}]0;title\\u{7}\n"
        );
    }

    #[test]
    fn columns_are_padded_like_go_tabwriter() {
        let t = render(&[
            row(["Service", "Startup", "Current", "Since"]),
            row(["srv1", "enabled", "active", "today at 10:00 UTC"]),
            row(["x", "disabled", "inactive", "-"]),
        ]);
        assert_eq!(
            t,
            "Service  Startup   Current   Since\n\
             srv1     enabled   active    today at 10:00 UTC\n\
             x        disabled  inactive  -\n"
        );
        // Narrow columns still get the minimum width of 5.
        assert_eq!(render(&[row(["a", "b"])]), "a    b\n");
    }

    #[test]
    fn an_empty_last_cell_keeps_its_padding_unless_trimmed() {
        let rows = [
            row(["App", "Status", "Message"]),
            row(["web", "active", ""]),
        ];
        assert_eq!(render(&rows), "App  Status  Message\nweb  active  \n");
        assert_eq!(render_trimmed(&rows), "App  Status  Message\nweb  active\n");
    }

    #[test]
    fn rows_of_different_lengths_share_column_widths() {
        let t = render_trimmed(&[row(["a", "bb"]), row(["ccc", "d"])]);
        assert_eq!(t, "a    bb\nccc  d\n");
    }
}
