-- The annual competition (年度比拼): per complete year, the six areas
-- ranked by a composite score = the weighted mean, over the KPIs with a
-- target, of least(completion_ratio, var ranking_score_cap = 1.2), where
-- completion_ratio is the year-row ratio of kpi_values: the year-end actual
-- over the area's target paced at year end (cumulative: 1/3, 2/3, full;
-- annual: the full annual target; K03: the growth target). Weights from
-- seed kpi_weights (missing = 1). A KPI without a measurable value (K03
-- without a base) is left out of the mean. Ties share a rank (rank()); the
-- score is rounded to var kpi_value_scale (10) decimals first, so equal
-- scores compare equal.

with

kpi_values as (
    select * from {{ ref('kpi_values') }}
),

kpi_weights as (
    select * from {{ ref('kpi_weights') }}
),

areas as (
    select * from {{ ref('dim_area') }}
),

years as (
    select distinct
        period_start,
        period_end
    from kpi_values
    where grain = 'year'
),

scores as (
    select
        kpi_values.period_start,
        kpi_values.area_code,
        coalesce(kpi_weights.ranking_weight, 1) as ranking_weight,
        least(kpi_values.completion_ratio, {{ var('ranking_score_cap') }}) as kpi_score
    from kpi_values
    left join kpi_weights
        on kpi_values.kpi_code = kpi_weights.kpi_code
    where
        kpi_values.grain = 'year'
        and kpi_values.area_code <> 'ALL'
        and kpi_values.target_value is not null
        and kpi_values.completion_ratio is not null
),

composites as (
    select
        period_start,
        area_code,
        trim_scale(round(
            sum(ranking_weight * kpi_score) / nullif(sum(ranking_weight), 0),
            {{ var('kpi_value_scale') }}
        )) as composite_score,
        count(*) as kpis_scored
    from scores
    group by period_start, area_code
),

final as (
    select
        extract(year from years.period_start)::integer as ranking_year,
        areas.area_code,
        years.period_start,
        years.period_end,
        composites.composite_score,
        coalesce(composites.kpis_scored, 0)::integer as kpis_scored,
        rank() over (
            partition by years.period_start
            order by composites.composite_score desc nulls last
        )::integer as area_rank
    from years
    cross join areas
    left join composites
        on
            years.period_start = composites.period_start
            and areas.area_code = composites.area_code
)

select * from final
