"""The scrubber of analysts' feedback notes, shared by ``pipeline-hub feedback add`` and the Prompt Hub form.

A note is free text and may name a person: it is scrubbed as a published free-text leaf
(:meth:`pipeline_hub.pii.scrubber.Scrubber.scrub_text`: keyed pseudonyms, then residual e-mail/phone
patterns), and a note that names a data subject erased earlier (their pseudonym after scrubbing, per the
erasure register ``_audit/erasure/``) is refused, as the publish stage keeps erased subjects out of new
partitions (GDPR Art. 17).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pipeline_hub.governance.register import erased_pseudonyms, pseudonym_pattern
from pipeline_hub.prompts.feedback import FeedbackError


@contextmanager
def note_scrubber(sanitized_root: str) -> Iterator[Callable[[str], str]]:
    """Yield ``scrub(note) -> scrubbed note`` for :func:`pipeline_hub.prompts.feedback.add_feedback`.

    The Presidio analyzer is built on the first call only (a feedback without note never loads it) and
    closed on exit. ``scrub`` raises :class:`~pipeline_hub.prompts.feedback.FeedbackError` (one line, no
    note text) when the scrubbed note names an erased subject.
    """
    from pipeline_hub.pii.scrubber import Scrubber

    scrubber: Scrubber | None = None

    def scrub(text: str) -> str:
        nonlocal scrubber
        scrubber = scrubber or Scrubber()
        scrubbed = scrubber.scrub_text(text)
        erased = erased_pseudonyms(sanitized_root)
        if erased and re.search(pseudonym_pattern(erased), scrubbed):
            raise FeedbackError("the note names a data subject erased earlier (see _audit/erasure/); leave them out")
        return scrubbed

    try:
        yield scrub
    finally:
        if scrubber is not None:
            scrubber.close()
