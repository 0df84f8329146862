{#
    dbt's `relationships` test (dispatched here from dbt's own, same result):
    every non-null value of the child column is a value of the parent field.

    Issue 11: in an increment the child side is only the rows this build
    wrote (macros/get_where_subquery.sql wraps it in a subquery), a few
    thousand, while a parent such as dim_enterprise holds ~0.8 M rows at
    province. dbt's form hashes the whole parent (0.4-0.6 s per test there);
    here the parent is first reduced to the values the child holds, a scan
    probing the child's small hash, and the missing values are found with
    EXCEPT (a hashed set operation), the child's rows that hold one listed
    after: no join whose plan rests on the estimate of the child's rows. In
    an increment the statistics of a raw table often predate the files it
    names (ANALYZE follows autovacuum's rule, macros/analyze_raw_tables.sql),
    so the planner sees one row where there are thousands; dbt's left join
    then ran as a nested loop re-reading the parent per child row (the hr
    staging view's ledger_id test: 0.46 s at province for 2,099 rows, and
    growing with the square at national scale). A child that is a whole
    relation (a full build, `dbt test`) keeps dbt's form.
#}
{% macro postgres__test_relationships(model, column_name, to, field) %}

with child as (
    select {{ column_name }} as from_field
    from {{ model }}
    where {{ column_name }} is not null
),

parent as (
    select {{ field }} as to_field
    from {{ to }}
    {%- if 'dbt_subquery' in (model | string) %}
        where {{ field }} in (select child.from_field from child)
    {%- endif %}
)

{%- if 'dbt_subquery' in (model | string) %}

select child.from_field
from child
where child.from_field in (
    select child.from_field from child
    except
    select parent.to_field from parent
)
{%- else %}

select
    from_field

from child
left join parent
    on child.from_field = parent.to_field

where parent.to_field is null
{%- endif %}

{% endmacro %}
