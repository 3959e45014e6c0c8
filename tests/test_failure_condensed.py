"""What the first call sees and how a candidate may answer: pytest's noise left out, an `assert call(...) ==
literal` spelled out, each code excerpt shown once, and a one-edit candidate's `old` chosen from runs of the lines
shown."""

from __future__ import annotations

from fastcode.context.gather import Section, condense_failure, gather_context, unrepeated
from fastcode.core.config import load_settings

OUTPUT = """F
=================================== FAILURES ===================================
______________________________ test_every_window _______________________________

    def test_every_window():
>       assert moving_sum([1, 2, 3, 4], 2) == [3, 5, 7]
E       assert [3, 5] == [3, 5, 7]
E
E         Right contains one more item: 7
E         Use -v to get more diff

test_stats.py:5: AssertionError
=========================== short test summary info ============================
FAILED test_stats.py::test_every_window - assert [3, 5] == [3, 5, 7]
1 failed in 0.06s
"""


def test_the_result_and_the_expected_value_are_said_in_words() -> None:
    lines = condense_failure(OUTPUT).splitlines()
    shown = lines.index("E       assert [3, 5] == [3, 5, 7]")
    assert lines[shown + 1] == "E       moving_sum([1, 2, 3, 4], 2) returned [3, 5]; the test expects [3, 5, 7]"
    assert "E" not in lines and not any("Use -v" in line for line in lines)
    assert "E         Right contains one more item: 7" in lines  # pytest's own explanation stays


def test_the_expected_value_on_the_left_is_read_the_right_way_round() -> None:
    lines = condense_failure(">       assert [1] == f(2)\nE       assert [1] == [2]\n").splitlines()
    assert lines[-1] == "E       f(2) returned [2]; the test expects [1]"


def test_nothing_is_added_where_the_sides_are_not_a_call_and_a_literal() -> None:
    for source, shown in (
        ("assert a.b == 3", "assert 4 == 3"),  # no call
        ("assert f(x) == g(y)", "assert 1 == 2"),  # two calls: which one is expected?
        ("assert f(x) == 1 == y", "assert 2 == 1 == 3"),  # a chain
        ("assert f(x)", "assert False"),  # no comparison
    ):
        text = f">       {source}\nE       {shown}\n"
        assert condense_failure(text) == text.rstrip()


def test_a_candidates_old_is_chosen_from_runs_of_the_lines_shown(tmp_path) -> None:
    from fastcode.agent.edit_first import old_choices

    (tmp_path / "m.py").write_text("def f(x):\n\n    return x\n\n\ndef g():\n    return x\n")
    context = "### m.py (lines 1-3)\n```\n...\n```\n### tests/test_m.py (lines 1-2)\n```\n...\n```"
    choices = old_choices(tmp_path, context, ["m.py", "gone.py"])
    # runs of 1-3 shown lines, neither end blank; `    return x` alone is not unique in the file
    assert choices["m.py"] == ["def f(x):", "def f(x):\n\n    return x"]
    assert choices["gone.py"] == []  # cannot be read: any `old`
    assert "tests/test_m.py" not in choices  # only the files a candidate may edit


async def test_code_the_failure_and_the_task_both_name_is_shown_once(sample_repo, isolated_env) -> None:
    settings = load_settings(sample_repo).settings.context
    task = "fix moving_sum: the last window is missing"
    found = await gather_context(sample_repo, task, settings, "python -m pytest -x -q", lambda *_, **__: None)
    titles = [s.title for s in found.sections]
    assert "code named by the failure" in titles and "code the task names" not in titles  # its only excerpt: a repeat
    assert sum(s.body.count("| def moving_sum(") for s in found.sections) == 1


def test_an_excerpt_within_lines_shown_before_is_left_out() -> None:
    whole = Section("files", "### f.py (lines 1-44)\n```\n   1| a\n```", 1)
    named = Section("named", "### f.py (lines 10-12)\n```\n  10| b\n```\n\n### g.py (lines 3-5)\n```\n   3| c\n```", 1)
    again = Section("again", "### g.py (lines 3-5)\n```\n   3| c\n```", 2)
    other = Section("git status", "## main", 2)
    kept = unrepeated([whole, named, again, other])
    assert [s.title for s in kept] == ["files", "named", "git status"]
    assert kept[1].body == "### g.py (lines 3-5)\n```\n   3| c\n```"
    # a range that only overlaps what was shown is new code: kept
    wider = Section("wider", "### f.py (lines 40-50)\n```\n  40| d\n```", 2)
    assert [s.title for s in unrepeated([whole, wider])] == ["files", "wider"]
