"""A differential fuzz of the feeds' fast readers against their reference paths.

Real demo files, some of their values rewritten with what trips parsers up (whitespace of every Unicode kind,
full-width and compatibility characters, numbers and dates of every form, quotes, escapes, control characters,
out-of-range serials and styles …), are parsed both ways and held to the same spool output (the COPY bytes,
quarantine entries, counts, notes and rejections): the CSV and JSON Lines feeds by their vectorised path and
per row (``tests.test_fast_path.compare``), the district workbooks by calamine, alone and in batches, and by
openpyxl per row (``compare_workbooks``; their sheets and shared strings are rewritten in the XML).

``tests/test_fuzz_readers.py`` runs a fixed number of rounds with a fixed seed in the suite. A longer campaign,
which keeps the files of every round that differs::

    .venv/bin/python -m tests.fuzz_readers FEED SECONDS [SEED] --url postgresql://…  (FEED: techmarket, bank,
    hr, district; the URL of a warehouse whose raw tables give the spool's columns)
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import shutil
import tempfile
import traceback
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

FEEDS = ("techmarket", "bank", "hr", "district")

WS = [" ", "\t", "\u3000", "\u00a0", "\u2002", "\u200b", "\ufeff", "\u2028", "\u0085", "\u180e", "\x0b", "\x0c",
      "\x1c", "\x1f", "\u202f", "\u205f", "\u2029", "\x1e", "\u200a", "\u3000\u3000"]
ODD = ["①", "ｶ", "ﬁ", "Ⅻ", "²", "㎡", "％", "．", "，", "：", "；", ";", "\\", '"', ",", "'", "计", "合计", "总计",
       "\x00", "\x01", "\x7f", "\u0301", "é", "e\u0301", "😀", "\ud7ff", "\uffff", "\u00ad", "\u2011", "\u2010",
       "\u2212", "－", "﹣", "＋", "＼", "\u0660", "３", "𝟑", "٣", "३", "Ⅰ", "ı", "ſ", "K", "Å", "\r", "\n", "\r\n",
       "&amp;", "<t>", "_x0041_", "NULL", "null", "None", "-", "—", "N/A"]
NUMBERS = ["0", "1", "12", "12.5", "12.50", "1,234", "1,234.5", "1,234,567.89", "1234567.123456", "0.0000001", "1e3",
           "1E+3", "0x10", "1_000", ".5", "5.", "+5", "-5", "-0", "00", "007", "0.10", "1,2,3", "1,234,5",
           "12,345.67890", "123456789012345", "1234567890123456", "99999999999999.9", "３.５", "𝟑𝟒", "٣٤", "1 234",
           "1'234", "∞", "Infinity", "nan", "NaN", "inf", "-inf", "１，２３４", "1,000.", "1.2.3", "¥100", "￥100",
           "100元", "100万元", "100％", "100%", "50㎡", "1.5万", "（100）", "(100)", "−5", "－5", "100.000000",
           "100.0000001", "1e-7", "9" * 16, "9" * 15, "0.1" + "0" * 10, "12.345678", "1" * 14 + ".5", "100.0",
           "0.000", "1,00", "1,0000"]
DATES = ["2021-03-01", "2021-3-1", "20210301", "2021/03/01", "2021.3.1", "2021年3月1日", "2021年3月1", "２０２１-03-01",
         "2021-02-29", "2020-02-29", "0000-01-01", "0001-01-01", "9999-12-31", "2021-03-01T00:00",
         "2021-03-01 00:00:00", "2021-13-01", "2021-00-10", "2021-01-00", "1999-12-31", "1899-12-31", "1900-01-01",
         "44000", "2021‐03‐01", "2021－03－01", "𝟐𝟎𝟐𝟏-03-01", "2021-03-01Z", "21-3-1", "2021年03月", "2021-03",
         "202103", "2021.3.1.", " 2021 -03-01", "2021-3-01", "2021-03-1", "2021/3/01", "2021.03.01", "2021年03月01日",
         "2021年3月01日", "20211301", "2021-03-01\u3000", "2021/3/1 0:00", "2021/3/1 10:00:00", "3/1/2021",
         "2021-3-1日", "2021年3-1", "1990-01-01", "2019-01-01", "2018-12-31", "2019-12-31", "2020-01-01", "2021-12-31",
         "2022-12-31"]
# what a sheet's <v> may hold: plain, float-written, exponent, negative, beyond the dates, the 1900 leap day …
SERIALS = ["5", "5.0", "1E5", "1e5", "+5", "0012", "-0", "1.5", "12345678901234567", "4.4E-2", ".5", "5.", "1e400",
           "100", "43831", "43831.5", "-3", "60", "61", "59", "0", "1", "2958465", "2958466", "12.00", "1.0E+2",
           "3.3333333333333335", "0.1", "123456789012345", "1234567890123456", "99.99", "1E-7", "-1.5", "45000",
           "+2958466", "+43831"]
# the fields whose values are numbers or dates (else: any text)
KINDS = {
    "techmarket": {"合同成交额（万元）": "number", "技术交易额（万元）": "number", "登记日期": "date"},
    "bank": {"贷款金额（元）": "number", "年利率（%）": "number", "放款日期": "date", "到期日期": "date"},
    "hr": {"intake_date": "date"},
}


def tricky(value: str, kind: str, rng: random.Random) -> str:
    """``value`` rewritten as a file might hold it: spaced, full width, cased, with an odd character, blank …"""
    if kind == "number" and rng.random() < 0.5:
        return rng.choice(NUMBERS)
    if kind == "date" and rng.random() < 0.5:
        return rng.choice(DATES)
    r = rng.random()
    if r < 0.2:
        return rng.choice(WS) + value
    if r < 0.35:
        return value + rng.choice(WS)
    if r < 0.45:
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" and rng.random() < 0.7 else c for c in value)
    if r < 0.5:
        return value.lower() if rng.random() < 0.5 else value.upper()
    if r < 0.7:
        i = rng.randrange(len(value) + 1)
        return value[:i] + rng.choice(ODD + WS) + value[i:]
    if r < 0.75:
        return rng.choice(["", " ", "\u3000", "\t"])
    if r < 0.8:
        return value * rng.choice([2, 3])
    if r < 0.85 and value:
        i = rng.randrange(len(value))
        return value[:i] + value[i + 1:]
    if r < 0.9:
        return rng.choice(ODD)
    return rng.choice(WS) + value + rng.choice(WS)


def mutate_csv(src: Path, dst: Path, feed: str, rng: random.Random) -> None:
    """A CSV file of the feed (techmarket: UTF-8, bank: GB18030) with some of its values rewritten, sometimes a
    repeated row, written back quoted or not, with LF or CR LF."""
    encoding = "gb18030" if feed == "bank" else "utf-8-sig"
    rows = list(csv.reader(io.StringIO(src.read_bytes().decode(encoding), newline="")))
    header, body = rows[0], rows[1:]
    kinds = KINDS[feed]
    rate = rng.choice([0.02, 0.1, 0.3])
    for row in body:
        if rng.random() < rate:
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                i = rng.randrange(len(row))
                row[i] = tricky(row[i], kinds.get(header[i], "any"), rng)
    if body and rng.random() < 0.1:
        body.insert(rng.randrange(len(body)), list(rng.choice(body)))
    r = rng.random()
    if r < 0.05:  # the columns in another order
        order = rng.sample(range(len(header)), len(header))
        header, body = [header[i] for i in order], [[row[i] for i in order] if len(row) == len(order) else row
                                                    for row in body]
    elif r < 0.1:  # a header spaced or in full width
        i = rng.randrange(len(header))
        header[i] = tricky(header[i], "any", rng) if rng.random() < 0.5 else f" {header[i]}\u3000"
    elif r < 0.13:  # a column more, or a row short of one
        header.append(rng.choice(["备注", "", header[0]]))
        body = [row + [rng.choice(["", "x", "1"])] for row in body]
    elif r < 0.16 and body:
        body[rng.randrange(len(body))].pop()
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=rng.choice([csv.QUOTE_ALL, csv.QUOTE_MINIMAL]),
                        lineterminator=rng.choice(["\r\n", "\n"]))
    writer.writerow(header)
    writer.writerows(body)
    if feed == "bank":  # what GB18030 cannot hold (a lone surrogate) becomes "?"
        dst.write_bytes(buf.getvalue().encode("gb18030", errors="replace"))
    else:
        text = ("\ufeff" if rng.random() < 0.8 else "") + buf.getvalue()
        dst.write_bytes(text.encode("utf-8", errors="surrogatepass"))


def mutate_jsonl(src: Path, dst: Path, rng: random.Random) -> None:
    """A talent file with some records' values rewritten (strings as :func:`tricky`, others as another JSON type
    or a yes/no string), some lines compacted; its other lines (the demo's broken ones) as they were."""
    rate = rng.choice([0.02, 0.1, 0.3])
    out = []
    for line in src.read_text("utf-8").splitlines():
        if rng.random() < rate:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict) and record:
                for _ in range(rng.choice([1, 1, 2])):
                    key = rng.choice(list(record))
                    value = record[key]
                    if rng.random() < 0.1:
                        record[key] = rng.choice([None, True, False, 0, 1, 1.5, "", [], {}])
                    elif isinstance(value, str):
                        record[key] = tricky(value, KINDS["hr"].get(key, "any"), rng)
                    elif isinstance(value, bool) or value is None:
                        record[key] = rng.choice(["true", "是", "否", "Y", "1", " true", "TRUE", None, True, False])
                if rng.random() < 0.05:  # a key missing, another added, or the keys in another order
                    record.pop(rng.choice(list(record)))
                elif rng.random() < 0.05:
                    record[rng.choice(["extra", "备注", "id_number2"])] = rng.choice(["x", 1, None])
                elif rng.random() < 0.05:
                    record = dict(rng.sample(list(record.items()), len(record)))
                line = json.dumps(record, ensure_ascii=rng.random() < 0.3)
                if rng.random() < 0.1:
                    line = line.replace(": ", ":").replace(", ", ",")
        out.append(line)
    dst.write_text("\n".join(out) + rng.choice(["\n", "", "\r\n"]), encoding="utf-8")


def _xml_chars(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold."""
    return "".join(c for c in text if c in "\t\n\r" or "\x20" <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd"
                   or c > "\uffff")


def _text(value: str, rng: random.Random, plain: bool) -> str:
    """A shared or inline string's XML: marked xml:space="preserve" where it has whitespace at an end (as
    Excel and xlsxwriter write it), or (not ``plain``) any of the forms readers differ on."""
    if plain:
        marked = value != value.strip(" \t\n\r")
        return f'<t xml:space="preserve">{escape(value)}</t>' if marked else f"<t>{escape(value)}</t>"
    r = rng.random()
    if r < 0.25:
        return f'<t xml:space="preserve">{escape(value)}</t>'
    if r < 0.35 and len(value) > 1:
        i = rng.randrange(1, len(value))
        return f"<r><t>{escape(value[:i])}</t></r><r><rPr><b/></rPr><t>{escape(value[i:])}</t></r>"
    if r < 0.4:
        return f'<t>{escape(value)}</t><rPh sb="0" eb="1"><t>x</t></rPh>'
    return f"<t>{escape(value)}</t>"


def mutate_workbook(src: Path, dst: Path, rng: random.Random) -> None:
    """A district workbook with some shared strings and data cells (row 4 on; sometimes the cover's, or a sheet's
    name) rewritten in its XML: mostly mild
    rewrites that keep it of the shape calamine reads (so that its reading is what is compared), sometimes
    any (numbers of every form and style, inline, boolean, string-formula and ISO-date cells, removed cells,
    rich text, phonetic runs, styles the workbook does not define)."""
    with zipfile.ZipFile(src) as archive:
        parts = {info.filename: archive.read(info) for info in archive.infolist()}
    mild = rng.random() < 0.8
    rate = rng.choice([0.01, 0.03, 0.06]) if mild else rng.choice([0.02, 0.1, 0.3])
    strings = parts["xl/sharedStrings.xml"].decode("utf-8")
    items = re.findall(r"<si>(.*?)</si>", strings, flags=re.S)
    rewritten = []
    for k, item in enumerate(items):
        plain = re.fullmatch(r"<t>(.*)</t>", item, flags=re.S)
        if plain and k > 20 and rng.random() < rate:  # not the labels and headers
            text = plain[1].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
            item = _text(_xml_chars(tricky(text, rng.choice(["any", "any", "number", "date"]), rng)), rng, mild)
        rewritten.append(f"<si>{item}</si>")
    parts["xl/sharedStrings.xml"] = (strings[:strings.index("<si>")] + "".join(rewritten) + "</sst>").encode()

    cover = rng.random() < 0.1  # the cover's cells too (its labels and values sit in rows 1 to 5)

    def cell(m: re.Match) -> str:
        ref, attributes = m[1], m[2]
        if (int(re.sub("[A-Z]+", "", ref)) <= 3 and not cover) or rng.random() > rate:
            return m[0]
        found = re.search(r' s="\d+"', attributes)
        style = found[0] if found else ""
        r = rng.random() * (0.5 if mild else 1)
        if mild and 0.3 <= r < 0.45 and rng.random() < 0.7:
            r = 0.8
        if r < 0.3:
            return f'<c r="{ref}"{style}><v>{rng.choice(SERIALS)}</v></c>'
        if r < 0.45:
            other = rng.choice([rng.randrange(10), rng.randrange(12), 99, -1])
            return f'<c r="{ref}" s="{other}"><v>{rng.choice(SERIALS)}</v></c>'
        if r < 0.55:
            value = _xml_chars(tricky(rng.choice(NUMBERS + DATES + ["x", "LW-1"]), "any", rng))
            return f'<c r="{ref}"{style} t="inlineStr"><is>{_text(value, rng, mild)}</is></c>'
        if r < 0.6:
            return f'<c r="{ref}"{style} t="b"><v>{rng.choice(["0", "1"])}</v></c>'
        if r < 0.65:
            return f'<c r="{ref}"{style} t="n"><v>{rng.choice(SERIALS)}</v></c>'
        if r < 0.7:
            return f'<c r="{ref}"{style}/>'
        if r < 0.75:
            return ""
        if r < 0.85:
            return f'<c r="{ref}"{style} t="s"><v>{rng.randrange(len(rewritten))}</v></c>'
        if r < 0.9:
            return f'<c r="{ref}"{style} t="str"><v>{escape(rng.choice(NUMBERS))}</v></c>'
        return f'<c r="{ref}"{style} t="d"><v>2021-03-01T00:00:00</v></c>'

    if rng.random() < 0.05:  # a sheet's name spaced or in full width (both readers match names alike)
        book = parts["xl/workbook.xml"].decode("utf-8")
        names = re.findall(r'<sheet name="([^"]*)"', book)
        name = rng.choice(names)
        renamed = escape(_xml_chars(tricky(name, "any", rng)), {'"': "&quot;"})
        book = book.replace(f'<sheet name="{name}"', f'<sheet name="{renamed}"')
        parts["xl/workbook.xml"] = book.encode("utf-8")
    for name in [n for n in parts if n.startswith("xl/worksheets/sheet")]:
        parts[name] = re.sub(r'<c r="([A-Z]+\d+)"([^>/]*)(?:/>|>(.*?)</c>)', cell, parts[name].decode("utf-8"),
                             flags=re.S).encode("utf-8")
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


@dataclass
class Campaign:
    """What the rounds of one feed found. ``counted``: the rows the fast path took and all rows (CSV, JSON Lines),
    or the workbooks calamine read in batches and all workbooks (district)."""

    rounds: int = 0
    files: int = 0
    counted: list[int] = field(default_factory=lambda: [0, 0])
    failures: list[str] = field(default_factory=list)


def run(feed: str, sources: Sequence[Path], rng: random.Random, columns: dict, work: Path,
        rounds: int | None = None, until: Callable[[], bool] | None = None, keep: Path | None = None) -> Campaign:
    """Rounds of 1 to 4 mutated files of ``sources`` compared both ways: ``rounds`` of them, or until ``until()``.
    A round that differs (or breaks) is recorded, its files copied under ``keep`` when given."""
    import pytest

    from tests.test_fast_path import compare, compare_workbooks

    campaign = Campaign()
    while (campaign.rounds < rounds) if rounds is not None else not until():
        campaign.rounds += 1
        landing = Path(tempfile.mkdtemp(prefix=f"fuzz-{feed}-", dir=work)) / feed
        landing.mkdir()
        files = []
        for src in rng.sample(list(sources), min(len(sources), rng.choice([1, 2, 3, 4]))):
            files.append(landing / src.name)
            if feed == "district":
                mutate_workbook(src, files[-1], rng)
            elif feed == "hr":
                mutate_jsonl(src, files[-1], rng)
            else:
                mutate_csv(src, files[-1], feed, rng)
        patch = pytest.MonkeyPatch()
        try:
            if feed == "district":
                counted = (compare_workbooks(files, columns, patch, landing.parent), len(files))
            else:
                counted = compare(feed, files, columns, patch, landing.parent)
            campaign.counted = [a + b for a, b in zip(campaign.counted, counted, strict=True)]
            campaign.files += len(files)
        except Exception as exc:  # AssertionError: the paths differ; anything else: a path broke
            what = (str(exc).splitlines()[0][:300] if isinstance(exc, AssertionError)
                    else traceback.format_exc()[-800:])
            if keep is not None:
                shutil.copytree(landing, keep / f"{feed}-{campaign.rounds}")
                what = f"{keep / f'{feed}-{campaign.rounds}'}: {what}"
            campaign.failures.append(what)
        finally:
            patch.undo()
            shutil.rmtree(landing.parent, ignore_errors=True)
    return campaign


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import os
    import time
    import warnings

    import psycopg

    from corridor.demo import generate

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("feed", choices=FEEDS)
    parser.add_argument("seconds", type=float)
    parser.add_argument("seed", type=int, nargs="?", default=None)
    parser.add_argument("--url", required=True, help="a warehouse whose raw tables give the spool's columns")
    parser.add_argument("--keep", type=Path, default=Path("fuzz-found"), help="where the differing files go")
    args = parser.parse_args(argv)
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    warnings.simplefilter("ignore")  # openpyxl's warnings on out-of-range dates, by the thousand
    seed = args.seed if args.seed is not None else int(time.time())
    with psycopg.connect(args.url) as conn:
        columns = dict(conn.execute(
            "select table_schema || '.' || table_name, array_agg(column_name::text order by ordinal_position)"
            " from information_schema.columns where table_schema = 'raw' and column_name <> 'ledger_id'"
            " group by 1").fetchall())
    args.keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as work:
        demo = Path(work) / "demo"
        generate(demo, scale="city", start="2019-01", end="2022-12")
        deadline = time.monotonic() + args.seconds
        campaign = run(args.feed, sorted((demo / args.feed).iterdir()), random.Random(seed), columns, Path(work),
                       until=lambda: time.monotonic() > deadline, keep=args.keep)
    for failure in campaign.failures:
        print("DIFFERS", failure)
    print(f"{args.feed}: seed {seed}, {campaign.rounds} rounds, {campaign.files} files, "
          f"{len(campaign.failures)} differing; counted {campaign.counted[0]} of {campaign.counted[1]}")
    return 1 if campaign.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
