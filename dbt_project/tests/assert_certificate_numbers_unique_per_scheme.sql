{{ config(severity='warn') }}

-- Identity never merges silently: a certificate is its number within its
-- scheme and its enterprise, so one number granted to two enterprises is
-- kept as two certificates (fct_certifications). Such a collision is
-- possible (numbers are issued per scheme and per issuing office) but worth
-- a look: this warning lists every scheme + number held by more than one
-- enterprise, with the enterprises and areas.

with

certifications as (
    select * from {{ ref('fct_certifications') }}
),

final as (
    select
        certification_type,
        certificate_no,
        count(*) as certificates,
        string_agg(uscc || ' (' || area_code || ')', ', ' order by uscc) as enterprises
    from certifications
    group by certification_type, certificate_no
    having count(*) > 1
)

select * from final
