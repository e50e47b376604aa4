"""The live progress line: shown on a terminal, silent otherwise."""

from __future__ import annotations

import io

from walrus_bench._progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rewrites_one_line_on_a_terminal() -> None:
    out = Terminal()
    progress = Progress(out)
    progress.show("writes: 1.0 s  1,000 entries/s")
    progress.show("writes: 1.5 s  9 entries/s")
    progress.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    last = text.split("\r")[-1]
    assert last.startswith("writes: 1.5 s  9 entries/s")
    assert len(last.rstrip("\n")) == len("writes: 1.0 s  1,000 entries/s")  # old text blanked


def test_silent_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(out)
    progress.show("anything")
    progress.close()
    assert out.getvalue() == ""
