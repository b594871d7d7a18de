//! Workflow files: which workflows can be dispatched by hand and the inputs they declare
//! (types, options, defaults), read from the YAML as GitHub reads it. Pure.

use serde_json::Value;

/// One `workflow_dispatch` input as declared in the workflow file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WorkflowInput {
    pub name: String,
    pub description: String,
    /// `string`, `choice`, `boolean`, `environment` or `number`.
    pub kind: String,
    pub options: Vec<String>,
    pub default: Option<String>,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Workflow {
    pub id: u64,
    pub name: String,
    /// `.github/workflows/build.yml`
    pub path: String,
    pub state: String,
    /// None when the workflow cannot be dispatched by hand (no `workflow_dispatch`).
    pub inputs: Option<Vec<WorkflowInput>>,
}

impl Workflow {
    /// `build.yml`: what dispatch and the pipeline config use.
    pub fn file(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// The YAML of a workflow file -> its dispatch inputs, or None without `workflow_dispatch`.
pub fn parse_dispatch_inputs(yaml: &str) -> Result<Option<Vec<WorkflowInput>>, String> {
    let doc: Value = match serde_saphyr::from_str(yaml) {
        Ok(d) => d,
        // A mistake elsewhere in the file (a step's shell line) should not hide the
        // inputs: read the top-level `on:` block alone.
        Err(e) => serde_saphyr::from_str(&on_block(yaml)).map_err(|_| e.to_string())?,
    };
    // YAML 1.1 readers turn the key `on` into `true`; accept both.
    let on = doc.get("on").or_else(|| doc.get("true"));
    let dispatch = match on {
        Some(Value::String(s)) if s == "workflow_dispatch" => return Ok(Some(Vec::new())),
        Some(Value::Array(a)) if a.iter().any(|v| v == "workflow_dispatch") => {
            return Ok(Some(Vec::new()));
        }
        Some(Value::Object(m)) => match m.get("workflow_dispatch") {
            Some(d) => d,
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    let Some(inputs) = dispatch.get("inputs").and_then(Value::as_object) else {
        return Ok(Some(Vec::new()));
    };
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    Ok(Some(
        inputs
            .iter()
            .map(|(name, spec)| WorkflowInput {
                name: name.clone(),
                description: text(spec.get("description")).unwrap_or_default(),
                kind: text(spec.get("type")).unwrap_or_else(|| "string".into()),
                options: spec
                    .get("options")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| text(Some(v))).collect())
                    .unwrap_or_default(),
                default: text(spec.get("default")),
                required: spec
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
            .collect(),
    ))
}

/// The top-level `on:` block of a workflow file, as text.
fn on_block(yaml: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in yaml.lines() {
        let top = !line.starts_with([' ', '\t', '#']) && !line.trim().is_empty();
        if top {
            inside =
                line.starts_with("on:") || line.starts_with("\"on\":") || line.starts_with("'on':");
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_inputs_from_workflow_yaml() {
        let yaml = r#"
name: deploy
on:
  push:
    branches: [main]
  workflow_dispatch:
    inputs:
      service:
        description: Service to deploy
        required: true
        type: choice
        options: [api, web]
      dry_run:
        type: boolean
        default: false
      version:
        description: Tag
jobs: {}
"#;
        let inputs = parse_dispatch_inputs(yaml).unwrap().unwrap();
        let by = |n: &str| inputs.iter().find(|i| i.name == n).unwrap();
        assert_eq!(by("service").kind, "choice");
        assert_eq!(by("service").options, vec!["api", "web"]);
        assert!(by("service").required);
        assert_eq!(by("dry_run").default.as_deref(), Some("false"));
        assert_eq!(by("version").kind, "string");
        assert_eq!(parse_dispatch_inputs("on: push\n").unwrap(), None);
        let broken = "on:\n  workflow_dispatch:\n    inputs:\n      a: {type: string}\njobs:\n  b:\n    steps:\n      - run: git commit -m \"x: y\" && true\n";
        assert_eq!(parse_dispatch_inputs(broken).unwrap().unwrap()[0].name, "a");
        assert_eq!(
            parse_dispatch_inputs("on: [push, workflow_dispatch]\n").unwrap(),
            Some(vec![])
        );
    }
}
