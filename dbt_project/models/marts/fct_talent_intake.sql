-- One row per talent record in its current state. The person is the keyed
-- pseudonym person_key only: no ID number, no name. person_intake_seq and
-- team_member_seq order the records that count today (not withdrawn) by
-- intake date: 1 = the person's earliest intake, the team's first member.
-- The KPIs recompute these as of every period end (withdrawals move them).

with

talent_records as (
    select * from {{ ref('int_talent_records_resolved') }}
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
        team_id is not null as is_team_member,
        latest_action,
        is_withdrawn,
        withdrawn_date,
        case
            when not is_withdrawn then
                row_number() over (
                    partition by person_key, is_withdrawn
                    order by intake_date, record_id
                )
        end as person_intake_seq,
        case
            when not is_withdrawn and team_id is not null then
                row_number() over (
                    partition by team_id, is_withdrawn
                    order by intake_date, record_id
                )
        end as team_member_seq,
        first_file_month,
        last_file_month,
        actions_received,
        ledger_id,
        source_row
    from talent_records
)

select * from final
