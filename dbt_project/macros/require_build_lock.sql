{#-
    The first on-run-start hook (dbt_project.yml): a dbt command that writes
    this warehouse (build, run, seed, snapshot, test, retry, clone) runs only
    while the warehouse's build lock is held for it, or it fails before any
    model is touched.

    The lock (src/corridor/transform.py, build_lock) keeps loaders from
    committing files while dbt reads the raw tables (a watermark that spans the
    feeds would skip a file committed behind it for good), keeps the quality
    gate and the publication from reading tables dbt is replacing (they read
    as empty in an older snapshot), and keeps two builds apart; around it,
    `corridor dbt` records what a partial command wrote, so that the next
    whole build tests it whole. `corridor dbt ARGS`, the build DAG's task and
    corridor.transform.dbt hold it and name the backend holding it in
    CORRIDOR_BUILD_LOCK_BACKENDS; this hook checks that one of those backends
    holds the lock in this database now. A plain `dbt build` has none of it,
    and is refused with what to run instead.
-#}
{% macro require_build_lock() %}
    {%- if execute and flags.WHICH in ('build', 'run', 'seed', 'snapshot', 'test', 'retry', 'clone') -%}
        {%- set backends = [] -%}
        {%- for pid in env_var('CORRIDOR_BUILD_LOCK_BACKENDS', '').split(',') if pid.strip() | int > 0 -%}
            {%- do backends.append(pid.strip() | int) -%}
        {%- endfor -%}
        {%- set held = false -%}
        {%- if backends -%}
            {%- set query -%}
                select count(*) from pg_locks
                where locktype = 'advisory' and mode = 'ExclusiveLock' and granted and objsubid = 1
                    and objid = (hashtext('corridor.dbt_build')::bigint & 4294967295)::oid
                    and database = (select oid from pg_database where datname = current_database())
                    and pid in ({{ backends | join(', ') }})
            {%- endset -%}
            {%- set held = run_query(query).columns[0].values()[0] > 0 -%}
        {%- endif -%}
        {%- if not held -%}
            {{ exceptions.raise_compiler_error(
                "`dbt " ~ flags.WHICH ~ "` writes this warehouse only under its build lock, which loaders, the"
                ~ " quality gate, publications and other builds wait for: run it as `corridor dbt " ~ flags.WHICH
                ~ " ...` (the same arguments; CORRIDOR_WAREHOUSE_URL names the warehouse), as the build DAG does."
                ~ " Nothing was written.") }}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
