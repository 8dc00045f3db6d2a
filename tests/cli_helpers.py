"""What CLI tests share: the one line a failed command prints."""

from __future__ import annotations


def error_line(result) -> str:
    """The one `error: ...` line of a failed command (exit code 2, no traceback)."""
    assert "Traceback" not in result.output
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]
