"""Every environment variable the product reads, and the near-misses of them.

`DATABRICKS_MAX_UPTIM=30` would otherwise be ignored in silence and the default 480 would apply.
A variable that starts with one of the product's prefixes, is none of the names below (nor one
databricks-sdk reads) and is close to one of them gets a warning naming it; `--strict-config`
makes that exit 2. The README's configuration table lists exactly PRODUCT (a test checks both
ways).
"""
from __future__ import annotations

import difflib
from typing import Iterable, Mapping

# The product's own settings (cli/config.py, cli/courses.py, scripts/job.sh), as the README lists them.
PRODUCT = frozenset("""
DATABRICKS_HOST DATABRICKS_TOKEN DATABRICKS_CONFIG_PROFILE QUOTA_UNIT
DATABRICKS_WARN_UPTIME DATABRICKS_MAX_UPTIME DATABRICKS_WARN_DBU DATABRICKS_MAX_DBU
DATABRICKS_WARN_USD DATABRICKS_MAX_USD QUOTA_POLICY_FILE DATABRICKS_WAREHOUSE_ID WAREHOUSE_WAIT_SECONDS
WAREHOUSE_START ADMIN_EMAIL REPORT_RECIPIENT_EMAIL QUOTA_TIMEZONE CLUSTER_UPTIMES_DB DATABASE_URL
TEACHINGLAB_COURSES_FILE EMAIL_TRANSPORT EMAIL_SENDER EMAIL_FILE_DIR MAIL_TEMPLATES_DIR MAIL_BUDGET_SECONDS
AZURE_EMAIL_CONNECTION_STRING AZURE_EMAIL_ENDPOINT AZURE_EMAIL_ACCESS_KEY ACS_SEND_PER_MINUTE ACS_SEND_PER_HOUR
SMTP_HOST SMTP_PORT SMTP_USERNAME SMTP_PASSWORD SMTP_STARTTLS SMTP_CA_FILE REQUESTS_CA_BUNDLE
PRICE_TABLE_FILE SEMESTER_START API_PARALLELISM POLL_INTERVAL_MINUTES POLL_DEADLINE_SECONDS
POLL_TIMEOUT_SECONDS END_OF_DAY_TIMEOUT_SECONDS SERVERLESS_NOTEBOOKS COURSE_NAME CLUSTER_ACCESS_MODE
CLUSTER_SPARK_VERSION CLUSTER_NODE_TYPE CLUSTER_DRIVER_NODE_TYPE CLUSTER_MIN_WORKERS CLUSTER_MAX_WORKERS
CLUSTER_AUTOTERMINATION_MINUTES CLUSTER_PYPI_PACKAGES CLUSTER_MAVEN_PACKAGES
DATABRICKS_ACCOUNT_ID DATABRICKS_ACCOUNT_HOST DATABRICKS_ACCOUNT_PROFILE DATABRICKS_ACCOUNT_TOKEN
LAB_MANAGERS TEACHINGLAB_LOCK_FILE LOG_JOURNALD TEACHINGLAB_LOG_DIR
STATUS_PAGE_URL STATUS_PAGE_PASSWORD STATUS_PAGE_SECRET
SERVERLESS_INTERACTIVE_COMPUTE_ID SERVERLESS_AUTOMATED_COMPUTE_ID SERVERLESS_CHECK_MINUTES COURSE_BUDGET_USD
TEACHINGLAB_ENV UC_CATALOG UC_CATALOG_STORAGE_ROOT COURSE_NOTEBOOKS_DIR COURSE_NOTEBOOKS_SHARED
""".split())

# What databricks-sdk 0.156.0 reads itself (its Config attributes' `env`; tests/test_config.py
# compares this with the installed SDK), so unified auth settings are never taken for typos.
SDK = frozenset("""
ARM_CLIENT_ID ARM_CLIENT_SECRET ARM_ENVIRONMENT ARM_TENANT_ID ARM_USE_MSI DATABRICKS_ACCOUNT_ID
DATABRICKS_AUTH_TYPE DATABRICKS_AZURE_RESOURCE_ID DATABRICKS_CLIENT_ID DATABRICKS_CLIENT_SECRET
DATABRICKS_CLI_PATH DATABRICKS_CLOUD DATABRICKS_CLUSTER_ID DATABRICKS_CONFIG_FILE DATABRICKS_CONFIG_PROFILE
DATABRICKS_DEBUG_HEADERS DATABRICKS_DEBUG_TRUNCATE_BYTES DATABRICKS_DISABLE_ASYNC_TOKEN_REFRESH
DATABRICKS_DISABLE_EXPERIMENTAL_FILES_API_CLIENT DATABRICKS_DISABLE_OAUTH_REFRESH_TOKEN DATABRICKS_DISCOVERY_URL
DATABRICKS_GOOGLE_SERVICE_ACCOUNT DATABRICKS_GROUP_ID DATABRICKS_HOST DATABRICKS_METADATA_SERVICE_URL
DATABRICKS_OIDC_TOKEN_ENV DATABRICKS_OIDC_TOKEN_FILEPATH DATABRICKS_PASSWORD DATABRICKS_RATE_LIMIT
DATABRICKS_SERVERLESS_COMPUTE_ID DATABRICKS_TOKEN DATABRICKS_TOKEN_AUDIENCE DATABRICKS_USERNAME
DATABRICKS_WAREHOUSE_ID DATABRICKS_WORKSPACE_ID GOOGLE_CREDENTIALS
""".split())

# The wrappers' and the test suite's own switches: known, so never a near-miss, but not settings.
DEVELOPMENT = frozenset("TEACHINGLAB_PYTHON TEACHINGLAB_JOURNAL_SOCKET TEACHINGLAB_SYSLOG_SOCKET "
                        "TEACHINGLAB_REQUIRE_POSTGRES DATABRICKS_RUNTIME_VERSION".split())

KNOWN = PRODUCT | SDK | DEVELOPMENT
PREFIXES = ("DATABRICKS_", "QUOTA_", "EMAIL_", "SMTP_", "AZURE_EMAIL_", "ACS_", "STATUS_PAGE_", "TEACHINGLAB_",
            "CLUSTER_", "POLL_", "MAIL_", "WAREHOUSE_", "COURSE_", "ADMIN_", "REPORT_", "LAB_", "SEMESTER_",
            "PRICE_", "API_", "LOG_", "SERVERLESS_", "DATABASE_", "END_OF_DAY_", "UC_")


def near_misses(names: Iterable[str]) -> list[tuple[str, str]]:
    """(given, meant) for each name that looks like one of ours but is not: a prefix of ours,
    unknown, and close to a known name. Sorted, so the warnings read the same every run."""
    known = sorted(KNOWN)
    out = []
    for name in sorted(set(names)):
        if name in KNOWN or not name.startswith(PREFIXES):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
        if close:
            out.append((name, close[0]))
    return out


def misspelt_lines(environment: Mapping[str, str], dotenv: Mapping[str, str], dotenv_path: str) -> list[str]:
    """One line per near-miss, saying where it was set and the name meant."""
    lines = []
    for given, meant in near_misses([*environment, *dotenv]):
        where = f"in {dotenv_path}" if given in dotenv else "in the environment"
        lines.append(f"{given} (set {where}) is not a setting, so it is ignored: did you mean {meant}?")
    return lines
