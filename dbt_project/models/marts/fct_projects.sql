-- Project-month snapshots: one row per project and month end, from the
-- project's first report month to the warehouse's as-of month, holding the
-- project's state as of that month end (its row in the latest report month
-- up to it). is_current marks the as-of month: the current state.
--
-- Unreported projects: 完成 and 终止 are final (such a project is not
-- expected in later returns). A project whose state is active (谋划 or
-- 在建) and that is absent from its area's return for a month in which the
-- area did report (its state comes from an earlier report month) is
-- is_unreported in that month: it keeps its last reported state (the KPIs
-- count it as last reported), and it is named by the warning-level test
-- assert_active_projects_reported and counted in the scorecard's
-- data-quality box.

with

project_states as (
    select * from {{ ref('int_project_states_windowed') }}
),

feed_periods as (
    select * from {{ ref('int_feed_periods_delivered') }}
),

district_returns as (
    select * from {{ ref('int_district_returns_versioned') }}
),

as_of as (
    select max(latest_complete_month_end_date) as as_of_date
    from feed_periods
),

snapshot_months as (
    select generate_series(
        (select min(report_month) from project_states),
        (select date_trunc('month', as_of_date)::date from as_of),
        interval '1 month'
    )::date as snapshot_month
),

final as (
    select
        project_states.project_key || ':' || to_char(snapshot_months.snapshot_month, 'YYYY-MM')
            as project_snapshot_id,
        snapshot_months.snapshot_month,
        {{ month_end('snapshot_months.snapshot_month') }} as snapshot_date,
        project_states.project_key,
        project_states.area_code,
        project_states.project_id,
        project_states.project_name,
        project_states.project_category,
        project_states.block_name,
        project_states.start_date,
        project_states.planned_completion_date,
        project_states.project_status,
        project_states.cumulative_investment_10k_yuan,
        project_states.progress_pct,
        project_states.report_month as state_report_month,
        snapshot_months.snapshot_month = (select date_trunc('month', as_of.as_of_date)::date from as_of)
            as is_current,
        (
            project_states.project_status in ('谋划', '在建')
            and project_states.report_month < snapshot_months.snapshot_month
            and district_returns.area_code is not null
        ) as is_unreported,
        project_states.ledger_id,
        project_states.source_row
    from snapshot_months
    inner join project_states
        on
            snapshot_months.snapshot_month >= project_states.valid_from
            and (project_states.valid_to is null or snapshot_months.snapshot_month <= project_states.valid_to)
    left join district_returns
        on
            project_states.area_code = district_returns.area_code
            and snapshot_months.snapshot_month = district_returns.report_month
)

select * from final
