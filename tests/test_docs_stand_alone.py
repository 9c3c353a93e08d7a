"""The repository stands alone: its Markdown links resolve, its `docs/*.md#anchor` references (in code
comments too) name sections that exist, and no file cites notes kept outside the repository or a
path of one machine.

Anchors are GitHub's: the heading lowercased, everything but letters, digits, `_`, `-` and spaces
dropped, spaces turned into `-`, and `-1`, `-2`... appended to repeats (the rule GitHub's Markdown
renderer applies; github/cmark-gfm's `anchor` handling in its HTML renderer).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Directories that are not the project's own files: VCS data, caches, virtualenvs, build output.
SKIPPED_DIRS = {".git", ".tox", ".venv", "venv", ".lab", ".pytest_cache", ".ruff_cache", "__pycache__",
                "build", "dist", "node_modules"}

# What must never be cited. Spelled in pieces so this file does not match itself.
NOTES_NAME = "FACTS" + ".md"
DESIGN_NAME = "design" + ".md"
OUTSIDE_CITATIONS = [
    (re.compile(re.escape(NOTES_NAME), re.IGNORECASE), "the reference notes kept outside the repository"),
    (re.compile(r"(?<![\w-])" + re.escape(DESIGN_NAME)), "design notes kept outside the repository"),
    (re.compile(re.escape(".." + "/shared")), "a folder beside the repository"),
    (re.compile(r"(?<![\w.:/-])/" + "work" + r"/"), "an absolute path on one machine"),
]

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
DOCS_REFERENCE = re.compile(r"(?<![\w/.-])docs/([\w.-]+\.md)(?:#([\w-]+))?")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


def repository_files(root: Path) -> list[Path]:
    """Every file of the project under `root`, without VCS data, caches and build output."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.endswith(".egg-info"))
        # `.git` is a file in a worktree (a `gitdir:` line naming the main checkout).
        out += [Path(dirpath) / f for f in sorted(filenames) if f != ".git"]
    return out


def read_text(path: Path) -> str | None:
    """The file's text, or None for a binary file."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def outside_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of each Markdown line outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (before de-duplication)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every anchor a Markdown document offers: its headings' slugs and explicit HTML anchors."""
    seen: dict[str, int] = {}
    out = set(HTML_ANCHOR.findall(markdown))
    for _, line in outside_lines(markdown):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(md_file: Path, root: Path) -> list[str]:
    """Relative Markdown links of `md_file` whose file or anchor does not exist."""
    text = read_text(md_file) or ""
    problems = []
    for number, line in outside_lines(text):
        line = re.sub(r"`[^`]*`", "", line)  # inline code is not a link
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                continue  # http:, https:, mailto: ... (not followed: nothing leaves the machine)
            path_part, _, anchor = target.partition("#")
            dest = (md_file.parent / path_part).resolve() if path_part else md_file
            where = f"{md_file.relative_to(root)}:{number}: {target}"
            if not dest.exists():
                problems.append(f"{where} (no such file)")
            elif root not in dest.parents and dest != root:
                problems.append(f"{where} (outside the repository)")
            elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest.read_text(encoding="utf-8"))):
                problems.append(f"{where} (no such section)")
    return problems


def broken_docs_references(path: Path, root: Path) -> list[str]:
    """`docs/<file>.md[#anchor]` mentions (code comments, docstrings, text) that do not resolve."""
    text = read_text(path)
    if text is None:
        return []
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        for name, anchor in DOCS_REFERENCE.findall(line):
            dest = root / "docs" / name
            where = f"{path.relative_to(root)}:{number}: docs/{name}{'#' + anchor if anchor else ''}"
            if not dest.is_file():
                problems.append(f"{where} (no such file)")
            elif anchor and anchor not in anchors(dest.read_text(encoding="utf-8")):
                problems.append(f"{where} (no such section)")
    return problems


def outside_citations(path: Path, root: Path) -> list[str]:
    """Lines of `path` that cite something outside the repository."""
    text = read_text(path)
    if text is None:
        return []
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, what in OUTSIDE_CITATIONS:
            if pattern.search(line):
                problems.append(f"{path.relative_to(root)}:{number}: {what}: {line.strip()[:120]}")
    return problems


# -- the repository ---------------------------------------------------------------------------------

def test_every_markdown_link_resolves_to_a_file_and_section():
    md_files = [p for p in repository_files(ROOT) if p.suffix == ".md"]
    assert len(md_files) >= 10, "the README and docs/ should be found"
    problems = [p for f in md_files for p in broken_links(f, ROOT)]
    assert problems == [], "broken links:\n" + "\n".join(problems)


def test_every_docs_reference_in_the_code_names_an_existing_section():
    files = repository_files(ROOT)
    referenced = [f for f in files if f.suffix == ".py" and DOCS_REFERENCE.search(read_text(f) or "")]
    assert referenced, "the code should point at docs/ somewhere"
    # This file's own examples below are broken on purpose.
    problems = [p for f in files if f != Path(__file__).resolve() for p in broken_docs_references(f, ROOT)]
    assert problems == [], "references to missing docs or sections:\n" + "\n".join(problems)


def test_no_file_cites_notes_outside_the_repository_or_a_machine_path():
    problems = [p for f in repository_files(ROOT) for p in outside_citations(f, ROOT)]
    assert problems == [], "the repository must stand alone:\n" + "\n".join(problems)


# -- the checks themselves catch what they are for ---------------------------------------------------

def test_slugs_follow_github():
    text = ("# Top\n## Addresses (defaults; all overridable through `Stack`)\n"
            "### Recording egress proxy (`lab/fakes/egress_proxy/`)\n## DD_AGENT_HOST variants\n"
            "## Top\n```\n# not a heading\n```\n")
    assert anchors(text) == {"top", "addresses-defaults-all-overridable-through-stack",
                             "recording-egress-proxy-labfakesegress_proxy", "dd_agent_host-variants", "top-1"}


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n## Port map\n")
    return tmp_path


def test_a_missing_file_or_section_is_reported(tiny_repo: Path):
    readme = tiny_repo / "README.md"
    readme.write_text("[ok](docs/a.md#port-map) [gone](docs/b.md) [typo](docs/a.md#port-maps) "
                      "[web](https://example.invalid/x) `[code](docs/nope.md)`\n"
                      "```\n[fenced](docs/nope.md)\n```\n")
    problems = broken_links(readme, tiny_repo)
    assert [p.split(" (")[1] for p in problems] == ["no such file)", "no such section)"], problems
    assert "docs/b.md" in problems[0] and "#port-maps" in problems[1]


def test_a_link_leaving_the_repository_is_reported(tiny_repo: Path):
    inner = tiny_repo / "repo"
    (inner / "docs").mkdir(parents=True)
    (inner / "docs" / "x.md").write_text("[out](../../docs/a.md)\n")
    problems = broken_links(inner / "docs" / "x.md", inner)
    assert problems == ["docs/x.md:1: ../../docs/a.md (outside the repository)"]


def test_a_stale_reference_in_code_is_reported(tiny_repo: Path):
    module = tiny_repo / "m.py"
    module.write_text("# see docs/a.md#port-map\n# and docs/a.md#fips-port-map, docs/missing.md\n")
    problems = broken_docs_references(module, tiny_repo)
    assert problems == ["m.py:2: docs/a.md#fips-port-map (no such section)",
                        "m.py:2: docs/missing.md (no such file)"]


def test_citations_of_outside_notes_and_machine_paths_are_reported(tiny_repo: Path):
    module = tiny_repo / "m.py"
    module.write_text(f"# as {NOTES_NAME} section 3 says\n# see {DESIGN_NAME}\n# ../" + "shared/seeds\n"
                      "# open('/" + "work/notes/x')\n"
                      "# https://example.invalid/work/ is a URL, docs/design_x.md is fine\n")
    problems = outside_citations(module, tiny_repo)
    assert [int(p.split(":")[1]) for p in problems] == [1, 2, 3, 4], problems
