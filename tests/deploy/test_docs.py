"""docs/deploy.md: linked from the README, and every deploy/ file it names exists."""

from __future__ import annotations

import re

from tests.deploy.files import DEPLOY, ROOT

GUIDE = ROOT / "docs" / "deploy.md"


def test_the_readme_links_the_guide() -> None:
    assert "(docs/deploy.md)" in (ROOT / "README.md").read_text()


def test_every_deploy_file_named_in_the_guide_exists() -> None:
    named = set(re.findall(r"deploy/[\w./@-]*[\w@-]", GUIDE.read_text()))
    assert "deploy/compose.yaml" in named
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert missing == []


def test_the_guide_names_every_deploy_file() -> None:
    text = GUIDE.read_text()
    top = {p.name for p in DEPLOY.iterdir()}
    assert all(f"deploy/{name}" in text for name in top), top
