-- KPIs of the district projects sheet (重点项目), as of every month end d,
-- from the project-month snapshots (state as of d = the project's row in
-- the latest report month up to d), per area and for the corridor.
--   K08  未来社区 with 状态 在建 or 完成
--   K11  重大科技项目 with 开始日期 in [window start, d], 状态 not 终止
--   K15  卡脖子技术攻关 with 开始日期 in [1 January of d's year, d], 状态 not 终止
--   K16  重点区块 with 状态 完成

with

periods as (
    select * from {{ ref('dim_period') }}
),

projects as (
    select * from {{ ref('fct_projects') }}
),

month_ends as (
    select period_end as month_end_date
    from periods
    where grain = 'month'
),

{%- set project_counts = [
    ('K08', "project_category = '未来社区' and project_status in ('在建', '完成')"),
    ('K11', "project_category = '重大科技项目' and project_status <> '终止'"
        ~ " and start_date >= date '" ~ var('kpi_window_start') ~ "' and start_date <= month_end_date"),
    ('K15', "project_category = '卡脖子技术攻关' and project_status <> '终止'"
        ~ " and start_date >= date_trunc('year', month_end_date)::date and start_date <= month_end_date"),
    ('K16', "project_category = '重点区块' and project_status = '完成'"),
] %}

-- the project-month states any of the counts reads (issue 11: ~1 in 12 at
-- province; the four counts below scanned all of them each)
project_states as (
    select
        month_ends.month_end_date,
        projects.project_key,
        projects.area_code,
        projects.project_category,
        projects.project_status,
        projects.start_date
    from month_ends
    inner join projects
        on month_ends.month_end_date = projects.snapshot_date
    where
        {%- for kpi_code, condition in project_counts %}
            ({{ condition }}){% if not loop.last %} or{% endif %}
        {%- endfor %}
),

measures as (
    {%- for kpi_code, condition in project_counts %}
        select
            '{{ kpi_code }}'::text as kpi_code,
            {{ area_or_all('area_code') }} as area_code,
            month_end_date,
            count(distinct project_key)::numeric as actual_value
        from project_states
        where {{ condition }}
        group by {{ group_by_area_and_corridor('month_end_date', 'area_code') }}
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
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
