{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['snapshot_month']}, {'columns': ['ledger_id']}],
        pre_hook="{% if is_incremental() %}{{ delete_project_months_to_rebuild(this) }}{% endif %}",
    )
}}

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
--
-- Incremental (issue 11): a month's snapshot rows depend only on the
-- project rows of report months up to it, on which area-months have a
-- return, and on the as-of month (is_current). A run first deletes the
-- snapshot months from the earliest one that can have changed: the
-- earliest report month of a counting workbook loaded after the watermark
-- (the highest ledger_id of a state in the table), or the table's last
-- month (the old as-of month, whose is_current changes), whichever is
-- earlier (macros/delete_project_months_to_rebuild.sql, the pre-hook). It
-- then appends every snapshot month after the last month kept: the same
-- table as a full refresh, given ledger ids committed in order and raw
-- rows never deleted (else --full-refresh). Indexes: the pre-hook reads
-- the last month and the watermark from them instead of scanning the table.

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
    select date_trunc('month', max(latest_complete_month_end_date))::date as as_of_month
    from feed_periods
),

-- the first snapshot month to write: every month after those kept (null in
-- a full refresh: every month)
rebuilt_from as (
    select {% if is_incremental() %}(
            select max(kept.snapshot_month) + interval '1 month'
            from {{ this }} as kept
        ){% else %}null{% endif %}::date as first_month
),

-- each state once per month it holds, up to the as-of month (a series per
-- state: issue 11, no join of every month with every state)
snapshot_states as (
    select
        project_states.*,
        snapshot_months.snapshot_month::date as snapshot_month,
        snapshot_months.snapshot_month::date = as_of.as_of_month as is_current
    from project_states
    cross join as_of
    cross join rebuilt_from
    cross join
        lateral generate_series(
            greatest(project_states.valid_from, rebuilt_from.first_month)::timestamp,
            least(coalesce(project_states.valid_to, as_of.as_of_month), as_of.as_of_month)::timestamp,
            interval '1 month'
        ) as snapshot_months (snapshot_month)
    where
        as_of.as_of_month is not null
        and (
            rebuilt_from.first_month is null
            or coalesce(project_states.valid_to, as_of.as_of_month) >= rebuilt_from.first_month
        )
),

final as (
    select
        snapshot_states.project_key || ':' || to_char(snapshot_states.snapshot_month, 'YYYY-MM')
            as project_snapshot_id,
        snapshot_states.snapshot_month,
        {{ month_end('snapshot_states.snapshot_month') }} as snapshot_date,
        snapshot_states.project_key,
        snapshot_states.area_code,
        snapshot_states.project_id,
        snapshot_states.project_name,
        snapshot_states.project_category,
        snapshot_states.block_name,
        snapshot_states.start_date,
        snapshot_states.planned_completion_date,
        snapshot_states.project_status,
        snapshot_states.cumulative_investment_10k_yuan,
        snapshot_states.progress_pct,
        snapshot_states.report_month as state_report_month,
        snapshot_states.is_current,
        (
            snapshot_states.project_status in ('谋划', '在建')
            and snapshot_states.report_month < snapshot_states.snapshot_month
            and district_returns.area_code is not null
        ) as is_unreported,
        snapshot_states.ledger_id,
        snapshot_states.source_row
    from snapshot_states
    left join district_returns
        on
            snapshot_states.area_code = district_returns.area_code
            and snapshot_states.snapshot_month = district_returns.report_month
)

select * from final
