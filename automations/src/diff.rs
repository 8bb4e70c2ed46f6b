//! Line differences between two texts, to show what changed between two saved versions of an
//! automation (in its YAML form): as a list of lines for the UI, or as a unified diff.
//!
//! Lines common to the start and the end are matched first. What lies between is compared by
//! longest common subsequence when each side has at most [`MAX_LINES`] lines; beyond that it is
//! shown as all removed, then all added, so memory stays bounded (the table is 2 bytes a cell,
//! at most about 8 MB).

use serde::{Deserialize, Serialize};

/// The most lines per side, after the common start and end, that are compared line by line.
pub const MAX_LINES: usize = 2_000;

/// What happened to a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// In both texts.
    Same,
    /// Only in the new text.
    Added,
    /// Only in the old text.
    Removed,
}

/// One line of a difference; JSON form `{"op": "added", "text": "  delay: 30s"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffLine {
    /// Same, added or removed.
    pub op: Op,
    /// The line, without its line break.
    pub text: String,
}

impl DiffLine {
    fn new(op: Op, text: &str) -> DiffLine {
        DiffLine { op, text: text.to_owned() }
    }
}

/// The lines of `old` and `new` in order, each same, removed or added; where lines changed,
/// the removed ones come before the added ones. Lines end at `\n` or `\r\n`; a missing final
/// line break is no difference.
pub fn diff_lines(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..].iter().rev().zip(b[prefix..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (mid_a, mid_b) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);

    let mut out = Vec::with_capacity(a.len() + b.len() - prefix - suffix);
    out.extend(a[..prefix].iter().map(|l| DiffLine::new(Op::Same, l)));
    if mid_a.len() > MAX_LINES || mid_b.len() > MAX_LINES {
        out.extend(mid_a.iter().map(|l| DiffLine::new(Op::Removed, l)));
        out.extend(mid_b.iter().map(|l| DiffLine::new(Op::Added, l)));
    } else {
        lcs(mid_a, mid_b, &mut out);
    }
    out.extend(a[a.len() - suffix..].iter().map(|l| DiffLine::new(Op::Same, l)));
    out
}

/// Appends the difference of `a` and `b` by longest common subsequence; both have at most
/// [`MAX_LINES`] lines, so lengths fit a `u16`.
fn lcs(a: &[&str], b: &[&str], out: &mut Vec<DiffLine>) {
    let (n, m) = (a.len(), b.len());
    let width = m + 1;
    // table[i * width + j]: the length of the longest common subsequence of a[i..] and b[j..].
    let mut table = vec![0u16; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i * width + j] = if a[i] == b[j] {
                table[(i + 1) * width + j + 1] + 1
            } else {
                table[(i + 1) * width + j].max(table[i * width + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if a[i] == b[j] {
            out.push(DiffLine::new(Op::Same, a[i]));
            i += 1;
            j += 1;
        } else if table[(i + 1) * width + j] >= table[i * width + j + 1] {
            out.push(DiffLine::new(Op::Removed, a[i]));
            i += 1;
        } else {
            out.push(DiffLine::new(Op::Added, b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| DiffLine::new(Op::Removed, l)));
    out.extend(b[j..].iter().map(|l| DiffLine::new(Op::Added, l)));
}

/// A unified diff of `lines` (from [`diff_lines`]): `--- old_label`, `+++ new_label`, then hunks
/// headed `@@ -start,count +start,count @@` with `context` unchanged lines around each change
/// (hunks closer than twice that merge), lines prefixed ` `, `-` or `+`. Empty when nothing
/// changed.
pub fn unified(old_label: &str, new_label: &str, lines: &[DiffLine], context: usize) -> String {
    // Hunks as ranges of `lines`.
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for (i, _) in lines.iter().enumerate().filter(|(_, l)| l.op != Op::Same) {
        let (start, end) = (i.saturating_sub(context), (i + 1 + context).min(lines.len()));
        match hunks.last_mut() {
            Some(last) if start <= last.1 => last.1 = end,
            _ => hunks.push((start, end)),
        }
    }
    if hunks.is_empty() {
        return String::new();
    }
    let mut out = format!("--- {old_label}\n+++ {new_label}\n");
    // Lines of the old and new text before `scanned`.
    let (mut old_line, mut new_line, mut scanned) = (0, 0, 0);
    for (start, end) in hunks {
        for l in &lines[scanned..start] {
            old_line += usize::from(l.op != Op::Added);
            new_line += usize::from(l.op != Op::Removed);
        }
        let hunk = &lines[start..end];
        let old_count = hunk.iter().filter(|l| l.op != Op::Added).count();
        let new_count = hunk.iter().filter(|l| l.op != Op::Removed).count();
        out.push_str(&format!("@@ -{} +{} @@\n", range(old_line, old_count), range(new_line, new_count)));
        for l in hunk {
            out.push(match l.op {
                Op::Same => ' ',
                Op::Added => '+',
                Op::Removed => '-',
            });
            out.push_str(&l.text);
            out.push('\n');
        }
        old_line += old_count;
        new_line += new_count;
        scanned = end;
    }
    out
}

/// A hunk's range as diff writes it: `start,count` from 1, `start` alone for one line, and for
/// none the line before (`0,0` at the top).
fn range(before: usize, count: usize) -> String {
    match count {
        0 => format!("{before},0"),
        1 => format!("{}", before + 1),
        _ => format!("{},{count}", before + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(lines: &[DiffLine]) -> String {
        lines
            .iter()
            .map(|l| match l.op {
                Op::Same => ' ',
                Op::Added => '+',
                Op::Removed => '-',
            })
            .collect()
    }

    #[test]
    fn identical_input_is_all_same() {
        let text = "id: porch\nname: Porch\ntriggers: []\n";
        let lines = diff_lines(text, text);
        assert_eq!(ops(&lines), "   ");
        assert_eq!(lines[1], DiffLine { op: Op::Same, text: "name: Porch".into() });
        assert_eq!(unified("v3", "v4", &lines, 3), "");
        assert!(diff_lines("", "").is_empty());
        // A missing final line break is no difference.
        assert_eq!(ops(&diff_lines("a\r\nb", "a\nb\n")), "  ");
    }

    #[test]
    fn a_changed_line_is_a_removal_then_an_addition_in_place() {
        let lines = diff_lines("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(
            lines,
            vec![
                DiffLine::new(Op::Same, "a"),
                DiffLine::new(Op::Removed, "b"),
                DiffLine::new(Op::Added, "B"),
                DiffLine::new(Op::Same, "c"),
            ]
        );
        assert_eq!(serde_json::to_value(&lines[2]).unwrap(), serde_json::json!({"op": "added", "text": "B"}));
        let back: DiffLine = serde_json::from_value(serde_json::json!({"op": "removed", "text": "b"})).unwrap();
        assert_eq!(back, lines[1]);
    }

    #[test]
    fn insertions_and_deletions_keep_the_longest_common_part() {
        let lines = diff_lines("x\na\nb\nc\nd\n", "a\nc\ny\nd\nz\n");
        assert_eq!(ops(&lines), "- - + +");
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["x", "a", "b", "c", "y", "d", "z"]);
        assert_eq!(ops(&diff_lines("", "a\nb")), "++");
        assert_eq!(ops(&diff_lines("a\nb", "")), "--");
    }

    #[test]
    fn unified_trims_context_and_splits_hunks() {
        let old: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let new =
            old.replace("line 3\n", "line three\n").replace("line 15\n", "").replace("line 20\n", "line 20\nline 21\n");
        let lines = diff_lines(&old, &new);
        assert_eq!(
            unified("v3", "v4", &lines, 2),
            "--- v3\n+++ v4\n\
             @@ -1,5 +1,5 @@\n line 1\n line 2\n-line 3\n+line three\n line 4\n line 5\n\
             @@ -13,5 +13,4 @@\n line 13\n line 14\n-line 15\n line 16\n line 17\n\
             @@ -19,2 +18,3 @@\n line 19\n line 20\n+line 21\n"
        );
        // Changes at most twice the context apart share a hunk; with no context, only changed
        // lines are shown.
        assert_eq!(unified("a", "b", &lines, 3).matches("@@ -").count(), 2);
        assert_eq!(unified("a", "b", &lines, 6).matches("@@ -").count(), 1);
        assert_eq!(
            unified("a", "b", &lines, 0),
            "--- a\n+++ b\n@@ -3 +3 @@\n-line 3\n+line three\n@@ -15 +14,0 @@\n-line 15\n@@ -20,0 +20 @@\n+line 21\n"
        );
        // Into an empty text.
        assert_eq!(unified("a", "b", &diff_lines("", "x\n"), 3), "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n");
    }

    #[test]
    fn large_inputs_take_the_fallback() {
        let old: Vec<String> = (0..3_000).map(|i| format!("line {i}")).collect();
        let mut new = old.clone();
        new[0] = "first".into();
        new[2_999] = "last".into();
        let lines = diff_lines(&old.join("\n"), &new.join("\n"));
        assert_eq!(lines.len(), 6_000);
        assert!(lines[..3_000].iter().all(|l| l.op == Op::Removed));
        assert!(lines[3_000..].iter().all(|l| l.op == Op::Added));
        assert_eq!(lines[3_000].text, "first");

        // The common start and end are matched whatever the size; only the middle falls back.
        let mut new = old.clone();
        new[1_500] = "middle".into();
        let lines = diff_lines(&old.join("\n"), &new.join("\n"));
        assert_eq!(lines.iter().filter(|l| l.op != Op::Same).count(), 2);

        // Just under the limit, line by line.
        let old: Vec<String> = (0..MAX_LINES).map(|i| format!("line {i}")).collect();
        let mut new = old.clone();
        new[0] = "first".into();
        new[MAX_LINES - 1] = "last".into();
        let lines = diff_lines(&old.join("\n"), &new.join("\n"));
        assert_eq!(lines.iter().filter(|l| l.op == Op::Same).count(), MAX_LINES - 2);
    }
}
