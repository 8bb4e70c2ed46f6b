//! A small evaluator for the Jinja subset Home Assistant's MQTT templates use in practice:
//! `value_template`, `command_template`, `json_attributes_template` and their kin.
//!
//! Supported: literal text around `{{ … }}` (with `{{-`/`-}}` whitespace control) and `{# … #}`
//! comments; the variables a template is given (`value`, `value_json`, and per template kind
//! `red`, `position` …); `.attr`, `['key']`, `["key"]` and `[0]` access; numbers, strings,
//! `true`/`false`/`none` (any case); `+ - * / // % ~`, comparisons, `in`, `and`/`or`/`not`,
//! `x if cond else y`; the tests `is defined`, `undefined`, `none`, `number`, `string`,
//! `boolean`, `mapping`, `sequence`, `even`, `odd` (and `is not …`); the filters `float`, `int`,
//! `round`, `lower`, `upper`, `default` (`d`), `is_defined`, `string`, `abs`, `trim`, `bool`,
//! `length` (`count`), `replace`, `multiply`, `to_json` (`tojson`); the functions `float()`,
//! `int()`, `bool()`.
//!
//! Everything else (`{% … %}` statements, other filters and functions, method calls like
//! `.split(',')`, slices, list literals) is refused when the template is parsed, with the
//! template's text and what is not supported, so the adapter can list it on the device. Nothing
//! here panics on any input: lengths and nesting are bounded and arithmetic is checked.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value as Json;

/// The longest template accepted, in bytes.
pub const MAX_TEMPLATE: usize = 64 * 1024;
/// The deepest nesting of expressions accepted.
const MAX_DEPTH: usize = 48;
/// The longest string a template may build, in bytes.
const MAX_STRING: usize = 1024 * 1024;

/// A template that cannot be used: it is not in the supported subset or is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported template `{template}`: {what}")]
pub struct TemplateError {
    /// The template's text (shortened when long).
    pub template: String,
    /// What is not supported or malformed.
    pub what: String,
}

/// Why evaluating a parsed template gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The template names something the payload does not have (`value_json.x` without `x`):
    /// not an error of the payload, the value is simply not in this message.
    #[error("{0} is undefined")]
    Undefined(String),
    /// The payload has the wrong shape for the template (`float` of `"on"`).
    #[error("{0}")]
    Invalid(String),
}

/// A value while a template is evaluated: JSON plus Jinja's `Undefined`.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// A name that is not there; says which.
    Undefined(String),
    /// `none`.
    None,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text.
    Str(String),
    /// A JSON array or object, as it came.
    Json(Json),
}

impl Val {
    /// The value of a JSON value.
    pub fn from_json(j: &Json) -> Val {
        match j {
            Json::Null => Val::None,
            Json::Bool(b) => Val::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => Val::Str(s.clone()),
            other => Val::Json(other.clone()),
        }
    }

    /// A number as a template sees it: an integer when it is one.
    pub fn number(n: f64) -> Val {
        if n.fract() == 0.0 && n.abs() < 9.0e15 { Val::Int(n as i64) } else { Val::Float(n) }
    }

    /// The value as JSON (`Undefined` becomes `null`).
    pub fn to_json(&self) -> Json {
        match self {
            Val::Undefined(_) | Val::None => Json::Null,
            Val::Bool(b) => Json::Bool(*b),
            Val::Int(i) => Json::from(*i),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Val::Str(s) => Json::String(s.clone()),
            Val::Json(j) => j.clone(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Val::Undefined(_) => "undefined",
            Val::None => "none",
            Val::Bool(_) => "a boolean",
            Val::Int(_) | Val::Float(_) => "a number",
            Val::Str(_) => "text",
            Val::Json(Json::Array(_)) => "a list",
            Val::Json(_) => "an object",
        }
    }

    fn truthy(&self) -> bool {
        match self {
            Val::Undefined(_) | Val::None => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::Json(Json::Array(a)) => !a.is_empty(),
            Val::Json(Json::Object(o)) => !o.is_empty(),
            Val::Json(_) => true,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f) => Some(*f),
            _ => None,
        }
    }
}

impl fmt::Display for Val {
    /// As Jinja prints it: `True`, `None`, `21.0`; an undefined value prints as nothing; lists
    /// and objects print as JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Undefined(_) => Ok(()),
            Val::None => f.write_str("None"),
            Val::Bool(true) => f.write_str("True"),
            Val::Bool(false) => f.write_str("False"),
            Val::Int(i) => write!(f, "{i}"),
            Val::Float(x) => f.write_str(&python_float(*x)),
            Val::Str(s) => f.write_str(s),
            Val::Json(j) => write!(f, "{j}"),
        }
    }
}

/// A float as Python prints it: `21.0`, `0.1`, `inf`, `nan`.
fn python_float(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// The variables a template is evaluated with.
#[derive(Debug, Default, Clone)]
pub struct Vars<'a> {
    /// `value`: the payload's text, or the value a command sends.
    pub value: Option<Val>,
    /// `value_json`: the payload parsed as JSON, when it is JSON.
    pub value_json: Option<&'a Json>,
    /// Others (`red`, `position` …).
    pub extra: BTreeMap<&'static str, Val>,
}

impl<'a> Vars<'a> {
    /// The variables of a state payload: `value` is its text, `value_json` its JSON if it is.
    pub fn payload(text: &str, json: Option<&'a Json>) -> Vars<'a> {
        Vars { value: Some(Val::Str(text.to_owned())), value_json: json, extra: BTreeMap::new() }
    }

    /// The variables of a command: `value` is what is sent.
    pub fn command(value: Val) -> Vars<'a> {
        Vars { value: Some(value), value_json: None, extra: BTreeMap::new() }
    }

    /// With one more variable.
    pub fn with(mut self, name: &'static str, v: Val) -> Vars<'a> {
        self.extra.insert(name, v);
        self
    }
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Expr(Expr),
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Lit(Val),
    Var(String),
    Attr(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Filter(Box<Expr>, Filter, Vec<Arg>),
    Call(Func, Vec<Arg>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Test(Box<Expr>, TestKind, bool),
    Cond(Box<Expr>, Box<Expr>, Option<Box<Expr>>),
}

#[derive(Debug, Clone, PartialEq)]
struct Arg {
    name: Option<String>,
    value: Expr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Concat,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    Float,
    Int,
    Round,
    Lower,
    Upper,
    Default,
    IsDefined,
    String,
    Abs,
    Trim,
    Bool,
    Length,
    Replace,
    Multiply,
    ToJson,
}

impl Filter {
    fn named(name: &str) -> Option<Filter> {
        Some(match name {
            "float" => Filter::Float,
            "int" => Filter::Int,
            "round" => Filter::Round,
            "lower" => Filter::Lower,
            "upper" => Filter::Upper,
            "default" | "d" => Filter::Default,
            "is_defined" => Filter::IsDefined,
            "string" => Filter::String,
            "abs" => Filter::Abs,
            "trim" => Filter::Trim,
            "bool" => Filter::Bool,
            "length" | "count" => Filter::Length,
            "replace" => Filter::Replace,
            "multiply" => Filter::Multiply,
            "to_json" | "tojson" => Filter::ToJson,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Float,
    Int,
    Bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestKind {
    Defined,
    Undefined,
    None,
    Number,
    String,
    Boolean,
    Mapping,
    Sequence,
    Even,
    Odd,
}

impl TestKind {
    fn named(name: &str) -> Option<TestKind> {
        Some(match name {
            "defined" => TestKind::Defined,
            "undefined" => TestKind::Undefined,
            "none" | "None" => TestKind::None,
            "number" => TestKind::Number,
            "string" => TestKind::String,
            "boolean" => TestKind::Boolean,
            "mapping" => TestKind::Mapping,
            "sequence" | "iterable" => TestKind::Sequence,
            "even" => TestKind::Even,
            "odd" => TestKind::Odd,
            _ => return None,
        })
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Template {
    /// Parses a template; an error says what is not supported.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let err = |what: String| TemplateError { template: shorten(source), what };
        if source.len() > MAX_TEMPLATE {
            return Err(err(format!("longer than {MAX_TEMPLATE} bytes")));
        }
        let mut parts = Vec::new();
        let mut rest = source;
        let mut trim_next = false;
        while !rest.is_empty() {
            let next = [rest.find("{{"), rest.find("{%"), rest.find("{#")].into_iter().flatten().min();
            let Some(at) = next else {
                push_text(&mut parts, rest, trim_next, false);
                break;
            };
            let open = &rest[at..];
            let trim_before = open[2..].starts_with('-');
            push_text(&mut parts, &rest[..at], trim_next, trim_before);
            if let Some(body) = open.strip_prefix("{%") {
                let stmt = body.trim_start_matches(['-', '+']).split_whitespace().next().unwrap_or("");
                return Err(err(format!("statements ({{% {stmt} … %}}) are not supported")));
            }
            if open.starts_with("{#") {
                let Some(end) = open.find("#}") else { return Err(err("a comment is not closed with #}".into())) };
                trim_next = open[..end].ends_with('-');
                rest = &open[end + 2..];
                continue;
            }
            let body_start = if trim_before { 3 } else { 2 };
            let mut lexer = Lexer::new(&open[body_start..]);
            let tokens = lexer.tokens_until_close().map_err(err)?;
            trim_next = lexer.trim_after;
            let consumed = body_start + lexer.pos;
            let mut p = Parser { tokens: &tokens, pos: 0, depth: 0 };
            let expr = p.expr().map_err(err)?;
            if p.pos < tokens.len() {
                return Err(err(format!("unexpected {} in an expression", tokens[p.pos].describe())));
            }
            parts.push(Part::Expr(expr));
            rest = &open[consumed..];
        }
        Ok(Template { source: source.to_owned(), parts })
    }

    /// The template's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables the template reads (to check them against what it is given).
    pub fn variables(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.parts {
            if let Part::Expr(e) = p {
                collect_vars(e, &mut out);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Checks that the template reads only `allowed` variables.
    pub fn check_variables(&self, allowed: &[&str]) -> Result<(), TemplateError> {
        match self.variables().into_iter().find(|v| !allowed.contains(&v.as_str())) {
            None => Ok(()),
            Some(v) => Err(TemplateError {
                template: shorten(&self.source),
                what: format!("the variable `{v}` is not available (only {})", allowed.join(", ")),
            }),
        }
    }

    /// Evaluates the template. A template that is one `{{ … }}` and nothing else gives that
    /// expression's value; otherwise the rendered text.
    pub fn eval(&self, vars: &Vars<'_>) -> Result<Val, EvalError> {
        if let [Part::Expr(e)] = self.parts.as_slice() {
            let v = eval(e, vars, 0)?;
            if let Val::Undefined(what) = v {
                return Err(EvalError::Undefined(what));
            }
            return Ok(v);
        }
        self.render(vars).map(Val::Str)
    }

    /// Renders the template to text, as Jinja prints values.
    pub fn render(&self, vars: &Vars<'_>) -> Result<String, EvalError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Expr(e) => {
                    let v = eval(e, vars, 0)?;
                    out.push_str(&v.to_string());
                }
            }
            if out.len() > MAX_STRING {
                return Err(EvalError::Invalid(format!("the result is longer than {MAX_STRING} bytes")));
            }
        }
        Ok(out)
    }
}

fn push_text(parts: &mut Vec<Part>, text: &str, trim_start: bool, trim_end: bool) {
    let mut t = text;
    if trim_start {
        t = t.trim_start();
    }
    if trim_end {
        t = t.trim_end();
    }
    if !t.is_empty() {
        parts.push(Part::Text(t.to_owned()));
    }
}

fn collect_vars(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Lit(_) => {}
        Expr::Var(v) => out.push(v.clone()),
        Expr::Attr(a, _) | Expr::Neg(a) | Expr::Not(a) | Expr::Test(a, _, _) => collect_vars(a, out),
        Expr::Index(a, b) | Expr::Bin(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) => {
            collect_vars(a, out);
            collect_vars(b, out);
        }
        Expr::Filter(a, _, args) => {
            collect_vars(a, out);
            args.iter().for_each(|x| collect_vars(&x.value, out));
        }
        Expr::Call(_, args) => args.iter().for_each(|x| collect_vars(&x.value, out)),
        Expr::Cond(a, b, c) => {
            collect_vars(a, out);
            collect_vars(b, out);
            if let Some(c) = c {
                collect_vars(c, out);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Lexer
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    Float(f64),
    Str(String),
    Punct(&'static str),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Int(i) => format!("`{i}`"),
            Tok::Float(f) => format!("`{f}`"),
            Tok::Str(s) => format!("'{}'", shorten(s)),
            Tok::Punct(p) => format!("`{p}`"),
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    trim_after: bool,
}

const PUNCT: [&str; 23] = [
    "==", "!=", "<=", ">=", "//", "**", "<", ">", "+", "-", "*", "/", "%", "~", "|", ".", ",", "(", ")", "[", "]", "=",
    ":",
];

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Lexer<'a> {
        Lexer { src, pos: 0, trim_after: false }
    }

    /// Tokens up to the closing `}}` (or `-}}`), which is consumed.
    fn tokens_until_close(&mut self) -> Result<Vec<Tok>, String> {
        let mut out = Vec::new();
        loop {
            let rest = &self.src[self.pos..];
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            let rest = trimmed;
            if rest.is_empty() {
                return Err("an expression is not closed with }}".into());
            }
            if rest.starts_with("}}") {
                self.pos += 2;
                return Ok(out);
            }
            if rest.starts_with("-}}") {
                self.pos += 3;
                self.trim_after = true;
                return Ok(out);
            }
            if out.len() > 4096 {
                return Err("too many tokens in one expression".into());
            }
            let c = rest.chars().next().unwrap_or(' ');
            if c == '\'' || c == '"' {
                let (s, len) = string_literal(rest, c)?;
                out.push(Tok::Str(s));
                self.pos += len;
            } else if c.is_ascii_digit() {
                let len = rest
                    .char_indices()
                    .find(|(i, ch)| {
                        !(ch.is_ascii_digit()
                            || *ch == '_'
                            || (*ch == '.' && rest[i + 1..].starts_with(|d: char| d.is_ascii_digit())))
                    })
                    .map_or(rest.len(), |(i, _)| i);
                let text = rest[..len].replace('_', "");
                if text.contains('.') {
                    let f: f64 = text.parse().map_err(|_| format!("`{text}` is not a number"))?;
                    out.push(Tok::Float(f));
                } else {
                    match text.parse::<i64>() {
                        Ok(i) => out.push(Tok::Int(i)),
                        Err(_) => out.push(Tok::Float(text.parse().map_err(|_| format!("`{text}` is not a number"))?)),
                    }
                }
                self.pos += len;
            } else if c.is_alphabetic() || c == '_' {
                let len = rest.find(|ch: char| !(ch.is_alphanumeric() || ch == '_')).unwrap_or(rest.len());
                out.push(Tok::Ident(rest[..len].to_owned()));
                self.pos += len;
            } else if let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) {
                out.push(Tok::Punct(p));
                self.pos += p.len();
            } else {
                return Err(format!("the character `{c}` is not supported in an expression"));
            }
        }
    }
}

/// A quoted string at the start of `s` and its length in bytes, with `\n`, `\t`, `\\` and quote
/// escapes.
fn string_literal(s: &str, quote: char) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, other)) => out.push(other),
                None => break,
            },
            c if c == quote => return Ok((out, i + c.len_utf8())),
            c => out.push(c),
        }
    }
    Err("a string is not closed".into())
}

// ------------------------------------------------------------------------------------------------
// Parser
// ------------------------------------------------------------------------------------------------

struct Parser<'t> {
    tokens: &'t [Tok],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.tokens.get(self.pos + n)
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(q)) if q == w)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        let yes = self.is_punct(p);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let yes = self.is_word(w);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn expect_punct(&mut self, p: &str) -> Result<(), String> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(match self.peek() {
                Some(t) => format!("expected `{p}`, found {}", t.describe()),
                None => format!("expected `{p}` before the end of the expression"),
            })
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        match self.peek().cloned() {
            Some(Tok::Ident(s)) => {
                self.pos += 1;
                Ok(s)
            }
            Some(t) => Err(format!("expected a name, found {}", t.describe())),
            None => Err("expected a name before the end of the expression".into()),
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err(format!("nested deeper than {MAX_DEPTH} levels")) } else { Ok(()) }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        self.enter()?;
        let e = self.conditional();
        self.depth -= 1;
        e
    }

    fn conditional(&mut self) -> Result<Expr, String> {
        let then = self.or()?;
        if self.eat_word("if") {
            let cond = self.or()?;
            let otherwise = if self.eat_word("else") { Some(Box::new(self.expr()?)) } else { None };
            return Ok(Expr::Cond(Box::new(cond), Box::new(then), otherwise));
        }
        Ok(then)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat_word("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.eat_word("and") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.eat_word("not") {
            self.enter()?;
            let inner = self.not();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner?)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, String> {
        let mut left = self.concat()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Punct("==")) => BinOp::Eq,
                Some(Tok::Punct("!=")) => BinOp::Ne,
                Some(Tok::Punct("<")) => BinOp::Lt,
                Some(Tok::Punct("<=")) => BinOp::Le,
                Some(Tok::Punct(">")) => BinOp::Gt,
                Some(Tok::Punct(">=")) => BinOp::Ge,
                Some(Tok::Ident(w)) if w == "in" => BinOp::In,
                Some(Tok::Ident(w)) if w == "not" && matches!(self.peek_at(1), Some(Tok::Ident(x)) if x == "in") => {
                    self.pos += 1;
                    BinOp::NotIn
                }
                Some(Tok::Ident(w)) if w == "is" => {
                    self.pos += 1;
                    let negated = self.eat_word("not");
                    let name = self.ident()?;
                    let kind =
                        TestKind::named(&name).ok_or_else(|| format!("the test `is {name}` is not supported"))?;
                    if self.is_punct("(") {
                        return Err(format!("the test `is {name}(…)` with arguments is not supported"));
                    }
                    left = Expr::Test(Box::new(left), kind, negated);
                    continue;
                }
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.concat()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
    }

    fn concat(&mut self) -> Result<Expr, String> {
        let mut left = self.additive()?;
        while self.eat_punct("~") {
            left = Expr::Bin(BinOp::Concat, Box::new(left), Box::new(self.additive()?));
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Expr, String> {
        let mut left = self.multiplicative()?;
        loop {
            let op = if self.eat_punct("+") {
                BinOp::Add
            } else if self.eat_punct("-") {
                BinOp::Sub
            } else {
                return Ok(left);
            };
            left = Expr::Bin(op, Box::new(left), Box::new(self.multiplicative()?));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat_punct("*") {
                BinOp::Mul
            } else if self.eat_punct("//") {
                BinOp::FloorDiv
            } else if self.eat_punct("/") {
                BinOp::Div
            } else if self.eat_punct("%") {
                BinOp::Mod
            } else if self.is_punct("**") {
                return Err("the power operator `**` is not supported".into());
            } else {
                return Ok(left);
            };
            left = Expr::Bin(op, Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat_punct("-") {
            self.enter()?;
            let inner = self.unary();
            self.depth -= 1;
            return Ok(Expr::Neg(Box::new(inner?)));
        }
        if self.eat_punct("+") {
            self.enter()?;
            let inner = self.unary();
            self.depth -= 1;
            return inner;
        }
        self.filtered()
    }

    fn filtered(&mut self) -> Result<Expr, String> {
        let mut e = self.postfix()?;
        while self.eat_punct("|") {
            let name = self.ident()?;
            let filter = Filter::named(&name).ok_or_else(|| format!("the filter `{name}` is not supported"))?;
            let args = if self.is_punct("(") { self.args()? } else { Vec::new() };
            e = Expr::Filter(Box::new(e), filter, args);
        }
        Ok(e)
    }

    fn args(&mut self) -> Result<Vec<Arg>, String> {
        self.expect_punct("(")?;
        let mut args = Vec::new();
        if self.eat_punct(")") {
            return Ok(args);
        }
        loop {
            let name = match (self.peek(), self.peek_at(1)) {
                (Some(Tok::Ident(n)), Some(Tok::Punct("="))) => {
                    let n = n.clone();
                    self.pos += 2;
                    Some(n)
                }
                _ => None,
            };
            args.push(Arg { name, value: self.expr()? });
            if self.eat_punct(")") {
                return Ok(args);
            }
            self.expect_punct(",")?;
        }
    }

    fn postfix(&mut self) -> Result<Expr, String> {
        let mut e = self.primary()?;
        loop {
            if self.eat_punct(".") {
                let name = match self.peek().cloned() {
                    Some(Tok::Ident(s)) => s,
                    Some(Tok::Int(i)) => i.to_string(),
                    Some(t) => return Err(format!("expected a name after `.`, found {}", t.describe())),
                    None => return Err("expected a name after `.`".into()),
                };
                self.pos += 1;
                if self.is_punct("(") {
                    return Err(format!("method calls (`.{name}(…)`) are not supported"));
                }
                e = Expr::Attr(Box::new(e), name);
            } else if self.eat_punct("[") {
                if self.is_punct(":") {
                    return Err("slices are not supported".into());
                }
                let index = self.expr()?;
                if !self.is_punct("]") {
                    return Err("slices and other subscripts than `[key]` or `[0]` are not supported".into());
                }
                self.pos += 1;
                e = Expr::Index(Box::new(e), Box::new(index));
            } else if self.is_punct("(") {
                return Err("calling a value is not supported".into());
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let Some(tok) = self.peek().cloned() else { return Err("an expression is missing".into()) };
        self.pos += 1;
        Ok(match tok {
            Tok::Int(i) => Expr::Lit(Val::Int(i)),
            Tok::Float(f) => Expr::Lit(Val::Float(f)),
            Tok::Str(s) => Expr::Lit(Val::Str(s)),
            Tok::Punct("(") => {
                let e = self.expr()?;
                if self.is_punct(",") {
                    return Err("tuples are not supported".into());
                }
                self.expect_punct(")")?;
                e
            }
            Tok::Punct("[") => return Err("list literals are not supported".into()),
            Tok::Punct(p) => return Err(format!("unexpected `{p}`")),
            Tok::Ident(name) => match name.as_str() {
                "true" | "True" => Expr::Lit(Val::Bool(true)),
                "false" | "False" => Expr::Lit(Val::Bool(false)),
                "none" | "None" => Expr::Lit(Val::None),
                "and" | "or" | "not" | "if" | "else" | "is" | "in" => {
                    return Err(format!("unexpected `{name}`"));
                }
                _ if self.is_punct("(") => {
                    let func = match name.as_str() {
                        "float" => Func::Float,
                        "int" => Func::Int,
                        "bool" => Func::Bool,
                        _ => return Err(format!("the function `{name}()` is not supported")),
                    };
                    let args = self.args()?;
                    Expr::Call(func, args)
                }
                _ => Expr::Var(name),
            },
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Evaluation
// ------------------------------------------------------------------------------------------------

fn invalid(msg: String) -> EvalError {
    EvalError::Invalid(msg)
}

fn eval(e: &Expr, vars: &Vars<'_>, depth: usize) -> Result<Val, EvalError> {
    if depth > MAX_DEPTH * 2 {
        return Err(invalid("the template is nested too deeply".into()));
    }
    let d = depth + 1;
    match e {
        Expr::Lit(v) => Ok(v.clone()),
        Expr::Var(name) => Ok(match name.as_str() {
            "value" => vars.value.clone().unwrap_or_else(|| Val::Undefined("value".into())),
            "value_json" => match vars.value_json {
                Some(j) => Val::from_json(j),
                None => Val::Undefined("value_json (the payload is not JSON)".into()),
            },
            other => vars.extra.get(other).cloned().unwrap_or_else(|| Val::Undefined(other.to_owned())),
        }),
        Expr::Attr(..) | Expr::Index(..) => path(e, vars, d),
        Expr::Filter(inner, f, args) => {
            let v = eval(inner, vars, d)?;
            filter(*f, v, args, vars, d)
        }
        Expr::Call(f, args) => {
            let Some(first) = args.first() else { return Err(invalid("the function needs an argument".into())) };
            let v = eval(&first.value, vars, d)?;
            let rest = args.get(1..).unwrap_or(&[]);
            let filt = match f {
                Func::Float => Filter::Float,
                Func::Int => Filter::Int,
                Func::Bool => Filter::Bool,
            };
            filter(filt, v, rest, vars, d)
        }
        Expr::Neg(inner) => match eval(inner, vars, d)? {
            Val::Int(i) => Ok(i.checked_neg().map_or(Val::Float(-(i as f64)), Val::Int)),
            Val::Float(f) => Ok(Val::Float(-f)),
            other => Err(invalid(format!("cannot negate {}", other.kind()))),
        },
        Expr::Not(inner) => Ok(Val::Bool(!eval(inner, vars, d)?.truthy())),
        Expr::And(a, b) => {
            let l = eval(a, vars, d)?;
            if !l.truthy() { Ok(l) } else { eval(b, vars, d) }
        }
        Expr::Or(a, b) => {
            let l = eval(a, vars, d)?;
            if l.truthy() { Ok(l) } else { eval(b, vars, d) }
        }
        Expr::Bin(op, a, b) => {
            let l = eval(a, vars, d)?;
            let r = eval(b, vars, d)?;
            binary(*op, l, r)
        }
        Expr::Test(inner, kind, negated) => {
            let v = eval(inner, vars, d)?;
            let yes = match kind {
                TestKind::Defined => !matches!(v, Val::Undefined(_)),
                TestKind::Undefined => matches!(v, Val::Undefined(_)),
                TestKind::None => v == Val::None,
                TestKind::Number => matches!(v, Val::Int(_) | Val::Float(_)),
                TestKind::String => matches!(v, Val::Str(_)),
                TestKind::Boolean => matches!(v, Val::Bool(_)),
                TestKind::Mapping => matches!(v, Val::Json(Json::Object(_))),
                TestKind::Sequence => matches!(v, Val::Str(_) | Val::Json(_)),
                TestKind::Even => matches!(v, Val::Int(i) if i % 2 == 0),
                TestKind::Odd => matches!(v, Val::Int(i) if i % 2 != 0),
            };
            Ok(Val::Bool(yes != *negated))
        }
        Expr::Cond(cond, then, otherwise) => {
            if eval(cond, vars, d)?.truthy() {
                eval(then, vars, d)
            } else {
                match otherwise {
                    Some(o) => eval(o, vars, d),
                    None => Ok(Val::Undefined("the else branch".into())),
                }
            }
        }
    }
}

/// `a.b[0]['c']`: walks JSON by reference and copies only what it ends on.
fn path(e: &Expr, vars: &Vars<'_>, depth: usize) -> Result<Val, EvalError> {
    let mut keys: Vec<Key> = Vec::new();
    let mut cur = e;
    loop {
        match cur {
            Expr::Attr(inner, name) => {
                keys.push(Key::Attr(name.clone()));
                cur = inner;
            }
            Expr::Index(inner, index) => {
                keys.push(Key::Index(eval(index, vars, depth + 1)?));
                cur = inner;
            }
            _ => break,
        }
    }
    keys.reverse();
    let root_name = match cur {
        Expr::Var(n) => n.as_str(),
        _ => "",
    };
    let mut described = root_name.to_owned();
    if root_name == "value_json"
        && let Some(j) = vars.value_json
    {
        let mut node = j;
        for k in &keys {
            described.push_str(&k.describe());
            match lookup(node, k) {
                Some(next) => node = next,
                None => return Ok(Val::Undefined(described)),
            }
        }
        return Ok(Val::from_json(node));
    }
    let mut v = eval(cur, vars, depth + 1)?;
    for k in &keys {
        described.push_str(&k.describe());
        v = match v {
            Val::Undefined(what) => return Ok(Val::Undefined(what)),
            Val::Json(j) => match lookup(&j, k) {
                Some(next) => Val::from_json(next),
                None => return Ok(Val::Undefined(described)),
            },
            Val::Str(s) => match k {
                Key::Index(Val::Int(i)) => {
                    let n = s.chars().count() as i64;
                    let at = if *i < 0 { n + i } else { *i };
                    match s.chars().nth(usize::try_from(at).unwrap_or(usize::MAX)) {
                        Some(c) => Val::Str(c.to_string()),
                        None => return Ok(Val::Undefined(described)),
                    }
                }
                _ => return Ok(Val::Undefined(described)),
            },
            _ => return Ok(Val::Undefined(described)),
        };
    }
    Ok(v)
}

enum Key {
    Attr(String),
    Index(Val),
}

impl Key {
    fn describe(&self) -> String {
        match self {
            Key::Attr(a) => format!(".{a}"),
            Key::Index(Val::Str(s)) => format!("['{s}']"),
            Key::Index(v) => format!("[{v}]"),
        }
    }
}

fn lookup<'j>(node: &'j Json, key: &Key) -> Option<&'j Json> {
    match (node, key) {
        (Json::Object(o), Key::Attr(a)) => o.get(a),
        (Json::Object(o), Key::Index(Val::Str(s))) => o.get(s),
        (Json::Object(o), Key::Index(Val::Int(i))) => o.get(&i.to_string()),
        (Json::Array(a), Key::Index(Val::Int(i))) => {
            let len = a.len() as i64;
            let at = if *i < 0 { len.checked_add(*i)? } else { *i };
            a.get(usize::try_from(at).ok()?)
        }
        (Json::Array(a), Key::Attr(name)) => {
            let i: usize = name.parse().ok()?;
            a.get(i)
        }
        _ => None,
    }
}

fn arg<'a>(args: &'a [Arg], position: usize, name: &str) -> Option<&'a Expr> {
    args.iter()
        .find(|a| a.name.as_deref() == Some(name))
        .or_else(|| args.iter().filter(|a| a.name.is_none()).nth(position))
        .map(|a| &a.value)
}

fn to_float(v: &Val) -> Option<f64> {
    match v {
        Val::Int(i) => Some(*i as f64),
        Val::Float(f) => Some(*f),
        Val::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Val::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn to_int(v: &Val, base: u32) -> Option<i64> {
    match v {
        Val::Int(i) => Some(*i),
        Val::Float(f) if f.is_finite() => Some(f.trunc() as i64),
        Val::Bool(b) => Some(i64::from(*b)),
        Val::Str(s) => {
            let t = s.trim();
            let digits = match base {
                16 => t.trim_start_matches("0x").trim_start_matches("0X"),
                8 => t.trim_start_matches("0o"),
                2 => t.trim_start_matches("0b"),
                _ => t,
            };
            i64::from_str_radix(digits, base)
                .ok()
                .or_else(|| t.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| f.trunc() as i64))
        }
        _ => None,
    }
}

fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 { 2.0 * (x / 2.0).round() } else { r }
}

fn filter(f: Filter, v: Val, args: &[Arg], vars: &Vars<'_>, depth: usize) -> Result<Val, EvalError> {
    let get = |position: usize, name: &str| -> Result<Option<Val>, EvalError> {
        match arg(args, position, name) {
            Some(e) => eval(e, vars, depth + 1).map(Some),
            None => Ok(None),
        }
    };
    let fallback = |position: usize, what: String| -> Result<Val, EvalError> {
        match get(position, "default")? {
            Some(d) => Ok(d),
            None => Err(match &v {
                Val::Undefined(name) => EvalError::Undefined(name.clone()),
                _ => invalid(what),
            }),
        }
    };
    match f {
        Filter::Float => match to_float(&v) {
            Some(x) => Ok(Val::Float(x)),
            None => fallback(0, format!("float got {} `{v}`, which is not a number", v.kind())),
        },
        Filter::Int => {
            let base = match get(1, "base")? {
                Some(Val::Int(b)) if (2..=36).contains(&b) => b as u32,
                Some(other) => return Err(invalid(format!("int's base must be 2 to 36, not {other}"))),
                None => 10,
            };
            match to_int(&v, base) {
                Some(i) => Ok(Val::Int(i)),
                None => fallback(0, format!("int got {} `{v}`, which is not a number", v.kind())),
            }
        }
        Filter::Round => {
            let precision = match get(0, "precision")? {
                Some(Val::Int(p)) if (0..=15).contains(&p) => p as i32,
                Some(other) => return Err(invalid(format!("round's precision must be 0 to 15, not {other}"))),
                None => 0,
            };
            let method = match get(1, "method")? {
                Some(Val::Str(m)) => m,
                Some(other) => return Err(invalid(format!("round's method must be text, not {other}"))),
                None => "common".into(),
            };
            let Some(x) = to_float(&v) else {
                return fallback(2, format!("round got {} `{v}`, which is not a number", v.kind()));
            };
            let m = 10f64.powi(precision);
            let r = match method.as_str() {
                "common" => round_half_even(x * m) / m,
                "ceil" => (x * m).ceil() / m,
                "floor" => (x * m).floor() / m,
                "half" => (x * 2.0).round() / 2.0,
                other => return Err(invalid(format!("round's method `{other}` is not common, ceil, floor or half"))),
            };
            if precision == 0 && r.is_finite() { Ok(Val::Int(r as i64)) } else { Ok(Val::Float(r)) }
        }
        Filter::Lower => Ok(Val::Str(v.to_string().to_lowercase())),
        Filter::Upper => Ok(Val::Str(v.to_string().to_uppercase())),
        Filter::Trim => Ok(Val::Str(v.to_string().trim().to_owned())),
        Filter::String => Ok(Val::Str(v.to_string())),
        Filter::Default => {
            let boolean = matches!(get(1, "boolean")?, Some(b) if b.truthy());
            let missing = matches!(v, Val::Undefined(_)) || (boolean && !v.truthy());
            if missing { Ok(get(0, "default_value")?.unwrap_or(Val::Str(String::new()))) } else { Ok(v) }
        }
        Filter::IsDefined => match v {
            Val::Undefined(name) => Err(EvalError::Undefined(name)),
            other => Ok(other),
        },
        Filter::Abs => match v {
            Val::Int(i) => Ok(i.checked_abs().map_or(Val::Float((i as f64).abs()), Val::Int)),
            Val::Float(x) => Ok(Val::Float(x.abs())),
            other => Err(invalid(format!("abs got {} `{other}`", other.kind()))),
        },
        Filter::Bool => match &v {
            Val::Bool(b) => Ok(Val::Bool(*b)),
            Val::Int(i) => Ok(Val::Bool(*i != 0)),
            Val::Float(x) => Ok(Val::Bool(*x != 0.0)),
            Val::Str(s) => match s.trim().to_lowercase().as_str() {
                "true" | "on" | "yes" | "enable" | "1" => Ok(Val::Bool(true)),
                "false" | "off" | "no" | "disable" | "0" => Ok(Val::Bool(false)),
                _ => fallback(0, format!("bool got `{s}`, which is not a boolean")),
            },
            Val::None => Ok(Val::Bool(false)),
            _ => fallback(0, format!("bool got {} `{v}`", v.kind())),
        },
        Filter::Length => match &v {
            Val::Str(s) => Ok(Val::Int(s.chars().count() as i64)),
            Val::Json(Json::Array(a)) => Ok(Val::Int(a.len() as i64)),
            Val::Json(Json::Object(o)) => Ok(Val::Int(o.len() as i64)),
            other => Err(invalid(format!("length got {} `{other}`", other.kind()))),
        },
        Filter::Replace => {
            let (Some(Val::Str(old)), Some(Val::Str(new))) = (get(0, "old")?, get(1, "new")?) else {
                return Err(invalid("replace needs two texts: replace('old', 'new')".into()));
            };
            let s = v.to_string();
            if old.is_empty() {
                return Ok(Val::Str(s));
            }
            let out = s.replace(&old, &new);
            if out.len() > MAX_STRING {
                return Err(invalid(format!("the result is longer than {MAX_STRING} bytes")));
            }
            Ok(Val::Str(out))
        }
        Filter::Multiply => {
            let Some(factor) = get(0, "ratio")?.as_ref().and_then(to_float) else {
                return Err(invalid("multiply needs a number: multiply(10)".into()));
            };
            match to_float(&v) {
                Some(x) => Ok(Val::Float(x * factor)),
                None => fallback(1, format!("multiply got {} `{v}`, which is not a number", v.kind())),
            }
        }
        Filter::ToJson => Ok(Val::Str(v.to_json().to_string())),
    }
}

fn num_op(op: BinOp, a: &Val, b: &Val) -> Option<Result<Val, EvalError>> {
    if let (Val::Int(x), Val::Int(y)) = (a, b) {
        let (x, y) = (*x, *y);
        let r = match op {
            BinOp::Add => x.checked_add(y).map(Val::Int),
            BinOp::Sub => x.checked_sub(y).map(Val::Int),
            BinOp::Mul => x.checked_mul(y).map(Val::Int),
            BinOp::Div => {
                return Some(if y == 0 {
                    Err(invalid("division by zero".into()))
                } else {
                    Ok(Val::Float(x as f64 / y as f64))
                });
            }
            BinOp::FloorDiv => {
                return Some(if y == 0 {
                    Err(invalid("division by zero".into()))
                } else {
                    // Python floors toward negative infinity.
                    Ok(match (x.checked_div(y), x.checked_rem(y)) {
                        (Some(q), Some(r)) => Val::Int(if r != 0 && ((r < 0) != (y < 0)) { q - 1 } else { q }),
                        _ => Val::Float((x as f64 / y as f64).floor()),
                    })
                });
            }
            BinOp::Mod => {
                return Some(if y == 0 {
                    Err(invalid("modulo by zero".into()))
                } else {
                    // Python's remainder takes the divisor's sign.
                    Ok(match x.checked_rem(y) {
                        Some(r) => Val::Int(if r != 0 && ((r < 0) != (y < 0)) { r + y } else { r }),
                        None => Val::Int(0),
                    })
                });
            }
            _ => return None,
        };
        return Some(Ok(r.unwrap_or_else(|| {
            let (fx, fy) = (x as f64, y as f64);
            Val::Float(match op {
                BinOp::Add => fx + fy,
                BinOp::Sub => fx - fy,
                _ => fx * fy,
            })
        })));
    }
    let (x, y) = (a.as_f64()?, b.as_f64()?);
    Some(match op {
        BinOp::Add => Ok(Val::Float(x + y)),
        BinOp::Sub => Ok(Val::Float(x - y)),
        BinOp::Mul => Ok(Val::Float(x * y)),
        BinOp::Div | BinOp::FloorDiv | BinOp::Mod if y == 0.0 => Err(invalid("division by zero".into())),
        BinOp::Div => Ok(Val::Float(x / y)),
        BinOp::FloorDiv => Ok(Val::Float((x / y).floor())),
        BinOp::Mod => Ok(Val::Float(x - y * (x / y).floor())),
        _ => return None,
    })
}

fn equal(a: &Val, b: &Val) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => match (a, b) {
            (Val::Bool(x), Val::Bool(y)) => x == y,
            (Val::Str(x), Val::Str(y)) => x == y,
            (Val::None, Val::None) => true,
            (Val::Undefined(_), Val::Undefined(_)) => true,
            (Val::Json(x), Val::Json(y)) => x == y,
            _ => false,
        },
    }
}

fn binary(op: BinOp, a: Val, b: Val) -> Result<Val, EvalError> {
    let undefined = |v: &Val| match v {
        Val::Undefined(n) => Some(EvalError::Undefined(n.clone())),
        _ => None,
    };
    match op {
        BinOp::Eq => return Ok(Val::Bool(equal(&a, &b))),
        BinOp::Ne => return Ok(Val::Bool(!equal(&a, &b))),
        BinOp::Concat => {
            let s = format!("{a}{b}");
            if s.len() > MAX_STRING {
                return Err(invalid(format!("the result is longer than {MAX_STRING} bytes")));
            }
            return Ok(Val::Str(s));
        }
        BinOp::In | BinOp::NotIn => {
            let found = match &b {
                Val::Str(hay) => match &a {
                    Val::Str(needle) => hay.contains(needle.as_str()),
                    other => return Err(invalid(format!("`in` text needs text on the left, not {}", other.kind()))),
                },
                Val::Json(Json::Array(items)) => items.iter().any(|i| equal(&Val::from_json(i), &a)),
                Val::Json(Json::Object(o)) => match &a {
                    Val::Str(k) => o.contains_key(k),
                    _ => false,
                },
                other => {
                    if let Some(e) = undefined(other) {
                        return Err(e);
                    }
                    return Err(invalid(format!("`in` needs text, a list or an object, not {}", other.kind())));
                }
            };
            return Ok(Val::Bool(found == (op == BinOp::In)));
        }
        _ => {}
    }
    if let Some(e) = undefined(&a).or_else(|| undefined(&b)) {
        return Err(e);
    }
    if let Some(r) = num_op(op, &a, &b) {
        return r;
    }
    match (op, &a, &b) {
        (BinOp::Add, Val::Str(x), Val::Str(y)) => {
            if x.len() + y.len() > MAX_STRING {
                return Err(invalid(format!("the result is longer than {MAX_STRING} bytes")));
            }
            Ok(Val::Str(format!("{x}{y}")))
        }
        (BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge, _, _) => {
            let ord = match (&a, &b) {
                (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
                _ => match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => x.partial_cmp(&y),
                    _ => None,
                },
            };
            let Some(ord) = ord else {
                return Err(invalid(format!("cannot compare {} `{a}` with {} `{b}`", a.kind(), b.kind())));
            };
            use std::cmp::Ordering::*;
            Ok(Val::Bool(match op {
                BinOp::Lt => ord == Less,
                BinOp::Le => ord != Greater,
                BinOp::Gt => ord == Greater,
                _ => ord != Less,
            }))
        }
        _ => Err(invalid(format!("cannot combine {} `{a}` and {} `{b}`", a.kind(), b.kind()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, payload: &str) -> Result<String, String> {
        let tpl = Template::parse(t).map_err(|e| e.to_string())?;
        let json: Option<Json> = serde_json::from_str(payload).ok();
        tpl.eval(&Vars::payload(payload, json.as_ref())).map(|v| v.to_string()).map_err(|e| e.to_string())
    }

    #[test]
    fn what_real_devices_send() {
        let cases = [
            ("{{ value }}", "21.5", "21.5"),
            ("{{ value_json.temperature }}", r#"{"temperature": 21.5}"#, "21.5"),
            (r#"{{ value_json["temperature"] }}"#, r#"{"temperature": 21.5}"#, "21.5"),
            ("{{ value_json['state_left'] }}", r#"{"state_left": "ON"}"#, "ON"),
            ("{{value_json.POWER1}}", r#"{"POWER1":"OFF"}"#, "OFF"),
            ("{{value_json['AM2301']['Temperature']}}", r#"{"AM2301":{"Temperature":19.8}}"#, "19.8"),
            ("{{ value_json.a.b }}", r#"{"a":{"b":3}}"#, "3"),
            ("{{ value_json.list[0] }}", r#"{"list":[7,8]}"#, "7"),
            ("{{ value_json.list[-1] }}", r#"{"list":[7,8]}"#, "8"),
            ("{{ value | float }}", "21", "21.0"),
            ("{{ value | int }}", "21.7", "21"),
            ("{{ value_json.t | float / 10 }}", r#"{"t": 215}"#, "21.5"),
            ("{{ (value | float * 1.8 + 32) | round(1) }}", "20", "68.0"),
            ("{{ value | round }}", "2.5", "2"),
            ("{{ value | round(2) }}", "1.23456", "1.23"),
            ("{{ value_json.state | lower }}", r#"{"state": "ON"}"#, "on"),
            ("{{ value | upper }}", "on", "ON"),
            ("{{ value_json.x | default(5) }}", "{}", "5"),
            ("{{ value_json.x | default('none') }}", r#"{"x": 1}"#, "1"),
            ("{{ value_json.x is defined }}", "{}", "False"),
            ("{{ value_json.x is not defined }}", "{}", "True"),
            ("{{ value_json.state | is_defined }}", r#"{"state": "ON"}"#, "ON"),
            ("{{ 'ON' if value_json.on else 'OFF' }}", r#"{"on": true}"#, "ON"),
            ("{{ 'ON' if value_json.on else 'OFF' }}", r#"{"on": false}"#, "OFF"),
            ("{{ value_json.v > 3 }}", r#"{"v": 4}"#, "True"),
            ("{{ value == 'online' }}", "online", "True"),
            ("{{ value_json.contact }}", r#"{"contact": false}"#, "False"),
            ("{{ value_json.n }}", r#"{"n": null}"#, "None"),
            ("{{ float(value) }}", "3", "3.0"),
            ("{{ float(value, 0) }}", "x", "0"),
            ("{{ value | float(0) }}", "x", "0"),
            ("{{ value | float(default=1) }}", "x", "1"),
            ("{{ 'a' ~ value ~ 'b' }}", "x", "axb"),
            ("{{ value_json.a and value_json.b }}", r#"{"a":1,"b":2}"#, "2"),
            ("{{ 'x' in value }}", "abxd", "True"),
            ("{{ value | replace(',', '.') | float }}", "1,5", "1.5"),
            ("{{ value | multiply(10) }}", "2", "20.0"),
            ("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }}", "", "3 -4 1 2"),
            ("{{- value -}}", "x", "x"),
        ];
        for (t, payload, expected) in cases {
            assert_eq!(run(t, payload), Ok(expected.to_owned()), "{t} with {payload}");
        }
    }

    #[test]
    fn literal_text_around_expressions_is_kept() {
        assert_eq!(run("{\"state\": \"{{ value }}\"}", "ON"), Ok(r#"{"state": "ON"}"#.into()));
        assert_eq!(run("{{ value }}°C {# unit #}", "21"), Ok("21°C ".into()));
        assert_eq!(run("  {{- value }}  x  ", "1"), Ok("1  x  ".into()));
        assert_eq!(run("no template", "1"), Ok("no template".into()));
        assert_eq!(run("", "1"), Ok(String::new()));
        assert_eq!(run("{\"a\": {\"b\": 1}}", "1"), Ok("{\"a\": {\"b\": 1}}".into()));
    }

    #[test]
    fn a_single_expression_keeps_its_type() {
        let t = Template::parse("{{ value_json.v }}").unwrap();
        let j = json!({"v": 2});
        assert_eq!(t.eval(&Vars::payload("", Some(&j))), Ok(Val::Int(2)));
        let j = json!({"v": {"a": 1}});
        assert_eq!(t.eval(&Vars::payload("", Some(&j))), Ok(Val::Json(json!({"a": 1}))));
        let t = Template::parse("{{ value }}").unwrap();
        assert_eq!(t.eval(&Vars::command(Val::Float(2.5))), Ok(Val::Float(2.5)));
    }

    #[test]
    fn missing_keys_are_undefined_not_errors_of_the_payload() {
        assert_eq!(run("{{ value_json.x }}", "{}"), Err("value_json.x is undefined".into()));
        assert_eq!(run("{{ value_json.a.b.c }}", r#"{"a": 1}"#), Err("value_json.a.b is undefined".into()));
        assert_eq!(
            run("{{ value_json.x }}", "not json"),
            Err("value_json (the payload is not JSON) is undefined".into())
        );
        assert!(matches!(
            Template::parse("{{ value_json.x | float }}").unwrap().eval(&Vars::payload("{}", Some(&json!({})))),
            Err(EvalError::Undefined(_))
        ));
        assert!(matches!(
            Template::parse("{{ value | float }}").unwrap().eval(&Vars::payload("on", None)),
            Err(EvalError::Invalid(_))
        ));
    }

    #[test]
    fn anything_else_is_unsupported_and_says_what() {
        let cases = [
            ("{% if value_json.White %}white{% else %}rgb{% endif %}", "statements ({% if … %}) are not supported"),
            ("{{value_json.Color.split(',')[0:3]|join(',')}}", "method calls (`.split(…)`) are not supported"),
            ("{{ value | regex_findall('a') }}", "the filter `regex_findall` is not supported"),
            ("{{ states('sensor.x') }}", "the function `states()` is not supported"),
            ("{{ value_json.a[0:2] }}", "slices and other subscripts than `[key]` or `[0]` are not supported"),
            ("{{ [1, 2] }}", "list literals are not supported"),
            ("{{ value ", "an expression is not closed with }}"),
            ("{{ 'abc }}", "a string is not closed"),
            ("{{ value is divisibleby 3 }}", "the test `is divisibleby` is not supported"),
            ("{{ 2 ** 3 }}", "the power operator `**` is not supported"),
            ("{{ }}", "an expression is missing"),
            ("{{ value value }}", "unexpected `value` in an expression"),
        ];
        for (t, what) in cases {
            let e = Template::parse(t).err().unwrap_or_else(|| panic!("{t} parsed"));
            assert_eq!(e.template, t);
            assert!(e.what.contains(what) || e.what == what, "{t}: {}", e.what);
        }
        let e = Template::parse("{{ this.state }}").unwrap().check_variables(&["value", "value_json"]).unwrap_err();
        assert_eq!(e.what, "the variable `this` is not available (only value, value_json)");
    }

    #[test]
    fn zigbee2mqtts_event_template_is_refused_not_misread() {
        let t = "{% set patterns = [\n{\"pattern\": '^(?P<button>(?:button_)?[a-z0-9]+)_(?P<action>(?:press|hold)(?:_release)?)$', \"groups\": [\"button\", \"action\"]}\n] %}\n{% set action_value = value_json.action|default('') %}\n{{dict.from_keys(ns.r)|to_json}}";
        let e = Template::parse(t).unwrap_err();
        assert!(e.what.starts_with("statements"), "{}", e.what);
    }

    #[test]
    fn numbers_print_as_jinja_prints_them() {
        assert_eq!(Val::Float(21.0).to_string(), "21.0");
        assert_eq!(Val::Float(0.1).to_string(), "0.1");
        assert_eq!(Val::Float(f64::INFINITY).to_string(), "inf");
        assert_eq!(Val::Int(-3).to_string(), "-3");
        assert_eq!(Val::Bool(true).to_string(), "True");
        assert_eq!(Val::None.to_string(), "None");
        assert_eq!(Val::number(2.0), Val::Int(2));
        assert_eq!(Val::number(2.5), Val::Float(2.5));
    }

    #[test]
    fn arithmetic_never_panics_at_the_edges() {
        for t in [
            "{{ 9223372036854775807 + 1 }}",
            "{{ -9223372036854775807 - 10 }}",
            "{{ 9223372036854775807 * 9223372036854775807 }}",
            "{{ 1 / 0 }}",
            "{{ 1 // 0 }}",
            "{{ 1 % 0 }}",
            "{{ 1.5 % 0 }}",
            "{{ -(-9223372036854775807 - 1) }}",
            "{{ (-9223372036854775807 - 1) // -1 }}",
            "{{ (-9223372036854775807 - 1) % -1 }}",
            "{{ (-9223372036854775807 - 1) | abs }}",
            "{{ 1e308 | float * 10 }}",
            "{{ 99999999999999999999999 }}",
            "{{ value | round(15) }}",
            "{{ value | int(base=16) }}",
            "{{ 'x' * 3 }}",
            "{{ value_json[value_json] }}",
            "{{ value[100] }}",
        ] {
            if let Ok(tpl) = Template::parse(t) {
                let j = json!({"a": 1});
                let _ = tpl.eval(&Vars::payload("ff", Some(&j)));
            }
        }
    }

    /// Arbitrary strings, biased toward template syntax: parsing and evaluating never panic.
    #[test]
    fn arbitrary_input_never_panics() {
        const ALPHABET: &[&str] = &[
            "{{",
            "}}",
            "{%",
            "%}",
            "{#",
            "#}",
            "-",
            "|",
            ".",
            "[",
            "]",
            "(",
            ")",
            "'",
            "\"",
            "\\",
            "value",
            "value_json",
            "float",
            "int",
            "round",
            "default",
            "is",
            "not",
            "defined",
            "if",
            "else",
            "and",
            "or",
            "in",
            "0",
            "1",
            "-1",
            "2.5",
            "a",
            "x",
            " ",
            "~",
            "+",
            "*",
            "/",
            "//",
            "%",
            "==",
            "<",
            ">=",
            ",",
            "=",
            "é",
            "\n",
            "none",
            "true",
            "is_defined",
            "lower",
            "9223372036854775807",
            ":",
            "}",
            "{",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let payloads = [json!({"a": {"b": [1, 2]}, "x": "1", "value": 3}), json!([1, "a"]), json!(null)];
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let mut s = String::new();
            for _ in 0..len {
                s.push_str(ALPHABET[(next() % ALPHABET.len() as u64) as usize]);
            }
            if let Ok(t) = Template::parse(&s) {
                for p in &payloads {
                    let _ = t.eval(&Vars::payload("2", Some(p)));
                    let _ = t.render(&Vars::payload("x", None));
                }
            }
        }
        // Deep nesting is refused, not a stack overflow.
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(Template::parse(&deep).is_err());
        let deep = format!("{{{{ {}1 }}}}", "-".repeat(10_000));
        assert!(Template::parse(&deep).is_err());
        let deep = format!("{{{{ {}1 }}}}", "not ".repeat(10_000));
        assert!(Template::parse(&deep).is_err());
        let long = "x".repeat(MAX_TEMPLATE + 1);
        assert!(Template::parse(&long).is_err());
    }
}
