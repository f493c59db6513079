"""OpenAI's Python client against `gptoss serve` (synthetic:tiny, started with
tests/serve/script.json as its --script): chat, streaming, tool calls round trip, reasoning
effort, the Responses API and its streaming events, completions, models, and error objects.

Usage: python openai_client.py http://127.0.0.1:PORT
"""

import json
import sys
import urllib.request

import openai
from openai import OpenAI

BASE = sys.argv[1]
client = OpenAI(base_url=BASE + "/v1", api_key="unused", max_retries=0, timeout=120)
MODEL = "gpt-oss-test"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city's name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            },
            "required": ["city"],
        },
    },
}


def check(name, condition, detail=""):
    if not condition:
        raise AssertionError(f"{name}: {detail}")
    print(f"ok  {name}")


def tokenize(body):
    request = urllib.request.Request(BASE + "/tokenize", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def chat_completion():
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=8, temperature=0)
    check("chat: a completion object", r.object == "chat.completion" and r.model == MODEL, r)
    check("chat: text content", isinstance(r.choices[0].message.content, str) and r.choices[0].message.content != "", r)
    check("chat: finish reason", r.choices[0].finish_reason == "length", r.choices[0].finish_reason)
    check("chat: usage", r.usage.completion_tokens == 8 and r.usage.total_tokens == r.usage.prompt_tokens + 8, r.usage)
    return r.choices[0].message.content


def streamed_chat(whole):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    check("stream: chunk objects", all(c.object == "chat.completion.chunk" for c in chunks))
    check("stream: role first", chunks[0].choices[0].delta.role == "assistant")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check("stream: same text as the whole reply", text == whole, (text, whole))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    check("stream: one finish reason", finishes == ["length"], finishes)
    check("stream: usage last", chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8, chunks[-1])


def tool_calls_round_trip():
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    message = r.choices[0].message
    check("tools: finish reason", r.choices[0].finish_reason == "tool_calls", r)
    call = message.tool_calls[0]
    check("tools: the function", call.type == "function" and call.function.name == "get_weather", call)
    check("tools: JSON arguments", json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}, call.function.arguments)
    reasoning = message.model_extra.get("reasoning_content")
    check("tools: reasoning_content", reasoning == "The user wants the weather; call get_weather.", reasoning)
    check("tools: reasoning tokens", r.usage.completion_tokens_details.reasoning_tokens > 0, r.usage)

    # Streamed: the call's name first, then its arguments in pieces.
    stream = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL], stream=True)
    deltas = [c.choices[0].delta for c in stream if c.choices]
    calls = [d.tool_calls[0] for d in deltas if d.tool_calls]
    check("tools stream: name in the first delta", calls[0].function.name == "get_weather" and calls[0].id.startswith("call_"))
    args = "".join(c.function.arguments or "" for c in calls)
    check("tools stream: arguments add up", json.loads(args) == {"city": "Paris", "unit": "celsius"}, args)

    # Round trip: the assistant message (with its reasoning) and the tool's result go back.
    assistant = message.model_dump(exclude_none=True)
    messages += [assistant, {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 20, "sky": "sunny"})}]
    prompt = tokenize({"messages": messages, "tools": [WEATHER_TOOL]})["prompt"]
    check("tools: analysis kept before the call", "<|channel|>analysis<|message|>The user wants the weather" in prompt, prompt)
    check("tools: the result rendered", "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>" in prompt, prompt)
    r = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    check("tools: the answer", r.choices[0].message.content == "It is sunny and 20 °C in Paris.", r)
    check("tools: stop", r.choices[0].finish_reason == "stop", r.choices[0].finish_reason)


def reasoning_effort():
    for effort in ["low", "medium", "high"]:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Think first."}], "reasoning_effort": effort}
        prompt = tokenize(body)["prompt"]
        system = prompt[: prompt.index("<|end|>")]
        check(f"effort {effort}: in the system message", f"Reasoning: {effort}" in system, system)
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Think first."}], reasoning_effort="high")
    check("effort: reasoning and content", r.choices[0].message.content == "Done thinking.", r)
    check("effort: reasoning_content", r.choices[0].message.model_extra.get("reasoning_content") == "Let me think about this.", r)


def responses():
    tool = {"type": "function", "name": "get_weather", "description": "Current weather in a city.", "parameters": WEATHER_TOOL["function"]["parameters"]}
    stream = client.responses.create(
        model=MODEL, input="What is the weather in Paris?", instructions="Use the tools.", tools=[tool], reasoning={"effort": "low"}, stream=True
    )
    events = list(stream)
    types = [e.type for e in events]
    check("responses stream: created first", types[:2] == ["response.created", "response.in_progress"], types)
    check("responses stream: completed last", types[-1] == "response.completed", types)
    check("responses stream: sequence numbers", [e.sequence_number for e in events] == list(range(len(events))))
    reasoning = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    check("responses stream: reasoning deltas", reasoning == "The user wants the weather; call get_weather.", reasoning)
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    check("responses stream: argument deltas", json.loads(args) == {"city": "Paris", "unit": "celsius"}, args)
    final = events[-1].response
    call = [o for o in final.output if o.type == "function_call"][0]
    check("responses: a function call item", call.name == "get_weather" and call.arguments == args, call)

    r = client.responses.create(
        model=MODEL,
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": "get_weather", "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": json.dumps({"temperature": 20})},
        ],
        tools=[tool],
    )
    check("responses: output_text", r.output_text == "It is sunny and 20 °C in Paris.", r)
    check("responses: usage", r.usage.output_tokens > 0 and r.usage.output_tokens_details.reasoning_tokens > 0, r.usage)
    try:
        client.responses.create(model=MODEL, input="hi", previous_response_id="resp_1")
        raise AssertionError("previous_response_id accepted")
    except openai.BadRequestError as e:
        check("responses: previous_response_id refused", e.status_code == 400 and "whole conversation" in str(e), e)


def completions_and_models():
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5, temperature=0)
    check("completions: text", r.object == "text_completion" and isinstance(r.choices[0].text, str), r)
    check("completions: usage", r.usage.completion_tokens == 5, r.usage)
    models = client.models.list()
    check("models: the served model", [m.id for m in models.data] == [MODEL], models)


def errors():
    cases = [
        ("unknown role", {"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ("wrong type", {"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
        ("unknown function", {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER_TOOL],
                              "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ]
    for name, body, param in cases:
        try:
            client.chat.completions.create(model=MODEL, **body)
            raise AssertionError(f"{name}: accepted")
        except openai.BadRequestError as e:
            check(f"error {name}: 400 with param", e.status_code == 400 and e.param == param and e.type == "invalid_request_error", e.body)
    try:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=5000)
        raise AssertionError("context overflow accepted")
    except openai.BadRequestError as e:
        check("error context: both numbers", "5000" in e.message and "1024" in e.message and e.code == "context_length_exceeded", e.message)


whole = chat_completion()
streamed_chat(whole)
tool_calls_round_trip()
reasoning_effort()
responses()
completions_and_models()
errors()
print(f"all passed (openai {openai.__version__})")
