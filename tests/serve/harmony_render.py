"""The server's prompt tokens (POST /tokenize) for Chat Completions requests equal what OpenAI's
`openai-harmony` renders for the same conversations, built the way gpt-oss's documentation maps
chat messages to harmony (see src/serve/prompt.rs).

Needs TIKTOKEN_ENCODINGS_BASE: a directory with o200k_base.tiktoken (the Rust test writes it
from the tokenizer's embedded vocabulary; harmony checks its SHA-256).

Usage: python harmony_render.py http://127.0.0.1:PORT
"""

import json
import sys
import urllib.request

from openai_harmony import (
    Author,
    Conversation,
    DeveloperContent,
    HarmonyEncodingName,
    Message,
    ReasoningEffort,
    Role,
    SystemContent,
    ToolDescription,
    load_harmony_encoding,
)

BASE = sys.argv[1]
encoding = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
EFFORT = {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM, "high": ReasoningEffort.HIGH}

WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.\nUse it for today only.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city's name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            "days": {"type": "integer", "description": "How many days", "default": 1},
            "details": {"type": "array", "items": {"type": "string"}},
            "where": {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}, "required": ["lat"]},
        },
        "required": ["city"],
    },
}
CLOCK = {"name": "get_time", "description": "The time now.", "parameters": {"type": "object", "properties": {}}}
NO_PARAMETERS = {"name": "ping", "description": "Checks the connection."}


def tokenize(body):
    request = urllib.request.Request(BASE + "/tokenize", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)["tokens"]


def system(effort="medium"):
    return Message.from_role_and_content(Role.SYSTEM, SystemContent.new().with_reasoning_effort(EFFORT[effort]))


def developer(instructions=None, tools=None):
    content = DeveloperContent.new()
    if instructions is not None:
        content = content.with_instructions(instructions)
    if tools:
        content = content.with_function_tools([ToolDescription.new(t["name"], t["description"], parameters=t.get("parameters")) for t in tools])
    return Message.from_role_and_content(Role.DEVELOPER, content)


def user(text):
    return Message.from_role_and_content(Role.USER, text)


def analysis(text):
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel("analysis")


def final(text):
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel("final")


def call(name, arguments):
    return (
        Message.from_role_and_content(Role.ASSISTANT, arguments)
        .with_channel("commentary")
        .with_recipient(f"functions.{name}")
        .with_content_type("<|constrain|>json")
    )


def result(name, output):
    return Message.from_author_and_content(Author.new(Role.TOOL, f"functions.{name}"), output).with_recipient("assistant").with_channel("commentary")


def chat_tool(t):
    return {"type": "function", "function": t}


def tool_call(id, name, arguments):
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


ARGS = '{"city": "Paris"}'
CASES = [
    ("one user message", {"messages": [{"role": "user", "content": "What is 2 + 2?"}]}, [system(), user("What is 2 + 2?")]),
    (
        "reasoning effort and instructions",
        {
            "reasoning_effort": "high",
            "messages": [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        },
        [system("high"), developer("Answer in French."), user("Hello")],
    ),
    (
        "tools",
        {"reasoning_effort": "low", "tools": [chat_tool(WEATHER), chat_tool(CLOCK), chat_tool(NO_PARAMETERS)], "messages": [{"role": "user", "content": "Weather?"}]},
        [system("low"), developer(None, [WEATHER, CLOCK, NO_PARAMETERS]), user("Weather?")],
    ),
    (
        "multi-turn with a tool call and its result (analysis kept)",
        {
            "tools": [chat_tool(WEATHER)],
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "reasoning_content": "Need the tool.", "tool_calls": [tool_call("c1", "get_weather", ARGS)]},
                {"role": "tool", "tool_call_id": "c1", "content": '{"temperature": 20}'},
            ],
        },
        [system(), developer("Be brief.", [WEATHER]), user("Weather in Paris?"), analysis("Need the tool."), call("get_weather", ARGS), result("get_weather", '{"temperature": 20}')],
    ),
    (
        "a finished turn, then a new question (earlier analysis dropped)",
        {
            "tools": [chat_tool(WEATHER)],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "reasoning_content": "Need the tool.", "tool_calls": [tool_call("c1", "get_weather", ARGS)]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "assistant", "reasoning_content": "It is sunny.", "content": "Sunny."},
                {"role": "user", "content": "And tomorrow?"},
            ],
        },
        [
            system(),
            developer(None, [WEATHER]),
            user("Weather in Paris?"),
            analysis("Need the tool."),
            call("get_weather", ARGS),
            result("get_weather", "sunny"),
            analysis("It is sunny."),
            final("Sunny."),
            user("And tomorrow?"),
        ],
    ),
    (
        "two calls in one turn, with a preamble",
        {
            "tools": [chat_tool(WEATHER), chat_tool(CLOCK)],
            "messages": [
                {"role": "user", "content": "Weather and time?"},
                {
                    "role": "assistant",
                    "content": "Checking both.",
                    "tool_calls": [tool_call("a", "get_weather", ARGS), tool_call("b", "get_time", "{}")],
                },
                {"role": "tool", "tool_call_id": "b", "content": "noon"},
                {"role": "tool", "tool_call_id": "a", "content": "rain"},
            ],
        },
        [
            system(),
            developer(None, [WEATHER, CLOCK]),
            user("Weather and time?"),
            Message.from_role_and_content(Role.ASSISTANT, "Checking both.").with_channel("commentary"),
            call("get_weather", ARGS),
            call("get_time", "{}"),
            result("get_time", "noon"),
            result("get_weather", "rain"),
        ],
    ),
]

failures = 0
for name, request, messages in CASES:
    theirs = encoding.render_conversation_for_completion(Conversation.from_messages(messages), Role.ASSISTANT)
    ours = tokenize(request)
    if list(theirs) == ours:
        print(f"ok  {name} ({len(ours)} tokens)")
    else:
        failures += 1
        at = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
        print(f"FAIL {name}: first difference at token {at}")
        print("  harmony:", encoding.decode(list(theirs)[max(0, at - 5) : at + 10]))
        print("  server: ", encoding.decode(ours[max(0, at - 5) : at + 10]))
if failures:
    sys.exit(f"{failures} of {len(CASES)} conversations render differently")
print(f"all {len(CASES)} conversations render as openai-harmony renders them")
