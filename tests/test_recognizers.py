# ruff: noqa: E501 - tables of literal example texts read best one per line
"""The CRM recognizers of include/pii/recognizers.yaml, through the real analyzer (one engine per module)."""

from __future__ import annotations

import pytest

from pipeline_hub.pii.config import ScrubConfig
from pipeline_hub.pii.engine import PiiAnalyzer
from pipeline_hub.pii.recognizers import CrmCreditCardRecognizer, CrmPhoneRecognizer


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
            "SignatureNameRecognizer",
            "StreetAddressRecognizer",
            "SecretRecognizer",
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


# --- issue 12: NANP layouts, street addresses, secrets, names in e-mail layout ---------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("Call (415)555-0132 today.", "(415)555-0132"),
        ("Call (415) 555-0132 today.", "(415) 555-0132"),
        ("Office 415.555.0132 today.", "415.555.0132"),
        ("Office 415.555.0132x4471.", "415.555.0132x4471"),  # the extension is part of the span
        ("Office 415-555-0132x123, thanks.", "415-555-0132x123"),
        ("Office 415-555-0132 ext. 12.", "415-555-0132 ext. 12"),
        ("Office (415) 555-0132 extension 55.", "(415) 555-0132 extension 55"),
        ("Reach me at +1 415 555 0132.", "+1 415 555 0132"),
        ("Dial +1-415-555-0132.", "+1-415-555-0132"),
        ("Direct: 001-415-555-0132x9221", "001-415-555-0132x9221"),
        ("Phone 1-415-555-0132.", "1-415-555-0132"),
        ("Please call 4155550132 tomorrow.", "4155550132"),  # "call" is a spaCy stop word: matched on the text
        ("cell 4155550132", "4155550132"),
    ],
)
def test_nanp_phone_layouts(found, text, number):
    assert ("PHONE_NUMBER", number) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "Order #4155550132 shipped.",
        "Order 4155550132 shipped.",
        "Invoice INV/2024/5566 and PO-2023-126606.",
        "Paid $4,155.50 on 2024-03-15 at 10:30.",
        "Meeting 10:30-11:45 on 03/15/2024.",
        "Total USD 1,234,567.89 for 12 units.",
        "Ref 2024-0315-7781 closed at 14:05.",
    ],
)
def test_order_numbers_dates_times_and_amounts_are_not_phones(found, text):
    assert [v for e, v in found(text) if e == "PHONE_NUMBER"] == []


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("Ship to 1600 Amphitheatre Parkway, Mountain View, CA 94043 by Friday.", "1600 Amphitheatre Parkway, Mountain View, CA 94043"),
        ("Office: 350 Fifth Avenue, Suite 5100, New York, NY 10118.", "350 Fifth Avenue, Suite 5100, New York, NY 10118"),
        ("Billing address\n42 N Oak St Apt. 12B\nAustin, TX 78701\n", "42 N Oak St Apt. 12B\nAustin, TX 78701"),
        ("Mail it to 10 Downing Street, London SW1A 2AA.", "10 Downing Street, London SW1A 2AA"),
        ("HQ: 401 Bay Street, Toronto, ON M5H 2Y4", "401 Bay Street, Toronto, ON M5H 2Y4"),
        ("Deliver to 77 Market St today.", "77 Market St"),
        ("Send cheques to PO Box 4471.", "PO Box 4471"),
    ],
)  # fmt: skip
def test_street_addresses(found, text, address):
    assert ("STREET_ADDRESS", address) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "We shipped 12 units to the store on Main street market day.",
        "Q3 2024 Sales Plan is final.",
        "Version 2 Way ahead",
    ],
)
def test_street_address_look_alikes(found, text):
    assert [v for e, v in found(text) if e == "STREET_ADDRESS"] == []


JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("AWS key AKIAIOSFODNN7EXAMPLE in the config", "AKIAIOSFODNN7EXAMPLE"),
        ('aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"', "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("CI uses ghp_16C7e42F292c6912E7710c838347Ae178B4a daily", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
        ("PAT github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ ok", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"),
        ("bot xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx ok", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
        ("hook https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX.", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
        ("Stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc here", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ("Stripe sk_test_4eC39HqLyjWDarjtT1zdp7dc here", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
        ("key sk-proj-Ab3dEf6hIj9kLmN0pQrS_tUvWxYz-12345678901234567890abcdEFGH now", "sk-proj-Ab3dEf6hIj9kLmN0pQrS_tUvWxYz-12345678901234567890abcdEFGH"),
        ("key sk-abcdefghijklmnopqrstT3BlbkFJabcdefghijklmnopqrst.", "sk-abcdefghijklmnopqrstT3BlbkFJabcdefghijklmnopqrst"),
        ("key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234\nabcd==\n-----END RSA PRIVATE KEY-----\nthanks", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234\nabcd==\n-----END RSA PRIVATE KEY-----"),
        (f"Authorization: Bearer {JWT}", JWT),
        ("db at postgres://admin:S3cr3tPass@db.internal.example.com:5432/crm", "admin:S3cr3tPass@db.internal.example.com"),
        ("password: Tr0ub4dor&3.", "Tr0ub4dor&3"),
        ("the password is Summer2024!", "Summer2024!"),
    ],
)  # fmt: skip
def test_secrets_cover_the_whole_value(found, text, value):
    assert ("SECRET", value) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "password: expired",
        "Your password was reset yesterday.",
        "My understanding is that the Password Application/ETA has moved.",
        "Reset token: pending-review.",
        "commit 3f2a9c1d4b5e6f708192a3b4c5d6e7f801234567 fixed it",
        "Order PO-2023-126606 shipped",
    ],
)
def test_secret_look_alikes(found, text):
    assert [v for e, v in found(text) if e == "SECRET"] == []


def test_secret_patterns_come_from_detect_secrets():
    from detect_secrets.plugins.openai import OpenAIDetector

    from pipeline_hub.pii.recognizers.secrets import detect_secrets_patterns

    regexes = [r for _, r in detect_secrets_patterns()]
    assert OpenAIDetector.denylist[0] in regexes and len(regexes) >= 20


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Sounds good.\n\nThanks,\nOrlaith\n", "Orlaith"),
        ("Attached.\n\nBest regards,\nMungo Hardwicke-Brown\nHead of Procurement\n", "Mungo Hardwicke-Brown"),
        ("To: Eric Bass/HOU/ECT@ECT, Shanna Husser/HOU/EES@EES\n", "Shanna Husser"),
        ('Cc: "Kelly Kohrman" <pyro@example.com>\n', "Kelly Kohrman"),
        ("Phillip M Love\n03/26/2001 10:20 AM\nTo: Eric Bass\n", "Phillip M Love"),
        ("Jill,\n\nplease see below.\n", "Jill"),
        ("Can we move the call?\n\n- Bill\n", "Bill"),
        ("Hi Siobhan,\nthe PO is approved.", "Siobhan"),
    ],
)
def test_names_in_email_layout(found, text, name):
    # spaCy's own span may run on ("Shanna Husser/HOU"): Presidio then keeps it over the contained one
    assert any(entity == "PERSON" and name in value for entity, value in found(text)), found(text)


@pytest.mark.parametrize(
    "text", ["Thanks,\nThe Acme Team", "Reminder: renewals are due.", "Regards,\nSales Department\n"]
)
def test_email_layout_look_alikes_are_not_names(found, text):
    from pipeline_hub.pii.recognizers.person import SignatureNameRecognizer

    assert SignatureNameRecognizer().analyze(text, ["PERSON"]) == []
