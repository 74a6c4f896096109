//! Templates as JSON values: YAML (with CloudFormation's short-form tags
//! turned into their long forms, `!Ref x` into `{"Ref": "x"}`, `!GetAtt a.b`
//! into `{"Fn::GetAtt": ["a", "b"]}`) or JSON.

use serde_json::{Map, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A template that cannot be read, with where.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("the template is not valid YAML: {0}")]
    Yaml(String),
    #[error("the template is not valid JSON: {0}")]
    Json(String),
    #[error(
        "line {line}: unknown tag !{tag} (CloudFormation's are !Ref, !GetAtt, !Sub, !Join, !If, ...)"
    )]
    UnknownTag { line: usize, tag: String },
    #[error("line {line}: aliases (*{anchor}) are not supported in templates")]
    Alias { line: usize, anchor: usize },
    #[error("the template is empty")]
    Empty,
}

/// The short-form tags CloudFormation reads, and their long forms.
const FUNCTIONS: &[&str] = &[
    "Base64",
    "Cidr",
    "FindInMap",
    "GetAZs",
    "ImportValue",
    "Join",
    "Select",
    "Split",
    "Sub",
    "Transform",
    "And",
    "Equals",
    "If",
    "Not",
    "Or",
    "GetAtt",
    "Length",
    "ToJsonString",
];

/// Reads a template: JSON if it starts with `{`, YAML otherwise.
pub fn parse(text: &str) -> Result<Value, ParseError> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()));
    }
    let mut b = Builder {
        stack: Vec::new(),
        root: None,
        error: None,
    };
    let mut p = Parser::new_from_str(text);
    p.load(&mut b, false)
        .map_err(|e| ParseError::Yaml(e.to_string()))?;
    if let Some(e) = b.error {
        return Err(e);
    }
    b.root.ok_or(ParseError::Empty)
}

enum Frame {
    Seq(Vec<Value>, Option<Tag>),
    Map(Map<String, Value>, Option<String>, Option<Tag>),
}

struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    error: Option<ParseError>,
}

impl Builder {
    fn push(&mut self, v: Value) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(v);
                }
            }
            Some(Frame::Seq(items, _)) => items.push(v),
            Some(Frame::Map(map, key, _)) => match key.take() {
                None => {
                    *key = Some(match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                }
                Some(k) => {
                    map.insert(k, v);
                }
            },
        }
    }

    fn tagged(&mut self, tag: Option<Tag>, v: Value, line: usize) -> Value {
        let Some(tag) = tag else { return v };
        if tag.handle != "!" {
            // `!!str` and the like: the standard tags keep the value.
            return match (tag.suffix.as_str(), v) {
                ("str", Value::Bool(b)) => Value::String(b.to_string()),
                ("str", Value::Number(n)) => Value::String(n.to_string()),
                ("str", Value::Null) => Value::String(String::new()),
                (_, v) => v,
            };
        }
        let name = tag.suffix;
        if name == "Ref" || name == "Condition" {
            return single(&name, v);
        }
        if name == "GetAtt" {
            // `!GetAtt Resource.Attribute` (split at the first dot) or a list.
            let v = match v {
                Value::String(s) => match s.split_once('.') {
                    Some((r, a)) => Value::Array(vec![r.into(), a.into()]),
                    None => Value::String(s),
                },
                other => other,
            };
            return single("Fn::GetAtt", v);
        }
        if FUNCTIONS.contains(&name.as_str()) {
            return single(&format!("Fn::{name}"), v);
        }
        if self.error.is_none() {
            self.error = Some(ParseError::UnknownTag { line, tag: name });
        }
        Value::Null
    }
}

fn single(k: &str, v: Value) -> Value {
    let mut m = Map::new();
    m.insert(k.to_owned(), v);
    Value::Object(m)
}

/// A plain scalar's type, as YAML's core schema resolves it.
fn plain(s: String) -> Value {
    match s.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(&s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // A leading zero (an octal in YAML 1.1, "0123" in CloudFormation's
        // eyes) stays a string so that account ids keep their digits.
        if !(digits.len() > 1 && digits.starts_with('0'))
            && let Ok(n) = s.parse::<i64>()
        {
            return Value::from(n);
        }
        return Value::String(s);
    }
    let looks_float = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.contains('.');
    if looks_float
        && let Ok(f) = s.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(s)
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(s, style, _, tag) => {
                let v = if style == TScalarStyle::Plain && tag.is_none() {
                    plain(s)
                } else {
                    Value::String(s)
                };
                let v = self.tagged(tag, v, line);
                self.push(v);
            }
            Event::SequenceStart(_, tag) => self.stack.push(Frame::Seq(Vec::new(), tag)),
            Event::MappingStart(_, tag) => self.stack.push(Frame::Map(Map::new(), None, tag)),
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, tag)) = self.stack.pop() {
                    let v = self.tagged(tag, Value::Array(items), line);
                    self.push(v);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(map, _, tag)) = self.stack.pop() {
                    let v = self.tagged(tag, Value::Object(map), line);
                    self.push(v);
                }
            }
            Event::Alias(anchor) => {
                if self.error.is_none() {
                    self.error = Some(ParseError::Alias { line, anchor });
                }
                self.push(Value::Null);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_forms_become_long_forms() {
        let cases: &[(&str, Value)] = &[
            ("a: !Ref Param", json!({"a": {"Ref": "Param"}})),
            (
                "a: !GetAtt Fn.Arn",
                json!({"a": {"Fn::GetAtt": ["Fn", "Arn"]}}),
            ),
            (
                "a: !GetAtt [Fn, Arn]",
                json!({"a": {"Fn::GetAtt": ["Fn", "Arn"]}}),
            ),
            (
                "a: !Sub '${AWS::StackName}-x'",
                json!({"a": {"Fn::Sub": "${AWS::StackName}-x"}}),
            ),
            (
                "a: !Join ['-', [a, !Ref B]]",
                json!({"a": {"Fn::Join": ["-", ["a", {"Ref": "B"}]]}}),
            ),
            (
                "a: !If [IsProd, 1024, 128]",
                json!({"a": {"Fn::If": ["IsProd", 1024, 128]}}),
            ),
            (
                "a: !Equals [!Ref Env, prod]",
                json!({"a": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}}),
            ),
            (
                "a: !Not [!Condition IsProd]",
                json!({"a": {"Fn::Not": [{"Condition": "IsProd"}]}}),
            ),
            (
                "a: !FindInMap [M, !Ref AWS::Region, size]",
                json!({"a": {"Fn::FindInMap": ["M", {"Ref": "AWS::Region"}, "size"]}}),
            ),
            (
                "a: !Select [0, !Split [',', 'x,y']]",
                json!({"a": {"Fn::Select": [0, {"Fn::Split": [",", "x,y"]}]}}),
            ),
            (
                "a:\n  !Sub\n    - '${X}'\n    - X: 1",
                json!({"a": {"Fn::Sub": ["${X}", {"X": 1}]}}),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&parse(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn plain_scalars_take_their_types() {
        let cases: &[(&str, Value)] = &[
            ("a: 128", json!({"a": 128})),
            ("a: '128'", json!({"a": "128"})),
            ("a: 0123", json!({"a": "0123"})),
            ("a: 1.5", json!({"a": 1.5})),
            ("a: true", json!({"a": true})),
            ("a: ~", json!({"a": null})),
            ("a: python3.12", json!({"a": "python3.12"})),
            ("a: 2016-10-31", json!({"a": "2016-10-31"})),
            ("a: !!str 10", json!({"a": "10"})),
            ("a: 1.2.3", json!({"a": "1.2.3"})),
        ];
        for (text, want) in cases {
            assert_eq!(&parse(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn json_templates_read_as_json() {
        assert_eq!(
            parse(r#"{"Resources": {"F": {"Type": "AWS::Serverless::Function"}}}"#).unwrap(),
            json!({"Resources": {"F": {"Type": "AWS::Serverless::Function"}}})
        );
        assert!(matches!(parse("{ nope"), Err(ParseError::Json(_))));
    }

    #[test]
    fn bad_input_says_what_and_where() {
        assert_eq!(
            parse("a: 1\nb: !Bogus x").unwrap_err(),
            ParseError::UnknownTag {
                line: 2,
                tag: "Bogus".into()
            }
        );
        assert!(matches!(parse("a: [1, 2"), Err(ParseError::Yaml(_))));
        assert_eq!(parse(""), Err(ParseError::Empty));
    }
}
