//! Graph reads: `query` (and stored-query aliases), `snapshot`, `export`.

use super::*;

/// Reads `.gq` source from a file or inline text.
pub(super) fn gq_source(
    query: &Option<PathBuf>,
    source: &Option<String>,
) -> Result<(String, String), CliError> {
    match (query, source) {
        (Some(p), None) => Ok((p.display().to_string(), crate::cli::read(p)?)),
        (None, Some(s)) => Ok(("<inline>".to_string(), s.clone())),
        _ => Err(CliError::Usage(
            "give the query with --query FILE or -e SOURCE (a stored query is invoked by name \
             only on a served graph: --server URL --graph ID)"
                .into(),
        )),
    }
}

/// The parameters of `--params JSON` or `--params-file FILE` (`-` reads
/// stdin); `Null` when neither is given. Errors: an unreadable file (I/O),
/// text that is not JSON (input, naming the flag and the file).
pub(super) fn params_json(gq: &GqArgs) -> Result<serde_json::Value, CliError> {
    match (&gq.params, &gq.params_file) {
        (Some(p), _) => serde_json::from_str(p)
            .map_err(|e| CliError::Input(format!("--params is not valid JSON: {e}"))),
        (None, Some(f)) => {
            let text = if f.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(f)
            }
            .map_err(|source| CliError::Read {
                path: f.display().to_string(),
                source,
            })?;
            serde_json::from_str(&text).map_err(|e| {
                CliError::Input(format!(
                    "--params-file {} is not valid JSON: {e}",
                    f.display()
                ))
            })
        }
        (None, None) => Ok(serde_json::Value::Null),
    }
}

/// Invokes the server's stored query `name` (`POST
/// /graphs/{id}/queries/{name}`) after checking in its catalog (`GET
/// /graphs/{id}/queries`) that it exists and is a mutation exactly when
/// `mutation` (the verb asserts the kind, as the reference's does).
/// Errors: no name, an unknown name (with the close ones), the other kind,
/// the server's refusal.
pub(super) fn invoke_stored<T: serde::de::DeserializeOwned>(
    rt: &tokio::runtime::Runtime,
    r: &Remote,
    name: &Option<String>,
    mutation: bool,
    body: &crate::api::InvokeStoredQueryRequest,
    if_commit: Option<&str>,
) -> Result<T, CliError> {
    let Some(name) = name else {
        return Err(CliError::Usage(
            "name the stored query to run, or give a query with --query FILE or -e SOURCE".into(),
        ));
    };
    let catalog: crate::api::QueriesCatalogOutput = rt.block_on(r.graph_get(&["queries"], &[]))?;
    let Some(entry) = catalog.queries.iter().find(|q| &q.name == name) else {
        let known = catalog.queries.iter().map(|q| q.name.as_str());
        return Err(CliError::Input(format!(
            "the server has no stored query `{name}`; {}",
            crate::diag::did_you_mean(name, known.clone())
                .unwrap_or_else(|| crate::diag::valid_list("stored queries", known))
        )));
    };
    if entry.mutation != mutation {
        return Err(CliError::Input(if mutation {
            format!("`{name}` is a stored read query; run it with `omnigraph query`")
        } else {
            format!("`{name}` is a stored mutation; run it with `omnigraph mutate`")
        }));
    }
    match if_commit {
        Some(c) => rt.block_on(r.graph_post_if(&["queries", name, "if-graph-commit"], c, body)),
        None => rt.block_on(r.graph_post(&["queries", name], body)),
    }
}

/// `omnigraph alias NAME ARGS…`: the alias's stored query on its server
/// (module [`crate::cli::operator`]). Parameters: the alias's fixed `params`,
/// then each positional argument under the alias's `args` name in order
/// (read as JSON when it parses, else as a string), then `--params`.
/// Errors: an unknown alias, more arguments than names, bad `--params`,
/// the server's refusal.
pub fn alias(
    name: &str,
    args: &[String],
    params: Option<&str>,
    format: Option<Format>,
    json: bool,
) -> Result<ExitCode, CliError> {
    let cfg = crate::cli::operator::config()?;
    let a = cfg.aliases.get(name).cloned().ok_or_else(|| {
        let known = cfg.aliases.keys().map(String::as_str);
        CliError::Usage(format!(
            "no alias `{name}` in {}; {}",
            crate::cli::operator::home().join("config.yaml").display(),
            crate::diag::did_you_mean(name, known.clone())
                .unwrap_or_else(|| crate::diag::valid_list("aliases", known))
        ))
    })?;
    if args.len() > a.args.len() {
        return Err(CliError::Usage(format!(
            "alias `{name}` takes {} argument(s) ({}), got {}",
            a.args.len(),
            a.args.join(", "),
            args.len()
        )));
    }
    let mut p = a.params.clone();
    for (k, v) in a.args.iter().zip(args) {
        let value =
            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.clone()));
        p.insert(k.clone(), value);
    }
    if let Some(text) = params {
        let given: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| CliError::Input(format!("--params is not a JSON object: {e}")))?;
        p.extend(given);
    }
    let format = match (json, format, a.format.as_deref()) {
        (true, _, _) => Format::Json,
        (false, Some(f), _) => f,
        (false, None, Some(f)) => <Format as clap::ValueEnum>::from_str(f, true)
            .map_err(|_| CliError::Input(format!("alias `{name}`: unknown format `{f}`")))?,
        (false, None, None) => Format::Table,
    };
    let r = Remote::new(&a.server, a.graph.clone())?;
    let rt = runtime()?;
    let body = crate::api::InvokeStoredQueryRequest {
        params: Some(serde_json::Value::Object(p)),
        branch: None,
        snapshot: None,
        limits: None,
    };
    let catalog: crate::api::QueriesCatalogOutput = rt.block_on(r.graph_get(&["queries"], &[]))?;
    let mutation = catalog
        .queries
        .iter()
        .find(|q| q.name == a.query)
        .map(|q| q.mutation)
        .unwrap_or(false);
    if mutation {
        let out: crate::api::ChangeOutput =
            invoke_stored(&rt, &r, &Some(a.query.clone()), true, &body, None)?;
        json_out(&out);
    } else {
        let out: crate::api::ReadOutput =
            invoke_stored(&rt, &r, &Some(a.query.clone()), false, &body, None)?;
        print_rows(format, &out);
    }
    Ok(ExitCode::SUCCESS)
}

/// Compiles the source against the graph's catalog and picks the query:
/// `name`, or the only one. `Err(Ok(code))` when diagnostics were printed.
pub(super) fn pick(
    catalog: &crate::schema::Catalog,
    file: &str,
    src: &str,
    name: &Option<String>,
) -> Result<Result<crate::query::CheckedQuery, ExitCode>, CliError> {
    let (compiled, diags) = crate::query::compile_queries_file(catalog, file, src);
    if compiled.has_errors() {
        eprint!("{}", diags.render(crate::cli::color()));
        return Ok(Err(ExitCode::from(1)));
    }
    let q = match name {
        Some(n) => compiled.query(n).cloned().ok_or_else(|| {
            let known = compiled.declared.iter().map(String::as_str);
            CliError::Input(format!(
                "no query named `{n}`; {}",
                crate::diag::did_you_mean(n, known.clone())
                    .unwrap_or_else(|| crate::diag::valid_list("queries", known))
            ))
        })?,
        None => match compiled.queries.as_slice() {
            [one] => one.clone(),
            _ => {
                return Err(CliError::Usage(format!(
                    "the source holds {} queries; name the one to run ({})",
                    compiled.queries.len(),
                    compiled.declared.join(", ")
                )));
            }
        },
    };
    Ok(Ok(q))
}

pub fn query(a: QueryRunArgs) -> Result<ExitCode, CliError> {
    let params = params_json(&a.gq)?;
    let rt = runtime()?;
    let format = if a.json { Format::Json } else { a.format };
    if let Some(r) = a.remote.remote_unless(a.store.is_some())? {
        if a.gq.query.is_none() && a.gq.source.is_none() {
            let out: crate::api::ReadOutput = invoke_stored(
                &rt,
                &r,
                &a.name,
                false,
                &crate::api::InvokeStoredQueryRequest {
                    params: (!params.is_null()).then_some(params),
                    branch: a.at.branch.clone(),
                    snapshot: a.at.commit.clone(),
                    limits: None,
                },
                None,
            )?;
            print_rows(format, &out);
            return Ok(ExitCode::SUCCESS);
        }
        let (_, src) = gq_source(&a.gq.query, &a.gq.source)?;
        let out: crate::api::ReadOutput = rt.block_on(r.graph_post(
            &["query"],
            &crate::api::QueryRequest {
                query: src,
                name: a.name.clone(),
                params: (!params.is_null()).then_some(params),
                branch: a.at.branch.clone(),
                snapshot: a.at.commit.clone(),
                limits: None,
            },
        ))?;
        print_rows(format, &out);
        return Ok(ExitCode::SUCCESS);
    }
    let (file, src) = gq_source(&a.gq.query, &a.gq.source)?;
    let store = a.store.clone().ok_or_else(|| {
        CliError::Usage("which graph? pass --store URI (or --server URL --graph ID)".into())
    })?;
    crate::cli::remote::refuse_http_uri(&store)?;
    // The CLI's limits are higher than a server's (docs/cli.md, "Limits").
    let g = rt
        .block_on(Graph::open(&store))
        .map_err(engine)?
        .with_query_limits(crate::engine::budget::QueryLimits::cli());
    // A commit from before a schema apply is read with its own schema.
    let catalog = rt.block_on(g.catalog_at(&a.at.read_at())).map_err(engine)?;
    let q = match pick(&catalog, &file, &src, &a.name)? {
        Ok(q) => q,
        Err(code) => return Ok(code),
    };
    let r = rt
        .block_on(g.query(&q, &params, &a.at.read_at()))
        .map_err(engine)?;
    let out = crate::api::ReadOutput {
        query_name: q.name.clone(),
        target: crate::api::ReadTargetOutput {
            branch: match &a.at.commit {
                Some(_) => None,
                None => Some(a.at.branch.clone().unwrap_or_else(|| "main".into())),
            },
            snapshot: a.at.commit.clone(),
        },
        columns: r.columns,
        row_count: r.rows.len(),
        rows: r.rows,
        graph_commit_id: Some(r.graph_commit_id),
    };
    print_rows(format, &out);
    Ok(ExitCode::SUCCESS)
}

/// Prints a read's rows in `format`: `json` is the `POST /query` answer
/// (the same embedded and remote), `jsonl` a metadata line then one
/// object per row, `csv`, `table` (the row count on stderr) or `kv`.
pub(super) fn print_rows(format: Format, r: &crate::api::ReadOutput) {
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    match format {
        Format::Json => json_out(r),
        Format::Jsonl => {
            println!(
                "{}",
                serde_json::json!({"columns": r.columns, "graph_commit_id": r.graph_commit_id, "row_count": r.rows.len()})
            );
            for row in &r.rows {
                println!("{}", serde_json::Value::Object(row.clone()));
            }
        }
        Format::Csv => {
            let quote = |s: String| {
                if s.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s
                }
            };
            println!(
                "{}",
                r.columns
                    .iter()
                    .map(|c| quote(c.clone()))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            for row in &r.rows {
                let line: Vec<String> = r
                    .columns
                    .iter()
                    .map(|c| quote(row.get(c).map(cell).unwrap_or_default()))
                    .collect();
                println!("{}", line.join(","));
            }
        }
        Format::Table => {
            let cells: Vec<Vec<String>> = r
                .rows
                .iter()
                .map(|row| {
                    r.columns
                        .iter()
                        .map(|c| row.get(c).map(cell).unwrap_or_default())
                        .collect()
                })
                .collect();
            let widths: Vec<usize> = r
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    cells
                        .iter()
                        .map(|row| row[i].chars().count().min(48))
                        .chain([c.len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let fit = |s: &str, w: usize| {
                let t: String = s.chars().take(w).collect();
                format!("{t:<w$}")
            };
            println!(
                "{}",
                r.columns
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| fit(c, *w))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
            for row in &cells {
                println!(
                    "{}",
                    row.iter()
                        .zip(&widths)
                        .map(|(c, w)| fit(c, *w))
                        .collect::<Vec<_>>()
                        .join("  ")
                );
            }
            let n = r.rows.len();
            eprintln!("({n} {})", if n == 1 { "row" } else { "rows" });
        }
        Format::Kv => {
            let w = r
                .columns
                .iter()
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0);
            for (i, row) in r.rows.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                for c in &r.columns {
                    let v = row.get(c).map(cell).unwrap_or_default();
                    let line = format!("{:<w$}  {v}", format!("{c}:"), w = w + 1);
                    println!("{}", line.trim_end());
                }
            }
            let n = r.rows.len();
            eprintln!("({n} {})", if n == 1 { "row" } else { "rows" });
        }
    }
}

pub fn snapshot(a: SnapshotArgs) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    if let Some(r) = a.target.remote()? {
        if a.at.commit.is_some() {
            return Err(CliError::Usage(
                "a served graph's snapshot is of a branch (--branch); --snapshot ID reads \
                 a commit only on a graph opened directly"
                    .into(),
            ));
        }
        let branch = a.at.branch.clone().unwrap_or_else(|| "main".into());
        let out: crate::api::SnapshotOutput =
            rt.block_on(r.graph_get(&["snapshot"], &[("branch", branch)]))?;
        if a.json {
            json_out(&out);
        } else {
            println!(
                "branch {} at commit {} (manifest v{})",
                out.graph_branch, out.graph_commit_id, out.graph_manifest_version
            );
            let name = |d: &crate::api::SnapshotDatasetOutput| {
                format!("{}:{}", d.entity_kind, d.type_name)
            };
            let w = out
                .datasets
                .iter()
                .map(|d| name(d).len())
                .max()
                .unwrap_or(5)
                .max(5);
            println!("{:<w$}  {:>7}  {:>9}", "TABLE", "VERSION", "ROWS");
            for d in &out.datasets {
                println!(
                    "{:<w$}  {:>7}  {:>9}",
                    name(d),
                    d.published_dataset_version,
                    d.entity_count
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let uri = a.target.resolve()?;
    let g = rt.block_on(Graph::open(&uri)).map_err(engine)?;
    let s = rt.block_on(g.snapshot(&a.at.read_at())).map_err(engine)?;
    if a.json {
        json_out(&crate::api::SnapshotOutput::of(&s));
    } else {
        match &s.branch {
            Some(b) => println!(
                "branch {b} at commit {} (manifest v{})",
                s.commit, s.manifest_version
            ),
            None => println!("commit {}", s.commit),
        }
        let w = s
            .tables
            .iter()
            .map(|t| t.table.as_str().len())
            .max()
            .unwrap_or(5)
            .max(5);
        println!("{:<w$}  {:>7}  {:>9}", "TABLE", "VERSION", "ROWS");
        for t in &s.tables {
            println!("{:<w$}  {:>7}  {:>9}", t.table, t.version, t.rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn export(a: ExportArgs) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    if let Some(r) = a.target.remote()? {
        if a.at.commit.is_some() {
            return Err(CliError::Usage(
                "a served graph exports a branch (--branch); --snapshot ID exports a commit \
                 only on a graph opened directly"
                    .into(),
            ));
        }
        let mut sink: Box<dyn Write> = match &a.out {
            Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(
                |source| CliError::Read {
                    path: p.display().to_string(),
                    source,
                },
            )?)),
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        let n = rt.block_on(r.graph_post_stream(
            &["export"],
            &crate::api::ExportRequest {
                branch: Some(a.at.branch.clone().unwrap_or_else(|| "main".into())),
                type_names: a.types.clone(),
            },
            &mut *sink,
        ))?;
        sink.flush().map_err(|source| CliError::Read {
            path: "the output".into(),
            source,
        })?;
        if a.out.is_some() {
            eprintln!("exported {n} bytes");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let uri = a.target.resolve()?;
    let g = rt.block_on(Graph::open(&uri)).map_err(engine)?;
    let types = (!a.types.is_empty()).then_some(a.types.as_slice());
    let pb = spinner("exporting");
    let mut sink: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |source| CliError::Read {
                path: p.display().to_string(),
                source,
            },
        )?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let n = rt
        .block_on(g.export(&a.at.read_at(), types, &mut *sink, |k| pb.inc(k as u64)))
        .map_err(engine)?;
    pb.finish_and_clear();
    drop(sink);
    if a.out.is_some() {
        eprintln!("exported {n} rows");
    }
    Ok(ExitCode::SUCCESS)
}
