{% macro contract_constraints_in_place() %}
    {#- The constraints of an incremental model's enforced contract on the table an earlier build made.

        dbt writes a contract's constraints only when it creates a table: an increment checks the columns'
        names and types, never the constraints. A table rebuilt whole gets a release's constraints at its next
        build, but an incremental mart made by an earlier release kept that release's: a warehouse built
        before the marts' not-null and check constraints (a47e74d, 0790960) and upgraded took none of them,
        its build passing (project_status could still be null in fct_projects, which the contract and the
        BI documentation say it cannot). So, after an increment (a post-hook, in its transaction):

        - a declared not-null missing on the table is set (ALTER COLUMN … SET NOT NULL);
        - a declared check missing is added (ALTER TABLE … ADD CHECK: named as PostgreSQL names the one dbt
          creates with the table) and a check the contract no longer declares is dropped; a check is compared
          by its definition as PostgreSQL deparses it, the declared ones deparsed on an empty temporary copy
          of the table;
        - a primary key or unique constraint missing fails the build, naming the --full-refresh that makes it.

        Each is validated against every row of the table (a row violating it fails the build, in PostgreSQL's
        words). Nothing is missing after the first such build: it then only reads the catalog (and makes an
        empty temporary table when the contract has checks), taking no lock a BI query waits for. -#}
    {%- set contract = model.config.get('contract') or {} %}
    {%- set enforced = contract.enforced if contract.enforced is defined else contract.get('enforced') %}
    {%- if model.config.get('materialized') != 'incremental' or not enforced %}
    select 1 as no_incremental_contract
    {%- else %}
    {%- set relation = this.include(database=false) %}
    {%- set label = this.schema ~ '.' ~ this.identifier %}
    {%- set not_null = [] %}
    {%- set checks = [] %}
    {%- set keys = [] %}
    {%- for column in model.columns.values() %}
        {%- for constraint in column.constraints %}
            {%- if constraint.type == 'not_null' %}
                {%- do not_null.append(column.name) %}
            {%- elif constraint.type == 'check' %}
                {%- do checks.append(constraint.expression) %}
            {%- elif constraint.type in ('primary_key', 'unique') %}
                {%- do keys.append((constraint.type, [column.name])) %}
            {%- endif %}
        {%- endfor %}
    {%- endfor %}
    {%- for constraint in model.constraints %}
        {%- if constraint.type == 'check' %}
            {%- do checks.append(constraint.expression) %}
        {%- elif constraint.type in ('primary_key', 'unique') %}
            {%- do keys.append((constraint.type, constraint.columns)) %}
        {%- endif %}
    {%- endfor %}
    do $contract_constraints$
    begin
        {%- for name in not_null %}
        if not (select a.attnotnull from pg_catalog.pg_attribute as a
                where a.attrelid = '{{ relation }}'::regclass and a.attname = '{{ name }}') then
            raise notice 'contract of {{ label }}: not null {{ name }} set (a table of an earlier release)';
            alter table {{ relation }} alter column {{ adapter.quote(name) }} set not null;
        end if;
        {%- endfor %}
        {%- for type, columns in keys %}
        if not exists (
            select from pg_catalog.pg_constraint as c
            where c.conrelid = '{{ relation }}'::regclass and c.contype = '{{ 'p' if type == 'primary_key' else 'u' }}'
                and (select array_agg(a.attname::text order by a.attname) from pg_catalog.pg_attribute as a
                     where a.attrelid = c.conrelid and a.attnum = any(c.conkey))
                    = array[{% for name in columns | sort %}'{{ name }}'{{ ', ' if not loop.last }}{% endfor %}]::text[]
        ) then
            raise exception 'contract of {{ label }}: its {{ type | replace('_', ' ') }} ({{ columns | join(', ') }}) is missing (a table made by an earlier release): run `corridor dbt build --full-refresh` once';
        end if;
        {%- endfor %}
        {%- if checks %}
        create temporary table corridor_contract_probe (like {{ relation }});
        {%- for expression in checks %}
        alter table corridor_contract_probe add constraint corridor_contract_check_{{ loop.index }} check ({{ expression }});
        if not exists (
            select from pg_catalog.pg_constraint as c
            where c.conrelid = '{{ relation }}'::regclass and c.contype = 'c'
                and pg_catalog.pg_get_constraintdef(c.oid) = (
                    select pg_catalog.pg_get_constraintdef(p.oid) from pg_catalog.pg_constraint as p
                    where p.conrelid = 'corridor_contract_probe'::regclass
                        and p.conname = 'corridor_contract_check_{{ loop.index }}')
        ) then
            raise notice 'contract of {{ label }}: check added (a table of an earlier release)';
            alter table {{ relation }} add check ({{ expression }});
        end if;
        {%- endfor %}
        {%- endif %}
        declare
            retired record;
        begin
            for retired in
                select c.conname from pg_catalog.pg_constraint as c
                where c.conrelid = '{{ relation }}'::regclass and c.contype = 'c'
                    and pg_catalog.pg_get_constraintdef(c.oid) not in (
                        {%- if checks %}
                        select pg_catalog.pg_get_constraintdef(p.oid) from pg_catalog.pg_constraint as p
                        where p.conrelid = 'corridor_contract_probe'::regclass and p.contype = 'c'
                        {%- else %}
                        select null::text where false
                        {%- endif %}
                    )
            loop
                raise notice 'contract of {{ label }}: check % dropped (no longer declared)', retired.conname;
                execute format('alter table {{ relation }} drop constraint %I', retired.conname);
            end loop;
        end;
        {%- if checks %}
        drop table corridor_contract_probe;
        {%- endif %}
    end
    $contract_constraints$
    {%- endif %}
{% endmacro %}


{% macro contract_columns_in_place() %}
    {#- Before an increment of an incremental model under an enforced contract: the table an earlier release
        made has every column the contract declares. An increment's SQL reads its own table (a watermark, the
        rows it merges into): a table without a column it reads failed in PostgreSQL's words ("column
        seen.max_ledger_id does not exist", a warehouse built before dim_enterprise became incremental),
        never saying that a --full-refresh makes the table anew. -#}
    {%- set contract = model.config.get('contract') or {} %}
    {%- set enforced = contract.enforced if contract.enforced is defined else contract.get('enforced') %}
    {%- if is_incremental() and enforced %}
    do $contract_columns$
    declare
        missing text;
    begin
        select string_agg(declared.name, ', ' order by declared.position) into missing
        from unnest(array[{% for name in model.columns %}'{{ name }}'{{ ', ' if not loop.last }}{% endfor %}]::text[])
            with ordinality as declared (name, position)
        where not exists (select from pg_catalog.pg_attribute as a
                          where a.attrelid = '{{ this.include(database=false) }}'::regclass
                              and a.attname = declared.name and a.attnum > 0 and not a.attisdropped);
        if missing is not null then
            raise exception 'contract of {{ this.schema }}.{{ this.identifier }}: the table lacks the column(s) %'
                ' (made by an earlier release): run `corridor dbt build --full-refresh` once', missing;
        end if;
    end
    $contract_columns$
    {%- else %}
    select 1 as no_increment_of_a_contract
    {%- endif %}
{% endmacro %}
