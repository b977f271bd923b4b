//! Decoding parsed nodes into values with `yaml.v3`'s rules: any scalar decodes into a
//! string as written, `null` leaves a value alone, type mismatches are collected as
//! `line N: cannot unmarshal ...` and reported together, unknown struct fields are
//! `field x not found in type T` (Pebble decodes with `KnownFields`), duplicate keys are
//! errors, and merge keys (`<<`) work. Failures that abort at once (custom value errors
//! such as `invalid duration "x"`) are returned as `Err`.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::parse::{Doc, Kind};
use super::resolve::{Resolved, resolve};

/// Duplicate keys reported per mapping, at most.
const MAX_DUPLICATES: usize = 100;

/// An error that stops decoding at once; the text is final.
pub(crate) type Fail = String;

/// How many aliases may be followed inside one another.
const MAX_ALIAS_DEPTH: usize = 256;

/// A mapping entry: key text, key node, value node.
pub(crate) type Entry = (String, usize, usize);

/// Decoding state over one document.
pub(crate) struct Decoder<'a> {
    pub doc: &'a Doc,
    /// Line numbers to report per node (0 = use the node's own line).
    lines: Vec<usize>,
    /// Collected type errors, already formatted as `line N: ...`.
    pub terrors: Vec<String>,
    active_aliases: HashSet<usize>,
    decode_count: usize,
    alias_count: usize,
    alias_depth: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(doc: &'a Doc) -> Self {
        Decoder {
            doc,
            lines: Vec::new(),
            terrors: Vec::new(),
            active_aliases: HashSet::new(),
            decode_count: 0,
            alias_count: 0,
            alias_depth: 0,
        }
    }

    /// Reports errors with these line numbers (from re-rendering a section, as Pebble does).
    pub fn with_lines(mut self, lines: Vec<usize>) -> Self {
        self.lines = lines;
        self
    }

    /// Turns collected type errors into `yaml.v3`'s combined message, if any.
    pub fn finish(&mut self) -> Result<(), Fail> {
        if self.terrors.is_empty() {
            return Ok(());
        }
        let errors = std::mem::take(&mut self.terrors);
        Err(format!(
            "yaml: unmarshal errors:\n  {}",
            errors.join("\n  ")
        ))
    }

    fn line(&self, id: usize) -> usize {
        match self.lines.get(id) {
            Some(&line) if line != 0 => line,
            _ => self.doc.nodes[id].line,
        }
    }

    /// Calls `f` with the node `id` stands for (following aliases), counting work as
    /// `yaml.v3` does to refuse alias bombs and self-referencing anchors.
    pub fn visit<T>(
        &mut self,
        id: usize,
        f: &mut dyn FnMut(&mut Self, usize) -> Result<T, Fail>,
    ) -> Result<T, Fail> {
        self.decode_count += 1;
        if self.alias_depth > 0 {
            self.alias_count += 1;
        }
        if self.alias_count > 100
            && self.decode_count > 1000
            && self.alias_count as f64 / self.decode_count as f64
                > allowed_alias_ratio(self.decode_count)
        {
            return Err("yaml: document contains excessive aliasing".to_string());
        }
        let node = &self.doc.nodes[id];
        if node.kind == Kind::Alias {
            // Deeply chained aliases (merge keys of merge keys...) would only exhaust the stack.
            if self.alias_depth >= MAX_ALIAS_DEPTH {
                return Err("yaml: document contains excessive aliasing".to_string());
            }
            if self.active_aliases.contains(&id) {
                return Err(format!(
                    "yaml: anchor '{}' value contains itself",
                    node.value
                ));
            }
            let target = node.target.expect("aliases are resolved at parse time");
            self.active_aliases.insert(id);
            self.alias_depth += 1;
            let result = self.visit(target, f);
            self.alias_depth -= 1;
            self.active_aliases.remove(&id);
            return result;
        }
        f(self, id)
    }

    /// Records `line N: cannot unmarshal !!tag `value` into type`.
    pub fn terror(&mut self, id: usize, type_name: &str) {
        let node = &self.doc.nodes[id];
        let tag = node.tag.as_str();
        let value = if tag == "!!seq" || tag == "!!map" {
            String::new()
        } else if node.value.len() > 10 {
            let mut cut = 7;
            while !node.value.is_char_boundary(cut) {
                cut -= 1;
            }
            format!(" `{}...`", &node.value[..cut])
        } else {
            format!(" `{}`", node.value)
        };
        let line = self.line(id);
        self.terrors.push(format!(
            "line {line}: cannot unmarshal {tag}{value} into {type_name}"
        ));
    }

    fn is_null(&self, id: usize) -> bool {
        self.doc.short_tag(id) == "!!null"
    }

    /// A string (any scalar, as written). `None` for null, or after a recorded type error.
    pub fn string(&mut self, id: usize, type_name: &str) -> Result<Option<String>, Fail> {
        self.visit(id, &mut |d, id| {
            let node = &d.doc.nodes[id];
            if node.kind != Kind::Scalar {
                d.terror(id, type_name);
                return Ok(None);
            }
            if node.indicated_string() {
                return Ok(Some(node.value.clone()));
            }
            let (_, resolved) = resolve(&node.tag, &node.value)?;
            Ok(match resolved {
                Resolved::Null => None,
                _ => Some(node.value.clone()),
            })
        })
    }

    /// An integer; Go's `int` decoding (floats truncate). `None` for null or a type error.
    pub fn int(&mut self, id: usize, type_name: &str) -> Result<Option<i64>, Fail> {
        self.visit(id, &mut |d, id| {
            let node = &d.doc.nodes[id];
            if node.kind != Kind::Scalar {
                d.terror(id, type_name);
                return Ok(None);
            }
            let resolved = if node.indicated_string() {
                Resolved::Str
            } else {
                resolve(&node.tag, &node.value)?.1
            };
            let value = match resolved {
                Resolved::Null => return Ok(None),
                Resolved::Int(i) => Some(i),
                Resolved::Uint(u) => i64::try_from(u).ok(),
                Resolved::Float(f)
                    if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) =>
                {
                    Some(f as i64)
                }
                _ => None,
            };
            if value.is_none() {
                d.terror(id, type_name);
            }
            Ok(value)
        })
    }

    /// A non-negative integer that fits in `u32` (Cairn's ids, ports and thresholds).
    pub fn uint32(&mut self, id: usize, type_name: &str) -> Result<Option<u32>, Fail> {
        let Some(value) = self.int(id, type_name)? else {
            return Ok(None);
        };
        match u32::try_from(value) {
            Ok(v) => Ok(Some(v)),
            Err(_) => {
                self.terror(id, type_name);
                Ok(None)
            }
        }
    }

    /// The text of a scalar for a custom unmarshaller: `None` for null, `Err(message)` when
    /// the node is not a scalar.
    pub fn custom_scalar(&mut self, id: usize, not_scalar: &str) -> Result<Option<String>, Fail> {
        let not_scalar = not_scalar.to_string();
        self.visit(id, &mut |d, id| {
            if d.is_null(id) {
                return Ok(None);
            }
            let node = &d.doc.nodes[id];
            if node.kind != Kind::Scalar {
                return Err(not_scalar.clone());
            }
            Ok(Some(node.value.clone()))
        })
    }

    /// A sequence of strings (`[]string`); items that fail to decode are dropped.
    pub fn string_list(&mut self, id: usize) -> Result<Option<Vec<String>>, Fail> {
        self.visit(id, &mut |d, id| {
            if d.is_null(id) {
                return Ok(Some(Vec::new()));
            }
            let node = &d.doc.nodes[id];
            if node.kind != Kind::Sequence {
                d.terror(id, "[]string");
                return Ok(None);
            }
            let mut items = Vec::new();
            for child in node.children.clone() {
                if let Some(item) = d.string(child, "string")? {
                    items.push(item);
                }
            }
            Ok(Some(items))
        })
    }

    /// The entries of a mapping, with merge keys applied and keys decoded as strings.
    /// `None` (after recording an error) when the node is not a mapping or has duplicate keys;
    /// `Some(empty)` for null.
    pub fn entries(&mut self, id: usize, type_name: &str) -> Result<Option<Vec<Entry>>, Fail> {
        self.visit(id, &mut |d, id| {
            if d.is_null(id) {
                return Ok(Some(Vec::new()));
            }
            if d.doc.nodes[id].kind != Kind::Mapping {
                d.terror(id, type_name);
                return Ok(None);
            }
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            if !d.collect_entries(id, &mut seen, &mut out)? {
                return Ok(None);
            }
            Ok(Some(out))
        })
    }

    /// Adds the entries of mapping `id` not already in `seen`; merge keys are applied after
    /// the mapping's own keys, so those win. Returns false on duplicate keys.
    fn collect_entries(
        &mut self,
        id: usize,
        seen: &mut HashSet<String>,
        out: &mut Vec<Entry>,
    ) -> Result<bool, Fail> {
        let children = self.doc.nodes[id].children.clone();
        let before = self.terrors.len();
        // Keys grouped by text (a hash, not every pair: a mapping of 50,000 keys is fine),
        // then every later same key reported, in the order pairwise comparison gives.
        let mut by_value: HashMap<&str, Vec<usize>> = HashMap::new();
        for i in (0..children.len()).step_by(2) {
            by_value
                .entry(self.doc.nodes[children[i]].value.as_str())
                .or_default()
                .push(i);
        }
        // At most MAX_DUPLICATES reported: a mapping of one key repeated 50,000 times must
        // not become a billion messages.
        let mut dups = Vec::new();
        'keys: for i in (0..children.len()).step_by(2) {
            let group = &by_value[self.doc.nodes[children[i]].value.as_str()];
            for &j in group.iter().filter(|&&j| j > i) {
                if self.doc.nodes[children[i]].kind == self.doc.nodes[children[j]].kind {
                    if dups.len() == MAX_DUPLICATES {
                        break 'keys;
                    }
                    dups.push((i, j));
                }
            }
        }
        drop(by_value);
        for (i, j) in dups {
            let line_j = self.line(children[j]);
            let line_i = self.line(children[i]);
            let message = format!(
                "line {line_j}: mapping key {} already defined at line {line_i}",
                crate::quote::quote(&self.doc.nodes[children[j]].value)
            );
            self.terrors.push(message);
        }
        if self.terrors.len() > before {
            return Ok(false);
        }
        let mut merge = None;
        for pair in children.chunks(2) {
            let [key, value] = [pair[0], *pair.get(1).unwrap_or(&pair[0])];
            let key_node = &self.doc.nodes[key];
            if key_node.kind == Kind::Scalar
                && key_node.value == "<<"
                && (key_node.tag.is_empty() || key_node.tag == "!" || key_node.tag == "!!merge")
            {
                merge = Some(value);
                continue;
            }
            let Some(name) = self.string(key, "string")? else {
                continue;
            };
            if seen.insert(name.clone()) {
                out.push((name, key, value));
            }
        }
        if let Some(merge) = merge {
            self.merge(merge, seen, out)?;
        }
        Ok(true)
    }

    fn merge(
        &mut self,
        id: usize,
        seen: &mut HashSet<String>,
        out: &mut Vec<Entry>,
    ) -> Result<(), Fail> {
        const WANT_MAP: &str = "yaml: map merge requires map or sequence of maps as the value";
        // Merged mappings go through `visit`, so merge-key bombs count as alias expansion.
        self.visit(id, &mut |d, target| match d.doc.nodes[target].kind {
            Kind::Mapping => d.collect_entries(target, seen, out).map(|_| ()),
            Kind::Sequence => {
                for item in d.doc.nodes[target].children.clone() {
                    d.visit(item, &mut |d, item| {
                        if d.doc.nodes[item].kind != Kind::Mapping {
                            return Err(WANT_MAP.to_string());
                        }
                        d.collect_entries(item, seen, out).map(|_| ())
                    })?;
                }
                Ok(())
            }
            _ => Err(WANT_MAP.to_string()),
        })
    }

    /// The known fields of a struct-like mapping; unknown keys are recorded as
    /// `field x not found in type T`. `None` for null (leave the value alone) or a type error.
    pub fn fields(
        &mut self,
        id: usize,
        type_name: &str,
        known: &[&str],
    ) -> Result<Option<Vec<(String, usize)>>, Fail> {
        if self.is_null(id) {
            return Ok(None);
        }
        let Some(entries) = self.entries(id, type_name)? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for (name, key, value) in entries {
            if known.contains(&name.as_str()) {
                out.push((name, value));
            } else {
                let line = self.line(key);
                self.terrors.push(format!(
                    "line {line}: field {name} not found in type {type_name}"
                ));
            }
        }
        Ok(Some(out))
    }

    /// A `map[string]string`: null values give empty strings, failing values are skipped.
    pub fn string_map(
        &mut self,
        id: usize,
        type_name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, Fail> {
        let Some(entries) = self.entries(id, type_name)? else {
            return Ok(None);
        };
        let mut map = BTreeMap::new();
        for (name, _, value) in entries {
            match self.string(value, "string")? {
                Some(v) => {
                    map.insert(name, v);
                }
                None if self.is_null(value) => {
                    map.entry(name).or_default();
                }
                None => {}
            }
        }
        Ok(Some(map))
    }
}

fn allowed_alias_ratio(decode_count: usize) -> f64 {
    const LOW: f64 = 400_000.0;
    const HIGH: f64 = 4_000_000.0;
    let count = decode_count as f64;
    if count <= LOW {
        0.99
    } else if count >= HIGH {
        0.10
    } else {
        0.99 - 0.89 * ((count - LOW) / (HIGH - LOW))
    }
}
