"""What an installed ppcmk puts into site-packages, and that the lists saying what is checked stay complete:
every package built and installed, every product package type-checked, every procedure under the import
contract that keeps procedures apart."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from ppcmk_deployments.catalog import RUNBOOKS

ROOT = Path(__file__).resolve().parents[2]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def package_folders() -> dict[str, Path]:
    """Installed top-level package → its folder in the checkout."""
    mapped = pyproject()["tool"]["setuptools"]["package-dir"]
    return {"ppcmk": ROOT / "ppcmk", **{name: ROOT / folder for name, folder in mapped.items()}}


def test_every_package_of_the_checkout_is_built() -> None:
    found = {".".join([top, *init.parent.relative_to(folder).parts])
             for top, folder in package_folders().items() for init in folder.rglob("__init__.py")}
    assert found == set(pyproject()["tool"]["setuptools"]["packages"])


def test_the_type_checker_and_the_import_contracts_see_everything() -> None:
    tools = pyproject()["tool"]
    assert set(tools["mypy"]["packages"]) == {*package_folders(), "bench"}
    assert set(tools["importlinter"]["root_packages"]) == set(package_folders())
    [procedures] = [c for c in tools["importlinter"]["contracts"] if c["id"] == "procedures-independent"]
    assert set(procedures["modules"]) == {f"ppcmk_flows.{name}" for name in RUNBOOKS}


def test_an_installed_wheel_adds_no_generic_import_name(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building in the checkout would leave a build/ folder there
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info",
                                                                "__pycache__", ".*_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("ppcmk-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    names = {p.name for p in site.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin"}
    assert names == set(package_folders())
    assert (site / "ppcmk_deployments" / "prefect.yaml").is_file()
    assert (site / "ppcmk_sandbox" / "scenarios" / "default" / "powerplatform.json").is_file()
