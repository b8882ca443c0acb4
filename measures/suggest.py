"""Suggested replies: the canned replies most like what the customer just wrote, by BM25 over
each reply's title, bodies and example questions, computed here (no network).

Terms are jieba's words (search mode: 退货流程 also gives 退货 and 流程) plus the character
bigrams of Chinese runs, so a customer's 退钱 still meets a reply about 退款 through 退, and a
word jieba splits differently on either side still meets its pair. The title counts twice:
it is what the reply is about. The index is rebuilt only when the set of replies a viewer sees
changes (keyed by ids and update times), so a suggestion costs one scoring pass.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any

from measures.text import fold, has_han, words

K1 = 1.2
B = 0.75
TITLE_WEIGHT = 2


def terms(text: str) -> list[str]:
    out = words(text)
    run: list[str] = []
    for ch in fold(text) + " ":
        if has_han(ch):
            run.append(ch)
            continue
        out.extend(a + b for a, b in pairwise(run))
        run = []
    return out


def doc_terms(doc: Mapping[str, Any]) -> list[str]:
    title = terms(str(doc.get("title") or ""))
    out = title * TITLE_WEIGHT
    for text in (doc.get("body") or {}).values():
        out += terms(str(text))
    for example in doc.get("examples") or ():
        out += terms(str(example))
    return out


@dataclass(frozen=True, slots=True)
class Index:
    ids: tuple[str, ...]
    tfs: tuple[Counter[str], ...]
    lengths: tuple[int, ...]
    idf: Mapping[str, float]
    avg_len: float

    @classmethod
    def build(cls, docs: Sequence[Mapping[str, Any]]) -> Index:
        tfs = [_counted(d) for d in docs]
        df: Counter[str] = Counter()
        for tf in tfs:
            df.update(tf.keys())
        n = len(docs)
        idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        lengths = [sum(tf.values()) for tf in tfs]
        return cls(ids=tuple(str(d["_id"]) for d in docs), tfs=tuple(tfs),
                   lengths=tuple(lengths), idf=idf,
                   avg_len=(sum(lengths) / n) if n else 0.0)

    def scores(self, query: Iterable[str]) -> list[tuple[str, float]]:
        wanted = [t for t in dict.fromkeys(query) if t in self.idf]
        out = []
        for rid, tf, length in zip(self.ids, self.tfs, self.lengths, strict=True):
            score = 0.0
            norm = K1 * (1 - B + B * length / (self.avg_len or 1.0))
            for term in wanted:
                f = tf.get(term)
                if f:
                    score += self.idf[term] * f * (K1 + 1) / (f + norm)
            if score > 0:
                out.append((rid, score))
        out.sort(key=lambda rs: -rs[1])
        return out


_indexes: dict[tuple[tuple[str, str], ...], Index] = {}
_counts: dict[tuple[str, str], Counter[str]] = {}


def _counted(doc: Mapping[str, Any]) -> Counter[str]:
    """A reply's term counts, kept per (id, update time): after one reply changes, the index
    is rebuilt without segmenting the others again."""
    key = (str(doc["_id"]), str(doc.get("updated_at")))
    found = _counts.get(key)
    if found is None:
        if len(_counts) > 50_000:
            _counts.clear()
        found = _counts[key] = Counter(doc_terms(doc))
    return found


def index_for(docs: Sequence[Mapping[str, Any]]) -> Index:
    key = tuple((str(d["_id"]), str(d.get("updated_at"))) for d in docs)
    found = _indexes.get(key)
    if found is None:
        if len(_indexes) > 32:
            _indexes.clear()
        found = _indexes[key] = Index.build(docs)
    return found


@lru_cache(maxsize=2048)
def _query_terms(text: str) -> tuple[str, ...]:
    return tuple(terms(text))


def suggest(docs: Sequence[Mapping[str, Any]], customer_text: str,
            limit: int = 3) -> list[tuple[Mapping[str, Any], float]]:
    """The `limit` canned replies most like `customer_text`, with their BM25 scores."""
    if not docs or not customer_text.strip():
        return []
    by_id = {str(d["_id"]): d for d in docs}
    ranked = index_for(docs).scores(_query_terms(customer_text))
    return [(by_id[rid], score) for rid, score in ranked[:limit]]
