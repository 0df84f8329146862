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
--
-- One sort of the certificates, not of their two scoped copies (issue 11,
-- 2026-12-06: about half the time at province). In the order of type,
-- enterprise, area and start, a window opens a span of its area unless an
-- earlier window of the same area reaches the day before it or later, and
-- a span ends at the farthest reach of its windows, on the window after
-- which the next one opens a span (or none follows); the same over the
-- enterprise's windows in every area gives its 'ALL' spans (an incremental
-- sort: already in type and enterprise order). The keys sort in the C
-- collation (plain bytes: only which keys are equal matters here).

with

periods as (
    select * from {{ ref('dim_period') }}
),

certifications as not materialized (
    select * from {{ ref('fct_certifications') }}
),

month_ends as (
    select period_end as month_end_date
    from periods
    where grain = 'month'
),

validity_windows as (
    select
        (case certification_type when '高新技术企业' then 'K04' else 'K05' end) collate "C" as kpi_code,
        area_code collate "C" as area_code,
        uscc collate "C" as uscc,
        valid_from,
        coalesce(valid_to, 'infinity'::date) as valid_to
    from certifications
    where
        certification_type in ('高新技术企业', '省级科技型中小企业')
        and (valid_to is null or valid_to >= valid_from)
),

-- per window: the latest day the earlier windows of its area (of the
-- enterprise in every area) reach, and the start of the next window; one
-- window clause per scope, so that PostgreSQL computes both functions in one
-- pass (lead() reads the partition whatever the frame)
window_neighbours as (
    select
        kpi_code,
        area_code,
        valid_from,
        valid_to,
        max(valid_to) over in_area as area_reach_before,
        lead(valid_from) over in_area as area_next_from,
        max(valid_to) over in_corridor as corridor_reach_before,
        lead(valid_from) over in_corridor as corridor_next_from
    from validity_windows
    window
        in_area as (
            partition by kpi_code, uscc, area_code order by valid_from, valid_to
            rows between unbounded preceding and 1 preceding
        ),
        in_corridor as (
            partition by kpi_code, uscc order by valid_from, valid_to
            rows between unbounded preceding and 1 preceding
        )
),

-- the latest day a window and the earlier ones reach (greatest() skips the
-- null of a first window)
window_reaches as (
    select
        kpi_code,
        area_code,
        valid_from,
        area_reach_before,
        greatest(area_reach_before, valid_to) as area_reach,
        area_next_from,
        corridor_reach_before,
        greatest(corridor_reach_before, valid_to) as corridor_reach,
        corridor_next_from
    from window_neighbours
),

first_recognitions as (
    select
        area_code,
        uscc,
        min(granted_date) as recognised_date
    from certifications
    where
        certification_type in ('瞪羚企业', '创新型领军企业')
        and granted_date >= date '{{ var("kpi_window_start") }}'
    group by area_code, uscc
),

-- +1 from the month end on or after a span's start, -1 from the month end
-- on or after the day after its end
changes as (
    select
        kpi_code,
        area_code as scope_code,
        valid_from as change_date,
        1 as change_count
    from window_reaches
    where area_reach_before is null or valid_from > area_reach_before + 1
    union all
    select
        kpi_code,
        area_code as scope_code,
        area_reach + 1 as change_date,
        -1 as change_count
    from window_reaches
    where
        area_reach < 'infinity'::date
        and (area_next_from is null or area_next_from > area_reach + 1)
    union all
    select
        kpi_code,
        'ALL' as scope_code,
        valid_from as change_date,
        1 as change_count
    from window_reaches
    where corridor_reach_before is null or valid_from > corridor_reach_before + 1
    union all
    select
        kpi_code,
        'ALL' as scope_code,
        corridor_reach + 1 as change_date,
        -1 as change_count
    from window_reaches
    where
        corridor_reach < 'infinity'::date
        and (corridor_next_from is null or corridor_next_from > corridor_reach + 1)
    union all
    select
        'K10' as kpi_code,
        area_code as scope_code,
        recognised_date as change_date,
        1 as change_count
    from first_recognitions
    union all
    select
        'K10' as kpi_code,
        'ALL' as scope_code,
        min(recognised_date) as change_date,
        1 as change_count
    from first_recognitions
    group by uscc
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
