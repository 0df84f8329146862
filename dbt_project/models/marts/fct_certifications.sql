{{
    config(
        materialized='incremental',
        unique_key='certificate_key',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['ledger_id']}],
        pre_hook="{% if is_incremental() %}delete from {{ this }} where certificate_key in ("
            ~ "{{ certificates_changed_since(this) }}){% endif %}",
    )
}}

-- depends_on: {{ ref('int_district_certifications_versioned') }}
-- depends_on: {{ ref('stg_district__certifications') }}
-- depends_on: {{ ref('stg_district__returns') }}
-- (the incremental branch applies the rules to the changed certificates' events)

-- One row per enterprise certificate (认定类别 + 证书编号 + 统一社会信用代码:
-- a number is unique only within its scheme and enterprise) with its
-- validity window: valid on d when valid_from ≤ d ≤ valid_to (valid_to
-- null = open-ended). Rules: int_certificates_windowed
-- (macros/certificate_windows.sql).
--
-- Incremental (issue 11; a province month names ~6 k of ~125 k
-- certificates): a run recomputes, from all the events naming them, only
-- the certificates that macros/certificates_changed_since.sql lists (named
-- in any version of a district area-month that received a workbook after
-- the watermark, the highest grant ledger_id in the table, read from its
-- index) and replaces them (delete+insert on certificate_key). The pre-hook
-- first deletes that list, so a certificate left with no grant by a
-- restatement disappears as in a full refresh; if the watermark falls by
-- that deletion, the run recomputes a few more certificates: the same rows.
-- Ledger ids committed in order and raw rows never deleted (else
-- --full-refresh), as for the other incremental models.

with

{% if is_incremental() %}
changed_certificates as (
    {{ certificates_changed_since(this) }}
),

certification_events as (
    select events.*
    from {{ ref('int_district_certifications_versioned') }} as events
    where
        {{ certificate_key('events') }} in (
            select changed_certificates.certificate_key from changed_certificates
        )
),

{{ certificate_windows('certification_events') }},
{% endif %}

certificates as (
    {%- if is_incremental() %}
        select * from windowed_certificates
    {%- else %}
        select * from {{ ref('int_certificates_windowed') }}
    {%- endif %}
),

final as (
    select
        certificate_key,
        certificate_no,
        uscc,
        enterprise_name,
        area_code,
        certification_type,
        granted_date,
        valid_until,
        revoked_date,
        is_revoked,
        valid_from,
        valid_to,
        valid_to is not null and valid_to < valid_from as is_never_valid,
        report_month,
        ledger_id,
        source_row
    from certificates
)

select * from final
