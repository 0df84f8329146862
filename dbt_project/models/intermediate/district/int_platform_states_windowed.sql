-- Platform validity windows. Every platform event starts a state that lasts
-- until the platform's next event:
--   新增  effective on its 认定日期 (late reporting rewrites history),
--   更新  effective on the last day of its report month (attributes change),
--   撤销  effective on the last day of its report month (no longer in force).
-- A state is in force when the last 新增/撤销 up to it is a 新增 (an 更新
-- changes attributes, never the standing). Attributes are carried forward:
-- each takes the latest non-null value reported up to the event.
-- Intervals are inclusive: [valid_from, valid_to], valid_to null = open.

with

platform_events as (
    select * from {{ ref('int_district_platforms_versioned') }}
),

effective_events as (
    select
        *,
        case
            when change_type = '新增' then recognised_date
            else report_month_end_date
        end as effective_date,
        case change_type when '新增' then 1 when '更新' then 2 else 3 end as change_order
    from platform_events
    where not (change_type = '新增' and recognised_date is null)
),

sequenced as (
    select
        *,
        row_number() over (
            partition by platform_key
            order by effective_date, report_month, change_order, ledger_id, source_row
        ) as event_seq
    from effective_events
),

standings as (
    select
        *,
        -- a standing opens with each 新增 or 撤销; 更新s belong to the open one
        count(*) filter (where change_type <> '更新') over (
            partition by platform_key
            order by event_seq
            rows between unbounded preceding and current row
        ) as standing_no
    from sequenced
),

carried as (
    select
        platform_key,
        area_code,
        platform_id,
        event_seq,
        standing_no,
        change_type,
        effective_date,
        report_month,
        ledger_id,
        source_row,
        first_value(change_type) over by_standing as standing_change_type,
        first_value(recognised_date) over by_standing as standing_recognised_date,
        first_value(effective_date) over by_standing as standing_started_date,
        {%- for attribute in [
            'platform_name', 'platform_category', 'platform_level', 'host_name', 'host_uscc', 'incubation_area_m2'
        ] %}
            (array_agg({{ attribute }}) filter (where {{ attribute }} is not null) over up_to_event)[
                count({{ attribute }}) over up_to_event
            ] as {{ attribute }},
        {%- endfor %}
        lead(effective_date) over by_platform as next_effective_date
    from standings
    window
        by_platform as (partition by platform_key order by event_seq),
        up_to_event as (
            partition by platform_key
            order by event_seq
            rows between unbounded preceding and current row
        ),
        by_standing as (
            partition by platform_key, standing_no
            order by event_seq
            rows between unbounded preceding and current row
        )
),

final as (
    select
        platform_key || ':' || effective_date::text as platform_state_id,
        platform_key,
        area_code,
        platform_id,
        platform_name,
        platform_category,
        platform_level,
        host_name,
        host_uscc,
        incubation_area_m2,
        case when standing_change_type = '新增' then standing_recognised_date end as recognised_date,
        change_type as opening_change_type,
        standing_change_type,
        standing_started_date,
        standing_change_type = '新增' as is_in_force,
        effective_date as valid_from,
        (next_effective_date - 1) as valid_to,
        next_effective_date is null as is_current,
        report_month,
        ledger_id,
        source_row
    from carried
    -- a state superseded on the day it starts never holds
    where next_effective_date is null or next_effective_date > effective_date
)

select * from final
