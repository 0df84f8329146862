{{ config(tags=["reads_seeds_only"]) }}

-- The KPI configuration (seeds, edited without code) says one thing once:
-- what _seeds__seeds.yml and kpis.md promise of it, which the models assume.
-- Returns one row per problem (seed, key, problem):
-- - kpi_targets: a KPI with a target has a corridor_target and one without
--   has none; target_text, which the scorecards print to officials, states
--   the corridor_target the ratios are computed with (its first number) and
--   the kind of target ("… by 2022" cumulative, "… every year" annual,
--   "tracked, …" none); a cumulative target is not paced within a year
--   (year_linear) nor an annual one across the window (window_linear); a
--   rate is not split across areas (uniform);
-- - kpi_area_allocation and kpi_weights: weights ≥ 0;
-- - kpi_status_thresholds: one ahead and one on_track row, ahead ≥ on_track.

with

kpi_targets as (
    select * from {{ ref('kpi_targets') }}
),

area_allocation as (
    select * from {{ ref('kpi_area_allocation') }}
),

kpi_weights as (
    select * from {{ ref('kpi_weights') }}
),

status_thresholds as (
    select * from {{ ref('kpi_status_thresholds') }}
),

stated_targets as (
    select
        kpi_code,
        target_kind,
        corridor_target,
        target_text,
        pacing,
        measure_type,
        area_target_method,
        replace((regexp_match(target_text, '[0-9][0-9,]*\.?[0-9]*'))[1], ',', '')::numeric as stated_target
    from kpi_targets
),

target_problems as (
    select
        kpi_code,
        case
            when target_kind = 'none' and corridor_target is not null
                then 'corridor_target ' || corridor_target || ' for a KPI without a target (target_kind none)'
            when target_kind <> 'none' and corridor_target is null
                then 'no corridor_target for a KPI with a target (target_kind ' || target_kind || ')'
        end as problem
    from stated_targets
    union all
    select
        kpi_code,
        'target_text "' || coalesce(target_text, '') || '" states '
        || coalesce(stated_target::text, 'no number') || ', corridor_target is '
        || coalesce(corridor_target::text, 'null') as problem
    from stated_targets
    where stated_target is distinct from case when target_kind <> 'none' then corridor_target end
    union all
    select
        kpi_code,
        'target_text "' || coalesce(target_text, '') || '" does not state a ' || target_kind || ' target' as problem
    from stated_targets
    where
        coalesce(target_text, '') not like case target_kind
            when 'cumulative' then '% by %'
            when 'annual' then '% every year'
            else 'tracked%'
        end
    union all
    select
        kpi_code,
        'pacing ' || pacing || ' contradicts target_kind ' || target_kind as problem
    from stated_targets
    where
        (target_kind = 'cumulative' and pacing = 'year_linear')
        or (target_kind = 'annual' and pacing = 'window_linear')
    union all
    select
        kpi_code,
        'a rate is not split across areas: area_target_method must be uniform' as problem
    from stated_targets
    where measure_type = 'rate' and area_target_method <> 'uniform'
),

threshold_values as (
    select
        count(*) filter (where status = 'ahead') as ahead_rows,
        count(*) filter (where status = 'on_track') as on_track_rows,
        max(min_completion_ratio) filter (where status = 'ahead') as ahead_from,
        max(min_completion_ratio) filter (where status = 'on_track') as on_track_from
    from status_thresholds
),

final as (
    select
        'kpi_targets' as seed_name,
        kpi_code as config_key,
        problem
    from target_problems
    where problem is not null
    union all
    select
        'kpi_area_allocation' as seed_name,
        kpi_code || ' ' || area_code as config_key,
        'allocation_weight ' || allocation_weight || ' below 0' as problem
    from area_allocation
    where allocation_weight < 0
    union all
    select
        'kpi_weights' as seed_name,
        kpi_code as config_key,
        'ranking_weight ' || ranking_weight || ' below 0' as problem
    from kpi_weights
    where ranking_weight < 0
    union all
    select
        'kpi_status_thresholds' as seed_name,
        'ahead, on_track' as config_key,
        case
            when ahead_rows <> 1 or on_track_rows <> 1
                then 'needs one ahead and one on_track row (has ' || ahead_rows || ' and ' || on_track_rows || ')'
            else 'ahead from ' || ahead_from || ' is below on_track from ' || on_track_from
        end as problem
    from threshold_values
    where ahead_rows <> 1 or on_track_rows <> 1 or ahead_from < on_track_from
)

select * from final
