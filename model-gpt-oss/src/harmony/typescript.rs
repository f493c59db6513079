//! Tool parameter schemas (JSON Schema) written as the TypeScript-like types harmony puts in
//! the developer message, with OpenAI's harmony library's exact layout: property comments from
//! `title`, `description` and `examples`, `?` for optional properties, `// default: ...`
//! comments, `| null` for `nullable`, and one line per `oneOf` variant.

use super::json::JsonValue;

fn is_enum(schema: &JsonValue) -> bool {
    schema.get("enum").and_then(JsonValue::as_array).is_some_and(|values| !values.is_empty())
}

fn is_nullable(schema: &JsonValue) -> bool {
    schema.get("nullable").and_then(JsonValue::as_bool).unwrap_or(false)
}

fn str_field<'v>(schema: &'v JsonValue, key: &str) -> Option<&'v str> {
    schema.get(key).and_then(JsonValue::as_str)
}

/// `default: ...` as a comment: a plain string default is quoted unless the schema is an enum;
/// `enum_string_quoted` says whether an enum's string default keeps its JSON quotes.
fn default_comment(schema: &JsonValue, enum_string_quoted: bool) -> Option<String> {
    let default = schema.get("default")?;
    Some(match default.as_str() {
        Some(s) if !is_enum(schema) => format!("default: \"{s}\""),
        Some(s) if !enum_string_quoted => format!("default: {s}"),
        _ => format!("default: {default}"),
    })
}

/// The type of `schema`, with nested lines indented by `indent`.
pub(crate) fn schema_to_typescript(schema: &JsonValue, indent: &str) -> String {
    if let Some(variants) = schema.get("oneOf").and_then(JsonValue::as_array) {
        return one_of_at_top(variants, indent);
    }
    let types = schema.get("type");
    if let Some(names) = types.and_then(JsonValue::as_array) {
        let names: Vec<&str> =
            names.iter().filter_map(JsonValue::as_str).map(|name| if name == "integer" { "number" } else { name }).collect();
        if !names.is_empty() {
            return names.join(" | ");
        }
    }
    match types.and_then(JsonValue::as_str) {
        Some("object") => object(schema, indent),
        Some("string") => {
            let values: Vec<String> = schema
                .get("enum")
                .and_then(JsonValue::as_array)
                .unwrap_or_default()
                .iter()
                .filter_map(JsonValue::as_str)
                .map(|value| format!("\"{value}\""))
                .collect();
            if values.is_empty() { "string".to_owned() } else { values.join(" | ") }
        }
        Some("number" | "integer") => "number".to_owned(),
        Some("boolean") => "boolean".to_owned(),
        Some("array") => match schema.get("items") {
            Some(items) => format!("{}[]", schema_to_typescript(items, indent)),
            None => "Array<any>".to_owned(),
        },
        _ => "any".to_owned(),
    }
}

/// A variant's type with `| null` added when it is nullable and does not say `null` already.
fn variant_type(variant: &JsonValue, indent: &str) -> String {
    let mut ty = schema_to_typescript(variant, indent);
    if is_nullable(variant) && !ty.contains("null") {
        ty.push_str(" | null");
    }
    ty
}

fn one_of_at_top(variants: &[JsonValue], indent: &str) -> String {
    let mut out = String::new();
    for variant in variants {
        out.push_str(&format!("\n{indent} | "));
        out.push_str(&variant_type(variant, &format!("{indent}   ")));
        let mut comments: Vec<String> = Vec::new();
        if let Some(description) = str_field(variant, "description") {
            comments.push(description.to_owned());
        }
        comments.extend(default_comment(variant, true));
        if !comments.is_empty() {
            out.push_str(&format!(" // {}", comments.join(" ")));
        }
    }
    out
}

fn object(schema: &JsonValue, indent: &str) -> String {
    let mut out = String::new();
    if let Some(description) = str_field(schema, "description") {
        out.push_str(&format!("{indent}// {description}\n"));
    }
    out.push_str("{\n");
    if let Some(JsonValue::Object(properties)) = schema.get("properties") {
        let required: Vec<&str> =
            schema.get("required").and_then(JsonValue::as_array).unwrap_or_default().iter().filter_map(JsonValue::as_str).collect();
        for (key, property) in properties {
            let optional = if required.contains(&key.as_str()) { "" } else { "?" };
            property_comments(property, indent, &mut out);
            if let Some(variants) = property.get("oneOf").and_then(JsonValue::as_array) {
                one_of_property(key, optional, property, variants, indent, &mut out);
                continue;
            }
            out.push_str(&format!("{indent}{key}{optional}: "));
            out.push_str(&variant_type(property, &format!("{indent}    ")));
            out.push(',');
            if property.get("oneOf").is_none()
                && let Some(comment) = default_comment(property, false)
            {
                out.push_str(&format!(" // {comment}"));
            }
            out.push('\n');
        }
    }
    out.push_str(&format!("{indent}}}"));
    out
}

/// Title, description (unless `oneOf` renders its own) and examples above a property.
fn property_comments(property: &JsonValue, indent: &str, out: &mut String) {
    if let Some(title) = str_field(property, "title") {
        out.push_str(&format!("{indent}// {title}\n{indent}//\n"));
    }
    if property.get("oneOf").is_none()
        && let Some(description) = str_field(property, "description")
    {
        out.push_str(&format!("{indent}// {description}\n"));
    }
    if let Some(examples) = property.get("examples").and_then(JsonValue::as_array)
        && !examples.is_empty()
    {
        out.push_str(&format!("{indent}// Examples:\n"));
        for example in examples.iter().filter_map(JsonValue::as_str) {
            out.push_str(&format!("{indent}// - \"{example}\"\n"));
        }
    }
}

fn one_of_property(key: &str, optional: &str, property: &JsonValue, variants: &[JsonValue], indent: &str, out: &mut String) {
    let description = str_field(property, "description");
    let first_variant_says_the_same = description.is_some() && variants.first().and_then(|v| str_field(v, "description")) == description;
    let description_above = match description {
        Some(text) if !first_variant_says_the_same => {
            out.push_str(&format!("{indent}// {text}\n"));
            true
        }
        _ => false,
    };
    if let Some(comment) = default_comment(property, false) {
        out.push_str(&format!("{indent}// {comment}\n"));
    }
    out.push_str(&format!("{indent}{key}{optional}:\n"));
    for (i, variant) in variants.iter().enumerate() {
        out.push_str(&format!("{indent} | "));
        out.push_str(&variant_type(variant, &format!("{indent}   ")));
        let mut comments: Vec<String> = Vec::new();
        if !(i == 0 && description_above)
            && let Some(text) = str_field(variant, "description").filter(|&t| Some(t) != description)
        {
            comments.push(text.to_owned());
        }
        comments.extend(default_comment(variant, false));
        if !comments.is_empty() {
            out.push_str(&format!(" // {}", comments.join(" ")));
        }
        out.push('\n');
    }
    out.push_str(&format!("{indent},\n"));
}
