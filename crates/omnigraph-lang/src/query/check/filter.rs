//! Checking filters and comparisons: operand types, temporal and enum
//! literals, parameter types.

use super::*;

impl<'c> Checker<'c> {
    pub(super) fn filter(
        &mut self,
        left: &ExprAst,
        op: Option<&(CmpOp, Range<usize>)>,
        right: Option<&ExprAst>,
        span: Range<usize>,
        scope: &HashMap<String, VarInfo>,
    ) -> Option<RClause> {
        let (l, lt) = self.expr(left, Ctx::Match, scope)?;
        let (op, right) = match (op, right) {
            (Some((op, _)), Some(r)) => (*op, r),
            _ => {
                if matches!(l, Expr::TextMatch { .. }) || lt == ValueType::Bool {
                    let mut vars = BTreeSet::new();
                    expr_vars(&l, &mut vars);
                    return Some(RClause::Filter {
                        left: l,
                        op: None,
                        right: None,
                        vars,
                    });
                }
                self.err(
                    Diagnostic::error("T26", span, format!("a `{lt}` value is not a condition"))
                        .with_help(
                            "compare it (`$x.p = value`) or use `search`/`fuzzy`/`match_text`",
                        ),
                );
                return None;
            }
        };
        let (r, rt) = self.expr(right, Ctx::Match, scope)?;
        let (l, r) = self.compare(op, (&l, &lt), (&r, &rt), right.span())?;
        let mut vars = BTreeSet::new();
        expr_vars(&l, &mut vars);
        expr_vars(&r, &mut vars);
        Some(RClause::Filter {
            left: l,
            op: Some(op),
            right: Some(r),
            vars,
        })
    }

    /// Checks `l op r`; returns both sides with string literals coerced to
    /// Date/DateTime where the other side is temporal.
    pub(super) fn compare(
        &mut self,
        op: CmpOp,
        l: (&Expr, &ValueType),
        r: (&Expr, &ValueType),
        span: Range<usize>,
    ) -> Option<(Expr, Expr)> {
        let (le, lt) = l;
        let (re, rt) = r;
        let mut le = le.clone();
        let mut re = re.clone();
        let mut lt = lt.clone();
        let mut rt = rt.clone();
        // Coerce a string literal facing a temporal value.
        if !self.coerce_temporal(&mut re, &mut rt, &lt, span.clone()) {
            return None;
        }
        if !self.coerce_temporal(&mut le, &mut lt, &rt, span.clone()) {
            return None;
        }
        for t in [&lt, &rt] {
            if *t == ValueType::Blob {
                self.err(blob_read_error(span.clone()));
                return None;
            }
            if let ValueType::Node { type_name } = t {
                self.err(
                    Diagnostic::error(
                        "T10",
                        span.clone(),
                        format!("cannot compare a whole `{type_name}` node"),
                    )
                    .with_help("compare one of its properties: `$x.property`"),
                );
                return None;
            }
        }
        let mismatch = |this: &mut Self| {
            this.err(
                Diagnostic::error(
                    "T10",
                    span.clone(),
                    format!("cannot compare `{lt}` {op} `{rt}`"),
                )
                .with_help("both sides must have compatible types"),
            );
        };
        match op {
            CmpOp::Contains => match &lt {
                ValueType::List { item } => {
                    if !compatible(item, &rt) {
                        mismatch(self);
                        return None;
                    }
                    self.enum_literal(item, &re, span.clone())?;
                }
                ValueType::String | ValueType::Enum { .. } => {
                    if !rt.is_textual() && rt != ValueType::Null {
                        mismatch(self);
                        return None;
                    }
                }
                _ => {
                    self.err(
                        Diagnostic::error(
                            "T11",
                            span,
                            format!("`contains` needs a list or String on the left, found `{lt}`"),
                        )
                        .with_help("`contains` tests list membership or substring"),
                    );
                    return None;
                }
            },
            CmpOp::StartsWith => {
                if !lt.is_textual() || !(rt.is_textual() || rt == ValueType::Null) {
                    self.err(Diagnostic::error(
                        "T11",
                        span,
                        format!("`starts_with` needs String operands, found `{lt}` and `{rt}`"),
                    ));
                    return None;
                }
            }
            _ => {
                if lt == ValueType::Null || rt == ValueType::Null {
                    if op.is_ordering() {
                        self.err(
                            Diagnostic::error(
                                "T11",
                                span,
                                format!("`{op}` against null is never true"),
                            )
                            .with_help("use `= null` or `!= null`"),
                        );
                        return None;
                    }
                } else if !compatible(&lt, &rt) {
                    let mut d = Diagnostic::error(
                        "T10",
                        span.clone(),
                        format!("cannot compare `{lt}` {op} `{rt}`"),
                    );
                    if matches!(lt, ValueType::Date | ValueType::DateTime)
                        || matches!(rt, ValueType::Date | ValueType::DateTime)
                    {
                        d = d.with_help("compare dates with dates: write `date(\"YYYY-MM-DD\")` or `datetime(\"…Z\")`");
                    } else {
                        d = d.with_help("both sides must have compatible types");
                    }
                    self.err(d);
                    return None;
                } else if op.is_ordering()
                    && (!lt.is_orderable()
                        || lt == ValueType::Bool
                        || matches!(lt, ValueType::List { .. }))
                {
                    self.err(Diagnostic::error(
                        "T11",
                        span,
                        format!("`{op}` does not apply to `{lt}`"),
                    ));
                    return None;
                }
                self.enum_literal(&lt, &re, span.clone())?;
                self.enum_literal(&rt, &le, span.clone())?;
            }
        }
        Some((le, re))
    }

    /// Turns a string literal `e` facing a Date/DateTime into a typed
    /// literal; false (with `T39` reported) when it does not parse.
    pub(super) fn coerce_temporal(
        &mut self,
        e: &mut Expr,
        t: &mut ValueType,
        other: &ValueType,
        span: Range<usize>,
    ) -> bool {
        let Expr::Literal {
            value: LiteralValue::String(s),
        } = e
        else {
            return true;
        };
        let s = s.clone();
        match other {
            ValueType::Date => match parse_date(&s) {
                Some(d) => {
                    *e = lit(LiteralValue::Date(d));
                    *t = ValueType::Date;
                }
                None => {
                    self.err(bad_temporal(&s, "date", span));
                    return false;
                }
            },
            ValueType::DateTime => match parse_datetime(&s) {
                Some(d) => {
                    *e = lit(LiteralValue::DateTime(d));
                    *t = ValueType::DateTime;
                }
                None => {
                    self.err(bad_temporal(&s, "datetime", span));
                    return false;
                }
            },
            _ => {}
        }
        true
    }

    /// A string literal compared with an enum must be one of its values.
    pub(super) fn enum_literal(
        &mut self,
        ty: &ValueType,
        e: &Expr,
        span: Range<usize>,
    ) -> Option<()> {
        if let (
            ValueType::Enum { values },
            Expr::Literal {
                value: LiteralValue::String(s),
            },
        ) = (ty, e)
            && !values.contains(s)
        {
            let help = did_you_mean(s, values.iter().map(String::as_str))
                .unwrap_or_else(|| valid_list("values", values.iter().map(String::as_str)));
            self.err(
                Diagnostic::error("T12", span, format!("`{s}` is not a value of this enum"))
                    .with_help(help),
            );
            return None;
        }
        Some(())
    }

    pub(super) fn param_type(&mut self, p: &Ident) -> Option<ValueType> {
        match self.params.get(&p.name) {
            Some((param, _)) => {
                self.used_params.insert(p.name.clone());
                Some(ValueType::of_prop(&param.ty))
            }
            None => {
                let names: Vec<String> = self.params.keys().map(|k| format!("${k}")).collect();
                let help = did_you_mean(&format!("${}", p.name), names.iter().map(String::as_str))
                    .unwrap_or_else(|| {
                        "declare it in the query signature: `query q($name: Type)`".to_string()
                    });
                self.err(
                    Diagnostic::error(
                        "T05",
                        p.span.clone(),
                        format!("unknown parameter `${}`", p.name),
                    )
                    .with_help(help),
                );
                None
            }
        }
    }
}
