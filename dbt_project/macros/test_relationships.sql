{#
    dbt's `relationships` test (dispatched here from dbt's own, same result):
    every non-null value of the child column is a value of the parent field.

    Issue 11: in an increment the child side is only the rows this build
    wrote (macros/get_where_subquery.sql wraps it in a subquery), a few
    thousand, while a parent such as dim_enterprise holds ~0.8 M rows at
    province. dbt's form hashes the whole parent (0.4-0.6 s per test there);
    here the parent is first reduced to the values the child holds, a scan
    probing the child's small hash. A child that is a whole relation (a full
    build, `dbt test`) keeps dbt's form.
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

select
    from_field

from child
left join parent
    on child.from_field = parent.to_field

where parent.to_field is null

{% endmacro %}
