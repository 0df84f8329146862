{#- The pre-hook of an incremental run of fct_projects (issue 11): delete the snapshot months
    that the run must write again, from the earliest month that can have changed to the end.

    A snapshot month's rows depend on the project rows of the report months up to it
    (int_project_states_windowed), on the area-months with a return (is_unreported) and on the
    as-of month (is_current). Since the last run, project rows changed only in the report months
    of the counting workbooks (int_district_returns_versioned) loaded after the watermark, the
    highest ledger_id of a state in the table (ledger ids are committed in order), and is_current
    moved off the table's last month. So: from the earlier of the earliest such report month and
    the table's last month. The model then appends every month after the last one kept. -#}
{% macro delete_project_months_to_rebuild(relation) -%}
    delete from {{ relation }}
    where snapshot_month >= least(
        (select max(kept.snapshot_month) from {{ relation }} as kept),
        (
            select min(changed_returns.report_month)
            from {{ ref('int_district_returns_versioned') }} as changed_returns
            where changed_returns.ledger_id > (select coalesce(max(seen.ledger_id), 0) from {{ relation }} as seen)
        )
    )
{%- endmacro %}
