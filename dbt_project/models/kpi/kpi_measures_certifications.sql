-- KPIs of the district certifications sheet (企业认定), as of every month
-- end d, per area and for the corridor ('ALL': distinct over the corridor).
--   K04  distinct enterprises with a 高新技术企业 certificate valid on d
--   K05  the same, 省级科技型中小企业
--   K10  distinct enterprises newly recognised (新增, 认定日期 in
--        [window start, d]) as 瞪羚企业 or 创新型领军企业
-- Valid on d: 认定日期 ≤ d ≤ 有效期至 and not revoked by d, i.e.
-- valid_from ≤ d ≤ valid_to (fct_certifications; null = open-ended): a
-- certificate is still valid on its 有效期至 day, not the day after.
--
-- How it is counted (issue 11: no month × certificate fan-out, no distinct
-- count over grouping sets): per enterprise and scope (its area, and 'ALL'),
-- the windows of its certificates of a type are merged into disjoint spans
-- (overlapping or adjacent windows join), so an enterprise is in at most
-- one span on any day. The count on d is then the spans started by d minus
-- the spans ended before d: +1 at a span's first day, -1 the day after its
-- last, summed per month end. K10 is the number of enterprises whose first
-- qualifying 认定日期 is on or before d.

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

-- each certificate once in its area and once in the corridor
scoped_certificates as (
    select
        area_code as scope_code,
        uscc,
        certification_type,
        granted_date,
        valid_from,
        valid_to
    from certifications
    union all
    select
        'ALL' as scope_code,
        uscc,
        certification_type,
        granted_date,
        valid_from,
        valid_to
    from certifications
),

validity_windows as (
    select
        case certification_type when '高新技术企业' then 'K04' else 'K05' end as kpi_code,
        scope_code,
        uscc,
        valid_from,
        coalesce(valid_to, 'infinity'::date) as valid_to
    from scoped_certificates
    where
        certification_type in ('高新技术企业', '省级科技型中小企业')
        and (valid_to is null or valid_to >= valid_from)
),

window_openings as (
    select
        *,
        -- a window opens a new span unless an earlier window of the same
        -- enterprise reaches the day before it or later
        coalesce(
            valid_from > max(valid_to) over (
                partition by kpi_code, scope_code, uscc
                order by valid_from, valid_to
                rows between unbounded preceding and 1 preceding
            ) + 1,
            true
        ) as opens_span
    from validity_windows
),

window_spans as (
    select
        *,
        count(*) filter (where opens_span) over (
            partition by kpi_code, scope_code, uscc
            order by valid_from, valid_to
            rows between unbounded preceding and current row
        ) as span_no
    from window_openings
),

spans as (
    select
        kpi_code,
        scope_code,
        uscc,
        min(valid_from) as span_from,
        max(valid_to) as span_to
    from window_spans
    group by kpi_code, scope_code, uscc, span_no
),

first_recognitions as (
    select
        scope_code,
        uscc,
        min(granted_date) as recognised_date
    from scoped_certificates
    where
        certification_type in ('瞪羚企业', '创新型领军企业')
        and granted_date >= date '{{ var("kpi_window_start") }}'
    group by scope_code, uscc
),

-- +1 from the month end on or after a start, -1 from the month end on or
-- after the day after an end
changes as (
    select
        kpi_code,
        scope_code,
        span_from as change_date,
        1 as change_count
    from spans
    union all
    select
        kpi_code,
        scope_code,
        span_to + 1 as change_date,
        -1 as change_count
    from spans
    where span_to < 'infinity'::date
    union all
    select
        'K10' as kpi_code,
        scope_code,
        recognised_date as change_date,
        1 as change_count
    from first_recognitions
),

{{ running_totals_at_month_ends() }},

final as (
    select
        kpi_code,
        area_code,
        month_end_date,
        actual_value
    from measures
)

select * from final
