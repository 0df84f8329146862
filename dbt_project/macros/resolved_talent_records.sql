{#- The current state of each talent record (record_id) whose rows `talent_rows` holds (a relation
    or a parenthesised select of stg_hr__talents' columns): the rules of int_talent_records_resolved,
    which applies them to every row; fct_talent_intake's incremental branch applies them to the rows
    of the records named since its watermark only. A select. -#}
{% macro resolved_talent_records(talent_rows) -%}
with

talent_rows as (
    select * from {{ talent_rows }} as talent_source
),

-- one pass, no self-join: each row carries its record's latest action (the
-- first row in the action order); the row first in the attribute order
-- (new/update rows before withdraw rows, then latest) gives the attributes
ranked as (
    select
        *,
        row_number() over by_attributes as attribute_rank,
        first_value(record_action) over by_action as latest_record_action,
        first_value(file_month_end_date) over by_action as latest_file_month_end_date,
        first_value(file_month) over by_action as latest_file_month,
        first_value(ledger_id) over by_action as latest_ledger_id,
        first_value(source_row) over by_action as latest_source_row,
        min(file_month) over (partition by record_id) as first_file_month,
        count(*) over (partition by record_id) as actions_received
    from talent_rows
    window
        by_action as (partition by record_id order by file_month desc, ledger_id desc, source_row desc),
        by_attributes as (
            partition by record_id
            order by (record_action = 'withdraw'), file_month desc, ledger_id desc, source_row desc
        )
),

final as (
    select
        record_id,
        person_key,
        talent_category,
        title,
        employer_name,
        employer_uscc,
        area_code,
        intake_date,
        intake_type,
        is_overseas,
        team_id,
        latest_record_action as latest_action,
        latest_record_action = 'withdraw' as is_withdrawn,
        case
            when latest_record_action = 'withdraw' then latest_file_month_end_date
        end as withdrawn_date,
        first_file_month,
        latest_file_month as last_file_month,
        actions_received,
        latest_ledger_id as ledger_id,
        latest_source_row as source_row
    from ranked
    where attribute_rank = 1
)

select * from final
{%- endmacro %}
