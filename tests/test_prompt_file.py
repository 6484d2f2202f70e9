"""`data.prompt_file`: a prompt is read exactly as written, or the file is refused naming the line."""

import json

import pytest

from dcm.data.prompts import read_prompt_file
from dcm.errors import DCMError


def _file(tmp_path, content, name="prompts.txt"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_one_prompt_per_line_with_comments_blank_lines_and_crlf(tmp_path):
    path = _file(tmp_path, "# header\na cat surfing\r\n\n   \na dog, running\n")
    assert read_prompt_file(path) == ["a cat surfing", "a dog, running"]


@pytest.mark.parametrize("content, line, what", [
    ("a cat\n a dog\n", 2, "leading or trailing whitespace"),
    ("a cat \n", 1, "leading or trailing whitespace"),
    ("a cat\na dog\u2028on a hill\n", 2, "line separator"),
    ("a cat\na dog\na cat\n", 3, "repeats the prompt of line 1"),
])
def test_a_line_reading_would_change_is_refused_with_its_number(tmp_path, content, line, what):
    path = _file(tmp_path, content)
    with pytest.raises(DCMError, match=f"data.prompt_file=.*prompts.txt.*: line {line} .*{what}"):
        read_prompt_file(path)


def test_a_non_utf8_file_is_refused_naming_the_line(tmp_path):
    path = _file(tmp_path, b"a cat\na caf\xe9\n")
    with pytest.raises(DCMError, match=r"prompts.txt.*: line 2 is not UTF-8 \(byte 0xe9\)"):
        read_prompt_file(path)


def test_json_and_yaml_lists_keep_prompts_exactly(tmp_path):
    prompts = [" a cat, leading space", "two lines:\nthe second", "a dog "]
    assert read_prompt_file(_file(tmp_path, json.dumps(prompts), "p.json")) == prompts
    yaml_text = "- ' a cat, leading space'\n- |-\n  two lines:\n  the second\n- 'a dog '\n"
    assert read_prompt_file(_file(tmp_path, yaml_text, "p.yaml")) == prompts


@pytest.mark.parametrize("name, content, message", [
    ("p.json", '["a cat", "a cat"]', "item 2 repeats the prompt of item 1"),
    ("p.json", '["a cat", 3]', "item 2 must be a non-empty string"),
    ("p.json", '{"a": "b"}', "must hold a list of strings, not dict"),
    ("p.json", '["a cat",\n "a dog"', "invalid JSON at line 2"),
    ("p.yaml", "- a cat\n- [unclosed\n", "invalid YAML at line 3, column 1"),
    ("p.yaml", "[]", "holds no prompts"),
])
def test_bad_prompt_lists_are_refused_naming_the_item_or_line(tmp_path, name, content, message):
    with pytest.raises(DCMError, match=f"data.prompt_file=.*{name}.*{message}"):
        read_prompt_file(_file(tmp_path, content, name))
