{#
    Every KPI is measured per area and for the whole corridor (area 'ALL').
    'ALL' is the same measure over all six areas, computed in the same
    aggregate through grouping sets: a distinct count is distinct over the
    corridor, not a sum of the areas.

        select {{ area_or_all('area_code') }} as area_code, ...
        group by {{ group_by_area_and_corridor('month_end_date', 'area_code') }}
#}
{% macro area_or_all(area_column='area_code') -%}
    (case when grouping({{ area_column }}) = 1 then 'ALL' else {{ area_column }} end)::text
{%- endmacro %}


{% macro group_by_area_and_corridor(period_column, area_column='area_code') -%}
    grouping sets (({{ period_column }}, {{ area_column }}), ({{ period_column }}))
{%- endmacro %}
