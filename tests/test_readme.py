"""The README's configuration table must list every setting, with its real default."""

from __future__ import annotations

import re
from pathlib import Path

from herald.core.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_documented_with_its_default() -> None:
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `(HERALD_[A-Z_]+)` \| ([^|]+) \|", README.read_text(), re.M)
    }
    for name, field in Settings.model_fields.items():
        variable = f"HERALD_{name.upper()}"
        assert variable in rows, f"{variable} is missing from the README's table"
        default = field.default
        if field.default_factory is not None or default is None:
            assert rows[variable].strip() == "(unset)", variable
        else:
            shown = getattr(default, "value", default)
            assert rows[variable].strip() == f"`{shown}`", variable
    assert set(rows) == {f"HERALD_{n.upper()}" for n in Settings.model_fields}
