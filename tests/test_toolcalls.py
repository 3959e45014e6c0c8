"""Tool modes: the constrained schema, the text recovery of tool calls, and the mode resolution."""

from __future__ import annotations

import json

import pytest

from fastcode.toolcalls import ReplyShape, recover_calls, resolve_mode
from fastcode.toolcalls.describe import describe_tools
from fastcode.toolcalls.schema import NEW_CHARS, reply_schema, response_format
from fastcode.toolcalls.thought import ThoughtStream
from fastcode.tools import tool_schemas

KNOWN = {t["function"]["name"] for t in tool_schemas()}
EDIT = {"path": "m/stats.py", "old": "range(n - w)", "new": "range(n - w + 1)"}


def test_schema_is_an_anyof_over_the_tools_with_const_names() -> None:
    schema = reply_schema(tool_schemas())
    assert schema["required"] == ["thought", "tool_calls"]
    assert list(schema["properties"]) == ["thought", "tool_calls"]
    options = schema["properties"]["tool_calls"]["items"]["anyOf"]
    assert [o["properties"]["name"]["const"] for o in options] == [t["function"]["name"] for t in tool_schemas()]
    edit = next(o for o in options if o["properties"]["name"]["const"] == "edit_file")
    assert set(edit["properties"]["arguments"]["required"]) == {"path", "old", "new"}
    assert "description" not in json.dumps(edit)  # kept small for the grammar compiler


def test_response_format_is_byte_stable() -> None:
    assert json.dumps(response_format(tool_schemas())) == json.dumps(response_format(tool_schemas()))


def test_describe_tools_lists_signatures() -> None:
    text = describe_tools(tool_schemas())
    assert '- edit_file {"path": str, "old": str, "new": str, "replace_all"?: bool}:' in text
    assert '- read_file {"path": str, "start_line"?: int, "end_line"?: int}:' in text


@pytest.mark.parametrize(
    ("text", "how"),
    [
        (json.dumps({"thought": "fix it", "tool_calls": [{"name": "edit_file", "arguments": EDIT}]}), "json reply"),
        ("I will edit.\n```json\n" + json.dumps({"name": "edit_file", "arguments": EDIT}) + "\n```", "fenced json"),
        ("<tool_call>\n" + json.dumps({"name": "edit_file", "arguments": EDIT}) + "\n</tool_call>", "tool_call tag"),
        ("<tools>" + json.dumps({"name": "edit_file", "arguments": EDIT}) + "</tools>", "tools tag"),
        ("Let me fix it: " + json.dumps({"name": "edit_file", "arguments": EDIT}), "bare json"),
        (
            json.dumps({"type": "function", "function": {"name": "edit_file", "arguments": json.dumps(EDIT)}}),
            "bare json",
        ),
    ],
)
def test_recovers_each_text_format(text: str, how: str) -> None:
    found = recover_calls(text, KNOWN)
    assert [(c.name, json.loads(c.arguments)) for c in found.calls] == [("edit_file", EDIT)]
    assert found.how == how


def test_recovers_several_calls_and_keeps_the_prose() -> None:
    text = (
        "Read both files first.\n"
        '<tool_call>{"name": "read_file", "arguments": {"path": "a.py"}}</tool_call>\n'
        '<tool_call>{"name": "read_file", "arguments": {"path": "b.py"}}</tool_call>'
    )
    found = recover_calls(text, KNOWN)
    assert [json.loads(c.arguments)["path"] for c in found.calls] == ["a.py", "b.py"]
    assert found.text == "Read both files first."
    assert len({c.id for c in found.calls}) == 2


def test_json_reply_prose_is_its_thought() -> None:
    text = json.dumps({"thought": "the bound is off by one", "tool_calls": [{"name": "finish", "arguments": {}}]})
    assert recover_calls(text, KNOWN).text == "the bound is off by one"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Done.",
        "The fix is in `range(len(values) - window + 1)`.",
        '{"a": 1, "b": [1, 2]}',  # JSON that names no tool
        '```json\n{"name": "edit_file", "arguments": {"path": "x"\n```',  # cut off
        "{" * 5000,  # deeply nested garbage
        "[[[[" + "1," * 1000,
        '{"name": 5, "arguments": {}}',
    ],
)
def test_garbage_yields_no_calls(text: str) -> None:
    found = recover_calls(text, KNOWN)
    assert found.calls == []
    assert found.text == text


def test_unknown_tool_with_arguments_is_still_a_call_the_model_gets_an_error_for() -> None:
    found = recover_calls('{"name": "bash", "arguments": {"cmd": "ls"}}', KNOWN)
    assert [c.name for c in found.calls] == ["bash"]


def test_finish_without_arguments_key_takes_the_other_keys() -> None:
    found = recover_calls('{"name": "finish", "summary": "fixed"}', KNOWN)
    assert json.loads(found.calls[0].arguments) == {"summary": "fixed"}


def test_auto_mode_is_constrained_on_local_servers_and_native_elsewhere() -> None:
    assert resolve_mode("auto", "llamacpp").name == "constrained"
    assert resolve_mode("auto", "vllm").name == "constrained"
    assert resolve_mode("auto", "openai").name == "native"
    assert resolve_mode("auto", "other").name == "native"
    assert resolve_mode("text", "openai").name == "text"


def test_constrained_request_carries_the_schema_and_no_tools() -> None:
    tools, extra = resolve_mode("constrained", "llamacpp").request(tool_schemas())
    assert tools == []
    assert extra["response_format"]["type"] == "json_schema"
    tools, extra = resolve_mode("native", "openai").request(tool_schemas())
    assert tools == tool_schemas() and extra == {}


def test_a_brief_constrained_request_caps_the_thought_shorter() -> None:
    mode = resolve_mode("constrained", "llamacpp")

    def thought(**options: bool) -> dict:
        return mode.request(tool_schemas(), ReplyShape(**options))[1]["response_format"]["json_schema"]["schema"][
            "properties"
        ]["thought"]

    assert thought() == {"type": "string", "maxLength": 400}
    assert thought(brief=True) == {"type": "string", "maxLength": 100}
    assert resolve_mode("native", "openai").request(tool_schemas(), ReplyShape(brief=True))[1] == {}


def test_text_mode_history_keeps_the_reply_verbatim_and_results_in_one_message() -> None:
    mode = resolve_mode("constrained", "llamacpp")
    content = json.dumps({"thought": "t", "tool_calls": [{"name": "read_file", "arguments": {"path": "a.py"}}]})
    parsed = mode.parse(content, [], KNOWN, "1.1.1")
    assert parsed.recovered == ""  # the expected shape is not a recovery
    assert mode.assistant_message(content, parsed) == {"role": "assistant", "content": content}
    messages = mode.results([(parsed.calls[0], "1| x = 1")], "tests passed")
    assert len(messages) == 1 and messages[0]["role"] == "user"
    assert "read_file" in messages[0]["content"] and messages[0]["content"].endswith("tests passed")


def test_native_mode_recovers_text_calls_into_the_history() -> None:
    mode = resolve_mode("native", "openai")
    content = 'Fixing.\n```json\n{"name": "read_file", "arguments": {"path": "a.py"}}\n```'
    parsed = mode.parse(content, [], KNOWN, "1.1.1")
    assert parsed.recovered == "fenced json"
    message = mode.assistant_message(content, parsed)
    assert message["content"] == "Fixing."
    assert message["tool_calls"][0]["function"]["name"] == "read_file"
    assert [m["role"] for m in mode.results([(parsed.calls[0], "ok")], "note")] == ["tool", "user"]


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_thought_stream_shows_only_the_thought_in_any_chunking(chunk: int) -> None:
    raw = json.dumps({"thought": 'Tests "pass".\nDone é', "tool_calls": [{"name": "finish", "arguments": {}}]})
    stream = ThoughtStream()
    assert "".join(stream.feed(raw[i : i + chunk]) for i in range(0, len(raw), chunk)) == 'Tests "pass".\nDone é'


def test_thought_stream_passes_prose_through_and_hides_json_without_a_thought() -> None:
    stream = ThoughtStream()
    assert "".join(stream.feed(c) for c in "Plain prose {x}") == "Plain prose {x}"
    stream = ThoughtStream()
    assert "".join(stream.feed(c) for c in '{"tool_calls": []}') == ""


def test_a_one_edit_request_picks_old_from_the_excerpts_shown() -> None:
    mode = resolve_mode("constrained", "llamacpp")
    olds = {"a.py": ["x = 1", "x = 1\ny = 2"], "b.py": []}
    shape = ReplyShape(only=frozenset({"edit_file"}), paths=("a.py", "b.py"), one_call=True, brief=True, olds=olds)
    _, extra = mode.request(tool_schemas(), shape)
    schema = extra["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["thought"]["maxLength"] == 100
    assert schema["properties"]["tool_calls"]["maxItems"] == 1
    call = schema["properties"]["tool_calls"]["items"]
    assert call["properties"]["name"] == {"const": "edit_file"}
    a, b = call["properties"]["arguments"]["anyOf"]
    new = {"type": "string", "maxLength": NEW_CHARS}  # a model looping inside `new` stops there
    assert a["properties"] == {"path": {"const": "a.py"}, "old": {"enum": olds["a.py"]}, "new": new}
    assert b["properties"]["old"] == {"type": "string"}  # nothing listed for b.py: any text
    # without the excerpts, or when the reply may call more than edit_file, the usual shape
    for only, given in ((frozenset({"edit_file"}), None), (frozenset({"edit_file", "finish"}), olds)):
        _, extra = mode.request(tool_schemas(), ReplyShape(only=only, paths=("a.py",), one_call=True, olds=given))
        text = json.dumps(extra["response_format"])
        assert '"enum": ["a.py"]' in text and '"x = 1"' not in text
