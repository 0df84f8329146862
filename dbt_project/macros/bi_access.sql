{#
    BI access and row-level security.

    Roles (all NOLOGIN; a person's or a tool's login is granted one):
      bi_reader             BI tools: every row of the public models.
      corridor_area_reader  the group of the area roles: holds the select
                            grants; its members see only their area's rows.
      area_<code>           one per area of dim_area (area_lw, area_oh, …),
                            member of corridor_area_reader; created from the
                            seed by dim_area's post-hook.
    The public models (access: public) grant select to bi_reader and
    corridor_area_reader (grants config); nothing else is granted: not raw,
    ops, staging, intermediate, seeds, nor the internal kpi models. The
    hooks below create the roles and give them usage on marts and kpi.

    Row security (area_row_security, a post-hook of the public models with
    an area column): bi_reader reads every row; a member of
    corridor_area_reader reads the rows whose area column is an area it is
    a member of (area_<code>), plus the rows of `shared_rows` (kpi_values:
    area 'ALL'). No policy allows a write. The table owner (the dbt user)
    is not subject to the policies.
#}
{% macro create_reader_roles() %}
    do $$
    begin
        if not exists (select from pg_roles where rolname = 'bi_reader') then
            create role bi_reader nologin;
        end if;
        if not exists (select from pg_roles where rolname = 'corridor_area_reader') then
            create role corridor_area_reader nologin;
        end if;
    end
    $$
{% endmacro %}


{% macro create_area_roles(area_column='area_code') %}
    {#- One NOLOGIN role area_<code> per row of this model, in corridor_area_reader. -#}
    do $$
    declare
        role_name text;
    begin
        for role_name in select 'area_' || lower({{ area_column }}) from {{ this }} loop
            if not exists (select from pg_roles where rolname = role_name) then
                execute format('create role %I nologin', role_name);
            end if;
            if not pg_has_role(role_name, 'corridor_area_reader', 'member') then
                execute format('grant corridor_area_reader to %I', role_name);
            end if;
        end loop;
    end
    $$
{% endmacro %}


{% macro area_row_security() %}
    {#- model meta: area_column (none = no row security), shared_rows (a condition visible to every area).

        Row security is DDL that takes an ACCESS EXCLUSIVE lock on the table. A table rebuilt whole holds that
        lock already (its swap), but an increment (delete+insert) needs none that a BI query waits for: made
        again at every increment, the policies made the build wait for every BI query running on the table and
        every BI query after it queue behind the build. So the policies are made only where they are missing
        or differ from these: their definition's md5 is the comment of the policy area_reader_reads_own_area
        (a table rebuilt whole is new: it has none). -#}
    {%- set meta = model.config.get('meta', {}) %}
    {%- set area_column = meta.get('area_column') %}
    {%- if area_column %}
    {#- no database name: a copy of the warehouse (CREATE DATABASE … TEMPLATE) keeps its policies -#}
    {%- set relation = this.include(database=false) %}
    {%- set policies -%}
    alter table {{ relation }} enable row level security;
    drop policy if exists bi_reader_reads_every_row on {{ relation }};
    create policy bi_reader_reads_every_row on {{ relation }}
        for select to bi_reader
        using (true);
    drop policy if exists area_reader_reads_own_area on {{ relation }};
    create policy area_reader_reads_own_area on {{ relation }}
        for select to corridor_area_reader
        using (
            {{ area_column }} in (
                select upper(substring(area_roles.rolname from 6))
                from pg_catalog.pg_roles as area_roles
                where area_roles.rolname ~ '^area_[a-z]+$' and pg_has_role(area_roles.oid, 'member')
            )
            {%- if meta.get('shared_rows') %}
            or ({{ meta.get('shared_rows') }})
            {%- endif %}
        );
    {%- endset %}
    {%- set fingerprint = 'area_row_security ' ~ local_md5(policies) %}
    do $area_row_security$
    begin
        if not exists (
            select from pg_catalog.pg_class as c
            where c.oid = '{{ relation }}'::regclass and c.relrowsecurity
        ) or not exists (
            select from pg_catalog.pg_policy as p
            where p.polrelid = '{{ relation }}'::regclass and p.polname = 'bi_reader_reads_every_row'
        ) or (
            select obj_description(p.oid, 'pg_policy') from pg_catalog.pg_policy as p
            where p.polrelid = '{{ relation }}'::regclass and p.polname = 'area_reader_reads_own_area'
        ) is distinct from '{{ fingerprint }}' then
            {{ policies | indent(8) }}
            comment on policy area_reader_reads_own_area on {{ relation }} is '{{ fingerprint }}';
        end if;
    end
    $area_row_security$
    {%- else %}
    select 1 as no_row_security
    {%- endif %}
{% endmacro %}


{% macro grant_bi_schema_usage(schemas, roles=['bi_reader', 'corridor_area_reader']) %}
    {#- A schema is skipped when it does not exist yet (a partial run). -#}
    do $$
    declare
        schema_name text;
        role_name text;
    begin
        foreach schema_name in array array[
            {%- for schema in schemas %}'{{ schema }}'{{ ", " if not loop.last }}{% endfor -%}
        ]::text[] loop
            if exists (select from pg_namespace where nspname = schema_name) then
                foreach role_name in array array[
                    {%- for role in roles %}'{{ role }}'{{ ", " if not loop.last }}{% endfor -%}
                ]::text[] loop
                    execute format('grant usage on schema %I to %I', schema_name, role_name);
                end loop;
            end if;
        end loop;
    end
    $$
{% endmacro %}
