{#
    Every listed column is not null, in one query (issue 11): a model's
    not-null rules are one test node and one scan of the model, not one node
    and one scan per column. Returns one row per column that has nulls:
    the column, the rule and how many rows break it, e.g.
    ('loan_status', 'not_null', 3). In an increment it reads the rows this
    build wrote, as dbt's not_null did (macros/get_where_subquery.sql).
#}
{% test not_null_columns(model, column_names) %}

    with

    null_rows as (
        select
        {%- for column_name in column_names %}
            count(*) filter (where {{ adapter.quote(column_name) }} is null) as {{ adapter.quote('nulls_' ~ loop.index) }}
            {{- "," if not loop.last }}
        {%- endfor %}
        from {{ model }}
    )

    select
        checked.column_name,
        'not_null' as rule,
        checked.failing_rows
    from null_rows
    cross join lateral (
        values
        {%- for column_name in column_names %}
            ('{{ column_name }}', null_rows.{{ adapter.quote('nulls_' ~ loop.index) }}){{ "," if not loop.last }}
        {%- endfor %}
    ) as checked (column_name, failing_rows)
    where checked.failing_rows > 0

{% endtest %}
