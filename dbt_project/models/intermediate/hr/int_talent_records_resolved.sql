-- The current state of every talent record (record_id). The latest action
-- wins (latest file month, then the later load, then the later line):
--   new / update  the record counts, with the attributes of that row;
--   withdraw      the record no longer counts from the last day of the
--                 withdraw file's month on (withdrawn_date); its attributes
--                 stay those of the latest new/update row.
-- A later update after a withdraw reinstates the record (latest wins).

with

talent_rows as (
    select * from {{ ref('stg_hr__talents') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by record_id
            order by file_month desc, ledger_id desc, source_row desc
        ) as action_rank,
        row_number() over (
            partition by record_id
            order by (record_action = 'withdraw'), file_month desc, ledger_id desc, source_row desc
        ) as attribute_rank,
        min(file_month) over (partition by record_id) as first_file_month,
        count(*) over (partition by record_id) as actions_received
    from talent_rows
),

latest_actions as (
    select * from ranked
    where action_rank = 1
),

latest_attributes as (
    select * from ranked
    where attribute_rank = 1
),

final as (
    select
        latest_attributes.record_id,
        latest_attributes.person_key,
        latest_attributes.talent_category,
        latest_attributes.title,
        latest_attributes.employer_name,
        latest_attributes.employer_uscc,
        latest_attributes.area_code,
        latest_attributes.intake_date,
        latest_attributes.intake_type,
        latest_attributes.is_overseas,
        latest_attributes.team_id,
        latest_actions.record_action as latest_action,
        latest_actions.record_action = 'withdraw' as is_withdrawn,
        case
            when latest_actions.record_action = 'withdraw' then latest_actions.file_month_end_date
        end as withdrawn_date,
        latest_attributes.first_file_month,
        latest_actions.file_month as last_file_month,
        latest_attributes.actions_received,
        latest_actions.ledger_id,
        latest_actions.source_row
    from latest_attributes
    inner join latest_actions
        on latest_attributes.record_id = latest_actions.record_id
)

select * from final
