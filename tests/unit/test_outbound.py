"""The private-address guard: which addresses are public, which URLs pass at submit time."""

from __future__ import annotations

import ipaddress

import pytest

from service.errors import InvalidRequest
from service.outbound import PrivateAllowance, checked_url, is_public, parse_allowance


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


def test_public_addresses() -> None:
    assert is_public(ipaddress.ip_address("93.184.216.34"))
    assert is_public(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946"))


def test_the_allowance_reads_flags_and_networks() -> None:
    assert parse_allowance("1").everything and not parse_allowance("0").everything
    only = parse_allowance("10.0.0.0/8, 127.0.0.1/32")
    assert only.permits(ipaddress.ip_address("10.9.9.9"))
    assert not only.permits(ipaddress.ip_address("127.0.0.2"))
    with pytest.raises(ValueError, match="not a network"):
        parse_allowance("intranet")


def test_urls_are_checked_for_scheme_host_and_literal_addresses() -> None:
    none = PrivateAllowance()
    assert checked_url("https://example.com/a?b=1", "u", none) == "https://example.com/a?b=1"
    for bad in ("ftp://example.com/", "https:///path", "not a url", "http://[::1]:80/", 7, ""):
        with pytest.raises(InvalidRequest):
            checked_url(bad, "u", none)
    assert checked_url("http://127.0.0.1:9/", "u", parse_allowance("1"))
