{{ config(tags=["reads_seeds_only"]) }}

-- KPI codes are guarded: every KPI of the targets seed has exactly one
-- measure model declaring it (meta kpi_codes of the kpi_measures_* models),
-- and every declared code is in the catalogue. kpi_values starts from
-- kpi_targets and fills a missing measure with 0, so without this test a
-- mistyped code or a new KPI row without SQL would publish 0 and "behind".
-- Returns the problems.

{%- set declared = [] %}
{%- if execute %}
    {%- for node in graph.nodes.values() %}
        {%- if node.resource_type == 'model' and node.name.startswith('kpi_measures_') %}
            {%- for code in node.config.meta.get('kpi_codes', []) %}
                {%- do declared.append((code, node.name)) %}
            {%- endfor %}
        {%- endif %}
    {%- endfor %}
{%- endif %}

with

kpi_targets as (
    select * from {{ ref('kpi_targets') }}
),

kpi_catalogue as (
    select * from {{ ref('kpi_catalogue') }}
),

declared_codes as (
    select
        declared.kpi_code,
        declared.measure_model
    from (
        values
        {%- for code, model_name in declared or [('none', 'none')] %}
            ('{{ code }}', '{{ model_name }}'){{ ',' if not loop.last }}
        {%- endfor %}
    ) as declared (kpi_code, measure_model)
),

problems as (
    select
        kpi_targets.kpi_code,
        'no measure model declares it'::text as problem
    from kpi_targets
    where kpi_targets.kpi_code not in (select declared_codes.kpi_code from declared_codes)
    union all
    select
        declared_codes.kpi_code,
        'declared by ' || declared_codes.measure_model || ' but not in the catalogue' as problem
    from declared_codes
    where declared_codes.kpi_code not in (select kpi_catalogue.kpi_code from kpi_catalogue)
    union all
    select
        declared_codes.kpi_code,
        'declared by more than one measure model' as problem
    from declared_codes
    group by declared_codes.kpi_code
    having count(*) > 1
),

final as (
    select
        kpi_code,
        problem
    from problems
)

select * from final
