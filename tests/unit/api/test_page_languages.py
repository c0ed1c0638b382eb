"""The page's two word tables (service/web/static/i18n.js) say the same things."""

from __future__ import annotations

import re
from pathlib import Path

I18N = Path(__file__).resolve().parents[3] / "service" / "web" / "static" / "i18n.js"


def table(name: str) -> dict[str, str]:
    """The `const <name> = { "key": "words", ... };` table of i18n.js, as a dict."""
    source = I18N.read_text(encoding="utf-8")
    body = re.search(rf"^const {name} = \{{\n(.*?)^\}};", source, re.M | re.S)
    assert body, f"no table {name} in i18n.js"
    return dict(re.findall(r'^\s+"([^"]+)": "((?:[^"\\]|\\.)*)",$', body.group(1), re.M))


def test_chinese_has_every_english_key_and_no_other() -> None:
    english, chinese = table("en"), table("zhCN")
    assert len(english) > 100
    assert sorted(set(english) - set(chinese)) == [], "untranslated"
    assert sorted(set(chinese) - set(english)) == [], "not in English"


def test_placeholders_match_in_both_languages() -> None:
    english, chinese = table("en"), table("zhCN")
    for key, words in english.items():
        wanted = set(re.findall(r"\{(\w+)\}", words))
        assert set(re.findall(r"\{(\w+)\}", chinese[key])) == wanted, key
