//! The expression language of filters and rules: comparisons of fields, the caller (`auth.*`)
//! and literals, combined with `&&`, `||`, `!` and parentheses, e.g.
//! `owner == auth.id || auth.role == "admin"` or `status in ["open", "late"] && priority >= 2`.
//! Parsed into a tree here (no I/O); compiled to parameterized SQL elsewhere: literals become
//! bound parameters and names are checked against the schema, so text from a request can never
//! become SQL.

use std::fmt;

/// Longest expression accepted, in bytes.
pub const MAX_LEN: usize = 4096;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// Case-insensitive "contains" on text.
    Like,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Literal),
    /// A dotted name: `status`, `auth.id`, `row.owner`.
    Path(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Operand, CmpOp, Operand),
    In(Operand, Vec<Literal>),
    /// A lone operand: true when it is a true boolean.
    Truthy(Operand),
}

/// Why an expression does not parse, and where (byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub at: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.reason, self.at)
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Lit(Literal),
    Op(&'static str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
}

fn tokenize(input: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, reason: &str| Err(ParseError { at, reason: reason.to_owned() });
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' | b')' | b'[' | b']' | b',' | b'.' => {
                out.push((
                    start,
                    match c {
                        b'(' => Token::LParen,
                        b')' => Token::RParen,
                        b'[' => Token::LBracket,
                        b']' => Token::RBracket,
                        b',' => Token::Comma,
                        _ => Token::Dot,
                    },
                ));
                i += 1;
            }
            b'"' | b'\'' => {
                let quote = c;
                let mut text = String::new();
                i += 1;
                loop {
                    let Some(&ch) = bytes.get(i) else { return err(start, "unterminated string") };
                    if ch == quote {
                        i += 1;
                        break;
                    }
                    if ch == b'\\' {
                        match bytes.get(i + 1) {
                            Some(&e @ (b'\\' | b'"' | b'\'')) => text.push(e as char),
                            Some(b'n') => text.push('\n'),
                            _ => return err(i, "unknown escape"),
                        }
                        i += 2;
                        continue;
                    }
                    // Copy one UTF-8 character.
                    let rest = &input[i..];
                    let Some(ch) = rest.chars().next() else { return err(i, "invalid text") };
                    text.push(ch);
                    i += ch.len_utf8();
                }
                out.push((start, Token::Lit(Literal::Text(text))));
            }
            b'0'..=b'9' | b'-' if c != b'-' || bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                while bytes.get(i).is_some_and(|b| b.is_ascii_digit() || *b == b'.') {
                    i += 1;
                }
                let text = &input[start..i];
                let lit = if text.contains('.') {
                    text.parse::<f64>().ok().filter(|f| f.is_finite()).map(Literal::Float)
                } else {
                    text.parse::<i64>().ok().map(Literal::Int)
                };
                match lit {
                    Some(lit) => out.push((start, Token::Lit(lit))),
                    None => return err(start, "invalid number"),
                }
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                while bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_') {
                    i += 1;
                }
                let word = &input[start..i];
                let token = match word {
                    "true" => Token::Lit(Literal::Bool(true)),
                    "false" => Token::Lit(Literal::Bool(false)),
                    "null" => Token::Lit(Literal::Null),
                    "and" => Token::Op("&&"),
                    "or" => Token::Op("||"),
                    "not" => Token::Op("!"),
                    "in" => Token::Op("in"),
                    _ => Token::Ident(word.to_owned()),
                };
                out.push((start, token));
            }
            _ => {
                let two = input.get(i..i + 2).unwrap_or("");
                let op = match two {
                    "==" | "!=" | "<=" | ">=" | "&&" | "||" => Some(two),
                    _ => None,
                };
                let op = match op {
                    Some(op) => {
                        i += 2;
                        op
                    }
                    None => {
                        i += 1;
                        match c {
                            b'<' => "<",
                            b'>' => ">",
                            b'!' => "!",
                            b'~' => "~",
                            b'=' => "==",
                            _ => return err(start, "unexpected character"),
                        }
                    }
                };
                let op: &'static str = match op {
                    "==" => "==",
                    "!=" => "!=",
                    "<=" => "<=",
                    ">=" => ">=",
                    "&&" => "&&",
                    "||" => "||",
                    "<" => "<",
                    ">" => ">",
                    "!" => "!",
                    _ => "~",
                };
                out.push((start, Token::Op(op)));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(at, _)| *at)
    }

    fn fail<T>(&self, reason: &str) -> Result<T, ParseError> {
        Err(ParseError { at: self.at(), reason: reason.to_owned() })
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, ParseError>) -> Result<T, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail("nested too deeply");
        }
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.eat(&Token::Op("||")) {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.eat(&Token::Op("&&")) {
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.eat(&Token::Op("!")) {
            return self.nested(|p| Ok(Expr::Not(Box::new(p.not()?))));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        if self.eat(&Token::LParen) {
            let inner = self.nested(Self::or)?;
            if !self.eat(&Token::RParen) {
                return self.fail("expected `)`");
            }
            return Ok(inner);
        }
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Token::Op("==")) => CmpOp::Eq,
            Some(Token::Op("!=")) => CmpOp::Ne,
            Some(Token::Op("<")) => CmpOp::Lt,
            Some(Token::Op("<=")) => CmpOp::Le,
            Some(Token::Op(">")) => CmpOp::Gt,
            Some(Token::Op(">=")) => CmpOp::Ge,
            Some(Token::Op("~")) => CmpOp::Like,
            Some(Token::Op("in")) => {
                self.pos += 1;
                return Ok(Expr::In(left, self.list()?));
            }
            _ => return Ok(Expr::Truthy(left)),
        };
        self.pos += 1;
        let right = self.operand()?;
        Ok(Expr::Cmp(left, op, right))
    }

    fn list(&mut self) -> Result<Vec<Literal>, ParseError> {
        if !self.eat(&Token::LBracket) {
            return self.fail("expected `[` after `in`");
        }
        let mut items = Vec::new();
        loop {
            match self.peek().cloned() {
                Some(Token::RBracket) if items.is_empty() => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(Token::Lit(lit)) => {
                    self.pos += 1;
                    items.push(lit);
                    if items.len() > 256 {
                        return self.fail("lists hold at most 256 values");
                    }
                }
                _ => return self.fail("expected a value"),
            }
            if self.eat(&Token::RBracket) {
                return Ok(items);
            }
            if !self.eat(&Token::Comma) {
                return self.fail("expected `,` or `]`");
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        match self.peek().cloned() {
            Some(Token::Lit(lit)) => {
                self.pos += 1;
                Ok(Operand::Literal(lit))
            }
            Some(Token::Ident(first)) => {
                self.pos += 1;
                let mut path = vec![first];
                while self.eat(&Token::Dot) {
                    match self.peek().cloned() {
                        Some(Token::Ident(next)) if path.len() < 4 => {
                            self.pos += 1;
                            path.push(next);
                        }
                        _ => return self.fail("expected a name after `.`"),
                    }
                }
                Ok(Operand::Path(path))
            }
            _ => self.fail("expected a name or a value"),
        }
    }
}

/// Parses an expression.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    if input.len() > MAX_LEN {
        return Err(ParseError { at: MAX_LEN, reason: format!("longer than {MAX_LEN} bytes") });
    }
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(ParseError { at: 0, reason: "empty expression".into() });
    }
    let mut parser = Parser { tokens, pos: 0, end: input.len(), depth: 0 };
    let expr = parser.or()?;
    if parser.pos != parser.tokens.len() {
        return parser.fail("unexpected text after the expression");
    }
    Ok(expr)
}

/// Every dotted name an expression uses, for checking against a schema.
pub fn paths(expr: &Expr) -> Vec<&[String]> {
    fn operand<'a>(op: &'a Operand, out: &mut Vec<&'a [String]>) {
        if let Operand::Path(path) = op {
            out.push(path);
        }
    }
    fn walk<'a>(expr: &'a Expr, out: &mut Vec<&'a [String]>) {
        match expr {
            Expr::And(a, b) | Expr::Or(a, b) => {
                walk(a, out);
                walk(b, out);
            }
            Expr::Not(a) => walk(a, out),
            Expr::Cmp(a, _, b) => {
                operand(a, out);
                operand(b, out);
            }
            Expr::In(a, _) | Expr::Truthy(a) => operand(a, out),
        }
    }
    let mut out = Vec::new();
    walk(expr, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn path(p: &str) -> Operand {
        Operand::Path(p.split('.').map(str::to_owned).collect())
    }

    #[test]
    fn expressions_parse_with_precedence() {
        let parsed = parse(r#"owner == auth.id || auth.role == "admin" && !archived"#).expect("parses");
        let expected = Expr::Or(
            Box::new(Expr::Cmp(path("owner"), CmpOp::Eq, path("auth.id"))),
            Box::new(Expr::And(
                Box::new(Expr::Cmp(path("auth.role"), CmpOp::Eq, Operand::Literal(Literal::Text("admin".into())))),
                Box::new(Expr::Not(Box::new(Expr::Truthy(path("archived"))))),
            )),
        );
        assert_eq!(parsed, expected);
        let parsed = parse("(status in ['open', 'late'] or priority >= -2.5) and title ~ 'x'").expect("parses");
        assert!(matches!(parsed, Expr::And(_, _)));
        let names: Vec<String> = paths(&parsed).iter().map(|p| p.join(".")).collect();
        assert_eq!(names, ["status", "priority", "title"]);
    }

    #[test]
    fn bad_expressions_say_where() {
        for (bad, at) in [
            ("", 0),
            ("a ==", 4),
            ("(a == 1", 7),
            ("a == 'x", 5),
            ("a in (1)", 5),
            ("a == 1 b", 7),
            ("a; DROP TABLE t", 1),
            ("a == 99999999999999999999", 5),
            ("a.b.c.d.e == 1", 8),
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.at, at, "{bad}: {err}");
        }
        assert!(parse(&format!("{}a", "!".repeat(100))).is_err(), "nesting is bounded");
        assert!(parse(&format!("{}a{}", "(".repeat(100), ")".repeat(100))).is_err());
        assert!(parse(&format!("{}a{}", "(".repeat(10), ")".repeat(10))).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn any_text_parses_or_fails_cleanly(input in "\\PC{0,200}") {
            let _ = parse(&input);
        }

        #[test]
        fn expression_shaped_text_parses_or_fails_cleanly(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("a"), Just("auth.id"), Just("=="), Just("!="), Just("<="), Just("&&"), Just("||"),
                    Just("!"), Just("("), Just(")"), Just("in"), Just("["), Just("]"), Just(","), Just("'x'"),
                    Just("12"), Just("-3.5"), Just("null"), Just("true"), Just("~"), Just("."), Just("\""),
                ],
                0..40,
            )
        ) {
            let input = parts.join(" ");
            if let Ok(expr) = parse(&input) {
                // Whatever parses names only plain identifiers.
                for path in paths(&expr) {
                    prop_assert!(path.iter().all(|p| p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')));
                }
            }
        }
    }
}
