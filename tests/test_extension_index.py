"""The entry for the A1111 extension index (docs/extension-index.json) follows the index's rules.

Rules from AUTOMATIC1111/stable-diffusion-webui-extensions (branch ``extensions``):
``.github/scripts/validate.py`` requires ``name``, ``url``, ``description`` and ``tags``, every
tag a key of ``tags.json``, ``url`` matching ``(https://[^ ]+?)(?:(?:\\.git)$|$)``, and the
pull-request template asks for an English description.
"""

import json
import re
from pathlib import Path

ENTRY = Path(__file__).resolve().parents[1] / "docs" / "extension-index.json"
#: The keys of the index's tags.json (copied verbatim from the index repository).
INDEX_TAGS = {
    "script",
    "localization",
    "tab",
    "dropdown",
    "ads",
    "installed",
    "training",
    "models",
    "UI related",
    "prompting",
    "editing",
    "manipulations",
    "online",
    "animation",
    "query",
    "science",
    "extras",
}


def test_index_entry_is_valid():
    entry = json.loads(ENTRY.read_text())
    assert {"name", "url", "description", "tags"} <= set(entry)
    assert re.fullmatch(r"(https://[^ ]+?)(?:(?:\.git)$|$)", entry["url"])
    assert entry["tags"] and set(entry["tags"]) <= INDEX_TAGS - {"installed", "online", "ads", "localization"}
    assert entry["description"].isascii() and len(entry["description"]) < 300
