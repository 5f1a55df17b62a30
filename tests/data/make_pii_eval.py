# ruff: noqa: E501 - tables of literal example texts read best one per line
"""Regenerate ``pii_eval.jsonl``: a labelled PII evaluation set of CRM / business e-mail sentences.

Synthetic and deterministic (``random.Random(SEED)``), built only from what the project installs:

* names: the first- and last-name lists below (common names of many origins, typed by hand);
* phone numbers: python-phonenumbers (``is_valid_number`` under Google's libphonenumber metadata) for 25
  regions, written in E.164, international, national and hand-typed variants (dots, ``(0)``, ``00``);
* credit cards: Luhn-valid (ISO/IEC 7812-1 Annex B) Visa, Mastercard (51-55 and 2221-2720), Amex,
  Discover, Diners and JCB numbers, grouped as printed or run together;
* IBANs: ISO 13616 check digits (mod 97-10, ISO 7064) over each country's BBAN layout (SWIFT IBAN
  registry), paper format (groups of four) or electronic format;
* US SSNs: SSA rules (area 001-899 except 666, group 01-99, serial 0001-9999), dashed, spaced or bare
  next to a context word;
* IP addresses: IPv4 and IPv6 (full and ``::``-compressed).

Each line is ``{"id", "text", "spans": [{"entity", "start", "end"}]}`` with character offsets into
``text``. Person spans cover the name only (no title); phone spans of the first part exclude extensions; shared
mailboxes (``sales@…``) are labelled e-mail addresses too (the pipeline publishes no address at all). Sentences with no
PII and with look-alikes (order, invoice, tracking and customer numbers, dates, amounts, company names
built from surnames) measure precision.

A second part (``EXTRA_SEED``, issue 12) adds: every NANP phone layout people and CRMs write (extension
inside the span), US / CA / UK street addresses (``STREET_ADDRESS``: street line through ZIP or
postcode), one record per credential kind (``SECRET``: AWS, GitHub, Slack, Stripe, OpenAI, private-key
blocks, JWTs, basic-auth URLs, keyword values; made-up values in the issuers' formats), names in
e-mail layout (headers, greetings, closings, Lotus Notes lines), and look-alikes of each (order,
invoice and PO numbers, dates, times, amounts, "password: expired", lower-case street words).

Usage (repository root): ``.venv/bin/python tests/data/make_pii_eval.py [OUT]`` (default: next to this file).
"""

from __future__ import annotations

import json
import random
import string
import sys
from pathlib import Path

import phonenumbers

SEED = 20250115
N_RECORDS = 480
OUT = Path(__file__).with_name("pii_eval.jsonl")

FIRST = (
    "James Mary Robert Patricia Michael Jennifer David Linda William Elizabeth Richard Susan Joseph "
    "Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Betty Mark Sandra Steven "
    "Emily Paul Michelle Andrew Laura Kevin Rachel Brian Megan George Hannah Oliver Amelia Harry Isla "
    "Jack Sophie Lukas Anna Maximilian Lea Felix Marie Jonas Katharina Florian Julia Sebastian Lena "
    "Pierre Camille Louis Chloé Antoine Manon Julien Élodie Nicolas Céline Jean-Luc Anne-Sophie "
    "Alejandro Lucía Carlos Sofía Javier Valentina Diego Camila Mateo Isabella Giulia Marco "
    "Francesca Luca Chiara Alessandro Lars Ingrid Sven Astrid Mikkel Freja Jan Agnieszka Piotr "
    "Katarzyna Tomasz Olga Dmitri Natalia Sergei Priya Rahul Ananya Arjun Deepika Vikram Sunita "
    "Wei Mei Jun Xiaoming Li Hiroshi Yuki Takeshi Aiko Minjun Seo-yeon Ahmed Fatima Omar Aisha "
    "Youssef Layla Kwame Ama Chinedu Ngozi Oluwaseun Thandiwe Tariq Noor Mehmet Elif Siobhan "
    "Ciarán Aoife Niamh Bogdan Zsofia Henrik Annika"
).split()
LAST = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Thompson White Harris Clark Lewis "
    "Walker Hall Young King Wright Scott Green Baker Adams Nelson Campbell Mitchell Roberts Evans "
    "Turner Collins Murphy Cook Rogers Morgan Cooper Peterson Reed Bailey Kelly Howard "
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Koch Richter "
    "Bauer Klein Wolf Schröder Neumann Zimmermann Dubois Lefebvre Moreau Laurent Girard Bonnet "
    "Rousseau Fontaine Chevalier Fernández González Sánchez Pérez Romero Navarro Ruiz Rossi Russo "
    "Bianchi Romano Ricci Marino Esposito Johansson Andersson Nilsson Larsen Hansen Nielsen "
    "Kowalski Nowak Wiśniewski Kowalczyk Ivanov Petrov Sokolova Patel Sharma Singh Gupta Iyer "
    "Reddy Chatterjee Nair Wang Zhang Liu Chen Huang Tanaka Suzuki Watanabe Kim Park Choi Haddad "
    "Al-Farsi Hassan Mensah Okafor Adeyemi Nkosi Yilmaz Demir O'Brien O'Connor McCarthy "
    "Van der Berg De Vries Jansen Novák Horváth Kovačević Papadopoulos Andrade"
).split()
LAST += ["Van der Berg", "De Vries", "da Silva", "van Dijk"]
LAST = [x for x in LAST if x not in ("Van", "der", "Berg", "De", "Vries")]
TITLES = ["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."]
ROLES = [
    "Head of Procurement",
    "VP Sales EMEA",
    "Account Executive",
    "Chief Financial Officer",
    "IT Operations Manager",
    "Customer Success Lead",
    "Purchasing Director",
    "Office Manager",
    "Data Protection Officer",
    "Regional Sales Manager",
]
COMPANIES = [
    "Acme Widgets Ltd",
    "Northwind Traders GmbH",
    "Globex Corporation",
    "Initech Solutions",
    "Umbrella Logistics BV",
    "Stark Industrial AG",
    "Wayne Enterprises",
    "Vandelay Imports",
    "Hooli Cloud Services",
    "Tyrell Systems SARL",
    "Johnson Controls",
    "Morgan Stanley",
    "Ernst & Young",
    "Goldman Sachs",
    "Marks & Spencer",
    "Siemens Healthineers",
    "Philips Lighting",
    "Ferrero Group",
]
CITIES = ["Munich", "Lyon", "Rotterdam", "Austin", "Leeds", "Milan", "Madrid", "Zurich", "Pune", "Sydney"]
DOMAINS = [
    "acme-widgets.co.uk",
    "northwind.de",
    "globex.com",
    "initech.io",
    "umbrella-logistics.nl",
    "stark-industrial.ch",
    "mail.vandelay.com",
    "hooli.cloud",
    "tyrell-systems.fr",
    "example-consulting.consulting",
    "gmail.com",
    "outlook.com",
    "sales.globex.com",
    "crm.initech.io",
    "web.de",
]
PHONE_REGIONS = [
    "US",
    "CA",
    "GB",
    "IE",
    "DE",
    "AT",
    "CH",
    "FR",
    "BE",
    "NL",
    "LU",
    "ES",
    "PT",
    "IT",
    "SE",
    "DK",
    "NO",
    "FI",
    "PL",
    "IN",
    "AU",
    "SG",
    "BR",
    "MX",
    "JP",
]
# Region used for a national-format number in text that names the office it belongs to.
OFFICE_OF = {
    "US": "Austin",
    "CA": "Toronto",
    "GB": "London",
    "IE": "Dublin",
    "DE": "Munich",
    "AT": "Vienna",
    "CH": "Zurich",
    "FR": "Lyon",
    "BE": "Brussels",
    "NL": "Rotterdam",
    "LU": "Luxembourg",
    "ES": "Madrid",
    "PT": "Lisbon",
    "IT": "Milan",
    "SE": "Stockholm",
    "DK": "Copenhagen",
    "NO": "Oslo",
    "FI": "Helsinki",
    "PL": "Warsaw",
    "IN": "Pune",
    "AU": "Sydney",
    "SG": "Singapore",
    "BR": "São Paulo",
    "MX": "Monterrey",
    "JP": "Osaka",
}
# BBAN layouts (SWIFT IBAN registry): n = digit, a = upper-case letter, c = alphanumeric.
IBAN_BBAN = {
    "DE": "18n",
    "GB": "4a14n",
    "FR": "10n11c2n",
    "NL": "4a10n",
    "ES": "20n",
    "IT": "1a10n12c",
    "CH": "5n12c",
    "BE": "12n",
    "AT": "16n",
    "PL": "24n",
    "SE": "20n",
    "IE": "4a14n",
    "DK": "14n",
    "LU": "3n13c",
}


# Template numbers drawn per record: every template once, card, IBAN and SSN templates twice more (so
# each entity has enough spans for a recall estimate).
TEMPLATE_DRAW = list(range(40)) + [3, 4, 12, 13, 23, 24, 5, 16, 26, 33] * 2


class Builder:
    """Concatenates text pieces and records the spans of the labelled ones."""

    def __init__(self) -> None:
        self.text = ""
        self.spans: list[dict] = []

    def add(self, piece: str, entity: str | None = None) -> Builder:
        if entity:
            self.spans.append({"entity": entity, "start": len(self.text), "end": len(self.text) + len(piece)})
        self.text += piece
        return self


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, d in enumerate(reversed(body)):
        n = int(d)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            n = n * 2 - 9 if n * 2 > 9 else n * 2
        total += n
    return body + str((10 - total % 10) % 10)


def credit_card(rng: random.Random) -> str:
    kind = rng.choice(["visa", "visa", "visa", "mc", "mc", "mc2", "amex", "amex", "discover", "diners", "jcb"])
    if kind == "visa":
        number = luhn_complete("4", 16, rng)
    elif kind == "mc":
        number = luhn_complete(str(rng.randint(51, 55)), 16, rng)
    elif kind == "mc2":
        number = luhn_complete(str(rng.randint(2221, 2720)), 16, rng)
    elif kind == "amex":
        number = luhn_complete(rng.choice(["34", "37"]), 15, rng)
    elif kind == "discover":
        number = luhn_complete("6011", 16, rng)
    elif kind == "diners":
        number = luhn_complete(rng.choice(["36", "38"]), 14, rng)
    else:
        number = luhn_complete("35" + str(rng.randint(28, 89)), 16, rng)
    style = rng.random()
    if kind == "amex":
        groups = [number[:4], number[4:10], number[10:]]
    elif kind == "diners":
        groups = [number[:4], number[4:10], number[10:]]
    else:
        groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    if style < 0.5:
        return " ".join(groups)
    if style < 0.75:
        return "-".join(groups)
    return number


def iban(rng: random.Random) -> str:
    country = rng.choice(list(IBAN_BBAN))
    layout, bban, count = IBAN_BBAN[country], "", ""
    for ch in layout:
        if ch.isdigit():
            count += ch
            continue
        alphabet = {"n": string.digits, "a": string.ascii_uppercase, "c": string.ascii_uppercase + string.digits}[ch]
        bban += "".join(rng.choice(alphabet) for _ in range(int(count)))
        count = ""
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    compact = f"{country}{check:02d}{bban}"
    if rng.random() < 0.6:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def ssn(rng: random.Random) -> tuple[str, bool]:
    """An SSA-valid SSN and whether its format needs a context word (bare nine digits)."""
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            break
    digits = f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
    style = rng.random()
    if style < 0.65:
        return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}", False
    if style < 0.85:
        return f"{digits[:3]} {digits[3:5]} {digits[5:]}", False
    return digits, True


def ip_address(rng: random.Random) -> str:
    style = rng.random()
    if style < 0.6:
        first = rng.choice([10, 172, 192, 81, 185, 203, 34, 52, 100])
        return ".".join(str(x) for x in (first, rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)))
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    groups[0] = rng.choice(["2001", "2a02", "2604", "fe80"])
    if style < 0.8:
        return ":".join(groups)
    return (
        f"{groups[0]}:{groups[1]}::{groups[6]}:{groups[7]}" if rng.random() < 0.5 else f"{groups[0]}:db8::{groups[7]}"
    )


def phone(rng: random.Random) -> tuple[str, str]:
    """A valid number and the region it belongs to, in one of the ways people type numbers."""
    region = rng.choice(PHONE_REGIONS[:9] * 2 + PHONE_REGIONS)
    kind = rng.choice([phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE])
    example = phonenumbers.example_number_for_type(region, kind) or phonenumbers.example_number(region)
    national = str(example.national_number)
    for _ in range(200):
        keep = max(2, len(national) - 5)
        candidate = national[:keep] + "".join(rng.choice(string.digits) for _ in range(len(national) - keep))
        number = phonenumbers.parse(f"+{example.country_code}{candidate}")
        if phonenumbers.is_valid_number(number):
            break
    else:
        number = example
    style = rng.random()
    fmt = phonenumbers.PhoneNumberFormat
    if style < 0.35:
        text = phonenumbers.format_number(number, fmt.INTERNATIONAL)
    elif style < 0.45:
        text = phonenumbers.format_number(number, fmt.E164)
    elif style < 0.8:
        text = phonenumbers.format_number(number, fmt.NATIONAL)
    elif style < 0.88 and region in ("GB", "DE", "CH", "AT", "NL", "BE", "IT", "FR"):
        intl = phonenumbers.format_number(number, fmt.INTERNATIONAL)
        cc, rest = intl.split(" ", 1)
        text = f"{cc} (0){rest}" if region != "IT" else f"0039 {rest}"
    elif style < 0.94 and region in ("US", "CA"):
        nat = str(number.national_number)
        text = rng.choice([f"{nat[:3]}.{nat[3:6]}.{nat[6:]}", f"1-{nat[:3]}-{nat[3:6]}-{nat[6:]}"])
    else:
        text = "00" + phonenumbers.format_number(number, fmt.INTERNATIONAL)[1:]
    return text, region


def person(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    style = rng.random()
    if style < 0.12:
        return f"{first} {rng.choice(string.ascii_uppercase)}. {last}"
    if style < 0.2:
        return f"{first} {rng.choice(FIRST)} {last}"
    return f"{first} {last}"


def email_for(name: str, rng: random.Random) -> str:
    parts = [p for p in name.replace(".", "").split() if len(p) > 1]
    first, last = parts[0], parts[-1]

    def clean(s: str) -> str:
        table = str.maketrans("äöüéèçñíóáłśčßšž", "aoueecniaolscssz")
        return "".join(c for c in s.lower().translate(table) if c.isalnum())

    local = rng.choice(
        [
            f"{clean(first)}.{clean(last)}",
            f"{clean(first)[0]}{clean(last)}",
            f"{clean(first)}_{clean(last)}",
            f"{clean(first)}",
            f"{clean(last)}.{clean(first)}{rng.randint(1, 99)}",
            f"{clean(first)}.{clean(last)}+crm",
        ]
    )
    address = f"{local}@{rng.choice(DOMAINS)}"
    return address.upper() if rng.random() < 0.05 else address


def generic_email(rng: random.Random) -> str:
    return f"{rng.choice(['sales', 'billing', 'support', 'info', 'accounts.payable'])}@{rng.choice(DOMAINS)}"


def record(rng: random.Random) -> Builder:  # noqa: C901 - one template per branch, kept together for reading
    b = Builder()
    name = person(rng)
    t = rng.choice(TEMPLATE_DRAW)
    company = rng.choice(COMPANIES)
    if t == 0:
        tel, region = phone(rng)
        b.add("Hi team,\n\nplease update the account for ").add(company).add(". New main contact is ")
        b.add(name, "PERSON").add(f" ({rng.choice(ROLES)}), reachable at ").add(tel, "PHONE_NUMBER")
        b.add(f" ({OFFICE_OF[region]} office).\n")
    elif t == 1:
        tel, region = phone(rng)
        b.add("Best regards,\n").add(name, "PERSON").add(f"\n{rng.choice(ROLES)}\n{company}\n")
        b.add(email_for(name, rng), "EMAIL_ADDRESS").add(f"\n{OFFICE_OF[region]}: ").add(tel, "PHONE_NUMBER")
        b.add("\n")
    elif t == 2:
        b.add(f"Dear {rng.choice(TITLES)} ").add(name.split()[-1], "PERSON")
        b.add(f",\nthank you for your order PO-{rng.randint(2019, 2025)}-{rng.randint(100000, 999999)}. ")
        b.add("The invoice was sent to ").add(email_for(name, rng), "EMAIL_ADDRESS").add(".")
    elif t == 3:
        card = credit_card(rng)
        b.add("Customer ").add(name, "PERSON").add(" paid the renewal by card ").add(card, "CREDIT_CARD")
        b.add(f", exp {rng.randint(1, 12):02d}/{rng.randint(26, 31)}.")
    elif t == 4:
        b.add("Please wire the deposit of EUR ").add(f"{rng.randint(1, 90)},{rng.randint(100, 999)}.00 to IBAN ")
        b.add(iban(rng), "IBAN_CODE").add(f" quoting invoice INV-{rng.randint(10000, 99999)}.")
    elif t == 5:
        value, needs_context = ssn(rng)
        b.add("Background check for ").add(name, "PERSON").add(" - SSN: " if needs_context else " - SSN ")
        b.add(value, "US_SSN").add(", start date next Monday.")
    elif t == 6:
        b.add("Login alert: user ").add(email_for(name, rng), "EMAIL_ADDRESS").add(" signed in from ")
        b.add(ip_address(rng), "IP_ADDRESS").add(f" at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d} UTC.")
    elif t == 7:
        other = person(rng)
        b.add("Meeting notes: ").add(name, "PERSON").add(" and ").add(other, "PERSON")
        b.add(f" agreed to extend the {company} pilot to {rng.choice(CITIES)} by Q{rng.randint(1, 4)}.")
    elif t == 8:
        tel, region = phone(rng)
        b.add("Call back request from ").add(name, "PERSON").add(" on ").add(tel, "PHONE_NUMBER")
        b.add(f" regarding ticket #{rng.randint(10000, 99999)} ({OFFICE_OF[region]} customer).")
    elif t == 9:
        b.add(f"Order {rng.randint(10**7, 10**8 - 1)} for {rng.randint(2, 400)} units shipped on ")
        b.add(f"{rng.randint(1, 28)} {rng.choice(['March', 'April', 'June', 'October'])} 2024 via tracking ")
        b.add(f"1Z{rng.randint(100, 999)}AA{rng.randint(10**9, 10**10 - 1)}; total USD {rng.randint(1000, 99999)}.")
    elif t == 10:
        b.add(f"{company} renewed its {rng.choice(['Enterprise', 'Pro', 'Team'])} plan for ")
        b.add(f"{rng.randint(12, 36)} months; contract value {rng.randint(10, 500)}k EUR, ")
        b.add(f"customer no. {rng.randint(10**8, 10**9 - 1)}.")
    elif t == 11:
        b.add("From: ").add(name, "PERSON").add(" <").add(email_for(name, rng), "EMAIL_ADDRESS").add(">\n")
        b.add(f"Subject: Re: quote {rng.randint(1000, 9999)}\n\nSounds good, let's proceed.")
    elif t == 12:
        card = credit_card(rng)
        b.add("Card on file updated: ").add(card, "CREDIT_CARD").add(" (billing contact ").add(name, "PERSON")
        b.add(").")
    elif t == 13:
        b.add("Refund to ").add(iban(rng), "IBAN_CODE").add(", account holder ").add(name, "PERSON").add(".")
    elif t == 14:
        tel, _ = phone(rng)
        tel2, _ = phone(rng)
        b.add(f"{rng.choice(ROLES)}: ").add(name, "PERSON").add(", tel. ").add(tel, "PHONE_NUMBER")
        b.add(", mobile ").add(tel2, "PHONE_NUMBER").add(", ").add(email_for(name, rng), "EMAIL_ADDRESS")
    elif t == 15:
        b.add("Firewall allow-list for the SFTP drop: ").add(ip_address(rng), "IP_ADDRESS").add(" and ")
        b.add(ip_address(rng), "IP_ADDRESS").add(f" (requested by {company}).")
    elif t == 16:
        value, _ = ssn(rng)
        b.add("W-9 received. Social security number ").add(value, "US_SSN").add(" for contractor ")
        b.add(name, "PERSON").add(".")
    elif t == 17:
        other = person(rng)
        b.add("Thanks ").add(name.split()[0], "PERSON").add("! I have looped in ").add(other, "PERSON")
        b.add(f" from {rng.choice(CITIES)} who owns the {company} account.")
    elif t == 18:
        b.add(f"Q{rng.randint(1, 4)} pipeline review: {rng.randint(3, 40)} open deals, ")
        b.add(f"{rng.randint(5, 60)}% weighted, largest with {company} (stage 4, {rng.randint(50, 900)}k).")
    elif t == 19:
        b.add("Please send the signed NDA to ").add(generic_email(rng), "EMAIL_ADDRESS").add(" and cc ")
        b.add(email_for(name, rng), "EMAIL_ADDRESS").add(".")
    elif t == 20:
        tel, region = phone(rng)
        b.add(f"Our {OFFICE_OF[region]} reception can be reached on ").add(tel, "PHONE_NUMBER")
        b.add(" between 9 and 5.")
    elif t == 21:
        b.add("Lead captured at the trade fair: ").add(name, "PERSON").add(f", {rng.choice(ROLES)} at {company}.")
    elif t == 22:
        b.add("Escalation: ").add(name, "PERSON").add(" reports failed API calls from ")
        b.add(ip_address(rng), "IP_ADDRESS").add(f" since version {rng.randint(1, 9)}.{rng.randint(0, 20)}.")
    elif t == 23:
        card = credit_card(rng)
        b.add("Chargeback on ").add(card, "CREDIT_CARD").add(f" for invoice {rng.randint(100000, 999999)}, ")
        b.add("cardholder ").add(name, "PERSON").add(".")
    elif t == 24:
        b.add(f"Supplier bank details changed ({company}): new IBAN ").add(iban(rng), "IBAN_CODE").add(".")
    elif t == 25:
        b.add(f"{rng.choice(['Hello', 'Hi', 'Dear'])} ").add(name.split()[0], "PERSON")
        b.add(f", attached is the revised SOW v{rng.randint(2, 7)}. Kind regards, ")
        b.add(person(rng), "PERSON")
    elif t == 26:
        value, needs_context = ssn(rng)
        b.add("Tax form for ").add(name, "PERSON").add(": SSN ").add(value, "US_SSN").add(" verified.")
    elif t == 27:
        b.add("Contact: ").add(name, "PERSON").add(" | ").add(email_for(name, rng), "EMAIL_ADDRESS")
        b.add(f" | {company}")
    elif t == 28:
        number, street = rng.randint(1, 200), rng.choice(["Main St", "Hauptstraße", "Rue de Lyon"])
        b.add(f"Shipment to {company}, ")  # an English street line is an address; the others are not covered
        b.add(f"{number} {street}", "STREET_ADDRESS" if street == "Main St" else None).add(", ")
        b.add(f"{rng.choice(CITIES)}; {rng.randint(1, 60)} pallets, delivery window {rng.randint(8, 11)}:00-")
        b.add(f"{rng.randint(13, 17)}:00.")
    elif t == 29:
        tel, region = phone(rng)
        b.add(f"Voicemail: {OFFICE_OF[region]} caller ").add(name, "PERSON").add(" left ").add(tel, "PHONE_NUMBER")
        b.add(" ext. " + str(rng.randint(10, 999)) + ", wants a demo.")
    elif t == 30:
        b.add("Reminder: ").add(name, "PERSON").add(f" joins {company} as {rng.choice(ROLES)} on ")
        b.add(f"{rng.randint(1, 28)}.{rng.randint(1, 12)}.2025.")
    elif t == 31:
        b.add("VPN log: ").add(ip_address(rng), "IP_ADDRESS").add(" -> ").add(ip_address(rng), "IP_ADDRESS")
        b.add(f" port {rng.choice([22, 443, 8443])} denied.")
    elif t == 32:
        b.add(f"Invoice INV {rng.randint(1000, 9999)} {rng.randint(1000, 9999)} is overdue by {rng.randint(5, 90)} ")
        b.add(f"days; reminder {rng.randint(1, 3)} sent to ").add(generic_email(rng), "EMAIL_ADDRESS").add(".")
    elif t == 33:
        b.add(f"Forwarding on behalf of {rng.choice(TITLES)} ").add(name, "PERSON")
        b.add(": please update the billing address and the card ").add(credit_card(rng), "CREDIT_CARD").add(".")
    elif t == 34:
        tel, _ = phone(rng)
        b.add(name, "PERSON").add(" (").add(email_for(name, rng), "EMAIL_ADDRESS").add(", ")
        b.add(tel, "PHONE_NUMBER").add(
            f") asked for the {rng.choice(['pricing sheet', 'security whitepaper', 'DPA'])}."
        )
    elif t == 35:
        b.add(f"Opportunity {company} - {rng.choice(CITIES)} expansion, owner ").add(name, "PERSON")
        b.add(f", close date {rng.randint(2025, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}.")
    elif t == 36:
        b.add("Payroll correction: employee ").add(name, "PERSON").add(", SSN ")
        b.add(ssn(rng)[0], "US_SSN").add(", bank ").add(iban(rng), "IBAN_CODE").add(".")
    elif t == 37:
        host = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        b.add(f"Ticket {rng.randint(100000, 999999)}: printer at ").add(host, "IP_ADDRESS")
        b.add(f" offline; reported by the {rng.choice(ROLES).lower()}.")
    elif t == 38:
        b.add(f"{company} headcount grew from {rng.randint(50, 400)} to {rng.randint(401, 2000)} in ")
        b.add(f"{rng.randint(2019, 2024)}; HQ moved to {rng.choice(CITIES)}.")
    else:
        b.add("Per our call, ").add(name, "PERSON").add(" will send the PO; his assistant ")
        other = person(rng)
        b.add(other, "PERSON").add(" can be reached at ").add(email_for(other, rng), "EMAIL_ADDRESS").add(".")
    return b


EXTRA_SEED = 20261203
AREA_CODES = ["415", "212", "312", "617", "206", "303", "512", "646", "404", "702", "416", "604"]
NANP_FORMATS = [
    "({a}){e}-{l}",
    "({a}) {e}-{l}",
    "{a}.{e}.{l}",
    "{a}.{e}.{l}x{x}",
    "{a}-{e}-{l}x{x}",
    "{a}-{e}-{l} ext. {x}",
    "+1 {a} {e} {l}",
    "+1-{a}-{e}-{l}",
    "001-{a}-{e}-{l}x{x}",
    "1-{a}-{e}-{l}",
    "{a}{e}{l}",
]
NANP_CONTEXT = [
    ("Please call {p} before noon.", True),
    ("Cell: {p}", True),
    ("You can reach Dana's desk on {p} tomorrow.", False),
    ("Direct line {p} (after 9 am PT).", False),
    ("New number for the Austin office: {p}.", False),
    ("Phone {p} / fax on request", True),
]
STREET_NAMES = [
    "Main",
    "Oak",
    "Maple",
    "Market",
    "Mission",
    "Fifth",
    "Baker",
    "Elm",
    "Cedar",
    "Lakeview",
    "Bay",
    "King",
]
US_TYPES = ["St", "Street", "Ave", "Avenue", "Blvd", "Road", "Rd", "Drive", "Lane", "Way", "Parkway", "Ct"]
US_CITIES = [
    ("San Francisco", "CA"),
    ("Austin", "TX"),
    ("Chicago", "IL"),
    ("Boston", "MA"),
    ("Seattle", "WA"),
    ("Denver", "CO"),
]
UNITS = ["", "", ", Suite 400", " Apt. 12B", ", Unit 7", ", Floor 3"]
SECRET_CHARS = string.ascii_letters + string.digits


def nanp_number(rng: random.Random) -> dict:
    """A valid NANP number's parts: area code, exchange, line, extension."""
    while True:
        parts = {"a": rng.choice(AREA_CODES), "e": str(rng.randint(200, 989)), "l": f"{rng.randint(0, 9999):04d}"}
        if phonenumbers.is_valid_number(phonenumbers.parse("+1" + parts["a"] + parts["e"] + parts["l"])):
            return {**parts, "x": str(rng.randint(2, 9999))}


def street_address(rng: random.Random) -> str:
    kind = rng.random()
    number, name = str(rng.randint(1, 9899)), rng.choice(STREET_NAMES)
    if kind < 0.55:
        city, state = rng.choice(US_CITIES)
        street = f"{number} {rng.choice(['', 'N ', 'W '])}{name} {rng.choice(US_TYPES)}{rng.choice(UNITS)}"
        return f"{street}{rng.choice([', ', chr(10)])}{city}, {state} {rng.randint(10000, 99999)}"
    if kind < 0.7:
        return f"{number} {name} {rng.choice(['Street', 'Road', 'Lane'])}, London {rng.choice(['SW1A 2AA', 'NW1 6XE', 'EC2V 7HH'])}"
    if kind < 0.85:
        return f"{number} {name} Street, Toronto, ON {rng.choice(['M5H 2Y4', 'M4W 1A8'])}"
    if kind < 0.93:
        return f"{number} {name} {rng.choice(US_TYPES)}{rng.choice(UNITS)}"
    return f"PO Box {rng.randint(10, 99999)}"


def _token(rng: random.Random, n: int, chars: str = SECRET_CHARS) -> str:
    return "".join(rng.choice(chars) for _ in range(n))


def _b64url(data: str) -> str:
    import base64

    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def secret(rng: random.Random, kind: int) -> str:
    """A made-up credential in an issuer's documented format (kind 0-12)."""
    upper = string.ascii_uppercase + string.digits
    if kind == 0:
        return "AKIA" + _token(rng, 16, upper)
    if kind == 1:
        return _token(rng, 40, SECRET_CHARS + "/+")
    if kind == 2:
        return rng.choice(["ghp_", "gho_", "ghs_"]) + _token(rng, 36)
    if kind == 3:
        return "github_pat_11" + _token(rng, 20, upper) + "_" + _token(rng, 59)
    if kind == 4:
        return f"xoxb-{rng.randint(10**11, 10**12 - 1)}-{rng.randint(10**12, 10**13 - 1)}-{_token(rng, 24)}"
    if kind == 5:
        return f"https://hooks.slack.com/services/T{_token(rng, 8, upper)}/B{_token(rng, 8, upper)}/{_token(rng, 24)}"
    if kind == 6:
        return rng.choice(["sk_live_", "rk_live_", "sk_test_"]) + _token(rng, 24)
    if kind == 7:
        return "sk-proj-" + _token(rng, 58, SECRET_CHARS + "-_") + "T3BlbkFJ" + _token(rng, 58, SECRET_CHARS + "-_")
    if kind == 8:
        return "sk-" + _token(rng, 20) + "T3BlbkFJ" + _token(rng, 20)
    if kind == 9:
        body = "\n".join(_token(rng, 64, SECRET_CHARS + "+/") for _ in range(3))
        kind_name = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY", "EC PRIVATE KEY"])
        return f"-----BEGIN {kind_name}-----\n{body}\n-----END {kind_name}-----"
    if kind == 10:
        header = _b64url('{"alg":"HS256","typ":"JWT"}')
        payload = _b64url(f'{{"sub":"{rng.randint(1000, 99999)}","iat":{rng.randint(1600000000, 1800000000)}}}')
        return f"{header}.{payload}.{_token(rng, 43, SECRET_CHARS + '-_')}"
    if kind == 11:
        return f"{rng.choice(['admin', 'etl', 'svc_crm'])}:{_token(rng, 14)}@db{rng.randint(1, 9)}.internal.example.com"
    return _token(rng, 6) + rng.choice(["!", "#", "$", "%"]) + str(rng.randint(10, 99)) + _token(rng, 3)


SECRET_TEMPLATES = [
    ("Rotate the AWS access key ", 0, " before Friday."),
    ("aws_secret_access_key = ", 1, "\n"),
    ("CI uses the token ", 2, " for releases."),
    ("Fine-grained PAT: ", 3, " (expires in 30 days)"),
    ("Slack bot token ", 4, " was pasted in the ticket."),
    ("Alerts go to ", 5, " now."),
    ("Stripe key in the config: ", 6, "."),
    ("OPENAI_API_KEY=", 7, "\n"),
    ("Legacy OpenAI key ", 8, " must be revoked."),
    ("Attached the deploy key:\n", 9, "\nThanks"),
    ("Authorization: Bearer ", 10, "\n"),
    ("The ETL connects to postgres://", 11, "/crm nightly."),
    ("Temporary password: ", 12, " (please change it)."),
]


def extra_record(rng: random.Random, i: int) -> Builder:  # noqa: C901 - one kind per branch
    """Issue 12's cases, ``i`` picks the kind (phones, addresses, secrets, names, look-alikes)."""
    b = Builder()
    kind = i % 5
    if kind == 0:
        fmt = NANP_FORMATS[(i // 5) % len(NANP_FORMATS)]
        template, bare_ok = rng.choice(NANP_CONTEXT)
        if fmt == "{a}{e}{l}" and not bare_ok:
            template = "Please call {p} before noon."
        before, after = template.split("{p}")
        b.add(before).add(fmt.format(**nanp_number(rng)), "PHONE_NUMBER").add(after)
    elif kind == 1:
        before, after = rng.choice(
            [("Ship to: ", "."), ("Our new office is at ", " (2nd floor)."), ("Billing address\n", "\n"),
             ("Mail the contract to ", " by Monday."), ("Customer moved to ", "; update the CRM.")]
        )  # fmt: skip
        b.add(before).add(street_address(rng), "STREET_ADDRESS").add(after)
    elif kind == 2:
        before, what, after = SECRET_TEMPLATES[(i // 5) % len(SECRET_TEMPLATES)]
        b.add(before).add(secret(rng, what), "SECRET").add(after)
    elif kind == 3:
        first, full, full2 = rng.choice(FIRST), person(rng), person(rng)
        style = (i // 5) % 8
        if style == 0:
            b.add("Sounds good, see you then.\n\nThanks,\n").add(first, "PERSON").add("\n")
        elif style == 1:
            b.add("Please find the quote attached.\n\nRegards,\n").add(full, "PERSON").add(f"\n{rng.choice(ROLES)}\n")
        elif style == 2:
            b.add("To: ").add(full, "PERSON").add("/HOU/ACME@ACME, ").add(full2, "PERSON").add("/Corp/Acme@ACME\n")
        elif style == 3:
            b.add(first, "PERSON").add(",\n\nthe revised numbers are in the sheet.\n")
        elif style == 4:
            b.add(full, "PERSON").add(f"\n{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/2001 10:20 AM\nTo: ")
            b.add(full2, "PERSON").add("\nSubject: Re: contract\n")
        elif style == 5:
            b.add("Can we move the call to Thursday?\n\n- ").add(first, "PERSON").add("\n")
        elif style == 6:
            b.add("Hi ").add(first, "PERSON").add(",\nthe PO is approved.\n\nBest,\n").add(full2, "PERSON")
        else:
            b.add("Great work on the renewal.\n--\n").add(full, "PERSON").add(f"\n{rng.choice(COMPANIES)}\n")
    else:
        b.add(
            rng.choice(
                [
                    f"Order #{rng.randint(10**9, 10**10 - 1)} shipped; see PO-{rng.randint(2019, 2025)}-{rng.randint(100000, 999999)}.",
                    f"Invoice INV/{rng.randint(2019, 2025)}/{rng.randint(1000, 9999)} paid on {rng.randint(2019, 2025)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}.",
                    f"Meeting {rng.randint(8, 11)}:30-{rng.randint(12, 17)}:45 on 0{rng.randint(1, 9)}/1{rng.randint(0, 9)}/2024, budget ${rng.randint(1, 9)},{rng.randint(100, 999)}.50.",
                    f"Total USD {rng.randint(1, 9)},{rng.randint(100, 999)},{rng.randint(100, 999)}.89 for {rng.randint(2, 90)} units.",
                    "Your password: expired. Reset token: pending-review.",
                    f"We shipped {rng.randint(2, 60)} units to the store on Main street market day.",
                    f"Thanks,\nThe {rng.choice(COMPANIES).split()[0]} Team",
                    f"Ref {rng.randint(2019, 2025)}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)} closed at {rng.randint(10, 23)}:0{rng.randint(0, 9)}.",
                ]
            )
        )  # fmt: skip
    return b


N_EXTRA = 300


def build() -> str:
    """The evaluation set as JSONL text (deterministic)."""
    rng = random.Random(SEED)
    extra_rng = random.Random(EXTRA_SEED)
    lines = []
    for i in range(N_RECORDS + N_EXTRA):
        b = record(rng) if i < N_RECORDS else extra_record(extra_rng, i - N_RECORDS)
        for s in b.spans:
            assert b.text[s["start"] : s["end"]].strip() == b.text[s["start"] : s["end"]], (i, s)
        lines.append(json.dumps({"id": f"pii-{i:04d}", "text": b.text, "spans": b.spans}, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def main(out: Path = OUT) -> None:
    text = build()
    out.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    spans = [json.loads(x)["spans"] for x in lines]
    counts: dict[str, int] = {}
    for ss in spans:
        for s in ss:
            counts[s["entity"]] = counts.get(s["entity"], 0) + 1
    print(f"wrote {out} ({len(lines)} records, {sum(counts.values())} spans: {dict(sorted(counts.items()))})")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
