//! Body constraints: `@range`, `@check`, and the embeds' sources.

use super::*;

impl Compiler {
    pub(super) fn range_constraint(
        &mut self,
        c: &AnnotationAst,
        props: &[Resolved],
    ) -> Option<RangeConstraint> {
        let (prop, min, max, rspan) = match c.arg_list() {
            [ArgAst::Ident(p), ArgAst::Range { min, max, span, .. }] => (p, min, max, span.clone()),
            _ => {
                self.err(
                    Diagnostic::error(
                        "S124",
                        c.span.clone(),
                        "`@range` expects a property and a range",
                    )
                    .with_help("write `@range(age, 0..150)`; either bound may be left open"),
                );
                return None;
            }
        };
        let r = self.lookup(props, &prop.name, prop.span.clone(), &[])??;
        let numeric = r.prop.ty.as_scalar().is_some_and(ScalarType::is_numeric);
        if !numeric {
            self.err(
                Diagnostic::error(
                    "S115",
                    prop.span.clone(),
                    format!(
                        "`@range` needs a numeric property; `{}` is `{}`",
                        prop.name, r.prop.ty
                    ),
                )
                .with_help("use `@check(property, \"regex\")` for text"),
            );
            return None;
        }
        let parse = |s: &Option<String>| s.as_ref().map(|t| t.parse::<f64>());
        let (lo, hi) = match (parse(min), parse(max)) {
            (Some(Err(_)), _) | (_, Some(Err(_))) => {
                self.err(Diagnostic::error(
                    "S116",
                    rspan,
                    "range bounds must be numbers",
                ));
                return None;
            }
            (a, b) => (a.and_then(Result::ok), b.and_then(Result::ok)),
        };
        if lo.is_none() && hi.is_none() {
            self.err(
                Diagnostic::error("S116", rspan, "`@range` with no bounds constrains nothing")
                    .with_help("give a lower bound, an upper bound, or both: `0..150`"),
            );
            return None;
        }
        if let (Some(a), Some(b)) = (lo, hi)
            && a > b
        {
            self.err(
                Diagnostic::error(
                    "S116",
                    rspan,
                    format!("range `{a}..{b}` is inverted: no value can satisfy it"),
                )
                .with_help(format!("write `{b}..{a}`")),
            );
            return None;
        }
        if r.prop.ty.as_scalar().is_some_and(ScalarType::is_integer) {
            let frac = |v: Option<f64>| v.is_some_and(|x| x.fract() != 0.0);
            if frac(lo) || frac(hi) {
                self.err(Diagnostic::error(
                    "S116",
                    rspan,
                    format!(
                        "`{}` is an integer property; range bounds must be integers",
                        prop.name
                    ),
                ));
                return None;
            }
            if r.prop
                .ty
                .as_scalar()
                .is_some_and(|s| matches!(s, ScalarType::U32 | ScalarType::U64))
                && hi.is_some_and(|h| h < 0.0)
            {
                self.err(Diagnostic::error(
                    "S116",
                    rspan,
                    format!(
                        "`{}` is unsigned; a negative upper bound is empty",
                        prop.name
                    ),
                ));
                return None;
            }
        }
        Some(RangeConstraint {
            property: prop.name.clone(),
            min: lo,
            max: hi,
        })
    }

    pub(super) fn check_constraint(
        &mut self,
        c: &AnnotationAst,
        props: &[Resolved],
    ) -> Option<CheckConstraint> {
        let (prop, pattern, pspan) = match c.arg_list() {
            [ArgAst::Ident(p), ArgAst::Str { value, span }] => (p, value, span.clone()),
            _ => {
                self.err(
                    Diagnostic::error(
                        "S124",
                        c.span.clone(),
                        "`@check` expects a property and a regex string",
                    )
                    .with_help("write `@check(code, \"^[A-Z]{3}$\")`"),
                );
                return None;
            }
        };
        let r = self.lookup(props, &prop.name, prop.span.clone(), &[])??;
        if !r.prop.ty.is_textual() {
            self.err(Diagnostic::error(
                "S117",
                prop.span.clone(),
                format!(
                    "`@check` needs a String property; `{}` is `{}`",
                    prop.name, r.prop.ty
                ),
            ));
            return None;
        }
        if let Err(e) = regex::Regex::new(pattern) {
            let first = e
                .to_string()
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .to_string();
            self.err(
                Diagnostic::error("S118", pspan, format!("invalid regex in `@check`: {first}"))
                    .with_help("the pattern uses Rust `regex` syntax"),
            );
            return None;
        }
        Some(CheckConstraint {
            property: prop.name.clone(),
            pattern: pattern.clone(),
        })
    }

    /// `@embed("src")` must name a String property of the same type.
    pub(super) fn check_embeds(&mut self, props: &[Property], d: &DeclAst) {
        for p in props {
            let Some(e) = &p.embed else { continue };
            let span = d
                .properties
                .iter()
                .find(|x| x.name.name == p.name)
                .map_or(d.name.span.clone(), |x| x.span.clone());
            match props.iter().find(|s| s.name == e.source) {
                Some(s) if s.ty.as_scalar() == Some(ScalarType::String) => {}
                Some(s) => self.err(
                    Diagnostic::error(
                        "S120",
                        span,
                        format!(
                            "`@embed` source `{}` is `{}`; it must be a String",
                            e.source, s.ty
                        ),
                    )
                    .with_help("embed from a String property"),
                ),
                None => {
                    let names: Vec<&str> = props
                        .iter()
                        .filter(|s| s.ty.as_scalar() == Some(ScalarType::String))
                        .map(|s| s.name.as_str())
                        .collect();
                    let help = did_you_mean(&e.source, names.iter().copied())
                        .unwrap_or_else(|| valid_list("String properties", names.iter().copied()));
                    self.err(
                        Diagnostic::error(
                            "S120",
                            span,
                            format!(
                                "`@embed` source `{}` is not a property of `{}`",
                                e.source, d.name.name
                            ),
                        )
                        .with_help(help),
                    );
                }
            }
        }
    }
}
