"""The CRM recognizers of include/pii/recognizers.yaml, through the real analyzer (one engine per module)."""

from __future__ import annotations

import pytest

from pipeline_hub.pii_config import ScrubConfig
from pipeline_hub.pii_engine import PiiAnalyzer
from pipeline_hub.recognizers import CrmCreditCardRecognizer, CrmPhoneRecognizer


@pytest.fixture(scope="module")
def found():
    analyzer = PiiAnalyzer(ScrubConfig.load())

    def run(text: str) -> list[tuple[str, str]]:
        return [(d.entity, text[d.start : d.end]) for d in analyzer.analyze([text])[0]]

    yield run
    analyzer.close()


def test_registry_holds_only_the_configured_recognizers():
    engine = PiiAnalyzer(ScrubConfig.load()).engine
    names = sorted(r.name for r in engine.registry.recognizers)
    assert names == sorted(
        [
            "SpacyRecognizer",
            "EmailRecognizer",
            "CrmPhoneRecognizer",
            "CrmCreditCardRecognizer",
            "IbanRecognizer",
            "IpRecognizer",
            "UsSsnRecognizer",
            "VatIdRecognizer",
            "CompanyRegistrationRecognizer",
            "UsEinRecognizer",
        ]
    )


@pytest.mark.parametrize(
    "number",
    [
        "+44 20 7946 0958",  # GB, international
        "+44 (0)20 7946 0958",  # GB, with the trunk 0 people keep writing
        "0049 30 1234 5678",  # DE, 00 prefix
        "+33 1 42 68 53 00",  # FR
        "+91 98765 43210",  # IN mobile
        "+61 2 9374 4000",  # AU
        "+65 6221 2345",  # SG, international: any country
        "+1-212-555-0147",
        "(212) 555-0147",  # US national
        "212.555.0147",
        "030 1234567",  # DE national
        "020 7946 0958",  # GB national
        "06 12 34 56 78",  # FR national mobile
        "03-1234-5678",  # JP national
    ],
)
def test_phone_numbers_in_international_and_national_formats(found, number):
    assert ("PHONE_NUMBER", number) in found(f"Please ring {number} after 10 am.")


def test_phone_numbers_of_context_regions_need_a_context_word(found):
    assert ("PHONE_NUMBER", "6221 2345") in found("Singapore office, tel. 6221 2345.")
    assert found("Singapore office reference 6221 2345.") == []  # an 8-digit id looks the same
    assert ("PHONE_NUMBER", "4155550147") in found("Mobile: 4155550147")
    assert found("Order 4155550147 shipped.") == []  # a bare digit run is a phone only in context


@pytest.mark.parametrize(
    "text",
    [
        "Delivered on 2024-03-15 and 15.3.2024.",
        "Server 192.168.100.200 is down.",
        "Your order PO-2023-126606 and invoice INV/2024/557812 are ready.",
        "Call me in 5 minutes.",
    ],
)
def test_dates_addresses_and_identifiers_are_not_phone_numbers(found, text):
    assert not [e for e, _ in found(text) if e == "PHONE_NUMBER"]


def test_phone_recognizer_rejects_unknown_regions():
    with pytest.raises(ValueError, match=r"unknown region codes \['XX'\]"):
        CrmPhoneRecognizer(supported_regions=["US", "XX"])


@pytest.mark.parametrize(
    "card",
    ["2223 0000 4841 0010", "2221-0012-3456-7896", "5555 5555 5555 4444", "4111111111111111", "3782 822463 10005"],
)
def test_credit_cards_including_mastercard_2_series(found, card):
    assert ("CREDIT_CARD", card) in found(f"Card on file: {card}, exp 04/28.")


def test_credit_card_checks_luhn_and_the_2_series_range():
    rec = CrmCreditCardRecognizer()
    assert rec.validate_result("2223000048410010") is True
    assert rec.validate_result("2223000048410011") is False  # Luhn fails
    assert rec.validate_result("2800000000000001") is False  # outside 2221-2720


def test_iban_followed_by_a_lower_case_word(found):
    # With Presidio's default IGNORECASE registry flag the pattern swallows "quoting" and fails its checksum.
    text = "Wire it to IBAN ES91 2100 0418 4502 0005 1332 quoting invoice 4411."
    assert ("IBAN_CODE", "ES91 2100 0418 4502 0005 1332") in found(text)


@pytest.mark.parametrize(
    "vat",
    [
        "DE123456789",
        "DE 123 456 789",
        "ATU12345678",
        "NL123456789B01",
        "FR40303265045",
        "GB 123 4567 89",
        "IT12345678901",
        "ESB12345674",
        "BE0123456789",
        "CHE-123.456.789 MWST",
        "NO 123 456 789 MVA",
    ],
)
def test_vat_identification_numbers(found, vat):
    assert ("VAT_ID", vat) in found(f"Our VAT number is {vat}.")
    assert ("VAT_ID", vat) in found(f"Supplier {vat} confirmed the delivery.")  # the prefix alone suffices


def test_company_registration_numbers(found):
    assert ("COMPANY_REGISTRATION_NUMBER", "HRB 12345 B") in found("Amtsgericht Charlottenburg HRB 12345 B")
    assert ("COMPANY_REGISTRATION_NUMBER", "SC123456") in found("Registered in Scotland, company no. SC123456.")
    assert ("COMPANY_REGISTRATION_NUMBER", "01234567") in found("Company number 01234567, registered in England.")
    assert ("COMPANY_REGISTRATION_NUMBER", "732 829 320") in found("SIREN 732 829 320")
    assert ("COMPANY_REGISTRATION_NUMBER", "732 829 320 00074") in found("SIRET: 732 829 320 00074")
    assert ("COMPANY_REGISTRATION_NUMBER", "12345678") in found("Chamber of commerce: KvK-nr. 12345678")
    assert ("COMPANY_REGISTRATION_NUMBER", "04567123") in found("Acme Ltd, registration number 04567123")
    assert found("We sold 01234567 widgets.") == []  # bare digits need a context word


def test_us_employer_identification_numbers_need_context(found):
    assert ("US_EIN", "12-3456789") in found("Our EIN is 12-3456789.")
    assert found("Part 12-3456789 is back-ordered.") == []
