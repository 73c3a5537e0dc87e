//! `omnigraph embed`: fill, re-embed or clear `@embed` vectors, either in
//! a graph (`omnigraph embed URI`: each chunk its own commit, so an
//! interrupted run resumes where it stopped) or in a JSONL file in the
//! load format (`--input IN --output OUT --spec SCHEMA.pg`), with the
//! embedding client of the environment (reference
//! docs/user/search/embeddings.md, "CLI `omnigraph embed`").

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;

use super::*;
use crate::embed::{Embedder, EmbeddingConfig, Task};
use crate::engine::EmbedMode;

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The graph to backfill (a path or file:// URI); or use --input.
    #[arg(value_name = "URI")]
    pub uri: Option<String>,
    /// The graph, as a flag (`--uri` is accepted too).
    #[arg(long, alias = "uri", value_name = "URI", conflicts_with = "uri")]
    pub store: Option<String>,
    /// The branch to backfill.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// A JSONL file in the load format (`{"type", "data"}` per line) to
    /// embed into --output instead of a graph.
    #[arg(long, value_name = "FILE", requires = "output")]
    pub input: Option<PathBuf>,
    /// Where the embedded JSONL goes (`-` for stdout).
    #[arg(long, value_name = "FILE", requires = "input")]
    pub output: Option<PathBuf>,
    /// The schema (`.pg`) whose `@embed` annotations say what to embed in
    /// an --input file (`--schema` is accepted too).
    #[arg(long, alias = "schema", value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Only these node types (repeatable).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only records whose `data.FIELD` equals VALUE, as `TYPE:FIELD=VALUE`
    /// (repeatable; --input only).
    #[arg(long = "select", value_name = "TYPE:FIELD=VALUE")]
    pub select: Vec<String>,
    /// Embed every vector whose source text is present, replacing stored
    /// ones (default: only missing vectors).
    #[arg(long, conflicts_with = "clean")]
    pub reembed_all: bool,
    /// Remove the vectors instead (nullable ones only, in a graph).
    #[arg(long)]
    pub clean: bool,
    /// Rows per commit when backfilling a graph.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub chunk_rows: usize,
    /// The actor recorded on the commits.
    #[arg(long = "as", value_name = "ACTOR")]
    pub actor: Option<String>,
    /// A policy bundle the writes must pass, for `--as`.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

impl EmbedArgs {
    fn mode(&self) -> EmbedMode {
        if self.clean {
            EmbedMode::Clean
        } else if self.reembed_all {
            EmbedMode::ReembedAll
        } else {
            EmbedMode::FillMissing
        }
    }
}

fn bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{msg} [{elapsed}] {bar:30} {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

/// `omnigraph embed`.
pub fn embed(a: EmbedArgs) -> Result<ExitCode, CliError> {
    if a.input.is_some() {
        return embed_file(&a);
    }
    if !a.select.is_empty() {
        return Err(CliError::Usage(
            "--select filters records of an --input file; on a graph use --type".into(),
        ));
    }
    let uri = match (&a.uri, &a.store) {
        (Some(u), None) | (None, Some(u)) => u.clone(),
        _ => {
            return Err(CliError::Usage(
                "give a graph (URI or --store) to backfill, or --input FILE --output FILE --spec SCHEMA.pg".into(),
            ));
        }
    };
    crate::cli::remote::refuse_http_uri(&uri)?;
    let rt = runtime()?;
    let g = open_for_write(&rt, &uri, &a.policy)?;
    let pb = std::sync::Mutex::new(None::<(String, ProgressBar)>);
    let progress = |p: &crate::engine::EmbedProgress| {
        let label = format!("{}.{}", p.table, p.property);
        let Ok(mut slot) = pb.lock() else { return };
        if slot.as_ref().is_none_or(|(l, _)| *l != label) {
            if let Some((_, old)) = slot.take() {
                old.finish();
            }
            *slot = Some((label.clone(), bar(p.total as u64, &label)));
        }
        if let Some((_, b)) = slot.as_ref() {
            b.set_position(p.done as u64);
        }
    };
    let r = rt
        .block_on(g.embed_branch(
            &a.branch,
            a.mode(),
            &a.types,
            a.chunk_rows,
            &actor(&a.actor),
            &progress,
        ))
        .map_err(engine);
    if let Ok(mut slot) = pb.lock()
        && let Some((_, b)) = slot.take()
    {
        b.finish();
    }
    let r = r?;
    if a.json {
        json_out(&r);
        return Ok(ExitCode::SUCCESS);
    }
    if r.written.is_empty() {
        println!("nothing to embed on `{}`", a.branch);
    }
    for (label, n) in &r.written {
        let verb = if a.clean { "cleared" } else { "embedded" };
        println!("{label}: {verb} {n}");
    }
    for (label, n) in &r.skipped {
        println!("{label}: skipped {n} (no source text, or a required vector)");
    }
    println!("{} commit(s) on `{}`", r.commits.len(), a.branch);
    Ok(ExitCode::SUCCESS)
}

/// The `--json` report of a file run (reference v0.10 field names).
#[derive(Debug, Default, serde::Serialize)]
struct FileReport {
    records: usize,
    selected_records: usize,
    embedded_records: usize,
    cleaned_records: usize,
}

/// Records embedded per provider round (bounds memory on big files).
const FILE_CHUNK: usize = 1_024;

fn embed_file(a: &EmbedArgs) -> Result<ExitCode, CliError> {
    let (Some(input), Some(output)) = (&a.input, &a.output) else {
        return Err(CliError::Usage("--input needs --output".into()));
    };
    if a.uri.is_some() || a.store.is_some() {
        return Err(CliError::Usage(
            "give either a graph or --input/--output, not both".into(),
        ));
    }
    let spec = a.spec.as_ref().ok_or_else(|| {
        CliError::Usage(
            "--input needs --spec SCHEMA.pg: its @embed annotations say what to embed".into(),
        )
    })?;
    let src = std::fs::read_to_string(spec)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", spec.display())))?;
    let catalog = crate::schema::compile_schema_file(&spec.display().to_string(), &src)
        .map_err(|d| CliError::Input(d.render(false)))?;
    for t in &a.types {
        if catalog.node(t).is_none() {
            return Err(CliError::Usage(format!(
                "--type {t}: {} declares no node type `{t}`",
                spec.display()
            )));
        }
    }
    let mut selects: Vec<(String, String, String)> = Vec::new();
    for s in &a.select {
        let parsed = s
            .split_once(':')
            .and_then(|(t, rest)| rest.split_once('=').map(|(f, v)| (t, f, v)))
            .filter(|(t, f, _)| !t.is_empty() && !f.is_empty());
        let Some((t, f, v)) = parsed else {
            return Err(CliError::Usage(format!(
                "--select {s}: write TYPE:FIELD=VALUE"
            )));
        };
        selects.push((t.to_string(), f.to_string(), v.to_string()));
    }
    let mode = a.mode();
    let embedder = if mode == EmbedMode::Clean {
        None
    } else {
        let c = EmbeddingConfig::from_env().map_err(|e| CliError::Engine(e.into()))?;
        Some(Embedder::new(c).map_err(|e| CliError::Engine(e.into()))?)
    };
    let reader: Box<dyn BufRead> = if input.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(std::fs::File::open(input).map_err(|e| {
            CliError::Input(format!("cannot read {}: {e}", input.display()))
        })?))
    };
    let to_stdout = output.as_os_str() == "-";
    let tmp = {
        let mut name = output.as_os_str().to_owned();
        name.push(".embed-partial");
        PathBuf::from(name)
    };
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(std::io::BufWriter::new(std::io::stdout()))
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(&tmp)
                .map_err(|e| CliError::Input(format!("cannot write {}: {e}", tmp.display())))?,
        ))
    };
    let rt = runtime()?;
    let pb = spinner("embedding");
    let mut report = FileReport::default();
    let result = embed_lines(
        a,
        &catalog,
        embedder.as_ref(),
        mode,
        &selects,
        reader,
        &mut out,
        &rt,
        &pb,
        &mut report,
        input,
    );
    if let Err(e) = result {
        drop(out);
        if !to_stdout {
            let _ = std::fs::remove_file(&tmp);
        }
        pb.finish_and_clear();
        return Err(e);
    }
    out.flush()
        .map_err(|e| CliError::Input(format!("cannot write output: {e}")))?;
    drop(out);
    if !to_stdout {
        std::fs::rename(&tmp, output).map_err(|e| {
            CliError::Input(format!(
                "cannot move {} to {}: {e}",
                tmp.display(),
                output.display()
            ))
        })?;
    }
    pb.finish_and_clear();
    if a.json && to_stdout {
        // stdout carries the records.
        eprintln!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else if a.json {
        json_out(&report);
    } else if !to_stdout {
        println!(
            "{} records, {} selected, {} embedded, {} cleaned → {}",
            report.records,
            report.selected_records,
            report.embedded_records,
            report.cleaned_records,
            output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads every record of `reader`, embeds them a chunk at a time and
/// writes them to `out` in input order.
#[allow(clippy::too_many_arguments)]
fn embed_lines(
    a: &EmbedArgs,
    catalog: &crate::schema::Catalog,
    embedder: Option<&Embedder>,
    mode: EmbedMode,
    selects: &[(String, String, String)],
    reader: Box<dyn BufRead>,
    out: &mut Box<dyn Write>,
    rt: &tokio::runtime::Runtime,
    pb: &ProgressBar,
    report: &mut FileReport,
    input: &std::path::Path,
) -> Result<(), CliError> {
    let mut pending: Vec<(usize, serde_json::Value)> = Vec::new();
    let mut lines = reader.lines().enumerate();
    loop {
        let next = lines.next();
        let done = next.is_none();
        if let Some((i, line)) = next {
            let line = line.map_err(|e| CliError::Input(format!("{}: {e}", input.display())))?;
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
                CliError::Input(format!("{} line {}: not JSON: {e}", input.display(), i + 1))
            })?;
            report.records += 1;
            pending.push((i + 1, v));
        }
        if pending.len() >= FILE_CHUNK || (done && !pending.is_empty()) {
            let chunk = std::mem::take(&mut pending);
            let n = chunk.len() as u64;
            let chunk = rt.block_on(embed_records(
                catalog, embedder, mode, &a.types, selects, chunk, report, input,
            ))?;
            for v in chunk {
                writeln!(out, "{v}")
                    .map_err(|e| CliError::Input(format!("cannot write output: {e}")))?;
            }
            pb.inc(n);
        }
        if done {
            break;
        }
    }
    Ok(())
}

/// Embeds (or cleans) one chunk of records in place, one provider call per
/// (type, property) for the whole chunk.
#[allow(clippy::too_many_arguments)]
async fn embed_records(
    catalog: &crate::schema::Catalog,
    embedder: Option<&Embedder>,
    mode: EmbedMode,
    types: &[String],
    selects: &[(String, String, String)],
    mut records: Vec<(usize, serde_json::Value)>,
    report: &mut FileReport,
    input: &std::path::Path,
) -> Result<Vec<serde_json::Value>, CliError> {
    // (type, vector property, dim, recorded model) → (record index, text)
    type Work = BTreeMap<(String, String, usize, Option<String>), Vec<(usize, String)>>;
    let mut work: Work = BTreeMap::new();
    for (ri, (_, v)) in records.iter_mut().enumerate() {
        let Some(t) = v.get("type").and_then(|t| t.as_str()).map(str::to_string) else {
            continue;
        };
        let Some(n) = catalog.node(&t) else { continue };
        if !types.is_empty() && !types.contains(&t) {
            continue;
        }
        let data = v.get("data").cloned().unwrap_or_default();
        // A type with selectors keeps the records any of them matches.
        let mut mine = selects.iter().filter(|(st, _, _)| *st == t).peekable();
        let picked = mine.peek().is_none()
            || mine.any(|(_, f, want)| match data.get(f) {
                Some(serde_json::Value::String(s)) => s == want,
                Some(other) => other.to_string() == *want,
                None => false,
            });
        if !picked {
            continue;
        }
        let targets: Vec<_> = n
            .properties
            .iter()
            .filter_map(|p| {
                let e = p.embed.as_ref()?;
                match p.ty {
                    crate::schema::PropType::Vector { dim } => Some((
                        p.name.clone(),
                        e.source.clone(),
                        dim as usize,
                        e.model.clone(),
                    )),
                    _ => None,
                }
            })
            .collect();
        if targets.is_empty() {
            continue;
        }
        report.selected_records += 1;
        let mut cleaned = false;
        for (prop, source, dim, model) in targets {
            let has = data.get(&prop).is_some_and(|x| !x.is_null());
            match mode {
                EmbedMode::Clean => {
                    if has && let Some(d) = v.get_mut("data").and_then(|d| d.as_object_mut()) {
                        d.remove(&prop);
                        cleaned = true;
                    }
                }
                EmbedMode::FillMissing if has => {}
                EmbedMode::FillMissing | EmbedMode::ReembedAll => {
                    if let Some(text) = data.get(&source).and_then(|s| s.as_str())
                        && !text.trim().is_empty()
                    {
                        work.entry((t.clone(), prop, dim, model))
                            .or_default()
                            .push((ri, text.to_string()));
                    }
                }
            }
        }
        report.cleaned_records += usize::from(cleaned);
    }
    let mut embedded = HashSet::new();
    if let Some(embedder) = embedder {
        for ((_, prop, dim, model), items) in work {
            embedder
                .check_model(&prop, model.as_deref())
                .map_err(|e| CliError::Engine(e.into()))?;
            let texts: Vec<String> = items.iter().map(|(_, t)| t.clone()).collect();
            let vectors = embedder
                .embed(&texts, dim, Task::Document)
                .await
                .map_err(|e| {
                    let first = items.first().map(|(ri, _)| records[*ri].0).unwrap_or(0);
                    CliError::Input(format!(
                        "{} (records from line {first}): {e}",
                        input.display()
                    ))
                })?;
            for ((ri, _), vec) in items.into_iter().zip(vectors) {
                if let Some(d) = records[ri]
                    .1
                    .get_mut("data")
                    .and_then(|d| d.as_object_mut())
                {
                    d.insert(prop.clone(), serde_json::json!(vec));
                    embedded.insert(ri);
                }
            }
        }
    }
    report.embedded_records += embedded.len();
    Ok(records.into_iter().map(|(_, v)| v).collect())
}
