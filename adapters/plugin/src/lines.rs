//! Line framing: one message per `\n`-terminated line, at most [`MAX_LINE`] bytes.
//!
//! A line over the cap is skipped up to its `\n` without being held in memory, and reported as
//! [`Line::TooLong`], so a peer that writes without end costs nothing but reading time.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

pub use crate::protocol::MAX_LINE;

/// One line read from a peer, numbered from 1 (blank lines count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A line of text, without its `\n` (and one `\r` before it).
    Text(u64, String),
    /// A line that is not UTF-8.
    NotUtf8(u64),
    /// A line longer than the cap; its length in bytes.
    TooLong(u64, usize),
}

impl Line {
    /// The line's number.
    pub fn number(&self) -> u64 {
        match self {
            Line::Text(n, _) | Line::NotUtf8(n) | Line::TooLong(n, _) => *n,
        }
    }
}

/// Reads lines from `R`, capped at `max` bytes each.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    max: usize,
    number: u64,
    buf: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// A reader with the protocol's cap.
    pub fn new(inner: R) -> LineReader<R> {
        LineReader::with_max(inner, MAX_LINE)
    }

    /// A reader with another cap (tests).
    pub fn with_max(inner: R, max: usize) -> LineReader<R> {
        LineReader { inner, max, number: 0, buf: Vec::new() }
    }

    /// The next line, or `None` at end of stream. A last line without `\n` still counts.
    pub async fn next(&mut self) -> std::io::Result<Option<Line>> {
        self.buf.clear();
        let mut length = 0usize;
        let mut over = false;
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                if length == 0 {
                    return Ok(None);
                }
                break;
            }
            let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            length += take;
            if !over && length > self.max + 1 {
                // +1: a `\r` before the `\n` is not part of the line.
                over = true;
                self.buf.clear();
            }
            if !over {
                self.buf.extend_from_slice(&chunk[..take]);
            }
            self.inner.consume(if done { take + 1 } else { take });
            if done {
                break;
            }
        }
        self.number += 1;
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
            length = length.saturating_sub(1);
        }
        if over || length > self.max {
            return Ok(Some(Line::TooLong(self.number, length)));
        }
        match String::from_utf8(std::mem::take(&mut self.buf)) {
            Ok(s) => Ok(Some(Line::Text(self.number, s))),
            Err(_) => Ok(Some(Line::NotUtf8(self.number))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(input: &[u8], max: usize) -> Vec<Line> {
        let mut r = LineReader::with_max(tokio::io::BufReader::with_capacity(4, input), max);
        let mut out = Vec::new();
        while let Some(l) = r.next().await.unwrap() {
            out.push(l);
        }
        out
    }

    #[tokio::test]
    async fn lines_are_numbered_capped_and_stripped() {
        let lines = all(b"{\"a\":1}\r\n\nabcdefghijkl\n\xff\xfe\nlast", 10).await;
        assert_eq!(
            lines,
            vec![
                Line::Text(1, "{\"a\":1}".into()),
                Line::Text(2, String::new()),
                Line::TooLong(3, 12),
                Line::NotUtf8(4),
                Line::Text(5, "last".into()),
            ]
        );
        // Exactly at the cap is fine, with or without `\r`.
        assert_eq!(all(b"0123456789\r\n0123456789\n", 10).await.len(), 2);
        assert!(matches!(all(b"0123456789\r\n", 10).await[0], Line::Text(1, _)));
    }

    #[tokio::test]
    async fn a_huge_line_is_not_held_in_memory() {
        let mut input = vec![b'x'; 5 * MAX_LINE];
        input.extend_from_slice(b"\n{}\n");
        let mut r = LineReader::new(tokio::io::BufReader::new(&input[..]));
        assert_eq!(r.next().await.unwrap(), Some(Line::TooLong(1, 5 * MAX_LINE)));
        assert!(r.buf.capacity() <= 2 * MAX_LINE + 8192);
        assert_eq!(r.next().await.unwrap(), Some(Line::Text(2, "{}".into())));
        assert_eq!(r.next().await.unwrap(), None);
    }
}
