{#
    Schemas are named exactly as configured (staging, intermediate, marts,
    kpi, seeds), without the target schema as a prefix. A node without a
    custom schema lands in the target's schema (analytics).
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
