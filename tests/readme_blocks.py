"""The Python blocks of README.md and how tests/test_readme.py runs them.

A fenced ```` ```python ```` block runs as a script unless an HTML comment on the line
right before its fence says otherwise (the comment does not show on GitHub)::

    <!-- readme-test: script -->            a script of its own (the default)
    <!-- readme-test: notebook -->          cells of a new notebook, in a real kernel
    <!-- readme-test: redis -->             a script, with a `flowrra worker` running
    <!-- readme-test: continues -->         the same script folder / kernel / worker as the
                                            runnable block before it
    <!-- readme-test: skip: REASON -->      not run; REASON says why

Options follow the kind after a ``;``: ``output: TEXT`` (the block's output must contain
TEXT; repeat it for several texts). For example
``<!-- readme-test: continues; output: [0, 2, 4] -->``.

A block whose first line is a comment naming a file (``# myproject/tasks.py``) is saved
under that name, so later blocks of its session can import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "KINDS",
    "Block",
    "ReadmeMarkerError",
    "parse_blocks",
    "read_readme",
    "sessions",
    "worker_command",
]

#: Kinds a marker may name (``continues`` takes the kind of the block it continues).
KINDS = ("script", "notebook", "redis", "continues", "skip")

_MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<body>.*?)\s*-->\s*$")
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
_FILENAME = re.compile(r"^#\s*(?P<name>[\w./-]+\.py)\s*$")


class ReadmeMarkerError(ValueError):
    """A ``readme-test`` marker the README test cannot read; the message says how to fix it."""


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    line: int  #: line of the opening fence (1-based)
    heading: str  #: the nearest heading above the block
    lang: str  #: the fence's language (``python``, ``bash``, ...)
    code: str
    kind: str = "script"  #: script, notebook, redis or skip (``continues`` is resolved)
    continues: bool = False
    reason: str = ""  #: why a skipped block is skipped
    outputs: tuple[str, ...] = field(default=())

    @property
    def filename(self) -> str | None:
        """The file the block's first line names (``# myproject/tasks.py``), if any."""
        first = self.code.lstrip("\n").split("\n", 1)[0]
        match = _FILENAME.match(first)
        return match["name"] if match else None

    @property
    def test_id(self) -> str:
        """The pytest id: the heading as a slug, then the line, e.g. ``configuration-L613``."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-") or "top"
        return f"{slug}-L{self.line}"


def _parse_marker(body: str, line: int) -> dict[str, object]:
    kind, *options = (part.strip() for part in body.split(";"))
    reason = ""
    if kind.startswith("skip"):
        kind, _, reason = kind.partition(":")
        kind, reason = kind.strip(), reason.strip()
        if kind != "skip" or not reason:
            raise ReadmeMarkerError(
                f"README.md line {line}: write a skipped block's reason after a colon, "
                "e.g. <!-- readme-test: skip: needs a PostgreSQL server named db -->"
            )
    if kind not in KINDS:
        raise ReadmeMarkerError(
            f"README.md line {line}: unknown readme-test kind {kind!r}; use one of "
            f"{', '.join(KINDS)} (see tests/readme_blocks.py)"
        )
    outputs = []
    for option in options:
        name, colon, value = option.partition(":")
        if name.strip() != "output" or not colon or not value.strip():
            raise ReadmeMarkerError(
                f"README.md line {line}: unknown readme-test option {option!r}; the only "
                "option is 'output: TEXT', e.g. <!-- readme-test: script; output: 200 -->"
            )
        outputs.append(value.strip())
    return {"kind": kind, "reason": reason, "outputs": tuple(outputs)}


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text`` (a README), with its marker applied.

    Raises ReadmeMarkerError for a marker that is not right before a fence, names an
    unknown kind or option, sits on a block that is not Python, or continues nothing.
    """
    lines = text.split("\n")
    blocks: list[Block] = []
    heading = ""
    marker: tuple[int, dict[str, object]] | None = None
    last_runnable: Block | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if (found := _MARKER.match(line)) is not None:
            if marker is not None:
                raise ReadmeMarkerError(f"README.md line {marker[0]}: a marker with no fence")
            marker = (i + 1, _parse_marker(found["body"], i + 1))
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence is None:
            if marker is not None:
                raise ReadmeMarkerError(
                    f"README.md line {marker[0]}: put the readme-test marker on the line "
                    "right before the block's opening ```python fence"
                )
            if (title := _HEADING.match(line)) is not None:
                heading = title["title"].strip("`")
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence["fence"]):
            end += 1
        block = Block(line=i + 1, heading=heading, lang=fence["lang"], code="\n".join(
            lines[i + 1 : end]) + "\n")  # fmt: skip
        block, last_runnable = _apply_marker(block, marker, last_runnable)
        blocks.append(block)
        marker = None
        i = end + 1
    if marker is not None:
        raise ReadmeMarkerError(f"README.md line {marker[0]}: a marker with no fence")
    return blocks


def _apply_marker(
    block: Block, marker: tuple[int, dict[str, object]] | None, last: Block | None
) -> tuple[Block, Block | None]:
    """``block`` with its marker's kind and options; and the last runnable Python block."""
    if block.lang != "python":
        if marker is not None:
            raise ReadmeMarkerError(
                f"README.md line {marker[0]}: readme-test markers go on ```python blocks, "
                f"this one is ```{block.lang or '(no language)'}"
            )
        return block, last
    options = dict(marker[1]) if marker is not None else {"kind": "script"}
    if options["kind"] == "continues":
        if last is None:
            raise ReadmeMarkerError(
                f"README.md line {block.line - 1}: 'continues' needs a runnable Python "
                "block before it; mark this one script, notebook or redis instead"
            )
        options.update(kind=last.kind, continues=True)
    block = Block(
        line=block.line,
        heading=block.heading,
        lang=block.lang,
        code=block.code,
        kind=str(options["kind"]),
        continues=bool(options.get("continues", False)),
        reason=str(options.get("reason", "")),
        outputs=tuple(options.get("outputs", ())),  # type: ignore[arg-type]
    )
    return block, (last if block.kind == "skip" else block)


def sessions(blocks: list[Block]) -> list[list[Block]]:
    """The runnable Python blocks grouped into sessions: a block and those continuing it."""
    groups: list[list[Block]] = []
    for block in blocks:
        if block.lang != "python" or block.kind == "skip":
            continue
        if block.continues:
            groups[-1].append(block)
        else:
            groups.append([block])
    return groups


def worker_command(blocks: list[Block], after_line: int) -> list[str]:
    """The first ``flowrra worker ...`` command of a shell block below ``after_line``."""
    import shlex

    for block in blocks:
        if block.line <= after_line or block.lang not in ("bash", "sh", "shell", "console"):
            continue
        for line in block.code.split("\n"):
            if line.strip().removeprefix("$ ").startswith("flowrra worker"):
                return shlex.split(line.strip().removeprefix("$ "), comments=True)
    raise ReadmeMarkerError(
        f"README.md: a redis block (line {after_line}) needs a ```bash block below it "
        "with the `flowrra worker --app ...` command that runs its tasks"
    )


def read_readme(path: Path) -> list[Block]:
    """``parse_blocks`` of the file at ``path``."""
    return parse_blocks(path.read_text(encoding="utf-8"))
