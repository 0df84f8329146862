{#
    BI access. bi_reader is a NOLOGIN role: login roles of BI tools are
    granted bi_reader. The marts and kpi models grant select to it through
    their grants config; these hooks create the role and give it usage on
    the BI schemas only (nothing on raw, ops, staging, intermediate, seeds).
#}
{% macro create_bi_reader_role() %}
    do $$
    begin
        if not exists (select from pg_roles where rolname = 'bi_reader') then
            create role bi_reader nologin;
        end if;
    end
    $$
{% endmacro %}


{% macro grant_bi_schema_usage(schemas, role='bi_reader') %}
    {#- A schema is skipped when it does not exist yet (a partial run). -#}
    do $$
    declare
        schema_name text;
    begin
        foreach schema_name in array array[
            {%- for schema in schemas %}'{{ schema }}'{{ ", " if not loop.last }}{% endfor -%}
        ]::text[] loop
            if exists (select from pg_namespace where nspname = schema_name) then
                execute format('grant usage on schema %I to %I', schema_name, '{{ role }}');
            end if;
        end loop;
    end
    $$
{% endmacro %}
