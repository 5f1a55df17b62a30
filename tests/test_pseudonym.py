"""Keyed pseudonyms are stable, normalised, key-dependent and never contain the value."""

from pipeline_hub.pii.pseudonym import pseudonymize

KEY = bytes(range(32))


def test_same_value_same_pseudonym_after_normalisation():
    assert pseudonymize("Jane.Doe@Example.org ", "EMAIL_ADDRESS", KEY) == pseudonymize(
        "jane.doe@example.org", "EMAIL_ADDRESS", KEY
    )
    assert pseudonymize("+1 (713) 853-4218", "PHONE_NUMBER", KEY) == pseudonymize(
        "+1 713 853 4218", "PHONE_NUMBER", KEY
    )


def test_key_and_kind_change_the_pseudonym():
    p = pseudonymize("Jane Doe", "PERSON", KEY)
    assert p.startswith("psn_") and "jane" not in p.lower()
    assert p != pseudonymize("Jane Doe", "PERSON", bytes(32))
    assert p != pseudonymize("Jane Doe", "EMAIL_ADDRESS", KEY)
