//! The readable text form of automations and scenes (YAML), for import, export and the UI's
//! code view.
//!
//! Writing: block style, keys in the model's order, durations and times as people write them
//! (`for: 2m`, `delay: 30s`, `at: '07:30'`), text of several lines as a literal block (`|`).
//! A string that some YAML reader would take for something else is quoted: `'true'`, `'1.5'`,
//! and also what YAML 1.1 readers such as PyYAML misread (`'07:30'` would be a number of
//! seconds there, `'on'` a boolean), so the text means the same in every tool.
//!
//! Reading: YAML 1.2 (core schema) becomes a tree that keeps the line and column of every node,
//! and the tree is deserialized as the JSON form would be: the same keys, defaults and
//! refusals, so the text form accepts exactly what the API accepts. Errors give the line and
//! column, and for a value that does not fit the model the path of the field
//! (`triggers[0].state.for: `soon` is not a duration: ...`). Also refused: tags other than the
//! standard ones (`!secret`, `!include` and the like mean nothing here), duplicate keys,
//! infinite and not-a-number values (JSON has none), nesting deeper than [`MAX_DEPTH`] and
//! aliases that expand to more than [`MAX_ALIAS_NODES`] nodes. Anchors, aliases and merge keys
//! (`<<: *common`) work as in other YAML tools.
//!
//! Many automations or scenes are exported as a stream of YAML documents, each starting with
//! `---`; reading takes such a stream, one document, or a document holding a list.

use std::collections::HashMap;
use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, Unexpected, Visitor};
use serde::ser::{self, Serialize};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::model::{ActionKind, Automation, Scene, TriggerKind};

/// The deepest nesting of lists and mappings read; each level of actions nested in `if`,
/// `choose` or `repeat` takes three or four.
pub const MAX_DEPTH: usize = 64;

/// The most nodes that aliases (`*name`) may copy in one text, against alias bombs.
pub const MAX_ALIAS_NODES: usize = 100_000;

/// Why a text could not be read as automations or scenes; lines and columns count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// The text is not YAML, or uses YAML this reader refuses (a tag, a duplicate key ...).
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// The line.
        line: usize,
        /// The column, in characters.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The text is YAML but not an automation or scene: the value at `path` does not fit.
    #[error("line {line}, column {column}: {}{message}", path_prefix(.path))]
    Invalid {
        /// The line where the value (or the offending key) starts.
        line: usize,
        /// The column, in characters.
        column: usize,
        /// The field, as `triggers[0].state.for`; empty for the whole document.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl TextError {
    /// The line and column the error points at.
    pub fn position(&self) -> (usize, usize) {
        match self {
            TextError::Syntax { line, column, .. } | TextError::Invalid { line, column, .. } => (*line, *column),
        }
    }
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() { String::new() } else { format!("{path}: ") }
}

/// The YAML text of an automation.
pub fn automation_to_yaml(a: &Automation) -> String {
    to_yaml(a)
}

/// The YAML text of a scene.
pub fn scene_to_yaml(s: &Scene) -> String {
    to_yaml(s)
}

/// Many items (automations or scenes) as one stream of YAML documents, each starting with
/// `---`; empty for no items. [`automations_from_yaml`] and [`scenes_from_yaml`] read it back.
///
/// A value that YAML cannot hold (a map whose keys are lists, a failing `Serialize`) becomes a
/// document holding only a comment that says why; automations and scenes never do.
pub fn to_yaml_documents<T: Serialize>(items: &[T]) -> String {
    items.iter().map(|item| format!("---\n{}", to_yaml(item))).collect()
}

/// Reads one automation: a text of exactly one document holding a mapping.
pub fn automation_from_yaml(text: &str) -> Result<Automation, TextError> {
    read_one(text, &AUTOMATION)
}

/// Reads one scene: a text of exactly one document holding a mapping.
pub fn scene_from_yaml(text: &str) -> Result<Scene, TextError> {
    read_one(text, &SCENE)
}

/// Reads automations from one document, a document holding a list, or a stream of documents
/// (each a mapping or a list); empty documents are skipped. Paths in errors start at the
/// document, with the index in its list first (`[2].triggers[0]`).
pub fn automations_from_yaml(text: &str) -> Result<Vec<Automation>, TextError> {
    read_many(text, &AUTOMATION)
}

/// Reads scenes as [`automations_from_yaml`] reads automations.
pub fn scenes_from_yaml(text: &str) -> Result<Vec<Scene>, TextError> {
    read_many(text, &SCENE)
}

// ---------------------------------------------------------------------------------------------
// The tree both directions go through.

/// A position in the text, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    const START: Pos = Pos { line: 1, column: 1 };

    fn of(mark: Marker) -> Pos {
        Pos { line: mark.line(), column: mark.col() + 1 }
    }
}

#[derive(Debug, Clone)]
struct Node {
    /// Where it starts (a mapping: at its first key); unused when writing.
    pos: Pos,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in the order of the text (or of serialization).
    Map(Vec<Entry>),
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    key_pos: Pos,
    value: Node,
}

impl Node {
    fn new(kind: Kind) -> Node {
        Node { pos: Pos::default(), kind }
    }

    /// How many nodes this one is, itself included.
    fn size(&self) -> usize {
        1 + match &self.kind {
            Kind::Seq(items) => items.iter().map(Node::size).sum(),
            Kind::Map(entries) => entries.iter().map(|e| e.value.size()).sum(),
            _ => 0,
        }
    }

    /// Words for what this node is, for errors.
    fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Null => "nothing",
            Kind::Bool(_) => "true or false",
            Kind::Int(_) | Kind::Float(_) => "a number",
            Kind::Str(_) => "text",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// One step of a path: a key of a mapping (or the kind of a trigger, action ...) or an index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    fn key(&self) -> Option<&str> {
        match self {
            Seg::Key(k) => Some(k),
            Seg::Index(_) => None,
        }
    }
}

fn format_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Reading YAML into the tree.

fn syntax(pos: Pos, message: impl Into<String>) -> TextError {
    TextError::Syntax { line: pos.line, column: pos.column, message: message.into() }
}

fn invalid(pos: Pos, path: &[Seg], message: impl Into<String>) -> TextError {
    TextError::Invalid { line: pos.line, column: pos.column, path: format_path(path), message: message.into() }
}

/// The documents of a YAML stream; an empty document is a [`Kind::Null`].
fn read_stream(text: &str) -> Result<Vec<Node>, TextError> {
    // A byte order mark, as some editors write, is no part of the text.
    let mut parser = Parser::new_from_str(text.strip_prefix('\u{feff}').unwrap_or(text));
    let mut builder = Builder::default();
    loop {
        let (event, mark) = parser.next_token().map_err(|e| syntax(Pos::of(*e.marker()), e.info()))?;
        let pos = Pos::of(mark);
        match event {
            Event::StreamEnd => return Ok(builder.docs),
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
            // Anchors belong to their document.
            Event::DocumentStart => builder.anchors.clear(),
            Event::Alias(id) => builder.alias(id, pos)?,
            Event::Scalar(value, style, anchor, tag) => builder.scalar(value, style, anchor, tag.as_ref(), pos)?,
            Event::SequenceStart(anchor, tag) => builder.open(false, anchor, tag.as_ref(), pos)?,
            Event::MappingStart(anchor, tag) => builder.open(true, anchor, tag.as_ref(), pos)?,
            Event::SequenceEnd | Event::MappingEnd => builder.close()?,
        }
    }
}

#[derive(Default)]
struct Builder {
    docs: Vec<Node>,
    /// The lists and mappings being read, innermost last.
    stack: Vec<Frame>,
    /// Anchored nodes of this document by the parser's anchor id.
    anchors: HashMap<usize, Node>,
    /// Nodes copied by aliases so far.
    alias_nodes: usize,
}

struct Frame {
    pos: Pos,
    anchor: usize,
    body: Body,
}

enum Body {
    Seq(Vec<Node>),
    Map {
        entries: Vec<Entry>,
        /// The key read, waiting for its value.
        key: Option<(String, Pos)>,
        /// Where each key was first seen.
        seen: HashMap<String, Pos>,
    },
}

const CORE_TAG: &str = "tag:yaml.org,2002:";

fn tag_name(tag: &Tag) -> String {
    if tag.handle == CORE_TAG { format!("!!{}", tag.suffix) } else { format!("{}{}", tag.handle, tag.suffix) }
}

fn unsupported_tag(tag: &Tag, pos: Pos) -> TextError {
    syntax(pos, format!("the tag `{}` is not supported here; write the value itself", tag_name(tag)))
}

impl Builder {
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame { body: Body::Map { key: None, .. }, .. }))
    }

    fn open(&mut self, map: bool, anchor: usize, tag: Option<&Tag>, pos: Pos) -> Result<(), TextError> {
        if self.expecting_key() {
            return Err(syntax(pos, "a key must be text, not a list or a mapping"));
        }
        if let Some(tag) = tag {
            let wanted = if map { "map" } else { "seq" };
            if tag.handle != CORE_TAG || tag.suffix != wanted {
                return Err(unsupported_tag(tag, pos));
            }
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(syntax(pos, format!("lists and mappings are nested deeper than {MAX_DEPTH} levels")));
        }
        let body = if map {
            Body::Map { entries: Vec::new(), key: None, seen: HashMap::new() }
        } else {
            Body::Seq(Vec::new())
        };
        self.stack.push(Frame { pos, anchor, body });
        Ok(())
    }

    fn close(&mut self) -> Result<(), TextError> {
        let Some(frame) = self.stack.pop() else { return Ok(()) };
        let node = match frame.body {
            Body::Seq(items) => Node { pos: frame.pos, kind: Kind::Seq(items) },
            // The parser marks a block mapping after its first key; its first key is clearer.
            Body::Map { entries, .. } => {
                let pos = entries.first().map_or(frame.pos, |e| e.key_pos);
                Node { pos, kind: Kind::Map(merge(entries)?) }
            }
        };
        self.finish(node, frame.anchor)
    }

    fn alias(&mut self, id: usize, pos: Pos) -> Result<(), TextError> {
        if self.expecting_key() {
            return Err(syntax(pos, "an alias cannot be a key"));
        }
        let Some(node) = self.anchors.get(&id) else {
            return Err(syntax(pos, "this alias names no anchor of this document"));
        };
        self.alias_nodes += node.size();
        if self.alias_nodes > MAX_ALIAS_NODES {
            return Err(syntax(pos, format!("aliases copy more than {MAX_ALIAS_NODES} nodes")));
        }
        let node = Node { pos, kind: node.kind.clone() };
        self.add(node)
    }

    fn scalar(
        &mut self,
        value: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        pos: Pos,
    ) -> Result<(), TextError> {
        if self.expecting_key() {
            // Keys are text as written, whatever they look like (`1: x` has the key "1").
            if let Some(tag) = tag
                && !(tag.handle == CORE_TAG && tag.suffix == "str")
            {
                return Err(unsupported_tag(tag, pos));
            }
            if anchor > 0 {
                self.anchors.insert(anchor, Node { pos, kind: Kind::Str(value.clone()) });
            }
            if let Some(Frame { body: Body::Map { key, seen, .. }, .. }) = self.stack.last_mut() {
                if let Some(first) = seen.get(&value) {
                    return Err(syntax(
                        pos,
                        format!("the key `{value}` is given twice (first on line {})", first.line),
                    ));
                }
                seen.insert(value.clone(), pos);
                *key = Some((value, pos));
            }
            return Ok(());
        }
        let kind = match tag {
            None if style == TScalarStyle::Plain => resolve_plain(&value).map_err(|m| syntax(pos, m))?,
            None => Kind::Str(value),
            Some(tag) if tag.handle == "!" && tag.suffix.is_empty() => Kind::Str(value),
            Some(tag) if tag.handle == CORE_TAG => {
                let kind = match tag.suffix.as_str() {
                    "str" => Some(Kind::Str(value.clone())),
                    "null" => matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL").then_some(Kind::Null),
                    "bool" => match resolve_plain(&value) {
                        Ok(Kind::Bool(b)) => Some(Kind::Bool(b)),
                        _ => None,
                    },
                    "int" => parse_int(&value).map(Kind::Int),
                    "float" => match resolve_plain(&value).map_err(|m| syntax(pos, m))? {
                        Kind::Int(i) => Some(Kind::Float(i as f64)),
                        Kind::Float(f) => Some(Kind::Float(f)),
                        _ => None,
                    },
                    _ => return Err(unsupported_tag(tag, pos)),
                };
                kind.ok_or_else(|| syntax(pos, format!("`{value}` is not a valid {}", tag_name(tag))))?
            }
            Some(tag) => return Err(unsupported_tag(tag, pos)),
        };
        self.finish(Node { pos, kind }, anchor)
    }

    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), TextError> {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        self.add(node)
    }

    fn add(&mut self, node: Node) -> Result<(), TextError> {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame { body: Body::Seq(items), .. }) => items.push(node),
            Some(Frame { body: Body::Map { entries, key, .. }, .. }) => match key.take() {
                Some((key, key_pos)) => entries.push(Entry { key, key_pos, value: node }),
                // Keys arrive through `scalar`, so this is a list or mapping as a key.
                None => return Err(syntax(node.pos, "a key must be text, not a list or a mapping")),
            },
        }
        Ok(())
    }
}

/// Applies a merge key (`<<: *defaults`, or a list of such): the merged mappings' entries join
/// the mapping's own, which win, as do earlier merged mappings over later ones.
fn merge(entries: Vec<Entry>) -> Result<Vec<Entry>, TextError> {
    let Some(at) = entries.iter().position(|e| e.key == "<<") else { return Ok(entries) };
    let mut own = entries;
    let merged = own.remove(at);
    let sources = match merged.value.kind {
        Kind::Map(m) => vec![m],
        Kind::Seq(items) => items
            .into_iter()
            .map(|item| match item.kind {
                Kind::Map(m) => Ok(m),
                _ => Err(syntax(item.pos, "`<<` merges mappings only")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(syntax(merged.value.pos, "`<<` merges a mapping or a list of mappings")),
    };
    for entry in sources.into_iter().flatten() {
        if !own.iter().any(|e| e.key == entry.key) {
            own.push(entry);
        }
    }
    Ok(own)
}

/// A plain scalar by the YAML 1.2 core schema: null, true/false, an integer (also `0x1f`,
/// `0o17`), a float, or else text.
fn resolve_plain(s: &str) -> Result<Kind, String> {
    Ok(match s {
        "" | "~" | "null" | "Null" | "NULL" => Kind::Null,
        "true" | "True" | "TRUE" => Kind::Bool(true),
        "false" | "False" | "FALSE" => Kind::Bool(false),
        _ => {
            if let Some(i) = parse_int(s) {
                Kind::Int(i)
            } else if let Some(f) = parse_float(s)? {
                Kind::Float(f)
            } else {
                Kind::Str(s.to_owned())
            }
        }
    })
}

fn all_digits(s: &str, radix: u32) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_digit(radix))
}

fn parse_int(s: &str) -> Option<i128> {
    if let Some(hex) = s.strip_prefix("0x") {
        return all_digits(hex, 16).then(|| i128::from_str_radix(hex, 16).ok()).flatten();
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return all_digits(oct, 8).then(|| i128::from_str_radix(oct, 8).ok()).flatten();
    }
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    // Too large for an i128: a float, as in JSON.
    all_digits(digits, 10).then(|| s.parse().ok()).flatten()
}

/// `Ok(None)` when `s` is not a float of the core schema; infinities and NaN are errors, since
/// JSON, and so the model, has none.
fn parse_float(s: &str) -> Result<Option<f64>, String> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if matches!(body, ".inf" | ".Inf" | ".INF") || matches!(s, ".nan" | ".NaN" | ".NAN") {
        return Err(format!("`{s}` is not allowed: numbers must be finite"));
    }
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => (int.is_empty() || all_digits(int, 10)) && (frac.is_empty() || all_digits(frac, 10)),
        None => all_digits(mantissa, 10),
    } && mantissa.chars().any(|c| c.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| all_digits(e.strip_prefix(['+', '-']).unwrap_or(e), 10));
    if !(mantissa_ok && exponent_ok) {
        return Ok(None);
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Some(f)),
        _ => Err(format!("`{s}` is too large a number")),
    }
}

// ---------------------------------------------------------------------------------------------
// From the tree to the model, with the path and position of each fault.

/// What is being read, for the words of errors.
struct What {
    /// `an automation`.
    one: &'static str,
    /// `automations`.
    many: &'static str,
    /// Whether it holds triggers and actions, whose faults need a second look (see `refine`).
    parts: bool,
}

const AUTOMATION: What = What { one: "an automation", many: "automations", parts: true };
const SCENE: What = What { one: "a scene", many: "scenes", parts: false };

fn read_one<T: DeserializeOwned>(text: &str, what: &What) -> Result<T, TextError> {
    let docs = read_stream(text)?;
    let mut docs = docs.iter().filter(|d| !matches!(d.kind, Kind::Null));
    let Some(doc) = docs.next() else {
        return Err(invalid(Pos::START, &[], format!("the text holds no document; expected {}", what.one)));
    };
    if let Some(extra) = docs.next() {
        return Err(invalid(extra.pos, &[], format!("expected {} alone, found a second document", what.one)));
    }
    if !matches!(doc.kind, Kind::Map(_)) {
        return Err(invalid(doc.pos, &[], format!("expected {} (a mapping), found {}", what.one, doc.describe())));
    }
    from_node(doc, &[], what)
}

fn read_many<T: DeserializeOwned>(text: &str, what: &What) -> Result<Vec<T>, TextError> {
    let mut out = Vec::new();
    for doc in read_stream(text)? {
        match &doc.kind {
            Kind::Null => {}
            Kind::Map(_) => out.push(from_node(&doc, &[], what)?),
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    out.push(from_node(item, &[Seg::Index(i)], what)?);
                }
            }
            _ => {
                return Err(invalid(
                    doc.pos,
                    &[],
                    format!("expected {} or a list of {}, found {}", what.one, what.many, doc.describe()),
                ));
            }
        }
    }
    Ok(out)
}

fn from_node<T: DeserializeOwned>(node: &Node, prefix: &[Seg], what: &What) -> Result<T, TextError> {
    T::deserialize(De(node)).map_err(|e| {
        let mut fault = e.into_fault(node.pos);
        if what.parts {
            fault = refine(node, fault);
        }
        let path: Vec<Seg> = prefix.iter().cloned().chain(fault.path).collect();
        invalid(fault.pos, &path, fault.message)
    })
}

/// Where deserialization failed and why.
#[derive(Debug)]
struct Fault {
    path: Vec<Seg>,
    pos: Pos,
    message: String,
}

/// The error of deserializing from the tree. On its way out each level adds its step to the
/// path, and the innermost level that knows a position sets it.
#[derive(Debug)]
struct DeError {
    message: String,
    pos: Option<Pos>,
    /// The path, innermost step first.
    rev_path: Vec<Seg>,
}

impl DeError {
    /// The error came out of the node at `pos`, reached from its parent by `step`.
    fn within(mut self, pos: Pos, step: Option<&Seg>) -> DeError {
        self.pos.get_or_insert(pos);
        if let Some(step) = step {
            self.rev_path.push(step.clone());
        }
        self
    }

    fn into_fault(self, pos: Pos) -> Fault {
        let mut path = self.rev_path;
        path.reverse();
        Fault { path, pos: self.pos.unwrap_or(pos), message: self.message }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError { message: msg.to_string(), pos: None, rev_path: Vec::new() }
    }
}

/// The model reads a trigger or action key by key and stops at the first fault, so with several
/// kind keys the fault may lie inside the first kind; and its words for no kind or several are
/// not this reader's. So the outermost trigger or action on the fault's path that has several
/// kind keys, or no key at all besides `id` or `alias`, is looked at again as its kind alone,
/// and the fault is reported there: `expected one key naming the kind, found `a`, `b``. A
/// wait's triggers are read the same way, but have no `id`. Which parts are triggers and
/// actions follows model.rs (and the paths that lead to them).
fn refine(root: &Node, fault: Fault) -> Fault {
    for end in 0..=fault.path.len() {
        let path = &fault.path[..end];
        let Some(node) = lookup(root, path) else { break };
        if let Some(found) = refine_at(path, node) {
            let path = path.iter().cloned().chain(found.path).collect();
            return Fault { path, pos: found.pos, message: found.message };
        }
    }
    fault
}

fn lookup<'a>(mut node: &'a Node, path: &[Seg]) -> Option<&'a Node> {
    for seg in path {
        node = match (&node.kind, seg) {
            (Kind::Seq(items), Seg::Index(i)) => items.get(*i)?,
            (Kind::Map(entries), Seg::Key(k)) => &entries.iter().find(|e| &e.key == k)?.value,
            _ => return None,
        };
    }
    Some(node)
}

/// The fault of `node`, at `path`, when it is a trigger or action with several kind keys or
/// with no key besides its own; an unknown key is left to the model's "unknown field" fault.
fn refine_at(path: &[Seg], node: &Node) -> Option<Fault> {
    let Kind::Map(entries) = &node.kind else { return None };
    let step = |back: usize| path.len().checked_sub(back).and_then(|i| path.get(i));
    let key = |back: usize| step(back).and_then(Seg::key);
    let index = |back: usize| matches!(step(back), Some(Seg::Index(_)));
    let kinds_only = |own: Option<&str>, names: &[&str]| -> Option<Node> {
        let kinds: Vec<Entry> = entries.iter().filter(|e| names.contains(&e.key.as_str())).cloned().collect();
        let bare = entries.iter().all(|e| Some(e.key.as_str()) == own);
        (kinds.len() > 1 || bare).then_some(Node { pos: node.pos, kind: Kind::Map(kinds) })
    };
    if index(1) && key(2) == Some("triggers") {
        let own = if key(3) == Some("wait") { None } else { Some("id") };
        probe::<TriggerKind>(&kinds_only(own, TriggerKind::NAMES)?)
    } else if index(1)
        && (matches!(key(2), Some("actions" | "then" | "else" | "default")) || (index(2) && key(3) == Some("parallel")))
    {
        probe::<ActionKind>(&kinds_only(Some("alias"), ActionKind::NAMES)?)
    } else {
        None
    }
}

fn probe<T: DeserializeOwned>(node: &Node) -> Option<Fault> {
    T::deserialize(De(node)).err().map(|e| e.into_fault(node.pos))
}

fn unexpected(node: &Node) -> Unexpected<'_> {
    match &node.kind {
        Kind::Null => Unexpected::Unit,
        Kind::Bool(b) => Unexpected::Bool(*b),
        Kind::Int(i) => match (u64::try_from(*i), i64::try_from(*i)) {
            (Ok(u), _) => Unexpected::Unsigned(u),
            (_, Ok(s)) => Unexpected::Signed(s),
            _ => Unexpected::Other("a very large integer"),
        },
        Kind::Float(f) => Unexpected::Float(*f),
        Kind::Str(s) => Unexpected::Str(s),
        Kind::Seq(_) => Unexpected::Seq,
        Kind::Map(_) => Unexpected::Map,
    }
}

/// Deserializes a node as `serde_json::Value`'s deserializer would its JSON counterpart.
#[derive(Clone, Copy)]
struct De<'a>(&'a Node);

impl<'de> Deserializer<'de> for De<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.0.kind {
            Kind::Null => visitor.visit_unit(),
            Kind::Bool(b) => visitor.visit_bool(*b),
            Kind::Int(i) => match (u64::try_from(*i), i64::try_from(*i)) {
                (Ok(u), _) => visitor.visit_u64(u),
                (_, Ok(s)) => visitor.visit_i64(s),
                _ => visitor.visit_i128(*i),
            },
            Kind::Float(f) => visitor.visit_f64(*f),
            Kind::Str(s) => visitor.visit_borrowed_str(s),
            Kind::Seq(items) => {
                let mut access = SeqAccess { items: items.iter().enumerate() };
                let value = visitor.visit_seq(&mut access)?;
                match access.items.len() {
                    0 => Ok(value),
                    _ => Err(de::Error::invalid_length(items.len(), &"fewer elements in the list")),
                }
            }
            Kind::Map(entries) => {
                let mut access = MapAccess { entries: entries.iter(), current: None };
                let value = visitor.visit_map(&mut access)?;
                match access.entries.len() {
                    0 => Ok(value),
                    _ => Err(de::Error::invalid_length(entries.len(), &"fewer entries in the mapping")),
                }
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0.kind {
            Kind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.0.kind {
            Kind::Str(s) => visitor.visit_enum(BorrowedStrDeserializer::new(s)),
            Kind::Map(entries) => match entries.as_slice() {
                [entry] => visitor.visit_enum(EnumAccess(entry)),
                [] => Err(de::Error::custom("expected one key naming the kind, found none")),
                _ => {
                    let keys: Vec<String> = entries.iter().map(|e| format!("`{}`", e.key)).collect();
                    Err(de::Error::custom(format!("expected one key naming the kind, found {}", keys.join(", "))))
                }
            },
            _ => Err(de::Error::invalid_type(unexpected(self.0), &"a name or a mapping with a single key")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier
    }
}

struct SeqAccess<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        let Some((i, item)) = self.items.next() else { return Ok(None) };
        seed.deserialize(De(item)).map(Some).map_err(|e| e.within(item.pos, Some(&Seg::Index(i))))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAccess<'a> {
    entries: std::slice::Iter<'a, Entry>,
    current: Option<&'a Entry>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else { return Ok(None) };
        self.current = Some(entry);
        seed.deserialize(BorrowedStrDeserializer::<DeError>::new(&entry.key))
            .map(Some)
            .map_err(|e| e.within(entry.key_pos, Some(&Seg::Key(entry.key.clone()))))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.current.take() else {
            return Err(de::Error::custom("a value was asked for before its key"));
        };
        seed.deserialize(De(&entry.value)).map_err(|e| e.within(entry.value.pos, Some(&Seg::Key(entry.key.clone()))))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An enum written as a mapping with one key: the variant, and its content as the value.
struct EnumAccess<'a>(&'a Entry);

impl<'de> de::EnumAccess<'de> for EnumAccess<'de> {
    type Error = DeError;
    type Variant = VariantAccess<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, VariantAccess<'de>), DeError> {
        let entry = self.0;
        let variant = seed
            .deserialize(BorrowedStrDeserializer::<DeError>::new(&entry.key))
            .map_err(|e| e.within(entry.key_pos, Some(&Seg::Key(entry.key.clone()))))?;
        Ok((variant, VariantAccess(entry)))
    }
}

struct VariantAccess<'a>(&'a Entry);

impl VariantAccess<'_> {
    fn stamp(&self, e: DeError) -> DeError {
        e.within(self.0.value.pos, Some(&Seg::Key(self.0.key.clone())))
    }
}

impl<'de> de::VariantAccess<'de> for VariantAccess<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.0.value.kind {
            Kind::Null => Ok(()),
            _ => {
                Err(self.stamp(de::Error::invalid_type(unexpected(&self.0.value), &"nothing (a kind without fields)")))
            }
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(De(&self.0.value)).map_err(|e| self.stamp(e))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        De(&self.0.value).deserialize_seq(visitor).map_err(|e| self.stamp(e))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        De(&self.0.value).deserialize_map(visitor).map_err(|e| self.stamp(e))
    }
}

// ---------------------------------------------------------------------------------------------
// From the model to the tree.

#[derive(Debug)]
struct SerError(String);

impl fmt::Display for SerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SerError {}

impl ser::Error for SerError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerError(msg.to_string())
    }
}

/// Serializes into a [`Node`], as `serde_json::to_value` would into a JSON value, but keeping
/// the order of fields.
struct NodeSer;

fn entry(key: String, value: Node) -> Entry {
    Entry { key, key_pos: Pos::default(), value }
}

/// The text of a mapping key; like JSON, numbers and booleans are allowed and become text.
fn key_text(key: Node) -> Result<String, SerError> {
    match key.kind {
        Kind::Str(s) => Ok(s),
        Kind::Bool(b) => Ok(b.to_string()),
        Kind::Int(i) => Ok(i.to_string()),
        Kind::Float(f) => Ok(format_float(f)),
        _ => Err(SerError(format!("a mapping key must be text, not {}", key.describe()))),
    }
}

impl ser::Serializer for NodeSer {
    type Ok = Node;
    type Error = SerError;
    type SerializeSeq = SeqSer;
    type SerializeTuple = SeqSer;
    type SerializeTupleStruct = SeqSer;
    type SerializeTupleVariant = VariantSer<SeqSer>;
    type SerializeMap = MapSer;
    type SerializeStruct = MapSer;
    type SerializeStructVariant = VariantSer<MapSer>;

    fn serialize_bool(self, v: bool) -> Result<Node, SerError> {
        Ok(Node::new(Kind::Bool(v)))
    }
    fn serialize_i8(self, v: i8) -> Result<Node, SerError> {
        self.serialize_i128(i128::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Node, SerError> {
        self.serialize_i128(i128::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Node, SerError> {
        self.serialize_i128(i128::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Node, SerError> {
        self.serialize_i128(i128::from(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Node, SerError> {
        Ok(Node::new(Kind::Int(v)))
    }
    fn serialize_u8(self, v: u8) -> Result<Node, SerError> {
        self.serialize_i128(i128::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Node, SerError> {
        self.serialize_i128(i128::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Node, SerError> {
        self.serialize_i128(i128::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Node, SerError> {
        self.serialize_i128(i128::from(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Node, SerError> {
        i128::try_from(v).map(|v| Node::new(Kind::Int(v))).map_err(|_| SerError(format!("{v} is too large")))
    }
    fn serialize_f32(self, v: f32) -> Result<Node, SerError> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Node, SerError> {
        Ok(Node::new(Kind::Float(v)))
    }
    fn serialize_char(self, v: char) -> Result<Node, SerError> {
        Ok(Node::new(Kind::Str(v.to_string())))
    }
    fn serialize_str(self, v: &str) -> Result<Node, SerError> {
        Ok(Node::new(Kind::Str(v.to_owned())))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Node, SerError> {
        Ok(Node::new(Kind::Seq(v.iter().map(|b| Node::new(Kind::Int(i128::from(*b)))).collect())))
    }
    fn serialize_none(self) -> Result<Node, SerError> {
        Ok(Node::new(Kind::Null))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Node, SerError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Node, SerError> {
        Ok(Node::new(Kind::Null))
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Node, SerError> {
        Ok(Node::new(Kind::Null))
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<Node, SerError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result<Node, SerError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Node, SerError> {
        Ok(Node::new(Kind::Map(vec![entry(variant.to_owned(), value.serialize(NodeSer)?)])))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqSer, SerError> {
        Ok(SeqSer(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqSer, SerError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<SeqSer, SerError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantSer<SeqSer>, SerError> {
        Ok(VariantSer { variant, inner: SeqSer(Vec::with_capacity(len)) })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapSer, SerError> {
        Ok(MapSer { entries: Vec::with_capacity(len.unwrap_or(0)), key: None })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapSer, SerError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantSer<MapSer>, SerError> {
        Ok(VariantSer { variant, inner: MapSer { entries: Vec::with_capacity(len), key: None } })
    }
}

struct SeqSer(Vec<Node>);

impl ser::SerializeSeq for SeqSer {
    type Ok = Node;
    type Error = SerError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        self.0.push(value.serialize(NodeSer)?);
        Ok(())
    }

    fn end(self) -> Result<Node, SerError> {
        Ok(Node::new(Kind::Seq(self.0)))
    }
}

impl ser::SerializeTuple for SeqSer {
    type Ok = Node;
    type Error = SerError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<Node, SerError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for SeqSer {
    type Ok = Node;
    type Error = SerError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<Node, SerError> {
        ser::SerializeSeq::end(self)
    }
}

struct MapSer {
    entries: Vec<Entry>,
    key: Option<String>,
}

impl ser::SerializeMap for MapSer {
    type Ok = Node;
    type Error = SerError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), SerError> {
        self.key = Some(key_text(key.serialize(NodeSer)?)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        let key = self.key.take().ok_or_else(|| SerError("a mapping value came before its key".into()))?;
        self.entries.push(entry(key, value.serialize(NodeSer)?));
        Ok(())
    }

    fn end(self) -> Result<Node, SerError> {
        Ok(Node::new(Kind::Map(self.entries)))
    }
}

impl ser::SerializeStruct for MapSer {
    type Ok = Node;
    type Error = SerError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), SerError> {
        self.entries.push(entry(key.to_owned(), value.serialize(NodeSer)?));
        Ok(())
    }

    fn end(self) -> Result<Node, SerError> {
        ser::SerializeMap::end(self)
    }
}

/// A tuple or struct variant: a mapping from the variant's name to its content.
struct VariantSer<S> {
    variant: &'static str,
    inner: S,
}

impl<S> VariantSer<S> {
    fn wrap(variant: &'static str, content: Node) -> Node {
        Node::new(Kind::Map(vec![entry(variant.to_owned(), content)]))
    }
}

impl ser::SerializeTupleVariant for VariantSer<SeqSer> {
    type Ok = Node;
    type Error = SerError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        ser::SerializeSeq::serialize_element(&mut self.inner, value)
    }

    fn end(self) -> Result<Node, SerError> {
        Ok(Self::wrap(self.variant, ser::SerializeSeq::end(self.inner)?))
    }
}

impl ser::SerializeStructVariant for VariantSer<MapSer> {
    type Ok = Node;
    type Error = SerError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), SerError> {
        ser::SerializeStruct::serialize_field(&mut self.inner, key, value)
    }

    fn end(self) -> Result<Node, SerError> {
        Ok(Self::wrap(self.variant, ser::SerializeMap::end(self.inner)?))
    }
}

// ---------------------------------------------------------------------------------------------
// Writing the tree as YAML.

fn to_yaml<T: Serialize + ?Sized>(value: &T) -> String {
    match value.serialize(NodeSer) {
        Ok(node) => {
            let mut out = String::new();
            write_value(&mut out, &node, 0, Place::Top);
            out
        }
        Err(e) => format!("# this value cannot be written as YAML: {e}\n"),
    }
}

/// Where a value is written: alone as the document, after `key:`, or after `- `.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Top,
    Key,
    Dash,
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Writes `node`, whose key or dash (if any) is at column `indent`, and ends the line.
fn write_value(out: &mut String, node: &Node, indent: usize, place: Place) {
    let space = if place == Place::Top { "" } else { " " };
    match &node.kind {
        Kind::Map(entries) if !entries.is_empty() => match place {
            Place::Top => write_map(out, entries, 0, false),
            Place::Key => {
                out.push('\n');
                write_map(out, entries, indent + 2, false);
            }
            Place::Dash => {
                out.push(' ');
                write_map(out, entries, indent + 2, true);
            }
        },
        Kind::Seq(items) if !items.is_empty() && flow_list(items).is_none() => match place {
            Place::Top => write_seq(out, items, 0, false),
            Place::Key => {
                out.push('\n');
                write_seq(out, items, indent + 2, false);
            }
            Place::Dash => {
                out.push(' ');
                write_seq(out, items, indent + 2, true);
            }
        },
        Kind::Seq(items) => {
            out.push_str(space);
            out.push_str(&flow_list(items).unwrap_or_else(|| "[]".to_owned()));
            out.push('\n');
        }
        Kind::Map(_) => {
            out.push_str(space);
            out.push_str("{}\n");
        }
        Kind::Str(s) if literal_ok(s) => {
            out.push_str(space);
            write_literal(out, s, indent + 2);
        }
        _ => {
            out.push_str(space);
            out.push_str(&scalar(node, false));
            out.push('\n');
        }
    }
}

fn write_map(out: &mut String, entries: &[Entry], indent: usize, first_inline: bool) {
    for (i, e) in entries.iter().enumerate() {
        if i > 0 || !first_inline {
            pad(out, indent);
        }
        let key = string(&e.key, false);
        // An implicit key is at most 1024 characters; a longer one needs the explicit form.
        if key.chars().count() > 1000 {
            out.push_str("? ");
            out.push_str(&key);
            out.push('\n');
            pad(out, indent);
        } else {
            out.push_str(&key);
        }
        out.push(':');
        write_value(out, &e.value, indent, Place::Key);
    }
}

fn write_seq(out: &mut String, items: &[Node], indent: usize, first_inline: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !first_inline {
            pad(out, indent);
        }
        out.push('-');
        write_value(out, item, indent, Place::Dash);
    }
}

/// A short list of plain scalars on one line (`[mon, fri]`), else `None`.
fn flow_list(items: &[Node]) -> Option<String> {
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        match &item.kind {
            Kind::Str(s) if plain_ok(s, true) => parts.push(s.clone()),
            Kind::Null | Kind::Bool(_) | Kind::Int(_) | Kind::Float(_) => parts.push(scalar(item, true)),
            _ => return None,
        }
    }
    let line = format!("[{}]", parts.join(", "));
    (line.len() <= 60).then_some(line)
}

fn scalar(node: &Node, flow: bool) -> String {
    match &node.kind {
        Kind::Null => "null".to_owned(),
        Kind::Bool(b) => b.to_string(),
        Kind::Int(i) => i.to_string(),
        Kind::Float(f) => format_float(*f),
        Kind::Str(s) => string(s, flow),
        // Collections are written by `write_value`.
        Kind::Seq(_) => "[]".to_owned(),
        Kind::Map(_) => "{}".to_owned(),
    }
}

/// A float that reads back as a float, in every YAML reader: `60.0`, `1.0e+300`.
fn format_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf".to_owned() } else { "-.inf".to_owned() };
    }
    let text = format!("{f:?}");
    match text.split_once('e') {
        Some((mantissa, exponent)) => {
            let dot = if mantissa.contains('.') { "" } else { ".0" };
            let sign = if exponent.starts_with('-') { "" } else { "+" };
            format!("{mantissa}{dot}e{sign}{exponent}")
        }
        None => text,
    }
}

/// Characters that only a double-quoted scalar can hold (as escapes).
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

/// A string as a plain, single-quoted or double-quoted scalar.
fn string(s: &str, flow: bool) -> String {
    if plain_ok(s, flow) {
        s.to_owned()
    } else if !s.chars().any(needs_escape) {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        double_quoted(s)
    }
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if needs_escape(c) && u32::from(c) <= 0xff => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if needs_escape(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `s` can be written without quotes and read back as the same text, by YAML 1.2 and
/// 1.1 readers alike.
fn plain_ok(s: &str, flow: bool) -> bool {
    let Some(first) = s.chars().next() else { return false };
    !("-?:,[]{}#&*!|>'\"%@`<=~ ".contains(first)
        || s.starts_with("...")
        || s.ends_with([' ', ':'])
        || s.contains(": ")
        || s.contains(" #")
        || s.chars().any(needs_escape)
        || (flow && s.contains([',', '[', ']', '{', '}', ':', '#']))
        || !matches!(resolve_plain(s), Ok(Kind::Str(_)))
        || means_else_in_yaml_1_1(s))
}

/// Whether a YAML 1.1 reader (PyYAML, older tools) would take `s` for a boolean, null, number
/// (`07:30` is 450 there) or date.
fn means_else_in_yaml_1_1(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    if matches!(lower.as_str(), "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null") {
        return true;
    }
    let body = lower.strip_prefix(['+', '-']).unwrap_or(&lower);
    let number = body.bytes().any(|b| b.is_ascii_digit())
        && body.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':'));
    let radix = body.len() > 2 && ["0b", "0x", "0o"].iter().any(|p| body.starts_with(p));
    let date =
        body.len() >= 5 && body.bytes().take(4).all(|b| b.is_ascii_digit()) && body.as_bytes().get(4) == Some(&b'-');
    number || radix || date
}

/// Whether `s` is written as a literal block: it has several lines, nothing that needs an
/// escape, and a first line of text that does not start with a space (a literal block takes
/// its indentation from it).
fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.chars().any(|c| c != '\n' && needs_escape(c))
        && s.trim_end_matches('\n').split('\n').find(|l| !l.is_empty()).is_some_and(|l| !l.starts_with(' '))
}

/// A literal block whose lines are at column `indent`; keeps the exact trailing line breaks.
fn write_literal(out: &mut String, s: &str, indent: usize) {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    out.push('|');
    out.push_str(match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    });
    out.push('\n');
    for line in body.split('\n') {
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
    for _ in 1..trailing {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sdk::Value;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn motion_light() -> Automation {
        serde_json::from_value(crate::model::motion_light_json()).unwrap()
    }

    /// The "every kind" example of model.rs.
    fn everything() -> Automation {
        serde_json::from_value(crate::model::everything_json()).unwrap()
    }

    fn evening() -> Scene {
        serde_json::from_value(json!({"id": "evening", "name": "Evening", "devices": {
            "demo:living_lamp": {"brightness": 30.0, "state": true, "color": {"hue": 30.0, "saturation": 80.0}},
            "demo:living_ceiling": {"state": false}}}))
        .unwrap()
    }

    fn invalid_at(e: TextError) -> (usize, usize, String, String) {
        match e {
            TextError::Invalid { line, column, path, message } => (line, column, path, message),
            other => panic!("expected an invalid value, got {other:?}"),
        }
    }

    #[test]
    fn every_kind_round_trips() {
        for a in [motion_light(), everything()] {
            let text = automation_to_yaml(&a);
            let back = automation_from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, a, "{text}");
        }
        // Windows line breaks and a byte order mark are read as well.
        let text = format!("\u{feff}{}", automation_to_yaml(&everything()).replace('\n', "\r\n"));
        assert_eq!(automation_from_yaml(&text).unwrap(), everything());
        let text = scene_to_yaml(&evening());
        assert_eq!(scene_from_yaml(&text).unwrap(), evening(), "{text}");
    }

    #[test]
    fn the_text_reads_as_people_write_it() {
        let text = automation_to_yaml(&motion_light());
        assert_eq!(
            text,
            "\
id: hall_motion_light
name: Hall light on motion
enabled: true
mode: restart
max_runs: 10
triggers:
  - id: motion
    state:
      devices:
        - demo:hall_motion
      feature: occupancy
      to: true
  - id: quiet
    state:
      devices:
        - demo:hall_motion
      feature: occupancy
      to: false
      for: 2m
conditions:
  - or:
      - sun:
          below: -0.833
      - time:
          after: '22:00'
          before: '06:30'
actions:
  - choose:
      options:
        - conditions:
            - trigger:
                id: motion
          actions:
            - set:
                area: hallway
                capability: on_off
                values:
                  brightness: 60.0
                  state: true
                transition: 1.0
      default:
        - alias: lights off
          set:
            area: hallway
            capability: on_off
            values:
              state: false
"
        );
        let text = automation_to_yaml(&everything());
        for line in [
            "  - delay: 30s\n",
            "      at: '07:30'\n",
            "      weekdays: [mon, fri]\n",
            "      payload: '1'\n",
            "  - start: {}\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        assert!(text.contains("  - parallel:\n      - - mqtt:\n            topic: hearth/echo\n"), "{text}");
    }

    #[test]
    fn yaml_reads_as_its_json_form_would() {
        // Written by hand: flow style, comments, unquoted times, a bare number of seconds.
        let text = "\
# Hall light
id: hall_motion_light
name: Hall light on motion
mode: restart
triggers:
  - {id: motion, state: {devices: [demo:hall_motion], feature: occupancy, to: true}}
  - id: quiet
    state:
      devices: [demo:hall_motion]
      feature: occupancy
      to: false
      for: 120          # seconds
conditions:
  - or:
    - sun: {below: -0.833}
    - time: {after: 22:00, before: \"06:30\"}
actions:
  - choose:
      options:
        - conditions: [trigger: {id: motion}]
          actions:
            - set: {area: hallway, capability: on_off, values: {state: true, brightness: 60}, transition: 1}
      default:
        - alias: lights off
          set:
            area: hallway
            capability: on_off
            values: {state: false}
";
        assert_eq!(automation_from_yaml(text).unwrap(), motion_light());
    }

    #[test]
    fn a_syntax_error_reports_line_and_column() {
        let e =
            automation_from_yaml("id: x\nname: X\ntriggers: [\n  {interval: {every: 5m}\nactions: []\n").unwrap_err();
        let TextError::Syntax { line, column, message } = &e else { panic!("{e:?}") };
        assert_eq!((*line, *column), (5, 1), "{e}");
        assert!(!message.is_empty());
        assert_eq!(e.to_string(), format!("line 5, column 1: {message}"));

        let e = automation_from_yaml("id: x\n  name: X\n").unwrap_err();
        assert_eq!(e.position(), (2, 7), "{e}");
        let e = automation_from_yaml("name: \"unclosed\n").unwrap_err();
        // An unclosed quote is reported where it opens.
        assert_eq!(e.to_string(), "line 1, column 7: while scanning a quoted scalar, found unexpected end of stream");
    }

    #[test]
    fn a_wrong_type_reports_the_field_path() {
        let text = "\
id: x
name: X
triggers:
  - id: late
    state:
      devices: [demo:door]
      feature: contact
      for: soon
actions: []
";
        let e = automation_from_yaml(text).unwrap_err();
        let (line, column, path, message) = invalid_at(e.clone());
        assert_eq!((line, column, path.as_str()), (8, 12, "triggers[0].state.for"));
        assert!(message.starts_with("`soon` is not a duration"), "{message}");
        assert!(e.to_string().starts_with("line 8, column 12: triggers[0].state.for: `soon` is not a duration"), "{e}");

        // Deeper, through actions, branches, targets and `not`.
        for (text, want_path, want_line) in [
            ("max_runs: many", "max_runs", 2),
            (
                "actions: [{if: {conditions: [], then: [{delay: 30s}, {alias: a, delay: soon}]}}]",
                "actions[0].if.then[1].delay",
                2,
            ),
            (
                "actions: [{parallel: [[], [{mqtt: {topic: t, payload: p, retain: maybe}}]]}]",
                "actions[0].parallel[1][0].mqtt.retain",
                2,
            ),
            (
                "actions: [{repeat: {actions: [{set: {devices: a:b, capability: on_off}}]}}]",
                "actions[0].repeat.actions[0].set.devices",
                2,
            ),
            ("conditions:\n  - not:\n      state: {area: [x], feature: f}", "conditions[0].not.state.area", 4),
            ("triggers:\n  - telepathy: {}", "triggers[0].telepathy", 3),
            ("triggers:\n  - id: nothing", "triggers[0]", 3),
            ("actions: [{wait: {triggers: [{time: {at: '25:00'}}]}}]", "actions[0].wait.triggers[0].time.at", 2),
        ] {
            let mut doc = format!("id: x\n{text}\n");
            for (key, empty) in [("name", "X"), ("triggers", "[]"), ("actions", "[]")] {
                if !text.contains(&format!("{key}:")) {
                    doc.push_str(&format!("{key}: {empty}\n"));
                }
            }
            let (line, _, path, message) = invalid_at(automation_from_yaml(&doc).unwrap_err());
            assert_eq!((path.as_str(), line), (want_path, want_line), "{message}\n{doc}");
        }
    }

    #[test]
    fn a_part_without_one_kind_says_so() {
        let e = automation_from_yaml("id: x\nname: X\ntriggers:\n  - id: a\nactions: []\n").unwrap_err();
        assert_eq!(e.to_string(), "line 4, column 5: triggers[0]: expected one key naming the kind, found none");
        let text = "id: x\nname: X\ntriggers: []\nactions:\n  - alias: a\n    delay: soon\n    stop: {reason: late}\n    notify: {}\n";
        let e = automation_from_yaml(text).unwrap_err();
        let (line, _, path, message) = invalid_at(e);
        assert_eq!((line, path.as_str()), (5, "actions[0]"));
        assert_eq!(message, "expected one key naming the kind, found `delay`, `stop`, `notify`");
    }

    #[test]
    fn an_unknown_key_reports_its_name() {
        let e = automation_from_yaml("id: x\nname: X\ntriggers: []\nactions: []\ncolour: red\n").unwrap_err();
        let (line, column, path, message) = invalid_at(e);
        assert_eq!((line, column, path.as_str()), (5, 1, "colour"));
        assert!(message.starts_with("unknown field `colour`, expected one of"), "{message}");

        let e = automation_from_yaml("id: x\nname: X\ntriggers: []\nactions:\n  - choose:\n      options:\n        - {conditions: [], actions: [], otherwise: []}\n").unwrap_err();
        let (line, _, path, message) = invalid_at(e);
        assert_eq!((line, path.as_str()), (7, "actions[0].choose.options[0].otherwise"), "{message}");

        let e = scene_from_yaml("id: s\nname: S\ndevices: {}\nlights: []\n").unwrap_err();
        assert_eq!(invalid_at(e).2, "lights");
        let e = automation_from_yaml("id: x\nname: X\n").unwrap_err();
        assert_eq!(invalid_at(e).3, "missing field `triggers`");
    }

    #[test]
    fn a_multi_automation_export_reads_back() {
        let all = vec![motion_light(), everything(), motion_light()];
        let text = to_yaml_documents(&all);
        assert_eq!(text.matches("---\n").count(), 3);
        assert_eq!(automations_from_yaml(&text).unwrap(), all);
        assert_eq!(to_yaml_documents::<Automation>(&[]), "");
        assert_eq!(automations_from_yaml("").unwrap(), vec![]);
        assert_eq!(automations_from_yaml("# nothing yet\n---\n").unwrap(), vec![]);

        // One document, or a list, or lists in a stream.
        assert_eq!(automations_from_yaml(&automation_to_yaml(&everything())).unwrap(), vec![everything()]);
        let list = format!("- {}", automation_to_yaml(&everything()).replace('\n', "\n  "));
        assert_eq!(automations_from_yaml(&list).unwrap(), vec![everything()]);
        let stream = format!("{list}\n---\n{list}");
        assert_eq!(automations_from_yaml(&stream).unwrap(), vec![everything(), everything()]);

        // Errors in a list name the item, and the line is of the whole stream.
        let bad =
            format!("{text}---\n- id: y\n  name: Y\n  triggers: [{{interval: {{every: often}}}}]\n  actions: []\n");
        let (line, _, path, _) = invalid_at(automations_from_yaml(&bad).unwrap_err());
        assert_eq!(path, "[0].triggers[0].interval.every");
        assert_eq!(line, text.lines().count() + 4);
        let (_, _, _, message) = invalid_at(automations_from_yaml("just text").unwrap_err());
        assert_eq!(message, "expected an automation or a list of automations, found text");

        let scenes = vec![evening(), evening()];
        assert_eq!(scenes_from_yaml(&to_yaml_documents(&scenes)).unwrap(), scenes);
    }

    #[test]
    fn one_automation_is_one_mapping() {
        let one = automation_to_yaml(&everything());
        let e = automation_from_yaml(&format!("{one}---\n{one}")).unwrap_err();
        assert_eq!(invalid_at(e).3, "expected an automation alone, found a second document");
        // A trailing empty document is no second one.
        assert_eq!(automation_from_yaml(&format!("---\n{one}---\n")).unwrap(), everything());
        let e = automation_from_yaml("- a\n- b\n").unwrap_err();
        assert_eq!(invalid_at(e).3, "expected an automation (a mapping), found a list");
        let e = automation_from_yaml("  # only a comment\n").unwrap_err();
        assert_eq!(e.to_string(), "line 1, column 1: the text holds no document; expected an automation");
    }

    #[test]
    fn scalars_follow_the_yaml_1_2_core_schema() {
        let read = |v: &str| -> serde_json::Value { read_one_value(&format!("v: {v}\n")) };
        assert_eq!(read("0x1F"), json!(31));
        assert_eq!(read("0o17"), json!(15));
        assert_eq!(read("-12"), json!(-12));
        assert_eq!(read("+1.5e3"), json!(1500.0));
        assert_eq!(read(".5"), json!(0.5));
        assert_eq!(read("~"), json!(null));
        assert_eq!(read(""), json!(null));
        assert_eq!(read("True"), json!(true));
        // YAML 1.1 forms are text in YAML 1.2.
        for text in ["yes", "on", "07:30", "1_000", "0b101", "2024-01-01", "inf", "NaN", "1e", "1.2.3"] {
            assert_eq!(read(text), json!(text), "{text}");
        }
        assert_eq!(read("!!str 30"), json!("30"));
        assert_eq!(read("!!float 3"), json!(3.0));
        assert_eq!(read("'true'"), json!("true"));
        for (bad, why) in [
            (".inf", "`.inf` is not allowed: numbers must be finite"),
            ("-.Inf", "`-.Inf` is not allowed: numbers must be finite"),
            ("1e999", "`1e999` is too large a number"),
            ("!secret wifi", "the tag `!secret` is not supported here; write the value itself"),
            ("!!int x", "`x` is not a valid !!int"),
        ] {
            match read_stream(&format!("v: {bad}\n")).unwrap_err() {
                TextError::Syntax { line: 1, message, .. } => assert_eq!(message, why, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    /// The first document as JSON, through the same deserializer.
    fn read_one_value(text: &str) -> serde_json::Value {
        let docs = read_stream(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let node = docs.first().unwrap();
        let value: BTreeMap<String, serde_json::Value> = from_node(node, &[], &SCENE).unwrap();
        value.get("v").cloned().unwrap()
    }

    #[test]
    fn anchors_duplicates_and_limits() {
        let text = "id: x\nname: X\ntriggers:\n  - &door {state: {devices: [demo:door], feature: contact, to: true}}\nactions:\n  - wait: {triggers: [*door]}\n";
        let a = automation_from_yaml(text).unwrap();
        assert!(matches!(&a.actions[0].kind, ActionKind::Wait { triggers, .. } if triggers.len() == 1));

        // Merge keys: own keys win, then earlier merged mappings.
        let text = "\
id: x
name: X
triggers:
  - state: &door {devices: [demo:door], feature: contact, to: true}
  - state: {<<: *door, to: false, for: 1m}
  - state: {<<: [{feature: occupancy}, *door], devices: [demo:hall]}
actions: []
";
        let a = automation_from_yaml(text).unwrap();
        let states: Vec<_> = a
            .triggers
            .iter()
            .map(|t| match &t.kind {
                TriggerKind::State { target, feature, to, hold, .. } => {
                    (target.devices[0].to_string(), feature.clone(), to.clone(), hold.is_some())
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            states,
            [
                ("demo:door".into(), "contact".into(), Some(Value::Bool(true)), false),
                ("demo:door".into(), "contact".into(), Some(Value::Bool(false)), true),
                ("demo:hall".into(), "occupancy".into(), Some(Value::Bool(true)), false),
            ]
        );
        assert!(read_stream("a: {<<: 1}").unwrap_err().to_string().contains("`<<` merges a mapping"));

        let e = automation_from_yaml("id: x\nname: X\nid: y\n").unwrap_err();
        assert_eq!(e, syntax(Pos { line: 3, column: 1 }, "the key `id` is given twice (first on line 1)"));
        let e = automation_from_yaml("a: *nowhere\n").unwrap_err();
        assert!(matches!(e, TextError::Syntax { line: 1, .. }), "{e}");

        // An alias bomb stops at the budget.
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (i, name) in ["b", "c", "d", "e", "f", "g"].iter().enumerate() {
            let prev = ["a", "b", "c", "d", "e", "f"][i];
            bomb.push_str(&format!("{name}: &{name} [{}]\n", vec![format!("*{prev}"); 10].join(", ")));
        }
        let e = read_stream(&bomb).unwrap_err();
        assert!(e.to_string().contains("aliases copy more than 100000 nodes"), "{e}");

        let deep = format!("{}1{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let e = read_stream(&deep).unwrap_err();
        assert!(e.to_string().contains("nested deeper than 64 levels"), "{e}");
        let fine = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(read_stream(&fine).is_ok());
        let e = read_stream("? [a]\n: b\n").unwrap_err();
        assert!(e.to_string().contains("a key must be text"), "{e}");
    }

    #[test]
    fn any_text_survives_the_round_trip() {
        let texts = [
            "",
            " ",
            " lead",
            "trail ",
            "yes",
            "No",
            "on",
            "y",
            "null",
            "~",
            "true",
            "07:30",
            "22:15:30",
            "1.5",
            "1_000",
            "0x1F",
            "1e5",
            ".inf",
            "2024-01-01",
            "-30m",
            "- x",
            "#x",
            "a #b",
            "a# b",
            "a: b",
            "a:b",
            "key:",
            "[x]",
            "{x}",
            "x, y",
            "@x",
            "`x`",
            "%x",
            "!x",
            "&x",
            "*x",
            "|",
            ">",
            "?",
            ":",
            "...",
            "---",
            "'",
            "\"",
            "it's",
            "say \"hi\"",
            "back\\slash",
            "tab\there",
            "multi\nline",
            "multi\nline\n",
            "multi\n\n\n",
            "\nleading break",
            "  indented\nblock",
            "a\n  indented\n\nand blank",
            "trailing spaces  \nline",
            "\n",
            "\r\n",
            "nul\0",
            "bell\u{7}",
            "\u{85}next",
            "line\u{2028}sep",
            "\u{feff}bom",
            "ünïcödé ✓ 🏠",
            "{{ trigger.payload }}",
            "http://x/y?z=1#f",
        ];
        let mut texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        texts.push("x".repeat(1100));
        // As values, keys, and in a flow list.
        let values: BTreeMap<String, String> =
            texts.iter().enumerate().map(|(i, t)| (format!("k{i:03}"), t.clone())).collect();
        let keys: BTreeMap<String, usize> = texts.iter().enumerate().map(|(i, t)| (t.clone(), i)).collect();
        let short: Vec<String> = texts.iter().filter(|t| t.len() < 4).cloned().collect();
        let text = to_yaml(&values);
        assert_eq!(read_back::<BTreeMap<String, String>>(&text), values, "{text}");
        let text = to_yaml(&keys);
        assert_eq!(read_back::<BTreeMap<String, usize>>(&text), keys, "{text}");
        let text = to_yaml(&short);
        assert_eq!(read_back::<Vec<String>>(&text), short, "{text}");
        for t in &texts {
            let text = to_yaml(t);
            assert_eq!(&read_back::<String>(&text), t, "{text}");
            let nested = to_yaml(&vec![vec![t.clone()]]);
            assert_eq!(read_back::<Vec<Vec<String>>>(&nested), vec![vec![t.clone()]], "{nested}");
        }
        // Multi-line text is a literal block.
        assert_eq!(to_yaml(&json!({"body": "{\n  \"on\": true\n}\n"})), "body: |\n  {\n    \"on\": true\n  }\n");
    }

    #[test]
    fn numbers_survive_the_round_trip() {
        let numbers = vec![0.0, -0.0, 1.0, 60.0, -0.833, 0.1, 1e300, 1e-7, 123456789.125, f64::MAX, f64::MIN_POSITIVE];
        let text = to_yaml(&numbers);
        assert!(text.contains("1.0e+300") && text.contains("60.0"), "{text}");
        assert_eq!(read_back::<Vec<f64>>(&text), numbers);
        let ints = vec![i64::MIN, -1, 0, i64::MAX];
        assert_eq!(read_back::<Vec<i64>>(&to_yaml(&ints)), ints);
        assert_eq!(read_back::<u64>(&to_yaml(&u64::MAX)), u64::MAX);
        // JSON has no NaN: it is written as YAML has it, and refused on reading.
        assert_eq!(to_yaml(&f64::NAN), ".nan\n");
        assert!(read_stream(".nan").is_err());
    }

    fn read_back<T: DeserializeOwned>(text: &str) -> T {
        let docs = read_stream(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(docs.len(), 1, "{text}");
        from_node(&docs[0], &[], &SCENE).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn mangled_text_gives_errors_not_panics() {
        let text: Vec<char> = to_yaml_documents(&[everything(), motion_light()]).chars().collect();
        let pieces = [
            ":", "- ", "[", "]", "{", "}", "\n", "  ", "&a ", "*a", "<<: ", "!!", "'", "\"", "#", "|", "?", "---\n",
            "1",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..1_000 {
            let mut t = text.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % t.len() as u64) as usize;
                match next() % 3 {
                    0 => drop(t.remove(at)),
                    1 => t.splice(at..at, pieces[(next() % pieces.len() as u64) as usize].chars()).for_each(drop),
                    _ => t.truncate(at),
                }
                if t.is_empty() {
                    t.push('x');
                }
            }
            let t: String = t.into_iter().collect();
            if let Err(e) = automations_from_yaml(&t) {
                let (line, column) = e.position();
                assert!(line >= 1 && line <= t.lines().count() + 1 && column >= 1, "{e}\n{t}");
            }
        }
    }

    #[test]
    fn unwritable_values_say_so() {
        let mut odd = BTreeMap::new();
        odd.insert(vec![1], 2);
        let text = to_yaml_documents(&[odd]);
        assert_eq!(text, "---\n# this value cannot be written as YAML: a mapping key must be text, not a list\n");
    }
}
