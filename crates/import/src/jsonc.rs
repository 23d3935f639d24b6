//! JSON with comments, as Kea writes its config: `// …`, `# …` (to the end of the line) and
//! `/* … */` outside strings.

/// Replaces every comment with spaces (newlines kept), so the result is plain JSON whose
/// parse errors still point at the right line and column. An unterminated `/*` is an error
/// naming its line.
pub fn strip_comments(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    let mut line = 1usize;
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        }
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        if n == '\n' {
                            line += 1;
                        }
                        out.push(n);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '#' => skip_line(&mut chars, &mut out),
            '/' if chars.peek() == Some(&'/') => {
                out.push(' ');
                skip_line(&mut chars, &mut out);
            }
            '/' if chars.peek() == Some(&'*') => {
                let start = line;
                chars.next();
                out.push_str("  ");
                let mut closed = false;
                while let Some(n) = chars.next() {
                    if n == '*' && chars.peek() == Some(&'/') {
                        chars.next();
                        out.push_str("  ");
                        closed = true;
                        break;
                    }
                    if n == '\n' {
                        line += 1;
                        out.push('\n');
                    } else {
                        out.push(' ');
                    }
                }
                if !closed {
                    return Err(format!("line {start}: comment /* is never closed"));
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    out.push(' ');
    while let Some(&n) = chars.peek() {
        if n == '\n' {
            break;
        }
        chars.next();
        out.push(' ');
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn comments_go_strings_stay() {
        let text = "{ // one\n  \"a\": \"x // not # a /* comment\", # two\n  /* three\n  lines */ \"b\": 1 }";
        let plain = strip_comments(text).unwrap();
        let v: serde_json::Value = serde_json::from_str(&plain).unwrap();
        assert_eq!(v["a"], "x // not # a /* comment");
        assert_eq!(v["b"], 1);
        assert_eq!(plain.lines().count(), text.lines().count());
        let escaped = strip_comments(r##"{"a": "q\"#x"}"##).unwrap();
        assert_eq!(escaped, r##"{"a": "q\"#x"}"##);
        assert!(strip_comments("{ /* open").unwrap_err().contains("line 1"));
    }
}
