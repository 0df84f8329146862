-- KPIs of the district platforms sheet (创新平台), as of every month end d,
-- per area and for the corridor ('ALL'). Only measures with at least one
-- contributing platform have a row (kpi_values fills the zeros).
--   K01  高能级创新平台 recognised (新增) in [window start, d], in force on d
--   K02  省级企业研究院, the same
--   K07  产业创新服务综合体 in force on d
--   K09  孵化面积 of 孵化器 and 加速器 in force on d, in 万平方米
--   K13  高校协同创新中心 in force on d
--   K14  产教融合示范基地 in force on d
-- "In force on d": a state of fct_platform_states with
-- valid_from ≤ d ≤ valid_to (null = open) that is in force.

with

periods as (
    select * from {{ ref('dim_period') }}
),

platform_states as (
    select * from {{ ref('fct_platform_states') }}
),

month_ends as (
    select period_end as month_end_date
    from periods
    where grain = 'month'
),

in_force as (
    select
        month_ends.month_end_date,
        platform_states.platform_key,
        platform_states.area_code,
        platform_states.platform_category,
        platform_states.recognised_date,
        platform_states.incubation_area_m2
    from month_ends
    inner join platform_states
        on
            platform_states.is_in_force
            and month_ends.month_end_date >= platform_states.valid_from
            and (platform_states.valid_to is null or month_ends.month_end_date <= platform_states.valid_to)
),

{%- set platform_counts = [
    ('K01', "platform_category = '高能级创新平台' and recognised_date >= date '" ~ var('kpi_window_start') ~ "'"),
    ('K02', "platform_category = '省级企业研究院' and recognised_date >= date '" ~ var('kpi_window_start') ~ "'"),
    ('K07', "platform_category = '产业创新服务综合体'"),
    ('K13', "platform_category = '高校协同创新中心'"),
    ('K14', "platform_category = '产教融合示范基地'"),
] %}

measures as (
    {%- for kpi_code, condition in platform_counts %}
        select
            '{{ kpi_code }}'::text as kpi_code,
            {{ area_or_all('area_code') }} as area_code,
            month_end_date,
            count(distinct platform_key)::numeric as actual_value
        from in_force
        where {{ condition }}
        group by {{ group_by_area_and_corridor('month_end_date', 'area_code') }}
        union all
    {%- endfor %}
    select
        'K09'::text as kpi_code,
        {{ area_or_all('area_code') }} as area_code,
        month_end_date,
        trim_scale(sum(incubation_area_m2) / 10000)::numeric as actual_value
    from in_force
    where platform_category in ('孵化器', '加速器') and incubation_area_m2 is not null
    group by {{ group_by_area_and_corridor('month_end_date', 'area_code') }}
),

final as (
    select
        kpi_code,
        area_code,
        month_end_date,
        actual_value
    from measures
)

select * from final
