{#- A certificate's key (认定类别 + 证书编号 + 统一社会信用代码: a number is unique only within its scheme
    and enterprise), from the columns of `alias`: the one definition of fct_certifications.certificate_key,
    which its incremental run matches against. -#}
{% macro certificate_key(alias) -%}
    {{ alias }}.certification_type || ':' || {{ alias }}.certificate_no || ':' || {{ alias }}.uscc
{%- endmacro %}
