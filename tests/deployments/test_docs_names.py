"""The docs cannot drift by name: every dotted ppcmk name in a code span of README.md or docs/*.md is a module
or an attribute that imports today, or a name the product code writes (an event, a label, a key)."""

from __future__ import annotations

import importlib
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
PRODUCT = ("ppcmk", "flows", "tasks", "blocks", "deployments", "cli")
# the repository's folders and the import names an installed ppcmk gives them
IMPORT_NAMES = {"flows": "ppcmk_flows", "tasks": "ppcmk_tasks", "blocks": "ppcmk_blocks",
                "deployments": "ppcmk_deployments", "cli": "ppcmk_cli", "sandbox": "ppcmk_sandbox"}
DOTTED = re.compile(r"(?<![\w./$-])(ppcmk(?:_[a-z]+)?|flows|tasks|blocks|deployments|cli|sandbox)"
                    r"((?:\.[A-Za-z_]\w*)+)")
FILE_SUFFIX = re.compile(r"\.(py|json|ya?ml|md|pem|csv|html|pdf|token|toml|txt|sh)\b")


def code_spans(text: str) -> list[str]:
    """Fenced blocks whole, and the inline code spans of each paragraph (a span may wrap a line)."""
    fence = re.compile(r"(?ms)^```[a-z]*\n(.*?)^```")
    prose = fence.sub("", text)
    paragraphs = re.split(r"\n\s*\n", prose)
    inline = [span for paragraph in paragraphs for span in re.findall(r"`([^`]+)`", paragraph)]
    return fence.findall(text) + inline


def dotted_names(doc: Path) -> set[str]:
    return {head + tail for span in code_spans(doc.read_text()) for head, tail in DOTTED.findall(span)
            if not FILE_SUFFIX.match(tail)}


def imports(name: str) -> bool:
    head, _, rest = name.partition(".")
    parts = [IMPORT_NAMES.get(head, head), *rest.split(".")]
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


@cache
def product_source() -> str:
    return "\n".join(path.read_text() for package in PRODUCT for path in (ROOT / package).rglob("*.py"))


def written_by_the_code(name: str) -> bool:
    return f'"{name}' in product_source()


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_every_dotted_name_in_the_docs_exists(doc: Path) -> None:
    missing = sorted(name for name in dotted_names(doc)
                     if not imports(name) and not written_by_the_code(name))
    assert not missing, f"{doc.name} names what the code no longer has: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_every_import_in_a_python_example_works(doc: Path) -> None:
    examples = re.findall(r"(?ms)^```python\n(.*?)^```", doc.read_text())
    statements = [line for example in examples for line in example.splitlines()
                  if re.match(r"(from \S+ )?import ", line)]
    # run from the repository, its folders would import too: an installed ppcmk has only the ppcmk_ names
    failing = [s for s in statements if s.split()[1].split(".")[0] in IMPORT_NAMES]
    for statement in statements:
        try:
            exec(statement, {})  # an import statement taken from our own docs, nothing else
        except ImportError:
            failing.append(statement)
    assert not failing, f"{doc.name}: {failing}"


def test_a_name_that_is_gone_is_caught() -> None:
    assert imports("flows._runbook.load_target") and imports("ppcmk.safety.plan.Plan")
    assert not imports("ppcmk.rotation_pickup.pickup") and not imports("flows._runbook.read_back_rows")
    assert dotted_names(ROOT / "docs" / "ARCHITECTURE.md"), "the docs are read"
