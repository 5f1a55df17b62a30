# ruff: noqa: E501  (long literal Markdown lines of the generated SOURCE.md files)
"""Regenerate the bundled sample batch, reference table and labelled prompt examples.

Everything written by this script is *cut* from the real public data sets in ``../shared/data``
(see that folder's README.md for sources and licences): rows are selected, fields renamed and
whitespace trimmed; no record content is invented.

Selection is deterministic: "random" choices order candidates by ``sha256(f"{SEED}|{stream}|{key}")``,
which does not depend on the Python, NumPy or pandas version.

Usage (from the repository root)::

    .venv/bin/python include/sample_data/make_samples.py [--shared ../shared/data] [--include-dir include]

Outputs (paths relative to ``--include-dir``):

    sample_data/companies/companies.csv            22 rows   id,name,headquarters
    sample_data/ai_use_cases/use_cases.jsonl       12 lines  id,agency,summary
    sample_data/emails/emails.jsonl                10 lines  id,text
    sample_data/applicants/applicants.csv          20 rows   id,name
    reference/companies_reference.csv              one row per kept leuven_id: ref_id,name
    prompts/<topic>/examples/examples.jsonl        labelled examples {id, input, expected}
    ... plus SOURCE.md (and LICENSE copies) next to each of them.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

SEED = 20261122
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data"

SECTORS = [
    "Communication Services",
    "Consumer Discretionary",
    "Consumer Staples",
    "Energy",
    "Financials",
    "Health Care",
    "Industrials",
    "Information Technology",
    "Materials",
    "Real Estate",
    "Utilities",
]

# Sizes.
COMPANIES_PER_SECTOR_SAMPLE = 2
COMPANIES_PER_SECTOR_EXAMPLES = 6
USE_CASES_SAMPLE = 12
USE_CASES_EXAMPLES = 63
USE_CASES_EXAMPLES_PER_AGENCY = 3
EMAILS_SAMPLE = 10
EMAIL_SAMPLE_MAX_CHARS = 1500
EMAIL_EXAMPLE_MAX_CHARS = 3000
CONTACT_EXAMPLES_TOTAL = 62
APPLICANTS_SAMPLE_MATCHED = 17
APPLICANTS_SAMPLE_LEFT_OUT = 3  # clusters (one row each) absent from the reference table
APPLICANTS_EXAMPLES_MATCHED = 60
APPLICANTS_EXAMPLES_LEFT_OUT_CLUSTERS = 5  # two rows each -> 10 no-match examples
APPLICANTS_EXAMPLES_PER_CLUSTER = 2
LEFT_OUT_MAX_CLUSTER_ROWS = 30  # never leave out one of the big clusters

CONTACT_FIELDS = {  # .ann denotation type suffix -> output key
    "Name": "name",
    "Position": "title",
    "Organisation": "organisation",
    "Mail": "email",
    "Phone": "phone",
}

UPSTREAM = {
    "sp500": (
        "sp500_constituents.csv",
        "datasets/s-and-p-500-companies",
        "data/constituents.csv",
        "Open Data Commons Public Domain Dedication and License (ODC PDDL) - public domain, "
        "no licence file required",
    ),
    "fedai": (
        "fed_ai_use_cases_2023.csv",
        "thoppe/Federal-AI-inventory-analysis-2023",
        "data/record_level_information_FedAI_2023.csv",
        "work of the US federal government (public domain), no licence file required",
    ),
    "enron": (
        "enron_quagga/{test,eval}/*.txt + *.txt.ann",
        "HPI-Information-Systems/Quagga",
        "Datasets/Enron/annotated_detailled/",
        "GPL-3.0 for the annotations (copied here as `LICENSE`); the Enron e-mail corpus itself is public",
    ),
    "patstat": (
        "patstat/patstat_input.csv, patstat/patstat_reference.csv",
        "dedupeio/dedupe-examples",
        "patent_example/",
        "MIT, Copyright (c) 2016 DataMade LLC (copied here as `LICENSE.md`)",
    ),
}


# --------------------------------------------------------------------------- helpers


def rank(stream: str, key: object) -> str:
    """Deterministic pseudo-random sort key for ``key`` within ``stream``."""
    return hashlib.sha256(f"{SEED}|{stream}|{key}".encode()).hexdigest()


def shuffled(stream: str, keys):
    return sorted(keys, key=lambda k: rank(stream, k))


def clean(value: str) -> str:
    return value.strip()


def squash(value: str) -> str:
    """Collapse every whitespace run (including line breaks) to one space and trim."""
    return re.sub(r"\s+", " ", value).strip()


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


class Writer:
    def __init__(self, root: Path):
        self.root = root
        self.written: list[tuple[str, int]] = []

    def _path(self, rel: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def csv(self, rel: str, columns: list[str], rows: list[dict]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row[c] for c in columns})
        self._path(rel).write_text(buf.getvalue(), encoding="utf-8")
        self.written.append((rel, len(rows)))

    def jsonl(self, rel: str, rows: list[dict]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        self._path(rel).write_text(text, encoding="utf-8")
        self.written.append((rel, len(rows)))

    def text(self, rel: str, text: str) -> None:
        self._path(rel).write_text(text, encoding="utf-8")

    def copy(self, src: Path, rel: str) -> None:
        shutil.copyfile(src, self._path(rel))


def provenance(key: str, shared_file: str | None = None) -> str:
    default_file, repo, path, licence = UPSTREAM[key]
    shared_file = shared_file or default_file
    return (
        f"- Cut from: `../shared/data/{shared_file}` (shared data folder of this workspace)\n"
        f"- Upstream: GitHub repository `{repo}`, path `{path}`\n"
        f"- Licence: {licence}\n"
    )


def regenerate_note() -> str:
    return (
        "Regenerate (byte for byte) with `.venv/bin/python include/sample_data/make_samples.py` from the "
        f'repository root (seed `{SEED}`; "random" picks order candidates by '
        f'`sha256("{SEED}|<stream>|<key>")`). Nothing was invented: rows were only selected, fields '
        "renamed and whitespace trimmed/normalised as described above.\n"
    )


# --------------------------------------------------------------------------- companies / industry


def build_companies(shared: Path, out: Writer) -> None:
    df = read_csv(shared / "sp500_constituents.csv")
    assert sorted(df["GICS Sector"].unique()) == SECTORS, sorted(df["GICS Sector"].unique())
    sample, examples = [], []
    for sector in SECTORS:
        symbols = shuffled("companies", df.loc[df["GICS Sector"] == sector, "Symbol"])
        sample += symbols[:COMPANIES_PER_SECTOR_SAMPLE]
        examples += symbols[
            COMPANIES_PER_SECTOR_SAMPLE : COMPANIES_PER_SECTOR_SAMPLE + COMPANIES_PER_SECTOR_EXAMPLES
        ]
    by_symbol = df.set_index("Symbol")

    def record(sym: str) -> dict:
        row = by_symbol.loc[sym]
        return {
            "id": sym,
            "name": clean(row["Security"]),
            "headquarters": clean(row["Headquarters Location"]),
        }

    sample_rows = [
        record(s) for s in sorted(sample, key=lambda s: (SECTORS.index(by_symbol.loc[s, "GICS Sector"]), s))
    ]
    out.csv("sample_data/companies/companies.csv", ["id", "name", "headquarters"], sample_rows)
    ex_rows = [
        {"id": s, "input": record(s), "expected": {"sector": by_symbol.loc[s, "GICS Sector"]}}
        for s in sorted(examples, key=lambda s: (SECTORS.index(by_symbol.loc[s, "GICS Sector"]), s))
    ]
    out.jsonl("prompts/industry_classification/examples/examples.jsonl", ex_rows)

    out.text(
        "sample_data/companies/SOURCE.md",
        (
            "# Sample batch: companies\n\n"
            "`companies.csv` - 22 S&P 500 constituents, the input of the `industry_classification` topic.\n\n"
            + provenance("sp500")
            + "\n## Selection\n\n"
            f"For each of the 11 GICS sectors, the constituents of that sector were ordered pseudo-randomly "
            f"(stream `companies`) and the first {COMPANIES_PER_SECTOR_SAMPLE} taken (22 rows, sorted by sector, "
            "then symbol). The next "
            f"{COMPANIES_PER_SECTOR_EXAMPLES} per sector became the labelled examples "
            "(`include/prompts/industry_classification/examples/`), so the two sets are disjoint.\n\n"
            "## Fields\n\n"
            "| column | source column |\n|---|---|\n"
            "| `id` | `Symbol` |\n| `name` | `Security` |\n| `headquarters` | `Headquarters Location` |\n\n"
            "`GICS Sector` is deliberately left out: it is the answer the prompt has to produce. All other "
            "columns (sub-industry, date added, CIK, founded) are dropped.\n\n" + regenerate_note()
        ),
    )
    out.text(
        "prompts/industry_classification/examples/SOURCE.md",
        (
            "# Labelled examples: industry_classification\n\n"
            f"`examples.jsonl` - {len(ex_rows)} S&P 500 constituents, {COMPANIES_PER_SECTOR_EXAMPLES} per GICS sector "
            "(stratified, all 11 sectors). Each line: "
            '`{"id", "input": {"id", "name", "headquarters"}, "expected": {"sector"}}`.\n\n'
            + provenance("sp500")
            + "\n## Selection and fields\n\n"
            "Per sector, constituents ordered pseudo-randomly (stream `companies`); the first "
            f"{COMPANIES_PER_SECTOR_SAMPLE} are the sample batch (`include/sample_data/companies/`), the next "
            f"{COMPANIES_PER_SECTOR_EXAMPLES} are these examples (disjoint from the sample).\n\n"
            "- `id`, `input.id` = `Symbol`; `input.name` = `Security`; `input.headquarters` = "
            "`Headquarters Location`\n"
            "- `expected.sector` = `GICS Sector`, exactly as in the csv (one of the 11 sector names of the "
            "output schema)\n\n" + regenerate_note()
        ),
    )


# --------------------------------------------------------------------------- AI use cases


def split_techniques(value: str) -> list[str]:
    return [t.strip() for t in re.split(r"[;,]", value) if t.strip()]


def build_use_cases(shared: Path, out: Writer) -> None:
    df = read_csv(shared / "fed_ai_use_cases_2023.csv")
    for col in ("Use_Case_ID", "Agency", "Summary", "Title", "Techniques"):
        df[col] = df[col].map(clean)
    assert df["Use_Case_ID"].is_unique
    df = df.set_index("Use_Case_ID", drop=False)
    slen = df["Summary"].str.len()

    # Sample: summary 150-600 chars, readable agency name (more than an office acronym), one per agency.
    eligible = df[(slen >= 150) & (slen <= 600) & (df["Agency"].str.len() > 4)]
    sample, agencies = [], set()
    for uid in shuffled("use_cases_sample", eligible.index):
        agency = eligible.loc[uid, "Agency"]
        if agency in agencies:
            continue
        agencies.add(agency)
        sample.append(uid)
        if len(sample) == USE_CASES_SAMPLE:
            break
    sample.sort()
    out.jsonl(
        "sample_data/ai_use_cases/use_cases.jsonl",
        [{"id": u, "agency": df.loc[u, "Agency"], "summary": df.loc[u, "Summary"]} for u in sample],
    )

    # Examples: not in the sample, techniques given and usable as gold, summary 150-1200 chars, and an
    # agency (a required input of the prompt: production quarantines a record without one).
    techs = df["Techniques"].map(split_techniques)
    ok = (
        ~df.index.isin(sample)
        & (df["Agency"].fillna("").astype(str).str.strip() != "")
        & (slen >= 150)
        & (slen <= 1200)
        & techs.map(lambda t: 1 <= len(t) <= 5 and all(len(x) <= 60 for x in t))
    )
    pool = df[ok]
    examples, per_agency = [], Counter()
    for uid in shuffled("use_cases_examples", pool.index):
        agency = pool.loc[uid, "Agency"]
        if per_agency[agency] >= USE_CASES_EXAMPLES_PER_AGENCY:
            continue
        per_agency[agency] += 1
        examples.append(uid)
        if len(examples) == USE_CASES_EXAMPLES:
            break
    assert len(examples) == USE_CASES_EXAMPLES, len(examples)
    examples.sort()
    ex_rows = [
        {
            "id": u,
            "input": {"id": u, "agency": df.loc[u, "Agency"], "summary": df.loc[u, "Summary"]},
            "expected": {"use_cases": [{"name": df.loc[u, "Title"], "techniques": techs.loc[u]}]},
        }
        for u in examples
    ]
    out.jsonl("prompts/use_case_extraction/examples/examples.jsonl", ex_rows)

    out.text(
        "sample_data/ai_use_cases/SOURCE.md",
        (
            "# Sample batch: ai_use_cases\n\n"
            f"`use_cases.jsonl` - {len(sample)} entries of the US Federal AI use-case inventory 2023, the input "
            "of the `use_case_extraction` topic.\n\n" + provenance("fedai") + "\n## Selection\n\n"
            "Rows whose `Summary` is 150-600 characters long and whose `Agency` is a readable name (more than "
            "4 characters, i.e. not a bare office code such as `R` or `FSI`), ordered pseudo-randomly "
            f"(stream `use_cases_sample`); the first row of each agency was taken until {USE_CASES_SAMPLE} rows "
            f"were collected, so all {len(sample)} rows come from different agencies. Lines are sorted by id.\n\n"
            "## Fields\n\n"
            "| key | source column |\n|---|---|\n"
            "| `id` | `Use_Case_ID` |\n| `agency` | `Agency` |\n| `summary` | `Summary` (full text, surrounding "
            "whitespace trimmed, inner line breaks kept) |\n\n"
            "`Title` and `Techniques` are left out (they are the weak gold of the examples); the other columns "
            "are dropped.\n\n" + regenerate_note()
        ),
    )
    out.text(
        "prompts/use_case_extraction/examples/SOURCE.md",
        (
            "# Labelled examples: use_case_extraction\n\n"
            f"`examples.jsonl` - {len(ex_rows)} inventory entries. Each line: "
            '`{"id", "input": {"id", "agency", "summary"}, "expected": {"use_cases": [{"name", "techniques"}]}}`.'
            "\n\n" + provenance("fedai") + "\n## Selection\n\n"
            "Rows not in the sample batch with a non-empty `Agency` (a required input of the prompt), whose "
            "`Summary` is 150-1200 characters long and whose `Techniques` "
            "column is filled and splits into 1-5 items of at most 60 characters each (longer values are "
            "free-text sentences, not technique names). Ordered pseudo-randomly (stream `use_cases_examples`), "
            f"at most {USE_CASES_EXAMPLES_PER_AGENCY} per agency, first {USE_CASES_EXAMPLES} taken, sorted by id.\n\n"
            "## Fields\n\n"
            "- `id`, `input.id` = `Use_Case_ID`; `input.agency` = `Agency`; `input.summary` = `Summary`\n"
            "- `expected.use_cases` = exactly one item: `name` = `Title`; `techniques` = `Techniques` split on "
            "`;` or `,`, each item trimmed, empty items dropped (an empty list when the column is blank; the "
            "selection above never picks a blank one)\n\n"
            "This is *weak* gold: the inventory lists one title per entry and the agencies' own technique "
            "labels. There is no gold for the `summary` field of the output schema; score `name` "
            "(fuzzy) and `techniques` (set overlap) only.\n\n" + regenerate_note()
        ),
    )


# --------------------------------------------------------------------------- emails / contacts


def load_emails(shared: Path) -> dict[str, dict]:
    """All annotated e-mails: stem -> {folder, text, ann}. Text read with universal newlines (CRLF -> LF)."""
    emails = {}
    for folder in ("test", "eval"):
        for txt in sorted((shared / "enron_quagga" / folder).glob("*.txt")):
            ann_path = txt.with_name(txt.name + ".ann")
            if not ann_path.exists():
                continue
            stem = txt.name[: -len(".txt")]
            assert stem not in emails, stem
            emails[stem] = {
                "folder": folder,
                "text": txt.read_text(encoding="utf-8"),
                "ann": json.loads(ann_path.read_text(encoding="utf-8")),
            }
    return emails


def contacts_from_ann(ann: dict) -> list[dict]:
    """Contacts from the signature-block denotations of one .ann file (rule documented in SOURCE.md)."""
    dens = ann["denotations"]
    blocks = sorted((d["start"], d["end"]) for d in dens if d["type"] == "Body/Signature")
    fields = sorted(
        (
            d
            for d in dens
            if d["type"].startswith("Body/Signature/") and d["type"].split("/")[-1] in CONTACT_FIELDS
        ),
        key=lambda d: (d["start"], d["end"]),
    )

    def block_of(d: dict):
        for i, (s, e) in enumerate(blocks):
            if s <= d["start"] and d["end"] <= e:
                return i
        return None

    contacts: list[dict] = []
    current, current_block = None, None
    for d in fields:
        key = CONTACT_FIELDS[d["type"].split("/")[-1]]
        value = squash(d["text"])
        if not value:
            continue
        blk = block_of(d)
        same = current is not None and blk == current_block
        if key == "name":
            if same and current["name"] is None:
                current["name"] = value
            else:
                current = dict.fromkeys(("name", "title", "organisation", "email", "phone"))
                current["name"] = value
                current_block = blk
                contacts.append(current)
        else:
            if not same:
                current = dict.fromkeys(("name", "title", "organisation", "email", "phone"))
                current_block = blk
                contacts.append(current)
            if current[key] is None:
                current[key] = value
    return contacts


def build_emails(shared: Path, out: Writer) -> None:
    emails = load_emails(shared)

    def types(stem: str) -> Counter:
        return Counter(d["type"] for d in emails[stem]["ann"]["denotations"])

    def qualifies_sample(stem: str) -> bool:
        t = types(stem)
        return bool(t["Body/Signature/Name"] and (t["Body/Signature/Phone"] or t["Body/Signature/Mail"]))

    test_stems = [s for s in emails if emails[s]["folder"] == "test" and qualifies_sample(s)]
    by_len = sorted(test_stems, key=lambda s: (len(emails[s]["text"]), s))
    short = [s for s in by_len if len(emails[s]["text"]) < EMAIL_SAMPLE_MAX_CHARS]
    # Only 9 test e-mails qualify under 1500 characters; top up with the shortest longer ones.
    sample = sorted(
        short[:EMAILS_SAMPLE] + [s for s in by_len if s not in short][: max(0, EMAILS_SAMPLE - len(short))]
    )
    assert len(sample) == EMAILS_SAMPLE
    over = [s for s in sample if len(emails[s]["text"]) >= EMAIL_SAMPLE_MAX_CHARS]
    out.jsonl("sample_data/emails/emails.jsonl", [{"id": s, "text": emails[s]["text"]} for s in sample])

    # Examples: both folders, < 3000 chars, not in the sample.
    pool = [s for s in emails if s not in sample and len(emails[s]["text"]) < EMAIL_EXAMPLE_MAX_CHARS]
    positives = [s for s in pool if contacts_from_ann(emails[s]["ann"])]
    no_signature = [
        s
        for s in pool
        if not any(d["type"].startswith("Body/Signature") for d in emails[s]["ann"]["denotations"])
    ]
    n_neg = CONTACT_EXAMPLES_TOTAL - len(positives)
    assert n_neg > 0, len(positives)
    negatives = shuffled("contact_negatives", no_signature)[:n_neg]
    chosen = sorted(positives + negatives)
    ex_rows = [
        {
            "id": s,
            "input": {"id": s, "text": emails[s]["text"]},
            "expected": {"contacts": contacts_from_ann(emails[s]["ann"])},
        }
        for s in chosen
    ]
    out.jsonl("prompts/contact_extraction/examples/examples.jsonl", ex_rows)
    n_contacts = sum(len(r["expected"]["contacts"]) for r in ex_rows)
    field_counts = {
        k: sum(1 for r in ex_rows for c in r["expected"]["contacts"] if c[k] is not None)
        for k in ("name", "title", "organisation", "email", "phone")
    }

    licence_src = shared / "enron_quagga" / "LICENSE"
    out.copy(licence_src, "sample_data/emails/LICENSE")
    out.copy(licence_src, "prompts/contact_extraction/examples/LICENSE")

    over_note = ", ".join(f"`{s}` ({len(emails[s]['text'])} characters)" for s in over)
    out.text(
        "sample_data/emails/SOURCE.md",
        (
            "# Sample batch: emails\n\n"
            f"`emails.jsonl` - {len(sample)} real Enron e-mails with a signature block, the input of the "
            "`contact_extraction` topic. They contain real names, phone numbers and addresses of the "
            "public Enron corpus (useful for scrubbing/pseudonymisation tests).\n\n"
            + provenance("enron", "enron_quagga/test/*.txt (selection also reads the matching *.txt.ann)")
            + "\n## Selection\n\n"
            "From `enron_quagga/test/*.txt` (only files with a JSON annotation `<name>.txt.ann`): e-mails whose "
            "annotation has at least one `Body/Signature/Name` and at least one `Body/Signature/Phone` or "
            f"`Body/Signature/Mail` denotation and whose text is shorter than {EMAIL_SAMPLE_MAX_CHARS} characters. "
            f"Only {len(short)} test e-mails meet all of this, so the sample is those {len(short)} plus the "
            f"shortest remaining qualifying test e-mail: {over_note or 'none'}. Lines are sorted by id.\n\n"
            "## Fields\n\n"
            "| key | source |\n|---|---|\n"
            "| `id` | file stem (file name without `.txt`) |\n"
            "| `text` | full file text (headers and body) read with universal newlines, i.e. CRLF line "
            "endings normalised to LF; nothing else changed |\n\n"
            "The annotations are not included here; the labelled examples "
            "(`include/prompts/contact_extraction/examples/`) use other e-mails.\n\n"
            "The annotations are GPL-3.0, see `LICENSE` (a verbatim copy of `enron_quagga/LICENSE`).\n\n"
            + regenerate_note()
        ),
    )
    out.text(
        "prompts/contact_extraction/examples/SOURCE.md",
        (
            "# Labelled examples: contact_extraction\n\n"
            f"`examples.jsonl` - {len(ex_rows)} real Enron e-mails with gold contacts built from the Quagga "
            "signature-block annotations. Each line: "
            '`{"id", "input": {"id", "text"}, "expected": {"contacts": [{"name", "title", "organisation", '
            '"email", "phone"}]}}`.\n\n' + provenance("enron") + "\n## Selection\n\n"
            "Pool: every `enron_quagga/{test,eval}/<name>.txt` that has a JSON annotation `<name>.txt.ann`, is "
            f"shorter than {EMAIL_EXAMPLE_MAX_CHARS} characters and is not one of the {len(sample)} sample "
            "e-mails (`include/sample_data/emails/`).\n\n"
            f"- {len(positives)} positives: **all** pool e-mails whose annotation yields at least one contact "
            "(rule below).\n"
            f"- {len(negatives)} negatives (`contacts: []`): pool e-mails with no `Body/Signature*` denotation at "
            "all, ordered pseudo-randomly (stream `contact_negatives`), first "
            f"{len(negatives)} taken to reach {len(ex_rows)} lines. They check that the prompt does not turn "
            'header names or sign-offs ("Thanks, Vince") into contacts.\n\n'
            f"Lines sorted by id; {n_contacts} contacts in total; non-null fields: "
            + ", ".join(f"{k} {v}" for k, v in field_counts.items())
            + ".\n\n"
            "## Fields\n\n"
            "- `id`, `input.id` = file stem; `input.text` = full file text, CRLF normalised to LF (same as the "
            "sample)\n"
            "- `expected.contacts` from the `.txt.ann` denotations of these exact type strings: "
            "`Body/Signature/Name` -> `name`, `Body/Signature/Position` -> `title`, "
            "`Body/Signature/Organisation` -> `organisation`, `Body/Signature/Mail` -> `email`, "
            "`Body/Signature/Phone` -> `phone`. `Body/Signature/Fax`, `/Address` and `/Disclaimer` are ignored "
            "(not in the output schema); so are `Body/Intro/Name`, `Body/Outro/Name` and all `Header/*` "
            "denotations. Values are the annotated span text with whitespace runs (including line breaks) "
            "collapsed to one space and trimmed; annotation quirks are kept as they are (e.g. a phone span "
            "missing its opening parenthesis). A field without a denotation is `null`.\n\n"
            "## Grouping rule (one contact per signature name)\n\n"
            "Denotations of the five types are walked in order of their start offset. A `Body/Signature` block "
            "span, when present, is the denotation's block (denotations outside any block share one implicit "
            "block).\n\n"
            "1. A `Name` starts a new contact - except when the current contact is in the same block and has "
            "no name yet (fields annotated before the name), then it becomes that contact's name.\n"
            "2. Any other field goes to the current contact if it is in the same block; otherwise it starts a "
            "new contact without a name.\n"
            "3. Each contact keeps the **first** value of each field (a second phone, e.g. a mobile, or a "
            "repeated e-mail is dropped).\n\n"
            "So a signature whose name was not annotated gives a contact with `name: null` (e.g. an "
            "organisation plus phone), and two names followed by one phone give two contacts with the phone on "
            "the second.\n\n"
            "The annotations are GPL-3.0, see `LICENSE` (a verbatim copy of `enron_quagga/LICENSE`).\n\n"
            + regenerate_note()
        ),
    )


# --------------------------------------------------------------------------- applicants / matching


def norm_name(value: str) -> str:
    return re.sub(r"[^0-9A-Z]+", " ", value.upper()).strip()


def canonical_names(ref: pd.DataFrame) -> dict[str, str]:
    """leuven_id -> most frequent person_name (leading '* ' stripped, trimmed); ties -> first in file."""
    names: dict[str, Counter] = defaultdict(Counter)
    first: dict[tuple[str, str], int] = {}
    for pos, (lid, raw) in enumerate(zip(ref["leuven_id"], ref["person_name"], strict=True)):
        name = raw.strip()
        if name.startswith("* "):
            name = name[2:].strip()
        names[lid][name] += 1
        first.setdefault((lid, name), pos)
    return {lid: min(counts, key=lambda n: (-counts[n], first[(lid, n)])) for lid, counts in names.items()}


def build_applicants(shared: Path, out: Writer) -> None:
    inp = read_csv(shared / "patstat" / "patstat_input.csv")
    ref = read_csv(shared / "patstat" / "patstat_reference.csv")
    assert inp["person_id"].is_unique and ref["person_id"].is_unique
    canon = canonical_names(ref)
    cluster_of = dict(zip(ref["person_id"], ref["leuven_id"], strict=True))
    cluster_size = Counter(ref["leuven_id"])
    inp["leuven_id"] = inp["person_id"].map(cluster_of)
    assert inp["leuven_id"].notna().all()

    # Candidate rows: one row (the first person_id in file order) per distinct non-empty Name that
    # belongs to a single cluster and differs from the canonical name beyond case/punctuation.
    name_clusters = inp.groupby("Name")["leuven_id"].nunique()
    candidates: dict[str, list[str]] = defaultdict(list)  # leuven_id -> person_ids
    name_of: dict[str, str] = {}
    seen = set()
    for pid, name, lid in zip(inp["person_id"], inp["Name"], inp["leuven_id"], strict=True):
        name = name.strip()
        if not name or name in seen or name_clusters[name] != 1:
            continue
        seen.add(name)
        if norm_name(name) == norm_name(canon[lid]):
            continue
        candidates[lid].append(pid)
        name_of[pid] = name

    small = [lid for lid in candidates if cluster_size[lid] <= LEFT_OUT_MAX_CLUSTER_ROWS]
    sample_left_out = shuffled("left_out_sample", small)[:APPLICANTS_SAMPLE_LEFT_OUT]
    multi = [
        lid
        for lid in small
        if lid not in sample_left_out and len(candidates[lid]) >= APPLICANTS_EXAMPLES_PER_CLUSTER
    ]
    example_left_out = shuffled("left_out_examples", multi)[:APPLICANTS_EXAMPLES_LEFT_OUT_CLUSTERS]
    left_out = set(sample_left_out) | set(example_left_out)

    kept = [lid for lid in candidates if lid not in left_out]
    sample_matched_clusters = shuffled("sample_clusters", kept)[:APPLICANTS_SAMPLE_MATCHED]
    sample = [
        shuffled(f"sample_row|{lid}", candidates[lid])[0] for lid in sample_left_out + sample_matched_clusters
    ]
    sample_set = set(sample)
    sample.sort(key=int)
    out.csv(
        "sample_data/applicants/applicants.csv",
        ["id", "name"],
        [{"id": pid, "name": name_of[pid]} for pid in sample],
    )

    # Examples: up to 2 rows per kept cluster (not sample rows), then 60 of them; 2 rows per
    # example-left-out cluster as the no-match cases.
    matched_pool = []
    for lid in kept:
        rows = [p for p in shuffled(f"example_rows|{lid}", candidates[lid]) if p not in sample_set]
        matched_pool += rows[:APPLICANTS_EXAMPLES_PER_CLUSTER]
    matched = shuffled("example_matched", matched_pool)[:APPLICANTS_EXAMPLES_MATCHED]
    assert len(matched) == APPLICANTS_EXAMPLES_MATCHED, len(matched_pool)
    no_match = []
    for lid in example_left_out:
        no_match += shuffled(f"example_rows|{lid}", candidates[lid])[:APPLICANTS_EXAMPLES_PER_CLUSTER]
    examples = sorted(matched + no_match, key=int)
    ex_rows = [
        {
            "id": pid,
            "input": {"id": pid, "name": name_of[pid]},
            "expected": {"match_id": None if cluster_of[pid] in left_out else cluster_of[pid]},
        }
        for pid in examples
    ]
    out.jsonl("prompts/company_matching/examples/examples.jsonl", ex_rows)

    ref_rows = [{"ref_id": lid, "name": canon[lid]} for lid in sorted(canon, key=int) if lid not in left_out]
    out.csv("reference/companies_reference.csv", ["ref_id", "name"], ref_rows)

    licence_src = shared / "patstat" / "LICENSE.md"
    for rel in ("sample_data/applicants", "reference", "prompts/company_matching/examples"):
        out.copy(licence_src, f"{rel}/LICENSE.md")

    def listing(ids) -> str:
        return ", ".join(f"`{lid}` ({canon[lid]})" for lid in sorted(ids, key=int))

    n_clusters = len(canon)
    candidate_rule = (
        "Candidate rows: for every distinct non-empty `Name` of `patstat_input.csv` that belongs to a "
        "single cluster, the first row in file order; kept only when the name differs from its cluster's "
        "canonical name (see `include/reference/SOURCE.md`) after upper-casing and reducing punctuation to "
        "spaces - so every candidate is a real noisy variant (dropped or mangled legal forms such as "
        "`N.V.` -> `V`, lost punctuation, reordered or abbreviated words, typos)."
    )
    out.text(
        "sample_data/applicants/SOURCE.md",
        (
            "# Sample batch: applicants\n\n"
            f"`applicants.csv` - {len(sample)} noisy patent-applicant company names from PATSTAT (Netherlands), "
            "the input of the `company_matching` topic (matched against `include/reference/companies_reference.csv`)."
            "\n\n"
            + provenance("patstat", "patstat/patstat_input.csv (clusters looked up in patstat_reference.csv)")
            + "\n## Selection\n\n"
            + candidate_rule
            + "\n\n"
            f"- {len(sample_left_out)} rows from {len(sample_left_out)} clusters (of at most "
            f"{LEFT_OUT_MAX_CLUSTER_ROWS} rows, picked pseudo-randomly, stream `left_out_sample`) that are "
            'deliberately **absent** from the reference table, so "no match" is the correct answer: '
            + listing(sample_left_out)
            + ".\n"
            f"- {len(sample_matched_clusters)} rows from {len(sample_matched_clusters)} other clusters that are in the "
            "reference table (stream `sample_clusters`), one pseudo-random candidate row each.\n\n"
            f"{len(sample)} rows from {len(sample)} different `leuven_id` clusters, sorted by id. The gold cluster "
            "is looked up via `person_id` in `patstat_reference.csv`; the labelled examples use other rows.\n\n"
            "## Fields\n\n"
            "| column | source column |\n|---|---|\n| `id` | `person_id` |\n| `name` | `Name` (trimmed) |\n\n"
            "`Lat`, `Lng`, `Coauthor` and `Class` are dropped.\n\n"
            "MIT licence, see `LICENSE.md` (a verbatim copy of `patstat/LICENSE.md`).\n\n" + regenerate_note()
        ),
    )
    out.text(
        "reference/SOURCE.md",
        (
            "# Reference table: companies_reference.csv\n\n"
            f"Master list for the `company_matching` topic: {len(ref_rows)} companies, one row per `leuven_id` "
            f"cluster of `patstat_reference.csv` ({n_clusters} clusters) except the {len(left_out)} left out on "
            "purpose.\n\n" + provenance("patstat", "patstat/patstat_reference.csv") + "\n## Fields\n\n"
            "| column | source |\n|---|---|\n"
            "| `ref_id` | `leuven_id` |\n"
            "| `name` | canonical name of the cluster: the most frequent `person_name` in the cluster after "
            "stripping a leading `* ` and surrounding whitespace (ties: the one that appears first in the file) |"
            "\n\nRows sorted by `ref_id` (numerically).\n\n"
            '## Clusters left out (so that "no match" is a correct answer)\n\n'
            f"- for the sample batch (`include/sample_data/applicants/`): {listing(sample_left_out)}\n"
            f"- for the labelled examples (`include/prompts/company_matching/examples/`): {listing(example_left_out)}\n\n"
            "MIT licence, see `LICENSE.md` (a verbatim copy of `patstat/LICENSE.md`).\n\n" + regenerate_note()
        ),
    )
    out.text(
        "prompts/company_matching/examples/SOURCE.md",
        (
            "# Labelled examples: company_matching\n\n"
            f"`examples.jsonl` - {len(ex_rows)} noisy PATSTAT applicant names with the gold cluster. Each line: "
            '`{"id", "input": {"id", "name"}, "expected": {"match_id"}}`; `match_id` is the `leuven_id` '
            "(a string, the `ref_id` of `include/reference/companies_reference.csv`) or `null` when the "
            "cluster is absent from the reference table.\n\n"
            + provenance("patstat")
            + "\n## Selection\n\n"
            + candidate_rule
            + " Sample rows (`include/sample_data/applicants/`) are "
            "excluded.\n\n"
            f"- {len(matched)} matches: up to {APPLICANTS_EXAMPLES_PER_CLUSTER} pseudo-random candidate rows per "
            "cluster of the reference table (stream `example_rows|<leuven_id>`), then "
            f"{APPLICANTS_EXAMPLES_MATCHED} of that pool (stream `example_matched`); they cover "
            f"{len({cluster_of[p] for p in matched})} clusters.\n"
            f"- {len(no_match)} no-matches (`match_id: null`): {APPLICANTS_EXAMPLES_PER_CLUSTER} rows from each of "
            f"{len(example_left_out)} clusters left out of the reference table for this purpose: "
            + listing(example_left_out)
            + ". None of them is one of the sample's left-out clusters.\n\n"
            "Lines sorted by id.\n\n"
            "## Fields\n\n"
            "- `id`, `input.id` = `person_id` (as a string); `input.name` = `Name` of `patstat_input.csv`\n"
            "- `expected.match_id` = `leuven_id` of that `person_id` in `patstat_reference.csv`, or `null`\n\n"
            "MIT licence, see `LICENSE.md` (a verbatim copy of `patstat/LICENSE.md`).\n\n" + regenerate_note()
        ),
    )


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shared",
        type=Path,
        default=DEFAULT_SHARED,
        help="shared data folder (default: ../shared/data relative to the repo root)",
    )
    parser.add_argument(
        "--include-dir",
        type=Path,
        default=REPO_ROOT / "include",
        help="where to write (default: the repo's include/)",
    )
    args = parser.parse_args(argv)
    out = Writer(args.include_dir)
    build_companies(args.shared, out)
    build_use_cases(args.shared, out)
    build_emails(args.shared, out)
    build_applicants(args.shared, out)
    for rel, n in out.written:
        print(f"{n:5d}  {rel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
