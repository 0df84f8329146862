{#
    The rows an increment wrote (issue 11), for its generic tests
    (macros/get_where_subquery.sql).

    dbt's incremental materialization builds the new rows of an increment in a
    temporary table and hands it to the strategy's macro; `delete+insert` and
    `append` (dispatched from dbt's, same statements otherwise) end here with
    the INSERT of those rows into the model, which in a `dbt build` also
    records where they went: the ctid of every row it inserted, in
    ops."<model>__rows_written" (replaced by each increment of the model), and
    the model and invocation in ops.dbt_rows_written (one row per model, the
    last increment that recorded). The model's tests then read those rows by a
    TID scan, at a cost of the rows written instead of a scan of the table.

    A row's ctid stays until the row is updated or the table rewritten
    (VACUUM FULL, CLUSTER): no model updates its rows, and nothing else writes
    the table between its node and its tests. A row that a post-hook deletes
    after the INSERT (int_project_states_windowed) is no longer read: a TID
    scan returns live rows only, and nothing inserts into the table after it
    in the node, so a slot is not reused before the tests. The statement's row
    count (run_results.json's rows_affected) stays the rows inserted. Builds
    of one warehouse do not overlap (corridor.transform.build_lock, taken by
    `corridor dbt build` and the build DAG's task): a second build that wrote
    the model between another's node and its tests would replace the ctids
    those tests read.

    Not recorded: a table created or rebuilt whole (first build,
    --full-refresh), another strategy, or a command other than `build` (no
    tests follow). Their tests read every row.
#}
{% macro postgres__get_incremental_delete_insert_sql(arg_dict) -%}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set unique_key = arg_dict["unique_key"] -%}
    {%- if unique_key -%}
        {%- set unique_key_str = ([unique_key] if unique_key is string else unique_key) | join(', ') -%}
        {#- dbt's statement (default__get_delete_insert_merge_sql) -#}
        delete from {{ target }} as DBT_INTERNAL_DEST
        where ({{ unique_key_str }}) in (
            select distinct {{ unique_key_str }}
            from {{ source }} as DBT_INTERNAL_SOURCE
        )
        {%- for predicate in arg_dict["incremental_predicates"] or [] %}
            and {{ predicate }}
        {%- endfor -%};
    {% endif -%}
    {{ insert_recording_rows_written(target, source, arg_dict["dest_columns"]) }}
{%- endmacro %}


{% macro postgres__get_incremental_append_sql(arg_dict) -%}
    {{ insert_recording_rows_written(arg_dict["target_relation"], arg_dict["temp_relation"], arg_dict["dest_columns"]) }}
{%- endmacro %}


{#- dbt's INSERT (get_insert_into_sql); in a `dbt build`, one statement that also records the rows'
    ctids and the increment. -#}
{% macro insert_recording_rows_written(target, source, dest_columns) -%}
    {%- if flags.WHICH != 'build' -%}
        {{ get_insert_into_sql(target, source, dest_columns) }}
    {%- else -%}
        {%- set rows_written = rows_written_relation(model.name) -%}
        create unlogged table if not exists {{ rows_written }} (row_ctid tid not null);
        truncate {{ rows_written }};
        with recorded as (
            insert into ops.dbt_rows_written (model_name, invocation_id)
            values ('{{ model.name }}', '{{ invocation_id }}')
            on conflict (model_name) do update
                set invocation_id = excluded.invocation_id, recorded_at = now()
        ),

        inserted as (
            {{ get_insert_into_sql(target, source, dest_columns) }}
            returning ctid
        )

        insert into {{ rows_written }} (row_ctid)
        select inserted.ctid from inserted
    {%- endif -%}
{%- endmacro %}


{% macro rows_written_relation(model_name) -%}
    {{- return('ops.' ~ adapter.quote(model_name ~ '__rows_written')) -}}
{%- endmacro %}


{#- on-run-start of a `dbt build`: the log of the increments that recorded their rows. -#}
{% macro create_rows_written_log() -%}
    {%- if flags.WHICH == 'build' -%}
        create schema if not exists ops;
        create table if not exists ops.dbt_rows_written (
            model_name text primary key,
            invocation_id text not null,
            recorded_at timestamptz not null default now()
        )
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
