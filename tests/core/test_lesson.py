"""Lesson files: the shipped chapter lesson, saving and reading back, and every way a file
can be wrong, each with one line that says what."""

from __future__ import annotations

import json
import os

import pytest

from netexplorer.core.inputs import InputSpec
from netexplorer.core.lesson import (
    MAX_LESSON_BYTES,
    Lesson,
    LessonError,
    LessonStep,
    is_lesson_file,
    load_lesson,
    parse_set_action,
    save_lesson,
)
from netexplorer.resources import resource_path

SHIPPED = resource_path("lessons", "parameter-management.json")


def test_the_shipped_lesson_walks_the_chapter():
    lesson = load_lesson(str(SHIPPED))
    titles = [s.title for s in lesson.steps]
    assert titles[0] == "A network and its output" and titles[-1] == "Gradients add up"
    assert [s.action for s in lesson.steps if s.action] == [
        "forward",
        "init:chapter",
        "set:2.weight[0, 0]=100",
        "backward",
    ]
    sources = {s.source for s in lesson.steps if s.source}
    assert sources == {"example:mlp", "example:nested", "example:tied"}
    assert all(s.text for s in lesson.steps)


def test_a_saved_lesson_reads_back_the_same(tmp_path):
    lesson = Lesson(
        title="Tied",
        source="example:tied",
        seed=3,
        input=InputSpec((2, 4), "normal"),
        loss="mse",
        optimizer="adam",
        lr=0.01,
        select="2.weight",
        view="graph",
        look={"present": True, "scale": 2.0, "theme": "dark"},
        steps=[LessonStep("One", "text", select="4.weight", action="backward")],
    )
    path = tmp_path / "tied.json"
    save_lesson(lesson, str(path))
    assert is_lesson_file(str(path))
    again = load_lesson(str(path))
    again.folder = ""
    assert again == lesson
    assert not list(tmp_path.glob(".lesson-*"))  # no temporary file left behind


def test_sources_beside_the_lesson_are_found(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"x")
    path = tmp_path / "l.json"
    path.write_text(json.dumps({"format": "netexplorer-lesson/1", "source": "w.safetensors"}))
    lesson = load_lesson(str(path))
    assert lesson.resolve(lesson.source) == str(tmp_path / "w.safetensors")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "it is not JSON"),
        ("[1, 2]", "holds a JSON list"),
        ('{"source": "example:tied"}', "says no lesson format"),
        (
            '{"format": "netexplorer-lesson/2", "source": "example:tied"}',
            "saved by a newer netexplorer",
        ),
        ('{"format": "netexplorer-lesson/1", "source": "example:nope"}', "example 'nope'"),
        (
            '{"format": "netexplorer-lesson/1", "source": "missing.pt"}',
            "missing.pt, which is not there",
        ),
        ('{"format": "netexplorer-lesson/1"}', 'needs a "source"'),
        (
            '{"format": "netexplorer-lesson/1", "source": "example:tied", "view": "3d"}',
            "choose tree",
        ),
        (
            '{"format": "netexplorer-lesson/1", "source": "example:tied", '
            '"steps": [{"action": "dance"}]}',
            "unknown action 'dance'",
        ),
        ('{"format": "netexplorer-lesson/1", "source": "example:tied", "seed": -1}', "seed"),
        (
            '{"format": "netexplorer-lesson/1", "source": "example:tied", "look": {"scale": 9}}',
            "look.scale",
        ),
    ],
)
def test_a_bad_lesson_says_what_is_wrong(tmp_path, content, says):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(LessonError, match=None) as info:
        load_lesson(str(path))
    message = str(info.value)
    assert says in message and "\n" not in message


def test_set_actions_parse():
    assert parse_set_action("set:2.weight[0, 0]=100") == ("2.weight", (0, 0), 100.0)
    assert parse_set_action("set:0.block 1.0.bias[3]=-0.5") == ("0.block 1.0.bias", (3,), -0.5)


def test_a_lesson_that_is_a_fifo_or_too_big_is_refused_not_read(tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(LessonError, match=r"not a regular file|FIFO"):
        load_lesson(str(fifo))  # reading it would wait forever for a writer
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_LESSON_BYTES + 1))
    with pytest.raises(LessonError, match="more than"):
        load_lesson(str(big))
