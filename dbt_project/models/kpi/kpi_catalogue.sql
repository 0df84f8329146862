-- The KPI catalogue for scorecards: Chinese indicator name, unit, the
-- one-sentence definition (kpis.md), target and its pacing, ranking weight.

with

kpi_targets as (
    select * from {{ ref('kpi_targets') }}
),

kpi_weights as (
    select * from {{ ref('kpi_weights') }}
),

final as (
    select
        kpi_targets.kpi_code,
        kpi_targets.indicator_name,
        kpi_targets.unit,
        kpi_targets.definition,
        kpi_targets.source_feed,
        kpi_targets.measure_type,
        kpi_targets.target_kind,
        kpi_targets.corridor_target,
        kpi_targets.target_text,
        kpi_targets.pacing,
        kpi_targets.area_target_method,
        kpi_targets.direction,
        kpi_targets.target_kind <> 'none' as has_target,
        case
            when kpi_targets.target_kind <> 'none' then coalesce(kpi_weights.ranking_weight, 1)
        end as ranking_weight
    from kpi_targets
    left join kpi_weights
        on kpi_targets.kpi_code = kpi_weights.kpi_code
)

select * from final
