{#
    Every kpi_code of a kpi_measures_* model is one the model declares
    (its meta kpi_codes): a measure cannot publish a code nobody declared.
#}
{% test kpi_codes_in(model, codes) %}

    select
        kpi_code,
        count(*) as measure_rows
    from {{ model }}
    where kpi_code not in ({% for code in codes %}'{{ code }}'{{ ", " if not loop.last }}{% endfor %})
    group by kpi_code

{% endtest %}
