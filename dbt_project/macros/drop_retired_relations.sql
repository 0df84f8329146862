{#-
    Relations this project no longer writes (var retired_relations, as
    schema.name): a model made ephemeral or removed leaves its table or view
    behind in an existing warehouse, stale and never refreshed. An
    on-run-start hook drops each one that is still there, whatever its kind
    (table, view, materialized view). Nothing reads them: they are internal
    models, never granted to the BI roles.
-#}
{% macro drop_retired_relations() %}
    {%- set retired = var('retired_relations', []) -%}
    {%- if retired %}
    do $$
    declare
        retired record;
    begin
        for retired in
            select
                namespaces.nspname as schema_name,
                classes.relname as relation_name,
                classes.relkind as relation_kind
            from pg_catalog.pg_class as classes
            inner join pg_catalog.pg_namespace as namespaces on classes.relnamespace = namespaces.oid
            where
                classes.relkind in ('r', 'p', 'v', 'm')
                and namespaces.nspname || '.' || classes.relname in (
                    {%- for name in retired %}'{{ name }}'{{ ", " if not loop.last }}{% endfor -%}
                )
        loop
            execute format(
                case retired.relation_kind
                    when 'v' then 'drop view %I.%I cascade'
                    when 'm' then 'drop materialized view %I.%I cascade'
                    else 'drop table %I.%I cascade'
                end,
                retired.schema_name, retired.relation_name
            );
        end loop;
    end
    $$
    {%- else %}
    select 1
    {%- endif %}
{% endmacro %}
