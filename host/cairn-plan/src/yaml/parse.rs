//! YAML text to a node tree, using libyaml's event parser (Go's `yaml.v3` parser is a
//! port of libyaml, so documents, values and syntax errors come out the same way).
//!
//! All `unsafe` code of the crate is in this file: a libyaml parser is created over the
//! input, its events are copied into owned [`Node`]s, and the parser is freed on every path.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use super::resolve::resolve_tag;

/// Same nesting limit as `yaml.v3`'s scanner.
const MAX_DEPTH: usize = 10_000;

/// Kind of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Scalar,
    Sequence,
    Mapping,
    Alias,
}

/// Presentation details of a node, as `yaml.v3`'s `Node.Style` flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Style {
    pub tagged: bool,
    pub double_quoted: bool,
    pub single_quoted: bool,
    pub literal: bool,
    pub folded: bool,
    pub flow: bool,
}

/// One node of a parsed document.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    pub style: Style,
    /// Short tag (`!!str`, `!!int`, `!!map`...), resolved for untagged plain scalars.
    pub tag: String,
    /// Scalar text, or the anchor name of an alias.
    pub value: String,
    pub anchor: String,
    /// 1-based line of the node's first token.
    pub line: usize,
    /// Children: sequence items, or mapping keys and values alternating.
    pub children: Vec<usize>,
    /// For an alias, the node it refers to.
    pub target: Option<usize>,
}

impl Node {
    /// Whether the scalar was written in a way that makes it a string (quotes, block, `!!str`).
    pub fn indicated_string(&self) -> bool {
        self.kind == Kind::Scalar
            && (self.tag == "!!str"
                || ((self.tag.is_empty() || self.tag == "!")
                    && (self.style.double_quoted
                        || self.style.single_quoted
                        || self.style.literal
                        || self.style.folded)))
    }
}

/// A parsed document: nodes in an arena, `root` is the document's content (none when empty).
#[derive(Clone, Debug, Default)]
pub(crate) struct Doc {
    pub nodes: Vec<Node>,
    pub root: Option<usize>,
}

impl Doc {
    /// Follows aliases to the node they stand for (bounded, since aliases may form cycles).
    pub fn short_tag(&self, id: usize) -> &str {
        let mut id = id;
        for _ in 0..64 {
            let node = &self.nodes[id];
            if node.indicated_string() {
                return "!!str";
            }
            match (node.kind, node.target) {
                (Kind::Alias, Some(t)) => id = t,
                _ => return &node.tag,
            }
        }
        ""
    }
}

/// Frees the libyaml parser when dropped.
struct ParserGuard(Box<MaybeUninit<unsafe_libyaml::yaml_parser_t>>);

impl Drop for ParserGuard {
    fn drop(&mut self) {
        // SAFETY: a guard is only created around an initialised parser.
        unsafe { unsafe_libyaml::yaml_parser_delete(self.0.as_mut_ptr()) }
    }
}

/// Copies a NUL-terminated libyaml string.
///
/// SAFETY: `ptr` must be null or point to a NUL-terminated string.
unsafe fn owned(ptr: *const u8) -> Option<String> {
    let ptr = NonNull::new(ptr as *mut std::ffi::c_char)?;
    // SAFETY: guaranteed by the caller.
    let text = unsafe { std::ffi::CStr::from_ptr(ptr.as_ptr()) };
    Some(String::from_utf8_lossy(text.to_bytes()).into_owned())
}

enum Event {
    StreamStart,
    StreamEnd,
    DocumentStart,
    DocumentEnd,
    Alias {
        anchor: String,
    },
    Scalar {
        anchor: Option<String>,
        tag: Option<String>,
        value: String,
        style: Style,
    },
    SequenceStart {
        anchor: Option<String>,
        tag: Option<String>,
        flow: bool,
    },
    SequenceEnd,
    MappingStart {
        anchor: Option<String>,
        tag: Option<String>,
        flow: bool,
    },
    MappingEnd,
}

/// Formats a libyaml error as `yaml.v3` does (`yaml: line N: problem`).
fn parse_error(parser: &unsafe_libyaml::yaml_parser_t) -> String {
    let scanner = parser.error == unsafe_libyaml::YAML_SCANNER_ERROR;
    let mut line = 0;
    if parser.context_mark.line != 0 {
        line = parser.context_mark.line as usize + usize::from(scanner);
    } else if parser.problem_mark.line != 0 {
        line = parser.problem_mark.line as usize + usize::from(scanner);
    }
    // SAFETY: libyaml sets `problem` to null or a static NUL-terminated string.
    let problem = unsafe { owned(parser.problem as *const u8) }
        .unwrap_or_else(|| "unknown problem parsing YAML content".to_string());
    if line != 0 {
        format!("yaml: line {line}: {problem}")
    } else {
        format!("yaml: {problem}")
    }
}

/// Parses the first document of `input`. The error text is `yaml.v3`'s.
pub(crate) fn parse(input: &[u8]) -> Result<Doc, String> {
    let mut storage: Box<MaybeUninit<unsafe_libyaml::yaml_parser_t>> =
        Box::new(MaybeUninit::uninit());
    // SAFETY: `storage` is writable memory for a parser; initialisation is checked before use.
    if unsafe { unsafe_libyaml::yaml_parser_initialize(storage.as_mut_ptr()) }.fail {
        return Err("yaml: cannot initialise parser".to_string());
    }
    let mut guard = ParserGuard(storage);
    let parser = guard.0.as_mut_ptr();
    // SAFETY: the parser is initialised; `input` outlives every use of the parser.
    unsafe {
        unsafe_libyaml::yaml_parser_set_encoding(parser, unsafe_libyaml::YAML_UTF8_ENCODING);
        unsafe_libyaml::yaml_parser_set_input_string(parser, input.as_ptr(), input.len() as u64);
    }
    let next = || -> Result<(Event, usize), String> {
        let mut event = MaybeUninit::<unsafe_libyaml::yaml_event_t>::uninit();
        // SAFETY: the parser is initialised and `input` outlives it; the event is read
        // only after a successful parse and deleted right after being copied.
        unsafe {
            if (&*parser).error != unsafe_libyaml::YAML_NO_ERROR
                || unsafe_libyaml::yaml_parser_parse(parser, event.as_mut_ptr()).fail
            {
                return Err(parse_error(&*parser));
            }
            let ev = event.as_mut_ptr();
            let line = (*ev).start_mark.line as usize + 1;
            let converted = match (*ev).type_ {
                unsafe_libyaml::YAML_STREAM_START_EVENT => Event::StreamStart,
                unsafe_libyaml::YAML_DOCUMENT_START_EVENT => Event::DocumentStart,
                unsafe_libyaml::YAML_DOCUMENT_END_EVENT => Event::DocumentEnd,
                unsafe_libyaml::YAML_ALIAS_EVENT => Event::Alias {
                    anchor: owned((*ev).data.alias.anchor).unwrap_or_default(),
                },
                unsafe_libyaml::YAML_SCALAR_EVENT => {
                    let data = (*ev).data.scalar;
                    let bytes = if data.value.is_null() {
                        &[][..]
                    } else {
                        std::slice::from_raw_parts(data.value, data.length as usize)
                    };
                    let mut style = Style::default();
                    match data.style {
                        unsafe_libyaml::YAML_SINGLE_QUOTED_SCALAR_STYLE => {
                            style.single_quoted = true
                        }
                        unsafe_libyaml::YAML_DOUBLE_QUOTED_SCALAR_STYLE => {
                            style.double_quoted = true
                        }
                        unsafe_libyaml::YAML_LITERAL_SCALAR_STYLE => style.literal = true,
                        unsafe_libyaml::YAML_FOLDED_SCALAR_STYLE => style.folded = true,
                        _ => {}
                    }
                    Event::Scalar {
                        anchor: owned(data.anchor),
                        tag: owned(data.tag),
                        value: String::from_utf8_lossy(bytes).into_owned(),
                        style,
                    }
                }
                unsafe_libyaml::YAML_SEQUENCE_START_EVENT => {
                    let data = (*ev).data.sequence_start;
                    Event::SequenceStart {
                        anchor: owned(data.anchor),
                        tag: owned(data.tag),
                        flow: data.style == unsafe_libyaml::YAML_FLOW_SEQUENCE_STYLE,
                    }
                }
                unsafe_libyaml::YAML_SEQUENCE_END_EVENT => Event::SequenceEnd,
                unsafe_libyaml::YAML_MAPPING_START_EVENT => {
                    let data = (*ev).data.mapping_start;
                    Event::MappingStart {
                        anchor: owned(data.anchor),
                        tag: owned(data.tag),
                        flow: data.style == unsafe_libyaml::YAML_FLOW_MAPPING_STYLE,
                    }
                }
                unsafe_libyaml::YAML_MAPPING_END_EVENT => Event::MappingEnd,
                _ => Event::StreamEnd,
            };
            unsafe_libyaml::yaml_event_delete(ev);
            Ok((converted, line))
        }
    };

    let mut doc = Doc::default();
    let mut anchors: HashMap<String, usize> = HashMap::new();
    // Open collections: node id.
    let mut stack: Vec<usize> = Vec::new();
    match next()?.0 {
        Event::StreamStart => {}
        _ => return Err("yaml: expected STREAM-START".to_string()),
    }
    match next()?.0 {
        Event::DocumentStart => {}
        _ => return Ok(doc),
    }
    loop {
        let (event, line) = next()?;
        let (node, opens) = match event {
            Event::DocumentEnd | Event::StreamEnd | Event::StreamStart | Event::DocumentStart => {
                break;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
                continue;
            }
            Event::Alias { anchor } => {
                let Some(&target) = anchors.get(&anchor) else {
                    return Err(format!("yaml: unknown anchor '{anchor}' referenced"));
                };
                let node = Node {
                    kind: Kind::Alias,
                    style: Style::default(),
                    tag: String::new(),
                    value: anchor,
                    anchor: String::new(),
                    line,
                    children: Vec::new(),
                    target: Some(target),
                };
                (node, None)
            }
            Event::Scalar {
                anchor,
                tag,
                value,
                mut style,
            } => {
                let plain =
                    !(style.single_quoted || style.double_quoted || style.literal || style.folded);
                let tag = match tag {
                    Some(t) if !t.is_empty() && t != "!" => {
                        style.tagged = true;
                        short_tag(&t)
                    }
                    _ if !plain => "!!str".to_string(),
                    _ if value == "<<" => "!!merge".to_string(),
                    _ => resolve_tag(&value).to_string(),
                };
                let node = Node {
                    kind: Kind::Scalar,
                    style,
                    tag,
                    value,
                    anchor: anchor.clone().unwrap_or_default(),
                    line,
                    children: Vec::new(),
                    target: None,
                };
                (node, anchor)
            }
            Event::SequenceStart { anchor, tag, flow } => (
                collection(Kind::Sequence, anchor.clone(), tag, flow, line),
                anchor,
            ),
            Event::MappingStart { anchor, tag, flow } => (
                collection(Kind::Mapping, anchor.clone(), tag, flow, line),
                anchor,
            ),
        };
        let id = doc.nodes.len();
        doc.nodes.push(node);
        if let Some(anchor) = opens {
            anchors.insert(anchor, id);
        }
        match stack.last() {
            Some(&parent) => doc.nodes[parent].children.push(id),
            None => doc.root = Some(id),
        }
        if matches!(doc.nodes[id].kind, Kind::Sequence | Kind::Mapping) {
            if stack.len() >= MAX_DEPTH {
                return Err(format!(
                    "yaml: line {line}: exceeded max depth of {MAX_DEPTH}"
                ));
            }
            stack.push(id);
        }
    }
    Ok(doc)
}

fn collection(
    kind: Kind,
    anchor: Option<String>,
    tag: Option<String>,
    flow: bool,
    line: usize,
) -> Node {
    let mut style = Style {
        flow,
        ..Style::default()
    };
    let tag = match tag {
        Some(t) if !t.is_empty() && t != "!" => {
            style.tagged = true;
            short_tag(&t)
        }
        _ if kind == Kind::Mapping => "!!map".to_string(),
        _ => "!!seq".to_string(),
    };
    Node {
        kind,
        style,
        tag,
        value: String::new(),
        anchor: anchor.unwrap_or_default(),
        line,
        children: Vec::new(),
        target: None,
    }
}

/// Converts a full tag to `yaml.v3`'s short form (`tag:yaml.org,2002:str` → `!!str`).
pub(crate) fn short_tag(tag: &str) -> String {
    match tag.strip_prefix("tag:yaml.org,2002:") {
        Some(rest) => format!("!!{rest}"),
        None => tag.to_string(),
    }
}
