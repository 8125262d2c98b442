//! Plan files (`rehydrate run plan.toml`): one source, read once, and any number of named
//! routes, each a filter (`where`, `pattern` or `query`) and an action with the options its
//! command takes. The same document may be written as JSON.
//!
//! A route's options are its command's flags (`bus = "rebuild"` is `--bus rebuild`,
//! `partition_by = ["source"]` is `--partition-by source`), so a route takes exactly what the
//! command takes and is checked by the same code; an option the command does not have is an
//! error that names its line and column.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

/// A value of the document (TOML or JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Opt {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Opt>),
    Table(BTreeMap<String, Opt>),
}

impl Opt {
    fn scalar(&self) -> Option<String> {
        match self {
            Opt::Bool(b) => Some(b.to_string()),
            Opt::Int(i) => Some(i.to_string()),
            Opt::Float(f) => Some(f.to_string()),
            Opt::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Opt::Bool(b) => serde_json::Value::Bool(*b),
            Opt::Int(i) => serde_json::Value::from(*i),
            Opt::Float(f) => serde_json::Value::from(*f),
            Opt::Str(s) => serde_json::Value::String(s.clone()),
            Opt::List(l) => serde_json::Value::Array(l.iter().map(Opt::to_json).collect()),
            Opt::Table(t) => serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Doc {
    #[serde(default)]
    source: BTreeMap<String, Opt>,
    #[serde(default)]
    route: Vec<BTreeMap<String, Opt>>,
    #[serde(flatten)]
    other: BTreeMap<String, Opt>,
}

/// One route of a plan, as a command line of its command.
#[derive(Debug, Clone)]
pub struct PlanRoute {
    pub name: String,
    /// The command and its flags (without the program name).
    pub argv: Vec<String>,
    pub action: String,
    pub filter: String,
}

#[derive(Debug)]
pub struct Plan {
    pub path: String,
    pub routes: Vec<PlanRoute>,
}

/// The commands a route's `action` names.
const ACTIONS: [(&str, &[&str]); 8] = [
    ("replay", &["replay"]),
    ("invoke", &["invoke"]),
    ("populate parquet", &["populate", "parquet"]),
    ("populate dynamodb", &["populate", "dynamodb"]),
    ("populate postgres", &["populate", "postgres"]),
    ("populate mysql", &["populate", "mysql"]),
    ("populate opensearch", &["populate", "opensearch"]),
    ("populate redshift", &["populate", "redshift"]),
];

/// Source keys (a `[source]` table) and the flags they are.
const SOURCE_KEYS: [&str; 8] = [
    "from",
    "map",
    "batch_size",
    "segments",
    "consistent_read",
    "read_rate",
    "page_items",
    "shard",
];

/// Flags that belong to the `rehydrate run` command line, not to a route.
const RUN_KEYS: [&str; 5] = ["dry_run", "report_dir", "dead_letter", "output", "grace_period"];

/// Line and column (from 1) of the first `key` at or after byte `from` in `text`, as a TOML key
/// (`key =`) or a JSON key (`"key":`).
fn locate(text: &str, from: usize, key: &str) -> (usize, usize) {
    let rest = &text[from.min(text.len())..];
    let candidates = [format!("\"{key}\""), key.to_owned()];
    let mut best: Option<usize> = None;
    for c in &candidates {
        let mut search = 0;
        while let Some(i) = rest[search..].find(c.as_str()) {
            let at = search + i;
            let before = rest[..at].chars().last();
            let after = rest[at + c.len()..].trim_start().chars().next();
            if before.is_none_or(|b| b.is_whitespace() || b == '{' || b == ',')
                && matches!(after, Some('=') | Some(':'))
            {
                best = Some(best.map_or(at, |b: usize| b.min(at)));
                break;
            }
            search = at + c.len();
        }
    }
    let offset = from + best.unwrap_or(0);
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Where the `index`-th route starts in the text (its `[[route]]` header, or its object).
fn route_start(text: &str, index: usize) -> usize {
    let mut at = 0;
    for _ in 0..=index {
        match text[at..].find("[[route]]") {
            Some(i) => at += i + "[[route]]".len(),
            None => return 0,
        }
    }
    at
}

fn flag_args(key: &str, value: &Opt, out: &mut Vec<String>) -> std::result::Result<(), String> {
    let flag = format!("--{}", key.replace('_', "-"));
    match value {
        Opt::Bool(true) => out.push(flag),
        Opt::Bool(false) => {}
        Opt::List(items) => {
            for item in items {
                let v = item
                    .scalar()
                    .ok_or_else(|| format!("`{key}`: a list of strings or numbers is expected"))?;
                out.push(flag.clone());
                out.push(v);
            }
        }
        Opt::Table(t) if key == "map" => {
            for (field, path) in t {
                let path = path
                    .scalar()
                    .ok_or_else(|| format!("`map.{field}`: a path (string) is expected"))?;
                out.push(flag.clone());
                out.push(format!("{field}={path}"));
            }
        }
        Opt::Table(_) => return Err(format!("`{key}`: a table is not an option value here")),
        scalar => {
            out.push(flag);
            out.push(scalar.scalar().expect("a scalar"));
        }
    }
    Ok(())
}

impl Plan {
    /// Reads and checks a plan: TOML, or JSON when the file ends in `.json` (or starts with
    /// `{`). `forwarded` flags (the AWS settings and `--dry-run` of `rehydrate run`) go to every
    /// route.
    pub fn load(path: &Path, forwarded: &[String]) -> Result<Plan> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Input {
            path: path.to_owned(),
            source,
        })?;
        let shown = path.display().to_string();
        let bad = |line: usize, column: usize, msg: String| Error::usage(format!("{shown}:{line}:{column}: {msg}"));
        let is_json = path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
        let doc: Doc = if is_json {
            serde_json::from_str(&text).map_err(|e| bad(e.line(), e.column(), e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| {
                let (line, column) = e
                    .span()
                    .map(|s| {
                        let before = &text[..s.start.min(text.len())];
                        (
                            before.matches('\n').count() + 1,
                            before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
                        )
                    })
                    .unwrap_or((1, 1));
                bad(line, column, e.message().to_owned())
            })?
        };
        if let Some(key) = doc.other.keys().next() {
            let (l, c) = locate(&text, 0, key);
            return Err(bad(
                l,
                c,
                format!("unknown key `{key}`: a plan has a [source] table and [[route]] tables"),
            ));
        }
        let source_start = text.find("[source]").unwrap_or(0);
        let mut source_args = Vec::new();
        for (key, value) in &doc.source {
            if !SOURCE_KEYS.contains(&key.as_str()) {
                let (l, c) = locate(&text, source_start, key);
                return Err(bad(
                    l,
                    c,
                    format!(
                        "unknown source key `{key}`; the source takes {}",
                        SOURCE_KEYS.join(", ")
                    ),
                ));
            }
            flag_args(key, value, &mut source_args).map_err(|m| {
                let (l, c) = locate(&text, source_start, key);
                bad(l, c, m)
            })?;
        }
        if !doc.source.contains_key("from") {
            return Err(bad(
                1,
                1,
                "the plan has no source: add [source] with from = [\"…\"]".into(),
            ));
        }
        if doc.route.is_empty() {
            return Err(bad(
                1,
                1,
                "the plan has no routes: add a [[route]] with a name, a filter and an action".into(),
            ));
        }
        let command = <crate::cli::Cli as clap::CommandFactory>::command();
        let mut routes = Vec::new();
        for (i, route) in doc.route.iter().enumerate() {
            let start = match is_json {
                true => text.find("\"route\"").unwrap_or(0),
                false => route_start(&text, i),
            };
            let at = |key: &str| locate(&text, start, key);
            let name = match route.get("name") {
                Some(Opt::Str(n))
                    if !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
                {
                    n.clone()
                }
                Some(_) => {
                    let (l, c) = at("name");
                    return Err(bad(l, c, "a route's name is letters, digits, -, _ and . only".into()));
                }
                None => return Err(bad(1, 1, format!("route {} has no name", i + 1))),
            };
            if routes.iter().any(|r: &PlanRoute| r.name == name) {
                let (l, c) = at("name");
                return Err(bad(l, c, format!("two routes are named {name}")));
            }
            let action = match route.get("action") {
                Some(Opt::Str(a)) => a.replace('-', " "),
                _ => {
                    return Err(bad(
                        1,
                        1,
                        format!(
                            "route {name} has no action; use one of {}",
                            ACTIONS.map(|(a, _)| a.replace(' ', "-")).join(", ")
                        ),
                    ))
                }
            };
            let Some((_, words)) = ACTIONS.iter().find(|(a, _)| *a == action) else {
                let (l, c) = at("action");
                return Err(bad(
                    l,
                    c,
                    format!(
                        "route {name}: unknown action {action:?}; use one of {}",
                        ACTIONS.map(|(a, _)| a.replace(' ', "-")).join(", ")
                    ),
                ));
            };
            let sub = words
                .iter()
                .try_fold(&command, |c, w| c.find_subcommand(w))
                .expect("the actions are subcommands");
            let mut argv: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
            argv.extend(source_args.iter().cloned());
            let mut filter = Vec::new();
            for (key, value) in route {
                match key.as_str() {
                    "name" | "action" => continue,
                    "pattern" => {
                        let json = match value {
                            Opt::Str(s) => s.clone(),
                            other => other.to_json().to_string(),
                        };
                        filter.push(format!("pattern {json}"));
                        argv.push("--pattern".into());
                        argv.push(json);
                        continue;
                    }
                    _ => {}
                }
                if SOURCE_KEYS.contains(&key.as_str()) {
                    let (l, c) = at(key);
                    return Err(bad(
                        l,
                        c,
                        format!("route {name}: `{key}` belongs to [source] (one source for every route)"),
                    ));
                }
                if RUN_KEYS.contains(&key.as_str()) {
                    let (l, c) = at(key);
                    return Err(bad(
                        l,
                        c,
                        format!(
                            "route {name}: `{key}` is set for the whole run, on the rehydrate run command line (--{})",
                            key.replace('_', "-")
                        ),
                    ));
                }
                let long = key.replace('_', "-");
                if !sub.get_arguments().any(|a| a.get_long() == Some(long.as_str())) {
                    let (l, c) = at(key);
                    return Err(bad(
                        l,
                        c,
                        format!("route {name}: `{key}` is not an option of {action} (see rehydrate {action} --help)"),
                    ));
                }
                if matches!(key.as_str(), "where" | "query" | "since" | "until") {
                    filter.push(format!("{key} {}", value.scalar().unwrap_or_default()));
                }
                flag_args(key, value, &mut argv).map_err(|m| {
                    let (l, c) = at(key);
                    bad(l, c, format!("route {name}: {m}"))
                })?;
            }
            argv.extend(forwarded.iter().cloned());
            routes.push(PlanRoute {
                name,
                argv,
                action: action.clone(),
                filter: if filter.is_empty() {
                    "(all events)".into()
                } else {
                    filter.join(", ")
                },
            });
        }
        Ok(Plan { path: shown, routes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<Plan> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.toml");
        std::fs::write(&path, text).unwrap();
        Plan::load(&path, &[])
    }

    #[test]
    fn routes_become_command_lines() {
        let p = plan(
            r#"
[source]
from = ["testdata/events.ndjson"]
map = { "detail-type" = "eventType" }

[[route]]
name = "lake"
action = "populate-parquet"
where = "source = 'com.shop.orders'"
to = "out/"
partition_by = ["source"]

[[route]]
name = "bus"
action = "replay"
pattern = { source = ["com.shop.users"] }
bus = "rebuild"
no_marker = true
"#,
        )
        .unwrap();
        assert_eq!(p.routes.len(), 2);
        assert_eq!(
            p.routes[0].argv,
            [
                "populate",
                "parquet",
                "--from",
                "testdata/events.ndjson",
                "--map",
                "detail-type=eventType",
                "--partition-by",
                "source",
                "--to",
                "out/",
                "--where",
                "source = 'com.shop.orders'"
            ]
        );
        assert!(p.routes[1].argv.contains(&"--no-marker".to_owned()));
        assert!(p.routes[1]
            .argv
            .contains(&r#"{"source":["com.shop.users"]}"#.to_owned()));
    }

    #[test]
    fn unknown_keys_name_their_line_and_column() {
        let e = plan(
            "[source]\nfrom = [\"x\"]\n\n[[route]]\nname = \"a\"\naction = \"replay\"\nbus = \"b\"\n  buss = \"c\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("plan.toml:8:3: route a: `buss` is not an option of replay"),
            "{e}"
        );
        let e = plan("[source]\nfrom = [\"x\"]\nfrmo = 1\n[[route]]\nname = \"a\"\naction = \"replay\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("plan.toml:3:1: unknown source key `frmo`"), "{e}");
        let e = plan("[source]\nfrom = [\"x\"]\n[[route]]\nname = \"a\"\naction = \"replay\"\nreport_dir = \"r\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is set for the whole run"), "{e}");
        let e = plan("[source]\nfrom = [\"x\"\n").unwrap_err().to_string();
        assert!(e.contains("plan.toml:2:"), "{e}");
    }
}
