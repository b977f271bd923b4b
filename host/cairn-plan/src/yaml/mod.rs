//! YAML support with Go `yaml.v3` semantics: parsing (libyaml), implicit typing,
//! decoding rules and error texts, and an emitter that writes what `yaml.v3` writes.

pub(crate) mod decode;
pub(crate) mod emit;
pub(crate) mod parse;
pub(crate) mod resolve;

use emit::{Emitter, Out, OutKind, ScalarStyle};
use parse::{Doc, Kind};

/// Deepest subtree re-rendered to compute line numbers; deeper ones keep their own lines.
const MAX_RENDER_DEPTH: usize = 200;

/// Converts a parsed subtree back to output form as `yaml.v3` marshals a `yaml.Node`
/// (keeping styles, dropping tags that resolution implies). `None` if too deep.
fn node_to_out(doc: &Doc, id: usize, depth: usize) -> Option<Out> {
    if depth > MAX_RENDER_DEPTH {
        return None;
    }
    let node = &doc.nodes[id];
    let mut tag = node.tag.clone();
    let mut force_quoting = false;
    if !tag.is_empty() && !node.style.tagged {
        match node.kind {
            Kind::Scalar => {
                let quoted = node.style.single_quoted
                    || node.style.double_quoted
                    || node.style.literal
                    || node.style.folded;
                if tag == "!!str" && quoted {
                    tag.clear();
                } else {
                    let rtag = resolve::resolve_tag(&node.value);
                    if rtag == tag {
                        tag.clear();
                    } else if tag == "!!str" {
                        tag.clear();
                        force_quoting = true;
                    }
                }
            }
            Kind::Mapping if tag == "!!map" => tag.clear(),
            Kind::Sequence if tag == "!!seq" => tag.clear(),
            _ => {}
        }
    }
    let kind = match node.kind {
        Kind::Alias => OutKind::Alias(node.value.clone()),
        Kind::Scalar => {
            let style = if node.style.double_quoted {
                ScalarStyle::Double
            } else if node.style.single_quoted {
                ScalarStyle::Single
            } else if node.style.literal {
                ScalarStyle::Literal
            } else if node.style.folded {
                ScalarStyle::Folded
            } else if node.value.contains('\n') {
                ScalarStyle::Literal
            } else if force_quoting {
                ScalarStyle::Double
            } else {
                ScalarStyle::Plain
            };
            OutKind::Scalar {
                value: node.value.clone(),
                style,
            }
        }
        Kind::Sequence => {
            let items = node
                .children
                .iter()
                .map(|&c| node_to_out(doc, c, depth + 1))
                .collect::<Option<Vec<_>>>()?;
            OutKind::Seq {
                items,
                flow: node.style.flow,
            }
        }
        Kind::Mapping => {
            let mut entries = Vec::new();
            for pair in node.children.chunks(2) {
                let key = node_to_out(doc, pair[0], depth + 1)?;
                let value = match pair.get(1) {
                    Some(&v) => node_to_out(doc, v, depth + 1)?,
                    None => Out::scalar("", ScalarStyle::Plain),
                };
                entries.push((key, value));
            }
            OutKind::Map {
                entries,
                flow: node.style.flow,
            }
        }
    };
    Some(Out {
        kind,
        tag,
        anchor: node.anchor.clone(),
        id: Some(id),
    })
}

/// The line of each node of the subtree at `id` once that subtree is rendered on its own,
/// which is what Pebble's error messages refer to (it re-renders each section before
/// decoding it). Empty when the subtree is too deep to re-render.
pub(crate) fn section_lines(doc: &Doc, id: usize) -> Vec<usize> {
    match node_to_out(doc, id, 0) {
        Some(out) => Emitter::document_lines(&out, doc.nodes.len()),
        None => Vec::new(),
    }
}
