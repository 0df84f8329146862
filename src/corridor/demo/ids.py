"""Identifiers of the demo data: USCC (GB 32100-2015) and resident ID (GB 11643-1999).

Implemented here rather than imported from ``corridor.normalize`` so that the
generator does not depend on the parsers being written in parallel; the tests
cross-check both implementations when ``corridor.normalize`` exists.
"""

from __future__ import annotations

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# The 6-character tail of an enterprise code (after "MA2"): 31**6 values,
# enumerated through an affine permutation so that consecutive enterprise
# numbers give unrelated-looking, never-repeating codes.
_TAIL_SPACE = 31 ** 6
_TAIL_MULT = 387_420_489  # 3**18, coprime with 31


def uscc_check_char(first17: str) -> str:
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    c = 31 - total % 31
    return USCC_ALPHABET[0 if c == 31 else c]


def is_valid_uscc(code: str) -> bool:
    return (len(code) == 18 and all(c in _USCC_VALUE for c in code)
            and uscc_check_char(code[:17]) == code[17])


def id_check_char(first17: str) -> str:
    return _ID_CHECK[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def is_valid_id(code: str) -> bool:
    return len(code) == 18 and code[:17].isdigit() and id_check_char(code[:17]) == code[17]


_PREFIX_SUM: dict[str, int] = {}


def make_uscc(prefix8: str, serial: int, offset: int, middle: str = "MA2") -> str:
    """A valid USCC ``{prefix8}{middle}{6 chars}{check}`` for enterprise number ``serial``.

    ``prefix8`` is 登记管理部门码 + 机构类别码 + 行政区划码 (e.g. ``91330303``).
    """
    head = prefix8 + middle
    base = _PREFIX_SUM.get(head)
    if base is None:
        base = _PREFIX_SUM[head] = sum(_USCC_VALUE[c] * w for c, w in zip(head, _USCC_WEIGHTS, strict=False))
    value = (serial * _TAIL_MULT + offset) % _TAIL_SPACE
    d5, value = value % 31, value // 31
    d4, value = value % 31, value // 31
    d3, value = value % 31, value // 31
    d2, value = value % 31, value // 31
    d1, d0 = value % 31, value // 31
    total = base + d0 * 13 + d1 * 8 + d2 * 24 + d3 * 10 + d4 * 30 + d5 * 28
    a = USCC_ALPHABET
    return f"{head}{a[d0]}{a[d1]}{a[d2]}{a[d3]}{a[d4]}{a[d5]}{a[(31 - total % 31) % 31]}"


def wrong_uscc_check(code: str) -> str:
    """The same code with a different (so invalid) check character."""
    i = _USCC_VALUE[code[17]]
    return code[:17] + USCC_ALPHABET[(i + 7) % 31]


def wrong_id_check(code: str) -> str:
    i = _ID_CHECK.index(code[17])
    return code[:17] + _ID_CHECK[(i + 3) % 11]


_FULLWIDTH = {ord(c): ord(c) + 0xFEE0 for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.,-"}


def fullwidth(text: str) -> str:
    """ASCII letters, digits and . , - as their full-width forms (NFKC maps them back)."""
    return text.translate(_FULLWIDTH)
