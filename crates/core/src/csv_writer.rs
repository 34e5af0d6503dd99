//! CSV as opsdesk writes it, for every CSV it produces (ticket exports, trend reports): a cell
//! a spreadsheet would read as a formula is written as text, so that a ticket titled
//! `=HYPERLINK("http://x","y")` opens as that text, not as a live link or command.

use std::borrow::Cow;
use std::io::Write;

/// A cell as written: one that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
/// gets a leading `'` (the OWASP rule for CSV injection), unless it is a plain number such as
/// `-3` or `+0.5`, which a spreadsheet reads as a number and never as a formula.
pub fn neutralised(cell: &str) -> Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !is_plain_number(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// An optional sign, digits and at most one decimal point (with a digit somewhere).
fn is_plain_number(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let mut points = 0;
    let mut any_digit = false;
    for c in digits.chars() {
        match c {
            '0'..='9' => any_digit = true,
            '.' => points += 1,
            _ => return false,
        }
    }
    any_digit && points <= 1
}

/// A CSV writer whose every cell goes through [`neutralised`].
pub struct CsvWriter<W: Write>(csv::Writer<W>);

impl<W: Write> CsvWriter<W> {
    pub fn from_writer(out: W) -> CsvWriter<W> {
        CsvWriter(csv::Writer::from_writer(out))
    }

    pub fn write_record<I, T>(&mut self, record: I) -> Result<(), csv::Error>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.0.write_record(
            record
                .into_iter()
                .map(|c| neutralised(c.as_ref()).into_owned()),
        )
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }

    /// The output, once what is buffered is written.
    pub fn into_inner(self) -> std::io::Result<W> {
        self.0.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_become_text() {
        for cell in [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0",
            "@SUM(A1:A2)",
            "\t=1+1",
            "\r=1+1",
            "-",
            "+",
            "-1e3",
        ] {
            assert_eq!(neutralised(cell), format!("'{cell}"), "{cell:?}");
        }
    }

    #[test]
    fn other_cells_and_plain_numbers_are_kept() {
        for cell in [
            "",
            "Disk full",
            "a=b",
            "42",
            "-3",
            "+0.5",
            "-0.25",
            "'quoted",
        ] {
            assert_eq!(neutralised(cell), cell, "{cell:?}");
        }
    }

    #[test]
    fn the_writer_neutralises_every_cell() {
        let mut w = CsvWriter::from_writer(Vec::new());
        w.write_record(["=1+1", "ok", "-2"]).unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(out, "'=1+1,ok,-2\n");
    }
}
