"""Unit tests for the values every layer shares: credentials and canonical questions."""

from __future__ import annotations

import json

import pytest

from gateway.model import CountQuery, Credential

SSID = Credential(ssid="ssid-SENTINEL-9c41")
USER = Credential(user_id="user-SENTINEL-5e07", token="token-SENTINEL-b3d2")

# Credential


@pytest.mark.parametrize("credential", [SSID, USER], ids=["ssid", "user"])
def test_credential_repr_hides_secrets(credential: Credential) -> None:
    """repr() and str() of a Credential (alone or inside a container) show no secret."""
    shown = [repr(credential), str(credential), f"{credential}", repr([credential])]

    for text in shown:
        assert "SENTINEL" not in text
    assert repr(credential).startswith("Credential(")


def test_credential_identity_tells_the_forms_apart() -> None:
    """The same text as an ssid and as a user id gives different identities."""
    assert Credential(ssid="a").identity() != Credential(user_id="a", token="").identity()
    assert (
        Credential(user_id="a", token="b").identity()
        != Credential(user_id="a", token="c").identity()
    )


def test_the_body_splices_the_canonical_filter_in_as_it_is() -> None:
    """payload() is the JSON body: auth fields, the filter, priorityFilter; sorted keys."""
    query = CountQuery.build({"st": ["b"], "campId": 7, "extra": {"z": 1, "a": "é"}}, "e30=")
    assert query.filter_json == '{"campId":7,"extra":{"a":"é","z":1},"st":["b"]}'
    assert json.loads(query.payload(USER)) == {
        "userId": USER.user_id,
        "token": USER.token,
        "filter": {"campId": 7, "extra": {"a": "é", "z": 1}, "st": ["b"]},
        "priorityFilter": "e30=",
    }
    assert json.loads(CountQuery.build({}, None).payload(SSID)) == {"ssid": SSID.ssid}


def test_integers_beyond_64_bits_still_make_a_canonical_filter() -> None:
    """orjson refuses them; the standard library's form is used instead, and sent as it is."""
    query = CountQuery.build({"extra": {"n": 2**70}}, None)
    assert query.filter_json == '{"extra":{"n":1180591620717411303424}}'
    assert json.loads(query.payload(SSID))["filter"] == {"extra": {"n": 2**70}}
