"""BI logins read, never write: not even in the schema public.

PostgreSQL 15 made CREATE on the schema public its owner's alone; a server of PostgreSQL 14 or older, or a
database upgraded from one (pg_upgrade keeps the schema's privileges), still grants it to PUBLIC: to every role,
bi_reader and the area roles included. The warehouse keeps nothing in public, and ensure_schema (run by every
command that touches the warehouse) takes that privilege back, or says in the log that it could not."""

from __future__ import annotations

import logging
import uuid

import psycopg
import pytest
from psycopg import sql

from corridor import db
from corridor.db import libpq_params, with_database


def _new_database(admin_url: str, owner: str | None = None) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)) +
                     (sql.SQL(" owner {}").format(sql.Identifier(owner)) if owner else sql.SQL("")))
    return with_database(admin_url, name)


def _as_before_postgresql_15(url: str) -> None:
    """The schema public as PostgreSQL 14 made it: owned by the bootstrap superuser, CREATE for PUBLIC."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("alter schema public owner to current_user")
        conn.execute("grant create, usage on schema public to public")


def _login(admin_url: str, url: str, member_of: str) -> tuple[str, str]:
    name, password = f"login_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("do $$ begin create role {} nologin; exception when duplicate_object then null; end $$")
                     .format(sql.Identifier(member_of)))
        conn.execute(sql.SQL("create role {} login password {} in role {}").format(
            sql.Identifier(name), sql.Literal(password), sql.Identifier(member_of)))
    p = libpq_params(url)
    return name, psycopg.conninfo.make_conninfo(host=p["host"], port=p["port"], dbname=p["dbname"], user=name,
                                                password=password)


def _drop_role(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def _public_may_create(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select exists (select from pg_namespace as n, aclexplode(n.nspacl) as a"
            " where n.nspname = 'public' and a.grantee = 0 and a.privilege_type = 'CREATE')").fetchone()[0]


def test_a_bi_login_cannot_create_in_the_schema_public_of_a_warehouse_made_before_postgresql_15(pg_admin_url):
    url = _new_database(pg_admin_url)
    _as_before_postgresql_15(url)
    name, conninfo = _login(pg_admin_url, url, "bi_reader")
    try:
        with psycopg.connect(conninfo, autocommit=True) as bi:  # why: what a BI login could do before
            bi.execute("create table public.probe (a int)")
            bi.execute("drop table public.probe")
        db.ensure_schema(url)
        assert not _public_may_create(url)
        with psycopg.connect(conninfo, autocommit=True) as bi:
            for statement in ("create table public.bi_wrote (a int)",
                              "create view public.bi_view as select 1 as a",
                              "create function public.upper(name) returns text language sql as 'select 1::text'"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    bi.execute(statement)
        db.ensure_schema(url)  # idempotent: a second start changes nothing and fails nothing
        assert not _public_may_create(url)
    finally:
        _drop_role(pg_admin_url, name)


def test_a_warehouse_user_that_cannot_take_it_back_says_so_in_the_log(pg_admin_url, caplog):
    """The warehouse's user owns its database, not the schema public (a database made by an administrator on
    an old server): ensure_schema still succeeds, and logs the statement an administrator has to run."""
    owner, password = f"owner_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} login password {}").format(sql.Identifier(owner), sql.Literal(password)))
    url = _new_database(pg_admin_url, owner)
    try:
        _as_before_postgresql_15(url)
        p = libpq_params(url)
        owner_url = (f"postgresql://{owner}:{password}@localhost/{p['dbname']}?"
                     + psycopg.conninfo.make_conninfo(host=p["host"], port=p["port"]).replace(" ", "&"))
        with caplog.at_level(logging.WARNING, logger="corridor.db"):
            db.ensure_schema(owner_url)
        assert _public_may_create(url)
        [warning] = [r.getMessage() for r in caplog.records if r.name == "corridor.db"]
        assert "every role, BI logins included, may create objects in the schema public" in warning
        assert "revoke create on schema public from public" in warning
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(libpq_params(url)["dbname"])))
        _drop_role(pg_admin_url, owner)
