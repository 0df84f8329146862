-- One row per innovation platform (area + 平台编号), with its current
-- attributes and standing: in force, or revoked since revoked_date.

with

platform_states as (
    select * from {{ ref('int_platform_states_windowed') }}
),

first_recognitions as (
    select
        platform_key,
        min(recognised_date) as first_recognised_date,
        min(valid_from) as first_event_date
    from platform_states
    group by platform_key
),

current_states as (
    select * from platform_states
    where is_current
),

final as (
    select
        current_states.platform_key,
        current_states.area_code,
        current_states.platform_id,
        current_states.platform_name,
        current_states.platform_category,
        current_states.platform_level,
        current_states.host_name,
        current_states.host_uscc,
        current_states.incubation_area_m2,
        current_states.recognised_date,
        first_recognitions.first_recognised_date,
        current_states.is_in_force as is_active,
        case
            when current_states.standing_change_type = '撤销' then current_states.standing_started_date
        end as revoked_date,
        current_states.valid_from as last_change_date,
        first_recognitions.first_event_date
    from current_states
    inner join first_recognitions
        on current_states.platform_key = first_recognitions.platform_key
)

select * from final
