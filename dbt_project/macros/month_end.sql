{# The last day of the month of a date expression, as a date. #}
{% macro month_end(date_expression) -%}
    (date_trunc('month', {{ date_expression }}) + interval '1 month' - interval '1 day')::date
{%- endmacro %}
