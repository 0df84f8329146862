"""Value normalisation (corridor.normalize) and personal-data handling (corridor.pii)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime
from decimal import Decimal

import pytest

from corridor import normalize as n
from corridor.normalize import NormalizeError
from corridor.pii import mask_id, mask_json_text, mask_name, mask_text, person_key, person_keys

USCC = "91330300MA2AB1C2D" + n.uscc_check_char("91330300MA2AB1C2D")
ID = "33030319900101123" + n.id_check_char("33030319900101123")


def wrong_check(valid: str, alphabet: str) -> str:
    """``valid`` with a check character that is not the right one."""
    return valid[:17] + next(ch for ch in alphabet if ch != valid[17])


def rule_of(fn, *args, **kwargs) -> NormalizeError:
    with pytest.raises(NormalizeError) as info:
        fn(*args, **kwargs)
    return info.value


def test_normalize_error_accepts_only_known_rule_codes():
    with pytest.raises(ValueError):
        NormalizeError("not_a_rule", "x")


# -- areas -------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("LW", "LW"), ("lw", "LW"), ("Ojk", "OJK"), ("龙湾区", "LW"), ("瓯海区", "OH"), ("乐清市", "YQ"),
    ("瑞安市", "RA"), ("浙南产业集聚区", "ZN"), ("瓯江口产业集聚区", "OJK"), ("龙湾", "LW"), ("瓯海", "OH"),
    ("乐清", "YQ"), ("瑞安", "RA"), ("浙南", "ZN"), ("瓯江口", "OJK"), (" 龙湾区 ", "LW"), ("龙\u3000湾", "LW"),
    ("\u3000OH\t", "OH"),
])
def test_area_names_codes_short_forms_and_stray_spaces_give_the_area_code(value, expected):
    assert n.area_code(value) == expected


@pytest.mark.parametrize("value", ["鹿城区", "XX", "温州", "龙湾区区"])
def test_unknown_area_is_unknown_area(value):
    err = rule_of(n.area_code, value)
    assert err.rule_code == "unknown_area"
    assert repr(value) in err.message and "LW" in err.message


def test_blank_area_is_missing_value():
    assert rule_of(n.area_code, " \u3000").rule_code == "missing_value"


# -- USCC --------------------------------------------------------------------------

def test_valid_uscc_passes():
    assert n.uscc(USCC) == USCC


def test_lowercase_uscc_is_normalised():
    assert n.uscc(USCC.lower()) == USCC


def test_full_width_uscc_with_surrounding_spaces_is_normalised():
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in USCC)
    assert n.uscc(f"\u3000 {full_width} ") == USCC


def test_uscc_with_wrong_check_character_is_invalid_uscc_naming_the_expected_one():
    err = rule_of(n.uscc, wrong_check(USCC, n.USCC_ALPHABET))
    assert err.rule_code == "invalid_uscc"
    assert "GB 32100-2015" in err.message and f"expected {USCC[17]!r}" in err.message


@pytest.mark.parametrize("value", [USCC[:17], USCC + "0", "I" + USCC[1:], "91330300MA2AB1C2-" + USCC[17]])
def test_uscc_of_wrong_length_or_alphabet_is_invalid_uscc(value):
    assert rule_of(n.uscc, value).rule_code == "invalid_uscc"


def test_blank_uscc_is_missing_value():
    assert rule_of(n.uscc, "  ").rule_code == "missing_value"


def test_uscc_check_char_matches_a_published_code():
    # 91350100M000100Y43: a code printed on a real business licence (Fujian).
    assert n.uscc_check_char("91350100M000100Y4") == "3"


# -- resident ID ---------------------------------------------------------------------

def test_valid_id_number_passes():
    assert n.id_number(ID) == ID


def test_lowercase_x_in_id_number_is_normalised():
    body = next(b for i in range(1000) if n.id_check_char(b := f"33030319900101{i:03d}") == "X")
    assert n.id_number(body + "x") == body + "X"


def test_id_check_char_matches_the_standard_example():
    # GB 11643-1999 appendix example: 11010519491231002X
    assert n.id_check_char("11010519491231002") == "X"


def test_id_number_with_wrong_check_digit_is_invalid_and_the_message_hides_the_number():
    bad = wrong_check(ID, "0123456789X")
    err = rule_of(n.id_number, bad)
    assert err.rule_code == "invalid_id_number"
    assert "GB 11643-1999" in err.message
    assert bad not in err.message and bad[-4:] not in err.message and bad[:6] not in err.message


@pytest.mark.parametrize("value", ["33030319900101123", "3303031990010112345", "33030319900101123Y"])
def test_id_number_of_wrong_shape_is_invalid_id_number(value):
    err = rule_of(n.id_number, value)
    assert err.rule_code == "invalid_id_number" and value not in err.message


# -- dates ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "2021-03-05", "2021/3/5", "2021.3.5", "2021年3月5日", "2021 年 3 月 5 日", "20210305", " 2021-03-05\u3000",
    "２０２１－０３－０５", "2021-03-05 00:00:00", 44260, 44260.0, date(2021, 3, 5), datetime(2021, 3, 5, 0, 0),
    20210305, 20210305.0, Decimal("20210305"),  # 20210305 typed into a cell or a JSON value: a number
])
def test_every_date_form_of_the_spec_is_read(value):
    assert n.parse_date(value) == date(2021, 3, 5)


@pytest.mark.parametrize("value", ["2021-02-30", "2021-13-01", "next tuesday", "2021-03/05", "05/03/2021", True, -3,
                                   20210230, 20211301, 2958466, 100000000, 20210305.5, float("nan"), float("inf")])
def test_unreadable_date_is_invalid_date(value):
    err = rule_of(n.parse_date, value)
    assert err.rule_code == "invalid_date"


def test_date_before_2015_is_date_out_of_range():
    err = rule_of(n.parse_date, "2014-12-31")
    assert err.rule_code == "date_out_of_range" and "2015-01-01" in err.message


def test_date_after_the_upper_bound_is_date_out_of_range():
    err = rule_of(n.parse_date, "2021/4/1", hi=date(2021, 3, 31))
    assert err.rule_code == "date_out_of_range"
    assert "'2021/4/1'" in err.message and "2021-03-31" in err.message


def test_date_without_upper_bound_accepts_the_far_future():
    assert n.parse_date("2099-12-31") == date(2099, 12, 31)


def test_blank_date_is_missing_value():
    assert rule_of(n.parse_date, "").rule_code == "missing_value"


@pytest.mark.parametrize("value", ["202103", "2021-03", "2021年03月", "2021年3月", " 2021 年 03 月 ", 202103,
                                   date(2021, 3, 1)])
def test_month_forms_are_read_as_the_first_day(value):
    assert n.parse_month(value) == date(2021, 3, 1)


@pytest.mark.parametrize("value", ["202113", "March", "2021-3-5"])
def test_unreadable_month_is_invalid_date(value):
    assert rule_of(n.parse_month, value).rule_code == "invalid_date"


# -- numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "unit", "expected"), [
    ("1,234.5", None, "1234.5"),
    ("1，234.5", None, "1234.5"),
    ("１２３４.５", None, "1234.5"),
    ("  12 ", None, "12"),
    ("350万元", "万元", "350"),
    ("3,500,000元", "万元", "350"),
    ("50万元", "元", "500000"),
    ("1,200㎡", "㎡", "1200"),
    ("1200平方米", "㎡", "1200"),
    ("85%", "%", "85"),
    ("85％", "%", "85"),
    (1234, "万元", "1234"),
    (0.1, None, "0.1"),
    (Decimal("2.50"), None, "2.50"),
])
def test_numbers_with_separators_full_width_digits_and_units_are_read(value, unit, expected):
    assert n.parse_number(value, unit=unit) == Decimal(expected)


def test_float_cells_are_read_without_binary_noise():
    assert str(n.parse_number(1234.1)) == "1234.1"


@pytest.mark.parametrize(("value", "unit"), [("12㎡", "万元"), ("5%", "元"), ("12万元", "㎡"), ("3元", None)])
def test_number_with_an_incompatible_unit_is_invalid_number(value, unit):
    err = rule_of(n.parse_number, value, unit=unit)
    assert err.rule_code == "invalid_number" and repr(value) in err.message


@pytest.mark.parametrize("value", ["abc", "1,23", "1.2.3", "--1", "1e5", True, float("nan")])
def test_unreadable_number_is_invalid_number(value):
    assert rule_of(n.parse_number, value).rule_code == "invalid_number"


def test_negative_amount_is_negative_amount_unless_allowed():
    assert rule_of(n.parse_number, "-5", unit="万元").rule_code == "negative_amount"
    assert n.parse_number("-5", allow_negative=True) == Decimal(-5)


def test_blank_number_is_missing_value():
    assert rule_of(n.parse_number, "\u3000").rule_code == "missing_value"


# -- text, headers, accepted values, booleans --------------------------------------------

def test_text_strips_whitespace_but_keeps_chinese_punctuation():
    assert n.text("\u3000温州（瓯海）科技·创新有限公司 ") == "温州（瓯海）科技·创新有限公司"


def test_blank_text_is_none():
    assert n.text(" \u3000 ") is None and n.text(None) is None


def test_header_variants_with_spaces_and_bracket_widths_compare_equal():
    variants = ["孵化面积（平方米）", "孵化面积(平方米)", " 孵化面积 （平方米）", "孵化面积\u3000(平方米 )"]
    assert len({n.header(v) for v in variants}) == 1


def test_codes_lose_stray_spaces_and_full_width_forms():
    assert n.code(" ＬＷ－Ｐ－００１２ ") == "LW-P-0012"


def test_choice_accepts_a_value_with_stray_spaces():
    assert n.choice(" 新 增\u3000", ("新增", "撤销")) == "新增"


def test_choice_outside_the_accepted_values_is_invalid_value():
    err = rule_of(n.choice, "新建", ("新增", "撤销"))
    assert err.rule_code == "invalid_value" and "新增, 撤销" in err.message


@pytest.mark.parametrize(("value", "expected"), [(True, True), ("true", True), ("是", True), ("false", False),
                                                 ("否", False), ("0", False)])
def test_yes_no_values_are_read(value, expected):
    assert n.parse_bool(value) is expected


def test_unreadable_yes_no_is_invalid_value():
    assert rule_of(n.parse_bool, "maybe").rule_code == "invalid_value"


# -- personal data ------------------------------------------------------------------------

def test_person_key_is_the_hmac_sha256_of_the_id_number():
    key = b"k"
    assert person_key(ID, key) == hmac.new(key, ID.encode(), hashlib.sha256).hexdigest()
    assert person_key(ID, b"other") != person_key(ID, key)


def test_person_keys_is_person_key_for_every_key_length():
    """pii.person_keys prepares the key once for many numbers: the same digests as person_key for keys shorter
    than, as long as and longer than SHA-256's 64-byte block (a longer key is hashed first)."""
    ids = [ID, "11010519491231002X", "330303199001011234", ""]
    for key in (b"k", b"x" * 32, b"y" * 63, b"y" * 64, b"z" * 65, bytes(range(256)) * 2):
        assert person_keys(ids, key) == [person_key(i, key) for i in ids]
    assert person_keys([], b"k") == []
    with pytest.raises(ValueError):
        person_keys(ids, b"")


def test_person_key_refuses_an_empty_key():
    with pytest.raises(ValueError):
        person_key(ID, b"")


def test_mask_id_keeps_the_region_and_hides_the_rest():
    masked = mask_id(ID)
    assert masked == ID[:6] + "*" * 12 and len(masked) == 18


def test_mask_name_keeps_the_first_character():
    assert mask_name("欧阳娜娜") == "欧***"


def test_mask_text_masks_every_id_shaped_substring():
    masked = mask_text(f"id {ID} and {ID[:17]}x.")
    assert ID not in masked and ID[:17] not in masked and masked.count("*" * 12) == 2


def test_mask_json_text_masks_name_and_id_in_a_truncated_line():
    line = f'{{"record_id": "HR-1", "id_number": "{ID[:15]}", "name": "张三丰'
    masked = mask_json_text(line)
    assert ID[:15] not in masked and "张三丰" not in masked and "张**" in masked and "HR-1" in masked
