from __future__ import annotations

from importlib import resources

from service.queries import _statements, parse

SOURCE = resources.files("service").joinpath("sql/queries.sql").read_text()


def test_every_statement_has_a_name_and_a_line_of_why() -> None:
    statements = parse(SOURCE)
    assert len(statements) == len(_statements()) > 20
    lines = SOURCE.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("-- ") and line.endswith(" --")]
    assert len(headers) == len(statements)
    for i in headers:
        assert lines[i + 1].startswith("-- ") and len(lines[i + 1]) > 20, lines[i]


def test_the_claim_is_one_skip_locked_statement() -> None:
    claim = parse(SOURCE)["claim_jobs"]
    assert "FOR UPDATE SKIP LOCKED" in claim and claim.count(";") == 0
