"""The files a release carries agree with the package: LICENSE with pyproject's license, CITATION.cff (valid for
the Citation File Format 1.2.0's required keys) and CHANGELOG.md with its version."""

import re

import yaml

import paretohqd

from .conftest import REPO


def pyproject_value(key: str) -> str:
    """A top-level string or list setting of pyproject.toml's [project] as written (tomllib: Python 3.11+)."""
    found = re.search(rf"^{re.escape(key)} = (.+)$", (REPO / "pyproject.toml").read_text(), flags=re.MULTILINE)
    assert found, f"pyproject.toml has no {key}"
    return found.group(1)


PYPROJECT = {"version": pyproject_value("version").strip('"'), "license": pyproject_value("license").strip('"'),
             "license-files": re.findall(r'"([^"]+)"', pyproject_value("license-files"))}


def test_the_license_file_is_the_apache_license_pyproject_declares():
    text = (REPO / "LICENSE").read_text()
    assert PYPROJECT["license"] == "Apache-2.0" and PYPROJECT["license-files"] == ["LICENSE"]
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text


def test_citation_has_the_cff_keys_and_the_packages_version():
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert {"cff-version", "message", "title", "authors"} <= set(citation)
    assert citation["cff-version"] == "1.2.0"
    assert str(citation["version"]) == PYPROJECT["version"] == paretohqd.__version__
    assert citation["license"] == PYPROJECT["license"]
    assert all("name" in author or "family-names" in author for author in citation["authors"])
    paper = citation["preferred-citation"]
    assert {"type", "title", "authors"} <= set(paper)
    assert paper["title"].startswith("ParetoHqD:") and paper["year"] == 2026
    assert "arXiv:2504.16628" in [identifier["value"] for identifier in paper["identifiers"]]


def test_the_changelog_has_every_release_up_to_the_packages_version():
    text = (REPO / "CHANGELOG.md").read_text()
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, flags=re.MULTILINE)
    assert released[0] == PYPROJECT["version"]
    minors = [int(version.split(".")[1]) for version in released]
    assert minors == list(range(minors[0], 0, -1))  # newest first, from 0.1 on, none missing
