"""Text keys for finding standard answers: folded text, pinyin and pinyin initials of Chinese,
and the words of a text for similarity (Chinese segmented by jieba through rjieba, a local
dictionary: no network).

Pinyin comes from pypinyin's phrase dictionary (`lazy_pinyin`), so 银行 reads yinhang and
重新 chongxin; the initials of 退货流程 are "thlc". Non-Chinese characters are kept as they are
(folded), so "VIP退款" has pinyin "viptuikuan" and initials "viptk".
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# words that say nothing about what a customer asks, in both languages
STOPWORDS = frozenset("""
的 了 吗 呢 吧 啊 呀 哦 嗯 么 我 你 您 他 她 它 我们 你们 是 在 有 和 与 就 都 也 还 要 想 请 请问
一下 一个 这个 那个 什么 怎么 怎么样 怎样 如何 可以 能 能不能 可不可以 吗 谢谢 你好 您好 好的 麻烦
帮 帮忙 一 个 把 被 给 让 对 从 到 说 会 没 没有 不 很 太 吧 哈 嘛 呃 hello hi the a an is are
was were to of and or in on at for with my me i you your it this that please can could would
how what do does did be have has had we our us so just get
""".split())  # noqa: SIM905 - easier to read and extend as text


def fold(text: str) -> str:
    """NFKC (full-width → half-width), case-folded, white space collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text or "").casefold().split())


def has_han(text: str) -> bool:
    return bool(_HAN.search(text or ""))


@lru_cache(maxsize=4096)
def pinyin_keys(text: str) -> tuple[str, str]:
    """(full pinyin, initials) of a text, without spaces or tones; other characters kept."""
    from pypinyin import Style, lazy_pinyin

    folded = fold(text).replace(" ", "")
    full = "".join(lazy_pinyin(folded, errors=lambda chars: list(chars)))
    initials = "".join(lazy_pinyin(folded, style=Style.FIRST_LETTER,
                                   errors=lambda chars: list(chars)))
    return full, initials


def words(text: str) -> list[str]:
    """The meaningful words of a text, in order: Chinese segmented by jieba (search mode,
    which also yields the shorter words inside long ones: 退货流程 → 退货, 流程, 退货流程),
    other scripts split on non-letters; folded, without stop words."""
    import rjieba

    out: list[str] = []
    for token in rjieba.cut_for_search(fold(text)):
        token = token.strip()
        if not token or not _WORD.fullmatch(token) or token in STOPWORDS:
            continue
        if not has_han(token) and len(token) < 2 and not token.isdigit():
            continue
        out.append(token)
    return out
