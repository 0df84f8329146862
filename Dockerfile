# The corridor warehouse image: the official Airflow 3.3.2 image (Python 3.11)
# with this package installed from the committed lock file, the fonts the PDF
# scorecards embed, and the code tree at /opt/corridor (read-only at run time:
# everything written goes to CORRIDOR_STATE_DIR / CORRIDOR_OUTPUT_DIR volumes).
#
#   docker compose build        (docker-compose.yml builds it as corridor-warehouse:latest)
FROM apache/airflow:3.3.2-python3.11

USER root
# fonts-noto-cjk: Noto Sans CJK SC, embedded (subset) in every PDF scorecard;
# libharfbuzz-subset0: fast font subsetting for WeasyPrint.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-noto-cjk libharfbuzz-subset0 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && fc-cache -f >/dev/null

COPY --chown=airflow:root . /opt/corridor
USER airflow
# The lock file pins every dependency, Airflow and its providers included (no
# constraints file needed); the package itself without dependencies, editable,
# so that it finds its dags/, dbt_project/ and expectations/ in /opt/corridor;
# its bytecode compiled here, since the tree is read-only at run time.
RUN pip install --no-cache-dir -r /opt/corridor/requirements.lock \
 && pip install --no-cache-dir --no-deps -e /opt/corridor \
 && python -m compileall -q /opt/corridor/src /opt/corridor/dags \
 && python -c "import corridor, cosmos, airflow.providers.celery"
# Fail the build early if the dbt project does not parse (the image ships no
# dbt artefacts: dbt writes under CORRIDOR_STATE_DIR at run time).
RUN cd /opt/corridor \
 && CORRIDOR_STATE_DIR=/tmp/corridor-build CORRIDOR_PGHOST=unset CORRIDOR_PGUSER=unset CORRIDOR_PGDATABASE=unset \
    python -c "from corridor import transform; from pathlib import Path; transform.ensure_manifest(Path('dbt_project'))" \
 && rm -rf /tmp/corridor-build

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/corridor/dags \
    CORRIDOR_STATE_DIR=/opt/airflow/state \
    CORRIDOR_OUTPUT_DIR=/opt/airflow/output \
    CORRIDOR_LANDING_DIR=/opt/airflow/landing
