"""Unit tests for who is calling: the credential in the headers, the address behind proxies."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from gateway.errors import BadUserInputError, UnauthenticatedError
from gateway.http.callers import (
    MAX_CREDENTIAL_CHARS,
    SSID_HEADER,
    TOKEN_HEADER,
    USER_ID_HEADER,
    TrustedProxies,
    address_key,
    credential_from_headers,
)
from gateway.model import Credential


def headers(**values: str) -> Headers:
    """Starlette request headers from ssid=, user_id=, token= and other=."""
    names = {"ssid": SSID_HEADER, "user_id": USER_ID_HEADER, "token": TOKEN_HEADER}
    raw = [
        (names.get(name, name).lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in values.items()
    ]
    return Headers(raw=raw)


@pytest.mark.parametrize(
    "given",
    [
        Headers(),
        headers(other="x"),
        headers(ssid=""),
        headers(ssid="   ", user_id="\t", token=" "),
    ],
    ids=["none", "unrelated", "empty-ssid", "whitespace-only"],
)
def test_no_credentials_is_unauthenticated(given: Headers) -> None:
    """Without any non-blank credential header the caller is UNAUTHENTICATED, told what to send."""
    with pytest.raises(UnauthenticatedError) as caught:
        credential_from_headers(given)

    assert caught.value.code == "UNAUTHENTICATED"
    for name in (SSID_HEADER, USER_ID_HEADER, TOKEN_HEADER):
        assert name in caught.value.message


def test_an_ssid_is_a_session_credential() -> None:
    """X-DeepCall-SSID alone gives a session-id credential."""
    assert credential_from_headers(headers(ssid="sess-123")) == Credential(ssid="sess-123")


def test_a_user_id_with_a_token_is_a_user_credential() -> None:
    """X-DeepCall-User-Id with X-DeepCall-Token gives a user credential."""
    credential = credential_from_headers(headers(user_id="u-1", token="tok-1"))

    assert credential == Credential(user_id="u-1", token="tok-1")
    assert credential.ssid is None


def test_header_names_are_case_insensitive() -> None:
    """The headers are found whatever case the client wrote their names in."""
    given = Headers(headers={"x-deepcall-user-id": "u-1", "X-DEEPCALL-TOKEN": "tok-1"})

    assert credential_from_headers(given) == Credential(user_id="u-1", token="tok-1")


def test_values_are_stripped() -> None:
    """Surrounding whitespace is not part of a credential."""
    assert credential_from_headers(headers(ssid="  sess-123\t")) == Credential(ssid="sess-123")


@pytest.mark.parametrize(
    "given",
    [
        headers(ssid="s", user_id="u"),
        headers(ssid="s", token="t"),
        headers(ssid="s", user_id="u", token="t"),
    ],
    ids=["ssid+user", "ssid+token", "ssid+user+token"],
)
def test_both_forms_at_once_is_bad_user_input(given: Headers) -> None:
    """An ssid together with user id or token is refused with a message saying what to send."""
    with pytest.raises(BadUserInputError) as caught:
        credential_from_headers(given)

    message = caught.value.message
    for name in (SSID_HEADER, USER_ID_HEADER, TOKEN_HEADER):
        assert name in message
    assert "not both" in message


@pytest.mark.parametrize(
    "given",
    [headers(user_id="u"), headers(token="t"), headers(user_id="u", token="   ")],
    ids=["user-without-token", "token-without-user", "blank-token"],
)
def test_half_a_user_credential_is_bad_user_input(given: Headers) -> None:
    """A user id without a token, or a token without a user id, is refused, naming both headers."""
    with pytest.raises(BadUserInputError) as caught:
        credential_from_headers(given)

    assert USER_ID_HEADER in caught.value.message
    assert TOKEN_HEADER in caught.value.message


def test_a_blank_ssid_beside_a_user_credential_is_ignored() -> None:
    """A whitespace-only ssid counts as absent, so user id and token are used alone."""
    given = headers(ssid="  ", user_id="u-1", token="tok-1")

    assert credential_from_headers(given) == Credential(user_id="u-1", token="tok-1")


LONG = "L" * (MAX_CREDENTIAL_CHARS + 1)


@pytest.mark.parametrize(
    "given",
    [headers(ssid=LONG), headers(user_id=LONG, token="t"), headers(user_id="u", token=LONG)],
    ids=["ssid", "user-id", "token"],
)
def test_over_long_values_are_refused(given: Headers) -> None:
    """A credential header longer than MAX_CREDENTIAL_CHARS is refused without echoing it."""
    with pytest.raises(BadUserInputError) as caught:
        credential_from_headers(given)

    assert str(MAX_CREDENTIAL_CHARS) in caught.value.message
    assert "LLLL" not in caught.value.message


def test_values_at_the_length_limit_are_accepted() -> None:
    """A credential header of exactly MAX_CREDENTIAL_CHARS is accepted."""
    value = "s" * MAX_CREDENTIAL_CHARS

    assert credential_from_headers(headers(ssid=value)) == Credential(ssid=value)


def test_errors_never_echo_the_credential() -> None:
    """Refusals of a credential do not repeat its value in their message."""
    with pytest.raises(BadUserInputError) as caught:
        credential_from_headers(headers(ssid="ssid-SENTINEL-1", user_id="user-SENTINEL-2"))

    assert "SENTINEL" not in caught.value.message


# TrustedProxies


def forwarded(*values: str) -> Headers:
    """Request headers carrying one X-Forwarded-For line per value."""
    return Headers(raw=[(b"x-forwarded-for", value.encode()) for value in values])


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_headers_say() -> None:
    """By default X-Forwarded-For is ignored: a client cannot claim to be someone else."""
    proxies = TrustedProxies()

    assert proxies.client_of("203.0.113.9", forwarded("198.51.100.1")) == "203.0.113.9"


def test_a_trusted_peers_header_names_the_client_right_most_untrusted_first() -> None:
    """Behind two trusted proxies the entry left of them is the client, not the ones before it."""
    proxies = TrustedProxies(["10.0.0.0/8", "192.168.1.1"])
    headers = forwarded("1.1.1.1, 198.51.100.7, 10.1.2.3")

    assert proxies.client_of("192.168.1.1", headers) == "198.51.100.7"


def test_every_line_of_the_header_is_read_in_order() -> None:
    """Two X-Forwarded-For lines are one list: the right-most untrusted entry of both."""
    proxies = TrustedProxies(["10.0.0.0/8"])

    client = proxies.client_of("10.0.0.1", forwarded("1.1.1.1", "198.51.100.7, 10.9.9.9"))

    assert client == "198.51.100.7"


def test_an_untrusted_peers_header_is_ignored() -> None:
    """A peer outside the trusted networks is the client, header or not."""
    proxies = TrustedProxies(["10.0.0.0/8"])

    assert proxies.client_of("203.0.113.9", forwarded("198.51.100.1")) == "203.0.113.9"


def test_a_trusted_peer_without_the_header_is_the_client() -> None:
    """No X-Forwarded-For from a trusted proxy: the proxy's own address is all there is."""
    proxies = TrustedProxies(["10.0.0.0/8"])

    assert proxies.client_of("10.0.0.1", Headers()) == "10.0.0.1"


def test_all_entries_trusted_leaves_the_left_most() -> None:
    """Trusted proxies only: the left-most is as far back as the header can be believed."""
    proxies = TrustedProxies(["10.0.0.0/8"])

    assert proxies.client_of("10.0.0.1", forwarded("10.0.0.7, 10.0.0.8")) == "10.0.0.7"


def test_addresses_are_keyed_ipv6_by_their_64_and_ipv4_mapped_as_ipv4() -> None:
    """One IPv6 subscriber (a /64) is one key; ::ffff:a.b.c.d is a.b.c.d; garbage is truncated."""
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert address_key("x" * 500) == "x" * 64
