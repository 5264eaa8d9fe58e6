"""The README's shell blocks run when pasted: `bash -n` accepts them, and no line continuation
is broken by text after its backslash (`\\   # comment` ends the command there)."""

import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

BROKEN_CONTINUATION = re.compile(r"\\[ \t]+\S")


def code_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, first line number) of every fenced block; an untagged block is ""."""
    blocks, language, body, start = [], None, [], 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if language is None:
                language, body, start = line[3:].strip(), [], number + 1
            else:
                blocks.append((language, "\n".join(body) + "\n", start))
                language = None
        elif language is not None:
            body.append(line)
    assert language is None, "README.md: an unclosed code block"
    return blocks


def test_every_block_says_what_it_is():
    untagged = [start for language, _, start in code_blocks((ROOT / "README.md").read_text()) if not language]
    assert untagged == [], f"README.md code blocks without a language (sh, text, ...) at lines {untagged}"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_shell_blocks_parse_and_continue():
    shell = [
        (body, start) for language, body, start in code_blocks((ROOT / "README.md").read_text()) if language == "sh"
    ]
    assert len(shell) >= 4
    for body, start in shell:
        result = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True)
        assert result.returncode == 0, f"README.md block at line {start}: {result.stderr}"
        for offset, line in enumerate(body.splitlines()):
            assert not BROKEN_CONTINUATION.search(line), f"README.md:{start + offset}: text after a line continuation"


def test_the_checks_catch_a_broken_continuation():
    assert BROKEN_CONTINUATION.search("dvc exp run -S a=1 \\      # a comment")
    assert not BROKEN_CONTINUATION.search("dvc exp run -S a=1 \\")
    assert code_blocks("x\n```sh\necho hi\n```\n") == [("sh", "echo hi\n", 3)]
