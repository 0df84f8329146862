"""The record of published scorecards: ``ops.scorecard_editions`` and ``ops.scorecard_deliveries``.

Published is frozen:

- one row per published file (edition × period × area × edition_no ×
  format) with the file's sha256, the sha256 of the canonical data
  (``data_sha256``), the data's as-of date, the checkpoint outcome, the
  provisional flag with who was missing, and the attestation as rendered;
- the table is append-only (a trigger refuses UPDATE and DELETE): a later
  restatement never changes what was published; re-publishing records
  edition_no + 1 with new files;
- ``ops.scorecard_deliveries`` records each e-mail sent, with the addresses
  the mail server accepted (an edition × period × area × edition_no has one
  row per send: a rerun after a refused address adds a row for it), so a
  rerun never mails an edition to an address twice and sends a failed or
  refused address what it is owed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

DDL = """
create schema if not exists ops;

create table if not exists ops.scorecard_editions (
    scorecard_file_id  bigserial primary key,
    edition            text not null check (edition in ('monthly', 'quarterly', 'year_end')),
    period_start       date not null,
    period_end         date not null,
    area_code          text not null,
    edition_no         integer not null check (edition_no >= 1),
    format             text not null check (format in ('pdf', 'xlsx', 'html')),
    file_path          text not null,
    sha256             text not null,
    bytes              bigint not null,
    data_sha256        text not null,
    data_as_of         date not null,
    checkpoint_outcome text not null,
    provisional        boolean not null,
    missing            text[] not null default '{}',
    attestation        jsonb,
    published_at       timestamptz not null default now(),
    constraint scorecard_editions_file unique (edition, period_start, area_code, edition_no, format)
);

comment on table ops.scorecard_editions is
    'Published scorecards, one row per file; append-only (published is frozen, a re-publish adds edition_no + 1).';

create or replace function ops.scorecard_editions_frozen() returns trigger
language plpgsql as $fn$
begin
    raise exception 'ops.scorecard_editions is append-only: a published edition is never changed '
                    '(re-publish the period to record a new edition)';
end
$fn$;

do $do$
begin
    if not exists (select 1 from pg_trigger where tgname = 'scorecard_editions_frozen'
                   and tgrelid = 'ops.scorecard_editions'::regclass) then
        create trigger scorecard_editions_frozen
            before update or delete on ops.scorecard_editions
            for each row execute function ops.scorecard_editions_frozen();
    end if;
end
$do$;

create table if not exists ops.scorecard_deliveries (
    delivery_id   bigserial primary key,
    edition       text not null,
    period_start  date not null,
    area_code     text not null,
    edition_no    integer not null,
    recipients    text[] not null,
    subject       text not null,
    smtp_conn_id  text not null,
    sent_at       timestamptz not null default now()
);

comment on column ops.scorecard_deliveries.recipients is
    'the addresses the mail server accepted for this send (a refused one is owed and sent again by a rerun)';

-- once one row per edition (constraint scorecard_deliveries_once); now one per send, so that the address a
-- partly refused send left is recorded when a rerun delivers it
do $do$
begin
    if exists (select 1 from pg_constraint where conname = 'scorecard_deliveries_once'
               and conrelid = 'ops.scorecard_deliveries'::regclass) then
        alter table ops.scorecard_deliveries drop constraint scorecard_deliveries_once;
    end if;
end
$do$;

create index if not exists scorecard_deliveries_edition
    on ops.scorecard_deliveries (edition, period_start, area_code, edition_no);
"""


def ensure_registry(url: str) -> None:
    """Create the two tables and the trigger (idempotent, safe under concurrent starts)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(hashtext('corridor.scorecards.ensure_registry'))")
        try:
            conn.execute(DDL)
        finally:
            conn.execute("select pg_advisory_unlock(hashtext('corridor.scorecards.ensure_registry'))")


@dataclass
class RecordedEdition:
    edition: str
    period_start: date
    period_end: date
    area_code: str
    edition_no: int
    data_sha256: str
    data_as_of: date
    checkpoint_outcome: str
    provisional: bool
    missing: list[str]
    attestation: dict | None
    files: dict[str, tuple[Path, str]] = field(default_factory=dict)  # format -> (path, sha256)


def latest_edition(conn: psycopg.Connection, edition: str, period_start: date, area: str) -> RecordedEdition | None:
    rows = conn.execute(
        """
        select edition_no, period_end, data_sha256, data_as_of, checkpoint_outcome, provisional, missing,
               attestation, format, file_path, sha256
        from ops.scorecard_editions
        where edition = %s and period_start = %s and area_code = %s
          and edition_no = (select max(edition_no) from ops.scorecard_editions
                            where edition = %s and period_start = %s and area_code = %s)
        order by format
        """, (edition, period_start, area, edition, period_start, area)).fetchall()
    if not rows:
        return None
    no, period_end, data_sha, as_of, outcome, provisional, missing, attestation = rows[0][:8]
    rec = RecordedEdition(edition, period_start, period_end, area, no, data_sha, as_of, outcome, provisional,
                          list(missing or []), attestation)
    for *_, fmt, path, sha in rows:
        rec.files[fmt] = (Path(path), sha)
    return rec


def latest_provisional(conn: psycopg.Connection) -> list[RecordedEdition]:
    """Each (edition, period_start, area) whose latest edition is provisional (its files not read)."""
    rows = conn.execute(
        """
        select edition, period_start, period_end, area_code, edition_no, data_sha256, data_as_of,
               checkpoint_outcome, provisional, missing, attestation
        from (select distinct on (edition, period_start, area_code) *
              from ops.scorecard_editions
              order by edition, period_start, area_code, edition_no desc) as latest
        where provisional
        order by edition, period_start, area_code
        """).fetchall()
    return [RecordedEdition(ed, start, end, area, no, sha, as_of, outcome, prov, list(missing or []), att)
            for ed, start, end, area, no, sha, as_of, outcome, prov, missing, att in rows]


def record_edition(conn: psycopg.Connection, *, edition: str, period_start: date, period_end: date, area: str,
                   edition_no: int, files: dict[str, tuple[Path, str, int]], data_sha256: str, data_as_of: date,
                   checkpoint_outcome: str, provisional: bool, missing: list[str], attestation: dict | None) -> None:
    for fmt, (path, sha, size) in sorted(files.items()):
        conn.execute(
            """
            insert into ops.scorecard_editions
                (edition, period_start, period_end, area_code, edition_no, format, file_path, sha256, bytes,
                 data_sha256, data_as_of, checkpoint_outcome, provisional, missing, attestation)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """, (edition, period_start, period_end, area, edition_no, fmt, str(path), sha, size, data_sha256,
                  data_as_of, checkpoint_outcome, provisional, missing,
                  Jsonb(attestation) if attestation is not None else None))


def delivered_to(conn: psycopg.Connection, edition: str, period_start: date, area: str, edition_no: int) -> set[str]:
    """The addresses an edition was delivered to (accepted by the mail server), over every send."""
    return {address for (address,) in conn.execute(
        "select distinct unnest(recipients) from ops.scorecard_deliveries"
        " where edition = %s and period_start = %s and area_code = %s and edition_no = %s",
        (edition, period_start, area, edition_no)).fetchall()}


def record_delivery(conn: psycopg.Connection, *, edition: str, period_start: date, area: str, edition_no: int,
                    recipients: list[str], subject: str, smtp_conn_id: str) -> None:
    """One send of an edition: ``recipients``, the addresses the mail server accepted."""
    conn.execute(
        """
        insert into ops.scorecard_deliveries
            (edition, period_start, area_code, edition_no, recipients, subject, smtp_conn_id)
        values (%s, %s, %s, %s, %s, %s, %s)
        """, (edition, period_start, area, edition_no, recipients, subject, smtp_conn_id))
