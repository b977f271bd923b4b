//! A YAML emitter that writes what Go's `yaml.v3` writes: 4-space indentation, block
//! style, `{}`/`[]` for empty collections, plain scalars where they read back the same,
//! single or double quotes otherwise, literal blocks for multi-line strings, and long
//! lines never folded (`yaml.v3` sets libyaml's best width to -1, unlimited: real Pebble
//! writes a 100-column summary on one line). It follows libyaml's emitter, including
//! `yaml.v3`'s changes (sequences indented inside mappings, items' content aligned after
//! `- `).
//!
//! It also reports the line each tagged node starts on, which is how Pebble's line numbers
//! in decoding errors are reproduced (Pebble re-renders a section before decoding it).

const BEST_INDENT: i64 = 4;
/// libyaml's `best_width` as `yaml.v3` sets it (-1: `1<<31 - 1`).
const BEST_WIDTH: usize = (1 << 31) - 1;

/// Requested presentation of a scalar (the emitter may fall back to a quoted style).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScalarStyle {
    Plain,
    Single,
    Double,
    Literal,
    Folded,
}

/// Content of an output node.
#[derive(Clone, Debug)]
pub(crate) enum OutKind {
    Scalar {
        value: String,
        style: ScalarStyle,
    },
    Seq {
        items: Vec<Out>,
        flow: bool,
    },
    Map {
        entries: Vec<(Out, Out)>,
        flow: bool,
    },
    Alias(String),
}

/// An output node: content, optional explicit tag and anchor, optional id for line reporting.
#[derive(Clone, Debug)]
pub(crate) struct Out {
    pub kind: OutKind,
    pub tag: String,
    pub anchor: String,
    pub id: Option<usize>,
}

impl Out {
    /// A scalar with the given requested style.
    pub fn scalar(value: impl Into<String>, style: ScalarStyle) -> Out {
        Out {
            kind: OutKind::Scalar {
                value: value.into(),
                style,
            },
            tag: String::new(),
            anchor: String::new(),
            id: None,
        }
    }

    /// A block mapping.
    pub fn map(entries: Vec<(Out, Out)>) -> Out {
        Out {
            kind: OutKind::Map {
                entries,
                flow: false,
            },
            tag: String::new(),
            anchor: String::new(),
            id: None,
        }
    }

    /// A block sequence.
    pub fn seq(items: Vec<Out>) -> Out {
        Out {
            kind: OutKind::Seq { items, flow: false },
            tag: String::new(),
            anchor: String::new(),
            id: None,
        }
    }
}

/// What the emitter knows about a scalar's characters (libyaml's `analyze_scalar`).
struct Analysis {
    multiline: bool,
    flow_plain_allowed: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn is_break_char(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_printable_char(c: char) -> bool {
    let u = c as u32;
    u == 0x0a
        || (0x20..=0x7e).contains(&u)
        || (0xa0..=0xd7ff).contains(&u)
        || ((0xe000..=0xfffd).contains(&u) && u != 0xfeff)
}

fn analyze(value: &str) -> Analysis {
    if value.is_empty() {
        return Analysis {
            multiline: false,
            flow_plain_allowed: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let mut block_indicators = false;
    let mut flow_indicators = false;
    let mut line_breaks = false;
    let mut special = false;
    let mut tabs = false;
    let mut line_start_tab = false;
    let mut leading_space = false;
    let mut leading_break = false;
    let mut trailing_space = false;
    let mut trailing_break = false;
    let mut break_space = false;
    let mut space_break = false;
    let mut previous_space = false;
    let mut previous_break = false;
    if value.starts_with("---") || value.starts_with("...") {
        block_indicators = true;
        flow_indicators = true;
    }
    let chars: Vec<char> = value.chars().collect();
    let mut preceded_by_whitespace = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = chars.get(i + 1).is_none_or(|&n| n == ' ' || n == '\t');
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                '?' | ':' => {
                    flow_indicators = true;
                    if followed_by_whitespace {
                        block_indicators = true;
                    }
                }
                '-' if followed_by_whitespace => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                _ => {}
            }
        } else {
            match c {
                ',' | '?' | '[' | ']' | '{' | '}' => flow_indicators = true,
                ':' => {
                    flow_indicators = true;
                    if followed_by_whitespace {
                        block_indicators = true;
                    }
                }
                '#' if preceded_by_whitespace => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                _ => {}
            }
        }
        if c == '\t' {
            tabs = true;
            if i == 0 || chars.get(i - 1).copied().is_some_and(is_break_char) {
                line_start_tab = true;
            }
        } else if !is_printable_char(c) {
            special = true;
        }
        let last = i + 1 == chars.len();
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if last {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break_char(c) {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if last {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = c == ' ' || c == '\t' || is_break_char(c) || c == '\0';
    }
    let mut a = Analysis {
        multiline: line_breaks,
        flow_plain_allowed: true,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || tabs || special {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    // Go's emitter would write a literal block here, which no YAML parser (Go's included)
    // reads back: a line starting with a tab is taken for bad indentation. Cairn persists
    // layers as YAML, so such strings are double-quoted instead.
    if space_break || special || line_start_tab {
        a.block_allowed = false;
    }
    if line_breaks {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
    }
    if flow_indicators {
        a.flow_plain_allowed = false;
    }
    if block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

/// Where a node sits, which decides indentation and style choices.
#[derive(Clone, Copy)]
struct Context {
    simple_key: bool,
    /// The node is an item of a block sequence (content aligns after `- `).
    in_block_seq: bool,
}

const PLAIN_CONTEXT: Context = Context {
    simple_key: false,
    in_block_seq: false,
};

/// The emitter state (libyaml's `yaml_emitter_t`, reduced to what block and flow output need).
pub(crate) struct Emitter {
    out: String,
    column: usize,
    line: usize,
    whitespace: bool,
    indention: bool,
    indent: i64,
    indents: Vec<i64>,
    flow_level: usize,
    pending: Vec<usize>,
    /// 1-based start line per node id (0 = not emitted).
    pub lines: Vec<usize>,
    /// Write the line break after a block scalar header as libyaml does; `yaml.v3` v3.0.1
    /// (what Pebble uses) leaves it out, which drops a leading empty line of the value.
    header_break: bool,
}

impl Emitter {
    fn new() -> Self {
        Emitter {
            out: String::new(),
            column: 0,
            line: 0,
            whitespace: true,
            indention: true,
            indent: -1,
            indents: Vec::new(),
            flow_level: 0,
            pending: Vec::new(),
            lines: Vec::new(),
            header_break: false,
        }
    }

    /// Renders one document exactly as `yaml.v3` v3.0.1 does.
    pub fn document(root: &Out) -> String {
        let mut e = Emitter::new();
        e.emit_document(root);
        e.out
    }

    /// Renders one document so that it always reads back the same: like [`Emitter::document`]
    /// except that a block scalar starting with a line break keeps it.
    pub fn document_lossless(root: &Out) -> String {
        let mut e = Emitter::new();
        e.header_break = true;
        e.emit_document(root);
        e.out
    }

    /// Renders one document and returns the start line of each node id below `max_id`.
    pub fn document_lines(root: &Out, max_id: usize) -> Vec<usize> {
        let mut e = Emitter::new();
        e.lines = vec![0; max_id];
        e.emit_document(root);
        e.lines
    }

    fn emit_document(&mut self, root: &Out) {
        self.node(root, PLAIN_CONTEXT);
        self.write_indent();
    }

    fn mark_start(&mut self, node: &Out) {
        if let Some(id) = node.id {
            self.pending.push(id);
        }
    }

    fn content(&mut self) {
        let line = self.line + 1;
        for id in self.pending.drain(..) {
            if let Some(slot) = self.lines.get_mut(id) {
                *slot = line;
            }
        }
    }

    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
        self.line += 1;
        self.indention = true;
    }

    fn write(&mut self, c: char) {
        self.content();
        self.out.push(c);
        self.column += 1;
    }

    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.write(c);
            self.column = 0;
            self.line += 1;
            self.indention = true;
        }
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
    }

    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        for c in indicator.chars() {
            self.write(c);
        }
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn increase_indent(&mut self, flow: bool, ctx: Context) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if ctx.in_block_seq {
            self.indent += 2;
        } else {
            self.indent = BEST_INDENT * ((self.indent + BEST_INDENT) / BEST_INDENT);
        }
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn anchor_and_tag(&mut self, node: &Out) {
        if !node.anchor.is_empty() {
            self.write_indicator("&", true, false, false);
            for c in node.anchor.chars() {
                self.write(c);
            }
            self.whitespace = false;
            self.indention = false;
        }
        if !node.tag.is_empty() {
            if !self.whitespace {
                self.put(' ');
            }
            for c in node.tag.chars() {
                self.write(c);
            }
            self.whitespace = false;
            self.indention = false;
        }
    }

    fn node(&mut self, node: &Out, ctx: Context) {
        self.mark_start(node);
        match &node.kind {
            OutKind::Alias(name) => {
                self.write_indicator("*", true, false, false);
                for c in name.chars() {
                    self.write(c);
                }
                self.whitespace = false;
                self.indention = false;
            }
            OutKind::Scalar { value, style } => self.scalar(node, value, *style, ctx),
            OutKind::Seq { items, flow } => {
                self.anchor_and_tag(node);
                if self.flow_level > 0 || *flow || items.is_empty() {
                    self.flow_seq(items, ctx);
                } else {
                    self.block_seq(items, ctx);
                }
            }
            OutKind::Map { entries, flow } => {
                self.anchor_and_tag(node);
                if self.flow_level > 0 || *flow || entries.is_empty() {
                    self.flow_map(entries, ctx);
                } else {
                    self.block_map(entries, ctx);
                }
            }
        }
    }

    fn is_simple_key(node: &Out) -> bool {
        let extra = node.anchor.len() + node.tag.len();
        match &node.kind {
            OutKind::Alias(name) => name.len() <= 128,
            OutKind::Scalar { value, .. } => {
                !analyze(value).multiline && extra + value.len() <= 128
            }
            OutKind::Seq { items, .. } => items.is_empty() && extra <= 128,
            OutKind::Map { entries, .. } => entries.is_empty() && extra <= 128,
        }
    }

    fn block_seq(&mut self, items: &[Out], ctx: Context) {
        self.increase_indent(false, ctx);
        for item in items {
            self.write_indent();
            self.write_indicator("-", true, false, true);
            self.node(
                item,
                Context {
                    in_block_seq: true,
                    ..PLAIN_CONTEXT
                },
            );
        }
        self.pop_indent();
    }

    fn block_map(&mut self, entries: &[(Out, Out)], ctx: Context) {
        self.increase_indent(false, ctx);
        for (key, value) in entries {
            self.write_indent();
            if Self::is_simple_key(key) {
                self.node(
                    key,
                    Context {
                        simple_key: true,
                        ..PLAIN_CONTEXT
                    },
                );
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, true);
                self.node(key, PLAIN_CONTEXT);
                self.write_indent();
                self.write_indicator(":", true, false, true);
            }
            self.node(value, PLAIN_CONTEXT);
        }
        self.pop_indent();
    }

    fn flow_seq(&mut self, items: &[Out], ctx: Context) {
        self.write_indicator("[", true, true, false);
        self.increase_indent(true, ctx);
        self.flow_level += 1;
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.write_indicator(",", false, false, false);
            }
            if self.column == 0 || self.column > BEST_WIDTH {
                self.write_indent();
            }
            self.node(item, PLAIN_CONTEXT);
        }
        self.flow_level -= 1;
        self.pop_indent();
        if self.column == 0 {
            self.write_indent();
        }
        self.write_indicator("]", false, false, false);
    }

    fn flow_map(&mut self, entries: &[(Out, Out)], ctx: Context) {
        self.write_indicator("{", true, true, false);
        self.increase_indent(true, ctx);
        self.flow_level += 1;
        for (i, (key, value)) in entries.iter().enumerate() {
            if i > 0 {
                self.write_indicator(",", false, false, false);
            }
            if self.column == 0 || self.column > BEST_WIDTH {
                self.write_indent();
            }
            if Self::is_simple_key(key) {
                self.node(
                    key,
                    Context {
                        simple_key: true,
                        ..PLAIN_CONTEXT
                    },
                );
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, false);
                self.node(key, PLAIN_CONTEXT);
                if self.column > BEST_WIDTH {
                    self.write_indent();
                }
                self.write_indicator(":", true, false, false);
            }
            self.node(value, PLAIN_CONTEXT);
        }
        self.flow_level -= 1;
        self.pop_indent();
        self.write_indicator("}", false, false, false);
    }

    fn scalar(&mut self, node: &Out, value: &str, requested: ScalarStyle, ctx: Context) {
        let a = analyze(value);
        let mut style = requested;
        if ctx.simple_key && a.multiline {
            style = ScalarStyle::Double;
        }
        if style == ScalarStyle::Plain {
            let allowed = if self.flow_level > 0 {
                a.flow_plain_allowed
            } else {
                a.block_plain_allowed
            };
            if !allowed || (value.is_empty() && (self.flow_level > 0 || ctx.simple_key)) {
                style = ScalarStyle::Single;
            }
        }
        if style == ScalarStyle::Single && !a.single_quoted_allowed {
            style = ScalarStyle::Double;
        }
        if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded)
            && (!a.block_allowed || self.flow_level > 0 || ctx.simple_key)
        {
            style = ScalarStyle::Double;
        }
        self.anchor_and_tag(node);
        self.increase_indent(true, ctx);
        let allow_breaks = !ctx.simple_key;
        match style {
            ScalarStyle::Plain => self.write_plain(value, allow_breaks),
            ScalarStyle::Single => self.write_single(value, allow_breaks),
            ScalarStyle::Double => self.write_double(value, allow_breaks),
            ScalarStyle::Literal => self.write_literal(value),
            ScalarStyle::Folded => self.write_folded(value),
        }
        // An empty plain scalar writes nothing; it still starts here.
        self.content();
        self.pop_indent();
    }

    fn write_plain(&mut self, value: &str, allow_breaks: bool) {
        if !value.is_empty() && !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = value.chars().collect();
        let mut spaces = false;
        let mut breaks = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.write(c);
                }
                spaces = true;
            } else if is_break_char(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.write(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        if !value.is_empty() {
            self.whitespace = false;
        }
        self.indention = false;
    }

    fn write_single(&mut self, value: &str, allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        let mut spaces = false;
        let mut breaks = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i + 1 < chars.len()
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.write(c);
                }
                spaces = true;
            } else if is_break_char(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.write(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.write_indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_double(&mut self, value: &str, allow_breaks: bool) {
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable_char(c) || c == '\u{feff}' || is_break_char(c) || c == '"' || c == '\\'
            {
                self.put('\\');
                let escape = match c {
                    '\0' => Some('0'),
                    '\u{07}' => Some('a'),
                    '\u{08}' => Some('b'),
                    '\t' => Some('t'),
                    '\n' => Some('n'),
                    '\u{0b}' => Some('v'),
                    '\u{0c}' => Some('f'),
                    '\r' => Some('r'),
                    '\u{1b}' => Some('e'),
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '\u{85}' => Some('N'),
                    '\u{a0}' => Some('_'),
                    '\u{2028}' => Some('L'),
                    '\u{2029}' => Some('P'),
                    _ => None,
                };
                match escape {
                    Some(e) => self.put(e),
                    None => {
                        let v = c as u32;
                        let (prefix, width) = if v <= 0xff {
                            ('x', 2)
                        } else if v <= 0xffff {
                            ('u', 4)
                        } else {
                            ('U', 8)
                        };
                        self.put(prefix);
                        for digit in format!("{v:0width$X}").chars() {
                            self.put(digit);
                        }
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i + 1 < chars.len()
                {
                    self.write_indent();
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.write(c);
                }
                spaces = true;
            } else {
                self.write(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn block_hints(&mut self, value: &str) {
        let chars: Vec<char> = value.chars().collect();
        if let Some(&first) = chars.first()
            && (first == ' ' || is_break_char(first))
        {
            self.write_indicator(&BEST_INDENT.to_string(), false, false, false);
        }
        let chomp = match chars.as_slice() {
            [] => Some("-"),
            [.., last] if !is_break_char(*last) => Some("-"),
            [_] => Some("+"),
            [.., before, _] if is_break_char(*before) => Some("+"),
            _ => None,
        };
        if let Some(chomp) = chomp {
            self.write_indicator(chomp, false, false, false);
        }
    }

    fn write_literal(&mut self, value: &str) {
        self.write_indicator("|", true, false, false);
        self.block_hints(value);
        if self.header_break {
            self.put_break();
        }
        self.whitespace = true;
        let mut breaks = true;
        for c in value.chars() {
            if is_break_char(c) {
                self.write_break(c);
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.write(c);
                self.indention = false;
                breaks = false;
            }
        }
    }

    fn write_folded(&mut self, value: &str) {
        self.write_indicator(">", true, false, false);
        self.block_hints(value);
        if self.header_break {
            self.put_break();
        }
        self.whitespace = true;
        let chars: Vec<char> = value.chars().collect();
        let mut breaks = true;
        let mut leading_spaces = true;
        for (i, &c) in chars.iter().enumerate() {
            if is_break_char(c) {
                if !breaks && !leading_spaces && c == '\n' {
                    let mut k = 0;
                    while k < chars.len() && is_break_char(chars[k]) {
                        k += 1;
                    }
                    if !chars
                        .get(k)
                        .is_none_or(|&n| n == ' ' || n == '\t' || is_break_char(n))
                    {
                        self.put_break();
                    }
                }
                self.write_break(c);
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                    leading_spaces = c == ' ' || c == '\t';
                }
                if !breaks && c == ' ' && chars.get(i + 1) != Some(&' ') && self.column > BEST_WIDTH
                {
                    self.write_indent();
                } else {
                    self.write(c);
                }
                self.indention = false;
                breaks = false;
            }
        }
    }
}
