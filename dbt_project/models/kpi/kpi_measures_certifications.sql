-- KPIs of the district certifications sheet (企业认定), as of every month
-- end d, per area and for the corridor ('ALL': distinct over the corridor).
--   K04  distinct enterprises with a 高新技术企业 certificate valid on d
--   K05  the same, 省级科技型中小企业
--   K10  distinct enterprises newly recognised (新增, 认定日期 in
--        [window start, d]) as 瞪羚企业 or 创新型领军企业
-- Valid on d: 认定日期 ≤ d ≤ 有效期至 and not revoked by d, i.e.
-- valid_from ≤ d ≤ valid_to (fct_certifications; null = open-ended): a
-- certificate is still valid on its 有效期至 day, not the day after.

with

periods as (
    select * from {{ ref('dim_period') }}
),

certifications as (
    select * from {{ ref('fct_certifications') }}
),

month_ends as (
    select period_end as month_end_date
    from periods
    where grain = 'month'
),

valid_certificates as (
    select
        month_ends.month_end_date,
        certifications.uscc,
        certifications.area_code,
        certifications.certification_type
    from month_ends
    inner join certifications
        on
            month_ends.month_end_date >= certifications.valid_from
            and (certifications.valid_to is null or month_ends.month_end_date <= certifications.valid_to)
),

new_recognitions as (
    select
        month_ends.month_end_date,
        certifications.uscc,
        certifications.area_code
    from month_ends
    inner join certifications
        on
            certifications.certification_type in ('瞪羚企业', '创新型领军企业')
            and certifications.granted_date >= date '{{ var("kpi_window_start") }}'
            and month_ends.month_end_date >= certifications.granted_date
),

measures as (
    {%- for kpi_code, certification_type in [('K04', '高新技术企业'), ('K05', '省级科技型中小企业')] %}
        select
            '{{ kpi_code }}'::text as kpi_code,
            {{ area_or_all('area_code') }} as area_code,
            month_end_date,
            count(distinct uscc)::numeric as actual_value
        from valid_certificates
        where certification_type = '{{ certification_type }}'
        group by {{ group_by_area_and_corridor('month_end_date', 'area_code') }}
        union all
    {%- endfor %}
    select
        'K10'::text as kpi_code,
        {{ area_or_all('area_code') }} as area_code,
        month_end_date,
        count(distinct uscc)::numeric as actual_value
    from new_recognitions
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
