{{
    config(
        materialized='incremental',
        unique_key='project_state_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook="{% if is_incremental() %}delete from {{ this }} where ledger_id = any(array("
            ~ "{{ district_workbooks_superseded() }})){% endif %}",
    )
}}

-- depends_on: {{ ref('stg_district__returns') }}
-- depends_on: {{ ref('int_district_returns_versioned') }}
-- (the incremental branch and its post-hook find the rows of superseded workbooks)

-- Project state as of a date: the project's row in the latest report month
-- up to that date. Each report month's row holds from the first day of its
-- report month until the day before the project's next report month
-- (valid_to null = still the latest). A project reported twice in the same
-- area-month version keeps its last row.
--
-- Incremental (issue 11; a province month rewrites ~2 states of each project
-- it names, ~8 k of ~200 k rows): a project's states change only from the
-- earliest report month in which it gained or lost a row, and the state
-- before that month changes only its valid_to. A run takes the projects
-- with a row in a workbook loaded after the watermark (the highest ledger_id
-- of a state in the table) or a state of a workbook that a restatement
-- superseded (macros/district_workbooks_superseded.sql, through the
-- ledger_id index), recomputes each from its last state before that month
-- on, and replaces those states (delete+insert on project_state_id); the
-- post-hook then deletes the superseded workbooks' states that no row
-- replaced (a project the restatement dropped from its area-month). Ledger
-- ids committed in order and raw rows never deleted (else --full-refresh),
-- as for the other incremental models.

with

-- not materialized: read twice by an incremental run, each read a scan of its own
project_rows as not materialized (
    select * from {{ ref('int_district_projects_versioned') }}
),

{% if is_incremental() %}
-- the months in which a project gained or lost a row since the last run
changed_months as (
    select
        new_rows.project_key,
        new_rows.report_month
    from project_rows as new_rows
    where new_rows.ledger_id > (select coalesce(max(seen.ledger_id), 0) from {{ this }} as seen)
    union all
    select
        superseded_states.project_key,
        superseded_states.report_month
    from {{ this }} as superseded_states
    where superseded_states.ledger_id = any(array({{ district_workbooks_superseded() }}))
),

changed_projects as (
    select
        project_key,
        min(report_month) as changed_from
    from changed_months
    group by project_key
),

-- each changed project from its last state before the change (its valid_to
-- moves); materialized: one index look-up per project, not per joined row
recomputed_from as materialized (
    select
        changed_projects.project_key,
        coalesce((
            select max(kept.valid_from)
            from {{ this }} as kept
            where
                kept.project_key = changed_projects.project_key
                and kept.valid_from < changed_projects.changed_from
        ), changed_projects.changed_from) as first_month
    from changed_projects
),

recomputed_rows as (
    select changed_rows.*
    from project_rows as changed_rows
    inner join recomputed_from
        on
            changed_rows.project_key = recomputed_from.project_key
            and changed_rows.report_month >= recomputed_from.first_month
),
{% endif %}

monthly as (
    select distinct on (project_key, report_month) *
    from {% if is_incremental() %}recomputed_rows{% else %}project_rows{% endif %}
    order by project_key asc, report_month asc, ledger_id desc, source_row desc
),

final as (
    select
        project_key || ':' || to_char(report_month, 'YYYY-MM') as project_state_id,
        project_key,
        area_code,
        project_id,
        project_name,
        project_category,
        block_name,
        start_date,
        planned_completion_date,
        project_status,
        cumulative_investment_10k_yuan,
        progress_pct,
        report_month as valid_from,
        (lead(report_month) over by_project - 1) as valid_to,
        report_month,
        ledger_id,
        source_row
    from monthly
    window by_project as (partition by project_key order by report_month)
)

select * from final
