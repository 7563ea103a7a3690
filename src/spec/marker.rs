//! PEP 508 environment markers (`numpy==2.1; python_version >= "3.10"`), checked when the
//! spec is read, so that a wrong marker fails at its line rather than inside pip mid-build.
//!
//! The grammar is PEP 508's (`marker_or`, `marker_and`, `marker_expr`), with the variables
//! of the current specification (packaging 22+ dropped the dotted legacy names). Written
//! here rather than taken from a crate: the maintained PEP 508 parsers pull in a URL and
//! Unicode stack of some sixty crates, for a grammar of a dozen lines in a core that does
//! no IO.

/// The marker variables PEP 508 defines.
const VARIABLES: &[&str] = &[
    "python_version",
    "python_full_version",
    "os_name",
    "sys_platform",
    "platform_release",
    "platform_system",
    "platform_version",
    "platform_machine",
    "platform_python_implementation",
    "implementation_name",
    "implementation_version",
    "extra",
];

/// The comparison operators (`version_cmp`), longest first.
const COMPARISONS: &[&str] = &["===", "<=", ">=", "==", "!=", "~=", "<", ">"];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Str,
    Cmp,
    Word(String),
}

fn tokens(s: &str) -> Result<Vec<Token>, String> {
    let mut out = vec![];
    let mut rest = s.trim_start();
    while let Some(c) = rest.chars().next() {
        let (tok, len) = match c {
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            '\'' | '"' => match rest[1..].find(c) {
                Some(end) => (Token::Str, end + 2),
                None => return Err(format!("the string {rest} is not closed with {c}")),
            },
            c if c.is_ascii_alphabetic() || c == '_' => {
                let len = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                    .unwrap_or(rest.len());
                (Token::Word(rest[..len].to_string()), len)
            }
            _ => match COMPARISONS.iter().find(|op| rest.starts_with(*op)) {
                Some(op) => (Token::Cmp, op.len()),
                None => return Err(format!("unexpected `{c}`")),
            },
        };
        out.push(tok);
        rest = rest[len..].trim_start();
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.at)
    }

    fn word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(x)) if x == w)
    }

    fn or(&mut self) -> Result<(), String> {
        self.and()?;
        while self.word("or") {
            self.at += 1;
            self.and()?;
        }
        Ok(())
    }

    fn and(&mut self) -> Result<(), String> {
        self.expr()?;
        while self.word("and") {
            self.at += 1;
            self.expr()?;
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<(), String> {
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            self.or()?;
            if self.peek() != Some(&Token::Close) {
                return Err("a `(` is not closed".into());
            }
            self.at += 1;
            return Ok(());
        }
        self.value()?;
        match self.peek() {
            Some(Token::Cmp) => self.at += 1,
            Some(Token::Word(w)) if w == "in" => self.at += 1,
            Some(Token::Word(w)) if w == "not" => {
                self.at += 1;
                if !self.word("in") {
                    return Err("`not` must be followed by `in`".into());
                }
                self.at += 1;
            }
            _ => {
                return Err(
                    "a comparison needs an operator (==, !=, <, <=, >, >=, ~=, ===, in, not in)"
                        .into(),
                )
            }
        }
        self.value()
    }

    fn value(&mut self) -> Result<(), String> {
        match self.peek().cloned() {
            Some(Token::Str) => {
                self.at += 1;
                Ok(())
            }
            Some(Token::Word(w)) if VARIABLES.contains(&w.as_str()) => {
                self.at += 1;
                Ok(())
            }
            Some(Token::Word(w)) => Err(match super::did_you_mean(&w, VARIABLES) {
                Some(m) => format!("`{w}` is not a marker variable (did you mean `{m}`?)"),
                None => format!(
                    "`{w}` is not a marker variable; PEP 508 has {}",
                    VARIABLES.join(", ")
                ),
            }),
            _ => Err("a comparison needs a marker variable or a quoted string".into()),
        }
    }
}

/// Checks a marker (the text after `;`).
pub(super) fn check(marker: &str) -> Result<(), String> {
    if marker.trim().is_empty() {
        return Err("the marker after `;` is empty".into());
    }
    let mut p = Parser {
        toks: tokens(marker)?,
        at: 0,
    };
    p.or()?;
    if p.at < p.toks.len() {
        return Err("unexpected text after the marker (join conditions with `and` / `or`)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn markers_of_the_pep_parse_and_wrong_ones_say_why() {
        for ok in [
            "python_version >= \"3.10\"",
            "python_version < '3.12' and sys_platform == 'linux'",
            "(os_name == 'nt' or platform_machine == 'x86_64') and extra == 'gpu'",
            "'linux' in sys_platform",
            "platform_system not in 'Windows Darwin'",
            "python_full_version === '3.11.2'",
        ] {
            assert!(check(ok).is_ok(), "{ok}: {:?}", check(ok));
        }
        for (bad, why) in [
            ("python_versio >= '3.10'", "did you mean `python_version`"),
            ("python_version >= 3.10", "unexpected `3`"),
            ("python_version '3.10'", "needs an operator"),
            ("python_version >= '3.10", "not closed"),
            ("(python_version >= '3.10'", "`(` is not closed"),
            (
                "python_version >= '3.10' sys_platform == 'linux'",
                "join conditions",
            ),
            ("platform_system not 'x'", "`not` must be followed by `in`"),
            ("  ", "empty"),
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
