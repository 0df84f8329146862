{#-
    Planner statistics of the raw tables, refreshed by the build (issue 11).

    The loader does not ANALYZE the raw tables it writes (it did, after every
    feed of every run: 0.35-0.6 s of server time a feed at province scale,
    more than the COPY of bank's or hr's rows). dbt must never plan on
    empty-table statistics (seen: minutes instead of seconds), so this
    on-run-start hook (dbt_project.yml), before any model of a `dbt build`,
    `dbt run` or `dbt test` runs, ANALYZEs each raw table (a source of this
    project in schema raw) whose feed has loaded rows since the table was
    last analyzed here and is worth it by autovacuum's rule (its defaults):
    never analyzed here, or more than 50 rows + 10 % of the rows counted
    then have changed (src/corridor/ingest.py, worth_analyzing).

    Deterministic: it decides from the load ledger (the rows loaded by the
    feed's files, ops.load_ledger.rows_loaded; a feed's raw tables are its
    source's tables) and from ops.raw_analyzed, what the last ANALYZE here
    counted, written in the same transaction as the ANALYZE; never from the
    statistics collector's counters, whose flush is asynchronous. A raw
    table the server has never analyzed (reltuples -1: created again, say)
    that holds loaded rows is analyzed too. One statement, under an advisory
    lock: two builds starting together analyze a table once.
-#}
{% macro analyze_raw_tables() %}
    {%- set tables = [] -%}
    {%- if execute and flags.WHICH in ('build', 'run', 'test', 'retry') -%}
        {%- for source in graph.sources.values() if source.schema == 'raw' -%}
            {%- do tables.append((source.source_name, source.identifier)) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if tables %}
    do $$
    declare
        stale record;
    begin
        perform pg_advisory_xact_lock(hashtext('corridor.analyze_raw_tables'));
        create table if not exists ops.raw_analyzed (
            table_name text primary key,
            feed text not null,
            rows_loaded bigint not null,
            analyzed_at timestamptz not null default now()
        );
        for stale in
            with
            feed_tables (feed, table_name) as (
                values
                {%- for feed, identifier in tables | sort %}
                    ('{{ feed }}', '{{ identifier }}'){{ "," if not loop.last }}
                {%- endfor %}
            ),

            loaded as (
                select
                    feed,
                    sum(rows_loaded) as rows_loaded
                from ops.load_ledger
                where status = 'loaded'
                group by feed
            )

            select
                feed_tables.feed,
                feed_tables.table_name,
                loaded.rows_loaded
            from feed_tables
            inner join loaded on feed_tables.feed = loaded.feed
            inner join pg_catalog.pg_class as classes
                on classes.oid = to_regclass('raw.' || quote_ident(feed_tables.table_name))
            left join ops.raw_analyzed as analyzed on analyzed.table_name = feed_tables.table_name
            where
                loaded.rows_loaded > 0
                and (
                    analyzed.table_name is null
                    or classes.reltuples < 0
                    or abs(loaded.rows_loaded - analyzed.rows_loaded) > 50 + 0.1 * analyzed.rows_loaded
                )
            order by feed_tables.table_name
        loop
            execute format('analyze raw.%I', stale.table_name);
            insert into ops.raw_analyzed (table_name, feed, rows_loaded)
            values (stale.table_name, stale.feed, stale.rows_loaded)
            on conflict (table_name) do update
                set feed = excluded.feed, rows_loaded = excluded.rows_loaded, analyzed_at = now();
        end loop;
    end
    $$
    {%- else %}
    select 1
    {%- endif %}
{% endmacro %}
