//! The text of structured system and developer content, laid out as OpenAI's harmony library
//! lays it out: sections joined by a blank line.

use super::chat::{DeveloperContent, SystemContent, ToolNamespace};
use super::typescript::schema_to_typescript;
use std::collections::BTreeMap;

/// The system message's text. `has_function_tools` (some developer message defines
/// `functions`) adds the line that sends function calls to the commentary channel.
pub(crate) fn system_text(system: &SystemContent, has_function_tools: bool) -> String {
    let mut sections = Vec::new();
    let mut top = Vec::new();
    if let Some(identity) = &system.model_identity {
        top.push(identity.clone());
    }
    if let Some(cutoff) = &system.knowledge_cutoff {
        top.push(format!("Knowledge cutoff: {cutoff}"));
    }
    if let Some(date) = &system.conversation_start_date {
        top.push(format!("Current date: {date}"));
    }
    if !top.is_empty() {
        sections.push(top.join("\n"));
    }
    if let Some(effort) = system.reasoning_effort {
        sections.push(format!("Reasoning: {}", effort.as_str()));
    }
    if !system.tools.is_empty() {
        sections.push(tools_section(&system.tools));
    }
    if let Some(config) = &system.channel_config
        && !config.valid_channels.is_empty()
    {
        let mut line = format!("# Valid channels: {}.", config.valid_channels.join(", "));
        if config.channel_required {
            line.push_str(" Channel must be included for every message.");
        }
        if has_function_tools {
            line.push_str("\nCalls to these tools must go to the commentary channel: 'functions'.");
        }
        sections.push(line);
    }
    sections.join("\n\n")
}

/// The developer message's text: instructions, then tools.
pub(crate) fn developer_text(developer: &DeveloperContent) -> String {
    let mut sections = Vec::new();
    if let Some(instructions) = &developer.instructions {
        sections.push("# Instructions".to_owned());
        sections.push(instructions.clone());
    }
    if !developer.tools.is_empty() {
        sections.push(tools_section(&developer.tools));
    }
    sections.join("\n\n")
}

/// `# Tools`, then per namespace its description and a TypeScript-like `namespace` block.
fn tools_section(tools: &BTreeMap<String, ToolNamespace>) -> String {
    let mut sections = vec!["# Tools".to_owned()];
    for namespace in tools.values() {
        let has_tools = !namespace.tools.is_empty();
        let mut lines = vec![format!("## {}\n", namespace.name)];
        if let Some(description) = &namespace.description {
            for line in description.lines() {
                lines.push(if has_tools { format!("// {line}") } else { line.to_owned() });
            }
        }
        if has_tools {
            lines.push(format!("namespace {} {{\n", namespace.name));
            for tool in &namespace.tools {
                lines.extend(tool.description.lines().map(|line| format!("// {line}")));
                lines.push(match &tool.parameters {
                    Some(schema) => format!("type {} = (_: {}) => any;\n", tool.name, schema_to_typescript(schema, "")),
                    None => format!("type {} = () => any;\n", tool.name),
                });
            }
            lines.push(format!("}} // namespace {}", namespace.name));
        }
        sections.push(lines.join("\n"));
    }
    sections.join("\n\n")
}
