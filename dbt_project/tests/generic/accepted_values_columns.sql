{#
    Every listed column holds only its accepted values (null passes, as in
    dbt's accepted_values), in one query (issue 11): one test node and one
    scan of the model for all its columns. `columns` maps each column to
    its values; they are compared as text. Returns one row per column and
    value outside its list: the column, the rule, the value and its rows,
    e.g. ('loan_status', 'accepted_values', 'bogus', 1). In an increment it
    reads the rows this build wrote, as dbt's accepted_values did
    (macros/get_where_subquery.sql).
#}
{% test accepted_values_columns(model, columns) %}
    {%- set rejected = {} -%}
    {%- for column_name, values in columns.items() -%}
        {%- set quoted = [] -%}
        {%- for value in values -%}
            {%- do quoted.append("'" ~ (value | string | replace("'", "''")) ~ "'") -%}
        {%- endfor -%}
        {#- true only for a value outside the list (null: false) -#}
        {%- do rejected.update({column_name: "(tested_model." ~ adapter.quote(column_name)
            ~ "::text in (" ~ quoted | join(', ') ~ ")) is false"}) -%}
    {%- endfor %}

    select
        checked.column_name,
        'accepted_values' as rule,
        checked.value_text,
        count(*) as failing_rows
    -- the model may come as a filtered subquery with its own alias (macros/get_where_subquery.sql)
    from (select * from {{ model }}) as tested_model
    cross join lateral (
        values
        {%- for column_name in columns %}
            (
                '{{ column_name }}',
                tested_model.{{ adapter.quote(column_name) }}::text,
                {{ rejected[column_name] }}
            ){{ "," if not loop.last }}
        {%- endfor %}
    ) as checked (column_name, value_text, is_rejected)
    where
        checked.is_rejected
        and (
        {%- for column_name in columns %}
            {{ rejected[column_name] }}{{ " or" if not loop.last }}
        {%- endfor %}
        )
    group by checked.column_name, checked.value_text

{% endtest %}
