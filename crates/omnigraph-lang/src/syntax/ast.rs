//! AST pieces both languages share: names, type references, annotations.

use std::ops::Range;

use serde::Serialize;

use super::{Pair, Rule, span};

/// A name with its byte span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ident {
    pub name: String,
    #[serde(skip)]
    pub span: Range<usize>,
}

impl Ident {
    pub fn from_pair(p: &Pair<'_>) -> Self {
        Ident {
            name: p.as_str().to_string(),
            span: span(p),
        }
    }
}

/// A type as written: `String`, `[I32]?`, `enum(a, b)`, `Vector(8)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeAst {
    pub kind: TypeAstKind,
    pub nullable: bool,
    pub span: Range<usize>,
}

/// The shape of a [`TypeAst`]; names are resolved later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeAstKind {
    Named(Ident),
    List(Ident),
    Enum(Vec<Ident>),
    /// The dimension as written (digits), checked when resolved.
    Vector {
        dim: String,
        span: Range<usize>,
    },
}

impl TypeAst {
    /// Builds from a `type_ref` pair.
    pub fn from_pair(p: Pair<'_>) -> Self {
        let whole = span(&p);
        let mut nullable = false;
        let mut kind = None;
        for inner in p.into_inner() {
            match inner.as_rule() {
                Rule::nullable => nullable = true,
                Rule::scalar_type => kind = Some(TypeAstKind::Named(Ident::from_pair(&inner))),
                Rule::list_type => {
                    let item = inner.into_inner().next().map(|s| Ident::from_pair(&s));
                    kind = item.map(TypeAstKind::List);
                }
                Rule::enum_type => {
                    let values = inner
                        .into_inner()
                        .filter(|v| v.as_rule() == Rule::enum_value)
                        .map(|v| {
                            let sp = span(&v);
                            let raw = v.as_str();
                            let name = raw
                                .strip_prefix('"')
                                .and_then(|s| s.strip_suffix('"'))
                                .map(unescape)
                                .unwrap_or_else(|| raw.to_string());
                            Ident { name, span: sp }
                        })
                        .collect();
                    kind = Some(TypeAstKind::Enum(values));
                }
                Rule::vector_type => {
                    if let Some(d) = inner.into_inner().find(|x| x.as_rule() == Rule::integer) {
                        kind = Some(TypeAstKind::Vector {
                            dim: d.as_str().to_string(),
                            span: span(&d),
                        });
                    }
                }
                _ => {}
            }
        }
        TypeAst {
            // The grammar guarantees one of the alternatives.
            kind: kind.unwrap_or(TypeAstKind::Named(Ident {
                name: String::new(),
                span: whole.clone(),
            })),
            nullable,
            span: whole,
        }
    }
}

/// One annotation argument.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgAst {
    Ident(Ident),
    Str {
        value: String,
        span: Range<usize>,
    },
    Number {
        text: String,
        span: Range<usize>,
    },
    Bool {
        value: bool,
        span: Range<usize>,
    },
    /// `min..max`; `max_star` for an explicit `*`.
    Range {
        min: Option<String>,
        max: Option<String>,
        max_star: bool,
        span: Range<usize>,
    },
    Kwarg {
        key: Ident,
        value: Box<ArgAst>,
    },
}

impl ArgAst {
    pub fn span(&self) -> Range<usize> {
        match self {
            ArgAst::Ident(i) => i.span.clone(),
            ArgAst::Str { span, .. }
            | ArgAst::Number { span, .. }
            | ArgAst::Bool { span, .. }
            | ArgAst::Range { span, .. } => span.clone(),
            ArgAst::Kwarg { key, value } => key.span.start..value.span().end,
        }
    }

    /// The argument's source spelling, kept in catalog metadata.
    pub fn text(&self) -> String {
        match self {
            ArgAst::Ident(i) => i.name.clone(),
            ArgAst::Str { value, .. } => format!("{value:?}"),
            ArgAst::Number { text, .. } => text.clone(),
            ArgAst::Bool { value, .. } => value.to_string(),
            ArgAst::Range {
                min, max, max_star, ..
            } => format!(
                "{}..{}",
                min.as_deref().unwrap_or(""),
                if *max_star {
                    "*"
                } else {
                    max.as_deref().unwrap_or("")
                }
            ),
            ArgAst::Kwarg { key, value } => format!("{}={}", key.name, value.text()),
        }
    }

    fn from_pair(p: Pair<'_>) -> Self {
        let sp = span(&p);
        match p.as_rule() {
            Rule::ann_arg => match p.into_inner().next() {
                Some(inner) => ArgAst::from_pair(inner),
                None => ArgAst::Str {
                    value: String::new(),
                    span: sp,
                },
            },
            Rule::ident => ArgAst::Ident(Ident::from_pair(&p)),
            Rule::string => ArgAst::Str {
                value: string_value(&p),
                span: sp,
            },
            Rule::number => ArgAst::Number {
                text: p.as_str().to_string(),
                span: sp,
            },
            Rule::boolean => ArgAst::Bool {
                value: p.as_str() == "true",
                span: sp,
            },
            Rule::range => {
                let text = p.as_str();
                let (lo, hi) = text.split_once("..").unwrap_or((text, ""));
                let lo = lo.trim();
                let hi = hi.trim();
                ArgAst::Range {
                    min: (!lo.is_empty()).then(|| lo.to_string()),
                    max: (!hi.is_empty() && hi != "*").then(|| hi.to_string()),
                    max_star: hi == "*",
                    span: sp,
                }
            }
            Rule::kwarg => {
                let mut it = p.into_inner();
                let key = it.next().map(|k| Ident::from_pair(&k));
                let value = it.next().map(ArgAst::from_pair);
                match (key, value) {
                    (Some(key), Some(value)) => ArgAst::Kwarg {
                        key,
                        value: Box::new(value),
                    },
                    _ => ArgAst::Str {
                        value: String::new(),
                        span: sp,
                    },
                }
            }
            _ => ArgAst::Str {
                value: p.as_str().to_string(),
                span: sp,
            },
        }
    }
}

/// `@name` or `@name(args…)`.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnotationAst {
    pub name: Ident,
    /// `None` when written without parentheses.
    pub args: Option<Vec<ArgAst>>,
    pub span: Range<usize>,
}

impl AnnotationAst {
    /// Builds from an `annotation` pair.
    pub fn from_pair(p: Pair<'_>) -> Self {
        let sp = span(&p);
        let mut name = Ident {
            name: String::new(),
            span: sp.clone(),
        };
        let mut args = None;
        for inner in p.into_inner() {
            match inner.as_rule() {
                Rule::ident => name = Ident::from_pair(&inner),
                Rule::ann_args => {
                    args = Some(inner.into_inner().map(ArgAst::from_pair).collect());
                }
                _ => {}
            }
        }
        AnnotationAst {
            name,
            args,
            span: sp,
        }
    }

    /// Arguments, empty when there were no parentheses.
    pub fn arg_list(&self) -> &[ArgAst] {
        self.args.as_deref().unwrap_or(&[])
    }

    /// The single string argument, for `@description("…")` and the like.
    pub fn single_string(&self) -> Option<&str> {
        match self.arg_list() {
            [ArgAst::Str { value, .. }] => Some(value),
            _ => None,
        }
    }
}

/// The value of a `string` pair, escapes resolved.
pub fn string_value(p: &Pair<'_>) -> String {
    let raw = p.as_str();
    let inner = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw);
    unescape(inner)
}

/// Resolves `\n`, `\t`, `\"`, `\\` (and keeps any other escaped character).
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}
