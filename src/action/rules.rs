//! `invoke --rules-from-bus`: a bus's rules and their targets, read from EventBridge, and what
//! EventBridge delivers to a target: the event itself, the target's `Input` (constant JSON), its
//! `InputPath`, or its `InputTransformer` (`InputPathsMap` + `InputTemplate`, with the reserved
//! variables `<aws.events.event>`, `<aws.events.event.json>`, `<aws.events.rule-name>`,
//! `<aws.events.rule-arn>` and `<aws.events.event.ingestion-time>`).

use serde_json::Value;

use crate::action::fault::classify_sdk;
use crate::{Error, Result};

/// What a target is given for each event.
#[derive(Debug, Clone)]
pub enum Input {
    /// The event (no input configured).
    Event,
    /// `Input`: this JSON text, whatever the event.
    Constant(String),
    /// `InputPath`: the part of the event at this JSONPath.
    Path(String),
    /// `InputTransformer`.
    Transformer {
        paths: Vec<(String, String)>,
        template: String,
    },
}

/// A target's input and the rule it belongs to.
#[derive(Debug, Clone)]
pub struct TargetInput {
    pub input: Input,
    pub rule_name: String,
    pub rule_arn: String,
}

/// One target of one rule of the bus.
#[derive(Debug, Clone)]
pub struct RuleTarget {
    pub rule_name: String,
    pub rule_arn: String,
    pub pattern: String,
    pub target_id: String,
    pub arn: String,
    pub input: Input,
}

impl RuleTarget {
    pub fn is_lambda(&self) -> bool {
        self.arn.split(':').nth(2) == Some("lambda")
    }

    /// The route's name: `rule/target-id`.
    pub fn route(&self) -> String {
        format!("{}/{}", self.rule_name, self.target_id)
    }
}

/// The account and region of a rule's ARN (`arn:aws:events:REGION:ACCOUNT:rule/…`): what
/// EventBridge fills into an event stored without them.
pub fn delivery_of(rule_arn: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = rule_arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "events", region, account, ..] if !region.is_empty() && !account.is_empty() => {
            Some(((*account).to_owned(), (*region).to_owned()))
        }
        _ => None,
    }
}

/// Reads the rules of `bus` (every page) and their targets (every page). Disabled rules and
/// rules without an event pattern (schedules) are left out unless `include_disabled` (schedules
/// always are: they match no event); `only` keeps the named rules and refuses unknown names.
pub async fn read_bus(
    client: &aws_sdk_eventbridge::Client,
    bus: &str,
    only: &[String],
    include_disabled: bool,
) -> Result<(Vec<RuleTarget>, Vec<String>)> {
    let failed = |what: &str, e: crate::action::fault::Fault| {
        Error::Target {
        target: format!("eventbridge:{bus}"),
        message: format!(
            "{what}: {}: {}; check --rules-from-bus (a bus name or ARN), the region and the credentials (events:ListRules, events:ListTargetsByRule)",
            e.code, e.message
        ),
    }
    };
    let mut rules = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_rules()
            .event_bus_name(bus)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| failed("ListRules", classify_sdk(&e)))?;
        rules.extend(page.rules().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    for name in only {
        if !rules.iter().any(|r| r.name() == Some(name.as_str())) {
            let names: Vec<&str> = rules.iter().filter_map(|r| r.name()).collect();
            return Err(Error::usage(format!(
                "--rule {name}: the bus {bus} has no such rule; its rules are: {}",
                if names.is_empty() {
                    "(none)".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        }
    }
    let mut left_out = Vec::new();
    let mut targets = Vec::new();
    for rule in &rules {
        let name = rule.name().unwrap_or_default().to_owned();
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let Some(pattern) = rule.event_pattern() else {
            left_out.push(format!("{name}: a schedule, not an event pattern"));
            continue;
        };
        let enabled = !matches!(rule.state(), Some(aws_sdk_eventbridge::types::RuleState::Disabled));
        if !enabled && !include_disabled {
            left_out.push(format!("{name}: disabled (--include-disabled takes it)"));
            continue;
        }
        let rule_arn = rule.arn().unwrap_or_default().to_owned();
        let mut token = None;
        loop {
            let page = client
                .list_targets_by_rule()
                .rule(&name)
                .event_bus_name(bus)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| failed(&format!("ListTargetsByRule {name}"), classify_sdk(&e)))?;
            for t in page.targets() {
                let input = if let Some(tr) = t.input_transformer() {
                    let mut paths: Vec<(String, String)> = tr
                        .input_paths_map()
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default();
                    paths.sort();
                    Input::Transformer {
                        paths,
                        template: tr.input_template().to_owned(),
                    }
                } else if let Some(c) = t.input() {
                    Input::Constant(c.to_owned())
                } else if let Some(p) = t.input_path() {
                    Input::Path(p.to_owned())
                } else {
                    Input::Event
                };
                targets.push(RuleTarget {
                    rule_name: name.clone(),
                    rule_arn: rule_arn.clone(),
                    pattern: pattern.to_owned(),
                    target_id: t.id().to_owned(),
                    arn: t.arn().to_owned(),
                    input,
                });
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
    }
    Ok((targets, left_out))
}

/// The values at a JSONPath of the subset EventBridge supports (`$`, `.name`, `[n]`,
/// `['name']`, `*`): one value, or an array of the matches of a wildcard.
pub fn json_path(event: &Value, path: &str) -> Option<Value> {
    let rest = path.trim().strip_prefix('$')?;
    let mut current: Vec<&Value> = vec![event];
    let mut wildcard = false;
    let mut chars = rest;
    while !chars.is_empty() {
        let (step, next) = if let Some(r) = chars.strip_prefix("['") {
            let end = r.find("']")?;
            (Step::Key(&r[..end]), &r[end + 2..])
        } else if let Some(r) = chars.strip_prefix("[*]") {
            (Step::All, r)
        } else if let Some(r) = chars.strip_prefix('[') {
            let end = r.find(']')?;
            (Step::Index(r[..end].trim().parse().ok()?), &r[end + 1..])
        } else if let Some(r) = chars.strip_prefix(".*") {
            (Step::All, r)
        } else if let Some(r) = chars.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            (Step::Key(&r[..end]), &r[end..])
        } else {
            return None;
        };
        chars = next;
        let mut out = Vec::new();
        for v in current {
            match (&step, v) {
                (Step::Key(k), Value::Object(m)) => out.extend(m.get(*k)),
                (Step::Index(i), Value::Array(a)) => out.extend(a.get(*i)),
                (Step::All, Value::Array(a)) => out.extend(a.iter()),
                (Step::All, Value::Object(m)) => out.extend(m.values()),
                _ => {}
            }
        }
        if matches!(step, Step::All) {
            wildcard = true;
        }
        current = out;
    }
    match (wildcard, current.as_slice()) {
        (true, all) => Some(Value::Array(all.iter().map(|v| (*v).clone()).collect())),
        (false, [one]) => Some((*one).clone()),
        _ => None,
    }
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
    All,
}

/// The payload a target receives for `event` (the delivered envelope).
pub fn deliver(input: &TargetInput, event: &Value, ingestion_time: &str) -> String {
    match &input.input {
        Input::Event => event.to_string(),
        Input::Constant(text) => text.clone(),
        Input::Path(path) => json_path(event, path).unwrap_or(Value::Null).to_string(),
        Input::Transformer { paths, template } => {
            let mut vars: Vec<(String, Option<Value>)> = paths
                .iter()
                .map(|(name, path)| (name.clone(), json_path(event, path)))
                .collect();
            let mut without_detail = event.clone();
            if let Value::Object(m) = &mut without_detail {
                m.remove("detail");
            }
            vars.push(("aws.events.event".into(), Some(without_detail)));
            vars.push(("aws.events.event.json".into(), Some(event.clone())));
            vars.push((
                "aws.events.rule-name".into(),
                Some(Value::String(input.rule_name.clone())),
            ));
            vars.push((
                "aws.events.rule-arn".into(),
                Some(Value::String(input.rule_arn.clone())),
            ));
            vars.push((
                "aws.events.event.ingestion-time".into(),
                Some(Value::String(ingestion_time.to_owned())),
            ));
            // A template of JSON (an object, an array, a string) takes values as JSON; a sentence
            // takes their text.
            let json = template.trim_start().starts_with(['{', '[', '"']);
            let text = fill(template, &vars, json);
            // A template that is not JSON (a sentence) is delivered as a JSON string.
            match serde_json::from_str::<Value>(&text) {
                Ok(_) => text,
                Err(_) => Value::String(text).to_string(),
            }
        }
    }
}

/// Replaces each `<name>` of `template`: inside a JSON string, by the value's text (escaped for
/// the string); elsewhere, by the value as JSON (a string in quotes). A path the event lacks
/// gives `null` (an empty text inside a string).
fn fill(template: &str, vars: &[(String, Option<Value>)], json: bool) -> String {
    let mut out = String::with_capacity(template.len());
    let mut in_str = false;
    let mut escaped = false;
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            if let Some(end) = rest.find('>') {
                let name = &rest[1..end];
                if let Some((_, value)) = vars.iter().find(|(n, _)| n == name) {
                    match (json, in_str, value) {
                        // A sentence: the value's text, as it is.
                        (false, _, Some(Value::String(s))) => out.push_str(s),
                        (false, _, Some(v)) => out.push_str(&v.to_string()),
                        (false, _, None) => {}
                        // In a JSON string: the text, escaped for the string.
                        (true, true, Some(Value::String(s))) => out.push_str(escape(s).as_str()),
                        (true, true, Some(v)) => out.push_str(escape(&v.to_string()).as_str()),
                        (true, true, None) => {}
                        // Elsewhere in JSON: the value as JSON.
                        (true, false, Some(v)) => out.push_str(&v.to_string()),
                        (true, false, None) => out.push_str("null"),
                    }
                    rest = &rest[end + 1..];
                    continue;
                }
            }
        }
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
        } else if c == '"' {
            in_str = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A string's content escaped for a JSON string (without the quotes).
fn escape(s: &str) -> String {
    let quoted = Value::String(s.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Value {
        serde_json::json!({"id": "1", "source": "aws.ec2", "detail-type": "State", "detail": {"instance-id": "i-01", "state": "RUNNING", "n": 3, "tags": ["a", "b"]}})
    }

    fn input(i: Input) -> TargetInput {
        TargetInput {
            input: i,
            rule_name: "r".into(),
            rule_arn: "arn:aws:events:eu-west-1:123456789012:rule/bus/r".into(),
        }
    }

    #[test]
    fn json_paths_of_eventbridge() {
        let e = event();
        assert_eq!(json_path(&e, "$.detail.state"), Some(Value::from("RUNNING")));
        assert_eq!(json_path(&e, "$.detail['instance-id']"), Some(Value::from("i-01")));
        assert_eq!(json_path(&e, "$.detail.instance-id"), Some(Value::from("i-01")));
        assert_eq!(json_path(&e, "$.detail.tags[1]"), Some(Value::from("b")));
        assert_eq!(json_path(&e, "$.detail.tags[*]"), Some(serde_json::json!(["a", "b"])));
        assert_eq!(json_path(&e, "$.detail.nope"), None);
        assert_eq!(json_path(&e, "$"), Some(e.clone()));
    }

    #[test]
    fn transformers_quote_as_eventbridge_documents() {
        // The documented example: a variable out of quotes is a JSON value, in quotes its text.
        let t = input(Input::Transformer {
            paths: vec![
                ("instance".into(), "$.detail.instance-id".into()),
                ("state".into(), "$.detail.state".into()),
                ("n".into(), "$.detail.n".into()),
                ("missing".into(), "$.detail.nope".into()),
            ],
            template: r#"{"myInstance": <instance>, "myStatus": "<instance> is in state \"<state>\"", "n": <n>, "m": <missing>, "rule": <aws.events.rule-name>}"#.into(),
        });
        let out: Value = serde_json::from_str(&deliver(&t, &event(), "2026-01-01T00:00:00Z")).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"myInstance": "i-01", "myStatus": "i-01 is in state \"RUNNING\"", "n": 3, "m": null, "rule": "r"})
        );
        // A sentence is delivered as a JSON string.
        let t = input(Input::Transformer {
            paths: vec![("state".into(), "$.detail.state".into())],
            template: "state is <state>".into(),
        });
        assert_eq!(deliver(&t, &event(), "x"), r#""state is RUNNING""#);
        // The whole event, and the event without detail.
        let t = input(Input::Transformer {
            paths: vec![],
            template:
                r#"{"e": <aws.events.event.json>, "head": <aws.events.event>, "at": <aws.events.event.ingestion-time>}"#
                    .into(),
        });
        let out: Value = serde_json::from_str(&deliver(&t, &event(), "2026-01-01T00:00:00Z")).unwrap();
        assert_eq!(out["e"], event());
        assert!(out["head"].get("detail").is_none() && out["head"]["id"] == "1");
        assert_eq!(out["at"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn constants_and_paths() {
        assert_eq!(
            deliver(&input(Input::Constant(r#"{"k":1}"#.into())), &event(), "x"),
            r#"{"k":1}"#
        );
        assert_eq!(
            deliver(&input(Input::Path("$.detail".into())), &event(), "x"),
            event()["detail"].to_string()
        );
    }
}
